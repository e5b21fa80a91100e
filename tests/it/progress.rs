//! Progress on long waits: a progress line on a person's terminal (run
//! under a pseudo-terminal with util-linux `script`), plain log lines when
//! stderr is a pipe or the environment says CI.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support;

use support::{pb, Project};

/// Port discovery that never finds its file: two attempts, a wait between.
const DISCOVER: &str = "let ep = discover_port(#{ internal_port: 7072, source: #{ file: \"nope.json\" }, max_elapsed: \"1.5s\", initial_interval: \"0.5s\", jitter: false });\n";

/// Three rounds of a gate, 0.4 s apart.
const GATES: &str =
    "let g = gate(\"ok\", #{ check: || true, interval: \"0.4s\", count: 3 });\nprint(verify([g]).status);\n";

#[test]
fn off_a_terminal_long_waits_write_plain_lines() {
    let mut p = pb(DISCOVER);
    p.env("CI", "");
    p.file("gates.rhai", GATES);
    let out = p.run(&["pb.rhai"]);
    out.code(1)
        .has("discover_port: attempt 1 (0s): nope.json does not exist yet\n")
        .has("discover_port: attempt 2 (")
        .lacks("next try in")
        .lacks("\x1b")
        .lacks("\r");
    let out = p.run(&["gates.rhai"]);
    out.code(0)
        .lacks("verifying 1 gate(s)")
        .lacks("\x1b")
        .lacks("\r");
    assert_eq!(
        out.stderr.matches("gate 'ok': true").count(),
        3,
        "{}",
        out.stderr
    );
}

/// Run `runbook ARGS` in `p` under a pseudo-terminal (util-linux
/// `script`; a missing one fails the test, naming the install). Bounded:
/// 30 s.
fn under_a_pty(p: &Project, args: &str) -> String {
    let base = p.command(&[]);
    let mut cmd = Command::new("script");
    cmd.args([
        "-qec",
        &format!("{} {args}", support::bin::bin().display()),
        "/dev/null",
    ])
    .current_dir(p.path())
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    for (k, v) in base.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => panic!(
            "cannot run `script` ({e}): install it with `apt-get install -y bsdutils` (util-linux's `script`)"
        ),
    };
    let out = support::bin::wait_output(child, Duration::from_secs(30), Instant::now());
    out.stdout
}

#[test]
fn on_a_terminal_a_progress_line_and_in_ci_plain_lines() {
    let mut p = pb(DISCOVER);
    p.file("gates.rhai", GATES);
    p.env("CI", "");
    let tty = under_a_pty(&p, "pb.rhai");
    // The spinner redraws its line in place, and log lines print above it.
    assert!(
        tty.contains("waiting for the external port of 7072 (file nope.json): next try in"),
        "{tty}"
    );
    assert!(tty.contains("\r\x1b[2K"), "{tty}");
    assert!(tty.contains("discover_port: \x1b[0mattempt 2 ("), "{tty}");
    let tty = under_a_pty(&p, "gates.rhai");
    assert!(
        tty.contains("verifying 1 gate(s): 1 of 3 measurements, last gate 'ok': true"),
        "{tty}"
    );
    // Each log line was written with the progress line lifted, not after it.
    for line in tty.lines().filter(|l| l.contains("gate 'ok': true (check")) {
        let last = line.rsplit("\x1b[2K").next().unwrap_or_default();
        assert!(
            last.contains("gate 'ok': true") && !last.contains("verifying"),
            "{line:?}"
        );
    }

    for ci in [("CI", "true"), ("CI", "1")] {
        p.env(ci.0, ci.1);
        let tty = under_a_pty(&p, "pb.rhai");
        assert!(tty.contains("attempt 2 ("), "{ci:?}: {tty}");
        assert!(!tty.contains("next try in"), "{ci:?}: {tty}");
        assert!(!tty.contains("\r\x1b[2K"), "{ci:?}: {tty}");
        let tty = under_a_pty(&p, "gates.rhai");
        assert!(tty.contains("passed"), "{ci:?}: {tty}");
        assert!(!tty.contains("verifying 1 gate(s)"), "{ci:?}: {tty}");
    }
}

#[test]
fn a_rollout_wait_shows_a_progress_line_on_a_terminal_only() {
    use support::kube::{habit_tracker, FakeKube, Rollout};
    let ns = "habit-tracker";
    let kube = FakeKube::start(habit_tracker(
        ns,
        30080,
        Rollout::Ready,
        Rollout::Stuck("ImagePullBackOff"),
    ));
    let mut p = pb(&format!(
        "kube_wait_rollout(\"{ns}\", \"habit-tracker-frontend\", #{{ timeout: \"1.5s\" }});\n"
    ));
    let kc = kube.kubeconfig(p.path(), "minikube");
    p.env("KUBECONFIG", kc.to_str().unwrap()).env("CI", "");
    let want = "waiting for Deployment habit-tracker/habit-tracker-frontend to roll out";
    let tty = under_a_pty(&p, "pb.rhai");
    assert!(tty.contains(want), "{tty}");
    assert!(tty.contains("ImagePullBackOff"), "{tty}");
    p.env("CI", "true");
    let tty = under_a_pty(&p, "pb.rhai");
    assert!(
        tty.contains("ImagePullBackOff") && !tty.contains(want),
        "{tty}"
    );
    let out = p.run(&["pb.rhai"]);
    out.code(1).lacks(want).lacks("\x1b");
}

/// On a terminal the pretty format keeps runbook's own colours while a
/// message's escape sequences (untrusted text) are shown escaped: the
/// terminal-safety rule applies to the text, never to the styling around it.
#[test]
fn on_a_terminal_colours_stay_and_untrusted_escapes_are_shown_escaped() {
    let mut p = pb("log_info(\"title \\x1b]0;pwned\\x07 and \\x1b[8mhidden\");\n");
    p.env("CI", "");
    let tty = under_a_pty(&p, "pb.rhai");
    assert!(
        tty.contains("\x1b[32minfo \x1b[0m"),
        "runbook's colours: {tty:?}"
    );
    assert!(
        tty.contains("title \\x1b]0;pwned\\x07 and \\x1b[8mhidden"),
        "{tty:?}"
    );
    assert!(
        !tty.contains("\x1b]0;pwned"),
        "a raw OSC reached the terminal: {tty:?}"
    );
    assert!(
        !tty.contains("\\x1b[2m"),
        "runbook's own styling was escaped: {tty:?}"
    );
}
