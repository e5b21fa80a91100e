//! The objects the fake Kubernetes API serves, in the real response
//! shapes: Deployments (and how their rollout goes), pods with container
//! statuses, Services with a NodePort, nodes with allocatable, lists, and
//! `Status` objects for errors.

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

/// A Service object, labelled as the chart labels it (its component: the
/// last part of its name).
pub fn service(ns: &str, name: &str, ty: &str, port: u16, node_port: Option<u16>) -> Value {
    let mut p = json!({"name": "http", "port": port, "protocol": "TCP", "targetPort": "http"});
    if let Some(np) = node_port {
        p["nodePort"] = json!(np);
    }
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "resourceVersion": "811", "uid": "6f1e0c53-5b8e-4c1b-9a55-2f4b5b6d7e01",
                     "creationTimestamp": "2024-05-06T10:00:00Z",
                     "labels": {"app.kubernetes.io/instance": "habit-tracker", "app.kubernetes.io/managed-by": "Helm",
                                "app.kubernetes.io/component": name.rsplit('-').next().unwrap_or("app")}},
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
            "nodeInfo": {
                "architecture": "amd64", "bootID": "5a1b6b0e-7c1f-4a8e-9d55-0c3c1c0f2b11",
                "containerRuntimeVersion": "docker://26.1.1", "kernelVersion": "6.8.0-45-generic",
                "kubeProxyVersion": "v1.30.0", "kubeletVersion": "v1.30.0",
                "machineID": "2f6f1e7c0d7b4c1e9d1f6d3f0e8a7b21", "operatingSystem": "linux",
                "osImage": "Ubuntu 22.04.4 LTS", "systemUUID": "2f6f1e7c-0d7b-4c1e-9d1f-6d3f0e8a7b21"
            }
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
pub fn deployment(
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
pub fn pod(ns: &str, deploy: &str, waiting: Option<&str>) -> Value {
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
pub fn labels_match(obj: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        obj["metadata"]["labels"][k] == json!(v)
    })
}

/// A `Status` object, as the API server answers errors.
pub fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

/// A list of `kind`.
pub fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": "900"}, "items": items})
}

/// A Deployment's rollout and how many watch events it takes.
pub fn r_of<'a>(c: &'a Cluster, ns: &str, name: &str) -> (&'a Rollout, u32) {
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
pub fn r_state(replicas: &u32, i: u32, (rollout, events): (&Rollout, u32)) -> (u32, u32, u32, u32) {
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
