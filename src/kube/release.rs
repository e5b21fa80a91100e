//! A Helm release's Deployments: listed by the label every chart puts on
//! a release's objects, and waited for together. A flow then does not
//! need to know what the chart names them.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::ListParams;
use kube::Api;

use super::client::{explain, Call, Kube};
use super::rollout::{wait, Progress};
use crate::error::{Kind, PrimError};

/// The names of the Deployments in `ns` matching `selector` (every one
/// when it is empty), sorted.
pub async fn list(k: &Kube, ns: &str, selector: &str) -> Result<Vec<String>, PrimError> {
    let api: Api<Deployment> = Api::namespaced(k.client.clone(), ns);
    let mut lp = ListParams::default();
    if !selector.is_empty() {
        lp = lp.labels(selector);
    }
    let what = format!("list deployments in {ns}");
    let call = Call {
        what: &what,
        verb: "list",
        resource: "deployments",
        ns: Some(ns),
    };
    let list = api.list(&lp).await.map_err(|e| explain(k, &e, call))?;
    let mut names: Vec<String> = list
        .items
        .into_iter()
        .filter_map(|d| d.metadata.name)
        .collect();
    names.sort();
    Ok(names)
}

/// The label Helm's charts (by the Kubernetes recommended labels) put on
/// every object of a release.
pub fn release_selector(release: &str) -> String {
    format!("app.kubernetes.io/instance={release}")
}

/// Wait for every Deployment of Helm release `release` in `ns` (found by
/// [`release_selector`]) at once, each bounded by `timeout`. A release
/// with no Deployment is an error: there would be nothing to wait for,
/// which is never what the caller meant.
pub async fn wait_release(
    k: &Kube,
    ns: &str,
    release: &str,
    timeout: Duration,
    allow_zero: bool,
) -> Result<Vec<(String, Progress)>, PrimError> {
    let selector = release_selector(release);
    let names = list(k, ns, &selector).await?;
    if names.is_empty() {
        return Err(PrimError::fatal(format!(
            "release {release} has no Deployment in namespace {ns} (label {selector}); check the release and the namespace (`helm list -n {ns}`) and that the chart sets the label"
        )));
    }
    let waits = names.iter().map(|n| wait(k, ns, n, timeout, allow_zero));
    let results = futures::future::join_all(waits).await;
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for (name, r) in names.into_iter().zip(results) {
        match r {
            Ok(p) => done.push((name, p)),
            Err(e) => failed.push(e),
        }
    }
    match combine(failed) {
        None => Ok(done),
        Some(e) => Err(e),
    }
}

/// One error for several: the messages one a line; transient only when
/// every one is.
fn combine(mut failed: Vec<PrimError>) -> Option<PrimError> {
    if failed.len() <= 1 {
        return failed.pop();
    }
    let kind = if failed.iter().all(PrimError::is_transient) {
        Kind::Transient
    } else {
        Kind::Fatal
    };
    let msg = failed
        .iter()
        .map(|e| e.msg.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    Some(PrimError {
        kind,
        msg,
        retry_after: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_release_is_found_by_its_instance_label() {
        assert_eq!(release_selector("ht"), "app.kubernetes.io/instance=ht");
    }

    #[test]
    fn several_failures_make_one_error() {
        assert_eq!(combine(vec![]), None);
        let one = combine(vec![PrimError::fatal("a")]).unwrap();
        assert_eq!(one, PrimError::fatal("a"));
        let two = combine(vec![PrimError::transient("a"), PrimError::fatal("b")]).unwrap();
        assert_eq!((two.kind, two.msg.as_str()), (Kind::Fatal, "a\nb"));
        let both = combine(vec![PrimError::transient("a"), PrimError::transient("b")]).unwrap();
        assert!(both.is_transient());
    }
}
