//! The `github` lock backend: a Git ref `refs/runbook/locks/<name>` in the
//! workflow's repository (`GITHUB_REPOSITORY`), through
//! [`crate::net::github`] with `GITHUB_TOKEN` (the github ledger,
//! `ledger::github`, uses the same client).
//!
//! The lock's state is the commit the ref points to: its message is a JSON
//! [`LockCommit`] (holder, expiry, fencing token, held or free), its tree
//! the empty tree. Every change is a new commit whose parent is the commit
//! read, and the ref moves to it only as a fast-forward (`force: false`),
//! so two writers that read the same commit cannot both win: the second
//! gets 422 "Update is not a fast forward", reads again and decides anew.
//! The first take is a ref create, which GitHub refuses with 422
//! "Reference already exists" to all but one racer. A release writes a
//! "free" commit, never a DELETE: a delete cannot be conditional, and a
//! holder that lost the lock would delete its successor's. The token is
//! raised by every acquisition and by a break; renewal runs every ttl/3
//! and the holder self-fences when it has not succeeded by its deadline.

use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::{Deadline, Held, HolderInfo, LockError, Locks, Renewal, Status, Taken, Want};
use crate::error::PrimError;
use crate::net::github::{Api, Permission};
use crate::process::cancel::Scope;

/// Git's empty tree: the lock's commits carry no files.
pub const EMPTY_TREE: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

/// Bound of one API call of the lock (retries and rate-limit waits
/// included).
pub(crate) const CALL: Duration = Duration::from_secs(30);

/// Conflicts in a row before a take or a break gives up.
const RACES: usize = 5;

/// The lock's ref, fully qualified.
pub fn ref_name(name: &str) -> String {
    format!("refs/runbook/locks/{name}")
}

/// What a lock commit's message holds.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LockCommit {
    /// The lock's name.
    pub runbook_lock: String,
    /// "held" or "free".
    pub state: String,
    /// The fencing token of the last acquisition (or break).
    pub token: u64,
    /// The (last) holder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<HolderInfo>,
    /// When a held lock expires without renewal, Unix milliseconds (whole
    /// seconds would cut a 1 s ttl to nothing).
    #[serde(default)]
    pub expires_ms: u64,
    /// Who broke it and why, when the last change was a break.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broken: Option<String>,
}

impl LockCommit {
    /// Held and not expired.
    fn live(&self) -> bool {
        self.state == "held" && self.expires_ms > unix_ms()
    }

    fn holder_id(&self) -> &str {
        self.holder.as_ref().map_or("", |h| h.holder.as_str())
    }

    fn status(&self, name: &str) -> Status {
        Status {
            name: name.into(),
            held: self.live(),
            holder: self.holder.clone(),
            expires: (self.state == "held").then_some(self.expires_ms / 1000),
            token: self.token,
        }
    }
}

/// The ref's commit and what it says (`None`: the message is not a lock
/// commit: someone else wrote the ref).
type Current = (String, Option<LockCommit>);

/// The lock `name` in one repository.
#[derive(Clone)]
struct Target {
    api: Api,
    name: String,
}

impl Target {
    fn what(&self, verb: &str) -> String {
        format!(
            "{verb} lock ref {} in {}",
            ref_name(&self.name),
            self.api.repo().slug()
        )
    }

    /// The ref's commit, or `None` when there is no ref.
    async fn read(&self, bound: Duration) -> Result<Option<Current>, PrimError> {
        let short = format!("runbook/locks/{}", self.name);
        let a = self
            .api
            .call(Method::GET, &format!("/git/ref/{short}"), None, bound)
            .await?;
        let sha = match a.status {
            404 => return Ok(None),
            200 => a
                .body
                .pointer("/object/sha")
                .and_then(Value::as_str)
                .map(String::from)
                .ok_or_else(|| {
                    PrimError::fatal(format!(
                        "{}: the answer has no object.sha: {}",
                        self.what("read"),
                        crate::net::snippet(&a.body.to_string())
                    ))
                })?,
            _ => {
                return Err(self
                    .api
                    .refused(&self.what("read"), Permission::Contents, &a))
            }
        };
        let c = self
            .api
            .call(Method::GET, &format!("/git/commits/{sha}"), None, bound)
            .await?;
        if c.status != 200 {
            return Err(self
                .api
                .refused(&self.what("read"), Permission::Contents, &c));
        }
        let lock = c
            .body
            .get("message")
            .and_then(Value::as_str)
            .and_then(|m| serde_json::from_str::<LockCommit>(m.trim()).ok())
            .filter(|l| l.runbook_lock == self.name);
        Ok(Some((sha, lock)))
    }

    /// A new commit saying `state`, on top of `parent`: its SHA.
    async fn commit(
        &self,
        state: &LockCommit,
        parent: Option<&str>,
        bound: Duration,
    ) -> Result<String, PrimError> {
        let message = serde_json::to_string(state).map_err(|e| PrimError::fatal(e.to_string()))?;
        let body = json!({
            "message": message,
            "tree": EMPTY_TREE,
            "parents": parent.into_iter().collect::<Vec<_>>(),
        });
        let a = self
            .api
            .call(Method::POST, "/git/commits", Some(&body), bound)
            .await?;
        let what = self.what("write a commit for the");
        match (a.status, a.body.get("sha").and_then(Value::as_str)) {
            (201, Some(sha)) => Ok(sha.to_string()),
            (201, None) => Err(PrimError::fatal(format!("{what}: the answer has no sha"))),
            _ => Err(self.api.refused(&what, Permission::Contents, &a)),
        }
    }

    /// Create the ref at `sha`: `false` when it already exists.
    async fn create(&self, sha: &str, bound: Duration) -> Result<bool, PrimError> {
        let body = json!({ "ref": ref_name(&self.name), "sha": sha });
        let a = self
            .api
            .call(Method::POST, "/git/refs", Some(&body), bound)
            .await?;
        match a.status {
            201 => Ok(true),
            422 if a.message().contains("already exists") => Ok(false),
            _ => Err(self
                .api
                .refused(&self.what("create"), Permission::Contents, &a)),
        }
    }

    /// Move the ref to `sha` as a fast-forward: `false` when it moved
    /// since it was read (or is gone).
    async fn advance(&self, sha: &str, bound: Duration) -> Result<bool, PrimError> {
        let body = json!({ "sha": sha, "force": false });
        let path = format!("/git/refs/runbook/locks/{}", self.name);
        let a = self
            .api
            .call(Method::PATCH, &path, Some(&body), bound)
            .await?;
        let m = a.message().to_ascii_lowercase();
        match a.status {
            200 => Ok(true),
            422 if m.contains("fast forward") || m.contains("does not exist") => Ok(false),
            _ => Err(self
                .api
                .refused(&self.what("update"), Permission::Contents, &a)),
        }
    }
}

/// Milliseconds since the Unix epoch.
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The expiry of a lock renewed now.
fn expiry(ttl: Duration) -> u64 {
    unix_ms().saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
}

fn held_by(name: &str, info: &HolderInfo, token: u64, ttl: Duration) -> LockCommit {
    LockCommit {
        runbook_lock: name.into(),
        state: "held".into(),
        token,
        holder: Some(info.clone()),
        expires_ms: expiry(ttl),
        broken: None,
    }
}

/// One try: Ok(Ok((sha, commit))) ours, Ok(Err(holder)) busy.
async fn try_acquire(
    t: &Target,
    info: &HolderInfo,
    ttl: Duration,
) -> Result<Result<(String, LockCommit), Option<HolderInfo>>, PrimError> {
    for _ in 0..RACES {
        // Read first: once the ref exists (every take after the first),
        // that is one request fewer than a create that fails.
        let (want, won) = match t.read(CALL).await? {
            None => {
                let want = held_by(&t.name, info, 1, ttl);
                let sha = t.commit(&want, None, CALL).await?;
                let won = t.create(&sha, CALL).await?;
                (want, won.then_some(sha))
            }
            Some((_, None)) => return Ok(Err(None)),
            Some((_, Some(l))) if l.live() => return Ok(Err(l.holder)),
            Some((cur, Some(l))) => {
                if l.state == "held" {
                    tracing::info!(
                        lock = %t.name,
                        "the lock '{}' expired ({}); taking it over",
                        t.name,
                        l.holder_id()
                    );
                }
                let token = super::next_token(
                    l.token,
                    super::TOKEN_MAX,
                    &t.name,
                    &format!(
                        "the lock ref {} in {}",
                        ref_name(&t.name),
                        t.api.repo().slug()
                    ),
                )
                .map_err(PrimError::fatal)?;
                let want = held_by(&t.name, info, token, ttl);
                let sha = t.commit(&want, Some(&cur), CALL).await?;
                let won = t.advance(&sha, CALL).await?;
                (want, won.then_some(sha))
            }
        };
        // Lost a race: another run wrote in between; read and judge again.
        if let Some(sha) = won {
            return Ok(Ok((sha, want)));
        }
    }
    Err(PrimError::fatal(format!(
        "{}: it keeps changing under us ({RACES} conflicts in a row)",
        t.what("take")
    )))
}

/// A held lock ref: the commit it points to (ours) and what it says.
pub struct GithubLock {
    target: Target,
    last: Arc<Mutex<(String, LockCommit)>>,
}

/// Take the lock ref of `want` (the `lock` primitive's github path) with
/// the client `http` (same-origin redirects only): poll up to its `wait`
/// while it is busy (waiting in `scope`), then hold it in `locks`, renewed
/// every ttl/3, until the run ends or unlocks it.
pub fn take(
    scope: &Scope,
    locks: &Locks,
    http: reqwest::Client,
    want: &Want,
) -> Result<Taken, LockError> {
    let Want {
        name,
        info,
        ttl,
        wait,
    } = *want;
    let api = Api::from_env(http).map_err(|e| e.prefixed("lock"))?;
    let t = Target {
        api,
        name: name.to_string(),
    };
    let mut waiter = super::Waiter::new(name, wait);
    loop {
        match scope.call("lock", CALL * 8, try_acquire(&t, info, ttl))?? {
            Ok((sha, state)) => {
                let token = state.token;
                let expires = super::rfc3339_secs(state.expires_ms / 1000);
                let deadline = Deadline::new(ttl);
                let stop = CancellationToken::new();
                let slug = t.api.repo().slug();
                let held = GithubLock {
                    target: t,
                    last: Arc::new(Mutex::new((sha, state))),
                };
                held.spawn_renewal(&scope.rt, ttl, deadline.clone(), stop.clone());
                tracing::info!(
                    primitive = "lock",
                    lock = name,
                    backend = "github",
                    fencing_token = token,
                    "locked '{name}' (ref {} in {slug}, fencing token {token}, ttl {})",
                    ref_name(name),
                    crate::error::fmt_secs(ttl)
                );
                locks.add(Held {
                    name: name.to_string(),
                    backend: "github",
                    place: super::Backend::Github,
                    token,
                    deadline,
                    stop,
                    handle: super::Handle::Github(held),
                });
                return Ok(Taken {
                    backend: "github",
                    holder: info.holder.clone(),
                    token,
                    expires,
                });
            }
            Err(holder) => scope.pause(waiter.busy_again(holder, Duration::from_millis(500))?)?,
        }
    }
}

/// Why a lock we held is no longer ours, from the commit the ref points to.
fn lost_reason(cur: Option<&LockCommit>) -> String {
    match cur {
        None => "the lock ref was rewritten by something other than runbook".into(),
        Some(l) => l.broken.clone().unwrap_or_else(|| {
            if l.state == "held" {
                format!(
                    "the lock was taken over by {} (fencing token {})",
                    l.holder_id(),
                    l.token
                )
            } else {
                format!(
                    "the lock was released meanwhile (fencing token {})",
                    l.token
                )
            }
        }),
    }
}

/// One renewal: a commit with a later expiry on top of ours, and a
/// fast-forward. Refused: read the ref; still ours (an earlier renewal
/// landed unseen) keeps it, anything else lost it.
async fn renew(
    t: &Target,
    last: &Mutex<(String, LockCommit)>,
    ttl: Duration,
    bound: Duration,
) -> Renewal {
    let start = Instant::now();
    let (parent, mut want) = last.lock().clone();
    want.expires_ms = expiry(ttl);
    let moved = async {
        let sha = t.commit(&want, Some(&parent), bound).await?;
        Ok::<_, PrimError>(t.advance(&sha, bound).await?.then_some(sha))
    }
    .await;
    match moved {
        Ok(Some(sha)) => {
            *last.lock() = (sha, want);
            return Renewal::Renewed(start);
        }
        Ok(None) => {}
        Err(e) => {
            tracing::warn!("renewing the lock '{}': {e}", t.name);
            return Renewal::Kept;
        }
    }
    match t.read(bound).await {
        Ok(Some((sha, Some(l))))
            if l.state == "held" && l.token == want.token && l.holder_id() == want.holder_id() =>
        {
            *last.lock() = (sha, l);
            Renewal::Kept
        }
        Ok(Some((_, l))) => Renewal::Lost(lost_reason(l.as_ref())),
        Ok(None) => Renewal::Lost("the lock ref was deleted".into()),
        Err(_) => Renewal::Kept,
    }
}

impl GithubLock {
    fn spawn_renewal(
        &self,
        rt: &tokio::runtime::Handle,
        ttl: Duration,
        deadline: Arc<Mutex<Deadline>>,
        stop: CancellationToken,
    ) {
        let (t, last) = (self.target.clone(), self.last.clone());
        let every = (ttl / 3).max(Duration::from_millis(200));
        super::spawn_renewal(rt, ttl, deadline, stop, move || {
            let (t, last) = (t.clone(), last.clone());
            async move { renew(&t, &last, ttl, every).await }
        });
    }

    /// Mark the lock free in a new commit on top of ours, unless it was
    /// lost: then it is someone else's and is left alone. A refused
    /// fast-forward means the same (it moved since our last renewal).
    pub fn release(self, rt: &tokio::runtime::Handle, lost: bool) -> Result<(), String> {
        if lost {
            return Ok(());
        }
        let (parent, mut want) = self.last.lock().clone();
        want.state = "free".into();
        want.expires_ms = 0;
        let t = self.target;
        let moved = rt.block_on(async {
            let sha = t.commit(&want, Some(&parent), CALL).await?;
            t.advance(&sha, CALL).await
        });
        match moved {
            Ok(true) => Ok(()),
            Ok(false) => Err(format!(
                "{}: it changed since this run's last renewal (broken or taken over); left as it is",
                t.what("release")
            )),
            Err(e) => Err(e.msg),
        }
    }
}

fn target(http: reqwest::Client, name: &str) -> Result<Target, String> {
    Ok(Target {
        api: Api::from_env(http).map_err(|e| e.msg)?,
        name: name.into(),
    })
}

/// The lock's state: one read of the ref and its commit, through `http`
/// (the run's during a run, [`crate::net::github::client`] for `runbook
/// lock status`).
pub async fn status(http: reqwest::Client, name: &str) -> Result<Status, String> {
    let t = target(http, name)?;
    Ok(match t.read(CALL).await.map_err(|e| e.msg)? {
        None => Status::free(name),
        Some((_, Some(l))) => l.status(name),
        Some((_, None)) => Status {
            held: true,
            ..Status::free(name)
        },
    })
}

/// Break the lock: a "free" commit with a raised token and who broke it
/// and why (the old holder's next renewal is refused, reads this and
/// self-fences). Returns the state before.
pub async fn break_lock(name: &str, by: &str, reason: &str) -> Result<Status, String> {
    let t = target(crate::net::github::client(), name)?;
    for _ in 0..RACES {
        let Some((cur, l)) = t.read(CALL).await.map_err(|e| e.msg)? else {
            return Ok(Status::free(name));
        };
        let before = l.as_ref().map_or_else(
            || Status {
                held: true,
                ..Status::free(name)
            },
            |l| l.status(name),
        );
        // A token that repeated would let the old holder pass the new fence.
        let token = super::next_token(
            before.token,
            super::TOKEN_MAX,
            name,
            &format!(
                "the lock ref {} in {}",
                ref_name(&t.name),
                t.api.repo().slug()
            ),
        )
        .map_err(|e| e.to_string())?;
        let want = LockCommit {
            runbook_lock: name.into(),
            state: "free".into(),
            token,
            holder: before.holder.clone(),
            expires_ms: 0,
            broken: Some(format!(
                "broken by {by} at {}: {reason}",
                super::rfc3339_secs(super::unix_now())
            )),
        };
        let sha = t.commit(&want, Some(&cur), CALL).await.map_err(|e| e.msg)?;
        if t.advance(&sha, CALL).await.map_err(|e| e.msg)? {
            return Ok(before);
        }
    }
    Err(format!(
        "{}: it keeps changing ({RACES} conflicts in a row)",
        t.what("break")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_commit_is_live_while_held_and_not_expired() {
        let info = HolderInfo::current("t.rhai");
        let l = held_by("demo", &info, 3, Duration::from_secs(60));
        assert!(l.live());
        let text = serde_json::to_string(&l).unwrap();
        let back: LockCommit = serde_json::from_str(&text).unwrap();
        assert_eq!(back, l);
        let expired = LockCommit {
            expires_ms: unix_ms() - 1,
            ..l.clone()
        };
        assert!(!expired.live());
        let free = LockCommit {
            state: "free".into(),
            ..l
        };
        assert!(!free.live());
        assert_eq!(free.status("demo").expires, None);
        assert!(
            lost_reason(Some(&free)).contains("released"),
            "{}",
            lost_reason(Some(&free))
        );
    }
}
