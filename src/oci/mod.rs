//! OCI registries and cosign signatures, without Rhai: image references
//! ([`reference`]), credentials, challenges and the run's token cache
//! ([`auth`]), the distribution client ([`client`], its auth flow in
//! `login.rs`), and finding and verifying cosign signatures ([`cosign`]).
//! The bindings in `primitives/registry.rs` and `primitives/cosign.rs`
//! parse options, call these and shape the results.

pub mod auth;
pub mod client;
pub mod cosign;
pub mod cosign_find;
mod login;
pub mod reference;

pub use auth::{Cred, TokenCache};
pub use client::{Client, Resp};
pub use reference::ImageRef;
