//! The Kubernetes primitives' bindings: each reads its options from its
//! table, calls [`crate::kube`] (where the API calls and the judging
//! live), shapes the result as a map and logs one line. The kubeconfig
//! and context are found as kubectl finds them (`KUBECONFIG`,
//! `~/.kube/config`, the `context` option like `--context`); the clients
//! are the run's own (`Ctx::kube`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rhai::{Array, Dynamic, Engine, ImmutableString, Map};

use crate::context::{Ctx, RhaiResult};
use crate::declare::{Opt, Spec};
use crate::error::{fmt_secs, PrimError};
use crate::kube::capacity::{self, Exclude, Res};
use crate::kube::service::{self, PortRef, ProxyPath, Source, Target};
use crate::kube::{check_name, check_selector, client, rollout};
use crate::primitives::http_check::{Retry, RETRY_OPTS};
use crate::primitives::Opts;

/// A row of an options table, on one line.
const fn opt(
    key: &'static str,
    ty: &'static str,
    default: &'static str,
    help: &'static str,
) -> Opt {
    Opt {
        key,
        ty,
        default,
        help,
    }
}

/// A copy of a row of another table (tables are `const`, rows are not `Copy`).
const fn same(o: &Opt) -> Opt {
    opt(o.key, o.ty, o.default, o.help)
}

const CONTEXT: Opt = opt(
    "context",
    "string",
    "",
    "a kube context, like `kubectl --context` (default: the current one)",
);
const TIMEOUT_30: Opt = opt("timeout", "duration", "30s", "bound on the call");
const ALLOW_ZERO: Opt = opt(
    "allow_zero",
    "bool",
    "false",
    "accept a Deployment scaled to 0 (done when no pod is left)",
);

static WAIT_ROLLOUT: Spec = Spec {
    name: "kube_wait_rollout",
    params: &["namespace: String", "deployment: String"],
    returns: "Map",
    doc: include_str!("docs/kube_wait_rollout.md"),
    opts: &[
        opt("timeout", "duration", "2m", "hard bound on the wait"),
        CONTEXT,
        ALLOW_ZERO,
    ],
};

static WAIT_RELEASE: Spec = Spec {
    name: "kube_wait_release",
    params: &["release: String"],
    returns: "Map",
    doc: include_str!("docs/kube_wait_release.md"),
    opts: &[
        opt(
            "namespace",
            "string",
            "\"default\"",
            "the release's namespace",
        ),
        opt(
            "timeout",
            "duration",
            "2m",
            "hard bound on each Deployment's rollout (they are waited for at once)",
        ),
        CONTEXT,
        ALLOW_ZERO,
    ],
};

static NODE_PORT: Spec = Spec {
    name: "kube_node_port",
    params: &["namespace: String", "service: String", "port: Dynamic"],
    returns: "i64",
    doc: include_str!("docs/kube_node_port.md"),
    opts: &[CONTEXT, TIMEOUT_30],
};

static CAPACITY: Spec = Spec {
    name: "kube_capacity",
    params: &[],
    returns: "Map",
    doc: include_str!("docs/kube_capacity.md"),
    opts: &[
        CONTEXT,
        TIMEOUT_30,
        opt(
            "exclude",
            "#{namespace, selector}",
            "",
            "pods to leave out, e.g. the release's own, which an upgrade replaces",
        ),
    ],
};

static DEPLOYMENTS: Spec = Spec {
    name: "kube_deployments",
    params: &["namespace: String"],
    returns: "Array",
    doc: include_str!("docs/kube_deployments.md"),
    opts: &[
        opt(
            "selector",
            "string",
            "",
            "label selector, `k=v` pairs joined by commas",
        ),
        CONTEXT,
        TIMEOUT_30,
    ],
};

static SERVER: Spec = Spec {
    name: "kube_server",
    params: &[],
    returns: "Map",
    doc: include_str!("docs/kube_server.md"),
    opts: &[
        CONTEXT,
        opt("timeout", "duration", "15s", "bound on the call"),
        opt(
            "min_version",
            "string",
            "",
            "refuse a server older than this MAJOR.MINOR, e.g. \"1.28\"",
        ),
    ],
};

static SERVICE_CHECK: Spec = Spec {
    name: "kube_service_check",
    params: &[
        "namespace: String",
        "service: String",
        "port: Dynamic",
        "path: String",
    ],
    returns: "Map",
    doc: include_str!("docs/kube_service_check.md"),
    opts: &[
        same(&RETRY_OPTS[0]),
        same(&RETRY_OPTS[1]),
        same(&RETRY_OPTS[2]),
        same(&RETRY_OPTS[3]),
        same(&RETRY_OPTS[4]),
        CONTEXT,
    ],
};

static CPU: Spec = Spec {
    name: "kube_cpu",
    params: &["quantity: String"],
    returns: "i64",
    doc: include_str!("docs/kube_cpu.md"),
    opts: &[],
};

static MEMORY: Spec = Spec {
    name: "kube_memory",
    params: &["quantity: String"],
    returns: "i64",
    doc: include_str!("docs/kube_memory.md"),
    opts: &[],
};

/// A map from `(key, value)` pairs.
fn map<const N: usize>(pairs: [(&str, Dynamic); N]) -> Map {
    pairs.into_iter().map(|(k, v)| (k.into(), v)).collect()
}

fn res_map(r: Res) -> Dynamic {
    Dynamic::from(map([("cpu", r.cpu.into()), ("memory", r.memory.into())]))
}

fn secs(d: Duration) -> Dynamic {
    Dynamic::from(d.as_secs_f64() as rhai::FLOAT)
}

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

fn wait_rollout(ctx: &Arc<Ctx>, ns: &str, name: &str, o: &Opts) -> RhaiResult<Map> {
    let timeout = o.duration("timeout")?.unwrap_or(Duration::from_secs(120));
    let (context, allow_zero) = (o.str("context")?, o.bool("allow_zero")?.unwrap_or(false));
    check_name("namespace", ns)?;
    check_name("deployment", name)?;
    let (c, ns, name) = (ctx.clone(), ns.to_string(), name.to_string());
    let started = Instant::now();
    // The wait bounds itself and then diagnoses (≤ 10 s); the outer bound is a backstop.
    let p = ctx.block_on(
        WAIT_ROLLOUT.name,
        timeout + Duration::from_secs(20),
        async move {
            let k = c.kube.connect(context.as_deref()).await?;
            rollout::wait(&k, &ns, &name, timeout, allow_zero).await
        },
    )?;
    let replicas = i64::from(p.desired);
    Ok(map([
        ("ready", i64::from(p.ready).into()),
        ("replicas", replicas.into()),
        ("elapsed", secs(started.elapsed())),
    ]))
}

fn wait_release(ctx: &Arc<Ctx>, release: &str, o: &Opts) -> RhaiResult<Map> {
    let ns = o.str("namespace")?.unwrap_or_else(|| "default".into());
    let timeout = o.duration("timeout")?.unwrap_or(Duration::from_secs(120));
    let (context, allow_zero) = (o.str("context")?, o.bool("allow_zero")?.unwrap_or(false));
    crate::helm::check_name("release name", release, 53)?;
    check_name("namespace", &ns)?;
    let (c, r, n) = (ctx.clone(), release.to_string(), ns.clone());
    let started = Instant::now();
    let done = ctx.block_on(
        WAIT_RELEASE.name,
        timeout + Duration::from_secs(40),
        async move {
            let k = c.kube.connect(context.as_deref()).await?;
            rollout::wait_release(&k, &n, &r, timeout, allow_zero).await
        },
    )?;
    let elapsed = started.elapsed();
    let names: Vec<String> = done
        .iter()
        .map(|(d, p)| format!("{d} ({}/{})", p.ready, p.desired))
        .collect();
    tracing::info!(
        primitive = WAIT_RELEASE.name, release = %release, namespace = %ns, deployments = done.len(),
        elapsed_ms = elapsed.as_millis() as u64, outcome = "rolled_out",
        "release {release}: {} Deployment(s) rolled out in {}: {}", done.len(), fmt_secs(elapsed), names.join(", ")
    );
    let list: Array = done
        .into_iter()
        .map(|(d, p)| {
            let (ready, replicas) = (i64::from(p.ready), i64::from(p.desired));
            Dynamic::from(map([
                ("name", d.into()),
                ("ready", ready.into()),
                ("replicas", replicas.into()),
            ]))
        })
        .collect();
    Ok(map([
        ("release", release.into()),
        ("namespace", ns.into()),
        ("deployments", list.into()),
        ("elapsed", secs(elapsed)),
    ]))
}

fn node_port(ctx: &Arc<Ctx>, ns: &str, svc: &str, port: &Dynamic, o: &Opts) -> RhaiResult<i64> {
    let context = o.str("context")?;
    let timeout = o.duration("timeout")?.unwrap_or(Duration::from_secs(30));
    check_name("namespace", ns)?;
    check_name("service", svc)?;
    let port = read_port(port)?;
    let (c, ns, svc) = (ctx.clone(), ns.to_string(), svc.to_string());
    let (np, ns, svc) = ctx.block_on(NODE_PORT.name, timeout, async move {
        let k = c.kube.connect(context.as_deref()).await?;
        let s = service::get(&k, &ns, &svc).await?.ok_or_else(|| {
            format!("there is no Service {ns}/{svc}; check the name (`kubectl -n {ns} get services`)")
        })?;
        match service::node_port_of(&s, &port)? {
            Some(n) => Ok::<_, PrimError>((n, ns, svc)),
            None => Err(format!("Service {ns}/{svc} has no node port for {port} (yet); use discover_port with a kube source to wait for it").into()),
        }
    })?;
    tracing::info!(primitive = NODE_PORT.name, namespace = %ns, service = %svc, node_port = np, "Service {ns}/{svc} has node port {np}");
    Ok(i64::from(np))
}

fn read_exclude(o: &Opts) -> RhaiResult<Option<Exclude>> {
    let Some(m) = o.map("exclude")? else {
        return Ok(None);
    };
    let eo = Opts::new("kube_capacity exclude", &m, &["namespace", "selector"])?;
    let x = Exclude {
        namespace: eo.req_str("namespace")?,
        selector: eo.req_str("selector")?,
    };
    check_name("exclude namespace", &x.namespace)?;
    check_selector(&x.selector)?;
    Ok(Some(x))
}

fn capacity(ctx: &Arc<Ctx>, o: &Opts) -> RhaiResult<Map> {
    let context = o.str("context")?;
    let timeout = o.duration("timeout")?.unwrap_or(Duration::from_secs(30));
    let exclude = read_exclude(o)?;
    let c = ctx.clone();
    let cap = ctx.block_on(CAPACITY.name, timeout, async move {
        let k = c.kube.connect(context.as_deref()).await?;
        capacity::read(&k, exclude.as_ref()).await
    })?;
    let usable = cap.nodes.iter().filter(|r| r.usable).count();
    tracing::info!(
        primitive = CAPACITY.name,
        nodes = cap.nodes.len(),
        free_cpu_m = cap.free.cpu,
        free_memory = cap.free.memory,
        "{} node(s), {usable} usable: {}m CPU and {} MiB free for new pods",
        cap.nodes.len(),
        cap.free.cpu,
        cap.free.memory >> 20
    );
    let nodes: Array = cap
        .nodes
        .iter()
        .map(|r| {
            Dynamic::from(map([
                ("name", r.name.clone().into()),
                ("usable", r.usable.into()),
                ("allocatable", res_map(r.allocatable)),
                ("requested", res_map(r.requested)),
                ("free", res_map(r.free())),
            ]))
        })
        .collect();
    Ok(map([
        ("nodes", nodes.into()),
        ("allocatable", res_map(cap.allocatable)),
        ("requested", res_map(cap.requested)),
        ("free", res_map(cap.free)),
        ("largest_free", res_map(cap.largest_free)),
    ]))
}

fn deployments(ctx: &Arc<Ctx>, ns: &str, o: &Opts) -> RhaiResult<Array> {
    let context = o.str("context")?;
    let selector = o.str("selector")?.unwrap_or_default();
    let timeout = o.duration("timeout")?.unwrap_or(Duration::from_secs(30));
    check_name("namespace", ns)?;
    if !selector.is_empty() {
        check_selector(&selector)?;
    }
    let (c, n, sel) = (ctx.clone(), ns.to_string(), selector.clone());
    let names = ctx.block_on(DEPLOYMENTS.name, timeout, async move {
        let k = c.kube.connect(context.as_deref()).await?;
        rollout::list(&k, &n, &sel).await
    })?;
    tracing::info!(
        primitive = DEPLOYMENTS.name, namespace = %ns, selector = %selector, count = names.len(),
        "{} Deployment(s) in {ns}: {}", names.len(), names.join(", ")
    );
    Ok(names.into_iter().map(Dynamic::from).collect())
}

fn server(ctx: &Arc<Ctx>, o: &Opts) -> RhaiResult<Map> {
    let context = o.str("context")?;
    let timeout = o.duration("timeout")?.unwrap_or(Duration::from_secs(15));
    let min = o
        .str("min_version")?
        .map(|v| client::parse_min_version(&v))
        .transpose()?;
    let c = ctx.clone();
    let info = ctx.block_on(SERVER.name, timeout, async move {
        let k = c.kube.connect(context.as_deref()).await?;
        client::server_info(&k).await
    })?;
    tracing::info!(
        primitive = SERVER.name, server = %info.server, version = %info.version,
        "Kubernetes API at {} answers: {}", info.server, info.version
    );
    if let Some(min) = min {
        client::require_version(&info, min)?;
    }
    Ok(map([
        ("server", info.server.into()),
        ("host", info.host.into()),
        ("version", info.version.into()),
        ("major", info.major.into()),
        ("minor", info.minor.into()),
    ]))
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
    let (c, schedule, expect) = (ctx.clone(), r.schedule(), r.expect.clone());
    let (status, stats) = ctx.block_on(
        SERVICE_CHECK.name,
        r.max_elapsed + Duration::from_secs(10),
        async move {
            let k = c.kube.connect(context.as_deref()).await?;
            service::check_proxy(&k, &target, &schedule, &expect).await
        },
    )?;
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

fn quantity(q: &str, parse: fn(&str) -> Option<i64>, example: &str) -> RhaiResult<i64> {
    parse(q).ok_or_else(|| {
        PrimError::usage(format!(
            "'{q}' is not a quantity of this kind (e.g. {example})"
        ))
        .into()
    })
}

/// Register the Kubernetes primitives.
pub fn register(engine: &mut Engine, ctx: &Arc<Ctx>) {
    let c = ctx.clone();
    WAIT_ROLLOUT.register2(
        engine,
        move |ns: ImmutableString, d: ImmutableString, o: &Opts| wait_rollout(&c, &ns, &d, o),
    );
    let c = ctx.clone();
    WAIT_RELEASE.register1(engine, move |r: ImmutableString, o: &Opts| {
        wait_release(&c, &r, o)
    });
    let c = ctx.clone();
    NODE_PORT.register3(
        engine,
        move |ns: ImmutableString, s: ImmutableString, p: Dynamic, o: &Opts| {
            node_port(&c, &ns, &s, &p, o)
        },
    );
    let c = ctx.clone();
    CAPACITY.register0(engine, move |o: &Opts| capacity(&c, o));
    let c = ctx.clone();
    DEPLOYMENTS.register1(engine, move |ns: ImmutableString, o: &Opts| {
        deployments(&c, &ns, o)
    });
    let c = ctx.clone();
    SERVER.register0(engine, move |o: &Opts| server(&c, o));
    let c = ctx.clone();
    SERVICE_CHECK.register4(
        engine,
        move |ns: ImmutableString,
              s: ImmutableString,
              p: Dynamic,
              path: ImmutableString,
              o: &Opts| { service_check(&c, &ns, &s, &p, &path, o) },
    );
    CPU.register1(engine, |q: ImmutableString, _: &Opts| {
        quantity(&q, capacity::cpu_millis, "\"250m\", \"0.5\", \"2\"")
    });
    MEMORY.register1(engine, |q: ImmutableString, _: &Opts| {
        quantity(&q, capacity::memory_bytes, "\"256Mi\", \"1Gi\"")
    });
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
            rhai::EvalAltResult::ErrorRuntime(v, _) => v
                .read_lock::<crate::error::UsageError>()
                .map(|u| u.0.clone())
                .unwrap_or_else(|| v.to_string()),
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
        let keys = SERVICE_CHECK.keys();
        assert_eq!(
            keys,
            [
                "expect",
                "timeout",
                "max_elapsed",
                "initial_interval",
                "max_interval",
                "context"
            ]
        );
        assert!(WAIT_RELEASE.keys().contains(&"namespace"));
        assert!(SERVER.keys().contains(&"min_version"));
    }
}
