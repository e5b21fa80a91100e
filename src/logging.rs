//! Log sinks. Everything goes through `tracing`; every sink redacts secrets
//! before a byte is written. Three formats: `pretty` (terminal), `json`
//! (one object a line) and `github` (workflow commands).

use std::io::{IsTerminal, Write};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

use crate::github::escape_data;
use crate::out::Stream;

/// The log formats `--log-format` accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable, coloured on a terminal.
    Pretty,
    /// One JSON object a line.
    Json,
    /// GitHub Actions workflow commands (chosen when GITHUB_ACTIONS=true).
    Github,
}

impl LogFormat {
    /// The format to use when none was asked for.
    pub fn detect() -> LogFormat {
        if std::env::var("GITHUB_ACTIONS").as_deref() == Ok("true") {
            LogFormat::Github
        } else {
            LogFormat::Pretty
        }
    }
}

/// Where log lines go: stderr, except under the `github` format where
/// workflow commands share stdout with `::add-mask::` so they stay in
/// order. Every write goes through [`crate::out`] (redaction, no smuggled
/// workflow commands, closed pipes).
#[derive(Clone, Copy)]
pub struct Sink {
    format: LogFormat,
}

impl Sink {
    /// The sink for a format.
    pub fn for_format(format: LogFormat) -> Sink {
        Sink { format }
    }

    /// Write workflow commands runbook built itself (escaped data and
    /// properties), on the stream the log format uses.
    pub fn write_str(&self, text: &str) {
        let stream = if self.format == LogFormat::Github {
            Stream::Stdout
        } else {
            Stream::Stderr
        };
        crate::out::commands(stream, text);
    }

    /// Write one formatted event.
    fn write_event(&self, text: &str) {
        match self.format {
            // PrettyFormat made the untrusted parts terminal-safe itself,
            // around its own colours.
            LogFormat::Pretty => crate::out::styled(Stream::Stderr, text),
            LogFormat::Json => crate::out::json_lines(Stream::Stderr, text),
            // GithubFormat neutralized the untrusted parts itself.
            LogFormat::Github => crate::out::commands(Stream::Stdout, text),
        }
    }
}

/// Buffers one event and writes it when dropped.
pub struct EventWriter {
    sink: Sink,
    buf: Vec<u8>,
}

impl Write for EventWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            self.sink.write_event(&String::from_utf8_lossy(&self.buf));
        }
    }
}

impl<'a> MakeWriter<'a> for Sink {
    type Writer = EventWriter;
    fn make_writer(&'a self) -> EventWriter {
        EventWriter {
            sink: *self,
            buf: Vec::with_capacity(256),
        }
    }
}

/// Formats events as GitHub workflow commands.
struct GithubFormat;

impl<S, N> FormatEvent<S, N> for GithubFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut msg = String::new();
        ctx.format_fields(Writer::new(&mut msg), event)?;
        let line = match *event.metadata().level() {
            Level::ERROR => format!("::error::{}", escape_data(&msg)),
            Level::WARN => format!("::warning::{}", escape_data(&msg)),
            // A plain line must not be read as a command by the runner.
            Level::INFO => crate::out::neutralize(&msg).into_owned(),
            _ => format!("::debug::{}", escape_data(&msg)),
        };
        writeln!(writer, "{line}")
    }
}

/// Collects an event's message and the primitive it came from.
#[derive(Default)]
struct MessageVisitor {
    message: String,
    primitive: Option<String>,
}

impl tracing::field::Visit for MessageVisitor {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_string(),
            "primitive" => self.primitive = Some(value.to_string()),
            _ => {}
        }
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "primitive" => {
                self.primitive = Some(format!("{value:?}").trim_matches('"').to_string())
            }
            _ => {}
        }
    }
}

/// For people: elapsed time, level, the primitive and the message. The
/// structured fields are for `json`; here they would repeat the message.
struct PrettyFormat {
    ansi: bool,
    start: std::time::Instant,
}

impl<S, N> FormatEvent<S, N> for PrettyFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut v = MessageVisitor::default();
        event.record(&mut v);
        let level = *event.metadata().level();
        let (tag, colour) = match level {
            Level::ERROR => ("error", "31"),
            Level::WARN => ("warn ", "33"),
            Level::INFO => ("info ", "32"),
            _ => ("debug", "2"),
        };
        let secs = self.start.elapsed().as_secs_f64();
        // Untrusted text (a server's answer, a parameter, a child's output)
        // is redacted and made terminal-safe here, before runbook's own
        // colours go around it: the sink does not escape again.
        let message = crate::out::term_safe(&crate::redact::redact(&v.message)).into_owned();
        let prim = v
            .primitive
            .map(|p| format!("{}: ", crate::out::term_safe(&p)))
            .unwrap_or_default();
        if self.ansi {
            writeln!(
                writer,
                "\x1b[2m{secs:7.3}s\x1b[0m \x1b[{colour}m{tag}\x1b[0m \x1b[1m{prim}\x1b[0m{message}"
            )
        } else {
            writeln!(writer, "{secs:7.3}s {tag} {prim}{message}")
        }
    }
}

/// Install the global subscriber. `RUNBOOK_LOG` sets the level (default info).
pub fn init(format: LogFormat) -> Sink {
    let sink = Sink::for_format(format);
    crate::redact::set_github(format == LogFormat::Github || crate::out::under_github());
    let level = match std::env::var("RUNBOOK_LOG").as_deref() {
        Ok("debug") => Level::DEBUG,
        Ok("trace") => Level::TRACE,
        Ok("warn") => Level::WARN,
        Ok("error") => Level::ERROR,
        _ => Level::INFO,
    };
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(sink)
        .with_target(false);
    let result = match format {
        LogFormat::Pretty => builder
            .event_format(PrettyFormat {
                ansi: std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
                start: std::time::Instant::now(),
            })
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
        LogFormat::Github => builder.event_format(GithubFormat).try_init(),
    };
    // A second init (only in tests) keeps the first subscriber.
    let _ = result;
    sink
}
