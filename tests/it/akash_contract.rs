//! The Akash stand-in answers only what the real Console API describes:
//! every answer of tests/standins/akash_console.py, in every scenario, and
//! every request runbook sends it, are validated against
//! tests/data/akash/console-api.schema.json (the Console's own zod schemas,
//! translated with the source commit they came from). A field the real API
//! lacks, like the `data.sdl` the stand-in once invented, fails here.

use crate::support;

use serde_json::{json, Value};
use support::bin::repo;
use support::console::{sdl, split_state, Console, API_KEY};
use support::http::request;
use support::Project;

/// A validator for one definition of the recorded schema.
fn schema(def: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(repo().join("tests/data/akash/console-api.schema.json"))
        .expect("the recorded Console schema");
    let mut s: Value = serde_json::from_str(&text).expect("the schema is JSON");
    assert!(
        s["$defs"].get(def).is_some(),
        "the schema has no definition {def}"
    );
    s["$ref"] = json!(format!("#/$defs/{def}"));
    jsonschema::draft202012::new(&s).expect("the schema compiles")
}

/// Fails naming each way `v` departs from `def`.
#[track_caller]
fn conforms(def: &str, what: &str, v: &Value) {
    let errors: Vec<String> = schema(def)
        .iter_errors(v)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} is not a {def}:\n  {}\n{v:#}",
        errors.join("\n  ")
    );
}

fn get(c: &Console, path: &str, key: Option<&str>) -> (u16, Value) {
    let headers: Vec<(&str, &str)> = key.map(|k| ("x-api-key", k)).into_iter().collect();
    let r = request("GET", &format!("{}{path}", c.url), &headers, b"");
    let body = serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {}", r.text()));
    (r.status, body)
}

fn put(c: &Console, path: &str, body: &Value) -> (u16, Value) {
    let r = request(
        "PUT",
        &format!("{}{path}", c.url),
        &[("x-api-key", API_KEY), ("content-type", "application/json")],
        body.to_string().as_bytes(),
    );
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    )
}

#[test]
fn every_answer_of_the_stand_in_is_in_the_consoles_schema() {
    for scenario in [
        "ready",
        "pending",
        "late",
        "bogus-host",
        "error500-then-ready",
    ] {
        let c = Console::start(split_state(json!({"scenario": scenario, "ready_after": 1})));
        for _ in 0..3 {
            for dseq in ["1001", "1002"] {
                let (status, body) = get(&c, &format!("/v1/deployments/{dseq}"), Some(API_KEY));
                let what = format!("GET /v1/deployments/{dseq} ({scenario})");
                if status == 500 {
                    conforms("Error", &what, &body);
                    continue;
                }
                assert_eq!(status, 200, "{what}: {body}");
                conforms("GetDeploymentResponse", &what, &body);
                let (status, lease) = get(&c, &format!("/lease/{dseq}/1/1/status"), None);
                if status == 200 {
                    conforms(
                        "ProviderLeaseStatus",
                        &format!("lease {dseq} ({scenario})"),
                        &lease,
                    );
                }
            }
        }
        let (status, body) = put(
            &c,
            "/v1/deployments/1002",
            &json!({"data": {"sdl": sdl("akash-api")}}),
        );
        assert_eq!(status, 200, "{body}");
        conforms(
            "UpdateDeploymentResponse",
            &format!("PUT ({scenario})"),
            &body,
        );
    }
}

#[test]
fn the_stand_ins_errors_are_the_consoles_error_shape() {
    let c = Console::start(split_state(json!({})));
    for (path, key, code) in [
        ("/v1/deployments/1002", Some("wrong-key"), 401),
        ("/v1/deployments/4242", Some(API_KEY), 404),
        ("/v1/nothing", Some(API_KEY), 404),
    ] {
        let (status, body) = get(&c, path, key);
        assert_eq!(status, code, "{path}: {body}");
        conforms("Error", path, &body);
    }
    let (status, body) = put(&c, "/v1/deployments/1002", &json!({"data": {}}));
    assert_eq!(status, 400);
    conforms("Error", "PUT without an SDL", &body);
    let c = Console::start(split_state(json!({"put_status": 502})));
    let (status, body) = put(&c, "/v1/deployments/1002", &json!({"data": {"sdl": "x"}}));
    assert_eq!(status, 502);
    conforms("Error", "a rejected PUT", &body);
}

/// `provider-services lease-status` (the stand-in) prints the provider's
/// shape, pending and ready, before and after a manifest.
#[test]
fn the_cli_stand_ins_lease_status_is_the_providers_shape() {
    let p = Project::new();
    p.copy_from_repo("infra");
    p.file(
        "standin/provider.json",
        &json!({"ready_after": 1}).to_string(),
    );
    let dir = p.path().join("standin");
    let cli = repo().join("tests/standins/bin/provider-services");
    let status = || {
        let out = std::process::Command::new(&cli)
            .args(["lease-status", "--dseq", "1002", "--provider", "akash1p"])
            .env("STANDIN_DIR", &dir)
            .output()
            .expect("the provider-services stand-in runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).expect("JSON")
    };
    conforms("ProviderLeaseStatus", "pending lease-status", &status());
    conforms("ProviderLeaseStatus", "ready lease-status", &status());
    let out = std::process::Command::new(&cli)
        .args([
            "send-manifest",
            "infra/akash-api/deploy.yaml",
            "--dseq",
            "1002",
        ])
        .args(["--provider", "akash1p", "--from", "k"])
        .current_dir(p.path())
        .env("STANDIN_DIR", &dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    status();
    let ready = status();
    conforms(
        "ProviderLeaseStatus",
        "lease-status after a manifest",
        &ready,
    );
    assert!(ready["services"].get("api").is_some(), "{ready}");
}

/// What runbook sends is what the API takes: every PUT body of a real
/// deploy is an UpdateDeploymentRequest.
#[test]
fn runbook_sends_only_what_the_console_accepts() {
    let c = Console::start(split_state(json!({})));
    let mut p = Project::new();
    p.copy_from_repo("infra");
    c.configure(&mut p);
    p.file(
        "update.rhai",
        r#"akash_update(#{ dseq: 1002, sdl: "infra/akash-api/deploy.yaml", service: "api",
               image: "ghcr.io/mconstant/pay2slay-api:1111111111111111111111111111111111111111",
               env: #{ BANANO_RPC_ENDPOINT: "node.example:7072" } });"#,
    );
    p.run(&["update.rhai"]).code(0);
    let puts = c.requests_with("PUT");
    assert_eq!(puts.len(), 1);
    for r in &puts {
        conforms("UpdateDeploymentRequest", "runbook's PUT body", &r["body"]);
    }
}

/// The contract can fail: an answer with a field the real API does not
/// have (the stand-in once served the SDL as `data.sdl`), or without one it
/// always has, is refused.
#[test]
fn the_contract_refuses_a_field_the_real_api_lacks() {
    let c = Console::start(split_state(json!({})));
    let (_, good) = get(&c, "/v1/deployments/1002", Some(API_KEY));
    conforms("GetDeploymentResponse", "the answer", &good);
    let mut invented = good.clone();
    invented["data"]["sdl"] = json!(sdl("akash-api"));
    assert!(!schema("GetDeploymentResponse").is_valid(&invented));
    let mut settings = good.clone();
    settings["data"]["consoleSettings"] = json!({"sdl": "x", "manifestVersion": "y"});
    assert!(!schema("GetDeploymentResponse").is_valid(&settings));
    let mut missing = good;
    if let Some(d) = missing["data"]["deployment"].as_object_mut() {
        d.remove("hash");
    }
    assert!(!schema("GetDeploymentResponse").is_valid(&missing));
}
