//! A fake Kubernetes API server on the HTTP stub (127.0.0.1, a random
//! port); kube-rs in the binary under test reaches it through a generated
//! kubeconfig. It serves the objects of `kube_objects`: Deployments (GET,
//! list and watch streams), pods, Services, nodes, `/version`, the service
//! proxy, and `Status` objects for 403 and 404. A second stub plays the
//! frontend behind the NodePort.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use super::http::{free_port, Reply, Request, Stub};
pub use super::kube_objects::*;

static RV: AtomicUsize = AtomicUsize::new(1000);

fn next_rv() -> u64 {
    RV.fetch_add(1, Ordering::SeqCst) as u64
}

/// A request as the fake's log shows it: "METHOD path?sorted&query".
fn shown(req: &Request) -> String {
    if req.query.is_empty() {
        return format!("{} {}", req.method, req.path);
    }
    let mut ks: Vec<String> = req.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    ks.sort();
    format!("{} {}?{}", req.method, req.path, ks.join("&"))
}

fn not_found(what: &str) -> Reply {
    Reply::json(404, &status(404, "NotFound", what))
}

/// The pod of each Deployment, waiting when its rollout is stuck.
fn deployment_pods<'a>(c: &'a Cluster, ns: Option<&'a str>) -> impl Iterator<Item = Value> + 'a {
    c.deployments
        .iter()
        .filter(move |(dns, _, _, _)| ns.is_none_or(|ns| dns == ns))
        .map(|(dns, name, _, r)| {
            let waiting = match r {
                Rollout::Stuck(w) => Some(*w),
                _ => None,
            };
            pod(dns, name, waiting)
        })
}

fn deployment_now(c: &Cluster, ns: &str, name: &str, replicas: u32) -> Value {
    let state = r_state(&replicas, 0, r_of(c, ns, name));
    deployment(ns, name, next_rv(), replicas, state)
}

fn version(c: &Cluster) -> Reply {
    let v = c.version.trim_start_matches('v');
    let mut it = v.split('.');
    let (major, minor) = (it.next().unwrap_or("1"), it.next().unwrap_or("0"));
    Reply::json(
        200,
        &json!({"major": major, "minor": minor, "gitVersion": c.version,
        "gitCommit": "7c48c2bd72b9bf5c44d21d7338cc7bea77d0ad2a", "gitTreeState": "clean",
        "buildDate": "2024-04-17T17:27:03Z", "goVersion": "go1.22.2", "compiler": "gc", "platform": "linux/amd64"}),
    )
}

fn find_service<'a>(c: &'a Cluster, ns: &str, name: &str) -> Option<&'a Value> {
    c.services
        .iter()
        .find(|s| s["metadata"]["name"] == json!(name) && s["metadata"]["namespace"] == json!(ns))
}

/// Events of a Deployment's rollout, 50 ms apart, then the watch held open
/// like a real server's until its timeoutSeconds (at most 60 s).
fn watch(c: &Cluster, req: &Request, ns: &str) -> Reply {
    let name = req
        .query("fieldSelector")
        .trim_start_matches("metadata.name=");
    let Some((ns, name, replicas, rollout)) = c
        .deployments
        .iter()
        .find(|(dns, n, _, _)| dns == ns && n == name)
        .cloned()
    else {
        return Reply::json(200, &json!({}));
    };
    let secs: u64 = req.query("timeoutSeconds").parse().unwrap_or(30).min(60);
    let events = match &rollout {
        Rollout::ReadyAfter(n) => (*n).max(1),
        Rollout::Ready | Rollout::Stuck(_) => 1,
    };
    Reply::stream(200, move |sink| {
        for i in 1..=events {
            std::thread::sleep(Duration::from_millis(50));
            let state = r_state(&replicas, i, (&rollout, events));
            let object = deployment(&ns, &name, next_rv(), replicas, state);
            let ev = json!({"type": "MODIFIED", "object": object});
            if !sink.send(format!("{ev}\n")) {
                return;
            }
        }
        sink.hold(Duration::from_secs(secs));
    })
    .header("Content-Type", "application/json")
}

/// The answer to one request.
fn route(c: &Cluster, req: &Request) -> Reply {
    let shown = shown(req);
    if let Some(res) = c.forbidden.iter().find(|f| shown.contains(f.as_str())) {
        let verb = if req.query("watch") == "true" {
            "watch"
        } else {
            "get"
        };
        return Reply::json(403, &status(403, "Forbidden", &format!(
            "{res} is forbidden: User \"system:serviceaccount:ci:deployer\" cannot {verb} resource \"{res}\" in API group \"apps\" in the namespace \"habit-tracker\""
        )));
    }
    let segs: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    let watching = req.query("watch") == "true";
    match segs.as_slice() {
        ["version"] => version(c),
        ["api", "v1", "nodes"] => Reply::json(200, &list("NodeList", c.nodes.clone())),
        ["api", "v1", "pods"] => {
            let pods = c.pods.iter().cloned().chain(deployment_pods(c, None));
            Reply::json(200, &list("PodList", pods.collect()))
        }
        ["api", "v1", "namespaces", ns, "pods"] => {
            let sel = req.query("labelSelector");
            let pods = deployment_pods(c, Some(ns)).filter(|p| labels_match(p, sel));
            Reply::json(200, &list("PodList", pods.collect()))
        }
        ["api", "v1", "namespaces", ns, "services", name, "proxy", ..] => {
            let svc = name.split(':').next().unwrap_or("");
            match find_service(c, ns, svc) {
                Some(_) => Reply::json(
                    c.proxy_status,
                    &json!({"status": if c.proxy_status == 200 { "ok" } else { "error" }}),
                ),
                None => not_found(&format!("services \"{svc}\" not found")),
            }
        }
        ["api", "v1", "namespaces", ns, "services"] => {
            let sel = req.query("labelSelector");
            let items = c
                .services
                .iter()
                .filter(|s| s["metadata"]["namespace"] == json!(ns) && labels_match(s, sel));
            Reply::json(200, &list("ServiceList", items.cloned().collect()))
        }
        ["api", "v1", "namespaces", ns, "services", name] => match find_service(c, ns, name) {
            Some(s) => Reply::json(200, s),
            None => not_found(&format!("services \"{name}\" not found")),
        },
        ["apis", "apps", "v1", "namespaces", ns, "deployments", name] => {
            match c
                .deployments
                .iter()
                .find(|(d, n, _, _)| d == ns && n == name)
            {
                Some((ns, name, replicas, _)) => {
                    Reply::json(200, &deployment_now(c, ns, name, *replicas))
                }
                None => not_found(&format!("deployments.apps \"{name}\" not found")),
            }
        }
        ["apis", "apps", "v1", "namespaces", ns, "deployments"] if watching => watch(c, req, ns),
        ["apis", "apps", "v1", "namespaces", ns, "deployments"] => {
            let items: Vec<Value> = c
                .deployments
                .iter()
                .filter(|(dns, _, _, _)| dns == ns)
                .map(|(dns, name, replicas, _)| deployment_now(c, dns, name, *replicas))
                .filter(|d| labels_match(d, req.query("labelSelector")))
                .collect();
            let mut l = list("DeploymentList", items);
            l["apiVersion"] = json!("apps/v1");
            Reply::json(200, &l)
        }
        _ => not_found(&format!(
            "the server could not find the requested resource ({} {})",
            req.method, req.path
        )),
    }
}

/// The fake API server. Stopped when dropped.
pub struct FakeKube {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    cluster: Arc<Mutex<Cluster>>,
    stub: Stub,
}

impl FakeKube {
    /// Start serving `cluster`.
    pub fn start(cluster: Cluster) -> FakeKube {
        let cluster = Arc::new(Mutex::new(cluster));
        let c2 = cluster.clone();
        let stub = Stub::start(move |req| {
            let c = c2.lock().unwrap().clone();
            route(&c, req)
        });
        FakeKube {
            url: stub.url(),
            cluster,
            stub,
        }
    }

    /// Change the cluster.
    pub fn update(&self, f: impl FnOnce(&mut Cluster)) {
        f(&mut self.cluster.lock().unwrap());
    }

    /// Every request so far, as "METHOD path?sorted&query".
    pub fn requests(&self) -> Vec<String> {
        self.stub.seen().iter().map(shown).collect()
    }

    /// Write a kubeconfig whose context `context` points here; returns its path.
    pub fn kubeconfig(&self, dir: &Path, context: &str) -> PathBuf {
        kubeconfig_for(dir, &self.url, context)
    }
}

/// Write a kubeconfig for `server` with one context; returns its path.
pub fn kubeconfig_for(dir: &Path, server: &str, context: &str) -> PathBuf {
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: {server}\n  name: {context}\ncontexts:\n- context:\n    cluster: {context}\n    namespace: default\n    user: {context}\n  name: {context}\ncurrent-context: {context}\npreferences: {{}}\nusers:\n- name: {context}\n  user:\n    token: fake-token-not-a-secret\n"
    );
    let path = dir.join("kubeconfig");
    std::fs::write(&path, text).unwrap();
    path
}

/// A kubeconfig whose server refuses connections (a port nobody listens on).
pub fn refused_kubeconfig(dir: &Path, context: &str) -> PathBuf {
    kubeconfig_for(dir, &format!("http://127.0.0.1:{}", free_port()), context)
}

/// The frontend behind the NodePort: answers 200 with a page to every
/// request. Stopped when dropped.
pub struct Frontend {
    /// Its port (the Service's nodePort in the fake cluster).
    pub port: u16,
    stub: Stub,
}

impl Frontend {
    /// Start it.
    pub fn start() -> Frontend {
        let stub = Stub::start(|_| {
            Reply::status(200).header("Content-Type", "text/html").body(
                "<!DOCTYPE html><html><head><title>Habit Tracker</title></head><body></body></html>",
            )
        });
        Frontend {
            port: stub.port,
            stub,
        }
    }

    /// Requests answered so far.
    pub fn hits(&self) -> usize {
        self.stub.seen().len()
    }
}
