//! Sigstore's keyless evidence, without Rhai: the trust root
//! ([`trust_root`]: Fulcio CAs, Rekor and CT log keys, the public-good one embedded),
//! the certificate chain to a Fulcio CA ([`chain`]) and its embedded
//! certificate-transparency SCTs ([`sct`]), and the Rekor
//! transparency-log entry that dates the signature ([`rekor`]). The keys
//! and times they share are in [`keys`] and [`time`]. Sigstore's own
//! crate is not used: it pulls a TUF client, OpenSSL-free TLS stacks and
//! an OCI client of its own; these checks need only ECDSA P-256/P-384,
//! SHA-2 and X.509 parsing (sigstore-rs `src/crypto/certificate_pool.rs`,
//! `src/cosign/verification_constraint` and sigstore-go's `verify` were the
//! reference for what is checked).

pub mod chain;
pub mod keys;
pub mod rekor;
pub mod sct;
pub mod time;
pub mod trust_root;

pub use trust_root::TrustRoot;

#[cfg(test)]
mod tests;
