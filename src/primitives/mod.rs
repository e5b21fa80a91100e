//! The primitives a playbook calls: bindings only. Each file declares its
//! primitives with one options table ([`crate::declare::Spec`]), parses the
//! options, calls a domain library (`oci`, `kube`, `helm`, `akash`, `net`,
//! `process`) and shapes the result; its prose doc is a markdown file in
//! `docs/`. [`register_all`] puts them all into the engine.

pub mod akash;
pub mod cosign;
pub mod discover_port;
pub mod effects;
pub mod exec;
pub mod files;
pub mod gates;
pub mod github_io;
pub mod helm;
pub mod http_check;
pub mod kube;
pub mod lock;
pub mod registry;
pub mod settings;
pub mod shared;
pub mod validate_endpoint;

use std::sync::Arc;

use rhai::Engine;

use crate::context::Ctx;

/// The families that need the run's context, in registration order.
const FAMILIES: &[fn(&mut Engine, &Arc<Ctx>)] = &[
    discover_port::register,
    exec::register,
    akash::register,
    settings::register,
    github_io::register,
    files::register,
    helm::register,
    kube::register,
    http_check::register,
    registry::register,
    cosign::register,
    lock::register,
    gates::register,
];

/// The sandboxed engine for a run (or a check) with every primitive on
/// it: the runtime's [`crate::engine::base`], then the bindings, which sit
/// above it.
pub fn engine(ctx: &Arc<Ctx>) -> Engine {
    crate::engine::with_standard_package(bindings(ctx))
}

/// [`engine`] before the language's standard package, which nothing
/// before a script runs needs: a run adds it on its playbook thread
/// (`crate::run`).
pub fn bindings(ctx: &Arc<Ctx>) -> Engine {
    let mut engine = crate::engine::bare(ctx);
    register_all(&mut engine, ctx);
    engine
}

/// Register every primitive into `engine`.
pub fn register_all(engine: &mut Engine, ctx: &Arc<Ctx>) {
    validate_endpoint::register(engine);
    for register in FAMILIES {
        register(engine, ctx);
    }
}
