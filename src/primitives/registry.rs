//! Registry primitives: `ghcr_has_tag`, `ghcr_has_tags` and `image_digest`,
//! and the small OCI distribution client they (and `cosign_soft_verify`)
//! share.
//!
//! The client speaks the distribution protocol with `reqwest` directly:
//! one `HEAD /v2/<name>/manifests/<tag>` with every manifest media type in
//! `Accept`, behind the registry's `WWW-Authenticate` challenge (Bearer
//! token flow, or HTTP Basic). Tokens are cached per repository for the
//! whole run behind one async lock each, so a batch of concurrent checks
//! asks the token endpoint once. Transient failures (429, 5xx, resets,
//! timeouts) are retried with bounded backoff and then reported as errors:
//! a check never answers `false` when it could not tell.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use backon::BackoffBuilder;
use base64::Engine as _;
use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use rhai::{Array, Dynamic, Engine, FuncRegistration, Map};
use sha2::{Digest, Sha256};

use crate::context::{error, Ctx, RhaiResult};
use crate::error::fmt_secs;
use crate::primitives::{string_array, Opts};

/// Every manifest media type, so a registry never hides a manifest behind
/// content negotiation (distribution 2.8 answers 404 for an OCI manifest
/// asked for without the OCI types).
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// The registry used when an image names none.
pub const DEFAULT_REGISTRY: &str = "ghcr.io";

/// Default bound of one registry primitive call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Bound of one HTTP attempt inside a call.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);

/// Retries after the first attempt, for transient failures.
const MAX_RETRIES: usize = 4;

/// The longest `Retry-After` honoured; a longer one is cut to this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Most concurrent checks of one `ghcr_has_tags` call, by default.
pub const DEFAULT_CONCURRENCY: usize = 16;

/// Most tags one `ghcr_has_tags` call takes.
const MAX_TAGS: usize = 1000;

/// Largest manifest, index or token answer read into memory.
pub const SMALL_LIMIT: usize = 4 * 1024 * 1024;

// ---------------------------------------------------------------------------
// Image references, tags, digests

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
fn split_host_port(r: &str) -> (&str, Option<&str>) {
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

// ---------------------------------------------------------------------------
// Credentials and challenges

/// The credential a request is made with.
#[derive(Clone, Debug)]
pub enum Cred {
    /// None: an anonymous token, or no auth at all.
    Anonymous,
    /// A GitHub token (`GHCR_TOKEN` or `GITHUB_TOKEN`), for ghcr.io only,
    /// sent as HTTP Basic `x-access-token:<token>` to ghcr.io's token
    /// endpoint only.
    GitHub {
        /// Which variable it came from.
        var: &'static str,
        /// The token (registered for redaction).
        token: String,
    },
    /// A user name and password for one host: from an auth file, a
    /// credential helper, or `REGISTRY_USERNAME`/`REGISTRY_PASSWORD` bound
    /// to `REGISTRY_HOST`.
    User {
        /// The user name.
        user: String,
        /// The password (registered for redaction).
        pass: String,
        /// Where it came from (never the value), for messages.
        source: String,
    },
    /// An OAuth2 refresh token (an auth file's `identitytoken`), traded at
    /// the token endpoint with a POST.
    Identity {
        /// The token (registered for redaction).
        token: String,
        /// Where it came from.
        source: String,
    },
}

/// Says once per run that unbound `REGISTRY_USERNAME`/`_PASSWORD` are not used.
static UNBOUND_WARNED: std::sync::Once = std::sync::Once::new();

impl Cred {
    /// The credential for `registry` (`host[:port]`), per host:
    ///
    /// - ghcr.io: `GHCR_TOKEN`, then `GITHUB_TOKEN`; never for another host.
    /// - `REGISTRY_USERNAME`/`REGISTRY_PASSWORD` when `REGISTRY_HOST` names
    ///   this registry exactly (without `REGISTRY_HOST` they are not sent
    ///   anywhere; a warning says so).
    /// - the auth files and credential helpers registry clients use (see
    ///   `net::creds`).
    ///
    /// Every secret value is registered for redaction before it is used.
    pub async fn for_registry(registry: &str) -> Cred {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        if registry.eq_ignore_ascii_case(DEFAULT_REGISTRY) {
            for var in ["GHCR_TOKEN", "GITHUB_TOKEN"] {
                if let Some(token) = get(var) {
                    crate::redact::register(&token);
                    return Cred::GitHub { var, token };
                }
            }
        }
        if let (Some(user), Some(pass)) = (get("REGISTRY_USERNAME"), get("REGISTRY_PASSWORD")) {
            crate::redact::register(&pass);
            match get("REGISTRY_HOST") {
                Some(h) if crate::net::creds::normalize_key(&h) == crate::net::creds::normalize_key(registry) => {
                    return Cred::User {
                        source: format!("REGISTRY_USERNAME '{user}' with REGISTRY_PASSWORD (REGISTRY_HOST={h})"),
                        user,
                        pass,
                    };
                }
                Some(_) => {}
                None => UNBOUND_WARNED.call_once(|| {
                    tracing::warn!(
                        "REGISTRY_USERNAME and REGISTRY_PASSWORD are set without REGISTRY_HOST; they are sent to no registry. Set REGISTRY_HOST to the one registry (host[:port]) they belong to"
                    )
                }),
            }
        }
        match crate::net::creds::lookup(registry).await {
            Ok(Some(crate::net::creds::HostCred::User { user, pass, source })) => {
                crate::redact::register(&pass);
                Cred::User {
                    user: user.clone(),
                    pass,
                    source: format!("user '{user}' from {source}"),
                }
            }
            Ok(Some(crate::net::creds::HostCred::Identity { token, source })) => {
                crate::redact::register(&token);
                Cred::Identity { token, source }
            }
            Ok(None) => Cred::Anonymous,
            Err(e) => {
                tracing::warn!("{e}; asking {registry} without credentials");
                Cred::Anonymous
            }
        }
    }

    /// Whether this credential may go to a token endpoint on `realm_host`
    /// for the registry `registry`: a GitHub token to ghcr.io only; a
    /// per-host credential to the registry's own host name (any port), or
    /// Docker Hub's auth.docker.io for docker.io.
    pub fn may_go_to(&self, registry: &str, realm_host: &str) -> bool {
        let realm_host = realm_host.trim_matches(['[', ']']);
        match self {
            Cred::Anonymous => true,
            Cred::GitHub { .. } => realm_host.eq_ignore_ascii_case(DEFAULT_REGISTRY),
            Cred::User { .. } | Cred::Identity { .. } => {
                let (reg_host, _) = split_host_port(registry);
                let reg_host = reg_host.trim_matches(['[', ']']);
                realm_host.eq_ignore_ascii_case(reg_host)
                    || (crate::net::creds::normalize_key(registry) == "docker.io"
                        && realm_host.eq_ignore_ascii_case("auth.docker.io"))
            }
        }
    }

    /// How the credential is named in messages (never its value).
    pub fn describe(&self) -> String {
        match self {
            Cred::Anonymous => "no credentials (anonymous)".into(),
            Cred::GitHub { var, .. } => {
                format!("{var} (HTTP Basic x-access-token:${var} to the token endpoint)")
            }
            Cred::User { source, .. } => source.clone(),
            Cred::Identity { source, .. } => source.clone(),
        }
    }

    /// The `Authorization: Basic …` value, registered for redaction.
    fn basic(&self) -> Option<String> {
        let (u, p) = match self {
            Cred::Anonymous | Cred::Identity { .. } => return None,
            Cred::GitHub { token, .. } => ("x-access-token", token.as_str()),
            Cred::User { user, pass, .. } => (user.as_str(), pass.as_str()),
        };
        let enc = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        crate::redact::register(&enc);
        Some(format!("Basic {enc}"))
    }

    fn hint(&self) -> &'static str {
        match self {
            Cred::Anonymous => "the repository may be private or missing: set GHCR_TOKEN (a token with read:packages) for ghcr.io; for other registries log in with docker/podman/skopeo login (an auths entry in ~/.docker/config.json or REGISTRY_AUTH_FILE), or set REGISTRY_HOST with REGISTRY_USERNAME and REGISTRY_PASSWORD",
            Cred::GitHub { .. } => "give the token read:packages on this package (for the workflow's GITHUB_TOKEN: `permissions: packages: read` and the package's 'Manage Actions access' must list this repository)",
            Cred::User { .. } | Cred::Identity { .. } => "check that this user may pull the repository",
        }
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Challenge {
    /// `bearer` or `basic` (lowercase).
    pub scheme: String,
    /// `realm`, `service`, `scope`, `error`, … (keys lowercase).
    pub params: HashMap<String, String>,
}

/// Parse `Bearer realm="…",service="…",scope="…"` (quoted or bare values,
/// backslash escapes in quotes).
pub fn parse_challenge(h: &str) -> Option<Challenge> {
    let h = h.trim();
    let (scheme, rest) = match h.split_once(' ') {
        Some((s, r)) => (s, r),
        None => (h, ""),
    };
    if scheme.is_empty() {
        return None;
    }
    let mut params = HashMap::new();
    let b: Vec<char> = rest.chars().collect();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == ',' || b[i].is_whitespace()) {
            i += 1;
        }
        let key_start = i;
        while i < b.len() && b[i] != '=' && b[i] != ',' {
            i += 1;
        }
        let key: String = b[key_start..i]
            .iter()
            .collect::<String>()
            .trim()
            .to_ascii_lowercase();
        if i >= b.len() || b[i] != '=' {
            continue;
        }
        i += 1;
        let mut value = String::new();
        if i < b.len() && b[i] == '"' {
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' && i + 1 < b.len() {
                    i += 1;
                }
                value.push(b[i]);
                i += 1;
            }
            i += 1;
        } else {
            while i < b.len() && b[i] != ',' {
                value.push(b[i]);
                i += 1;
            }
            value = value.trim().to_string();
        }
        if !key.is_empty() {
            params.insert(key, value);
        }
    }
    Some(Challenge {
        scheme: scheme.to_ascii_lowercase(),
        params,
    })
}

/// `Retry-After` in seconds (integer or decimal); HTTP dates are ignored.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let secs: f64 = v.parse().ok()?;
    // try_from: a server's "1e20" must not panic; it means "long".
    (secs.is_finite() && secs >= 0.0).then(|| {
        Duration::try_from_secs_f64(secs)
            .unwrap_or(MAX_RETRY_AFTER)
            .min(MAX_RETRY_AFTER)
    })
}

// ---------------------------------------------------------------------------
// The per-run auth cache

#[derive(Clone, Debug)]
enum Auth {
    /// The registry asked for nothing.
    Open,
    /// A Bearer token from the token endpoint.
    Bearer { token: String, expires: Instant },
    /// HTTP Basic on every request.
    Basic(String),
}

#[derive(Clone, Debug)]
struct Entry {
    auth: Auth,
    cred: Cred,
    challenge: Option<Challenge>,
}

impl Entry {
    fn fresh(&self) -> bool {
        match &self.auth {
            Auth::Bearer { expires, .. } => Instant::now() < *expires,
            _ => true,
        }
    }

    fn header(&self) -> Option<String> {
        match &self.auth {
            Auth::Open => None,
            Auth::Bearer { token, .. } => Some(format!("Bearer {token}")),
            Auth::Basic(h) => Some(h.clone()),
        }
    }

    fn same_as(&self, other: &Entry) -> bool {
        match (&self.auth, &other.auth) {
            (Auth::Bearer { token: a, .. }, Auth::Bearer { token: b, .. }) => a == b,
            (Auth::Open, Auth::Open) => true,
            (Auth::Basic(a), Auth::Basic(b)) => a == b,
            _ => false,
        }
    }
}

type Slot = Arc<tokio::sync::Mutex<Option<Entry>>>;

/// One auth slot per repository (`scheme://registry/repository`) for the
/// whole run, and the last challenge seen per registry.
static SLOTS: LazyLock<Mutex<HashMap<String, Slot>>> = LazyLock::new(|| Mutex::new(HashMap::new()));
static CHALLENGES: LazyLock<Mutex<HashMap<String, Challenge>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));
static TOKEN_REQUESTS: AtomicU64 = AtomicU64::new(0);

/// Token-endpoint requests made by this process so far.
pub fn token_requests() -> u64 {
    TOKEN_REQUESTS.load(Ordering::Relaxed)
}

fn slot_for(key: &str) -> Slot {
    let mut slots = SLOTS.lock().unwrap_or_else(|e| e.into_inner());
    slots.entry(key.to_string()).or_default().clone()
}

// ---------------------------------------------------------------------------
// The client

/// An answer, its body read (bounded).
#[derive(Debug)]
pub struct Resp {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body (empty for HEAD).
    pub body: Vec<u8>,
}

impl Resp {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn snippet(&self) -> String {
        crate::net::snippet(&String::from_utf8_lossy(&self.body))
    }
}

enum Failure {
    /// Worth another try (429, 5xx, resets, timeouts).
    Transient(String, Option<Duration>),
    /// Not worth another try.
    Fatal(String),
}

/// A distribution client for one repository, on the run's HTTP client.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    /// The image (registry + repository).
    pub image: ImageRef,
    base: String,
    key: String,
    attempt_timeout: Duration,
    requests: Arc<AtomicU64>,
    tokens: Arc<AtomicU64>,
    last_failure: Arc<Mutex<Option<String>>>,
}

fn status_text(s: StatusCode) -> String {
    match s.canonical_reason() {
        Some(r) => format!("{} {r}", s.as_u16()),
        None => s.as_u16().to_string(),
    }
}

impl Client {
    /// A client for `image`; one HTTP attempt is bounded by
    /// `min(timeout, 20s)`.
    pub fn new(http: &reqwest::Client, image: ImageRef, timeout: Duration) -> Client {
        let base = image.base_url();
        let key = format!("{base}/{}", image.repository);
        Client {
            http: http.clone(),
            image,
            base,
            key,
            attempt_timeout: timeout.min(ATTEMPT_TIMEOUT).max(Duration::from_millis(50)),
            requests: Arc::new(AtomicU64::new(0)),
            tokens: Arc::new(AtomicU64::new(0)),
            last_failure: Arc::new(Mutex::new(None)),
        }
    }

    /// Registry requests this client made (token requests not included).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Token-endpoint requests this client made.
    pub fn token_requests(&self) -> u64 {
        self.tokens.load(Ordering::Relaxed)
    }

    /// The last transient failure seen (for a timeout's message).
    pub fn last_failure(&self) -> Option<String> {
        self.last_failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// One request with bounded retries of transient failures. 401/403 and
    /// every other status are returned as they are.
    async fn send_retrying(
        &self,
        method: &Method,
        url: &str,
        headers: &[(reqwest::header::HeaderName, String)],
        limit: usize,
        counter: &AtomicU64,
    ) -> Result<Resp, String> {
        self.send_retrying_with(method, url, headers, None, limit, counter)
            .await
    }

    /// [`Client::send_retrying`] with a request body.
    async fn send_retrying_with(
        &self,
        method: &Method,
        url: &str,
        headers: &[(reqwest::header::HeaderName, String)],
        body: Option<&str>,
        limit: usize,
        counter: &AtomicU64,
    ) -> Result<Resp, String> {
        let mut delays = backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_secs(4))
            .with_max_times(MAX_RETRIES)
            .with_jitter()
            .build();
        let started = Instant::now();
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            counter.fetch_add(1, Ordering::Relaxed);
            let mut req = self
                .http
                .request(method.clone(), url)
                .timeout(self.attempt_timeout);
            for (k, v) in headers {
                req = req.header(k, v);
            }
            if let Some(b) = body {
                req = req.body(b.to_string());
            }
            let outcome = match req.send().await {
                Err(e) => Err(Failure::Transient(crate::net::http_error(&e), None)),
                Ok(resp) => read(resp, limit).await,
            };
            let (msg, wait_hint) = match outcome {
                Ok(r) => return Ok(r),
                Err(Failure::Fatal(msg)) => return Err(format!("{method} {url}: {msg}")),
                Err(Failure::Transient(msg, hint)) => {
                    *self.last_failure.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(format!("{method} {url}: {msg}"));
                    (msg, hint)
                }
            };
            match delays.next() {
                Some(d) => {
                    let wait = wait_hint.unwrap_or(d);
                    tracing::debug!(
                        url,
                        attempt = attempts,
                        wait_ms = wait.as_millis() as u64,
                        "retrying: {msg}"
                    );
                    tokio::time::sleep(wait).await;
                }
                None => {
                    return Err(format!(
                        "{method} {url}: {msg} (gave up after {attempts} attempts in {})",
                        fmt_secs(started.elapsed())
                    ))
                }
            }
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v2/{}/{path}", self.base, self.image.repository)
    }

    /// A request to the repository (`path` after `/v2/<name>/`), through
    /// the registry's auth challenge, with the token cached per repository.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        accept: &str,
        limit: usize,
    ) -> Result<Resp, String> {
        let url = self.url(path);
        let slot = slot_for(&self.key);
        let mut guard = slot.lock().await;
        let entry = match guard.as_ref() {
            Some(e) if e.fresh() => {
                let e = e.clone();
                drop(guard);
                e
            }
            Some(e) => {
                // The token expired: fetch a new one while holding the lock.
                let e = self
                    .authenticate(e.challenge.clone(), e.cred.clone())
                    .await?;
                *guard = Some(e.clone());
                drop(guard);
                return self
                    .send_authed(&method, &url, accept, limit, e, true)
                    .await;
            }
            None => {
                let known = CHALLENGES
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&self.base)
                    .cloned();
                let cred = Cred::for_registry(&self.image.registry).await;
                if known.is_some() {
                    // Another repository on this registry already told us how it authenticates.
                    let e = self.authenticate(known, cred).await?;
                    *guard = Some(e.clone());
                    drop(guard);
                    return self
                        .send_authed(&method, &url, accept, limit, e, true)
                        .await;
                }
                // First request to this repository: ask without credentials, learn the challenge.
                let r = self
                    .send_retrying(
                        &method,
                        &url,
                        &[(ACCEPT, accept.to_string())],
                        limit,
                        &self.requests,
                    )
                    .await?;
                if r.status == StatusCode::FORBIDDEN {
                    let open = Entry {
                        auth: Auth::Open,
                        cred: Cred::Anonymous,
                        challenge: None,
                    };
                    return Err(self.denied(&method, &url, &r, &open));
                }
                if r.status != StatusCode::UNAUTHORIZED {
                    *guard = Some(Entry {
                        auth: Auth::Open,
                        cred,
                        challenge: None,
                    });
                    return Ok(r);
                }
                let ch = r.header(WWW_AUTHENTICATE.as_str()).and_then(parse_challenge).ok_or_else(|| {
                    format!(
                        "{method} {url}: the registry answered 401 without a usable WWW-Authenticate challenge: {}",
                        r.snippet()
                    )
                })?;
                CHALLENGES
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(self.base.clone(), ch.clone());
                let e = self.authenticate(Some(ch), cred).await?;
                *guard = Some(e.clone());
                drop(guard);
                return self
                    .send_authed(&method, &url, accept, limit, e, true)
                    .await;
            }
        };
        self.send_authed(&method, &url, accept, limit, entry, false)
            .await
    }

    async fn send_authed(
        &self,
        method: &Method,
        url: &str,
        accept: &str,
        limit: usize,
        entry: Entry,
        fresh: bool,
    ) -> Result<Resp, String> {
        let mut headers = vec![(ACCEPT, accept.to_string())];
        if let Some(h) = entry.header() {
            headers.push((AUTHORIZATION, h));
        }
        let r = self
            .send_retrying(method, url, &headers, limit, &self.requests)
            .await?;
        match r.status {
            StatusCode::UNAUTHORIZED if !fresh && matches!(entry.auth, Auth::Bearer { .. }) => {
                // A cached token was refused (revoked, expired early): one new token, one more try.
                let slot = slot_for(&self.key);
                let mut guard = slot.lock().await;
                let current = guard.clone();
                let e = match current {
                    Some(c) if !c.same_as(&entry) => c,
                    _ => {
                        let e = self
                            .authenticate(entry.challenge.clone(), entry.cred.clone())
                            .await?;
                        *guard = Some(e.clone());
                        e
                    }
                };
                drop(guard);
                Box::pin(self.send_authed(method, url, accept, limit, e, true)).await
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Err(self.denied(method, url, &r, &entry))
            }
            _ => Ok(r),
        }
    }

    fn denied(&self, method: &Method, url: &str, r: &Resp, entry: &Entry) -> String {
        let ch = r
            .header(WWW_AUTHENTICATE.as_str())
            .and_then(parse_challenge)
            .unwrap_or_default();
        let scope = ch
            .params
            .get("scope")
            .cloned()
            .unwrap_or_else(|| format!("repository:{}:pull", self.image.repository));
        let code = ch
            .params
            .get("error")
            .map(|e| format!(", {e}"))
            .unwrap_or_default();
        let how = match entry.auth {
            Auth::Bearer { .. } => format!("a token obtained with {}", entry.cred.describe()),
            Auth::Basic(_) => entry.cred.describe(),
            Auth::Open => "no credentials".into(),
        };
        format!(
            "{method} {url}: the registry refused access ({}{code}) with {how}: the scope {scope} is missing. What to do: {}",
            status_text(r.status),
            entry.cred.hint()
        )
    }

    /// Turn a challenge into auth: a token from the token endpoint (Bearer),
    /// or the Basic header.
    async fn authenticate(&self, ch: Option<Challenge>, cred: Cred) -> Result<Entry, String> {
        let Some(ch) = ch else {
            return Ok(Entry {
                auth: Auth::Open,
                cred,
                challenge: None,
            });
        };
        match ch.scheme.as_str() {
            "basic" => match &cred {
                // A GitHub token is for ghcr.io, which never asks for Basic.
                Cred::User { .. } => {
                    let h = cred.basic().unwrap_or_default();
                    Ok(Entry { auth: Auth::Basic(h), cred, challenge: Some(ch) })
                }
                _ => Err(format!(
                    "the registry {} wants HTTP Basic credentials (WWW-Authenticate: Basic) and {} were given: log in to it (docker/podman login, or an auths entry in REGISTRY_AUTH_FILE), or set REGISTRY_HOST={0} with REGISTRY_USERNAME and REGISTRY_PASSWORD",
                    self.image.registry,
                    cred.describe()
                )),
            },
            "bearer" => {
                let token = self.fetch_token(&ch, &cred).await?;
                Ok(Entry { auth: token, cred, challenge: Some(ch) })
            }
            other => Err(format!(
                "the registry {} asks for the auth scheme '{other}', which runbook does not speak (Bearer tokens and HTTP Basic only)",
                self.image.registry
            )),
        }
    }

    async fn fetch_token(&self, ch: &Challenge, cred: &Cred) -> Result<Auth, String> {
        let realm = ch
            .params
            .get("realm")
            .filter(|r| !r.is_empty())
            .ok_or_else(|| {
                format!(
                    "the registry {} sent a Bearer challenge without a realm",
                    self.image.registry
                )
            })?;
        let mut url = reqwest::Url::parse(realm).map_err(|e| {
            format!(
                "the registry {} named a token endpoint that is not a URL ('{realm}'): {e}",
                self.image.registry
            )
        })?;
        let realm_host = url.host_str().unwrap_or_default().to_string();
        let hostport = match url.port() {
            Some(p) => format!("{realm_host}:{p}"),
            None => realm_host.clone(),
        };
        match url.scheme() {
            "https" => {}
            "http" if scheme_for(&hostport) == "http" => {}
            s => {
                return Err(format!(
                    "the registry {} named the token endpoint {realm} ({s}); only https (or plain http to loopback and RUNBOOK_INSECURE_REGISTRIES hosts) is used for tokens",
                    self.image.registry
                ))
            }
        }
        // Credentials never leave their host: a GitHub token goes to
        // ghcr.io only, a per-host credential to its registry's host only.
        let cred = if cred.may_go_to(&self.image.registry, &realm_host) {
            cred.clone()
        } else {
            tracing::warn!(
                "not sending {} to the token endpoint {realm}: it is not on {} (credentials only go to the host they belong to); asking anonymously",
                cred.describe(),
                if matches!(cred, Cred::GitHub { .. }) { DEFAULT_REGISTRY } else { self.image.registry.as_str() }
            );
            Cred::Anonymous
        };
        {
            let mut q = url.query_pairs_mut();
            if let Some(service) = ch.params.get("service") {
                q.append_pair("service", service);
            }
            q.append_pair(
                "scope",
                &format!("repository:{}:pull", self.image.repository),
            );
        }
        let mut headers = vec![(ACCEPT, "application/json".to_string())];
        if let Some(b) = cred.basic() {
            headers.push((AUTHORIZATION, b));
        }
        // An identity token is an OAuth2 refresh token: POSTed as a form.
        let (method, form) = match &cred {
            Cred::Identity { token, .. } => {
                let mut f =
                    reqwest::Url::parse("http://form.invalid/").map_err(|e| e.to_string())?;
                {
                    let mut q = f.query_pairs_mut();
                    q.append_pair("grant_type", "refresh_token")
                        .append_pair("refresh_token", token)
                        .append_pair("client_id", "runbook")
                        .append_pair(
                            "scope",
                            &format!("repository:{}:pull", self.image.repository),
                        );
                    if let Some(service) = ch.params.get("service") {
                        q.append_pair("service", service);
                    }
                }
                headers.push((
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded".to_string(),
                ));
                (Method::POST, f.query().map(String::from))
            }
            _ => (Method::GET, None),
        };
        TOKEN_REQUESTS.fetch_add(1, Ordering::Relaxed);
        let r = self
            .send_retrying_with(
                &method,
                url.as_str(),
                &headers,
                form.as_deref(),
                SMALL_LIMIT,
                &self.tokens,
            )
            .await?;
        if r.status == StatusCode::UNAUTHORIZED || r.status == StatusCode::FORBIDDEN {
            return Err(format!(
                "the token endpoint {realm} refused {} ({}): {}. What to do: check the credential is valid and current; {}",
                cred.describe(),
                status_text(r.status),
                r.snippet(),
                cred.hint()
            ));
        }
        if !r.status.is_success() {
            return Err(format!(
                "the token endpoint {realm} answered {} for scope repository:{}:pull: {}",
                status_text(r.status),
                self.image.repository,
                r.snippet()
            ));
        }
        let v: serde_json::Value = serde_json::from_slice(&r.body).map_err(|e| {
            format!("the token endpoint {realm} answered something that is not JSON ({e})")
        })?;
        let token = v
            .get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| format!("the token endpoint {realm} answered without a token"))?
            .to_string();
        crate::redact::register(&token);
        let lifetime = v
            .get("expires_in")
            .and_then(|e| e.as_u64())
            .unwrap_or(60)
            // A server's absurd expires_in must not overflow the Instant.
            .clamp(30, 86_400);
        let expires = Instant::now() + Duration::from_secs(lifetime.saturating_sub(10));
        Ok(Auth::Bearer { token, expires })
    }

    /// `HEAD` a manifest: `Some(digest)` (empty if the registry sent none)
    /// when it exists, `None` on 404, an error otherwise.
    pub async fn head_manifest(&self, reference: &str) -> Result<Option<String>, String> {
        let r = self
            .request(
                Method::HEAD,
                &format!("manifests/{reference}"),
                MANIFEST_ACCEPT,
                0,
            )
            .await?;
        match r.status {
            s if s.is_success() => Ok(Some(
                r.header("docker-content-digest")
                    .unwrap_or_default()
                    .to_string(),
            )),
            StatusCode::NOT_FOUND => Ok(None),
            s => Err(format!(
                "HEAD {}: unexpected answer {}",
                self.url(&format!("manifests/{reference}")),
                status_text(s)
            )),
        }
    }

    /// `GET` a manifest (or index): `None` on 404.
    pub async fn get_manifest(
        &self,
        reference: &str,
        accept: &str,
    ) -> Result<Option<Resp>, String> {
        let path = format!("manifests/{reference}");
        let r = self
            .request(Method::GET, &path, accept, SMALL_LIMIT)
            .await?;
        match r.status {
            s if s.is_success() => Ok(Some(r)),
            StatusCode::NOT_FOUND => Ok(None),
            s => Err(format!(
                "GET {}: unexpected answer {}: {}",
                self.url(&path),
                status_text(s),
                r.snippet()
            )),
        }
    }

    /// `GET` a blob, checking its sha256 against `digest`.
    pub async fn get_blob(&self, digest: &str, limit: usize) -> Result<Vec<u8>, String> {
        self.fetch_blob(digest, limit).await?
    }

    /// `GET` a blob, telling apart a failed conversation (outer `Err`:
    /// unreachable, refused, timed out) from a blob that is missing or not
    /// what its digest says (inner `Err`: the content cannot be trusted).
    pub async fn fetch_blob(
        &self,
        digest: &str,
        limit: usize,
    ) -> Result<Result<Vec<u8>, String>, String> {
        if let Err(e) = validate_digest(digest) {
            return Ok(Err(e));
        }
        let path = format!("blobs/{digest}");
        let r = self.request(Method::GET, &path, "*/*", limit).await?;
        if r.status == StatusCode::NOT_FOUND {
            return Ok(Err(format!(
                "GET {}: the blob is missing (404)",
                self.url(&path)
            )));
        }
        if !r.status.is_success() {
            return Err(format!(
                "GET {}: unexpected answer {}: {}",
                self.url(&path),
                status_text(r.status),
                r.snippet()
            ));
        }
        let got = sha256_digest(&r.body);
        if got != digest {
            return Ok(Err(format!(
                "GET {}: the blob's content hashes to {got}, not {digest}",
                self.url(&path)
            )));
        }
        Ok(Ok(r.body))
    }

    /// `GET /v2/<name>/referrers/<digest>` (OCI 1.1): `None` when the
    /// registry has no referrers API (404, 400, 405, 501).
    pub async fn referrers(&self, digest: &str) -> Result<Option<Resp>, String> {
        let path = format!("referrers/{digest}");
        let r = self
            .request(
                Method::GET,
                &path,
                "application/vnd.oci.image.index.v1+json",
                SMALL_LIMIT,
            )
            .await?;
        match r.status.as_u16() {
            200..=299 => Ok(Some(r)),
            400 | 404 | 405 | 501 => Ok(None),
            _ => Err(format!(
                "GET {}: unexpected answer {}: {}",
                self.url(&path),
                status_text(r.status),
                r.snippet()
            )),
        }
    }
}

/// Read an answer's body up to `limit` bytes (through the one bounded
/// reader); classify the status.
async fn read(resp: reqwest::Response, limit: usize) -> Result<Resp, Failure> {
    let status = resp.status();
    let headers = resp.headers().clone();
    if status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED
    {
        // Only a snippet is shown: read at most 4 KiB of an error body.
        let body = crate::net::read_snippet(resp).await;
        let msg = format!(
            "the registry answered {}{}",
            status_text(status),
            if body.is_empty() {
                String::new()
            } else {
                format!(": {body}")
            }
        );
        return Err(Failure::Transient(msg, retry_after(&headers)));
    }
    // A HEAD (limit 0) has no body; error bodies of other statuses are
    // quoted, so they get a small allowance too.
    match crate::net::read_body(resp, limit.max(64 * 1024), "registry").await {
        Ok(body) => Ok(Resp {
            status,
            headers,
            body,
        }),
        Err(e) if e.transient() => Err(Failure::Transient(e.to_string(), None)),
        Err(e) => Err(Failure::Fatal(e.to_string())),
    }
}

// ---------------------------------------------------------------------------
// The primitives

/// Run `fut` on the runtime, bounded by `timeout` with a message that names
/// the primitive and the subject.
pub fn block<T>(
    ctx: &Ctx,
    client: &Client,
    prim: &'static str,
    subject: &str,
    timeout: Duration,
    fut: impl std::future::Future<Output = Result<T, String>>,
) -> RhaiResult<T> {
    let subject = subject.to_string();
    let client = client.clone();
    ctx.block_on(prim, timeout + Duration::from_secs(2), async move {
        match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "{prim}: {subject}: no answer from the registry within {} (the call's `timeout` option){}; the registry may be down or unreachable — try again, or raise `timeout`",
                fmt_secs(timeout),
                client.last_failure().map(|f| format!(", last attempt: {f}")).unwrap_or_default()
            )),
        }
    })
}

struct Call {
    image: ImageRef,
    timeout: Duration,
    concurrency: usize,
}

fn call(prim: &'static str, image: &str, opts: &Map, keys: &[&str]) -> RhaiResult<Call> {
    let o = Opts::new(prim, opts, keys)?;
    let timeout = o.duration("timeout")?.unwrap_or(DEFAULT_TIMEOUT);
    if timeout.is_zero() {
        return Err(error(format!(
            "{prim}: option 'timeout' must be above zero"
        )));
    }
    let concurrency = match o.int("concurrency")? {
        None => DEFAULT_CONCURRENCY,
        Some(n) if (1..=64).contains(&n) => n as usize,
        Some(n) => {
            return Err(error(format!(
                "{prim}: option 'concurrency' must be 1-64, got {n}"
            )))
        }
    };
    let image = ImageRef::parse(image).map_err(|e| error(format!("{prim}: {e}")))?;
    Ok(Call {
        image,
        timeout,
        concurrency,
    })
}

/// Whether `tag` exists: `Some(digest)` or `None`.
pub async fn check_tag(client: &Client, tag: &str) -> Result<Option<String>, String> {
    client.head_manifest(tag).await
}

fn has_tag(ctx: &Ctx, image: &str, tag: &str, opts: &Map) -> RhaiResult<bool> {
    let started = Instant::now();
    let c = call("ghcr_has_tag", image, opts, &["timeout"])?;
    validate_reference(tag).map_err(|e| error(format!("ghcr_has_tag: {}: {e}", c.image)))?;
    let client = Client::new(&ctx.http, c.image.clone(), c.timeout);
    let subject = format!("{}:{tag}", c.image);
    let cl = client.clone();
    let t = tag.to_string();
    let s2 = subject.clone();
    let found = block(
        ctx,
        &client,
        "ghcr_has_tag",
        &subject,
        c.timeout,
        async move {
            check_tag(&cl, &t).await.map_err(|e| {
                format!("ghcr_has_tag: {s2}: could not tell whether the tag exists: {e}")
            })
        },
    )?;
    tracing::info!(
        primitive = "ghcr_has_tag", image = %c.image, tag, exists = found.is_some(),
        digest = found.as_deref().unwrap_or(""), requests = client.requests(),
        token_requests = client.token_requests(), elapsed_ms = started.elapsed().as_millis() as u64,
        "{subject}: {}", if found.is_some() { "present" } else { "absent" }
    );
    Ok(found.is_some())
}

fn has_tags(ctx: &Ctx, image: &str, tags: &Array, opts: &Map) -> RhaiResult<Map> {
    let started = Instant::now();
    let c = call("ghcr_has_tags", image, opts, &["timeout", "concurrency"])?;
    let tags = string_array("ghcr_has_tags", "the tag list", tags)?;
    if tags.len() > MAX_TAGS {
        return Err(error(format!(
            "ghcr_has_tags: {}: {} tags in one call; at most {MAX_TAGS}",
            c.image,
            tags.len()
        )));
    }
    let unique: BTreeSet<String> = tags.into_iter().collect();
    for t in &unique {
        validate_reference(t).map_err(|e| error(format!("ghcr_has_tags: {}: {e}", c.image)))?;
    }
    let client = Client::new(&ctx.http, c.image.clone(), c.timeout);
    let cl = client.clone();
    let list: Vec<String> = unique.iter().cloned().collect();
    let concurrency = c.concurrency;
    let img = c.image.to_string();
    let results = block(ctx, &client, "ghcr_has_tags", &img, c.timeout, async move {
        let sem = Arc::new(tokio::sync::Semaphore::new(concurrency));
        let mut set = tokio::task::JoinSet::new();
        for tag in list {
            let (cl, sem) = (cl.clone(), sem.clone());
            set.spawn(async move {
                let _permit = sem.acquire_owned().await;
                let r = check_tag(&cl, &tag).await;
                (tag, r)
            });
        }
        let mut out = Vec::new();
        while let Some(j) = set.join_next().await {
            out.push(j.map_err(|e| format!("a tag check stopped unexpectedly: {e}"))?);
        }
        Ok(out)
    })?;
    let mut map = Map::new();
    let mut failed: Vec<(String, String)> = Vec::new();
    for (tag, r) in results {
        match r {
            Ok(found) => {
                map.insert(tag.as_str().into(), Dynamic::from(found.is_some()));
            }
            Err(e) => failed.push((tag, e)),
        }
    }
    if !failed.is_empty() {
        failed.sort();
        let names: Vec<&str> = failed.iter().take(10).map(|(t, _)| t.as_str()).collect();
        return Err(error(format!(
            "ghcr_has_tags: {}: could not tell for {} of {} tags ({}{}): {}",
            c.image,
            failed.len(),
            unique.len(),
            names.join(", "),
            if failed.len() > 10 { ", …" } else { "" },
            failed[0].1
        )));
    }
    let present = map
        .values()
        .filter(|v| v.as_bool().unwrap_or(false))
        .count();
    tracing::info!(
        primitive = "ghcr_has_tags", image = %c.image, tags = unique.len(), present,
        absent = unique.len() - present, requests = client.requests(),
        token_requests = client.token_requests(), elapsed_ms = started.elapsed().as_millis() as u64,
        "{}: {present} of {} tags present", c.image, unique.len()
    );
    Ok(map)
}

/// The manifest digest of `reference`: from `Docker-Content-Digest`, or the
/// sha256 of the manifest when the registry sends no digest header.
pub async fn digest_of(client: &Client, reference: &str) -> Result<Option<String>, String> {
    match client.head_manifest(reference).await? {
        None => Ok(None),
        Some(d) if validate_digest(&d).is_ok() => Ok(Some(d)),
        Some(_) => match client.get_manifest(reference, MANIFEST_ACCEPT).await? {
            None => Ok(None),
            Some(r) => Ok(Some(sha256_digest(&r.body))),
        },
    }
}

fn image_digest(ctx: &Ctx, image: &str, tag: &str, opts: &Map) -> RhaiResult<String> {
    let started = Instant::now();
    let c = call("image_digest", image, opts, &["timeout"])?;
    validate_reference(tag).map_err(|e| error(format!("image_digest: {}: {e}", c.image)))?;
    let client = Client::new(&ctx.http, c.image.clone(), c.timeout);
    let subject = format!("{}:{tag}", c.image);
    let (cl, t, s2) = (client.clone(), tag.to_string(), subject.clone());
    let digest = block(
        ctx,
        &client,
        "image_digest",
        &subject,
        c.timeout,
        async move {
            match digest_of(&cl, &t).await {
            Ok(Some(d)) => Ok(d),
            Ok(None) => Err(format!(
                "image_digest: {s2}: no such tag (the registry answered 404); check the tag, and that the image was pushed"
            )),
            Err(e) => Err(format!("image_digest: {s2}: could not read the digest: {e}")),
        }
        },
    )?;
    tracing::info!(
        primitive = "image_digest", image = %c.image, tag, digest = %digest,
        requests = client.requests(), token_requests = client.token_requests(),
        elapsed_ms = started.elapsed().as_millis() as u64, "{subject} is {digest}"
    );
    Ok(digest)
}

const HAS_TAG_DOC: &str = "\
/// Whether the tag `tag` of `image` exists in its registry.
///
/// `image` is `ghcr.io/OWNER/NAME`, `HOST:PORT/OWNER/NAME`, or bare
/// `OWNER/NAME` (= ghcr.io); `tag` follows the OCI grammar
/// `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}` (a `sha256:` digest works too).
/// One `HEAD /v2/<name>/manifests/<tag>` with every manifest media type in
/// `Accept`, through the registry's Bearer challenge: an anonymous token
/// by default; for ghcr.io with `GHCR_TOKEN` or `GITHUB_TOKEN` set, HTTP
/// Basic `x-access-token:<token>` to ghcr.io's token endpoint (never to
/// another host); for other registries, the credential for that host:
/// `REGISTRY_USERNAME`/`REGISTRY_PASSWORD` when `REGISTRY_HOST` names it,
/// else `REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`,
/// `$DOCKER_CONFIG/config.json` or `~/.docker/config.json` (`auths`,
/// `credHelpers`, `credsStore`), sent to a token endpoint on the
/// registry's own host only. Tokens are cached per repository for the run
/// and redacted everywhere. Plain HTTP only for loopback hosts and
/// `RUNBOOK_INSECURE_REGISTRIES`. Redirects are followed (at most 10),
/// without `Authorization` once they leave the registry's origin.
/// Answers are read up to 4 MiB (manifests, token answers); a longer one
/// fails naming the cap.
///
/// Returns `true` (200) or `false` (404). Throws on anything else: 401/403
/// (naming the credential tried and the missing scope), and 429, 5xx,
/// resets or timeouts after bounded retries (`Retry-After` honoured) —
/// never `false` for \"could not tell\".
///
/// Options (third argument): `timeout` (default 60 s, the whole call).
///
/// ```rhai
/// if !ghcr_has_tag(\"ghcr.io/mconstant/pay2slay-api\", sha) { fail(\"no image\"); }
/// ```";

const HAS_TAGS_DOC: &str = "\
/// The batch form of `ghcr_has_tag`: `#{tag: bool}` for every tag in
/// `tags`, checked concurrently on the run's one connection pool, with one
/// token request per repository for the whole run.
///
/// Options (third argument): `timeout` (default 60 s, the whole batch),
/// `concurrency` (1-64, default 16). Throws if any tag could not be
/// checked, naming the tags and the first error.
///
/// ```rhai
/// let seen = ghcr_has_tags(\"mconstant/pay2slay-api\", [a, b, c]);
/// if !seen[a] { print(`missing ${a}`); }
/// ```";

const DIGEST_DOC: &str = "\
/// The manifest digest (`sha256:…`) of `image:tag`, from the registry's
/// `Docker-Content-Digest` (or the sha256 of the manifest itself).
///
/// Same image forms, auth, retries and options as `ghcr_has_tag`; throws
/// when the tag does not exist.
///
/// ```rhai
/// let digest = image_digest(\"ghcr.io/mconstant/pay2slay-api\", sha);
/// ```";

/// Register `ghcr_has_tag`, `ghcr_has_tags` and `image_digest`.
pub fn register(engine: &mut Engine, ctx: &Arc<Ctx>) {
    let c = ctx.clone();
    FuncRegistration::new("ghcr_has_tag")
        .with_params_info(["image: &str", "tag: &str", "bool"])
        .with_comments([HAS_TAG_DOC])
        .register_into_engine(engine, move |image: &str, tag: &str| {
            has_tag(&c, image, tag, &Map::new())
        });
    let c = ctx.clone();
    FuncRegistration::new("ghcr_has_tag")
        .with_params_info(["image: &str", "tag: &str", "opts: Map", "bool"])
        .with_comments([HAS_TAG_DOC])
        .register_into_engine(engine, move |image: &str, tag: &str, opts: Map| {
            has_tag(&c, image, tag, &opts)
        });

    let c = ctx.clone();
    FuncRegistration::new("ghcr_has_tags")
        .with_params_info(["image: &str", "tags: Array", "Map"])
        .with_comments([HAS_TAGS_DOC])
        .register_into_engine(engine, move |image: &str, tags: Array| {
            has_tags(&c, image, &tags, &Map::new())
        });
    let c = ctx.clone();
    FuncRegistration::new("ghcr_has_tags")
        .with_params_info(["image: &str", "tags: Array", "opts: Map", "Map"])
        .with_comments([HAS_TAGS_DOC])
        .register_into_engine(engine, move |image: &str, tags: Array, opts: Map| {
            has_tags(&c, image, &tags, &opts)
        });

    let c = ctx.clone();
    FuncRegistration::new("image_digest")
        .with_params_info(["image: &str", "tag: &str", "String"])
        .with_comments([DIGEST_DOC])
        .register_into_engine(engine, move |image: &str, tag: &str| {
            image_digest(&c, image, tag, &Map::new())
        });
    let c = ctx.clone();
    FuncRegistration::new("image_digest")
        .with_params_info(["image: &str", "tag: &str", "opts: Map", "String"])
        .with_comments([DIGEST_DOC])
        .register_into_engine(engine, move |image: &str, tag: &str, opts: Map| {
            image_digest(&c, image, tag, &opts)
        });
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
    fn challenges_parse() {
        let c = parse_challenge(
            r#"Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:owner/app:pull",error="insufficient_scope""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "https://ghcr.io/token");
        assert_eq!(c.params["service"], "ghcr.io");
        assert_eq!(c.params["scope"], "repository:owner/app:pull");
        assert_eq!(c.params["error"], "insufficient_scope");
        let c = parse_challenge(r#"Basic realm="Registry Realm, \"quoted\"""#).unwrap();
        assert_eq!(c.scheme, "basic");
        assert_eq!(c.params["realm"], r#"Registry Realm, "quoted""#);
        let c = parse_challenge("Bearer realm=http://x/token, service=svc").unwrap();
        assert_eq!(c.params["realm"], "http://x/token");
        assert_eq!(c.params["service"], "svc");
        assert!(parse_challenge("").is_none());
        // Garbage never panics or loops.
        for s in [
            "Bearer =",
            "Bearer a",
            "Bearer a=\"",
            "Bearer ,,,=,",
            "Bearer a=\"\\",
        ] {
            let _ = parse_challenge(s);
        }
    }

    #[test]
    fn retry_after_is_seconds_and_bounded() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert(RETRY_AFTER, "0.5".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(500)));
        h.insert(RETRY_AFTER, "86400".parse().unwrap());
        assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER));
        h.insert(RETRY_AFTER, "1e20".parse().unwrap());
        assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER), "no panic");
        h.insert(RETRY_AFTER, "-1".parse().unwrap());
        assert_eq!(retry_after(&h), None);
        h.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
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
    fn credentials_never_show_their_values() {
        let c = Cred::GitHub {
            var: "GHCR_TOKEN",
            token: "tok-0123456789".into(),
        };
        assert!(!c.describe().contains("tok-0123456789"));
        let b = c.basic().unwrap();
        assert!(b.starts_with("Basic "));
        assert!(crate::redact::contains_secret(&b));
        let u = Cred::User {
            user: "bob".into(),
            pass: "pw-secret-99".into(),
            source: "user 'bob' from the auths entry".into(),
        };
        assert!(u.describe().contains("bob") && !u.describe().contains("pw-secret-99"));
        assert!(Cred::Anonymous.basic().is_none());
    }

    #[test]
    fn digests_of_bytes() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
