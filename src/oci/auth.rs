//! Registry credentials and auth without Rhai: which credential goes to
//! which host ([`Cred`]), the `WWW-Authenticate` challenge, `Retry-After`,
//! and the run's token cache ([`TokenCache`]).

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::reference::{split_host_port, DEFAULT_REGISTRY};
use crate::net::creds::{self, HostCred};

/// The longest `Retry-After` honoured; a longer one is cut to this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// The credential a request is made with: none, a GitHub token, or a
/// credential bound to one host (the same [`HostCred`] the auth files and
/// credential helpers give, so the two never drift apart).
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
    /// A user and password, or an OAuth2 refresh token (an auth file's
    /// `identitytoken`, traded at the token endpoint with a POST), for one
    /// host: from an auth file, a credential helper, or
    /// `REGISTRY_USERNAME`/`REGISTRY_PASSWORD` bound to `REGISTRY_HOST`.
    /// Its `source` is the whole phrase messages use (never the value).
    Host(HostCred),
}

impl Cred {
    /// The credential for `registry` (`host[:port]`), per host:
    ///
    /// - ghcr.io: `GHCR_TOKEN`, then `GITHUB_TOKEN`; never for another host.
    /// - `REGISTRY_USERNAME`/`REGISTRY_PASSWORD` when `REGISTRY_HOST` names
    ///   this registry exactly (without `REGISTRY_HOST` they are not sent
    ///   anywhere; a warning says so, once per run: `cache` remembers).
    /// - the auth files and credential helpers registry clients use (see
    ///   `net::creds`).
    ///
    /// Every secret value is registered for redaction before it is used.
    pub async fn for_registry(registry: &str, cache: &TokenCache) -> Cred {
        if registry.eq_ignore_ascii_case(DEFAULT_REGISTRY) {
            for var in ["GHCR_TOKEN", "GITHUB_TOKEN"] {
                if let Some(token) = env_value(var) {
                    crate::redact::register(&token);
                    return Cred::GitHub { var, token };
                }
            }
        }
        if let Some(c) = Cred::from_env_pair(registry, cache) {
            return c;
        }
        match creds::lookup(registry).await {
            Ok(Some(HostCred::User { user, pass, source })) => {
                crate::redact::register(&pass);
                Cred::Host(HostCred::User {
                    source: format!("user '{user}' from {source}"),
                    user,
                    pass,
                })
            }
            Ok(Some(HostCred::Identity { token, source })) => {
                crate::redact::register(&token);
                Cred::Host(HostCred::Identity { token, source })
            }
            Ok(None) => Cred::Anonymous,
            Err(e) => {
                tracing::warn!("{e}; asking {registry} without credentials");
                Cred::Anonymous
            }
        }
    }

    /// `REGISTRY_USERNAME`/`REGISTRY_PASSWORD`, when `REGISTRY_HOST` binds
    /// them to `registry`.
    fn from_env_pair(registry: &str, cache: &TokenCache) -> Option<Cred> {
        let (user, pass) = (
            env_value("REGISTRY_USERNAME")?,
            env_value("REGISTRY_PASSWORD")?,
        );
        crate::redact::register(&pass);
        match env_value("REGISTRY_HOST") {
            Some(h) if creds::normalize_key(&h) == creds::normalize_key(registry) => {
                Some(Cred::Host(HostCred::User {
                    source: format!(
                        "REGISTRY_USERNAME '{user}' with REGISTRY_PASSWORD (REGISTRY_HOST={h})"
                    ),
                    user,
                    pass,
                }))
            }
            Some(_) => None,
            None => {
                if cache.first_unbound_warning() {
                    tracing::warn!(
                        "REGISTRY_USERNAME and REGISTRY_PASSWORD are set without REGISTRY_HOST; they are sent to no registry. Set REGISTRY_HOST to the one registry (host[:port]) they belong to"
                    );
                }
                None
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
            Cred::Host(_) => {
                let (reg_host, _) = split_host_port(registry);
                let reg_host = reg_host.trim_matches(['[', ']']);
                realm_host.eq_ignore_ascii_case(reg_host)
                    || (creds::normalize_key(registry) == "docker.io"
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
            Cred::Host(HostCred::User { source, .. } | HostCred::Identity { source, .. }) => {
                source.clone()
            }
        }
    }

    /// The `Authorization: Basic …` value, registered for redaction.
    pub(crate) fn basic(&self) -> Option<String> {
        let (u, p) = match self {
            Cred::Anonymous | Cred::Host(HostCred::Identity { .. }) => return None,
            Cred::GitHub { token, .. } => ("x-access-token", token.as_str()),
            Cred::Host(HostCred::User { user, pass, .. }) => (user.as_str(), pass.as_str()),
        };
        let enc = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        crate::redact::register(&enc);
        Some(format!("Basic {enc}"))
    }

    pub(crate) fn hint(&self) -> &'static str {
        match self {
            Cred::Anonymous => "the repository may be private or missing: set GHCR_TOKEN (a token with read:packages) for ghcr.io; for other registries log in with docker/podman/skopeo login (an auths entry in ~/.docker/config.json or REGISTRY_AUTH_FILE), or set REGISTRY_HOST with REGISTRY_USERNAME and REGISTRY_PASSWORD",
            Cred::GitHub { .. } => "give the token read:packages on this package (for the workflow's GITHUB_TOKEN: `permissions: packages: read` and the package's 'Manage Actions access' must list this repository)",
            Cred::Host(_) => "check that this user may pull the repository",
        }
    }
}

/// An environment variable that is set to something other than blanks.
fn env_value(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.trim().is_empty())
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

#[derive(Clone, Debug)]
pub(crate) enum Auth {
    /// The registry asked for nothing.
    Open,
    /// A Bearer token from the token endpoint.
    Bearer { token: String, expires: Instant },
    /// HTTP Basic on every request.
    Basic(String),
}

#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub(crate) auth: Auth,
    pub(crate) cred: Cred,
    pub(crate) challenge: Option<Challenge>,
}

impl Entry {
    pub(crate) fn fresh(&self) -> bool {
        match &self.auth {
            Auth::Bearer { expires, .. } => Instant::now() < *expires,
            _ => true,
        }
    }

    pub(crate) fn header(&self) -> Option<String> {
        match &self.auth {
            Auth::Open => None,
            Auth::Bearer { token, .. } => Some(format!("Bearer {token}")),
            Auth::Basic(h) => Some(h.clone()),
        }
    }

    pub(crate) fn same_as(&self, other: &Entry) -> bool {
        match (&self.auth, &other.auth) {
            (Auth::Bearer { token: a, .. }, Auth::Bearer { token: b, .. }) => a == b,
            (Auth::Open, Auth::Open) => true,
            (Auth::Basic(a), Auth::Basic(b)) => a == b,
            _ => false,
        }
    }
}

pub(crate) type Slot = Arc<tokio::sync::Mutex<Option<Entry>>>;

/// The registry auth of one run (it lives in `Ctx`): one slot per
/// repository (`scheme://registry/repository`), each behind an async lock
/// so a batch of concurrent checks asks the token endpoint once, and the
/// last challenge seen per registry.
#[derive(Clone, Default)]
pub struct TokenCache {
    inner: Arc<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    slots: Mutex<HashMap<String, Slot>>,
    challenges: Mutex<HashMap<String, Challenge>>,
    token_requests: AtomicU64,
    unbound_warned: AtomicBool,
}

impl TokenCache {
    /// The slot of a repository.
    pub(crate) fn slot(&self, key: &str) -> Slot {
        let mut slots = self.inner.slots.lock();
        slots.entry(key.to_string()).or_default().clone()
    }

    /// The challenge a registry (its base URL) answered last.
    pub(crate) fn challenge(&self, base: &str) -> Option<Challenge> {
        let challenges = self.inner.challenges.lock();
        challenges.get(base).cloned()
    }

    /// Remember a registry's challenge for its other repositories.
    pub(crate) fn remember(&self, base: &str, ch: Challenge) {
        let mut challenges = self.inner.challenges.lock();
        challenges.insert(base.to_string(), ch);
    }

    /// Count one token-endpoint request.
    pub(crate) fn count_token_request(&self) {
        self.inner.token_requests.fetch_add(1, Ordering::Relaxed);
    }

    /// True the first time it is asked in this run: the warning about an
    /// unbound `REGISTRY_USERNAME` is said once, not once per repository.
    pub(crate) fn first_unbound_warning(&self) -> bool {
        !self.inner.unbound_warned.swap(true, Ordering::Relaxed)
    }

    /// Token-endpoint requests made in this run so far.
    pub fn token_requests(&self) -> u64 {
        self.inner.token_requests.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn credentials_never_show_their_values() {
        let c = Cred::GitHub {
            var: "GHCR_TOKEN",
            token: "tok-0123456789".into(),
        };
        assert!(!c.describe().contains("tok-0123456789"));
        let b = c.basic().unwrap();
        assert!(b.starts_with("Basic "));
        assert!(crate::redact::contains_secret(&b));
        let u = Cred::Host(HostCred::User {
            user: "bob".into(),
            pass: "pw-secret-99".into(),
            source: "user 'bob' from the auths entry".into(),
        });
        assert!(u.describe().contains("bob") && !u.describe().contains("pw-secret-99"));
        assert!(Cred::Anonymous.basic().is_none());
    }

    #[test]
    fn the_unbound_warning_is_said_once_per_run() {
        let run = TokenCache::default();
        assert!(run.first_unbound_warning());
        assert!(!run.first_unbound_warning());
        assert!(
            TokenCache::default().first_unbound_warning(),
            "another run says it again"
        );
    }
}
