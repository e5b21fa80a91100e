//! `validate_endpoint(s)`: the endpoint rules of the split-deploy plan.
//! Host `[a-z0-9.-]+`, not empty, with at least one letter or hyphen (so a
//! bare dotted number is refused); port an integer 1024–65535; nothing else.

use rhai::{Dynamic, Engine, FuncRegistration, Map};

use crate::context::{error, RhaiResult};

/// A validated `host:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The host name.
    pub host: String,
    /// The port, 1024–65535.
    pub port: u16,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl Endpoint {
    /// As the map the primitive returns: `#{host, port, endpoint}`.
    pub fn to_map(&self) -> Map {
        let mut m = Map::new();
        m.insert("host".into(), Dynamic::from(self.host.clone()));
        m.insert("port".into(), Dynamic::from(i64::from(self.port)));
        m.insert("endpoint".into(), Dynamic::from(self.to_string()));
        m
    }
}

/// Check a host on its own.
pub fn validate_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    if let Some(c) = host
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '.' || *c == '-'))
    {
        let why = if c.is_ascii_uppercase() {
            "uppercase letters are not allowed; write the host in lowercase"
        } else if c.is_whitespace() {
            "white space is not allowed"
        } else {
            "only a-z, 0-9, '.' and '-' are allowed"
        };
        return Err(format!("the host '{host}' has the character {c:?}: {why}"));
    }
    if !host.chars().any(|c| c.is_ascii_lowercase() || c == '-') {
        return Err(format!(
            "the host '{host}' has no letter or hyphen: a bare dotted number (an IP address) is not accepted; use the provider's host name"
        ));
    }
    Ok(())
}

/// Check a port given as text.
pub fn validate_port(port: &str) -> Result<u16, String> {
    if port.is_empty() {
        return Err("the port is empty".into());
    }
    if !port.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("the port '{port}' is not an integer"));
    }
    if port.len() > 1 && port.starts_with('0') {
        return Err(format!("the port '{port}' has a leading zero"));
    }
    match port.parse::<u32>() {
        Ok(p) if (1024..=65535).contains(&p) => Ok(p as u16),
        _ => Err(format!(
            "the port {port} is outside 1024–65535 (ports below 1024 are never a forwarded port)"
        )),
    }
}

/// Validate `host:port` by the plan's rules.
pub fn validate(s: &str) -> Result<Endpoint, String> {
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(format!(
            "'{s}' has no ':port'; an endpoint is written host:port, e.g. provider.example.com:31877"
        ));
    };
    validate_host(host).map_err(|e| format!("'{s}': {e}"))?;
    let port = validate_port(port).map_err(|e| format!("'{s}': {e}"))?;
    Ok(Endpoint {
        host: host.to_string(),
        port,
    })
}

const DOC: &str = "\
/// Validate an endpoint `host:port` and split it.
///
/// Rules (the split-deploy plan): the host matches `[a-z0-9.-]+`, is not
/// empty and has at least one letter or hyphen, so a bare dotted number is
/// refused; the port is an integer 1024-65535; nothing else in the string.
///
/// Returns `#{host, port, endpoint}`. Throws naming the rule broken.
///
/// ```rhai
/// let ep = validate_endpoint(\"provider.europlots.com:31877\");
/// print(ep.port);   // 31877
/// ```";

/// Register `validate_endpoint`.
pub fn register(engine: &mut Engine) {
    FuncRegistration::new("validate_endpoint")
        .with_params_info(["endpoint: &str", "Map"])
        .with_comments([DOC])
        .register_into_engine(engine, |s: &str| -> RhaiResult<Map> {
            match validate(s) {
                Ok(ep) => {
                    tracing::info!(primitive = "validate_endpoint", endpoint = %ep, outcome = "valid", "endpoint {ep} is valid");
                    Ok(ep.to_map())
                }
                Err(e) => Err(error(format!("validate_endpoint: {e}"))),
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_provider_hosts() {
        let ep = validate("provider.europlots.com:31877").unwrap();
        assert_eq!(ep.host, "provider.europlots.com");
        assert_eq!(ep.port, 31877);
        assert!(validate("a-1:1024").is_ok());
        assert!(validate("x:65535").is_ok());
        assert!(validate("node-1.example:2000").is_ok());
    }

    #[test]
    fn refuses_each_rule() {
        let cases = [
            ("", "no ':port'"),
            ("host", "no ':port'"),
            (":31877", "host is empty"),
            ("10.0.0.1:31877", "bare dotted number"),
            ("1234:31877", "bare dotted number"),
            ("Provider.com:31877", "uppercase"),
            ("pro vider:31877", "white space"),
            ("provider_x.com:31877", "only a-z"),
            ("p.com:1023", "outside 1024"),
            ("p.com:65536", "outside 1024"),
            ("p.com:0", "outside 1024"),
            ("p.com:", "port is empty"),
            ("p.com:31877 ", "not an integer"),
            ("p.com:+3187", "not an integer"),
            ("p.com:31a77", "not an integer"),
            ("p.com:07072", "leading zero"),
            ("p.com:99999999999999999999", "outside 1024"),
            ("http://p.com:31877", "only a-z"),
            ("[::1]:31877", "only a-z"),
        ];
        for (input, want) in cases {
            let err = validate(input).unwrap_err();
            assert!(err.contains(want), "{input:?}: {err}");
        }
    }
}
