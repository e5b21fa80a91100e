//! Target locks: one run at a time changes a target. A lock is held for the
//! rest of the run (or until `unlock`), renewed in the background every
//! ttl/3, and released at the run's end whatever the outcome. Each
//! acquisition gets a fencing token that only grows per lock name; every
//! primitive that changes the world passes [`Locks::guard`] first, which
//! refuses once a lock was lost (its renew deadline passed, or it was
//! broken), so a holder never acts after it lost the lock.
//!
//! Backends: [`mod@file`] (an OS lock on a file in the state folder: a killed
//! holder releases it at once), [`kube`] (a `coordination.k8s.io/v1`
//! Lease) and [`github`] (a Git ref in the workflow's repository, moved
//! only by fast-forwards).
//!
//! No script types here: the backends answer [`Taken`] or [`LockError`],
//! and the `lock` primitive (`primitives/lock.rs`) turns those into the
//! script's map and errors.

pub mod file;
mod gate;
pub mod github;
pub mod kube;
pub mod state;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The exit code of a run that could not get a lock in time (declared
/// with the error kinds, which the lock library sits above).
pub use crate::error::BUSY_EXIT;

/// Default time a lock lives without renewal.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);

/// Who holds a lock and for what run: written into the lock file, the
/// Lease's annotations or the lock ref's commit, shown by `lock status` and in "busy" errors.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct HolderInfo {
    /// The identity, `actor@host:pid`.
    pub holder: String,
    /// The playbook the holder runs.
    #[serde(default)]
    pub playbook: String,
    /// Who started the run (`GITHUB_ACTOR`, else `USER`).
    #[serde(default)]
    pub actor: String,
    /// The CI run's URL, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_url: Option<String>,
    /// The git SHA of the run (`GITHUB_SHA`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_sha: Option<String>,
    /// The host the holder runs on.
    #[serde(default)]
    pub host: String,
    /// The holder's process id.
    #[serde(default)]
    pub pid: u32,
    /// When it took the lock, Unix seconds.
    #[serde(default)]
    pub since: u64,
}

impl HolderInfo {
    /// This process, running `playbook`.
    pub fn current(playbook: &str) -> HolderInfo {
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "unknown-host".into());
        let actor = actor();
        let pid = std::process::id();
        HolderInfo {
            holder: format!("{actor}@{host}:{pid}"),
            playbook: playbook.to_string(),
            actor,
            run_url: run_url(),
            git_sha: std::env::var("GITHUB_SHA").ok().filter(|s| !s.is_empty()),
            host,
            pid,
            since: unix_now(),
        }
    }

    /// One line for messages: holder, playbook, run URL, how long held.
    pub fn describe(&self) -> String {
        let held = unix_now().saturating_sub(self.since);
        let mut s = self.holder.clone();
        if !self.playbook.is_empty() {
            s.push_str(&format!(" (playbook {})", self.playbook));
        }
        if let Some(u) = &self.run_url {
            s.push_str(&format!(", run {u}"));
        }
        s.push_str(&format!(
            ", held for {}",
            crate::error::fmt_secs(Duration::from_secs(held))
        ));
        s
    }
}

/// Who runs this: `GITHUB_ACTOR`, else `USER`, else "unknown".
pub fn actor() -> String {
    ["GITHUB_ACTOR", "USER"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "unknown".into())
}

/// The CI run's URL: `GITHUB_SERVER_URL/GITHUB_REPOSITORY/actions/runs/GITHUB_RUN_ID`
/// when all three are set.
pub fn run_url() -> Option<String> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    Some(format!(
        "{}/{}/actions/runs/{}",
        get("GITHUB_SERVER_URL")?.trim_end_matches('/'),
        get("GITHUB_REPOSITORY")?,
        get("GITHUB_RUN_ID")?
    ))
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub use crate::error::rfc3339_secs;

/// The run's state folder: `RUNBOOK_STATE_DIR`, else `.runbook/` in the
/// working directory.
pub fn state_dir(workdir: &Path) -> PathBuf {
    match std::env::var_os("RUNBOOK_STATE_DIR").filter(|v| !v.is_empty()) {
        Some(d) => {
            let d = PathBuf::from(d);
            if d.is_absolute() {
                d
            } else {
                workdir.join(d)
            }
        }
        None => workdir.join(".runbook"),
    }
}

/// A lock name: lowercase letters, digits, '-' and '.', starting with a
/// letter or digit, at most 53 characters (so `runbook-<name>` is a valid
/// Kubernetes object name and a safe file name).
pub fn check_name(name: &str) -> Result<(), Invalid> {
    let ok = !name.is_empty()
        && name.len() <= NAME_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && !name.ends_with(['-', '.']);
    if ok {
        Ok(())
    } else {
        Err(Invalid::Name(name.to_string()))
    }
}

/// A lock request that no backend is asked about, or a fencing counter
/// that cannot grow: what the name, backend and token checks refuse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invalid {
    /// Not a valid lock name (see [`check_name`]).
    Name(String),
    /// Not one of the backends (the `backend` option or
    /// `RUNBOOK_LOCK_BACKEND`).
    Backend(String),
    /// The fencing token is at the largest value `place` can hold.
    TokenAtMax {
        /// The lock's name.
        name: String,
        /// The token it is at.
        prev: u64,
        /// Where the counter lives, for the fix ("the lock file …").
        place: String,
    },
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Invalid::Name(name) => write!(
                f,
                "'{name}' is not a valid lock name: use 1–53 lowercase letters, digits, '-' or '.', starting and ending with a letter or digit (e.g. \"akash-1001\"); `lock(…)`, `runbook lock` and `runbook history` derive such a name from any other target"
            ),
            Invalid::Backend(other) => write!(
                f,
                "lock backend '{other}' is not one of \"file\", \"kube\", \"github\" (option `backend` or RUNBOOK_LOCK_BACKEND)"
            ),
            Invalid::TokenAtMax { name, prev, place } => write!(
                f,
                "the fencing token of lock '{name}' is at its maximum ({prev}) and cannot grow, so no new holder could be told apart from the last; delete {place} to reset the counter once no run holds it"
            ),
        }
    }
}

impl std::error::Error for Invalid {}

/// For the backends' messages, which are still text.
impl From<Invalid> for String {
    fn from(e: Invalid) -> String {
        e.to_string()
    }
}

/// The lock name of any target string, e.g. an image reference
/// (`ghcr.io/acme/app`, `127.0.0.1:5055/acme/app`). A valid name (see
/// [`check_name`]) is itself, so existing locks and ledgers keep theirs.
/// Anything else becomes a slug — lowercase, each run of other characters
/// one `-`, trimmed to 44 characters — then `-` and the first 8 hex digits
/// of the SHA-256 of the whole input: readable, deterministic, and two
/// targets that slug alike (`App` and `app`) still get different names.
pub fn name_for(target: &str) -> String {
    if check_name(target).is_ok() {
        return target.to_string();
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(target.as_bytes());
    let hash: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    let mut slug = String::new();
    for c in target.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' {
            slug.push(c);
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    // Room for "-" + 8 hex within the 53 characters a name may have.
    let slug: String = slug.chars().take(NAME_MAX - 9).collect();
    let slug = slug.trim_matches(['-', '.']);
    if slug.is_empty() {
        hash
    } else {
        format!("{slug}-{hash}")
    }
}

/// The longest lock name: `runbook-<name>` is then a valid Kubernetes
/// object name (63).
const NAME_MAX: usize = 53;

/// `'target'` as a lock name for messages: the name alone when they are
/// the same, else `'name' (for 'target')`.
pub fn describe_name(target: &str, name: &str) -> String {
    if target == name {
        format!("'{name}'")
    } else {
        format!("'{name}' (for '{target}')")
    }
}

/// Which backend holds a lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A lock file in the state folder.
    File,
    /// A Kubernetes Lease.
    Kube {
        /// The Lease's namespace (None: the kubeconfig's default).
        namespace: Option<String>,
        /// The kubeconfig context (None: the current one).
        context: Option<String>,
    },
    /// A Git ref `refs/runbook/locks/<name>` in `GITHUB_REPOSITORY`.
    Github,
}

impl Backend {
    /// Its name, as the `backend` option spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::File => "file",
            Backend::Kube { .. } => "kube",
            Backend::Github => "github",
        }
    }

    /// From the `backend` option, else `RUNBOOK_LOCK_BACKEND`, else file.
    pub fn parse(
        opt: Option<&str>,
        namespace: Option<String>,
        context: Option<String>,
    ) -> Result<Backend, Invalid> {
        let env = std::env::var("RUNBOOK_LOCK_BACKEND")
            .ok()
            .filter(|s| !s.is_empty());
        match opt.map(String::from).or(env).as_deref() {
            None | Some("file") => Ok(Backend::File),
            Some("kube") => Ok(Backend::Kube { namespace, context }),
            Some("github") => Ok(Backend::Github),
            Some(other) => Err(Invalid::Backend(other.to_string())),
        }
    }
}

/// A lock a run asks for.
#[derive(Clone, Copy)]
pub struct Want<'a> {
    /// The lock's name (see [`check_name`]).
    pub name: &'a str,
    /// Who asks, for the lock's record.
    pub info: &'a HolderInfo,
    /// How long it lives without renewal.
    pub ttl: Duration,
    /// How long to wait while another run holds it.
    pub wait: Duration,
}

/// A lock just taken: what the `lock` primitive reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Taken {
    /// The backend's name.
    pub backend: &'static str,
    /// The holder's identity, `actor@host:pid`.
    pub holder: String,
    /// This acquisition's fencing token.
    pub token: u64,
    /// When it expires without renewal, RFC 3339 ("" when unknown).
    pub expires: String,
}

/// Why a lock was not taken.
#[derive(Debug)]
pub enum LockError {
    /// Still held by another run after `wait`: the run exits
    /// [`BUSY_EXIT`] (see [`busy_message`]).
    Busy {
        /// Who holds it (None: its record is unreadable). Boxed: keeps
        /// the error small on the `Ok` path.
        holder: Option<Box<HolderInfo>>,
        /// How long this run waited.
        waited: Duration,
    },
    /// The run was cancelled (deadline or signal) meanwhile.
    Cancelled,
    /// The backend failed; the message is final.
    Failed(crate::error::PrimError),
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Busy { holder, waited } => {
                f.write_str(&busy_message("the lock", holder.as_deref(), *waited))
            }
            LockError::Cancelled => f.write_str("lock: cancelled (deadline or signal)"),
            LockError::Failed(e) => f.write_str(&e.msg),
        }
    }
}

impl std::error::Error for LockError {}

impl From<crate::process::cancel::Cancelled> for LockError {
    fn from(_: crate::process::cancel::Cancelled) -> Self {
        LockError::Cancelled
    }
}

impl From<crate::error::PrimError> for LockError {
    fn from(e: crate::error::PrimError) -> Self {
        LockError::Failed(e)
    }
}

/// The message of a lock still busy after `wait` (not yet redacted).
pub fn busy_message(shown: &str, holder: Option<&HolderInfo>, waited: Duration) -> String {
    let who = holder.map_or_else(
        || "another run (its record is unreadable)".into(),
        HolderInfo::describe,
    );
    format!(
        "lock: {shown} is held by {who}; waited {} (exit {BUSY_EXIT}: retry later, or give `wait` to queue for it)",
        crate::error::fmt_secs(waited),
    )
}

/// A wait for a busy lock. Every backend polls: neither `flock`, a Lease
/// nor a Git ref queues its waiters (they are not served in arrival order).
pub struct Waiter {
    name: String,
    wait: Duration,
    started: Instant,
    logged: bool,
}

impl Waiter {
    /// Start waiting up to `wait` for `name`.
    pub fn new(name: &str, wait: Duration) -> Waiter {
        Waiter {
            name: name.into(),
            wait,
            started: Instant::now(),
            logged: false,
        }
    }

    /// The lock was busy again: [`LockError::Busy`] once `wait` is spent;
    /// else say so (once) and return how long to sleep (up to `poll`)
    /// before the next try. The caller sleeps, so the sleep can be the
    /// run's cancel-aware one.
    pub fn busy_again(
        &mut self,
        holder: Option<HolderInfo>,
        poll: Duration,
    ) -> Result<Duration, LockError> {
        let name = &self.name;
        let waited = self.started.elapsed();
        if waited >= self.wait {
            return Err(LockError::Busy {
                holder: holder.map(Box::new),
                waited,
            });
        }
        if !self.logged {
            self.logged = true;
            tracing::info!(
                lock = %name,
                "lock '{name}' is busy ({}); waiting up to {}",
                holder
                    .as_ref()
                    .map_or_else(|| "holder unknown".into(), HolderInfo::describe),
                crate::error::fmt_secs(self.wait)
            );
        }
        Ok(self.wait.saturating_sub(self.started.elapsed()).min(poll))
    }
}

/// The largest fencing token any backend hands out: scripts see tokens as
/// Rhai integers (i64), so a larger one would show negative.
pub const TOKEN_MAX: u64 = i64::MAX as u64;

/// The token after `prev`, or why the lock cannot be taken: a counter at
/// `max` cannot grow, and a token that repeats would let two holders pass
/// the same fence. `max` is [`TOKEN_MAX`] or lower where the backend
/// stores less (a Lease's `leaseTransitions` is an i32).
pub fn next_token(prev: u64, max: u64, name: &str, place: &str) -> Result<u64, Invalid> {
    match prev.checked_add(1) {
        Some(t) if t <= max => Ok(t),
        _ => Err(Invalid::TokenAtMax {
            name: name.to_string(),
            prev,
            place: place.to_string(),
        }),
    }
}

// The held locks and the gate live in gate.rs.
pub use gate::{spawn_renewal, Deadline, Handle, Held, Locks, Lost, LostCause, Refused, Renewal};

/// What `lock status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The lock's name.
    pub name: String,
    /// Whether it is held now.
    pub held: bool,
    /// The (last) holder.
    pub holder: Option<HolderInfo>,
    /// When it expires without renewal, Unix seconds.
    pub expires: Option<u64>,
    /// The last fencing token handed out.
    pub token: u64,
}

impl Status {
    /// A lock nobody ever took.
    pub fn free(name: &str) -> Status {
        Status {
            name: name.into(),
            held: false,
            holder: None,
            expires: None,
            token: 0,
        }
    }

    /// Human text for `runbook lock status`.
    pub fn render(&self) -> String {
        let mut s = format!(
            "lock {}: {}\n",
            self.name,
            if self.held { "held" } else { "free" }
        );
        if let Some(h) = &self.holder {
            s.push_str(&format!(
                "  {}: {}\n",
                if self.held { "holder" } else { "last holder" },
                h.holder
            ));
            if !h.playbook.is_empty() {
                s.push_str(&format!("  playbook: {}\n", h.playbook));
            }
            if let Some(u) = &h.run_url {
                s.push_str(&format!("  run: {u}\n"));
            }
            s.push_str(&format!("  since: {}\n", rfc3339_secs(h.since)));
        }
        if self.held {
            if let Some(e) = self.expires {
                s.push_str(&format!("  expires: {}\n", rfc3339_secs(e)));
            }
        }
        s.push_str(&format!("  token: {}\n", self.token));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_names() {
        for ok in ["akash-1001", "pay2slay", "a", "rel.v1"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Akash",
            "a b",
            "-x",
            "x-",
            "a/b",
            "../x",
            &"x".repeat(54),
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn any_target_gets_a_valid_stable_name() {
        // Valid names stay as they are: existing locks and ledgers keep theirs.
        for ok in ["akash-1001", "helm-habit-tracker", "rel.v1"] {
            assert_eq!(name_for(ok), ok);
        }
        let ghcr = name_for("ghcr.io/acme/app");
        assert_eq!(
            ghcr,
            format!("ghcr.io-acme-app-{}", &ghcr[ghcr.len() - 8..])
        );
        assert_eq!(name_for("ghcr.io/acme/app"), ghcr, "deterministic");
        let local = name_for("127.0.0.1:5055/acme/app");
        assert!(local.starts_with("127.0.0.1-5055-acme-app-"), "{local}");
        // Alike slugs, different names; every name is valid.
        assert_ne!(name_for("App"), name_for("app"));
        assert!(name_for("App").starts_with("app-"));
        let long = format!("{}/", "a".repeat(100));
        for t in [
            ghcr.as_str(),
            local.as_str(),
            "App",
            "-x-",
            "///",
            "..",
            "Ünïcode target!",
            "a..b",
            long.as_str(),
            "",
        ] {
            let n = name_for(t);
            assert!(check_name(&n).is_ok(), "{t:?} -> {n:?}");
        }
        assert_eq!(name_for("///").len(), 8);
        assert_eq!(name_for(&long).len(), NAME_MAX);
        assert!(name_for(&"x/".repeat(100)).len() <= NAME_MAX);
    }

    #[test]
    fn a_waiter_says_how_long_to_sleep_then_busy() {
        let holder = HolderInfo::current("t.rhai");
        let mut w = Waiter::new("t", Duration::from_secs(5));
        let d = w
            .busy_again(Some(holder.clone()), Duration::from_millis(50))
            .unwrap();
        assert!(d <= Duration::from_millis(50), "{d:?}");
        let mut w = Waiter::new("t", Duration::ZERO);
        match w.busy_again(Some(holder), Duration::from_millis(50)) {
            Err(LockError::Busy {
                holder: Some(h), ..
            }) => assert_eq!(h.pid, std::process::id()),
            other => panic!("{other:?}"),
        }
        let msg = busy_message("'t'", None, Duration::from_secs(2));
        assert!(
            msg.contains(
                "'t' is held by another run (its record is unreadable); waited 2s (exit 75"
            ),
            "{msg}"
        );
    }

    #[test]
    fn a_token_grows_or_the_lock_is_refused() {
        assert_eq!(next_token(0, TOKEN_MAX, "t", "x"), Ok(1));
        assert_eq!(
            next_token(TOKEN_MAX - 1, TOKEN_MAX, "t", "x"),
            Ok(TOKEN_MAX)
        );
        for top in [TOKEN_MAX, u64::MAX] {
            let e = next_token(top, TOKEN_MAX, "t", "the lock file f")
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("cannot grow") && e.contains("the lock file f"),
                "{e}"
            );
        }
        assert!(next_token(i32::MAX as u64, i32::MAX as u64, "t", "x").is_err());
    }

    #[test]
    fn backends_parse() {
        assert_eq!(Backend::parse(Some("file"), None, None), Ok(Backend::File));
        assert_eq!(
            Backend::parse(Some("github"), None, None),
            Ok(Backend::Github)
        );
        assert!(Backend::parse(Some("etcd"), None, None)
            .unwrap_err()
            .to_string()
            .contains("not one of"));
    }
}
