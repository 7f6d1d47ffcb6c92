//! The environment a run executed in (machine, versions, git state), recorded
//! with every run so that a number can always be traced to where it came from.

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Environment {
    pub hostname: String,
    pub os: String,
    pub cpu_model: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub torch_threads: i32,
    pub libtorch: String,
    pub mtlbench: String,
    pub git_commit: Option<String>,
    pub git_dirty: Option<bool>,
    pub device: String,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn git(args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git").args(args).stderr(std::process::Stdio::null()).output().ok()?;
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
pub fn capture(device: &str) -> Environment {
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
    let hostname = hostname();
    let git_commit = git(&["rev-parse", "HEAD"]);
    let git_dirty = git_commit.as_ref().and(git(&["status", "--porcelain", "--untracked-files=no"]).map(|s| !s.is_empty()));
    Environment {
        hostname,
        os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
        cpu_model,
        cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        memory_gib,
        torch_threads: tch::get_num_threads(),
        libtorch: env!("MTLBENCH_LIBTORCH_VERSION").to_string(),
        mtlbench: env!("CARGO_PKG_VERSION").to_string(),
        git_commit,
        git_dirty,
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
