//! The deployment ledger at scale and damaged: `runbook history` and
//! `ledger_history` read a long file from its end, only what they need,
//! and skip lines that are not records with one warning.

use crate::support;

use std::fmt::Write as _;

use support::{pb, Project};

/// Record `i` of a ledger, shaped like one a deploy writes (~330 bytes):
/// every third one failed, every fifth without a sha.
fn record(i: usize) -> String {
    let result = if i % 3 == 2 { "failed" } else { "ok" };
    let sha = if i % 5 == 4 {
        "null".to_string()
    } else {
        format!("\"{i:040x}\"")
    };
    format!(
        r#"{{"event":"run","target":"app","playbook":"playbooks/deploy.rhai","params":{{"sha":"{i:07x}","dseq":"123456","dry_run":false}},"actor":"ci-bot","run_url":"https://github.com/o/r/actions/runs/{i}","start":"s{i:06}","end":"2025-01-01T00:00:01Z","result":"{result}","token":{i},"previous_image":"ghcr.io/o/app:{p:07x}","sha":{sha},"image":"ghcr.io/o/app:{i:07x}","digest":"sha256:{i:064x}"}}"#,
        p = i.saturating_sub(1)
    )
}

/// A project whose `app` ledger holds `n` records (plus `extra` lines
/// after record `at`, written as given).
fn with_ledger(n: usize, extra: &[(usize, &[u8])]) -> Project {
    let p = Project::new();
    let mut bytes = Vec::with_capacity(n * 340);
    for i in 0..n {
        for (_, line) in extra.iter().filter(|(at, _)| *at == i) {
            bytes.extend_from_slice(line);
        }
        bytes.extend_from_slice(record(i).as_bytes());
        bytes.push(b'\n');
    }
    for (_, line) in extra.iter().filter(|(at, _)| *at >= n) {
        bytes.extend_from_slice(line);
    }
    let dir = p.path().join(".runbook/ledger");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("app.jsonl"), bytes).unwrap();
    p
}

fn starts(json: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r["start"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn ledger_history_of_100000_records_gives_the_newest_20() {
    let p = with_ledger(100_000, &[]);
    let j = p.run(&["history", "app", "--json", "--limit", "20"]);
    j.code(0);
    let want: Vec<String> = (99_980..100_000).map(|i| format!("s{i:06}")).collect();
    assert_eq!(starts(&j.stdout), want);
    assert_eq!(j.stderr, "");
    let t = p.run(&["history", "app", "--limit", "20"]);
    t.code(0);
    let lines: Vec<&str> = t.stdout.lines().collect();
    assert_eq!(lines.len(), 21, "{}", t.stdout);
    assert!(lines[0].starts_with("START"), "{}", t.stdout);
    assert!(
        lines[1].starts_with(
            "s099999  ok      99999  ci-bot  playbooks/deploy.rhai  ghcr.io/o/app:001869f"
        ),
        "newest first: {}",
        t.stdout
    );
    assert!(lines[20].starts_with("s099980"), "{}", t.stdout);
    assert_eq!(t.stderr, "");
}

#[test]
fn ledger_history_in_a_playbook_reads_6000_records_filtered_and_bounded() {
    let p = with_ledger(6_000, &[]);
    p.file(
        "look.rhai",
        r#"
let two = ledger_history("app", #{ limit: 2, result: "ok", has: "sha" });
log_info(`two: ${two.map(|r| r.start)}`);
let failed = ledger_history("app", #{ result: "failed" });
log_info(`failed: ${failed.len()} from ${failed[0].start} to ${failed[19].start}`);
let all = ledger_history("app");
log_info(`all: ${all.len()} from ${all[0].start} to ${all[999].start}`);
"#,
    );
    // 5999 failed (i % 3 == 2) and has no sha (i % 5 == 4): the newest
    // two are 5997 and 5998.
    p.run(&["look.rhai"])
        .code(0)
        .has(r#"two: ["s005997", "s005998"]"#)
        .has("failed: 20 from s005942 to s005999")
        .has("all: 1000 from s005000 to s005999")
        .lacks("skipped");
}

#[test]
fn ledger_history_refuses_a_bad_limit_and_an_answer_too_large_for_a_playbook() {
    let p = with_ledger(6_000, &[]);
    p.file("zero.rhai", r#"ledger_history("app", #{ limit: 0 });"#);
    p.run(&["zero.rhai"])
        .code(1)
        .has("ledger_history: option 'limit' is 0; give 1 to 10000");
    p.file("typo.rhai", r#"ledger_history("app", #{ limt: 2 });"#);
    p.run(&["typo.rhai"]).code(1).has("did you mean 'limit'");
    // 6,000 records of ~18 values each pass the engine's 100,000: named,
    // with the way out, before the engine refuses with no hint.
    p.file("all.rhai", r#"ledger_history("app", #{ limit: 10000 });"#);
    p.run(&["all.rhai"]).code(1).has(
        "ledger_history: the 6000 records of 'app' asked for hold 102000 values, more than a playbook value may (100000); ask for fewer with `limit` or narrow them with `result` and `has`",
    );
}

const BAD: [&[u8]; 4] = [
    b"\xff\xfe not utf-8\n",
    b"null\n",
    b"{\"result\": 5}\n",
    b"{\"result\":",
];

#[test]
fn bad_lines_first_in_the_middle_and_last_are_skipped_with_one_warning() {
    // \xff first, null and {"result": 5} in the middle, a torn line last.
    let p = with_ledger(10, &[(0, BAD[0]), (4, BAD[1]), (7, BAD[2]), (10, BAD[3])]);
    let file = p.path().join(".runbook/ledger/app.jsonl");
    let warning = format!(
        "warning: ledger {}: skipped 4 bad lines (first at line 1: not UTF-8); the other records are read. Move the bad lines out of the file to silence this\n",
        file.display()
    );
    let j = p.run(&["history", "app", "--json", "--limit", "100"]);
    j.code(0);
    let want: Vec<String> = (0..10).map(|i| format!("s{i:06}")).collect();
    assert_eq!(starts(&j.stdout), want);
    assert_eq!(j.stderr, warning);
    let t = p.run(&["history", "app"]);
    t.code(0);
    assert_eq!(t.stdout.lines().count(), 11, "{}", t.stdout);
    assert_eq!(t.stderr, warning);
    // Only the newest two: the scan stops before the torn line's
    // elders, but the torn line itself is met (one warning, line 14).
    let two = p.run(&["history", "app", "--json", "--limit", "2"]);
    assert_eq!(starts(&two.stdout), ["s000008", "s000009"]);
    assert!(
        two.stderr
            .contains("skipped 1 bad line (first at line 14: not JSON (EOF while parsing"),
        "{}",
        two.stderr
    );

    // A playbook reads them too, and a run that records appends after
    // the torn line, not onto it.
    let mut p = p;
    p.env("RUNBOOK_ALLOW", "sh");
    p.file(
        "deploy.rhai",
        r#"
let all = ledger_history("app");
log_info(`read ${all.len()}`);
lock("app");
ledger_note(#{ sha: "new", image: "app:new" });
exec(["sh", "-c", "true"]);
"#,
    );
    p.run(&["deploy.rhai"])
        .code(0)
        .has("read 10")
        .has("skipped 4 bad lines (first at line 1: not UTF-8)");
    let j = p.run(&["history", "app", "--json", "--limit", "1"]);
    let v: serde_json::Value = serde_json::from_str(&j.stdout).unwrap();
    assert_eq!(v[0]["sha"], "new", "{}", j.stdout);
    assert_eq!(v[0]["previous_image"], "ghcr.io/o/app:0000009");
    assert_eq!(j.stderr, "", "the torn line stays last but one and unread");
}

#[test]
fn a_record_larger_than_a_read_chunk_is_read_whole() {
    let mut big = record(5).replace(r#""event":"run""#, r#""event":"run","notes":"NOTES""#);
    let mut notes = String::new();
    for k in 0..30_000 {
        let _ = write!(notes, "n{k} ");
    }
    big = big.replace("NOTES", &notes);
    assert!(big.len() > 128 * 1024);
    let big = format!("{big}\n");
    let p = with_ledger(3, &[(3, big.as_bytes())]);
    let j = p.run(&["history", "app", "--json", "--limit", "2"]);
    j.code(0);
    assert_eq!(starts(&j.stdout), ["s000002", "s000005"]);
    assert!(j.stdout.contains("n29999 "));
    assert_eq!(j.stderr, "");
}

#[test]
fn a_playbook_without_a_ledger_reads_an_empty_one() {
    let p = pb(r#"log_info(`n=${ledger_history("app", #{ has: "sha" }).len()}`);"#);
    p.run(&["pb.rhai"]).code(0).has("n=0");
}

#[test]
fn runbook_test_answers_and_stubs_both_forms_of_ledger_history() {
    let p = pb(r#"
let two = ledger_history("app", #{ limit: 2, result: "ok", has: "sha" });
let all = ledger_history("app");
output("n", `${two.len()} ${all.len()}`);
"#);
    p.file(
        "pb.test.rhai",
        r#"
fn test_empty_by_default() {
    let r = playbook("pb.rhai", #{}).run();
    assert_eq(r.code, 0, r.report);
    assert_eq(r.outputs.n, "0 0");
}

fn test_stubbed() {
    let t = playbook("pb.rhai", #{});
    t.stub("ledger_history", [#{ result: "ok", sha: "a" }]);
    let r = t.run();
    assert_eq(r.code, 0, r.report);
    assert_eq(r.outputs.n, "1 1");
}
"#,
    );
    p.run(&["test", "pb.test.rhai"])
        .code(0)
        .has("2 passed, 0 failed");
}
