//! The bindings of the Kubernetes Service primitives: `kube_node_port`,
//! `kube_service_check`, and the `kube` source of `discover_port` (a
//! Service by name or label selector). The work is in
//! [`crate::kube::service`].

use std::sync::Arc;
use std::time::Duration;

use rhai::{Dynamic, Engine, ImmutableString, Map};

use super::{with_kube, TIMEOUT_30};
use crate::context::{Ctx, RhaiResult};
use crate::declare::Spec;
use crate::error::{fmt_secs, PrimError};
use crate::kube::check_name;
use crate::kube::proxy::{self, ProxyPath};
use crate::kube::service;
use crate::opts::Opts;
use crate::primitives::shared::{read_port, Retry, CONTEXT, RETRY_OPTS};
use crate::value::{map, secs};

#[rustfmt::skip]
static NODE_PORT: Spec = Spec {
    name: "kube_node_port",
    params: &["namespace: String", "service: String", "port: Dynamic"],
    returns: "i64",
    doc: include_str!("../docs/kube_node_port.md"),
    opts: &[CONTEXT, TIMEOUT_30],
};

#[rustfmt::skip]
static SERVICE_CHECK: Spec = Spec {
    name: "kube_service_check",
    params: &["namespace: String", "service: String", "port: Dynamic", "path: String"],
    returns: "Map",
    doc: include_str!("../docs/kube_service_check.md"),
    opts: &[
        RETRY_OPTS[0], RETRY_OPTS[1], RETRY_OPTS[2],
        RETRY_OPTS[3], RETRY_OPTS[4], CONTEXT,
    ],
};

fn node_port(ctx: &Arc<Ctx>, ns: &str, svc: &str, port: &Dynamic, o: &Opts) -> RhaiResult<i64> {
    let context = o.str("context")?;
    let timeout = o.duration("timeout")?.unwrap_or(Duration::from_secs(30));
    check_name("namespace", ns)?;
    check_name("service", svc)?;
    let port = read_port(port)?;
    let (ns, svc) = (ns.to_string(), svc.to_string());
    let (np, ns, svc) = with_kube(ctx, &NODE_PORT, timeout, context, |k| async move {
        let s = service::get(&k, &ns, &svc).await?.ok_or_else(|| {
            format!(
                "there is no Service {ns}/{svc}; check the name (`kubectl -n {ns} get services`)"
            )
        })?;
        match service::node_port_of(&s, &port)? {
            Some(n) => Ok::<_, PrimError>((n, ns, svc)),
            None => Err(format!("Service {ns}/{svc} has no node port for {port} (yet); use discover_port with a kube source to wait for it").into()),
        }
    })?;
    tracing::info!(primitive = NODE_PORT.name, namespace = %ns, service = %svc, node_port = np, "Service {ns}/{svc} has node port {np}");
    Ok(i64::from(np))
}

fn service_check(
    ctx: &Arc<Ctx>,
    ns: &str,
    svc: &str,
    port: &Dynamic,
    path: &str,
    o: &Opts,
) -> RhaiResult<Map> {
    let r = Retry::from_opts(SERVICE_CHECK.name, o)?;
    let context = o.str("context")?;
    check_name("namespace", ns)?;
    check_name("service", svc)?;
    let target = ProxyPath::new(ns, svc, &read_port(port)?, path)?;
    let (schedule, expect) = (r.schedule(), r.expect.clone());
    let bound = r.max_elapsed + Duration::from_secs(10);
    let (status, stats) = with_kube(ctx, &SERVICE_CHECK, bound, context, |k| async move {
        proxy::check_proxy(&k, &target, &schedule, &expect).await
    })?;
    tracing::info!(
        primitive = SERVICE_CHECK.name, namespace = %ns, service = %svc, status, attempt = stats.attempts,
        elapsed_ms = stats.elapsed.as_millis() as u64, outcome = "healthy",
        "Service {ns}/{svc}{path} answered {status} (attempt {}, {})", stats.attempts, fmt_secs(stats.elapsed)
    );
    Ok(map([
        ("status", i64::from(status).into()),
        ("elapsed", secs(stats.elapsed)),
    ]))
}

/// Register `kube_node_port` and `kube_service_check`.
pub fn register(engine: &mut Engine, ctx: &Arc<Ctx>) {
    let c = ctx.clone();
    NODE_PORT.register3(
        engine,
        move |ns: ImmutableString, s: ImmutableString, p: Dynamic, o: &Opts| {
            node_port(&c, &ns, &s, &p, o)
        },
    );
    let c = ctx.clone();
    SERVICE_CHECK.register4(
        engine,
        move |ns: ImmutableString,
              s: ImmutableString,
              p: Dynamic,
              path: ImmutableString,
              o: &Opts| { service_check(&c, &ns, &s, &p, &path, o) },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_check_takes_the_retry_options_and_a_context() {
        let keys = SERVICE_CHECK.keys().join(" ");
        let want = "expect timeout max_elapsed initial_interval max_interval context";
        assert_eq!(keys, want);
    }
}
