//! Saved test predictions: a compact little-endian binary format, one per
//! run, referenced from the store (a file next to a SQLite database, a row
//! of a PostgreSQL database: `predictions.rs`). It carries the users and labels of the rows so
//! that statistics (DeLong) and fusion can check they compare the same rows.
//!
//! Layout: b"MTLPRED1", u64 rows, u32 columns, u32 tasks; per task a
//! u16-length-prefixed name; per column a u16-length-prefixed name; then
//! users [rows] i64, labels [rows x tasks] f32 row-major, and each column
//! [rows] f32.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::StoreError;

const MAGIC: &[u8; 8] = b"MTLPRED1";

/// Predictions of one run on the test rows.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictionFile {
    pub rows: usize,
    pub tasks: Vec<String>,
    pub users: Vec<i64>,
    /// rows x tasks, row-major.
    pub labels: Vec<f32>,
    /// Named score columns (one per task, then extras), each `rows` long.
    pub columns: Vec<(String, Vec<f32>)>,
}

fn err(place: impl std::fmt::Display, message: impl Into<String>) -> StoreError {
    StoreError::Artifact { place: place.to_string(), message: message.into() }
}

fn put_name(buf: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    buf.extend((b.len().min(u16::MAX as usize) as u16).to_le_bytes());
    buf.extend(&b[..b.len().min(u16::MAX as usize)]);
}

impl PredictionFile {
    /// A digest of the rows (users and labels): equal digests, same test rows.
    pub fn rows_digest(&self) -> String {
        let mut h = blake3::Hasher::new();
        for u in &self.users {
            h.update(&u.to_le_bytes());
        }
        for l in &self.labels {
            h.update(&l.to_le_bytes());
        }
        h.finalize().to_hex()[..16].to_string()
    }

    /// The bytes of the format (see the module header).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(16 + self.rows * (8 + 4 * (self.tasks.len() + self.columns.len())));
        buf.extend(MAGIC);
        buf.extend((self.rows as u64).to_le_bytes());
        buf.extend((self.columns.len() as u32).to_le_bytes());
        buf.extend((self.tasks.len() as u32).to_le_bytes());
        for t in &self.tasks {
            put_name(&mut buf, t);
        }
        for (n, _) in &self.columns {
            put_name(&mut buf, n);
        }
        for u in &self.users {
            buf.extend(u.to_le_bytes());
        }
        for l in &self.labels {
            buf.extend(l.to_le_bytes());
        }
        for (_, c) in &self.columns {
            for v in c {
                buf.extend(v.to_le_bytes());
            }
        }
        buf
    }

    /// Writes atomically (temp file + rename).
    pub fn write(&self, path: &Path) -> Result<(), StoreError> {
        let buf = self.to_bytes();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| err(path.display(), e.to_string()))?;
        }
        let tmp = PathBuf::from(format!("{}.tmp{}", path.display(), std::process::id()));
        let mut f = std::fs::File::create(&tmp).map_err(|e| err(tmp.display(), e.to_string()))?;
        f.write_all(&buf).and_then(|_| f.sync_all()).map_err(|e| err(tmp.display(), e.to_string()))?;
        std::fs::rename(&tmp, path).map_err(|e| err(path.display(), e.to_string()))
    }

    pub fn read(path: &Path) -> Result<PredictionFile, StoreError> {
        let mut bytes = Vec::new();
        std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(|e| err(path.display(), e.to_string()))?;
        PredictionFile::from_bytes(&bytes, &path.display().to_string())
    }

    /// Parses the format; `place` names where the bytes came from in errors.
    pub fn from_bytes(bytes: &[u8], place: &str) -> Result<PredictionFile, StoreError> {
        let path = place;
        let mut r = Reader { b: bytes, pos: 0, path };
        if r.take(8)? != MAGIC {
            return Err(err(path, "not an mtlbench predictions file (bad magic)"));
        }
        let rows = r.u64()? as usize;
        let ncols = r.u32()? as usize;
        let ntasks = r.u32()? as usize;
        let tasks = (0..ntasks).map(|_| r.name()).collect::<Result<Vec<_>, _>>()?;
        let names = (0..ncols).map(|_| r.name()).collect::<Result<Vec<_>, _>>()?;
        let need = rows.checked_mul(8 + 4 * (ntasks + ncols)).ok_or_else(|| err(path, "size overflow"))?;
        if bytes.len() - r.pos != need {
            return Err(err(path, format!("truncated or padded: {} bytes of data, expected {need}", bytes.len() - r.pos)));
        }
        let users = (0..rows).map(|_| r.i64()).collect::<Result<Vec<_>, _>>()?;
        let labels = (0..rows * ntasks).map(|_| r.f32()).collect::<Result<Vec<_>, _>>()?;
        let mut columns = Vec::new();
        for n in names {
            columns.push((n, (0..rows).map(|_| r.f32()).collect::<Result<Vec<_>, _>>()?));
        }
        Ok(PredictionFile { rows, tasks, users, labels, columns })
    }
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
    path: &'a str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.pos + n > self.b.len() {
            return Err(err(self.path, "truncated"));
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N], StoreError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u64(&mut self) -> Result<u64, StoreError> {
        Ok(u64::from_le_bytes(self.arr()?))
    }
    fn u32(&mut self) -> Result<u32, StoreError> {
        Ok(u32::from_le_bytes(self.arr()?))
    }
    fn i64(&mut self) -> Result<i64, StoreError> {
        Ok(i64::from_le_bytes(self.arr()?))
    }
    fn f32(&mut self) -> Result<f32, StoreError> {
        Ok(f32::from_le_bytes(self.arr()?))
    }
    fn name(&mut self) -> Result<String, StoreError> {
        let n = u16::from_le_bytes(self.arr()?) as usize;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| err(self.path, "a name is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.bin");
        let f = PredictionFile {
            rows: 3,
            tasks: vec!["click".into(), "like".into()],
            users: vec![1, 2, 3],
            labels: vec![1.0, 0.0, 0.0, 1.0, 0.0, 0.0],
            columns: vec![("click".into(), vec![0.1, 0.2, 0.3]), ("like".into(), vec![0.4, 0.5, 0.6])],
        };
        f.write(&p).unwrap();
        assert_eq!(PredictionFile::read(&p).unwrap(), f);
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 3]).unwrap();
        let e = PredictionFile::read(&p).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
        std::fs::write(&p, b"garbage!garbage!").unwrap();
        assert!(PredictionFile::read(&p).unwrap_err().to_string().contains("magic"));
    }
}
