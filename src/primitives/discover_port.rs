//! `discover_port(opts)`: poll a source with bounded, jittered exponential
//! backoff until the external port that forwards `internal_port` appears.
//! The bound is hard: the call returns or throws by `max_elapsed`, the last
//! attempt cut to fit. A found endpoint goes through `validate_endpoint`.

use std::sync::Arc;
use std::time::Duration;

use rhai::{Dynamic, Engine, FnPtr, Map, NativeCallContext};
use serde_json::Value;

use crate::akash::shapes::{self, Found};
use crate::context::{error, Ctx, RhaiResult};
use crate::declare::{Opt, Spec};
use crate::error::fmt_secs;
use crate::kube::service::Look;
use crate::net::endpoint::validate;
use crate::net::retry::{Pacer, Schedule};
use crate::opts::{string_array, Opts};
use crate::primitives::shared::{self, AKASH_SOURCE};
use crate::process::exec;
use crate::value::to_json;

/// Where to look.
#[derive(Clone, Debug)]
pub enum Source {
    /// Akash lease status of a deployment.
    Akash(crate::akash::Config, String, crate::akash::LeaseId),
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

/// One attempt's outcome.
enum Attempt {
    Found(Found),
    /// Worth another try (5xx, refused connection, non-zero exit, timeout).
    Transient(String),
    /// No point trying again (unknown shape, malformed JSON, 401/404).
    Fatal(String),
}

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
            let ao = Opts::new("discover_port akash source", &am, AKASH_SOURCE)?;
            let cfg = shared::config_from(&ao)?;
            let dseq = match am.get("dseq") {
                Some(d) if d.is_int() || d.is_string() => d.to_string(),
                _ => return Err(error("discover_port: the akash source needs `dseq`")),
            };
            crate::akash::check_dseq("discover_port", &dseq).map_err(error)?;
            Source::Akash(cfg, dseq, shared::read_lease_id(&ao)?)
        }
        ["command"] => {
            let argv = o.array("command")?.unwrap_or_default();
            Source::Command(string_array("discover_port", "command", &argv)?)
        }
        ["file"] => Source::File(o.req_str("file")?),
        ["kube"] => Source::Kube(shared::read_kube_source(&o.map("kube")?.unwrap_or_default())?),
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
    let s = Schedule {
        max_elapsed: o
            .duration("max_elapsed")?
            .unwrap_or(Duration::from_secs(75)),
        initial: o
            .duration("initial_interval")?
            .unwrap_or(Duration::from_secs(1)),
        factor: o.float("multiplier")?.map_or(2.0, |m| m as f32),
        max_interval: o
            .duration("max_interval")?
            .unwrap_or(Duration::from_secs(15)),
        attempt_timeout: o
            .duration("attempt_timeout")?
            .unwrap_or(Duration::from_secs(10)),
        jitter: o.bool("jitter")?.unwrap_or(true),
        ..Schedule::default()
    };
    if s.max_elapsed.is_zero() {
        return Err(error("discover_port: max_elapsed must be more than 0"));
    }
    if !(1.0..=10.0).contains(&s.factor) {
        return Err(error(format!(
            "discover_port: multiplier {} is outside 1–10",
            s.factor
        )));
    }
    if s.initial.is_zero() || s.attempt_timeout.is_zero() {
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
            match crate::akash::lease_status(
                &ctx.http_same_origin,
                &ctx.exec_env(),
                &cfg,
                &dseq,
                &lease,
            )
            .await
            {
                Ok(v) => match shapes::find(&v, port, svc, out) {
                    Ok(f) => Attempt::Found(f),
                    Err(e) => Attempt::Fatal(format!("{what}: {e}")),
                },
                Err(e) if e.is_transient() => Attempt::Transient(e.msg),
                Err(e) => Attempt::Fatal(e.msg),
            }
        }
        Source::Command(argv) => {
            match exec::run(&ctx.exec_env(), &argv, &exec::ExecOpts::default()).await {
                Ok(o) if o.code == 0 => json_attempt(&what, &o.stdout, port, svc, out),
                Ok(o) => Attempt::Transient(format!("{what} exited with {}: {}", o.code, o.tail())),
                Err(e) => Attempt::Fatal(e),
            }
        }
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
        Source::Url(u) => {
            match crate::net::get_text(&ctx.http, &u, URL_BODY_CAP, "discover_port").await {
                Ok(None) => Attempt::Found(Found::Pending(format!("GET {u} answered 404"))),
                Ok(Some(text)) => json_attempt(&what, &text, port, svc, out),
                Err(e) if e.is_transient() => Attempt::Transient(e.msg),
                Err(e) => Attempt::Fatal(e.msg),
            }
        }
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

/// One attempt, bounded by `budget`: a closure on the script thread, the
/// other sources on the runtime.
fn attempt_once(
    ncc: &NativeCallContext,
    ctx: &Arc<Ctx>,
    source: &Source,
    port: u16,
    service: &Option<String>,
    output: &Option<String>,
    budget: Duration,
) -> RhaiResult<Attempt> {
    if let Source::Closure(f) = source {
        return probe_closure(ncc, f, port);
    }
    let fut = probe_async(
        ctx.clone(),
        source.clone(),
        port,
        service.clone(),
        output.clone(),
    );
    Ok(ctx
        .bounded(budget, fut)?
        .unwrap_or_else(|| Attempt::Transient(format!("no answer within {}", fmt_secs(budget)))))
}

/// A found endpoint, checked: node addresses are IPs as often as not, so
/// the kube source allows them.
fn checked(source: &Source, what: &str, raw: &str) -> RhaiResult<String> {
    let checked = match source {
        Source::Kube(_) => crate::kube::service::validate_node_endpoint(raw),
        _ => validate(raw).map(|ep| ep.to_string()),
    };
    checked.map_err(|e| {
        error(format!(
            "discover_port: {what} gave the endpoint '{raw}', which is not valid: {e}; refusing to use it"
        ))
    })
}

fn discover(ncc: &NativeCallContext, ctx: &Arc<Ctx>, o: &Opts) -> RhaiResult<String> {
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
    let sched = read_schedule(o)?;
    let what = source.describe();
    let mut pacer = Pacer::start(&sched);
    let mut last_seen = String::from("nothing yet");
    while let Some((attempt, budget)) = pacer.next_attempt() {
        let result = attempt_once(ncc, ctx, &source, port, &service, &output, budget)?;
        let elapsed = pacer.elapsed();
        match result {
            Attempt::Found(Found::Endpoint(raw)) => {
                let ep = checked(&source, &what, &raw)?;
                tracing::info!(
                    primitive = "discover_port", attempt, elapsed_ms = elapsed.as_millis() as u64,
                    internal_port = port, endpoint = %ep, outcome = "found",
                    "resolved internal port {port} to {ep} after {attempt} attempt(s) in {}", fmt_secs(elapsed)
                );
                return Ok(ep);
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
        let Some(delay) = pacer.next_delay(None) else {
            break;
        };
        ctx.wait(
            delay,
            Some(&format!("waiting for the external port of {port} ({what})")),
        )?;
    }
    let (attempts, elapsed) = (pacer.attempts(), pacer.elapsed());
    tracing::error!(
        primitive = "discover_port",
        attempts,
        elapsed_ms = elapsed.as_millis() as u64,
        internal_port = port,
        outcome = "gave_up",
        "no external port for {port}"
    );
    Err(error(format!(
        "discover_port: no external port for internal port {port} from {what} after {attempts} attempt(s) in {} (bound max_elapsed = {}); last seen: {last_seen}",
        fmt_secs(elapsed),
        fmt_secs(sched.max_elapsed)
    )))
}

/// Most of a `url` source's answer that is read.
const URL_BODY_CAP: usize = crate::net::DEFAULT_BODY_CAP;

#[rustfmt::skip]
static SPEC: Spec = Spec {
    name: "discover_port",
    params: &[],
    returns: "String",
    doc: include_str!("docs/discover_port.md"),
    opts: &[
        Opt { key: "internal_port", ty: "int", default: "", help: "required: the container's port whose external port is wanted" },
        Opt { key: "source", ty: "map or closure", default: "", help: "required: where to look (see Sources)" },
        Opt { key: "service", ty: "string", default: "", help: "narrow Akash shapes to one service" },
        Opt { key: "output", ty: "string", default: "", help: "the Terraform output holding the endpoint" },
        Opt { key: "max_elapsed", ty: "duration", default: "75s", help: "hard bound on the whole call, the last attempt cut to fit" },
        Opt { key: "initial_interval", ty: "duration", default: "1s", help: "first delay between attempts" },
        Opt { key: "multiplier", ty: "number", default: "2", help: "growth of the delay (1–10)" },
        Opt { key: "max_interval", ty: "duration", default: "15s", help: "largest delay between attempts" },
        Opt { key: "attempt_timeout", ty: "duration", default: "10s", help: "bound on one attempt" },
        Opt { key: "jitter", ty: "bool", default: "true", help: "randomize delays (0–100 % more) so runners do not poll in step" },
    ],
};

/// Register `discover_port`.
pub fn register(engine: &mut Engine, ctx: &Arc<Ctx>) {
    let c = ctx.clone();
    SPEC.register_opts_with_context(engine, move |ncc, o| discover(ncc, &c, o));
}
