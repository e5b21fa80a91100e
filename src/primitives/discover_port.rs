//! `discover_port(opts)`: poll a source with bounded, jittered exponential
//! backoff until the external port that forwards `internal_port` appears.
//! The bound is hard: the call returns or throws by `max_elapsed`, the last
//! attempt cut to fit. A found endpoint goes through `validate_endpoint`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::BackoffBuilder;
use rhai::{Dynamic, Engine, FnPtr, FuncRegistration, Map, NativeCallContext};
use serde_json::Value;

use crate::context::{error, terminated, Ctx, RhaiResult};
use crate::error::fmt_secs;
use crate::kube::service::Look;
use crate::primitives::shapes::{self, Found};
use crate::primitives::validate_endpoint::validate;
use crate::primitives::{akash, exec, kube_service, string_array, to_json, Opts};

/// Where to look.
#[derive(Clone, Debug)]
pub enum Source {
    /// Akash lease status of a deployment.
    Akash(akash::Config, String, akash::LeaseId),
    /// An allow-listed program's stdout.
    Command(Vec<String>),
    /// A JSON file.
    File(String),
    /// A JSON document from a GET.
    Url(String),
    /// A Kubernetes Service's node port (host: the given node or the
    /// kube context's API server host).
    Kube(crate::kube::service::Source),
    /// A Rhai closure.
    Closure(FnPtr),
}

impl Source {
    fn describe(&self) -> String {
        match self {
            Source::Akash(_, dseq, _) => format!("Akash lease of deployment {dseq}"),
            Source::Command(argv) => format!("`{}`", argv.join(" ")),
            Source::File(p) => format!("file {p}"),
            Source::Url(u) => format!("GET {u}"),
            Source::Kube(k) => k.describe(),
            Source::Closure(f) => format!("closure {}", f.fn_name()),
        }
    }
}

/// The backoff and bound settings.
#[derive(Clone, Debug)]
pub struct Schedule {
    /// Hard bound on the whole call.
    pub max_elapsed: Duration,
    /// First delay.
    pub initial_interval: Duration,
    /// Growth factor.
    pub multiplier: f32,
    /// Largest delay.
    pub max_interval: Duration,
    /// Bound on one attempt.
    pub attempt_timeout: Duration,
    /// Randomize delays (0–100 % more), so many runners do not poll in step.
    pub jitter: bool,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            max_elapsed: Duration::from_secs(75),
            initial_interval: Duration::from_secs(1),
            multiplier: 2.0,
            max_interval: Duration::from_secs(15),
            attempt_timeout: Duration::from_secs(10),
            jitter: true,
        }
    }
}

/// One attempt's outcome.
enum Attempt {
    Found(Found),
    /// Worth another try (5xx, refused connection, non-zero exit, timeout).
    Transient(String),
    /// No point trying again (unknown shape, malformed JSON, 401/404).
    Fatal(String),
}

const KEYS: &[&str] = &[
    "internal_port",
    "source",
    "service",
    "output",
    "max_elapsed",
    "initial_interval",
    "multiplier",
    "max_interval",
    "attempt_timeout",
    "jitter",
];
const SOURCE_KINDS: &[&str] = &["akash", "command", "file", "url", "kube"];

fn read_source(v: &Dynamic) -> RhaiResult<(Source, Option<String>)> {
    if let Some(f) = v.clone().try_cast::<FnPtr>() {
        return Ok((Source::Closure(f), None));
    }
    let Some(m) = v.clone().try_cast::<Map>() else {
        return Err(error(format!(
            "discover_port: `source` wants a map like #{{ akash: #{{dseq: \"…\"}} }}, #{{ command: [...] }}, #{{ file: \"…\" }}, #{{ url: \"…\" }}, or a closure; got {}",
            v.type_name()
        )));
    };
    let o = Opts::new(
        "discover_port source",
        &m,
        &["akash", "command", "file", "url", "kube", "output"],
    )?;
    let output = o.str("output")?;
    let kinds: Vec<&str> = SOURCE_KINDS
        .iter()
        .copied()
        .filter(|k| m.contains_key(*k))
        .collect();
    let source = match kinds.as_slice() {
        ["akash"] => {
            let am = o.map("akash")?.unwrap_or_default();
            let ao = Opts::new(
                "discover_port akash source",
                &am,
                &["dseq", "provider", "gseq", "oseq", "backend", "api_url", "from"],
            )?;
            let cfg = akash::Config::from_opts(&ao)?;
            let dseq = match am.get("dseq") {
                Some(d) if d.is_int() || d.is_string() => d.to_string(),
                _ => return Err(error("discover_port: the akash source needs `dseq`")),
            };
            akash::check_dseq("discover_port", &dseq).map_err(error)?;
            Source::Akash(cfg, dseq, akash::read_lease_id(&ao)?)
        }
        ["command"] => {
            let argv = o.array("command")?.unwrap_or_default();
            Source::Command(string_array("discover_port", "command", &argv)?)
        }
        ["file"] => Source::File(o.req_str("file")?),
        ["kube"] => Source::Kube(kube_service::read_source(&o.map("kube")?.unwrap_or_default())?),
        ["url"] => {
            let url = o.req_str("url")?;
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(error(format!("discover_port: url '{url}' is not an http(s) URL")));
            }
            Source::Url(url)
        }
        [] => return Err(error("discover_port: `source` names no source; give one of akash, command, file, url, kube (or a closure)")),
        many => {
            return Err(error(format!(
                "discover_port: `source` names several sources ({}); give exactly one",
                many.join(", ")
            )))
        }
    };
    Ok((source, output))
}

fn read_schedule(o: &Opts) -> RhaiResult<Schedule> {
    let d = Schedule::default();
    let s = Schedule {
        max_elapsed: o.duration("max_elapsed")?.unwrap_or(d.max_elapsed),
        initial_interval: o
            .duration("initial_interval")?
            .unwrap_or(d.initial_interval),
        multiplier: o.float("multiplier")?.map_or(d.multiplier, |m| m as f32),
        max_interval: o.duration("max_interval")?.unwrap_or(d.max_interval),
        attempt_timeout: o.duration("attempt_timeout")?.unwrap_or(d.attempt_timeout),
        jitter: o.bool("jitter")?.unwrap_or(d.jitter),
    };
    if s.max_elapsed.is_zero() {
        return Err(error("discover_port: max_elapsed must be more than 0"));
    }
    if !(1.0..=10.0).contains(&s.multiplier) {
        return Err(error(format!(
            "discover_port: multiplier {} is outside 1–10",
            s.multiplier
        )));
    }
    if s.initial_interval.is_zero() || s.attempt_timeout.is_zero() {
        return Err(error(
            "discover_port: initial_interval and attempt_timeout must be more than 0",
        ));
    }
    Ok(s)
}

fn json_attempt(
    what: &str,
    text: &str,
    port: u16,
    service: Option<&str>,
    output: Option<&str>,
) -> Attempt {
    let v: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return Attempt::Fatal(format!(
                "{what} answered malformed JSON (line {}, column {}: {e}): {}",
                e.line(),
                e.column(),
                crate::net::snippet(text)
            ))
        }
    };
    match shapes::find(&v, port, service, output) {
        Ok(f) => Attempt::Found(f),
        Err(e) => Attempt::Fatal(format!("{what}: {e}")),
    }
}

async fn probe_async(
    ctx: Arc<Ctx>,
    source: Source,
    port: u16,
    service: Option<String>,
    output: Option<String>,
) -> Attempt {
    let what = source.describe();
    let (svc, out) = (service.as_deref(), output.as_deref());
    match source {
        Source::Akash(cfg, dseq, lease) => {
            match akash::lease_status(&ctx, &cfg, &dseq, &lease).await {
                Ok(v) => match shapes::find(&v, port, svc, out) {
                    Ok(f) => Attempt::Found(f),
                    Err(e) => Attempt::Fatal(format!("{what}: {e}")),
                },
                Err(e) if e.transient => Attempt::Transient(e.msg),
                Err(e) => Attempt::Fatal(e.msg),
            }
        }
        Source::Command(argv) => match exec::run(&ctx, &argv, &exec::ExecOpts::default()).await {
            Ok(o) if o.code == 0 => json_attempt(&what, &o.stdout, port, svc, out),
            Ok(o) => Attempt::Transient(format!("{what} exited with {}: {}", o.code, o.tail())),
            Err(e) => Attempt::Fatal(e),
        },
        Source::File(p) => {
            let path = ctx.path(&p);
            if !path.exists() {
                return Attempt::Found(Found::Pending(format!("{p} does not exist yet")));
            }
            let read = tokio::task::spawn_blocking(move || {
                crate::fsread::read_text(&path, crate::fsread::FILE_CAP)
            })
            .await;
            match read {
                Ok(Ok(text)) => json_attempt(&what, &text, port, svc, out),
                Ok(Err(e)) => Attempt::Fatal(format!("discover_port: cannot read {p}: {e}")),
                Err(e) => Attempt::Fatal(format!("discover_port: reading {p} failed: {e}")),
            }
        }
        Source::Url(u) => match ctx.http.get(&u).send().await {
            Ok(r) if r.status().as_u16() == 404 => {
                Attempt::Found(Found::Pending(format!("GET {u} answered 404")))
            }
            Ok(r) if r.status().is_server_error() || r.status().as_u16() == 429 => {
                Attempt::Transient(format!("GET {u} answered {}", r.status()))
            }
            Ok(r) if !r.status().is_success() => {
                Attempt::Fatal(format!("GET {u} answered {}", r.status()))
            }
            Ok(r) => match crate::net::read_body(r, URL_BODY_CAP, "discover_port").await {
                Ok(body) => json_attempt(&what, &String::from_utf8_lossy(&body), port, svc, out),
                Err(e) if e.transient() => Attempt::Transient(e.to_string()),
                Err(e) => Attempt::Fatal(e.to_string()),
            },
            Err(e) => Attempt::Transient(format!("GET {u}: {}", crate::net::http_error(&e))),
        },
        Source::Kube(k) => match k.look(&ctx.kube, port).await {
            Ok(Look::Found(ep)) => Attempt::Found(Found::Endpoint(ep)),
            Ok(Look::Pending(why)) => Attempt::Found(Found::Pending(why)),
            Err(e) if e.is_transient() => Attempt::Transient(e.msg),
            Err(e) => Attempt::Fatal(e.msg),
        },
        Source::Closure(_) => Attempt::Fatal("a closure cannot run off the script thread".into()),
    }
}

fn probe_closure(ncc: &NativeCallContext, f: &FnPtr, port: u16) -> RhaiResult<Attempt> {
    let v: Dynamic = f.call_within_context(ncc, ())?;
    if v.is_unit() {
        return Ok(Attempt::Found(Found::Pending(
            "the closure returned () (not ready)".into(),
        )));
    }
    let json = to_json(&v).map_err(error)?;
    Ok(match shapes::find(&json, port, None, None) {
        Ok(f) => Attempt::Found(f),
        Err(e) => Attempt::Fatal(format!("closure {}: {e}", f.fn_name())),
    })
}

fn discover(ncc: &NativeCallContext, ctx: &Arc<Ctx>, opts: &Map) -> RhaiResult<String> {
    let o = Opts::new("discover_port", opts, KEYS)?;
    let port = match o.int("internal_port")? {
        Some(p) if (1..=65535).contains(&p) => p as u16,
        Some(p) => {
            return Err(error(format!(
                "discover_port: internal_port {p} is not a port (1–65535)"
            )))
        }
        None => return Err(error(
            "discover_port: option 'internal_port' is required (the container's port, e.g. 7072)",
        )),
    };
    let service = o.str("service")?;
    let (source, src_output) = match o.raw("source") {
        Some(v) => read_source(v)?,
        None => return Err(error("discover_port: option 'source' is required")),
    };
    let output = o.str("output")?.or(src_output);
    let sched = read_schedule(&o)?;
    let what = source.describe();
    let mut delays = {
        let b = backon::ExponentialBuilder::default()
            .with_min_delay(sched.initial_interval)
            .with_max_delay(sched.max_interval)
            .with_factor(sched.multiplier)
            .without_max_times();
        if sched.jitter {
            b.with_jitter().build()
        } else {
            b.build()
        }
    };
    let start = Instant::now();
    let mut last_seen = String::from("nothing yet");
    let mut attempt = 0u32;
    loop {
        let remaining = sched.max_elapsed.saturating_sub(start.elapsed());
        // Too little time left for a meaningful attempt: stop at the bound.
        if remaining < Duration::from_millis(5) {
            break;
        }
        attempt += 1;
        let budget = sched.attempt_timeout.min(remaining);
        let result = match &source {
            Source::Closure(f) => probe_closure(ncc, f, port)?,
            other => {
                let fut = probe_async(
                    ctx.clone(),
                    other.clone(),
                    port,
                    service.clone(),
                    output.clone(),
                );
                let cancel = ctx.cancel.clone();
                let r = ctx.rt.block_on(async move {
                    tokio::select! {
                        _ = cancel.cancelled() => None,
                        r = tokio::time::timeout(budget, fut) => Some(r),
                    }
                });
                match r {
                    None => return Err(terminated()),
                    Some(Err(_)) => {
                        Attempt::Transient(format!("no answer within {}", fmt_secs(budget)))
                    }
                    Some(Ok(a)) => a,
                }
            }
        };
        let elapsed = start.elapsed();
        match result {
            Attempt::Found(Found::Endpoint(raw)) => {
                // Node addresses are IPs as often as not: the kube source allows them.
                let checked = match &source {
                    Source::Kube(_) => crate::kube::service::validate_node_endpoint(&raw),
                    _ => validate(&raw).map(|ep| ep.to_string()),
                };
                let ep = checked.map_err(|e| {
                    error(format!(
                        "discover_port: {what} gave the endpoint '{raw}', which is not valid: {e}; refusing to use it"
                    ))
                })?;
                tracing::info!(
                    primitive = "discover_port", attempt, elapsed_ms = elapsed.as_millis() as u64,
                    internal_port = port, endpoint = %ep, outcome = "found",
                    "resolved internal port {port} to {ep} after {attempt} attempt(s) in {}", fmt_secs(elapsed)
                );
                return Ok(ep.to_string());
            }
            Attempt::Found(Found::Pending(seen)) | Attempt::Transient(seen) => {
                tracing::info!(
                    primitive = "discover_port", attempt, elapsed_ms = elapsed.as_millis() as u64,
                    internal_port = port, seen = %seen, outcome = "waiting",
                    "attempt {attempt} ({}): {seen}", fmt_secs(elapsed)
                );
                last_seen = seen;
            }
            Attempt::Fatal(e) => {
                return Err(error(format!(
                "discover_port: {e} (attempt {attempt}, {}; not retried: retrying cannot fix this)",
                fmt_secs(elapsed)
            )))
            }
        }
        let remaining = sched.max_elapsed.saturating_sub(start.elapsed());
        if remaining.is_zero() {
            break;
        }
        let delay = delays.next().unwrap_or(sched.max_interval);
        ctx.wait(
            delay.min(remaining),
            Some(&format!("waiting for the external port of {port} ({what})")),
        )?;
    }
    let elapsed = start.elapsed();
    tracing::error!(
        primitive = "discover_port",
        attempts = attempt,
        elapsed_ms = elapsed.as_millis() as u64,
        internal_port = port,
        outcome = "gave_up",
        "no external port for {port}"
    );
    Err(error(format!(
        "discover_port: no external port for internal port {port} from {what} after {attempt} attempt(s) in {} (bound max_elapsed = {}); last seen: {last_seen}",
        fmt_secs(elapsed),
        fmt_secs(sched.max_elapsed)
    )))
}

/// Most of a `url` source's answer that is read.
const URL_BODY_CAP: usize = crate::net::DEFAULT_BODY_CAP;

const DOC: &str = "\
/// Poll a source until the external `host:port` that forwards
/// `internal_port` appears, with bounded, jittered exponential backoff.
///
/// Options: `internal_port` (required), `source` (required), `service`
/// (narrow Akash shapes to one service), `output` (the Terraform output
/// holding the endpoint), `max_elapsed` (default 75 s: a hard bound,
/// the last attempt is cut to fit), `initial_interval` (1 s), `multiplier`
/// (2), `max_interval` (15 s), `attempt_timeout` (10 s), `jitter` (true).
/// Durations are seconds or strings like \"500ms\".
///
/// Sources: `#{ akash: #{dseq, provider?, gseq?, oseq?} }` (lease status),
/// `#{ command: [argv...] }` (an allow-listed program printing JSON),
/// `#{ file: \"path\" }`, `#{ url: \"http://...\" }`,
/// `#{ kube: #{namespace, service | selector, port?, node?, context?} }` (a
/// Service's node port, the Service named or the one `selector` (labels)
/// singles out with the port, `port` defaulting to `internal_port`; host `node`, else the
/// kube context's API server host; an IP address is accepted here), or a closure returning
/// `()` while not ready and `\"host:port\"` or `#{host, port}` when ready.
/// JSON shapes: Akash lease status, Akash Console deployment, Terraform
/// `output -json`, `\"host:port\"`, `{host, port}`. An unknown shape or
/// malformed JSON fails at once; 5xx, timeouts and non-zero exits are
/// retried. Logs every attempt. The endpoint is checked with
/// `validate_endpoint`; a bogus one is an error, never returned.
///
/// Bounds: a `url` answer is read up to 4 MiB (a longer one, or a
/// `Content-Length` over it, fails at once naming the cap) within
/// `attempt_timeout`; a `file` must be a regular file of at most 16 MiB;
/// a `command`'s output is captured like `exec`'s (head and tail kept).
///
/// ```rhai
/// let ep = discover_port(#{
///     internal_port: 7072,
///     source: #{ akash: #{ dseq: args.dseq } },
/// });
/// ```";

/// Register `discover_port`.
pub fn register(engine: &mut Engine, ctx: &Arc<Ctx>) {
    let c = ctx.clone();
    FuncRegistration::new("discover_port")
        .with_params_info(["opts: Map", "String"])
        .with_comments([DOC])
        .register_into_engine(engine, move |ncc: NativeCallContext, opts: Map| {
            discover(&ncc, &c, &opts)
        });
}
