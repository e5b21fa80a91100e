//! Why a Deployment's pods are not ready: the waiting reason of each
//! container, unscheduled pods, with the fix for the common ones. What a
//! rollout that timed out reports, so the user does not have to run
//! `kubectl describe` to learn that an image could not be pulled.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodStatus};
use kube::api::ListParams;
use kube::Api;

use super::client::{explain, Call, Kube};

/// Why each not-ready pod of a Deployment is not ready, one line a pod.
pub fn pod_problems(pods: &[Pod]) -> Vec<String> {
    let mut out = Vec::new();
    for pod in pods {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let name = pod.metadata.name.as_deref().unwrap_or("?");
        let st = pod.status.clone().unwrap_or_default();
        if condition(&st, "Ready", "True") {
            continue;
        }
        let phase = st.phase.clone().unwrap_or_else(|| "Unknown".into());
        let mut why = container_problems(&st, name);
        if why.is_empty() {
            why.push(unscheduled(&st).unwrap_or_else(|| "no container status yet".into()));
        }
        out.push(format!("pod {name} ({phase}): {}", why.join("; ")));
    }
    out
}

fn condition(st: &PodStatus, ty: &str, status: &str) -> bool {
    st.conditions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == ty && c.status == status)
}

fn unscheduled(st: &PodStatus) -> Option<String> {
    let c = st
        .conditions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False")?;
    Some(format!(
        "not scheduled: {} ({}) — free capacity or lower the chart's requests",
        c.reason.as_deref().unwrap_or("Unschedulable"),
        c.message.as_deref().unwrap_or("")
    ))
}

/// What each container (init containers first) is stuck on.
fn container_problems(st: &PodStatus, pod: &str) -> Vec<String> {
    let statuses = st
        .init_container_statuses
        .iter()
        .flatten()
        .map(|s| (s, true))
        .chain(st.container_statuses.iter().flatten().map(|s| (s, false)));
    statuses
        .filter_map(|(cs, init)| container_problem(cs, init, pod))
        .collect()
}

fn container_problem(cs: &ContainerStatus, init: bool, pod: &str) -> Option<String> {
    let kind = if init { "init container" } else { "container" };
    let state = cs.state.clone().unwrap_or_default();
    if let Some(w) = state.waiting {
        let reason = w.reason.unwrap_or_else(|| "Waiting".into());
        let msg = w.message.map(|m| format!(" ({m})")).unwrap_or_default();
        return Some(format!(
            "{kind} {} waiting: {reason}{msg}{}",
            cs.name,
            hint(&reason, pod, &cs.name)
        ));
    }
    if let Some(t) = state.terminated {
        // An init container that finished did its job.
        return (!(init && t.exit_code == 0)).then(|| {
            format!(
                "{kind} {} terminated: {} (exit {})",
                cs.name,
                t.reason.unwrap_or_else(|| "Error".into()),
                t.exit_code
            )
        });
    }
    if !cs.ready && !init {
        let restarts = if cs.restart_count > 0 {
            format!(", {} restart(s)", cs.restart_count)
        } else {
            String::new()
        };
        return Some(format!(
            "container {} running but not ready (readiness probe failing{restarts})",
            cs.name
        ));
    }
    None
}

/// The fix for a waiting reason, when there is a usual one.
fn hint(reason: &str, pod: &str, container: &str) -> String {
    match reason {
        "ImagePullBackOff" | "ErrImagePull" | "InvalidImageName" => " — the image cannot be pulled: check that the tag exists, or build it and load it with `minikube image load IMAGE`".into(),
        "CrashLoopBackOff" => format!(" — the container keeps exiting: see `kubectl logs {pod} -c {container} --previous`"),
        "CreateContainerConfigError" => format!(" — a ConfigMap or Secret it needs is missing: see `kubectl describe pod {pod}`"),
        _ => String::new(),
    }
}

/// The Deployment's `matchLabels` as a label selector `k=v,k=v`.
pub fn selector_of(d: &Deployment) -> Option<String> {
    let labels = d.spec.as_ref()?.selector.match_labels.as_ref()?;
    if labels.is_empty() {
        return None;
    }
    Some(
        labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// List the Deployment's pods (bounded: 10 s) and say what holds them up.
/// Never fails: a diagnosis that cannot be made says so instead.
pub async fn diagnose(k: &Kube, ns: &str, d: &Deployment) -> String {
    let Some(sel) = selector_of(d) else {
        return "(the Deployment has no matchLabels selector to find its pods by)".into();
    };
    let pods: Api<Pod> = Api::namespaced(k.client.clone(), ns);
    let listed = tokio::time::timeout(
        Duration::from_secs(10),
        pods.list(&ListParams::default().labels(&sel)),
    )
    .await;
    match listed {
        Err(_) => "(listing its pods took longer than 10s)".into(),
        Ok(Err(e)) => {
            let call = Call {
                what: &format!("list pods -l {sel}"),
                verb: "list",
                resource: "pods",
                ns: Some(ns),
            };
            format!("(cannot list its pods: {})", explain(k, &e, call).msg)
        }
        Ok(Ok(list)) if list.items.is_empty() => format!(
            "no pod matches {sel}: something blocks pod creation (quota, admission); see `kubectl -n {ns} describe replicaset -l {sel}`"
        ),
        Ok(Ok(list)) => {
            let problems = pod_problems(&list.items);
            if problems.is_empty() {
                "every pod is ready; the rollout is still settling (old pods terminating)".into()
            } else {
                problems.join("\n  ")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pod_problems_name_waiting_reasons() {
        let pods: Vec<Pod> = serde_json::from_value(json!([
            {"metadata": {"name": "web-1"}, "status": {"phase": "Pending",
              "conditions": [{"type": "Ready", "status": "False"}],
              "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0, "image": "x", "imageID": "",
                "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"x:1\""}}}]}},
            {"metadata": {"name": "web-2"}, "status": {"phase": "Running",
              "conditions": [{"type": "Ready", "status": "True"}]}},
            {"metadata": {"name": "web-3"}, "status": {"phase": "Pending",
              "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                              "message": "0/1 nodes are available: 1 Insufficient cpu."}]}}
        ]))
        .unwrap();
        let p = pod_problems(&pods);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p[0].contains("web-1")
                && p[0].contains("ImagePullBackOff")
                && p[0].contains("minikube image load"),
            "{p:?}"
        );
        assert!(p[1].contains("Insufficient cpu"), "{p:?}");
    }

    #[test]
    fn finished_init_containers_are_fine_and_failing_probes_are_named() {
        let pods: Vec<Pod> = serde_json::from_value(json!([
            {"metadata": {"name": "web-1"}, "status": {"phase": "Running",
              "initContainerStatuses": [{"name": "migrate", "ready": true, "restartCount": 0, "image": "x", "imageID": "",
                "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}],
              "containerStatuses": [{"name": "app", "ready": false, "restartCount": 2, "image": "x", "imageID": "",
                "state": {"running": {}}}]}}
        ]))
        .unwrap();
        let p = pod_problems(&pods);
        assert_eq!(
            p,
            ["pod web-1 (Running): container app running but not ready (readiness probe failing, 2 restart(s))"]
        );
    }

    #[test]
    fn the_selector_comes_from_match_labels() {
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web", "tier": "front"}}, "template": {}}
        }))
        .unwrap();
        assert_eq!(selector_of(&d).as_deref(), Some("app=web,tier=front"));
        let none: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "web"}, "spec": {"selector": {}, "template": {}}
        }))
        .unwrap();
        assert_eq!(selector_of(&none), None);
    }
}
