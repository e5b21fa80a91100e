//! The `helm_install` binding: `helm upgrade --install` done the way
//! Helm users wish it were (`helm_template`: `template.rs`). Each reads its options from its table,
//! calls [`crate::helm`] with a runner that goes through `exec` (the
//! allow-list, process groups killed on cancel, one log line a child),
//! shapes the result and logs one line.

pub mod template;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rhai::{Dynamic, Engine, ImmutableString, Map};

use crate::context::{Ctx, RhaiResult};
use crate::declare::opt;
use crate::declare::{Opt, Spec};
use crate::error::{fmt_secs, PrimError};
use crate::helm::argv::{valid_set_key, HelmOpts};
use crate::helm::status::Release;
use crate::helm::{check_name, install, status, version, Output, Runner};
use crate::opts::{string_array, Opts};
use crate::process::exec::{self, ExecOpts};
use crate::value::map;
use crate::value::to_json;

// The tables read as tables: one row a line.
#[rustfmt::skip]
pub(crate) const NAMESPACE: Opt = opt("namespace", "string", "\"default\"", "the release's namespace");
#[rustfmt::skip]
pub(crate) const VALUES: Opt = opt("values", "[string]", "[]", "values files, later ones win");
#[rustfmt::skip]
pub(crate) const SET: Opt = opt("set", "map", "#{}", "non-secret scalar values for `--set`");
#[rustfmt::skip]
pub(crate) const VERSION: Opt = opt("version", "string", "", "the chart's version (`--version`)");

#[rustfmt::skip]
static INSTALL: Spec = Spec {
    name: "helm_install",
    params: &["release: String", "chart: String"],
    returns: "Map",
    doc: include_str!("../docs/helm_install.md"),
    opts: &[
        NAMESPACE,
        opt("create_namespace", "bool", "true", "create a missing namespace"),
        VALUES,
        SET,
        opt("secret_values", "map", "", "values in a temporary 0600 file"),
        opt("wait", "bool", "true", "wait for the resources to be ready"),
        opt("atomic", "bool", "true", "roll back (uninstall) on failure"),
        opt("timeout", "duration", "5m", "the install's budget (`--timeout`)"),
        opt("rollback_timeout", "duration", "= timeout", "the rollback's own budget"),
        opt("context", "string", "", "kube context (`--kube-context`)"),
        VERSION,
    ],
};

/// Runs Helm and kubectl through `exec`, for the library.
pub(crate) struct Exec(pub(crate) Arc<Ctx>);

impl Runner for Exec {
    async fn run(&self, argv: &[String]) -> Result<Output, String> {
        let o = exec::run(&self.0.exec_env(), argv, &ExecOpts::default()).await?;
        Ok(Output {
            code: o.code,
            stdout: o.stdout,
            stderr: o.stderr,
        })
    }
}

/// The `set` map as `--set` pairs: values paths, scalar values, no secret.
pub(crate) fn read_sets(o: &Opts) -> RhaiResult<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (k, v) in o.map("set")?.unwrap_or_default() {
        let key = k.to_string();
        if !valid_set_key(&key) {
            let msg = format!(
                "set key '{key}' is not a values path (letters, digits, '.', '_', '-', '[n]')"
            );
            return Err(PrimError::usage(msg).into());
        }
        if !(v.is_string() || v.is_int() || v.is_bool() || v.is_float()) {
            let msg = format!("set '{key}' wants a string, number or bool, got {}; put structured values in a values file", v.type_name());
            return Err(PrimError::usage(msg).into());
        }
        let val = v.to_string();
        if crate::redact::contains_secret(&val) {
            return Err(PrimError::usage(format!(
                "the value of set '{key}' is a secret: `set` goes on Helm's command line, visible to every process; pass it in `secret_values` (a temporary 0600 file) instead"
            ))
            .into());
        }
        out.push((key, val));
    }
    Ok(out)
}

fn read_install_opts(o: &Opts) -> RhaiResult<HelmOpts> {
    let timeout = o.duration("timeout")?.unwrap_or(Duration::from_secs(300));
    let mut h = HelmOpts {
        namespace: o.str("namespace")?.unwrap_or_else(|| "default".into()),
        create_namespace: o.bool("create_namespace")?.unwrap_or(true),
        values: string_array(
            INSTALL.name,
            "values",
            &o.array("values")?.unwrap_or_default(),
        )?,
        set: read_sets(o)?,
        wait: o.bool("wait")?.unwrap_or(true),
        atomic: o.bool("atomic")?.unwrap_or(true),
        timeout,
        rollback_timeout: o.duration("rollback_timeout")?.unwrap_or(timeout),
        context: o.str("context")?,
        chart_version: o.str("version")?,
        secret_values: None,
    };
    if h.timeout < Duration::from_secs(1) || h.rollback_timeout < Duration::from_secs(1) {
        let msg = "timeout and rollback_timeout must be at least 1s (Helm counts in seconds)";
        return Err(PrimError::usage(msg).into());
    }
    if let Some(m) = o.map("secret_values")?.filter(|m| !m.is_empty()) {
        let v = to_json(&Dynamic::from(m)).map_err(|e| {
            PrimError::usage(format!("secret_values cannot be written as values: {e}"))
        })?;
        install::register_leaves(&v);
        h.secret_values = Some(v);
    }
    check_name("namespace", &h.namespace, 63)?;
    Ok(h)
}

/// Refuse a missing values file or a local chart folder without a
/// Chart.yaml before Helm is asked anything. True when the chart is local.
pub(crate) fn check_inputs(ctx: &Ctx, chart: &str, values: &[String]) -> Result<bool, PrimError> {
    if chart.trim().is_empty() {
        return Err(PrimError::usage("the chart is empty; give a chart folder (e.g. \"k8s/charts/habit-tracker\") or repo/name"));
    }
    if let Some(f) = values.iter().find(|f| !ctx.path(f).is_file()) {
        return Err(PrimError::usage(format!(
            "the values file '{f}' does not exist (relative paths are from {})",
            ctx.settings.workdir.display()
        )));
    }
    let local = chart.starts_with('.') || chart.starts_with('/') || ctx.path(chart).is_dir();
    if local && !ctx.path(chart).join("Chart.yaml").is_file() {
        return Err(PrimError::usage(format!(
            "'{chart}' has no Chart.yaml; give the chart's folder"
        )));
    }
    Ok(local)
}

fn result_map(release: &str, ns: &str, r: &Release, planned: bool) -> Map {
    let ns = if r.namespace.is_empty() {
        ns
    } else {
        &r.namespace
    };
    map([
        ("release", release.into()),
        ("namespace", ns.into()),
        ("revision", r.revision.into()),
        ("status", r.status.clone().into()),
        ("chart", r.chart.clone().into()),
        ("app_version", r.app_version.clone().into()),
        ("planned", planned.into()),
    ])
}

/// A dry run: log the plan, return what the install would have.
fn planned(
    ctx: &Ctx,
    release: &str,
    chart: &str,
    h: &HelmOpts,
    v: &version::HelmVersion,
    current: Option<Release>,
    local: bool,
) -> Map {
    let plan = install::plan(v, release, chart, h, |f| {
        crate::fsread::read_text(&ctx.path(f), crate::fsread::FILE_CAP).unwrap_or_default()
    });
    tracing::info!(primitive = INSTALL.name, release = %release, namespace = %h.namespace, helm = %v.raw, planned = true, "{plan}");
    let (chart_name, app) = install::chart_meta(&ctx.path(chart), chart);
    let r = Release {
        status: "planned".into(),
        revision: current.as_ref().map_or(1, |r| r.revision + 1),
        chart: current
            .map(|r| r.chart)
            .filter(|_| !local)
            .unwrap_or(chart_name),
        app_version: app,
        description: String::new(),
        namespace: h.namespace.clone(),
    };
    result_map(release, &h.namespace, &r, true)
}

fn helm_install(ctx: &Arc<Ctx>, release: &str, chart: &str, o: &Opts) -> RhaiResult<Map> {
    let started = Instant::now();
    let h = read_install_opts(o)?;
    check_name("release name", release, 53)?;
    let local = check_inputs(ctx, chart, &h.values)?;
    // Read first: the version (for the flags) and the release (pending-* refused).
    let (run, r, h2) = (Exec(ctx.clone()), release.to_string(), h.clone());
    let (v, current) = ctx.block_on(INSTALL.name, Duration::from_secs(150), async move {
        let v = version::detect(&run).await?;
        let current = status::read_unstuck(&run, &r, &h2.namespace, h2.context.as_deref()).await?;
        Ok::<_, PrimError>((v, current))
    })?;
    if ctx.dry_run() {
        return Ok(planned(ctx, release, chart, &h, &v, current, local));
    }
    ctx.guard_mutation(INSTALL.name)?;
    let file = h
        .secret_values
        .as_ref()
        .map(install::secrets_file)
        .transpose()?;
    let path = file
        .as_ref()
        .map(|f| f.path().to_string_lossy().into_owned());
    let (run, r, c, h2, v2) = (
        Exec(ctx.clone()),
        release.to_string(),
        chart.to_string(),
        h.clone(),
        v.clone(),
    );
    let had_previous = current.is_some();
    let outcome = ctx.block_on(INSTALL.name, install::bound(&h) + Duration::from_secs(120), async move {
        install::upgrade(&run, &v2, &r, &c, &h2, path.as_deref(), had_previous).await
    });
    drop(file);
    let ns = &h.namespace;
    let r = outcome.inspect_err(|_| {
        tracing::error!(primitive = INSTALL.name, release = %release, namespace = %ns, outcome = "failed", "helm upgrade --install {release} failed");
    })?;
    tracing::info!(
        primitive = INSTALL.name, release = %release, namespace = %ns, revision = r.revision, status = %r.status,
        chart = %r.chart, helm = %v.raw, elapsed_ms = started.elapsed().as_millis() as u64,
        "release {release} is {} at revision {} ({}) in {}", r.status, r.revision, r.chart, fmt_secs(started.elapsed())
    );
    if r.status != "deployed" {
        let msg = format!(
            "release {release} ended {} at revision {}: {}",
            r.status, r.revision, r.description
        );
        return Err(PrimError::fatal(msg).into());
    }
    Ok(result_map(release, ns, &r, false))
}

/// Register `helm_install`.
pub fn register(engine: &mut Engine, ctx: &Arc<Ctx>) {
    let c = ctx.clone();
    INSTALL.register2(
        engine,
        move |r: ImmutableString, chart: ImmutableString, o: &Opts| helm_install(&c, &r, &chart, o),
    );
    template::register(engine, ctx);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, Dynamic)]) -> Map {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), v.clone()))
            .collect()
    }

    #[test]
    fn sets_are_scalar_values_paths() {
        let m = opts(&[(
            "set",
            Dynamic::from(opts(&[("a.b", "x,y".into()), ("n", 2_i64.into())])),
        )]);
        let sets = read_sets(&INSTALL.read(&m).unwrap()).unwrap();
        assert_eq!(
            sets,
            [
                ("a.b".to_string(), "x,y".to_string()),
                ("n".into(), "2".into())
            ]
        );
        let bad = opts(&[("set", Dynamic::from(opts(&[("a=b", "x".into())])))]);
        assert!(read_sets(&INSTALL.read(&bad).unwrap()).is_err());
        let nested = opts(&[(
            "set",
            Dynamic::from(opts(&[("a", Dynamic::from(Map::new()))])),
        )]);
        assert!(read_sets(&INSTALL.read(&nested).unwrap()).is_err());
    }

    #[test]
    fn install_options_have_their_defaults_and_bounds() {
        let h = read_install_opts(&INSTALL.read(&Map::new()).unwrap()).unwrap();
        assert_eq!(
            (h.namespace.as_str(), h.wait, h.atomic),
            ("default", true, true)
        );
        assert_eq!(
            (h.timeout, h.rollback_timeout),
            (Duration::from_secs(300), Duration::from_secs(300))
        );
        let short = opts(&[("timeout", "500ms".into())]);
        assert!(read_install_opts(&INSTALL.read(&short).unwrap()).is_err());
        let bad_ns = opts(&[("namespace", "Bad_NS".into())]);
        assert!(read_install_opts(&INSTALL.read(&bad_ns).unwrap()).is_err());
    }
}
