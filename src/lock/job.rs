//! `runbook job PLAYBOOK [--param value …] [--image REF] [--namespace NS]`:
//! the Kubernetes Job that runs this playbook on a cluster, printed as YAML
//! for `kubectl apply -f -`. The parameters are validated first, exactly as
//! a run validates them, so a Job that could only fail with a usage error
//! is never created. The Job is the one of `k8s/runbook/job.yaml`: the
//! `runbook` ServiceAccount, kube lock and ledger backends, exit codes
//! mapped to its pod failure policy (2 → FailJob, 75 → retry, disruption →
//! ignored), secrets from the Secret `runbook-secrets`.

use std::path::Path;

use serde_json::{json, Value};

use crate::error::Error;

/// The retries of a Job (a busy lock, exit 75, is retried this often).
pub const BACKOFF_LIMIT: u32 = 6;

/// What `runbook job` was asked.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct JobArgs {
    /// The playbook, as the image's working directory sees it.
    pub playbook: String,
    /// The playbook's parameters, as given.
    pub params: Vec<String>,
    /// The image (default: `ghcr.io/mconstant/runbook:$GITHUB_SHA`).
    pub image: Option<String>,
    /// The namespace (default `runbook`).
    pub namespace: Option<String>,
}

impl JobArgs {
    /// Split `--image` and `--namespace` (anywhere) from the playbook's
    /// parameters.
    pub fn parse(args: &[String]) -> Result<JobArgs, Error> {
        let mut out = JobArgs::default();
        let mut i = 0;
        while i < args.len() {
            let a = &args[i];
            let (flag, inline) = match a.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
                _ => (a.as_str(), None),
            };
            let mut value = |name: &str| -> Result<String, Error> {
                if let Some(v) = inline.clone() {
                    return Ok(v);
                }
                i += 1;
                args.get(i)
                    .cloned()
                    .ok_or_else(|| Error::Usage(format!("{name} needs a value")))
            };
            match flag {
                "--image" => out.image = Some(value("--image")?),
                "--namespace" => out.namespace = Some(value("--namespace")?),
                _ if out.playbook.is_empty() && !a.starts_with('-') => out.playbook = a.clone(),
                _ if out.playbook.is_empty() => {
                    return Err(Error::Usage(format!(
                        "unknown option '{a}' before the playbook; usage: runbook job PLAYBOOK [--param value]… [--image REF] [--namespace NS]"
                    )))
                }
                _ => out.params.push(a.clone()),
            }
            i += 1;
        }
        if out.playbook.is_empty() {
            return Err(Error::Usage(
                "runbook job needs a playbook: runbook job PLAYBOOK [--param value]… [--image REF] [--namespace NS]".into(),
            ));
        }
        Ok(out)
    }
}

/// Validate the parameters as a run would (compile, declaration, parse).
fn validate(playbook: &Path, params: &[String]) -> Result<(), Error> {
    let source = std::fs::read_to_string(playbook).map_err(|e| {
        Error::Usage(format!(
            "cannot read the playbook {}: {e} (give its path relative to the project, as the image has it)",
            playbook.display()
        ))
    })?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Failed(format!("cannot start the async runtime: {e}")))?;
    let ctx = crate::context::Ctx::new(
        crate::context::Settings::new(playbook, crate::logging::LogFormat::Pretty),
        rt.handle().clone(),
    );
    let engine = crate::engine::build(&ctx);
    let ast = engine
        .compile(&source)
        .map_err(|e| Error::Usage(crate::report::parse_error(&e, playbook, &source).text))?;
    let decl = crate::params::declaration(&ast, &source, &crate::engine::Resolver::new(playbook))
        .map_err(|e| Error::Usage(format!("{}: {e}", playbook.display())))?;
    crate::params::parse_args(&decl, params).map_err(|e| {
        Error::Usage(format!(
            "{e}\n(run `runbook {} --help` for its parameters)",
            playbook.display()
        ))
    })?;
    Ok(())
}

/// A DNS-label name for the Job: `runbook-<playbook>-<unix seconds>`.
fn job_name(playbook: &Path) -> String {
    let mut stem = crate::ledger::target_of_playbook(playbook).replace('.', "-");
    stem.truncate(36);
    let stem = stem.trim_end_matches('-');
    format!("runbook-{stem}-{}", super::unix_now())
}

/// The Job manifest as JSON.
pub fn manifest(a: &JobArgs, image: &str, namespace: &str) -> Value {
    let playbook = Path::new(&a.playbook);
    let stem = crate::ledger::target_of_playbook(playbook);
    let mut args: Vec<String> = vec![a.playbook.clone()];
    args.extend(a.params.iter().cloned());
    args.extend(["--log-format".into(), "json".into()]);
    let labels = json!({"app.kubernetes.io/name": "runbook", "runbook.dev/playbook": stem});
    let exit_rule = |action: &str, code: i32| {
        json!({"action": action, "onExitCodes": {"containerName": "runbook", "operator": "In", "values": [code]},
               "onPodConditions": []})
    };
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job_name(playbook), "namespace": namespace, "labels": labels},
        "spec": {
            "activeDeadlineSeconds": 1800,
            "backoffLimit": BACKOFF_LIMIT,
            "ttlSecondsAfterFinished": 86400,
            "podFailurePolicy": {"rules": [
                exit_rule("FailJob", 2),
                exit_rule("Count", crate::lock::BUSY_EXIT),
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            ]},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": "runbook",
                    "restartPolicy": "Never",
                    "securityContext": {"runAsNonRoot": true, "runAsUser": 10001, "runAsGroup": 10001,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "runbook",
                        "image": image,
                        "imagePullPolicy": "IfNotPresent",
                        "args": args,
                        "env": [
                            {"name": "RUNBOOK_LOCK_BACKEND", "value": "kube"},
                            {"name": "RUNBOOK_LEDGER_BACKEND", "value": "kube"},
                            {"name": "RUNBOOK_STATE_DIR", "value": "/tmp/runbook"},
                        ],
                        "envFrom": [{"secretRef": {"name": "runbook-secrets", "optional": true}}],
                        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                                      "limits": {"cpu": "500m", "memory": "256Mi"}},
                        "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                                            "capabilities": {"drop": ["ALL"]}},
                        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                    }],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
                }
            }
        }
    })
}

/// Run `runbook job …`: validate, then print the Job as YAML.
pub fn job(raw: &[String]) -> Result<(), Error> {
    let a = JobArgs::parse(raw)?;
    validate(Path::new(&a.playbook), &a.params)?;
    let image = match (&a.image, std::env::var("GITHUB_SHA").ok().filter(|s| !s.is_empty())) {
        (Some(i), _) => i.clone(),
        (None, Some(sha)) => format!("ghcr.io/mconstant/runbook:{sha}"),
        (None, None) => {
            return Err(Error::Usage(
                "runbook job needs --image REF (an image by git SHA or digest; default ghcr.io/mconstant/runbook:$GITHUB_SHA when GITHUB_SHA is set)".into(),
            ))
        }
    };
    let ns = a.namespace.clone().unwrap_or_else(|| "runbook".into());
    super::check_name(&ns).map_err(|_| {
        Error::Usage(format!(
            "--namespace '{ns}' is not a valid namespace name (lowercase letters, digits, '-')"
        ))
    })?;
    let m = manifest(&a, &image, &ns);
    let yaml = serde_norway::to_string(&m)
        .map_err(|e| Error::Failed(format!("cannot render the Job as YAML: {e}")))?;
    crate::out::text(crate::out::Stream::Stdout, &yaml);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::opts::strings as s;

    #[test]
    fn image_and_namespace_anywhere() {
        let a = JobArgs::parse(&s(&[
            "pb.rhai",
            "--sha",
            "x",
            "--image=r:1",
            "--namespace",
            "ops",
        ]))
        .unwrap();
        assert_eq!(a.playbook, "pb.rhai");
        assert_eq!(a.params, s(&["--sha", "x"]));
        assert_eq!(a.image.as_deref(), Some("r:1"));
        assert_eq!(a.namespace.as_deref(), Some("ops"));
        assert!(JobArgs::parse(&s(&["--image"])).is_err());
        assert!(JobArgs::parse(&[]).is_err());
    }

    #[test]
    fn exit_codes_map_to_the_failure_policy() {
        let a = JobArgs::parse(&s(&["playbooks/rollback.rhai", "--sha", "previous"])).unwrap();
        let m = manifest(&a, "r@sha256:00", "runbook");
        let rules = &m["spec"]["podFailurePolicy"]["rules"];
        assert_eq!(rules[0]["action"], "FailJob");
        assert_eq!(rules[0]["onExitCodes"]["values"][0], 2);
        assert_eq!(rules[1]["action"], "Count");
        assert_eq!(rules[1]["onExitCodes"]["values"][0], 75);
        assert_eq!(rules[2]["action"], "Ignore");
        let c = &m["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["args"][0], "playbooks/rollback.rhai");
        assert_eq!(c["args"][2], "previous");
        assert!(m["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("runbook-rollback-"));
    }
}
