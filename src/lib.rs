//! `runbook`: one binary that runs ops playbooks written in Rhai. Rust
//! gives the primitives (`primitives/`), playbooks compose them.

pub mod akash;
pub mod check;
pub mod commands;
pub mod context;
pub mod declare;
pub mod doc;
pub mod engine;
pub mod error;
pub mod fsread;
pub mod gates;
pub mod github;
pub mod helm;
pub mod kube;
pub mod ledger;
pub mod lock;
pub mod logging;
pub mod memory;
pub mod net;
pub mod oci;
pub mod opts;
pub mod out;
pub mod params;
pub mod pipeline;
pub mod pitfalls;
pub mod primitives;
pub mod process;
pub mod progress;
pub mod redact;
pub mod report;
pub mod run;
pub mod signatures;
pub mod suggest;
pub mod testing;
pub mod value;
