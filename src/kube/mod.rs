//! Kubernetes without Rhai, through kube-rs: the clients of a run
//! ([`client`]), rollouts ([`rollout`], [`release`] for all of a Helm
//! release's, [`pods`] for why pods are not ready), Services ([`service`],
//! [`proxy`] for a health check through the API server) and the room on the nodes
//! ([`capacity`]). The bindings in `primitives/kube/` read options and
//! shape results; everything that talks to the API server or judges what
//! it says lives here, where it is tested without an engine.

#![warn(missing_docs)]

pub mod capacity;
pub mod client;
pub mod pods;
pub mod proxy;
pub mod release;
pub mod rollout;
pub mod service;

pub use client::{Clients, Kube};

use crate::error::PrimError;

/// Refuse what is not a DNS-1123 name (namespace, Deployment, Service,
/// release): it would go into an API path. `what` names the argument.
pub fn check_name(what: &str, s: &str) -> Result<(), PrimError> {
    if dns_name(s, 253, true) {
        return Ok(());
    }
    Err(PrimError::usage(format!(
        "{what} '{s}' is not a Kubernetes name (lowercase letters, digits, '-', '.'; starting and ending with a letter or digit)"
    )))
}

/// Lowercase letters, digits, '-' (and '.' when `dots`), starting and
/// ending with a letter or digit, at most `max` characters: DNS-1123, the
/// rule Kubernetes names and Helm releases share.
pub fn dns_name(s: &str, max: usize, dots: bool) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (dots && c == '.'))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Refuse a label selector kube-rs would pass on as something else than
/// equality terms (`k=v`, `k!=v`, `k`, joined by commas): it goes into the
/// API's query string.
pub fn check_selector(s: &str) -> Result<(), PrimError> {
    let term_ok = |t: &str| {
        let t = t.trim();
        !t.is_empty()
            && t.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | '=' | '!')
            })
    };
    if !s.trim().is_empty() && s.split(',').all(term_ok) {
        Ok(())
    } else {
        Err(PrimError::usage(format!(
            "selector '{s}' is not a label selector (k=v pairs joined by commas, e.g. \"app.kubernetes.io/instance=habit-tracker\")"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;

    #[test]
    fn names_are_dns_1123() {
        assert!(check_name("namespace", "habit-tracker").is_ok());
        assert!(check_name("namespace", "a.b").is_ok());
        for bad in ["", "Bad_Name", "-x", "x-", "a b"] {
            let e = check_name("service", bad).unwrap_err();
            assert_eq!(e.kind, Kind::Usage);
            assert!(e.msg.contains("not a Kubernetes name"), "{e}");
        }
    }

    #[test]
    fn selectors_are_equality_terms() {
        assert!(check_selector("app.kubernetes.io/instance=ht").is_ok());
        assert!(check_selector("a=b,c!=d,e").is_ok());
        for bad in ["", " ", "a=b,", "a in (b)", "a=b&c=d"] {
            assert_eq!(check_selector(bad).unwrap_err().kind, Kind::Usage, "{bad}");
        }
    }
}
