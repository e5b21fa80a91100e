//! Waiting for Deployments to roll out, by watching them (not polling),
//! with a hard bound, and a diagnosis of the pods when the bound passes.
//! "Done" is counted, never inferred: see [`evaluate`].

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{WatchEvent, WatchParams};
use kube::Api;

use super::client::{explain, is_status, Call, Kube};
use super::pods::diagnose;
use crate::error::{fmt_secs, PrimError};
use crate::net::retry::{retry, Schedule};

/// Where a Deployment's rollout stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// `spec.replicas` (default 1).
    pub desired: i32,
    /// `status.updatedReplicas`.
    pub updated: i32,
    /// `status.availableReplicas`.
    pub available: i32,
    /// `status.readyReplicas`.
    pub ready: i32,
    /// `status.replicas` (old and new pods).
    pub total: i32,
    /// The controller has seen the current spec (observedGeneration ≥ generation).
    pub observed: bool,
    /// The rollout is complete.
    pub done: bool,
    /// The controller gave up (Progressing=False, ProgressDeadlineExceeded).
    pub stalled: Option<String>,
}

impl Progress {
    /// A one-line summary.
    pub fn line(&self) -> String {
        if !self.observed {
            return format!(
                "waiting for the controller to see the new spec ({}/{} updated, {}/{} available)",
                self.updated, self.desired, self.available, self.desired
            );
        }
        let mut s = format!(
            "{}/{} updated, {}/{} available, {} ready",
            self.updated, self.desired, self.available, self.desired, self.ready
        );
        if self.total > self.updated {
            s.push_str(&format!(
                ", {} old pod(s) terminating",
                self.total - self.updated
            ));
        }
        s
    }
}

/// Judge a Deployment. "Done" means: the controller has observed the
/// current generation, and the updated, available and total replica
/// counts all equal the desired count (so no old pod is left and every
/// new pod is available). A desired count of 0 is an error unless
/// `allow_zero`, when done means observed with no pods left; a paused
/// Deployment is an error. `maxUnavailable` plays no part: availability is
/// counted, not inferred from the Available condition (which is vacuously
/// true when maxUnavailable = replicas).
pub fn evaluate(d: &Deployment, allow_zero: bool) -> Result<Progress, PrimError> {
    let name = d.metadata.name.as_deref().unwrap_or("?");
    let spec = d.spec.as_ref();
    let desired = spec.and_then(|s| s.replicas).unwrap_or(1);
    if spec.and_then(|s| s.paused) == Some(true) {
        return Err(PrimError::fatal(format!(
            "Deployment {name} is paused, so its rollout cannot finish; resume it with `kubectl rollout resume deployment/{name}`"
        )));
    }
    if desired == 0 && !allow_zero {
        return Err(PrimError::fatal(format!(
            "Deployment {name} wants 0 replicas: there is nothing to roll out and nothing would serve; scale it up (replicaCount in the chart's values) or pass `allow_zero: true` if it is meant to be off"
        )));
    }
    let st = d.status.clone().unwrap_or_default();
    let observed = st.observed_generation.unwrap_or(-1) >= d.metadata.generation.unwrap_or(0);
    let (updated, available, total) = (
        st.updated_replicas.unwrap_or(0),
        st.available_replicas.unwrap_or(0),
        st.replicas.unwrap_or(0),
    );
    let done = observed && updated == desired && available == desired && total == desired;
    let stalled = st
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| {
            c.type_ == "Progressing"
                && c.status == "False"
                && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        })
        .map(|c| {
            c.message
                .unwrap_or_else(|| "progress deadline exceeded".into())
        });
    Ok(Progress {
        desired,
        updated,
        available,
        ready: st.ready_replicas.unwrap_or(0),
        total,
        observed,
        done,
        stalled: if observed && !done { stalled } else { None },
    })
}

/// Why watching stopped before the rollout was done.
enum Stop {
    /// The controller gave up (ProgressDeadlineExceeded): diagnose the pods.
    Stalled(String),
    /// Nothing to diagnose: the error says it all.
    Failed(PrimError),
}

impl From<PrimError> for Stop {
    fn from(e: PrimError) -> Self {
        Stop::Failed(e)
    }
}

/// One Deployment being waited for.
struct Watcher<'a> {
    k: &'a Kube,
    api: Api<Deployment>,
    ns: &'a str,
    name: &'a str,
    what: String,
    allow_zero: bool,
    started: Instant,
    /// The progress line last logged (logged again only when it changes).
    shown: String,
    /// The last version seen, for the diagnosis if a re-read fails.
    last: Option<Deployment>,
}

impl Watcher<'_> {
    fn call<'b>(&'b self, what: &'b str, verb: &'b str) -> Call<'b> {
        Call {
            what,
            verb,
            resource: "deployments",
            ns: Some(self.ns),
        }
    }

    /// Read the Deployment; connection trouble and 5xx are retried on the
    /// one schedule (a few attempts within 10 s).
    async fn read(&self) -> Result<Deployment, PrimError> {
        let what = format!("read {}", self.what);
        let schedule = Schedule::within(Duration::from_secs(10))
            .delays(Duration::from_millis(200), Duration::from_secs(2))
            .attempts(4);
        retry(&what, &schedule, |_| async {
            match self.api.get(self.name).await {
                Ok(d) => Ok(d),
                Err(e) if is_status(&e, 404) => Err(PrimError::fatal(format!(
                    "there is no {}; check the name (`kubectl -n {} get deployments`) and that the install created it",
                    self.what, self.ns
                ))),
                Err(e) => Err(explain(self.k, &e, self.call(&what, "get"))),
            }
        })
        .await
    }

    /// Judge one version of the Deployment; log progress when it changed.
    fn step(&mut self, d: Deployment) -> Result<Option<Progress>, Stop> {
        let p = evaluate(&d, self.allow_zero)?;
        self.last = Some(d);
        if p.done {
            return Ok(Some(p));
        }
        if let Some(why) = &p.stalled {
            return Err(Stop::Stalled(why.clone()));
        }
        let line = p.line();
        if self.shown != line {
            let elapsed = self.started.elapsed();
            tracing::info!(
                namespace = %self.ns, deployment = %self.name, outcome = "waiting",
                elapsed_ms = elapsed.as_millis() as u64,
                "{}: {line} ({})", self.what, fmt_secs(elapsed)
            );
            self.shown = line;
        }
        Ok(None)
    }

    /// Read, then watch from that version until the server closes the
    /// watch; again, until done. The caller bounds it in time.
    async fn run(&mut self, timeout: Duration) -> Result<Progress, Stop> {
        for round in 0..10_000u32 {
            if round > 0 {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let d = self.read().await?;
            let rv = d.metadata.resource_version.clone().unwrap_or_default();
            if let Some(p) = self.step(d)? {
                return Ok(p);
            }
            let left = timeout.saturating_sub(self.started.elapsed());
            if let Some(p) = self.watch(&rv, left).await? {
                return Ok(p);
            }
        }
        Err(Stop::Failed(PrimError::fatal(format!(
            "{}: too many watch rounds",
            self.what
        ))))
    }

    /// One watch from `rv`: `Ok(None)` when it ends and a re-read is due.
    async fn watch(&mut self, rv: &str, left: Duration) -> Result<Option<Progress>, Stop> {
        let what = format!("watch {}", self.what);
        let wp = WatchParams::default()
            .fields(&format!("metadata.name={}", self.name))
            .timeout(left.as_secs().clamp(1, 290) as u32);
        let stream = match self.api.watch(&wp, rv).await {
            Ok(s) => s,
            Err(e) => return Err(explain(self.k, &e, self.call(&what, "watch")).into()),
        };
        let mut stream = stream.boxed();
        loop {
            match stream.try_next().await {
                Ok(Some(WatchEvent::Added(d))) | Ok(Some(WatchEvent::Modified(d))) => {
                    if let Some(p) = self.step(d)? {
                        return Ok(Some(p));
                    }
                }
                Ok(Some(WatchEvent::Deleted(_))) => {
                    return Err(PrimError::fatal(format!(
                        "{} was deleted while waiting for its rollout",
                        self.what
                    ))
                    .into())
                }
                Ok(Some(WatchEvent::Bookmark(_))) => {}
                // 410 Gone: the version is too old; read again.
                Ok(Some(WatchEvent::Error(e))) if e.code == 410 => return Ok(None),
                Ok(Some(WatchEvent::Error(e))) => {
                    return Err(
                        explain(self.k, &kube::Error::Api(e), self.call(&what, "watch")).into(),
                    )
                }
                Ok(None) => return Ok(None),
                // kube-rs hands a refused watch (403, 401, …) over as the
                // stream's first item, not as the call's error.
                Err(e @ kube::Error::Api(_)) if !is_status(&e, 410) => {
                    let err = explain(self.k, &e, self.call(&what, "watch"));
                    if !err.is_transient() {
                        return Err(err.into());
                    }
                    tracing::debug!("{}; reading again", err.msg);
                    return Ok(None);
                }
                Err(e) => {
                    tracing::debug!("{what} broke off: {e}; reading again");
                    return Ok(None);
                }
            }
        }
    }

    /// The error for a rollout that timed out or stalled: where it stands
    /// and which pods are not ready, and why.
    async fn stuck(&self, timeout: Duration, stalled: Option<String>) -> PrimError {
        let d = match self.api.get(self.name).await {
            Ok(d) => Some(d),
            Err(_) => self.last.clone(),
        };
        let (state, pods) = match &d {
            Some(d) => (
                evaluate(d, self.allow_zero)
                    .map(|p| p.line())
                    .unwrap_or_default(),
                diagnose(self.k, self.ns, d).await,
            ),
            None => ("never read".into(), String::new()),
        };
        let head = match stalled {
            Some(why) => format!(
                "{} stopped progressing after {} ({why}): {state}",
                self.what,
                fmt_secs(self.started.elapsed())
            ),
            None => format!(
                "{} did not roll out within {} (bound `timeout`): {state}",
                self.what,
                fmt_secs(timeout)
            ),
        };
        tracing::error!(namespace = %self.ns, deployment = %self.name, outcome = "not_ready", "{head}");
        PrimError::fatal(format!("{head}\n  {pods}"))
    }
}

/// Wait until Deployment `ns/name` has rolled out (see [`evaluate`]),
/// at most `timeout`; then say which pods are not ready and why.
pub async fn wait(
    k: &Kube,
    ns: &str,
    name: &str,
    timeout: Duration,
    allow_zero: bool,
) -> Result<Progress, PrimError> {
    let mut w = Watcher {
        k,
        api: Api::namespaced(k.client.clone(), ns),
        ns,
        name,
        what: format!("Deployment {ns}/{name}"),
        allow_zero,
        started: Instant::now(),
        shown: String::new(),
        last: None,
    };
    let stalled = match tokio::time::timeout(timeout, w.run(timeout)).await {
        Ok(Ok(p)) => {
            tracing::info!(
                namespace = %ns, deployment = %name, replicas = p.desired, ready = p.ready,
                elapsed_ms = w.started.elapsed().as_millis() as u64, outcome = "rolled_out",
                "{} rolled out: {}/{} available in {}", w.what, p.available, p.desired, fmt_secs(w.started.elapsed())
            );
            return Ok(p);
        }
        Ok(Err(Stop::Failed(e))) => return Err(e),
        Ok(Err(Stop::Stalled(why))) => Some(why),
        Err(_) => None,
    };
    Err(w.stuck(timeout, stalled).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(v: serde_json::Value) -> Deployment {
        serde_json::from_value(v).unwrap()
    }

    fn dep(
        generation: i64,
        observed: i64,
        replicas: i32,
        updated: i32,
        available: i32,
        total: i32,
    ) -> Deployment {
        deployment(json!({
            "metadata": {"name": "web", "generation": generation},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}}, "template": {}},
            "status": {"observedGeneration": observed, "updatedReplicas": updated,
                       "availableReplicas": available, "readyReplicas": available, "replicas": total}
        }))
    }

    #[test]
    fn done_needs_the_current_generation() {
        // A stale status that looks complete must not pass.
        assert!(!evaluate(&dep(3, 2, 2, 2, 2, 2), false).unwrap().done);
        assert!(evaluate(&dep(3, 3, 2, 2, 2, 2), false).unwrap().done);
    }

    #[test]
    fn done_needs_every_pod_updated_available_and_no_old_one() {
        assert!(!evaluate(&dep(1, 1, 2, 1, 2, 2), false).unwrap().done);
        assert!(!evaluate(&dep(1, 1, 2, 2, 1, 2), false).unwrap().done);
        assert!(!evaluate(&dep(1, 1, 2, 2, 2, 3), false).unwrap().done);
    }

    #[test]
    fn zero_replicas_do_not_pass_vacuously() {
        let e = evaluate(&dep(1, 1, 0, 0, 0, 0), false).unwrap_err();
        assert!(e.msg.contains("wants 0 replicas"), "{e}");
        assert!(evaluate(&dep(1, 1, 0, 0, 0, 0), true).unwrap().done);
        assert!(!evaluate(&dep(1, 1, 0, 0, 0, 1), true).unwrap().done);
    }

    #[test]
    fn max_unavailable_equal_to_replicas_still_counts_availability() {
        let d = deployment(json!({
            "metadata": {"name": "web", "generation": 2},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": {},
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}}},
            "status": {"observedGeneration": 2, "updatedReplicas": 2, "availableReplicas": 0, "replicas": 2,
                       "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]}
        }));
        assert!(!evaluate(&d, false).unwrap().done);
    }

    #[test]
    fn a_missing_replicas_field_means_one() {
        let d = deployment(
            json!({"metadata": {"name": "w", "generation": 1}, "spec": {"selector": {}, "template": {}},
            "status": {"observedGeneration": 1, "updatedReplicas": 1, "availableReplicas": 1, "replicas": 1}}),
        );
        let p = evaluate(&d, false).unwrap();
        assert_eq!(p.desired, 1);
        assert!(p.done);
    }

    #[test]
    fn progress_deadline_exceeded_is_reported() {
        let d = deployment(json!({
            "metadata": {"name": "web", "generation": 1},
            "spec": {"replicas": 1, "selector": {}, "template": {}},
            "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "unavailableReplicas": 1,
                       "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                                       "message": "ReplicaSet \"web-5d\" has timed out progressing."}]}
        }));
        assert!(evaluate(&d, false)
            .unwrap()
            .stalled
            .unwrap()
            .contains("timed out"));
    }

    #[test]
    fn paused_is_an_error() {
        let d = deployment(
            json!({"metadata": {"name": "w"}, "spec": {"paused": true, "selector": {}, "template": {}}}),
        );
        assert!(evaluate(&d, false)
            .unwrap_err()
            .msg
            .contains("rollout resume"));
    }

    #[test]
    fn progress_lines_say_what_is_left() {
        let p = evaluate(&dep(2, 1, 2, 0, 0, 2), false).unwrap();
        assert!(
            p.line().starts_with("waiting for the controller"),
            "{}",
            p.line()
        );
        let p = evaluate(&dep(1, 1, 2, 1, 1, 3), false).unwrap();
        assert_eq!(
            p.line(),
            "1/2 updated, 1/2 available, 1 ready, 2 old pod(s) terminating"
        );
    }
}
