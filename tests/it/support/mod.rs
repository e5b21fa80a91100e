//! What the tests share: running the binary in a temporary project
//! (`bin`), and what it talks to, all on loopback addresses: the one HTTP
//! stub (`http`) and the fakes built on it (`kube`, `leases`, `issuer`,
//! `faults`), a real registry (`registry`, `cosign`), the Akash Console
//! and GitHub API stand-in processes (`console`, `github`), and raw TCP for hostile bytes (`raw`).

pub mod bin;
pub mod console;
pub mod cosign;
pub mod faults;
pub mod github;
pub mod http;
pub mod issuer;
pub mod kube;
pub mod kube_objects;
pub mod leases;
pub mod prometheus;
pub mod raw;
pub mod registry;

pub use bin::*;
