//! Command line: argument parsing (clap), messages on stderr and exit codes.

mod catalog_cmd;
mod inputs;
mod parse_cmd;
mod render_cmd;
mod watch_cmd;

use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// Exit codes, documented in the README. Stable: CI scripts branch on them.
pub mod exit {
    pub const OK: u8 = 0;
    /// A build failed or was interrupted (its record is still written).
    pub const BUILD_FAILED: u8 = 1;
    /// The command line was wrong (clap's own code for usage errors).
    pub const USAGE: u8 = 2;
    /// No artifact: a truncated log, the wrong file, or a build that finished without an image.
    pub const NO_ARTIFACT: u8 = 3;
    /// The input is invalid: the message names the file, the line and what was expected.
    pub const INVALID_INPUT: u8 = 4;
    /// Reading or writing a file failed.
    pub const IO: u8 = 5;
    /// sigcat refused: applying the result would fail or do harm (version skew, missing Plan).
    pub const REFUSED: u8 = 6;
    /// The same image is already in the catalog with different content.
    pub const CONFLICT: u8 = 7;
    /// The catalog's storage failed (after bounded retries); nothing was half-published.
    pub const STORAGE: u8 = 8;
}

const ABOUT: &str = "Turn Packer / image-builder Azure build output into image records";

const EXAMPLES: &str = "\
Examples:
  make build-azure-sig-ubuntu-2404 | sigcat parse --tee -o records.json
  sigcat parse packer.out
  sigcat parse packer.out --manifest manifest.json --format github >> \"$GITHUB_OUTPUT\"
  eval \"$(sigcat parse packer.out --format env)\"
  sigcat render records.json --from current-template.yaml | kubectl apply -f -
  make build-azure-sig-ubuntu-2404 2>&1 | sigcat ingest --catalog azblob://myaccount/images
  sigcat catalog latest --kubernetes 1.30 --os ubuntu-2404";

#[derive(Parser)]
#[command(name = "sigcat", version, about = ABOUT, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log line format on stderr (levels from RUST_LOG, default `warn`; `sigcat watch` logs
    /// one line per file at `info`).
    #[arg(long, value_enum, global = true, default_value = "text")]
    log_format: LogFormat,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Logs go to stderr through tracing-subscriber: stdout belongs to records, manifests and,
/// with --tee or ingest, the build log itself.
fn init_logging(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

#[derive(Subcommand)]
enum Command {
    Parse(parse_cmd::ParseArgs),
    Render(render_cmd::RenderArgs),
    Publish(catalog_cmd::PublishArgs),
    Ingest(catalog_cmd::IngestArgs),
    Catalog(catalog_cmd::CatalogArgs),
    Watch(watch_cmd::WatchArgs),
    Healthcheck(watch_cmd::HealthcheckArgs),
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    // The watcher's one line per file outcome is its normal output.
    init_logging(
        cli.log_format,
        if matches!(cli.command, Command::Watch(_)) {
            "info"
        } else {
            "warn"
        },
    );
    let code = match cli.command {
        Command::Parse(args) => parse_cmd::run(args),
        Command::Render(args) => render_cmd::run(args),
        Command::Publish(args) => catalog_cmd::run_publish(args),
        Command::Ingest(args) => catalog_cmd::run_ingest(args),
        Command::Catalog(args) => catalog_cmd::run_catalog(args),
        Command::Watch(args) => watch_cmd::run(args),
        Command::Healthcheck(args) => watch_cmd::healthcheck(args),
    };
    ExitCode::from(code)
}

/// Prints an error and returns its exit code.
pub fn report(error: &sigcat::Error) -> u8 {
    eprintln!("sigcat: error: {error}");
    match error {
        sigcat::Error::Input(_) => exit::INVALID_INPUT,
        sigcat::Error::Io { .. } => exit::IO,
        sigcat::Error::Usage(_) => exit::USAGE,
        sigcat::Error::Refused(_) => exit::REFUSED,
    }
}

pub fn warn(message: &str) {
    eprintln!("sigcat: warning: {message}");
}

/// Writes a command's output to `-o FILE` (atomically) or stdout.
pub fn write_output(path: Option<&Path>, text: &str) -> Result<(), sigcat::Error> {
    match path {
        Some(path) => write_atomically(path, text.as_bytes()),
        None => std::io::stdout()
            .lock()
            .write_all(text.as_bytes())
            .map_err(|e| sigcat::Error::io("<stdout>", e)),
    }
}

/// Writes `bytes` to `path` so that readers see the old file or the whole new one, never a part.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), sigcat::Error> {
    let io = |e| sigcat::Error::io(path.display().to_string(), e);
    let name = path
        .file_name()
        .ok_or_else(|| sigcat::Error::Usage(format!("{}: not a file name", path.display())))?;
    let tmp = path.with_file_name(format!(
        ".{}.sigcat-{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}
