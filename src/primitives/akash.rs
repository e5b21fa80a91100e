//! `akash_update`, `akash_lease_status`, `akash_deployment`: the bindings
//! of [`crate::akash`]. Options are read here, the Console client and the
//! `provider-services` command lines live in the library.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rhai::{Dynamic, Engine, Map};
use serde_json::Value;

use crate::akash::{cli, console, sdl, Backend, Config};
use crate::context::{error, Ctx, RhaiResult};
use crate::declare::{Opt, Spec};
use crate::net::retry::{retry, Schedule};
use crate::opts::Opts;
use crate::primitives::shared::{
    config_from, read_lease_id, API_URL, BACKEND, DSEQ, FROM, PROVIDER,
};
use crate::process::exec;
use crate::value::to_dynamic;

#[rustfmt::skip]
const TIMEOUT: Opt = Opt { key: "timeout", ty: "duration", default: "60s", help: "bound on the call" };
#[rustfmt::skip]
const SERVICE: Opt = Opt { key: "service", ty: "string", default: "the SDL's only service", help: "the service to read or change" };

#[rustfmt::skip]
static UPDATE: Spec = Spec {
    name: "akash_update",
    params: &[],
    returns: "Map",
    doc: include_str!("docs/akash_update.md"),
    opts: &[
        DSEQ,
        Opt { key: "sdl", ty: "string", default: "", help: "required: the SDL template's path" },
        Opt { key: "image", ty: "string", default: "the template's pinned image", help: "a 40-hex git SHA tag or an `@sha256:` digest (`latest`, branch names and untagged images are refused)" },
        SERVICE,
        Opt { key: "env", ty: "map", default: "", help: "NAME => value, set in the service's env list" },
        Opt { key: "timeout", ty: "duration", default: "the run's call timeout", help: "bound on each call" },
        Opt { key: "expect_hash", ty: "string", default: "", help: "console: the deployment `hash` read at the start of the run; the update is refused, nothing sent, when the deployment moved on since" },
        Opt { key: "confirm", ty: "bool", default: "true", help: "after the write, read back until the deployment runs it (see above)" },
        Opt { key: "confirm_timeout", ty: "duration", default: "120s", help: "bound on the confirmation" },
        Opt { key: "expect_change", ty: "bool", default: "true", help: "console: the manifest hash must move (false when the SDL sent may be the one that runs)" },
        Opt { key: "wait_ready", ty: "bool", default: "true", help: "the confirmation waits for the service's replicas (false when a later step, e.g. discover_port, waits with its own bound)" },
        BACKEND,
        API_URL,
        PROVIDER,
        FROM,
    ],
};

#[rustfmt::skip]
static LEASE_STATUS: Spec = Spec {
    name: "akash_lease_status",
    params: &[],
    returns: "Map",
    doc: include_str!("docs/akash_lease_status.md"),
    opts: &[
        DSEQ,
        Opt { key: "gseq", ty: "int", default: "", help: "the lease's group sequence" },
        Opt { key: "oseq", ty: "int", default: "", help: "the lease's order sequence" },
        TIMEOUT,
        BACKEND,
        API_URL,
        PROVIDER,
        FROM,
    ],
};

#[rustfmt::skip]
static DEPLOYMENT: Spec = Spec {
    name: "akash_deployment",
    params: &[],
    returns: "Map",
    doc: include_str!("docs/akash_deployment.md"),
    opts: &[DSEQ, SERVICE, TIMEOUT, BACKEND, API_URL, PROVIDER, FROM],
};

fn read_dseq(prim: &'static str, o: &Opts) -> RhaiResult<String> {
    let dseq = match o.raw("dseq") {
        Some(v) if v.is_int() => v.as_int().map(|i| i.to_string()).unwrap_or_default(),
        Some(v) if v.is_string() => v.to_string(),
        Some(v) => {
            return Err(error(format!(
                "{prim}: dseq wants digits, got {} ({v})",
                v.type_name()
            )))
        }
        None => return Err(error(format!("{prim}: option 'dseq' is required"))),
    };
    crate::akash::check_dseq(prim, &dseq).map_err(error)?;
    Ok(dseq)
}

fn opt_string(v: Option<String>) -> Dynamic {
    v.map_or(Dynamic::UNIT, Dynamic::from)
}

/// What `akash_update` was asked to do.
struct Update {
    cfg: Config,
    dseq: String,
    sdl_path: String,
    image: Option<String>,
    service: Option<String>,
    env: Vec<(String, String)>,
    timeout: Duration,
    expect_hash: Option<String>,
    confirm: bool,
    confirm_timeout: Duration,
    expect_change: bool,
    wait_ready: bool,
}

impl Update {
    fn read(ctx: &Ctx, o: &Opts) -> RhaiResult<Update> {
        let mut env = Vec::new();
        if let Some(m) = o.map("env")? {
            for (k, v) in m {
                env.push((k.to_string(), v.to_string()));
            }
        }
        Ok(Update {
            cfg: config_from(o)?,
            dseq: read_dseq("akash_update", o)?,
            sdl_path: o.req_str("sdl")?,
            image: o.str("image")?,
            service: o.str("service")?,
            env,
            timeout: o.duration("timeout")?.unwrap_or(ctx.settings.call_timeout),
            expect_hash: o.str("expect_hash")?,
            confirm: o.bool("confirm")?.unwrap_or(true),
            confirm_timeout: o
                .duration("confirm_timeout")?
                .unwrap_or(Duration::from_secs(120)),
            expect_change: o.bool("expect_change")?.unwrap_or(true),
            wait_ready: o.bool("wait_ready")?.unwrap_or(true),
        })
    }

    /// The deployment before the update (Console only): it must exist and
    /// be active, and, with `expect_hash`, be the one the run read at its
    /// start. Reads are safe to repeat: a few bounded retries ride out a 5xx.
    fn before(&self, ctx: &Arc<Ctx>) -> RhaiResult<Option<console::Live>> {
        if self.cfg.backend != Backend::Console {
            return Ok(None);
        }
        let dep = read_deployment(ctx, &self.cfg, &self.dseq, self.timeout, "akash_update")?;
        let live = console::live_of(&dep, &self.dseq).map_err(|e| e.prefixed("akash_update"))?;
        let d = &self.dseq;
        if live.state != "active" {
            return Err(error(format!(
                "akash_update: deployment {d} is {}, not active: nothing was sent (create a new deployment and pass its dseq)",
                live.state
            )));
        }
        if let Some(want) = &self.expect_hash {
            if *want != live.hash {
                return Err(error(format!(
                    "akash_update: deployment {d} changed since this run read it (manifest hash {want} then, {} now): another writer (the Console, another tool or run) updated it, and the Console API has no conditional write, so nothing was sent rather than overwrite that change. See what runs, then run again",
                    live.hash
                )));
            }
        }
        Ok(Some(live))
    }

    /// Send the new SDL: a Console `PUT`, or the CLI's two steps.
    fn send(&self, ctx: &Arc<Ctx>, sdl_text: &str) -> RhaiResult<Option<Value>> {
        match self.cfg.backend {
            Backend::Console => {
                let (c2, cfg, d, text) = (
                    ctx.clone(),
                    self.cfg.clone(),
                    self.dseq.clone(),
                    sdl_text.to_string(),
                );
                let answer = ctx.block_on("akash_update", self.timeout, async move {
                    console::put_sdl(&c2.http_same_origin, &cfg, &d, &text).await.map_err(|e| {
                        e.map_msg(|m| format!("akash_update: the Console API refused the update of deployment {d}: {m}"))
                    })
                })?;
                Ok(Some(answer))
            }
            Backend::Cli => {
                let mut file = tempfile::Builder::new()
                    .prefix("runbook-sdl-")
                    .suffix(".yaml")
                    .tempfile()
                    .map_err(|e| {
                        error(format!(
                            "akash_update: cannot create a temporary SDL file: {e}"
                        ))
                    })?;
                std::io::Write::write_all(&mut file, sdl_text.as_bytes()).map_err(|e| {
                    error(format!("akash_update: cannot write the temporary SDL: {e}"))
                })?;
                let path = file.path().to_string_lossy().into_owned();
                let steps = cli::update_argvs(&self.cfg, &self.dseq, &path)
                    .map_err(|e| e.prefixed("akash_update"))?;
                for argv in steps {
                    let c2 = ctx.clone();
                    let (out, argv) = ctx.block_on("akash_update", self.timeout, async move {
                        exec::run(&c2.exec_env(), &argv, &exec::ExecOpts::default())
                            .await
                            .map(|o| (o, argv))
                    })?;
                    if out.code != 0 {
                        return Err(error(format!(
                            "akash_update: `{}` exited with {}: {}",
                            argv[..3].join(" "),
                            out.code,
                            out.tail()
                        )));
                    }
                }
                Ok(None)
            }
        }
    }
}

/// `GET /v1/deployments/{dseq}` with a few bounded retries (reads are safe
/// to repeat).
fn read_deployment(
    ctx: &Arc<Ctx>,
    cfg: &Config,
    dseq: &str,
    timeout: Duration,
    prim: &'static str,
) -> RhaiResult<Value> {
    let (c2, cfg, d) = (ctx.clone(), cfg.clone(), dseq.to_string());
    let schedule = Schedule::within(timeout)
        .attempts(3)
        .delays(Duration::from_millis(500), Duration::from_secs(1))
        .attempt_timeout(timeout);
    let what = format!("{prim}: reading deployment {dseq}");
    ctx.block_on(prim, timeout, async move {
        retry(&what, &schedule, |_| {
            console::get_deployment(&c2.http_same_origin, &cfg, &d)
        })
        .await
        .map_err(|e| e.prefixed(prim))
    })
}

/// After the write: read back until the deployment runs what was sent, or
/// say what did not happen by `confirm_timeout`. Console: the write's hash
/// is the deployment's (and moved, unless `expect_change` is false), the
/// deployment and its leases are active, the service's replicas ready.
/// CLI: the service's replicas ready in `provider-services lease-status`.
fn confirm(
    ctx: &Arc<Ctx>,
    u: &Update,
    service: &str,
    before: Option<&console::Live>,
    written: Option<&console::Live>,
) -> RhaiResult<Option<console::Live>> {
    let d = &u.dseq;
    if let (Some(b), Some(w)) = (before, written) {
        if u.expect_change && b.hash == w.hash {
            return Err(error(format!(
                "akash_update: the Console accepted the update of deployment {d} but its manifest hash did not move ({}): the deployment still runs what it ran before (check the provider's lease and events)",
                w.hash
            )));
        }
    }
    let (c2, cfg, dseq, svc) = (ctx.clone(), u.cfg.clone(), d.clone(), service.to_string());
    let want = written.map(|w| w.hash.clone());
    let wait_ready = u.wait_ready;
    let schedule = Schedule::within(u.confirm_timeout)
        .delays(Duration::from_millis(500), Duration::from_secs(5))
        .attempt_timeout(u.timeout.min(u.confirm_timeout));
    let what = format!("akash_update: confirming deployment {d} runs the update");
    let bound = u.confirm_timeout + Duration::from_secs(1);
    ctx.block_on("akash_update (confirm)", bound, async move {
        retry(&what, &schedule, |_| {
            let (c3, cfg, dseq, svc, want) = (
                c2.clone(),
                cfg.clone(),
                dseq.clone(),
                svc.clone(),
                want.clone(),
            );
            async move { confirm_once(&c3, &cfg, &dseq, &svc, want.as_deref(), wait_ready).await }
        })
        .await
    })
}

/// One read of the confirmation: fatal when the deployment went elsewhere
/// (another hash, not active), transient while the replicas come up.
async fn confirm_once(
    ctx: &Arc<Ctx>,
    cfg: &Config,
    dseq: &str,
    service: &str,
    want: Option<&str>,
    wait_ready: bool,
) -> Result<Option<console::Live>, crate::error::PrimError> {
    use crate::error::PrimError;
    let (live, status) = match cfg.backend {
        Backend::Console => {
            let dep = console::get_deployment(&ctx.http_same_origin, cfg, dseq).await?;
            let live = console::live_of(&dep, dseq)?;
            if let Some(w) = want {
                if live.hash != w {
                    return Err(PrimError::fatal(format!(
                        "deployment {dseq} has manifest hash {} right after the update wrote {w}: another writer changed it in between",
                        live.hash
                    )));
                }
            }
            if live.state != "active" {
                return Err(PrimError::fatal(format!(
                    "deployment {dseq} is {} after the update, not active",
                    live.state
                )));
            }
            if let Some(bad) = live.leases.iter().find(|s| s.as_str() != "active") {
                return Err(PrimError::fatal(format!(
                    "deployment {dseq}'s lease is {bad} after the update, not active (the provider closed it? check the lease's events)"
                )));
            }
            let status = console::lease_status_of(&dep, cfg, dseq, &Default::default())?;
            (Some(live), status)
        }
        Backend::Cli if !wait_ready => return Ok(None),
        Backend::Cli => {
            let status = crate::akash::lease_status(
                &ctx.http_same_origin,
                &ctx.exec_env(),
                cfg,
                dseq,
                &Default::default(),
            )
            .await?;
            (None, status)
        }
    };
    if !wait_ready {
        return Ok(live);
    }
    match console::readiness(&status, service) {
        Some((ready, of)) if of > 0 && ready >= of => Ok(live),
        Some((ready, of)) => Err(PrimError::transient(format!(
            "service {service}: {ready} of {of} replicas ready"
        ))),
        None => Err(PrimError::transient(format!(
            "the lease status does not list service {service} yet"
        ))),
    }
}

fn update(ctx: &Arc<Ctx>, o: &Opts) -> RhaiResult<Map> {
    let started = Instant::now();
    let u = Update::read(ctx, o)?;
    let template = crate::fsread::read_text(&ctx.path(&u.sdl_path), crate::fsread::FILE_CAP)
        .map_err(|e| {
            error(format!(
                "akash_update: cannot read the SDL template '{}': {e}",
                u.sdl_path
            ))
        })?;
    let applied = sdl::apply(&template, u.service.as_deref(), u.image.as_deref(), &u.env)
        .map_err(|e| error(format!("akash_update: {}: {e}", u.sdl_path)))?;
    let new_image = u
        .image
        .clone()
        .unwrap_or_else(|| applied.template_image.clone());
    // Read the deployment first: it must exist, be active, and be the one
    // the run read at its start.
    let before = u.before(ctx)?;
    let env_names: Vec<Dynamic> = u
        .env
        .iter()
        .map(|(k, _)| Dynamic::from(k.clone()))
        .collect();
    let hash_before = opt_string(before.as_ref().map(|l| l.hash.clone()));
    let mut result: Map = [
        ("dseq", Dynamic::from(u.dseq.clone())),
        ("service", Dynamic::from(applied.service.clone())),
        ("image", Dynamic::from(new_image.clone())),
        ("env", Dynamic::from(env_names)),
        ("backend", Dynamic::from(u.cfg.backend.name())),
        ("sdl", Dynamic::from(applied.sdl.clone())),
        ("planned", Dynamic::from(ctx.dry_run())),
        ("hash_before", hash_before),
        ("hash", Dynamic::UNIT),
        ("confirmed", Dynamic::FALSE),
    ]
    .into_iter()
    .map(|(k, v)| (k.into(), v))
    .collect();
    let dseq = &u.dseq;
    if ctx.dry_run() {
        // The Console never answers the running SDL: the diff is against
        // the template, which is what changes from one run to the next.
        let diff = sdl::diff(&sdl::normalize(&template), &applied.sdl);
        tracing::info!(
            primitive = "akash_update", dseq = %dseq, image = %new_image, planned = true,
            "dry run: would update deployment {dseq} ({}) to {new_image}; change from the template {}:\n{}",
            applied.service, u.sdl_path,
            if diff.is_empty() { "(none)\n".to_string() } else { diff }
        );
        return Ok(result);
    }
    ctx.guard_mutation("akash_update")?;
    let written = match u.send(ctx, &applied.sdl)? {
        Some(answer) => {
            let live = console::live_of(&answer, dseq).map_err(|e| {
                error(format!(
                    "akash_update: the update of deployment {dseq} was sent, but its answer cannot be read: {}",
                    e.msg
                ))
            })?;
            result.insert("hash".into(), Dynamic::from(live.hash.clone()));
            Some(live)
        }
        None => None,
    };
    if u.confirm {
        let seen = confirm(ctx, &u, &applied.service, before.as_ref(), written.as_ref())?;
        if let Some(l) = seen {
            result.insert("hash".into(), Dynamic::from(l.hash));
        }
        result.insert("confirmed".into(), Dynamic::TRUE);
    }
    tracing::info!(
        primitive = "akash_update", dseq = %dseq, service = %applied.service, image = %new_image,
        confirmed = u.confirm, elapsed_ms = started.elapsed().as_millis() as u64,
        "updated deployment {dseq} ({}) to {new_image}{}", applied.service,
        if u.confirm { ", confirmed running" } else { "" }
    );
    Ok(result)
}

fn status(c: &Arc<Ctx>, o: &Opts) -> RhaiResult<Dynamic> {
    let cfg = config_from(o)?;
    let dseq = read_dseq("akash_lease_status", o)?;
    let lease = read_lease_id(o)?;
    let timeout = o.duration("timeout")?.unwrap_or(Duration::from_secs(60));
    let c2 = c.clone();
    let v = c.block_on("akash_lease_status", timeout, async move {
        crate::akash::lease_status(&c2.http_same_origin, &c2.exec_env(), &cfg, &dseq, &lease)
            .await
            .map_err(|e| e.prefixed("akash_lease_status"))
    })?;
    Ok(to_dynamic(&v))
}

fn deployment(c: &Arc<Ctx>, o: &Opts) -> RhaiResult<Dynamic> {
    let cfg = config_from(o)?;
    let dseq = read_dseq("akash_deployment", o)?;
    let service = o.str("service")?;
    let timeout = o.duration("timeout")?.unwrap_or(Duration::from_secs(60));
    let mut m = Map::new();
    m.insert("dseq".into(), Dynamic::from(dseq.clone()));
    m.insert("backend".into(), Dynamic::from(cfg.backend.name()));
    let status = match cfg.backend {
        Backend::Console => {
            let dep = read_deployment(c, &cfg, &dseq, timeout, "akash_deployment")?;
            let live = console::live_of(&dep, &dseq).map_err(|e| e.prefixed("akash_deployment"))?;
            m.insert("state".into(), Dynamic::from(live.state));
            m.insert("hash".into(), Dynamic::from(live.hash));
            m.insert(
                "leases".into(),
                to_dynamic(dep.pointer("/data/leases").unwrap_or(&Value::Null)),
            );
            console::lease_status_of(&dep, &cfg, &dseq, &Default::default())
                .map_err(|e| e.prefixed("akash_deployment"))?
        }
        Backend::Cli => {
            // provider-services reads the lease, not the deployment: no
            // state or hash to report.
            m.insert("state".into(), Dynamic::UNIT);
            m.insert("hash".into(), Dynamic::UNIT);
            m.insert("leases".into(), Dynamic::UNIT);
            let (c2, cfg2, d2) = (c.clone(), cfg.clone(), dseq.clone());
            c.block_on("akash_deployment", timeout, async move {
                crate::akash::lease_status(
                    &c2.http_same_origin,
                    &c2.exec_env(),
                    &cfg2,
                    &d2,
                    &Default::default(),
                )
                .await
                .map_err(|e| e.prefixed("akash_deployment"))
            })?
        }
    };
    let ready = service
        .as_deref()
        .and_then(|s| console::readiness(&status, s))
        .map_or(Dynamic::UNIT, |(r, of)| Dynamic::from(of > 0 && r >= of));
    m.insert("ready".into(), ready);
    m.insert("status".into(), to_dynamic(&status));
    Ok(Dynamic::from(m))
}

/// Register the Akash primitives.
pub fn register(engine: &mut Engine, ctx: &Arc<Ctx>) {
    let c = ctx.clone();
    UPDATE.register_opts(engine, move |o: &Opts| update(&c, o));
    let c = ctx.clone();
    LEASE_STATUS.register_opts(engine, move |o: &Opts| status(&c, o));
    let c = ctx.clone();
    DEPLOYMENT.register_opts(engine, move |o: &Opts| deployment(&c, o));
}
