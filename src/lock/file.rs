//! The `file` lock backend: `<state>/locks/<name>.lock`, held with
//! `flock(2)` so the kernel releases it the moment the holder dies (even by
//! `kill -9`). The file's content (JSON) records the holder and the fencing
//! token counter, which survives every release: the next holder takes
//! counter + 1.
//!
//! `lock break` cannot take a kernel lock from a live process; it replaces
//! the file (rename of a new file with a higher token): new runs lock the
//! new file, and the old holder's renewal sees its file is no longer the
//! one at the path and self-fences.

use parking_lot::Mutex;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{
    unix_now, Backend, Deadline, Handle, Held, HolderInfo, LockError, Locks, Renewal, Status,
    Taken, Want,
};
use crate::error::PrimError;
use crate::process::cancel::Scope;

/// What the lock file holds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Record {
    /// The lock's name.
    pub name: String,
    /// The last fencing token handed out.
    pub token: u64,
    /// Whether the holder still had it when it last wrote (a killed holder
    /// leaves `true`; the kernel lock is the truth).
    pub held: bool,
    /// The (last) holder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<HolderInfo>,
    /// Expiry without renewal, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
    /// Who broke the lock and why, when it was broken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broken: Option<String>,
}

/// The most a lock file's record may weigh: a holder's record is under 1 KiB.
const RECORD_MAX: usize = 64 * 1024;

/// The lock file of `name` in the state folder.
pub fn path(state: &Path, name: &str) -> PathBuf {
    state.join("locks").join(format!("{name}.lock"))
}

/// A held lock file.
pub struct FileLock {
    path: PathBuf,
    /// Taken out (and so unlocked) on release, even while the renewal
    /// task still holds the Arc.
    file: Arc<Mutex<Option<Flock<File>>>>,
    record: Arc<Mutex<Record>>,
}

/// The outcome of one try.
pub enum Acquire {
    /// Ours, with the record written.
    Held(FileLock, Record),
    /// Someone else holds it; their record (if readable).
    Busy(Option<Record>),
}

fn read_record(path: &Path) -> Option<Record> {
    // A holder rewrites the file in place; a reader may catch it half way:
    // read again briefly before giving up.
    for _ in 0..5 {
        if let Ok(text) = super::state::read(path, RECORD_MAX as u64) {
            if let Ok(r) = serde_json::from_slice(&text) {
                return Some(r);
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    None
}

/// Rewrite the record in place. Not fsynced: the kernel lock is the truth
/// and the page cache survives any death of the process; only a crash of
/// the machine itself could lose the last counter write (an fsync would
/// cost ~2.5 ms per write here, over the lock's 1 ms budget).
fn write_record(f: &File, r: &Record) -> std::io::Result<()> {
    let mut text = serde_json::to_vec_pretty(r).map_err(std::io::Error::other)?;
    text.push(b'\n');
    f.write_all_at(&text, 0)?;
    f.set_len(text.len() as u64)?;
    Ok(())
}

fn same_file(f: &File, path: &Path) -> bool {
    match (f.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    }
}

fn open(state: &Path, path: &Path) -> Result<File, String> {
    super::state::prepare(state, "locks")?;
    super::state::open(path, super::state::Mode::ReadWrite)
        .map_err(|e| format!("cannot open the lock file {}: {e}", path.display()))
}

/// Try once to take `name` in the state folder `state`. `floor` is the
/// highest fencing token the ledger remembers for it, asked only when the
/// lock file is new (its counter gone).
pub fn acquire(
    state: &Path,
    name: &str,
    info: &HolderInfo,
    ttl: Duration,
    floor: &dyn Fn() -> Option<u64>,
) -> Result<Acquire, String> {
    let path = path(state, name);
    // The file may be replaced (lock break) between open and flock: lock,
    // then check the path still names the file we locked.
    for _ in 0..10 {
        let f = open(state, &path)?;
        let mut fl = match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
            Ok(fl) => fl,
            Err((_, Errno::EWOULDBLOCK)) => return Ok(Acquire::Busy(read_record(&path))),
            Err((_, e)) => return Err(format!("cannot lock {}: {e}", path.display())),
        };
        if !same_file(&fl, &path) {
            continue;
        }
        let mut text = String::new();
        let _ = (&*fl).take(RECORD_MAX as u64).read_to_string(&mut text);
        let prev: Option<Record> = serde_json::from_str(&text).ok();
        let token = match &prev {
            Some(r) => super::next_token(
                r.token,
                super::TOKEN_MAX,
                name,
                &format!("the lock file {}", path.display()),
            )?,
            // A new file: the first take, or one deleted meanwhile, whose
            // counter is gone. The ledger remembers the tokens of runs
            // that held it: go on from the highest, never back to 1.
            None if text.trim().is_empty() => match floor() {
                Some(t) => super::next_token(
                    t,
                    super::TOKEN_MAX,
                    name,
                    &format!("the lock file {}", path.display()),
                )?,
                None => 1,
            },
            None => {
                // Unreadable: the counter is gone. Milliseconds since the
                // epoch are above any counter a lock reaches, so the token
                // still only grows.
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_millis() as u64);
                tracing::warn!(
                    "the lock file {} was unreadable; fencing token restarts at {t}",
                    path.display()
                );
                t
            }
        };
        let record = Record {
            name: name.to_string(),
            token,
            held: true,
            holder: Some(info.clone()),
            expires: Some(unix_now() + ttl.as_secs().max(1)),
            broken: None,
        };
        write_record(&fl, &record)
            .map_err(|e| format!("cannot write the lock file {}: {e}", path.display()))?;
        let _ = fl.flush();
        return Ok(Acquire::Held(
            FileLock {
                path,
                file: Arc::new(Mutex::new(Some(fl))),
                record: Arc::new(Mutex::new(record.clone())),
            },
            record,
        ));
    }
    Err(format!(
        "the lock file {} keeps being replaced; is someone breaking it in a loop?",
        path.display()
    ))
}

/// Take `want` in the state folder `state` (the `lock` primitive's file
/// path): poll up to its `wait` while it is busy (sleeping in `scope`),
/// then hold it in `locks`, renewed every ttl/3, until the run ends or
/// unlocks it. `floor`: see [`acquire`].
pub fn take(
    scope: &Scope,
    locks: &Locks,
    state: &Path,
    want: &Want,
    floor: &dyn Fn() -> Option<u64>,
) -> Result<Taken, LockError> {
    let Want {
        name,
        info,
        ttl,
        wait,
    } = *want;
    let mut waiter = super::Waiter::new(name, wait);
    loop {
        let got = acquire(state, name, info, ttl, floor)
            .map_err(|e| PrimError::fatal(format!("lock: {e}")))?;
        match got {
            Acquire::Held(f, record) => {
                let deadline = Deadline::new(ttl);
                let stop = CancellationToken::new();
                f.spawn_renewal(&scope.rt, ttl, deadline.clone(), stop.clone());
                let expires = super::rfc3339_secs(record.expires.unwrap_or_default());
                tracing::info!(
                    primitive = "lock",
                    lock = name,
                    backend = "file",
                    fencing_token = record.token,
                    "locked '{name}' (file, fencing token {}, ttl {})",
                    record.token,
                    crate::error::fmt_secs(ttl)
                );
                locks.add(Held {
                    name: name.to_string(),
                    backend: "file",
                    place: Backend::File,
                    token: record.token,
                    deadline,
                    stop,
                    handle: Handle::File(f),
                });
                return Ok(Taken {
                    backend: "file",
                    holder: info.holder.clone(),
                    token: record.token,
                    expires,
                });
            }
            Acquire::Busy(rec) => {
                let holder = rec.and_then(|r| r.holder);
                // flock has no queue: poll.
                scope.pause(waiter.busy_again(holder, Duration::from_millis(50))?)?;
            }
        }
    }
}

/// One renewal of a lock file: rewrite the expiry, or find it broken.
fn renew_file(
    path: &Path,
    file: &Mutex<Option<Flock<File>>>,
    record: &Mutex<Record>,
    ttl: Duration,
) -> Renewal {
    let start = Instant::now();
    let guard = file.lock();
    let Some(f) = guard.as_ref() else {
        return Renewal::Released;
    };
    let mut r = record.lock();
    if !same_file(f, path) {
        return Renewal::Lost(read_record(path).and_then(|r| r.broken).unwrap_or_else(|| {
            format!("the lock file {} was replaced or removed", path.display())
        }));
    }
    r.expires = Some(unix_now() + ttl.as_secs().max(1));
    match write_record(f, &r) {
        Ok(()) => Renewal::Renewed(start),
        Err(e) => {
            tracing::warn!("renewing the lock file {}: {e}", path.display());
            Renewal::Kept
        }
    }
}

impl FileLock {
    /// Why this lock is no longer ours, if it is not: the file at the path
    /// is another (broken: replaced; or deleted), or its token is not ours
    /// (rewritten in place). Called by the gate before every mutation.
    pub fn check(&self) -> Option<String> {
        let guard = self.file.lock();
        let Some(f) = guard.as_ref() else {
            return Some("it was released".into());
        };
        if !same_file(f, &self.path) {
            return Some(
                read_record(&self.path)
                    .and_then(|r| r.broken)
                    .unwrap_or_else(|| {
                        format!(
                            "the lock file {} was replaced or removed",
                            self.path.display()
                        )
                    }),
            );
        }
        let ours = self.record.lock().token;
        // Read through our descriptor: the path was just seen to name it.
        let mut buf = vec![0u8; RECORD_MAX];
        let n = f.read_at(&mut buf, 0).unwrap_or(0);
        match serde_json::from_slice::<Record>(&buf[..n]) {
            Ok(r) if r.token == ours => None,
            Ok(r) => Some(format!(
                "the lock file {} now carries fencing token {} (ours is {ours})",
                self.path.display(),
                r.token
            )),
            Err(_) => Some(format!(
                "the lock file {} no longer holds our record (fencing token {ours})",
                self.path.display()
            )),
        }
    }

    /// Renew every ttl/3 until `stop`: rewrite the expiry and push the
    /// deadline, or mark the lock lost when the file was replaced (broken).
    pub fn spawn_renewal(
        &self,
        rt: &tokio::runtime::Handle,
        ttl: Duration,
        deadline: Arc<Mutex<Deadline>>,
        stop: CancellationToken,
    ) {
        let (path, file, record) = (self.path.clone(), self.file.clone(), self.record.clone());
        super::spawn_renewal(rt, ttl, deadline, stop, move || {
            let outcome = renew_file(&path, &file, &record, ttl);
            async move { outcome }
        });
    }

    /// Mark the record released (the token stays) and drop the kernel lock.
    pub fn release(self) -> Result<(), String> {
        // Taking the Flock out of the shared slot drops it at the end of
        // this function: the kernel lock goes at once.
        let Some(f) = self.file.lock().take() else {
            return Ok(());
        };
        if !same_file(&f, &self.path) {
            // Broken: the file at the path belongs to others now.
            return Ok(());
        }
        let mut r = self.record.lock().clone();
        r.held = false;
        r.expires = None;
        write_record(&f, &r).map_err(|e| format!("{}: {e}", self.path.display()))
    }
}

/// Whether `name` is held now, by whom, and its token.
pub fn status(state: &Path, name: &str) -> Result<Status, String> {
    let path = path(state, name);
    super::state::check_existing(state, "locks")?;
    let f = match super::state::open(&path, super::state::Mode::Read) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Status::free(name)),
        Err(e) => return Err(format!("cannot open {}: {e}", path.display())),
    };
    // Shared and non-blocking: it only asks whether an exclusive lock is
    // held, and is let go at once.
    let held = match Flock::lock(f, FlockArg::LockSharedNonblock) {
        Ok(_) => false,
        Err((_, Errno::EWOULDBLOCK)) => true,
        Err((_, e)) => return Err(format!("cannot query {}: {e}", path.display())),
    };
    let r = read_record(&path).unwrap_or_default();
    Ok(Status {
        name: name.into(),
        held,
        holder: r.holder,
        expires: r.expires,
        token: r.token,
    })
}

/// Break `name`: replace its file with one that carries a higher token and
/// who broke it, so new runs can take it and the old holder self-fences.
/// Returns the status before the break.
pub fn break_lock(state: &Path, name: &str, by: &str, reason: &str) -> Result<Status, String> {
    let before = status(state, name)?;
    let path = path(state, name);
    let prev = read_record(&path).unwrap_or_default();
    // A token that repeated would let the old holder pass the new fence.
    let token = super::next_token(
        prev.token,
        super::TOKEN_MAX,
        name,
        &format!("the lock file {}", path.display()),
    )
    .map_err(|e| e.to_string())?;
    let record = Record {
        name: name.into(),
        token,
        held: false,
        holder: prev.holder,
        expires: None,
        broken: Some(format!(
            "broken by {by} at {}: {reason}",
            super::rfc3339_secs(unix_now())
        )),
    };
    super::state::prepare(state, "locks")?;
    // An unpredictable name, created O_EXCL|O_NOFOLLOW (tempfile does
    // both), 0600: nothing planted can be truncated or written through.
    // The rename replaces whatever is at the path, a symlink included,
    // without following it.
    let dir = path.parent().unwrap_or(state);
    let write = || -> std::io::Result<()> {
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}.lock."))
            .suffix(".tmp")
            .tempfile_in(dir)?;
        write_record(tmp.as_file(), &record)?;
        tmp.persist(&path).map_err(|e| e.error)?;
        Ok(())
    };
    write().map_err(|e| format!("cannot replace the lock file {}: {e}", path.display()))?;
    Ok(before)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(dir: &Path) -> Acquire {
        acquire(
            dir,
            "t",
            &HolderInfo::current("t.rhai"),
            Duration::from_secs(60),
            &|| None,
        )
        .unwrap()
    }

    #[test]
    fn one_holder_and_a_growing_token() {
        let dir = tempfile::tempdir().unwrap();
        let Acquire::Held(a, ra) = take(dir.path()) else {
            panic!("first is busy")
        };
        assert_eq!(ra.token, 1);
        let Acquire::Busy(Some(r)) = take(dir.path()) else {
            panic!("second got it")
        };
        assert_eq!(r.holder.unwrap().pid, std::process::id());
        assert!(status(dir.path(), "t").unwrap().held);
        a.release().unwrap();
        assert!(!status(dir.path(), "t").unwrap().held);
        let Acquire::Held(_, rb) = take(dir.path()) else {
            panic!("busy after release")
        };
        assert_eq!(rb.token, 2, "the counter survives release");
    }

    #[test]
    fn a_break_frees_it_with_a_higher_token() {
        let dir = tempfile::tempdir().unwrap();
        let Acquire::Held(_a, _) = take(dir.path()) else {
            panic!()
        };
        let before = break_lock(dir.path(), "t", "ops", "stuck").unwrap();
        assert!(before.held);
        let Acquire::Held(_b, rb) = take(dir.path()) else {
            panic!("still busy after break")
        };
        assert_eq!(rb.token, 3, "1 held, 2 the break, 3 the new holder");
    }

    /// A break at the top token refuses, naming the file, and leaves it as
    /// it was: a token that repeated would let the old holder pass the
    /// new fence.
    #[test]
    fn a_break_at_the_top_token_refuses_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let Acquire::Held(a, _) = take(dir.path()) else {
            panic!()
        };
        a.release().unwrap();
        let p = path(dir.path(), "t");
        let mut r = read_record(&p).unwrap();
        r.token = super::super::TOKEN_MAX;
        let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        write_record(&f, &r).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let err = break_lock(dir.path(), "t", "ops", "stuck").unwrap_err();
        assert!(err.contains(&p.display().to_string()), "{err}");
        assert!(err.contains(&super::super::TOKEN_MAX.to_string()), "{err}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), text);
    }
}
