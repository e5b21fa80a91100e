//! The README's first command in a fresh copy of the repository leaves its
//! git status clean: runtime state (locks, ledger, endpoint.json) is
//! ignored, and none is committed.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support;

/// `git` in `dir`, its stdout; panics with stderr on failure.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .stdin(Stdio::null())
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_demo_in_a_fresh_copy_leaves_git_status_clean() {
    let repo = support::repo();
    let readme = std::fs::read_to_string(repo.join("README.md")).expect("README.md");
    // The README's first command is the demo this test runs.
    let first = readme
        .lines()
        .skip_while(|l| !l.starts_with("```sh"))
        .find(|l| l.starts_with("./demo/") || l.starts_with("bash demo/"))
        .expect("a demo command in the README");
    let script = first
        .trim_start_matches("bash ")
        .trim_start_matches("./")
        .trim();
    // A copy of the working tree's tracked files (uncommitted edits
    // included), committed in a new repository: what a fresh clone holds.
    let tmp = tempfile::tempdir().expect("temp dir");
    let copy = tmp.path();
    let files = git(&repo, &["ls-files", "-z"]);
    for rel in files.split('\0').filter(|f| !f.is_empty()) {
        let from = repo.join(rel);
        if !from.is_file() {
            continue; // deleted in the working tree
        }
        let to = copy.join(rel);
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::copy(&from, &to).expect("copy");
    }
    git(copy, &["init", "-q"]);
    git(copy, &["add", "-A"]);
    git(copy, &["commit", "-q", "-m", "fresh"]);
    assert_eq!(git(copy, &["status", "--porcelain"]), "");
    assert!(
        !copy.join(".runbook").exists(),
        "runtime state is committed: {}",
        git(copy, &["ls-files", ".runbook"])
    );

    // The demo, with this build instead of a release build (bounded).
    let started = Instant::now();
    let child = Command::new("bash")
        .arg(script)
        .current_dir(copy)
        .env("RUNBOOK_BIN", support::bin())
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITHUB_OUTPUT")
        .env_remove("GITHUB_STEP_SUMMARY")
        .env_remove("RUNBOOK_STATE_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash runs");
    let out = support::wait_output(child, Duration::from_secs(120), started);
    out.code(0).has("endpoint.json");
    assert!(
        copy.join(".runbook/ledger").is_dir(),
        "the demo keeps a ledger"
    );
    assert_eq!(
        git(copy, &["status", "--porcelain", "--untracked-files=all"]),
        "",
        "the demo left changes in a fresh copy"
    );
}
