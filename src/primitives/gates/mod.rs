//! Health gates: `gate(name, opts)` describes a check, `verify(gates)`
//! runs checks, `guarded(opts)` deploys, verifies and rolls back, the
//! rollback's time reserved up front. `prometheus_query` and `http_probe`
//! are the single measurements the gates take, primitives of their own so
//! `runbook test` stubs them like any other.
//!
//! `verify` and `guarded` call the script back (closures, and the two
//! measuring primitives by name), so under `runbook test` they run in the
//! test's engine, where those calls reach the stubs ([`STRUCTURAL`]).
//!
//! One file per concern: `gate` reads and checks a gate's options,
//! `measure` holds the two measuring primitives, `verify` takes the
//! measurements and judges them, `guarded` runs deploy, verification and
//! rollback within a budget.

mod gate;
mod guarded;
mod measure;
mod verify;

use std::sync::Arc;

use rhai::{Array, Engine, EvalAltResult, ImmutableString, Map};

use crate::context::Ctx;
use crate::error::usage_value;
use crate::opts::Opts;

/// The primitives that run in the test's own engine under `runbook test`
/// (never forwarded to the real engine, whose primitives are not stubbed).
pub const STRUCTURAL: &[&str] = &["gate", "verify", "guarded"];

/// A usage error (exit 2), redacted: a gate's options may hold a URL with
/// credentials.
fn usage(msg: String) -> Box<EvalAltResult> {
    EvalAltResult::ErrorRuntime(
        usage_value(crate::redact::redact(&msg).into_owned()),
        rhai::Position::NONE,
    )
    .into()
}

/// Register `gate`, `verify`, `guarded`, `prometheus_query`, `http_probe`.
pub fn register(engine: &mut Engine, ctx: &Arc<Ctx>) {
    register_structural(engine, ctx);
    let c = ctx.clone();
    measure::PROM_QUERY.register2(
        engine,
        move |url: ImmutableString, query: ImmutableString, o: &Opts| {
            measure::prom_query(&c, &url, &query, o)
        },
    );
    let c = ctx.clone();
    measure::HTTP_PROBE.register1(engine, move |url: ImmutableString, o: &Opts| {
        measure::http_probe(&c, &url, o)
    });
}

/// Register the [`STRUCTURAL`] primitives alone (the test engine does,
/// after its stand-ins).
pub fn register_structural(engine: &mut Engine, ctx: &Arc<Ctx>) {
    gate::GATE.register1(engine, |name: ImmutableString, o: &Opts| {
        gate::read_gate(&name, o)?;
        let mut m = Map::new();
        for k in gate::GATE.keys() {
            if let Some(v) = o.raw(k) {
                m.insert(k.into(), v.clone());
            }
        }
        Ok(gate::gate_map(&name, &m))
    });
    let c = ctx.clone();
    verify::VERIFY.register1_with_context(engine, move |ncc, gates: Array, o: &Opts| {
        verify::verify(ncc, &c, gates, o)
    });
    let c = ctx.clone();
    guarded::GUARDED.register_opts_with_context(engine, move |ncc, o| guarded::guarded(ncc, &c, o));
}

/// A runtime and an engine with every primitive, for the parts' tests.
#[cfg(test)]
fn test_engine() -> (tokio::runtime::Runtime, Engine) {
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
