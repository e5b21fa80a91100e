//! Secret redaction: every value read with `secret()` (and every token a
//! primitive reads) is registered here, and every sink — logs, errors,
//! outputs, summaries — passes its text through [`redact`].

use std::borrow::Cow;
use std::io::Write;
use std::sync::RwLock;

/// What a secret is replaced with.
pub const MASK: &str = "***";

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());
static GITHUB: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Turn on `::add-mask::` emission (GitHub Actions log format).
pub fn set_github(on: bool) {
    GITHUB.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Register a secret value. Under GitHub Actions, `::add-mask::` is printed
/// before the value is handed to anyone, so the runner masks it too.
pub fn register(value: &str) {
    // Very short values would mask ordinary text everywhere; GitHub itself
    // refuses to mask them for the same reason.
    if value.trim().len() < 4 {
        return;
    }
    let mut secrets = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    if secrets.iter().any(|s| s == value) {
        return;
    }
    if GITHUB.load(std::sync::atomic::Ordering::Relaxed) {
        // One mask per line: a multi-line secret is masked line by line.
        let mut out = std::io::stdout().lock();
        for line in value.lines().filter(|l| l.trim().len() >= 4) {
            let _ = writeln!(out, "::add-mask::{}", crate::github::escape_data(line));
        }
        let _ = out.flush();
    }
    secrets.push(value.to_string());
    // Longest first, so a secret that contains another is masked whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// Replace every registered secret in `text` with [`MASK`].
pub fn redact(text: &str) -> Cow<'_, str> {
    let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    if !secrets.iter().any(|s| text.contains(s.as_str())) {
        return Cow::Borrowed(text);
    }
    let mut out = text.to_string();
    for s in secrets.iter() {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), MASK);
        }
    }
    Cow::Owned(out)
}

/// Whether `value` is exactly a registered secret.
pub fn is_secret(value: &str) -> bool {
    let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    secrets.iter().any(|s| s == value)
}

/// Whether `text` contains a registered secret.
pub fn contains_secret(text: &str) -> bool {
    let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    secrets.iter().any(|s| text.contains(s.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_values_are_masked_longest_first() {
        register("canary-abc");
        register("canary-abc-def-123");
        assert_eq!(
            redact("token=canary-abc-def-123 and canary-abc"),
            "token=*** and ***"
        );
        assert!(contains_secret("x canary-abc y"));
        assert!(matches!(redact("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn tiny_values_are_not_registered() {
        register("ab");
        assert_eq!(redact("abc"), "abc");
    }
}
