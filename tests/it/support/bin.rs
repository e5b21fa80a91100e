//! The integration-test harness: write a playbook (and any files) into a
//! temporary project, run the real `runbook` binary there, and assert on
//! its exit code, stdout, stderr and files.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary under test: this build's, or `RUNBOOK_TEST_BIN` (to run a
/// suite against another build, e.g. to see a regression test fail on the
/// code before its fix).
pub fn bin() -> PathBuf {
    std::env::var_os("RUNBOOK_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_runbook")))
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A secret value that must never appear in any output.
pub const CANARY: &str = "canary-7f3c9e1d-secret";

/// A temporary project folder with a playbook in it.
pub struct Project {
    pub dir: tempfile::TempDir,
    env: HashMap<String, String>,
    path_prepend: Vec<PathBuf>,
}

/// What a run did.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Output {
    /// Everything the run printed.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// Assert the exit code, showing the output when it differs.
    #[track_caller]
    pub fn code(&self, want: i32) -> &Self {
        assert_eq!(
            self.code, want,
            "exit code\n--- stdout:\n{}\n--- stderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Assert the output contains `s`.
    #[track_caller]
    pub fn has(&self, s: &str) -> &Self {
        assert!(
            self.all().contains(s),
            "output lacks {s:?}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Assert the output does not contain `s`.
    #[track_caller]
    pub fn lacks(&self, s: &str) -> &Self {
        assert!(
            !self.all().contains(s),
            "output has {s:?}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

impl Project {
    /// An empty project; the repo's `infra/` is copied in (playbooks use it).
    pub fn new() -> Project {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = Project {
            dir,
            env: HashMap::new(),
            path_prepend: Vec::new(),
        };
        p.env_clear_defaults()
    }

    fn env_clear_defaults(mut self) -> Project {
        // No test inherits CI's GitHub variables by accident.
        for k in ["GITHUB_ACTIONS", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY"] {
            self.env.insert(k.into(), String::new());
        }
        self.env.insert("RUNBOOK_LOG".into(), "info".into());
        self
    }

    /// The project's folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Write a file (folders created).
    pub fn file(&self, rel: &str, text: &str) -> &Self {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
        self
    }

    /// Copy a file or folder from the repository.
    pub fn copy_from_repo(&self, rel: &str) -> &Self {
        copy_tree(&repo().join(rel), &self.path().join(rel));
        self
    }

    /// Read a file of the project, if it exists.
    pub fn read(&self, rel: &str) -> Option<String> {
        std::fs::read_to_string(self.path().join(rel)).ok()
    }

    /// Set an environment variable for runs.
    pub fn env(&mut self, k: &str, v: &str) -> &mut Self {
        self.env.insert(k.into(), v.into());
        self
    }

    /// Put a folder first on PATH for runs.
    pub fn path_prepend(&mut self, dir: PathBuf) -> &mut Self {
        self.path_prepend.push(dir);
        self
    }

    /// Put the repo's stand-in CLIs (terraform, provider-services, …) on PATH,
    /// with their state in `<project>/standin`.
    pub fn standins(&mut self) -> &mut Self {
        let state = self.path().join("standin");
        std::fs::create_dir_all(&state).unwrap();
        self.env("STANDIN_DIR", state.to_str().unwrap());
        self.path_prepend(repo().join("tests/standins/bin"))
    }

    /// The calls the stand-in CLIs recorded (`standin/calls.jsonl`).
    pub fn standin_calls(&self) -> Vec<serde_json::Value> {
        self.read("standin/calls.jsonl")
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }

    /// The command for a run, not yet started.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin());
        cmd.args(args).current_dir(self.path());
        let mut path: Vec<String> = self
            .path_prepend
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        path.push(std::env::var("PATH").unwrap_or_default());
        cmd.env("PATH", path.join(":"));
        for (k, v) in &self.env {
            if v.is_empty() {
                cmd.env_remove(k);
            } else {
                cmd.env(k, v);
            }
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Start `runbook ARGS…` in the project in the background; see [`finish`].
    pub fn start(&self, args: &[&str]) -> (Child, Instant) {
        let child = self.command(args).spawn().expect("spawn runbook");
        (child, Instant::now())
    }

    /// Run `runbook ARGS…` in the project and wait (bounded: 120 s).
    pub fn run(&self, args: &[&str]) -> Output {
        let started = Instant::now();
        let child = self.command(args).spawn().expect("spawn runbook");
        wait_output(child, Duration::from_secs(120), started)
    }
}

/// A project with the playbook `pb.rhai`.
pub fn pb(src: &str) -> Project {
    let p = Project::new();
    p.file("pb.rhai", src);
    p
}

/// Wait for a run [`Project::start`] started (bounded: 60 s).
pub fn finish((child, started): (Child, Instant)) -> Output {
    wait_output(child, Duration::from_secs(60), started)
}

/// Wait for a child with a bound, collecting its output.
pub fn wait_output(mut child: Child, bound: Duration, started: Instant) -> Output {
    /// Read a stream to its end on a thread (nothing when it is not piped).
    fn drain(r: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = r {
                let _ = r.read_to_string(&mut s);
            }
            s
        })
    }
    let t_out = drain(child.stdout.take());
    let t_err = drain(child.stderr.take());
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if started.elapsed() > bound {
            let _ = child.kill();
            panic!("runbook did not finish within {bound:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = started.elapsed();
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    Output {
        code,
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
        elapsed,
    }
}

fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap().flatten() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        }
    } else {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap();
    }
}
