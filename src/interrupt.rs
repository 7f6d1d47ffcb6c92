//! Ctrl-C and SIGTERM: the first signal asks the running grid to stop at the
//! next step (the run is marked `killed`, the database stays consistent); a
//! second signal ends the process at once. Also whether a process that
//! claimed a run is still there, and still the same program.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
    // SAFETY: signal() is async-signal-safe; restoring the default makes a
    // second Ctrl-C terminate immediately.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
    }
}

/// Installs the handlers for SIGINT and SIGTERM.
pub fn install() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic and calls signal().
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

/// Whether a stop was requested.
pub fn requested() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Whether process `pid` exists on this host.
pub fn process_alive(pid: i64) -> bool {
    if pid <= 0 || pid > i32::MAX as i64 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks for existence and permission.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// When process `pid` started (field 22 of /proc/PID/stat, clock ticks
/// after boot); `None` where /proc is not available. With the pid, this
/// names one process: a pid reused by another program has another start.
pub fn process_start(pid: i64) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start(&stat)
}

/// Field 22 of a /proc/PID/stat line. Field 2 (the command) is in
/// parentheses and may itself hold spaces and parentheses: fields are
/// counted after the last `)`, where field 3 comes first.
fn parse_start(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_time_is_field_22_also_after_a_command_with_spaces_and_parentheses() {
        let fields: Vec<String> = (3..=30).map(|i| if i == 22 { "987654".to_string() } else { i.to_string() }).collect();
        let line = format!("4242 (my (odd) prog) {}\n", fields.join(" "));
        assert_eq!(parse_start(&line), Some(987654));
        assert_eq!(parse_start("4242 (short) S 1 2"), None);
        let own = std::process::id() as i64;
        assert!(process_start(own).is_some(), "this process has a start time");
        assert_eq!(process_start(own), process_start(own));
        assert_eq!(process_start(-1), None);
    }
}
