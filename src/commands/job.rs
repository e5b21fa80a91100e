//! `runbook job PLAYBOOK [--param value …] [--job-image REF] [--job-namespace NS]`:
//! the Kubernetes Job that runs this playbook on a cluster, printed as YAML
//! for `kubectl apply -f -`. The playbook is validated first exactly as a
//! run validates it (the same [`Prepared`] pipeline: bounded read, compile,
//! imports, module check, declaration, lints, parameters), so a Job that
//! could only fail with a usage error is never created. The Job is the one
//! of `k8s/runbook/job.yaml`: the `runbook` ServiceAccount, kube lock and
//! ledger backends, exit codes mapped to its pod failure policy (2 →
//! FailJob, 75 → retry, disruption → ignored), secrets from the Secret
//! `runbook-secrets`.
//!
//! The job's own options are `--job-image` and `--job-namespace`, not
//! `--image` and `--namespace`: everything else on the line is the
//! playbook's (its parameters and the runner's options, passed on to the
//! Job's run), so a playbook's `--namespace` or `--image` parameter can
//! never be taken for the Job's. Prefixed names rather than a `--`
//! separator keep the shape of every other runbook command line (options
//! anywhere), and the old spelling fails loudly instead of silently
//! (`unknown parameter --image`). `runbook check` warns about a playbook
//! that declares one of these two names.

use std::path::Path;

use serde_json::{json, Value};

use crate::error::Error;
use crate::params::RunOptions;
use crate::pipeline::{LoadError, Prepared};

/// The retries of a Job (a busy lock, exit 75, is retried this often).
pub const BACKOFF_LIMIT: u32 = 6;

/// The job command's own options: a playbook parameter of one of these
/// names could not be given through `runbook job`.
pub const OPTIONS: &[(&str, &str)] = &[
    (
        "job-image",
        "the image (default ghcr.io/mconstant/runbook:$GITHUB_SHA)",
    ),
    ("job-namespace", "the Job's namespace (default runbook)"),
];

/// `check`'s warning when a playbook declares a parameter named like one
/// of the job command's options.
pub fn reserved_param(name: &str) -> Option<String> {
    let (flag, _) = OPTIONS.iter().find(|(f, _)| f.replace('-', "_") == name)?;
    Some(format!(
        "PARAMS.{name}: `runbook job` takes --{flag} as its own option, so this parameter cannot be given to the playbook as a Job; rename it"
    ))
}

const USAGE: &str =
    "usage: runbook job PLAYBOOK [--param value]… [--job-image REF] [--job-namespace NS]";

/// What `runbook job` was asked.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct JobArgs {
    /// The playbook, as the image's working directory sees it.
    pub playbook: String,
    /// Everything else: the playbook's parameters and the runner's
    /// options, passed on to the Job's run as given.
    pub params: Vec<String>,
    /// `--job-image`.
    pub image: Option<String>,
    /// `--job-namespace`.
    pub namespace: Option<String>,
}

impl JobArgs {
    /// Split `--job-image` and `--job-namespace` (anywhere) from the
    /// playbook and its arguments.
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
                "--job-image" => out.image = Some(value(flag)?),
                "--job-namespace" => out.namespace = Some(value(flag)?),
                _ if out.playbook.is_empty() && !a.starts_with('-') => out.playbook = a.clone(),
                _ if out.playbook.is_empty() => {
                    return Err(Error::Usage(format!(
                        "unknown option '{a}' before the playbook; {USAGE}"
                    )))
                }
                _ => out.params.push(a.clone()),
            }
            i += 1;
        }
        if out.playbook.is_empty() {
            return Err(Error::Usage(format!(
                "runbook job needs a playbook; {USAGE}"
            )));
        }
        Ok(out)
    }
}

/// Validate the playbook and its arguments exactly as a run would: the
/// runner's options split off as a run splits them, then load, lint, bind.
fn validate(a: &JobArgs) -> Result<(), Error> {
    let mut line = vec![a.playbook.clone()];
    line.extend(a.params.iter().cloned());
    let opts = RunOptions::parse(&line)
        .map_err(Error::Usage)?
        .ok_or_else(|| Error::Usage(format!("runbook job needs a playbook; {USAGE}")))?;
    if opts.help {
        // Not a Job that prints its help in a pod: say where help is.
        return Err(Error::Usage(format!(
            "runbook job does not pass --help on: `runbook {} --help` lists the playbook's parameters",
            a.playbook
        )));
    }
    let rt = super::runtime(0)?;
    let mut settings =
        crate::context::Settings::new(&opts.playbook, crate::logging::LogFormat::Pretty);
    settings.dry_run = true;
    let ctx = crate::context::Ctx::new(settings, rt.handle().clone());
    crate::declare::skip_docs();
    let engine = crate::primitives::engine(&ctx);
    let prepared = Prepared::load(&engine, &opts.playbook).map_err(|e| match e {
        LoadError::Read(m) => Error::Usage(format!(
            "cannot read the playbook: {m} (give its path relative to the project, as the image has it)"
        )),
        e => e.into(),
    })?;
    prepared.lint(&engine, &ctx)?;
    prepared
        .bind(&opts.params, &crate::pipeline::process_env)
        .map_err(|e| {
            let hint = if e.message.contains("unknown parameter --image")
                || e.message.contains("unknown parameter --namespace")
            {
                "\n(the Job's own options are --job-image and --job-namespace)"
            } else {
                ""
            };
            let e: Error = e.into();
            Error::Usage(format!("{e}{hint}"))
        })?;
    Ok(())
}

/// Whether an image reference is pinned: by digest, or by a tag that is a
/// full git SHA (what CI pushes). Anything else can move under the Job.
fn pinned(image: &str) -> bool {
    if image.contains("@sha256:") {
        return true;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    last.split_once(':')
        .is_some_and(|(_, tag)| tag.len() == 40 && tag.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A DNS-label name for the Job: `runbook-<playbook>-<unix seconds>`.
fn job_name(playbook: &Path) -> String {
    let mut stem = crate::ledger::target_of_playbook(playbook).replace('.', "-");
    stem.truncate(36);
    let stem = stem.trim_end_matches('-');
    format!("runbook-{stem}-{}", crate::lock::unix_now())
}

/// The Job manifest as JSON.
pub fn manifest(a: &JobArgs, image: &str, namespace: &str) -> Value {
    let playbook = Path::new(&a.playbook);
    let stem = crate::ledger::target_of_playbook(playbook);
    // Redacted as data, before serializing: a value equal to a secret
    // becomes the string "***" (quoted in YAML), never a bare `- ***`,
    // which YAML reads as an alias.
    let mut args: Vec<String> = vec![a.playbook.clone()];
    args.extend(
        a.params
            .iter()
            .map(|p| crate::redact::redact(p).into_owned()),
    );
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
    validate(&a)?;
    let image = image(&a)?;
    if !pinned(&image) {
        crate::out::eprintln(&format!(
            "warning: the image {image} is named by a tag that can move: the Job may run another build than the one validated here; pin it by digest (@sha256:…) or by the full git SHA"
        ));
    }
    if a.params.iter().any(|p| crate::redact::contains_secret(p)) {
        crate::out::eprintln(
            "warning: an argument of the Job is a secret and shows as \"***\": give secrets through the Secret runbook-secrets and the parameter's `env`, not on the command line",
        );
    }
    let ns = a.namespace.clone().unwrap_or_else(|| "runbook".into());
    crate::lock::check_name(&ns).map_err(|_| {
        Error::Usage(format!(
            "--job-namespace '{ns}' is not a valid namespace name (lowercase letters, digits, '-')"
        ))
    })?;
    let m = manifest(&a, &image, &ns);
    let yaml = serde_norway::to_string(&m)
        .map_err(|e| Error::Failed(format!("cannot render the Job as YAML: {e}")))?;
    crate::out::text(crate::out::Stream::Stdout, &yaml);
    Ok(())
}

/// `--job-image`, else the image CI pushed for `$GITHUB_SHA`.
fn image(a: &JobArgs) -> Result<String, Error> {
    match (&a.image, std::env::var("GITHUB_SHA").ok().filter(|s| !s.is_empty())) {
        (Some(i), _) => Ok(i.clone()),
        (None, Some(sha)) => Ok(format!("ghcr.io/mconstant/runbook:{sha}")),
        (None, None) => Err(Error::Usage(
            "runbook job needs --job-image REF (an image by git SHA or digest; default ghcr.io/mconstant/runbook:$GITHUB_SHA when GITHUB_SHA is set)".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::opts::strings as s;

    #[test]
    fn job_options_anywhere_and_the_playbooks_own_untouched() {
        let a = JobArgs::parse(&s(&[
            "pb.rhai",
            "--sha",
            "x",
            "--job-image=r:1",
            "--namespace",
            "staging",
            "--image",
            "app:2",
            "--job-namespace",
            "ops",
        ]))
        .unwrap();
        assert_eq!(a.playbook, "pb.rhai");
        assert_eq!(
            a.params,
            s(&["--sha", "x", "--namespace", "staging", "--image", "app:2"])
        );
        assert_eq!(a.image.as_deref(), Some("r:1"));
        assert_eq!(a.namespace.as_deref(), Some("ops"));
        assert!(JobArgs::parse(&s(&["--job-image"])).is_err());
        assert!(JobArgs::parse(&[]).is_err());
    }

    #[test]
    fn pinned_images() {
        assert!(pinned("ghcr.io/x/runbook@sha256:00"));
        assert!(pinned(
            "ghcr.io/x/runbook:4f1c2a9d0b8e7c6f5a4b3c2d1e0f9a8b7c6d5e4f"
        ));
        assert!(!pinned("ghcr.io/x/runbook:latest"));
        assert!(!pinned("localhost:5000/runbook"));
        assert!(!pinned("runbook:v1"));
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
