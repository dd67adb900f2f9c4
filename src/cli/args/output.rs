//! Where a result goes (`--output-file`) and the formats the catalog commands print in.

use clap::{Args, ValueEnum};
use std::path::PathBuf;

/// `--output-file PATH`: instead of stdout.
#[derive(Args)]
pub(crate) struct OutputFile {
    /// Write to PATH (atomically) instead of stdout.
    #[arg(long, value_name = "PATH")]
    pub(crate) output_file: Option<PathBuf>,
}

/// How lists and reports are printed.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum ListFormat {
    /// Columns, for people.
    Table,
    /// JSON: one entry per line (list), or the whole report (verify).
    Json,
    /// YAML documents.
    Yaml,
}

/// How one object (a record, a template) is printed.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ObjectFormat {
    /// YAML.
    Yaml,
    /// JSON.
    Json,
}
