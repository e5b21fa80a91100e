//! The one error type of the runtime, and the exit code each kind maps to.
//! An [`Error`] says its kind (the variant) and how it is shown; one
//! renderer, [`Error::render`], turns it into the text `main` prints, and
//! [`Error::exit_code`] into the exit code. Nobody reads the text to decide.

use std::time::Duration;

/// The exit code of a busy target lock (sysexits' EX_TEMPFAIL: retry
/// later), and of a run whose lock was lost or broken before a change.
pub const BUSY_EXIT: i32 = 75;

/// Everything that can end a run early. Each variant maps to one documented
/// exit code (see the README's table). The text of a plain variant is a
/// message the renderer prefixes with `error: `; a report already written
/// in full (its own `error:` line, location and caret) is wrapped in
/// [`Error::Reported`], and one already on the screen in [`Error::Shown`].
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
    /// A health gate failed after the deploy and the rollback succeeded:
    /// exit 3.
    #[error("{0}")]
    RolledBack(String),
    /// A health gate failed and the rollback failed too: exit 4.
    #[error("{0}")]
    RollbackFailed(String),
    /// The gates were inconclusive and the new version was held, marked
    /// unverified: exit 5.
    #[error("{0}")]
    Unverified(String),
    /// A full report (`error: …`, `--> file:line:col`, the caret): printed
    /// as it is, with the exit code of the error inside.
    #[error("{0}")]
    Reported(Box<Error>),
    /// Already shown to the user (`runbook test`'s lines end in its count):
    /// nothing more is printed, the exit code is the inner error's.
    #[error("{0}")]
    Shown(Box<Error>),
}

impl Error {
    /// The process exit code for this error (the contract in DESIGN.md).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 2,
            Error::Failed(_) => 1,
            Error::Timeout(_) => 124,
            Error::Busy(_) => BUSY_EXIT,
            Error::Interrupted(sig) => 128 + signal_number(sig),
            Error::RolledBack(_) => 3,
            Error::RollbackFailed(_) => 4,
            Error::Unverified(_) => 5,
            Error::Reported(e) | Error::Shown(e) => e.exit_code(),
        }
    }

    /// This error, its text a full report that is printed as it is.
    pub fn reported(self) -> Error {
        match self {
            e @ (Error::Reported(_) | Error::Shown(_)) => e,
            e => Error::Reported(Box::new(e)),
        }
    }

    /// This error, already shown: only its exit code is left to give.
    pub fn shown(self) -> Error {
        match self {
            e @ Error::Shown(_) => e,
            e => Error::Shown(Box::new(e)),
        }
    }

    /// The one renderer: the text to print on stderr, or `None` when there
    /// is nothing to print (already shown, or stdout closed under us: the
    /// reader is gone and so may be the terminal).
    pub fn render(&self) -> Option<String> {
        match self {
            Error::Shown(_) | Error::Interrupted("SIGPIPE") => None,
            Error::Reported(e) => Some(e.to_string().trim_end().to_string()),
            e => Some(format!("error: {}", e.to_string().trim_end())),
        }
    }
}

/// What kind of failure a primitive met. The retry loop reads this, never
/// the message's text; every kind fails the run with exit 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Worth another try: a refused or reset connection, a timeout, a 5xx
    /// or 429 answer.
    Transient,
    /// Retrying cannot fix it: a 4xx answer, a bad signature, a failed child.
    Fatal,
    /// The caller gave something wrong (an option, a reference): never
    /// retried. Still a primitive's error, so the run exits 1; exit 2 is
    /// for the command line and `fail_usage`.
    Usage,
}

/// A primitive's (or a domain library's) error: its kind and its message.
/// Libraries return it; bindings hand it to Rhai with `?` (see
/// `From<PrimError> for Box<EvalAltResult>`), redacted on the way.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{msg}")]
pub struct PrimError {
    /// Transient, fatal or usage.
    pub kind: Kind,
    /// What happened and, where there is one, the fix.
    pub msg: String,
    /// How long the other side asked us to wait before trying again (an
    /// HTTP `Retry-After`); the retry schedule honours it, within its bound.
    pub retry_after: Option<Duration>,
}

impl PrimError {
    /// A failure worth retrying.
    pub fn transient(msg: impl Into<String>) -> Self {
        PrimError {
            kind: Kind::Transient,
            msg: msg.into(),
            retry_after: None,
        }
    }

    /// A failure retrying cannot fix.
    pub fn fatal(msg: impl Into<String>) -> Self {
        PrimError {
            kind: Kind::Fatal,
            msg: msg.into(),
            retry_after: None,
        }
    }

    /// A mistake of the caller's (never retried).
    pub fn usage(msg: impl Into<String>) -> Self {
        PrimError {
            kind: Kind::Usage,
            msg: msg.into(),
            retry_after: None,
        }
    }

    /// Whether another try may succeed.
    pub fn is_transient(&self) -> bool {
        self.kind == Kind::Transient
    }

    /// The same error with `prefix: ` in front, unless the message already
    /// starts with it (errors pass through several layers).
    pub fn prefixed(mut self, prefix: &str) -> Self {
        if !self.msg.starts_with(prefix) || !self.msg[prefix.len()..].starts_with(':') {
            self.msg = format!("{prefix}: {}", self.msg);
        }
        self
    }

    /// The same error, asking the retry loop to wait `d` before the next try.
    pub fn after(mut self, d: Option<Duration>) -> Self {
        self.retry_after = d;
        self
    }

    /// The same error, its message rewritten (the kind kept).
    pub fn map_msg(mut self, f: impl FnOnce(String) -> String) -> Self {
        self.msg = f(self.msg);
        self
    }
}

impl From<String> for PrimError {
    fn from(msg: String) -> Self {
        PrimError::fatal(msg)
    }
}

impl From<&str> for PrimError {
    fn from(msg: &str) -> Self {
        PrimError::fatal(msg)
    }
}

/// The tag `fail_usage`'s message carries into the script: the run exits
/// 2. A tagged string reads as
/// its message in a `catch` like every other error, and `report` tells it
/// apart without reading the text.
pub const USAGE_TAG: i32 = 0x5553;

/// A thrown value that is a usage error: its message.
pub fn usage_message(v: &rhai::Dynamic) -> Option<String> {
    (v.tag() == USAGE_TAG && v.is_string()).then(|| v.to_string())
}

/// A usage error's thrown value.
pub fn usage_value(msg: String) -> rhai::Dynamic {
    let mut d: rhai::Dynamic = msg.into();
    d.set_tag(USAGE_TAG);
    d
}

impl From<PrimError> for Box<rhai::EvalAltResult> {
    /// Redacted on the way: nothing a primitive says reaches the script,
    /// the log or the report with a secret in it.
    fn from(e: PrimError) -> Self {
        let msg = crate::redact::redact(&e.msg).into_owned();
        rhai::EvalAltResult::ErrorRuntime(msg.into(), rhai::Position::NONE).into()
    }
}

/// The value `lock` throws when the lock is busy: the run exits
/// [`BUSY_EXIT`]. A type of its own so `report` and the exit
/// code tell it apart without reading the text.
#[derive(Clone, Debug)]
pub struct BusyError(pub String);

impl std::fmt::Display for BusyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A test's stub closure failed (not by `throw`, which acts as the
/// primitive's error): where, in the test file's terms, so the report
/// names the test file and line rather than only the playbook's call.
#[derive(Clone, Debug)]
pub struct StubFailure {
    /// The stubbed primitive (filled in by the sandbox, which knows it).
    pub stub: String,
    /// What went wrong, with its hint.
    pub message: String,
    /// `file:line:col` in the test file.
    pub at: String,
    /// The `-->` line, the caret and the calls inside the test file.
    pub detail: String,
}

impl std::fmt::Display for StubFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the stub of {} failed", self.stub)?;
        if !self.at.is_empty() {
            write!(f, " at {}", self.at)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Whether a script error is (or wraps) a [`BusyError`].
pub fn is_busy(err: &rhai::EvalAltResult) -> bool {
    thrown_value(err).is_some_and(|v| v.is::<BusyError>())
}

/// The value the innermost `throw` carried (through function calls and
/// modules): where the busy error and the usage tag are read.
pub fn thrown_value(err: &rhai::EvalAltResult) -> Option<&rhai::Dynamic> {
    use rhai::EvalAltResult as E;
    match err {
        E::ErrorInFunctionCall(_, _, inner, _) | E::ErrorInModule(_, inner, _) => {
            thrown_value(inner)
        }
        E::ErrorRuntime(v, _) => Some(v),
        _ => None,
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

/// A time as RFC 3339 UTC, whole seconds.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// RFC 3339 of Unix seconds.
pub fn rfc3339_secs(secs: u64) -> String {
    rfc3339(std::time::UNIX_EPOCH + Duration::from_secs(secs))
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
    use std::time::UNIX_EPOCH;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_795_439_085)),
            "2026-11-23T13:04:45Z"
        );
    }

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
        assert_eq!(Error::Busy("x".into()).reported().exit_code(), 75);
        assert_eq!(Error::Failed(String::new()).shown().exit_code(), 1);
    }

    #[test]
    fn one_renderer_prefixes_messages_and_keeps_reports() {
        assert_eq!(
            Error::Usage("no playbook".into()).render().as_deref(),
            Some("error: no playbook")
        );
        let report = "error: boom\n  --> pb.rhai:1:1\n";
        assert_eq!(
            Error::Failed(report.into()).reported().render().as_deref(),
            Some(report.trim_end())
        );
        // A message that happens to start with "error" is still prefixed.
        assert_eq!(
            Error::Usage("errors in PARAMS".into()).render().as_deref(),
            Some("error: errors in PARAMS")
        );
        assert_eq!(Error::Failed(String::new()).shown().render(), None);
        assert_eq!(Error::Interrupted("SIGPIPE").render(), None);
    }

    #[test]
    fn prefixes_are_not_doubled() {
        let e = PrimError::transient("x: refused").prefixed("x");
        assert_eq!(e.msg, "x: refused");
        assert_eq!(e.kind, Kind::Transient);
        let e = PrimError::fatal("xy: refused").prefixed("x");
        assert_eq!(e.msg, "x: xy: refused");
    }

    #[test]
    fn every_kind_reaches_rhai_as_plain_text_and_only_usage_value_is_tagged() {
        for e in [
            PrimError::usage("bad option"),
            PrimError::transient("refused"),
            PrimError::fatal("denied"),
        ] {
            let r: Box<rhai::EvalAltResult> = e.into();
            match *r {
                rhai::EvalAltResult::ErrorRuntime(v, _) => {
                    assert!(v.is_string() && usage_message(&v).is_none(), "{v}")
                }
                other => panic!("{other:?}"),
            }
        }
        let v = usage_value("give --n".into());
        assert_eq!(usage_message(&v).as_deref(), Some("give --n"));
    }

    #[test]
    fn seconds_are_short() {
        assert_eq!(fmt_secs(Duration::from_millis(2000)), "2s");
        assert_eq!(fmt_secs(Duration::from_millis(2340)), "2.3s");
    }
}
