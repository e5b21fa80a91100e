//! Kubernetes, through kube-rs: `kube_wait_rollout`, `kube_node_port`,
//! `kube_capacity`, `kube_server`, `kube_service_check`, and the quantity
//! helpers `kube_cpu` / `kube_memory`. The kubeconfig and context are found
//! as kubectl finds them (`KUBECONFIG`, `~/.kube/config`, the `context`
//! option like `--context`), by kube-rs's own config loading.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::api::{ListParams, WatchEvent, WatchParams};
use kube::config::KubeConfigOptions;
use kube::{Api, Client, Config};
use rhai::{Dynamic, Engine, FuncRegistration, Map};

use crate::context::{error, Ctx, RhaiResult};
use crate::error::fmt_secs;
use crate::primitives::http_check::{self, Probe, Retry};
use crate::primitives::Opts;

/// A failed Kubernetes call: `transient` ones are worth retrying.
#[derive(Debug)]
pub struct KubeErr {
    /// Connection errors, 5xx, 429.
    pub transient: bool,
    /// What happened and what to do.
    pub msg: String,
}

impl From<KubeErr> for crate::error::PrimError {
    fn from(e: KubeErr) -> Self {
        if e.transient {
            crate::error::PrimError::transient(e.msg)
        } else {
            crate::error::PrimError::fatal(e.msg)
        }
    }
}

impl From<KubeErr> for String {
    fn from(e: KubeErr) -> String {
        e.msg
    }
}

/// A client for one context, with the server it talks to.
pub struct Kube {
    /// The kube-rs client.
    pub client: Client,
    /// The API server URL.
    pub server: String,
    /// The API server's host (an IP address or a name, no port).
    pub host: String,
    /// The context, as given (or "the current context").
    pub context: String,
}

/// Clients already made in this process, by context: a run has one tokio
/// runtime and one kubeconfig, so they are reused (one connection pool,
/// the kubeconfig read once).
static CLIENTS: std::sync::Mutex<Vec<(Option<String>, Arc<Kube>)>> =
    std::sync::Mutex::new(Vec::new());

/// Connect as kubectl would: `context` like `--context`, else the current
/// context of `KUBECONFIG` / `~/.kube/config`, else in-cluster.
pub async fn connect(context: Option<&str>) -> Result<Arc<Kube>, KubeErr> {
    let key = context.map(str::to_string);
    if let Some((_, k)) = CLIENTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|(c, _)| *c == key)
    {
        return Ok(k.clone());
    }
    let k = Arc::new(connect_new(context).await?);
    CLIENTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((key, k.clone()));
    Ok(k)
}

async fn connect_new(context: Option<&str>) -> Result<Kube, KubeErr> {
    let cfg = match context {
        Some(c) => Config::from_kubeconfig(&KubeConfigOptions {
            context: Some(c.to_string()),
            ..KubeConfigOptions::default()
        })
        .await
        .map_err(|e| KubeErr {
            transient: false,
            msg: format!(
                "kube: cannot load the kube context '{c}' ({e}); check `kubectl config get-contexts` (KUBECONFIG={})",
                std::env::var("KUBECONFIG").unwrap_or_else(|_| "~/.kube/config".into())
            ),
        })?,
        None => Config::infer().await.map_err(|e| KubeErr {
            transient: false,
            msg: format!(
                "kube: no kubeconfig to use ({e}); set KUBECONFIG or start the cluster (`minikube start` writes ~/.kube/config)"
            ),
        })?,
    };
    let mut cfg = cfg;
    // Bounded connects: a dead API server answers quickly or not at all.
    cfg.connect_timeout = Some(Duration::from_secs(5));
    let server = cfg
        .cluster_url
        .to_string()
        .trim_end_matches('/')
        .to_string();
    let host = cfg
        .cluster_url
        .host()
        .unwrap_or("")
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let client = Client::try_from(cfg).map_err(|e| KubeErr {
        transient: false,
        msg: format!("kube: cannot build a client for {server}: {e}"),
    })?;
    Ok(Kube {
        client,
        server,
        host,
        context: context.map_or_else(
            || "the current context".into(),
            |c| format!("context '{c}'"),
        ),
    })
}

fn chain(e: &dyn std::error::Error) -> (String, bool) {
    let mut text = e.to_string();
    let mut refused = false;
    let mut src = e.source();
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            refused |= io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        let t = s.to_string();
        if !text.contains(&t) {
            text = format!("{text}: {t}");
        }
        src = s.source();
    }
    refused |= text.to_lowercase().contains("connection refused");
    (text, refused)
}

/// Explain a kube-rs error: `what` is the call ("watch Deployment ns/x"),
/// `verb` and `resource` feed the RBAC hint.
pub fn explain(
    k: &Kube,
    e: &kube::Error,
    what: &str,
    verb: &str,
    resource: &str,
    ns: Option<&str>,
) -> KubeErr {
    let ns_flag = ns.map(|n| format!(" -n {n}")).unwrap_or_default();
    match e {
        kube::Error::Api(resp) => {
            let detail = if resp.message.is_empty() {
                resp.reason.clone()
            } else {
                resp.message.clone()
            };
            let msg = match resp.code {
                403 => format!(
                    "{what}: forbidden (403) by {}: {detail}. The user of {} lacks the RBAC permission to {verb} {resource}: bind it a Role or ClusterRole that allows it (check with `kubectl auth can-i {verb} {resource}{ns_flag}`), or use a context that has it (`context` option / --context)",
                    k.server, k.context
                ),
                401 => format!(
                    "{what}: unauthorized (401) by {}: {detail}. The credentials of {} were refused: refresh them (for Minikube: `minikube update-context`)",
                    k.server, k.context
                ),
                404 => format!("{what}: not found (404): {detail}"),
                code => format!("{what}: the API server {} answered {code} {}: {detail}", k.server, resp.reason),
            };
            KubeErr {
                transient: resp.code >= 500 || resp.code == 429,
                msg,
            }
        }
        other => {
            let (text, refused) = chain(other);
            let msg = if refused {
                format!(
                    "{what}: cannot reach the Kubernetes API at {} (connection refused). Is the cluster running? (`minikube status`; start it with `minikube start`) Does {} point at it? (`kubectl config current-context`, the `context` option)",
                    k.server, k.context
                )
            } else {
                format!(
                    "{what}: cannot talk to the Kubernetes API at {}: {text}",
                    k.server
                )
            };
            KubeErr {
                // Connection-level trouble may pass; bad config, TLS or
                // credentials will not, so fail at once with the reason.
                transient: matches!(
                    other,
                    kube::Error::HyperError(_)
                        | kube::Error::Service(_)
                        | kube::Error::ReadEvents(_)
                ),
                msg,
            }
        }
    }
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(r) if r.code == code)
}

// ---- rollout ----------------------------------------------------------------

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
pub fn evaluate(d: &Deployment, allow_zero: bool) -> Result<Progress, String> {
    let name = d.metadata.name.as_deref().unwrap_or("?");
    let spec = d.spec.as_ref();
    let desired = spec.and_then(|s| s.replicas).unwrap_or(1);
    if spec.and_then(|s| s.paused) == Some(true) {
        return Err(format!(
            "Deployment {name} is paused, so its rollout cannot finish; resume it with `kubectl rollout resume deployment/{name}`"
        ));
    }
    if desired == 0 && !allow_zero {
        return Err(format!(
            "Deployment {name} wants 0 replicas: there is nothing to roll out and nothing would serve; scale it up (replicaCount in the chart's values) or pass `allow_zero: true` if it is meant to be off"
        ));
    }
    let st = d.status.clone().unwrap_or_default();
    let generation = d.metadata.generation.unwrap_or(0);
    let observed = st.observed_generation.unwrap_or(-1) >= generation;
    let p = Progress {
        desired,
        updated: st.updated_replicas.unwrap_or(0),
        available: st.available_replicas.unwrap_or(0),
        ready: st.ready_replicas.unwrap_or(0),
        total: st.replicas.unwrap_or(0),
        observed,
        done: false,
        stalled: None,
    };
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
    let done = observed && p.updated == desired && p.available == desired && p.total == desired;
    Ok(Progress {
        done,
        stalled: if observed && !done { stalled } else { None },
        ..p
    })
}

/// Why each not-ready pod of a Deployment is not ready.
pub fn pod_problems(pods: &[Pod]) -> Vec<String> {
    let mut out = Vec::new();
    for pod in pods {
        let name = pod.metadata.name.as_deref().unwrap_or("?");
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let st = pod.status.clone().unwrap_or_default();
        let ready = st
            .conditions
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        if ready {
            continue;
        }
        let phase = st.phase.clone().unwrap_or_else(|| "Unknown".into());
        let mut why = Vec::new();
        let statuses = st
            .init_container_statuses
            .iter()
            .flatten()
            .map(|s| (s, true))
            .chain(st.container_statuses.iter().flatten().map(|s| (s, false)));
        for (cs, init) in statuses {
            let kind = if init { "init container" } else { "container" };
            let state = cs.state.clone().unwrap_or_default();
            if let Some(w) = state.waiting {
                let reason = w.reason.unwrap_or_else(|| "Waiting".into());
                let msg = w.message.map(|m| format!(" ({m})")).unwrap_or_default();
                why.push(format!(
                    "{kind} {} waiting: {reason}{msg}{}",
                    cs.name,
                    hint(&reason, name, &cs.name)
                ));
            } else if let Some(t) = state.terminated {
                if !(init && t.exit_code == 0) {
                    why.push(format!(
                        "{kind} {} terminated: {} (exit {})",
                        cs.name,
                        t.reason.unwrap_or_else(|| "Error".into()),
                        t.exit_code
                    ));
                }
            } else if !cs.ready && !init {
                let restarts = if cs.restart_count > 0 {
                    format!(", {} restart(s)", cs.restart_count)
                } else {
                    String::new()
                };
                why.push(format!(
                    "container {} running but not ready (readiness probe failing{restarts})",
                    cs.name
                ));
            }
        }
        if why.is_empty() {
            if let Some(c) = st
                .conditions
                .as_deref()
                .unwrap_or_default()
                .iter()
                .find(|c| c.type_ == "PodScheduled" && c.status == "False")
            {
                why.push(format!(
                    "not scheduled: {} ({}){}",
                    c.reason.as_deref().unwrap_or("Unschedulable"),
                    c.message.as_deref().unwrap_or(""),
                    " — free capacity or lower the chart's requests"
                ));
            } else {
                why.push("no container status yet".into());
            }
        }
        out.push(format!("pod {name} ({phase}): {}", why.join("; ")));
    }
    out
}

fn hint(reason: &str, pod: &str, container: &str) -> String {
    match reason {
        "ImagePullBackOff" | "ErrImagePull" | "InvalidImageName" => " — the image cannot be pulled: check that the tag exists, or build it and load it with `minikube image load IMAGE`".into(),
        "CrashLoopBackOff" => format!(" — the container keeps exiting: see `kubectl logs {pod} -c {container} --previous`"),
        "CreateContainerConfigError" => format!(" — a ConfigMap or Secret it needs is missing: see `kubectl describe pod {pod}`"),
        _ => String::new(),
    }
}

fn selector_of(d: &Deployment) -> Option<String> {
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

async fn diagnose(k: &Kube, ns: &str, d: &Deployment) -> String {
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
        Ok(Err(e)) => format!(
            "(cannot list its pods: {})",
            explain(
                k,
                &e,
                &format!("list pods -l {sel}"),
                "list",
                "pods",
                Some(ns)
            )
            .msg
        ),
        Ok(Ok(list)) => {
            let problems = pod_problems(&list.items);
            if list.items.is_empty() {
                format!("no pod matches {sel}: something blocks pod creation (quota, admission); see `kubectl -n {ns} describe replicaset -l {sel}`")
            } else if problems.is_empty() {
                "every pod is ready; the rollout is still settling (old pods terminating)".into()
            } else {
                problems.join("\n  ")
            }
        }
    }
}

/// Options of `kube_wait_rollout`.
const ROLLOUT_KEYS: &[&str] = &["timeout", "context", "allow_zero"];

fn wait_rollout(ctx: &Arc<Ctx>, ns: &str, name: &str, opts: &Map) -> RhaiResult<Map> {
    let o = Opts::new("kube_wait_rollout", opts, ROLLOUT_KEYS)?;
    let timeout = o.duration("timeout")?.unwrap_or(Duration::from_secs(120));
    let context = o.str("context")?;
    let allow_zero = o.bool("allow_zero")?.unwrap_or(false);
    check_name("kube_wait_rollout", "namespace", ns)?;
    check_name("kube_wait_rollout", "deployment", name)?;
    let (ns, name) = (ns.to_string(), name.to_string());
    let started = Instant::now();
    // The wait bounds itself and then diagnoses (≤ 10 s); the outer bound is a backstop.
    let p = ctx.block_on(
        "kube_wait_rollout",
        timeout + Duration::from_secs(20),
        async move {
            let k = connect(context.as_deref()).await?;
            rollout(&k, &ns, &name, timeout, allow_zero).await
        },
    )?;
    let mut m = Map::new();
    m.insert("ready".into(), Dynamic::from(i64::from(p.ready)));
    m.insert("replicas".into(), Dynamic::from(i64::from(p.desired)));
    m.insert(
        "elapsed".into(),
        Dynamic::from(started.elapsed().as_secs_f64() as rhai::FLOAT),
    );
    Ok(m)
}

async fn rollout(
    k: &Kube,
    ns: &str,
    name: &str,
    timeout: Duration,
    allow_zero: bool,
) -> Result<Progress, String> {
    let api: Api<Deployment> = Api::namespaced(k.client.clone(), ns);
    let started = Instant::now();
    let what = format!("Deployment {ns}/{name}");
    let mut last: Option<Deployment> = None;
    let mut shown = String::new();
    let watched = tokio::time::timeout(timeout, async {
        // Each round: read, then watch from that version until the server
        // closes the watch; bounded by the timeout around it, and by count.
        for round in 0..10_000u32 {
            if round > 0 {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let d = match api.get(name).await {
                Ok(d) => d,
                Err(e) if is_status(&e, 404) => {
                    return Err(format!(
                        "kube_wait_rollout: there is no {what}; check the name (`kubectl -n {ns} get deployments`) and that the install created it"
                    ))
                }
                Err(e) => {
                    let ke = explain(k, &e, &format!("kube_wait_rollout: read {what}"), "get", "deployments", Some(ns));
                    if ke.transient && round < 3 {
                        tracing::warn!(primitive = "kube_wait_rollout", "{}", ke.msg);
                        continue;
                    }
                    return Err(ke.msg);
                }
            };
            if let Some(p) = step(&what, &d, allow_zero, &mut shown, started)? {
                return Ok(p);
            }
            let rv = d.metadata.resource_version.clone().unwrap_or_default();
            last = Some(d);
            let left = timeout.saturating_sub(started.elapsed()).as_secs().clamp(1, 290) as u32;
            let wp = WatchParams::default()
                .fields(&format!("metadata.name={name}"))
                .timeout(left);
            let stream = match api.watch(&wp, &rv).await {
                Ok(s) => s,
                Err(e) => {
                    return Err(explain(k, &e, &format!("kube_wait_rollout: watch {what}"), "watch", "deployments", Some(ns)).msg)
                }
            };
            let mut stream = stream.boxed();
            loop {
                match stream.try_next().await {
                    Ok(Some(WatchEvent::Added(d))) | Ok(Some(WatchEvent::Modified(d))) => {
                        if let Some(p) = step(&what, &d, allow_zero, &mut shown, started)? {
                            return Ok(p);
                        }
                        last = Some(d);
                    }
                    Ok(Some(WatchEvent::Deleted(_))) => {
                        return Err(format!(
                            "kube_wait_rollout: {what} was deleted while waiting for its rollout"
                        ))
                    }
                    Ok(Some(WatchEvent::Bookmark(_))) => {}
                    // 410 Gone: the version is too old; read again.
                    Ok(Some(WatchEvent::Error(e))) if e.code == 410 => break,
                    Ok(Some(WatchEvent::Error(e))) => {
                        let ke = explain(k, &kube::Error::Api(e), &format!("kube_wait_rollout: watch {what}"), "watch", "deployments", Some(ns));
                        return Err(ke.msg);
                    }
                    Ok(None) => break,
                    // kube-rs hands a refused watch (403, 401, …) over as the
                    // stream's first item, not as the call's error.
                    Err(e @ kube::Error::Api(_)) if !is_status(&e, 410) => {
                        let ke = explain(
                            k,
                            &e,
                            &format!("kube_wait_rollout: watch {what}"),
                            "watch",
                            "deployments",
                            Some(ns),
                        );
                        if !ke.transient {
                            return Err(ke.msg);
                        }
                        tracing::debug!("{}; reading again", ke.msg);
                        break;
                    }
                    Err(e) => {
                        tracing::debug!("watch of {what} broke off: {e}; reading again");
                        break;
                    }
                }
            }
        }
        Err(format!("kube_wait_rollout: {what}: too many watch rounds"))
    })
    .await;
    let stuck = match watched {
        Ok(Ok(p)) => {
            tracing::info!(
                primitive = "kube_wait_rollout", namespace = %ns, deployment = %name,
                replicas = p.desired, ready = p.ready,
                elapsed_ms = started.elapsed().as_millis() as u64, outcome = "rolled_out",
                "{what} rolled out: {}/{} available in {}", p.available, p.desired, fmt_secs(started.elapsed())
            );
            return Ok(p);
        }
        Ok(Err(msg)) => {
            if !msg.starts_with("stalled:") {
                return Err(msg);
            }
            msg
        }
        Err(_) => String::new(),
    };
    // Timed out, or the controller gave up: say which pods and why.
    let d = match api.get(name).await {
        Ok(d) => Some(d),
        Err(_) => last,
    };
    let (state, pods) = match &d {
        Some(d) => (
            evaluate(d, allow_zero)
                .map(|p| p.line())
                .unwrap_or_default(),
            diagnose(k, ns, d).await,
        ),
        None => ("never read".into(), String::new()),
    };
    let head = if let Some(why) = stuck.strip_prefix("stalled:") {
        format!(
            "kube_wait_rollout: {what} stopped progressing after {} ({why}): {state}",
            fmt_secs(started.elapsed())
        )
    } else {
        format!(
            "kube_wait_rollout: {what} did not roll out within {} (bound `timeout`): {state}",
            fmt_secs(timeout)
        )
    };
    tracing::error!(primitive = "kube_wait_rollout", namespace = %ns, deployment = %name, outcome = "not_ready", "{head}");
    Err(format!("{head}\n  {pods}"))
}

/// Judge one version of the Deployment; log progress when it changed.
fn step(
    what: &str,
    d: &Deployment,
    allow_zero: bool,
    shown: &mut String,
    started: Instant,
) -> Result<Option<Progress>, String> {
    let p = evaluate(d, allow_zero).map_err(|e| format!("kube_wait_rollout: {e}"))?;
    if p.done {
        return Ok(Some(p));
    }
    if let Some(why) = &p.stalled {
        return Err(format!("stalled:{why}"));
    }
    let line = p.line();
    if *shown != line {
        tracing::info!(
            primitive = "kube_wait_rollout",
            outcome = "waiting",
            elapsed_ms = started.elapsed().as_millis() as u64,
            "{what}: {line} ({})",
            fmt_secs(started.elapsed())
        );
        *shown = line;
    }
    Ok(None)
}

// ---- services ----------------------------------------------------------------

/// Which service port to look at: its number or its name.
#[derive(Clone, Debug)]
pub enum PortRef {
    /// `spec.ports[].port`.
    Number(i32),
    /// `spec.ports[].name`.
    Name(String),
}

impl std::fmt::Display for PortRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortRef::Number(n) => write!(f, "{n}"),
            PortRef::Name(s) => write!(f, "'{s}'"),
        }
    }
}

/// The NodePort of a Service's port: `Ok(None)` while it has none yet.
pub fn node_port_of(svc: &Service, port: &PortRef) -> Result<Option<u16>, String> {
    let name = svc.metadata.name.as_deref().unwrap_or("?");
    let spec = svc.spec.clone().unwrap_or_default();
    let ports = spec.ports.unwrap_or_default();
    let found = ports.iter().find(|p| match port {
        PortRef::Number(n) => p.port == *n,
        PortRef::Name(s) => p.name.as_deref() == Some(s.as_str()),
    });
    let Some(p) = found else {
        let have: Vec<String> = ports
            .iter()
            .map(|p| match &p.name {
                Some(n) => format!("{} ({n})", p.port),
                None => p.port.to_string(),
            })
            .collect();
        return Err(format!(
            "Service {name} has no port {port}; it has: {}",
            if have.is_empty() {
                "none".into()
            } else {
                have.join(", ")
            }
        ));
    };
    let ty = spec.type_.unwrap_or_else(|| "ClusterIP".into());
    if ty != "NodePort" && ty != "LoadBalancer" {
        return Err(format!(
            "Service {name} is of type {ty}, which has no node port; make it NodePort (the chart's frontend.service.type)"
        ));
    }
    match p.node_port {
        Some(n) if (1..=65535).contains(&n) => Ok(Some(n as u16)),
        _ => Ok(None),
    }
}

async fn get_service(k: &Kube, ns: &str, svc: &str) -> Result<Option<Service>, KubeErr> {
    let api: Api<Service> = Api::namespaced(k.client.clone(), ns);
    match api.get(svc).await {
        Ok(s) => Ok(Some(s)),
        Err(e) if is_status(&e, 404) => Ok(None),
        Err(e) => Err(explain(
            k,
            &e,
            &format!("read Service {ns}/{svc}"),
            "get",
            "services",
            Some(ns),
        )),
    }
}

/// One look for the `kube` source of `discover_port`: `Ok(Some("host:port"))`
/// when the Service has its node port, `Ok(None)` while it (or the port)
/// is not there yet. The host is `node` or the context's API server host.
pub async fn discover_probe(
    context: Option<&str>,
    ns: &str,
    svc: &str,
    port: &PortRef,
    node: Option<&str>,
) -> Result<Result<String, String>, KubeErr> {
    let k = connect(context).await?;
    let Some(s) = get_service(&k, ns, svc).await? else {
        return Ok(Err(format!("Service {ns}/{svc} does not exist yet")));
    };
    match node_port_of(&s, port) {
        Ok(Some(np)) => {
            let host = node.map(str::to_string).unwrap_or_else(|| k.host.clone());
            Ok(Ok(join_host_port(&host, np)))
        }
        Ok(None) => Ok(Err(format!(
            "Service {ns}/{svc} has no node port for {port} yet"
        ))),
        Err(e) => Err(KubeErr {
            transient: false,
            msg: e,
        }),
    }
}

fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Validate a node endpoint `host:port`: the host is an IP address (node
/// addresses usually are) or a name by `validate_endpoint`'s rules; the
/// port 1024–65535.
pub fn validate_node_endpoint(raw: &str) -> Result<String, String> {
    let (host, port) = match raw.rsplit_once(':') {
        Some((h, p)) => (h.trim_start_matches('[').trim_end_matches(']'), p),
        None => return Err(format!("'{raw}' is not host:port")),
    };
    let port = crate::primitives::validate_endpoint::validate_port(port)?;
    if host.parse::<std::net::IpAddr>().is_err() {
        crate::primitives::validate_endpoint::validate_host(host)?;
    }
    Ok(join_host_port(host, port))
}

fn read_port(prim: &str, v: &Dynamic) -> RhaiResult<PortRef> {
    if let Ok(i) = v.as_int() {
        if (1..=65535).contains(&i) {
            return Ok(PortRef::Number(i as i32));
        }
        return Err(error(format!("{prim}: port {i} is not a port (1–65535)")));
    }
    if v.is_string() {
        let s = v.to_string();
        if let Ok(i) = s.parse::<i64>() {
            return read_port(prim, &Dynamic::from(i));
        }
        if !s.is_empty() {
            return Ok(PortRef::Name(s));
        }
    }
    Err(error(format!(
        "{prim}: the port wants the Service's port number (e.g. 3000) or its name, got {} ({v})",
        v.type_name()
    )))
}

/// Read the `kube` source map of `discover_port`:
/// `#{namespace, service, port?, node?, context?}`.
pub fn read_source(m: &Map) -> RhaiResult<KubeSource> {
    let o = Opts::new(
        "discover_port kube source",
        m,
        &["namespace", "service", "port", "node", "context"],
    )?;
    let namespace = o.str("namespace")?.unwrap_or_else(|| "default".into());
    let service = o.req_str("service")?;
    check_name("discover_port", "namespace", &namespace)?;
    check_name("discover_port", "service", &service)?;
    let port = match o.raw("port") {
        Some(v) => Some(read_port("discover_port", v)?),
        None => None,
    };
    Ok(KubeSource {
        namespace,
        service,
        port,
        node: o.str("node")?.filter(|s| !s.trim().is_empty()),
        context: o.str("context")?,
    })
}

/// The `kube` source of `discover_port`.
#[derive(Clone, Debug)]
pub struct KubeSource {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service.
    pub service: String,
    /// Its port (default: `internal_port`).
    pub port: Option<PortRef>,
    /// The node address to pair with the node port.
    pub node: Option<String>,
    /// The kube context.
    pub context: Option<String>,
}

fn node_port(ctx: &Arc<Ctx>, ns: &str, svc: &str, port: &Dynamic, opts: &Map) -> RhaiResult<i64> {
    let o = Opts::new("kube_node_port", opts, &["context", "timeout"])?;
    let context = o.str("context")?;
    let timeout = o.duration("timeout")?.unwrap_or(Duration::from_secs(30));
    check_name("kube_node_port", "namespace", ns)?;
    check_name("kube_node_port", "service", svc)?;
    let port = read_port("kube_node_port", port)?;
    let (ns, svc) = (ns.to_string(), svc.to_string());
    let np = ctx.block_on("kube_node_port", timeout, async move {
        let k = connect(context.as_deref()).await?;
        let s = get_service(&k, &ns, &svc).await?.ok_or_else(|| {
            format!("kube_node_port: there is no Service {ns}/{svc}; check the name (`kubectl -n {ns} get services`)")
        })?;
        match node_port_of(&s, &port) {
            Ok(Some(n)) => Ok((n, ns, svc)),
            Ok(None) => Err(format!("kube_node_port: Service {ns}/{svc} has no node port for {port} (yet); use discover_port with a kube source to wait for it")),
            Err(e) => Err(format!("kube_node_port: {e}")),
        }
    })?;
    tracing::info!(primitive = "kube_node_port", namespace = %np.1, service = %np.2, node_port = np.0, "Service {}/{} has node port {}", np.1, np.2, np.0);
    Ok(i64::from(np.0))
}

// ---- capacity ----------------------------------------------------------------

/// Parse a Kubernetes quantity ("250m", "1.5", "256Mi", "1e3", "2G") into
/// base units (cores, bytes).
pub fn parse_quantity(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q
        .find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let (num, exp) = match num.find(['e', 'E']) {
        Some(i) if suffix.is_empty() => (&num[..i], num[i + 1..].parse::<i32>().ok()?),
        _ => (num, 0),
    };
    let n: f64 = num.parse().ok()?;
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let mult = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0f64.powi(2),
        "Gi" => 1024.0f64.powi(3),
        "Ti" => 1024.0f64.powi(4),
        "Pi" => 1024.0f64.powi(5),
        "Ei" => 1024.0f64.powi(6),
        _ => return None,
    };
    Some(n * mult * 10f64.powi(exp))
}

/// CPU quantity to millicores (rounded up).
pub fn cpu_millis(q: &str) -> Option<i64> {
    parse_quantity(q).map(|c| (c * 1000.0 - 1e-9).ceil() as i64)
}

/// Memory quantity to bytes (rounded up).
pub fn memory_bytes(q: &str) -> Option<i64> {
    parse_quantity(q).map(|b| (b - 1e-9).ceil() as i64)
}

/// CPU (millicores) and memory (bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Res {
    /// Millicores.
    pub cpu: i64,
    /// Bytes.
    pub memory: i64,
}

impl Res {
    fn add(self, o: Res) -> Res {
        Res {
            cpu: self.cpu.saturating_add(o.cpu),
            memory: self.memory.saturating_add(o.memory),
        }
    }
    fn max(self, o: Res) -> Res {
        Res {
            cpu: self.cpu.max(o.cpu),
            memory: self.memory.max(o.memory),
        }
    }
    fn sub(self, o: Res) -> Res {
        Res {
            cpu: (self.cpu - o.cpu).max(0),
            memory: (self.memory - o.memory).max(0),
        }
    }
    fn to_map(self) -> Map {
        let mut m = Map::new();
        m.insert("cpu".into(), Dynamic::from(self.cpu));
        m.insert("memory".into(), Dynamic::from(self.memory));
        m
    }
}

fn res_of(
    map: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
) -> Res {
    let get = |k: &str| map.and_then(|m| m.get(k)).map(|q| q.0.as_str());
    Res {
        cpu: get("cpu").and_then(cpu_millis).unwrap_or(0),
        memory: get("memory").and_then(memory_bytes).unwrap_or(0),
    }
}

/// What a pod asks the scheduler for: the sum over its containers, or the
/// largest init container if that is more, plus the pod overhead.
pub fn pod_requests(pod: &Pod) -> Res {
    let Some(spec) = &pod.spec else {
        return Res::default();
    };
    let main = spec.containers.iter().fold(Res::default(), |acc, c| {
        acc.add(res_of(
            c.resources.as_ref().and_then(|r| r.requests.as_ref()),
        ))
    });
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .fold(Res::default(), |acc, c| {
            acc.max(res_of(
                c.resources.as_ref().and_then(|r| r.requests.as_ref()),
            ))
        });
    main.max(init).add(res_of(spec.overhead.as_ref()))
}

fn labels_match(pod: &Pod, selector: &str) -> bool {
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    selector
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .all(|kv| match kv.split_once('=') {
            Some((k, v)) => labels.get(k.trim()).map(String::as_str) == Some(v.trim()),
            None => labels.contains_key(kv.trim()),
        })
}

/// A node's capacity for new pods.
#[derive(Clone, Debug)]
pub struct NodeRoom {
    /// Node name.
    pub name: String,
    /// Ready and schedulable.
    pub usable: bool,
    /// `status.allocatable`.
    pub allocatable: Res,
    /// Requests of the pods on it (not terminated, not excluded).
    pub requested: Res,
}

/// Work out each node's room: allocatable minus the requests of the pods
/// bound to it. Pods in `exclude` (namespace, label selector) are left out
/// (the release's own pods, which an upgrade replaces).
pub fn rooms(nodes: &[Node], pods: &[Pod], exclude: Option<(&str, &str)>) -> Vec<NodeRoom> {
    let mut out: Vec<NodeRoom> = nodes
        .iter()
        .map(|n| {
            let st = n.status.clone().unwrap_or_default();
            let ready = st
                .conditions
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            let unschedulable = n.spec.as_ref().and_then(|s| s.unschedulable) == Some(true);
            NodeRoom {
                name: n.metadata.name.clone().unwrap_or_default(),
                usable: ready && !unschedulable,
                allocatable: res_of(st.allocatable.as_ref()),
                requested: Res::default(),
            }
        })
        .collect();
    for pod in pods {
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded") | Some("Failed")) {
            continue;
        }
        if let Some((ns, sel)) = exclude {
            if pod.metadata.namespace.as_deref() == Some(ns) && labels_match(pod, sel) {
                continue;
            }
        }
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) else {
            continue;
        };
        if let Some(r) = out.iter_mut().find(|r| r.name == node) {
            r.requested = r.requested.add(pod_requests(pod));
        }
    }
    out
}

const CAPACITY_KEYS: &[&str] = &["context", "timeout", "exclude"];

fn capacity(ctx: &Arc<Ctx>, opts: &Map) -> RhaiResult<Map> {
    let o = Opts::new("kube_capacity", opts, CAPACITY_KEYS)?;
    let context = o.str("context")?;
    let timeout = o.duration("timeout")?.unwrap_or(Duration::from_secs(30));
    let exclude = match o.map("exclude")? {
        Some(m) => {
            let eo = Opts::new("kube_capacity exclude", &m, &["namespace", "selector"])?;
            Some((eo.req_str("namespace")?, eo.req_str("selector")?))
        }
        None => None,
    };
    let rooms = ctx.block_on("kube_capacity", timeout, async move {
        let k = connect(context.as_deref()).await?;
        let nodes = Api::<Node>::all(k.client.clone())
            .list(&ListParams::default())
            .await
            .map_err(|e| explain(&k, &e, "kube_capacity: list nodes", "list", "nodes", None).msg)?;
        let pods = Api::<Pod>::all(k.client.clone())
            .list(&ListParams::default().fields("status.phase!=Succeeded,status.phase!=Failed"))
            .await
            .map_err(|e| {
                explain(
                    &k,
                    &e,
                    "kube_capacity: list pods in all namespaces",
                    "list",
                    "pods",
                    None,
                )
                .msg
            })?;
        Ok::<_, String>(rooms(
            &nodes.items,
            &pods.items,
            exclude.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
        ))
    })?;
    let mut total_alloc = Res::default();
    let mut total_req = Res::default();
    let mut total_free = Res::default();
    let mut largest = Res::default();
    let mut list = rhai::Array::new();
    for r in &rooms {
        let free = r.allocatable.sub(r.requested);
        let mut m = Map::new();
        m.insert("name".into(), Dynamic::from(r.name.clone()));
        m.insert("usable".into(), Dynamic::from(r.usable));
        m.insert("allocatable".into(), Dynamic::from(r.allocatable.to_map()));
        m.insert("requested".into(), Dynamic::from(r.requested.to_map()));
        m.insert("free".into(), Dynamic::from(free.to_map()));
        list.push(Dynamic::from(m));
        if r.usable {
            total_alloc = total_alloc.add(r.allocatable);
            total_req = total_req.add(r.requested);
            total_free = total_free.add(free);
            largest = largest.max(free);
        }
    }
    tracing::info!(
        primitive = "kube_capacity",
        nodes = rooms.len(),
        free_cpu_m = total_free.cpu,
        free_memory = total_free.memory,
        "{} node(s), {} usable: {}m CPU and {} MiB free for new pods",
        rooms.len(),
        rooms.iter().filter(|r| r.usable).count(),
        total_free.cpu,
        total_free.memory / (1024 * 1024)
    );
    let mut m = Map::new();
    m.insert("nodes".into(), Dynamic::from(list));
    m.insert("allocatable".into(), Dynamic::from(total_alloc.to_map()));
    m.insert("requested".into(), Dynamic::from(total_req.to_map()));
    m.insert("free".into(), Dynamic::from(total_free.to_map()));
    m.insert("largest_free".into(), Dynamic::from(largest.to_map()));
    Ok(m)
}

// ---- server, service check -----------------------------------------------------

fn deployments(ctx: &Arc<Ctx>, ns: &str, opts: &Map) -> RhaiResult<rhai::Array> {
    let o = Opts::new(
        "kube_deployments",
        opts,
        &["selector", "context", "timeout"],
    )?;
    let context = o.str("context")?;
    let selector = o.str("selector")?.unwrap_or_default();
    let timeout = o.duration("timeout")?.unwrap_or(Duration::from_secs(30));
    check_name("kube_deployments", "namespace", ns)?;
    let ns = ns.to_string();
    let names = ctx.block_on("kube_deployments", timeout, async move {
        let k = connect(context.as_deref()).await?;
        let api: Api<Deployment> = Api::namespaced(k.client.clone(), &ns);
        let mut lp = ListParams::default();
        if !selector.is_empty() {
            lp = lp.labels(&selector);
        }
        let list = api.list(&lp).await.map_err(|e| {
            explain(&k, &e, &format!("kube_deployments: list deployments in {ns}"), "list", "deployments", Some(&ns)).msg
        })?;
        let mut names: Vec<String> = list.items.into_iter().filter_map(|d| d.metadata.name).collect();
        names.sort();
        tracing::info!(primitive = "kube_deployments", namespace = %ns, selector = %selector, count = names.len(), "{} Deployment(s) in {ns}: {}", names.len(), names.join(", "));
        Ok::<_, String>(names)
    })?;
    Ok(names.into_iter().map(Dynamic::from).collect())
}

fn server(ctx: &Arc<Ctx>, opts: &Map) -> RhaiResult<Map> {
    let o = Opts::new("kube_server", opts, &["context", "timeout"])?;
    let context = o.str("context")?;
    let timeout = o.duration("timeout")?.unwrap_or(Duration::from_secs(15));
    let (url, host, info) = ctx.block_on("kube_server", timeout, async move {
        let k = connect(context.as_deref()).await?;
        let info = k.client.apiserver_version().await.map_err(|e| {
            explain(
                &k,
                &e,
                "kube_server: GET /version",
                "get",
                "the /version endpoint",
                None,
            )
            .msg
        })?;
        Ok::<_, String>((k.server.clone(), k.host.clone(), info))
    })?;
    let digits = |s: &str| {
        s.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<i64>()
            .unwrap_or(0)
    };
    let mut m = Map::new();
    m.insert("server".into(), Dynamic::from(url.clone()));
    m.insert("host".into(), Dynamic::from(host));
    m.insert("version".into(), Dynamic::from(info.git_version.clone()));
    m.insert("major".into(), Dynamic::from(digits(&info.major)));
    m.insert("minor".into(), Dynamic::from(digits(&info.minor)));
    tracing::info!(primitive = "kube_server", server = %url, version = %info.git_version, "Kubernetes API at {url} answers: {}", info.git_version);
    Ok(m)
}

fn service_check(
    ctx: &Arc<Ctx>,
    ns: &str,
    svc: &str,
    port: &Dynamic,
    path: &str,
    opts: &Map,
) -> RhaiResult<Map> {
    let mut keys: Vec<&str> = http_check::RETRY_OPTS.iter().map(|o| o.key).collect();
    keys.push("context");
    let o = Opts::new("kube_service_check", opts, &keys)?;
    let r = Retry::from_opts("kube_service_check", &o)?;
    let context = o.str("context")?;
    check_name("kube_service_check", "namespace", ns)?;
    check_name("kube_service_check", "service", svc)?;
    let port = match read_port("kube_service_check", port)? {
        PortRef::Number(n) => n.to_string(),
        PortRef::Name(s) => s,
    };
    if !path.starts_with('/') || path.contains("..") || path.chars().any(char::is_whitespace) {
        return Err(error(format!(
            "kube_service_check: path '{path}' must start with '/' and hold no '..' or spaces"
        )));
    }
    let uri = format!("/api/v1/namespaces/{ns}/services/{svc}:{port}/proxy{path}");
    let what = format!("Service {ns}/{svc}:{port}{path} (through the API server's proxy)");
    let checked = ctx.block_on(
        "kube_service_check",
        r.max_elapsed + Duration::from_secs(10),
        async move {
            let k = connect(context.as_deref()).await?;
            http_check::retry_until("kube_service_check", &what, &r, || {
                let k = k.clone();
                let uri = uri.clone();
                async move {
                    let req = match http::Request::get(uri.as_str()).body(kube::client::Body::empty()) {
                        Ok(r) => r,
                        Err(e) => return Probe::Fatal(format!("bad request {uri}: {e}")),
                    };
                    match k.client.send(req).await {
                        Ok(resp) => {
                            let s = resp.status().as_u16();
                            if s == 403 || s == 401 {
                                Probe::Fatal(format!(
                                    "the API server answered {s}: the user of {} may not use services/proxy (check `kubectl auth can-i get services/proxy`)",
                                    k.context
                                ))
                            } else {
                                Probe::Status(s)
                            }
                        }
                        Err(e) => Probe::Transient(explain(&k, &e, "proxy", "get", "services/proxy", None).msg),
                    }
                }
            })
            .await
        },
    )?;
    Ok(checked.to_map())
}

/// A DNS-1123 name (namespace, Deployment, Service).
fn check_name(prim: &str, what: &str, s: &str) -> RhaiResult<()> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(error(format!(
            "{prim}: {what} '{s}' is not a Kubernetes name (lowercase letters, digits, '-', '.'; starting and ending with a letter or digit)"
        )))
    }
}

// ---- registration ----------------------------------------------------------------

const ROLLOUT_DOC: &str = "\
/// Wait until a Deployment has rolled out, watching it through the
/// Kubernetes API (kubeconfig and context as kubectl finds them).
///
/// Done means: the controller has observed the current generation
/// (`status.observedGeneration ≥ metadata.generation`, so a stale status
/// never passes) and updated = available = total replicas = desired
/// (`spec.replicas`), so every pod runs the new spec and is available and
/// no old pod is left. Availability is counted, not read from the
/// `Available` condition, so `maxUnavailable` = replicas cannot make it
/// pass with nothing available. A Deployment with 0 desired replicas is an
/// error (nothing would serve) unless `allow_zero: true`, when done means
/// observed with no pods left. A paused Deployment is an error, and so is
/// `Progressing=False` (ProgressDeadlineExceeded), at once.
///
/// Options: `timeout` (default 2 min, a hard bound), `context` (a kube
/// context, like `kubectl --context`), `allow_zero`.
///
/// Returns `#{ready, replicas, elapsed}`: ready pods, desired replicas,
/// seconds waited. Logs progress as it changes. On timeout it throws
/// naming each pod that is not ready and why (waiting reasons such as
/// ImagePullBackOff or CrashLoopBackOff, unscheduled pods), with the fix.
/// A 403 names the missing RBAC permission; a refused connection says to
/// check the cluster and the context.
///
/// ```rhai
/// kube_wait_rollout(\"habit-tracker\", \"habit-tracker-backend\", #{ timeout: \"2m\" });
/// ```";

const NODE_PORT_DOC: &str = "\
/// The node port of a NodePort (or LoadBalancer) Service's port, given by
/// number (`spec.ports[].port`) or name. Throws if the Service does not
/// exist, has no such port, is of another type, or has no node port yet
/// (use `discover_port` with a `kube` source to wait for one).
///
/// Options (4th argument): `context`, `timeout` (default 30 s).
///
/// ```rhai
/// let port = kube_node_port(\"habit-tracker\", \"habit-tracker-frontend\", 3000);
/// ```";

const CAPACITY_DOC: &str = "\
/// What the cluster's nodes have free for new pods: per node, allocatable
/// (`status.allocatable`) minus the requests of the pods bound to it (not
/// Succeeded/Failed; containers summed, or the largest init container,
/// plus overhead). Only Ready, schedulable nodes count toward the totals.
///
/// Options: `context`, `timeout` (30 s), `exclude: #{namespace, selector}`
/// (leave out pods an upgrade replaces, e.g. the release's own:
/// `\"app.kubernetes.io/instance=habit-tracker\"`; `k=v` pairs joined by
/// commas).
///
/// Returns `#{nodes: [#{name, usable, allocatable, requested, free}],
/// allocatable, requested, free, largest_free}`, each `#{cpu, memory}` in
/// millicores and bytes.";

const DEPLOYMENTS_DOC: &str = "\
/// The names of the Deployments in a namespace, sorted; `selector`
/// narrows them by labels (e.g. a Helm release's
/// `\"app.kubernetes.io/instance=habit-tracker\"`).
///
/// Options: `selector`, `context`, `timeout` (30 s).
///
/// ```rhai
/// for d in kube_deployments(\"habit-tracker\", #{ selector: \"app.kubernetes.io/instance=habit-tracker\" }) {
///     kube_wait_rollout(\"habit-tracker\", d);
/// }
/// ```";

const SERVER_DOC: &str = "\
/// Reach the Kubernetes API server of the context (`GET /version`): proves
/// the context is reachable and returns `#{server, host, version, major,
/// minor}`. Options: `context`, `timeout` (15 s).";

const SERVICE_CHECK_DOC: &str = "\
/// GET `path` on a Service's port through the API server's service proxy
/// (`/api/v1/namespaces/NS/services/NAME:PORT/proxy/PATH`), so a ClusterIP
/// Service can be checked from outside the cluster, with the bounded
/// retries of `http_check`.
///
/// Options: those of `http_check` (`expect`, `timeout`, `max_elapsed`,
/// `initial_interval`, `max_interval`) and `context`. Returns
/// `#{status, elapsed}`.
///
/// ```rhai
/// kube_service_check(\"habit-tracker\", \"habit-tracker-backend\", 8000, \"/health\", #{ max_elapsed: 60 });
/// ```";

/// Register the Kubernetes primitives.
pub fn register(engine: &mut Engine, ctx: &Arc<Ctx>) {
    let c = ctx.clone();
    FuncRegistration::new("kube_wait_rollout")
        .with_params_info(["namespace: &str", "deployment: &str", "opts: Map", "Map"])
        .with_comments([ROLLOUT_DOC])
        .register_into_engine(engine, move |ns: &str, d: &str, opts: Map| {
            wait_rollout(&c, ns, d, &opts)
        });
    let c = ctx.clone();
    FuncRegistration::new("kube_wait_rollout")
        .with_params_info(["namespace: &str", "deployment: &str", "Map"])
        .with_comments(["/// `kube_wait_rollout` with the default options (2 min)."])
        .register_into_engine(engine, move |ns: &str, d: &str| {
            wait_rollout(&c, ns, d, &Map::new())
        });

    let c = ctx.clone();
    FuncRegistration::new("kube_node_port")
        .with_params_info(["namespace: &str", "service: &str", "port: Dynamic", "i64"])
        .with_comments([NODE_PORT_DOC])
        .register_into_engine(engine, move |ns: &str, s: &str, port: Dynamic| {
            node_port(&c, ns, s, &port, &Map::new())
        });
    let c = ctx.clone();
    FuncRegistration::new("kube_node_port")
        .with_params_info([
            "namespace: &str",
            "service: &str",
            "port: Dynamic",
            "opts: Map",
            "i64",
        ])
        .with_comments(["/// `kube_node_port` with options (`context`, `timeout`)."])
        .register_into_engine(
            engine,
            move |ns: &str, s: &str, port: Dynamic, opts: Map| node_port(&c, ns, s, &port, &opts),
        );

    let c = ctx.clone();
    FuncRegistration::new("kube_capacity")
        .with_params_info(["opts: Map", "Map"])
        .with_comments([CAPACITY_DOC])
        .register_into_engine(engine, move |opts: Map| capacity(&c, &opts));
    let c = ctx.clone();
    FuncRegistration::new("kube_capacity")
        .with_params_info(["Map"])
        .with_comments(["/// `kube_capacity` with the default options."])
        .register_into_engine(engine, move || capacity(&c, &Map::new()));

    let c = ctx.clone();
    FuncRegistration::new("kube_deployments")
        .with_params_info(["namespace: &str", "opts: Map", "Array"])
        .with_comments([DEPLOYMENTS_DOC])
        .register_into_engine(engine, move |ns: &str, opts: Map| {
            deployments(&c, ns, &opts)
        });

    let c = ctx.clone();
    FuncRegistration::new("kube_server")
        .with_params_info(["opts: Map", "Map"])
        .with_comments([SERVER_DOC])
        .register_into_engine(engine, move |opts: Map| server(&c, &opts));
    let c = ctx.clone();
    FuncRegistration::new("kube_server")
        .with_params_info(["Map"])
        .with_comments(["/// `kube_server` with the default options."])
        .register_into_engine(engine, move || server(&c, &Map::new()));

    let c = ctx.clone();
    FuncRegistration::new("kube_service_check")
        .with_params_info([
            "namespace: &str",
            "service: &str",
            "port: Dynamic",
            "path: &str",
            "opts: Map",
            "Map",
        ])
        .with_comments([SERVICE_CHECK_DOC])
        .register_into_engine(
            engine,
            move |ns: &str, s: &str, port: Dynamic, path: &str, opts: Map| {
                service_check(&c, ns, s, &port, path, &opts)
            },
        );

    FuncRegistration::new("kube_cpu")
        .with_params_info(["quantity: &str", "i64"])
        .with_comments(["/// A CPU quantity (\"250m\", \"0.5\", \"2\") in millicores. Throws on a malformed one."])
        .register_into_engine(engine, |q: &str| -> RhaiResult<i64> {
            cpu_millis(q).ok_or_else(|| error(format!("kube_cpu: '{q}' is not a CPU quantity (e.g. \"250m\", \"0.5\", \"2\")")))
        });
    FuncRegistration::new("kube_memory")
        .with_params_info(["quantity: &str", "i64"])
        .with_comments(["/// A memory quantity (\"256Mi\", \"1Gi\", \"500M\", \"1e9\") in bytes. Throws on a malformed one."])
        .register_into_engine(engine, |q: &str| -> RhaiResult<i64> {
            memory_bytes(q).ok_or_else(|| error(format!("kube_memory: '{q}' is not a memory quantity (e.g. \"256Mi\", \"1Gi\")")))
        });
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
        assert!(e.contains("wants 0 replicas"), "{e}");
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
        assert!(evaluate(&d, false).unwrap_err().contains("rollout resume"));
    }

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
        ])).unwrap();
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
    fn quantities() {
        assert_eq!(cpu_millis("250m"), Some(250));
        assert_eq!(cpu_millis("0.5"), Some(500));
        assert_eq!(cpu_millis("2"), Some(2000));
        assert_eq!(memory_bytes("256Mi"), Some(256 * 1024 * 1024));
        assert_eq!(memory_bytes("1Gi"), Some(1 << 30));
        assert_eq!(memory_bytes("500M"), Some(500_000_000));
        assert_eq!(memory_bytes("1e3"), Some(1000));
        assert_eq!(memory_bytes("129966Ki"), Some(129966 * 1024));
        assert_eq!(cpu_millis("lots"), None);
        assert_eq!(cpu_millis("-1"), None);
    }

    #[test]
    fn node_ports() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "front"},
            "spec": {"type": "NodePort", "ports": [{"name": "http", "port": 3000, "nodePort": 30080}]}
        }))
        .unwrap();
        assert_eq!(
            node_port_of(&svc, &PortRef::Number(3000)).unwrap(),
            Some(30080)
        );
        assert_eq!(
            node_port_of(&svc, &PortRef::Name("http".into())).unwrap(),
            Some(30080)
        );
        assert!(node_port_of(&svc, &PortRef::Number(80))
            .unwrap_err()
            .contains("3000 (http)"));
        let cip: Service = serde_json::from_value(json!({
            "metadata": {"name": "back"}, "spec": {"type": "ClusterIP", "ports": [{"port": 8000}]}
        }))
        .unwrap();
        assert!(node_port_of(&cip, &PortRef::Number(8000))
            .unwrap_err()
            .contains("ClusterIP"));
    }

    #[test]
    fn the_discover_port_source_is_read_and_checked() {
        let mut m = Map::new();
        m.insert("service".into(), Dynamic::from("habit-tracker-frontend"));
        m.insert("port".into(), Dynamic::from(3000_i64));
        m.insert("node".into(), Dynamic::from("192.168.49.2"));
        let s = read_source(&m).unwrap();
        assert_eq!(s.namespace, "default");
        assert!(matches!(s.port, Some(PortRef::Number(3000))));
        m.insert("service".into(), Dynamic::from("Bad_Name"));
        assert!(read_source(&m)
            .unwrap_err()
            .to_string()
            .contains("not a Kubernetes name"));
        m.remove("service");
        assert!(read_source(&m)
            .unwrap_err()
            .to_string()
            .contains("'service' is required"));
        m.insert("service".into(), Dynamic::from("x"));
        m.insert("nodes".into(), Dynamic::from("y"));
        assert!(read_source(&m)
            .unwrap_err()
            .to_string()
            .contains("unknown option 'nodes'"));
    }

    #[test]
    fn node_endpoints_accept_ip_addresses() {
        assert_eq!(
            validate_node_endpoint("192.168.49.2:30080").unwrap(),
            "192.168.49.2:30080"
        );
        assert_eq!(
            validate_node_endpoint("minikube.local:30080").unwrap(),
            "minikube.local:30080"
        );
        assert_eq!(
            validate_node_endpoint("[::1]:30080").unwrap(),
            "[::1]:30080"
        );
        assert!(validate_node_endpoint("192.168.49.2:80").is_err());
        assert!(validate_node_endpoint("Bad Host:30080").is_err());
    }

    #[test]
    fn rooms_subtract_requests_and_skip_excluded_pods() {
        let nodes: Vec<Node> = serde_json::from_value(json!([{
            "metadata": {"name": "minikube"},
            "status": {"allocatable": {"cpu": "2", "memory": "2Gi"}, "conditions": [{"type": "Ready", "status": "True"}]}
        }]))
        .unwrap();
        let pods: Vec<Pod> = serde_json::from_value(json!([
            {"metadata": {"name": "a", "namespace": "kube-system"},
             "spec": {"nodeName": "minikube", "containers": [{"name": "c", "resources": {"requests": {"cpu": "750m", "memory": "170Mi"}}}]},
             "status": {"phase": "Running"}},
            {"metadata": {"name": "b", "namespace": "ht", "labels": {"app.kubernetes.io/instance": "ht"}},
             "spec": {"nodeName": "minikube", "containers": [{"name": "c", "resources": {"requests": {"cpu": "250m"}}}]},
             "status": {"phase": "Running"}},
            {"metadata": {"name": "done", "namespace": "x"},
             "spec": {"nodeName": "minikube", "containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]},
             "status": {"phase": "Succeeded"}}
        ]))
        .unwrap();
        let r = rooms(&nodes, &pods, Some(("ht", "app.kubernetes.io/instance=ht")));
        assert_eq!(
            r[0].requested,
            Res {
                cpu: 750,
                memory: 170 * 1024 * 1024
            }
        );
        assert!(r[0].usable);
        let r = rooms(&nodes, &pods, None);
        assert_eq!(r[0].requested.cpu, 1000);
    }
}
