//! Image references without Rhai: `registry/repository` with its grammar,
//! tags and digests, which hosts are reached over plain HTTP (loopback and
//! `RUNBOOK_INSECURE_REGISTRIES` only), and the sha256 digest of bytes.

use sha2::{Digest, Sha256};

/// Every manifest media type, so a registry never hides a manifest behind
/// content negotiation (distribution 2.8 answers 404 for an OCI manifest
/// asked for without the OCI types).
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// The registry used when an image names none.
pub const DEFAULT_REGISTRY: &str = "ghcr.io";

/// An image without tag: the registry (`host[:port]`) and the repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef {
    /// `host` or `host:port` (`[::1]:port` for IPv6).
    pub registry: String,
    /// `owner/name` (any number of lowercase path components).
    pub repository: String,
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)
    }
}

const IMAGE_FORMS: &str =
    "write it as ghcr.io/OWNER/NAME, HOST:PORT/OWNER/NAME or OWNER/NAME (= ghcr.io)";

fn repo_component_ok(c: &str) -> bool {
    // distribution's path-component: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_lowercase() && !b[0].is_ascii_digit() {
        return false;
    }
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let sep_start = i;
        if b[i] == b'-' {
            while i < b.len() && b[i] == b'-' {
                i += 1;
            }
        } else if b[i] == b'.' {
            i += 1;
        } else if b[i] == b'_' {
            i += 1;
            if i < b.len() && b[i] == b'_' {
                i += 1;
            }
        } else {
            return false;
        }
        if i == sep_start || i >= b.len() || !alnum(b[i]) {
            return false;
        }
    }
    true
}

fn registry_ok(r: &str) -> bool {
    let (host, port) = split_host_port(r);
    let host_ok = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        inner.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host.len() <= 253
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
            && !host.starts_with(['.', '-'])
            && !host.ends_with(['.', '-'])
    };
    let port_ok = port.is_none_or(|p| {
        !p.is_empty()
            && p.chars().all(|c| c.is_ascii_digit())
            && p.parse::<u16>().is_ok_and(|n| n > 0)
    });
    host_ok && port_ok
}

/// `host[:port]` → (`host`, `port`); IPv6 hosts keep their brackets.
pub fn split_host_port(r: &str) -> (&str, Option<&str>) {
    if r.starts_with('[') {
        match r.find(']') {
            Some(end) => {
                let host = &r[..=end];
                match r[end + 1..].strip_prefix(':') {
                    Some(p) => (host, Some(p)),
                    None => (host, None),
                }
            }
            None => (r, None),
        }
    } else {
        match r.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (r, None),
        }
    }
}

impl ImageRef {
    /// Parse `ghcr.io/owner/name`, `host:port/owner/name` or `owner/name`.
    /// Tags and digests belong in the primitive's second argument.
    pub fn parse(s: &str) -> Result<ImageRef, String> {
        if s.is_empty() {
            return Err(format!("the image is empty; {IMAGE_FORMS}"));
        }
        if s.chars().any(char::is_whitespace) {
            return Err(format!(
                "the image '{s}' contains white space; {IMAGE_FORMS}"
            ));
        }
        if s.contains("://") {
            return Err(format!(
                "the image '{s}' has a URL scheme; write it without one (e.g. ghcr.io/owner/app), the scheme is chosen by the runtime"
            ));
        }
        if let Some((name, digest)) = s.split_once('@') {
            return Err(format!(
                "the image '{s}' carries a digest; pass '{name}' as the image and '{digest}' as the second argument"
            ));
        }
        let (registry, repository) = match s.split_once('/') {
            Some((first, rest))
                if first.contains('.')
                    || first.contains(':')
                    || first == "localhost"
                    || first.starts_with('[') =>
            {
                (first.to_ascii_lowercase(), rest)
            }
            _ => (DEFAULT_REGISTRY.to_string(), s),
        };
        if let Some((name, tag)) = repository
            .rsplit_once(':')
            .filter(|(_, t)| !t.contains('/'))
        {
            let reg = if s.starts_with(&registry) {
                format!("{registry}/")
            } else {
                String::new()
            };
            return Err(format!(
                "the image '{s}' carries a tag; pass '{reg}{name}' as the image and '{tag}' as the tag argument"
            ));
        }
        if !registry_ok(&registry) {
            return Err(format!("the registry '{registry}' of image '{s}' is not a valid host[:port]; {IMAGE_FORMS}"));
        }
        if repository.is_empty() || repository.len() > 255 {
            return Err(format!("the image '{s}' has no repository name (or one over 255 characters); {IMAGE_FORMS}"));
        }
        if repository.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(format!(
                "the repository '{repository}' of image '{s}' has uppercase letters; repository names are lowercase (try '{}')",
                repository.to_ascii_lowercase()
            ));
        }
        if let Some(bad) = repository.split('/').find(|c| !repo_component_ok(c)) {
            return Err(format!(
                "the repository '{repository}' of image '{s}' has an invalid path component '{bad}': components are lowercase letters and digits, joined by '.', '_', '__' or '-'"
            ));
        }
        if registry == DEFAULT_REGISTRY && !repository.contains('/') {
            return Err(format!("the image '{s}' has no owner: ghcr.io images are OWNER/NAME (e.g. mconstant/{repository})"));
        }
        Ok(ImageRef {
            registry,
            repository: repository.to_string(),
        })
    }

    /// `http` for loopback hosts and `RUNBOOK_INSECURE_REGISTRIES`, else `https`.
    pub fn scheme(&self) -> &'static str {
        scheme_for(&self.registry)
    }

    /// `scheme://registry`.
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme(), self.registry)
    }
}

/// Whether `host` (no port; IPv6 in brackets or not) is a loopback host.
pub fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether `hostport` is listed in `RUNBOOK_INSECURE_REGISTRIES`
/// (comma-separated `host` or `host:port`).
fn insecure_listed(hostport: &str) -> bool {
    let Ok(list) = std::env::var("RUNBOOK_INSECURE_REGISTRIES") else {
        return false;
    };
    let (host, _) = split_host_port(hostport);
    list.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|e| e.eq_ignore_ascii_case(hostport) || e.eq_ignore_ascii_case(host))
}

/// The scheme to reach `hostport` with: plain HTTP only for loopback hosts
/// and hosts listed in `RUNBOOK_INSECURE_REGISTRIES`.
pub fn scheme_for(hostport: &str) -> &'static str {
    let (host, _) = split_host_port(hostport);
    if is_loopback(host) || insecure_listed(hostport) {
        "http"
    } else {
        "https"
    }
}

/// Check a tag against the OCI grammar `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn validate_tag(tag: &str) -> Result<(), String> {
    const RULE: &str =
        "a tag is 1-128 characters of A-Z a-z 0-9 _ . -, not starting with '.' or '-'";
    if tag.is_empty() {
        return Err(format!("the tag is empty; {RULE}"));
    }
    if tag.len() > 128 {
        return Err(format!(
            "the tag '{tag}' is {} characters long; {RULE}",
            tag.len()
        ));
    }
    if tag.starts_with(['.', '-']) {
        return Err(format!(
            "the tag '{tag}' starts with '{}'; {RULE}",
            &tag[..1]
        ));
    }
    if let Some(c) = tag
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(format!("the tag '{tag}' has the character {c:?}; {RULE}"));
    }
    Ok(())
}

/// Check a digest `sha256:<64 lowercase hex>`; returns the hex part.
pub fn validate_digest(d: &str) -> Result<&str, String> {
    match d.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64
                && hex
                    .chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)) =>
        {
            Ok(hex)
        }
        _ => Err(format!(
            "'{d}' is not a digest: a digest is sha256: followed by 64 lowercase hex digits"
        )),
    }
}

/// A tag or a digest, as the manifest reference of a request.
pub fn validate_reference(r: &str) -> Result<(), String> {
    if r.starts_with("sha256:") {
        validate_digest(r).map(|_| ())
    } else {
        validate_tag(r)
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    let sum = Sha256::digest(bytes);
    let mut s = String::with_capacity(71);
    s.push_str("sha256:");
    for b in sum {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_forms() {
        let i = ImageRef::parse("ghcr.io/mconstant/pay2slay-api").unwrap();
        assert_eq!(
            (i.registry.as_str(), i.repository.as_str()),
            ("ghcr.io", "mconstant/pay2slay-api")
        );
        assert_eq!(i.base_url(), "https://ghcr.io");
        let i = ImageRef::parse("mconstant/pay2slay-api-staging").unwrap();
        assert_eq!(i.registry, "ghcr.io");
        assert_eq!(i.to_string(), "ghcr.io/mconstant/pay2slay-api-staging");
        let i = ImageRef::parse("127.0.0.1:5000/owner/app").unwrap();
        assert_eq!(i.base_url(), "http://127.0.0.1:5000");
        let i = ImageRef::parse("localhost:5000/a/b/c").unwrap();
        assert_eq!(
            (i.registry.as_str(), i.repository.as_str()),
            ("localhost:5000", "a/b/c")
        );
        assert_eq!(i.scheme(), "http");
        let i = ImageRef::parse("[::1]:5000/owner/app").unwrap();
        assert_eq!(i.scheme(), "http");
        let i = ImageRef::parse("registry.example.com:443/team/app_x").unwrap();
        assert_eq!(i.scheme(), "https");
        assert!(ImageRef::parse("quay.io/a/b.c__d-e--f").is_ok());
    }

    #[test]
    fn bad_images_say_why() {
        let cases = [
            ("", "is empty"),
            (
                "ghcr.io/owner/app:v1",
                "pass 'ghcr.io/owner/app' as the image and 'v1'",
            ),
            ("owner/app:latest", "carries a tag"),
            ("ghcr.io/owner/app@sha256:abc", "carries a digest"),
            ("https://ghcr.io/owner/app", "URL scheme"),
            ("ghcr.io/Owner/App", "lowercase"),
            ("ghcr.io/app", "no owner"),
            ("app", "no owner"),
            ("ghcr.io/owner/-app", "invalid path component '-app'"),
            ("ghcr.io/owner//app", "invalid path component ''"),
            ("ghcr.io/owner/a..b", "invalid path component"),
            ("ghcr.io/", "no repository"),
            ("host:99999/owner/app", "not a valid host"),
            ("own er/app", "white space"),
        ];
        for (input, want) in cases {
            let err = ImageRef::parse(input).unwrap_err();
            assert!(err.contains(want), "{input:?}: {err}");
        }
    }

    #[test]
    fn tags_follow_the_oci_grammar() {
        for ok in [
            "v1",
            "latest",
            "_x",
            "4f1c2a0b",
            &"a".repeat(128),
            "sha256-abc.sig",
            "1.2.3-rc_1",
        ] {
            assert!(validate_tag(ok).is_ok(), "{ok}");
        }
        let cases = [
            ("", "empty"),
            (".hidden", "starts with '.'"),
            ("-x", "starts with '-'"),
            ("a/b", "'/'"),
            ("a:b", "':'"),
            ("a b", "' '"),
            ("ü", "'ü'"),
        ];
        for (bad, want) in cases {
            let err = validate_tag(bad).unwrap_err();
            assert!(err.contains(want), "{bad:?}: {err}");
        }
        assert!(validate_tag(&"a".repeat(129))
            .unwrap_err()
            .contains("129 characters"));
        assert!(validate_reference(&format!("sha256:{}", "a".repeat(64))).is_ok());
        assert!(validate_reference("sha256:abc").is_err());
        assert!(validate_digest(&format!("sha256:{}", "A".repeat(64))).is_err());
    }

    #[test]
    fn loopback_and_insecure_hosts() {
        for h in ["127.0.0.1", "127.9.9.9", "localhost", "[::1]", "::1"] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["10.0.0.1", "ghcr.io", "[::2]", "localhost.evil.com"] {
            assert!(!is_loopback(h), "{h}");
        }
        assert_eq!(scheme_for("ghcr.io"), "https");
        assert_eq!(scheme_for("127.0.0.1:5000"), "http");
    }

    #[test]
    fn digests_of_bytes() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
