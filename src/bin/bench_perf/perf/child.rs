//! Runs one side of the comparison as a child process: its stdout (one JSON
//! object) is captured, its stderr passes through as progress, and a failure
//! is an error naming the side.
//!
//! Peak memory is reported by each side itself from its own `VmHWM`
//! (/proc/self/status), not from `wait4`'s `ru_maxrss`: Linux carries the
//! parent's resident size into a child's `ru_maxrss` at `exec` (the
//! high-water mark of the address space it replaces), so a child started
//! from a large process would be charged for its parent.

use std::process::{Command, Stdio};

use super::PerfError;

/// What a finished child produced.
#[derive(Debug, Clone)]
pub struct ChildOutput {
    pub stdout: String,
}

/// Runs `cmd` to the end; a non-zero exit is an error naming `what`.
pub fn run(what: &str, mut cmd: Command) -> Result<ChildOutput, PerfError> {
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| PerfError::Child { what: what.into(), message: format!("could not start: {e}") })?;
    if !out.status.success() {
        return Err(PerfError::Child { what: what.into(), message: format!("failed ({}); its messages are above", out.status) });
    }
    Ok(ChildOutput { stdout: String::from_utf8_lossy(&out.stdout).into_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_output() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo progress >&2; echo '{\"x\": 1}'"]);
        let out = run("echo", cmd).unwrap();
        assert_eq!(out.stdout.trim(), "{\"x\": 1}");
    }

    #[test]
    fn a_failing_child_is_an_error_naming_it() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "exit 3"]);
        let e = run("the reference", cmd).unwrap_err().to_string();
        assert!(e.contains("the reference") && e.contains("exit status: 3"), "{e}");
        let e = run("nothing", Command::new("/nonexistent/program")).unwrap_err().to_string();
        assert!(e.contains("nothing") && e.contains("could not start"), "{e}");
    }
}
