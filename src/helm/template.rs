//! The chart as Helm renders it (`helm template`): its workloads with
//! their replica counts and resource requests, its Services with their
//! ports and the HTTP path their pods are probed on. A flow reads these
//! instead of re-implementing Helm's values merge and the chart's name
//! templates, which it would get subtly wrong.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::PodSpec;
use serde::Deserialize;
use serde_json::Value;

use super::argv::{template_argv, TemplateOpts};
use super::{run_bounded, Runner};
use crate::error::PrimError;
use crate::kube::capacity::{spec_requests, Res};

/// Labels (or a selector) as a map.
pub type Labels = BTreeMap<String, String>;

/// The label that names an object's part of the app (Kubernetes'
/// recommended labels): "backend", "frontend", …
pub const COMPONENT: &str = "app.kubernetes.io/component";

/// A rendered object that runs pods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    /// Deployment, StatefulSet, ReplicaSet, DaemonSet, Job or Pod.
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
    /// `app.kubernetes.io/component`, when set.
    pub component: Option<String>,
    /// Pods it runs (`spec.replicas`, default 1; a Job's parallelism; 1
    /// for a DaemonSet, per node).
    pub replicas: i64,
    /// What one pod requests.
    pub pod_requests: Res,
    /// The readiness probe's HTTP path (first container that has one).
    pub health_path: Option<String>,
    /// The pod template's labels (what Services select).
    pub pod_labels: Labels,
}

/// One port of a rendered Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    /// `name`, when set.
    pub name: Option<String>,
    /// `port`.
    pub port: i64,
    /// `nodePort`, when fixed by the chart.
    pub node_port: Option<i64>,
}

/// A rendered Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Svc {
    /// `metadata.name`.
    pub name: String,
    /// `spec.type` (ClusterIP when unset).
    pub type_: String,
    /// `app.kubernetes.io/component`, when set.
    pub component: Option<String>,
    /// Its ports.
    pub ports: Vec<Port>,
    /// The health path of the workload it selects, if one is probed over HTTP.
    pub health_path: Option<String>,
}

/// What the chart renders to, as far as a flow needs it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rendered {
    /// Workloads, in the order Helm printed them.
    pub workloads: Vec<Workload>,
    /// Services, likewise.
    pub services: Vec<Svc>,
    /// Every workload's pods' requests, times its replicas.
    pub requests: Res,
}

fn str_at<'a>(v: &'a Value, p: &str) -> Option<&'a str> {
    v.pointer(p).and_then(Value::as_str)
}

fn labels_of(v: &Value) -> Labels {
    v.as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn labels_at(v: &Value, p: &str) -> Labels {
    v.pointer(p).map(labels_of).unwrap_or_default()
}

/// Where a kind keeps its pod spec, and how many pods it runs.
fn pod_spec_of(kind: &str, doc: &Value) -> Option<(Value, Value, i64)> {
    let count = |p: &str| doc.pointer(p).and_then(Value::as_i64).unwrap_or(1).max(0);
    let (spec, labels, n) = match kind {
        "Deployment" | "StatefulSet" | "ReplicaSet" => (
            "/spec/template/spec",
            "/spec/template/metadata/labels",
            count("/spec/replicas"),
        ),
        "DaemonSet" => ("/spec/template/spec", "/spec/template/metadata/labels", 1),
        "Job" => (
            "/spec/template/spec",
            "/spec/template/metadata/labels",
            count("/spec/parallelism"),
        ),
        "Pod" => ("/spec", "/metadata/labels", 1),
        _ => return None,
    };
    Some((
        doc.pointer(spec)?.clone(),
        doc.pointer(labels).cloned().unwrap_or(Value::Null),
        n,
    ))
}

fn workload(kind: &str, doc: &Value) -> Result<Option<Workload>, PrimError> {
    let Some((spec, labels, replicas)) = pod_spec_of(kind, doc) else {
        return Ok(None);
    };
    let name = str_at(doc, "/metadata/name").unwrap_or("?").to_string();
    let pod: PodSpec = serde_json::from_value(spec).map_err(|e| {
        PrimError::fatal(format!(
            "`helm template` rendered {kind} {name} with a pod spec Kubernetes would refuse: {e}"
        ))
    })?;
    let health_path = pod
        .containers
        .iter()
        .find_map(|c| c.readiness_probe.as_ref()?.http_get.as_ref()?.path.clone());
    Ok(Some(Workload {
        kind: kind.to_string(),
        component: labels_at(doc, "/metadata/labels").remove(COMPONENT),
        name,
        replicas,
        pod_requests: spec_requests(&pod),
        health_path,
        pod_labels: labels_of(&labels),
    }))
}

fn service(doc: &Value) -> Svc {
    let ports = doc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .map(|p| Port {
                    name: str_at(p, "/name").map(str::to_string),
                    port: p.get("port").and_then(Value::as_i64).unwrap_or(0),
                    node_port: p.get("nodePort").and_then(Value::as_i64),
                })
                .collect()
        })
        .unwrap_or_default();
    Svc {
        name: str_at(doc, "/metadata/name").unwrap_or("?").to_string(),
        type_: str_at(doc, "/spec/type").unwrap_or("ClusterIP").to_string(),
        component: labels_at(doc, "/metadata/labels").remove(COMPONENT),
        ports,
        health_path: None,
    }
}

/// Parse `helm template`'s multi-document YAML. Objects of other kinds
/// (ConfigMaps, Secrets, …) are skipped; their content is never kept.
pub fn parse_manifests(text: &str) -> Result<Rendered, PrimError> {
    let mut out = Rendered::default();
    let mut selectors: Vec<Labels> = Vec::new();
    for doc in serde_norway::Deserializer::from_str(text) {
        let doc = Value::deserialize(doc).map_err(|e| {
            PrimError::fatal(format!(
                "`helm template` printed something that is not YAML ({e})"
            ))
        })?;
        let Some(kind) = str_at(&doc, "/kind") else {
            continue;
        };
        if kind == "Service" {
            selectors.push(labels_at(&doc, "/spec/selector"));
            out.services.push(service(&doc));
        } else if let Some(w) = workload(kind, &doc)? {
            out.requests = out.requests.plus(w.pod_requests.times(w.replicas));
            out.workloads.push(w);
        }
    }
    for (svc, sel) in out.services.iter_mut().zip(selectors) {
        svc.health_path = out
            .workloads
            .iter()
            .find(|w| !sel.is_empty() && sel.iter().all(|(k, v)| w.pod_labels.get(k) == Some(v)))
            .and_then(|w| w.health_path.clone());
    }
    Ok(out)
}

/// Render `chart` as release `release` (offline: `helm template` talks to
/// no cluster), bounded by `bound`.
pub async fn render<R: Runner>(
    runner: &R,
    release: &str,
    chart: &str,
    t: &TemplateOpts,
    bound: Duration,
) -> Result<Rendered, PrimError> {
    let out = run_bounded(runner, &template_argv(release, chart, t), bound).await?;
    if out.code != 0 {
        return Err(PrimError::fatal(format!(
            "`helm template {release} {chart}` failed (exit {}): {}",
            out.code,
            out.tail()
        )));
    }
    parse_manifests(&out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::helm::testing::Script;

    const RENDERED: &str = r#"---
# Source: habit-tracker/templates/secret.yaml
apiVersion: v1
kind: Secret
metadata:
  name: ht-secrets
stringData:
  JWT_SECRET: "s3cr3t"
---
apiVersion: v1
kind: Service
metadata:
  name: ht-frontend
  labels: {app.kubernetes.io/component: frontend}
spec:
  type: NodePort
  selector: {app.kubernetes.io/instance: ht, app.kubernetes.io/component: frontend}
  ports:
    - {name: http, port: 3000, targetPort: http, nodePort: 30080}
---
apiVersion: v1
kind: Service
metadata:
  name: ht-backend
  labels: {app.kubernetes.io/component: backend}
spec:
  selector: {app.kubernetes.io/instance: ht, app.kubernetes.io/component: backend}
  ports:
    - {name: http, port: 8000}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ht-backend
  labels: {app.kubernetes.io/component: backend}
spec:
  replicas: 2
  selector: {matchLabels: {app.kubernetes.io/instance: ht}}
  template:
    metadata:
      labels: {app.kubernetes.io/instance: ht, app.kubernetes.io/component: backend}
    spec:
      containers:
        - name: backend
          image: x:1
          readinessProbe: {httpGet: {path: /health, port: http}}
          resources: {requests: {cpu: 250m, memory: 256Mi}}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ht-frontend
  labels: {app.kubernetes.io/component: frontend}
spec:
  selector: {matchLabels: {app.kubernetes.io/instance: ht}}
  template:
    metadata:
      labels: {app.kubernetes.io/instance: ht, app.kubernetes.io/component: frontend}
    spec:
      containers:
        - name: frontend
          image: y:1
          readinessProbe: {httpGet: {path: /, port: http}}
          resources: {requests: {cpu: 250m, memory: 256Mi}}
"#;

    #[test]
    fn workloads_services_and_requests_come_from_the_rendering() {
        let r = parse_manifests(RENDERED).unwrap();
        assert_eq!(
            r.requests,
            Res {
                cpu: 750,
                memory: 768 << 20
            }
        );
        assert_eq!(r.workloads.len(), 2);
        assert_eq!(r.workloads[0].replicas, 2);
        let front = &r.services[0];
        assert_eq!(
            (
                front.name.as_str(),
                front.type_.as_str(),
                front.component.as_deref()
            ),
            ("ht-frontend", "NodePort", Some("frontend"))
        );
        assert_eq!(front.ports[0].node_port, Some(30080));
        assert_eq!(front.health_path.as_deref(), Some("/"));
        let back = &r.services[1];
        assert_eq!(
            (back.type_.as_str(), back.health_path.as_deref()),
            ("ClusterIP", Some("/health"))
        );
        assert!(
            !format!("{r:?}").contains("s3cr3t"),
            "secrets are never kept"
        );
    }

    #[test]
    fn bad_yaml_and_bad_pod_specs_are_refused() {
        assert!(parse_manifests("a: [")
            .unwrap_err()
            .msg
            .contains("not YAML"));
        let bad =
            "kind: Deployment\nmetadata: {name: d}\nspec: {template: {spec: {containers: 3}}}\n";
        assert!(parse_manifests(bad)
            .unwrap_err()
            .msg
            .contains("Deployment d"));
        assert_eq!(parse_manifests("").unwrap(), Rendered::default());
    }

    #[tokio::test]
    async fn a_chart_that_does_not_render_is_an_error() {
        let s = Script::default().on(
            "helm template",
            1,
            "",
            "Error: execution error at (ht/templates/_helpers.tpl:80:4): image needs a concrete tag",
        );
        let e = render(
            &s,
            "ht",
            "chart",
            &TemplateOpts::default(),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(
            e.msg.contains("failed (exit 1): Error: execution error"),
            "{e}"
        );
    }
}
