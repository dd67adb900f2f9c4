//! Everything sigcat says on stderr: log lines (from sigcat or any crate it uses, at any
//! level), warnings, per-item summaries and the final error. All of it goes through one writer
//! that redacts credentials from each line before it is written, and that ignores a closed
//! stderr instead of panicking.

use std::fmt;
use std::io::Write;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

/// Writes one redacted line (or block of lines) to stderr; a closed stderr is not an error
/// anyone could act on, so it is ignored.
pub(crate) fn to_stderr(text: &str) {
    let text = sigcat::redact::redact_secrets(text);
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

/// `sigcat: TEXT` on its own line.
pub(crate) fn say(text: &str) {
    to_stderr(&format!("sigcat: {text}\n"));
}

/// A warning goes through the log, so `RUST_LOG` and `--log-format` apply to it.
pub(crate) fn warn(text: &str) {
    tracing::warn!("{text}");
}

/// A writer per log event that collects the formatted event and writes it, redacted, when
/// the event is done.
#[derive(Clone, Copy, Default)]
pub(crate) struct RedactingStderr;

pub(crate) struct EventBuffer(Vec<u8>);

impl Write for EventBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventBuffer {
    /// One event, one line: a control character inside it (a newline or an escape in a file
    /// name, a multi-line debug dump) is escaped, so no field can forge or garble log lines.
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.0);
        let body = text.strip_suffix('\n').unwrap_or(&text);
        let mut line: String = body
            .chars()
            .flat_map(|c| {
                let escaped: Vec<char> = if c.is_control() && c != '\t' {
                    c.escape_default().collect()
                } else {
                    vec![c]
                };
                escaped
            })
            .collect();
        line.push('\n');
        to_stderr(&line);
    }
}

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = EventBuffer;
    fn make_writer(&'a self) -> EventBuffer {
        EventBuffer(Vec::with_capacity(256))
    }
}

/// `sigcat: warning: message key=value`: the one-shot commands' log lines read like their
/// other messages. (The watcher, a service, keeps timestamps.)
struct Plain;

impl<S, N> FormatEvent<S, N> for Plain
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let level = match *meta.level() {
            Level::ERROR => "error",
            Level::WARN => "warning",
            Level::INFO => "info",
            Level::DEBUG => "debug",
            Level::TRACE => "trace",
        };
        write!(writer, "sigcat: {level}: ")?;
        if !meta.target().starts_with("sigcat") {
            write!(writer, "{}: ", meta.target())?;
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

/// Logs go to stderr: stdout belongs to records, manifests and, with `--tee` or `ingest`, the
/// build log itself. Levels come from `RUST_LOG` (a malformed one is said, not ignored).
pub(crate) fn init_logging(format: LogFormat, default_level: &str, service: bool) {
    let builder = tracing_subscriber::EnvFilter::builder().with_default_directive(
        default_level
            .parse()
            .unwrap_or_else(|_| tracing::level_filters::LevelFilter::WARN.into()),
    );
    let (filter, bad) = match std::env::var("RUST_LOG") {
        Ok(value) if !value.trim().is_empty() => match builder.parse(&value) {
            Ok(f) => (f, None),
            Err(e) => (
                tracing_subscriber::EnvFilter::new(default_level),
                Some(format!(
                    "RUST_LOG=`{value}` is not a log filter ({e}); using `{default_level}`"
                )),
            ),
        },
        _ => (tracing_subscriber::EnvFilter::new(default_level), None),
    };
    let base = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(RedactingStderr)
        .with_target(false);
    let _ = match (format, service) {
        (LogFormat::Json, _) => base.json().try_init(),
        (LogFormat::Text, true) => base.try_init(),
        (LogFormat::Text, false) => base.event_format(Plain).try_init(),
    };
    if let Some(bad) = bad {
        warn(&bad);
    }
}
