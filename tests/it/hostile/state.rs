//! A state folder no one else controls (issue 18): created 0700, refused
//! when others own it or may write to it, its files never followed through
//! a symlink, and nothing in it (nor a `*.test.rhai`) can hang a run by
//! being a FIFO.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::{Duration, Instant};

use crate::support::{wait_output, Output, Project};

const LOCKED: &str = "lock(\"demo\");\nwrite_json(\"a.json\", #{ a: 1 });\n";

/// Run with a 15 s bound: a hang fails the test instead of stalling it.
fn run_bounded(p: &Project, args: &[&str]) -> Output {
    let mut cmd = p.command(args);
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let started = Instant::now();
    wait_output(cmd.spawn().unwrap(), Duration::from_secs(15), started)
}

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().mode() & 0o7777
}

#[test]
fn the_state_folder_is_created_0700() {
    let p = Project::new();
    p.file("pb.rhai", LOCKED);
    p.run(&["pb.rhai"]).code(0);
    for d in [".runbook", ".runbook/locks", ".runbook/ledger"] {
        assert_eq!(mode(&p.path().join(d)), 0o700, "{d}");
    }
    for f in [".runbook/locks/demo.lock", ".runbook/ledger/demo.jsonl"] {
        assert_eq!(mode(&p.path().join(f)) & 0o077, 0, "{f}");
    }
}

#[test]
fn a_state_folder_others_can_write_is_refused_with_the_fix() {
    let p = Project::new();
    p.file("pb.rhai", LOCKED);
    let state = p.path().join(".runbook");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
    p.run(&["pb.rhai"])
        .code(1)
        .has("writable by others")
        .has("chmod 700");
    assert!(p.read("a.json").is_none(), "no mutation without the lock");
    assert!(!state.join("locks/demo.lock").exists());
    p.run(&["lock", "status", "demo"]).code(1).has("chmod 700");
}

#[test]
fn a_state_folder_another_user_owns_is_refused() {
    let p = Project::new();
    p.file("pb.rhai", LOCKED);
    let state = p.path().join(".runbook");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
    // Only root can give a folder away: as another user this is not testable.
    if std::os::unix::fs::chown(&state, Some(65534), Some(65534)).is_err() {
        eprintln!("skipped: chown needs root");
        return;
    }
    p.run(&["pb.rhai"])
        .code(1)
        .has("is owned by uid 65534, not by this user");
    assert!(p.read("a.json").is_none());
}

#[test]
fn planted_symlinks_are_refused_and_their_targets_untouched() {
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();

    // The lock file.
    let p = Project::new();
    p.file("pb.rhai", LOCKED);
    p.run(&["history", "demo"]); // nothing yet; must not create anything odd
    std::fs::create_dir_all(p.path().join(".runbook/locks")).unwrap();
    std::os::unix::fs::symlink(&victim, p.path().join(".runbook/locks/demo.lock")).unwrap();
    p.run(&["pb.rhai"]).code(1).has("symlink");
    assert!(p.read("a.json").is_none());
    p.run(&["lock", "break", "demo", "--reason", "x"]);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");

    // The ledger.
    let p = Project::new();
    p.file("pb.rhai", LOCKED);
    std::fs::create_dir_all(p.path().join(".runbook/ledger")).unwrap();
    std::os::unix::fs::symlink(&victim, p.path().join(".runbook/ledger/demo.jsonl")).unwrap();
    let out = p.run(&["pb.rhai"]);
    out.has("symlink");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    p.run(&["history", "demo"]).code(1).has("symlink");
}

#[test]
fn a_fifo_as_lock_file_ledger_or_test_file_never_hangs() {
    let fifo = |p: &Project, rel: &str| {
        let path = p.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::S_IRWXU).unwrap();
    };
    let p = Project::new();
    p.file("pb.rhai", LOCKED);
    fifo(&p, ".runbook/locks/demo.lock");
    run_bounded(&p, &["pb.rhai"])
        .code(1)
        .has("not a regular file");
    run_bounded(&p, &["lock", "status", "demo"])
        .code(1)
        .has("not a regular file");

    let p = Project::new();
    p.file("pb.rhai", LOCKED);
    fifo(&p, ".runbook/ledger/demo.jsonl");
    // The run itself succeeds; its record cannot be written, and says so.
    run_bounded(&p, &["pb.rhai"]).has("not a regular file");
    run_bounded(&p, &["history", "demo"])
        .code(1)
        .has("not a regular file");

    let p = Project::new();
    fifo(&p, "x.test.rhai");
    run_bounded(&p, &["test", "."]).has("FIFO");
    let p = Project::new();
    std::os::unix::fs::symlink("/dev/zero", p.path().join("z.test.rhai")).unwrap();
    run_bounded(&p, &["test", "."]).has("character device");
}
