//! `sigcat completion SHELL` and `sigcat man`: shell completions and man pages, generated from
//! the same clap definitions the binary parses with.

use crate::cli::failure::Failure;
use crate::cli::{Cli, args, output};
use clap::{Args, CommandFactory};
use clap_complete::Shell;
use sigcat::Fault;
use std::path::PathBuf;

const COMPLETION_EXAMPLES: &str = "\
Examples:
  # bash, for this shell; or for good: sigcat completion bash > /etc/bash_completion.d/sigcat
  source <(sigcat completion bash)
  # zsh: a file named _sigcat in a directory of $fpath
  sigcat completion zsh > \"${fpath[1]}/_sigcat\"
  sigcat completion fish > ~/.config/fish/completions/sigcat.fish
  sigcat completion powershell >> $PROFILE";

const MAN_EXAMPLES: &str = "\
Examples:
  sigcat man | man -l -
  sudo sigcat man --dir /usr/local/share/man/man1   # sigcat.1 and sigcat-<command>.1";

#[derive(Args)]
#[command(about = "Print a shell completion script", after_help = args::help(COMPLETION_EXAMPLES))]
pub(crate) struct CompletionArgs {
    /// The shell: bash, zsh, fish, powershell or elvish.
    shell: Shell,
}

#[derive(Args)]
#[command(about = "Print the man page, or write one per command into a directory", after_help = args::help(MAN_EXAMPLES))]
pub(crate) struct ManArgs {
    /// Write sigcat.1 and sigcat-<command>.1 for every command into DIR instead.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

#[derive(Args)]
#[command(about = "Print the JSON Schema of a catalog's index.json, or of a record", after_help = args::help(""))]
pub(crate) struct SchemaArgs {
    /// index (index.json, layout 5), section, shard, latest (a latest/ pointer) or record (what
    /// `parse` prints, and the catalog stores).
    which: Which,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Which {
    /// A catalog's index.json (its root).
    Index,
    /// A section of the index (one Kubernetes minor and OS).
    Section,
    /// A shard of the index.
    Shard,
    /// A latest/ pointer.
    Latest,
    /// A record, as `parse` prints it.
    Record,
}

pub(crate) fn schema(args: SchemaArgs) -> Result<Option<Fault>, Failure> {
    let text = match args.which {
        Which::Index => sigcat::catalog::index::SCHEMA,
        Which::Section => sigcat::catalog::index::SECTION_SCHEMA,
        Which::Shard => sigcat::catalog::index::SHARD_SCHEMA,
        Which::Latest => sigcat::catalog::index::LATEST_SCHEMA,
        Which::Record => sigcat::record::SCHEMA,
    };
    output::print(text.as_bytes())?;
    Ok(None)
}

pub(crate) fn completion(args: CompletionArgs) -> Result<Option<Fault>, Failure> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "sigcat", &mut script);
    output::print(&script)?;
    Ok(None)
}

pub(crate) fn man(args: ManArgs) -> Result<Option<Fault>, Failure> {
    let command = Cli::command();
    match args.dir {
        Some(dir) => {
            let io = |e| sigcat::Error::io(dir.display().to_string(), e);
            std::fs::create_dir_all(&dir).map_err(io)?;
            clap_mangen::generate_to(command, &dir).map_err(io)?;
        }
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(command)
                .render(&mut page)
                .map_err(|e| sigcat::Error::io("<stdout>", e))?;
            output::print(&page)?;
        }
    }
    Ok(None)
}
