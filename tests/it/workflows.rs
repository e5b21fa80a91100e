//! Drift checks on the files CI runs: the workflows (runbook's own in
//! .github/workflows, the consuming repository's worked example in
//! examples/*/workflows), action.yml, the runbook image's Dockerfile and
//! the Argo WorkflowTemplate. Each test reads the files and fails naming
//! the file and what drifted; the linters (actionlint, hadolint) are the
//! ones ci/install-deps.sh installs, and a missing one fails, never skips.

use crate::support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use regex::Regex;
use serde_json::{json, Value};
use support::repo;

/// Folders a consuming repository has and this one does not: the example
/// workflows may name them (examples/pay2slay/README.md says so); runbook's
/// own workflows may not.
const CONSUMER_ONLY: &[&str] = &["api/"];

/// The playbooks that change a deployment: their jobs are the deploy and
/// rollback paths.
const DEPLOYING: &[&str] = &[
    "playbooks/deploy.rhai",
    "playbooks/rollback.rhai",
    "playbooks/split-deploy.rhai",
];

/// One workflow file: where it is, its text and its YAML.
struct Workflow {
    path: PathBuf,
    text: String,
    yaml: Value,
    /// In examples/: a consuming repository's file.
    example: bool,
}

impl Workflow {
    fn name(&self) -> String {
        self.path
            .strip_prefix(repo())
            .unwrap_or(&self.path)
            .display()
            .to_string()
    }

    fn jobs(&self) -> Vec<(&String, &Value)> {
        self.yaml["jobs"]
            .as_object()
            .map(|m| m.iter().collect())
            .unwrap_or_default()
    }
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    out.sort();
    out
}

fn parse(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()))
}

/// Every shipped workflow: .github/workflows/*, examples/*/workflows/*.
fn workflows() -> Vec<Workflow> {
    let root = repo();
    let mut paths: Vec<(PathBuf, bool)> = yaml_files(&root.join(".github/workflows"))
        .into_iter()
        .map(|p| (p, false))
        .collect();
    for ex in std::fs::read_dir(root.join("examples"))
        .into_iter()
        .flatten()
        .flatten()
    {
        paths.extend(
            yaml_files(&ex.path().join("workflows"))
                .into_iter()
                .map(|p| (p, true)),
        );
    }
    assert!(
        paths.len() >= 2,
        "no workflows found under {}",
        root.display()
    );
    paths
        .into_iter()
        .map(|(path, example)| Workflow {
            text: std::fs::read_to_string(&path).unwrap(),
            yaml: parse(&path),
            path,
            example,
        })
        .collect()
}

/// Every step of every job (and of action.yml): (where, step).
fn all_steps(wfs: &[Workflow]) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for wf in wfs {
        for (job, j) in wf.jobs() {
            for s in j["steps"].as_array().into_iter().flatten() {
                out.push((format!("{} job {job}", wf.name()), s.clone()));
            }
        }
    }
    let action = parse(&repo().join("action.yml"));
    for s in action["runs"]["steps"].as_array().into_iter().flatten() {
        out.push(("action.yml".to_string(), s.clone()));
    }
    out
}

/// Whether a step runs the runbook action (this repository's, or `./`).
fn is_runbook_action(step: &Value) -> bool {
    step["uses"]
        .as_str()
        .is_some_and(|u| u == "./" || u.starts_with("mconstant/runbook@"))
}

/// The jobs that change a deployment: (workflow, job name, job).
fn deploying_jobs(wfs: &[Workflow]) -> Vec<(&Workflow, &String, &Value)> {
    let mut out = Vec::new();
    for wf in wfs {
        for (name, job) in wf.jobs() {
            let steps = job["steps"].as_array().cloned().unwrap_or_default();
            let deploys = steps.iter().any(|s| {
                let pb = s["with"]["playbook"].as_str().unwrap_or("");
                let run = s["run"].as_str().unwrap_or("");
                DEPLOYING.iter().any(|d| pb == *d || run.contains(d))
            });
            if deploys {
                out.push((wf, name, job));
            }
        }
    }
    out
}

/// Every file of the repository (relative, `/`-separated), but build
/// output and VCS internals.
fn repo_files() -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            let rel = p
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            if rel == "target" || rel == ".git" {
                continue;
            }
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(rel);
            }
        }
    }
    let mut out = Vec::new();
    walk(&repo(), &repo(), &mut out);
    out
}

/// A GitHub `paths:` glob as an anchored regex (`**` any depth, `*` and
/// `?` within one segment).
fn glob_regex(glob: &str) -> Regex {
    let mut re = String::from("^");
    let mut chars = glob.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                re.push_str(".*");
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    Regex::new(&re).unwrap()
}

/// A linter from the CI venv (ci/install-deps.sh), else from PATH.
fn tool(name: &str) -> PathBuf {
    let venv = std::env::var_os("RUNBOOK_CI_VENV")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/runbook-ci-venv"))
        });
    if let Some(p) = venv
        .map(|v| v.join("bin").join(name))
        .filter(|p| p.is_file())
    {
        return p;
    }
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        if dir.join(name).is_file() {
            return dir.join(name);
        }
    }
    panic!("{name} is not installed: run `bash ci/install-deps.sh` (it installs {name} in the CI venv)");
}

/// `major.minor` of a version string like `1.88` or `1.88.0`.
fn major_minor(v: &str) -> (u32, u32) {
    let mut it = v.split('.').map(|p| {
        p.parse::<u32>()
            .unwrap_or_else(|_| panic!("not a version: {v}"))
    });
    (it.next().unwrap(), it.next().unwrap_or(0))
}

#[test]
fn the_image_builds_with_at_least_cargo_tomls_rust_version() {
    let cargo = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let want = Regex::new(r#"(?m)^rust-version\s*=\s*"([0-9.]+)""#)
        .unwrap()
        .captures(&cargo)
        .expect("Cargo.toml names a rust-version")[1]
        .to_string();
    let docker = std::fs::read_to_string(repo().join("images/runbook/Dockerfile")).unwrap();
    let froms: Vec<String> =
        Regex::new(r"(?mi)^FROM\s+(?:docker\.io/)?(?:library/)?rust:([0-9]+(?:\.[0-9]+){1,2})")
            .unwrap()
            .captures_iter(&docker)
            .map(|c| c[1].to_string())
            .collect();
    assert!(
        !froms.is_empty(),
        "images/runbook/Dockerfile builds FROM no rust:<version> image (pin one, e.g. rust:{want}.0-alpine3.22)"
    );
    for got in froms {
        assert!(
            major_minor(&got) >= major_minor(&want),
            "images/runbook/Dockerfile builds with rust:{got}, older than Cargo.toml's rust-version {want}: raise the FROM line"
        );
    }
}

#[test]
fn paths_filters_name_files_that_exist() {
    let files = repo_files();
    let mut bad = Vec::new();
    for wf in workflows() {
        for (event, on) in wf.yaml["on"].as_object().into_iter().flatten() {
            for key in ["paths", "paths-ignore"] {
                for p in on[key].as_array().into_iter().flatten() {
                    let p = p.as_str().unwrap_or_default();
                    let glob = p.trim_start_matches('!');
                    if wf.example && CONSUMER_ONLY.iter().any(|c| glob.starts_with(c)) {
                        continue;
                    }
                    // An example's own file is in its folder here.
                    let here = match glob.strip_prefix(".github/workflows/") {
                        Some(f) if wf.example => {
                            let dir = wf.path.parent().unwrap().strip_prefix(repo()).unwrap();
                            format!("{}/{f}", dir.display())
                        }
                        _ => glob.to_string(),
                    };
                    let re = glob_regex(&here);
                    if !files.iter().any(|f| re.is_match(f)) {
                        bad.push(format!(
                            "{}: on.{event}.{key}: '{p}' matches no file",
                            wf.name()
                        ));
                    }
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "paths filters that name nothing (a renamed or removed file):\n  {}",
        bad.join("\n  ")
    );
}

#[test]
fn every_action_is_pinned_by_full_commit_sha_with_its_tag_in_a_comment() {
    let wfs = workflows();
    let pinned = Regex::new(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40}$").unwrap();
    let line = Regex::new(r"^\s*(?:-\s+)?uses:\s*(\S+)\s*(#.*)?$").unwrap();
    let mut bad = Vec::new();
    let action = repo().join("action.yml");
    let mut texts: Vec<(String, String)> = wfs.iter().map(|w| (w.name(), w.text.clone())).collect();
    texts.push((
        "action.yml".into(),
        std::fs::read_to_string(&action).unwrap(),
    ));
    let mut seen = 0;
    for (name, text) in &texts {
        for (i, l) in text.lines().enumerate() {
            let Some(c) = line.captures(l) else { continue };
            seen += 1;
            let uses = &c[1];
            if uses.starts_with("./") {
                continue;
            }
            if !pinned.is_match(uses) {
                bad.push(format!(
                    "{name}:{}: `uses: {uses}` is not pinned by a 40-hex commit SHA",
                    i + 1
                ));
            } else if c.get(2).is_none() {
                bad.push(format!("{name}:{}: `uses: {uses}` has no comment naming the tag it is (e.g. `# v4.1.0`)", i + 1));
            }
        }
    }
    // The YAML agrees with the line scan (no `uses` the regex missed).
    let from_yaml = all_steps(&wfs)
        .iter()
        .filter(|(_, s)| s["uses"].is_string())
        .count();
    assert!(
        seen >= from_yaml,
        "{seen} `uses:` lines scanned, {from_yaml} in the YAML: a `uses:` in another layout"
    );
    assert!(
        bad.is_empty(),
        "actions not pinned (find the SHA: git rev-parse refs/tags/<tag>^{{commit}}):\n  {}",
        bad.join("\n  ")
    );
}

#[test]
fn no_input_or_event_expression_inside_a_run_script() {
    let wfs = workflows();
    // Data an outsider or a dispatcher controls: spliced into a script, it
    // is code. It goes through `env:` instead.
    let tainted = Regex::new(r"\$\{\{[^}]*\b(inputs\.|github\.event\.|github\.head_ref)").unwrap();
    let mut bad = Vec::new();
    for (where_, step) in all_steps(&wfs) {
        if let Some(run) = step["run"].as_str() {
            if let Some(m) = tainted.find(run) {
                bad.push(format!(
                    "{where_} step '{}': `{}` inside run:",
                    step["name"].as_str().unwrap_or("?"),
                    m.as_str()
                ));
            }
        }
        // The action's args lines: a raw input could hold a newline, so
        // one more argument. They take a checked step output instead.
        if is_runbook_action(&step) {
            if let Some(args) = step["with"]["args"].as_str() {
                if let Some(m) = tainted.find(args) {
                    bad.push(format!("{where_} step '{}': `{}` in the action's args (validate it in a step, pass its output)", step["name"].as_str().unwrap_or("?"), m.as_str()));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "script injection risks:\n  {}",
        bad.join("\n  ")
    );
}

#[test]
fn every_job_states_its_permissions() {
    let mut bad = Vec::new();
    for wf in workflows() {
        // A top-level block counts only when it grants no write.
        let top = &wf.yaml["permissions"];
        let top_minimal = match top {
            Value::Object(m) => m.values().all(|v| v == "read" || v == "none"),
            _ => false,
        };
        for (name, job) in wf.jobs() {
            if job.get("permissions").is_none() && !top_minimal {
                bad.push(format!(
                    "{} job {name}: no `permissions:` (and no minimal top-level one)",
                    wf.name()
                ));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "jobs with the token's default permissions:\n  {}",
        bad.join("\n  ")
    );
}

/// The concurrency groups a job can be in: the group's text with each
/// `${{ inputs.X }}` expanded to the choices of input X, and each quoted
/// literal of a `${{ … && 'a' || 'b' }}` expression.
fn groups(wf: &Workflow, job: &Value) -> BTreeSet<String> {
    let group = job["concurrency"]["group"]
        .as_str()
        .unwrap_or("")
        .trim()
        .to_string();
    let input = Regex::new(r"^(.*)\$\{\{\s*inputs\.([A-Za-z_]+)\s*\}\}(.*)$").unwrap();
    let quoted = Regex::new(r"'([^']*)'").unwrap();
    if let Some(c) = input.captures(&group) {
        let opts = &wf.yaml["on"]["workflow_dispatch"]["inputs"][&c[2]]["options"];
        return opts
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o.as_str())
            .map(|o| format!("{}{o}{}", &c[1], &c[3]))
            .collect();
    }
    if group.starts_with("${{") {
        return quoted
            .captures_iter(&group)
            .map(|c| c[1].to_string())
            .filter(|s| s.starts_with("akash-"))
            .collect();
    }
    BTreeSet::from([group])
}

#[test]
fn deploy_and_rollback_share_one_concurrency_group_per_target() {
    let wfs = workflows();
    let jobs = deploying_jobs(&wfs);
    assert!(
        jobs.len() >= 3,
        "expected the deploy and rollback jobs, found {}",
        jobs.len()
    );
    let mut bad = Vec::new();
    let mut deploy_groups = BTreeSet::new();
    let mut rollback_groups = BTreeSet::new();
    let per_target = Regex::new(r"^akash-[a-z]+-(production|staging)$").unwrap();
    for (wf, name, job) in &jobs {
        let at = format!("{} job {name}", wf.name());
        if job["concurrency"]["cancel-in-progress"] != json!(false) {
            bad.push(format!(
                "{at}: concurrency.cancel-in-progress must be false (never stop an update halfway)"
            ));
        }
        let gs = groups(wf, job);
        if gs.is_empty() || gs.iter().any(|g| !per_target.is_match(g)) {
            bad.push(format!("{at}: concurrency group(s) {gs:?}: want one per target, akash-<app>-production|staging"));
        }
        let plays: String = job["steps"].to_string();
        if plays.contains("playbooks/rollback.rhai") {
            rollback_groups.extend(gs);
        } else if plays.contains("playbooks/deploy.rhai") || plays.contains("--stack") {
            deploy_groups.extend(gs);
        }
    }
    for target in ["akash-api-production", "akash-api-staging"] {
        if !(deploy_groups.contains(target) && rollback_groups.contains(target)) {
            bad.push(format!("{target}: deploys in {deploy_groups:?}, rollbacks in {rollback_groups:?}: they must share it"));
        }
    }
    assert!(bad.is_empty(), "concurrency drift:\n  {}", bad.join("\n  "));
}

#[test]
fn deploy_and_rollback_jobs_use_the_prebuilt_action_and_the_github_backends() {
    let wfs = workflows();
    let mut bad = Vec::new();
    for wf in &wfs {
        if wf.text.contains("cargo install") {
            bad.push(format!(
                "{}: `cargo install` (a compile in the critical path): use the runbook action",
                wf.name()
            ));
        }
    }
    for (wf, name, job) in deploying_jobs(&wfs) {
        let at = format!("{} job {name}", wf.name());
        let steps = job["steps"].as_array().cloned().unwrap_or_default();
        for s in &steps {
            let run = s["run"].as_str().unwrap_or("");
            if DEPLOYING.iter().any(|d| run.contains(d)) {
                bad.push(format!(
                    "{at}: runs a deploying playbook from a script: use the runbook action"
                ));
            }
            if is_runbook_action(s) {
                for input in ["version", "sha256"] {
                    if s["with"][input]
                        .as_str()
                        .is_none_or(|v| v.trim().is_empty())
                    {
                        bad.push(format!("{at}: the runbook action without `{input}` pinned"));
                    }
                }
            }
        }
        for var in ["RUNBOOK_LOCK_BACKEND", "RUNBOOK_LEDGER_BACKEND"] {
            if job["env"][var] != json!("github") {
                bad.push(format!(
                    "{at}: env {var} is {}, want github",
                    job["env"][var]
                ));
            }
        }
        let perms = &job["permissions"];
        for scope in ["contents", "deployments"] {
            if perms[scope] != json!("write") {
                bad.push(format!(
                    "{at}: permissions.{scope} is {}, the github backends need write",
                    perms[scope]
                ));
            }
        }
        for (scope, level) in perms.as_object().into_iter().flatten() {
            if level == "write" && scope != "contents" && scope != "deployments" {
                bad.push(format!(
                    "{at}: permissions.{scope}: write is more than a deploy needs"
                ));
            }
        }
    }
    // Every runbook action step anywhere pins its binary.
    for (where_, s) in all_steps(&wfs) {
        if is_runbook_action(&s)
            && s["with"]["sha256"]
                .as_str()
                .is_none_or(|v| v.trim().is_empty())
        {
            bad.push(format!(
                "{where_}: the runbook action without a pinned sha256"
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "deploy/rollback drift:\n  {}",
        bad.join("\n  ")
    );
}

#[test]
fn runbooks_own_workflows_build_only_folders_that_exist() {
    let mut bad = Vec::new();
    let api = Regex::new(r"(?m)(context:\s*\.?/?api\b|\bapi/\*\*)").unwrap();
    for wf in workflows() {
        for (where_, s) in all_steps(std::slice::from_ref(&wf)) {
            let builds = s["uses"]
                .as_str()
                .unwrap_or("")
                .contains("build-push-action");
            let mut paths = vec![("working-directory", s["working-directory"].as_str())];
            if builds {
                paths.push(("context", s["with"]["context"].as_str()));
                paths.push(("file", s["with"]["file"].as_str()));
            }
            for (key, p) in paths {
                let Some(p) = p.filter(|p| !p.contains("${{")) else {
                    continue;
                };
                let dir = p.trim_end_matches('/');
                let consumer = CONSUMER_ONLY
                    .iter()
                    .any(|c| format!("{dir}/").starts_with(c));
                if wf.example && consumer {
                    continue;
                }
                if !repo().join(dir).exists() {
                    bad.push(format!(
                        "{where_}: `{key}: {p}` does not exist in this repository"
                    ));
                }
            }
        }
        if !wf.example && api.is_match(&wf.text) && !repo().join("api").is_dir() {
            bad.push(format!("{}: builds or watches api/, which is not in this repository (a consuming repository's workflow belongs in examples/)", wf.name()));
        }
    }
    assert!(
        bad.is_empty(),
        "workflows building what is not here:\n  {}",
        bad.join("\n  ")
    );
}

#[test]
fn the_shipped_workflows_are_actionlint_clean() {
    let actionlint = tool("actionlint");
    let shellcheck = tool("shellcheck");
    let files: Vec<PathBuf> = workflows().into_iter().map(|w| w.path).collect();
    let out = Command::new(&actionlint)
        .arg("-no-color")
        .arg("-shellcheck")
        .arg(&shellcheck)
        .args(&files)
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "actionlint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_actions_scripts_are_shellcheck_clean() {
    let shellcheck = tool("shellcheck");
    let action = parse(&repo().join("action.yml"));
    for s in action["runs"]["steps"].as_array().unwrap() {
        let run = s["run"].as_str().unwrap();
        // The runner's expressions are not shell: none are left in run:.
        let mut child = Command::new(&shellcheck)
            .args(["-s", "bash", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(run.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "action.yml step '{}': shellcheck:\n{}",
            s["name"].as_str().unwrap_or("?"),
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn the_runbook_image_dockerfile_is_hadolint_clean() {
    let hadolint = tool("hadolint");
    let out = Command::new(&hadolint)
        .args([
            "--config",
            "images/.hadolint.yaml",
            "images/runbook/Dockerfile",
        ])
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hadolint images/runbook/Dockerfile:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Argo's published schema (tests/data/argo/), with every object
/// definition that lists its properties closed to others: the published
/// file leaves them open, where Argo's strict decoding refuses an unknown
/// field.
fn argo_validator(def: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(repo().join("tests/data/argo/schema.json"))
        .expect("the recorded Argo schema");
    let mut s: Value = serde_json::from_str(&text).expect("the schema is JSON");
    for d in s["definitions"].as_object_mut().unwrap().values_mut() {
        if d.get("properties").is_some() && d.get("additionalProperties").is_none() {
            d["additionalProperties"] = json!(false);
        }
    }
    assert!(
        s["definitions"].get(def).is_some(),
        "the schema has no definition {def}"
    );
    s.as_object_mut().unwrap().remove("oneOf");
    s["$ref"] = json!(format!("#/definitions/{def}"));
    jsonschema::draft202012::new(&s).expect("the schema compiles")
}

fn argo_errors(v: &Value) -> Vec<String> {
    argo_validator("io.argoproj.workflow.v1alpha1.WorkflowTemplate")
        .iter_errors(v)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect()
}

#[test]
fn the_argo_workflowtemplate_validates_against_argos_schema() {
    let path = repo().join("k8s/runbook/workflowtemplate.yaml");
    let doc = parse(&path);
    let errors = argo_errors(&doc);
    assert!(
        errors.is_empty(),
        "{}:\n  {}",
        path.display(),
        errors.join("\n  ")
    );

    // The check can fail: a misspelt field, a wrong type, a wrong kind.
    let mut typo = doc.clone();
    typo["spec"]["serviceAcountName"] = typo["spec"]["serviceAccountName"].take();
    typo["spec"]
        .as_object_mut()
        .unwrap()
        .remove("serviceAccountName");
    assert!(!argo_errors(&typo).is_empty(), "a misspelt field passed");
    let mut ty = doc.clone();
    ty["spec"]["activeDeadlineSeconds"] = json!("an hour");
    assert!(!argo_errors(&ty).is_empty(), "a string deadline passed");
    let mut kind = doc;
    kind["kind"] = json!("Workflow");
    assert!(!argo_errors(&kind).is_empty(), "the wrong kind passed");
}

#[test]
fn the_readmes_action_example_passes_one_argument_per_line() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let block = readme
        .split("```yaml\n")
        .filter_map(|b| b.split("```").next())
        .find(|b| b.contains("uses: mconstant/runbook@"))
        .expect("the README shows the runbook action");
    let steps: Value = serde_norway::from_str(block).expect("the README's example is YAML");
    let step = steps
        .as_array()
        .and_then(|s| s.iter().find(|s| is_runbook_action(s)))
        .expect("a runbook action step");
    let args = step["with"]["args"].as_str().unwrap_or_default();
    // One argument a line: no space but inside an expression.
    let expr = Regex::new(r"\$\{\{[^}]*\}\}").unwrap();
    let lines: Vec<String> = args
        .lines()
        .map(|l| expr.replace_all(l, "X").into_owned())
        .collect();
    assert!(
        lines.len() >= 2 && lines.iter().all(|l| !l.trim().contains(' ')),
        "the README's example must pass `args: |`, one argument per line, got {args:?}"
    );
    assert!(
        step["with"]["sha256"].is_string(),
        "the README's example pins sha256"
    );
}
