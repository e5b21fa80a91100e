//! Health gates and automatic rollback against a real Prometheus scraping
//! a stand-in service whose error ratio the test controls (a deploy of an
//! image named "bad" errs 20%): pass, fail and roll back (exit 3), the
//! query endpoint answering 500 (error_limit), an empty series (on_empty),
//! a deploy that hangs past budget − reserve, SIGTERM during verification,
//! and a rollback that fails (exit 4). Skipped, saying so, without
//! Prometheus (ci/install-deps.sh installs it).

use std::time::Duration;

use crate::support::http::{Reply, Stub};
use crate::support::prometheus::{available, App, Prometheus};
use crate::support::{finish, pb, Project};

/// The playbook: take the `app` lock, deploy `IMAGE` under a guard with one
/// Prometheus gate, roll back to `PREVIOUS`. `extra` is the gate's
/// schedule and other options ([`SCHED`] by default), `guard` guarded's.
fn playbook(query: &str, extra: &str, deploy: &str, rollback: &str, guard: &str) -> String {
    format!(
        r#"
lock("app");
let app = env("APP_URL");
let errors = gate("error-rate", #{{
    prometheus: #{{ url: env("PROM_URL"), query: "{query}" }},
    success: "value < 0.01", failure: "value >= 0.05",
    {extra}
}});
let r = guarded(#{{
    deploy: || {{ {deploy} }},
    gates: [errors],
    rollback: || {{ {rollback} }},
    {guard}
}});
print(`verified: ${{r.status}}`);
"#
    )
}

/// Past the first scrape of the new version, three measurements a second apart.
const SCHED: &str = r#"initial_delay: "2500ms", interval: "1s", count: 3,"#;

const DEPLOY: &str = r#"output("image", env("IMAGE")); http_check(`${app}/deploy/${env("IMAGE")}`, #{ max_elapsed: 5 });"#;
const ROLLBACK: &str = r#"http_check(`${app}/deploy/${env("PREVIOUS")}`, #{ max_elapsed: 5 });"#;
const GUARD: &str = r#"budget: 60, rollback_reserve: 10"#;

fn project(src: &str, app: &App, prom_url: &str, image: &str) -> Project {
    let mut p = pb(src);
    p.env("APP_URL", &app.stub.url())
        .env("PROM_URL", prom_url)
        .env("IMAGE", image)
        .env("PREVIOUS", "app:v1");
    p
}

/// The newest ledger record of `app`.
fn last_record(p: &Project) -> serde_json::Value {
    let text = p
        .read(".runbook/ledger/app.jsonl")
        .expect("a ledger for app");
    serde_json::from_str(text.lines().last().unwrap()).unwrap()
}

macro_rules! need_prometheus {
    () => {
        // A test whose tool is missing fails, naming the install, never
        // passes having run nothing.
        assert!(
            available(),
            "no prometheus binary: install it with `apt-get install -y prometheus` (ci/install-deps.sh does)"
        );
    };
}

#[test]
fn a_healthy_deploy_passes_its_gate() {
    need_prometheus!();
    let app = App::start("app:v1");
    let prom = Prometheus::start(&app.stub.host());
    let p = project(
        &playbook("max(app_error_ratio)", SCHED, DEPLOY, ROLLBACK, GUARD),
        &app,
        &prom.url(),
        "app:v2",
    );
    p.run(&["pb.rhai"]).code(0).has("verified: passed");
    assert_eq!(app.image(), "app:v2");
    assert_eq!(last_record(&p)["result"], "ok");
}

#[test]
fn an_error_rate_up_after_the_deploy_rolls_back_to_the_previous_image() {
    need_prometheus!();
    let app = App::start("app:v1");
    let prom = Prometheus::start(&app.stub.host());
    let p = project(
        &playbook("max(app_error_ratio)", SCHED, DEPLOY, ROLLBACK, GUARD),
        &app,
        &prom.url(),
        "app:v2-bad",
    );
    let out = p.run(&["pb.rhai"]);
    out.code(3)
        .has("gate 'error-rate' failed: failure_limit 0 passed")
        .has("query `max(app_error_ratio)` on http://127.0.0.1:")
        .has("last values: 0.2")
        .has("rolled back in");
    assert_eq!(app.image(), "app:v1", "the previous image is redeployed");
    let rec = last_record(&p);
    assert_eq!(rec["result"], "rolled_back");
    assert_eq!(rec["gates"][0]["name"], "error-rate");
    assert_eq!(rec["gates"][0]["status"], "failed");
}

#[test]
fn prometheus_answering_500_passes_the_error_limit() {
    let app = App::start("app:v1");
    let broken = Stub::start(|_| {
        Reply::json(
            500,
            &serde_json::json!({"status": "error", "error": "storage unavailable"}),
        )
    });
    let p = project(
        &playbook(
            "max(app_error_ratio)",
            "interval: \"200ms\", count: 5,",
            DEPLOY,
            ROLLBACK,
            GUARD,
        ),
        &app,
        &broken.url(),
        "app:v2",
    );
    p.run(&["pb.rhai"])
        .code(3)
        .has("gate 'error-rate' failed: error_limit 2 passed: 3 measurement(s) could not be taken")
        .has("answered 500: storage unavailable")
        .has("last values: error, error, error");
    assert_eq!(app.image(), "app:v1");
}

#[test]
fn an_empty_series_is_judged_by_on_empty() {
    need_prometheus!();
    let app = App::start("app:v1");
    let prom = Prometheus::start(&app.stub.host());
    // Default: inconclusive, held (exit 5, unverified).
    let p = project(
        &playbook("max(no_such_metric)", SCHED, DEPLOY, ROLLBACK, GUARD),
        &app,
        &prom.url(),
        "app:v2",
    );
    p.run(&["pb.rhai"])
        .code(5)
        .has("gate 'error-rate' inconclusive: inconclusive_limit 0 passed")
        .has("held, marked unverified");
    assert_eq!(app.image(), "app:v2");
    assert_eq!(last_record(&p)["result"], "unverified");
    // on_empty: "failed" rolls back.
    let p = project(
        &playbook(
            "max(no_such_metric)",
            &format!("{SCHED} on_empty: \"failed\","),
            DEPLOY,
            ROLLBACK,
            GUARD,
        ),
        &app,
        &prom.url(),
        "app:v3",
    );
    p.run(&["pb.rhai"]).code(3).has("last values: empty");
    assert_eq!(app.image(), "app:v1");
}

#[test]
fn a_deploy_hanging_past_budget_minus_reserve_still_gets_its_rollback() {
    let app = App::start("app:v1");
    let never = Stub::start(|_| Reply::status(500));
    let hang = r#"output("image", "x"); sleep(60);"#;
    let p = project(
        &playbook(
            "up",
            SCHED,
            hang,
            ROLLBACK,
            "budget: 8, rollback_reserve: 4, min_deploy: 1",
        ),
        &app,
        &never.url(),
        "app:v2",
    );
    let out = p.run(&["pb.rhai"]);
    out.code(3)
        .has("deploy and verification did not finish within 4s (budget − rollback_reserve)")
        .has("rolled back in");
    assert!(out.elapsed < Duration::from_secs(8), "{:?}", out.elapsed);
    assert_eq!(app.image(), "app:v1");
}

#[test]
fn sigterm_during_verification_starts_the_rollback() {
    need_prometheus!();
    let app = App::start("app:v1");
    let prom = Prometheus::start(&app.stub.host());
    let p = project(
        &playbook(
            "max(app_error_ratio)",
            r#"initial_delay: "1s", interval: "1s", count: 30,"#,
            DEPLOY,
            ROLLBACK,
            GUARD,
        ),
        &app,
        &prom.url(),
        "app:v2",
    );
    let (child, started) = p.start(&["pb.rhai"]);
    // Bounded: the deploy lands within a few seconds.
    let t0 = std::time::Instant::now();
    while app.image() != "app:v2" && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(1));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = finish((child, started));
    out.code(143).has("stopped by SIGTERM").has("rolling back");
    assert_eq!(app.image(), "app:v1");
    assert_eq!(last_record(&p)["result"], "rolled_back");
}

#[test]
fn a_failed_rollback_exits_4_showing_both_errors() {
    let app = App::start("app:v1");
    let broken = Stub::start(|_| {
        Reply::json(
            200,
            &serde_json::json!({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "0.5"]}]}}),
        )
    });
    let p = project(
        &playbook(
            "max(app_error_ratio)",
            "interval: 0, count: 1,",
            DEPLOY,
            r#"throw "helm rollback: release has no revision 3""#,
            GUARD,
        ),
        &app,
        &broken.url(),
        "app:v2",
    );
    p.run(&["pb.rhai"])
        .code(4)
        .has("gate 'error-rate' failed")
        .has("AND THE ROLLBACK FAILED: helm rollback: release has no revision 3");
    assert_eq!(last_record(&p)["result"], "rollback_failed");
}

/// `runbook test` stubs a gate's measurements: fail rolls back (3), pass
/// keeps, empty holds (5), errors alone never pass.
#[test]
fn runbook_test_stubs_prometheus_query() {
    let p = Project::new();
    p.file(
        "pb.rhai",
        r#"let g = gate("errors", #{ prometheus: #{ url: "http://prom:9090", query: "up" }, success: "value < 0.01", failure: "value >= 0.05", interval: 0, count: 2 });
let r = guarded(#{ deploy: || exec(["helm", "upgrade"]), gates: [g], rollback: || exec(["helm", "rollback"]), budget: 600, rollback_reserve: 60 });
"#,
    )
    .file(
        "pb.test.rhai",
        r#"
fn run_with(v) {
    let t = playbook("pb.rhai", #{});
    t.stub("exec", #{ code: 0, stdout: "", stderr: "" });
    t.stub("prometheus_query", v);
    t.run()
}
fn helm(r) { r.calls.filter(|c| c.name == "exec").map(|c| c.args[0][1]) }
fn test_pass() { let r = run_with(0.0); assert_eq(r.code, 0, r.report); assert_eq(helm(r), ["upgrade"]); }
fn test_fail() { let r = run_with(0.2); assert_eq(r.code, 3, r.report); assert_eq(helm(r), ["upgrade", "rollback"]); }
fn test_inconclusive() { let r = run_with(()); assert_eq(r.code, 5, r.report); assert_eq(helm(r), ["upgrade"]); }
// Two errors are within error_limit 2, but a gate never passes on errors alone.
fn test_error() { let r = run_with(|url, q| throw "prometheus answered 500"); assert_eq(r.code, 5, r.report); assert_eq(helm(r), ["upgrade"]); }
"#,
    );
    p.run(&["test", "pb.test.rhai"]).code(0).has("4 passed");
}

/// Deploy, a gate that fails, a rollback that takes `$SLOW` seconds and
/// leaves markers; the `app` lock makes the ledger `app`'s.
const SLOW_ROLLBACK: &str = r#"
lock("app");
let slow = parse_int(env("SLOW"));
guarded(#{
    deploy: || write_json("state.json", #{ v: 2 }, #{ keep_on_failure: true }),
    gates: [gate("health", #{ check: || false, count: 1 })],
    rollback: || {
        write_json("rolling-back.json", #{ v: 1 }, #{ keep_on_failure: true });
        sleep(slow);
        write_json("state.json", #{ v: 1 }, #{ keep_on_failure: true });
    },
    budget: 60, rollback_reserve: 40,
});
"#;

/// A first SIGTERM that arrives while the rollback runs (started by a
/// failed gate, not by a signal) does not cut it: the rollback ends, then
/// the run stops (found by bench/gates-faults.sh: it used to end the
/// rollback with "Script terminated").
#[test]
fn a_first_signal_during_the_rollback_lets_it_finish() {
    let mut p = pb(SLOW_ROLLBACK);
    p.env("SLOW", "2");
    let (child, started) = p.start(&["pb.rhai"]);
    let t0 = std::time::Instant::now();
    while p.read("rolling-back.json").is_none() && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        p.read("rolling-back.json").is_some(),
        "the rollback never started"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = finish((child, started));
    out.code(143).lacks("ROLLBACK FAILED");
    assert!(
        p.read("state.json").unwrap().contains("1"),
        "the rollback finished"
    );
    assert_eq!(last_record(&p)["result"], "rolled_back");
}

/// A run killed during its rollback (SIGKILL: nothing of it runs after)
/// leaves `rollback_pending`, with why, as the target's newest record; a
/// rollback that ends is recorded after it.
#[test]
fn a_run_killed_during_its_rollback_leaves_rollback_pending() {
    let mut p = pb(SLOW_ROLLBACK);
    p.env("SLOW", "0");
    p.run(&["pb.rhai"]).code(3);
    let text = p
        .read(".runbook/ledger/app.jsonl")
        .expect("a ledger for app");
    let results: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["result"].to_string())
        .collect();
    assert_eq!(results, ["\"rollback_pending\"", "\"rolled_back\""]);

    std::fs::remove_file(p.path().join("rolling-back.json")).unwrap();
    p.env("SLOW", "30");
    let (mut child, _) = p.start(&["pb.rhai"]);
    let t0 = std::time::Instant::now();
    while p.read("rolling-back.json").is_none() && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        p.read("rolling-back.json").is_some(),
        "the rollback never started"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let last = last_record(&p);
    assert_eq!(last["result"], "rollback_pending");
    assert!(
        last["rollback_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("gate 'health' failed"),
        "{last}"
    );
}
