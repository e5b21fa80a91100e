//! A progress line for the long waits (port discovery, rollout waits, gate
//! rounds): an indicatif spinner on a person's terminal, and nothing more
//! anywhere else, where the log lines each wait writes anyway (one per
//! attempt, per change, per measurement) are the plain record.
//!
//! A spinner is drawn only when all hold: the `pretty` log format, stderr
//! is a terminal, `NO_COLOR` is unset, and neither `CI=true` nor
//! `GITHUB_ACTIONS=true` (a CI log that records a pty would otherwise keep
//! every redraw). While one is shown, [`crate::out`] writes each stderr
//! line through [`suspend`], so log lines print above it and never through it.

use std::time::Duration;

use crate::logging::LogFormat;
/// The spinner on screen is kept by [`crate::out`], the one writer, which
/// lifts it off the screen around each stderr write.
pub use crate::out::suspend;

/// Whether a progress line may be drawn for a run logging in `format`.
pub fn allowed(format: LogFormat) -> bool {
    use std::io::IsTerminal;
    format == LogFormat::Pretty
        && std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none()
        && !under_ci()
}

/// Whether the environment says this is a CI job (`CI=true`, set by
/// GitHub Actions, GitLab, CircleCI and others, or `GITHUB_ACTIONS=true`).
pub fn under_ci() -> bool {
    let on = |k: &str| {
        std::env::var(k)
            .map(|v| v.eq_ignore_ascii_case("true") || v == "1")
            .unwrap_or(false)
    };
    on("CI") || on("GITHUB_ACTIONS")
}

/// One progress line; cleared when dropped.
pub struct Line {
    bar: Option<indicatif::ProgressBar>,
}

impl Line {
    /// A spinner reading `label` and the time spent (of `bound`, when
    /// given), ticking on its own; a line that draws nothing when
    /// [`allowed`] says no or another line is already shown.
    pub fn start(format: LogFormat, label: &str, bound: Option<Duration>) -> Line {
        if !allowed(format) {
            return Line { bar: None };
        }
        let mut active = crate::out::spinner();
        if active.is_some() {
            return Line { bar: None };
        }
        let template = match bound {
            Some(b) => format!(
                "{{spinner}} {{msg}} ({{elapsed}} of {})",
                crate::error::fmt_secs(b)
            ),
            None => "{spinner} {msg} ({elapsed})".to_string(),
        };
        let style = indicatif::ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
        let bar =
            indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
        bar.set_style(style);
        // The label reaches the terminal without passing crate::out, so
        // it is redacted here.
        bar.set_message(crate::redact::redact(label).into_owned());
        bar.enable_steady_tick(Duration::from_millis(120));
        *active = Some(bar.clone());
        Line { bar: Some(bar) }
    }

    /// Change what the line says (redacted).
    pub fn say(&self, msg: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(crate::redact::redact(msg).into_owned());
        }
    }

    /// Whether anything is drawn.
    pub fn shown(&self) -> bool {
        self.bar.is_some()
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
            *crate::out::spinner() = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_line_off_a_terminal_or_in_another_format() {
        // Test processes write stderr to a pipe: never a terminal.
        for f in [LogFormat::Pretty, LogFormat::Json, LogFormat::Github] {
            let line = Line::start(f, "waiting", Some(Duration::from_secs(5)));
            assert!(!line.shown());
            line.say("still waiting");
        }
        assert_eq!(suspend(|| 7), 7);
    }
}
