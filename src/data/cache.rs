//! The on-disk cache of the data stage: content digests of input files and
//! atomic cache entries. An entry is a directory built under a temporary
//! name and renamed into place only when complete, so a crash or an error
//! never leaves a partial entry that a later run would trust.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::DataError;

/// blake3 of a file's content, 32 hex digits.
pub fn file_digest(path: &Path) -> Result<String, DataError> {
    let io = |source| DataError::Io { path: path.to_path_buf(), cause: source };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().to_hex()[..32].to_string())
}

/// blake3 of a list of strings (with separators), 32 hex digits.
pub fn key_of(parts: &[&str]) -> String {
    let mut h = blake3::Hasher::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update(b"\x1f");
    }
    h.finalize().to_hex()[..32].to_string()
}

/// Removes a temporary directory when dropped, unless disarmed.
struct TempGuard {
    path: Option<PathBuf>,
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

/// Builds the cache entry `dir` atomically: `build` writes into a fresh
/// temporary sibling directory, which is renamed to `dir` only if `build`
/// succeeds. On error (or panic) the temporary directory is removed. If
/// another process completed the same entry first, its entry is kept.
pub fn build_atomically<T>(dir: &Path, build: impl FnOnce(&Path) -> Result<T, DataError>) -> Result<T, DataError> {
    let parent =
        dir.parent().ok_or_else(|| DataError::File { path: dir.to_path_buf(), message: "cache entry has no parent directory".into() })?;
    std::fs::create_dir_all(parent).map_err(|source| DataError::Io { path: parent.to_path_buf(), cause: source })?;
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "entry".into());
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let tmp = parent.join(format!(".tmp-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|source| DataError::Io { path: tmp.clone(), cause: source })?;
    let mut guard = TempGuard { path: Some(tmp.clone()) };
    let value = build(&tmp)?;
    match std::fs::rename(&tmp, dir) {
        Ok(()) => {
            guard.path = None;
            Ok(value)
        }
        // Someone else finished the same entry first: theirs is complete too.
        Err(_) if dir.is_dir() => Ok(value),
        Err(source) => Err(DataError::Io { path: dir.to_path_buf(), cause: source }),
    }
}

/// Writes a file atomically (temporary sibling + rename).
pub fn write_file_atomically(path: &Path, write: impl FnOnce(&mut dyn std::io::Write) -> Result<(), DataError>) -> Result<(), DataError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| DataError::Io { path: p, cause: source }
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let result = (|| {
        let file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
        write(&mut w)?;
        let file = w.into_inner().map_err(|e| DataError::Io { path: tmp.clone(), cause: e.into_error() })?;
        file.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io(path))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_build_leaves_nothing_behind() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("entry");
        let r: Result<(), DataError> = build_atomically(&dir, |tmp| {
            std::fs::write(tmp.join("half.bin"), b"partial").unwrap();
            Err(DataError::File { path: tmp.to_path_buf(), message: "boom".into() })
        });
        assert!(r.is_err());
        assert!(!dir.exists());
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0, "temporary directory left behind");
    }

    #[test]
    fn successful_build_is_renamed_into_place() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("entry");
        build_atomically(&dir, |tmp| {
            std::fs::write(tmp.join("a.txt"), b"done").map_err(|source| DataError::Io { path: tmp.to_path_buf(), cause: source })
        })
        .unwrap();
        assert_eq!(std::fs::read(dir.join("a.txt")).unwrap(), b"done");
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 1);
    }

    #[test]
    fn digest_changes_with_content() {
        let root = tempfile::tempdir().unwrap();
        let p = root.path().join("f.csv");
        std::fs::write(&p, b"a,b\n1,2\n").unwrap();
        let d1 = file_digest(&p).unwrap();
        std::fs::write(&p, b"a,b\n1,3\n").unwrap();
        assert_ne!(d1, file_digest(&p).unwrap());
        assert_eq!(key_of(&["a", "bc"]).len(), 32);
        assert_ne!(key_of(&["a", "bc"]), key_of(&["ab", "c"]));
    }
}
