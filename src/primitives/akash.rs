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
    opts: &[DSEQ, SERVICE, API_URL, TIMEOUT],
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
        })
    }

    /// The deployment's SDL and image before the update (Console only).
    /// Reads are safe to repeat: a few bounded retries ride out a 5xx.
    fn previous(
        &self,
        ctx: &Arc<Ctx>,
        service: &str,
    ) -> RhaiResult<(Option<String>, Option<String>)> {
        if self.cfg.backend != Backend::Console {
            return Ok((None, None));
        }
        let (c2, cfg, d) = (ctx.clone(), self.cfg.clone(), self.dseq.clone());
        let schedule = Schedule::within(self.timeout)
            .attempts(3)
            .delays(Duration::from_millis(500), Duration::from_secs(1))
            .attempt_timeout(self.timeout);
        let what = format!("akash_update: reading deployment {d}");
        let dep = ctx.block_on("akash_update (read deployment)", self.timeout, async move {
            retry(&what, &schedule, |_| {
                console::get_deployment(&c2.http_same_origin, &cfg, &d)
            })
            .await
        })?;
        Ok(console::previous_of(&dep, &self.dseq, service)
            .map_err(|e| e.prefixed("akash_update"))?)
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
                        exec::run(&c2, &argv, &exec::ExecOpts::default())
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

fn update(ctx: &Arc<Ctx>, o: &Opts) -> RhaiResult<Map> {
    let started = Instant::now();
    let u = Update::read(ctx, o)?;
    let template = std::fs::read_to_string(ctx.path(&u.sdl_path)).map_err(|e| {
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
    // Read the deployment first: it must exist, and its image is the one we replace.
    let (previous_sdl, previous_image) = u.previous(ctx, &applied.service)?;
    let diff = sdl::diff(
        &sdl::normalize(previous_sdl.as_deref().unwrap_or(&template)),
        &applied.sdl,
    );
    let env_names: Vec<Dynamic> = u
        .env
        .iter()
        .map(|(k, _)| Dynamic::from(k.clone()))
        .collect();
    let mut result: Map = [
        ("dseq", Dynamic::from(u.dseq.clone())),
        ("service", Dynamic::from(applied.service.clone())),
        ("previous_image", opt_string(previous_image.clone())),
        ("image", Dynamic::from(new_image.clone())),
        ("env", Dynamic::from(env_names)),
        ("backend", Dynamic::from(u.cfg.backend.name())),
        ("sdl", Dynamic::from(applied.sdl.clone())),
        ("planned", Dynamic::from(ctx.dry_run())),
    ]
    .into_iter()
    .map(|(k, v)| (k.into(), v))
    .collect();
    let dseq = &u.dseq;
    if ctx.dry_run() {
        tracing::info!(
            primitive = "akash_update", dseq = %dseq, image = %new_image, planned = true,
            "dry run: would update deployment {dseq} ({}) to {new_image}; SDL change:\n{}",
            applied.service,
            if diff.is_empty() { "(none)\n".to_string() } else { diff }
        );
        return Ok(result);
    }
    ctx.guard_mutation("akash_update")?;
    if let Some(answer) = u.send(ctx, &applied.sdl)? {
        result.insert("answer".into(), to_dynamic(&answer));
    }
    tracing::info!(
        primitive = "akash_update", dseq = %dseq, service = %applied.service,
        previous_image = %previous_image.as_deref().unwrap_or("unknown"), image = %new_image,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "updated deployment {dseq} ({}) to {new_image}", applied.service
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
        crate::akash::lease_status(&c2, &cfg, &dseq, &lease)
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
    let (c2, d2) = (c.clone(), dseq.clone());
    let v = c.block_on("akash_deployment", timeout, async move {
        console::get_deployment(&c2.http_same_origin, &cfg, &d2)
            .await
            .map_err(|e| e.prefixed("akash_deployment"))
    })?;
    let deployed = v.pointer("/data/sdl").and_then(Value::as_str);
    let image = deployed
        .and_then(|s| sdl::image_of(s, service.as_deref()).ok())
        .map(|(_, i)| i);
    let env = deployed
        .and_then(|s| sdl::env_of(s, service.as_deref()).ok())
        .map_or(Dynamic::UNIT, |pairs| {
            Dynamic::from(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k.into(), Dynamic::from(v)))
                    .collect::<Map>(),
            )
        });
    let mut m = to_dynamic(v.get("data").unwrap_or(&Value::Null))
        .try_cast::<Map>()
        .unwrap_or_default();
    m.insert("dseq".into(), Dynamic::from(dseq));
    m.insert("image".into(), opt_string(image));
    m.insert("env".into(), env);
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
