//! Secret redaction: every value read with `secret()` (and every token a
//! primitive reads, and the variables runbook knows to be secret) is
//! registered here, and every sink passes its text through [`redact`].
//!
//! A sink may print a secret in another form than it was read: JSON- or
//! Rhai-escaped (`"`, `\`, newlines), workflow-command-escaped (`%` →
//! `%25`), percent-encoded in a URL, or one line of a multi-line value (a
//! PEM key). Each registered secret is therefore matched in all of those
//! forms, so redacting the final text of any sink is enough.

use std::borrow::Cow;
use std::sync::RwLock;

use aho_corasick::{AhoCorasick, MatchKind};

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// Shorter values are not redacted: they would mask ordinary text
/// everywhere (GitHub refuses to mask them for the same reason).
pub const MIN_LEN: usize = 4;

/// Environment variables runbook itself treats as secrets, whichever way
/// they are read (`env`, `secret`, a primitive): registered at start-up.
pub const KNOWN_SECRET_VARS: &[&str] = &[
    "AKASH_CONSOLE_API_KEY",
    "GHCR_TOKEN",
    "GITHUB_TOKEN",
    "REGISTRY_PASSWORD",
    "ACTIONS_RUNTIME_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
];

struct Secrets {
    /// The values as registered.
    values: Vec<String>,
    /// Every form of every value, longest first.
    forms: Vec<String>,
    matcher: Option<AhoCorasick>,
    /// Forms were added since the matcher was built (built lazily, so
    /// registering many values, e.g. every leaf of Helm's secret values,
    /// costs one build, not one per value).
    dirty: bool,
}

static SECRETS: RwLock<Secrets> = RwLock::new(Secrets {
    values: Vec::new(),
    forms: Vec::new(),
    matcher: None,
    dirty: false,
});
static GITHUB: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Turn on `::add-mask::` emission (under GitHub Actions, whatever the log
/// format).
pub fn set_github(on: bool) {
    let was = GITHUB.swap(on, std::sync::atomic::Ordering::Relaxed);
    if on && !was {
        // Secrets registered before: mask them now.
        let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
        crate::out::unredacted_commands(&mask_lines(&secrets.forms));
    }
}

/// The `::add-mask::` lines for these forms (the runner masks per line).
fn mask_lines(forms: &[String]) -> String {
    let mut text = String::new();
    for f in forms.iter().filter(|f| !f.contains(['\n', '\r'])) {
        text.push_str(&format!("::add-mask::{}\n", crate::github::escape_data(f)));
    }
    text
}

/// The encodings a sink may apply to text that holds a secret.
const ENCODINGS: [fn(&str) -> String; 5] = [
    json_escape,
    debug_escape,
    crate::github::escape_data,
    crate::github::escape_property,
    percent_encode,
];

fn json_escape(s: &str) -> String {
    let j = serde_json::to_string(s).unwrap_or_default();
    j.get(1..j.len().saturating_sub(1))
        .unwrap_or_default()
        .to_string()
}

fn debug_escape(s: &str) -> String {
    let d = format!("{s:?}");
    d.get(1..d.len().saturating_sub(1))
        .unwrap_or_default()
        .to_string()
}

/// The ways a sink can print `value`: raw, and through one or two of
/// `ENCODINGS` (a map printed with Rhai's escaping, then JSON-escaped by
/// the `json` log format, say); the same for each line of a multi-line
/// value.
pub fn forms(value: &str) -> Vec<String> {
    let mut parts = vec![value.to_string()];
    parts.extend(
        value
            .split(['\n', '\r'])
            .filter(|l| l.trim().len() >= MIN_LEN && *l != value)
            .map(String::from),
    );
    let mut out = Vec::new();
    for p in &parts {
        out.push(p.clone());
        for first in ENCODINGS {
            let once = first(p);
            for second in ENCODINGS {
                out.push(second(&once));
            }
            out.push(once);
        }
    }
    out.retain(|f| f.trim().len() >= MIN_LEN);
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out.dedup();
    out
}

/// Percent-encode everything but RFC 3986's unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Register a secret value. Under GitHub Actions, `::add-mask::` is printed
/// (for every form the runner could see) before the value is handed to
/// anyone. A value shorter than [`MIN_LEN`] is not registered (see
/// [`too_short`]).
pub fn register(value: &str) {
    if too_short(value) {
        return;
    }
    let mut secrets = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    if secrets.values.iter().any(|s| s == value) {
        return;
    }
    let new_forms = forms(value);
    if GITHUB.load(std::sync::atomic::Ordering::Relaxed) {
        // One mask per form and per line: the runner masks line by line.
        crate::out::unredacted_commands(&mask_lines(&new_forms));
    }
    secrets.values.push(value.to_string());
    secrets.forms.extend(new_forms);
    // Longest first, so a secret that contains another is masked whole.
    secrets.forms.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.forms.dedup();
    secrets.dirty = true;
}

/// Run `f` with an up-to-date matcher (`None` when nothing is registered).
fn with_matcher<T>(f: impl FnOnce(Option<&AhoCorasick>, usize) -> T) -> T {
    {
        let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
        if !secrets.dirty {
            return f(secrets.matcher.as_ref(), secrets.forms.len());
        }
    }
    let mut secrets = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    if secrets.dirty {
        secrets.matcher = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&secrets.forms)
            .ok();
        secrets.dirty = false;
    }
    f(secrets.matcher.as_ref(), secrets.forms.len())
}

/// Whether a value is too short to be redacted ([`MIN_LEN`]).
pub fn too_short(value: &str) -> bool {
    value.trim().len() < MIN_LEN
}

/// Register the values of [`KNOWN_SECRET_VARS`] that are set.
pub fn register_known_vars() {
    for name in KNOWN_SECRET_VARS {
        if let Ok(v) = std::env::var(name) {
            register(&v);
        }
    }
}

/// Whether `name` is a variable runbook treats as a secret.
pub fn is_known_secret_var(name: &str) -> bool {
    KNOWN_SECRET_VARS.contains(&name)
}

/// Replace every registered secret, in every form, in `text` with [`MASK`].
pub fn redact(text: &str) -> Cow<'_, str> {
    with_matcher(|m, n| match m {
        Some(m) if m.is_match(text) => Cow::Owned(m.replace_all(text, &vec![MASK; n])),
        _ => Cow::Borrowed(text),
    })
}

/// Whether `value` is exactly a registered secret.
pub fn is_secret(value: &str) -> bool {
    let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    secrets.values.iter().any(|s| s == value)
}

/// Whether `text` contains a registered secret in any form.
pub fn contains_secret(text: &str) -> bool {
    with_matcher(|m, _| m.is_some_and(|m| m.is_match(text)))
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
        assert!(too_short("ab"));
        register("ab");
        assert_eq!(redact("abc"), "abc");
    }

    #[test]
    fn every_encoded_form_is_masked() {
        let secret = "pa\"ss\\wo%rd:1,2\nline-two-of-it";
        register(secret);
        let json = serde_json::json!({ "v": secret }).to_string();
        let json_of_rhai =
            serde_json::json!({ "m": format!("#{{\"v\": {secret:?}}}") }).to_string();
        let rhai_map = format!("#{{\"v\": {secret:?}}}");
        let data = crate::github::escape_data(secret);
        let prop = crate::github::escape_property(secret);
        let url = format!("https://x/?t={}", percent_encode(secret));
        for sink in [
            json,
            json_of_rhai,
            rhai_map,
            data,
            prop,
            url,
            secret.to_string(),
        ] {
            let r = redact(&sink);
            assert!(
                !r.contains("wo%rd") && !r.contains("wo%25rd"),
                "{sink} -> {r}"
            );
            assert!(!r.contains("line-two"), "{sink} -> {r}");
            assert!(contains_secret(&sink), "{sink}");
        }
        // A line of a multi-line secret alone is masked too.
        assert_eq!(redact("got line-two-of-it"), "got ***");
    }
}
