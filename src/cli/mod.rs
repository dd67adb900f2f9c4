//! Command line: arguments ([`args`], split by topic), one module per command ([`commands`]),
//! messages on stderr ([`messages`]) and the exit code ([`exit`]).
//!
//! Every command returns `Result<Option<Fault>, Failure>`: the worst that happened (`None`
//! when all went well), or the failure that ended it early. [`main`] is the one place a
//! failure is printed and an outcome becomes an exit code, as ripgrep's `main.rs` is.

mod args;
mod commands;
mod exit;
mod failure;
mod inputs;
mod messages;
mod output;
mod report;
mod table;

use clap::{Parser, Subcommand};
use commands::{catalog, docs, parse, publish, render};
use failure::Failure;
use messages::LogFormat;
use sigcat::{Classify, Fault};
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

#[derive(Parser)]
#[command(name = "sigcat", version = VERSION, about = ABOUT, after_help = args::help(EXAMPLES))]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log line format on stderr (levels from RUST_LOG, default `warn`; `sigcat watch` logs
    /// one line per file at `info`).
    #[arg(long, value_enum, global = true, default_value = "text", help_heading = args::GLOBAL)]
    log_format: LogFormat,
}

#[derive(Subcommand)]
enum Command {
    Parse(parse::ParseArgs),
    Render(render::RenderArgs),
    Publish(publish::PublishArgs),
    Ingest(publish::IngestArgs),
    Catalog(catalog::CatalogCommandArgs),
    #[cfg(feature = "watch")]
    Watch(commands::watch::WatchArgs),
    #[cfg(feature = "watch")]
    Healthcheck(commands::watch::HealthcheckArgs),
    Completion(docs::CompletionArgs),
    Man(docs::ManArgs),
    Schema(docs::SchemaArgs),
}

/// Runs the command line and decides the exit code, once.
pub(crate) fn main() -> ExitCode {
    let outcome = match run() {
        Ok(outcome) => outcome,
        Err(failure) => {
            report(&failure);
            failure.fault()
        }
    };
    ExitCode::from(exit::code(outcome))
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

fn run() -> Result<Option<Fault>, Failure> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help and usage errors itself (to stdout or stderr); a closed stream
            // is not worth a panic.
            let _ = e.print();
            return Err(Failure::Quiet(e.use_stderr().then_some(Fault::Settings)));
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
        Command::Parse(args) => parse::run(args),
        Command::Render(args) => render::run(args),
        Command::Publish(args) => publish::run_publish(args),
        Command::Ingest(args) => publish::run_ingest(args),
        Command::Catalog(args) => catalog::run(args),
        #[cfg(feature = "watch")]
        Command::Watch(args) => commands::watch::run(args),
        #[cfg(feature = "watch")]
        Command::Healthcheck(args) => commands::watch::healthcheck(args),
        Command::Completion(args) => docs::completion(args),
        Command::Man(args) => docs::man(args),
        Command::Schema(args) => docs::schema(args),
    }
}

/// The async runtime of the one-shot commands (the watcher builds its own).
fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| sigcat::Error::io("<tokio runtime>", e).into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every command, argument and option says what it is for in `--help` (and so in the man
    /// pages and completions), and every command's `--help` ends with the exit codes.
    #[test]
    fn every_argument_is_described_and_every_help_ends_with_the_exit_codes() {
        fn walk(cmd: &mut clap::Command, path: &str, missing: &mut Vec<String>) {
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
            let help = cmd.render_long_help().to_string();
            if !help
                .trim_end()
                .ends_with(exit::TABLE.lines().last().unwrap_or_default())
            {
                missing.push(format!("{here}: --help does not end with the exit codes"));
            }
            let names: Vec<String> = cmd
                .get_subcommands()
                .filter(|s| s.get_name() != "help")
                .map(|s| s.get_name().to_string())
                .collect();
            for name in names {
                if let Some(sub) = cmd.find_subcommand_mut(&name) {
                    walk(sub, &here, missing);
                }
            }
        }
        let mut missing = Vec::new();
        let mut cli = Cli::command();
        cli.build();
        walk(&mut cli, "", &mut missing);
        assert!(missing.is_empty(), "{missing:#?}");
    }

    #[test]
    fn commands_that_only_read_offer_no_signing_key() {
        let mut cli = Cli::command();
        cli.build();
        let catalog = cli.find_subcommand("catalog").unwrap();
        for name in ["list", "latest", "show", "verify"] {
            let sub = catalog.find_subcommand(name).unwrap();
            assert!(
                sub.get_arguments().all(|a| a.get_id() != "signing_key"),
                "catalog {name} offers --signing-key"
            );
        }
        for name in ["yank", "unyank", "rebuild-index"] {
            let sub = catalog.find_subcommand(name).unwrap();
            assert!(
                sub.get_arguments().any(|a| a.get_id() == "signing_key"),
                "catalog {name} cannot sign"
            );
        }
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
