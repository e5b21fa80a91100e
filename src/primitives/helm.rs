//! `helm_install(release, chart, opts)`: `helm upgrade --install` done the
//! way Helm users wish it were: the Helm version detected (3.12+ or 4, each
//! with its own flags), the release read first (a stuck `pending-*` release
//! is refused with the way out), secrets in a temporary 0600 values file
//! (never argv, never logged, removed after success, failure and signals),
//! the install and the rollback with their own time budgets, and a failure
//! that names the resource that blocked and its last event.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rhai::{Dynamic, Engine, FuncRegistration, Map};
use serde_json::Value;

use crate::context::{error, Ctx, RhaiResult};
use crate::error::fmt_secs;
use crate::primitives::exec::{self, ExecOpts, ExecOutput};
use crate::primitives::{string_array, to_json, Opts};

/// A Helm client version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HelmVersion {
    /// Major (3 or 4).
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// As printed, e.g. "v3.14.4+g81c902a".
    pub raw: String,
}

impl HelmVersion {
    /// Helm 4 renamed `--atomic` and made `--wait` a strategy.
    pub fn is_v4(&self) -> bool {
        self.major >= 4
    }

    /// The flag that waits for resources to be ready.
    pub fn wait_flag(&self) -> &'static str {
        if self.is_v4() {
            "--wait=watcher"
        } else {
            "--wait"
        }
    }

    /// The flag that rolls back a failed upgrade (uninstalls a failed install).
    pub fn atomic_flag(&self) -> &'static str {
        if self.is_v4() {
            "--rollback-on-failure"
        } else {
            "--atomic"
        }
    }
}

/// Parse `helm version --short` ("v3.14.4+g81c902a", "v4.0.0+g1234567")
/// and refuse a Helm older than 3.12.
pub fn parse_version(out: &str) -> Result<HelmVersion, String> {
    let raw = out.trim().lines().next().unwrap_or("").trim().to_string();
    let nums: Vec<u32> = raw
        .trim_start_matches('v')
        .split(['.', '+', '-'])
        .take(2)
        .map(|p| p.parse::<u32>())
        .collect::<Result<_, _>>()
        .map_err(|_| {
            format!("`helm version --short` printed '{raw}', which is not a Helm version (vMAJOR.MINOR.PATCH)")
        })?;
    let (major, minor) = match nums.as_slice() {
        [a, b] => (*a, *b),
        _ => {
            return Err(format!(
                "`helm version --short` printed '{raw}', which is not a Helm version"
            ))
        }
    };
    if major < 3 || (major == 3 && minor < 12) {
        return Err(format!(
            "Helm {raw} is too old: runbook needs Helm 3.12 or newer (or Helm 4); upgrade it (https://helm.sh/docs/intro/install/)"
        ));
    }
    Ok(HelmVersion { major, minor, raw })
}

/// What `helm status -o json` says about a release.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Release {
    /// `info.status`: deployed, failed, pending-install, …
    pub status: String,
    /// `version`: the revision.
    pub revision: i64,
    /// `chart.metadata.name`-`version`.
    pub chart: String,
    /// `chart.metadata.appVersion`.
    pub app_version: String,
    /// `info.description`.
    pub description: String,
    /// `namespace`.
    pub namespace: String,
}

/// Read the fields of `helm status -o json` that matter. The rest (the
/// user-supplied values and the rendered manifest, secrets included) is
/// never kept.
pub fn parse_status(text: &str) -> Result<Release, String> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| format!("`helm status -o json` printed something that is not JSON ({e})"))?;
    let s = |p: &str| {
        v.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let status = s("/info/status");
    if status.is_empty() {
        return Err("`helm status -o json` has no info.status (a Helm change?)".into());
    }
    let name = s("/chart/metadata/name");
    let version = s("/chart/metadata/version");
    Ok(Release {
        status,
        revision: v.get("version").and_then(Value::as_i64).unwrap_or(0),
        chart: if name.is_empty() {
            String::new()
        } else {
            format!("{name}-{version}")
        },
        app_version: s("/chart/metadata/appVersion"),
        description: s("/info/description"),
        namespace: s("/namespace"),
    })
}

/// The newest revision in `helm history -o json` with status "deployed"
/// or "superseded" (one that once ran fine), if any.
pub fn last_good_revision(history_json: &str) -> Option<i64> {
    let v: Value = serde_json::from_str(history_json).ok()?;
    v.as_array()?
        .iter()
        .filter(|h| {
            matches!(
                h.get("status").and_then(Value::as_str),
                Some("deployed") | Some("superseded")
            )
        })
        .filter_map(|h| h.get("revision").and_then(Value::as_i64))
        .max()
}

/// The refusal for a release stuck in `pending-*`, with the way out.
pub fn pending_refusal(release: &str, ns: &str, r: &Release, good: Option<i64>) -> String {
    let fix = match (r.status.as_str(), good) {
        ("pending-install", _) | (_, None) => format!(
            "if no other Helm run is at work on it, remove the half-done release with `helm uninstall {release} -n {ns}` and run again"
        ),
        (_, Some(rev)) => format!(
            "if no other Helm run is at work on it, roll it back to its last good revision with `helm rollback {release} {rev} -n {ns}` and run again"
        ),
    };
    format!(
        "helm_install: release {release} in namespace {ns} is {} (revision {}{}): another Helm operation is running, or one was killed before it finished. Refusing to act on it; {fix} (`helm history {release} -n {ns}` shows what happened)",
        r.status,
        r.revision,
        if r.description.is_empty() { String::new() } else { format!(", \"{}\"", r.description) }
    )
}

/// A resource Helm's error names as not ready: (kind, namespace, name).
pub fn blocking_resource(stderr: &str) -> Option<(String, String, String)> {
    // Helm 4 (kstatus): "resource Deployment/ns/name not ready. status: InProgress, …"
    // Helm 3: "Deployment is not ready: ns/name. 0 out of 1 expected pods are ready"
    let patterns = [
        r"resource ([A-Za-z]+)/([a-z0-9.-]+)/([a-z0-9.-]+) not ready",
        r"([A-Za-z]+) is not ready: ([a-z0-9.-]+)/([a-z0-9.-]+)",
        r"waiting for ([A-Za-z]+) ([a-z0-9.-]+)/([a-z0-9.-]+)",
    ];
    for p in patterns {
        let re = regex::Regex::new(p).ok()?;
        if let Some(c) = re.captures_iter(stderr).last() {
            return Some((
                c[1].to_string(),
                c[2].trim_end_matches('.').to_string(),
                c[3].trim_end_matches('.').to_string(),
            ));
        }
    }
    None
}

/// The last event about `blocked` (a resource, or the pods of a workload
/// named by it), else the last Warning event: `kind/name: reason: message`.
pub fn last_event(events_json: &str, blocked: Option<(&str, &str)>) -> Option<String> {
    let v: Value = serde_json::from_str(events_json).ok()?;
    let items = v.get("items")?.as_array()?;
    let when = |e: &Value| -> String {
        ["lastTimestamp", "eventTime", "firstTimestamp"]
            .iter()
            .filter_map(|k| e.get(*k).and_then(Value::as_str))
            .next()
            .unwrap_or("")
            .to_string()
    };
    let obj = |e: &Value, k: &str| {
        e.pointer(&format!("/involvedObject/{k}"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let about = |e: &&Value| -> bool {
        match blocked {
            Some((kind, name)) => {
                let (k, n) = (obj(e, "kind"), obj(e, "name"));
                (k == kind && n == name) || n.starts_with(&format!("{name}-"))
            }
            None => e.get("type").and_then(Value::as_str) == Some("Warning"),
        }
    };
    let mut picked: Vec<&Value> = items.iter().filter(about).collect();
    if picked.is_empty() && blocked.is_some() {
        picked = items
            .iter()
            .filter(|e| e.get("type").and_then(Value::as_str) == Some("Warning"))
            .collect();
    }
    // Newest last; a Warning wins over a Normal of the same time.
    picked.sort_by_key(|e| {
        (
            when(e),
            e.get("type").and_then(Value::as_str) == Some("Warning"),
        )
    });
    let e = picked.last()?;
    Some(format!(
        "{}/{}: {}: {}",
        obj(e, "kind"),
        obj(e, "name"),
        e.get("reason").and_then(Value::as_str).unwrap_or("?"),
        e.get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim()
    ))
}

/// Escape a `--set` value: Helm splits on commas and reads backslashes.
fn escape_set(v: &str) -> String {
    v.replace('\\', "\\\\").replace(',', "\\,")
}

/// The options of `helm_install`.
#[derive(Clone, Debug, Default)]
pub struct HelmOpts {
    /// Target namespace.
    pub namespace: String,
    /// `--create-namespace`.
    pub create_namespace: bool,
    /// Values files, in order.
    pub values: Vec<String>,
    /// `--set` pairs (non-secret).
    pub set: Vec<(String, String)>,
    /// Secret values, written to the temporary 0600 file.
    pub secret_values: Option<Value>,
    /// Wait for readiness.
    pub wait: bool,
    /// Roll back a failed release.
    pub atomic: bool,
    /// Budget of the install (Helm's `--timeout`).
    pub timeout: Duration,
    /// Budget of the rollback, on its own.
    pub rollback_timeout: Duration,
    /// `--kube-context`.
    pub context: Option<String>,
    /// `--version` of the chart.
    pub chart_version: Option<String>,
}

const KEYS: &[&str] = &[
    "namespace",
    "create_namespace",
    "values",
    "set",
    "secret_values",
    "wait",
    "atomic",
    "timeout",
    "rollback_timeout",
    "context",
    "version",
];

fn read_opts(o: &Opts) -> RhaiResult<HelmOpts> {
    let timeout = o.duration("timeout")?.unwrap_or(Duration::from_secs(300));
    let mut h = HelmOpts {
        namespace: o.str("namespace")?.unwrap_or_else(|| "default".into()),
        create_namespace: o.bool("create_namespace")?.unwrap_or(true),
        values: string_array(
            "helm_install",
            "values",
            &o.array("values")?.unwrap_or_default(),
        )?,
        wait: o.bool("wait")?.unwrap_or(true),
        atomic: o.bool("atomic")?.unwrap_or(true),
        timeout,
        rollback_timeout: o.duration("rollback_timeout")?.unwrap_or(timeout),
        context: o.str("context")?,
        chart_version: o.str("version")?,
        ..HelmOpts::default()
    };
    if h.timeout < Duration::from_secs(1) || h.rollback_timeout < Duration::from_secs(1) {
        return Err(error(
            "helm_install: timeout and rollback_timeout must be at least 1s (Helm counts in seconds)",
        ));
    }
    for (k, v) in o.map("set")?.unwrap_or_default() {
        let key = k.to_string();
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-[]".contains(c))
        {
            return Err(error(format!(
                "helm_install: set key '{key}' is not a values path (letters, digits, '.', '_', '-', '[n]')"
            )));
        }
        let val = if v.is_string() || v.is_int() || v.is_bool() || v.is_float() {
            v.to_string()
        } else {
            return Err(error(format!(
                "helm_install: set '{key}' wants a string, number or bool, got {}; put structured values in a values file",
                v.type_name()
            )));
        };
        if crate::redact::contains_secret(&val) {
            return Err(error(format!(
                "helm_install: the value of set '{key}' is a secret: `set` goes on Helm's command line, visible to every process; pass it in `secret_values` (a temporary 0600 file) instead"
            )));
        }
        h.set.push((key, val));
    }
    if let Some(m) = o.map("secret_values")? {
        if !m.is_empty() {
            let v = to_json(&Dynamic::from(m)).map_err(|e| {
                error(format!(
                    "helm_install: secret_values cannot be written as values: {e}"
                ))
            })?;
            register_leaves(&v);
            h.secret_values = Some(v);
        }
    }
    check_name("namespace", &h.namespace, 63)?;
    Ok(h)
}

/// Register every string in the secret values for redaction.
fn register_leaves(v: &Value) {
    match v {
        Value::String(s) => crate::redact::register(s),
        Value::Array(a) => a.iter().for_each(register_leaves),
        Value::Object(o) => o.values().for_each(register_leaves),
        _ => {}
    }
}

/// The secret values with every leaf masked, for a dry run's plan.
fn masked(v: &Value) -> Value {
    match v {
        Value::Array(a) => Value::Array(a.iter().map(masked).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, x)| (k.clone(), masked(x))).collect()),
        Value::Null => Value::Null,
        _ => Value::String(crate::redact::MASK.into()),
    }
}

fn check_name(what: &str, s: &str, max: usize) -> RhaiResult<()> {
    let ok = !s.is_empty()
        && s.len() <= max
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(error(format!(
            "helm_install: {what} '{s}' is not valid: lowercase letters, digits and '-', starting and ending with a letter or digit, at most {max} characters"
        )))
    }
}

/// The `helm upgrade --install` argv. `secrets_file` is the temporary
/// values file (last, so it wins over the other files).
pub fn upgrade_argv(
    v: &HelmVersion,
    release: &str,
    chart: &str,
    h: &HelmOpts,
    secrets_file: Option<&str>,
) -> Vec<String> {
    let mut a: Vec<String> = ["helm", "upgrade", "--install", release, chart]
        .iter()
        .map(|s| s.to_string())
        .collect();
    a.push("--namespace".into());
    a.push(h.namespace.clone());
    if h.create_namespace {
        a.push("--create-namespace".into());
    }
    if let Some(c) = &h.context {
        a.push("--kube-context".into());
        a.push(c.clone());
    }
    if let Some(ver) = &h.chart_version {
        a.push("--version".into());
        a.push(ver.clone());
    }
    for f in &h.values {
        a.push("--values".into());
        a.push(f.clone());
    }
    if let Some(f) = secrets_file {
        a.push("--values".into());
        a.push(f.to_string());
    }
    for (k, val) in &h.set {
        a.push("--set".into());
        a.push(format!("{k}={}", escape_set(val)));
    }
    if h.wait || h.atomic {
        a.push(v.wait_flag().into());
    }
    if h.atomic {
        a.push(v.atomic_flag().into());
    }
    a.push("--timeout".into());
    a.push(format!("{}s", h.timeout.as_secs().max(1)));
    a
}

fn argv(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

fn with_context(mut a: Vec<String>, flag: &str, ctx: &Option<String>) -> Vec<String> {
    if let Some(c) = ctx {
        a.push(flag.into());
        a.push(c.clone());
    }
    a
}

async fn run(ctx: &Arc<Ctx>, a: &[String], bound: Duration) -> Result<ExecOutput, String> {
    match tokio::time::timeout(bound, exec::run(ctx, a, &ExecOpts::default())).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "`{}` did not finish within {} and was stopped",
            a.join(" "),
            fmt_secs(bound)
        )),
    }
}

/// Read the release: `Ok(None)` when there is none.
async fn read_release(
    ctx: &Arc<Ctx>,
    release: &str,
    h: &HelmOpts,
) -> Result<Option<Release>, String> {
    let a = with_context(
        argv(&[
            "helm",
            "status",
            release,
            "--namespace",
            &h.namespace,
            "-o",
            "json",
        ]),
        "--kube-context",
        &h.context,
    );
    let out = run(ctx, &a, Duration::from_secs(60)).await?;
    if out.code == 0 {
        return parse_status(&out.stdout).map(Some);
    }
    // Only Helm's own "release: not found": client-go's "context was not
    // found" is an error, not a missing release.
    if out.stderr.contains("release: not found") {
        return Ok(None);
    }
    Err(format!(
        "helm_install: cannot read release {release} (`helm status` exited with {}): {}; is the cluster reachable with this context (`kubectl cluster-info`)?",
        out.code,
        out.tail()
    ))
}

async fn history(ctx: &Arc<Ctx>, release: &str, h: &HelmOpts) -> Option<i64> {
    let a = with_context(
        argv(&[
            "helm",
            "history",
            release,
            "--namespace",
            &h.namespace,
            "-o",
            "json",
            "--max",
            "20",
        ]),
        "--kube-context",
        &h.context,
    );
    let out = run(ctx, &a, Duration::from_secs(60)).await.ok()?;
    if out.code != 0 {
        return None;
    }
    last_good_revision(&out.stdout)
}

fn chart_meta(ctx: &Ctx, chart: &str) -> (String, String) {
    let path = ctx.path(chart).join("Chart.yaml");
    let Ok(text) = std::fs::read_to_string(path) else {
        return (chart.to_string(), String::new());
    };
    let v: Value = serde_norway::from_str(&text).unwrap_or(Value::Null);
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    (format!("{}-{}", s("name"), s("version")), s("appVersion"))
}

fn result_map(release: &str, ns: &str, r: &Release, planned: bool) -> Map {
    let mut m = Map::new();
    m.insert("release".into(), Dynamic::from(release.to_string()));
    m.insert(
        "namespace".into(),
        Dynamic::from(if r.namespace.is_empty() {
            ns.to_string()
        } else {
            r.namespace.clone()
        }),
    );
    m.insert("revision".into(), Dynamic::from(r.revision));
    m.insert("status".into(), Dynamic::from(r.status.clone()));
    m.insert("chart".into(), Dynamic::from(r.chart.clone()));
    m.insert("app_version".into(), Dynamic::from(r.app_version.clone()));
    m.insert("planned".into(), Dynamic::from(planned));
    m
}

/// Write the secret values to a temporary 0600 file; it is removed when
/// the handle drops (after success, failure, or a cancelled run).
fn secrets_file(v: &Value) -> RhaiResult<tempfile::NamedTempFile> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let mut f = tempfile::Builder::new()
        .prefix("runbook-helm-secrets-")
        .suffix(".yaml")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile()
        .map_err(|e| {
            error(format!(
                "helm_install: cannot create the temporary secrets values file: {e}"
            ))
        })?;
    // JSON is YAML: Helm reads it as a values file.
    let text = serde_json::to_string_pretty(v)
        .map_err(|e| error(format!("helm_install: cannot write the secret values: {e}")))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.as_file().sync_all())
        .map_err(|e| {
            error(format!(
                "helm_install: cannot write the temporary secrets values file: {e}"
            ))
        })?;
    Ok(f)
}

fn install(ctx: &Arc<Ctx>, release: &str, chart: &str, opts: &Map) -> RhaiResult<Map> {
    let started = Instant::now();
    let o = Opts::new("helm_install", opts, KEYS)?;
    let h = read_opts(&o)?;
    check_name("release name", release, 53)?;
    if chart.trim().is_empty() {
        return Err(error("helm_install: the chart is empty; give a chart folder (e.g. \"k8s/charts/habit-tracker\") or repo/name"));
    }
    for f in &h.values {
        if !ctx.path(f).is_file() {
            return Err(error(format!(
                "helm_install: the values file '{f}' does not exist (relative paths are from {})",
                ctx.settings.workdir.display()
            )));
        }
    }
    let local_chart = chart.starts_with('.') || chart.starts_with('/') || ctx.path(chart).is_dir();
    if local_chart && !ctx.path(chart).join("Chart.yaml").is_file() {
        return Err(error(format!(
            "helm_install: '{chart}' has no Chart.yaml; give the chart's folder"
        )));
    }

    // Read first: the version (for the flags) and the release (pending-* refused).
    let c2 = ctx.clone();
    let (r2, h2) = (release.to_string(), h.clone());
    let (version, current) = ctx.block_on(
        "helm_install (read)",
        Duration::from_secs(150),
        async move {
            let out = run(
                &c2,
                &argv(&["helm", "version", "--short"]),
                Duration::from_secs(30),
            )
            .await?;
            if out.code != 0 {
                return Err(format!(
                    "helm_install: `helm version --short` exited with {}: {}",
                    out.code,
                    out.tail()
                ));
            }
            let v = parse_version(&out.stdout).map_err(|e| format!("helm_install: {e}"))?;
            let current = read_release(&c2, &r2, &h2).await?;
            if let Some(r) = &current {
                if r.status.starts_with("pending-") {
                    let good = history(&c2, &r2, &h2).await;
                    return Err(pending_refusal(&r2, &h2.namespace, r, good));
                }
            }
            Ok((v, current))
        },
    )?;

    if ctx.dry_run() {
        let a = upgrade_argv(
            &version,
            release,
            chart,
            &h,
            h.secret_values
                .as_ref()
                .map(|_| "<temporary 0600 secrets values file>"),
        );
        let mut plan = format!("dry run: would run\n  {}\n", a.join(" "));
        for f in &h.values {
            let text = std::fs::read_to_string(ctx.path(f)).unwrap_or_default();
            plan.push_str(&format!("values from {f}:\n{}\n", indent(&text)));
        }
        if let Some(s) = &h.secret_values {
            let m = serde_json::to_string_pretty(&masked(s)).unwrap_or_default();
            plan.push_str(&format!(
                "secret values (temporary 0600 file, masked):\n{}\n",
                indent(&m)
            ));
        }
        for (k, v) in &h.set {
            plan.push_str(&format!("set {k}={v}\n"));
        }
        tracing::info!(
            primitive = "helm_install", release = %release, namespace = %h.namespace,
            helm = %version.raw, planned = true, "{}", plan.trim_end()
        );
        let (chart_name, app) = chart_meta(ctx, chart);
        let planned = Release {
            status: "planned".into(),
            revision: current.as_ref().map_or(1, |r| r.revision + 1),
            chart: current
                .as_ref()
                .map(|r| r.chart.clone())
                .filter(|_| !local_chart)
                .unwrap_or(chart_name),
            app_version: app,
            description: String::new(),
            namespace: h.namespace.clone(),
        };
        return Ok(result_map(release, &h.namespace, &planned, true));
    }
    ctx.guard_mutation("helm_install")?;

    let file = match &h.secret_values {
        Some(v) => Some(secrets_file(v)?),
        None => None,
    };
    let path = file
        .as_ref()
        .map(|f| f.path().to_string_lossy().into_owned());
    let a = upgrade_argv(&version, release, chart, &h, path.as_deref());
    let previous_good = current.as_ref().map(|r| r.revision);
    let c2 = ctx.clone();
    let (r2, h2, v2) = (release.to_string(), h.clone(), version.clone());
    // Helm's own --timeout bounds the install; the rollback gets its own
    // budget after it; a little grace on top for Helm to report.
    let bound = h
        .timeout
        .saturating_add(if h.atomic {
            h.rollback_timeout
        } else {
            Duration::ZERO
        })
        .saturating_add(grace(h.timeout));
    let outcome = ctx.block_on("helm_install", bound + Duration::from_secs(120), async move {
        let out = run(&c2, &a, bound).await;
        let (code, stderr) = match out {
            Ok(o) if o.code == 0 => {
                let r = read_release(&c2, &r2, &h2).await?.ok_or_else(|| {
                    format!("helm_install: Helm reported success but `helm status {r2}` finds no release")
                })?;
                return Ok(r);
            }
            Ok(o) => (o.code.to_string(), o.tail()),
            Err(e) => ("none (stopped)".into(), e),
        };
        Err(failure(&c2, &r2, &h2, &v2, previous_good, &code, &stderr).await)
    });
    drop(file);
    let r = outcome?;
    tracing::info!(
        primitive = "helm_install", release = %release, namespace = %h.namespace,
        revision = r.revision, status = %r.status, chart = %r.chart, helm = %version.raw,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "release {release} is {} at revision {} ({}) in {}", r.status, r.revision, r.chart, fmt_secs(started.elapsed())
    );
    if r.status != "deployed" {
        return Err(error(format!(
            "helm_install: release {release} ended {} at revision {}: {}",
            r.status, r.revision, r.description
        )));
    }
    Ok(result_map(release, &h.namespace, &r, false))
}

/// Time Helm gets past its own `--timeout` to report (and clean up)
/// before runbook stops it: a quarter of the budget, 5–30 s.
pub fn grace(timeout: Duration) -> Duration {
    (timeout / 4).clamp(Duration::from_secs(5), Duration::from_secs(30))
}

fn indent(text: &str) -> String {
    text.trim_end()
        .lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Explain a failed install: what blocked, its last event, the release's
/// state now; roll back on our own budget when Helm's rollback did not.
async fn failure(
    ctx: &Arc<Ctx>,
    release: &str,
    h: &HelmOpts,
    v: &HelmVersion,
    previous: Option<i64>,
    code: &str,
    stderr: &str,
) -> String {
    let mut msg = format!(
        "helm_install: `helm upgrade --install {release}` failed (exit {code}):\n  {}",
        stderr.trim().replace('\n', "\n  ")
    );
    let blocked = blocking_resource(stderr);
    let ev = with_context(
        argv(&[
            "kubectl",
            "get",
            "events",
            "--namespace",
            &h.namespace,
            "-o",
            "json",
        ]),
        "--context",
        &h.context,
    );
    let event = match run(ctx, &ev, Duration::from_secs(20)).await {
        Ok(o) if o.code == 0 => last_event(
            &o.stdout,
            blocked.as_ref().map(|(k, _, n)| (k.as_str(), n.as_str())),
        ),
        _ => None,
    };
    match (&blocked, &event) {
        (Some((k, ns, n)), Some(e)) => {
            msg.push_str(&format!("\n  blocked by {k} {ns}/{n}; last event: {e}"))
        }
        (Some((k, ns, n)), None) => msg.push_str(&format!(
            "\n  blocked by {k} {ns}/{n} (no event found: `kubectl -n {ns} describe {} {n}`)",
            k.to_lowercase()
        )),
        (None, Some(e)) => msg.push_str(&format!(
            "\n  last warning in namespace {}: {e}",
            h.namespace
        )),
        (None, None) => {}
    }
    let now = read_release(ctx, release, h).await.ok().flatten();
    let needs_rollback =
        h.atomic && matches!(&now, Some(r) if r.status != "deployed" && r.status != "superseded");
    if needs_rollback {
        // Helm's own rollback did not happen (or ran out of the shared
        // deadline): roll back now, on the rollback's own budget.
        let good = match previous {
            Some(_) => history(ctx, release, h).await,
            None => None,
        };
        let secs = format!("{}s", h.rollback_timeout.as_secs().max(1));
        let a = match good {
            Some(rev) => argv(&[
                "helm",
                "rollback",
                release,
                &rev.to_string(),
                "--namespace",
                &h.namespace,
                v.wait_flag(),
                "--timeout",
                &secs,
            ]),
            None => argv(&[
                "helm",
                "uninstall",
                release,
                "--namespace",
                &h.namespace,
                v.wait_flag(),
                "--timeout",
                &secs,
            ]),
        };
        let a = with_context(a, "--kube-context", &h.context);
        let what = match good {
            Some(rev) => format!("rolled back to revision {rev}"),
            None => "uninstalled the failed first install".into(),
        };
        match run(ctx, &a, h.rollback_timeout + Duration::from_secs(30)).await {
            Ok(o) if o.code == 0 => msg.push_str(&format!(
                "\n  runbook {what} (budget {})",
                fmt_secs(h.rollback_timeout)
            )),
            Ok(o) => msg.push_str(&format!(
                "\n  the rollback failed too (`{}` exited with {}): {}",
                a.join(" "),
                o.code,
                o.tail()
            )),
            Err(e) => msg.push_str(&format!("\n  the rollback failed too: {e}")),
        }
    }
    match read_release(ctx, release, h).await {
        Ok(Some(r)) => msg.push_str(&format!(
            "\n  release {release} is now {} at revision {}{}",
            r.status,
            r.revision,
            if r.description.is_empty() {
                String::new()
            } else {
                format!(" (\"{}\")", r.description)
            }
        )),
        Ok(None) => msg.push_str(&format!("\n  release {release} does not exist now")),
        Err(_) => {}
    }
    tracing::error!(primitive = "helm_install", release = %release, namespace = %h.namespace, outcome = "failed", "helm upgrade --install {release} failed");
    msg
}

const DOC: &str = "\
/// `helm upgrade --install RELEASE CHART`, then `helm status -o json`.
///
/// Options: `namespace` (default \"default\"; created if missing unless
/// `create_namespace: false`), `values` (files, in order), `set` (map of
/// non-secret values; a registered secret here is refused), `secret_values`
/// (a map written to a temporary 0600 values file passed last and removed
/// after success, failure or a signal — never argv, never logged; every
/// string in it is registered for redaction), `wait` (default true),
/// `atomic` (default true), `timeout` (the install's budget, Helm's
/// `--timeout`, default \"5m\"), `rollback_timeout` (the rollback's own
/// budget, default = `timeout`), `context` (`--kube-context`), `version`
/// (the chart's).
///
/// Detects the Helm version (`helm version --short`; 3.12+ or 4): Helm 3
/// gets `--wait --atomic`, Helm 4 `--wait=watcher --rollback-on-failure`.
/// Reads the release first and refuses one stuck in `pending-install`,
/// `pending-upgrade` or `pending-rollback`, saying how to recover. On
/// failure it throws with Helm's stderr (secrets redacted), the resource
/// that blocked and its last event (`kubectl get events`), and the
/// release's status now; when Helm's own rollback did not happen it rolls
/// back (or uninstalls a failed first install) on the rollback budget.
/// A second run with nothing changed is a no-op upgrade.
///
/// Dry run: reads the version and the release, logs the exact command
/// (the secrets file masked) and the values, runs nothing that changes.
///
/// Returns `#{release, namespace, revision, status, chart, app_version, planned}`.
///
/// ```rhai
/// let r = helm_install(\"habit-tracker\", \"k8s/charts/habit-tracker\", #{
///     namespace: \"habit-tracker\",
///     values: [\"k8s/charts/habit-tracker/values-local.yaml\"],
///     secret_values: #{ secrets: #{ JWT_SECRET: secret(\"JWT_SECRET\") } },
///     timeout: \"5m\",
/// });
/// ```";

/// Register `helm_install`.
pub fn register(engine: &mut Engine, ctx: &Arc<Ctx>) {
    let c = ctx.clone();
    FuncRegistration::new("helm_install")
        .with_params_info(["release: &str", "chart: &str", "opts: Map", "Map"])
        .with_comments([DOC])
        .register_into_engine(engine, move |release: &str, chart: &str, opts: Map| {
            install(&c, release, chart, &opts)
        });
    let c = ctx.clone();
    FuncRegistration::new("helm_install")
        .with_params_info(["release: &str", "chart: &str", "Map"])
        .with_comments(["/// `helm_install` with the default options."])
        .register_into_engine(engine, move |release: &str, chart: &str| {
            install(&c, release, chart, &Map::new())
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> HelmVersion {
        parse_version(s).unwrap()
    }

    #[test]
    fn versions() {
        assert_eq!(v("v3.14.4+g81c902a").minor, 14);
        assert!(!v("v3.12.0+gc9f554d").is_v4());
        assert!(v("v4.0.0+g1234567").is_v4());
        assert!(parse_version("v3.11.3+g66a969e")
            .unwrap_err()
            .contains("too old"));
        assert!(parse_version("v2.17.0").unwrap_err().contains("too old"));
        assert!(parse_version("garbage")
            .unwrap_err()
            .contains("not a Helm version"));
    }

    fn opts() -> HelmOpts {
        HelmOpts {
            namespace: "ht".into(),
            create_namespace: true,
            values: vec!["values-local.yaml".into()],
            set: vec![("a.b".into(), "x,y".into())],
            wait: true,
            atomic: true,
            timeout: Duration::from_secs(300),
            rollback_timeout: Duration::from_secs(120),
            ..HelmOpts::default()
        }
    }

    #[test]
    fn helm3_and_helm4_flags() {
        let a3 = upgrade_argv(
            &v("v3.14.4+g81c902a"),
            "r",
            "c",
            &opts(),
            Some("/tmp/s.yaml"),
        );
        assert!(a3.contains(&"--atomic".to_string()) && a3.contains(&"--wait".to_string()));
        let a4 = upgrade_argv(&v("v4.0.0+g1"), "r", "c", &opts(), None);
        assert!(a4.contains(&"--rollback-on-failure".to_string()));
        assert!(a4.contains(&"--wait=watcher".to_string()));
        assert!(!a4.contains(&"--atomic".to_string()) && !a4.contains(&"--wait".to_string()));
        let joined = a3.join(" ");
        assert!(
            joined.contains("--values values-local.yaml --values /tmp/s.yaml"),
            "{joined}"
        );
        assert!(joined.contains("--set a.b=x\\,y"), "{joined}");
        assert!(joined.ends_with("--timeout 300s"), "{joined}");
    }

    #[test]
    fn status_keeps_only_what_matters() {
        let r = parse_status(
            r#"{"name":"ht","info":{"status":"deployed","description":"Upgrade complete"},
            "chart":{"metadata":{"name":"habit-tracker","version":"0.1.0","appVersion":"0.1.0"}},
            "config":{"secrets":{"JWT_SECRET":"s3cr3t"}},"version":3,"namespace":"ht"}"#,
        )
        .unwrap();
        assert_eq!(r.status, "deployed");
        assert_eq!(r.revision, 3);
        assert_eq!(r.chart, "habit-tracker-0.1.0");
        assert!(!format!("{r:?}").contains("s3cr3t"));
        assert!(parse_status("{}").is_err());
    }

    #[test]
    fn pending_is_refused_with_the_way_out() {
        let r = Release {
            status: "pending-upgrade".into(),
            revision: 4,
            ..Release::default()
        };
        let h = r#"[{"revision":2,"status":"superseded"},{"revision":3,"status":"deployed"},{"revision":4,"status":"pending-upgrade"}]"#;
        let m = pending_refusal("ht", "ns", &r, last_good_revision(h));
        assert!(m.contains("helm rollback ht 3 -n ns"), "{m}");
        let r = Release {
            status: "pending-install".into(),
            revision: 1,
            ..Release::default()
        };
        assert!(pending_refusal("ht", "ns", &r, None).contains("helm uninstall ht -n ns"));
    }

    #[test]
    fn blocking_resources_from_helm_errors() {
        let h4 = "Error: UPGRADE FAILED: resource Deployment/ht/ht-backend not ready. status: InProgress, message: Available: 0/1\ncontext deadline exceeded";
        assert_eq!(
            blocking_resource(h4),
            Some(("Deployment".into(), "ht".into(), "ht-backend".into()))
        );
        let h3 = "wait.go:48: Deployment is not ready: ht/ht-frontend. 0 out of 1 expected pods are ready\nError: UPGRADE FAILED: context deadline exceeded";
        assert_eq!(blocking_resource(h3).unwrap().2, "ht-frontend");
        assert_eq!(blocking_resource("Error: context deadline exceeded"), None);
    }

    #[test]
    fn last_event_of_the_blocker_or_the_last_warning() {
        let ev = r#"{"kind":"List","items":[
          {"type":"Normal","reason":"Scheduled","message":"assigned","lastTimestamp":"2024-05-01T10:00:00Z","involvedObject":{"kind":"Pod","name":"ht-backend-7d9-abc"}},
          {"type":"Warning","reason":"Failed","message":"Failed to pull image \"x:1\"","lastTimestamp":"2024-05-01T10:00:05Z","involvedObject":{"kind":"Pod","name":"ht-backend-7d9-abc"}},
          {"type":"Warning","reason":"BackOff","message":"other","lastTimestamp":"2024-05-01T10:00:09Z","involvedObject":{"kind":"Pod","name":"other-1"}}]}"#;
        let e = last_event(ev, Some(("Deployment", "ht-backend"))).unwrap();
        assert!(
            e.contains("Pod/ht-backend-7d9-abc: Failed: Failed to pull image"),
            "{e}"
        );
        assert!(last_event(ev, None).unwrap().contains("other-1"));
    }

    #[test]
    fn helm_gets_a_bounded_grace_past_its_timeout() {
        assert_eq!(grace(Duration::from_secs(1)), Duration::from_secs(5));
        assert_eq!(grace(Duration::from_secs(60)), Duration::from_secs(15));
        assert_eq!(grace(Duration::from_secs(300)), Duration::from_secs(30));
    }

    #[test]
    fn masking_keeps_the_shape() {
        let m = masked(&serde_json::json!({"secrets": {"A": "x", "B": "y"}}));
        assert_eq!(m, serde_json::json!({"secrets": {"A": "***", "B": "***"}}));
    }
}
