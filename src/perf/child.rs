//! Runs one side of the comparison as a child process and measures it from
//! outside: its stdout (one JSON object), its exit status and its own peak
//! resident set size from `wait4` (each side is charged only for itself,
//! unlike `RUSAGE_CHILDREN`, which keeps the maximum over all children).

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Instant;

use super::PerfError;

/// What a finished child produced.
#[derive(Debug, Clone)]
pub struct ChildOutput {
    pub stdout: String,
    pub peak_rss_mib: f64,
    pub wall_seconds: f64,
}

/// Runs `cmd` to the end; stderr passes through to ours (progress), stdout
/// is captured. A non-zero exit is an error naming `what`.
pub fn run(what: &str, mut cmd: Command) -> Result<ChildOutput, PerfError> {
    let t0 = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| PerfError::Child { what: what.into(), message: format!("could not start: {e}") })?;
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_string(&mut stdout).map_err(|e| PerfError::Child { what: what.into(), message: format!("reading its output: {e}") })?;
    }
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data that wait4 fills in; `pid` is our own child,
    // which std has not reaped (we never called wait on `child`).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = loop {
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == -1 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        break r;
    };
    if r != pid {
        return Err(PerfError::Child { what: what.into(), message: format!("wait4: {}", std::io::Error::last_os_error()) });
    }
    let wall_seconds = t0.elapsed().as_secs_f64();
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    if !ok {
        let how = if libc::WIFEXITED(status) {
            format!("exit code {}", libc::WEXITSTATUS(status))
        } else if libc::WIFSIGNALED(status) {
            format!("killed by signal {}", libc::WTERMSIG(status))
        } else {
            format!("status {status}")
        };
        return Err(PerfError::Child { what: what.into(), message: format!("failed ({how}); its messages are above") });
    }
    // ru_maxrss is in KiB on Linux.
    Ok(ChildOutput { stdout, peak_rss_mib: usage.ru_maxrss as f64 / 1024.0, wall_seconds })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_output_and_a_peak_rss_of_its_own() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo '{\"x\": 1}'"]);
        let out = run("echo", cmd).unwrap();
        assert_eq!(out.stdout.trim(), "{\"x\": 1}");
        assert!(out.peak_rss_mib > 0.0 && out.peak_rss_mib < 100.0, "{}", out.peak_rss_mib);
        // dd reads into a 200 MiB buffer: a child that touches that much has a peak RSS at least that large.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "dd if=/dev/zero of=/dev/null bs=200M count=1 2>/dev/null && echo done"]);
        let out = run("big", cmd).unwrap();
        assert_eq!(out.stdout.trim(), "done");
        assert!(out.peak_rss_mib > 190.0, "{}", out.peak_rss_mib);
    }

    #[test]
    fn a_failing_child_is_an_error_naming_it() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "exit 3"]);
        let e = run("the reference", cmd).unwrap_err().to_string();
        assert!(e.contains("the reference") && e.contains("exit code 3"), "{e}");
        let e = run("nothing", Command::new("/nonexistent/program")).unwrap_err().to_string();
        assert!(e.contains("nothing") && e.contains("could not start"), "{e}");
    }
}
