//! Signals at every step: SIGHUP, SIGINT, SIGQUIT and SIGTERM each end the
//! run with 128 + the signal's number, kill the children and their
//! children, and take back the artifacts the run wrote.

use std::time::{Duration, Instant};

use crate::support::{wait_output, Project};

fn alive(pid: i32) -> bool {
    // A zombie is gone for our purposes: it runs nothing.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.split(' ').nth(2).is_none_or(|s| s != "Z"),
        Err(_) => false,
    }
}

fn wait_for_file(p: &Project, rel: &str) -> String {
    let started = Instant::now();
    loop {
        if let Some(s) = p.read(rel).filter(|s| s.ends_with('\n')) {
            return s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{rel} never appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

const STEPS: &[(&str, &str)] = &[
    // The script itself is waiting.
    ("sleeping", "write_json(\"a.json\", #{ a: 1 });\nwrite_json(\"ready\", 1);\nsleep(30);\n"),
    // A child (and its child) is running.
    (
        "child",
        "write_json(\"a.json\", #{ a: 1 });\nexec([\"sh\", \"-c\", \"sleep 30 & echo $! > grandchild.pid; echo $$ > child.pid; wait\"], #{ timeout: 60 });\n",
    ),
    // runbook's own child: `git rev-parse HEAD` for git_sha(), hung (the
    // fake `git` below).
    ("git", "write_json(\"a.json\", #{ a: 1 });\ngit_sha();\n"),
];

/// A `git` that starts a child of its own and hangs.
const HUNG_GIT: &str =
    "#!/bin/sh\nsleep 30 & echo $! > grandchild.pid; echo $$ > child.pid; wait\n";

#[test]
fn every_signal_at_every_step_cleans_up() {
    for (sig, code) in [
        (nix::sys::signal::Signal::SIGHUP, 129),
        (nix::sys::signal::Signal::SIGINT, 130),
        (nix::sys::signal::Signal::SIGQUIT, 131),
        (nix::sys::signal::Signal::SIGTERM, 143),
    ] {
        for (step, script) in STEPS {
            let mut p = Project::new();
            p.file("pb.rhai", script);
            if *step == "git" {
                p.file("fakebin/git", HUNG_GIT);
                let git = p.path().join("fakebin/git");
                std::fs::set_permissions(&git, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                    .unwrap();
                let dir = p.path().join("fakebin");
                p.path_prepend(dir).env("GITHUB_SHA", "");
            }
            let started = Instant::now();
            let child = p.command(&["pb.rhai", "--allow", "sh"]).spawn().unwrap();
            let pid = child.id() as i32;
            let pids: Vec<i32> = if *step != "sleeping" {
                wait_for_file(&p, "child.pid");
                ["child.pid", "grandchild.pid"]
                    .iter()
                    .map(|f| wait_for_file(&p, f).trim().parse().unwrap())
                    .collect()
            } else {
                wait_for_file(&p, "ready");
                Vec::new()
            };
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig).unwrap();
            let out = wait_output(child, Duration::from_secs(20), started);
            assert_eq!(out.code, code, "{sig} while {step}:\n{}", out.stderr);
            assert!(
                p.read("a.json").is_none(),
                "{sig} while {step}: the artifact stayed"
            );
            for pid in pids {
                let gone = Instant::now();
                while alive(pid) && gone.elapsed() < Duration::from_secs(5) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                assert!(
                    !alive(pid),
                    "{sig} while {step}: process {pid} was left running"
                );
            }
        }
    }
}
