//! Room on the nodes for new pods: allocatable minus what the pods bound
//! to each node request, and the quantity parsing it needs. A flow checks
//! this before an install, so that "no room" is said up front instead of
//! as pods stuck Pending after the install's whole budget.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::ListParams;
use kube::Api;

use super::client::{explain, Call, Kube};
use crate::error::PrimError;

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
    /// Both summed (saturating: a hostile manifest cannot overflow).
    pub fn plus(self, o: Res) -> Res {
        Res {
            cpu: self.cpu.saturating_add(o.cpu),
            memory: self.memory.saturating_add(o.memory),
        }
    }

    /// The larger of each.
    pub fn max(self, o: Res) -> Res {
        Res {
            cpu: self.cpu.max(o.cpu),
            memory: self.memory.max(o.memory),
        }
    }

    /// What is left of each, never below zero.
    pub fn minus(self, o: Res) -> Res {
        Res {
            cpu: (self.cpu - o.cpu).max(0),
            memory: (self.memory - o.memory).max(0),
        }
    }

    /// Both times `n` (a replica count).
    pub fn times(self, n: i64) -> Res {
        Res {
            cpu: self.cpu.saturating_mul(n),
            memory: self.memory.saturating_mul(n),
        }
    }
}

/// The `cpu` and `memory` of a requests (or allocatable) map; a missing
/// or malformed quantity counts as 0.
pub fn res_of(map: Option<&BTreeMap<String, Quantity>>) -> Res {
    let get = |k: &str| map.and_then(|m| m.get(k)).map(|q| q.0.as_str());
    Res {
        cpu: get("cpu").and_then(cpu_millis).unwrap_or(0),
        memory: get("memory").and_then(memory_bytes).unwrap_or(0),
    }
}

/// What a pod spec asks the scheduler for: the sum over its containers,
/// or the largest init container if that is more, plus the pod overhead.
pub fn spec_requests(spec: &PodSpec) -> Res {
    let requests = |c: &k8s_openapi::api::core::v1::Container| {
        res_of(c.resources.as_ref().and_then(|r| r.requests.as_ref()))
    };
    let main = spec
        .containers
        .iter()
        .fold(Res::default(), |acc, c| acc.plus(requests(c)));
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .fold(Res::default(), |acc, c| acc.max(requests(c)));
    main.max(init).plus(res_of(spec.overhead.as_ref()))
}

/// What a pod asks the scheduler for (see [`spec_requests`]).
pub fn pod_requests(pod: &Pod) -> Res {
    pod.spec.as_ref().map(spec_requests).unwrap_or_default()
}

/// Whether `labels` satisfy an equality selector `k=v,k2=v2` (a bare `k`
/// asks for the key to exist).
pub fn labels_match(labels: Option<&BTreeMap<String, String>>, selector: &str) -> bool {
    let empty = BTreeMap::new();
    let labels = labels.unwrap_or(&empty);
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

impl NodeRoom {
    /// Allocatable minus requested.
    pub fn free(&self) -> Res {
        self.allocatable.minus(self.requested)
    }
}

/// Pods to leave out of the count: the release's own, which an upgrade
/// replaces.
#[derive(Clone, Debug)]
pub struct Exclude {
    /// Their namespace.
    pub namespace: String,
    /// Their label selector (`k=v` pairs joined by commas).
    pub selector: String,
}

fn node_room(n: &Node) -> NodeRoom {
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
}

/// Each node's room: allocatable minus the requests of the pods bound to
/// it, leaving out finished pods and those in `exclude`.
pub fn rooms(nodes: &[Node], pods: &[Pod], exclude: Option<&Exclude>) -> Vec<NodeRoom> {
    let mut out: Vec<NodeRoom> = nodes.iter().map(node_room).collect();
    for pod in pods {
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded") | Some("Failed")) {
            continue;
        }
        if let Some(x) = exclude {
            if pod.metadata.namespace.as_deref() == Some(x.namespace.as_str())
                && labels_match(pod.metadata.labels.as_ref(), &x.selector)
            {
                continue;
            }
        }
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) else {
            continue;
        };
        if let Some(r) = out.iter_mut().find(|r| r.name == node) {
            r.requested = r.requested.plus(pod_requests(pod));
        }
    }
    out
}

/// The cluster's room, per node and summed over the usable ones.
#[derive(Clone, Debug, Default)]
pub struct Capacity {
    /// Every node.
    pub nodes: Vec<NodeRoom>,
    /// Allocatable, over usable nodes.
    pub allocatable: Res,
    /// Requested, over usable nodes.
    pub requested: Res,
    /// Free, over usable nodes.
    pub free: Res,
    /// The most free on any one usable node (what one pod can get).
    pub largest_free: Res,
}

/// Sum the rooms of the usable nodes.
pub fn total(nodes: Vec<NodeRoom>) -> Capacity {
    let mut c = Capacity::default();
    for r in nodes.iter().filter(|r| r.usable) {
        c.allocatable = c.allocatable.plus(r.allocatable);
        c.requested = c.requested.plus(r.requested);
        c.free = c.free.plus(r.free());
        c.largest_free = c.largest_free.max(r.free());
    }
    c.nodes = nodes;
    c
}

/// List the nodes and the pods of every namespace, and work out the room.
pub async fn read(k: &Kube, exclude: Option<&Exclude>) -> Result<Capacity, PrimError> {
    let call = |what| Call {
        what,
        verb: "list",
        resource: what.trim_start_matches("list "),
        ns: None,
    };
    let nodes = Api::<Node>::all(k.client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|e| explain(k, &e, call("list nodes")))?;
    let pods = Api::<Pod>::all(k.client.clone())
        .list(&ListParams::default().fields("status.phase!=Succeeded,status.phase!=Failed"))
        .await
        .map_err(|e| explain(k, &e, call("list pods")))?;
    Ok(total(rooms(&nodes.items, &pods.items, exclude)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        let x = Exclude {
            namespace: "ht".into(),
            selector: "app.kubernetes.io/instance=ht".into(),
        };
        let r = rooms(&nodes, &pods, Some(&x));
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
        let c = total(r);
        assert_eq!(c.free.cpu, 1000);
        assert_eq!(c.largest_free.cpu, 1000);
    }

    #[test]
    fn unready_nodes_do_not_count() {
        let nodes: Vec<Node> = serde_json::from_value(json!([
            {"metadata": {"name": "a"}, "status": {"allocatable": {"cpu": "2"}, "conditions": [{"type": "Ready", "status": "True"}]}},
            {"metadata": {"name": "b"}, "status": {"allocatable": {"cpu": "4"}, "conditions": [{"type": "Ready", "status": "False"}]}},
            {"metadata": {"name": "c"}, "spec": {"unschedulable": true},
             "status": {"allocatable": {"cpu": "8"}, "conditions": [{"type": "Ready", "status": "True"}]}}
        ]))
        .unwrap();
        let c = total(rooms(&nodes, &[], None));
        assert_eq!(c.allocatable.cpu, 2000);
        assert_eq!(c.nodes.len(), 3);
    }

    #[test]
    fn init_containers_count_when_larger_and_overhead_adds() {
        let spec: PodSpec = serde_json::from_value(json!({
            "containers": [{"name": "a", "resources": {"requests": {"cpu": "100m"}}},
                           {"name": "b", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}],
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "500m"}}}],
            "overhead": {"cpu": "10m"}
        }))
        .unwrap();
        assert_eq!(
            spec_requests(&spec),
            Res {
                cpu: 510,
                memory: 64 << 20
            }
        );
        assert_eq!(spec_requests(&spec).times(2).cpu, 1020);
    }

    #[test]
    fn selectors_match_equality_and_existence() {
        let labels: BTreeMap<String, String> = [("app".to_string(), "web".to_string())]
            .into_iter()
            .collect();
        assert!(labels_match(Some(&labels), "app=web"));
        assert!(labels_match(Some(&labels), "app"));
        assert!(!labels_match(Some(&labels), "app=api"));
        assert!(!labels_match(None, "app"));
        assert!(labels_match(None, ""));
    }
}
