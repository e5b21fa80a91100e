//! `validate_endpoint(s[, opts])`: the binding of the endpoint rules in
//! [`crate::net::endpoint`]. Options loosen them for other uses:
//! `allow_ip`, `ports`.

use rhai::{Dynamic, Engine, ImmutableString, Map};

use crate::context::{error, RhaiResult};
use crate::declare::{Opt, Spec};
pub use crate::net::endpoint::{validate, validate_with, Endpoint, HostRule, Rules};
use crate::opts::Opts;

#[rustfmt::skip]
static SPEC: Spec = Spec {
    name: "validate_endpoint",
    params: &["endpoint: String"],
    returns: "Map",
    doc: include_str!("docs/validate_endpoint.md"),
    opts: &[
        Opt { key: "allow_ip", ty: "bool", default: "false", help: "accept an IPv4 address as the host" },
        Opt { key: "ports", ty: "[int, int]", default: "[1024, 65535]", help: "the port range `[low, high]`, inclusive" },
        Opt { key: "host_rule", ty: "string", default: "\"rfc1123\"", help: "`\"rfc1123\"` (host-name labels) or `\"plan\"` (the plan's literal `[a-z0-9.-]+`)" },
    ],
};

/// As the map the primitive returns: `#{host, port, endpoint}`.
pub fn to_map(ep: &Endpoint) -> Map {
    let mut m = Map::new();
    m.insert("host".into(), Dynamic::from(ep.host.clone()));
    m.insert("port".into(), Dynamic::from(i64::from(ep.port)));
    m.insert("endpoint".into(), Dynamic::from(ep.to_string()));
    m
}

/// Read the options of `validate_endpoint(s, opts)`.
pub fn rules_from(o: &Opts) -> RhaiResult<Rules> {
    let mut rules = Rules::default();
    if let Some(b) = o.bool("allow_ip")? {
        rules.allow_ip = b;
    }
    if let Some(r) = o.str("host_rule")? {
        rules.host_rule = HostRule::parse(&r).ok_or_else(|| {
            error(format!(
                "validate_endpoint: option 'host_rule' is \"rfc1123\" or \"plan\", got \"{r}\""
            ))
        })?;
    }
    if let Some(a) = o.array("ports")? {
        let nums: Vec<Option<u16>> = a
            .iter()
            .map(|v| {
                v.as_int()
                    .ok()
                    .and_then(|i| u16::try_from(i).ok())
                    .filter(|p| *p >= 1)
            })
            .collect();
        match nums.as_slice() {
            [Some(lo), Some(hi)] if lo <= hi => rules.ports = (*lo, *hi),
            _ => {
                return Err(error(format!(
                    "validate_endpoint: option 'ports' wants [low, high] with 1 <= low <= high <= 65535, got {}",
                    Dynamic::from(a)
                )))
            }
        }
    }
    Ok(rules)
}

/// Register `validate_endpoint`.
pub fn register(engine: &mut Engine) {
    SPEC.register1(engine, |s: ImmutableString, o: &Opts| -> RhaiResult<Map> {
        let ep = validate_with(&s, &rules_from(o)?)
            .map_err(|e| error(format!("validate_endpoint: {e}")))?;
        tracing::info!(primitive = "validate_endpoint", endpoint = %ep, outcome = "valid", "endpoint {ep} is valid");
        Ok(to_map(&ep))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_loosen_the_rules_and_defaults_stay() {
        let mut engine = Engine::new();
        register(&mut engine);
        let ok = |src: &str| engine.eval::<Map>(src).map(|m| m["endpoint"].to_string());
        assert_eq!(
            ok(r#"validate_endpoint("10.0.0.5:5432", #{ allow_ip: true })"#).unwrap(),
            "10.0.0.5:5432"
        );
        assert_eq!(
            ok(r#"validate_endpoint("-:1024", #{ host_rule: "plan" })"#).unwrap(),
            "-:1024"
        );
        assert_eq!(
            ok(r#"validate_endpoint("db.example:80", #{ ports: [1, 65535] })"#).unwrap(),
            "db.example:80"
        );
        for (src, want) in [
            (r#"validate_endpoint("10.0.0.5:5432")"#, "allow_ip: true"),
            (r#"validate_endpoint("db.example:80")"#, "ports: [1, 65535]"),
            (
                r#"validate_endpoint("db.example:80", #{})"#,
                "outside 1024–65535",
            ),
            (
                r#"validate_endpoint("10.0.0.5:80", #{ allow_ip: true })"#,
                "outside 1024",
            ),
            (
                r#"validate_endpoint("db.example:9000", #{ ports: [80, 443] })"#,
                "outside 80–443",
            ),
            (
                r#"validate_endpoint("300.1.1.1:5432", #{ allow_ip: true })"#,
                "not an IPv4 address",
            ),
            (
                r#"validate_endpoint("1.2.3:5432", #{ allow_ip: true })"#,
                "not an IPv4 address",
            ),
            (r#"validate_endpoint("-:1024")"#, "host_rule: \"plan\""),
            (
                r#"validate_endpoint("a.b:5432", #{ host_rule: "loose" })"#,
                "is \"rfc1123\" or \"plan\", got \"loose\"",
            ),
            (
                r#"validate_endpoint("a.b:5432", #{ ports: [0, 10] })"#,
                "wants [low, high]",
            ),
            (
                r#"validate_endpoint("a.b:5432", #{ port: [1, 10] })"#,
                "did you mean 'ports'",
            ),
        ] {
            let err = ok(src).unwrap_err().to_string();
            assert!(err.contains(want), "{src}: {err}");
        }
    }
}
