//! Secret redaction: every value read with `secret()` (and every token a
//! primitive reads, and the variables runbook knows to be secret) is
//! registered here, and every sink passes its text through [`redact`].
//!
//! A sink may print a secret in another form than it was read: JSON- or
//! Rhai-escaped (`"`, `\`, newlines), workflow-command-escaped (`%` →
//! `%25`), percent-encoded in a URL, or one line of a multi-line value (a
//! PEM key). Each registered secret is therefore matched in all of those
//! forms, so redacting the final text of any sink is enough.

use parking_lot::RwLock;
use std::borrow::Cow;

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

/// Where `::add-mask::` lines go: the output layer installs its unredacted
/// writer at start-up ([`set_mask_writer`]); redaction sits below output
/// and cannot call it.
static MASK_WRITER: RwLock<Option<fn(&str)>> = RwLock::new(None);

/// Install the writer of `::add-mask::` lines (one that must not redact:
/// it would mask the very value the runner is asked to mask).
pub fn set_mask_writer(w: fn(&str)) {
    *MASK_WRITER.write() = Some(w);
}

/// Write `::add-mask::` lines through the installed writer; straight to
/// stdout if none is (a missing mask would show the secret in the log).
fn write_masks(text: &str) {
    if text.is_empty() {
        return;
    }
    match *MASK_WRITER.read() {
        Some(w) => w(text),
        None => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
        }
    }
}

/// Turn on `::add-mask::` emission (under GitHub Actions, whatever the log
/// format).
pub fn set_github(on: bool) {
    let was = GITHUB.swap(on, std::sync::atomic::Ordering::Relaxed);
    if on && !was {
        // Secrets registered before: mask them now.
        let secrets = SECRETS.read();
        write_masks(&mask_lines(&secrets.forms));
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
const ENCODINGS: [fn(&str) -> String; 7] = [
    json_escape,
    debug_escape,
    crate::github::escape_data,
    crate::github::escape_property,
    percent_encode,
    yaml_escape,
    form_urlencode,
];

/// The value as a YAML scalar writes it (the dry-run SDL diff, manifests):
/// double-quoted with YAML's escapes (`\e`, `\uFEFF`, `\N`…), or
/// single-quoted (`''`), without the quotes.
fn yaml_escape(s: &str) -> String {
    let y = serde_norway::to_string(s).unwrap_or_default();
    let y = y.strip_suffix('\n').unwrap_or(&y);
    for q in ['"', '\''] {
        if let Some(inner) = y.strip_prefix(q).and_then(|t| t.strip_suffix(q)) {
            return inner.to_string();
        }
    }
    y.to_string()
}

/// `application/x-www-form-urlencoded` (a token exchange's body): space
/// as `+`, `(` as `%28`.
fn form_urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b' ' => out.push('+'),
            b if b.is_ascii_alphanumeric() || matches!(b, b'*' | b'-' | b'.' | b'_') => {
                out.push(b as char)
            }
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

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
    let mut secrets = SECRETS.write();
    if secrets.values.iter().any(|s| s == value) {
        return;
    }
    let new_forms = forms(value);
    if GITHUB.load(std::sync::atomic::Ordering::Relaxed) {
        // One mask per form and per line: the runner masks line by line.
        write_masks(&mask_lines(&new_forms));
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
        let secrets = SECRETS.read();
        if !secrets.dirty {
            return f(secrets.matcher.as_ref(), secrets.forms.len());
        }
    }
    let mut secrets = SECRETS.write();
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

/// The shortest start of a secret a cut may leave: shorter ones are too
/// common in ordinary text to mask, and too short to guess the rest from.
pub const PREFIX_MIN: usize = 8;

/// `text` redacted whole, then cut to at most `max` characters (`…` marks
/// a cut): redacting first means a secret across the cut is masked, not
/// half shown. Whatever the end of the result — the cut, or `text`'s own
/// end when a reader stopped at its cap — it never leaves the first
/// [`PREFIX_MIN`] or more characters of a secret: those are masked too.
pub fn cut(text: &str, max: usize) -> String {
    let r = redact(text);
    let (mut out, was_cut) = if r.chars().count() > max {
        (r.chars().take(max).collect::<String>(), true)
    } else {
        (r.into_owned(), false)
    };
    mask_dangling_prefix(&mut out);
    if was_cut {
        out.push('…');
    }
    out
}

/// Mask a start of a secret (in any form) that `text` ends with.
fn mask_dangling_prefix(text: &mut String) {
    let secrets = SECRETS.read();
    let mut longest = 0;
    for f in &secrets.forms {
        // Prefixes of at least PREFIX_MIN bytes and shorter than the form
        // (a whole form was already redacted), on character boundaries.
        for (k, _) in f.char_indices().skip(1) {
            if k >= PREFIX_MIN && k > longest && text.ends_with(&f[..k]) {
                longest = k;
            }
        }
    }
    if longest > 0 {
        text.truncate(text.len() - longest);
        text.push_str(MASK);
    }
}

/// Whether `value` is exactly a registered secret.
pub fn is_secret(value: &str) -> bool {
    let secrets = SECRETS.read();
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
    fn a_cut_never_leaves_the_start_of_a_secret() {
        let key = "cutkey-0123456789abcdefghijklmnopqrstuvwxyzAB";
        register(key);
        for at in 0..key.len() {
            let text = format!("{}{key} trailing", "x".repeat(300 - at));
            let c = cut(&text, 300);
            assert!(c.chars().count() <= 301, "{at}");
            for k in PREFIX_MIN..key.len() {
                assert!(!c.contains(&key[..k]), "{at}: {c}");
            }
        }
        // A body a reader stopped in the middle of a secret.
        for k in PREFIX_MIN..key.len() {
            let c = cut(&format!("error: {}", &key[..k]), 300);
            assert_eq!(c, "error: ***", "{k}");
        }
        assert_eq!(
            cut("error: cutkey-", 300),
            "error: cutkey-",
            "under 8: kept"
        );
        assert_eq!(cut("short and clean", 300), "short and clean");
        assert_eq!(cut("abcdef", 3), "abc…");
    }

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
        // YAML's escapes and form encoding (a token exchange's body).
        let odd = "\u{feff}yaml\u{1b}secret (form) x";
        register(odd);
        for sink in [
            serde_norway::to_string(&serde_json::json!({ "k": odd })).unwrap(),
            format!("subject_token={}", form_urlencode(odd)),
        ] {
            let r = redact(&sink);
            assert!(!r.contains("secret"), "{sink} -> {r}");
        }
        // A line of a multi-line secret alone is masked too.
        assert_eq!(redact("got line-two-of-it"), "got ***");
    }
}
