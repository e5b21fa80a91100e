//! `verify(gates)`: the gates' measurements taken on their schedules,
//! judged, and reported (stderr, the job summary, the ledger record).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rhai::{Array, Dynamic, EvalAltResult, Map, NativeCallContext};

use super::gate::{gates_of, Gate, Source};
use crate::context::{Ctx, RhaiResult};
use crate::declare::{opt, Spec};
use crate::gates::{overall, Measured, Status, Tally};
use crate::opts::Opts;

#[rustfmt::skip]
pub(super) static VERIFY: Spec = Spec {
    name: "verify",
    params: &["gates: Array"],
    returns: "Map",
    doc: include_str!("../docs/verify.md"),
    opts: &[opt("max_elapsed", "duration", "the longest gate's schedule", "bound on the whole verification; gates not done by then are inconclusive")],
};

/// Whether a script error is the run (or the phase) being stopped.
pub(super) fn is_stop(e: &EvalAltResult) -> bool {
    matches!(e.unwrap_inner(), EvalAltResult::ErrorTerminated(..))
}

/// The message of an error a measurement threw.
pub(super) fn thrown(e: &EvalAltResult) -> String {
    crate::report::error_text(e.unwrap_inner())
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
pub(super) fn report_map(status: Status, tallies: &[Tally]) -> Map {
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

pub(super) fn verify_gates(
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

pub(super) fn verify(
    ncc: &NativeCallContext,
    ctx: &Arc<Ctx>,
    gates: Array,
    o: &Opts,
) -> RhaiResult<Map> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::gates::test_engine as engine;

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
}
