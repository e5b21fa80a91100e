//! A failed install, explained: which resource blocked and its last event
//! (from Helm's stderr and `kubectl get events`), the rollback runbook did
//! when Helm's own did not happen, and the release's state now. The user
//! reads one message instead of running four commands.

use std::time::Duration;

use serde_json::Value;

use super::argv::{events_argv, undo_argv, HelmOpts};
use super::status::{last_good, read};
use super::version::HelmVersion;
use super::{run_bounded, Runner};
use crate::error::fmt_secs;

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

fn when(e: &Value) -> String {
    ["lastTimestamp", "eventTime", "firstTimestamp"]
        .iter()
        .find_map(|k| e.get(*k).and_then(Value::as_str))
        .unwrap_or("")
        .to_string()
}

fn involved(e: &Value, k: &str) -> String {
    e.pointer(&format!("/involvedObject/{k}"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

fn is_warning(e: &Value) -> bool {
    e.get("type").and_then(Value::as_str) == Some("Warning")
}

/// The last event about `blocked` (a resource, or the pods of a workload
/// named by it), else the last Warning event: `kind/name: reason: message`.
pub fn last_event(events_json: &str, blocked: Option<(&str, &str)>) -> Option<String> {
    let v: Value = serde_json::from_str(events_json).ok()?;
    let items = v.get("items")?.as_array()?;
    let about = |e: &&Value| -> bool {
        match blocked {
            Some((kind, name)) => {
                let (k, n) = (involved(e, "kind"), involved(e, "name"));
                (k == kind && n == name) || n.starts_with(&format!("{name}-"))
            }
            None => is_warning(e),
        }
    };
    let mut picked: Vec<&Value> = items.iter().filter(about).collect();
    if picked.is_empty() && blocked.is_some() {
        picked = items.iter().filter(|e| is_warning(e)).collect();
    }
    // Newest last; a Warning wins over a Normal of the same time.
    picked.sort_by_key(|e| (when(e), is_warning(e)));
    let e = picked.last()?;
    Some(format!(
        "{}/{}: {}: {}",
        involved(e, "kind"),
        involved(e, "name"),
        e.get("reason").and_then(Value::as_str).unwrap_or("?"),
        e.get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim()
    ))
}

/// One line naming the blocker and its last event (or the last warning
/// in the namespace), or nothing when neither is known.
async fn blocker_line<R: Runner>(runner: &R, h: &HelmOpts, stderr: &str) -> Option<String> {
    let blocked = blocking_resource(stderr);
    let ev = events_argv(&h.namespace, h.context.as_deref());
    let event = match run_bounded(runner, &ev, Duration::from_secs(20)).await {
        Ok(o) if o.code == 0 => last_event(
            &o.stdout,
            blocked.as_ref().map(|(k, _, n)| (k.as_str(), n.as_str())),
        ),
        _ => None,
    };
    match (&blocked, &event) {
        (Some((k, ns, n)), Some(e)) => Some(format!("blocked by {k} {ns}/{n}; last event: {e}")),
        (Some((k, ns, n)), None) => Some(format!(
            "blocked by {k} {ns}/{n} (no event found: `kubectl -n {ns} describe {} {n}`)",
            k.to_lowercase()
        )),
        (None, Some(e)) => Some(format!("last warning in namespace {}: {e}", h.namespace)),
        (None, None) => None,
    }
}

/// When Helm's own rollback did not happen (or ran out of the shared
/// deadline), roll back now on the rollback's own budget (or uninstall a
/// failed first install). Says what it did; `None` when nothing was due.
async fn undo_if_needed<R: Runner>(
    runner: &R,
    release: &str,
    h: &HelmOpts,
    v: &HelmVersion,
    had_previous: bool,
) -> Option<String> {
    let ctx = h.context.as_deref();
    let now = read(runner, release, &h.namespace, ctx)
        .await
        .ok()
        .flatten();
    let needs =
        h.atomic && matches!(&now, Some(r) if r.status != "deployed" && r.status != "superseded");
    if !needs {
        return None;
    }
    let good = if had_previous {
        last_good(runner, release, &h.namespace, ctx).await
    } else {
        None
    };
    let a = undo_argv(v, release, &h.namespace, ctx, good, h.rollback_timeout);
    let what = match good {
        Some(rev) => format!("rolled back to revision {rev}"),
        None => "uninstalled the failed first install".into(),
    };
    Some(
        match run_bounded(runner, &a, h.rollback_timeout + Duration::from_secs(30)).await {
            Ok(o) if o.code == 0 => {
                format!("runbook {what} (budget {})", fmt_secs(h.rollback_timeout))
            }
            Ok(o) => format!(
                "the rollback failed too (`{}` exited with {}): {}",
                a.join(" "),
                o.code,
                o.tail()
            ),
            Err(e) => format!("the rollback failed too: {e}"),
        },
    )
}

/// The release's state after all that, in one line.
async fn state_line<R: Runner>(runner: &R, release: &str, h: &HelmOpts) -> Option<String> {
    match read(runner, release, &h.namespace, h.context.as_deref()).await {
        Ok(Some(r)) => Some(format!(
            "release {release} is now {} at revision {}{}",
            r.status,
            r.revision,
            if r.description.is_empty() {
                String::new()
            } else {
                format!(" (\"{}\")", r.description)
            }
        )),
        Ok(None) => Some(format!("release {release} does not exist now")),
        Err(_) => None,
    }
}

/// Explain a failed `helm upgrade --install` (exit `code`, `stderr`):
/// Helm's words, then what blocked, the rollback, the state now.
pub async fn explain<R: Runner>(
    runner: &R,
    release: &str,
    h: &HelmOpts,
    v: &HelmVersion,
    had_previous: bool,
    code: &str,
    stderr: &str,
) -> String {
    let mut msg = format!(
        "`helm upgrade --install {release}` failed (exit {code}):\n  {}",
        stderr.trim().replace('\n', "\n  ")
    );
    let lines = [
        blocker_line(runner, h, stderr).await,
        undo_if_needed(runner, release, h, v, had_previous).await,
        state_line(runner, release, h).await,
    ];
    for line in lines.into_iter().flatten() {
        msg.push_str("\n  ");
        msg.push_str(&line);
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::helm::testing::Script;
    use crate::helm::version::parse_version;

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

    fn opts() -> HelmOpts {
        HelmOpts {
            namespace: "ht".into(),
            atomic: true,
            rollback_timeout: Duration::from_secs(7),
            ..HelmOpts::default()
        }
    }

    #[tokio::test]
    async fn a_failed_first_install_is_uninstalled_and_explained() {
        let s = Script::default()
            .on("kubectl get events", 0, r#"{"items":[]}"#, "")
            .on(
                "helm status",
                0,
                r#"{"info":{"status":"failed"},"version":1}"#,
                "",
            )
            .on("helm uninstall", 0, "uninstalled", "");
        let v = parse_version("v3.14.4").unwrap();
        let stderr = "Error: resource Deployment/ht/ht-backend not ready";
        let m = explain(&s, "ht", &opts(), &v, false, "1", stderr).await;
        assert!(
            m.starts_with("`helm upgrade --install ht` failed (exit 1):\n  Error: resource"),
            "{m}"
        );
        assert!(
            m.contains("blocked by Deployment ht/ht-backend (no event found"),
            "{m}"
        );
        assert!(
            m.contains("runbook uninstalled the failed first install (budget 7s)"),
            "{m}"
        );
        assert!(s
            .calls()
            .iter()
            .any(|c| c.starts_with("helm uninstall ht --namespace ht --wait --timeout 7s")));
        assert!(!s.calls().iter().any(|c| c.starts_with("helm history")));
    }

    #[tokio::test]
    async fn a_release_helm_rolled_back_is_left_alone() {
        let s = Script::default()
            .on("kubectl get events", 1, "", "forbidden")
            .on(
                "helm status",
                0,
                r#"{"info":{"status":"deployed","description":"Rollback to 2"},"version":3}"#,
                "",
            );
        let v = parse_version("v4.0.0").unwrap();
        let m = explain(&s, "ht", &opts(), &v, true, "1", "Error: boom").await;
        assert!(
            m.ends_with("release ht is now deployed at revision 3 (\"Rollback to 2\")"),
            "{m}"
        );
        assert!(!s.calls().iter().any(|c| c.starts_with("helm rollback")));
    }
}
