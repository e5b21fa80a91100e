//! The OCI distribution client without Rhai: requests to one repository
//! through the registry's auth (see `login.rs`), bounded reads, transient
//! failures retried on the one schedule and then reported: a check never
//! answers "absent" when it could not tell.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};

use super::auth::{retry_after, TokenCache};
use super::reference::{sha256_digest, validate_digest, ImageRef, MANIFEST_ACCEPT};
use crate::error::{fmt_secs, PrimError};
use crate::net::retry::{retry_with, Schedule};

/// Default bound of one registry primitive call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Bound of one HTTP attempt inside a call.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);

/// Retries after the first attempt, for transient failures.
const MAX_RETRIES: u32 = 4;

/// Largest manifest, index or token answer read into memory.
pub const SMALL_LIMIT: usize = 4 * 1024 * 1024;

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

    pub(crate) fn snippet(&self) -> String {
        crate::net::snippet(&String::from_utf8_lossy(&self.body))
    }
}

/// A distribution client for one repository, on the run's HTTP client.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    pub(crate) cache: TokenCache,
    /// The image (registry + repository).
    pub image: ImageRef,
    pub(crate) base: String,
    pub(crate) key: String,
    attempt_timeout: Duration,
    pub(crate) requests: Arc<AtomicU64>,
    pub(crate) tokens: Arc<AtomicU64>,
    last_failure: Arc<Mutex<Option<String>>>,
}

pub(crate) fn status_text(s: StatusCode) -> String {
    match s.canonical_reason() {
        Some(r) => format!("{} {r}", s.as_u16()),
        None => s.as_u16().to_string(),
    }
}

impl Client {
    /// A client for `image` with the run's token cache; one HTTP attempt
    /// is bounded by `min(timeout, 20s)`.
    pub fn new(
        http: &reqwest::Client,
        cache: &TokenCache,
        image: ImageRef,
        timeout: Duration,
    ) -> Client {
        let base = image.base_url();
        let key = format!("{base}/{}", image.repository);
        Client {
            http: http.clone(),
            cache: cache.clone(),
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
        self.last_failure.lock().clone()
    }

    /// `fut` (a conversation with this client's registry) within
    /// `timeout`: its own result, or (the outer error) a transient error
    /// that names the timeout and the last failure seen.
    pub async fn within<T>(
        &self,
        timeout: Duration,
        fut: impl std::future::Future<Output = Result<T, PrimError>>,
    ) -> Result<Result<T, PrimError>, PrimError> {
        match tokio::time::timeout(timeout, fut).await {
            Ok(r) => Ok(r),
            Err(_) => Err(PrimError::transient(format!(
                "no answer from the registry within {} (the call's `timeout` option){}",
                fmt_secs(timeout),
                self.last_failure()
                    .map(|f| format!(", last attempt: {f}"))
                    .unwrap_or_default()
            ))),
        }
    }

    /// One request with bounded retries of transient failures, on the
    /// one retry schedule (`Retry-After` honoured within it). 401/403 and
    /// every other status are returned as they are.
    pub(crate) async fn send_retrying(
        &self,
        method: &Method,
        url: &str,
        headers: &[(reqwest::header::HeaderName, String)],
        body: Option<&str>,
        limit: usize,
        counter: &AtomicU64,
    ) -> Result<Resp, PrimError> {
        let schedule = Schedule::within(Duration::from_secs(24 * 3600))
            .attempts(MAX_RETRIES + 1)
            .delays(Duration::from_millis(100), Duration::from_secs(4))
            .attempt_timeout(self.attempt_timeout + Duration::from_secs(1));
        let outcome = retry_with(&schedule, |_| async {
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
            let failure = match req.send().await {
                Err(e) => PrimError::transient(crate::net::http_error(&e)),
                Ok(resp) => match read(resp, limit).await {
                    Ok(r) => return Ok(r),
                    Err(f) => f,
                },
            };
            if failure.is_transient() {
                *self.last_failure.lock() = Some(format!("{method} {url}: {}", failure.msg));
            }
            Err(failure)
        })
        .await;
        match outcome {
            Ok((r, _)) => Ok(r),
            Err(g) if !g.exhausted => Err(g.last.map_msg(|m| format!("{method} {url}: {m}"))),
            Err(g) => {
                let tries = format!(
                    "gave up after {} attempts in {}",
                    g.attempts,
                    fmt_secs(g.elapsed)
                );
                Err(g.last.map_msg(|m| format!("{method} {url}: {m} ({tries})")))
            }
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}/v2/{}/{path}", self.base, self.image.repository)
    }

    /// `HEAD` a manifest: `Some(digest)` (empty if the registry sent none)
    /// when it exists, `None` on 404, an error otherwise.
    pub async fn head_manifest(&self, reference: &str) -> Result<Option<String>, PrimError> {
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
            s => Err(PrimError::fatal(format!(
                "HEAD {}: unexpected answer {}",
                self.url(&format!("manifests/{reference}")),
                status_text(s)
            ))),
        }
    }

    /// `HEAD` each of `tags`, at most `concurrency` at once, on this
    /// client's token: per tag its digest (`Some`), absent (`None`), or why
    /// it could not tell. One tag's failure does not stop the others.
    pub async fn head_manifests(
        &self,
        tags: Vec<String>,
        concurrency: usize,
    ) -> Result<Vec<(String, Result<Option<String>, PrimError>)>, PrimError> {
        let sem = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
        let mut set = tokio::task::JoinSet::new();
        for tag in tags {
            let (client, sem) = (self.clone(), sem.clone());
            set.spawn(async move {
                let _permit = sem.acquire_owned().await;
                let r = client.head_manifest(&tag).await;
                (tag, r)
            });
        }
        let mut out = Vec::new();
        while let Some(j) = set.join_next().await {
            out.push(
                j.map_err(|e| PrimError::fatal(format!("a tag check stopped unexpectedly: {e}")))?,
            );
        }
        Ok(out)
    }

    /// The manifest digest of `reference` (`None` on 404): from
    /// `Docker-Content-Digest`, or the sha256 of the manifest when the
    /// registry sends no usable digest header.
    pub async fn digest(&self, reference: &str) -> Result<Option<String>, PrimError> {
        match self.head_manifest(reference).await? {
            None => Ok(None),
            Some(d) if validate_digest(&d).is_ok() => Ok(Some(d)),
            Some(_) => match self.get_manifest(reference, MANIFEST_ACCEPT).await? {
                None => Ok(None),
                Some(r) => Ok(Some(sha256_digest(&r.body))),
            },
        }
    }

    /// `GET` a manifest (or index): `None` on 404.
    pub async fn get_manifest(
        &self,
        reference: &str,
        accept: &str,
    ) -> Result<Option<Resp>, PrimError> {
        let path = format!("manifests/{reference}");
        let r = self
            .request(Method::GET, &path, accept, SMALL_LIMIT)
            .await?;
        match r.status {
            s if s.is_success() => Ok(Some(r)),
            StatusCode::NOT_FOUND => Ok(None),
            s => Err(PrimError::fatal(format!(
                "GET {}: unexpected answer {}: {}",
                self.url(&path),
                status_text(s),
                r.snippet()
            ))),
        }
    }

    /// `GET` a blob, telling apart a failed conversation (outer `Err`:
    /// unreachable, refused, timed out) from a blob that is missing or not
    /// what its digest says (inner `Err`: the content cannot be trusted).
    pub async fn fetch_blob(
        &self,
        digest: &str,
        limit: usize,
    ) -> Result<Result<Vec<u8>, PrimError>, PrimError> {
        if let Err(e) = validate_digest(digest) {
            return Ok(Err(PrimError::fatal(e.msg)));
        }
        let path = format!("blobs/{digest}");
        let r = self.request(Method::GET, &path, "*/*", limit).await?;
        if r.status == StatusCode::NOT_FOUND {
            return Ok(Err(PrimError::fatal(format!(
                "GET {}: the blob is missing (404)",
                self.url(&path)
            ))));
        }
        if !r.status.is_success() {
            return Err(PrimError::fatal(format!(
                "GET {}: unexpected answer {}: {}",
                self.url(&path),
                status_text(r.status),
                r.snippet()
            )));
        }
        let got = sha256_digest(&r.body);
        if got != digest {
            return Ok(Err(PrimError::fatal(format!(
                "GET {}: the blob's content hashes to {got}, not {digest}",
                self.url(&path)
            ))));
        }
        Ok(Ok(r.body))
    }

    /// `GET /v2/<name>/referrers/<digest>` (OCI 1.1): `None` when the
    /// registry has no referrers API (404, 400, 405, 501).
    pub async fn referrers(&self, digest: &str) -> Result<Option<Resp>, PrimError> {
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
            _ => Err(PrimError::fatal(format!(
                "GET {}: unexpected answer {}: {}",
                self.url(&path),
                status_text(r.status),
                r.snippet()
            ))),
        }
    }
}

/// Read an answer's body up to `limit` bytes (through the one bounded
/// reader); classify the status.
async fn read(resp: reqwest::Response, limit: usize) -> Result<Resp, PrimError> {
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
        return Err(PrimError::transient(msg).after(retry_after(&headers)));
    }
    // A HEAD (limit 0) has no body; error bodies of other statuses are
    // quoted, so they get a small allowance too.
    match crate::net::read_body(resp, limit.max(64 * 1024), "registry").await {
        Ok(body) => Ok(Resp {
            status,
            headers,
            body,
        }),
        Err(e) if e.transient() => Err(PrimError::transient(e.to_string())),
        Err(e) => Err(PrimError::fatal(e.to_string())),
    }
}
