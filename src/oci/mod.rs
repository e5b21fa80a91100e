//! OCI registries and cosign signatures, without Rhai: image references
//! ([`mod@reference`]), credentials, challenges and the run's token cache
//! ([`auth`]), the distribution client ([`client`], its auth flow in
//! `login.rs`), and cosign signatures: verifying them ([`cosign`],
//! [`cosign_cert`], [`cosign_bundle`], Sigstore's trust root, chain and
//! log in [`sigstore`]) and finding them ([`cosign_find`]).
//! The bindings in `primitives/registry.rs` and `primitives/cosign.rs`
//! parse options, call these and shape the results. Errors are
//! [`PrimError`](crate::error::PrimError)s: transient for what another try
//! may fix, usage for a bad reference, fatal otherwise.

#![warn(missing_docs)]

pub mod auth;
pub mod client;
pub mod cosign;
pub mod cosign_bundle;
pub mod cosign_cert;
pub mod cosign_find;
mod login;
#[cfg(test)]
mod props;
pub mod reference;
pub mod sigstore;

pub use auth::{Cred, TokenCache};
pub use client::{Client, Resp};
pub use reference::ImageRef;
