//! The environment a run executed in (machine, versions, provenance),
//! recorded with every run so that a number can always be traced to where
//! it came from. Two commits are kept apart: the one mtlbench itself was
//! built from (embedded by build.rs) and the one of the repository the user
//! runs `bench` in (their grid files and data), which may be another
//! repository or none.

use serde::Serialize;

/// `bench --version`: the package version and the commit of the build,
/// e.g. `0.1.0 (abc1234)`, `0.1.0 (abc1234-dirty)` or `0.1.0 (unknown)`.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("MTLBENCH_BUILD_SHORT"), ")");

/// The commit mtlbench was built from, or "unknown" (built outside git).
pub const BUILD_COMMIT: &str = env!("MTLBENCH_BUILD_COMMIT");

/// Whether the build had uncommitted changes to mtlbench's sources (None: unknown).
pub fn build_dirty() -> Option<bool> {
    match env!("MTLBENCH_BUILD_DIRTY") {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Environment {
    pub hostname: String,
    pub os: String,
    pub cpu_model: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub torch_threads: i32,
    pub libtorch: String,
    /// mtlbench's version.
    pub mtlbench: String,
    /// The commit mtlbench was built from ("unknown" outside git).
    pub mtlbench_commit: String,
    pub mtlbench_dirty: Option<bool>,
    /// The commit of the repository containing the working directory, if any.
    pub workdir_git_commit: Option<String>,
    pub workdir_git_dirty: Option<bool>,
    pub device: String,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn git(args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("--no-optional-locks")
        .args(args)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// This machine's host name.
pub fn hostname() -> String {
    let h = read("/proc/sys/kernel/hostname");
    if h.trim().is_empty() {
        std::env::var("HOSTNAME").unwrap_or_else(|_| "unknown".into())
    } else {
        h.trim().to_string()
    }
}

/// Reads the environment of this process.
pub fn capture(device: impl std::fmt::Display) -> Environment {
    let cpu_model = read("/proc/cpuinfo")
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let memory_gib = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| (kb / 1024.0 / 1024.0 * 10.0).round() / 10.0)
        .unwrap_or(0.0);
    let workdir_git_commit = git(&["rev-parse", "--verify", "HEAD"]);
    let workdir_git_dirty =
        workdir_git_commit.as_ref().and(git(&["status", "--porcelain", "--untracked-files=no"]).map(|s| !s.is_empty()));
    Environment {
        hostname: hostname(),
        os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
        cpu_model,
        cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        memory_gib,
        torch_threads: tch::get_num_threads(),
        libtorch: env!("MTLBENCH_LIBTORCH_VERSION").to_string(),
        mtlbench: env!("CARGO_PKG_VERSION").to_string(),
        mtlbench_commit: BUILD_COMMIT.to_string(),
        mtlbench_dirty: build_dirty(),
        workdir_git_commit,
        workdir_git_dirty,
        device: device.to_string(),
    }
}

/// Peak resident set size of this process in MiB (Linux), if known.
pub fn peak_rss_mib() -> Option<f64> {
    read("/proc/self/status")
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
}

/// The first of `programs` found on PATH.
pub fn find_program<'a>(programs: &[&'a str]) -> Option<&'a str> {
    let path = std::env::var_os("PATH")?;
    programs.iter().copied().find(|p| std::env::split_paths(&path).any(|d| d.join(p).is_file()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_commit_is_a_hash_or_unknown_and_the_version_names_it() {
        let c = BUILD_COMMIT;
        assert!(c == "unknown" || (c.len() == 40 && c.bytes().all(|b| b.is_ascii_hexdigit())), "{c}");
        assert!(VERSION.starts_with(env!("CARGO_PKG_VERSION")), "{VERSION}");
        let short = if c == "unknown" { "unknown".to_string() } else { c[..7].to_string() };
        assert!(VERSION.contains(&format!("({short}")), "{VERSION} should name {short}");
        assert_eq!(VERSION.ends_with("-dirty)"), build_dirty() == Some(true), "{VERSION}");
        if c == "unknown" {
            assert_eq!(build_dirty(), None);
        }
    }
}

/// Process set-up shared by the binaries, before libtorch starts: libtorch
/// reads `OMP_WAIT_POLICY` once, and spinning OpenMP workers make steps
/// 10x-40x slower when anything else uses the cores; freed tensor buffers
/// are reused instead of faulting fresh pages each step; a closed pipe
/// (`bench list | head`) ends the process quietly like other Unix tools.
pub fn init_process() {
    if std::env::var_os("OMP_WAIT_POLICY").is_none() {
        std::env::set_var("OMP_WAIT_POLICY", "PASSIVE");
    }
    crate::train::alloc::keep_freed_memory();
    // SAFETY: restoring the default disposition of SIGPIPE at start-up,
    // before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
