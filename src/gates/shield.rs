//! The run-wide state of a guarded deploy: while one is in progress, the
//! first signal (or the run's deadline) stops the deploy but not the run,
//! so the rollback can still run within its reserve; a second signal stops
//! the rollback too. Also where the guarded outcome is kept for the exit
//! code and the ledger.

use parking_lot::Mutex;
use std::time::Duration;

/// How a guarded deploy ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The gates passed (or were accepted).
    Ok,
    /// A gate failed (or the deploy did) and the rollback succeeded: exit 3.
    RolledBack(String),
    /// A gate failed and the rollback failed too: exit 4.
    RollbackFailed(String),
    /// The gates were inconclusive and the new version was held: exit 5.
    Unverified(String),
}

impl Outcome {
    /// The ledger's `result` for this outcome.
    pub fn ledger_result(&self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::RolledBack(_) => "rolled_back",
            Outcome::RollbackFailed(_) => "rollback_failed",
            Outcome::Unverified(_) => "unverified",
        }
    }
}

#[derive(Default)]
struct State {
    /// The reserve of the guarded deploy in progress.
    active: Option<Duration>,
    /// A second stop arrived: nothing more may run, the rollback included.
    hard: bool,
    /// The rollback is running: a first stop now must not cut it.
    rolling_back: bool,
    /// The most severe outcome of the run's guarded deploys.
    outcome: Option<Outcome>,
}

/// See the module doc.
#[derive(Default)]
pub struct Shield {
    state: Mutex<State>,
}

impl Shield {
    fn lock(&self) -> parking_lot::MutexGuard<'_, State> {
        self.state.lock()
    }

    /// A guarded deploy with this rollback reserve starts.
    pub fn arm(&self, reserve: Duration) {
        self.lock().active = Some(reserve);
    }

    /// The guarded deploy is over.
    pub fn disarm(&self) {
        let mut s = self.lock();
        s.active = None;
        s.rolling_back = false;
    }

    /// The rollback starts: from now until `disarm`, a first stop (a
    /// signal, the run's deadline) ends the run after the rollback, not
    /// during it; only a second stop or the reserve's end cuts it.
    pub fn start_rollback(&self) {
        self.lock().rolling_back = true;
    }

    /// Whether a rollback is running (and no second stop arrived).
    pub fn is_rolling_back(&self) -> bool {
        let s = self.lock();
        s.rolling_back && !s.hard
    }

    /// The reserve of the guarded deploy in progress, if one is: how long
    /// the run waits, after the first stop, for its rollback.
    pub fn reserve(&self) -> Option<Duration> {
        let s = self.lock();
        s.active.filter(|_| !s.hard)
    }

    /// A second stop: the rollback may not start, or is stopped.
    pub fn harden(&self) {
        self.lock().hard = true;
    }

    /// Whether a second stop arrived.
    pub fn is_hard(&self) -> bool {
        self.lock().hard
    }

    /// Keep `o` unless a worse outcome is already kept (several guarded
    /// deploys in one run: the ledger says the worst).
    pub fn settle(&self, o: Outcome) {
        let rank = |o: &Outcome| match o {
            Outcome::Ok => 0,
            Outcome::Unverified(_) => 1,
            Outcome::RolledBack(_) => 2,
            Outcome::RollbackFailed(_) => 3,
        };
        let mut s = self.lock();
        if s.outcome.as_ref().is_none_or(|old| rank(&o) >= rank(old)) {
            s.outcome = Some(o);
        }
    }

    /// The kept outcome.
    pub fn outcome(&self) -> Option<Outcome> {
        self.lock().outcome.clone()
    }
}
