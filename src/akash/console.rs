//! The Akash Console API: `GET`/`PUT /v1/deployments/{dseq}` with the
//! `x-api-key` header, bounded reads, the lease a status is read from, and
//! what a deployment's answer says of it ([`Live`]). The API has no
//! conditional write and never answers the SDL: see [`Live`].

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

/// What runbook reads of a Console deployment. The Console API answers
/// the deployment's state, its on-chain manifest `hash` and its leases,
/// never the SDL or the image (see `tests/data/akash/console-api.schema.json`,
/// from the API's own schemas): what image runs is the ledger's record.
#[derive(Clone, Debug, PartialEq)]
pub struct Live {
    /// `data.deployment.state` (`active`, `closed`).
    pub state: String,
    /// `data.deployment.hash`: the manifest version, base64. Another SDL,
    /// another hash; a write that moved nothing leaves it as it was.
    pub hash: String,
    /// Each lease's `state`, in the answer's order.
    pub leases: Vec<String>,
}

/// The [`Live`] fields of a Console answer (`GET` or `PUT`); an answer
/// without them is an API change, named with a snippet.
pub fn live_of(dep: &Value, dseq: &str) -> Result<Live, PrimError> {
    let field = |ptr: &str| dep.pointer(ptr).and_then(Value::as_str).map(String::from);
    let (Some(state), Some(hash)) = (
        field("/data/deployment/state"),
        field("/data/deployment/hash"),
    ) else {
        return Err(PrimError::fatal(format!(
            "the Console API's answer for deployment {dseq} has no data.deployment.state and .hash (an API change?): {}",
            snippet(&dep.to_string())
        )));
    };
    let leases = dep
        .pointer("/data/leases")
        .and_then(Value::as_array)
        .map(|ls| {
            ls.iter()
                .map(|l| {
                    l.get("state")
                        .and_then(Value::as_str)
                        .unwrap_or("unknown")
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Live {
        state,
        hash,
        leases,
    })
}

/// How many of a service's replicas are ready, from a lease status
/// (`services.<name>.ready_replicas` of `replicas`); `None` when the
/// status does not list the service (not scheduled yet).
pub fn readiness(status: &Value, service: &str) -> Option<(i64, i64)> {
    let svc = status.get("services")?.get(service)?;
    let n = |k: &str| svc.get(k).and_then(Value::as_i64).unwrap_or(0);
    Some((n("ready_replicas"), n("replicas").max(n("total"))))
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
        for bad in [
            json!({"data": {}}),
            json!({"data": {"deployment": {"state": "active"}}}),
        ] {
            let e = live_of(&bad, "7").unwrap_err();
            assert!(
                e.msg.contains("has no data.deployment.state and .hash"),
                "{e}"
            );
        }
        let live = live_of(
            &json!({"data": {"deployment": {"state": "active", "hash": "aGFzaA=="},
                    "leases": [{"state": "active"}, {}]}}),
            "7",
        )
        .unwrap();
        assert_eq!(live.hash, "aGFzaA==");
        assert_eq!(live.leases, ["active", "unknown"]);
    }

    #[test]
    fn readiness_counts_ready_replicas() {
        let s = json!({"services": {"api": {"ready_replicas": 0, "replicas": 1, "total": 1}}});
        assert_eq!(readiness(&s, "api"), Some((0, 1)));
        assert_eq!(readiness(&s, "web"), None);
        assert_eq!(readiness(&json!({"services": null}), "api"), None);
    }
}
