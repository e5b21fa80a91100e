//! No input aborts the process: no panic (101), no stack overflow (134),
//! no crash (139); every failure path cleans up (artifacts taken back).

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{wait_output, Output, Project};

#[track_caller]
fn no_abort(out: &Output) {
    assert!(
        ![101, 134, 139].contains(&out.code) && !out.stderr.contains("panicked"),
        "aborted with {}:\n{}",
        out.code,
        out.stderr
    );
}

#[test]
fn a_value_that_contains_itself_is_an_error_and_the_artifact_goes() {
    for conv in [
        "to_json(m)",
        "m.to_json()",
        "log_event(\"e\", m)",
        "output(\"o\", m)",
        "write_json(\"x.json\", m)",
    ] {
        let p = Project::new();
        p.file(
            "pb.rhai",
            &format!("write_json(\"a.json\", #{{ a: 1 }});\nlet m = #{{}}; let f = || m; m.f = f;\nprint(m);\n{conv};\n"),
        );
        let out = p.run(&["pb.rhai"]);
        no_abort(&out);
        out.code(1).has("cannot be written as JSON");
        assert!(p.read("a.json").is_none(), "{conv}: the artifact stayed");
    }
}

#[test]
fn huge_and_odd_numbers_are_errors() {
    for (script, want) in [
        ("sleep(1e20);", "from 0 to a week"),
        ("sleep(-1.0);", "from 0 to a week"),
        ("sleep(9223372036854775807);", "from 0 to a week"),
        ("sleep(0.0/0.0);", "from 0 to a week"),
    ] {
        let p = Project::new();
        p.file("pb.rhai", script);
        let out = p.run(&["pb.rhai"]);
        no_abort(&out);
        out.code(1).has(want);
    }
}

#[test]
fn a_deep_copy_loop_ends_at_the_cpu_budget() {
    let mut p = Project::new();
    p.env("RUNBOOK_MAX_CPU_SECONDS", "1");
    p.file(
        "pb.rhai",
        "write_json(\"a.json\", #{ a: 1 });\nlet a = []; loop { a = [a]; }\n",
    );
    let out = p.run(&["pb.rhai"]);
    no_abort(&out);
    out.code(1).has("RUNBOOK_MAX_CPU_SECONDS");
    assert!(p.read("a.json").is_none());
}

/// Run with stdout a pipe whose reading end is already closed (`runbook …
/// | true` where `true` has gone): every write to it fails with EPIPE.
fn run_with_closed_stdout(p: &Project, args: &[&str]) -> Output {
    let started = Instant::now();
    let (read_end, write_end) = nix::unistd::pipe().unwrap();
    drop(read_end);
    let mut cmd = p.command(args);
    cmd.stdout(Stdio::from(write_end));
    let child = cmd.spawn().unwrap();
    // The parent's copy of the write end went into `cmd`; drop it.
    drop(cmd);
    wait_output(child, Duration::from_secs(60), started)
}

#[test]
fn a_closed_stdout_ends_the_run_quietly_with_141() {
    let p = Project::new();
    p.file(
        "pb.rhai",
        "write_json(\"a.json\", #{ a: 1 });\noutput(\"o\", \"x\");\nfor i in 0..100000 { print(`line ${i}`); }\n",
    );
    let out = run_with_closed_stdout(&p, &["pb.rhai"]);
    no_abort(&out);
    assert_eq!(out.code, 141, "{}", out.stderr);
    assert!(p.read("a.json").is_none(), "the artifact stayed");
    for args in [
        &["--help"][..],
        &["doc"],
        &["completions", "bash"],
        &["pb.rhai", "--help"],
    ] {
        let out = run_with_closed_stdout(&p, args);
        no_abort(&out);
        assert_eq!(out.code, 141, "{args:?}: {}", out.stderr);
    }
}

#[test]
fn a_playbook_that_is_not_a_file_is_refused_before_reading() {
    let p = Project::new();
    for (path, want) in [("/dev/zero", "not a regular file"), ("/", "is a folder")] {
        let started = Instant::now();
        let child = p.command(&[path]).spawn().unwrap();
        let out = wait_output(child, Duration::from_secs(20), started);
        no_abort(&out);
        out.code(2).has(want);
    }
    // Rhai counts lines in 16 bits: a longer playbook cannot be reported on.
    p.file("long.rhai", &"let x = 1;\n".repeat(70_000));
    let out = p.run(&["long.rhai"]);
    out.code(2).has("70000 lines");
}

#[test]
fn dry_run_false_means_false() {
    let p = Project::new();
    p.file("pb.rhai", "print(`dry=${is_dry_run()}`);");
    p.run(&["pb.rhai", "--dry-run=false"])
        .code(0)
        .has("dry=false");
    p.run(&["pb.rhai", "--dry-run=true"])
        .code(0)
        .has("dry=true");
    p.run(&["pb.rhai", "--dry-run"]).code(0).has("dry=true");
    p.run(&["pb.rhai", "--dry-run=maybe"])
        .code(2)
        .has("--dry-run=maybe");
}
