//! The fake Kubernetes API servers answer only what the real API describes:
//! every object they serve (tests/it/support/kube.rs for the Minikube flow,
//! support/leases.rs for the kube lock and ledger) is validated against the
//! Kubernetes OpenAPI schemas of v1.30, strict (tests/standins/validate_k8s.py,
//! with the schemas kubernetes-validate bundles: the ones ci/k8s_validate.py
//! lints manifests with). A field the real API lacks fails here.

use crate::support;

use std::process::Command;

use serde_json::{json, Value};
use support::http::request;
use support::kube::{FakeKube, Frontend};
use support::kube_objects::{habit_tracker, Rollout};
use support::leases::FakeLeases;
use support::{repo, Project};

const NS: &str = "habit-tracker";

/// The CI venv's Python (with kubernetes-validate); a test that cannot
/// validate fails, naming the install command.
fn python() -> String {
    let venv = std::env::var("HOME")
        .map(|h| format!("{h}/.cache/runbook-ci-venv/bin/python"))
        .unwrap_or_default();
    for py in [venv.as_str(), "python3"] {
        let ok = Command::new(py)
            .args(["-c", "import kubernetes_validate, jsonschema"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return py.to_string();
        }
    }
    panic!("no Python with kubernetes_validate: run `bash ci/install-deps.sh` (it installs ci/requirements-k8s.txt into ~/.cache/runbook-ci-venv)");
}

/// Fails naming every object that is not what the real API would serve.
#[track_caller]
fn conform(items: &[(String, Value)]) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("objects.json");
    std::fs::write(&file, serde_json::to_string(items).unwrap()).unwrap();
    // KUBE_CONTRACT_KEEP=FILE keeps the objects, to see every error at once.
    if let Ok(keep) = std::env::var("KUBE_CONTRACT_KEEP") {
        let _ = std::fs::copy(&file, keep);
    }
    let out = Command::new(python())
        .arg(repo().join("tests/standins/validate_k8s.py"))
        .arg(&file)
        .output()
        .expect("the validator runs");
    assert!(
        out.status.success(),
        "not in the Kubernetes v1.30 schemas:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn get(base: &str, path: &str) -> (u16, String) {
    let r = request("GET", &format!("{base}{path}"), &[], b"");
    (r.status, r.text())
}

#[test]
fn every_object_the_fake_cluster_serves_is_in_the_kubernetes_schema() {
    let front = Frontend::start();
    let mut cluster = habit_tracker(NS, front.port, Rollout::Ready, Rollout::ReadyAfter(2));
    cluster.forbidden.push("secrets".into());
    let kube = FakeKube::start(cluster);
    let base = kube.url.clone();
    let mut items = Vec::new();
    for path in [
        "/version".to_string(),
        "/api/v1/nodes".into(),
        "/api/v1/pods".into(),
        format!("/api/v1/namespaces/{NS}/pods"),
        format!("/api/v1/namespaces/{NS}/services"),
        format!("/api/v1/namespaces/{NS}/services/habit-tracker-frontend"),
        format!("/apis/apps/v1/namespaces/{NS}/deployments"),
        format!("/apis/apps/v1/namespaces/{NS}/deployments/habit-tracker-backend"),
        format!("/apis/apps/v1/namespaces/{NS}/deployments/nope"),
        format!("/api/v1/namespaces/{NS}/secrets"),
        "/apis/nothing".into(),
    ] {
        let (status, body) = get(&base, &path);
        let v: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("GET {path} ({status}): not JSON ({e}): {body}"));
        let label = if path == "/version" {
            "version".into()
        } else {
            format!("GET {path} ({status})")
        };
        items.push((label, v));
    }
    let (_, events) = get(
        &base,
        &format!("/apis/apps/v1/namespaces/{NS}/deployments?watch=true&fieldSelector=metadata.name=habit-tracker-frontend&timeoutSeconds=1"),
    );
    let mut n = 0;
    for line in events.lines().filter(|l| !l.trim().is_empty()) {
        items.push((
            format!("watch event {n}"),
            serde_json::from_str(line).unwrap(),
        ));
        n += 1;
    }
    assert!(n >= 2, "the watch streamed {n} events: {events}");
    conform(&items);
}

/// The lock's Lease and the ledger's ConfigMap, as runbook wrote them and
/// the fake stores them, and the fake's errors.
#[test]
fn the_lease_and_ledger_objects_are_in_the_kubernetes_schema() {
    let api = FakeLeases::start();
    let mut p = Project::new();
    let kc = api.kubeconfig(p.path());
    p.env("KUBECONFIG", kc.to_str().unwrap())
        .env("RUNBOOK_LOCK_BACKEND", "kube")
        .env("RUNBOOK_ALLOW", "sh");
    p.file(
        "deploy.rhai",
        "lock(\"app\", #{ ttl: 5 });\nledger_note(#{ sha: \"abc\", image: \"app:abc\" });\nexec([\"sh\", \"-c\", \"true\"]);\n",
    );
    p.run(&["deploy.rhai"]).code(0);
    let lease = api
        .get("Lease", "default", "runbook-app")
        .expect("the Lease");
    let ledger = api
        .get("ConfigMap", "default", "runbook-ledger-app")
        .expect("the ledger ConfigMap");
    let base = api.url.clone();
    let (status, missing) = get(
        &base,
        "/apis/coordination.k8s.io/v1/namespaces/default/leases/nope",
    );
    assert_eq!(status, 404);
    conform(&[
        ("the lock's Lease".into(), lease),
        ("the ledger's ConfigMap".into(), ledger),
        (
            "a missing Lease (404)".into(),
            serde_json::from_str(&missing).unwrap(),
        ),
    ]);
}

/// The check can fail: a Lease with a field the API does not have, a
/// Deployment missing its kind's shape, a Status with a wrong type.
#[test]
fn the_kubernetes_contract_refuses_what_the_api_lacks() {
    for bad in [
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "a"}, "spec": {"holderIdentity": "x", "holder": "y"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"records": 5}}),
        json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": "404"}),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("objects.json");
        std::fs::write(&file, serde_json::to_string(&[("bad", &bad)]).unwrap()).unwrap();
        let out = Command::new(python())
            .arg(repo().join("tests/standins/validate_k8s.py"))
            .arg(&file)
            .output()
            .unwrap();
        assert!(!out.status.success(), "accepted {bad}");
    }
}
