//! The `helm_template` binding: the chart as Helm renders it, so a flow
//! reads its requests, Services and health paths instead of re-doing
//! Helm's values merge and the chart's name templates. The work is in
//! [`crate::helm::template`].

use std::sync::Arc;
use std::time::Duration;

use rhai::{Array, Dynamic, Engine, ImmutableString, Map};

use super::{check_inputs, read_sets, Exec, NAMESPACE, SET, VALUES, VERSION};
use crate::context::{Ctx, RhaiResult};
use crate::declare::opt;
use crate::declare::Spec;
use crate::helm::argv::TemplateOpts;
use crate::helm::check_name;
use crate::helm::template::{self, Rendered, Svc, Workload};
use crate::opts::{string_array, Opts};
use crate::primitives::shared::res_map;
use crate::value::map;

#[rustfmt::skip]
static TEMPLATE: Spec = Spec {
    name: "helm_template",
    params: &["release: String", "chart: String"],
    returns: "Map",
    doc: include_str!("../docs/helm_template.md"),
    opts: &[
        NAMESPACE,
        VALUES,
        SET,
        VERSION,
        opt("kube_version", "string", "", "`.Capabilities.KubeVersion`"),
        opt("timeout", "duration", "60s", "bound on the render"),
    ],
};

fn opt_str(s: &Option<String>) -> Dynamic {
    s.clone().map_or(Dynamic::UNIT, Dynamic::from)
}

fn workload_map(w: &Workload) -> Dynamic {
    Dynamic::from(map([
        ("kind", w.kind.clone().into()),
        ("name", w.name.clone().into()),
        ("component", opt_str(&w.component)),
        ("replicas", w.replicas.into()),
        ("requests", res_map(w.pod_requests)),
        ("health_path", opt_str(&w.health_path)),
    ]))
}

fn service_map(s: &Svc) -> Dynamic {
    let ports: Array = s
        .ports
        .iter()
        .map(|p| {
            let np = p.node_port.map_or(Dynamic::UNIT, Dynamic::from);
            Dynamic::from(map([
                ("name", opt_str(&p.name)),
                ("port", p.port.into()),
                ("node_port", np),
            ]))
        })
        .collect();
    let first = s.ports.first().map_or(Dynamic::UNIT, |p| p.port.into());
    Dynamic::from(map([
        ("name", s.name.clone().into()),
        ("type", s.type_.clone().into()),
        ("component", opt_str(&s.component)),
        ("port", first),
        ("ports", ports.into()),
        ("health_path", opt_str(&s.health_path)),
    ]))
}

fn helm_template(ctx: &Arc<Ctx>, release: &str, chart: &str, o: &Opts) -> RhaiResult<Map> {
    let t = TemplateOpts {
        namespace: o.str("namespace")?.unwrap_or_else(|| "default".into()),
        values: string_array(
            TEMPLATE.name,
            "values",
            &o.array("values")?.unwrap_or_default(),
        )?,
        set: read_sets(o)?,
        chart_version: o.str("version")?,
        kube_version: o.str("kube_version")?,
    };
    let timeout = o.duration("timeout")?.unwrap_or(Duration::from_secs(60));
    check_name("release name", release, 53)?;
    check_name("namespace", &t.namespace, 63)?;
    check_inputs(ctx, chart, &t.values)?;
    let (run, r, c) = (Exec(ctx.clone()), release.to_string(), chart.to_string());
    let bound = timeout + Duration::from_secs(5);
    let out: Rendered = ctx.block_on(TEMPLATE.name, bound, async move {
        template::render(&run, &r, &c, &t, timeout).await
    })?;
    tracing::info!(
        primitive = TEMPLATE.name, release = %release, chart = %chart, workloads = out.workloads.len(),
        services = out.services.len(), cpu_m = out.requests.cpu, memory = out.requests.memory,
        "{chart} renders {} workload(s) and {} Service(s), requesting {}m CPU and {} MiB",
        out.workloads.len(), out.services.len(), out.requests.cpu, out.requests.memory >> 20
    );
    let workloads: Array = out.workloads.iter().map(workload_map).collect();
    let services: Array = out.services.iter().map(service_map).collect();
    Ok(map([
        ("requests", res_map(out.requests)),
        ("workloads", workloads.into()),
        ("services", services.into()),
    ]))
}

/// Register `helm_template`.
pub fn register(engine: &mut Engine, ctx: &Arc<Ctx>) {
    let c = ctx.clone();
    TEMPLATE.register2(
        engine,
        move |r: ImmutableString, chart: ImmutableString, o: &Opts| {
            helm_template(&c, &r, &chart, o)
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_services_become_maps_with_unit_for_what_is_missing() {
        let s = Svc {
            name: "ht-backend".into(),
            type_: "ClusterIP".into(),
            component: None,
            ports: vec![crate::helm::template::Port {
                name: None,
                port: 8000,
                node_port: None,
            }],
            health_path: Some("/health".into()),
        };
        let m = service_map(&s).cast::<Map>();
        assert_eq!(m["port"].as_int().unwrap(), 8000);
        assert!(m["component"].is_unit());
        assert_eq!(m["health_path"].to_string(), "/health");
    }
}
