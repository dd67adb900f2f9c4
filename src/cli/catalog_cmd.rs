//! `sigcat publish`, `sigcat ingest` and `sigcat catalog`: the catalog from the command line.

use super::{exit, report, warn};
use clap::{Args, Subcommand, ValueEnum};
use sigcat::catalog::index::{Filter, IndexEntry};
use sigcat::catalog::{self, AnyStore, Catalog, CatalogError, Outcome};
use sigcat::parse::{self, lines::LineReader};
use sigcat::record::{BuildResult, Record};
use sigcat::render::TemplateOptions;
use std::path::PathBuf;

const PUBLISH_EXAMPLES: &str = "\
Examples:
  sigcat publish records.json --catalog azblob://myaccount/images
  sigcat publish packer.out --manifest manifest.json            # local catalog (default location)
  AZURE_STORAGE_CONNECTION_STRING=UseDevelopmentStorage=true sigcat publish records.json --catalog azblob://devstoreaccount1/images

Exit codes: 0 published (or already there); 1 an input build failed (its images are still
published); 4 invalid input; 6 refused; 7 the same image is already published with different
content; 8 the catalog's storage failed (after retries; nothing half-published).";

const INGEST_EXAMPLES: &str = "\
Examples:
  make build-azure-sig-ubuntu-2404 2>&1 | sigcat ingest --catalog azblob://myaccount/images
  make build-azure-sig-ubuntu-2404 2>&1 | sigcat ingest --manifest manifest.json

The log passes through to stdout unchanged; the summary goes to stderr. Exit codes as for
`sigcat parse` (1 when a build failed, 3 when the log has no image), plus 7 and 8 as for publish.";

const CATALOG_EXAMPLES: &str = "\
Examples:
  sigcat catalog list --kubernetes 1.30 --os ubuntu-2404
  sigcat catalog latest --kubernetes 1.30 --definition capi-ubuntu-2404 | kubectl apply -f -
  sigcat catalog latest --kubernetes 1.30 --record
  sigcat catalog show capi-ubuntu-2404-0-3-1721037000-1a2b3c4d --template";

/// Where the catalog is: shared by every catalog command.
#[derive(Args, Clone)]
pub struct CatalogArg {
    /// Catalog location: a directory, azblob://ACCOUNT/CONTAINER[/PREFIX], or
    /// http(s)://HOST/ACCOUNT/CONTAINER[/PREFIX]. Default: $SIGCAT_CATALOG, else
    /// ~/.local/share/sigcat/catalog.
    #[arg(long, value_name = "URL", global = true)]
    catalog: Option<String>,
}

/// How the stored AzureMachineTemplate is rendered.
#[derive(Args, Clone)]
pub struct TemplateArgs {
    /// VM size of the stored template (adjust it later with `sigcat render --from`).
    #[arg(long, value_name = "SIZE", default_value = "Standard_D2s_v3")]
    vm_size: String,
    #[command(flatten)]
    image: super::inputs::ImageArgs,
    /// The manifest.json of the same run (adds the Kubernetes version).
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// Kubernetes version when the input does not tell.
    #[arg(long, value_name = "VERSION")]
    kubernetes_version: Option<String>,
}

#[derive(Args)]
#[command(about = "Publish records, logs or manifests into the image catalog", after_help = PUBLISH_EXAMPLES)]
pub struct PublishArgs {
    /// Records (JSON lines from `sigcat parse`), build logs or manifest.json files; stdin if none.
    files: Vec<PathBuf>,
    #[command(flatten)]
    catalog: CatalogArg,
    #[command(flatten)]
    template: TemplateArgs,
}

#[derive(Args)]
#[command(about = "Pass a build log through, parse it as it streams, publish its images at the end", after_help = INGEST_EXAMPLES)]
pub struct IngestArgs {
    #[command(flatten)]
    catalog: CatalogArg,
    #[command(flatten)]
    template: TemplateArgs,
}

#[derive(Args)]
#[command(about = "Query the image catalog", after_help = CATALOG_EXAMPLES)]
pub struct CatalogArgs {
    #[command(subcommand)]
    command: CatalogCommand,
    #[command(flatten)]
    catalog: CatalogArg,
}

#[derive(Subcommand)]
enum CatalogCommand {
    /// Images in the catalog, newest first.
    List {
        #[command(flatten)]
        filter: FilterArgs,
        #[arg(long, value_enum, default_value = "table")]
        format: ListFormat,
    },
    /// The newest image that matches: its AzureMachineTemplate, or its record.
    Latest {
        #[command(flatten)]
        filter: FilterArgs,
        /// Print the record (JSON) instead of the template.
        #[arg(long)]
        record: bool,
    },
    /// One image by id: its record, or its template.
    Show {
        id: String,
        #[arg(long)]
        template: bool,
    },
}

#[derive(Args)]
struct FilterArgs {
    /// Kubernetes minor (`1.30`) or exact version (`1.30.3`).
    #[arg(long, value_name = "VERSION")]
    kubernetes: Option<String>,
    /// OS: matched within the OS type, distro and image definition (`ubuntu-2404`, `windows`).
    #[arg(long)]
    os: Option<String>,
    /// Image definition, exactly (`capi-ubuntu-2404`).
    #[arg(long)]
    definition: Option<String>,
    /// Gallery name, exactly.
    #[arg(long)]
    gallery: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum ListFormat {
    Table,
    Json,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime starts")
}

pub fn open(
    arg: &CatalogArg,
    template: TemplateOptions,
) -> Result<Catalog<AnyStore>, sigcat::Error> {
    let location = arg
        .catalog
        .clone()
        .unwrap_or_else(catalog::default_location);
    let store = catalog::open_store(&location).map_err(sigcat::Error::Usage)?;
    Ok(Catalog::new(store, template))
}

pub fn template_options(t: &TemplateArgs) -> Result<TemplateOptions, sigcat::Error> {
    t.image.template_options(Some(t.vm_size.clone()))
}

/// Exit codes of catalog errors.
pub fn report_catalog(e: &CatalogError) -> u8 {
    match e {
        CatalogError::Render(inner) => report(inner),
        CatalogError::Conflict { .. } => {
            eprintln!("sigcat: error: {e}");
            exit::CONFLICT
        }
        CatalogError::Store { .. } | CatalogError::Invalid { .. } => {
            eprintln!("sigcat: error: {e}");
            exit::STORAGE
        }
    }
}

fn summarize(catalog: &str, records: &[Record], outcomes: &[Outcome]) {
    for o in outcomes {
        match o {
            Outcome::Published(id) => eprintln!("sigcat: published {id} to {catalog}"),
            Outcome::Unchanged(id) => eprintln!("sigcat: {id} is already in {catalog} (unchanged)"),
        }
    }
    for r in records
        .iter()
        .filter(|r| r.result != BuildResult::Succeeded)
    {
        eprintln!(
            "sigcat: build {} {}: {}",
            r.build_name,
            if r.result == BuildResult::Failed {
                "failed"
            } else {
                "was interrupted"
            },
            r.error.as_deref().unwrap_or("")
        );
    }
}

fn publish_and_report(catalog: &Catalog<AnyStore>, records: &[Record]) -> u8 {
    let result = runtime().block_on(catalog.publish(records));
    match result {
        Ok(outcomes) => {
            summarize(&catalog.describe(), records, &outcomes);
            if records.iter().any(|r| r.result != BuildResult::Succeeded) {
                exit::BUILD_FAILED
            } else if outcomes.is_empty() {
                eprintln!("sigcat: no image to publish");
                exit::NO_ARTIFACT
            } else {
                exit::OK
            }
        }
        Err(e) => report_catalog(&e),
    }
}

pub fn run_publish(args: PublishArgs) -> u8 {
    let prepared = (|| {
        let options = template_options(&args.template)?;
        let records = super::inputs::load_records(
            &args.files,
            args.template.manifest.as_deref(),
            args.template.kubernetes_version.as_deref(),
        )?;
        Ok::<_, sigcat::Error>((open(&args.catalog, options)?, records))
    })();
    match prepared {
        Ok((catalog, records)) => publish_and_report(&catalog, &records),
        Err(e) => report(&e),
    }
}

pub fn run_ingest(args: IngestArgs) -> u8 {
    let prepared = (|| {
        let catalog = open(&args.catalog, template_options(&args.template)?)?;
        // The log goes through first, whatever happens next: the build's output is never lost.
        let reader = LineReader::new(std::io::stdin().lock()).with_tee(Box::new(std::io::stdout()));
        let mut parsed = parse::parse_stream(reader, "<stdin>", None)?;
        // Packer writes the manifest only for builds that succeeded: a missing one is news,
        // not an error, here.
        let manifest = args.template.manifest.as_deref().filter(|m| {
            let there = m.exists();
            if !there {
                warn(&format!("{}: no manifest (the build may have failed); the Kubernetes version comes from the log alone", m.display()));
            }
            there
        });
        super::inputs::finish_records(
            &mut parsed.records,
            manifest,
            args.template.kubernetes_version.as_deref(),
        )?;
        Ok::<_, sigcat::Error>((catalog, parsed))
    })();
    let (catalog, parsed) = match prepared {
        Ok(p) => p,
        Err(e) => return report(&e),
    };
    for w in &parsed.warnings {
        warn(w);
    }
    let code = publish_and_report(&catalog, &parsed.records);
    if code == exit::OK && !parsed.incomplete.is_empty() {
        eprintln!(
            "sigcat: no result for {} (truncated log?)",
            parsed.incomplete.join(", ")
        );
        return exit::NO_ARTIFACT;
    }
    code
}

pub fn run_catalog(args: CatalogArgs) -> u8 {
    let catalog = match open(&args.catalog, TemplateOptions::default()) {
        Ok(c) => c,
        Err(e) => return report(&e),
    };
    let rt = runtime();
    let result: Result<u8, CatalogError> = rt.block_on(async {
        match args.command {
            CatalogCommand::List { filter, format } => {
                let entries = catalog.list(&to_filter(filter)).await?;
                match format {
                    ListFormat::Json => {
                        for e in &entries {
                            println!("{}", serde_json::to_string(e).expect("entries serialise"));
                        }
                    }
                    ListFormat::Table => print!("{}", table(&entries)),
                }
                Ok(exit::OK)
            }
            CatalogCommand::Latest { filter, record } => {
                match catalog.latest(&to_filter(filter)).await? {
                    Some(entry) => {
                        let bytes = catalog
                            .object(&entry, if record { "record" } else { "template" })
                            .await?;
                        print!("{}", String::from_utf8_lossy(&bytes));
                        if record {
                            println!();
                        }
                        Ok(exit::OK)
                    }
                    None => {
                        eprintln!("sigcat: no image in {} matches", catalog.describe());
                        Ok(exit::NO_ARTIFACT)
                    }
                }
            }
            CatalogCommand::Show { id, template } => {
                let index = catalog.index().await?;
                match index.images.iter().find(|e| e.id == id) {
                    Some(entry) => {
                        let bytes = catalog
                            .object(entry, if template { "template" } else { "record" })
                            .await?;
                        print!("{}", String::from_utf8_lossy(&bytes));
                        if !template {
                            println!();
                        }
                        Ok(exit::OK)
                    }
                    None => {
                        eprintln!("sigcat: no image `{id}` in {}", catalog.describe());
                        Ok(exit::NO_ARTIFACT)
                    }
                }
            }
        }
    });
    result.unwrap_or_else(|e| report_catalog(&e))
}

fn to_filter(f: FilterArgs) -> Filter {
    Filter {
        kubernetes: f.kubernetes,
        os: f.os,
        definition: f.definition,
        gallery: f.gallery,
    }
}

fn table(entries: &[IndexEntry]) -> String {
    let header = [
        "ID",
        "KUBERNETES",
        "OS",
        "DEFINITION",
        "VERSION",
        "GALLERY",
        "PUBLISHED",
    ];
    let rows: Vec<[String; 7]> = entries
        .iter()
        .map(|e| {
            let s = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
            [
                e.id.clone(),
                s(&e.kubernetes_version),
                s(&e.distro),
                s(&e.image_definition),
                s(&e.gallery_image_version),
                s(&e.gallery),
                e.published_at.clone(),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..7)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
            + "\n"
    };
    let mut out = line(header.to_vec());
    for r in &rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}
