//! Deploy, rollback and post-build by git SHA, end to end: the real
//! playbooks against a real OCI registry (Debian `docker-registry`, behind a
//! Bearer-token issuer) holding cosign-signed images, and the Akash Console
//! API stand-in.

use crate::support;

use serde_json::json;
use support::console::{self, Console};
use support::cosign::key_from;
use support::registry::{cosign_data, Registry};
use support::{Output, Project};

const SHA: &str = "4f1c2a9d0b8e7c6f5a4b3c2d1e0f9a8b7c6d5e4f";
const OLD_SHA: &str = "1111111111111111111111111111111111111111";
const ENDPOINT: &str = "provider.europlots.com:31877";

struct World {
    registry: Registry,
    console: Console,
    digest: String,
}

/// A token registry with `mconstant/pay2slay-api:SHA` (signed) and
/// `:OLD_SHA` (unsigned); deployment 1002 runs OLD_SHA with the endpoint
/// set, created outside runbook (Terraform): the ledger is empty, and the
/// Console answers only its state, manifest hash and leases.
fn world(put_ignored: bool) -> World {
    let registry = Registry::with_tokens();
    let digest = registry.push_image("mconstant/pay2slay-api", SHA, "new", true);
    registry.push_image("mconstant/pay2slay-api", OLD_SHA, "old", true);
    registry.push_image("mconstant/pay2slay-api-staging", SHA, "staging", true);
    let (key, _) = signer();
    registry.cosign_sign("mconstant/pay2slay-api", &digest, &digest, &key, None);
    let sdl = console::sdl("akash-api")
        .replace(
            "BANANO_RPC_ENDPOINT=",
            &format!("BANANO_RPC_ENDPOINT={ENDPOINT}"),
        )
        .replace(
            "ghcr.io/mconstant/pay2slay-api:4f1c2a9d0b8e7c6f5a4b3c2d1e0f9a8b7c6d5e4f",
            &format!("{}/mconstant/pay2slay-api:{OLD_SHA}", registry.host()),
        );
    let console =
        Console::start(json!({"deployments": {"1002": {"sdl": sdl}}, "put_ignored": put_ignored}));
    World {
        registry,
        console,
        digest,
    }
}

/// The signing key of the tests (fixed, so the public key can be written).
fn signer() -> (p256::ecdsa::SigningKey, String) {
    let key = key_from(&cosign_data(
        "lab-generated-distribution-2.8.2/TEST-ONLY-signer.key",
    ));
    let pem = std::fs::read_to_string(cosign_data(
        "lab-generated-distribution-2.8.2/test-signer.pub",
    ))
    .unwrap();
    (key, pem)
}

fn project(w: &World) -> Project {
    let mut p = Project::new();
    p.copy_from_repo("infra").copy_from_repo("playbooks");
    p.file("cosign.pub", &signer().1);
    w.console.configure(&mut p);
    p.env("API_DSEQ", "1002");
    p
}

fn run(p: &Project, playbook: &str, w: &World, extra: &[&str]) -> Output {
    let host = w.registry.host();
    // The tests' images are signed with a key (keyless is tests/it/keyless.rs).
    let mut args = vec![
        playbook,
        "--registry",
        host.as_str(),
        "--cosign-key",
        "cosign.pub",
        "--log-format",
        "json",
    ];
    args.extend_from_slice(extra);
    p.run(&args)
}

fn event(out: &Output, name: &str) -> serde_json::Value {
    out.stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == name)
        .filter_map(|e| {
            e["message"]
                .as_str()
                .and_then(|m| serde_json::from_str(m).ok())
        })
        .next()
        .unwrap_or_else(|| panic!("no {name} event in:\n{}", out.stderr))
}

fn puts(w: &World) -> Vec<String> {
    w.console
        .requests_with("PUT")
        .iter()
        .map(|r| {
            r["body"]["data"]["sdl"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// The ledger's records of the API deployment, oldest first.
fn history(p: &Project) -> Vec<serde_json::Value> {
    let h = p.run(&["history", "akash-1002", "--json"]);
    h.code(0);
    serde_json::from_str(&h.stdout).unwrap()
}

const EP: [&str; 2] = ["--banano-rpc-endpoint", ENDPOINT];

#[test]
fn deploy_points_the_deployment_at_the_sha_image() {
    let w = world(false);
    let p = project(&w);
    // A first deploy: the Console does not answer the env, so the endpoint
    // is given.
    let out = run(
        &p,
        "playbooks/deploy.rhai",
        &w,
        &["--sha", SHA, EP[0], EP[1]],
    );
    out.code(0);
    let image = format!("{}/mconstant/pay2slay-api:{SHA}", w.registry.host());
    let sent = puts(&w);
    assert_eq!(sent.len(), 1);
    assert!(sent[0].contains(&format!("image: {image}")), "{}", sent[0]);
    assert!(
        sent[0].contains(&format!("BANANO_RPC_ENDPOINT={ENDPOINT}")),
        "the endpoint is kept: {}",
        sent[0]
    );
    let e = event(&out, "deploy");
    assert_eq!(e["image_sha"], SHA);
    assert_eq!(e["image_digest"], w.digest.as_str());
    assert_eq!(e["image_ref"], format!("{image}@{}", w.digest));
    assert_eq!(e["signature_status"], "verified");
    assert_eq!(
        e["repository"],
        format!("{}/mconstant/pay2slay-api", w.registry.host())
    );
    assert_eq!(e["short_sha"], &SHA[..7]);
    assert!(e["deploy_duration_sec"].as_f64().is_some());
    // One token for the repository, however many registry calls.
    assert_eq!(w.registry.issuer.as_ref().unwrap().requests().len(), 1);
    // The ledger records what runs now: image, endpoint, and the manifest
    // hash the Console reports after the update.
    let live = w.console.deployment("1002");
    let recs = history(&p);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["image"], image.as_str());
    assert_eq!(recs[0]["banano_rpc_endpoint"], ENDPOINT);
    assert_eq!(
        recs[0]["deployment_hash"],
        live["data"]["deployment"]["hash"]
    );
    assert_eq!(recs[0]["image_ref"], e["image_ref"]);
    // The next deploy needs no endpoint: it is the one of record.
    run(&p, "playbooks/deploy.rhai", &w, &["--sha", OLD_SHA]).code(0);
    assert!(puts(&w)[1].contains(&format!("BANANO_RPC_ENDPOINT={ENDPOINT}")));
}

#[test]
fn deploy_refuses_missing_images_bad_shas_and_foreign_repositories() {
    let w = world(false);
    let p = project(&w);
    let missing = "2222222222222222222222222222222222222222";
    run(&p, "playbooks/deploy.rhai", &w, &["--sha", missing])
        .code(1)
        .has(&format!("mconstant/pay2slay-api:{missing} does not exist"))
        .has("no deploy happened");
    for bad in [&SHA[..39], &SHA.to_uppercase(), "latest", "main"] {
        run(&p, "playbooks/deploy.rhai", &w, &["--sha", bad])
            .code(2)
            .has("does not match the pattern");
    }
    let foreign = format!("{}/someone/else", w.registry.host());
    run(
        &p,
        "playbooks/deploy.rhai",
        &w,
        &["--sha", SHA, "--repository", &foreign],
    )
    .code(2)
    .has("not the canonical repository");
    // The namespace is fixed in lib/release.rhai, not a parameter: a CI
    // input cannot name another one and a --repository to match.
    let evil = format!("{}/evil/pay2slay-api", w.registry.host());
    run(
        &p,
        "playbooks/deploy.rhai",
        &w,
        &["--sha", SHA, "--owner", "evil", "--repository", &evil],
    )
    .code(2);
    // No endpoint anywhere (no file, no ledger, and the Console does not
    // answer the env): refused before the update.
    run(&p, "playbooks/deploy.rhai", &w, &["--sha", SHA])
        .code(1)
        .has("cannot tell the API's BANANO_RPC_ENDPOINT");
    assert!(puts(&w).is_empty(), "nothing was changed");
}

#[test]
fn deploy_dry_run_and_staging_branches() {
    let w = world(false);
    let p = project(&w);
    run(
        &p,
        "playbooks/deploy.rhai",
        &w,
        &["--sha", SHA, "--dry-run", EP[0], EP[1]],
    )
    .code(0)
    .has("would update deployment 1002");
    assert!(puts(&w).is_empty());
    let out = run(
        &p,
        "playbooks/deploy.rhai",
        &w,
        &["--sha", SHA, "--branch", "feature/x", EP[0], EP[1]],
    );
    out.code(0);
    assert!(
        puts(&w)[0].contains("/mconstant/pay2slay-api-staging:"),
        "{:?}",
        puts(&w)
    );
    // Unsigned is soft: logged, not fatal.
    assert_eq!(event(&out, "deploy")["signature_status"], "unsigned");
}

#[test]
fn deploy_fails_when_the_update_does_not_take() {
    let w = world(true);
    let p = project(&w);
    run(
        &p,
        "playbooks/deploy.rhai",
        &w,
        &["--sha", SHA, EP[0], EP[1]],
    )
    .code(1)
    .has("the Console accepted the update of deployment 1002 but its manifest hash did not move");
    assert!(history(&p).iter().all(|r| r["result"] != "ok"));
}

/// Another writer (a person in the Console) updates the deployment between
/// the run's read and its write: the Console API has no conditional write,
/// so runbook checks the manifest hash right before it writes and refuses.
#[test]
fn a_change_between_read_and_write_is_refused_and_nothing_is_sent() {
    let w = world(false);
    w.console.edit_state(|s| {
        s["deployments"]["1002"]["changed_by_another_writer_after"] = json!(2);
    });
    let p = project(&w);
    run(
        &p,
        "playbooks/deploy.rhai",
        &w,
        &["--sha", SHA, EP[0], EP[1]],
    )
    .code(1)
    .has("deployment 1002 changed since this run read it")
    .has("nothing was sent");
    assert!(puts(&w).is_empty(), "no lost update");
}

#[test]
fn rollback_records_what_it_replaced_and_who_asked() {
    let w = world(false);
    let mut p = project(&w);
    p.env("GITHUB_ACTOR", "octo-operator");
    run(
        &p,
        "playbooks/deploy.rhai",
        &w,
        &["--sha", OLD_SHA, EP[0], EP[1]],
    )
    .code(0);
    let out = run(&p, "playbooks/rollback.rhai", &w, &["--sha", SHA]);
    out.code(0);
    let e = event(&out, "rollback");
    let old_image = format!("{}/mconstant/pay2slay-api:{OLD_SHA}", w.registry.host());
    assert_eq!(e["requested_sha"], SHA);
    assert_eq!(e["previous_sha"], OLD_SHA);
    assert_eq!(e["rollback_origin"], old_image.as_str());
    assert_eq!(e["initiated_by"], "octo-operator");
    assert!(e["timestamp"].as_str().unwrap().ends_with('Z'));
    assert!(puts(&w)[1].contains(&format!(":{SHA}")));
    assert!(puts(&w)[1].contains(&format!("BANANO_RPC_ENDPOINT={ENDPOINT}")));
    assert_eq!(history(&p)[1]["rollback_origin"], old_image.as_str());
    let gone = "3333333333333333333333333333333333333333";
    run(&p, "playbooks/rollback.rhai", &w, &["--sha", gone])
        .code(1)
        .has("no rollback happened");
    assert_eq!(puts(&w).len(), 2);
}

#[test]
fn rollback_to_previous_takes_the_sha_from_the_ledger() {
    let w = world(false);
    let p = project(&w);
    // An empty ledger: a clear refusal, nothing changed.
    run(&p, "playbooks/rollback.rhai", &w, &["--sha", "previous"])
        .code(1)
        .has("the ledger of akash-1002 has no successful deploy")
        .has("runbook history akash-1002");
    assert!(puts(&w).is_empty());
    // One deploy: still nothing to go back to.
    run(
        &p,
        "playbooks/deploy.rhai",
        &w,
        &["--sha", OLD_SHA, EP[0], EP[1]],
    )
    .code(0);
    run(&p, "playbooks/rollback.rhai", &w, &["--sha", "previous"])
        .code(1)
        .has("has one successful deploy");
    assert_eq!(puts(&w).len(), 1);
    // Then SHA: "previous" is OLD_SHA, sent with the endpoint of record.
    run(&p, "playbooks/deploy.rhai", &w, &["--sha", SHA]).code(0);
    let out = run(&p, "playbooks/rollback.rhai", &w, &["--sha", "previous"]);
    out.code(0);
    let e = event(&out, "rollback");
    assert_eq!(e["requested_sha"], OLD_SHA);
    assert_eq!(
        e["previous_sha"], SHA,
        "the rollback names what it replaced"
    );
    let sent = &puts(&w)[2];
    assert!(sent.contains(&format!(":{OLD_SHA}")), "{sent}");
    assert!(
        sent.contains(&format!("BANANO_RPC_ENDPOINT={ENDPOINT}")),
        "{sent}"
    );
    let recs = history(&p);
    let shas: Vec<&str> = recs.iter().map(|r| r["sha"].as_str().unwrap()).collect();
    assert_eq!(shas, [OLD_SHA, SHA, OLD_SHA]);
    assert_eq!(recs[2]["replaced_sha"], SHA);
    assert_eq!(recs[2]["playbook"], "playbooks/rollback.rhai");
    assert_eq!(
        recs[2]["rollback_origin"],
        format!("{}/mconstant/pay2slay-api:{SHA}", w.registry.host())
    );
    // Now OLD_SHA runs: "previous" is SHA again.
    let out = run(&p, "playbooks/rollback.rhai", &w, &["--sha", "previous"]);
    out.code(0);
    assert_eq!(event(&out, "rollback")["requested_sha"], SHA);
}

/// Someone changed the deployment in the Console after runbook's last
/// deploy: the ledger no longer says what runs, so `previous` is refused
/// unless the user says to trust the ledger.
#[test]
fn previous_is_refused_when_the_deployment_changed_outside_runbook() {
    let w = world(false);
    let p = project(&w);
    run(
        &p,
        "playbooks/deploy.rhai",
        &w,
        &["--sha", OLD_SHA, EP[0], EP[1]],
    )
    .code(0);
    run(&p, "playbooks/deploy.rhai", &w, &["--sha", SHA]).code(0);
    w.console.edit_state(|s| {
        let sdl = s["deployments"]["1002"]["sdl"]
            .as_str()
            .unwrap()
            .to_string();
        s["deployments"]["1002"]["sdl"] = json!(format!("{sdl}\n# edited in the Console\n"));
    });
    run(&p, "playbooks/rollback.rhai", &w, &["--sha", "previous"])
        .code(1)
        .has("changed outside runbook")
        .has("--trust-ledger");
    assert_eq!(puts(&w).len(), 2, "nothing was sent");
    let out = run(
        &p,
        "playbooks/rollback.rhai",
        &w,
        &["--sha", "previous", "--trust-ledger"],
    );
    out.code(0);
    assert_eq!(event(&out, "rollback")["requested_sha"], OLD_SHA);
}

#[test]
fn post_build_emits_the_build_metadata_line() {
    let w = world(false);
    let p = project(&w);
    let out = run(
        &p,
        "playbooks/post-build.rhai",
        &w,
        &[
            "--sha",
            SHA,
            "--build-duration-sec",
            "93",
            "--built-at",
            "2026-11-23T13:04:45Z",
        ],
    );
    out.code(0);
    let e = event(&out, "build");
    assert_eq!(
        e,
        json!({"image_sha": SHA, "image_digest": w.digest, "signature_status": "verified",
               "repository": format!("{}/mconstant/pay2slay-api", w.registry.host()),
               "short_sha": &SHA[..7], "build_duration_sec": 93,
               "built_at": "2026-11-23T13:04:45Z", "event": "build"})
    );
    // A required signature that does not verify fails the build check.
    run(
        &p,
        "playbooks/post-build.rhai",
        &w,
        &["--sha", SHA, "--branch", "dev", "--require-signature"],
    )
    .code(1)
    .has("unsigned");
}

#[test]
fn deploy_and_rollback_read_the_endpoint_file_they_are_given() {
    let w = world(false);
    let p = project(&w);
    // What split-deploy --endpoint-file artifacts/banano.json wrote; a stale
    // endpoint.json beside it must not be read instead.
    let fresh = "fresh.provider.example:32001";
    p.file(
        "artifacts/banano.json",
        &json!({ "banano_rpc_endpoint": fresh }).to_string(),
    );
    p.file(
        "endpoint.json",
        &json!({ "banano_rpc_endpoint": "stale.provider.example:31000" }).to_string(),
    );
    let file = ["--endpoint-file", "artifacts/banano.json"];
    run(
        &p,
        "playbooks/deploy.rhai",
        &w,
        &[&["--sha", SHA][..], &file].concat(),
    )
    .code(0);
    run(
        &p,
        "playbooks/rollback.rhai",
        &w,
        &[&["--sha", OLD_SHA][..], &file].concat(),
    )
    .code(0);
    let puts = puts(&w);
    assert_eq!(puts.len(), 2);
    for sdl in &puts {
        assert!(
            sdl.contains(&format!("BANANO_RPC_ENDPOINT={fresh}")),
            "{sdl}"
        );
    }
}

#[test]
fn a_malformed_endpoint_artifact_stops_deploy_and_rollback() {
    let w = world(false);
    let p = project(&w);
    // The running deployment has an endpoint to fall back on, but a bad
    // artifact is an error to fix, not a file to skip.
    p.file(
        "endpoint.json",
        r#"{"banano_rpc_endpoint": "node.example:7072", "stale": true}"#,
    );
    for (playbook, sha) in [
        ("playbooks/deploy.rhai", SHA),
        ("playbooks/rollback.rhai", OLD_SHA),
    ] {
        run(&p, playbook, &w, &["--sha", sha])
            .code(1)
            .has("endpoint.json must hold exactly one key, banano_rpc_endpoint");
    }
    p.file("endpoint.json", "not json");
    run(&p, "playbooks/deploy.rhai", &w, &["--sha", SHA])
        .code(1)
        .has("endpoint.json");
    assert!(puts(&w).is_empty(), "nothing was changed");
}

/// A deploy under a health gate whose URL answers 500: the new image is
/// sent, the gate fails, the image of record goes back with its endpoint
/// (exit 3), and the ledger says `rollback_pending` then `rolled_back`
/// with the image put back, so the next run reads it as what runs.
#[test]
fn a_failing_health_gate_redeploys_the_image_of_record() {
    let w = world(false);
    let p = project(&w);
    let health = support::http::Stub::start(|_| support::http::Reply::status(500));
    run(
        &p,
        "playbooks/deploy.rhai",
        &w,
        &["--sha", OLD_SHA, EP[0], EP[1]],
    )
    .code(0);
    let url = format!("{}/healthz", health.url());
    let out = run(
        &p,
        "playbooks/deploy.rhai",
        &w,
        &["--sha", SHA, "--health-url", &url, "--gate-count", "2"],
    );
    out.code(3)
        .has("gate 'health' failed")
        .has(&url)
        .has("rolled back in");
    assert_eq!(health.seen().len(), 1, "failure_limit 0: one 500 is enough");
    let old = format!("{}/mconstant/pay2slay-api:{OLD_SHA}", w.registry.host());
    let sent = puts(&w);
    assert_eq!(
        sent.len(),
        3,
        "the old image, the new one, the old one back"
    );
    assert!(sent[1].contains(&format!(":{SHA}")), "{}", sent[1]);
    assert!(sent[2].contains(&format!("image: {old}")), "{}", sent[2]);
    assert!(
        sent[2].contains(&format!("BANANO_RPC_ENDPOINT={ENDPOINT}")),
        "{}",
        sent[2]
    );
    // The record written as the rollback started, then the run's own.
    let recs = history(&p);
    assert_eq!(recs.len(), 3);
    assert_eq!(recs[1]["result"], "rollback_pending");
    assert!(
        recs[1]["rollback_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("gate 'health' failed"),
        "{}",
        recs[1]
    );
    assert_eq!(recs[2]["result"], "rolled_back");
    assert_eq!(recs[2]["image"], old.as_str());
    assert_eq!(
        recs[2]["deployment_hash"],
        w.console.deployment("1002")["data"]["deployment"]["hash"]
    );
    // What runs is the image of record again: the next deploy sees no drift.
    let again = run(&p, "playbooks/deploy.rhai", &w, &["--sha", OLD_SHA]);
    again.code(0);
    assert!(
        !again.stderr.contains("outside runbook"),
        "{}",
        again.stderr
    );
}
