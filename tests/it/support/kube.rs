//! A fake Kubernetes API server for the integration tests: plain HTTP on
//! 127.0.0.1 (a random port), one thread per connection (at most 64), every
//! wait bounded. kube-rs in the binary under test reaches it through a
//! generated kubeconfig. It replays the real response shapes: Deployments
//! (GET and watch streams), pods with container statuses, Services with a
//! NodePort, nodes with allocatable, `/version`, the service proxy, `Status`
//! objects for 403 and 404. A second tiny server plays the frontend behind
//! the NodePort.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How a Deployment's rollout goes.
#[derive(Clone, Debug)]
pub enum Rollout {
    /// Already rolled out.
    Ready,
    /// Rolls out over this many watch events (50 ms apart).
    ReadyAfter(u32),
    /// Never rolls out: its pod waits with this reason (e.g. ImagePullBackOff).
    Stuck(&'static str),
}

/// The cluster the fake API serves.
#[derive(Clone, Debug)]
pub struct Cluster {
    /// (namespace, name, replicas, rollout)
    pub deployments: Vec<(String, String, u32, Rollout)>,
    /// Service objects.
    pub services: Vec<Value>,
    /// Node objects.
    pub nodes: Vec<Value>,
    /// Pods of other workloads, cluster-wide (they use capacity).
    pub pods: Vec<Value>,
    /// Paths containing any of these answer 403 Forbidden.
    pub forbidden: Vec<String>,
    /// Status of the service proxy (backend /health).
    pub proxy_status: u16,
    /// `gitVersion` of `/version`.
    pub version: String,
}

/// The habit-tracker release's objects, in `ns`, with the frontend's
/// NodePort set to `node_port`; each Deployment rolls out per `rollout`.
pub fn habit_tracker(ns: &str, node_port: u16, backend: Rollout, frontend: Rollout) -> Cluster {
    Cluster {
        deployments: vec![
            (ns.into(), "habit-tracker-backend".into(), 1, backend),
            (ns.into(), "habit-tracker-frontend".into(), 1, frontend),
        ],
        services: vec![
            service(ns, "habit-tracker-backend", "ClusterIP", 8000, None),
            service(
                ns,
                "habit-tracker-frontend",
                "NodePort",
                3000,
                Some(node_port),
            ),
        ],
        nodes: vec![node("minikube", "2", "3920800Ki")],
        pods: vec![
            system_pod("kube-apiserver-minikube", "250m", "0"),
            system_pod("coredns-7db6d8ff4d-xk2pq", "100m", "70Mi"),
            system_pod("etcd-minikube", "100m", "100Mi"),
            system_pod("kube-controller-manager-minikube", "200m", "0"),
            system_pod("kube-scheduler-minikube", "100m", "0"),
        ],
        forbidden: vec![],
        proxy_status: 200,
        version: "v1.30.0".into(),
    }
}

/// A Service object.
pub fn service(ns: &str, name: &str, ty: &str, port: u16, node_port: Option<u16>) -> Value {
    let mut p = json!({"name": "http", "port": port, "protocol": "TCP", "targetPort": "http"});
    if let Some(np) = node_port {
        p["nodePort"] = json!(np);
    }
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "resourceVersion": "811", "uid": "6f1e0c53-5b8e-4c1b-9a55-2f4b5b6d7e01",
                     "creationTimestamp": "2024-05-06T10:00:00Z",
                     "labels": {"app.kubernetes.io/instance": "habit-tracker", "app.kubernetes.io/managed-by": "Helm"}},
        "spec": {"type": ty, "clusterIP": "10.96.120.15", "clusterIPs": ["10.96.120.15"], "ports": [p],
                 "selector": {"app.kubernetes.io/instance": "habit-tracker"}, "sessionAffinity": "None",
                 "externalTrafficPolicy": "Cluster", "internalTrafficPolicy": "Cluster", "ipFamilies": ["IPv4"],
                 "ipFamilyPolicy": "SingleStack"},
        "status": {"loadBalancer": {}}
    })
}

/// A Ready node with this allocatable CPU and memory.
pub fn node(name: &str, cpu: &str, memory: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "node-role.kubernetes.io/control-plane": ""}},
        "spec": {"podCIDR": "10.244.0.0/24"},
        "status": {
            "addresses": [{"address": "192.168.49.2", "type": "InternalIP"}, {"address": name, "type": "Hostname"}],
            "allocatable": {"cpu": cpu, "ephemeral-storage": "61202244Ki", "memory": memory, "pods": "110"},
            "capacity": {"cpu": cpu, "ephemeral-storage": "61202244Ki", "memory": memory, "pods": "110"},
            "conditions": [
                {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory"},
                {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status"}
            ],
            "nodeInfo": {"kubeletVersion": "v1.30.0", "containerRuntimeVersion": "docker://26.1.1"}
        }
    })
}

/// A running kube-system pod on node "minikube" with these requests.
pub fn system_pod(name: &str, cpu: &str, memory: &str) -> Value {
    let mut req = serde_json::Map::new();
    if cpu != "0" {
        req.insert("cpu".into(), json!(cpu));
    }
    if memory != "0" {
        req.insert("memory".into(), json!(memory));
    }
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "kube-system"},
        "spec": {"nodeName": "minikube", "containers": [{"name": "c", "image": "registry.k8s.io/x:1", "resources": {"requests": req}}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    })
}

fn labels_of(name: &str) -> Value {
    let part = name.rsplit('-').next().unwrap_or("app");
    json!({"app.kubernetes.io/name": "habit-tracker", "app.kubernetes.io/instance": "habit-tracker", "app.kubernetes.io/component": part})
}

fn image_of(name: &str) -> String {
    let part = name.rsplit('-').next().unwrap_or("app");
    format!("ghcr.io/mconstant/habit-tracker-{part}:0.1.0")
}

/// A Deployment object at generation 2 with this status:
/// (observedGeneration, updated, available, total).
fn deployment(
    ns: &str,
    name: &str,
    rv: u64,
    replicas: u32,
    (observed, updated, available, total): (u32, u32, u32, u32),
) -> Value {
    let mut status = json!({
        "observedGeneration": observed, "replicas": total, "updatedReplicas": updated,
        "readyReplicas": available, "availableReplicas": available,
        "conditions": [
            {"type": "Progressing", "status": "True", "reason": if updated == replicas && available == replicas { "NewReplicaSetAvailable" } else { "ReplicaSetUpdated" },
             "message": format!("ReplicaSet \"{name}-7d9f8c6b5\" is progressing."),
             "lastUpdateTime": "2024-05-06T10:00:05Z", "lastTransitionTime": "2024-05-06T10:00:00Z"}
        ]
    });
    if available < replicas {
        status["unavailableReplicas"] = json!(replicas - available);
    }
    for k in ["readyReplicas", "availableReplicas", "updatedReplicas"] {
        if status[k] == json!(0) {
            status.as_object_mut().map(|o| o.remove(k));
        }
    }
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "generation": 2, "resourceVersion": rv.to_string(),
                     "uid": "0b6e2a47-8d0c-4a5e-9b1f-3c2d1e0f9a8b", "creationTimestamp": "2024-05-06T10:00:00Z",
                     "labels": labels_of(name), "annotations": {"deployment.kubernetes.io/revision": "2", "meta.helm.sh/release-name": "habit-tracker"}},
        "spec": {"replicas": replicas, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
                 "selector": {"matchLabels": labels_of(name)},
                 "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                 "template": {"metadata": {"labels": labels_of(name)},
                              "spec": {"containers": [{"name": name.rsplit('-').next().unwrap_or("app"), "image": image_of(name)}]}}},
        "status": status
    })
}

/// A pod of a Deployment: ready, or waiting with `reason`.
fn pod(ns: &str, deploy: &str, waiting: Option<&str>) -> Value {
    let container = deploy.rsplit('-').next().unwrap_or("app");
    let image = image_of(deploy);
    let (phase, ready, state) = match waiting {
        Some(reason) => (
            "Pending",
            "False",
            json!({"waiting": {"reason": reason, "message": format!("Back-off pulling image \"{image}\"")}}),
        ),
        None => (
            "Running",
            "True",
            json!({"running": {"startedAt": "2024-05-06T10:00:03Z"}}),
        ),
    };
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("{deploy}-7d9f8c6b5-x2x7k"), "namespace": ns, "labels": labels_of(deploy),
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{deploy}-7d9f8c6b5"), "uid": "1", "controller": true}]},
        "spec": {"nodeName": "minikube", "containers": [{"name": container, "image": image,
                 "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}}}]},
        "status": {
            "phase": phase,
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Ready", "status": ready, "reason": if ready == "True" { Value::Null } else { json!("ContainersNotReady") },
                 "message": if ready == "True" { Value::Null } else { json!(format!("containers with unready status: [{container}]")) }},
            ],
            "containerStatuses": [{"name": container, "image": image, "imageID": "", "ready": ready == "True",
                                   "restartCount": 0, "started": ready == "True", "state": state}],
            "hostIP": "192.168.49.2", "podIP": "10.244.0.12", "qosClass": "Burstable", "startTime": "2024-05-06T10:00:00Z"
        }
    })
}

/// Whether an object's labels match a `k=v,k2=v2` selector.
fn labels_match(obj: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        obj["metadata"]["labels"][k] == json!(v)
    })
}

fn status_obj(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": "900"}, "items": items})
}

/// A request as the server saw it.
struct Req {
    method: String,
    path: String,
    query: HashMap<String, String>,
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn read_req(stream: &mut TcpStream) -> Option<Req> {
    let mut r = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    // Headers (bounded); bodies are not used by any route.
    for _ in 0..100 {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
    }
    let (path, q) = target.split_once('?').unwrap_or((&target, ""));
    let query = q
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect();
    Some(Req {
        method,
        path: decode(path),
        query,
    })
}

fn respond(stream: &mut TcpStream, code: u16, body: &Value) {
    let text = body.to_string();
    let reason = match code {
        200 => "OK",
        403 => "Forbidden",
        404 => "Not Found",
        _ => "Error",
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    let _ = stream.flush();
}

fn chunk(stream: &mut TcpStream, line: &str) -> bool {
    let data = format!("{line}\n");
    write!(stream, "{:x}\r\n{data}\r\n", data.len())
        .and_then(|_| stream.flush())
        .is_ok()
}

/// The fake API server. Stopped when dropped.
pub struct FakeKube {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// Its port.
    pub port: u16,
    cluster: Arc<Mutex<Cluster>>,
    stop: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<String>>>,
    handle: Option<JoinHandle<()>>,
}

static RV: AtomicUsize = AtomicUsize::new(1000);

fn next_rv() -> u64 {
    RV.fetch_add(1, Ordering::SeqCst) as u64
}

fn handle(
    mut stream: TcpStream,
    cluster: Arc<Mutex<Cluster>>,
    stop: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<String>>>,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let Some(req) = read_req(&mut stream) else {
        return;
    };
    let q = |k: &str| req.query.get(k).cloned().unwrap_or_default();
    let shown = if req.query.is_empty() {
        req.path.clone()
    } else {
        let mut ks: Vec<String> = req.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        ks.sort();
        format!("{}?{}", req.path, ks.join("&"))
    };
    requests
        .lock()
        .unwrap()
        .push(format!("{} {shown}", req.method));
    let c = cluster.lock().unwrap().clone();
    if let Some(f) = c.forbidden.iter().find(|f| shown.contains(f.as_str())) {
        let (verb, res) = if req.query.get("watch").map(String::as_str) == Some("true") {
            ("watch", f.as_str())
        } else {
            ("get", f.as_str())
        };
        return respond(
            &mut stream,
            403,
            &status_obj(403, "Forbidden", &format!(
                "{res} is forbidden: User \"system:serviceaccount:ci:deployer\" cannot {verb} resource \"{res}\" in API group \"apps\" in the namespace \"habit-tracker\""
            )),
        );
    }
    let segs: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    match segs.as_slice() {
        ["version"] => {
            let v = c.version.trim_start_matches('v');
            let mut it = v.split('.');
            let (major, minor) = (it.next().unwrap_or("1"), it.next().unwrap_or("0"));
            respond(
                &mut stream,
                200,
                &json!({"major": major, "minor": minor, "gitVersion": c.version,
                "gitCommit": "7c48c2bd72b9bf5c44d21d7338cc7bea77d0ad2a", "gitTreeState": "clean",
                "buildDate": "2024-04-17T17:27:03Z", "goVersion": "go1.22.2", "compiler": "gc", "platform": "linux/amd64"}),
            )
        }
        ["api", "v1", "nodes"] => respond(&mut stream, 200, &list("NodeList", c.nodes.clone())),
        ["api", "v1", "pods"] => {
            let mut pods = c.pods.clone();
            for (ns, name, _, r) in &c.deployments {
                pods.push(pod(
                    ns,
                    name,
                    match r {
                        Rollout::Stuck(w) => Some(w),
                        _ => None,
                    },
                ));
            }
            respond(&mut stream, 200, &list("PodList", pods))
        }
        ["api", "v1", "namespaces", ns, "pods"] => {
            let sel = q("labelSelector");
            let pods: Vec<Value> = c
                .deployments
                .iter()
                .filter(|(dns, _, _, _)| dns == ns)
                .map(|(dns, name, _, r)| {
                    pod(
                        dns,
                        name,
                        match r {
                            Rollout::Stuck(w) => Some(w),
                            _ => None,
                        },
                    )
                })
                .filter(|p| labels_match(p, &sel))
                .collect();
            respond(&mut stream, 200, &list("PodList", pods))
        }
        ["api", "v1", "namespaces", ns, "services", name, "proxy", ..] => {
            let svc = name.split(':').next().unwrap_or("");
            if c.services.iter().any(|s| {
                s["metadata"]["name"] == json!(svc) && s["metadata"]["namespace"] == json!(ns)
            }) {
                respond(
                    &mut stream,
                    c.proxy_status,
                    &json!({"status": if c.proxy_status == 200 { "ok" } else { "error" }}),
                )
            } else {
                respond(
                    &mut stream,
                    404,
                    &status_obj(404, "NotFound", &format!("services \"{svc}\" not found")),
                )
            }
        }
        ["api", "v1", "namespaces", ns, "services", name] => {
            match c.services.iter().find(|s| {
                s["metadata"]["name"] == json!(name) && s["metadata"]["namespace"] == json!(ns)
            }) {
                Some(s) => respond(&mut stream, 200, s),
                None => respond(
                    &mut stream,
                    404,
                    &status_obj(404, "NotFound", &format!("services \"{name}\" not found")),
                ),
            }
        }
        ["apis", "apps", "v1", "namespaces", ns, "deployments", name] => {
            match c
                .deployments
                .iter()
                .find(|(dns, n, _, _)| dns == ns && n == name)
            {
                Some((ns, name, replicas, _)) => {
                    let (o, u, a, t) = r_state(replicas, 0, r_of(&c, ns, name));
                    let d = deployment(ns, name, next_rv(), *replicas, (o, u, a, t));
                    respond(&mut stream, 200, &d)
                }
                None => respond(
                    &mut stream,
                    404,
                    &status_obj(
                        404,
                        "NotFound",
                        &format!("deployments.apps \"{name}\" not found"),
                    ),
                ),
            }
        }
        ["apis", "apps", "v1", "namespaces", ns, "deployments"] if q("watch") != "true" => {
            let items: Vec<Value> = c
                .deployments
                .iter()
                .filter(|(dns, _, _, _)| dns == ns)
                .map(|(dns, name, replicas, _)| {
                    let (o, u, a, t) = r_state(replicas, 0, r_of(&c, dns, name));
                    deployment(dns, name, next_rv(), *replicas, (o, u, a, t))
                })
                .filter(|d| labels_match(d, &q("labelSelector")))
                .collect();
            let mut l = list("DeploymentList", items);
            l["apiVersion"] = json!("apps/v1");
            respond(&mut stream, 200, &l)
        }
        ["apis", "apps", "v1", "namespaces", ns, "deployments"] if q("watch") == "true" => {
            let name = q("fieldSelector")
                .trim_start_matches("metadata.name=")
                .to_string();
            let Some((ns, name, replicas, rollout)) = c
                .deployments
                .iter()
                .find(|(dns, n, _, _)| dns == ns && *n == name)
                .cloned()
            else {
                return respond(&mut stream, 200, &json!({}));
            };
            let secs: u64 = q("timeoutSeconds").parse().unwrap_or(30).min(60);
            let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
            let events = match &rollout {
                Rollout::Ready => 1,
                Rollout::ReadyAfter(n) => (*n).max(1),
                Rollout::Stuck(_) => 1,
            };
            for i in 1..=events {
                std::thread::sleep(Duration::from_millis(50));
                let (o, u, a, t) = r_state(&replicas, i, (&rollout, events));
                let ev = json!({"type": "MODIFIED", "object": deployment(&ns, &name, next_rv(), replicas, (o, u, a, t))});
                if !chunk(&mut stream, &ev.to_string()) {
                    return;
                }
            }
            // Hold the watch open like a real server, until its timeout.
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(secs) && !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = write!(stream, "0\r\n\r\n");
        }
        _ => respond(
            &mut stream,
            404,
            &status_obj(
                404,
                "NotFound",
                &format!(
                    "the server could not find the requested resource ({} {})",
                    req.method, req.path
                ),
            ),
        ),
    }
}

fn r_of<'a>(c: &'a Cluster, ns: &str, name: &str) -> (&'a Rollout, u32) {
    let r = c
        .deployments
        .iter()
        .find(|(dns, n, _, _)| dns == ns && n == name)
        .map(|(_, _, _, r)| r)
        .unwrap_or(&Rollout::Ready);
    let events = match r {
        Rollout::ReadyAfter(n) => (*n).max(1),
        _ => 1,
    };
    (r, events)
}

/// (observedGeneration, updated, available, total) after `i` of `events` watch events.
fn r_state(replicas: &u32, i: u32, (rollout, events): (&Rollout, u32)) -> (u32, u32, u32, u32) {
    let r = *replicas;
    match rollout {
        Rollout::Ready => (2, r, r, r),
        // Before the controller saw generation 2: the old pods, all available.
        Rollout::ReadyAfter(_) if i == 0 => (1, 0, r, r),
        Rollout::ReadyAfter(_) if i >= events => (2, r, r, r),
        Rollout::ReadyAfter(_) => (2, (i * r / events).min(r), r.saturating_sub(1), r + 1),
        Rollout::Stuck(_) => (2, 1.min(r), 0, r),
    }
}

impl FakeKube {
    /// Start serving `cluster`.
    pub fn start(cluster: Cluster) -> FakeKube {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake Kubernetes API");
        let port = listener.local_addr().unwrap().port();
        let cluster = Arc::new(Mutex::new(cluster));
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (c2, s2, r2) = (cluster.clone(), stop.clone(), requests.clone());
        let handle = std::thread::spawn(move || {
            let active = Arc::new(AtomicUsize::new(0));
            let started = Instant::now();
            // Blocking accept (no polling delay); Drop wakes it with a
            // connection after setting `stop`. At most 10 minutes.
            while started.elapsed() < Duration::from_secs(600) {
                let accepted = listener.accept();
                if s2.load(Ordering::SeqCst) {
                    break;
                }
                match accepted {
                    Ok((stream, _)) => {
                        if active.load(Ordering::SeqCst) >= 64 {
                            continue;
                        }
                        active.fetch_add(1, Ordering::SeqCst);
                        let (c3, s3, r3, a3) = (c2.clone(), s2.clone(), r2.clone(), active.clone());
                        std::thread::spawn(move || {
                            handle(stream, c3, s3, r3);
                            a3.fetch_sub(1, Ordering::SeqCst);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FakeKube {
            url: format!("http://127.0.0.1:{port}"),
            port,
            cluster,
            stop,
            requests,
            handle: Some(handle),
        }
    }

    /// Change the cluster.
    pub fn update(&self, f: impl FnOnce(&mut Cluster)) {
        f(&mut self.cluster.lock().unwrap());
    }

    /// Every request so far, as "METHOD path?sorted&query".
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    /// Write a kubeconfig whose context `context` points here; returns its path.
    pub fn kubeconfig(&self, dir: &Path, context: &str) -> PathBuf {
        kubeconfig_for(dir, &self.url, context)
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
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
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    kubeconfig_for(dir, &format!("http://127.0.0.1:{port}"), context)
}

/// The frontend behind the NodePort: answers 200 to every GET. Stopped when dropped.
pub struct Frontend {
    /// Its port (the Service's nodePort in the fake cluster).
    pub port: u16,
    stop: Arc<AtomicBool>,
    hits: Arc<AtomicUsize>,
    handle: Option<JoinHandle<()>>,
}

impl Frontend {
    /// Start it.
    pub fn start() -> Frontend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake frontend");
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let hits = Arc::new(AtomicUsize::new(0));
        let (s2, h2) = (stop.clone(), hits.clone());
        let handle = std::thread::spawn(move || {
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(600) {
                let accepted = listener.accept();
                if s2.load(Ordering::SeqCst) {
                    break;
                }
                match accepted {
                    Ok((mut stream, _)) => {
                        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                        if read_req(&mut stream).is_some() {
                            h2.fetch_add(1, Ordering::SeqCst);
                            let body = "<!DOCTYPE html><html><head><title>Habit Tracker</title></head><body></body></html>";
                            let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Frontend {
            port,
            stop,
            hits,
            handle: Some(handle),
        }
    }

    /// GETs answered so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Frontend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
