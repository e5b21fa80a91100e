//! The GitHub REST API, as the `github` lock and ledger backends use it:
//! the repository and token from the workflow's environment
//! (`GITHUB_API_URL`, `GITHUB_REPOSITORY`, `GITHUB_TOKEN`), one call
//! retried on the one schedule ([`crate::net::retry`]) through rate limits
//! and 5xx, and a refusal explained (401: the token; 403/404: the
//! permission the workflow's `permissions:` key must grant).
//!
//! The token is a secret: registered for redaction when read, sent only
//! in the `Authorization` header, and only to the API's own origin (the
//! client refuses a redirect to another one).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::Value;

use super::retry::{self, Schedule};
use crate::error::{fmt_secs, PrimError};

/// The API of github.com, when `GITHUB_API_URL` is not set.
pub const DEFAULT_API: &str = "https://api.github.com";

/// The REST API version runbook speaks (the `X-GitHub-Api-Version` header).
pub const API_VERSION: &str = "2022-11-28";

/// Bound of one attempt; the whole call (retries, rate-limit waits) has
/// the caller's bound.
const ATTEMPT: Duration = Duration::from_secs(10);

/// GitHub's advice for a secondary rate limit with no `Retry-After`: wait
/// at least a minute.
const SECONDARY_WAIT: Duration = Duration::from_secs(60);

/// The repository the backends write to, and the token they write with.
#[derive(Clone)]
pub struct Repo {
    /// The API's base URL, no trailing slash.
    pub api: String,
    /// `owner` of `owner/repo`.
    pub owner: String,
    /// `repo` of `owner/repo`.
    pub name: String,
    token: String,
}

// By hand: the token never reaches a Debug print.
impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repo")
            .field("api", &self.api)
            .field("owner", &self.owner)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// What the workflow must grant for the backends to work.
pub const PERMISSIONS_HINT: &str = "in GitHub Actions give the job `permissions: { contents: write, deployments: write }`; elsewhere export a token with those permissions";

impl Repo {
    /// From `GITHUB_API_URL` (default [`DEFAULT_API`]), `GITHUB_REPOSITORY`
    /// (`owner/repo`) and `GITHUB_TOKEN` (registered for redaction).
    pub fn from_env() -> Result<Repo, PrimError> {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let token = get("GITHUB_TOKEN");
        if let Some(t) = &token {
            crate::redact::register(t);
        }
        let slug = get("GITHUB_REPOSITORY");
        let (Some(token), Some(slug)) = (token.clone(), slug.clone()) else {
            let missing: Vec<&str> = [
                ("GITHUB_TOKEN", token.is_none()),
                ("GITHUB_REPOSITORY", slug.is_none()),
            ]
            .into_iter()
            .filter_map(|(k, gone)| gone.then_some(k))
            .collect();
            return Err(PrimError::usage(format!(
                "the github backend needs {} (not set): both are set in GitHub Actions ({PERMISSIONS_HINT}), or choose another backend",
                missing.join(" and ")
            )));
        };
        let (owner, name) = parse_slug(&slug)?;
        let api = get("GITHUB_API_URL").unwrap_or_else(|| DEFAULT_API.into());
        let parsed = reqwest::Url::parse(&api).map_err(|e| {
            PrimError::usage(format!(
                "GITHUB_API_URL '{api}' is not a URL ({e}); leave it unset for {DEFAULT_API}"
            ))
        })?;
        if !matches!(parsed.scheme(), "https" | "http") {
            return Err(PrimError::usage(format!(
                "GITHUB_API_URL '{api}' is not an http(s) URL; leave it unset for {DEFAULT_API}"
            )));
        }
        Ok(Repo {
            api: api.trim_end_matches('/').to_string(),
            owner,
            name,
            token,
        })
    }

    /// `owner/repo`.
    pub fn slug(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }
}

/// `owner/repo` as GitHub spells names: letters, digits, '-', '_', '.'.
fn parse_slug(slug: &str) -> Result<(String, String), PrimError> {
    let ok = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    };
    match slug.split_once('/') {
        Some((o, r)) if ok(o) && ok(r) => Ok((o.to_string(), r.to_string())),
        _ => Err(PrimError::usage(format!(
            "GITHUB_REPOSITORY '{slug}' is not owner/repo (e.g. \"acme/app\")"
        ))),
    }
}

/// A client for the API: redirects are followed only within the API's
/// origin, so the token never reaches another host.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(crate::net::same_origin_redirects())
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("runbook/", env!("CARGO_PKG_VERSION")))
        .build()
        .or_else(|_| {
            reqwest::Client::builder()
                .redirect(crate::net::same_origin_redirects())
                .build()
        })
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// The permission a backend's endpoints need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    /// Git refs and commits (the lock).
    Contents,
    /// Deployments and their statuses (the ledger).
    Deployments,
}

impl Permission {
    /// As the workflow's `permissions:` key spells it.
    pub fn grant(self) -> &'static str {
        match self {
            Permission::Contents => "contents: write",
            Permission::Deployments => "deployments: write",
        }
    }
}

/// An answer runbook reads: any status but a rate limit or a 5xx (those
/// are retried), with its JSON body (`Null` when empty).
#[derive(Clone, Debug)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The JSON body.
    pub body: Value,
}

impl Answer {
    /// GitHub's `message`, or "" when the body has none.
    pub fn message(&self) -> &str {
        self.body
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

/// The repository's API, through one client.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    repo: Repo,
}

impl Api {
    /// An API on `http` (which must refuse cross-origin redirects: see
    /// [`client`] and `Ctx::http_same_origin`).
    pub fn new(http: reqwest::Client, repo: Repo) -> Api {
        Api { http, repo }
    }

    /// [`Repo::from_env`] on `http`.
    pub fn from_env(http: reqwest::Client) -> Result<Api, PrimError> {
        Ok(Api::new(http, Repo::from_env()?))
    }

    /// The repository.
    pub fn repo(&self) -> &Repo {
        &self.repo
    }

    /// `METHOD /repos/{owner}/{repo}{path}` with an optional JSON body,
    /// within `bound`: transport failures, 5xx and rate limits are retried
    /// (a rate limit waits what GitHub asks, cut to the bound); every other
    /// answer is returned for the caller to read.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        bound: Duration,
    ) -> Result<Answer, PrimError> {
        let url = format!(
            "{}/repos/{}/{}{path}",
            self.repo.api, self.repo.owner, self.repo.name
        );
        let what = format!("{method} {url}");
        let schedule = Schedule::within(bound)
            .delays(Duration::from_millis(250), Duration::from_secs(5))
            .attempt_timeout(ATTEMPT.min(bound));
        retry::retry(&what, &schedule, |_| self.once(&method, &url, body)).await
    }

    async fn once(
        &self,
        method: &Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Answer, PrimError> {
        let what = format!("{method} {url}");
        let mut req = self
            .http
            .request(method.clone(), url)
            .bearer_auth(&self.repo.token)
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", API_VERSION);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| {
            let msg = format!("{what}: {}", crate::net::http_error(&e));
            // A refused cross-origin redirect refuses again.
            if e.is_redirect() {
                PrimError::fatal(msg)
            } else {
                PrimError::transient(msg)
            }
        })?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = crate::net::read_body(resp, crate::net::DEFAULT_BODY_CAP, "github")
            .await
            .map_err(|e| {
                let msg = format!("{what}: {e}");
                if e.transient() {
                    PrimError::transient(msg)
                } else {
                    PrimError::fatal(msg)
                }
            })?;
        let text = String::from_utf8_lossy(&bytes);
        let parsed: Option<Value> = if text.trim().is_empty() {
            Some(Value::Null)
        } else {
            serde_json::from_str(&text).ok()
        };
        let message = parsed
            .as_ref()
            .and_then(|v| v.get("message"))
            .and_then(Value::as_str)
            .unwrap_or("");
        if let Some((wait, why)) = rate_limited(status, &headers, message, SystemTime::now()) {
            return Err(PrimError::transient(format!(
                "{what}: {why} (GitHub asked to wait {})",
                fmt_secs(wait)
            ))
            .after(Some(wait)));
        }
        if status >= 500 {
            return Err(PrimError::transient(format!(
                "{what} answered {status}: {}",
                crate::net::snippet(&text)
            ))
            .after(retry_after(&headers)));
        }
        let Some(body) = parsed else {
            return Err(PrimError::fatal(format!(
                "{what} answered {status} with a body that is not JSON: {}",
                crate::net::snippet(&text)
            )));
        };
        Ok(Answer { status, body })
    }

    /// The error of an answer the caller did not expect: a 401 names the
    /// token, a 403 or 404 the permission `perm` and the workflow's
    /// `permissions:` key, anything else GitHub's message.
    pub fn refused(&self, what: &str, perm: Permission, a: &Answer) -> PrimError {
        let slug = self.repo.slug();
        let said = match a.message() {
            "" => String::new(),
            m => format!(" ({m})"),
        };
        let grant = perm.grant();
        let msg = match a.status {
            401 => format!(
                "{what}: GitHub answered 401{said}: GITHUB_TOKEN was refused (expired, revoked, or not a token for {}); in a workflow pass `${{{{ secrets.GITHUB_TOKEN }}}}`",
                self.repo.api
            ),
            403 | 404 => format!(
                "{what}: GitHub answered {}{said}: the token may not do this in {slug}: it needs the `{grant}` permission; add it to the workflow's or the job's `permissions:` key (e.g. `permissions: {{ contents: write, deployments: write }}`){}",
                a.status,
                if a.status == 404 {
                    ", and check that GITHUB_REPOSITORY names the repository"
                } else {
                    ""
                }
            ),
            s => format!("{what}: GitHub answered {s}{said}"),
        };
        PrimError::fatal(msg)
    }
}

/// `Retry-After` in seconds (GitHub sends seconds, never a date).
fn retry_after(h: &HeaderMap) -> Option<Duration> {
    h.get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

fn header_u64(h: &HeaderMap, k: &str) -> Option<u64> {
    h.get(k)?.to_str().ok()?.trim().parse().ok()
}

/// Whether an answer is a rate limit, and how long to wait: GitHub's own
/// rules. `Retry-After` first; else a spent primary limit
/// (`x-ratelimit-remaining: 0`) waits until `x-ratelimit-reset`; else a
/// 403 or 429 that says "secondary rate limit", or a 429 with no header,
/// waits a minute. A 403 without any of these is a refusal, not a limit.
pub fn rate_limited(
    status: u16,
    h: &HeaderMap,
    message: &str,
    now: SystemTime,
) -> Option<(Duration, String)> {
    if !matches!(status, 403 | 429) {
        return None;
    }
    if let Some(d) = retry_after(h) {
        return Some((
            d,
            format!("rate limited ({status}, Retry-After {}s)", d.as_secs()),
        ));
    }
    if header_u64(h, "x-ratelimit-remaining") == Some(0) {
        let now_s = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let reset = header_u64(h, "x-ratelimit-reset").unwrap_or(now_s + 60);
        // One second past the reset: the window ends on GitHub's clock.
        let wait = Duration::from_secs(reset.saturating_sub(now_s) + 1);
        return Some((
            wait,
            format!(
                "the token's rate limit is spent until {} (x-ratelimit-reset)",
                crate::error::rfc3339_secs(reset)
            ),
        ));
    }
    if message
        .to_ascii_lowercase()
        .contains("secondary rate limit")
        || status == 429
    {
        return Some((SECONDARY_WAIT, format!("secondary rate limit ({status})")));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn rate_limits_follow_githubs_rules() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let wait = |s, h: &HeaderMap, m| rate_limited(s, h, m, now).map(|(d, _)| d.as_secs());
        assert_eq!(wait(429, &headers(&[("retry-after", "7")]), ""), Some(7));
        assert_eq!(wait(403, &headers(&[("retry-after", "3")]), ""), Some(3));
        let spent = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1030"),
        ]);
        assert_eq!(wait(403, &spent, "API rate limit exceeded"), Some(31));
        assert_eq!(
            wait(
                403,
                &HeaderMap::new(),
                "You have exceeded a secondary rate limit"
            ),
            Some(60)
        );
        assert_eq!(wait(429, &HeaderMap::new(), ""), Some(60));
        // A plain 403 is a refusal: the permission, not a wait.
        let left = headers(&[("x-ratelimit-remaining", "4999")]);
        assert_eq!(
            wait(403, &left, "Resource not accessible by integration"),
            None
        );
        assert_eq!(wait(200, &spent, ""), None);
    }

    #[test]
    fn slugs_are_owner_slash_repo() {
        assert_eq!(
            parse_slug("acme/app.v2").unwrap(),
            ("acme".into(), "app.v2".into())
        );
        for bad in ["acme", "acme/", "/app", "a/b/c", "acme/../x", "a b/c"] {
            assert!(parse_slug(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_token_is_not_in_debug() {
        let r = Repo {
            api: DEFAULT_API.into(),
            owner: "o".into(),
            name: "r".into(),
            token: "ghs_secret_value".into(),
        };
        assert!(!format!("{r:?}").contains("ghs_secret_value"));
    }
}
