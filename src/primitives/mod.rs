//! The primitives a playbook calls. One file per primitive (or per small
//! family), each with its own unit tests; [`register_all`] puts them all
//! into the engine.

pub mod akash;
pub mod cosign;
pub mod discover_port;
pub mod effects;
pub mod exec;
pub mod files;
pub mod github_io;
pub mod helm;
pub mod helm_template;
pub mod http_check;
pub mod kube;
pub mod kube_service;
pub mod lock;
pub mod registry;

pub mod settings;

pub mod validate_endpoint;

use std::sync::Arc;

use rhai::Engine;

use crate::context::Ctx;

pub use crate::opts::{parse_duration, string_array, Opts, MAX_DURATION};
pub use crate::value::{to_dynamic, to_json};

/// Register every primitive into `engine`.
pub fn register_all(engine: &mut Engine, ctx: &Arc<Ctx>) {
    validate_endpoint::register(engine);
    discover_port::register(engine, ctx);
    exec::register(engine, ctx);
    akash::register(engine, ctx);
    settings::register(engine, ctx);
    github_io::register(engine, ctx);
    files::register(engine, ctx);
    helm::register(engine, ctx);
    helm_template::register(engine, ctx);
    kube::register(engine, ctx);
    kube_service::register(engine, ctx);
    http_check::register(engine, ctx);
    registry::register(engine, ctx);
    cosign::register(engine, ctx);
    lock::register(engine, ctx);
}
