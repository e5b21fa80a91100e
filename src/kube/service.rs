//! Services: the node port of a NodePort Service (by name or by label
//! selector) and the endpoint a node port makes with a node's address
//! (the health check through the API server's proxy: [`super::proxy`]).

use k8s_openapi::api::core::v1::Service;
use kube::api::ListParams;
use kube::Api;

use super::client::{explain, is_status, Call, Kube};
use crate::error::PrimError;

/// Which service port to look at: its number or its name.
#[derive(Clone, Debug, PartialEq, Eq)]
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

/// How to find the Service: its name, or a label selector that must
/// single it out (with the port).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `metadata.name`.
    Name(String),
    /// A label selector, `k=v` pairs joined by commas.
    Selector(String),
}

fn has_port(svc: &Service, port: &PortRef) -> bool {
    let ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or_default();
    ports.iter().any(|p| match port {
        PortRef::Number(n) => p.port == *n,
        PortRef::Name(s) => p.name.as_deref() == Some(s.as_str()),
    })
}

/// The ports a Service has, for messages: "3000 (http), 9090".
fn ports_of(svc: &Service) -> String {
    let ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or_default();
    if ports.is_empty() {
        return "none".into();
    }
    ports
        .iter()
        .map(|p| match &p.name {
            Some(n) => format!("{} ({n})", p.port),
            None => p.port.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn name_of(svc: &Service) -> &str {
    svc.metadata.name.as_deref().unwrap_or("?")
}

/// The NodePort of a Service's port: `Ok(None)` while it has none yet.
pub fn node_port_of(svc: &Service, port: &PortRef) -> Result<Option<u16>, PrimError> {
    let name = name_of(svc);
    let spec = svc.spec.clone().unwrap_or_default();
    let found = spec.ports.iter().flatten().find(|p| match port {
        PortRef::Number(n) => p.port == *n,
        PortRef::Name(s) => p.name.as_deref() == Some(s.as_str()),
    });
    let Some(p) = found else {
        return Err(PrimError::fatal(format!(
            "Service {name} has no port {port}; it has: {}",
            ports_of(svc)
        )));
    };
    let ty = spec.type_.unwrap_or_else(|| "ClusterIP".into());
    if ty != "NodePort" && ty != "LoadBalancer" {
        return Err(PrimError::fatal(format!(
            "Service {name} is of type {ty}, which has no node port; make it NodePort (the chart's frontend.service.type)"
        )));
    }
    match p.node_port {
        Some(n) if (1..=65535).contains(&n) => Ok(Some(n as u16)),
        _ => Ok(None),
    }
}

/// Read Service `ns/svc`: `Ok(None)` when there is none.
pub async fn get(k: &Kube, ns: &str, svc: &str) -> Result<Option<Service>, PrimError> {
    let api: Api<Service> = Api::namespaced(k.client.clone(), ns);
    match api.get(svc).await {
        Ok(s) => Ok(Some(s)),
        Err(e) if is_status(&e, 404) => Ok(None),
        Err(e) => {
            let what = format!("read Service {ns}/{svc}");
            let call = Call {
                what: &what,
                verb: "get",
                resource: "services",
                ns: Some(ns),
            };
            Err(explain(k, &e, call))
        }
    }
}

/// The Services of `ns` matching `selector`.
pub async fn select(k: &Kube, ns: &str, selector: &str) -> Result<Vec<Service>, PrimError> {
    let api: Api<Service> = Api::namespaced(k.client.clone(), ns);
    let what = format!("list services -l {selector} in {ns}");
    let call = Call {
        what: &what,
        verb: "list",
        resource: "services",
        ns: Some(ns),
    };
    let list = api
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(|e| explain(k, &e, call))?;
    Ok(list.items)
}

/// Of the Services a selector matched, the one with `port`: none matched
/// is `Ok(None)` (not created yet); several with the port, or none with
/// it, is an error naming them (a selector that does not single one out
/// is the caller's to fix).
pub fn pick(
    matched: Vec<Service>,
    ns: &str,
    selector: &str,
    port: &PortRef,
) -> Result<Option<Service>, PrimError> {
    if matched.is_empty() {
        return Ok(None);
    }
    let (mut with, without): (Vec<Service>, Vec<Service>) =
        matched.into_iter().partition(|s| has_port(s, port));
    match with.len() {
        1 => Ok(with.pop()),
        0 => Err(PrimError::fatal(format!(
            "no Service matching {selector} in {ns} has port {port}: {}",
            without
                .iter()
                .map(|s| format!("{} has {}", name_of(s), ports_of(s)))
                .collect::<Vec<_>>()
                .join("; ")
        ))),
        _ => Err(PrimError::fatal(format!(
            "{} Services matching {selector} in {ns} have port {port} ({}); narrow the selector so it names one",
            with.len(),
            with.iter().map(name_of).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// One look for a node endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Look {
    /// `host:port`: the node address with the Service's node port.
    Found(String),
    /// Not there yet, and why.
    Pending(String),
}

/// One look for the node endpoint of a Service's port: found, or pending
/// while the Service (or its node port) is not there yet. The host is
/// `node`, else the API server's host.
pub async fn node_endpoint(
    k: &Kube,
    ns: &str,
    target: &Target,
    port: &PortRef,
    node: Option<&str>,
) -> Result<Look, PrimError> {
    let svc = match target {
        Target::Name(name) => get(k, ns, name).await?,
        Target::Selector(sel) => pick(select(k, ns, sel).await?, ns, sel, port)?,
    };
    let Some(s) = svc else {
        return Ok(Look::Pending(match target {
            Target::Name(name) => format!("Service {ns}/{name} does not exist yet"),
            Target::Selector(sel) => format!("no Service in {ns} matches {sel} yet"),
        }));
    };
    match node_port_of(&s, port)? {
        Some(np) => {
            let host = node.unwrap_or(&k.host);
            Ok(Look::Found(join_host_port(host, np)))
        }
        None => Ok(Look::Pending(format!(
            "Service {ns}/{} has no node port for {port} yet",
            name_of(&s)
        ))),
    }
}

/// Where `discover_port` looks for a node port: a Service, by name or by
/// label selector, in a namespace of a context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service, or the selector that singles it out.
    pub target: Target,
    /// Its port (default: the caller's internal port).
    pub port: Option<PortRef>,
    /// The node address to pair with the node port (default: the API
    /// server's host).
    pub node: Option<String>,
    /// The kube context.
    pub context: Option<String>,
}

impl Source {
    /// As messages name it.
    pub fn describe(&self) -> String {
        match &self.target {
            Target::Name(n) => format!("Service {}/{n}", self.namespace),
            Target::Selector(sel) => format!("the Service matching {sel} in {}", self.namespace),
        }
    }

    /// One look through the run's `clients`; `internal_port` when the
    /// source names no port.
    pub async fn look(
        &self,
        clients: &super::Clients,
        internal_port: u16,
    ) -> Result<Look, PrimError> {
        let k = clients.connect(self.context.as_deref()).await?;
        let port = self
            .port
            .clone()
            .unwrap_or(PortRef::Number(i32::from(internal_port)));
        node_endpoint(
            &k,
            &self.namespace,
            &self.target,
            &port,
            self.node.as_deref(),
        )
        .await
    }
}

/// `host:port`, an IPv6 address in brackets.
pub fn join_host_port(host: &str, port: u16) -> String {
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
    let port = crate::net::endpoint::validate_port(port)?;
    if host.parse::<std::net::IpAddr>().is_err() {
        crate::net::endpoint::validate_host(host)?;
    }
    Ok(join_host_port(host, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;
    use serde_json::json;

    fn svc(name: &str, ty: &str, port: i32, node_port: Option<i32>) -> Service {
        let mut p = json!({"name": "http", "port": port});
        if let Some(n) = node_port {
            p["nodePort"] = json!(n);
        }
        serde_json::from_value(
            json!({"metadata": {"name": name}, "spec": {"type": ty, "ports": [p]}}),
        )
        .unwrap()
    }

    #[test]
    fn node_ports() {
        let front = svc("front", "NodePort", 3000, Some(30080));
        assert_eq!(
            node_port_of(&front, &PortRef::Number(3000)).unwrap(),
            Some(30080)
        );
        assert_eq!(
            node_port_of(&front, &PortRef::Name("http".into())).unwrap(),
            Some(30080)
        );
        assert!(node_port_of(&front, &PortRef::Number(80))
            .unwrap_err()
            .msg
            .contains("3000 (http)"));
        let pending = svc("front", "NodePort", 3000, None);
        assert_eq!(
            node_port_of(&pending, &PortRef::Number(3000)).unwrap(),
            None
        );
        let cip = svc("back", "ClusterIP", 8000, None);
        assert!(node_port_of(&cip, &PortRef::Number(8000))
            .unwrap_err()
            .msg
            .contains("ClusterIP"));
    }

    #[test]
    fn a_selector_must_single_out_one_service_with_the_port() {
        let port = PortRef::Number(3000);
        let both = || {
            vec![
                svc("ht-backend", "ClusterIP", 8000, None),
                svc("ht-frontend", "NodePort", 3000, Some(30080)),
            ]
        };
        let one = pick(both(), "ht", "app=ht", &port).unwrap().unwrap();
        assert_eq!(one.metadata.name.as_deref(), Some("ht-frontend"));
        assert_eq!(
            pick(vec![], "ht", "app=nope", &port).unwrap().map(|_| ()),
            None
        );
        let e = pick(both(), "ht", "app=ht", &PortRef::Number(80)).unwrap_err();
        assert_eq!(e.kind, Kind::Fatal);
        assert!(
            e.msg
                .contains("ht-backend has 8000 (http); ht-frontend has 3000 (http)"),
            "{e}"
        );
        let mut two = both();
        two.push(svc("ht-admin", "NodePort", 3000, Some(30081)));
        let e = pick(two, "ht", "app=ht", &port).unwrap_err();
        assert!(
            e.msg.contains(
                "2 Services matching app=ht in ht have port 3000 (ht-frontend, ht-admin)"
            ),
            "{e}"
        );
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
}
