//! `sigcat catalog`: find images (list, latest, show), take them out of service and back (yank,
//! unyank), and check and recover the catalog (verify, rebuild-index).

use crate::cli::args::catalog::{CatalogArgs, SigningArgs};
use crate::cli::args::filter::FilterArgs;
use crate::cli::args::output::{ListFormat, ObjectFormat, OutputFile};
use crate::cli::args::{self, FormatParser};
use crate::cli::failure::Failure;
use crate::cli::table::columns;
use crate::cli::{messages, output, runtime};
use clap::{Args, Subcommand};
use sigcat::catalog::index::IndexEntry;
use sigcat::catalog::rebuild::{self, Severity};
use sigcat::catalog::{AnyStore, Catalog, YankOutcome};
use sigcat::{Classify, Fault};

const CATALOG_EXAMPLES: &str = "\
Examples:
  sigcat catalog list --kubernetes 1.30 --os ubuntu-2404 --region westeurope
  sigcat catalog latest --kubernetes 1.30 --definition capi-ubuntu-2404 | kubectl apply -f -
  sigcat catalog latest --kubernetes 1.30 --record
  sigcat catalog show capi-ubuntu-2404-0-3-1721037000-1a2b3c4d --template
  sigcat catalog yank capi-ubuntu-2404-0-3-1721037000-1a2b3c4d --reason \"CVE-2026-1234 in containerd\"
  sigcat catalog verify --trusted-keys allowed_signers
  sigcat catalog rebuild-index --signing-key ~/.ssh/sigcat_ed25519";

const LIST_EXAMPLES: &str = "\
Examples:
  sigcat catalog list --kubernetes 1.30 --os ubuntu-2404
  sigcat catalog list --region westeurope --hide-yanked -o json";

const LATEST_EXAMPLES: &str = "\
Examples:
  sigcat catalog latest --kubernetes 1.30 --os ubuntu-2404 | kubectl apply -f -
  sigcat catalog latest --kubernetes 1.30 --region \"West Europe\" --record";

const SHOW_EXAMPLES: &str = "\
Examples:
  sigcat catalog show capi-ubuntu-2404-0-3-1721037000-1a2b3c4d
  sigcat catalog show capi-ubuntu-2404-0-3-1721037000-1a2b3c4d --template -o json";

const YANK_EXAMPLES: &str = "\
Examples:
  sigcat catalog yank capi-ubuntu-2404-0-3-1721037000-1a2b3c4d --reason \"CVE-2026-1234 in containerd\"
  sigcat catalog unyank capi-ubuntu-2404-0-3-1721037000-1a2b3c4d --reason \"false alarm\"";

const VERIFY_EXAMPLES: &str = "\
Examples:
  sigcat catalog verify
  sigcat catalog verify --trusted-keys allowed_signers -o json";

const REBUILD_EXAMPLES: &str = "\
Examples:
  sigcat catalog rebuild-index
  sigcat catalog rebuild-index --signing-key ~/.ssh/sigcat_ed25519 --trusted-keys allowed_signers";

#[derive(Args)]
#[command(about = "Query and maintain the image catalog", after_help = args::help(CATALOG_EXAMPLES))]
pub(crate) struct CatalogCommandArgs {
    #[command(subcommand)]
    command: CatalogCommand,
    #[command(flatten)]
    catalog: CatalogArgs,
}

#[derive(Subcommand)]
enum CatalogCommand {
    /// Images in the catalog, newest first (yanked ones marked).
    #[command(after_help = args::help(LIST_EXAMPLES))]
    List {
        #[command(flatten)]
        filter: FilterArgs,
        /// Leave yanked images out.
        #[arg(long)]
        hide_yanked: bool,
        /// table (for people), json (one index entry per line) or yaml (one document each).
        #[arg(short, long, alias = "format", value_name = "FORMAT", value_parser = FormatParser::<ListFormat>::new(), default_value = "table")]
        output: ListFormat,
        #[command(flatten)]
        file: OutputFile,
    },
    /// The newest image that matches and is not yanked: its AzureMachineTemplate, or its record.
    #[command(after_help = args::help(LATEST_EXAMPLES))]
    Latest {
        #[command(flatten)]
        filter: FilterArgs,
        /// Print the record (JSON) instead of the template.
        #[arg(long)]
        record: bool,
        /// yaml or json; default: yaml for a template, json for a record.
        #[arg(short, long, value_name = "FORMAT", value_parser = FormatParser::<ObjectFormat>::new())]
        output: Option<ObjectFormat>,
        #[command(flatten)]
        file: OutputFile,
    },
    /// One image by id: its record, or its template (a yanked one with a warning).
    #[command(after_help = args::help(SHOW_EXAMPLES))]
    Show {
        /// The image's id, as `catalog list` shows it.
        id: String,
        /// Print its AzureMachineTemplate instead of its record.
        #[arg(long)]
        template: bool,
        /// yaml or json; default: yaml for a template, json for a record.
        #[arg(short, long, value_name = "FORMAT", value_parser = FormatParser::<ObjectFormat>::new())]
        output: Option<ObjectFormat>,
        #[command(flatten)]
        file: OutputFile,
    },
    /// Take an image out of service: `latest` never returns it; its objects stay.
    #[command(after_help = args::help(YANK_EXAMPLES))]
    Yank {
        /// The image's id, as `catalog list` shows it.
        id: String,
        /// Why: shown by `list` and `show` (plain text, no control characters).
        #[arg(long, value_name = "TEXT", value_parser = args::parse_text)]
        reason: String,
        #[command(flatten)]
        signing: SigningArgs,
    },
    /// Put a yanked image back in service.
    #[command(after_help = args::help(YANK_EXAMPLES))]
    Unyank {
        /// The image's id, as `catalog list` shows it.
        id: String,
        /// Why (kept in the yank events; plain text, no control characters).
        #[arg(long, value_name = "TEXT", value_parser = args::parse_text)]
        reason: Option<String>,
        #[command(flatten)]
        signing: SigningArgs,
    },
    /// Check the catalog: objects against their sha256, the index against the records, yanks,
    /// the signature; objects the index does not account for are reported.
    #[command(after_help = args::help(VERIFY_EXAMPLES))]
    Verify {
        /// table (for people), json or yaml (the whole report).
        #[arg(short, long, alias = "format", value_name = "FORMAT", value_parser = FormatParser::<ListFormat>::new(), default_value = "table")]
        output: ListFormat,
        #[command(flatten)]
        file: OutputFile,
    },
    /// Rebuild the index from the objects (after it was lost or corrupted), replacing it.
    #[command(after_help = args::help(REBUILD_EXAMPLES))]
    RebuildIndex {
        #[command(flatten)]
        signing: SigningArgs,
    },
}

/// JSON-serialisable values as YAML documents (kubectl-safe quoting).
fn yaml_docs<T: serde::Serialize>(items: &[T]) -> String {
    let docs: Vec<serde_norway::Value> = items
        .iter()
        .filter_map(|i| serde_norway::to_value(i).ok())
        .collect();
    sigcat::yaml::to_stream(&docs)
}

pub(crate) fn run(args: CatalogCommandArgs) -> Result<Option<Fault>, Failure> {
    let open = &args.catalog;
    runtime()?.block_on(async {
        match args.command {
            CatalogCommand::List {
                filter,
                hide_yanked,
                output: format,
                file,
            } => {
                let catalog = open.open()?;
                let mut filter = filter.filter();
                filter.include_yanked = !hide_yanked;
                let entries = catalog.list(&filter).await?;
                let text = match format {
                    ListFormat::Json => entries
                        .iter()
                        .filter_map(|e| serde_json::to_string(e).ok())
                        .map(|line| line + "\n")
                        .collect(),
                    ListFormat::Yaml => yaml_docs(&entries),
                    ListFormat::Table => table(&entries),
                };
                output::write(file.output_file.as_deref(), text.as_bytes())?;
                Ok(None)
            }
            CatalogCommand::Latest {
                filter,
                record,
                output: format,
                file,
            } => {
                let catalog = open.open()?;
                let Some(entry) = catalog.latest(&filter.filter()).await? else {
                    return Err(Failure::NothingFound(format!(
                        "no image in {} matches (yanked images are never the latest)",
                        catalog.describe()
                    )));
                };
                print_object(&catalog, &entry, record, format, file).await
            }
            CatalogCommand::Show {
                id,
                template,
                output: format,
                file,
            } => {
                let catalog = open.open()?;
                let index = catalog.index().await?;
                let Some(entry) = index.find(&id) else {
                    return Err(Failure::NothingFound(format!(
                        "no image `{id}` in {}",
                        catalog.describe()
                    )));
                };
                if let Some(y) = entry.yank.as_ref().filter(|y| y.yanked) {
                    messages::warn(&format!(
                        "{id} was yanked at {}: {}; it is out of service",
                        y.at,
                        y.reason.as_deref().unwrap_or("no reason given")
                    ));
                }
                print_object(&catalog, entry, !template, format, file).await
            }
            CatalogCommand::Yank {
                id,
                reason,
                signing,
            } => {
                let catalog = open.open_for_writing(&signing)?;
                yank(&catalog, &id, true, Some(&reason)).await
            }
            CatalogCommand::Unyank {
                id,
                reason,
                signing,
            } => {
                let catalog = open.open_for_writing(&signing)?;
                yank(&catalog, &id, false, reason.as_deref()).await
            }
            CatalogCommand::Verify { output, file } => verify(&open.open()?, output, file).await,
            CatalogCommand::RebuildIndex { signing } => {
                let catalog = open.open_for_writing(&signing)?;
                let (index, findings) = catalog.rebuild_index().await?;
                for f in &findings {
                    messages::warn(&format!("{}: {}", f.subject, f.problem));
                }
                messages::say(&format!(
                    "rebuilt the index of {} from its objects: {} images ({} yanked)",
                    catalog.describe(),
                    index.images.len(),
                    index.images.iter().filter(|e| e.is_yanked()).count()
                ));
                Ok(Fault::worst_of(findings.iter().map(Classify::fault)))
            }
        }
    })
}

async fn yank(
    catalog: &Catalog<AnyStore>,
    id: &str,
    yanked: bool,
    reason: Option<&str>,
) -> Result<Option<Fault>, Failure> {
    let what = if yanked { "yanked" } else { "unyanked" };
    match catalog.yank(id, yanked, reason).await? {
        YankOutcome::Done(state) => {
            messages::say(&format!(
                "{what} {id} in {} ({})",
                catalog.describe(),
                state.event.key
            ));
            Ok(None)
        }
        YankOutcome::AlreadySo => {
            messages::say(&format!("{id} is already {what}; nothing changed"));
            Ok(None)
        }
        other => Err(Failure::NothingFound(match other {
            YankOutcome::NoSuchImage => format!("no image `{id}` in {}", catalog.describe()),
            other => format!("{id}: {other:?}"),
        })),
    }
}

async fn verify(
    catalog: &Catalog<AnyStore>,
    format: ListFormat,
    file: OutputFile,
) -> Result<Option<Fault>, Failure> {
    let report = rebuild::verify(catalog).await?;
    let text = match format {
        ListFormat::Json => serde_json::to_string_pretty(&report).unwrap_or_default() + "\n",
        ListFormat::Yaml => yaml_docs(std::slice::from_ref(&report)),
        ListFormat::Table => {
            let mut out = format!(
                "catalog: {}\nimages: {} ({} yanked), objects: {}\nsignature: {}\n",
                catalog.describe(),
                report.images,
                report.yanked,
                report.objects,
                report.signature
            );
            if report.findings.is_empty() {
                out.push_str("no problems found\n");
            } else {
                let rows: Vec<[String; 4]> = report
                    .findings
                    .iter()
                    .map(|f| {
                        [
                            f.severity.as_str().to_string(),
                            f.kind.as_str().to_string(),
                            f.subject.clone(),
                            f.problem.clone(),
                        ]
                    })
                    .collect();
                out.push_str(&columns(&["SEVERITY", "KIND", "SUBJECT", "PROBLEM"], &rows));
            }
            out
        }
    };
    output::write(file.output_file.as_deref(), text.as_bytes())?;
    Ok(Fault::worst_of(
        report
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .map(Classify::fault),
    ))
}

async fn print_object(
    catalog: &Catalog<AnyStore>,
    entry: &IndexEntry,
    record: bool,
    format: Option<ObjectFormat>,
    file: OutputFile,
) -> Result<Option<Fault>, Failure> {
    let mut bytes = catalog
        .object(entry, if record { "record" } else { "template" })
        .await?;
    // Stored as JSON (record) and YAML (template); converted only when asked for the other.
    let stored = if record {
        ObjectFormat::Json
    } else {
        ObjectFormat::Yaml
    };
    let wanted = format.unwrap_or(stored);
    if wanted != stored {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let kind = if record { "record" } else { "template" };
        let source = format!("{kind} of {}", entry.id);
        let corrupt = |e: &dyn std::fmt::Display| {
            Failure::Catalog(sigcat::catalog::CatalogError::Corrupt {
                catalog: catalog.describe(),
                key: source.clone(),
                problem: format!("the stored {kind} does not read back: {e}"),
            })
        };
        let value: serde_norway::Value = if record {
            serde_json::from_str(&text).map_err(|e| corrupt(&e))?
        } else {
            let mut docs = sigcat::yaml::read_objects(&text, &source).map_err(|e| corrupt(&e))?;
            if docs.len() != 1 {
                return Err(corrupt(&"it is not one object"));
            }
            docs.remove(0)
        };
        bytes = match wanted {
            ObjectFormat::Json => serde_json::to_string_pretty(&value)
                .map_err(|e| corrupt(&e))?
                .into_bytes(),
            ObjectFormat::Yaml => sigcat::yaml::to_stream(&[value]).into_bytes(),
        };
    }
    if !bytes.ends_with(b"\n") {
        bytes.push(b'\n');
    }
    output::write(file.output_file.as_deref(), &bytes)?;
    Ok(None)
}

fn table(entries: &[IndexEntry]) -> String {
    let rows: Vec<[String; 9]> = entries
        .iter()
        .map(|e| {
            let s = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
            let regions = if e.regions.is_empty() {
                "-".into()
            } else {
                e.regions.join(",")
            };
            let status = match &e.yank {
                Some(y) if y.yanked => format!("yanked: {}", y.reason.as_deref().unwrap_or("-")),
                _ => "ok".into(),
            };
            [
                e.id.clone(),
                s(&e.kubernetes_version),
                s(&e.distro),
                s(&e.image_definition),
                s(&e.gallery_image_version),
                s(&e.gallery),
                regions,
                e.published_at.clone(),
                status,
            ]
        })
        .collect();
    columns(
        &[
            "ID",
            "KUBERNETES",
            "OS",
            "DEFINITION",
            "VERSION",
            "GALLERY",
            "REGIONS",
            "PUBLISHED",
            "STATUS",
        ],
        &rows,
    )
}
