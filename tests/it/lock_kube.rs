//! The `kube` lock backend (a Lease) and the kube ledger (a ConfigMap),
//! driven through real runbook processes against the fake coordination API
//! on 127.0.0.1: contention, kill -9 takeover within the ttl, self-fencing
//! when the API becomes unreachable or the holder's renewTime is skewed,
//! and a takeover's higher fencing token.

use crate::support;

use std::time::{Duration, Instant};

use support::leases::{shift, FakeLeases};
use support::{finish, Project};

fn project(api: &FakeLeases) -> Project {
    let mut p = Project::new();
    let kc = api.kubeconfig(p.path());
    p.env("KUBECONFIG", kc.to_str().unwrap())
        .env("RUNBOOK_LOCK_BACKEND", "kube")
        .env("RUNBOOK_ALLOW", "sh");
    p
}

/// Lock `demo` (ttl `ttl`), record `label:token` as a mutation, sleep
/// `hold`, record `label:after` as a second mutation.
fn playbook(label: &str, ttl: f64, wait: f64, hold: f64) -> String {
    format!(
        r#"
let l = lock("demo", #{{ ttl: {ttl}, wait: {wait} }});
exec(["sh", "-c", "echo {label}:" + l.token + " >> mutations.log"]);
sleep({hold});
exec(["sh", "-c", "echo {label}:after >> mutations.log"]);
"#
    )
}

fn wait_for(p: &Project, line: &str) {
    let t = Instant::now();
    while !p
        .read("mutations.log")
        .unwrap_or_default()
        .lines()
        .any(|l| l == line)
    {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "never saw {line:?} in mutations.log"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Lock `app`, note the SHA and image in the ledger, run one mutation.
const DEPLOY: &str = r#"
const PARAMS = #{ sha: #{ required: true } };
lock("app", #{ ttl: 5 });
ledger_note(#{ sha: args.sha, image: "app:" + args.sha });
exec(["sh", "-c", "true"]);
"#;

/// The records of the ledger ConfigMap of `app`.
fn ledger_records(api: &FakeLeases) -> Vec<serde_json::Value> {
    let cm = api
        .get("ConfigMap", "default", "runbook-ledger-app")
        .expect("the ledger ConfigMap");
    serde_json::from_str(cm["data"]["records"].as_str().unwrap()).unwrap()
}

fn mutations(p: &Project) -> Vec<String> {
    p.read("mutations.log")
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn renew_times_shift() {
    assert_eq!(
        shift("2026-12-03T05:41:10.123456Z", 70),
        "2026-12-03T05:40:00.000000Z"
    );
    assert_eq!(
        shift("2026-01-01T00:00:05Z", 10),
        "2025-12-31T23:59:55.000000Z"
    );
}

#[test]
fn one_holder_the_other_exits_75_and_kill_9_frees_it_within_the_ttl() {
    let api = FakeLeases::start();
    let mut p = project(&api);
    p.file("a.rhai", &playbook("a", 2.0, 0.0, 60.0));
    p.file("b.rhai", &playbook("b", 2.0, 0.0, 0.0));
    p.file("c.rhai", &playbook("c", 2.0, 20.0, 0.0));
    p.env("GITHUB_SERVER_URL", "https://github.example")
        .env("GITHUB_REPOSITORY", "acme/app")
        .env("GITHUB_RUN_ID", "77");
    let (mut a, _) = p.start(&["a.rhai"]);
    wait_for(&p, "a:1");
    let lease = api
        .get("Lease", "default", "runbook-demo")
        .expect("the Lease exists");
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 2);
    assert!(lease["spec"]["holderIdentity"]
        .as_str()
        .unwrap()
        .contains(&format!(":{}", a.id())));
    let ann = lease["metadata"]["annotations"]["runbook.dev/holder"]
        .as_str()
        .unwrap();
    assert!(ann.contains("\"playbook\":\"a.rhai\""), "{ann}");

    p.run(&["b.rhai"])
        .code(75)
        .has("'demo' is held by")
        .has("playbook a.rhai")
        .has("https://github.example/acme/app/actions/runs/77");
    p.run(&["lock", "status", "demo"])
        .code(0)
        .has("lock demo: held")
        .has("token: 1");

    let c = p.start(&["c.rhai"]);
    std::thread::sleep(Duration::from_millis(300));
    let killed = Instant::now();
    a.kill().unwrap(); // SIGKILL: the Lease stays until it expires
    let _ = a.wait();
    wait_for(&p, "c:2");
    assert!(
        killed.elapsed() < Duration::from_secs(2 + 2),
        "taken over within the ttl (2 s) plus one poll and start-up: {:?}",
        killed.elapsed()
    );
    finish(c).code(0).has("is busy");
    assert_eq!(mutations(&p), ["a:1", "c:2", "c:after"]);
    // c released the Lease at its end: holder cleared, the token kept.
    let lease = api.get("Lease", "default", "runbook-demo").unwrap();
    assert!(lease["spec"]["holderIdentity"].is_null(), "{lease}");
    assert_eq!(lease["spec"]["leaseTransitions"], 2);
    p.run(&["lock", "status", "demo"]).code(1).has("free");
}

#[test]
fn an_unreachable_api_fences_the_holder_before_its_next_mutation() {
    let api = FakeLeases::start();
    let p = project(&api);
    p.file("a.rhai", &playbook("a", 1.5, 0.0, 3.0));
    let a = p.start(&["a.rhai"]);
    wait_for(&p, "a:1");
    api.set_unreachable(true);
    let out = finish(a);
    // Fenced: exit 75, as busy (another run may hold it now).
    out.code(75)
        .has("lost the lock 'demo'")
        .has("renewal did not succeed by the renew deadline")
        .has("refusing to run exec");
    assert_eq!(mutations(&p), ["a:1"], "no mutation after the deadline");
}

#[test]
fn a_skewed_renew_time_lets_another_run_take_over_and_the_old_holder_fences() {
    let api = FakeLeases::start();
    let p = project(&api);
    p.file("a.rhai", &playbook("a", 3.0, 0.0, 5.0));
    p.file("b.rhai", &playbook("b", 3.0, 0.0, 0.0));
    let a = p.start(&["a.rhai"]);
    wait_for(&p, "a:1");
    // a's renewals keep landing, but every renewTime is stored 60 s in the
    // past: to everyone else the Lease has expired.
    api.skew_renew_time(60);
    p.run(&["b.rhai"]).code(0).has("fencing token 2");
    let out = finish(a);
    // Fenced: exit 75, as busy (another run may hold it now).
    out.code(75)
        .has("lost the lock 'demo'")
        .has("taken over by")
        .has("refusing to run exec");
    assert_eq!(
        mutations(&p),
        ["a:1", "b:2", "b:after"],
        "a acted no more after the takeover"
    );
    // Every write was a precondition-checked write: a lost its renewal
    // with a 409 and never overwrote b's Lease.
    let lease = api.get("Lease", "default", "runbook-demo").unwrap();
    assert_eq!(lease["spec"]["leaseTransitions"], 2);
}

#[test]
fn the_kube_ledger_keeps_records_in_a_config_map() {
    let api = FakeLeases::start();
    let p = project(&api);
    p.file("deploy.rhai", DEPLOY);
    for sha in ["aaa", "bbb"] {
        p.run(&["deploy.rhai", "--sha", sha]).code(0);
    }
    let recs = ledger_records(&api);
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[1]["previous_image"], "app:aaa");
    assert_eq!(recs[1]["token"], 2);
    assert!(
        p.read(".runbook/ledger/app.jsonl").is_none(),
        "nothing in the file ledger"
    );
    let h = p.run(&["history", "app"]);
    h.code(0);
    assert!(
        h.stdout.lines().nth(1).unwrap().contains("app:bbb"),
        "{}",
        h.stdout
    );
    // A break is recorded there too, and raises the token.
    p.run(&["lock", "break", "app", "--reason", "drill"])
        .code(0)
        .has("it was free");
    p.run(&["history", "app", "--json"])
        .code(0)
        .has("\"reason\": \"drill\"");
    let lease = api.get("Lease", "default", "runbook-app").unwrap();
    assert_eq!(lease["spec"]["leaseTransitions"], 3);
}

/// leaseTransitions is an i32: a break at its top refuses, naming the
/// Lease, and writes nothing (a token that repeated would let the old
/// holder pass the new fence).
#[test]
fn a_break_at_the_top_token_refuses_and_writes_nothing() {
    let api = FakeLeases::start();
    let p = project(&api);
    let now = runbook::opts::rfc3339(std::time::SystemTime::now()).replace('Z', ".000000Z");
    api.put(
        "Lease",
        "default",
        "runbook-demo",
        serde_json::json!({
            "metadata": {},
            "spec": {
                "holderIdentity": "other-run",
                "leaseDurationSeconds": 60,
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": i32::MAX,
            },
        }),
    );
    let before = api.get("Lease", "default", "runbook-demo").unwrap();
    let out = p.run(&["lock", "break", "demo", "--reason", "drill"]);
    out.code(1)
        .has("at its maximum (2147483647)")
        .has("the Lease default/runbook-demo");
    assert_eq!(api.get("Lease", "default", "runbook-demo").unwrap(), before);
    assert!(
        !api.requests().iter().any(|r| r.starts_with("PUT")),
        "{:?}",
        api.requests()
    );
}

#[test]
fn acquire_is_a_read_and_a_conditional_write_release_one_write() {
    let api = FakeLeases::start();
    let mut p = project(&api);
    // The ledger is kept in files here: only the lock's own calls count.
    p.env("RUNBOOK_LEDGER_BACKEND", "file");
    p.file(
        "once.rhai",
        r#"lock("demo", #{ ttl: 30 }); unlock("demo");"#,
    );
    p.run(&["once.rhai"]).code(0);
    p.run(&["once.rhai"]).code(0);
    let lease = "/apis/coordination.k8s.io/v1/namespaces/default/leases";
    assert_eq!(
        api.requests(),
        [
            format!("GET {lease}/runbook-demo"),
            format!("POST {lease}"),
            format!("PUT {lease}/runbook-demo"),
            format!("GET {lease}/runbook-demo"),
            format!("PUT {lease}/runbook-demo"),
            format!("PUT {lease}/runbook-demo"),
        ],
        "first run: read, create, release; second: read, take, release"
    );
}

#[test]
fn a_ledger_write_that_loses_a_race_reads_again_and_keeps_both_records() {
    let api = FakeLeases::start();
    let p = project(&api);
    p.file("deploy.rhai", DEPLOY);
    p.run(&["deploy.rhai", "--sha", "aaa"]).code(0);
    let mut recs = ledger_records(&api);
    // Another run appends its record between this run's read and write.
    recs.push(serde_json::json!({ "sha": "other", "result": "ok" }));
    api.race_next_write(serde_json::json!({
        "metadata": { "name": "runbook-ledger-app" },
        "data": { "records": serde_json::to_string(&recs).unwrap() },
    }));
    p.run(&["deploy.rhai", "--sha", "bbb"]).code(0);
    let recs = ledger_records(&api);
    let shas: Vec<&str> = recs.iter().map(|r| r["sha"].as_str().unwrap()).collect();
    assert_eq!(
        shas,
        ["aaa", "other", "bbb"],
        "nothing overwritten, nothing lost"
    );
}

#[test]
fn a_take_that_loses_a_race_reads_again_and_finds_the_lock_busy() {
    let api = FakeLeases::start();
    let p = project(&api);
    p.file("a.rhai", &playbook("a", 3.0, 0.0, 0.0));
    // Another run creates the Lease between this run's read (none there)
    // and its create.
    let now = runbook::opts::rfc3339(std::time::SystemTime::now()).replace('Z', ".000000Z");
    api.race_next_write(serde_json::json!({
        "metadata": { "name": "runbook-demo" },
        "spec": {
            "holderIdentity": "other-run",
            "leaseDurationSeconds": 60,
            "acquireTime": now,
            "renewTime": now,
            "leaseTransitions": 1,
        },
    }));
    p.run(&["a.rhai"]).code(75).has("held by another run");
    assert!(mutations(&p).is_empty(), "the loser did nothing");
    let lease = api.get("Lease", "default", "runbook-demo").unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "other-run");
}

#[test]
fn a_dry_run_reads_the_lease_and_the_ledger_through_the_run() {
    let api = FakeLeases::start();
    let mut p = project(&api);
    // A dry run holds no lock to say where the ledger lives.
    p.env("RUNBOOK_LEDGER_BACKEND", "kube");
    p.file("deploy.rhai", DEPLOY);
    p.run(&["deploy.rhai", "--sha", "aaa"]).code(0);
    p.file(
        "plan.rhai",
        r#"
let l = lock("app");
let h = ledger_history("app");
print(`planned=${l.planned} records=${h.len()} image=${h[0].image}`);
"#,
    );
    p.run(&["plan.rhai", "--dry-run"])
        .code(0)
        .has("would lock 'app' (kube; free now)")
        .has("planned=true records=1 image=app:aaa");
    let lease = api.get("Lease", "default", "runbook-app").unwrap();
    assert_eq!(
        lease["spec"]["leaseTransitions"], 1,
        "a dry run takes no Lease"
    );
}

#[test]
fn a_forbidden_lease_names_the_rbac_permission_and_the_check() {
    let api = FakeLeases::start();
    let p = project(&api);
    p.file("a.rhai", &playbook("a", 3.0, 0.0, 0.0));
    api.forbid("POST", "Lease");
    p.run(&["a.rhai"])
        .code(1)
        .has("take Lease default/runbook-demo: forbidden (403)")
        .has("lacks the RBAC permission to create leases")
        .has("kubectl auth can-i create leases -n default");
    assert!(mutations(&p).is_empty(), "nothing ran without the lock");
}
