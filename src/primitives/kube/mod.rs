//! The Kubernetes primitives' bindings (Services: `service.rs`): each reads its options from its
//! table, calls [`crate::kube`] (where the API calls and the judging
//! live), shapes the result as a map and logs one line. The kubeconfig
//! and context are found as kubectl finds them (`KUBECONFIG`,
//! `~/.kube/config`, the `context` option like `--context`); the clients
//! are the run's own (`Ctx::kube`).

pub mod service;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rhai::{Array, Dynamic, Engine, ImmutableString, Map};

use crate::context::{Ctx, RhaiResult};
use crate::declare::{opt, Opt, Spec};
use crate::error::{fmt_secs, PrimError};
use crate::kube::capacity::{self, Exclude};
use crate::kube::{check_name, check_selector, client, release, rollout, Kube};
use crate::opts::Opts;
use crate::primitives::shared::{res_map, CONTEXT};
use crate::value::{map, secs};

// The tables read as tables: one row a line.
#[rustfmt::skip]
pub(super) const TIMEOUT_30: Opt = opt("timeout", "duration", "30s", "bound on the call");
#[rustfmt::skip]
const ALLOW_ZERO: Opt = opt("allow_zero", "bool", "false", "accept 0 replicas (done: no pod left)");

#[rustfmt::skip]
static WAIT_ROLLOUT: Spec = Spec {
    name: "kube_wait_rollout",
    params: &["namespace: String", "deployment: String"],
    returns: "Map",
    doc: include_str!("../docs/kube_wait_rollout.md"),
    opts: &[opt("timeout", "duration", "2m", "hard bound on the wait"), CONTEXT, ALLOW_ZERO],
};

#[rustfmt::skip]
static WAIT_RELEASE: Spec = Spec {
    name: "kube_wait_release",
    params: &["release: String"],
    returns: "Map",
    doc: include_str!("../docs/kube_wait_release.md"),
    opts: &[
        opt("namespace", "string", "\"default\"", "the release's namespace"),
        opt("timeout", "duration", "2m", "bound on each Deployment's rollout"),
        CONTEXT,
        ALLOW_ZERO,
    ],
};

#[rustfmt::skip]
static CAPACITY: Spec = Spec {
    name: "kube_capacity",
    params: &[],
    returns: "Map",
    doc: include_str!("../docs/kube_capacity.md"),
    opts: &[CONTEXT, TIMEOUT_30, opt("exclude", "#{namespace,selector}", "", "pods not to count (a release's own)")],
};

#[rustfmt::skip]
static DEPLOYMENTS: Spec = Spec {
    name: "kube_deployments",
    params: &["namespace: String"],
    returns: "Array",
    doc: include_str!("../docs/kube_deployments.md"),
    opts: &[opt("selector", "string", "", "labels, `k=v` joined by commas"), CONTEXT, TIMEOUT_30],
};

#[rustfmt::skip]
static SERVER: Spec = Spec {
    name: "kube_server",
    params: &[],
    returns: "Map",
    doc: include_str!("../docs/kube_server.md"),
    opts: &[
        CONTEXT,
        opt("timeout", "duration", "15s", "bound on the call"),
        opt("min_version", "string", "", "refuse an older server, e.g. \"1.28\""),
    ],
};

#[rustfmt::skip]
static CPU: Spec = Spec {
    name: "kube_cpu", params: &["quantity: String"], returns: "i64", doc: include_str!("../docs/kube_cpu.md"), opts: &[],
};

#[rustfmt::skip]
static MEMORY: Spec = Spec {
    name: "kube_memory", params: &["quantity: String"], returns: "i64", doc: include_str!("../docs/kube_memory.md"), opts: &[],
};

/// Run `f` with the client of `context` on the run's runtime, bounded by
/// `timeout` and the run's cancellation.
pub(super) fn with_kube<T, F, Fut>(
    ctx: &Arc<Ctx>,
    spec: &Spec,
    timeout: Duration,
    context: Option<String>,
    f: F,
) -> RhaiResult<T>
where
    F: FnOnce(Arc<Kube>) -> Fut,
    Fut: Future<Output = Result<T, PrimError>>,
{
    let c = ctx.clone();
    ctx.block_on(spec.name, timeout, async move {
        let k = c.kube.connect(context.as_deref()).await?;
        f(k).await
    })
}

fn wait_rollout(ctx: &Arc<Ctx>, ns: &str, name: &str, o: &Opts) -> RhaiResult<Map> {
    let timeout = o.duration("timeout")?.unwrap_or(Duration::from_secs(120));
    let (context, allow_zero) = (o.str("context")?, o.bool("allow_zero")?.unwrap_or(false));
    check_name("namespace", ns)?;
    check_name("deployment", name)?;
    let (ns, name) = (ns.to_string(), name.to_string());
    let started = Instant::now();
    let _line = crate::progress::Line::start(
        ctx.settings.format,
        &format!("waiting for Deployment {ns}/{name} to roll out"),
        Some(timeout),
    );
    // The wait bounds itself and then diagnoses (≤ 10 s); the outer bound is a backstop.
    let bound = timeout + Duration::from_secs(20);
    let p = with_kube(ctx, &WAIT_ROLLOUT, bound, context, |k| async move {
        rollout::wait(&k, &ns, &name, timeout, allow_zero).await
    })?;
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
    let (r, n) = (release.to_string(), ns.clone());
    let started = Instant::now();
    let _line = crate::progress::Line::start(
        ctx.settings.format,
        &format!("waiting for release {release} in {ns} to roll out"),
        Some(timeout),
    );
    let bound = timeout + Duration::from_secs(40);
    let done = with_kube(ctx, &WAIT_RELEASE, bound, context, |k| async move {
        release::wait_release(&k, &n, &r, timeout, allow_zero).await
    })?;
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
    let cap = with_kube(ctx, &CAPACITY, timeout, context, |k| async move {
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
    let (n, sel) = (ns.to_string(), selector.clone());
    let names = with_kube(ctx, &DEPLOYMENTS, timeout, context, |k| async move {
        release::list(&k, &n, &sel).await
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
    let info = with_kube(ctx, &SERVER, timeout, context, |k| async move {
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
    CAPACITY.register0(engine, move |o: &Opts| capacity(&c, o));
    let c = ctx.clone();
    DEPLOYMENTS.register1(engine, move |ns: ImmutableString, o: &Opts| {
        deployments(&c, &ns, o)
    });
    let c = ctx.clone();
    SERVER.register0(engine, move |o: &Opts| server(&c, o));
    CPU.register1(engine, |q: ImmutableString, _: &Opts| {
        quantity(&q, capacity::cpu_millis, "\"250m\", \"0.5\", \"2\"")
    });
    MEMORY.register1(engine, |q: ImmutableString, _: &Opts| {
        quantity(&q, capacity::memory_bytes, "\"256Mi\", \"1Gi\"")
    });
    service::register(engine, ctx);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_quantities_are_refused_with_an_example() {
        assert_eq!(quantity("1.5", capacity::cpu_millis, "").unwrap(), 1500);
        let e = quantity("lots", capacity::cpu_millis, "\"250m\"").unwrap_err();
        assert!(
            e.to_string()
                .contains("'lots' is not a quantity of this kind (e.g. \"250m\")"),
            "{e}"
        );
    }

    #[test]
    fn the_new_options_are_in_the_tables() {
        assert_eq!(
            WAIT_RELEASE.keys(),
            ["namespace", "timeout", "context", "allow_zero"]
        );
        assert!(SERVER.keys().contains(&"min_version"));
    }
}
