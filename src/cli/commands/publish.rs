//! `sigcat publish` and `sigcat ingest`: records, logs or manifests into the catalog.
//!
//! Each input, and each image in it, is handled on its own: one that is invalid, refused or in
//! conflict is reported with what it is and why, the others are published, and a line per item
//! says what happened. Only the storage, the operator's settings or the catalog's own data stop
//! a whole call.

use crate::cli::args::catalog::{CatalogArgs, SigningArgs};
use crate::cli::args::image::{RecordArgs, TemplateArgs};
use crate::cli::args::{self};
use crate::cli::failure::Failure;
use crate::cli::report::Report;
use crate::cli::{inputs, messages, runtime};
use clap::Args;
use sigcat::Fault;
use sigcat::catalog::entry::{self, Entry};
use sigcat::catalog::{AnyStore, Catalog};
use sigcat::parse::{self, Parsed, lines::LineReader};
use sigcat::record::kubernetes::KubeVersion;
use sigcat::render::TemplateOptions;
use std::path::{Path, PathBuf};

const PUBLISH_EXAMPLES: &str = "\
Examples:
  sigcat publish records.json --catalog azblob://myaccount/images
  sigcat publish packer.out --manifest manifest.json            # local catalog (default location)
  AZURE_STORAGE_CONNECTION_STRING=UseDevelopmentStorage=true sigcat publish records.json --catalog azblob://devstoreaccount1/images

Each input and each image is handled on its own: one that is invalid, refused or in conflict
is reported, the others are published, and a line per item says what happened.";

const INGEST_EXAMPLES: &str = "\
Examples:
  make build-azure-sig-ubuntu-2404 2>&1 | sigcat ingest --catalog azblob://myaccount/images
  make build-azure-sig-ubuntu-2404 2>&1 | sigcat ingest --manifest manifest.json

The log passes through to stdout unchanged and to its end, whatever happens (an invalid log,
bad catalog settings); problems are said on stderr at once and in the exit code at the end.";

#[derive(Args)]
#[command(about = "Publish records, logs or manifests into the image catalog", after_help = args::help(PUBLISH_EXAMPLES))]
pub(crate) struct PublishArgs {
    /// Records (JSON lines from `sigcat parse`), build logs or manifest.json files; stdin if none.
    files: Vec<PathBuf>,
    #[command(flatten)]
    catalog: CatalogArgs,
    #[command(flatten)]
    signing: SigningArgs,
    #[command(flatten)]
    template: TemplateArgs,
    #[command(flatten)]
    records: RecordArgs,
}

#[derive(Args)]
#[command(about = "Pass a build log through, parse it as it streams, publish its images at the end", after_help = args::help(INGEST_EXAMPLES))]
pub(crate) struct IngestArgs {
    #[command(flatten)]
    catalog: CatalogArgs,
    #[command(flatten)]
    signing: SigningArgs,
    #[command(flatten)]
    template: TemplateArgs,
    #[command(flatten)]
    records: RecordArgs,
}

/// Records of one input → entries; what cannot be an entry is reported.
fn prepare(report: &mut Report, parsed: &Parsed, options: &TemplateOptions) -> Vec<Entry> {
    let mut entries = Vec::new();
    for r in parsed.records.iter().filter(|r| r.has_image()) {
        match entry::prepare(r, options) {
            Ok(e) => entries.push(e),
            Err(refused) => report.refused(&refused),
        }
    }
    entries
}

/// Publishes the entries of a call (one index update for all of them) and reports each.
fn publish_entries(
    catalog: &Catalog<AnyStore>,
    report: &mut Report,
    entries: &[Entry],
) -> Result<(), Failure> {
    if entries.is_empty() {
        return Ok(());
    }
    let outcomes = runtime()?.block_on(catalog.publish(entries))?;
    for (e, o) in entries.iter().zip(&outcomes) {
        report.published(e, o);
    }
    Ok(())
}

pub(crate) fn run_publish(args: PublishArgs) -> Result<Option<Fault>, Failure> {
    let options = args.template.options()?;
    let catalog = args.catalog.open_for_writing(&args.signing)?;
    let manifest = inputs::read_manifest(args.records.manifest.as_deref())?;
    let mut report = Report::new(catalog.describe());
    let mut entries = Vec::new();
    for path in inputs::or_stdin(&args.files) {
        let source = inputs::source_name(&path);
        match read_one(
            &path,
            manifest.as_ref(),
            args.records.kubernetes_version.as_ref(),
        ) {
            Ok(parsed) => {
                for w in &parsed.warnings {
                    messages::warn(w);
                }
                report.parsed(&source, &parsed);
                entries.extend(prepare(&mut report, &parsed, &options));
            }
            Err(e) => report.input_failed(&e),
        }
    }
    publish_entries(&catalog, &mut report, &entries).map_err(|f| f.after(report.outcome()))?;
    Ok(report.outcome())
}

fn read_one(
    path: &Path,
    manifest: Option<&(String, Vec<parse::manifest::ManifestBuild>)>,
    kubernetes_version: Option<&KubeVersion>,
) -> Result<Parsed, sigcat::Error> {
    let mut parsed = inputs::read_input(path)?;
    inputs::finish_records(&mut parsed, manifest, kubernetes_version)?;
    Ok(parsed)
}

pub(crate) fn run_ingest(args: IngestArgs) -> Result<Option<Fault>, Failure> {
    // The settings are checked first, but nothing stops the log from passing through: a
    // problem is said at once, and again (with the exit code) at the end.
    let setup = args
        .template
        .options()
        .and_then(|o| Ok((o, args.catalog.open_for_writing(&args.signing)?)));
    if let Err(e) = &setup {
        messages::warn(&format!(
            "{}; the log still passes through, but nothing will be published",
            sigcat::error::chain(e)
        ));
    }
    inputs::stdin_hint();
    let mut reader = LineReader::new(std::io::stdin().lock()).with_tee(Box::new(std::io::stdout()));
    let parsed = parse::parse_stream(&mut reader, "<stdin>", None);
    if let Err(e) = &parsed {
        messages::warn(&format!(
            "{}; the log still passes through to its end, but nothing will be published",
            sigcat::error::chain(e)
        ));
        reader
            .drain()
            .map_err(|e| sigcat::Error::io("<stdin>", e))?;
    }
    if let Some(e) = reader.take_tee_error() {
        messages::warn(&format!("copying the log to stdout stopped: {e}"));
    }
    let (options, catalog) = setup?;
    let mut parsed = parsed?;
    // Packer writes the manifest only for builds that succeeded: a missing one is news, not
    // an error, here.
    let manifest_path = args.records.manifest.as_deref().filter(|m| {
        let there = m.exists();
        if !there {
            messages::warn(&format!("{}: no manifest (the build may have failed); the Kubernetes version comes from the log alone", m.display()));
        }
        there
    });
    let manifest = inputs::read_manifest(manifest_path)?;
    inputs::finish_records(
        &mut parsed,
        manifest.as_ref(),
        args.records.kubernetes_version.as_ref(),
    )?;
    for w in &parsed.warnings {
        messages::warn(w);
    }
    let mut report = Report::new(catalog.describe());
    report.parsed("<stdin>", &parsed);
    let entries = prepare(&mut report, &parsed, &options);
    publish_entries(&catalog, &mut report, &entries).map_err(|f| f.after(report.outcome()))?;
    Ok(report.outcome())
}
