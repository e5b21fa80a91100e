//! `guarded(opts)`: deploy, verify and roll back within a budget, the
//! rollback's time reserved up front.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rhai::{Array, Dynamic, FnPtr, Map, NativeCallContext};

use super::gate::{gates_of, Gate};
use super::usage;
use super::verify::{is_stop, report_map, thrown, verify_gates};
use crate::context::{error, terminated, Ctx, RhaiResult};
use crate::declare::{opt, Spec};
use crate::error::fmt_secs;
use crate::gates::{Outcome, Status, Tally};
use crate::opts::Opts;

#[rustfmt::skip]
pub(super) static GUARDED: Spec = Spec {
    name: "guarded",
    params: &[],
    returns: "Map",
    doc: include_str!("../docs/guarded.md"),
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

pub(super) fn guarded(ncc: &NativeCallContext, ctx: &Arc<Ctx>, o: &Opts) -> RhaiResult<Map> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::gates::test_engine as engine;

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
