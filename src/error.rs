//! The one error type of the runtime, and the exit code each kind maps to.

use std::time::Duration;

/// Everything that can end a run early. Each variant maps to one documented
/// exit code (see the README's table).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line or the playbook's declaration is wrong: exit 2.
    #[error("{0}")]
    Usage(String),
    /// The playbook ran and failed: exit 1. The message is already rendered.
    #[error("{0}")]
    Failed(String),
    /// The whole-run deadline (`--timeout`) passed: exit 124.
    #[error("the run's deadline of {} passed (--timeout); stopped the playbook and its child processes", fmt_secs(*.0))]
    Timeout(Duration),
    /// A target lock is held by another run: exit 75 (temporary failure,
    /// as in sysexits' EX_TEMPFAIL; retry later).
    #[error("{0}")]
    Busy(String),
    /// A signal (SIGHUP, SIGINT, SIGQUIT, SIGTERM), or stdout closed under
    /// runbook (SIGPIPE): exit 128 + the signal's number.
    #[error("interrupted by {0}; stopped the playbook and its child processes")]
    Interrupted(&'static str),
}

impl Error {
    /// The process exit code for this error (the contract in DESIGN.md).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 2,
            Error::Failed(_) => 1,
            Error::Timeout(_) => 124,
            Error::Busy(_) => crate::lock::BUSY_EXIT,
            Error::Interrupted(sig) => 128 + signal_number(sig),
        }
    }
}

/// The number of a signal runbook handles (SIGTERM for any other name).
pub fn signal_number(name: &str) -> i32 {
    match name {
        "SIGHUP" => 1,
        "SIGINT" => 2,
        "SIGQUIT" => 3,
        "SIGPIPE" => 13,
        _ => 15,
    }
}

/// Seconds with at most one decimal, for messages.
pub fn fmt_secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if (s - s.round()).abs() < 0.05 {
        format!("{}s", s.round() as u64)
    } else {
        format!("{s:.1}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_contract() {
        assert_eq!(Error::Usage("x".into()).exit_code(), 2);
        assert_eq!(Error::Failed("x".into()).exit_code(), 1);
        assert_eq!(Error::Timeout(Duration::from_secs(1)).exit_code(), 124);
        assert_eq!(Error::Busy("x".into()).exit_code(), 75);
        assert_eq!(Error::Interrupted("SIGINT").exit_code(), 130);
        assert_eq!(Error::Interrupted("SIGTERM").exit_code(), 143);
        assert_eq!(Error::Interrupted("SIGHUP").exit_code(), 129);
        assert_eq!(Error::Interrupted("SIGQUIT").exit_code(), 131);
        assert_eq!(Error::Interrupted("SIGPIPE").exit_code(), 141);
    }

    #[test]
    fn seconds_are_short() {
        assert_eq!(fmt_secs(Duration::from_millis(2000)), "2s");
        assert_eq!(fmt_secs(Duration::from_millis(2340)), "2.3s");
    }
}
