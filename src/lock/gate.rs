//! A run's held locks and the gate every mutation passes: each lock's
//! renew deadline (moved by its renewal task), why one was lost, and the
//! refusal of a mutation after that.

use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use super::{file, github, kube, Backend};

/// The renew deadline of a held lock, shared with its renewal task.
#[derive(Debug)]
pub struct Deadline {
    /// Renewal must succeed before this instant, or the lock is lost.
    pub until: Instant,
    /// The same, as wall-clock time (for messages).
    pub until_wall: SystemTime,
    /// Why the lock was lost, if it was (set by renewal: broken, taken over).
    pub lost: Option<String>,
}

impl Deadline {
    /// A deadline `ttl` from now.
    pub fn new(ttl: Duration) -> Arc<Mutex<Deadline>> {
        Arc::new(Mutex::new(Deadline {
            until: Instant::now() + ttl,
            until_wall: SystemTime::now() + ttl,
            lost: None,
        }))
    }

    /// Renewal succeeded: push the deadline to `ttl` from `start` (when the
    /// renewal was sent, not when it answered: the conservative choice).
    pub fn renewed(&mut self, start: Instant, ttl: Duration) {
        if self.lost.is_none() {
            self.until = start + ttl;
            self.until_wall = SystemTime::now() - start.elapsed() + ttl;
        }
    }
}

/// What one renewal of a held lock found.
pub enum Renewal {
    /// Renewed; the deadline moves to `start + ttl`.
    Renewed(Instant),
    /// Still ours, but not renewed this time (an I/O error, no answer):
    /// the old deadline stays and the gate refuses once it passes.
    Kept,
    /// Taken over, broken or deleted: no mutation may follow.
    Lost(String),
    /// Released meanwhile: stop renewing.
    Released,
}

/// The renewal loop the backends share: every `ttl / 3` until `stop`,
/// call `renew` and move the deadline, or mark the lock lost and stop.
pub fn spawn_renewal<F, Fut>(
    rt: &tokio::runtime::Handle,
    ttl: Duration,
    deadline: Arc<Mutex<Deadline>>,
    stop: CancellationToken,
    mut renew: F,
) where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Renewal> + Send,
{
    rt.spawn(async move {
        let every = ttl / 3;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            let outcome = tokio::select! {
                _ = stop.cancelled() => return,
                r = renew() => r,
            };
            let mut d = deadline.lock();
            match outcome {
                Renewal::Renewed(start) => d.renewed(start, ttl),
                Renewal::Kept => {}
                Renewal::Lost(why) => {
                    tracing::error!("lock lost: {why}");
                    d.lost = Some(why);
                    return;
                }
                Renewal::Released => return,
            }
        }
    });
}

/// The backend-specific handle of a held lock.
pub enum Handle {
    /// A held lock file.
    File(file::FileLock),
    /// A held Lease.
    Kube(kube::KubeLock),
    /// A held lock ref.
    Github(github::GithubLock),
}

/// One lock this run holds.
pub struct Held {
    /// The lock's name.
    pub name: String,
    /// The backend's name.
    pub backend: &'static str,
    /// Where it lives (the ledger goes to the same place).
    pub place: Backend,
    /// This acquisition's fencing token.
    pub token: u64,
    /// The renew deadline.
    pub deadline: Arc<Mutex<Deadline>>,
    /// Stops the renewal task.
    pub stop: CancellationToken,
    /// The backend's handle, released at the end.
    pub handle: Handle,
}

impl Held {
    /// Why this lock can no longer be used to act, if it cannot. The file
    /// backend looks at the file itself, now (same inode, our token still
    /// in it), so a break or a deletion fences the very next mutation, not
    /// the next renewal; kube and github go by the local renew deadline.
    fn lost(&self) -> Option<Lost> {
        let mut d = self.deadline.lock();
        if d.lost.is_none() {
            if let Handle::File(f) = &self.handle {
                d.lost = f.check();
                if d.lost.is_some() {
                    // Found now: the message's time is now, not the
                    // renew deadline still ahead.
                    d.until_wall = SystemTime::now();
                }
            }
        }
        let cause = if let Some(why) = &d.lost {
            LostCause::Taken(why.clone())
        } else if Instant::now() >= d.until {
            LostCause::NotRenewed {
                backend: self.backend,
            }
        } else {
            return None;
        };
        Some(Lost {
            name: self.name.clone(),
            at: crate::error::rfc3339(d.until_wall),
            cause,
        })
    }
}

/// Why a held lock was lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LostCause {
    /// Broken, taken over or deleted (what renewal or the file found).
    Taken(String),
    /// Its renewal did not succeed by the renew deadline.
    NotRenewed {
        /// The backend's name.
        backend: &'static str,
    },
}

/// A held lock that can no longer be used to act.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lost {
    /// The lock's name.
    pub name: String,
    /// When it was lost, RFC 3339.
    pub at: String,
    /// Why.
    pub cause: LostCause,
}

impl std::fmt::Display for Lost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "lost the lock '{}' at {}: ", self.name, self.at)?;
        match &self.cause {
            LostCause::Taken(why) => f.write_str(why),
            LostCause::NotRenewed { backend } => write!(
                f,
                "its renewal did not succeed by the renew deadline (is the {backend} backend reachable?)"
            ),
        }
    }
}

/// The gate refused a mutation: a held lock was lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    /// The lock that was lost.
    pub lost: Lost,
    /// The primitive that was refused.
    pub primitive: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}; refusing to run {} (no mutation after the deadline: another run may hold the target now)",
            self.lost, self.primitive
        )
    }
}

impl std::error::Error for Refused {}

/// What [`Locks`] guards with its one mutex.
#[derive(Default)]
struct State {
    /// The locks held now.
    held: Vec<Held>,
    /// Mutations that passed the gate.
    mutations: u64,
    /// The first lost lock the gate refused a mutation for.
    refused: Option<Lost>,
    /// Every lock taken, in order: (name, token, where).
    targets: Vec<(String, u64, Backend)>,
}

/// The locks of one run, its mutation count and the first lock's name (the
/// ledger's target). One mutex: the gate reads the held locks, counts and
/// records a refusal in one step.
#[derive(Default)]
pub struct Locks {
    state: Mutex<State>,
}

impl Locks {
    /// The gate every world-changing primitive passes before acting: refuses
    /// when a held lock was lost, else counts the mutation and logs the
    /// fencing token of each lock held.
    pub fn guard(&self, primitive: &str) -> Result<(), Refused> {
        let mut st = self.state.lock();
        if let Some(lost) = st.held.iter().find_map(Held::lost) {
            st.refused.get_or_insert_with(|| lost.clone());
            return Err(Refused {
                lost,
                primitive: primitive.to_string(),
            });
        }
        st.mutations += 1;
        for h in st.held.iter() {
            tracing::info!(
                primitive,
                lock = %h.name,
                fencing_token = h.token,
                "{primitive} under lock '{}' (fencing token {})",
                h.name,
                h.token
            );
        }
        Ok(())
    }

    /// How many mutations passed the gate.
    pub fn mutations(&self) -> u64 {
        self.state.lock().mutations
    }

    /// The first lock this run took: (name, token, where).
    pub fn target(&self) -> Option<(String, u64, Backend)> {
        self.state.lock().targets.first().cloned()
    }

    /// Every lock this run took, in order (each is a ledger target).
    pub fn targets(&self) -> Vec<(String, u64, Backend)> {
        self.state.lock().targets.clone()
    }

    /// The lost lock the gate refused a mutation for, if it did: the run
    /// fails then, even if the playbook caught the error.
    pub fn refused(&self) -> Option<Lost> {
        self.state.lock().refused.clone()
    }

    /// Why a lock was lost during the run (checked at its end too).
    pub fn lost(&self) -> Option<Lost> {
        let st = self.state.lock();
        st.refused
            .clone()
            .or_else(|| st.held.iter().find_map(Held::lost))
    }

    /// Whether this run holds `name`; its token if so.
    pub fn token_of(&self, name: &str) -> Option<u64> {
        let st = self.state.lock();
        st.held.iter().find(|h| h.name == name).map(|h| h.token)
    }

    /// Record a lock just acquired.
    pub fn add(&self, h: Held) {
        let mut st = self.state.lock();
        st.targets.push((h.name.clone(), h.token, h.place.clone()));
        st.held.push(h);
    }

    /// Release `name`; whether it was held.
    pub fn release(&self, name: &str, rt: &tokio::runtime::Handle) -> bool {
        let h = {
            let mut st = self.state.lock();
            let Some(i) = st.held.iter().position(|h| h.name == name) else {
                return false;
            };
            st.held.remove(i)
        };
        // Outside the mutex: releasing waits on the backend.
        release_one(h, rt);
        true
    }

    /// Release every lock still held (the run's end).
    pub fn release_all(&self, rt: &tokio::runtime::Handle) {
        let all: Vec<Held> = self.state.lock().held.drain(..).collect();
        for h in all.into_iter().rev() {
            release_one(h, rt);
        }
    }
}

fn release_one(h: Held, rt: &tokio::runtime::Handle) {
    h.stop.cancel();
    let name = h.name.clone();
    let lost = h.lost().is_some();
    let result = match h.handle {
        Handle::File(f) => f.release(),
        Handle::Kube(k) => k.release(rt, lost),
        Handle::Github(g) => g.release(rt, lost),
    };
    match result {
        Ok(()) => tracing::info!(lock = %name, "released lock '{name}'"),
        Err(e) => tracing::warn!(lock = %name, "releasing lock '{name}': {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::HolderInfo;
    use super::*;

    #[test]
    fn a_lost_lock_refuses_and_an_expired_one_too() {
        let locks = Locks::default();
        let dir = tempfile::tempdir().unwrap();
        let info = HolderInfo::current("t.rhai");
        let f = match file::acquire(dir.path(), "t", &info, Duration::from_secs(60), &|| None)
            .unwrap()
        {
            file::Acquire::Held(f, _) => f,
            file::Acquire::Busy(_) => panic!("busy"),
        };
        let deadline = Deadline::new(Duration::from_secs(60));
        locks.add(Held {
            name: "t".into(),
            backend: "file",
            place: Backend::File,
            token: 1,
            deadline: deadline.clone(),
            stop: CancellationToken::new(),
            handle: Handle::File(f),
        });
        assert!(locks.guard("write_json").is_ok());
        assert_eq!(locks.mutations(), 1);
        deadline.lock().until = Instant::now() - Duration::from_millis(1);
        let e = locks.guard("write_json").unwrap_err().to_string();
        assert!(e.contains("lost the lock 't'"), "{e}");
        assert!(e.contains("refusing to run write_json"), "{e}");
        assert_eq!(locks.mutations(), 1, "a refused mutation is not counted");
        // The refusal is kept, typed: the run fails on it at its end.
        let refused = locks.refused().expect("the refusal is kept");
        assert_eq!(refused.name, "t");
        assert_eq!(refused.cause, LostCause::NotRenewed { backend: "file" });
        assert!(e.starts_with(&refused.to_string()), "{e}");
        assert!(locks.lost().is_some());
    }
}
