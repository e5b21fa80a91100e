//! The endpoint rules of the split-deploy plan (`validate_endpoint`,
//! `discover_port`, the kube source), without Rhai. Host `[a-z0-9.-]+`, not empty, with at least one letter or hyphen
//! (so a bare dotted number is refused); port an integer 1024–65535; nothing
//! else. Options loosen them for other uses: `allow_ip`, `ports`.

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
}

impl Default for Rules {
    /// The split-deploy plan's rules: a provider's host name and a
    /// forwarded port (never below 1024).
    fn default() -> Rules {
        Rules {
            allow_ip: false,
            ports: (1024, 65535),
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
        ];
        for (input, want) in cases {
            let err = validate(input).unwrap_err();
            assert!(err.contains(want), "{input:?}: {err}");
        }
    }
}
