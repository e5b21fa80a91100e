//! The split-deploy flow end to end: the real playbook, against the Akash
//! Console API stand-in (HTTP on 127.0.0.1) and the `terraform` /
//! `provider-services` stand-ins, including every way discovery can fail.

use crate::support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::console::{split_state, Console, API_KEY};
use support::Project;

const ENDPOINT: &str = "provider.europlots.com:31877";
/// The API image runbook last deployed to 1002, by the ledger.
const API_IMAGE: &str = "ghcr.io/mconstant/pay2slay-api:1111111111111111111111111111111111111111";

/// The API deployment's ledger: one successful deploy of API_IMAGE.
fn record_api_image(p: &Project) {
    let rec = json!({"event": "run", "target": "akash-1002", "result": "ok", "start": "2026-12-01T10:00:00Z",
                     "image": API_IMAGE, "sha": &API_IMAGE[API_IMAGE.len() - 40..],
                     "banano_rpc_endpoint": "old.provider.example:30000"});
    p.file(".runbook/ledger/akash-1002.jsonl", &format!("{rec}\n"));
}

fn project(console: &Console) -> Project {
    let mut p = Project::new();
    p.copy_from_repo("infra")
        .copy_from_repo("playbooks/split-deploy.rhai")
        .copy_from_repo("playbooks/lib");
    console.configure(&mut p);
    p
}

/// Run the banano stage alone on deployment 1001.
fn banano(p: &Project) -> support::Output {
    p.run(&[
        "playbooks/split-deploy.rhai",
        "--stack",
        "banano",
        "--banano-dseq",
        "1001",
    ])
}

fn puts(console: &Console) -> Vec<serde_json::Value> {
    console.requests_with("PUT")
}

fn put_sdl(r: &serde_json::Value) -> String {
    r["body"]["data"]["sdl"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn both_stacks_with_a_port_that_appears_late() {
    let console = Console::start(split_state(json!({"scenario": "late", "ready_after": 2})));
    let mut p = project(&console);
    record_api_image(&p);
    let gh_out = p.path().join("gh_output");
    std::fs::write(&gh_out, "").unwrap();
    p.env("GITHUB_OUTPUT", gh_out.to_str().unwrap());
    let out = p.run(&[
        "playbooks/split-deploy.rhai",
        "--banano-dseq",
        "1001",
        "--api-dseq",
        "1002",
        "--log-format",
        "json",
    ]);
    out.code(0)
        .has(&format!("banano_rpc_endpoint={ENDPOINT}"))
        .lacks(API_KEY);
    // The artifact: exactly the one key.
    let art: serde_json::Value = serde_json::from_str(&p.read("endpoint.json").unwrap()).unwrap();
    assert_eq!(art, json!({"banano_rpc_endpoint": ENDPOINT}));
    // One log event per discovery attempt, the last one found.
    let attempts: Vec<serde_json::Value> = out
        .stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["primitive"] == "discover_port")
        .collect();
    assert!(attempts.len() >= 2, "{attempts:?}");
    assert_eq!(attempts.last().unwrap()["outcome"], "found");
    // Node first (unchanged image), then the API with the endpoint injected.
    let puts = puts(&console);
    assert_eq!(puts.len(), 2, "{puts:?}");
    assert_eq!(puts[0]["path"], "/v1/deployments/1001");
    assert_eq!(puts[1]["path"], "/v1/deployments/1002");
    assert!(puts.iter().all(|r| r["api_key_ok"] == true));
    let api_sdl = put_sdl(&puts[1]);
    assert!(
        api_sdl.contains(&format!("BANANO_RPC_ENDPOINT={ENDPOINT}")),
        "{api_sdl}"
    );
    assert!(
        api_sdl.contains(&format!("image: {API_IMAGE}")),
        "the image of record, never the template's placeholder: {api_sdl}"
    );
    let gh = std::fs::read_to_string(&gh_out).unwrap();
    assert!(
        gh.starts_with("banano_rpc_endpoint<<ghadelimiter_")
            && gh.contains(&format!("\n{ENDPOINT}\n")),
        "{gh}"
    );
}

#[test]
fn a_port_that_never_appears_fails_by_the_bound_with_no_artifact() {
    let console = Console::start(split_state(json!({"scenario": "pending"})));
    let mut p = project(&console);
    record_api_image(&p);
    // A stale artifact from an earlier run must not survive.
    p.file(
        "endpoint.json",
        "{\"banano_rpc_endpoint\": \"old.example:2000\"}",
    );
    let gh_out = p.path().join("gh_output");
    std::fs::write(&gh_out, "").unwrap();
    p.env("GITHUB_OUTPUT", gh_out.to_str().unwrap());
    let started = Instant::now();
    let out = p.run(&[
        "playbooks/split-deploy.rhai",
        "--banano-dseq",
        "1001",
        "--api-dseq",
        "1002",
        "--max-wait",
        "2",
    ]);
    let took = started.elapsed();
    out.code(1)
        .has("no external port for internal port 7072")
        .has("bound max_elapsed = 2s")
        .has("attempt(s)");
    // The contract: returns by max_elapsed (plus process start-up), not 75 s.
    assert!(took < Duration::from_secs(6), "took {took:?}");
    assert!(took >= Duration::from_secs(2), "gave up early: {took:?}");
    assert!(
        p.read("endpoint.json").is_none(),
        "no artifact after a failed discovery"
    );
    assert_eq!(
        std::fs::read_to_string(&gh_out).unwrap(),
        "",
        "no output after a failed discovery"
    );
    // The API stack was not touched.
    assert!(puts(&console)
        .iter()
        .all(|r| r["path"] != "/v1/deployments/1002"));
}

/// A playbook that only discovers (the update itself reads the same
/// endpoint, so faults are injected into discovery this way).
fn discovery(console: &Console, max: u32) -> Project {
    let p = project(console);
    p.file(
        "discover.rhai",
        &format!("print(discover_port(#{{ internal_port: 7072, source: #{{ akash: #{{ dseq: 1001 }} }}, max_elapsed: {max}, initial_interval: 0.2 }}));"),
    );
    p
}

#[test]
fn server_errors_are_retried_until_ready() {
    let console = Console::start(split_state(
        json!({"scenario": "error500-then-ready", "ready_after": 2}),
    ));
    discovery(&console, 30)
        .run(&["discover.rhai"])
        .code(0)
        .has("500")
        .has(ENDPOINT);
    // The update rides out a 5xx on its read too.
    let console = Console::start(split_state(
        json!({"scenario": "error500-then-ready", "ready_after": 1}),
    ));
    let p = project(&console);
    banano(&p).code(0);
    assert!(p.read("endpoint.json").is_some());
}

#[test]
fn a_server_that_always_fails_or_hangs_is_bounded() {
    for scenario in ["error500", "hang"] {
        let console = Console::start(split_state(
            json!({"scenario": scenario, "hang_seconds": 60}),
        ));
        let p = discovery(&console, 2);
        let started = Instant::now();
        let out = p.run(&["discover.rhai"]);
        out.code(1)
            .has("no external port")
            .has("bound max_elapsed = 2s");
        out.has(if scenario == "hang" {
            "no answer within"
        } else {
            "500"
        });
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(6) && took >= Duration::from_secs(2),
            "{scenario}: {took:?}"
        );
    }
    // The deploy itself fails clearly when the API keeps failing.
    let console = Console::start(split_state(json!({"scenario": "error500"})));
    let p = project(&console);
    banano(&p).code(1).has("reading deployment 1001").has("500");
    assert!(puts(&console).is_empty());
}

#[test]
fn malformed_or_unknown_answers_fail_at_once() {
    for (scenario, want) in [
        ("bad-json", "malformed JSON"),
        ("unknown-shape", "has no data.leases"),
        ("bogus-host", "bare dotted number"),
    ] {
        let console = Console::start(split_state(json!({"scenario": scenario})));
        let p = discovery(&console, 60);
        let started = Instant::now();
        p.run(&["discover.rhai"]).code(1).has(want);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{scenario} retried: {:?}",
            started.elapsed()
        );
        // Through the whole flow: no artifact, and the API stack is untouched.
        let out = project(&console).run(&[
            "playbooks/split-deploy.rhai",
            "--banano-dseq",
            "1001",
            "--api-dseq",
            "1002",
        ]);
        out.code(1);
        assert!(
            puts(&console)
                .iter()
                .all(|r| r["path"] != "/v1/deployments/1002"),
            "{scenario}"
        );
    }
}

#[test]
fn api_stage_refuses_a_missing_or_bad_artifact_before_any_change() {
    let console = Console::start(split_state(json!({})));
    let p = project(&console);
    record_api_image(&p);
    let run = |p: &Project| {
        p.run(&[
            "playbooks/split-deploy.rhai",
            "--stack",
            "api",
            "--api-dseq",
            "1002",
        ])
    };
    run(&p)
        .code(1)
        .has("endpoint.json is missing")
        .has("--banano-rpc-endpoint");
    for (text, want) in [
        ("{not json", "not valid JSON"),
        ("[1]", "not a JSON object"),
        (
            "{\"banano_rpc_endpoint\": \"a.b:2000\", \"extra\": 1}",
            "exactly one key",
        ),
        ("{\"endpoint\": \"a.b:2000\"}", "exactly one key"),
        (
            "{\"banano_rpc_endpoint\": 31877}",
            "must be a \"host:port\" string",
        ),
        (
            "{\"banano_rpc_endpoint\": \"Provider.COM:31877\"}",
            "uppercase",
        ),
        (
            "{\"banano_rpc_endpoint\": \"10.1.2.3:31877\"}",
            "bare dotted number",
        ),
        ("{\"banano_rpc_endpoint\": \"p.com:80\"}", "outside 1024"),
    ] {
        p.file("endpoint.json", text);
        run(&p).code(1).has(want);
    }
    for bad in ["p.com", "p.com:99999", "-:x"] {
        p.run(&[
            "playbooks/split-deploy.rhai",
            "--stack",
            "api",
            "--api-dseq",
            "1002",
            "--banano-rpc-endpoint",
            bad,
        ])
        .code(1)
        .has("validate_endpoint");
    }
    assert!(
        puts(&console).is_empty(),
        "no change was sent: {:?}",
        puts(&console)
    );
}

#[test]
fn api_stage_alone_reads_the_artifact() {
    let console = Console::start(split_state(json!({})));
    let p = project(&console);
    p.file(
        "endpoint.json",
        "{\"banano_rpc_endpoint\": \"node-7.provider.io:30123\"}",
    );
    p.run(&[
        "playbooks/split-deploy.rhai",
        "--stack",
        "api",
        "--api-dseq",
        "1002",
        "--api-image",
        API_IMAGE,
    ])
    .code(0);
    let puts = puts(&console);
    assert_eq!(puts.len(), 1);
    assert!(put_sdl(&puts[0]).contains("BANANO_RPC_ENDPOINT=node-7.provider.io:30123"));
}

#[test]
fn both_stages_use_the_endpoint_file_they_are_given() {
    let console = Console::start(split_state(json!({})));
    let p = project(&console);
    record_api_image(&p);
    std::fs::create_dir_all(p.path().join("artifacts")).unwrap();
    let stage = |stack: &str| {
        p.run(&[
            "playbooks/split-deploy.rhai",
            "--stack",
            stack,
            "--banano-dseq",
            "1001",
            "--api-dseq",
            "1002",
            "--endpoint-file",
            "artifacts/banano.json",
        ])
    };
    stage("banano").code(0);
    assert!(p.read("endpoint.json").is_none(), "only the file asked for");
    let art: serde_json::Value =
        serde_json::from_str(&p.read("artifacts/banano.json").unwrap()).unwrap();
    assert_eq!(art, json!({"banano_rpc_endpoint": ENDPOINT}));
    stage("api").code(0);
    let puts = puts(&console);
    assert_eq!(puts.len(), 2);
    assert!(put_sdl(&puts[1]).contains(&format!("BANANO_RPC_ENDPOINT={ENDPOINT}")));
}

#[test]
fn dry_run_reads_for_real_and_changes_nothing() {
    let console = Console::start(split_state(json!({})));
    let p = project(&console);
    p.run(&[
        "playbooks/split-deploy.rhai",
        "--banano-dseq",
        "1001",
        "--api-dseq",
        "1002",
        "--api-image",
        API_IMAGE,
        "--dry-run",
    ])
    .code(0)
    .has("would update deployment 1002")
    .has(&format!("+     - BANANO_RPC_ENDPOINT={ENDPOINT}"))
    .has("would write endpoint.json");
    assert!(puts(&console).is_empty());
    assert!(
        !console.requests_with("GET").is_empty(),
        "reads happen for real"
    );
    assert!(p.read("endpoint.json").is_none());
}

/// A deployment created outside runbook (Terraform) has no ledger, and the
/// Console does not say what image it runs: the API stage refuses before
/// either stack changes, instead of deploying the template's placeholder.
#[test]
fn no_image_of_record_refuses_before_any_change() {
    let console = Console::start(split_state(json!({})));
    let p = project(&console);
    p.run(&[
        "playbooks/split-deploy.rhai",
        "--banano-dseq",
        "1001",
        "--api-dseq",
        "1002",
    ])
    .code(1)
    .has("the API stage needs an image")
    .has("--api-image REPO:<40-hex SHA>");
    assert!(puts(&console).is_empty(), "{:?}", puts(&console));
    assert!(p.read("endpoint.json").is_none());
    // With the image given, it goes through and sends exactly that image.
    let given = "ghcr.io/mconstant/pay2slay-api:2222222222222222222222222222222222222222";
    p.run(&[
        "playbooks/split-deploy.rhai",
        "--banano-dseq",
        "1001",
        "--api-dseq",
        "1002",
        "--api-image",
        given,
    ])
    .code(0);
    let puts = puts(&console);
    assert_eq!(puts.len(), 2);
    assert!(put_sdl(&puts[1]).contains(&format!("image: {given}")));
}

#[test]
fn parameters_are_checked_first() {
    let console = Console::start(split_state(json!({})));
    let p = project(&console);
    p.run(&["playbooks/split-deploy.rhai", "--stack", "node"])
        .code(2)
        .has("is not one of banano, api, both");
    p.run(&["playbooks/split-deploy.rhai", "--banano-dseq", "12x"])
        .code(2)
        .has("--banano-dseq wants an integer");
    p.run(&["playbooks/split-deploy.rhai", "--stack", "banano"])
        .code(1)
        .has("--banano-dseq is required");
    assert!(console.requests().is_empty());
}

#[test]
fn a_refused_api_key_or_unknown_deployment_is_clear() {
    let console = Console::start(split_state(json!({})));
    let mut p = project(&console);
    p.env("AKASH_CONSOLE_API_KEY", "wrong-key-123456");
    banano(&p)
        .code(1)
        .has("API key was refused")
        .lacks("wrong-key-123456");
    let p = project(&console);
    p.run(&[
        "playbooks/split-deploy.rhai",
        "--stack",
        "banano",
        "--banano-dseq",
        "4242",
    ])
    .code(1)
    .has("no such deployment");
    let mut p = project(&console);
    p.env("AKASH_CONSOLE_API_KEY", "");
    banano(&p).code(1).has("AKASH_CONSOLE_API_KEY is not set");
}

#[test]
fn a_rejected_update_carries_the_providers_answer() {
    let console = Console::start(split_state(json!({"put_status": 502})));
    let p = project(&console);
    banano(&p)
        .code(1)
        .has("refused the update of deployment 1001")
        .has("insufficient funds");
    assert!(p.read("endpoint.json").is_none());
}

/// `akash_update`'s refusals before and after the write, through the
/// Console's real fields: a closed deployment is never written; a lease the
/// provider closed fails the confirmation, named; a deployment whose
/// replicas never come up fails by `confirm_timeout`, naming the service.
#[test]
fn akash_update_names_what_did_not_happen() {
    let update = |confirm: &str| {
        format!(
            "akash_update(#{{ dseq: 1002, sdl: \"infra/akash-api/deploy.yaml\", service: \"api\", \
             image: \"{API_IMAGE}\", env: #{{ BANANO_RPC_ENDPOINT: \"node.example:7072\" }}, \
             confirm_timeout: \"{confirm}\" }});\n"
        )
    };
    let mut state = split_state(json!({}));
    state["deployments"]["1002"]["state"] = json!("closed");
    let console = Console::start(state);
    let p = project(&console);
    p.file("u.rhai", &update("2s"));
    p.run(&["u.rhai"])
        .code(1)
        .has("deployment 1002 is closed, not active: nothing was sent");
    assert!(puts(&console).is_empty());

    let mut state = split_state(json!({}));
    state["deployments"]["1002"]["lease_state"] = json!("closed");
    let console = Console::start(state);
    let p = project(&console);
    p.file("u.rhai", &update("2s"));
    p.run(&["u.rhai"])
        .code(1)
        .has("deployment 1002's lease is closed after the update, not active");

    let console = Console::start(split_state(json!({"scenario": "pending"})));
    let p = project(&console);
    p.file("u.rhai", &update("1.5s"));
    p.run(&["u.rhai"])
        .code(1)
        .has("confirming deployment 1002 runs the update: gave up")
        .has("service api: 0 of 1 replicas ready");
}

#[test]
fn terraform_output_as_the_source() {
    let console = Console::start(split_state(json!({})));
    let mut p = project(&console);
    p.standins();
    p.file(
        "standin/terraform.json",
        &json!({"ready_after": 1, "outputs": {"banano_rpc_endpoint": {"sensitive": false, "type": "string", "value": "tf.provider.io:31001"}}}).to_string(),
    );
    let from_terraform = |p: &Project| {
        p.run(&[
            "playbooks/split-deploy.rhai",
            "--stack",
            "banano",
            "--banano-dseq",
            "1001",
            "--source",
            "terraform",
        ])
    };
    from_terraform(&p).code(0);
    assert!(p
        .read("endpoint.json")
        .unwrap()
        .contains("tf.provider.io:31001"));
    let calls = p.read("standin/calls.jsonl").unwrap();
    assert!(
        calls.lines().count() >= 2 && calls.contains("\"-chdir=infra/akash-banano\""),
        "{calls}"
    );

    p.file(
        "standin/terraform.json",
        &json!({"outputs": "garbage"}).to_string(),
    );
    from_terraform(&p).code(1).has("malformed JSON");
}

#[test]
fn provider_services_backend() {
    let console = Console::start(split_state(json!({})));
    let mut p = project(&console);
    record_api_image(&p);
    p.standins()
        .env("AKASH_BACKEND", "cli")
        .env("AKASH_PROVIDER", "akash1provider")
        .env("AKASH_FROM", "deployer");
    p.file(
        "standin/provider.json",
        &json!({"ready_after": 1}).to_string(),
    );
    p.run(&[
        "playbooks/split-deploy.rhai",
        "--banano-dseq",
        "1001",
        "--api-dseq",
        "1002",
    ])
    .code(0);
    let calls = p.standin_calls();
    let argv: Vec<String> = calls
        .iter()
        .map(|c| {
            c["argv"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_string())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    assert!(
        argv.iter().any(|a| a.starts_with("tx deployment update")
            && a.contains("--dseq 1001")
            && a.contains("--from deployer")),
        "{argv:?}"
    );
    assert!(
        argv.iter()
            .any(|a| a.starts_with("send-manifest") && a.contains("--provider akash1provider")),
        "{argv:?}"
    );
    assert!(
        argv.iter()
            .filter(|a| a.starts_with("lease-status"))
            .count()
            >= 2,
        "{argv:?}"
    );
    assert!(p
        .read("standin/last-manifest.yaml")
        .unwrap()
        .contains(&format!("BANANO_RPC_ENDPOINT={ENDPOINT}")));
    assert!(
        puts(&console).is_empty(),
        "the CLI backend does not use the Console API"
    );
    // A failing CLI step carries its stderr.
    p.file("standin/provider.json", &json!({"fail": {"subcommand": "send-manifest", "code": 1, "stderr": "Error: lease not found"}}).to_string());
    banano(&p).code(1).has("lease not found");
}

#[test]
fn sigterm_mid_discovery_exits_143_with_no_artifact() {
    let console = Console::start(split_state(json!({"scenario": "pending"})));
    let p = project(&console);
    p.file(
        "endpoint.json",
        "{\"banano_rpc_endpoint\": \"old.example:2000\"}",
    );
    let started = Instant::now();
    let child = p
        .command(&[
            "playbooks/split-deploy.rhai",
            "--stack",
            "banano",
            "--banano-dseq",
            "1001",
        ])
        .spawn()
        .unwrap();
    // Wait until discovery is polling.
    while console.requests_with("GET").len() < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "discovery never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = support::wait_output(child, Duration::from_secs(20), started);
    out.code(143).has("interrupted by SIGTERM");
    assert!(p.read("endpoint.json").is_none());
}
