//! The `github` lock backend (a Git ref moved only by fast-forwards) and
//! the github ledger (one Deployment per run), driven through real runbook
//! processes against the GitHub API stand-in on 127.0.0.1: contention and
//! exit 75, takeover after the ttl with a higher token, a stale holder's
//! refused renewal and release, the ledger read back by the next run, a
//! token without permission, rate limits, and the token kept out of every
//! output and request. Every answer the stand-in gave is held to GitHub's
//! published schemas ([`GithubApi::assert_contract`]).

use crate::support;

use std::time::{Duration, Instant};

use support::github::{GithubApi, TOKEN};
use support::{finish, Project};

fn project(api: &GithubApi) -> Project {
    let mut p = Project::new();
    api.configure(&mut p);
    p.env("RUNBOOK_ALLOW", "sh");
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
    while !mutations(p).iter().any(|l| l == line) {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "never saw {line:?} in mutations.log"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn mutations(p: &Project) -> Vec<String> {
    p.read("mutations.log")
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

/// Lock `app`, note the SHA and image in the ledger, run one mutation;
/// `--fail true` fails after it.
const DEPLOY: &str = r#"
const PARAMS = #{ sha: #{ required: true }, fail: #{ type: "bool", default_value: false } };
lock("app", #{ ttl: 5 });
ledger_note(#{ sha: args.sha, image: "app:" + args.sha });
exec(["sh", "-c", "true"]);
if args.fail { fail("the deploy broke"); }
"#;

fn sha(c: char) -> String {
    c.to_string().repeat(40)
}

#[test]
fn one_holder_the_other_exits_75_and_after_the_ttl_a_waiter_takes_over_with_a_higher_token() {
    let api = GithubApi::start();
    let mut p = project(&api);
    p.file("a.rhai", &playbook("a", 2.0, 0.0, 60.0));
    p.file("b.rhai", &playbook("b", 2.0, 0.0, 0.0));
    p.file("c.rhai", &playbook("c", 2.0, 20.0, 0.0));
    p.env("GITHUB_SERVER_URL", "https://github.example")
        .env("GITHUB_RUN_ID", "77");
    let (mut a, _) = p.start(&["a.rhai"]);
    wait_for(&p, "a:1");
    let held = api.lock_commit("demo").expect("the lock ref exists");
    assert_eq!(held["state"], "held");
    assert_eq!(held["token"], 1);
    assert!(held["holder"]["holder"]
        .as_str()
        .unwrap()
        .ends_with(&format!(":{}", a.id())));
    assert_eq!(held["holder"]["playbook"], "a.rhai");

    p.run(&["b.rhai"])
        .code(75)
        .has("'demo' is held by")
        .has("playbook a.rhai")
        .has("https://github.example/acme/app/actions/runs/77")
        .lacks(TOKEN);
    p.run(&["lock", "status", "demo"])
        .code(0)
        .has("lock demo: held")
        .has("token: 1");

    let c = p.start(&["c.rhai"]);
    std::thread::sleep(Duration::from_millis(300));
    let killed = Instant::now();
    a.kill().unwrap(); // SIGKILL: the ref says "held" until it expires
    let _ = a.wait();
    wait_for(&p, "c:2");
    assert!(
        killed.elapsed() < Duration::from_secs(2 + 3),
        "taken over within the ttl (2 s), a poll and start-up: {:?}",
        killed.elapsed()
    );
    finish(c).code(0).has("is busy").lacks(TOKEN);
    assert_eq!(mutations(&p), ["a:1", "c:2", "c:after"]);
    // c released it at its end: a "free" commit, the token kept.
    let free = api.lock_commit("demo").unwrap();
    assert_eq!(
        (free["state"].as_str(), free["token"].as_u64()),
        (Some("free"), Some(2))
    );
    p.run(&["lock", "status", "demo"]).code(1).has("free");
    // Never a force, never a DELETE: every move was a fast-forward.
    for r in api.requests() {
        assert_ne!(r["method"], "DELETE");
        if r["method"] == "PATCH" {
            assert_eq!(r["body"]["force"], false, "{r}");
        }
    }
    api.assert_contract();
}

#[test]
fn a_broken_lock_refuses_the_holders_renewal_and_every_further_change() {
    let api = GithubApi::start();
    let p = project(&api);
    p.file("a.rhai", &playbook("a", 3.0, 0.0, 4.0));
    let a = p.start(&["a.rhai"]);
    wait_for(&p, "a:1");
    p.run(&["lock", "break", "demo", "--reason", "drill"])
        .code(0)
        .has("was held by");
    let out = finish(a);
    // Fenced: exit 75, as busy (another run may hold it now).
    out.code(75)
        .has("lost the lock 'demo'")
        .has("broken by")
        .has("drill")
        .has("refusing to run exec");
    assert_eq!(mutations(&p), ["a:1"], "no mutation after the break");
    // a's renewal was a fast-forward from its own commit: refused.
    let refused: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r["method"] == "PATCH" && r["status"] == 422)
        .collect();
    assert!(!refused.is_empty(), "a's renewal was refused");
    assert_eq!(
        refused[0]["answer"]["message"],
        "Update is not a fast forward"
    );
    // The break stands: free, its raised token, who and why.
    let l = api.lock_commit("demo").unwrap();
    assert_eq!(l["state"], "free");
    assert_eq!(l["token"], 2);
    assert!(l["broken"].as_str().unwrap().contains("drill"), "{l}");
    api.assert_contract();
}

#[test]
fn a_stale_holders_release_is_refused_and_leaves_the_successor_alone() {
    let api = GithubApi::start();
    let p = project(&api);
    // a holds for 3 s with a ttl of 30 s: no renewal comes before its
    // release, which is the first it hears of the break.
    p.file(
        "a.rhai",
        r#"
let l = lock("demo", #{ ttl: 30 });
exec(["sh", "-c", "echo a:" + l.token + " >> mutations.log"]);
sleep(3);
unlock("demo");
"#,
    );
    p.file("b.rhai", &playbook("b", 30.0, 0.0, 8.0));
    let a = p.start(&["a.rhai"]);
    wait_for(&p, "a:1");
    p.run(&["lock", "break", "demo", "--reason", "stuck"])
        .code(0);
    let b = p.start(&["b.rhai"]);
    wait_for(&p, "b:3");
    finish(a)
        .code(0)
        .has("changed since this run's last renewal")
        .lacks(TOKEN);
    // b still holds it: a's "free" commit never landed.
    let l = api.lock_commit("demo").unwrap();
    assert_eq!(l["state"], "held", "{l}");
    assert_eq!(l["token"], 3);
    assert!(l["holder"]["playbook"] == "b.rhai", "{l}");
    finish(b).code(0);
    api.assert_contract();
}

#[test]
fn the_ledger_written_by_one_run_is_read_by_the_next() {
    let api = GithubApi::start();
    let p = project(&api);
    p.file("deploy.rhai", DEPLOY);
    let (a, b, c) = (sha('a'), sha('b'), sha('c'));
    p.run(&["deploy.rhai", "--sha", &a]).code(0);
    p.run(&["deploy.rhai", "--sha", &b]).code(0);
    p.run(&["deploy.rhai", "--sha", &c, "--fail", "true"])
        .code(1);
    let recs = api.records("app");
    assert_eq!(recs.len(), 3, "one deployment per run");
    assert_eq!(recs[1]["previous_image"], format!("app:{a}"));
    assert_eq!(recs[2]["result"], "failed");
    assert_eq!(recs[1]["token"], 2);
    // Each a deployment of the run's commit, then its status.
    let s = api.state();
    let d = &s["deployments"][0];
    assert_eq!(d["ref"], "4f1c2a0000000000000000000000000000000001");
    let last = &s["statuses"][s["deployments"][2]["id"].to_string()][0];
    assert_eq!(last["state"], "failure");
    let sent = api
        .requests()
        .into_iter()
        .find(|r| r["method"] == "POST" && r["path"].as_str().unwrap().ends_with("/deployments"))
        .unwrap();
    assert_eq!(sent["body"]["auto_merge"], false);
    assert_eq!(sent["body"]["required_contexts"], serde_json::json!([]));
    assert_eq!(sent["body"]["transient_environment"], false);
    assert_eq!(sent["body"]["environment"], "app");

    let before = api.requests().len();
    let h = p.run(&["history", "app", "--backend", "github", "--limit", "2"]);
    h.code(0).lacks(TOKEN);
    let rows: Vec<&str> = h.stdout.lines().collect();
    assert_eq!(rows.len(), 3, "{}", h.stdout);
    assert!(
        rows[1].contains("failed") && rows[1].contains(&c),
        "newest first: {}",
        h.stdout
    );
    assert!(rows[2].contains(&format!("app:{b}")), "{}", h.stdout);
    let read = &api.requests()[before..];
    assert_eq!(read.len(), 1, "one page holds the 2 asked for");
    assert_eq!(read[0]["query"], "environment=app&per_page=2&page=1");

    p.file(
        "read.rhai",
        r#"
let h = ledger_history("app", #{ limit: 2, result: "ok", has: "sha" });
print(`records=${h.len()} first=${h[0].sha} last=${h[1].sha}`);
"#,
    );
    p.run(&["read.rhai"])
        .code(0)
        .has(&format!("records=2 first={a} last={b}"));
    api.assert_contract();
}

#[test]
fn without_the_token_or_the_repository_the_error_names_them() {
    let api = GithubApi::start();
    let mut p = project(&api);
    p.file("a.rhai", &playbook("a", 3.0, 0.0, 0.0));
    p.env("GITHUB_TOKEN", "");
    p.run(&["a.rhai"])
        .code(1)
        .has("the github backend needs GITHUB_TOKEN (not set)")
        .has("contents: write, deployments: write");
    p.env("GITHUB_REPOSITORY", "");
    p.run(&["history", "app", "--backend", "github"])
        .code(1)
        .has("needs GITHUB_TOKEN and GITHUB_REPOSITORY (not set)");
    assert!(mutations(&p).is_empty());
    assert!(api.requests().is_empty(), "nothing was sent");
}

#[test]
fn a_token_without_permission_is_told_which_permission_to_grant() {
    let api = GithubApi::start();
    let p = project(&api);
    p.file("a.rhai", &playbook("a", 3.0, 0.0, 0.0));
    api.knobs(serde_json::json!({"forbid": [{"method": "POST", "path": "/git/"}]}));
    p.run(&["a.rhai"])
        .code(1)
        .has("GitHub answered 403 (Resource not accessible by integration)")
        .has("it needs the `contents: write` permission")
        .has("`permissions:` key")
        .lacks(TOKEN);
    assert!(mutations(&p).is_empty(), "nothing ran without the lock");

    api.knobs(serde_json::json!({"forbid": [{"method": "POST", "path": "/deployments"}]}));
    p.file("deploy.rhai", DEPLOY);
    p.run(&["deploy.rhai", "--sha", &sha('a')])
        .code(0)
        .has("ledger: could not record this run for app")
        .has("it needs the `deployments: write` permission");

    // A token GitHub refuses is named, never shown.
    let mut bad = project(&api);
    bad.env("GITHUB_TOKEN", "ghs_wrongTOKENvalue99999");
    bad.file("a.rhai", &playbook("a", 3.0, 0.0, 0.0));
    bad.run(&["a.rhai"])
        .code(1)
        .has("GitHub answered 401 (Bad credentials): GITHUB_TOKEN was refused")
        .lacks("ghs_wrongTOKENvalue99999");
    api.assert_contract();
}

#[test]
fn rate_limits_are_waited_out_within_the_deadline() {
    let api = GithubApi::start();
    let mut p = project(&api);
    p.env("RUNBOOK_LEDGER_BACKEND", "file");
    p.file(
        "once.rhai",
        r#"lock("demo", #{ ttl: 30 }); unlock("demo");"#,
    );
    // Two secondary-rate-limit 403s with Retry-After: 1, then answers.
    api.knobs(serde_json::json!({"rate_limit": {"count": 2, "retry_after": 1}}));
    let t = Instant::now();
    p.run(&["once.rhai"]).code(0).lacks(TOKEN);
    assert!(t.elapsed() >= Duration::from_secs(2), "{:?}", t.elapsed());
    let statuses: Vec<u64> = api
        .requests()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(&statuses[..3], [403, 403, 404], "{statuses:?}");

    // A spent primary limit waits for x-ratelimit-reset; a 429 too.
    for knob in [
        serde_json::json!({"kind": "primary", "count": 1, "reset_in": 1}),
        serde_json::json!({"status": 429, "count": 1, "retry_after": 1}),
    ] {
        let api = GithubApi::start();
        let mut p = project(&api);
        p.env("RUNBOOK_LEDGER_BACKEND", "file");
        p.file(
            "once.rhai",
            r#"lock("demo", #{ ttl: 30 }); unlock("demo");"#,
        );
        api.knobs(serde_json::json!({"rate_limit": knob}));
        p.run(&["once.rhai"]).code(0);
        api.assert_contract();
    }

    // A wait past the run's deadline: the deadline wins.
    let api2 = GithubApi::start();
    let mut p2 = project(&api2);
    p2.env("RUNBOOK_LEDGER_BACKEND", "file");
    p2.file(
        "once.rhai",
        r#"lock("demo", #{ ttl: 30 }); unlock("demo");"#,
    );
    api2.knobs(serde_json::json!({"rate_limit": {"count": 100, "retry_after": 60}}));
    let t = Instant::now();
    p2.run(&["--timeout", "2", "once.rhai"]).code(124);
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    api.assert_contract();
    api2.assert_contract();
}

#[test]
fn take_renew_release_and_the_ledger_cost_a_known_number_of_requests() {
    let api = GithubApi::start();
    let mut p = project(&api);
    p.env("RUNBOOK_LEDGER_BACKEND", "file");
    p.file(
        "once.rhai",
        r#"lock("demo", #{ ttl: 30 }); unlock("demo");"#,
    );
    p.run(&["once.rhai"]).code(0);
    p.run(&["once.rhai"]).code(0);
    let (refp, commit) = ("/git/ref/runbook/locks/demo", "/git/commits");
    let patch = "PATCH /git/refs/runbook/locks/demo".to_string();
    let calls = api.calls();
    let commit_get = calls
        .iter()
        .find(|c| c.starts_with("GET /git/commits/"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        calls,
        [
            format!("GET {refp}"),
            format!("POST {commit}"),
            "POST /git/refs".to_string(),
            format!("POST {commit}"),
            patch.clone(),
            format!("GET {refp}"),
            commit_get,
            format!("POST {commit}"),
            patch.clone(),
            format!("POST {commit}"),
            patch.clone(),
        ],
        "first take: read, commit, create (3); release: commit, fast-forward (2); \
         a later take: read ref and commit, commit, fast-forward (4)"
    );
    // One renewal: a commit and a fast-forward.
    let api = GithubApi::start();
    let mut p = project(&api);
    p.env("RUNBOOK_LEDGER_BACKEND", "file");
    p.file(
        "hold.rhai",
        r#"lock("demo", #{ ttl: 3 }); sleep(1.5); unlock("demo");"#,
    );
    p.run(&["hold.rhai"]).code(0);
    let n = api.calls().len();
    assert_eq!(
        n,
        3 + 2 + 2,
        "take, one renewal, release: {:?}",
        api.calls()
    );
    api.assert_contract();
}
