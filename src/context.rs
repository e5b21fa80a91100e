//! The run's shared state: dry-run flag, cancellation, deadlines, the HTTP
//! client, the Kubernetes clients, the exec allow-list, and what the run promised to write
//! (outputs, summaries, artifacts) so a failed run can take it back.
//!
//! `Ctx` composes the libraries' pieces; no library takes it. A binding
//! hands each library what it uses: [`Ctx::scope`] (runtime and
//! cancellation) to waits and locks, [`Ctx::exec_env`] to the programs it
//! runs, [`Ctx::ledger_facts`] to the ledger, a client, the locks.

use parking_lot::Mutex;
use std::collections::HashSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rhai::{EvalAltResult, Position};
use tokio_util::sync::CancellationToken;

use crate::logging::{LogFormat, Sink};

/// Why the run was stopped from outside the script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelReason {
    /// The whole-run deadline passed.
    Timeout(Duration),
    /// A signal arrived ("SIGINT" or "SIGTERM").
    Signal(&'static str),
}

/// Programs `exec` may run when the run adds none of its own.
pub const DEFAULT_ALLOW: &[&str] = &[
    "terraform",
    "provider-services",
    "helm",
    "kubectl",
    "minikube",
    "git",
];

/// Settings a run starts with.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Read for real, change nothing.
    pub dry_run: bool,
    /// The log format in use.
    pub format: LogFormat,
    /// Programs `exec` may run.
    pub allow: Vec<String>,
    /// Default bound of one primitive call.
    pub call_timeout: Duration,
    /// The working directory: artifacts may only be written below it.
    pub workdir: PathBuf,
    /// The playbook being run (for messages and imports).
    pub playbook: PathBuf,
    /// `exec` may use a `cwd` outside the working directory
    /// (`--allow-cwd-outside`).
    pub allow_cwd_outside: bool,
}

impl Settings {
    /// Settings for a run of `playbook` from the current directory.
    pub fn new(playbook: &Path, format: LogFormat) -> Settings {
        let mut allow: Vec<String> = DEFAULT_ALLOW.iter().map(|s| s.to_string()).collect();
        if let Ok(extra) = std::env::var("RUNBOOK_ALLOW") {
            allow.extend(
                extra
                    .split([',', ' '])
                    .filter(|s| !s.is_empty())
                    .map(String::from),
            );
        }
        Settings {
            dry_run: false,
            format,
            allow,
            call_timeout: Duration::from_secs(600),
            workdir: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            playbook: playbook.to_path_buf(),
            allow_cwd_outside: false,
        }
    }
}

/// The run's one HTTP client (one connection pool), built on first use:
/// loading the system's root certificates costs milliseconds that a
/// playbook that makes no request should not pay.
pub struct LazyClient {
    cell: std::sync::OnceLock<reqwest::Client>,
    /// Only same-origin redirects (for clients carrying a credential
    /// header reqwest does not strip on a cross-origin redirect).
    same_origin: bool,
}

impl LazyClient {
    fn new(same_origin: bool) -> LazyClient {
        LazyClient {
            cell: std::sync::OnceLock::new(),
            same_origin,
        }
    }
}

impl std::ops::Deref for LazyClient {
    type Target = reqwest::Client;
    fn deref(&self) -> &reqwest::Client {
        self.cell.get_or_init(|| {
            // The default policy follows up to 10 redirects and drops
            // Authorization, Cookie and Proxy-Authorization when one leads
            // to another origin (scheme, host or port): registry blobs may
            // go to a CDN, without the registry's credential.
            let redirects = || {
                if self.same_origin {
                    crate::net::same_origin_redirects()
                } else {
                    reqwest::redirect::Policy::limited(crate::net::MAX_REDIRECTS)
                }
            };
            reqwest::Client::builder()
                .redirect(redirects())
                .connect_timeout(Duration::from_secs(10))
                .pool_idle_timeout(Duration::from_secs(30))
                .user_agent(concat!("runbook/", env!("CARGO_PKG_VERSION")))
                .build()
                // The fallback keeps the redirect policy: it is the
                // credential rule, not a tuning knob.
                .or_else(|_| reqwest::Client::builder().redirect(redirects()).build())
                .unwrap_or_else(|_| reqwest::Client::new())
        })
    }
}

/// Shared state of one run. Primitives hold it through an `Arc`.
pub struct Ctx {
    /// The run's settings.
    pub settings: Settings,
    /// The tokio runtime the primitives run on.
    pub rt: tokio::runtime::Handle,
    /// Fired on deadline or signal; every primitive watches it. A guarded
    /// deploy swaps in a fresh one for its rollback (see [`Ctx::rearm`]).
    token: Mutex<CancellationToken>,
    reason: Mutex<Option<CancelReason>>,
    /// When the whole run must end (`--timeout`), if it has a deadline.
    deadline: Mutex<Option<std::time::Instant>>,
    /// The guarded deploy in progress and the run's guarded outcome.
    pub shield: crate::gates::Shield,
    /// One HTTP client (one connection pool) for the whole run. Follows
    /// redirects; reqwest drops `Authorization` and cookies on the way to
    /// another origin.
    pub http: LazyClient,
    /// The client for APIs keyed by a header of their own (the Akash
    /// Console's `x-api-key`): a redirect to another origin is an error, so
    /// the key never leaves its host.
    pub http_same_origin: LazyClient,
    /// Registry tokens and challenges, per repository, for this run.
    pub registry_auth: crate::oci::TokenCache,
    /// Where log lines go.
    pub sink: Sink,
    /// Outputs set by the playbook, written to `$GITHUB_OUTPUT` on success.
    pub outputs: Mutex<Vec<(String, String)>>,
    /// Markdown appended to `$GITHUB_STEP_SUMMARY` at the end.
    pub summaries: Mutex<Vec<String>>,
    /// Files this run wrote, relative to the working directory; removed
    /// again (beneath it) if the run fails.
    pub artifacts: Mutex<Vec<PathBuf>>,
    /// Every file this run wrote, `keep_on_failure` ones included: what
    /// `runbook test` reports as the run's artifacts (those still there).
    pub written: Mutex<Vec<PathBuf>>,
    /// Process groups of running children, killed on cancel.
    pub children: Arc<crate::process::Groups>,
    /// Target locks held, and the mutation gate (see [`Ctx::guard_mutation`]).
    pub locks: crate::lock::Locks,
    /// Fields `ledger_note` added to this run's ledger record.
    pub ledger_notes: Mutex<serde_json::Map<String, serde_json::Value>>,
    /// The Kubernetes clients this run made, one per context: the
    /// kubeconfig read once and one connection pool, for this run only.
    pub kube: crate::kube::Clients,
}

/// A primitive's result as Rhai sees it.
pub type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

/// A primitive's error: the message is redacted before Rhai sees it.
pub fn error(msg: impl AsRef<str>) -> Box<EvalAltResult> {
    let msg = crate::redact::redact(msg.as_ref()).into_owned();
    EvalAltResult::ErrorRuntime(msg.into(), Position::NONE).into()
}

/// The error that stops a script for good (not catchable by `try`).
pub fn terminated() -> Box<EvalAltResult> {
    EvalAltResult::ErrorTerminated("cancelled".into(), Position::NONE).into()
}

pub use crate::process::cancel::{Cancelled, Scope};

impl From<Cancelled> for Box<EvalAltResult> {
    fn from(_: Cancelled) -> Self {
        terminated()
    }
}

impl Ctx {
    /// A new context on the given runtime.
    pub fn new(settings: Settings, rt: tokio::runtime::Handle) -> Arc<Ctx> {
        Arc::new(Ctx {
            sink: Sink::for_format(settings.format),
            settings,
            rt,
            token: Mutex::new(CancellationToken::new()),
            reason: Mutex::new(None),
            deadline: Mutex::new(None),
            shield: crate::gates::Shield::default(),
            http: LazyClient::new(false),
            http_same_origin: LazyClient::new(true),
            registry_auth: crate::oci::TokenCache::default(),
            outputs: Mutex::new(Vec::new()),
            summaries: Mutex::new(Vec::new()),
            artifacts: Mutex::new(Vec::new()),
            written: Mutex::new(Vec::new()),
            children: Arc::new(Mutex::new(HashSet::new())),
            locks: crate::lock::Locks::default(),
            ledger_notes: Mutex::new(serde_json::Map::new()),
            kube: crate::kube::Clients::default(),
        })
    }

    /// Whether this is a dry run.
    pub fn dry_run(&self) -> bool {
        self.settings.dry_run
    }

    /// The one gate every primitive that changes the world passes right
    /// before acting: refuses once a held lock was lost (no mutation after
    /// its renew deadline), logs the fencing tokens, counts the mutation
    /// for the ledger.
    pub fn guard_mutation(&self, primitive: &str) -> RhaiResult<()> {
        self.locks
            .guard(primitive)
            .map_err(|e| error(e.to_string()))
    }

    /// Stop the run: the script ends at its next operation, the primitive in
    /// flight is aborted and child process groups are killed. While a
    /// guarded rollback runs, only the reason is kept: the run ends after
    /// the rollback (a second stop, `cancel_hard`, cuts it).
    pub fn cancel(&self, reason: CancelReason) {
        {
            let mut r = self.reason.lock();
            if r.is_none() {
                *r = Some(reason);
            }
        }
        if self.shield.is_rolling_back() {
            return;
        }
        self.token().cancel();
        self.kill_children();
    }

    /// The cancellation token of the current phase (a clone: cancelling
    /// it stops what watches it now).
    pub fn token(&self) -> CancellationToken {
        self.token.lock().clone()
    }

    /// Whether the current phase was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.token().is_cancelled()
    }

    /// A fresh token for a rollback that must run after a stop: `false`
    /// (and nothing changes) once a second stop hardened the shield.
    pub fn rearm(&self) -> bool {
        if self.shield.is_hard() {
            return false;
        }
        *self.token.lock() = CancellationToken::new();
        true
    }

    /// A second stop during a guarded deploy: the rollback stops too.
    pub fn cancel_hard(&self) {
        self.shield.harden();
        self.token().cancel();
        self.kill_children();
    }

    /// Set when the whole run must end (the runner does, from `--timeout`).
    pub fn set_deadline(&self, at: std::time::Instant) {
        *self.deadline.lock() = Some(at);
    }

    /// When the whole run must end, if it has a deadline.
    pub fn deadline(&self) -> Option<std::time::Instant> {
        *self.deadline.lock()
    }

    /// Why the run was cancelled, if it was.
    pub fn cancel_reason(&self) -> Option<CancelReason> {
        *self.reason.lock()
    }

    /// SIGKILL every child process group still registered.
    pub fn kill_children(&self) {
        let pgids: Vec<i32> = self.children.lock().drain().collect();
        for pgid in pgids {
            crate::process::kill_group(pgid);
        }
    }

    /// Run `fut` to completion from the script thread, bounded by `timeout`
    /// (the primitive's `timeout` option, which the message names) and by
    /// the run's cancellation. `what` names the call in the message.
    pub fn block_on<T, E: Into<crate::error::PrimError>>(
        &self,
        what: &str,
        timeout: Duration,
        fut: impl Future<Output = Result<T, E>>,
    ) -> RhaiResult<T> {
        Ok(match self.scope().race(timeout, fut)? {
            None => Err(crate::process::cancel::no_answer(what, timeout, true)),
            Some(r) => r.map_err(Into::into),
        }?)
    }

    /// [`Ctx::block_on`] without script types, for a bound no option sets:
    /// `Err` when the run was cancelled, `Ok(Err)` when the call failed or
    /// timed out.
    pub fn call<T, E: Into<crate::error::PrimError>>(
        &self,
        what: &str,
        timeout: Duration,
        fut: impl Future<Output = Result<T, E>>,
    ) -> Result<Result<T, crate::error::PrimError>, Cancelled> {
        self.scope().call(what, timeout, fut)
    }

    /// Run `fut` from the script thread within `budget`: `None` when the
    /// budget ran out, an error (the script stops) on cancellation.
    pub fn bounded<T>(
        &self,
        budget: Duration,
        fut: impl Future<Output = T>,
    ) -> RhaiResult<Option<T>> {
        Ok(self.scope().race(budget, fut)?)
    }

    /// The runtime and the current phase's cancellation token: what a
    /// library's waits need (a snapshot: a later [`Ctx::rearm`] does not
    /// change it).
    pub fn scope(&self) -> Scope {
        Scope::new(self.rt.clone(), self.token())
    }

    /// Sleep on the script thread, waking early on cancellation.
    pub fn sleep(&self, d: Duration) -> RhaiResult<()> {
        self.wait(d, None)
    }

    /// Sleep like [`Ctx::sleep`]; on a person's terminal (see
    /// [`crate::progress`]) show a progress line with `label` meanwhile.
    pub fn wait(&self, d: Duration, label: Option<&str>) -> RhaiResult<()> {
        let label = label.map(|l| (l, self.settings.format));
        Ok(self.scope().wait(d, label)?)
    }

    /// What running a program needs (see [`crate::process::exec::run`]).
    pub fn exec_env(&self) -> crate::process::exec::Env {
        crate::process::exec::Env {
            allow: self.settings.allow.clone(),
            workdir: self.settings.workdir.clone(),
            allow_cwd_outside: self.settings.allow_cwd_outside,
            children: self.children.clone(),
            format: self.settings.format,
            sink: self.sink,
        }
    }

    /// What the ledger records of this run (see [`crate::ledger::RunFacts`]).
    pub fn ledger_facts(&self) -> crate::ledger::RunFacts<'_> {
        crate::ledger::RunFacts {
            playbook: &self.settings.playbook,
            workdir: &self.settings.workdir,
            dry_run: self.dry_run(),
            locks: &self.locks,
            notes: &self.ledger_notes,
            guarded: self.shield.outcome().map(|o| o.ledger_result()),
            rt: &self.rt,
        }
    }

    /// Resolve a path the playbook gave, relative to the working directory.
    pub fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.settings.workdir.join(p)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bound set by a primitive's `timeout` option says how to raise it;
    /// a bound no option sets (the lock's, `git_sha`'s) does not.
    #[test]
    fn a_timeout_names_the_option_only_when_there_is_one() {
        // A worker thread drives the timers (a handle of a current-thread
        // runtime cannot).
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let settings = Settings::new(Path::new("t.rhai"), crate::logging::LogFormat::Json);
        let ctx = Ctx::new(settings, rt.handle().clone());
        let never = || std::future::pending::<Result<(), crate::error::PrimError>>();
        let short = Duration::from_millis(20);
        let err = ctx.block_on("x", short, never()).unwrap_err().to_string();
        assert!(err.contains("x: no answer within"), "{err}");
        assert!(err.contains("raise it with the `timeout` option"), "{err}");
        let err = ctx.call("lock", short, never()).unwrap().unwrap_err().msg;
        assert!(err.starts_with("lock: no answer within"), "{err}");
        assert!(!err.contains("`timeout` option"), "{err}");
    }
}
