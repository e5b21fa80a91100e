//! `runbook job`: the Job manifest for a playbook run, its parameters
//! validated as a run validates them, and the output passing the same
//! Kubernetes schema lint as `k8s/runbook/` (ci/k8s_validate.py).

use crate::support;

use std::process::Command;

use support::{repo, Project};

const SHA: &str = "4f1c2a9d0b8e7c6f5a4b3c2d1e0f9a8b7c6d5e4f";

/// A Python with `kubernetes_validate` (the lint's), if this machine has one.
fn lint_python() -> Option<String> {
    let mut candidates = Vec::new();
    if let Ok(p) = std::env::var("PYTHON") {
        candidates.push(p);
    }
    if let Ok(h) = std::env::var("HOME") {
        candidates.push(format!("{h}/.cache/runbook-ci-venv/bin/python"));
    }
    candidates.push("python3".into());
    candidates.into_iter().find(|p| {
        Command::new(p)
            .args(["-c", "import kubernetes_validate, yaml"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

fn project() -> Project {
    let p = Project::new();
    p.copy_from_repo("playbooks");
    p
}

#[test]
fn the_job_carries_the_run_and_passes_the_schema_lint() {
    let p = project();
    let out = p.run(&[
        "job",
        "playbooks/rollback.rhai",
        "--sha",
        SHA,
        "--dseq",
        "1002",
        "--job-image",
        &format!("ghcr.io/mconstant/runbook:{SHA}"),
        "--job-namespace",
        "deploys",
    ]);
    out.code(0);
    let job: serde_json::Value = serde_norway::from_str(&out.stdout).expect("YAML");
    assert_eq!(job["kind"], "Job");
    assert_eq!(job["metadata"]["namespace"], "deploys");
    let c = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], format!("ghcr.io/mconstant/runbook:{SHA}"));
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        args,
        [
            "playbooks/rollback.rhai",
            "--sha",
            SHA,
            "--dseq",
            "1002",
            "--log-format",
            "json"
        ]
    );
    let rules = &job["spec"]["podFailurePolicy"]["rules"];
    assert_eq!(rules[0]["action"], "FailJob");
    assert_eq!(rules[0]["onExitCodes"]["values"][0], 2);
    assert_eq!(rules[1]["action"], "Count");
    assert_eq!(rules[1]["onExitCodes"]["values"][0], 75);
    assert_eq!(rules[2]["onPodConditions"][0]["type"], "DisruptionTarget");

    let Some(py) = lint_python() else {
        panic!(
            "no Python with kubernetes_validate and PyYAML for the schema lint: install them with \
             `bash ci/install-deps.sh` (a venv in ~/.cache/runbook-ci-venv from \
             ci/requirements-k8s.txt), or name one in PYTHON"
        );
    };
    let file = p.path().join("job.yaml");
    std::fs::write(&file, &out.stdout).unwrap();
    let lint = Command::new(&py)
        .arg(repo().join("ci/k8s_validate.py"))
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        lint.status.success(),
        "{}{}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );
}

#[test]
fn parameters_are_validated_before_any_manifest() {
    let p = project();
    let img = ["--job-image", "ghcr.io/mconstant/runbook@sha256:00"];
    let mut bad = vec![
        "job",
        "playbooks/rollback.rhai",
        "--sha",
        "nope",
        "--dseq",
        "1",
    ];
    bad.extend(img);
    p.run(&bad)
        .code(2)
        .has("does not match the pattern")
        .lacks("kind: Job");
    let mut missing = vec!["job", "playbooks/rollback.rhai", "--dseq", "1"];
    missing.extend(img);
    p.run(&missing).code(2).has("--sha").lacks("kind: Job");
    p.run(&[
        "job",
        "playbooks/rollback.rhai",
        "--sha",
        SHA,
        "--dseq",
        "1",
    ])
    .code(2)
    .has("needs --job-image");
    p.run(&["job", "playbooks/nope.rhai", "--job-image", "x"])
        .code(2)
        .has("cannot read the playbook");
}
