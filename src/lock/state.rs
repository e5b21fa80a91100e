//! The state folder (`.runbook/` or `RUNBOOK_STATE_DIR`) holds the lock
//! files and ledgers, so whoever controls it controls the fencing and the
//! history: it is created 0700 and, like ssh does with `~/.ssh`, refused
//! when another user owns it or others may write to it. Its files are
//! opened with `O_NOFOLLOW` (a planted symlink is refused, its target left
//! untouched) and `O_NONBLOCK` (a planted FIFO cannot hang the run), and
//! used only when the handle is a regular file.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use nix::fcntl::OFlag;

/// Make sure `state/sub` exists (created 0700) and that neither the state
/// folder nor `sub` can be changed by anyone but this user.
pub fn prepare(state: &Path, sub: &str) -> Result<(), String> {
    let dir = state.join(sub);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| format!("cannot create the state folder {}: {e}", dir.display()))?;
    check_dir(state, true)?;
    check_dir(&dir, false)
}

/// Check the state folder and `sub` if they exist (reads create nothing).
pub fn check_existing(state: &Path, sub: &str) -> Result<(), String> {
    if std::fs::symlink_metadata(state).is_ok() {
        check_dir(state, true)?;
    }
    let dir = state.join(sub);
    if std::fs::symlink_metadata(&dir).is_ok() {
        check_dir(&dir, false)?;
    }
    Ok(())
}

/// A folder only this user controls: ours, not group/world-writable, and
/// (below the state folder itself, which may be a symlink the user made)
/// not a symlink.
fn check_dir(dir: &Path, follow: bool) -> Result<(), String> {
    let shown = dir.display();
    let meta = if follow {
        std::fs::metadata(dir)
    } else {
        std::fs::symlink_metadata(dir)
    }
    .map_err(|e| format!("cannot inspect the state folder {shown}: {e}"))?;
    if !meta.is_dir() {
        return Err(format!(
            "the state folder {shown} is not a folder{}; remove it (runbook recreates it) or set RUNBOOK_STATE_DIR to a folder of your own",
            if meta.file_type().is_symlink() { " (a symlink)" } else { "" }
        ));
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(format!(
            "the state folder {shown} is owned by uid {}, not by this user (uid {me}): another user could forge its locks and ledgers; remove it (runbook recreates it 0700) or `chown {me} {shown}`",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "the state folder {shown} is writable by others (mode {:o}): they could replace its locks and ledgers; `chmod 700 {shown}`",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

/// How a state file is opened.
#[derive(Clone, Copy)]
pub enum Mode {
    /// Read only; a missing file is an error of kind NotFound.
    Read,
    /// Read and write, created 0600 when missing (a lock file).
    ReadWrite,
    /// Appended to, created 0600 when missing (a ledger).
    Append,
}

/// Open a file of the state folder: never through a symlink, never
/// blocking on a FIFO, and only when it is a regular file.
pub fn open(path: &Path, mode: Mode) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    match mode {
        Mode::Read => o.read(true),
        Mode::ReadWrite => o.read(true).write(true).create(true).truncate(false),
        Mode::Append => o.read(true).append(true).create(true),
    };
    o.mode(0o600)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).bits());
    let f = o.open(path).map_err(|e| {
        if e.raw_os_error() == Some(nix::libc::ELOOP) {
            std::io::Error::other(format!(
                "{} is a symlink; a state file is never followed out of the state folder: remove it",
                path.display()
            ))
        } else {
            e
        }
    })?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other(format!(
            "{} is not a regular file (a FIFO, device or folder was put there): remove it",
            path.display()
        )));
    }
    Ok(f)
}

/// Read a small state file whole (at most `cap` bytes), opened as [`open`].
pub fn read(path: &Path, cap: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let f = open(path, Mode::Read)?;
    let mut buf = Vec::new();
    f.take(cap + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > cap {
        return Err(std::io::Error::other(format!(
            "{} is over {cap} bytes: not a record runbook wrote",
            path.display()
        )));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn created_0700_and_refused_when_others_can_write() {
        let root = tempfile::tempdir().unwrap();
        let state = root.path().join("st");
        prepare(&state, "locks").unwrap();
        for d in [&state, &state.join("locks")] {
            assert_eq!(std::fs::metadata(d).unwrap().mode() & 0o777, 0o700);
        }
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = prepare(&state, "locks").unwrap_err();
        assert!(
            e.contains("writable by others") && e.contains("chmod 700"),
            "{e}"
        );
    }

    #[test]
    fn symlinks_and_fifos_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, "keep").unwrap();
        let link = dir.path().join("x.lock");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = open(&link, Mode::ReadWrite).unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        let fifo = dir.path().join("f.jsonl");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        for m in [Mode::Read, Mode::Append, Mode::ReadWrite] {
            let e = open(&fifo, m).unwrap_err();
            assert!(e.to_string().contains("not a regular file"), "{e}");
        }
    }
}
