//! The JSON shapes `discover_port` understands, and how to find the
//! external endpoint of an internal port in each.
//!
//! - Akash lease status: `forwarded_ports.<service>[]` entries with `host`,
//!   `port` (the container's), `externalPort`, `proto`.
//! - Akash Console API deployment: `data.leases[].status` is a lease status.
//! - Terraform `output -json`: `{name: {value, type, sensitive}}`, the output
//!   named by the source's `output`; value `"host:port"` or `{host, port}`.
//! - A plain `"host:port"` or `{host, port}`.

use serde_json::Value;

/// What one look at a source found.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// Not there yet; the text says what was seen.
    Pending(String),
    /// An endpoint `host:port`, not yet validated.
    Endpoint(String),
}

/// The shapes, for error messages.
pub const KNOWN: &str = "an Akash lease status (forwarded_ports), an Akash Console deployment (data.leases[].status), Terraform `output -json` (with `output: \"name\"`), \"host:port\", or {host, port}";

/// Find the endpoint that forwards `internal_port`. `service` narrows the
/// Akash shapes to one service; `output` names the Terraform output.
pub fn find(
    v: &Value,
    internal_port: u16,
    service: Option<&str>,
    output: Option<&str>,
) -> Result<Found, String> {
    match v {
        Value::Null => Ok(Found::Pending("null".into())),
        Value::String(s) if s.is_empty() => Ok(Found::Pending("an empty string".into())),
        Value::String(s) => Ok(Found::Endpoint(s.clone())),
        Value::Object(o) => {
            if o.contains_key("forwarded_ports") {
                return lease_status(v, internal_port, service);
            }
            if let Some(data) = o.get("data").and_then(Value::as_object) {
                if let Some(leases) = data.get("leases") {
                    return console_deployment(leases, internal_port, service);
                }
            }
            if o.contains_key("host") && o.contains_key("port") {
                return host_port(v).map(Found::Endpoint);
            }
            if let Some(name) = output {
                return terraform_output(o, name);
            }
            if !o.is_empty() && o.values().all(|x| x.get("value").is_some()) {
                let names: Vec<&str> = o.keys().map(String::as_str).collect();
                return Err(format!(
                    "this is Terraform output; name the output that holds the endpoint with `output: \"…\"` in the source (outputs: {})",
                    names.join(", ")
                ));
            }
            Err(unknown(v))
        }
        _ => Err(unknown(v)),
    }
}

fn unknown(v: &Value) -> String {
    let seen = match v {
        Value::Object(o) => format!(
            "an object with keys {}",
            o.keys().take(8).cloned().collect::<Vec<_>>().join(", ")
        ),
        Value::Array(_) => "an array".into(),
        Value::Bool(_) => "a boolean".into(),
        Value::Number(_) => "a number".into(),
        _ => "something else".into(),
    };
    format!("the source answered a shape runbook does not know ({seen}); it understands {KNOWN}")
}

fn port_of(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn host_port(v: &Value) -> Result<String, String> {
    let host = v
        .get("host")
        .and_then(Value::as_str)
        .ok_or("the {host, port} object has no string 'host'")?;
    let port = v
        .get("port")
        .and_then(port_of)
        .ok_or("the {host, port} object has no numeric 'port'")?;
    Ok(format!("{host}:{port}"))
}

fn lease_status(v: &Value, internal_port: u16, service: Option<&str>) -> Result<Found, String> {
    let fwd = match v.get("forwarded_ports") {
        None | Some(Value::Null) => return Ok(Found::Pending("no forwarded ports yet".into())),
        Some(Value::Object(o)) => o,
        Some(_) => return Err("forwarded_ports is not an object of service → entries".into()),
    };
    let mut seen = Vec::new();
    for (svc, entries) in fwd {
        if service.is_some_and(|s| s != svc) {
            continue;
        }
        let Some(entries) = entries.as_array() else {
            return Err(format!("forwarded_ports.{svc} is not a list"));
        };
        for e in entries {
            let port = e.get("port").and_then(port_of);
            seen.push(format!(
                "{svc}:{}",
                port.map_or("?".into(), |p| p.to_string())
            ));
            if port == Some(u64::from(internal_port)) {
                let host = e.get("host").and_then(Value::as_str).ok_or_else(|| {
                    format!("forwarded_ports.{svc} entry for {internal_port} has no host")
                })?;
                let ext = e.get("externalPort").and_then(port_of).ok_or_else(|| {
                    format!("forwarded_ports.{svc} entry for {internal_port} has no externalPort")
                })?;
                return Ok(Found::Endpoint(format!("{host}:{ext}")));
            }
        }
    }
    let scope = service.map_or(String::new(), |s| format!(" of service '{s}'"));
    Ok(Found::Pending(if seen.is_empty() {
        format!("no forwarded port{scope} yet")
    } else {
        format!(
            "forwarded ports{scope} {} but not {internal_port}",
            seen.join(", ")
        )
    }))
}

fn console_deployment(
    leases: &Value,
    internal_port: u16,
    service: Option<&str>,
) -> Result<Found, String> {
    let Some(leases) = leases.as_array() else {
        return Err("data.leases is not a list".into());
    };
    if leases.is_empty() {
        return Ok(Found::Pending("the deployment has no lease yet".into()));
    }
    let mut last = Found::Pending("no lease status yet".into());
    for lease in leases {
        match lease.get("status") {
            None | Some(Value::Null) => {}
            Some(status) => {
                let found = lease_status(status, internal_port, service)?;
                if matches!(found, Found::Endpoint(_)) {
                    return Ok(found);
                }
                last = found;
            }
        }
    }
    Ok(last)
}

fn terraform_output(o: &serde_json::Map<String, Value>, name: &str) -> Result<Found, String> {
    if o.is_empty() {
        return Ok(Found::Pending(
            "no Terraform outputs yet (not applied?)".into(),
        ));
    }
    let Some(out) = o.get(name) else {
        let names: Vec<&str> = o.keys().map(String::as_str).collect();
        return Err(format!(
            "Terraform has no output '{name}'{} (outputs: {})",
            crate::suggest::hint(name, names.iter().copied()),
            names.join(", ")
        ));
    };
    let Some(value) = out.get("value") else {
        return Err(format!(
            "Terraform output '{name}' has no 'value' (is this `terraform output -json`?)"
        ));
    };
    match value {
        Value::Null => Ok(Found::Pending(format!("output '{name}' is null"))),
        Value::String(s) if s.is_empty() => Ok(Found::Pending(format!("output '{name}' is empty"))),
        Value::String(s) => Ok(Found::Endpoint(s.clone())),
        Value::Object(_) => host_port(value).map(Found::Endpoint),
        _ => Err(format!(
            "Terraform output '{name}' is neither \"host:port\" nor {{host, port}}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reference(name: &str) -> Value {
        // Copies of ../shared/reference/akash, the real shapes.
        let path = format!("{}/tests/data/akash/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(path).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn real_lease_status_shapes() {
        assert_eq!(
            find(&reference("lease-status.json"), 7072, None, None).unwrap(),
            Found::Endpoint("provider.europlots.com:31877".into())
        );
        assert!(matches!(
            find(&reference("lease-status-pending.json"), 7072, None, None).unwrap(),
            Found::Pending(_)
        ));
        assert!(matches!(
            find(&reference("console-deployment.json"), 7072, None, None).unwrap(),
            Found::Pending(_)
        ));
    }

    #[test]
    fn service_filter_and_other_ports() {
        let v = json!({"forwarded_ports": {"node": [{"host": "h.com", "port": 7071, "externalPort": 30001}]}});
        match find(&v, 7072, None, None).unwrap() {
            Found::Pending(s) => assert!(s.contains("node:7071 but not 7072"), "{s}"),
            f => panic!("{f:?}"),
        }
        let v = json!({"forwarded_ports": {"node": [{"host": "h.com", "port": 7072, "externalPort": 30001}]}});
        assert!(matches!(
            find(&v, 7072, Some("api"), None).unwrap(),
            Found::Pending(_)
        ));
        assert_eq!(
            find(&v, 7072, Some("node"), None).unwrap(),
            Found::Endpoint("h.com:30001".into())
        );
    }

    #[test]
    fn console_deployment_with_ready_lease() {
        let v = json!({"data": {"leases": [{"status": {"forwarded_ports": {"node": [
            {"host": "p.io", "port": 7072, "externalPort": 31000, "proto": "TCP"}]}}}]}});
        assert_eq!(
            find(&v, 7072, None, None).unwrap(),
            Found::Endpoint("p.io:31000".into())
        );
    }

    #[test]
    fn terraform_outputs() {
        let v = json!({"banano_rpc_endpoint": {"sensitive": false, "type": "string", "value": "p.io:31000"}});
        assert_eq!(
            find(&v, 7072, None, Some("banano_rpc_endpoint")).unwrap(),
            Found::Endpoint("p.io:31000".into())
        );
        let err = find(&v, 7072, None, None).unwrap_err();
        assert!(err.contains("name the output"), "{err}");
        let err = find(&v, 7072, None, Some("banano_rpc_endpont")).unwrap_err();
        assert!(err.contains("did you mean 'banano_rpc_endpoint'"), "{err}");
        let v = json!({"e": {"value": ""}});
        assert!(matches!(
            find(&v, 7072, None, Some("e")).unwrap(),
            Found::Pending(_)
        ));
        let v = json!({"e": {"value": {"host": "a.b", "port": 2000}}});
        assert_eq!(
            find(&v, 7072, None, Some("e")).unwrap(),
            Found::Endpoint("a.b:2000".into())
        );
    }

    #[test]
    fn plain_shapes_and_unknown_ones() {
        assert_eq!(
            find(&json!("a.b:2000"), 1, None, None).unwrap(),
            Found::Endpoint("a.b:2000".into())
        );
        assert_eq!(
            find(&json!({"host": "a.b", "port": "2000"}), 1, None, None).unwrap(),
            Found::Endpoint("a.b:2000".into())
        );
        assert!(matches!(
            find(&json!(null), 1, None, None).unwrap(),
            Found::Pending(_)
        ));
        for v in [json!({"hello": "world"}), json!([1]), json!(3), json!(true)] {
            let err = find(&v, 1, None, None).unwrap_err();
            assert!(err.contains("does not know"), "{err}");
        }
        assert!(find(&json!({"forwarded_ports": []}), 1, None, None).is_err());
        assert!(find(
            &json!({"forwarded_ports": {"n": [{"port": 1}]}}),
            1,
            None,
            None
        )
        .is_err());
    }
}
