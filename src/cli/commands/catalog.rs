//! `sigcat catalog`: find images (list, latest, show), take them out of service and back (yank,
//! unyank), follow their life (promote, clean, end-of-life, prune: in `lifecycle`), and check
//! and recover the catalog (verify, rebuild-index, refresh).

use crate::cli::args::catalog::{CatalogArgs, SigningArgs};
use crate::cli::args::filter::FilterArgs;
use crate::cli::args::output::{ListFormat, ObjectFormat, OutputFile};
use crate::cli::args::{self, FormatParser};
use crate::cli::commands::lifecycle::{
    self, CleanArgs, EndOfLifeArgs, PromoteArgs, PruneArgs, az_fault, az_line, exclude_from_latest,
    run_az,
};
use crate::cli::failure::Failure;
use crate::cli::output::Sink;
use crate::cli::table::{Streamed, columns};
use crate::cli::{messages, output, runtime};
use clap::{Args, Subcommand};
use sigcat::catalog::index::IndexEntry;
use sigcat::catalog::rebuild::Adoption;
use sigcat::catalog::verify::{self, Progress, Severity};
use sigcat::catalog::{AnyStore, Catalog, Found, YankOutcome};
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
  sigcat catalog rebuild-index --signing-key ~/.ssh/sigcat_ed25519 --trusted-keys allowed_signers
  # Start signing a catalog that never was (names every object it signs):
  sigcat catalog rebuild-index --signing-key ~/.ssh/sigcat_ed25519 --adopt-unsigned

With trusted keys, only revisions and events signed by one of them are used; anything else is
left out and named, never adopted. An image whose objects are missing or altered is named, and
the exit code is not 0.";

const REFRESH_EXAMPLES: &str = "\
Examples:
  sigcat catalog refresh --signing-key ~/.ssh/sigcat_ed25519 --trusted-keys allowed_signers
  sigcat catalog refresh --expires-in 30d ...

Re-signs the catalog as it is, with a higher sequence and a new expiry, so readers that trust it
never see it expire: run it on a schedule (pipelines/ has weekly jobs). An expired catalog is
re-signed only with --accept-expired (check it first with `catalog verify`).

Key rotation: add the new key's line to every trust file; run
  sigcat catalog refresh --resign-objects --signing-key NEW_KEY --trusted-keys BOTH_KEYS
then sign with the new key only, and remove the old key's line.";

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
        /// Warn on stderr when the image reaches its end of life within this long.
        #[arg(long, value_name = "DURATION", value_parser = eol_warning, default_value = "30d")]
        eol_warning: std::time::Duration,
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
    /// Take an image out of service: `latest` never returns it; its objects stay. Prints the
    /// `az` commands that set excludeFromLatest on its gallery versions.
    #[command(after_help = args::help(YANK_EXAMPLES))]
    Yank {
        /// The image's id, as `catalog list` shows it.
        id: String,
        /// Why: shown by `list` and `show` (plain text, no control characters).
        #[arg(long, value_name = "TEXT", value_parser = args::parse_text)]
        reason: String,
        /// Also run the `az` commands (Azure CLI, signed in), so Azure's own "latest" agrees.
        #[arg(long)]
        run_az: bool,
        #[command(flatten)]
        signing: SigningArgs,
    },
    /// Put a yanked image back in service. Prints the `az` commands that clear
    /// excludeFromLatest on its gallery versions.
    #[command(after_help = args::help(YANK_EXAMPLES))]
    Unyank {
        /// The image's id, as `catalog list` shows it.
        id: String,
        /// Why (kept in the yank events; plain text, no control characters).
        #[arg(long, value_name = "TEXT", value_parser = args::parse_text)]
        reason: Option<String>,
        /// Also run the `az` commands (Azure CLI, signed in).
        #[arg(long)]
        run_az: bool,
        #[command(flatten)]
        signing: SigningArgs,
    },
    /// Record that image-builder's promote job copied an image to another gallery: from then
    /// on it is served from there.
    #[command(after_help = args::help(lifecycle::PROMOTE_EXAMPLES))]
    Promote(PromoteArgs),
    /// Record that image locations were deleted (image-builder's clean job, or by hand):
    /// nothing is served from them again.
    #[command(after_help = args::help(lifecycle::CLEAN_EXAMPLES))]
    Clean(CleanArgs),
    /// Set an image's end of life: after it, `latest` never returns the image.
    #[command(after_help = args::help(lifecycle::END_OF_LIFE_EXAMPLES))]
    EndOfLife(EndOfLifeArgs),
    /// Which image locations can be deleted, keeping the newest minors and patches and what
    /// clusters run: a plan, and the `az` commands.
    #[command(after_help = args::help(lifecycle::PRUNE_EXAMPLES))]
    Prune(PruneArgs),
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
    /// Rebuild the index from the objects (after it was lost, corrupted or rolled back),
    /// replacing it.
    #[command(after_help = args::help(REBUILD_EXAMPLES))]
    RebuildIndex {
        /// Sign and adopt revisions and events that carry no signature (to start signing a
        /// catalog that never was); each one is named.
        #[arg(long)]
        adopt_unsigned: bool,
        /// Rebuild even when the newest signed index cannot be read whole, so that a deleted
        /// newest event (a yank, a clean-up) cannot be noticed; each image not checked is named.
        #[arg(long)]
        accept_unverified: bool,
        #[command(flatten)]
        signing: SigningArgs,
    },
    /// Re-sign the catalog as it is (a higher sequence, a new expiry), before it expires.
    #[command(after_help = args::help(REFRESH_EXAMPLES))]
    Refresh {
        /// Re-sign even an expired catalog (check it with `catalog verify` first: a reader
        /// with no state could have been fed an old one).
        #[arg(long)]
        accept_expired: bool,
        /// Also sign every revision and event again with --signing-key, each after its present
        /// signature is checked against --trusted-keys (the middle step of a key rotation).
        #[arg(long)]
        resign_objects: bool,
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
                list(&catalog, &filter, format, file).await
            }
            CatalogCommand::Latest {
                filter,
                record,
                eol_warning,
                output: format,
                file,
            } => {
                let catalog = open.open()?;
                let Some(found) = catalog.latest(&filter.filter()).await? else {
                    return Err(nothing_found(
                        &catalog,
                        "matches and is in service (never a yanked image, one whose locations are all deleted, or one past its end of life)",
                    )
                    .await?);
                };
                warn_end_of_life(&found, eol_warning);
                print_object(&catalog, &found, record, format, file).await
            }
            CatalogCommand::Show {
                id,
                template,
                output: format,
                file,
            } => {
                let catalog = open.open()?;
                let Some(found) = catalog.show(&id).await? else {
                    return Err(nothing_found(
                        &catalog,
                        &format!("is `{}`", crate::cli::table::cell(&id)),
                    )
                    .await?);
                };
                if let Some(y) = found.entry.yank.as_ref().filter(|y| y.yanked) {
                    messages::warn(&format!(
                        "{id} was yanked at {}: {}; it is out of service",
                        y.at,
                        y.reason.as_deref().unwrap_or("no reason given")
                    ));
                }
                if found.served.is_none() {
                    messages::warn(&format!(
                        "every location of {id} is deleted: its template names an image that is gone"
                    ));
                }
                print_object(&catalog, &found, !template, format, file).await
            }
            CatalogCommand::Yank {
                id,
                reason,
                run_az,
                signing,
            } => {
                let catalog = open.open_for_writing(&signing)?;
                yank(&catalog, &id, true, Some(&reason), run_az).await
            }
            CatalogCommand::Unyank {
                id,
                reason,
                run_az,
                signing,
            } => {
                let catalog = open.open_for_writing(&signing)?;
                yank(&catalog, &id, false, reason.as_deref(), run_az).await
            }
            CatalogCommand::Promote(a) => lifecycle::promote(open, a).await,
            CatalogCommand::Clean(a) => lifecycle::clean(open, a).await,
            CatalogCommand::EndOfLife(a) => lifecycle::end_of_life(open, a).await,
            CatalogCommand::Prune(a) => lifecycle::prune(open, a).await,
            CatalogCommand::Verify { output, file } => verify(&open.open()?, output, file).await,
            CatalogCommand::RebuildIndex {
                adopt_unsigned,
                accept_unverified,
                signing,
            } => {
                let catalog = open.open_for_writing(&signing)?;
                let mut adoption = Adoption::unsigned(adopt_unsigned);
                adoption.accept_unverified = accept_unverified;
                let rebuilt = catalog.rebuild_index(adoption, &progress_line).await?;
                for f in &rebuilt.findings {
                    messages::say(&format!(
                        "{}: {}: {}",
                        f.severity.as_str(),
                        f.subject,
                        f.problem
                    ));
                }
                messages::say(&format!(
                    "rebuilt the index of {} from its objects: {} images ({} yanked), sequence {}",
                    catalog.describe(),
                    rebuilt.images,
                    rebuilt.yanked,
                    rebuilt.sequence
                ));
                Ok(Fault::worst_of(
                    rebuilt.findings.iter().map(Classify::fault),
                ))
            }
            CatalogCommand::Refresh {
                accept_expired,
                resign_objects,
                signing,
            } => {
                let catalog = open.open_for_writing(&signing)?;
                let mut worst = None;
                if resign_objects {
                    let (count, findings) = catalog.resign_objects(&progress_line).await?;
                    for f in &findings {
                        messages::say(&format!(
                            "{}: {}: {}",
                            f.severity.as_str(),
                            f.subject,
                            f.problem
                        ));
                    }
                    messages::say(&format!("re-signed {count} revisions and events"));
                    worst = Fault::worst_of(findings.iter().map(Classify::fault));
                }
                let sequence = catalog.refresh(accept_expired).await?;
                let status = catalog.status().await?;
                messages::say(&format!(
                    "re-signed {}: sequence {sequence}, {} images, expires {}",
                    catalog.describe(),
                    status.images,
                    status.expires.unwrap_or_default()
                ));
                Ok(worst)
            }
        }
    })
}

/// What to say when nothing matches: the catalog may be empty.
async fn nothing_found(catalog: &Catalog<AnyStore>, what: &str) -> Result<Failure, Failure> {
    let status = catalog.status().await?;
    Ok(Failure::NothingFound(if status.images == 0 {
        format!(
            "the catalog at {} is empty: no image {what}",
            catalog.describe()
        )
    } else {
        format!("no image in {} {what}", catalog.describe())
    }))
}

/// A progress line on stderr for long runs (verify, rebuild-index at thousands of images).
fn progress_line(p: Progress) {
    if p.total >= 1000 {
        messages::say(&format!("{} {} of {} images", p.phase, p.done, p.total));
    }
}

/// Lists the images that match, a Kubernetes version at a time: memory holds one version's
/// shards, whatever the catalog's size.
async fn list(
    catalog: &Catalog<AnyStore>,
    filter: &sigcat::catalog::index::Filter,
    format: ListFormat,
    file: OutputFile,
) -> Result<Option<Fault>, Failure> {
    let mut sink = Sink::open(file.output_file.as_deref())?;
    let mut table = Streamed::new(TABLE_HEADER);
    let result = catalog
        .list_each(filter, |group| {
            let text = match format {
                ListFormat::Json => group
                    .iter()
                    .filter_map(|e| serde_json::to_string(e).ok())
                    .map(|line| line + "\n")
                    .collect(),
                ListFormat::Yaml => yaml_docs(&group),
                ListFormat::Table => table.batch(&rows(&group, filter.stage.as_deref())),
            };
            sink.write(text.as_bytes())
        })
        .await?;
    let matched = result?;
    sink.finish()?;
    if matched == 0 {
        let status = catalog.status().await?;
        if status.images == 0 {
            messages::say(&format!("the catalog at {} is empty", catalog.describe()));
        } else {
            messages::say(&format!(
                "none of the {} images in {} matches",
                status.images,
                catalog.describe()
            ));
        }
    }
    Ok(None)
}

async fn yank(
    catalog: &Catalog<AnyStore>,
    id: &str,
    yanked: bool,
    reason: Option<&str>,
    run: bool,
) -> Result<Option<Fault>, Failure> {
    let what = if yanked { "yanked" } else { "unyanked" };
    match catalog.yank(id, yanked, reason).await? {
        YankOutcome::Done(state) => {
            messages::say(&format!(
                "{what} {id} in {} ({})",
                catalog.describe(),
                state.event.key
            ));
        }
        YankOutcome::AlreadySo => {
            messages::say(&format!("{id} is already {what}; nothing changed"));
        }
        other => {
            return Err(Failure::NothingFound(match other {
                YankOutcome::NoSuchImage => format!("no image `{id}` in {}", catalog.describe()),
                other => format!("{id}: {other:?}"),
            }));
        }
    }
    // So that Azure's own "latest" (an image definition's newest version) agrees.
    let Some(found) = catalog.show(id).await? else {
        return Ok(None);
    };
    let commands = exclude_from_latest(&found.entry, yanked);
    let mut text = String::new();
    for args in &commands {
        text.push_str(&az_line(args));
        text.push('\n');
    }
    output::write(None, text.as_bytes())?;
    if !run {
        return Ok(None);
    }
    let mut worst = None;
    for args in &commands {
        match run_az(args) {
            Ok(()) => messages::say(&format!("ran {}", az_line(args))),
            Err(f) => {
                let why = match &f {
                    lifecycle::AzFailed::Missing => {
                        "az (the Azure CLI) is not on PATH: install it and sign in (az login)"
                            .into()
                    }
                    lifecycle::AzFailed::Refused(m) => m.clone(),
                };
                messages::warn(&format!("{} failed: {why}", az_line(args)));
                worst = Fault::worst_of([worst, Some(az_fault(&f))]);
            }
        }
    }
    Ok(worst)
}

/// `--eol-warning`: a duration up to a year.
fn eol_warning(text: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not a duration like 30d, 72h ({e})"))?;
    if d > std::time::Duration::from_secs(365 * 24 * 3600) {
        return Err(format!("`{text}` is longer than a year"));
    }
    Ok(d)
}

/// Says when what `latest` found reaches its end of life soon.
fn warn_end_of_life(found: &Found, within: std::time::Duration) {
    let Some(eol) = found.served.as_ref().and_then(|s| s.end_of_life.clone()) else {
        return;
    };
    let soon = time::OffsetDateTime::now_utc() + within;
    let soon = sigcat::catalog::entry::normalize_time(
        &soon
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
    )
    .unwrap_or_default();
    if eol <= soon {
        messages::warn(&format!(
            "{} reaches its end of life at {eol}: plan the move to a newer image",
            found.entry.id
        ));
    }
}

async fn verify(
    catalog: &Catalog<AnyStore>,
    format: ListFormat,
    file: OutputFile,
) -> Result<Option<Fault>, Failure> {
    let report = verify::verify(catalog, &progress_line).await?;
    let text = match format {
        ListFormat::Json => serde_json::to_string_pretty(&report).unwrap_or_default() + "\n",
        ListFormat::Yaml => yaml_docs(std::slice::from_ref(&report)),
        ListFormat::Table => {
            let mut out = format!(
                "catalog: {} (id {})\nlayout: {}, sequence: {}, expires: {}\nimages: {} ({} yanked) in {} shards, objects: {}\nsignature: {}\n",
                catalog.describe(),
                report.catalog_id.as_deref().unwrap_or("-"),
                report.layout.map_or("-".into(), |l| l.to_string()),
                report.sequence.map_or("-".into(), |s| s.to_string()),
                report.expires.as_deref().unwrap_or("-"),
                report.images,
                report.yanked,
                report.shards,
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
    found: &Found,
    record: bool,
    format: Option<ObjectFormat>,
    file: OutputFile,
) -> Result<Option<Fault>, Failure> {
    let entry = &found.entry;
    let mut bytes = if record {
        catalog.object(entry, "record").await?
    } else {
        catalog.served_template(found).await?
    };
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

const TABLE_HEADER: [&str; 10] = [
    "ID",
    "KUBERNETES",
    "OS",
    "STAGE",
    "DEFINITION",
    "VERSION",
    "GALLERY",
    "REGIONS",
    "PUBLISHED",
    "STATUS",
];

/// One row per image, as it is served (its newest promotion, else where it was built).
fn rows(entries: &[IndexEntry], stage: Option<&str>) -> Vec<[String; 10]> {
    let now = sigcat::catalog::entry::now_rfc3339();
    entries
        .iter()
        .map(|e| {
            let s = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
            let served = e.served(stage);
            let (stage, definition, version, gallery, regions) = match &served {
                Some(v) => (
                    v.stage.clone(),
                    v.image_definition.clone(),
                    v.gallery_image_version.clone(),
                    v.public_name.clone().or_else(|| v.gallery.clone()),
                    v.regions.clone(),
                ),
                None => (
                    "-".into(),
                    e.image_definition.clone(),
                    e.gallery_image_version.clone(),
                    e.gallery.clone(),
                    e.regions.clone(),
                ),
            };
            let regions = if regions.is_empty() {
                "-".into()
            } else {
                regions.join(",")
            };
            [
                e.id.clone(),
                s(&e.kubernetes_version),
                s(&e.distro),
                stage,
                s(&definition),
                s(&version),
                s(&gallery),
                regions,
                e.published_at.clone(),
                status(e, served.as_ref(), &now),
            ]
        })
        .collect()
}

/// What an operator should know of an image at a glance.
fn status(e: &IndexEntry, served: Option<&sigcat::catalog::index::Served>, now: &str) -> String {
    let mut parts = Vec::new();
    if let Some(y) = e.yank.as_ref().filter(|y| y.yanked) {
        parts.push(format!("yanked: {}", y.reason.as_deref().unwrap_or("-")));
    }
    if served.is_none() && e.all_deleted() {
        parts.push("deleted".to_string());
    }
    if let Some(eol) = served.and_then(|s| s.end_of_life.as_deref()) {
        if eol <= now {
            parts.push(format!("past end of life ({eol})"));
        } else {
            parts.push(format!("end of life {eol}"));
        }
    }
    if let Some(l) = &e.lifecycle {
        for p in l.promoted.iter().filter(|p| p.times > 1) {
            parts.push(format!(
                "promoted {} times to {}",
                p.times, p.location.gallery_image_version
            ));
        }
        for d in &l.deleted {
            if let Some(by) = &d.replaced_by {
                parts.push(format!("overwritten by {by}"));
            }
        }
    }
    if parts.is_empty() {
        "ok".into()
    } else {
        parts.join("; ")
    }
}
