//! Helm's command lines, built from typed options: every value its own
//! argv element (never a shell string), `--set` values escaped, the
//! version's own flags, secrets only ever as a file path.

use std::time::Duration;

use serde_json::Value;

use super::version::HelmVersion;

/// The options of an install (`helm upgrade --install`).
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

/// Escape a `--set` value: Helm splits on commas and reads backslashes.
pub fn escape_set(v: &str) -> String {
    v.replace('\\', "\\\\").replace(',', "\\,")
}

/// A set key Helm reads as a values path (and nothing else).
pub fn valid_set_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-[]".contains(c))
}

/// Strings to an argv.
pub fn argv(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

/// `a` with `flag context` appended when there is a context.
pub fn with_context(mut a: Vec<String>, flag: &str, ctx: Option<&str>) -> Vec<String> {
    if let Some(c) = ctx {
        a.push(flag.into());
        a.push(c.into());
    }
    a
}

/// Whole seconds for Helm's `--timeout` (at least 1).
fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs().max(1))
}

/// `--values F…` then `--set k=v…` (escaped), shared by install and template.
fn push_values(
    a: &mut Vec<String>,
    files: &[String],
    extra_file: Option<&str>,
    set: &[(String, String)],
) {
    for f in files.iter().map(String::as_str).chain(extra_file) {
        a.push("--values".into());
        a.push(f.to_string());
    }
    for (k, val) in set {
        a.push("--set".into());
        a.push(format!("{k}={}", escape_set(val)));
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
    let mut a = argv(&[
        "helm",
        "upgrade",
        "--install",
        release,
        chart,
        "--namespace",
        &h.namespace,
    ]);
    if h.create_namespace {
        a.push("--create-namespace".into());
    }
    a = with_context(a, "--kube-context", h.context.as_deref());
    if let Some(ver) = &h.chart_version {
        a.push("--version".into());
        a.push(ver.clone());
    }
    push_values(&mut a, &h.values, secrets_file, &h.set);
    if h.wait || h.atomic {
        a.push(v.wait_flag().into());
    }
    if h.atomic {
        a.push(v.atomic_flag().into());
    }
    a.push("--timeout".into());
    a.push(secs(h.timeout));
    a
}

/// `helm status RELEASE -o json`.
pub fn status_argv(release: &str, ns: &str, context: Option<&str>) -> Vec<String> {
    let a = argv(&["helm", "status", release, "--namespace", ns, "-o", "json"]);
    with_context(a, "--kube-context", context)
}

/// `helm history RELEASE -o json` (the last 20 revisions).
pub fn history_argv(release: &str, ns: &str, context: Option<&str>) -> Vec<String> {
    let a = argv(&[
        "helm",
        "history",
        release,
        "--namespace",
        ns,
        "-o",
        "json",
        "--max",
        "20",
    ]);
    with_context(a, "--kube-context", context)
}

/// Roll back to `revision`, or uninstall (a failed first install has
/// nothing to go back to), waiting at most `budget`.
pub fn undo_argv(
    v: &HelmVersion,
    release: &str,
    ns: &str,
    context: Option<&str>,
    revision: Option<i64>,
    budget: Duration,
) -> Vec<String> {
    let t = secs(budget);
    let a = match revision {
        Some(rev) => argv(&[
            "helm",
            "rollback",
            release,
            &rev.to_string(),
            "--namespace",
            ns,
            v.wait_flag(),
            "--timeout",
            &t,
        ]),
        None => argv(&[
            "helm",
            "uninstall",
            release,
            "--namespace",
            ns,
            v.wait_flag(),
            "--timeout",
            &t,
        ]),
    };
    with_context(a, "--kube-context", context)
}

/// `kubectl get events -o json` in `ns`.
pub fn events_argv(ns: &str, context: Option<&str>) -> Vec<String> {
    let a = argv(&["kubectl", "get", "events", "--namespace", ns, "-o", "json"]);
    with_context(a, "--context", context)
}

/// What `helm template` renders with.
#[derive(Clone, Debug, Default)]
pub struct TemplateOpts {
    /// `--namespace` (`.Release.Namespace`).
    pub namespace: String,
    /// Values files, in order.
    pub values: Vec<String>,
    /// `--set` pairs.
    pub set: Vec<(String, String)>,
    /// `--version` of the chart.
    pub chart_version: Option<String>,
    /// `--kube-version` (`.Capabilities.KubeVersion`), e.g. "1.30".
    pub kube_version: Option<String>,
}

/// `helm template RELEASE CHART`: offline, no cluster contacted.
pub fn template_argv(release: &str, chart: &str, t: &TemplateOpts) -> Vec<String> {
    let mut a = argv(&[
        "helm",
        "template",
        release,
        chart,
        "--namespace",
        &t.namespace,
    ]);
    if let Some(ver) = &t.chart_version {
        a.push("--version".into());
        a.push(ver.clone());
    }
    if let Some(kv) = &t.kube_version {
        a.push("--kube-version".into());
        a.push(kv.clone());
    }
    push_values(&mut a, &t.values, None, &t.set);
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::helm::version::parse_version;

    fn v(s: &str) -> HelmVersion {
        parse_version(s).unwrap()
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
    fn undo_is_a_rollback_or_an_uninstall_with_its_own_budget() {
        let r = undo_argv(
            &v("v3.14.4"),
            "r",
            "ns",
            Some("mk"),
            Some(3),
            Duration::from_secs(7),
        );
        assert_eq!(
            r.join(" "),
            "helm rollback r 3 --namespace ns --wait --timeout 7s --kube-context mk"
        );
        let u = undo_argv(
            &v("v4.0.0"),
            "r",
            "ns",
            None,
            None,
            Duration::from_millis(10),
        );
        assert_eq!(
            u.join(" "),
            "helm uninstall r --namespace ns --wait=watcher --timeout 1s"
        );
    }

    #[test]
    fn template_takes_values_and_sets_but_no_cluster() {
        let t = TemplateOpts {
            namespace: "ht".into(),
            values: vec!["v.yaml".into()],
            set: vec![("backend.replicaCount".into(), "2".into())],
            kube_version: Some("1.30".into()),
            ..TemplateOpts::default()
        };
        assert_eq!(
            template_argv("r", "chart", &t).join(" "),
            "helm template r chart --namespace ht --kube-version 1.30 --values v.yaml --set backend.replicaCount=2"
        );
    }

    #[test]
    fn set_keys_are_values_paths() {
        assert!(valid_set_key("a.b[0].c-d_e"));
        assert!(!valid_set_key(""));
        assert!(!valid_set_key("a=b"));
        assert!(!valid_set_key("a,b"));
        assert_eq!(escape_set("a\\b,c"), "a\\\\b\\,c");
    }

    #[test]
    fn contexts_use_each_program_s_flag() {
        assert!(
            status_argv("r", "ns", Some("mk")).ends_with(&["--kube-context".into(), "mk".into()])
        );
        assert!(events_argv("ns", Some("mk")).ends_with(&["--context".into(), "mk".into()]));
        assert_eq!(
            history_argv("r", "ns", None).last().map(String::as_str),
            Some("20")
        );
    }
}
