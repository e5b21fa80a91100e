//! How a [`Client`] gets in: the first request learns the registry's
//! challenge, a Bearer token is fetched once per repository and run (or the
//! Basic header is used), a refused cached token is replaced once, and a
//! credential only goes to the host it belongs to.

use reqwest::header::{ACCEPT, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use std::time::{Duration, Instant};

use super::auth::{parse_challenge, Auth, Challenge, Cred, Entry};
use super::client::{status_text, Client, Resp, SMALL_LIMIT};
use super::reference::{scheme_for, DEFAULT_REGISTRY};
use crate::net::creds::HostCred;

impl Client {
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
        let slot = self.cache.slot(&self.key);
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
                let known = self.cache.challenge(&self.base);
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
                        None,
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
                self.cache.remember(&self.base, ch.clone());
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
            .send_retrying(method, url, &headers, None, limit, &self.requests)
            .await?;
        match r.status {
            StatusCode::UNAUTHORIZED if !fresh && matches!(entry.auth, Auth::Bearer { .. }) => {
                // A cached token was refused (revoked, expired early): one new token, one more try.
                let slot = self.cache.slot(&self.key);
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
                Cred::Host(HostCred::User { .. }) => {
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

    /// The token endpoint of a Bearer challenge, checked (https, or plain
    /// http where the registry itself may be), with this repository's
    /// scope; and the credential that may go there.
    fn token_endpoint(
        &self,
        ch: &Challenge,
        cred: &Cred,
    ) -> Result<(reqwest::Url, String, Cred), String> {
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
        Ok((url, realm.clone(), cred))
    }

    async fn fetch_token(&self, ch: &Challenge, cred: &Cred) -> Result<Auth, String> {
        let (url, realm, cred) = self.token_endpoint(ch, cred)?;
        let mut headers = vec![(ACCEPT, "application/json".to_string())];
        if let Some(b) = cred.basic() {
            headers.push((AUTHORIZATION, b));
        }
        // An identity token is an OAuth2 refresh token: POSTed as a form.
        let (method, form) = match &cred {
            Cred::Host(HostCred::Identity { token, .. }) => {
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
        self.cache.count_token_request();
        let r = self
            .send_retrying(
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
}
