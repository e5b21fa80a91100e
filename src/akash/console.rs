//! The Akash Console API: `GET`/`PUT /v1/deployments/{dseq}` with the
//! `x-api-key` header, bounded reads, and the lease a status is read from.

use serde_json::{json, Value};

use super::{Config, LeaseId};
use crate::error::PrimError;
use crate::net::snippet;

/// Most of an Akash Console answer runbook reads (a deployment with its
/// leases and SDL is tens of KiB).
pub const CONSOLE_BODY_CAP: usize = crate::net::DEFAULT_BODY_CAP;

fn api_key() -> Result<String, PrimError> {
    match std::env::var("AKASH_CONSOLE_API_KEY") {
        Ok(k) if !k.is_empty() => {
            crate::redact::register(&k);
            Ok(k)
        }
        _ => Err(PrimError::fatal("AKASH_CONSOLE_API_KEY is not set; create an API key in the Akash Console and export it (a repository secret in CI), or use backend \"cli\"")),
    }
}

/// One Console call. `http` must refuse redirects to another origin: the
/// key is a header reqwest does not strip on the way.
pub async fn call(
    http: &reqwest::Client,
    cfg: &Config,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Result<Value, PrimError> {
    let key = api_key()?;
    let url = format!("{}{path}", cfg.api_url);
    let mut req = http.request(method.clone(), &url).header("x-api-key", key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.map_err(|e| {
        let msg = format!("{method} {url}: {}", crate::net::http_error(&e));
        // A refused cross-origin redirect will refuse again.
        if e.is_redirect() {
            PrimError::fatal(msg)
        } else {
            PrimError::transient(msg)
        }
    })?;
    let status = resp.status();
    let body = crate::net::read_body(resp, CONSOLE_BODY_CAP, "akash console")
        .await
        .map_err(|e| {
            let msg = format!("{method} {url}: {e}");
            if e.transient() {
                PrimError::transient(msg)
            } else {
                PrimError::fatal(msg)
            }
        })?;
    let text = String::from_utf8_lossy(&body);
    if !status.is_success() {
        let hint = match status.as_u16() {
            401 | 403 => " (the API key was refused: check AKASH_CONSOLE_API_KEY)",
            404 => " (no such deployment: check the dseq and that the key's account owns it)",
            _ => "",
        };
        let msg = format!("{method} {url} answered {status}{hint}: {}", snippet(&text));
        return Err(if status.is_server_error() || status.as_u16() == 429 {
            PrimError::transient(msg)
        } else {
            PrimError::fatal(msg)
        });
    }
    serde_json::from_str(&text).map_err(|e| {
        PrimError::fatal(format!(
            "{method} {url} answered malformed JSON ({e}): {}",
            snippet(&text)
        ))
    })
}

/// The whole deployment (`GET /v1/deployments/{dseq}`).
pub async fn get_deployment(
    http: &reqwest::Client,
    cfg: &Config,
    dseq: &str,
) -> Result<Value, PrimError> {
    let path = format!("/v1/deployments/{dseq}");
    call(http, cfg, reqwest::Method::GET, &path, None).await
}

/// Send a new SDL (`PUT /v1/deployments/{dseq}`).
pub async fn put_sdl(
    http: &reqwest::Client,
    cfg: &Config,
    dseq: &str,
    sdl: &str,
) -> Result<Value, PrimError> {
    let path = format!("/v1/deployments/{dseq}");
    let body = json!({"data": {"sdl": sdl}});
    call(http, cfg, reqwest::Method::PUT, &path, Some(body)).await
}

/// The status of the lease `lease` (and the provider, if set) picks from a
/// Console deployment; `forwarded_ports: null` while there is none yet.
pub fn lease_status_of(
    dep: &Value,
    cfg: &Config,
    dseq: &str,
    lease: &LeaseId,
) -> Result<Value, PrimError> {
    let leases = dep
        .pointer("/data/leases")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            PrimError::fatal(format!(
                "the Console API's deployment {dseq} has no data.leases list: {}",
                snippet(&dep.to_string())
            ))
        })?;
    let pick = leases.iter().find(|l| {
        let id = l.get("id");
        let num = |k: &str| id.and_then(|i| i.get(k)).and_then(Value::as_i64);
        lease.gseq.is_none_or(|g| num("gseq") == Some(g))
            && lease.oseq.is_none_or(|o| num("oseq") == Some(o))
            && cfg.provider.as_deref().is_none_or(|p| {
                id.and_then(|i| i.get("provider")).and_then(Value::as_str) == Some(p)
            })
    });
    Ok(pick
        .and_then(|l| l.get("status"))
        .cloned()
        .unwrap_or(json!({"forwarded_ports": null})))
}

/// What an update replaces: the deployment's SDL and the service's image,
/// when the Console returns them (`data.sdl` is not in every answer).
pub fn previous_of(
    dep: &Value,
    dseq: &str,
    service: &str,
) -> Result<(Option<String>, Option<String>), PrimError> {
    if dep.pointer("/data/deployment").is_none() {
        return Err(PrimError::fatal(format!(
            "the Console API's answer for deployment {dseq} has no data.deployment (an API change?): {}",
            snippet(&dep.to_string())
        )));
    }
    let sdl = dep
        .pointer("/data/sdl")
        .and_then(Value::as_str)
        .map(String::from);
    let image = sdl
        .as_deref()
        .and_then(|s| super::sdl::image_of(s, Some(service)).ok())
        .map(|(_, i)| i);
    Ok((sdl, image))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config::resolve(Some("console".into()), Some("http://x".into()), None, None).unwrap()
    }

    #[test]
    fn the_lease_is_picked_by_its_ids() {
        let dep = json!({"data": {"leases": [
            {"id": {"gseq": 1, "oseq": 1}, "status": {"n": 1}},
            {"id": {"gseq": 2, "oseq": 1}, "status": {"n": 2}},
        ]}});
        let want = LeaseId {
            gseq: Some(2),
            oseq: None,
        };
        assert_eq!(
            lease_status_of(&dep, &cfg(), "7", &want).unwrap(),
            json!({"n": 2})
        );
        let none = LeaseId {
            gseq: Some(9),
            oseq: None,
        };
        assert_eq!(
            lease_status_of(&dep, &cfg(), "7", &none).unwrap(),
            json!({"forwarded_ports": null})
        );
        let e = lease_status_of(&json!({"data": {}}), &cfg(), "7", &none).unwrap_err();
        assert!(e.msg.contains("no data.leases list"), "{e}");
    }

    #[test]
    fn an_answer_without_a_deployment_is_refused() {
        let e = previous_of(&json!({"data": {}}), "7", "api").unwrap_err();
        assert!(e.msg.contains("has no data.deployment"), "{e}");
        let (sdl, image) = previous_of(&json!({"data": {"deployment": {}}}), "7", "api").unwrap();
        assert_eq!((sdl, image), (None, None));
    }
}
