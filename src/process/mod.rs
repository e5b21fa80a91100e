//! Child processes (no Rhai in here): the allow-list check, resolving a
//! program on runbook's own `PATH`, spawning it in its own process group
//! (killed on drop, timeout or cancel), and capturing its output with a
//! cap that keeps the head and the tail.

pub mod cancel;
pub mod exec;
pub mod git;

use parking_lot::Mutex;
use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// Bytes of a child's stdout (and, separately, stderr) kept: the first
/// half and the last half of this; what lies between is dropped and
/// counted. 8 MiB holds any `terraform output -json` or `helm status -o
/// json` a playbook parses, and bounds memory against a child that prints
/// without end.
pub const CAPTURE_CAP: usize = 8 * 1024 * 1024;

/// Refuse a program that is not a bare name on `allow`.
pub fn check_allowed(allow: &[String], program: &str) -> Result<(), String> {
    if program.contains('/') {
        return Err(format!(
            "exec: '{program}' is a path; give the program's name and put it on PATH (the allow-list holds names)"
        ));
    }
    if !allow.iter().any(|a| a == program) {
        return Err(format!(
            "exec: '{program}' is not on the allow-list ({}); allow it with --allow {program} or RUNBOOK_ALLOW={program}",
            allow.join(", ")
        ));
    }
    Ok(())
}

/// Find `program` (a bare name) on `path` (a `PATH` value): the first
/// executable regular file. Resolved once, by runbook, before the child's
/// environment is applied, so a `PATH` handed to the child cannot make an
/// allowed name run another binary.
pub fn resolve(program: &str, path: Option<&OsStr>) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let path = path.unwrap_or_default();
    for dir in std::env::split_paths(path) {
        // An empty entry means the current folder to a shell; not here.
        if dir.as_os_str().is_empty() || !dir.is_absolute() {
            continue;
        }
        let cand = dir.join(program);
        if let Ok(m) = std::fs::metadata(&cand) {
            if m.is_file() && m.permissions().mode() & 0o111 != 0 {
                return Ok(cand);
            }
        }
    }
    Err(format!(
        "exec: '{program}' was not found on runbook's PATH; install it or fix PATH (a PATH given in `env` applies to the child only, not to finding the program)"
    ))
}

/// One child to run.
#[derive(Debug, Default, Clone)]
pub struct Spec {
    /// The program's name as the playbook gave it (also the child's `argv[0]`).
    pub program: String,
    /// Its resolved path (see [`resolve`]).
    pub path: PathBuf,
    /// Arguments after the program.
    pub args: Vec<String>,
    /// Variables set for the child, over the inherited environment.
    pub env: Vec<(String, String)>,
    /// Inherited variables removed (e.g. secrets).
    pub env_remove: Vec<OsString>,
    /// Working directory.
    pub cwd: PathBuf,
    /// Text on stdin (else stdin is /dev/null).
    pub stdin: Option<String>,
    /// Capture cap per stream (see [`CAPTURE_CAP`]).
    pub cap: usize,
}

/// One stream's captured output.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Captured {
    /// The text kept (head, a marker, tail when bytes were dropped).
    pub text: String,
    /// How many bytes were dropped from the middle.
    pub dropped: u64,
}

/// What a child did.
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Its stdout.
    pub stdout: Captured,
    /// Its stderr.
    pub stderr: Captured,
}

/// Keeps the first and last `cap / 2` bytes of a stream.
struct HeadTail {
    head: Vec<u8>,
    tail: Vec<u8>,
    half: usize,
    total: u64,
}

impl HeadTail {
    fn new(cap: usize) -> HeadTail {
        HeadTail {
            head: Vec::new(),
            tail: Vec::new(),
            half: (cap / 2).max(1),
            total: 0,
        }
    }

    fn push(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        if self.head.len() < self.half {
            let n = (self.half - self.head.len()).min(data.len());
            self.head.extend_from_slice(&data[..n]);
            data = &data[n..];
        }
        if data.len() >= self.half {
            self.tail.clear();
            self.tail.extend_from_slice(&data[data.len() - self.half..]);
            return;
        }
        self.tail.extend_from_slice(data);
        // Trim in batches: at most 2 × half is ever held for the tail.
        if self.tail.len() > 2 * self.half {
            let cut = self.tail.len() - self.half;
            self.tail.drain(..cut);
        }
    }

    fn finish(mut self) -> Captured {
        if self.tail.len() > self.half {
            let cut = self.tail.len() - self.half;
            self.tail.drain(..cut);
        }
        let kept = (self.head.len() + self.tail.len()) as u64;
        let dropped = self.total - kept;
        let mut text = String::from_utf8_lossy(&self.head).into_owned();
        if dropped > 0 {
            text.push_str(&format!(
                "\n… [runbook dropped {dropped} bytes of output here: over the {} capture cap; the first and last {} are kept] …\n",
                crate::fsread::fmt_bytes(2 * self.half as u64),
                crate::fsread::fmt_bytes(self.half as u64),
            ));
        }
        text.push_str(&String::from_utf8_lossy(&self.tail));
        Captured { text, dropped }
    }
}

/// Read a stream to its end, keeping head and tail.
async fn capture(stream: Option<impl AsyncRead + Unpin>, cap: usize) -> std::io::Result<Captured> {
    let mut ht = HeadTail::new(cap);
    if let Some(mut s) = stream {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = s.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            ht.push(&buf[..n]);
        }
    }
    Ok(ht.finish())
}

/// The set of running process groups (the run's, killed on cancel).
pub type Groups = Mutex<HashSet<i32>>;

/// Kill a process group with SIGKILL.
pub fn kill_group(pgid: i32) {
    if pgid > 0 {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pgid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Removes the group from the set; kills it unless the child finished.
struct GroupGuard<'a> {
    groups: &'a Groups,
    pgid: i32,
    done: bool,
}

impl Drop for GroupGuard<'_> {
    fn drop(&mut self) {
        self.groups.lock().remove(&self.pgid);
        if !self.done {
            kill_group(self.pgid);
        }
    }
}

/// Run `spec` in its own process group, registered in `groups` while it
/// runs, and capture its output. The caller bounds it in time: dropping
/// the future kills the whole group.
pub async fn run(spec: &Spec, groups: &Groups) -> Result<Output, String> {
    let program = &spec.program;
    let mut cmd = tokio::process::Command::new(&spec.path);
    cmd.arg0(program);
    for k in &spec.env_remove {
        cmd.env_remove(k);
    }
    cmd.args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(&spec.cwd)
        .stdin(if spec.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound if !spec.cwd.is_dir() => format!(
            "exec: the working directory '{}' of '{program}' does not exist",
            spec.cwd.display()
        ),
        _ => format!(
            "exec: could not start '{program}' ({}): {e}",
            spec.path.display()
        ),
    })?;
    let pgid = child.id().map(|p| p as i32).unwrap_or(0);
    let mut guard = GroupGuard {
        groups,
        pgid,
        done: false,
    };
    if pgid > 0 {
        groups.lock().insert(pgid);
    }
    let stdin = child.stdin.take();
    let text = spec.stdin.clone();
    let feed = async move {
        if let (Some(text), Some(mut stdin)) = (text, stdin) {
            // A child that exits without reading its stdin is not an error.
            let _ = stdin.write_all(text.as_bytes()).await;
        }
    };
    let (_, out, err) = tokio::join!(
        feed,
        capture(child.stdout.take(), spec.cap),
        capture(child.stderr.take(), spec.cap)
    );
    let read_err =
        |e: std::io::Error| format!("exec: reading the output of '{program}' failed: {e}");
    let (stdout, stderr) = (out.map_err(read_err)?, err.map_err(read_err)?);
    let status = child
        .wait()
        .await
        .map_err(|e| format!("exec: waiting for '{program}' failed: {e}"))?;
    guard.done = true;
    Ok(Output {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
    })
}

/// Whether `dir` (absolute) lies inside `root` once symlinks are resolved.
pub fn inside(root: &Path, dir: &Path) -> Result<bool, String> {
    let root = root
        .canonicalize()
        .map_err(|e| format!("the working directory is not readable: {e}"))?;
    let real = dir
        .canonicalize()
        .map_err(|e| format!("'{}' cannot be resolved: {e}", dir.display()))?;
    Ok(real.starts_with(root))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_and_tail_are_kept_and_the_middle_counted() {
        let mut ht = HeadTail::new(8);
        for chunk in [&b"0123"[..], b"456789", b"abcdefgh", b"XYZ"] {
            ht.push(chunk);
        }
        let c = ht.finish();
        assert_eq!(c.dropped, 21 - 8);
        assert!(
            c.text.starts_with("0123\n… [runbook dropped 13 bytes"),
            "{}",
            c.text
        );
        assert!(c.text.ends_with("] …\nhXYZ"), "{}", c.text);
        let mut small = HeadTail::new(8);
        small.push(b"abc");
        assert_eq!(
            small.finish(),
            Captured {
                text: "abc".into(),
                dropped: 0
            }
        );
        // Exactly the cap: nothing dropped, nothing duplicated.
        let mut full = HeadTail::new(8);
        full.push(b"0123");
        full.push(b"4567");
        assert_eq!(full.finish().text, "01234567");
    }

    #[test]
    fn programs_resolve_on_the_given_path_only() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("tool");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let plain = dir.path().join("data");
        std::fs::write(&plain, "").unwrap();
        let p = std::env::join_paths([Path::new("/nonexistent"), dir.path()]).unwrap();
        assert_eq!(resolve("tool", Some(&p)).unwrap(), exe);
        assert!(resolve("data", Some(&p)).is_err(), "not executable");
        assert!(resolve("tool", Some(OsStr::new("/nonexistent"))).is_err());
        assert!(resolve("tool", Some(OsStr::new(""))).is_err());
    }

    #[test]
    fn only_bare_allowed_names_pass() {
        let allow = vec!["git".to_string()];
        assert!(check_allowed(&allow, "git").is_ok());
        assert!(check_allowed(&allow, "./git")
            .unwrap_err()
            .contains("is a path"));
        assert!(check_allowed(&allow, "sh")
            .unwrap_err()
            .contains("not on the allow-list"));
    }

    #[tokio::test]
    async fn a_child_printing_a_lot_is_captured_within_the_cap() {
        let spec = Spec {
            program: "sh".into(),
            path: resolve("sh", std::env::var_os("PATH").as_deref()).unwrap(),
            // 4 MiB of 'y' lines on stdout, a word on stderr.
            args: vec![
                "-c".into(),
                "head -c 4194304 /dev/zero | tr '\\0' y; echo done >&2".into(),
            ],
            cwd: std::env::temp_dir(),
            cap: 64 * 1024,
            ..Spec::default()
        };
        let groups = Groups::default();
        let out = run(&spec, &groups).await.unwrap();
        assert_eq!(out.code, 0);
        assert_eq!(out.stdout.dropped, 4 * 1024 * 1024 - 64 * 1024);
        assert!(out.stdout.text.len() < 70 * 1024);
        assert_eq!(out.stderr.text, "done\n");
        assert!(groups.lock().is_empty(), "the group is deregistered");
    }
}
