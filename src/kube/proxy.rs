//! A health check through the API server's service proxy
//! (`/api/v1/namespaces/NS/services/NAME:PORT/proxy/PATH`): a ClusterIP
//! Service checked from outside the cluster, with nothing to port-forward.

use std::time::Instant;

use super::client::{explain, Call, Kube};
use super::service::PortRef;
use crate::error::{fmt_secs, PrimError};
use crate::net::retry::{retry_with, Schedule, Stats};

/// A path on a Service's port, reached through the API server's proxy.
#[derive(Clone, Debug)]
pub struct ProxyPath {
    /// Namespace.
    pub ns: String,
    /// Service name.
    pub svc: String,
    /// Port number or name, as the proxy URL takes it.
    pub port: String,
    /// The path, starting with '/'.
    pub path: String,
}

impl ProxyPath {
    /// Check the parts; the path must start with '/' and hold no '..' or
    /// spaces (it goes into the API server's URL).
    pub fn new(ns: &str, svc: &str, port: &PortRef, path: &str) -> Result<ProxyPath, PrimError> {
        if !path.starts_with('/') || path.contains("..") || path.chars().any(char::is_whitespace) {
            return Err(PrimError::usage(format!(
                "path '{path}' must start with '/' and hold no '..' or spaces"
            )));
        }
        Ok(ProxyPath {
            ns: ns.into(),
            svc: svc.into(),
            port: match port {
                PortRef::Number(n) => n.to_string(),
                PortRef::Name(s) => s.clone(),
            },
            path: path.into(),
        })
    }

    /// `/api/v1/namespaces/NS/services/NAME:PORT/proxy/PATH`.
    pub fn uri(&self) -> String {
        format!(
            "/api/v1/namespaces/{}/services/{}:{}/proxy{}",
            self.ns, self.svc, self.port, self.path
        )
    }

    /// As messages name it.
    pub fn describe(&self) -> String {
        format!(
            "Service {}/{}:{}{} (through the API server's proxy)",
            self.ns, self.svc, self.port, self.path
        )
    }
}

/// One GET through the proxy: a status in `expect` is success, another
/// status or a connection failure transient, a 401/403 fatal (retrying
/// cannot grant a permission).
async fn proxy_get(k: &Kube, uri: &str, expect: &[u16]) -> Result<u16, PrimError> {
    let req = http::Request::get(uri)
        .body(kube::client::Body::empty())
        .map_err(|e| PrimError::fatal(format!("bad request {uri}: {e}")))?;
    match k.client.send(req).await {
        Ok(resp) => match resp.status().as_u16() {
            s if expect.contains(&s) => Ok(s),
            s @ (401 | 403) => Err(PrimError::fatal(format!(
                "the API server answered {s}: the user of {} may not use services/proxy (check `kubectl auth can-i get services/proxy`)",
                k.context
            ))),
            s => Err(PrimError::transient(format!("answered {s}"))),
        },
        Err(e) => {
            let call = Call {
                what: "proxy",
                verb: "get",
                resource: "services/proxy",
                ns: None,
            };
            Err(explain(k, &e, call))
        }
    }
}

/// GET `target` through the API server's proxy until it answers a status
/// in `expect`, on the one retry schedule. Returns the status and how it
/// went.
pub async fn check_proxy(
    k: &Kube,
    target: &ProxyPath,
    schedule: &Schedule,
    expect: &[u16],
) -> Result<(u16, Stats), PrimError> {
    let what = target.describe();
    let uri = target.uri();
    let start = Instant::now();
    let outcome = retry_with(schedule, |attempt| {
        let (uri, what) = (&uri, &what);
        async move {
            let r = proxy_get(k, uri, expect).await;
            if let Err(e) = &r {
                tracing::info!(
                    target_url = %what, attempt, elapsed_ms = start.elapsed().as_millis() as u64,
                    seen = %e.msg, outcome = "waiting", "{what}: attempt {attempt} {}", e.msg
                );
            }
            r
        }
    })
    .await;
    match outcome {
        Ok(v) => Ok(v),
        Err(g) if !g.exhausted => Err(g.last.map_msg(|m| {
            format!(
                "{what}: {m} (attempt {}; not retried: retrying cannot fix this)",
                g.attempts
            )
        })),
        Err(g) => {
            let want: Vec<String> = expect.iter().map(u16::to_string).collect();
            Err(PrimError::transient(format!(
                "{what} did not answer {} after {} attempt(s) in {} (bound max_elapsed = {}); last: {}",
                want.join(" or "),
                g.attempts,
                fmt_secs(g.elapsed),
                fmt_secs(schedule.max_elapsed),
                g.last.msg
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;

    #[test]
    fn proxy_paths_are_checked_and_built() {
        let p = ProxyPath::new("ht", "ht-backend", &PortRef::Number(8000), "/health").unwrap();
        assert_eq!(
            p.uri(),
            "/api/v1/namespaces/ht/services/ht-backend:8000/proxy/health"
        );
        for bad in ["health", "/../x", "/a b"] {
            let e = ProxyPath::new("ht", "b", &PortRef::Name("http".into()), bad).unwrap_err();
            assert_eq!(e.kind, Kind::Usage, "{bad}");
        }
    }
}
