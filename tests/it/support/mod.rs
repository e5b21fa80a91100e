//! What the tests share: running the binary in a temporary project
//! (`bin`), and the servers it talks to, all on loopback addresses.

pub mod bin;
pub mod cosign;
pub mod faults;
pub mod http;
pub mod issuer;
pub mod kube;
pub mod kube_objects;
pub mod leases;
pub mod raw;
pub mod registry;

pub use bin::*;
