//! Cancel-aware waits without script types: what a library needs to block
//! on a future or sleep from the script thread while the run may be
//! stopped (deadline or signal). [`Scope`] is the runtime and the
//! cancellation token of the run's current phase; the run's context
//! (`context.rs`) hands one to each library call.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::error::{fmt_secs, PrimError};
use crate::logging::LogFormat;

/// The run was cancelled (deadline or signal) while waiting. A binding
/// turns it into the error that stops the script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cancelled;

/// Where a Rhai-free wait runs and what stops it: a runtime handle and the
/// cancellation token of the run's current phase (a clone: a guarded
/// rollback swaps in a fresh token for later calls, this one keeps its own).
#[derive(Clone)]
pub struct Scope {
    /// The tokio runtime the futures run on.
    pub rt: tokio::runtime::Handle,
    /// Fired on deadline or signal.
    pub token: CancellationToken,
}

/// The message of a call that did not answer within its bound; `hint`
/// when the bound is the primitive's `timeout` option.
pub fn no_answer(what: &str, timeout: Duration, hint: bool) -> PrimError {
    let hint = if hint {
        " (the call's timeout; raise it with the `timeout` option)"
    } else {
        ""
    };
    PrimError::fatal(format!(
        "{what}: no answer within {}{hint}",
        fmt_secs(timeout)
    ))
}

impl Scope {
    /// A scope on `rt` stopped by `token`.
    pub fn new(rt: tokio::runtime::Handle, token: CancellationToken) -> Scope {
        Scope { rt, token }
    }

    /// Run `fut` within `budget`: `None` when the budget ran out,
    /// [`Cancelled`] on cancellation. The one place the cancel/timeout
    /// race is written.
    pub fn race<T>(
        &self,
        budget: Duration,
        fut: impl Future<Output = T>,
    ) -> Result<Option<T>, Cancelled> {
        let cancel = self.token.clone();
        if cancel.is_cancelled() {
            return Err(Cancelled);
        }
        let outcome = self.rt.block_on(async move {
            tokio::select! {
                _ = cancel.cancelled() => None,
                r = tokio::time::timeout(budget, fut) => Some(r.ok()),
            }
        });
        outcome.ok_or(Cancelled)
    }

    /// A call bounded by `timeout` (no option sets it): `Err` when the run
    /// was cancelled, `Ok(Err)` when the call failed or timed out; `what`
    /// names the call in the message.
    pub fn call<T, E: Into<PrimError>>(
        &self,
        what: &str,
        timeout: Duration,
        fut: impl Future<Output = Result<T, E>>,
    ) -> Result<Result<T, PrimError>, Cancelled> {
        Ok(match self.race(timeout, fut)? {
            None => Err(no_answer(what, timeout, false)),
            Some(r) => r.map_err(Into::into),
        })
    }

    /// Sleep `d`, waking early on cancellation.
    pub fn pause(&self, d: Duration) -> Result<(), Cancelled> {
        self.wait(d, None)
    }

    /// Sleep like [`Scope::pause`]; on a person's terminal (see
    /// [`crate::progress`], in `format`) show a progress line with the
    /// label meanwhile.
    pub fn wait(&self, d: Duration, label: Option<(&str, LogFormat)>) -> Result<(), Cancelled> {
        let cancel = self.token.clone();
        // Cleared when the wait ends, however it ends.
        let _line = label
            .filter(|_| d >= Duration::from_millis(300))
            .map(|(l, format)| {
                crate::progress::Line::start(
                    format,
                    &format!("{l}: next try in {}", fmt_secs(d)),
                    None,
                )
            });
        let cancelled = self.rt.block_on(async move {
            tokio::select! {
                _ = cancel.cancelled() => true,
                _ = tokio::time::sleep(d) => false,
            }
        });
        if cancelled {
            Err(Cancelled)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        // A worker thread drives the timers (a handle of a current-thread
        // runtime cannot).
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    }

    /// A bound no option sets (the lock's, `git_sha`'s) does not name the
    /// `timeout` option.
    #[test]
    fn a_call_times_out_without_the_option_hint() {
        let rt = rt();
        let s = Scope::new(rt.handle().clone(), CancellationToken::new());
        let never = || std::future::pending::<Result<(), PrimError>>();
        let err = s
            .call("lock", Duration::from_millis(20), never())
            .unwrap()
            .unwrap_err()
            .msg;
        assert!(err.starts_with("lock: no answer within"), "{err}");
        assert!(!err.contains("`timeout` option"), "{err}");
    }

    /// A cancelled scope answers at once, and a sleep wakes on cancel.
    #[test]
    fn cancellation_ends_races_and_sleeps() {
        let rt = rt();
        let token = CancellationToken::new();
        let s = Scope::new(rt.handle().clone(), token.clone());
        let t = token.clone();
        rt.spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            t.cancel();
        });
        let started = std::time::Instant::now();
        assert_eq!(s.pause(Duration::from_secs(30)), Err(Cancelled));
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(s.race(Duration::from_secs(30), async { 1 }), Err(Cancelled));
    }
}
