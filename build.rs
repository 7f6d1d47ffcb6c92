//! Embeds an rpath to libtorch's lib directory so `bench` runs without
//! LD_LIBRARY_PATH (torch-sys, `links = "tch"`, publishes the directory to
//! its direct dependents as DEP_TCH_LIBTORCH_LIB), records the libtorch
//! version for the run environment, and records which commit of mtlbench
//! the binary is built from (with a dirty flag for uncommitted changes to
//! the build's inputs). Without git, or outside a git checkout, the commit
//! is "unknown" and the build goes on.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The tracked inputs of the build whose uncommitted changes make it dirty.
const SOURCES: &[&str] = &["src", "migrations", "experiments/demo.toml", "build.rs", "Cargo.toml", "Cargo.lock"];

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-changed=migrations");
    let version = libtorch_version();
    println!("cargo:rustc-env=MTLBENCH_LIBTORCH_VERSION={version}");
    build_commit();
}

fn libtorch_version() -> String {
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else { return "unknown".into() };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    let root = Path::new(&lib).parent().map(Path::to_path_buf).unwrap_or_default();
    for candidate in [root.join("version.py"), root.join("build-version")] {
        if let Ok(text) = std::fs::read_to_string(&candidate) {
            let found = text
                .lines()
                .find_map(|l| l.strip_prefix("__version__ = "))
                .map(|v| v.trim().trim_matches('\'').trim_matches('"').to_string())
                .or_else(|| Some(text.trim().to_string()).filter(|s| !s.is_empty() && !s.contains('\n')));
            if let Some(v) = found {
                return v;
            }
        }
    }
    "unknown".into()
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    // No optional locks: `git status` must not rewrite the index (a watched
    // file would then change on every build).
    let out = Command::new("git").arg("--no-optional-locks").arg("-C").arg(dir).args(args).stderr(Stdio::null()).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Sets MTLBENCH_BUILD_COMMIT (full hash or "unknown"),
/// MTLBENCH_BUILD_DIRTY ("true", "false" or "unknown") and
/// MTLBENCH_BUILD_SHORT ("abc1234", "abc1234-dirty" or "unknown"), and asks cargo to
/// rerun this script when HEAD moves or a source changes, not otherwise.
fn build_commit() {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into()));
    let commit = git(&dir, &["rev-parse", "--verify", "HEAD"]).filter(|c| !c.is_empty());
    let dirty = commit.as_ref().and_then(|_| {
        let mut args = vec!["status", "--porcelain", "--untracked-files=no", "--"];
        args.extend(SOURCES);
        git(&dir, &args).map(|s| !s.is_empty())
    });
    if commit.is_some() {
        watch_git(&dir);
    }
    for s in SOURCES {
        if dir.join(s).exists() {
            println!("cargo:rerun-if-changed={s}");
        }
    }
    let short = match (&commit, dirty) {
        (Some(c), Some(true)) => format!("{}-dirty", &c[..c.len().min(7)]),
        (Some(c), _) => c[..c.len().min(7)].to_string(),
        (None, _) => "unknown".to_string(),
    };
    println!("cargo:rustc-env=MTLBENCH_BUILD_SHORT={short}");
    println!("cargo:rustc-env=MTLBENCH_BUILD_COMMIT={}", commit.as_deref().unwrap_or("unknown"));
    println!("cargo:rustc-env=MTLBENCH_BUILD_DIRTY={}", dirty.map_or("unknown".to_string(), |d| d.to_string()));
}

/// HEAD and the branch it points to (a loose ref or packed-refs): a commit
/// or a checkout moves one of them.
fn watch_git(dir: &Path) {
    let path = |p: Option<String>| p.map(|p| if Path::new(&p).is_absolute() { PathBuf::from(p) } else { dir.join(p) });
    let git_dir = path(git(dir, &["rev-parse", "--git-dir"]));
    let common = path(git(dir, &["rev-parse", "--git-common-dir"])).or_else(|| git_dir.clone());
    let mut watch = Vec::new();
    if let Some(g) = &git_dir {
        watch.push(g.join("HEAD"));
    }
    if let (Some(c), Some(head_ref)) = (&common, git(dir, &["symbolic-ref", "-q", "HEAD"])) {
        let loose = c.join(&head_ref);
        // A packed branch gets a loose ref file at its next commit: watch
        // the folder it will appear in (other branches' commits touch it too).
        if loose.exists() {
            watch.push(loose);
        } else {
            watch.extend(loose.parent().map(Path::to_path_buf));
        }
        watch.push(c.join("packed-refs"));
    }
    for p in watch.into_iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", p.display());
    }
}
