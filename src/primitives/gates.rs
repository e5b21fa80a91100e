//! Health gates: `gate(name, opts)` describes a check, `verify(gates)`
//! runs checks, `guarded(opts)` deploys, verifies and rolls back, the
//! rollback's time reserved up front. `prometheus_query` and `http_probe`
//! are the single measurements the gates take, primitives of their own so
//! `runbook test` stubs them like any other.
//!
//! `verify` and `guarded` call the script back (closures, and the two
//! measuring primitives by name), so under `runbook test` they run in the
//! test's engine, where those calls reach the stubs ([`STRUCTURAL`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rhai::{Array, Dynamic, Engine, EvalAltResult, FnPtr, ImmutableString, Map, NativeCallContext};

use crate::context::{error, terminated, Ctx, RhaiResult};
use crate::declare::{opt, Opt, Spec};
use crate::error::{fmt_secs, usage_value, PrimError};
use crate::gates::prometheus::{self, Answer};
use crate::gates::{
    overall, Cond, Judge, Limits, Measured, OnEmpty, Outcome, Schedule, Status, Tally,
};
use crate::opts::Opts;

/// The primitives that run in the test's own engine under `runbook test`
/// (never forwarded to the real engine, whose primitives are not stubbed).
pub const STRUCTURAL: &[&str] = &["gate", "verify", "guarded"];

// ---- gate ----------------------------------------------------------------

#[rustfmt::skip]
const GATE_OPTS: &[Opt] = &[
    opt("prometheus", "map", "", "`#{ url, query }`: an instant query's single value"),
    opt("http", "map", "", "`#{ url, status, json }`: a GET's status, or a JSON pointer's value in its answer"),
    opt("check", "closure", "", "`|| …` returning a number or a bool (`()` is empty)"),
    opt("success", "string", "", "a measurement is good when this holds, e.g. \"value < 0.01\""),
    opt("failure", "string", "", "a measurement is bad when this holds, e.g. \"value >= 0.05\""),
    opt("on_empty", "string", "\"inconclusive\"", "an empty result, NaN or no data: \"inconclusive\", \"failed\" or \"passed\""),
    opt("initial_delay", "duration", "0s", "wait before the first measurement"),
    opt("interval", "duration", "10s", "between measurements"),
    opt("count", "int", "3", "how many measurements"),
    opt("timeout", "duration", "10s", "bound on one measurement"),
    opt("failure_limit", "int", "0", "failed measurements tolerated"),
    opt("inconclusive_limit", "int", "0", "inconclusive measurements tolerated"),
    opt("error_limit", "int", "2", "measurements that could not be taken tolerated"),
];

#[rustfmt::skip]
static GATE: Spec = Spec { name: "gate", params: &["name: String"], returns: "Map", doc: include_str!("docs/gate.md"), opts: GATE_OPTS };

/// What a gate measures.
#[derive(Clone)]
enum Source {
    Prometheus {
        url: String,
        query: String,
    },
    Http {
        url: String,
        expect: Option<Vec<u16>>,
        json: Option<String>,
    },
    Check(FnPtr),
}

/// A gate, read and checked.
#[derive(Clone)]
struct Gate {
    name: String,
    source: Source,
    judge: Judge,
    schedule: Schedule,
    limits: Limits,
}

impl Gate {
    fn what(&self) -> String {
        match &self.source {
            Source::Prometheus { url, query } => format!("query `{query}` on {url}"),
            Source::Http {
                url, json: Some(p), ..
            } => format!("GET {url} (JSON {p})"),
            Source::Http { url, .. } => format!("GET {url}"),
            Source::Check(f) => format!("check closure {}", f.fn_name()),
        }
    }
}

fn usage(msg: String) -> Box<EvalAltResult> {
    EvalAltResult::ErrorRuntime(
        usage_value(crate::redact::redact(&msg).into_owned()),
        rhai::Position::NONE,
    )
    .into()
}

fn limit(o: &Opts, key: &str, default: u32) -> RhaiResult<u32> {
    match o.int(key)? {
        None => Ok(default),
        Some(n) => u32::try_from(n).map_err(|_| usage(format!("{key} is {n}; give 0 or more"))),
    }
}

fn cond(name: &str, o: &Opts, key: &str) -> RhaiResult<Option<Cond>> {
    o.str(key)?
        .map(|s| Cond::parse(&s).map_err(|e| usage(format!("gate '{name}': {key} \"{s}\": {e}"))))
        .transpose()
}

fn http_url(name: &str, url: &str) -> RhaiResult<()> {
    if !(url.starts_with("http://") || url.starts_with("https://"))
        || reqwest::Url::parse(url).is_err()
    {
        return Err(usage(format!(
            "gate '{name}': '{url}' is not an http(s) URL; give the whole URL, e.g. \"http://127.0.0.1:9090\""
        )));
    }
    Ok(())
}

/// Read a gate from its name and options (`gate()` and `verify()` both).
fn read_gate(name: &str, o: &Opts) -> RhaiResult<Gate> {
    if name.trim().is_empty() {
        return Err(usage(
            "a gate needs a name (it is what a failure names)".into(),
        ));
    }
    let prom = o.map("prometheus")?;
    let http = o.map("http")?;
    let check = o.raw("check").cloned();
    let mut success = cond(name, o, "success")?;
    let failure = cond(name, o, "failure")?;
    let source = match (prom, http, check) {
        (Some(p), None, None) => {
            let p = Opts::new("gate prometheus source", &p, &["url", "query"])?;
            let url = p.req_str("url")?;
            let query = p.req_str("query")?;
            prometheus::query_url(&url, &query).map_err(|e| usage(format!("gate '{name}': {}", e.msg)))?;
            if success.is_none() && failure.is_none() {
                return Err(usage(format!(
                    "gate '{name}': a Prometheus value needs `success` or `failure` (e.g. success: \"value < 0.01\")"
                )));
            }
            Source::Prometheus { url: url.trim_end_matches('/').to_string(), query }
        }
        (None, Some(h), None) => {
            let h = Opts::new("gate http source", &h, &["url", "status", "json"])?;
            let url = h.req_str("url")?;
            http_url(name, &url)?;
            let expect = match h.raw("status") {
                None => None,
                Some(v) => {
                    let list: Array = if v.is_array() { v.clone().cast() } else { vec![v.clone()] };
                    let codes = list
                        .iter()
                        .map(|x| match x.as_int() {
                            Ok(i) if (100..=599).contains(&i) => Ok(i as u16),
                            _ => Err(usage(format!("gate '{name}': status {x} is not an HTTP status (100–599)"))),
                        })
                        .collect::<RhaiResult<Vec<u16>>>()?;
                    Some(codes)
                }
            };
            let json = h.str("json")?;
            if let Some(p) = &json {
                if !(p.is_empty() || p.starts_with('/')) {
                    return Err(usage(format!(
                        "gate '{name}': json \"{p}\" is not a JSON pointer; write it like \"/status/errors\""
                    )));
                }
            } else if success.is_none() && failure.is_none() {
                // The status alone: the expected one(s), else any 2xx.
                let text = match &expect {
                    Some(codes) => codes.iter().map(|c| format!("value == {c}")).collect::<Vec<_>>().join(" || "),
                    None => "value >= 200 && value < 300".into(),
                };
                success = Some(Cond::parse(&text).map_err(error)?);
            }
            Source::Http { url, expect, json }
        }
        (None, None, Some(f)) => match f.try_cast::<FnPtr>() {
            Some(f) => Source::Check(f),
            None => return Err(usage(format!("gate '{name}': check wants a closure `|| …`"))),
        },
        (None, None, None) => {
            return Err(usage(format!(
                "gate '{name}' has no source; give one of prometheus: #{{ url, query }}, http: #{{ url }}, check: || …"
            )))
        }
        _ => return Err(usage(format!("gate '{name}' has more than one source; give one of prometheus, http, check"))),
    };
    let on_empty = match o.str("on_empty")? {
        None => OnEmpty::Inconclusive,
        Some(s) => OnEmpty::parse(&s).map_err(|e| usage(format!("gate '{name}': {e}")))?,
    };
    let count = match o.int("count")? {
        None => 3,
        Some(n) if (1..=10_000).contains(&n) => n as u32,
        Some(n) => {
            return Err(usage(format!(
                "gate '{name}': count is {n}; give 1 to 10000"
            )))
        }
    };
    let schedule = Schedule {
        initial_delay: o.duration("initial_delay")?.unwrap_or_default(),
        interval: o.duration("interval")?.unwrap_or(Duration::from_secs(10)),
        count,
        timeout: o.duration("timeout")?.unwrap_or(Duration::from_secs(10)),
    };
    if schedule.timeout.is_zero() {
        return Err(usage(format!("gate '{name}': timeout must be more than 0")));
    }
    let d = Limits::default();
    let limits = Limits {
        failure: limit(o, "failure_limit", d.failure)?,
        inconclusive: limit(o, "inconclusive_limit", d.inconclusive)?,
        error: limit(o, "error_limit", d.error)?,
    };
    Ok(Gate {
        name: name.to_string(),
        source,
        judge: Judge {
            success,
            failure,
            on_empty,
        },
        schedule,
        limits,
    })
}

/// A gate as the script holds it: its options and its name.
fn gate_map(name: &str, o: &Map) -> Map {
    let mut m = o.clone();
    m.insert("name".into(), Dynamic::from(name.to_string()));
    m
}

/// Read a gate back from the map `gate()` returned.
fn gate_of(v: &Dynamic) -> RhaiResult<Gate> {
    let Some(m) = v.read_lock::<Map>().map(|m| m.clone()) else {
        return Err(usage(format!(
            "a gate is what gate(name, opts) returns, got {} ({v})",
            v.type_name()
        )));
    };
    let name = m.get("name").map(|n| n.to_string()).unwrap_or_default();
    let mut rest = m.clone();
    rest.remove("name");
    let o = GATE.read(&rest)?;
    read_gate(&name, &o)
}

fn gates_of(v: &Array) -> RhaiResult<Vec<Gate>> {
    if v.is_empty() {
        return Err(usage("verify: no gates; give [gate(...), …]".into()));
    }
    let gates = v.iter().map(gate_of).collect::<RhaiResult<Vec<Gate>>>()?;
    let mut names: Vec<&str> = gates.iter().map(|g| g.name.as_str()).collect();
    names.sort();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(usage(format!(
            "two gates are named '{}'; each failure names its gate, so names must differ",
            w[0]
        )));
    }
    Ok(gates)
}

// ---- single measurements ---------------------------------------------------

#[rustfmt::skip]
static PROM_QUERY: Spec = Spec {
    name: "prometheus_query",
    params: &["url: String", "query: String"],
    returns: "float or ()",
    doc: include_str!("docs/prometheus_query.md"),
    opts: &[opt("timeout", "duration", "10s", "bound on the query")],
};

#[rustfmt::skip]
static HTTP_PROBE: Spec = Spec {
    name: "http_probe",
    params: &["url: String"],
    returns: "Map",
    doc: include_str!("docs/http_probe.md"),
    opts: &[
        opt("json", "string", "", "a JSON pointer (\"/errors/rate\") whose value to return"),
        opt("timeout", "duration", "10s", "bound on the request"),
    ],
};

fn prom_query(ctx: &Arc<Ctx>, url: &str, query: &str, o: &Opts) -> RhaiResult<Dynamic> {
    let timeout = o.duration("timeout")?.unwrap_or(Duration::from_secs(10));
    let (c, u, q) = (ctx.clone(), url.to_string(), query.to_string());
    let answer = ctx.block_on(
        "prometheus_query",
        timeout + Duration::from_secs(1),
        async move { prometheus::instant(&c.http, &u, &q, timeout).await },
    )?;
    tracing::debug!(primitive = "prometheus_query", url, query, answer = ?answer, "prometheus_query");
    Ok(match answer {
        Answer::Value(v) => Dynamic::from_float(v),
        Answer::Empty(_) => Dynamic::UNIT,
    })
}

async fn probe(
    ctx: &Ctx,
    url: &str,
    pointer: Option<&str>,
    timeout: Duration,
) -> Result<Map, PrimError> {
    let resp = ctx
        .http
        .get(url)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| PrimError::transient(format!("GET {url}: {}", crate::net::http_error(&e))))?;
    let status = resp.status().as_u16();
    let mut m = Map::new();
    m.insert("status".into(), Dynamic::from(i64::from(status)));
    let mut value = Dynamic::UNIT;
    if let Some(p) = pointer {
        let body = crate::net::read_body(resp, 1 << 20, "http_probe")
            .await
            .map_err(|e| PrimError::transient(e.to_string()))?;
        if let Ok(j) = serde_json::from_slice::<serde_json::Value>(&body) {
            value = j
                .pointer(p)
                .map(crate::value::to_dynamic)
                .unwrap_or(Dynamic::UNIT);
        }
    }
    m.insert("value".into(), value);
    Ok(m)
}

fn http_probe(ctx: &Arc<Ctx>, url: &str, o: &Opts) -> RhaiResult<Map> {
    http_url("http_probe", url)?;
    let timeout = o.duration("timeout")?.unwrap_or(Duration::from_secs(10));
    let json = o.str("json")?;
    let (c, u) = (ctx.clone(), url.to_string());
    ctx.block_on("http_probe", timeout + Duration::from_secs(1), async move {
        probe(&c, &u, json.as_deref(), timeout).await
    })
}

// ---- verify ----------------------------------------------------------------

#[rustfmt::skip]
static VERIFY: Spec = Spec {
    name: "verify",
    params: &["gates: Array"],
    returns: "Map",
    doc: include_str!("docs/verify.md"),
    opts: &[opt("max_elapsed", "duration", "the longest gate's schedule", "bound on the whole verification; gates not done by then are inconclusive")],
};

/// Whether a script error is the run (or the phase) being stopped.
fn is_stop(e: &EvalAltResult) -> bool {
    matches!(e.unwrap_inner(), EvalAltResult::ErrorTerminated(..))
}

/// The message of an error a measurement threw.
fn thrown(e: &EvalAltResult) -> String {
    crate::testing::proxy::error_text(e.unwrap_inner())
}

/// A number, a bool or nothing, as a measurement.
fn measured_of(v: &Dynamic, what: &str) -> Measured {
    if v.is_unit() {
        Measured::Empty(format!("{what} returned nothing"))
    } else if let Ok(f) = v.as_float() {
        Measured::Value(f)
    } else if let Ok(i) = v.as_int() {
        Measured::Value(i as f64)
    } else if let Ok(b) = v.as_bool() {
        Measured::Bool(b)
    } else if v.is_string() {
        match v.to_string().trim().parse::<f64>() {
            Ok(f) => Measured::Value(f),
            Err(_) => Measured::Error(format!("{what} returned \"{v}\", not a number")),
        }
    } else {
        Measured::Error(format!(
            "{what} returned {}, not a number or a bool",
            v.type_name()
        ))
    }
}

/// One measurement of `g`: through the script's own primitives by name
/// (stubbed under `runbook test`), or its closure. `Err` only when the run
/// is being stopped.
fn measure(ncc: &NativeCallContext, g: &Gate, timeout: Duration) -> RhaiResult<Measured> {
    let secs = Dynamic::from_float(timeout.as_secs_f64());
    let mut opts = Map::new();
    opts.insert("timeout".into(), secs);
    let r: RhaiResult<Measured> = match &g.source {
        Source::Prometheus { url, query } => ncc
            .call_native_fn::<Dynamic>("prometheus_query", (url.clone(), query.clone(), opts))
            .map(|v| measured_of(&v, "the query")),
        Source::Http { url, expect, json } => {
            if let Some(p) = json {
                opts.insert("json".into(), Dynamic::from(p.clone()));
            }
            ncc.call_native_fn::<Dynamic>("http_probe", (url.clone(), opts))
                .map(|v| {
                    let m = v.read_lock::<Map>().map(|m| m.clone()).unwrap_or_default();
                    let status = m.get("status").and_then(|s| s.as_int().ok()).unwrap_or(0);
                    let value = m.get("value").cloned().unwrap_or(Dynamic::UNIT);
                    match json {
                        None => Measured::Value(status as f64),
                        Some(_) => {
                            let ok = match expect {
                                Some(codes) => codes.iter().any(|c| i64::from(*c) == status),
                                None => (200..300).contains(&status),
                            };
                            if ok {
                                measured_of(&value, "the JSON pointer")
                            } else {
                                Measured::Bad(status as f64, format!("answered {status}"))
                            }
                        }
                    }
                })
        }
        Source::Check(f) => f
            .call_within_context::<Dynamic>(ncc, ())
            .map(|v| measured_of(&v, "the closure")),
    };
    match r {
        Ok(m) => Ok(m),
        Err(e) if is_stop(&e) => Err(e),
        Err(e) => Ok(Measured::Error(thrown(&e))),
    }
}

/// Sleep through the script's `sleep` (instant under `runbook test`).
fn pause(ncc: &NativeCallContext, d: Duration) -> RhaiResult<()> {
    if d.is_zero() {
        return Ok(());
    }
    ncc.call_native_fn::<()>("sleep", (Dynamic::from_float(d.as_secs_f64()),))
}

/// Run the gates until each is done or `deadline`; the first failed gate
/// ends the others (a rollback should not wait for them). `Err` only when
/// the run or the phase is stopped.
fn run_gates(
    ncc: &NativeCallContext,
    ctx: &Ctx,
    gates: &[Gate],
    deadline: Instant,
) -> RhaiResult<Vec<Tally>> {
    let start = Instant::now();
    let planned: u32 = gates.iter().map(|g| g.schedule.count).sum();
    let line = crate::progress::Line::start(
        ctx.settings.format,
        &format!("verifying {} gate(s): first measurement", gates.len()),
        Some(deadline.saturating_duration_since(start)),
    );
    let mut taken = 0u32;
    let mut tallies: Vec<Tally> = gates
        .iter()
        .map(|g| {
            Tally::new(
                &g.name,
                &g.what(),
                g.judge.clone(),
                g.limits,
                g.schedule.count,
            )
        })
        .collect();
    // Each gate's next measurement, as an offset from the start.
    let mut due: Vec<Duration> = gates.iter().map(|g| g.schedule.initial_delay).collect();
    // Bounded: every turn takes one measurement of a gate not done, and
    // each gate takes at most `count`.
    while let Some(i) = (0..gates.len())
        .filter(|&i| !tallies[i].done())
        .min_by_key(|&i| due[i])
    {
        let at = start + due[i];
        if at >= deadline {
            for t in tallies.iter_mut() {
                t.cut("the verification's time ran out");
            }
            break;
        }
        pause(ncc, at.saturating_duration_since(Instant::now()))?;
        let left = deadline.saturating_duration_since(Instant::now());
        let g = &gates[i];
        let m = measure(
            ncc,
            g,
            g.schedule.timeout.min(left.max(Duration::from_millis(1))),
        )?;
        tracing::info!(gate = %g.name, value = %m.show(), "gate '{}': {} ({})", g.name, m.show(), tallies[i].what);
        taken += 1;
        line.say(&format!(
            "verifying {} gate(s): {taken} of {planned} measurements, last gate '{}': {}",
            gates.len(),
            g.name,
            m.show()
        ));
        tallies[i].record(m);
        due[i] += g.schedule.interval;
        if tallies[i].status == Status::Failed {
            let name = g.name.clone();
            for t in tallies.iter_mut() {
                t.cut(&format!("stopped: gate '{name}' failed"));
            }
            break;
        }
    }
    Ok(tallies)
}

/// The result map: `#{ status, gates: [#{ name, status, values, reason }] }`.
fn report_map(status: Status, tallies: &[Tally]) -> Map {
    let gates: Array = tallies
        .iter()
        .map(|t| {
            let values: Array = t
                .measured
                .iter()
                .map(|m| match m {
                    Measured::Value(v) | Measured::Bad(v, _) => Dynamic::from_float(*v),
                    Measured::Bool(b) => Dynamic::from(*b),
                    Measured::Empty(_) => Dynamic::UNIT,
                    Measured::Error(e) => Dynamic::from(format!("error: {e}")),
                })
                .collect();
            let mut m = Map::new();
            m.insert("name".into(), Dynamic::from(t.name.clone()));
            m.insert("status".into(), Dynamic::from(t.status.as_str()));
            m.insert("values".into(), Dynamic::from(values));
            m.insert("reason".into(), Dynamic::from(t.reason.clone()));
            m.insert("source".into(), Dynamic::from(t.what.clone()));
            Dynamic::from(m)
        })
        .collect();
    let mut m = Map::new();
    m.insert("status".into(), Dynamic::from(status.as_str()));
    m.insert("gates".into(), Dynamic::from(gates));
    m
}

/// Say what did not pass: stderr, the job summary, the ledger record.
fn report(ctx: &Ctx, status: Status, tallies: &[Tally]) {
    let mut md = format!("### Health gates: {}\n\n| gate | status | source | last values | why |\n|---|---|---|---|---|\n", status.as_str());
    let mut notes = Vec::new();
    for t in tallies {
        match t.status {
            Status::Passed => {
                tracing::info!(gate = %t.name, "gate '{}' passed: {}", t.name, t.reason)
            }
            Status::Failed => tracing::error!(gate = %t.name, "{}", t.message()),
            _ => tracing::warn!(gate = %t.name, "{}", t.message()),
        }
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            t.name,
            t.status.as_str(),
            t.what.replace('|', "\\|"),
            t.last_values(),
            t.reason.replace('|', "\\|")
        ));
        notes.push(serde_json::json!({
            "name": t.name, "status": t.status.as_str(), "source": t.what,
            "last_values": t.last_values(), "reason": t.reason,
        }));
    }
    ctx.summaries
        .lock()
        .push(crate::redact::redact(&md).into_owned());
    ctx.ledger_notes
        .lock()
        .insert("gates".into(), serde_json::Value::Array(notes));
}

fn verify_gates(
    ncc: &NativeCallContext,
    ctx: &Ctx,
    gates: &[Gate],
    deadline: Instant,
) -> RhaiResult<(Status, Vec<Tally>)> {
    let tallies = run_gates(ncc, ctx, gates, deadline)?;
    let status = overall(&tallies);
    report(ctx, status, &tallies);
    Ok((status, tallies))
}

fn verify(ncc: &NativeCallContext, ctx: &Arc<Ctx>, gates: Array, o: &Opts) -> RhaiResult<Map> {
    let gates = gates_of(&gates)?;
    let longest = gates
        .iter()
        .map(|g| g.schedule.span())
        .max()
        .unwrap_or_default();
    let bound = o
        .duration("max_elapsed")?
        .unwrap_or(longest + Duration::from_secs(1));
    let (status, tallies) = verify_gates(ncc, ctx, &gates, Instant::now() + bound)?;
    Ok(report_map(status, &tallies))
}

// ---- guarded ---------------------------------------------------------------

#[rustfmt::skip]
static GUARDED: Spec = Spec {
    name: "guarded",
    params: &[],
    returns: "Map",
    doc: include_str!("docs/guarded.md"),
    opts: &[
        opt("deploy", "closure", "", "required: `|| …` that deploys the new version"),
        opt("gates", "[gate]", "", "required: the gates to verify after the deploy"),
        opt("rollback", "closure", "", "required: `|| …` that puts the previous version back"),
        opt("budget", "duration", "30m", "deploy + verification + rollback must fit in it (and in --timeout)"),
        opt("rollback_reserve", "duration", "5m", "time kept for the rollback, whatever the deploy used"),
        opt("min_deploy", "duration", "10s", "refuse to start when less than this is left for deploy + verification"),
        opt("on_inconclusive", "string", "\"hold\"", "\"hold\" (keep, mark unverified, exit 5), \"rollback\" or \"accept\""),
    ],
};

/// A timer that stops the current phase (its token, and child processes)
/// at `at`, and says it did.
struct PhaseTimer {
    fired: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl PhaseTimer {
    fn start(ctx: &Arc<Ctx>, at: Instant) -> PhaseTimer {
        let fired = Arc::new(AtomicBool::new(false));
        let (f, tok, c) = (fired.clone(), ctx.token(), ctx.clone());
        let task = ctx.rt.spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            f.store(true, Ordering::SeqCst);
            tok.cancel();
            c.kill_children();
        });
        PhaseTimer { fired, task }
    }

    /// Stop the timer: whether it had fired.
    fn stop(self) -> bool {
        self.task.abort();
        self.fired.load(Ordering::SeqCst)
    }
}

/// Why the deploy phase did not pass.
enum Verdict {
    Passed(Map),
    Inconclusive(String, Map),
    Failed(String, Map),
}

fn call0(ncc: &NativeCallContext, f: &FnPtr) -> RhaiResult<Dynamic> {
    f.call_within_context::<Dynamic>(ncc, ())
}

fn guarded(ncc: &NativeCallContext, ctx: &Arc<Ctx>, o: &Opts) -> RhaiResult<Map> {
    let closure = |key: &str| -> RhaiResult<FnPtr> {
        o.raw(key)
            .and_then(|v| v.clone().try_cast::<FnPtr>())
            .ok_or_else(|| usage(format!("guarded: `{key}` is required: a closure `|| …`")))
    };
    let deploy = closure("deploy")?;
    let rollback = closure("rollback")?;
    let gates = gates_of(
        &o.array("gates")?
            .ok_or_else(|| usage("guarded: `gates` is required: [gate(...), …]".into()))?,
    )?;
    let budget = o
        .duration("budget")?
        .unwrap_or(Duration::from_secs(30 * 60));
    let reserve = o
        .duration("rollback_reserve")?
        .unwrap_or(Duration::from_secs(5 * 60));
    let min_deploy = o.duration("min_deploy")?.unwrap_or(Duration::from_secs(10));
    let on_inconclusive = o.str("on_inconclusive")?.unwrap_or_else(|| "hold".into());
    if !["hold", "rollback", "accept"].contains(&on_inconclusive.as_str()) {
        return Err(usage(format!(
            "guarded: on_inconclusive is \"{on_inconclusive}\"; give \"hold\", \"rollback\" or \"accept\""
        )));
    }
    if reserve.is_zero() {
        return Err(usage(
            "guarded: rollback_reserve must be more than 0: the rollback needs time of its own"
                .into(),
        ));
    }
    // The rollback's time is taken out first: deploy and verification end
    // by (the budget, or the run's deadline, if sooner) minus the reserve.
    let now = Instant::now();
    let mut end = now + budget;
    let mut bound_by = format!("budget {}", fmt_secs(budget));
    if let Some(d) = ctx.deadline().filter(|d| *d < end) {
        end = d;
        bound_by = "the run's --timeout".into();
    }
    let left = end.saturating_duration_since(now);
    if left < reserve + min_deploy {
        return Err(usage(format!(
            "guarded: {} left ({bound_by}) cannot hold the rollback reserve of {} plus min_deploy {}; \
             nothing was changed. Raise the budget or --timeout, or lower rollback_reserve",
            fmt_secs(left),
            fmt_secs(reserve),
            fmt_secs(min_deploy)
        )));
    }
    let phase_end = end - reserve;
    if ctx.dry_run() {
        let v = call0(ncc, &deploy)?;
        tracing::info!(
            "dry run: would verify {} gate(s) by {} and roll back on failure",
            gates.len(),
            fmt_secs(phase_end - now)
        );
        let mut m = Map::new();
        m.insert("status".into(), Dynamic::from("planned"));
        m.insert("deploy".into(), v);
        m.insert("gates".into(), Dynamic::from(Array::new()));
        return Ok(m);
    }

    ctx.shield.arm(reserve);
    let timer = PhaseTimer::start(ctx, phase_end);
    let verdict = deploy_and_verify(ncc, ctx, &deploy, &gates, phase_end);
    let phase_cut = timer.stop();
    let verdict = match verdict {
        Ok(v) => v,
        Err(e) if is_stop(&e) => {
            let why = match ctx.cancel_reason() {
                Some(crate::context::CancelReason::Signal(s)) => format!("stopped by {s}"),
                Some(crate::context::CancelReason::Timeout(_)) => {
                    "stopped by the run's deadline".into()
                }
                None if phase_cut => format!(
                    "deploy and verification did not finish within {} (budget − rollback_reserve)",
                    fmt_secs(phase_end.saturating_duration_since(now))
                ),
                None => "stopped".into(),
            };
            Verdict::Failed(why, Map::new())
        }
        Err(e) => Verdict::Failed(format!("the deploy failed: {}", thrown(&e)), Map::new()),
    };
    let (why, mut result, held) = match verdict {
        Verdict::Passed(m) => {
            ctx.shield.disarm();
            ctx.shield.settle(Outcome::Ok);
            return Ok(m);
        }
        Verdict::Inconclusive(_, m) if on_inconclusive == "accept" => {
            ctx.shield.disarm();
            tracing::warn!(
                "guarded: the gates were inconclusive; accepted (on_inconclusive: \"accept\")"
            );
            ctx.shield.settle(Outcome::Ok);
            return Ok(m);
        }
        Verdict::Inconclusive(why, m) if on_inconclusive == "hold" => (why, m, true),
        Verdict::Inconclusive(why, m) | Verdict::Failed(why, m) => (why, m, false),
    };
    if held {
        ctx.shield.disarm();
        let msg = format!(
            "{why}; the new version is held, marked unverified (on_inconclusive: \"hold\")"
        );
        ctx.shield.settle(Outcome::Unverified(msg.clone()));
        note(ctx, "unverified", &msg);
        return Err(error(msg));
    }
    let outcome = roll_back(ncc, ctx, &rollback, reserve, &why);
    ctx.shield.disarm();
    result.insert("status".into(), Dynamic::from("failed"));
    let (msg, o) = match outcome {
        Ok(took) => {
            let msg = format!("{why}; rolled back in {}", fmt_secs(took));
            (msg.clone(), Outcome::RolledBack(msg))
        }
        Err(rb) => {
            let msg = format!("{why}; AND THE ROLLBACK FAILED: {rb}");
            (msg.clone(), Outcome::RollbackFailed(msg))
        }
    };
    let ledger = o.ledger_result();
    ctx.shield.settle(o);
    note(ctx, ledger, &msg);
    if ctx.cancel_reason().is_some() {
        // The run is stopping: nothing after the rollback runs.
        tracing::error!("guarded: {msg}");
        ctx.token().cancel();
        return Err(terminated());
    }
    Err(error(msg))
}

/// The guarded outcome in the ledger record.
fn note(ctx: &Ctx, result: &str, msg: &str) {
    ctx.ledger_notes.lock().insert(
        "guarded".into(),
        serde_json::json!({ "result": result, "reason": crate::redact::redact(msg) }),
    );
}

fn deploy_and_verify(
    ncc: &NativeCallContext,
    ctx: &Arc<Ctx>,
    deploy: &FnPtr,
    gates: &[Gate],
    phase_end: Instant,
) -> RhaiResult<Verdict> {
    let value = call0(ncc, deploy)?;
    tracing::info!("guarded: deployed; verifying {} gate(s)", gates.len());
    let (status, tallies) = verify_gates(ncc, ctx, gates, phase_end)?;
    let mut m = report_map(status, &tallies);
    m.insert("deploy".into(), value);
    let first_bad = |s: Status| tallies.iter().find(|t| t.status == s).map(Tally::message);
    Ok(match status {
        Status::Passed => Verdict::Passed(m),
        Status::Failed => Verdict::Failed(first_bad(Status::Failed).unwrap_or_default(), m),
        _ => Verdict::Inconclusive(
            first_bad(Status::Inconclusive).unwrap_or_else(|| "the gates were inconclusive".into()),
            m,
        ),
    })
}

/// Run the rollback within its own reserve, on a fresh token even when
/// the run was stopped; `Ok(elapsed)` or why it failed.
fn roll_back(
    ncc: &NativeCallContext,
    ctx: &Arc<Ctx>,
    rollback: &FnPtr,
    reserve: Duration,
    why: &str,
) -> Result<Duration, String> {
    // Marked before the fresh token: a first stop from here on lets the
    // rollback run (one before it cancelled the old token, replaced now).
    ctx.shield.start_rollback();
    if !ctx.rearm() {
        return Err("a second signal stopped the run before the rollback could start".into());
    }
    tracing::error!(
        "guarded: {why}; rolling back (reserve {})",
        fmt_secs(reserve)
    );
    let start = Instant::now();
    // Written first: if the run dies during the rollback, the ledger's
    // newest record says so, and the next run on the target can tell.
    crate::ledger::record_pending(&ctx.ledger_facts(), why);
    let timer = PhaseTimer::start(ctx, start + reserve);
    let r = call0(ncc, rollback);
    let cut = timer.stop();
    let result = match r {
        Ok(_) => Ok(start.elapsed()),
        Err(_) if cut => Err(format!(
            "the rollback did not finish within its reserve of {}",
            fmt_secs(reserve)
        )),
        Err(_) if ctx.shield.is_hard() => Err("a second signal stopped the rollback".into()),
        Err(e) => Err(thrown(&e)),
    };
    if ctx.is_cancelled() && ctx.cancel_reason().is_none() {
        // Only the reserve's timer fired: the script may go on to report.
        ctx.rearm();
    }
    result
}

// ---- registration ----------------------------------------------------------

/// Register `gate`, `verify`, `guarded`, `prometheus_query`, `http_probe`.
pub fn register(engine: &mut Engine, ctx: &Arc<Ctx>) {
    register_structural(engine, ctx);
    let c = ctx.clone();
    PROM_QUERY.register2(
        engine,
        move |url: ImmutableString, query: ImmutableString, o: &Opts| {
            prom_query(&c, &url, &query, o)
        },
    );
    let c = ctx.clone();
    HTTP_PROBE.register1(engine, move |url: ImmutableString, o: &Opts| {
        http_probe(&c, &url, o)
    });
}

/// Register the [`STRUCTURAL`] primitives alone (the test engine does,
/// after its stand-ins).
pub fn register_structural(engine: &mut Engine, ctx: &Arc<Ctx>) {
    GATE.register1(engine, |name: ImmutableString, o: &Opts| {
        read_gate(&name, o)?;
        let mut m = Map::new();
        for k in GATE.keys() {
            if let Some(v) = o.raw(k) {
                m.insert(k.into(), v.clone());
            }
        }
        Ok(gate_map(&name, &m))
    });
    let c = ctx.clone();
    VERIFY.register1_with_context(engine, move |ncc, gates: Array, o: &Opts| {
        verify(ncc, &c, gates, o)
    });
    let c = ctx.clone();
    GUARDED.register_opts_with_context(engine, move |ncc, o| guarded(ncc, &c, o));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> (tokio::runtime::Runtime, Engine) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let ctx = Ctx::new(
            crate::context::Settings::new(
                std::path::Path::new("t.rhai"),
                crate::logging::LogFormat::Json,
            ),
            rt.handle().clone(),
        );
        let e = crate::primitives::engine(&ctx);
        (rt, e)
    }

    #[test]
    fn gates_are_checked_when_declared() {
        let (_rt, e) = engine();
        for (src, want) in [
            (r#"gate("", #{ check: || 1 })"#, "needs a name"),
            (r#"gate("a", #{})"#, "has no source"),
            (
                r#"gate("a", #{ check: || 1, http: #{ url: "http://x/" } })"#,
                "more than one source",
            ),
            (
                r#"gate("a", #{ prometheus: #{ url: "http://p:9090", query: "up" } })"#,
                "needs `success` or `failure`",
            ),
            (
                r#"gate("a", #{ prometheus: #{ url: "p:9090", query: "up" }, success: "value > 0" })"#,
                "not an http(s) URL",
            ),
            (
                r#"gate("a", #{ check: || 1, success: "value = 1" })"#,
                "compare with '=='",
            ),
            (
                r#"gate("a", #{ check: || 1, on_empty: "ignore" })"#,
                "on_empty is \"ignore\"",
            ),
            (r#"gate("a", #{ check: || 1, count: 0 })"#, "count is 0"),
            (
                r#"gate("a", #{ check: || 1, failure_limit: -1 })"#,
                "give 0 or more",
            ),
            (
                r#"gate("a", #{ http: #{ url: "http://x/", json: "errors" } })"#,
                "not a JSON pointer",
            ),
            (
                r#"gate("a", #{ check: || 1, succes: "value > 1" })"#,
                "unknown option 'succes'",
            ),
            (
                r#"verify([gate("a", #{ check: || 1 }), gate("a", #{ check: || 2 })])"#,
                "two gates are named 'a'",
            ),
        ] {
            let err = e.eval::<Dynamic>(src).unwrap_err().to_string();
            assert!(err.contains(want), "{src}: {err}");
        }
    }

    #[test]
    fn verify_judges_closures_and_stops_at_the_first_failed_gate() {
        let (_rt, e) = engine();
        let r: Map = e
            .eval(
                r#"
                let n = 0;
                let ok = gate("ok", #{ check: || true, interval: 0, count: 2 });
                let rate = gate("rate", #{ check: || 0.2, success: "value < 0.01", failure: "value >= 0.05", interval: 0, count: 3 });
                verify([ok, rate])
            "#,
            )
            .unwrap();
        assert_eq!(r["status"].to_string(), "failed");
        let gates = r["gates"].clone().cast::<Array>();
        let rate = gates[1].clone().cast::<Map>();
        assert_eq!(rate["status"].to_string(), "failed");
        assert!(rate["reason"]
            .to_string()
            .contains("failure_limit 0 passed"));
        let r: Map = e
            .eval(r#"verify([gate("empty", #{ check: || (), success: "value < 1", on_empty: "passed", interval: 0, count: 2 })])"#)
            .unwrap();
        assert_eq!(r["status"].to_string(), "passed");
        let r: Map = e
            .eval(r#"verify([gate("boom", #{ check: || throw "no data source", interval: 0, count: 5 })])"#)
            .unwrap();
        let g = r["gates"].clone().cast::<Array>()[0].clone().cast::<Map>();
        assert_eq!(g["status"].to_string(), "failed");
        assert!(
            g["reason"].to_string().contains("error_limit 2 passed"),
            "{g:?}"
        );
    }

    #[test]
    fn guarded_refuses_when_the_reserve_cannot_fit() {
        let (_rt, e) = engine();
        let err = e
            .eval::<Dynamic>(
                r#"guarded(#{ deploy: || 1, rollback: || 2, gates: [gate("g", #{ check: || true })], budget: 30, rollback_reserve: 25 })"#,
            )
            .unwrap_err();
        assert!(crate::report::is_usage(&err), "{err}");
        assert!(
            err.to_string()
                .contains("cannot hold the rollback reserve of 25s plus min_deploy 10s"),
            "{err}"
        );
    }

    #[test]
    fn guarded_rolls_back_on_a_failed_gate_and_not_on_a_pass() {
        let (_rt, e) = engine();
        let src = r#"
            let log = [];
            let r = ();
            try {
                guarded(#{
                    deploy: || { log.push("deploy"); "v2" },
                    rollback: || { log.push("rollback") },
                    gates: [gate("g", #{ check: || 0.5, failure: "value > 0.1", interval: 0, count: 1 })],
                    budget: 60, rollback_reserve: 5,
                });
            } catch (err) { r = err; }
            [log, r]
        "#;
        let out: Array = e.eval(src).unwrap();
        let log: Vec<String> = out[0]
            .clone()
            .cast::<Array>()
            .iter()
            .map(|v| v.to_string())
            .collect();
        assert_eq!(log, ["deploy", "rollback"]);
        assert!(out[1].to_string().contains("gate 'g' failed"), "{}", out[1]);
        assert!(out[1].to_string().contains("rolled back in"), "{}", out[1]);
    }
}
