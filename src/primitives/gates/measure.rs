//! `prometheus_query` and `http_probe`: the single measurements a gate
//! takes, primitives of their own so `runbook test` stubs them.

use std::sync::Arc;
use std::time::Duration;

use rhai::{Dynamic, Map};

use super::gate::http_url;
use crate::context::{Ctx, RhaiResult};
use crate::declare::{opt, Spec};
use crate::error::PrimError;
use crate::gates::prometheus::{self, Answer};
use crate::opts::Opts;

#[rustfmt::skip]
pub(super) static PROM_QUERY: Spec = Spec {
    name: "prometheus_query",
    params: &["url: String", "query: String"],
    returns: "float or ()",
    doc: include_str!("../docs/prometheus_query.md"),
    opts: &[opt("timeout", "duration", "10s", "bound on the query")],
};

#[rustfmt::skip]
pub(super) static HTTP_PROBE: Spec = Spec {
    name: "http_probe",
    params: &["url: String"],
    returns: "Map",
    doc: include_str!("../docs/http_probe.md"),
    opts: &[
        opt("json", "string", "", "a JSON pointer (\"/errors/rate\") whose value to return"),
        opt("timeout", "duration", "10s", "bound on the request"),
    ],
};

pub(super) fn prom_query(ctx: &Arc<Ctx>, url: &str, query: &str, o: &Opts) -> RhaiResult<Dynamic> {
    let timeout = o.duration("timeout")?.unwrap_or(Duration::from_secs(10));
    let (c, u, q) = (ctx.clone(), url.to_string(), query.to_string());
    let answer = ctx.block_on(
        "prometheus_query",
        timeout + Duration::from_secs(1),
        async move { prometheus::instant(&c.http, &u, &q, timeout).await },
    )?;
    tracing::debug!(primitive = "prometheus_query", url, query, answer = ?answer, "prometheus_query");
    Ok(match answer {
        Answer::Value(v) => Dynamic::from_float(v),
        Answer::Empty(_) => Dynamic::UNIT,
    })
}

async fn probe(
    ctx: &Ctx,
    url: &str,
    pointer: Option<&str>,
    timeout: Duration,
) -> Result<Map, PrimError> {
    let resp = ctx
        .http
        .get(url)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| PrimError::transient(format!("GET {url}: {}", crate::net::http_error(&e))))?;
    let status = resp.status().as_u16();
    let mut m = Map::new();
    m.insert("status".into(), Dynamic::from(i64::from(status)));
    let mut value = Dynamic::UNIT;
    if let Some(p) = pointer {
        let body = crate::net::read_body(resp, 1 << 20, "http_probe")
            .await
            .map_err(|e| PrimError::transient(e.to_string()))?;
        if let Ok(j) = serde_json::from_slice::<serde_json::Value>(&body) {
            value = j
                .pointer(p)
                .map(crate::value::to_dynamic)
                .unwrap_or(Dynamic::UNIT);
        }
    }
    m.insert("value".into(), value);
    Ok(m)
}

pub(super) fn http_probe(ctx: &Arc<Ctx>, url: &str, o: &Opts) -> RhaiResult<Map> {
    http_url("http_probe", url)?;
    let timeout = o.duration("timeout")?.unwrap_or(Duration::from_secs(10));
    let json = o.str("json")?;
    let (c, u) = (ctx.clone(), url.to_string());
    ctx.block_on("http_probe", timeout + Duration::from_secs(1), async move {
        probe(&c, &u, json.as_deref(), timeout).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::gates::test_engine as engine;

    #[test]
    fn measurements_refuse_what_is_not_an_http_url_before_any_request() {
        // The query builds the run's HTTP client (before it reads the URL).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (_rt, e) = engine();
        for src in [
            r#"http_probe("127.0.0.1:9/health")"#,
            r#"http_probe("ftp://127.0.0.1/x")"#,
        ] {
            let err = e.eval::<Dynamic>(src).unwrap_err();
            assert!(crate::report::is_usage(&err), "{src}: {err}");
            assert!(
                err.to_string().contains("not an http(s) URL"),
                "{src}: {err}"
            );
        }
        let err = e
            .eval::<Dynamic>(r#"prometheus_query("127.0.0.1:9", "up")"#)
            .unwrap_err();
        assert!(err.to_string().contains("not an http(s) URL"), "{err}");
    }
}
