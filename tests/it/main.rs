//! The integration tests, one binary: the real `runbook` binary against
//! real local servers (tests/standins/, fakes in `support`) and stand-in
//! processes, one module per thing proven. `hostile` tries each security
//! promise as an attacker; `properties` fuzzes the parsers in-process.
//!
//! `RUNBOOK_TEST_BIN=/path/to/runbook` runs the suite against another
//! build (see `support::bin::bin`).

mod support;

mod akash_contract;
mod contracts;
mod diagnostics;
mod fresh_clone;
mod gates;
mod github_action;
mod github_contract;
mod hostile;
mod job_manifest;
mod keyless;
mod kube_contract;
mod layers;
mod ledger;
mod lock_file;
mod lock_github;
mod lock_kube;
mod minikube;
mod progress;
mod properties;
mod readme;
mod registry;
mod release;
mod runbook_test;
mod runtime;
mod split_deploy;
mod workflows;
