//! A release as Helm tells it: `helm status -o json` (only the fields
//! that matter: the rest holds the user's values, secrets included) and
//! `helm history`, and the refusal of a release stuck in `pending-*`.

use std::time::Duration;

use serde_json::Value;

use super::argv::{history_argv, status_argv};
use super::{run_bounded, Runner};
use crate::error::PrimError;

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
pub fn parse_status(text: &str) -> Result<Release, PrimError> {
    let v: Value = serde_json::from_str(text).map_err(|e| {
        PrimError::fatal(format!(
            "`helm status -o json` printed something that is not JSON ({e})"
        ))
    })?;
    let s = |p: &str| {
        v.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let status = s("/info/status");
    if status.is_empty() {
        return Err(PrimError::fatal(
            "`helm status -o json` has no info.status (a Helm change?)",
        ));
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
        "release {release} in namespace {ns} is {} (revision {}{}): another Helm operation is running, or one was killed before it finished. Refusing to act on it; {fix} (`helm history {release} -n {ns}` shows what happened)",
        r.status,
        r.revision,
        if r.description.is_empty() { String::new() } else { format!(", \"{}\"", r.description) }
    )
}

/// Read the release: `Ok(None)` when there is none.
pub async fn read<R: Runner>(
    runner: &R,
    release: &str,
    ns: &str,
    context: Option<&str>,
) -> Result<Option<Release>, PrimError> {
    let out = run_bounded(
        runner,
        &status_argv(release, ns, context),
        Duration::from_secs(60),
    )
    .await?;
    if out.code == 0 {
        return parse_status(&out.stdout).map(Some);
    }
    // Only Helm's own "release: not found": client-go's "context was not
    // found" is an error, not a missing release.
    if out.stderr.contains("release: not found") {
        return Ok(None);
    }
    Err(PrimError::fatal(format!(
        "cannot read release {release} (`helm status` exited with {}): {}; is the cluster reachable with this context (`kubectl cluster-info`)?",
        out.code,
        out.tail()
    )))
}

/// The release's last good revision, from its history; `None` when there
/// is none or the history cannot be read (the caller then uninstalls or
/// says to).
pub async fn last_good<R: Runner>(
    runner: &R,
    release: &str,
    ns: &str,
    context: Option<&str>,
) -> Option<i64> {
    let out = run_bounded(
        runner,
        &history_argv(release, ns, context),
        Duration::from_secs(60),
    )
    .await
    .ok()?;
    if out.code != 0 {
        return None;
    }
    last_good_revision(&out.stdout)
}

/// Read the release and refuse one stuck in `pending-*`, saying how to
/// recover: acting on it would race another Helm, or fail half-way.
pub async fn read_unstuck<R: Runner>(
    runner: &R,
    release: &str,
    ns: &str,
    context: Option<&str>,
) -> Result<Option<Release>, PrimError> {
    let current = read(runner, release, ns, context).await?;
    if let Some(r) = &current {
        if r.status.starts_with("pending-") {
            let good = last_good(runner, release, ns, context).await;
            return Err(PrimError::fatal(pending_refusal(release, ns, r, good)));
        }
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::helm::testing::Script;

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

    #[tokio::test]
    async fn a_missing_release_is_none_and_an_unreachable_cluster_an_error() {
        let none = Script::default().on("helm status", 1, "", "Error: release: not found");
        assert_eq!(read(&none, "ht", "ns", None).await.unwrap(), None);
        let down = Script::default().on(
            "helm status",
            1,
            "",
            "Error: Kubernetes cluster unreachable",
        );
        let e = read(&down, "ht", "ns", Some("mk")).await.unwrap_err();
        assert!(e.msg.contains("cluster unreachable"), "{e}");
    }

    #[tokio::test]
    async fn a_pending_release_is_refused_after_reading_its_history() {
        let s = Script::default()
            .on(
                "helm status",
                0,
                r#"{"info":{"status":"pending-upgrade"},"version":4}"#,
                "",
            )
            .on(
                "helm history",
                0,
                r#"[{"revision":3,"status":"deployed"}]"#,
                "",
            );
        let e = read_unstuck(&s, "ht", "ns", None).await.unwrap_err();
        assert!(e.msg.contains("helm rollback ht 3 -n ns"), "{e}");
        assert_eq!(s.calls().len(), 2);
    }
}
