//! `helm upgrade --install` with its budgets: the secrets in a temporary
//! 0600 values file (never argv, never logged, removed however the call
//! ends), Helm's own `--timeout` for the install, its own budget for the
//! rollback, a bounded grace for Helm to report, the release read back.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::argv::{upgrade_argv, HelmOpts};
use super::status::{read, Release};
use super::version::HelmVersion;
use super::{failure, run_bounded, Runner};
use crate::error::PrimError;

/// Time Helm gets past its own `--timeout` to report (and clean up)
/// before runbook stops it: a quarter of the budget, 5–30 s.
pub fn grace(timeout: Duration) -> Duration {
    (timeout / 4).clamp(Duration::from_secs(5), Duration::from_secs(30))
}

/// The whole bound of an install: Helm's timeout, the rollback's budget
/// when it may roll back, and the grace.
pub fn bound(h: &HelmOpts) -> Duration {
    let rollback = if h.atomic {
        h.rollback_timeout
    } else {
        Duration::ZERO
    };
    h.timeout
        .saturating_add(rollback)
        .saturating_add(grace(h.timeout))
}

/// Register every string in the secret values for redaction.
pub fn register_leaves(v: &Value) {
    match v {
        Value::String(s) => crate::redact::register(s),
        Value::Array(a) => a.iter().for_each(register_leaves),
        Value::Object(o) => o.values().for_each(register_leaves),
        _ => {}
    }
}

/// The secret values with every leaf masked, for a dry run's plan.
pub fn masked(v: &Value) -> Value {
    match v {
        Value::Array(a) => Value::Array(a.iter().map(masked).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, x)| (k.clone(), masked(x))).collect()),
        Value::Null => Value::Null,
        _ => Value::String(crate::redact::MASK.into()),
    }
}

/// Write the secret values to a temporary 0600 file; it is removed when
/// the handle drops (after success, failure, or a cancelled run).
pub fn secrets_file(v: &Value) -> Result<tempfile::NamedTempFile, PrimError> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let mut f = tempfile::Builder::new()
        .prefix("runbook-helm-secrets-")
        .suffix(".yaml")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile()
        .map_err(|e| {
            PrimError::fatal(format!(
                "cannot create the temporary secrets values file: {e}"
            ))
        })?;
    // JSON is YAML: Helm reads it as a values file.
    let text = serde_json::to_string_pretty(v)
        .map_err(|e| PrimError::fatal(format!("cannot write the secret values: {e}")))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.as_file().sync_all())
        .map_err(|e| {
            PrimError::fatal(format!(
                "cannot write the temporary secrets values file: {e}"
            ))
        })?;
    Ok(f)
}

fn indent(text: &str) -> String {
    text.trim_end()
        .lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What a dry run prints: the exact command (the secrets file named, not
/// shown), each values file, the secret values masked, the sets.
/// `read_file` gives a values file's text.
pub fn plan(
    v: &HelmVersion,
    release: &str,
    chart: &str,
    h: &HelmOpts,
    read_file: impl Fn(&str) -> String,
) -> String {
    let secrets = h
        .secret_values
        .as_ref()
        .map(|_| "<temporary 0600 secrets values file>");
    let a = upgrade_argv(v, release, chart, h, secrets);
    let mut plan = format!("dry run: would run\n  {}\n", a.join(" "));
    for f in &h.values {
        plan.push_str(&format!("values from {f}:\n{}\n", indent(&read_file(f))));
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
    plan.trim_end().to_string()
}

/// A local chart's `name-version` and appVersion, from its Chart.yaml
/// (the chart itself when unreadable), for a dry run's planned result.
pub fn chart_meta(dir: &Path, chart: &str) -> (String, String) {
    let Ok(text) = crate::fsread::read_text(&dir.join("Chart.yaml"), crate::fsread::FILE_CAP)
    else {
        return (chart.to_string(), String::new());
    };
    let v: Value = serde_norway::from_str(&text).unwrap_or(Value::Null);
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    (format!("{}-{}", s("name"), s("version")), s("appVersion"))
}

/// Run the upgrade (the secrets file already written, at `secrets_path`)
/// within [`bound`]; read the release back. On failure: the explained
/// error (see [`failure::explain`]), after any rollback it needed.
/// `had_previous`: the release existed before (a failure rolls back to
/// its last good revision rather than uninstalling).
pub async fn upgrade<R: Runner>(
    runner: &R,
    v: &HelmVersion,
    release: &str,
    chart: &str,
    h: &HelmOpts,
    secrets_path: Option<&str>,
    had_previous: bool,
) -> Result<Release, PrimError> {
    let a = upgrade_argv(v, release, chart, h, secrets_path);
    let (code, stderr) = match run_bounded(runner, &a, bound(h)).await {
        Ok(o) if o.code == 0 => {
            return read(runner, release, &h.namespace, h.context.as_deref())
                .await?
                .ok_or_else(|| {
                    PrimError::fatal(format!(
                        "Helm reported success but `helm status {release}` finds no release"
                    ))
                })
        }
        Ok(o) => (o.code.to_string(), o.tail()),
        Err(e) => ("none (stopped)".into(), e),
    };
    let msg = failure::explain(runner, release, h, v, had_previous, &code, &stderr).await;
    Err(PrimError::fatal(msg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::helm::testing::Script;
    use crate::helm::version::parse_version;

    #[test]
    fn helm_gets_a_bounded_grace_past_its_timeout() {
        assert_eq!(grace(Duration::from_secs(1)), Duration::from_secs(5));
        assert_eq!(grace(Duration::from_secs(60)), Duration::from_secs(15));
        assert_eq!(grace(Duration::from_secs(300)), Duration::from_secs(30));
        let h = HelmOpts {
            timeout: Duration::from_secs(1),
            rollback_timeout: Duration::from_secs(1),
            atomic: true,
            ..HelmOpts::default()
        };
        assert_eq!(bound(&h), Duration::from_secs(7));
    }

    #[test]
    fn masking_keeps_the_shape() {
        let m = masked(&serde_json::json!({"secrets": {"A": "x", "B": "y"}}));
        assert_eq!(m, serde_json::json!({"secrets": {"A": "***", "B": "***"}}));
    }

    #[test]
    fn the_secrets_file_is_private_and_goes_away() {
        use std::os::unix::fs::PermissionsExt;
        let f = secrets_file(&serde_json::json!({"secrets": {"A": "x"}})).unwrap();
        let path = f.path().to_path_buf();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .contains("\"A\": \"x\""));
        drop(f);
        assert!(!path.exists());
    }

    #[test]
    fn a_plan_masks_secrets_and_shows_values() {
        let h = HelmOpts {
            namespace: "ht".into(),
            values: vec!["v.yaml".into()],
            secret_values: Some(serde_json::json!({"secrets": {"JWT": "s3cr3t"}})),
            timeout: Duration::from_secs(60),
            ..HelmOpts::default()
        };
        let p = plan(&parse_version("v3.14.4").unwrap(), "r", "c", &h, |_| {
            "a: 1\n".into()
        });
        assert!(
            p.contains("--values v.yaml --values <temporary 0600 secrets values file>"),
            "{p}"
        );
        assert!(p.contains("values from v.yaml:\n    a: 1"), "{p}");
        assert!(
            p.contains("\"JWT\": \"***\"") && !p.contains("s3cr3t"),
            "{p}"
        );
    }

    #[tokio::test]
    async fn a_successful_upgrade_reads_the_release_back() {
        let s = Script::default()
            .on("helm upgrade", 0, "Happy Helming!", "")
            .on("helm status", 0, r#"{"info":{"status":"deployed"},"version":2,"chart":{"metadata":{"name":"c","version":"0.1.0"}}}"#, "");
        let h = HelmOpts {
            namespace: "ht".into(),
            timeout: Duration::from_secs(60),
            ..HelmOpts::default()
        };
        let r = upgrade(
            &s,
            &parse_version("v3.14.4").unwrap(),
            "r",
            "c",
            &h,
            None,
            true,
        )
        .await
        .unwrap();
        assert_eq!(
            (r.status.as_str(), r.revision, r.chart.as_str()),
            ("deployed", 2, "c-0.1.0")
        );
    }

    #[test]
    fn chart_meta_reads_chart_yaml() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("Chart.yaml"),
            "name: ht\nversion: 0.2.0\nappVersion: \"1.0\"\n",
        )
        .unwrap();
        assert_eq!(
            chart_meta(dir.path(), "c"),
            ("ht-0.2.0".into(), "1.0".into())
        );
        assert_eq!(
            chart_meta(&dir.path().join("nope"), "c"),
            ("c".into(), String::new())
        );
    }
}
