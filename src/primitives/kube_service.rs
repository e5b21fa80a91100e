//! The bindings of the Kubernetes Service primitives: `kube_node_port`,
//! `kube_service_check`, and the `kube` source of `discover_port` (a
//! Service by name or label selector). The work is in
//! [`crate::kube::service`].

use std::sync::Arc;
use std::time::Duration;

use rhai::{Dynamic, Engine, ImmutableString, Map};

use crate::context::{Ctx, RhaiResult};
use crate::declare::{Opt, Spec};
use crate::error::{fmt_secs, PrimError};
use crate::kube::proxy::{self, ProxyPath};
use crate::kube::service::{self, PortRef, Source, Target};
use crate::kube::{check_name, check_selector};
use crate::opts::Opts;
use crate::primitives::http_check::{Retry, RETRY_OPTS};
use crate::primitives::kube::{map, opt, secs, with_kube, CONTEXT, TIMEOUT_30};

/// A copy of a row of another table (tables are `const`, rows are not `Copy`).
const fn same(o: &Opt) -> Opt {
    opt(o.key, o.ty, o.default, o.help)
}

#[rustfmt::skip]
static NODE_PORT: Spec = Spec {
    name: "kube_node_port",
    params: &["namespace: String", "service: String", "port: Dynamic"],
    returns: "i64",
    doc: include_str!("docs/kube_node_port.md"),
    opts: &[CONTEXT, TIMEOUT_30],
};

#[rustfmt::skip]
static SERVICE_CHECK: Spec = Spec {
    name: "kube_service_check",
    params: &["namespace: String", "service: String", "port: Dynamic", "path: String"],
    returns: "Map",
    doc: include_str!("docs/kube_service_check.md"),
    opts: &[
        same(&RETRY_OPTS[0]), same(&RETRY_OPTS[1]), same(&RETRY_OPTS[2]),
        same(&RETRY_OPTS[3]), same(&RETRY_OPTS[4]), CONTEXT,
    ],
};

/// A Service port by number (1–65535, or digits in a string) or name.
pub fn read_port(v: &Dynamic) -> Result<PortRef, PrimError> {
    let text = v.is_string().then(|| v.to_string());
    let number = v
        .as_int()
        .ok()
        .or_else(|| text.as_deref().and_then(|s| s.parse().ok()));
    match (number, text) {
        (Some(i), _) if (1..=65535).contains(&i) => Ok(PortRef::Number(i as i32)),
        (Some(i), _) => Err(PrimError::usage(format!(
            "port {i} is not a port (1–65535)"
        ))),
        (None, Some(s)) if !s.is_empty() => Ok(PortRef::Name(s)),
        _ => Err(PrimError::usage(format!(
            "the port wants the Service's port number (e.g. 3000) or its name, got {} ({v})",
            v.type_name()
        ))),
    }
}

/// Read the `kube` source map of `discover_port`:
/// `#{namespace, service | selector, port?, node?, context?}`.
pub fn read_source(m: &Map) -> RhaiResult<Source> {
    let keys = [
        "namespace",
        "service",
        "selector",
        "port",
        "node",
        "context",
    ];
    let o = Opts::new("discover_port kube source", m, &keys)?;
    let namespace = o.str("namespace")?.unwrap_or_else(|| "default".into());
    check_name("namespace", &namespace)?;
    let target = match (o.str("service")?, o.str("selector")?) {
        (Some(s), None) => check_name("service", &s).map(|_| Target::Name(s))?,
        (None, Some(sel)) => check_selector(&sel).map(|_| Target::Selector(sel))?,
        (Some(_), Some(_)) => {
            return Err(
                PrimError::usage("the kube source takes 'service' or 'selector', not both").into(),
            )
        }
        (None, None) => {
            return Err(PrimError::usage(
                "the kube source needs 'service' (a name) or 'selector' (labels)",
            )
            .into())
        }
    };
    Ok(Source {
        namespace,
        target,
        port: o.raw("port").map(read_port).transpose()?,
        node: o.str("node")?.filter(|s| !s.trim().is_empty()),
        context: o.str("context")?,
    })
}

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
    use crate::error::Kind;

    fn src(pairs: &[(&str, Dynamic)]) -> RhaiResult<Source> {
        read_source(
            &pairs
                .iter()
                .map(|(k, v)| ((*k).into(), v.clone()))
                .collect(),
        )
    }

    /// The message of a thrown error, a usage error's included.
    fn message(e: &rhai::EvalAltResult) -> String {
        match e {
            rhai::EvalAltResult::ErrorRuntime(v, _) => v.to_string(),
            other => other.to_string(),
        }
    }

    #[test]
    fn the_discover_port_source_is_read_and_checked() {
        let s = src(&[
            ("service", "habit-tracker-frontend".into()),
            ("port", 3000_i64.into()),
            ("node", "192.168.49.2".into()),
        ])
        .unwrap();
        assert_eq!(s.namespace, "default");
        assert_eq!(s.port, Some(PortRef::Number(3000)));
        let s = src(&[("selector", "app.kubernetes.io/component=frontend".into())]).unwrap();
        assert_eq!(
            s.target,
            Target::Selector("app.kubernetes.io/component=frontend".into())
        );
        let err = |pairs: &[(&str, Dynamic)]| message(&src(pairs).unwrap_err());
        assert!(err(&[("service", "Bad_Name".into())]).contains("not a Kubernetes name"));
        assert!(err(&[]).contains("needs 'service' (a name) or 'selector'"));
        assert!(err(&[("service", "x".into()), ("selector", "a=b".into())]).contains("not both"));
        assert!(err(&[("selector", "a in (b)".into())]).contains("not a label selector"));
        assert!(err(&[("selector", 3_i64.into())]).contains("wants a string"));
        assert!(err(&[("service", "x".into()), ("nodes", "y".into())])
            .contains("unknown option 'nodes'"));
    }

    #[test]
    fn ports_are_numbers_or_names() {
        assert_eq!(
            read_port(&Dynamic::from(8000_i64)).unwrap(),
            PortRef::Number(8000)
        );
        assert_eq!(
            read_port(&Dynamic::from("8000")).unwrap(),
            PortRef::Number(8000)
        );
        assert_eq!(
            read_port(&Dynamic::from("http")).unwrap(),
            PortRef::Name("http".into())
        );
        for bad in [
            Dynamic::from(0_i64),
            Dynamic::from(70000_i64),
            Dynamic::from(""),
            Dynamic::from(1.5),
        ] {
            assert_eq!(read_port(&bad).unwrap_err().kind, Kind::Usage, "{bad}");
        }
    }

    #[test]
    fn service_check_takes_the_retry_options_and_a_context() {
        let keys = SERVICE_CHECK.keys().join(" ");
        let want = "expect timeout max_elapsed initial_interval max_interval context";
        assert_eq!(keys, want);
    }
}
