//! The one place runbook writes to its stdout and stderr.
//!
//! Every byte passes three rules here, so no call site has to remember them:
//!
//! - **Redaction**: every registered secret, in every encoded form, is
//!   masked (see [`crate::redact`]).
//! - **No smuggled workflow commands**: under GitHub Actions
//!   (`GITHUB_ACTIONS=true`, whatever the log format) text that runbook did
//!   not author as a command cannot be read as one. The runner splits both
//!   streams into lines at `\n` and at a bare `\r`, trims leading white
//!   space, and acts on a line that starts with `::` or holds `##[`
//!   anywhere; [`neutralize`] breaks exactly those sequences.
//! - **A clean terminal**: C0 and C1 controls (ESC, and so every
//!   CSI/OSC sequence), DEL, Unicode bidi controls and the line/paragraph
//!   separators U+2028/U+2029 in text are shown escaped (`\x1b`,
//!   `\u202e`), so a server's answer, a child's output or a parameter
//!   cannot move the cursor, retitle the window, hide text or forge a
//!   line ([`term_safe`]); newlines and tabs stay.
//! - **A closed pipe is not a crash**: when stdout or stderr is gone
//!   (`runbook … | head`), writes are dropped, [`pipe_closed`] turns true
//!   and the run ends as if it got SIGPIPE (exit 141), cleaning up first.

use std::borrow::Cow;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static GITHUB: AtomicBool = AtomicBool::new(false);
static CLOSED: AtomicBool = AtomicBool::new(false);
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
static STDERR_CLOSED: AtomicBool = AtomicBool::new(false);

/// The progress line on screen, if any (one at a time; `crate::progress`
/// draws it): every stderr write lifts it off the screen first.
static SPINNER: parking_lot::Mutex<Option<indicatif::ProgressBar>> = parking_lot::Mutex::new(None);

/// The slot of the progress line on screen, locked: `crate::progress`
/// claims it when it draws one and empties it when the line ends.
pub fn spinner() -> parking_lot::MutexGuard<'static, Option<indicatif::ProgressBar>> {
    SPINNER.lock()
}

/// Run `write` with the progress line (if one is shown) lifted off the
/// screen, so the text prints above it and never through it.
pub fn suspend<R>(write: impl FnOnce() -> R) -> R {
    let bar = SPINNER.lock().clone();
    match bar {
        Some(bar) => bar.suspend(write),
        None => write(),
    }
}

/// Breaks a workflow command without changing what a person reads: a
/// zero-width space. It is not white space to the runner (.NET's
/// `TrimStart` keeps it), so `:\u{200B}:` no longer starts a command.
pub const BREAK: char = '\u{200B}';

/// Which stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Read `GITHUB_ACTIONS` once, at start-up.
pub fn init() {
    GITHUB.store(under_github_env(), Ordering::Relaxed);
    crate::redact::set_mask_writer(unredacted_commands);
}

/// Whether the environment says this is a GitHub Actions job.
pub fn under_github_env() -> bool {
    std::env::var("GITHUB_ACTIONS").as_deref() == Ok("true")
}

/// Whether the runner reads what runbook prints (GitHub Actions).
pub fn under_github() -> bool {
    GITHUB.load(Ordering::Relaxed)
}

/// Whether a write found stdout or stderr closed (later writes to that
/// stream are dropped).
pub fn pipe_closed() -> bool {
    CLOSED.load(Ordering::Relaxed)
}

/// Whether the runner would act on this one line (already split at
/// `\n`/`\r`): it starts with `::` after white space, or holds `##[`.
pub fn is_command_like(line: &str) -> bool {
    line.trim_start_matches(|c: char| c.is_whitespace() || c.is_control())
        .starts_with("::")
        || line.contains("##[")
}

/// Make untrusted text safe to print under GitHub Actions: a bare `\r`
/// becomes `\n` (what the runner sees is what a terminal shows), a line
/// that would start a command gets [`BREAK`] between its two colons, and
/// `##[` becomes `#` [`BREAK`] `#[`. Text with none of these is returned
/// as it is.
pub fn neutralize(text: &str) -> Cow<'_, str> {
    if !text.contains('\r') && !text.contains("##[") && !text.contains("::") {
        return Cow::Borrowed(text);
    }
    let normalized = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut out = String::with_capacity(normalized.len() + 8);
    for (i, line) in normalized.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let line = line.replace("##[", &format!("#{BREAK}#["));
        let body = line.trim_start_matches(|c: char| c.is_whitespace() || c.is_control());
        if body.starts_with("::") {
            let lead = line.len() - body.len();
            out.push_str(&line[..lead]);
            out.push(':');
            out.push(BREAK);
            out.push_str(&body[1..]);
        } else {
            out.push_str(&line);
        }
    }
    Cow::Owned(out)
}

/// The JSON-lines form of [`neutralize`]: a JSON line cannot start with
/// `::`, and `##[` can only stand inside a string, where `\u005b` is the
/// same character to every JSON reader.
pub fn neutralize_json(text: &str) -> Cow<'_, str> {
    if text.contains("##[") {
        Cow::Owned(text.replace("##[", "##\\u005b"))
    } else {
        Cow::Borrowed(text)
    }
}

/// Whether `c` must not reach a terminal as it is (see [`term_safe`]).
fn is_unsafe_char(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{8}' | '\u{b}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
        | '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}')
}

/// Push `c` escaped: `\x1b` for a C0 control or DEL, `\r` for a carriage
/// return, `\u202e` for the rest.
fn push_escaped(out: &mut String, c: char) {
    match c {
        '\r' => out.push_str("\\r"),
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
        c => out.push_str(&format!("\\u{:04x}", c as u32)),
    }
}

/// Text made safe for a terminal: every control but `\n` and `\t`, and
/// every bidi control or line/paragraph separator, shown escaped; a
/// `\r\n` line end becomes `\n`. Text with none is returned as it is.
pub fn term_safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\r' && chars.peek() == Some(&'\n') {
            continue;
        }
        if is_unsafe_char(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// One cell or field of a one-line row: like [`term_safe`], and newlines
/// and tabs escaped too, so a value cannot forge another row.
pub fn one_line(text: &str) -> Cow<'_, str> {
    if !text
        .chars()
        .any(|c| c == '\n' || c == '\t' || is_unsafe_char(c))
    {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if c == '\n' || c == '\t' || is_unsafe_char(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// The JSON-lines form of [`term_safe`]: serde_json escapes C0 controls
/// already; C1, DEL, bidi controls and U+2028/2029 become `\uXXXX`, the
/// same characters to every JSON reader (they can only stand in strings).
fn term_safe_json(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_unsafe_char(c) && (c as u32) >= 0x20 {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn write_raw(stream: Stream, bytes: &[u8]) {
    let closed = match stream {
        Stream::Stdout => &STDOUT_CLOSED,
        Stream::Stderr => &STDERR_CLOSED,
    };
    if closed.load(Ordering::Relaxed) {
        return;
    }
    let r = match stream {
        Stream::Stdout => {
            let mut out = std::io::stdout().lock();
            out.write_all(bytes).and_then(|()| out.flush())
        }
        // Above a progress line, if one is shown (never through it).
        Stream::Stderr => suspend(|| std::io::stderr().lock().write_all(bytes)),
    };
    if let Err(e) = r {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            closed.store(true, Ordering::Relaxed);
            CLOSED.store(true, Ordering::Relaxed);
        }
    }
}

/// Write text runbook did not author as a workflow command (log lines,
/// `print`, reports, help): redacted, and neutralized under GitHub Actions.
pub fn text(stream: Stream, s: &str) {
    write_safe(stream, s, false);
}

/// Redact, make terminal-safe, then under GitHub Actions neutralize
/// workflow commands (the JSON-lines way when `json`), then write.
fn write_safe(stream: Stream, s: &str, json: bool) {
    let s = crate::redact::redact(s);
    let s = if json {
        term_safe_json(&s)
    } else {
        term_safe(&s)
    };
    match (under_github(), json) {
        (true, true) => write_raw(stream, neutralize_json(&s).as_bytes()),
        (true, false) => write_raw(stream, neutralize(&s).as_bytes()),
        (false, _) => write_raw(stream, s.as_bytes()),
    }
}

/// Write a line that holds runbook's own styling (the `pretty` log
/// format's colours on a terminal) around text the caller already made
/// terminal-safe with [`term_safe`]: redacted and, under GitHub Actions,
/// neutralized, but not escaped again (that would show the colours as
/// `\x1b[2m`).
pub fn styled(stream: Stream, s: &str) {
    let s = crate::redact::redact(s);
    if under_github() {
        write_raw(stream, neutralize(&s).as_bytes());
    } else {
        write_raw(stream, s.as_bytes());
    }
}

/// Write JSON lines (the `json` log format): redacted, and `##[` escaped
/// inside strings under GitHub Actions.
pub fn json_lines(stream: Stream, s: &str) {
    write_safe(stream, s, true);
}

/// Write workflow commands runbook builds itself, whose data and
/// properties are already escaped (`::error file=…::…`, `::add-mask::…`,
/// child output inside a `::stop-commands::` block). Redacted.
pub fn commands(stream: Stream, s: &str) {
    let s = crate::redact::redact(s);
    write_raw(stream, term_safe(&s).as_bytes());
}

/// Write a document runbook built itself whose every value it already
/// redacted and escaped (the JUnit report): not redacted again, since a
/// secret equal to a word of the markup would break it; still made
/// terminal-safe and, under GitHub Actions, neutralized.
pub fn document(stream: Stream, s: &str) {
    let s = term_safe(s);
    if under_github() {
        write_raw(stream, neutralize(&s).as_bytes());
    } else {
        write_raw(stream, s.as_bytes());
    }
}

/// Write `::add-mask::` lines: the one writer that must not redact (it
/// would mask the very value the runner is asked to mask).
pub(crate) fn unredacted_commands(s: &str) {
    write_raw(Stream::Stdout, s.as_bytes());
}

/// Write one line of untrusted text to stdout (adds the newline).
pub fn println(s: &str) {
    let mut line = String::with_capacity(s.len() + 1);
    line.push_str(s);
    line.push('\n');
    text(Stream::Stdout, &line);
}

/// Write one line of untrusted text to stderr (adds the newline).
pub fn eprintln(s: &str) {
    let mut line = String::with_capacity(s.len() + 1);
    line.push_str(s);
    line.push('\n');
    text(Stream::Stderr, &line);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines as the runner splits them.
    fn runner_lines(s: &str) -> Vec<&str> {
        s.split(['\n', '\r']).collect()
    }

    #[test]
    fn no_line_of_untrusted_text_is_a_command() {
        for hostile in [
            "::error::X",
            "ok\n::error::X",
            "ok\r::error::X",
            "ok\r\n  \t::add-mask::x",
            "a ##[error]X",
            "\u{a0}::warning::X",
            "::::",
            "line1\n\n\r\r::stop-commands::tok",
        ] {
            let safe = neutralize(hostile);
            for line in runner_lines(&safe) {
                assert!(!is_command_like(line), "{hostile:?} -> {line:?}");
            }
            // What a person reads is unchanged but for the invisible break.
            assert_eq!(
                safe.replace(BREAK, ""),
                hostile.replace("\r\n", "\n").replace('\r', "\n")
            );
        }
    }

    #[test]
    fn controls_bidi_and_separators_are_shown_escaped() {
        let hostile = "a\u{1b}]0;title\u{7}b\u{1b}[2Jc\u{9b}31md\u{202e}e\u{2028}f\rg\u{7f}";
        let safe = term_safe(hostile);
        assert_eq!(
            safe,
            "a\\x1b]0;title\\x07b\\x1b[2Jc\\u009b31md\\u202ee\\u2028f\\rg\\x7f"
        );
        assert!(matches!(term_safe("plain\ttext\n"), Cow::Borrowed(_)));
        assert_eq!(term_safe("crlf\r\n"), "crlf\n");
        assert_eq!(one_line("a\nb\tc"), "a\\nb\\tc");
        let json = serde_json::json!({ "m": "x\u{9b}y\u{202e}z\u{1b}" }).to_string();
        let safe = term_safe_json(&json);
        assert!(!safe.chars().any(is_unsafe_char), "{safe}");
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["m"], "x\u{9b}y\u{202e}z\u{1b}");
    }

    #[test]
    fn plain_text_is_untouched() {
        assert!(matches!(neutralize("a: b, c"), Cow::Borrowed(_)));
        assert_eq!(neutralize("host:port x::y"), "host:port x::y");
    }

    #[test]
    fn json_lines_keep_their_value() {
        let line = serde_json::json!({"message": "x ##[error]y"}).to_string();
        let safe = neutralize_json(&line);
        assert!(!safe.contains("##["));
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["message"], "x ##[error]y");
    }
}
