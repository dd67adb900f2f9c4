//! Command line: argument parsing (clap), messages on stderr and exit codes.
//!
//! Every command returns `Result<Exit, Failure>`: the exit code of what happened, or the
//! failure that ended it. [`main`] is the one place a failure is printed and turned into an
//! exit code, as ripgrep's `main.rs` does.

mod catalog_cmd;
mod docs_cmd;
mod exit;
mod failure;
mod inputs;
mod messages;
mod output;
mod parse_cmd;
mod render_cmd;
#[cfg(feature = "watch")]
mod watch_cmd;

use clap::{Parser, Subcommand};
use exit::Exit;
use failure::Failure;
use messages::LogFormat;
use std::process::ExitCode;

const ABOUT: &str = "Turn Packer / image-builder Azure build output into image records";

const EXAMPLES: &str = "\
Examples:
  make build-azure-sig-ubuntu-2404 | sigcat parse --tee --output-file records.json
  sigcat parse packer.out
  sigcat parse packer.out --manifest manifest.json -o github >> \"$GITHUB_OUTPUT\"
  eval \"$(sigcat parse packer.out -o env)\"
  sigcat render records.json --from current-template.yaml | kubectl apply -f -
  make build-azure-sig-ubuntu-2404 2>&1 | sigcat ingest --catalog azblob://myaccount/images
  sigcat catalog latest --kubernetes 1.30 --os ubuntu-2404
  source <(sigcat completion bash)";

/// The version and the commit it was built from (see build.rs).
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("SIGCAT_COMMIT"), ")");

/// Options every subcommand takes are listed under this heading in `--help`.
pub const GLOBAL: &str = "Global options";

#[derive(Parser)]
#[command(name = "sigcat", version = VERSION, about = ABOUT, after_help = EXAMPLES)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log line format on stderr (levels from RUST_LOG, default `warn`; `sigcat watch` logs
    /// one line per file at `info`).
    #[arg(long, value_enum, global = true, default_value = "text", help_heading = GLOBAL)]
    log_format: LogFormat,
}

#[derive(Subcommand)]
enum Command {
    Parse(parse_cmd::ParseArgs),
    Render(render_cmd::RenderArgs),
    Publish(catalog_cmd::PublishArgs),
    Ingest(catalog_cmd::IngestArgs),
    Catalog(catalog_cmd::CatalogArgs),
    #[cfg(feature = "watch")]
    Watch(watch_cmd::WatchArgs),
    #[cfg(feature = "watch")]
    Healthcheck(watch_cmd::HealthcheckArgs),
    Completion(docs_cmd::CompletionArgs),
    Man(docs_cmd::ManArgs),
    Schema(docs_cmd::SchemaArgs),
}

pub fn main() -> ExitCode {
    let exit = match run() {
        Ok(exit) => exit,
        Err(failure) => {
            report(&failure);
            failure.exit()
        }
    };
    ExitCode::from(exit.code())
}

/// The one place a failure is printed.
fn report(failure: &Failure) {
    if let Failure::Quiet(_) = failure {
        return;
    }
    let mut text = format!("sigcat: error: {}", sigcat::error::chain(failure));
    if let Some(hint) = failure.hint() {
        text.push_str(&format!("\nsigcat: hint: {hint}"));
    }
    text.push('\n');
    messages::to_stderr(&text);
}

fn run() -> Result<Exit, Failure> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help and usage errors itself (to stdout or stderr); a closed stream
            // is not worth a panic.
            let _ = e.print();
            return Err(Failure::Quiet(if e.use_stderr() {
                Exit::Usage
            } else {
                Exit::Ok
            }));
        }
    };
    #[cfg(feature = "watch")]
    let service = matches!(cli.command, Command::Watch(_));
    #[cfg(not(feature = "watch"))]
    let service = false;
    // The watcher's one line per file outcome is its normal output.
    messages::init_logging(
        cli.log_format,
        if service { "info" } else { "warn" },
        service,
    );
    match cli.command {
        Command::Parse(args) => parse_cmd::run(args),
        Command::Render(args) => render_cmd::run(args),
        Command::Publish(args) => catalog_cmd::run_publish(args),
        Command::Ingest(args) => catalog_cmd::run_ingest(args),
        Command::Catalog(args) => catalog_cmd::run_catalog(args),
        #[cfg(feature = "watch")]
        Command::Watch(args) => watch_cmd::run(args),
        #[cfg(feature = "watch")]
        Command::Healthcheck(args) => watch_cmd::healthcheck(args),
        Command::Completion(args) => docs_cmd::completion(args),
        Command::Man(args) => docs_cmd::man(args),
        Command::Schema(args) => docs_cmd::schema(args),
    }
}

/// `-o FORMAT`, as in kubectl and az. A path where a format belongs (`-o records.json`, what
/// `-o` meant before) gets a message that names `--output-file`, instead of a file named `json`.
pub fn output_format<T: clap::ValueEnum>(text: &str) -> Result<T, String> {
    if let Ok(format) = T::from_str(text, true) {
        return Ok(format);
    }
    let names: Vec<String> = T::value_variants()
        .iter()
        .filter_map(|v| v.to_possible_value())
        .map(|v| v.get_name().to_string())
        .collect();
    let mut message = format!("`{text}` is not an output format ({})", names.join(", "));
    if text.contains(['.', '/']) {
        message.push_str(&format!(
            "; -o names a format, as in kubectl; to write a file use --output-file {text}"
        ));
    }
    Err(message)
}

/// A subcommand's `--help` epilogue: its examples, then the exit codes every subcommand shares.
pub fn help(examples: &str) -> String {
    format!("{examples}\n\n{}", exit::TABLE)
}

/// `500ms`, `5s`, `10m`, `1h 30m`: durations as humans write them (the `humantime` crate),
/// bounded so that no arithmetic on them can overflow.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not a duration like 500ms, 5s, 10m ({e})"))?;
    if d > std::time::Duration::from_secs(7 * 24 * 3600) {
        return Err(format!("`{text}` is longer than a week"));
    }
    Ok(d)
}

/// `--kubernetes-version`: checked when the flag is read, so the library gets a version.
pub fn parse_kubernetes_version(
    text: &str,
) -> Result<sigcat::record::kubernetes::KubeVersion, String> {
    sigcat::record::kubernetes::KubeVersion::parse(text).ok_or_else(|| {
        format!("`{text}` is not a Kubernetes version; expected MAJOR.MINOR.PATCH such as 1.30.3")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every command, argument and option says what it is for in `--help` (and so in the man
    /// pages and completions).
    #[test]
    fn every_argument_is_described() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let here = format!("{path} {}", cmd.get_name());
            if !path.is_empty() && cmd.get_about().is_none() {
                missing.push(format!("{here}: the command"));
            }
            for arg in cmd.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !arg.is_hide_set() && !builtin && arg.get_help().is_none() {
                    missing.push(format!("{here}: {}", arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
                walk(sub, &here, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "", &mut missing);
        assert!(missing.is_empty(), "no description: {missing:#?}");
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
