//! Hostile-input tests: each promise of the README's security model, tried
//! the way an attacker would, against the real binary. Outputs are read
//! the way the GitHub Actions runner reads them (see `runner.rs`).

#[path = "../common/mod.rs"]
mod common;
mod runner;

mod aborts;
mod imports;
mod injection;
mod redaction;
mod signals;
