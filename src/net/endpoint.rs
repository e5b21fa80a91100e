//! The endpoint rules of the split-deploy plan (`validate_endpoint`,
//! `discover_port`, the kube source), without Rhai. Host an RFC 1123 host
//! name (dot-separated labels of 1–63 of `a-z0-9-`, no label starting or
//! ending with `-`, 253 characters at most) with at least one letter or
//! hyphen (so a bare dotted number is refused); port an integer
//! 1024–65535; nothing else. Options change them for other uses:
//! `allow_ip`, `ports`, and `host_rule: "plan"` for the plan's literal
//! pattern `[a-z0-9.-]+`, which also lets through `-`, `a..b` and `.a.`.

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

/// The rules an endpoint is checked by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    /// Accept a bare dotted number (an IPv4 address) as the host.
    pub allow_ip: bool,
    /// The port range, inclusive.
    pub ports: (u16, u16),
    /// How a host name is judged.
    pub host_rule: HostRule,
}

/// How a host name is judged (both allow only `a-z`, `0-9`, `.`, `-`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HostRule {
    /// RFC 1123 labels: what people mean by a host name.
    #[default]
    Rfc1123,
    /// The plan's literal pattern `[a-z0-9.-]+`, kept for endpoints
    /// that were accepted before the labels were checked.
    Plan,
}

impl HostRule {
    /// The rule a script names: `"rfc1123"` or `"plan"`.
    pub fn parse(s: &str) -> Option<HostRule> {
        match s {
            "rfc1123" => Some(HostRule::Rfc1123),
            "plan" => Some(HostRule::Plan),
            _ => None,
        }
    }
}

impl Default for Rules {
    /// The split-deploy plan's rules: a provider's host name and a
    /// forwarded port (never below 1024).
    fn default() -> Rules {
        Rules {
            allow_ip: false,
            ports: (1024, 65535),
            host_rule: HostRule::Rfc1123,
        }
    }
}

/// Check a host on its own.
pub fn validate_host(host: &str) -> Result<(), String> {
    validate_host_with(host, &Rules::default())
}

/// Check a host by `rules`.
pub fn validate_host_with(host: &str, rules: &Rules) -> Result<(), String> {
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
    if !rules.allow_ip && !host.chars().any(|c| c.is_ascii_lowercase() || c == '-') {
        return Err(format!(
            "the host '{host}' has no letter or hyphen: a bare dotted number (an IP address) is not accepted; use the provider's host name (or pass #{{ allow_ip: true }})"
        ));
    }
    if rules.allow_ip
        && host
            .split('.')
            .all(|p| p.chars().all(|c| c.is_ascii_digit()))
    {
        let parts: Vec<&str> = host.split('.').collect();
        let ok = parts.len() == 4
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.len() <= 3 && p.parse::<u8>().is_ok());
        if !ok {
            return Err(format!(
                "the host '{host}' is not an IPv4 address (four numbers 0-255) nor a host name"
            ));
        }
        return Ok(());
    }
    if rules.host_rule == HostRule::Rfc1123 {
        rfc1123(host)?;
    }
    Ok(())
}

/// RFC 1123 labels, on a host already made only of `a-z0-9.-`.
fn rfc1123(host: &str) -> Result<(), String> {
    const HINT: &str = "a host name is labels of 1-63 of a-z, 0-9 and '-' joined by '.', none starting or ending with '-' (pass #{ host_rule: \"plan\" } for the plan's looser pattern)";
    if host.len() > 253 {
        return Err(format!(
            "the host '{host}' is {} characters long, more than 253: {HINT}",
            host.len()
        ));
    }
    for label in host.split('.') {
        let why = if label.is_empty() {
            "has an empty label (a leading, trailing or doubled '.')".to_string()
        } else if label.len() > 63 {
            format!("has a label of {} characters, more than 63", label.len())
        } else if label.starts_with('-') || label.ends_with('-') {
            format!("has the label '{label}', which starts or ends with '-'")
        } else {
            continue;
        };
        return Err(format!("the host '{host}' {why}: {HINT}"));
    }
    Ok(())
}

/// Check a port given as text.
pub fn validate_port(port: &str) -> Result<u16, String> {
    validate_port_with(port, &Rules::default())
}

/// Check a port given as text, by `rules`.
pub fn validate_port_with(port: &str, rules: &Rules) -> Result<u16, String> {
    if port.is_empty() {
        return Err("the port is empty".into());
    }
    if !port.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("the port '{port}' is not an integer"));
    }
    if port.len() > 1 && port.starts_with('0') {
        return Err(format!("the port '{port}' has a leading zero"));
    }
    let (lo, hi) = rules.ports;
    match port.parse::<u32>() {
        Ok(p) if (u32::from(lo)..=u32::from(hi)).contains(&p) => Ok(p as u16),
        _ if rules.ports == Rules::default().ports => Err(format!(
            "the port {port} is outside 1024–65535 (ports below 1024 are never a forwarded port; pass #{{ ports: [1, 65535] }} for other uses)"
        )),
        _ => Err(format!("the port {port} is outside {lo}–{hi} (the `ports` option)")),
    }
}

/// Validate `host:port` by the plan's rules.
pub fn validate(s: &str) -> Result<Endpoint, String> {
    validate_with(s, &Rules::default())
}

/// Validate `host:port` by `rules`.
pub fn validate_with(s: &str, rules: &Rules) -> Result<Endpoint, String> {
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(format!(
            "'{s}' has no ':port'; an endpoint is written host:port, e.g. provider.example.com:31877"
        ));
    };
    validate_host_with(host, rules).map_err(|e| format!("'{s}': {e}"))?;
    let port = validate_port_with(port, rules).map_err(|e| format!("'{s}': {e}"))?;
    Ok(Endpoint {
        host: host.to_string(),
        port,
    })
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
            ("-:1024", "starts or ends with '-'"),
            ("a..b:2000", "empty label"),
            (".a.:3000", "empty label"),
            ("a.:3000", "empty label"),
            ("node-.example:3000", "starts or ends with '-'"),
        ];
        for (input, want) in cases {
            let err = validate(input).unwrap_err();
            assert!(err.contains(want), "{input:?}: {err}");
        }
    }

    #[test]
    fn the_plan_rule_keeps_the_literal_pattern() {
        let plan = Rules {
            host_rule: HostRule::Plan,
            ..Rules::default()
        };
        for ok in ["-:1024", "a..b:2000", ".a.:3000"] {
            assert!(validate_with(ok, &plan).is_ok(), "{ok}");
        }
        assert!(validate_with("A.b:2000", &plan).is_err());
        assert!(validate_with("1.2.3.4:2000", &plan).is_err());
        let long = format!("{}.example:2000", "a".repeat(64));
        assert!(validate(&long).unwrap_err().contains("more than 63"));
        assert!(validate_with(&long, &plan).is_ok());
        let max = format!("{}.example:2000", "a".repeat(63));
        assert!(validate(&max).is_ok());
    }
}
