//! `runbook job` (issue 18): its own options never take a playbook's
//! parameters, the playbook is validated exactly as a run validates it,
//! the manifest stays valid YAML whatever the parameters hold, and a
//! mutable image tag is called out.

use crate::support::{pb, Project};

const PINNED: &str = "ghcr.io/mconstant/runbook@sha256:0000000000000000000000000000000000000000000000000000000000000000";

fn yaml(out: &crate::support::Output) -> serde_json::Value {
    serde_norway::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("not YAML ({e}):\n{}", out.stdout))
}

fn container_args(job: &serde_json::Value) -> Vec<String> {
    job["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn a_playbooks_namespace_and_image_are_the_playbooks() {
    let p = Project::new();
    p.copy_from_repo("playbooks");
    // minikube.rhai's own --namespace: the install's, not the Job's.
    let out = p.run(&[
        "job",
        "playbooks/minikube.rhai",
        "--namespace",
        "staging",
        "--job-image",
        PINNED,
    ]);
    out.code(0);
    let job = yaml(&out);
    assert_eq!(job["metadata"]["namespace"], "runbook");
    let args = container_args(&job);
    assert!(
        args.windows(2).any(|w| w == ["--namespace", "staging"]),
        "{args:?}"
    );

    // A playbook with an --image parameter can become a Job.
    let p = pb(
        "const PARAMS = #{ image: #{ required: true }, namespace: #{ required: true } };\nprint(args.image + args.namespace);",
    );
    let out = p.run(&[
        "job",
        "pb.rhai",
        "--image",
        "app:1",
        "--namespace",
        "apps",
        "--job-namespace",
        "ops",
        "--job-image",
        PINNED,
    ]);
    out.code(0);
    let job = yaml(&out);
    assert_eq!(job["metadata"]["namespace"], "ops");
    let c = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], PINNED);
    assert_eq!(
        container_args(&job),
        [
            "pb.rhai",
            "--image",
            "app:1",
            "--namespace",
            "apps",
            "--log-format",
            "json"
        ]
    );
    // The old spelling fails loudly for a playbook without such a parameter.
    pb("print(1);")
        .run(&["job", "pb.rhai", "--image", PINNED])
        .code(2)
        .has("unknown parameter --image")
        .has("--job-image")
        .lacks("kind: Job");
}

#[test]
fn check_warns_about_a_parameter_the_job_command_takes() {
    let p = pb("const PARAMS = #{ job_image: #{ help: \"x\" } };\nprint(args.job_image);");
    p.run(&["check", "pb.rhai"])
        .code(0)
        .has("warning pb.rhai: PARAMS.job_image: `runbook job` takes --job-image");
}

#[test]
fn a_parameter_equal_to_a_secret_stays_valid_yaml() {
    let secret = "s3cr3t-token-value-4242";
    let mut p = pb("const PARAMS = #{ note: #{} };\nprint(args.note);");
    p.env("GITHUB_TOKEN", secret);
    let out = p.run(&["job", "pb.rhai", "--note", secret, "--job-image", PINNED]);
    out.code(0).lacks(secret).has("is a secret");
    let job = yaml(&out);
    assert_eq!(
        container_args(&job),
        ["pb.rhai", "--note", "***", "--log-format", "json"]
    );
}

#[test]
fn a_mutable_image_tag_is_called_out() {
    let p = pb("print(1);");
    p.run(&["job", "pb.rhai", "--job-image", "ghcr.io/x/runbook:latest"])
        .code(0)
        .has("tag that can move");
    p.run(&["job", "pb.rhai", "--job-image", PINNED])
        .code(0)
        .lacks("tag that can move");
}

#[test]
fn the_job_validates_the_playbook_exactly_as_a_run_does() {
    // A lint a run refuses with (an unknown function) refuses the Job too.
    let p = pb("prnt(\"typo\");");
    p.run(&["pb.rhai"])
        .code(2)
        .has("problem(s) that would fail the run");
    p.run(&["job", "pb.rhai", "--job-image", PINNED])
        .code(2)
        .has("problem(s) that would fail the run")
        .lacks("kind: Job");
    // A missing import, a module, an oversized file: refused as a run refuses them.
    let p = pb("import \"nowhere\" as n;\nprint(1);");
    p.run(&["job", "pb.rhai", "--job-image", PINNED])
        .code(2)
        .has("import \"nowhere\"")
        .lacks("kind: Job");
    let p = pb("fn helper() { 1 }");
    p.run(&["job", "pb.rhai", "--job-image", PINNED])
        .code(2)
        .has("is a module, not a playbook");
    let p = pb(&format!("// {}\nprint(1);", "x".repeat(5 * 1024 * 1024)));
    p.run(&["job", "pb.rhai", "--job-image", PINNED])
        .code(2)
        .has("a playbook may have at most");
    // The runner's options pass through to the Job's run, checked as a run checks them.
    let p = pb("print(1);");
    let out = p.run(&["job", "pb.rhai", "--timeout", "600", "--job-image", PINNED]);
    out.code(0);
    assert_eq!(
        container_args(&yaml(&out)),
        ["pb.rhai", "--timeout", "600", "--log-format", "json"]
    );
    p.run(&["job", "pb.rhai", "--timeout", "soon", "--job-image", PINNED])
        .code(2)
        .has("--timeout 'soon'");
    p.run(&["job", "pb.rhai", "--help", "--job-image", PINNED])
        .code(2)
        .has("runbook pb.rhai --help")
        .lacks("kind: Job");
}
