//! HTTP helpers every network primitive shares (no Rhai in here): one
//! bounded body reader, one description of a transport error, URLs made
//! safe for messages, and the redirect policy of clients that carry a
//! credential header.
//!
//! Why one reader: a server decides how long its answer is. Reading it
//! whole (`text()`, `bytes()`, `json()`) lets an endless body or a
//! `Content-Length: 10000000000` grow the process without bound, so every
//! body goes through [`read_body`], which refuses a declared length over
//! the cap up front and stops reading the stream at the cap.

pub mod creds;
pub mod endpoint;
pub mod github;
/// The status of one GET (the body is never read): `Ok(status)`, or a
/// failure, transient unless the request could not even be built.
pub async fn get_status(http: &reqwest::Client, url: &str) -> Result<u16, crate::error::PrimError> {
    match http.get(url).send().await {
        Ok(resp) => Ok(resp.status().as_u16()),
        Err(e) => Err(send_error("", &e)),
    }
}

/// A request that got no answer, `prefix` in front: transient (worth
/// another try) unless the request could not even be built (a bad URL).
fn send_error(prefix: &str, e: &reqwest::Error) -> crate::error::PrimError {
    let msg = format!("{prefix}{}", http_error(e));
    if e.is_builder() {
        crate::error::PrimError::fatal(msg)
    } else {
        crate::error::PrimError::transient(msg)
    }
}

/// A document by GET, read up to `cap` bytes: `Ok(None)` on 404 (not there
/// yet); 5xx and 429 are transient, other statuses fatal.
pub async fn get_text(
    http: &reqwest::Client,
    url: &str,
    cap: usize,
    what: &str,
) -> Result<Option<String>, crate::error::PrimError> {
    use crate::error::PrimError;
    let r = http
        .get(url)
        .send()
        .await
        .map_err(|e| send_error(&format!("GET {url}: "), &e))?;
    let status = r.status();
    if status.as_u16() == 404 {
        return Ok(None);
    }
    if status.is_server_error() || status.as_u16() == 429 {
        return Err(PrimError::transient(format!("GET {url} answered {status}")));
    }
    if !status.is_success() {
        return Err(PrimError::fatal(format!("GET {url} answered {status}")));
    }
    match read_body(r, cap, what).await {
        Ok(body) => Ok(Some(String::from_utf8_lossy(&body).into_owned())),
        Err(e) if e.transient() => Err(PrimError::transient(e.to_string())),
        Err(e) => Err(PrimError::fatal(e.to_string())),
    }
}

pub mod retry;

use std::fmt;

use reqwest::Url;

use crate::fsread::fmt_bytes;

/// The cap of a response body when a primitive names none: 4 MiB, far more
/// than any status document, manifest or token answer needs.
pub const DEFAULT_BODY_CAP: usize = 4 * 1024 * 1024;

/// How much of an error answer is read to quote it in a message.
pub const SNIPPET_READ: usize = 4 * 1024;

/// Why a body could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// The body is (or says it is) larger than the cap: not worth a retry.
    TooLarge(String),
    /// The connection broke off or timed out mid-body: worth a retry.
    Broken(String),
}

impl BodyError {
    /// Whether another try may succeed.
    pub fn transient(&self) -> bool {
        matches!(self, BodyError::Broken(_))
    }

    /// The message.
    pub fn msg(&self) -> &str {
        match self {
            BodyError::TooLarge(m) | BodyError::Broken(m) => m,
        }
    }
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.msg())
    }
}

/// A URL for a message: no user or password, and any registered secret in
/// the path or query replaced.
pub fn redact_url(u: &Url) -> String {
    let mut u = u.clone();
    // Both fail only for URLs that cannot hold credentials at all.
    let _ = u.set_username("");
    let _ = u.set_password(None);
    crate::redact::redact(u.as_str()).into_owned()
}

/// The message for a body over its cap: names the cap, the URL and what
/// to do.
fn too_large(prim: &str, url: &str, cap: usize, seen: &str) -> BodyError {
    BodyError::TooLarge(format!(
        "{prim}: the answer from {url} {seen}, over the {} cap on what {prim} reads; \
         check that the URL names the right endpoint (a status document, not a download)",
        fmt_bytes(cap as u64)
    ))
}

/// Read a response body, at most `cap` bytes, as a stream: a declared
/// `Content-Length` over the cap is refused before the first byte is read,
/// and an undeclared or lying length stops at the cap. `prim` names the
/// primitive in the message. Time is bounded by the caller (the request's
/// or the call's timeout), so a trickling body ends there.
pub async fn read_body(
    mut resp: reqwest::Response,
    cap: usize,
    prim: &str,
) -> Result<Vec<u8>, BodyError> {
    let url = redact_url(resp.url());
    if let Some(len) = resp.content_length() {
        if len > cap as u64 {
            return Err(too_large(
                prim,
                &url,
                cap,
                &format!("declares {} (Content-Length: {len})", fmt_bytes(len)),
            ));
        }
    }
    let first = resp.content_length().unwrap_or(0).min(64 * 1024) as usize;
    let mut body = Vec::with_capacity(first);
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                if body.len().saturating_add(c.len()) > cap {
                    return Err(too_large(prim, &url, cap, "is longer"));
                }
                body.extend_from_slice(&c);
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                return Err(BodyError::Broken(format!(
                    "{prim}: reading the answer from {url} failed: {}",
                    http_error(&e)
                )))
            }
        }
    }
}

/// The first [`SNIPPET_READ`] bytes of an (error) answer as text, for a
/// message; a body that breaks off gives what arrived.
pub async fn read_snippet(mut resp: reqwest::Response) -> String {
    let mut body = Vec::new();
    while let Ok(Some(c)) = resp.chunk().await {
        body.extend_from_slice(&c);
        if body.len() >= SNIPPET_READ {
            body.truncate(SNIPPET_READ);
            break;
        }
    }
    snippet(&String::from_utf8_lossy(&body))
}

/// The first 300 characters of an answer, trimmed, for messages: redacted
/// before the cut (see [`crate::redact::cut`]), so a secret the cut falls
/// in is masked, not half shown.
pub fn snippet(text: &str) -> String {
    crate::redact::cut(text.trim(), 300)
}

/// Describe a transport error the way a user can act on.
pub fn http_error(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_redirect() {
        "the redirect was not followed"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_request() {
        "the request failed"
    } else if e.is_body() || e.is_decode() {
        "the answer broke off"
    } else {
        "failed"
    };
    // The source chain says why (connection refused, reset, TLS, …).
    let mut cause = String::new();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        cause = s.to_string();
        src = s.source();
    }
    let msg = if cause.is_empty() {
        what.to_string()
    } else {
        format!("{what}: {cause}")
    };
    crate::redact::redact(&msg).into_owned()
}

/// A URL's origin as `scheme://host:port` (port made explicit), the unit
/// credentials are bound to.
pub fn origin(u: &Url) -> String {
    format!(
        "{}://{}:{}",
        u.scheme(),
        u.host_str().unwrap_or_default(),
        u.port_or_known_default().unwrap_or(0)
    )
}

/// Most redirects a client follows.
pub const MAX_REDIRECTS: usize = 10;

/// The redirect policy of a client that sends a credential header reqwest
/// does not know about (e.g. `x-api-key`): same-origin redirects are
/// followed, a redirect to another origin stops the request with an error
/// naming both, so the header never reaches the other host.
pub fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
        }
        let Some(first) = attempt.previous().first() else {
            return attempt.follow();
        };
        let (from, to) = (origin(first), origin(attempt.url()));
        if from == to {
            attempt.follow()
        } else {
            let msg = cross_origin_message(&from, &to);
            attempt.error(msg)
        }
    })
}

/// Why a cross-origin redirect of a credentialed request was refused.
pub fn cross_origin_message(from: &str, to: &str) -> String {
    format!(
        "{from} redirected to {to}, another origin; runbook does not send this API's credential to another host. \
         If {to} is the real service, point the URL at it directly"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_userinfo() {
        let u = Url::parse("https://bob:hunter2@example.com/a?b=c").unwrap();
        let r = redact_url(&u);
        assert!(!r.contains("hunter2") && !r.contains("bob"), "{r}");
        assert!(r.starts_with("https://example.com/a"), "{r}");
    }

    #[test]
    fn origins_include_scheme_and_port() {
        let a = Url::parse("http://127.0.0.1/x").unwrap();
        let b = Url::parse("http://127.0.0.1:80/y").unwrap();
        let c = Url::parse("https://127.0.0.1/x").unwrap();
        let d = Url::parse("http://127.0.0.2/x").unwrap();
        assert_eq!(origin(&a), origin(&b));
        assert_ne!(origin(&a), origin(&c));
        assert_ne!(origin(&a), origin(&d));
    }

    #[test]
    fn snippets_are_short() {
        assert_eq!(snippet(" ok "), "ok");
        assert_eq!(snippet(&"x".repeat(400)).chars().count(), 301);
    }

    /// A GET with a plain client (the binary installs the TLS provider in
    /// main; unit tests do it here).
    async fn get(url: &str) -> reqwest::Response {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::new().get(url).send().await.unwrap()
    }

    /// A one-shot server on 127.0.0.1 that answers with `head` then
    /// `body_len` bytes of `x` (or endless when `None`).
    async fn serve(head: String, body_len: Option<usize>) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(head.as_bytes()).await;
            let chunk = vec![b'x'; 64 * 1024];
            let mut sent = 0usize;
            // Bounded even when "endless": 64 MiB at most.
            while body_len.is_none_or(|n| sent < n) && sent < 64 * 1024 * 1024 {
                let n = body_len.map_or(chunk.len(), |n| (n - sent).min(chunk.len()));
                if s.write_all(&chunk[..n]).await.is_err() {
                    break;
                }
                sent += n;
            }
        });
        format!("http://{addr}/status")
    }

    /// A server on 127.0.0.1 answering each request with `answer(path)`.
    async fn serve_by_path(
        answer: impl Fn(&str, std::net::SocketAddr) -> String + Send + Sync + 'static,
    ) -> std::net::SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let answer = std::sync::Arc::new(answer);
        tokio::spawn(async move {
            // Bounded: a handful of connections is all a test makes.
            for _ in 0..8 {
                let Ok((mut s, _)) = l.accept().await else {
                    return;
                };
                let answer = answer.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    let req = String::from_utf8_lossy(&buf[..n]);
                    let path = req.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let _ = s.write_all(answer(&path, addr).as_bytes()).await;
                });
            }
        });
        addr
    }

    fn redirect_to(url: &str) -> String {
        format!("HTTP/1.1 307 Temporary Redirect\r\nLocation: {url}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    }

    fn ok(body: &str) -> String {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    #[tokio::test]
    async fn same_origin_clients_follow_only_same_origin_redirects() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let other = serve_by_path(|_, _| ok("other")).await;
        let to_other = serve_by_path(move |_, _| redirect_to(&format!("http://{other}/x"))).await;
        let client = reqwest::Client::builder()
            .redirect(same_origin_redirects())
            .build()
            .unwrap();
        let err = client
            .get(format!("http://{to_other}/a"))
            .send()
            .await
            .unwrap_err();
        let msg = http_error(&err);
        assert!(
            msg.contains(&format!(
                "http://{to_other} redirected to http://{other}, another origin"
            )),
            "{msg}"
        );
        // A redirect within the origin is followed.
        let home = serve_by_path(|path, me| match path {
            "/a" => redirect_to(&format!("http://{me}/b")),
            _ => ok("home"),
        })
        .await;
        let resp = client.get(format!("http://{home}/a")).send().await.unwrap();
        assert_eq!(resp.text().await.unwrap(), "home");
    }

    #[tokio::test]
    async fn a_url_that_cannot_be_sent_is_fatal_and_no_answer_is_transient() {
        use crate::error::Kind;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::new();
        for bad in ["http://exa mple.invalid/", "http://[::1/"] {
            assert_eq!(
                get_text(&http, bad, 10, "t").await.unwrap_err().kind,
                Kind::Fatal,
                "{bad}"
            );
            assert_eq!(
                get_status(&http, bad).await.unwrap_err().kind,
                Kind::Fatal,
                "{bad}"
            );
        }
        // Nothing listens on port 9 of loopback: refused, worth another try.
        let refused = "http://127.0.0.1:9/";
        assert_eq!(
            get_text(&http, refused, 10, "t").await.unwrap_err().kind,
            Kind::Transient
        );
        assert_eq!(
            get_status(&http, refused).await.unwrap_err().kind,
            Kind::Transient
        );
    }

    #[tokio::test]
    async fn a_declared_length_over_the_cap_is_refused_up_front() {
        let url = serve(
            "HTTP/1.1 200 OK\r\nContent-Length: 10000000000\r\n\r\n".into(),
            Some(10),
        )
        .await;
        let resp = get(&url).await;
        let err = read_body(resp, 1024, "probe").await.unwrap_err();
        assert!(!err.transient());
        assert!(err.msg().contains("Content-Length: 10000000000"), "{err}");
        assert!(err.msg().contains("1 KiB cap"), "{err}");
        assert!(err.msg().contains(&url), "{err}");
    }

    #[tokio::test]
    async fn an_endless_body_stops_at_the_cap() {
        let url = serve("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".into(), None).await;
        let resp = get(&url).await;
        let err = read_body(resp, 256 * 1024, "probe").await.unwrap_err();
        assert!(
            err.msg().contains("is longer, over the 256 KiB cap"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_body_at_the_cap_is_read_whole() {
        let url = serve(
            "HTTP/1.1 200 OK\r\nContent-Length: 1024\r\n\r\n".into(),
            Some(1024),
        )
        .await;
        let resp = get(&url).await;
        assert_eq!(read_body(resp, 1024, "probe").await.unwrap().len(), 1024);
    }
}
