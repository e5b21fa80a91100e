//! The target lock (file backend) and the deployment ledger, driven through
//! real runbook processes contending in one temporary project.

use crate::support;

use std::time::{Duration, Instant};

use support::{finish, wait_output, Project};

/// A playbook that locks `demo`, signals it holds it (a marker file made
/// by a mutation), then sleeps `hold` seconds.
fn holder_playbook(hold: f64) -> String {
    format!(
        r#"
let l = lock("demo", #{{ ttl: 3 }});
ledger_note(#{{ image: "img:" + l.token }});
exec(["sh", "-c", "echo " + l.token + " >> tokens.log"]);
sleep({hold});
"#
    )
}

fn project() -> Project {
    let mut p = Project::new();
    p.env("RUNBOOK_ALLOW", "sh");
    p
}

/// Wait (bounded) until the project has `rel` with at least `lines` lines.
fn wait_lines(p: &Project, rel: &str, lines: usize) {
    let t = Instant::now();
    while p.read(rel).map_or(0, |s| s.lines().count()) < lines {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{rel} never got {lines} line(s)"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn tokens(p: &Project) -> Vec<u64> {
    p.read("tokens.log")
        .unwrap_or_default()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect()
}

fn ledger(p: &Project, target: &str) -> Vec<serde_json::Value> {
    p.read(&format!(".runbook/ledger/{target}.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_second_run_exits_75_naming_the_holder() {
    let mut p = project();
    p.file("hold.rhai", &holder_playbook(30.0));
    p.env("GITHUB_SERVER_URL", "https://github.example")
        .env("GITHUB_REPOSITORY", "acme/app")
        .env("GITHUB_RUN_ID", "4242")
        .env("GITHUB_ACTOR", "alice");
    let a = p.start(&["hold.rhai"]);
    wait_lines(&p, "tokens.log", 1);
    p.env("GITHUB_RUN_ID", "4243").env("GITHUB_ACTOR", "bob");
    let b = p.run(&["hold.rhai"]);
    b.code(75)
        .has("'demo' is held by alice@")
        .has("playbook hold.rhai")
        .has("https://github.example/acme/app/actions/runs/4242")
        .has("held for");
    assert_eq!(tokens(&p), vec![1], "the busy run changed nothing");
    // `lock status` sees the holder; exit 0 while held.
    p.run(&["lock", "status", "demo"])
        .code(0)
        .has("lock demo: held")
        .has("holder: alice@")
        .has("token: 1");
    let (mut child, _) = a;
    let _ = child.kill();
    let _ = child.wait();
    p.run(&["lock", "status", "demo"])
        .code(1)
        .has("lock demo: free");
}

#[test]
fn a_waiting_run_gets_the_lock_after_the_holder_with_a_higher_token() {
    let p = project();
    p.file("hold.rhai", &holder_playbook(1.0));
    p.file(
        "wait.rhai",
        &holder_playbook(0.0).replace("ttl: 3", "ttl: 3, wait: 30"),
    );
    let a = p.start(&["hold.rhai"]);
    wait_lines(&p, "tokens.log", 1);
    let b = p.start(&["wait.rhai"]);
    finish(a).code(0);
    finish(b).code(0).has("is busy").has("waiting up to 30s");
    assert_eq!(
        tokens(&p),
        vec![1, 2],
        "one after the other, the token grows"
    );
}

#[test]
fn a_run_waiting_for_a_busy_lock_stops_at_its_deadline() {
    let p = project();
    p.file("hold.rhai", &holder_playbook(30.0));
    p.file(
        "wait.rhai",
        &holder_playbook(0.0).replace("ttl: 3", "ttl: 3, wait: 30"),
    );
    let (mut a, _) = p.start(&["hold.rhai"]);
    wait_lines(&p, "tokens.log", 1);
    let t = Instant::now();
    p.run(&["wait.rhai", "--timeout", "1"])
        .code(124)
        .has("waiting up to 30s");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "the wait was cut short: {:?}",
        t.elapsed()
    );
    assert_eq!(tokens(&p), vec![1], "the waiter changed nothing");
    let _ = a.kill();
    let _ = a.wait();
}

#[test]
fn kill_9_of_the_holder_frees_the_lock_at_once() {
    let p = project();
    p.file("hold.rhai", &holder_playbook(60.0));
    p.file(
        "wait.rhai",
        &holder_playbook(0.0).replace("ttl: 3", "ttl: 3, wait: 50"),
    );
    let (mut a, _) = p.start(&["hold.rhai"]);
    wait_lines(&p, "tokens.log", 1);
    let b = p.start(&["wait.rhai"]);
    // b is queued behind a (it cannot finish while a holds the lock).
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(tokens(&p), vec![1]);
    a.kill().unwrap(); // SIGKILL: no cleanup in the holder at all
    let _ = a.wait();
    finish(b).code(0);
    assert_eq!(tokens(&p), vec![1, 2]);
    // The killed holder recorded nothing; the waiter recorded its run.
    let recs = ledger(&p, "demo");
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0]["token"], 2);
}

#[test]
fn a_broken_lock_fences_its_holder_before_the_next_mutation() {
    let p = project();
    p.file(
        "hold.rhai",
        r#"
let l = lock("demo", #{ ttl: 1.5 });
exec(["sh", "-c", "echo before >> mutations.log"]);
sleep(4); // margin for the break on a loaded machine
exec(["sh", "-c", "echo after >> mutations.log"]);
"#,
    );
    let a = p.start(&["hold.rhai"]);
    wait_lines(&p, "mutations.log", 1);
    p.run(&["lock", "break", "demo"])
        .code(2)
        .has("needs --reason");
    p.run(&["lock", "break", "demo", "--reason", "holder is stuck"])
        .code(0)
        .has("was held by");
    let out = finish(a);
    // Fenced: exit 75, as busy (another run may hold it now).
    out.code(75)
        .has("lost the lock 'demo'")
        .has("broken by")
        .has("refusing to run exec");
    assert_eq!(
        p.read("mutations.log").unwrap(),
        "before\n",
        "no mutation after the break"
    );
    // The next run takes it over with a higher token than the break's.
    p.file("again.rhai", &holder_playbook(0.0));
    p.run(&["again.rhai"]).code(0);
    assert_eq!(
        tokens(&p),
        vec![3],
        "1 the holder, 2 the break, 3 the next run"
    );
    let recs = ledger(&p, "demo");
    let events: Vec<&str> = recs.iter().map(|r| r["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["lock-break", "run", "run"], "{recs:?}");
    assert_eq!(recs[0]["reason"], "holder is stuck");
    assert_eq!(
        recs[1]["result"], "fenced",
        "the fenced run is recorded as fenced"
    );
}

#[test]
fn the_ledger_records_success_failure_and_cancellation_not_dry_runs() {
    let p = project();
    p.file(
        "deploy.rhai",
        r#"
const PARAMS = #{ sha: #{ required: true }, mode: #{ default_value: "ok" } };
lock("app");
ledger_note(#{ sha: args.sha, image: "app:" + args.sha });
exec(["sh", "-c", "echo " + args.sha + " >> mutations.log"]);
if args.mode == "fail" { fail("deploy broke"); }
if args.mode == "hang" { sleep(30); }
"#,
    );
    p.run(&["deploy.rhai", "--sha", "aaa", "--dry-run"]).code(0);
    assert!(ledger(&p, "app").is_empty(), "a dry run records nothing");
    assert!(p.read("mutations.log").is_none());
    p.run(&["deploy.rhai", "--sha", "aaa"]).code(0);
    p.run(&["deploy.rhai", "--sha", "bbb", "--mode", "fail"])
        .code(1);
    let (child, started) = p.start(&["deploy.rhai", "--sha", "ccc", "--mode", "hang"]);
    wait_lines(&p, "mutations.log", 3);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    wait_output(child, Duration::from_secs(30), started).code(143);
    let recs = ledger(&p, "app");
    let results: Vec<&str> = recs.iter().map(|r| r["result"].as_str().unwrap()).collect();
    assert_eq!(results, ["ok", "failed", "cancelled"], "{recs:?}");
    assert_eq!(recs[0]["params"]["sha"], "aaa");
    assert_eq!(recs[0]["playbook"], "deploy.rhai");
    assert_eq!(recs[1]["previous_image"], "app:aaa");
    assert_eq!(recs[2]["previous_image"], "app:bbb");
    let tokens: Vec<u64> = recs.iter().map(|r| r["token"].as_u64().unwrap()).collect();
    assert_eq!(tokens, [1, 2, 3]);
    // history: newest first, with the image column; --json; --limit.
    let h = p.run(&["history", "app"]);
    h.code(0);
    let lines: Vec<&str> = h.stdout.lines().collect();
    assert!(lines[0].starts_with("START"), "{}", h.stdout);
    assert!(
        lines[1].contains("cancelled") && lines[1].contains("app:ccc"),
        "{}",
        h.stdout
    );
    assert!(
        lines[3].contains("ok") && lines[3].contains("app:aaa"),
        "{}",
        h.stdout
    );
    let j = p.run(&["history", "app", "--json", "--limit", "2"]);
    let v: serde_json::Value = serde_json::from_str(&j.stdout).unwrap();
    let shas: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["sha"].as_str().unwrap())
        .collect();
    assert_eq!(shas, ["bbb", "ccc"]);
    // Any target has a name (derived here); it has no records.
    p.run(&["history", "Bad Name"])
        .code(0)
        .has("no ledger records for 'bad-name-");
}

#[test]
fn a_run_without_a_lock_is_recorded_under_its_playbook_and_read_only_runs_not_at_all() {
    let p = project();
    p.file("tidy.rhai", r#"write_json("out.json", #{ a: 1 });"#);
    p.file(
        "look.rhai",
        r#"exec(["sh", "-c", "true"], #{ read_only: true });"#,
    );
    p.run(&["tidy.rhai"]).code(0);
    p.run(&["look.rhai"]).code(0);
    assert_eq!(ledger(&p, "tidy").len(), 1);
    assert!(ledger(&p, "look").is_empty(), "no mutation, no record");
}

#[test]
fn bad_lock_options_are_named() {
    let p = project();
    // Not an option, but once a mistake: any target now gets a valid name.
    p.file("a.rhai", r#"lock("Demo");"#);
    p.run(&["a.rhai"]).code(0).has("(for 'Demo')");
    p.file("b.rhai", r#"lock("demo", #{ ttl: 0.5 });"#);
    p.run(&["b.rhai"]).code(1).has("at least 1 second");
    p.file("c.rhai", r#"lock("demo", #{ backend: "etcd" });"#);
    p.run(&["c.rhai"])
        .code(1)
        .has("not one of \"file\", \"kube\"");
}

#[test]
fn unlock_frees_the_lock_at_once_for_this_run_and_others() {
    let p = project();
    p.file(
        "relock.rhai",
        r#"
let a = lock("demo");
unlock("demo");
// Free now: another process sees it free before this run ends.
exec(["sh", "-c", "runbook lock status demo > status.txt; echo $? >> status.txt"]);
let b = lock("demo");
exec(["sh", "-c", "echo " + a.token + " " + b.token + " >> tokens.log"]);
"#,
    );
    let mut p = p;
    p.path_prepend(support::bin().parent().unwrap().to_path_buf());
    p.run(&["relock.rhai"]).code(0);
    assert_eq!(p.read("tokens.log").unwrap(), "1 2\n");
    let status = p.read("status.txt").unwrap();
    assert!(
        status.contains("lock demo: free") && status.ends_with("1\n"),
        "{status}"
    );
}

/// A lock taken again after another (a, b, a) is still one target: one
/// record in its ledger, with the token of the last take.
#[test]
fn a_lock_taken_twice_in_a_run_gets_one_record_with_its_last_token() {
    let p = project();
    p.file(
        "again.rhai",
        r#"
lock("app");
unlock("app");
lock("db");
let l = lock("app");
ledger_note(#{ last: l.token });
exec(["sh", "-c", "true"]);
"#,
    );
    p.run(&["again.rhai"]).code(0);
    let (app, db) = (ledger(&p, "app"), ledger(&p, "db"));
    assert_eq!((app.len(), db.len()), (1, 1), "{app:?}");
    assert_eq!(app[0]["token"], 2);
    assert_eq!(app[0]["last"], 2);
}

#[test]
fn a_run_with_two_locks_records_in_both_ledgers_with_their_own_notes() {
    let p = project();
    p.file(
        "two.rhai",
        r#"
lock("node");
lock("api");
ledger_note(#{ sha: "abc" });
ledger_note("api", #{ image: "api:abc" });
ledger_note("node", #{ image: "node:7" });
exec(["sh", "-c", "true"]);
"#,
    );
    p.run(&["two.rhai"]).code(0);
    let (node, api) = (ledger(&p, "node"), ledger(&p, "api"));
    assert_eq!((node.len(), api.len()), (1, 1));
    assert_eq!(node[0]["image"], "node:7");
    assert_eq!(api[0]["image"], "api:abc");
    assert_eq!(
        api[0]["sha"], "abc",
        "an untargeted note goes to every record"
    );
    assert_eq!(api[0]["target"], "api");
    assert!(
        api[0]
            .as_object()
            .unwrap()
            .keys()
            .all(|k| !k.starts_with('@')),
        "{}",
        api[0]
    );
}

#[test]
fn the_run_deadline_releases_the_lock_and_records_a_cancelled_run() {
    let p = project();
    p.file("slow.rhai", &holder_playbook(30.0));
    p.run(&["slow.rhai", "--timeout", "1"]).code(124);
    p.run(&["lock", "status", "demo", "--json"])
        .code(1)
        .has("\"held\": false")
        .has("\"token\": 1");
    let recs = ledger(&p, "demo");
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["result"], "cancelled");
}

#[test]
fn a_target_like_an_image_reference_gets_a_derived_lock_name_everywhere() {
    let p = project();
    p.file(
        "img.rhai",
        r#"let l = lock("127.0.0.1:5055/acme/app");
print(`name=${l.name}`);
ledger_note("127.0.0.1:5055/acme/app", #{ image: "img:1" });
write_json("done.json", #{ ok: true }); // a change, so the run is recorded
"#,
    );
    let out = p.run(&["img.rhai"]);
    out.code(0);
    let name = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("name="))
        .unwrap_or_else(|| panic!("no name printed:\n{}", out.all()))
        .to_string();
    let (slug, hash) = name.split_at(name.len() - 8);
    assert_eq!(slug, "127.0.0.1-5055-acme-app-", "{name}");
    assert!(hash.chars().all(|c| c.is_ascii_hexdigit()), "{name}");
    // The message says which target the name stands for.
    out.has(&format!("lock '{name}' (for '127.0.0.1:5055/acme/app')"));
    // The ledger is the derived name's, its target that name, the note kept.
    let records = ledger(&p, &name);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["target"], name.as_str());
    assert_eq!(records[0]["image"], "img:1");
    // `lock status` and `history` take the target as the playbook wrote it.
    p.run(&["lock", "status", "127.0.0.1:5055/acme/app"])
        .code(1)
        .has(&format!(
            "lock {name} (for '127.0.0.1:5055/acme/app'): free"
        ));
    p.run(&["history", "127.0.0.1:5055/acme/app", "--json"])
        .code(0)
        .has("img:1");
    // Names that are valid already are kept as they are.
    p.file("plain.rhai", "print(`name=${lock(\"akash-1001\").name}`);");
    p.run(&["plain.rhai"]).code(0).has("name=akash-1001");
}
