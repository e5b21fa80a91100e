//! Akash: `akash_update` (point a deployment at a new image and env),
//! `akash_lease_status` and `akash_deployment`. Two backends: the Akash
//! Console API (HTTP, `AKASH_CONSOLE_API_KEY`) and the `provider-services`
//! CLI (through the allow-listed `exec`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rhai::{Dynamic, Engine, FuncRegistration, Map};
use serde_json::{json, Value};

use crate::context::{error, Ctx, RhaiResult};
use crate::net::snippet;
use crate::primitives::{exec, sdl, to_dynamic, Opts};

/// Which way to talk to Akash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The Akash Console API (managed wallet; what CI uses).
    Console,
    /// The `provider-services` CLI.
    Cli,
}

/// How to reach Akash for one call.
#[derive(Clone, Debug)]
pub struct Config {
    /// Console or CLI.
    pub backend: Backend,
    /// Console API base URL.
    pub api_url: String,
    /// The provider's address (CLI backend).
    pub provider: Option<String>,
    /// The key name to sign with (CLI backend).
    pub from: Option<String>,
}

/// A failed Akash call: `transient` ones are worth retrying.
#[derive(Debug)]
pub struct AkashError {
    /// 5xx, connection errors, timeouts.
    pub transient: bool,
    /// What happened, with the provider's or API's answer.
    pub msg: String,
}

impl From<AkashError> for String {
    fn from(e: AkashError) -> String {
        e.msg
    }
}

/// The option keys every Akash primitive takes.
pub const CONFIG_KEYS: &[&str] = &["backend", "api_url", "provider", "from"];

impl Config {
    /// Read the backend options, falling back to `AKASH_BACKEND`,
    /// `AKASH_CONSOLE_API_URL`, `AKASH_PROVIDER` and `AKASH_FROM`.
    pub fn from_opts(o: &Opts) -> RhaiResult<Config> {
        let backend = match o
            .str("backend")?
            .or_else(|| std::env::var("AKASH_BACKEND").ok())
            .as_deref()
        {
            None | Some("console") | Some("") => Backend::Console,
            Some("cli") | Some("provider-services") => Backend::Cli,
            Some(other) => {
                return Err(error(format!(
                    "akash: unknown backend '{other}'; use \"console\" (Akash Console API) or \"cli\" (provider-services)"
                )))
            }
        };
        let api_url = o
            .str("api_url")?
            .or_else(|| std::env::var("AKASH_CONSOLE_API_URL").ok())
            .unwrap_or_else(|| "https://console-api.akash.network".into())
            .trim_end_matches('/')
            .to_string();
        Ok(Config {
            backend,
            api_url,
            provider: o
                .str("provider")?
                .or_else(|| std::env::var("AKASH_PROVIDER").ok()),
            from: o.str("from")?.or_else(|| std::env::var("AKASH_FROM").ok()),
        })
    }
}

/// A dseq: digits only.
pub fn check_dseq(prim: &str, dseq: &str) -> Result<(), String> {
    if dseq.is_empty() || !dseq.chars().all(|c| c.is_ascii_digit()) || dseq == "0" {
        return Err(format!(
            "{prim}: dseq '{dseq}' is not a deployment sequence number (digits, e.g. 1234567); pass --dseq or set it in the playbook"
        ));
    }
    Ok(())
}

fn api_key() -> Result<String, AkashError> {
    match std::env::var("AKASH_CONSOLE_API_KEY") {
        Ok(k) if !k.is_empty() => {
            crate::redact::register(&k);
            Ok(k)
        }
        _ => Err(AkashError {
            transient: false,
            msg: "AKASH_CONSOLE_API_KEY is not set; create an API key in the Akash Console and export it (a repository secret in CI), or use backend \"cli\"".into(),
        }),
    }
}

async fn console(
    ctx: &Ctx,
    cfg: &Config,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Result<Value, AkashError> {
    let key = api_key()?;
    let url = format!("{}{path}", cfg.api_url);
    // The key is a header reqwest does not strip on a redirect to another
    // host, so this client refuses such redirects.
    let mut req = ctx
        .http_same_origin
        .request(method.clone(), &url)
        .header("x-api-key", key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.map_err(|e| AkashError {
        // A refused cross-origin redirect will refuse again.
        transient: !e.is_redirect(),
        msg: format!("{method} {url}: {}", crate::net::http_error(&e)),
    })?;
    let status = resp.status();
    let body = crate::net::read_body(resp, CONSOLE_BODY_CAP, "akash console")
        .await
        .map_err(|e| AkashError {
            transient: e.transient(),
            msg: format!("{method} {url}: {e}"),
        })?;
    let text = String::from_utf8_lossy(&body);
    if !status.is_success() {
        let hint = match status.as_u16() {
            401 | 403 => " (the API key was refused: check AKASH_CONSOLE_API_KEY)",
            404 => " (no such deployment: check the dseq and that the key's account owns it)",
            _ => "",
        };
        return Err(AkashError {
            transient: status.is_server_error() || status.as_u16() == 429,
            msg: format!("{method} {url} answered {status}{hint}: {}", snippet(&text)),
        });
    }
    serde_json::from_str(&text).map_err(|e| AkashError {
        transient: false,
        msg: format!(
            "{method} {url} answered malformed JSON ({e}): {}",
            snippet(&text)
        ),
    })
}

/// Most of an Akash Console answer runbook reads (a deployment with its
/// leases and SDL is tens of KiB).
pub const CONSOLE_BODY_CAP: usize = crate::net::DEFAULT_BODY_CAP;

/// The whole deployment from the Console API (`GET /v1/deployments/{dseq}`).
pub async fn get_deployment(ctx: &Ctx, cfg: &Config, dseq: &str) -> Result<Value, AkashError> {
    console(
        ctx,
        cfg,
        reqwest::Method::GET,
        &format!("/v1/deployments/{dseq}"),
        None,
    )
    .await
}

/// Lease ids narrowing which lease to read.
#[derive(Clone, Debug, Default)]
pub struct LeaseId {
    /// Group sequence.
    pub gseq: Option<i64>,
    /// Order sequence.
    pub oseq: Option<i64>,
}

/// A lease status: from the Console deployment's lease, or
/// `provider-services lease-status`.
pub async fn lease_status(
    ctx: &Arc<Ctx>,
    cfg: &Config,
    dseq: &str,
    lease: &LeaseId,
) -> Result<Value, AkashError> {
    match cfg.backend {
        Backend::Console => {
            let dep = get_deployment(ctx, cfg, dseq).await?;
            let leases = dep
                .pointer("/data/leases")
                .and_then(Value::as_array)
                .ok_or_else(|| AkashError {
                    transient: false,
                    msg: format!(
                        "the Console API's deployment {dseq} has no data.leases list: {}",
                        snippet(&dep.to_string())
                    ),
                })?;
            let pick = leases.iter().find(|l| {
                let id = l.get("id");
                let num = |k: &str| id.and_then(|i| i.get(k)).and_then(Value::as_i64);
                lease.gseq.is_none_or(|g| num("gseq") == Some(g))
                    && lease.oseq.is_none_or(|o| num("oseq") == Some(o))
                    && cfg.provider.as_deref().is_none_or(|p| {
                        id.and_then(|i| i.get("provider")).and_then(Value::as_str) == Some(p)
                    })
            });
            Ok(pick
                .and_then(|l| l.get("status"))
                .cloned()
                .unwrap_or(json!({"forwarded_ports": null})))
        }
        Backend::Cli => {
            let provider = cfg.provider.clone().ok_or_else(|| AkashError {
                transient: false,
                msg: "the provider-services backend needs the provider's address: `provider` option or AKASH_PROVIDER".into(),
            })?;
            let mut argv: Vec<String> = [
                "provider-services",
                "lease-status",
                "--dseq",
                dseq,
                "--provider",
                &provider,
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            for (flag, v) in [("--gseq", lease.gseq), ("--oseq", lease.oseq)] {
                if let Some(v) = v {
                    argv.push(flag.into());
                    argv.push(v.to_string());
                }
            }
            if let Some(from) = &cfg.from {
                argv.push("--from".into());
                argv.push(from.clone());
            }
            let out = exec::run(ctx, &argv, &exec::ExecOpts::default())
                .await
                .map_err(|msg| AkashError {
                    transient: false,
                    msg,
                })?;
            if out.code != 0 {
                return Err(AkashError {
                    transient: true,
                    msg: format!(
                        "provider-services lease-status exited with {}: {}",
                        out.code,
                        out.tail()
                    ),
                });
            }
            serde_json::from_str(&out.stdout).map_err(|e| AkashError {
                transient: false,
                msg: format!(
                    "provider-services lease-status printed malformed JSON ({e}): {}",
                    snippet(&out.stdout)
                ),
            })
        }
    }
}

fn map_from(pairs: Vec<(&str, Dynamic)>) -> Map {
    pairs.into_iter().map(|(k, v)| (k.into(), v)).collect()
}

fn opt_string(v: Option<String>) -> Dynamic {
    v.map_or(Dynamic::UNIT, Dynamic::from)
}

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
    check_dseq(prim, &dseq).map_err(error)?;
    Ok(dseq)
}

/// Options of `akash_update`.
const UPDATE_KEYS: &[&str] = &[
    "dseq", "service", "image", "env", "sdl", "timeout", "backend", "api_url", "provider", "from",
];

fn update(ctx: &Arc<Ctx>, opts: &Map) -> RhaiResult<Map> {
    let started = Instant::now();
    let o = Opts::new("akash_update", opts, UPDATE_KEYS)?;
    let cfg = Config::from_opts(&o)?;
    let dseq = read_dseq("akash_update", &o)?;
    let sdl_path = o.req_str("sdl")?;
    let image = o.str("image")?;
    let service = o.str("service")?;
    let timeout = o.duration("timeout")?.unwrap_or(ctx.settings.call_timeout);
    let mut env = Vec::new();
    if let Some(m) = o.map("env")? {
        for (k, v) in m {
            env.push((k.to_string(), v.to_string()));
        }
    }
    let template = std::fs::read_to_string(ctx.path(&sdl_path)).map_err(|e| {
        error(format!(
            "akash_update: cannot read the SDL template '{sdl_path}': {e}"
        ))
    })?;
    let applied = sdl::apply(&template, service.as_deref(), image.as_deref(), &env)
        .map_err(|e| error(format!("akash_update: {sdl_path}: {e}")))?;
    let new_image = image
        .clone()
        .unwrap_or_else(|| applied.template_image.clone());

    // Read the deployment first: it must exist, and its image is the one we replace.
    let (previous_sdl, previous_image) = match cfg.backend {
        Backend::Console => {
            let c2 = ctx.clone();
            let (cfg2, d2) = (cfg.clone(), dseq.clone());
            let dep = ctx.block_on("akash_update (read deployment)", timeout, async move {
                // Reads are safe to repeat: a few bounded retries ride out a 5xx.
                let mut tries = 0;
                loop {
                    tries += 1;
                    match get_deployment(&c2, &cfg2, &d2).await {
                        Ok(v) => break Ok(v),
                        Err(e) if e.transient && tries < 3 => {
                            tracing::warn!(
                                primitive = "akash_update",
                                "reading deployment {d2} failed (try {tries} of 3): {}",
                                e.msg
                            );
                            tokio::time::sleep(Duration::from_millis(500 * tries)).await;
                        }
                        Err(e) => {
                            break Err(format!("akash_update: reading deployment {d2}: {}", e.msg))
                        }
                    }
                }
            })?;
            if dep.pointer("/data/deployment").is_none() {
                return Err(error(format!(
                    "akash_update: the Console API's answer for deployment {dseq} has no data.deployment (an API change?): {}",
                    snippet(&dep.to_string())
                )));
            }
            // `data.sdl` is not in every Console API answer; without it the previous image is unknown.
            let prev_sdl = dep
                .pointer("/data/sdl")
                .and_then(Value::as_str)
                .map(String::from);
            let prev_image = prev_sdl
                .as_deref()
                .and_then(|s| sdl::image_of(s, Some(&applied.service)).ok())
                .map(|(_, i)| i);
            (prev_sdl, prev_image)
        }
        Backend::Cli => (None, None),
    };
    let diff = sdl::diff(
        &sdl::normalize(previous_sdl.as_deref().unwrap_or(&template)),
        &applied.sdl,
    );
    let env_names: Vec<Dynamic> = env.iter().map(|(k, _)| Dynamic::from(k.clone())).collect();
    let mut result = map_from(vec![
        ("dseq", Dynamic::from(dseq.clone())),
        ("service", Dynamic::from(applied.service.clone())),
        ("previous_image", opt_string(previous_image.clone())),
        ("image", Dynamic::from(new_image.clone())),
        ("env", Dynamic::from(env_names)),
        (
            "backend",
            Dynamic::from(if cfg.backend == Backend::Console {
                "console"
            } else {
                "cli"
            }),
        ),
        ("sdl", Dynamic::from(applied.sdl.clone())),
        ("planned", Dynamic::from(ctx.dry_run())),
    ]);
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
    match cfg.backend {
        Backend::Console => {
            let c2 = ctx.clone();
            let (cfg2, d2, text) = (cfg.clone(), dseq.clone(), applied.sdl.clone());
            let answer = ctx.block_on("akash_update", timeout, async move {
                let body = json!({"data": {"sdl": text}});
                console(
                    &c2,
                    &cfg2,
                    reqwest::Method::PUT,
                    &format!("/v1/deployments/{d2}"),
                    Some(body),
                )
                .await
                .map_err(|e| {
                    format!(
                        "akash_update: the Console API refused the update of deployment {d2}: {}",
                        e.msg
                    )
                })
            })?;
            result.insert("answer".into(), to_dynamic(&answer));
        }
        Backend::Cli => {
            let provider = cfg.provider.clone().ok_or_else(|| {
                error("akash_update: the provider-services backend needs `provider` (or AKASH_PROVIDER)")
            })?;
            let from = cfg.from.clone().ok_or_else(|| {
                error("akash_update: the provider-services backend needs `from`, the key to sign with (or AKASH_FROM)")
            })?;
            let mut file = tempfile::Builder::new()
                .prefix("runbook-sdl-")
                .suffix(".yaml")
                .tempfile()
                .map_err(|e| {
                    error(format!(
                        "akash_update: cannot create a temporary SDL file: {e}"
                    ))
                })?;
            std::io::Write::write_all(&mut file, applied.sdl.as_bytes())
                .map_err(|e| error(format!("akash_update: cannot write the temporary SDL: {e}")))?;
            let path = file.path().to_string_lossy().into_owned();
            let steps: [Vec<String>; 2] = [
                [
                    "provider-services",
                    "tx",
                    "deployment",
                    "update",
                    &path,
                    "--dseq",
                    &dseq,
                    "--from",
                    &from,
                    "-y",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect(),
                [
                    "provider-services",
                    "send-manifest",
                    &path,
                    "--dseq",
                    &dseq,
                    "--provider",
                    &provider,
                    "--from",
                    &from,
                ]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            ];
            for argv in steps {
                let c2 = ctx.clone();
                let out = ctx.block_on("akash_update", timeout, async move {
                    exec::run(&c2, &argv, &exec::ExecOpts::default())
                        .await
                        .map(|o| (o, argv))
                })?;
                let (out, argv) = out;
                if out.code != 0 {
                    return Err(error(format!(
                        "akash_update: `{}` exited with {}: {}",
                        argv[..3].join(" "),
                        out.code,
                        out.tail()
                    )));
                }
            }
        }
    }
    tracing::info!(
        primitive = "akash_update", dseq = %dseq, service = %applied.service,
        previous_image = %previous_image.as_deref().unwrap_or("unknown"), image = %new_image,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "updated deployment {dseq} ({}) to {new_image}", applied.service
    );
    Ok(result)
}

/// Options of `akash_lease_status` and `akash_deployment`.
const STATUS_KEYS: &[&str] = &[
    "dseq", "gseq", "oseq", "timeout", "backend", "api_url", "provider", "from",
];

/// Read a lease status for the given options (also the `akash` discovery source).
pub fn read_lease_id(o: &Opts) -> RhaiResult<LeaseId> {
    Ok(LeaseId {
        gseq: o.int("gseq")?,
        oseq: o.int("oseq")?,
    })
}

const UPDATE_DOC: &str = "\
/// Point an existing Akash deployment's service at a new image and env.
///
/// Options: `dseq` (required), `sdl` (required: the SDL template path),
/// `image` (a 40-hex git SHA tag or an `@sha256:` digest; `latest`, branch
/// names and untagged images are refused; default: the template's own
/// pinned image), `service` (default: the SDL's only service), `env`
/// (map NAME => value, set in the service's env list), `backend`
/// (\"console\" | \"cli\", default `AKASH_BACKEND` or console), `api_url`
/// (default `AKASH_CONSOLE_API_URL` or the public Console API), `provider`
/// and `from` (CLI backend), `timeout`.
///
/// Reads the deployment first (so `previous_image` is what ran before),
/// then `PUT /v1/deployments/{dseq}` (console, key from
/// `AKASH_CONSOLE_API_KEY`, redacted everywhere) or `provider-services tx
/// deployment update` + `send-manifest` (cli). A dry run logs the SDL diff
/// and sends nothing.
///
/// Returns `#{dseq, service, previous_image, image, env, backend, sdl, planned}`.
///
/// Console answers are read up to 4 MiB (a longer one fails naming the
/// cap); a redirect to another origin is refused, so the API key never
/// leaves the Console's host.";

const STATUS_DOC: &str = "\
/// The lease status of an Akash deployment (what the `akash` source of
/// `discover_port` reads): `forwarded_ports`, `services`, `ips`.
///
/// Options: `dseq` (required), `gseq`, `oseq`, `provider`, `backend`,
/// `api_url`, `from`, `timeout`.
///
/// Console answers are read up to 4 MiB (a longer one fails naming the
/// cap); a redirect to another origin is refused, so the API key never
/// leaves the Console's host.";

const DEPLOYMENT_DOC: &str = "\
/// The deployment as the Console API reports it, plus `image` and `env`
/// (the service's image and its env as a map, when the API returns the
/// deployed SDL; `()` otherwise).
///
/// Options: `dseq` (required), `service`, `api_url`, `timeout`.
///
/// Console answers are read up to 4 MiB (a longer one fails naming the
/// cap); a redirect to another origin is refused, so the API key never
/// leaves the Console's host.";

/// Register the Akash primitives.
pub fn register(engine: &mut Engine, ctx: &Arc<Ctx>) {
    let c = ctx.clone();
    FuncRegistration::new("akash_update")
        .with_params_info(["opts: Map", "Map"])
        .with_comments([UPDATE_DOC])
        .register_into_engine(engine, move |opts: Map| update(&c, &opts));

    let c = ctx.clone();
    FuncRegistration::new("akash_lease_status")
        .with_params_info(["opts: Map", "Map"])
        .with_comments([STATUS_DOC])
        .register_into_engine(engine, move |opts: Map| -> RhaiResult<Dynamic> {
            let o = Opts::new("akash_lease_status", &opts, STATUS_KEYS)?;
            let cfg = Config::from_opts(&o)?;
            let dseq = read_dseq("akash_lease_status", &o)?;
            let lease = read_lease_id(&o)?;
            let timeout = o.duration("timeout")?.unwrap_or(Duration::from_secs(60));
            let c2 = c.clone();
            let v = c.block_on("akash_lease_status", timeout, async move {
                lease_status(&c2, &cfg, &dseq, &lease)
                    .await
                    .map_err(|e| format!("akash_lease_status: {}", e.msg))
            })?;
            Ok(to_dynamic(&v))
        });

    let c = ctx.clone();
    FuncRegistration::new("akash_deployment")
        .with_params_info(["opts: Map", "Map"])
        .with_comments([DEPLOYMENT_DOC])
        .register_into_engine(engine, move |opts: Map| -> RhaiResult<Dynamic> {
            let o = Opts::new(
                "akash_deployment",
                &opts,
                &["dseq", "service", "api_url", "timeout"],
            )?;
            let cfg = Config::from_opts(&o)?;
            let dseq = read_dseq("akash_deployment", &o)?;
            let service = o.str("service")?;
            let timeout = o.duration("timeout")?.unwrap_or(Duration::from_secs(60));
            let c2 = c.clone();
            let d2 = dseq.clone();
            let v = c.block_on("akash_deployment", timeout, async move {
                get_deployment(&c2, &cfg, &d2)
                    .await
                    .map_err(|e| format!("akash_deployment: {}", e.msg))
            })?;
            let image = v
                .pointer("/data/sdl")
                .and_then(Value::as_str)
                .and_then(|s| sdl::image_of(s, service.as_deref()).ok())
                .map(|(_, i)| i);
            let mut m = to_dynamic(v.get("data").unwrap_or(&Value::Null))
                .try_cast::<Map>()
                .unwrap_or_default();
            let env = v
                .pointer("/data/sdl")
                .and_then(Value::as_str)
                .and_then(|s| sdl::env_of(s, service.as_deref()).ok())
                .map_or(Dynamic::UNIT, |pairs| {
                    Dynamic::from(
                        pairs
                            .into_iter()
                            .map(|(k, v)| (k.into(), Dynamic::from(v)))
                            .collect::<Map>(),
                    )
                });
            m.insert("dseq".into(), Dynamic::from(dseq));
            m.insert("image".into(), opt_string(image));
            m.insert("env".into(), env);
            Ok(Dynamic::from(m))
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dseq_must_be_digits() {
        assert!(check_dseq("p", "1234567").is_ok());
        for bad in ["", "0", "12a", "-1", " 1"] {
            assert!(check_dseq("p", bad).is_err(), "{bad:?}");
        }
    }
}
