//! Fencing at every change (issue 18): a lock broken, deleted or rewritten
//! while held refuses the holder's very next mutation, not its next
//! renewal (ttl/3, 20 s by default); the ledger records such a run as
//! `fenced`. A token never repeats and scripts never see it negative.

use std::time::{Duration, Instant};

use crate::support::{finish, Project};

/// Holds `demo` with the default ttl (renewal every 20 s: far beyond this
/// run), writes `a.json`, waits for the test to tamper, then tries `b.json`.
const HOLDER: &str = r#"
let l = lock("demo");
write_json("a.json", #{ token: l.token });
let n = 0;
while !file_exists("go") && n < 400 { sleep(0.025); n += 1; }
write_json("b.json", #{ token: l.token });
"#;

fn wait_for(p: &Project, rel: &str) {
    let t = Instant::now();
    while p.read(rel).is_none() {
        assert!(t.elapsed() < Duration::from_secs(20), "{rel} never came");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn last_result(p: &Project) -> String {
    let text = p.read(".runbook/ledger/demo.jsonl").unwrap_or_default();
    let last = text.lines().rev().find(|l| l.contains("\"event\":\"run\""));
    let v: serde_json::Value = serde_json::from_str(last.expect("a run record")).unwrap();
    v["result"].as_str().unwrap_or_default().to_string()
}

/// Start the holder, let `tamper` act on the held lock, then let it go on.
fn tampered(tamper: impl FnOnce(&Project)) -> (Project, crate::support::Output) {
    let p = Project::new();
    p.file("hold.rhai", HOLDER);
    let run = p.start(&["hold.rhai"]);
    wait_for(&p, "a.json");
    tamper(&p);
    p.file("go", "");
    let out = finish(run);
    (p, out)
}

/// A fenced run exits 75 (busy, retry later: another run holds the
/// target now), not 1.
fn assert_fenced(p: &Project, out: &crate::support::Output) {
    out.code(75)
        .has("lost the lock 'demo'")
        .has("refusing to run write_json");
    assert!(p.read("b.json").is_none(), "no mutation after the loss");
    assert_eq!(last_result(p), "fenced");
}

#[test]
fn a_break_fences_the_next_mutation_long_before_renewal() {
    let (p, out) = tampered(|p| {
        p.run(&["lock", "break", "demo", "--reason", "stuck"])
            .code(0);
    });
    assert_fenced(&p, &out);
    out.has("broken by");
}

#[test]
fn a_deleted_lock_file_fences_the_next_mutation() {
    let (p, out) = tampered(|p| {
        std::fs::remove_file(p.path().join(".runbook/locks/demo.lock")).unwrap();
    });
    assert_fenced(&p, &out);
    out.has("replaced or removed");
    // The counter went with the file; the next holder still goes on from
    // the ledger's highest token, never back to 1.
    p.file(
        "pb.rhai",
        "let l = lock(\"demo\");\nprint(\"token=\" + l.token);\n",
    );
    p.run(&["pb.rhai"]).code(0).has("token=2");
}

#[test]
fn a_lock_file_rewritten_in_place_with_another_token_fences() {
    let (p, out) = tampered(|p| {
        p.file(
            ".runbook/locks/demo.lock",
            r#"{"name":"demo","token":7,"held":true}"#,
        );
    });
    assert_fenced(&p, &out);
    out.has("fencing token 7");
}

#[test]
fn a_counter_that_cannot_grow_is_refused_and_no_token_is_negative() {
    for top in [u64::MAX, i64::MAX as u64] {
        let p = Project::new();
        p.file(
            ".runbook/locks/demo.lock",
            &format!(r#"{{"name":"demo","token":{top},"held":false}}"#),
        );
        p.file(
            "pb.rhai",
            "let l = lock(\"demo\");\nprint(\"token=\" + l.token);\nwrite_json(\"a.json\", #{ a: 1 });\n",
        );
        let out = p.run(&["pb.rhai"]);
        out.code(1).has("cannot grow").lacks("token=-");
        assert!(p.read("a.json").is_none(), "{top}: no mutation");
        // The counter was not moved back or wrapped.
        let rec = p.read(".runbook/locks/demo.lock").unwrap();
        assert!(rec.contains(&top.to_string()), "{top}: {rec}");
    }
}
