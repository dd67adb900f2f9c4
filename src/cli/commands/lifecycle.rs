//! `sigcat catalog promote|clean|end-of-life|prune`: an image's life after its build, as
//! image-builder's promote and clean jobs live it, and retention. Deleting Azure resources is
//! `az`'s job: sigcat prints the commands, runs them only when asked (`--run-az`), and records
//! a deletion only once `az` confirmed it.

use crate::cli::args::catalog::{CatalogArgs, SigningArgs};
use crate::cli::args::output::OutputFile;
use crate::cli::args::{self, FormatParser};
use crate::cli::failure::Failure;
use crate::cli::table::columns;
use crate::cli::{messages, output};
use clap::{Args, ValueEnum};
use sigcat::catalog::index::{IndexEntry, PROMOTED_STAGE};
use sigcat::catalog::lifecycle::{
    CleanOutcome, EndOfLifeOutcome, PromoteOutcome, PublishingInfo, Target,
};
use sigcat::catalog::prune::{self, InUse, Plan, Policy, shell_quote};
use sigcat::catalog::{AnyStore, Catalog};
use sigcat::{Fault, InputError};
use std::path::{Path, PathBuf};

pub(crate) const PROMOTE_EXAMPLES: &str = "\
Examples:
  # In image-builder's promote job, after `az sig image-version create ... | tee sig-publishing.json`:
  sigcat catalog promote --publishing-info packer/azure/sig/sig-publishing-info.json \\
    --image-version sig-publishing.json --public-name \"$PUBLIC_NAME\"
  # By hand: a private production gallery
  sigcat catalog promote capi-ubuntu-2404-1-30-3-1a2b3c4d \\
    --to /subscriptions/S/resourceGroups/RG/providers/Microsoft.Compute/galleries/prod/images/capi-ubuntu-2404/versions/1.30.3 \\
    --region westeurope --region eastus --end-of-life 2027-06-01

From then on `catalog latest` serves the image from there (its template points at it); a
second promotion to the same version is recorded as such (`verify` and `list` flag it), and
another image promoted there before is recorded as overwritten.";

pub(crate) const CLEAN_EXAMPLES: &str = "\
Examples:
  # In image-builder's clean job, after it deleted the staging managed image and version:
  sigcat catalog clean --publishing-info packer/azure/sig/sig-publishing-info.json
  sigcat catalog clean /subscriptions/S/resourceGroups/RG/providers/Microsoft.Compute/galleries/G/images/D/versions/V

Records that these were deleted: nothing is ever served from them again. It deletes nothing.";

pub(crate) const END_OF_LIFE_EXAMPLES: &str = "\
Examples:
  sigcat catalog end-of-life capi-ubuntu-2404-1-30-3-1a2b3c4d 2027-06-01 --reason \"Kubernetes 1.30 end of support\"";

pub(crate) const PRUNE_EXAMPLES: &str = "\
Examples:
  kubectl get azuremachinetemplates -A -o yaml > in-use.yaml
  sigcat catalog prune --keep-minors 3 --keep-patches 2 --in-use in-use.yaml
  sigcat catalog prune --keep-minors 3 --keep-patches 2 --in-use in-use.yaml -o az > prune.sh
  sigcat catalog prune --keep-minors 3 --keep-patches 2 --in-use in-use.yaml --run-az

A plan: each location that can be deleted, and why. `-o az` prints a script in which each
`az ... delete` is followed by the `sigcat catalog clean` that records it, so only what Azure
deleted is recorded. `--run-az` runs the same itself.";

/// `catalog promote`.
#[derive(Args)]
pub(crate) struct PromoteArgs {
    /// The image's id (or give --publishing-info).
    id: Option<String>,
    /// image-builder's sig-publishing-info.json: the staging image it describes.
    #[arg(long, value_name = "FILE")]
    publishing_info: Option<PathBuf>,
    /// The output of `az sig image-version create` (the promote job tees it to
    /// sig-publishing.json): the new version's id, regions and end of life.
    #[arg(long, value_name = "FILE")]
    image_version: Option<PathBuf>,
    /// The promoted gallery image version's resource id (instead of --image-version).
    #[arg(long, value_name = "RESOURCE_ID")]
    to: Option<String>,
    /// A region it was replicated to (repeat); default: --image-version's target regions.
    #[arg(long, value_name = "REGION")]
    region: Vec<String>,
    /// Its end of life (a date or RFC 3339 time); default: --image-version's.
    #[arg(long, value_name = "DATE")]
    end_of_life: Option<String>,
    /// The community gallery's public name (`az sig show --query
    /// sharingProfile.communityGalleryInfo.publicNames[0]`): the template then references
    /// the community image, as CAPZ does.
    #[arg(long, value_name = "NAME")]
    public_name: Option<String>,
    /// The stage of the new location.
    #[arg(long, value_name = "STAGE", default_value = PROMOTED_STAGE, value_parser = stage)]
    stage: String,
    /// Why (kept in the event; plain text).
    #[arg(long, value_name = "TEXT", value_parser = args::parse_text)]
    reason: Option<String>,
    #[command(flatten)]
    signing: SigningArgs,
}

/// `catalog clean`.
#[derive(Args)]
pub(crate) struct CleanArgs {
    /// Resource ids of deleted gallery image versions or managed images.
    resource_ids: Vec<String>,
    /// image-builder's sig-publishing-info.json: its staging version and managed image, what
    /// the clean job deletes.
    #[arg(long, value_name = "FILE")]
    publishing_info: Option<PathBuf>,
    /// Why (plain text).
    #[arg(long, value_name = "TEXT", value_parser = args::parse_text)]
    reason: Option<String>,
    #[command(flatten)]
    signing: SigningArgs,
}

/// `catalog end-of-life`.
#[derive(Args)]
pub(crate) struct EndOfLifeArgs {
    /// The image's id.
    id: String,
    /// A date (2027-06-01) or RFC 3339 time.
    date: String,
    /// Why (plain text).
    #[arg(long, value_name = "TEXT", value_parser = args::parse_text)]
    reason: Option<String>,
    #[command(flatten)]
    signing: SigningArgs,
}

/// What `prune` prints.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum PruneFormat {
    /// Columns, for people.
    Table,
    /// The plan as one JSON object (`delete`, `keep`).
    Json,
    /// A shell script: each `az ... delete`, then the `sigcat catalog clean` that records it.
    Az,
}

/// `catalog prune`.
#[derive(Args)]
pub(crate) struct PruneArgs {
    /// Kubernetes minors to keep per OS (the newest).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    keep_minors: u32,
    /// Patch versions to keep per kept minor (the newest).
    #[arg(long, value_name = "M", value_parser = clap::value_parser!(u32).range(1..))]
    keep_patches: u32,
    /// What clusters run (repeat): Kubernetes objects (`kubectl get azuremachinetemplates -A
    /// -o yaml`) or lines of resource ids; what they reference is never in the plan.
    #[arg(long, value_name = "FILE")]
    in_use: Vec<PathBuf>,
    /// table, json or az.
    #[arg(short, long, value_name = "FORMAT", value_parser = FormatParser::<PruneFormat>::new(), default_value = "table")]
    output: PruneFormat,
    #[command(flatten)]
    file: OutputFile,
    /// Run the `az` commands (Azure CLI, signed in), and record what they deleted.
    #[arg(long)]
    run_az: bool,
    #[command(flatten)]
    signing: SigningArgs,
}

/// `--stage`: a short lower-case name.
pub(crate) fn stage(text: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && text.len() <= 40
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        return Err(format!(
            "`{text}` is not a stage name (letters, digits, `-`: staging, production)"
        ));
    }
    Ok(text.to_ascii_lowercase())
}

/// A small input file (or `-`), whole.
fn read_input(path: &Path) -> Result<(String, String), Failure> {
    const LIMIT: u64 = 64 << 20;
    let name = crate::cli::inputs::source_name(path);
    let io = |e: std::io::Error| sigcat::Error::io(name.clone(), e);
    // Files, `-`, and what shells hand over as files: FIFOs (`<(az ...)`), /dev/stdin.
    let reader: Box<dyn std::io::Read> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        if std::fs::metadata(path).map_err(io)?.is_dir() {
            return Err(io(std::io::ErrorKind::IsADirectory.into()).into());
        }
        Box::new(std::fs::File::open(path).map_err(io)?)
    };
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(reader, LIMIT + 1), &mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > LIMIT {
        return Err(sigcat::Error::from(InputError::new(
            &name,
            None,
            "larger than 64 MiB: not what was expected",
        ))
        .into());
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        sigcat::Error::from(InputError::new(
            &name,
            None,
            format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
        ))
    })?;
    Ok((name, text))
}

fn input(e: InputError) -> Failure {
    sigcat::Error::from(e).into()
}

pub(crate) async fn promote(open: &CatalogArgs, a: PromoteArgs) -> Result<Option<Fault>, Failure> {
    let info = match &a.publishing_info {
        Some(p) => {
            let (name, text) = read_input(p)?;
            Some((
                name.clone(),
                PublishingInfo::read(&text, &name).map_err(input)?,
            ))
        }
        None => None,
    };
    let id = match (&a.id, &info) {
        (Some(id), None) => id.clone(),
        (None, Some((name, info))) => info.image_id().ok_or_else(|| {
            input(InputError::new(
                name,
                None,
                "it names no staging gallery image version (`managed_image_shared_image_gallery_id`): a build to a managed image only cannot be promoted by it; give the image's id",
            ))
        })?,
        (Some(id), Some((name, info))) => {
            if info.image_id().as_deref() != Some(id.as_str()) {
                return Err(Failure::Usage(format!(
                    "{id} is not the image {name} describes ({}); give one of them",
                    info.image_id().unwrap_or_else(|| "none".into())
                )));
            }
            id.clone()
        }
        (None, None) => {
            return Err(Failure::Usage(
                "which image? give its id or --publishing-info FILE".into(),
            ));
        }
    };
    let mut target = match (&a.image_version, &a.to) {
        (Some(p), None) => {
            let (name, text) = read_input(p)?;
            Target::from_image_version(&text, &name, &a.stage).map_err(input)?
        }
        (None, Some(to)) => {
            if sigcat::record::GalleryImageVersionId::parse(to).is_err() {
                return Err(Failure::Usage(format!(
                    "--to `{to}` is not a gallery image version id (/subscriptions/.../galleries/G/images/D/versions/V)"
                )));
            }
            Target {
                stage: a.stage.clone(),
                gallery_image_version_id: to.clone(),
                public_name: None,
                regions: Vec::new(),
                end_of_life: None,
                published: None,
            }
        }
        (Some(_), Some(_)) => {
            return Err(Failure::Usage(
                "give --image-version FILE or --to RESOURCE_ID, not both".into(),
            ));
        }
        (None, None) => {
            return Err(Failure::Usage(
                "where to? give --image-version FILE (az sig image-version create's output) or --to RESOURCE_ID".into(),
            ));
        }
    };
    if !a.region.is_empty() {
        target.regions = a.region.clone();
    }
    if let Some(eol) = &a.end_of_life {
        if sigcat::catalog::entry::normalize_time(eol).is_none() {
            return Err(Failure::Usage(format!(
                "--end-of-life `{eol}` is not a date (2027-06-04) or an RFC 3339 time"
            )));
        }
        target.end_of_life = Some(eol.clone());
    }
    target.public_name = a.public_name.clone();
    let catalog = open.open_for_writing(&a.signing)?;
    match catalog.promote(&id, &target, a.reason.as_deref()).await? {
        PromoteOutcome::Promoted {
            event,
            times,
            overwrote,
        } => {
            messages::say(&format!(
                "promoted {id} to {} in {} ({}){}",
                target.gallery_image_version_id,
                catalog.describe(),
                event.key,
                if times > 1 {
                    format!(
                        "; promoted there {times} times: the version was deleted and created again"
                    )
                } else {
                    String::new()
                }
            ));
            for other in overwrote {
                messages::warn(&format!(
                    "{other} was promoted to {} before: recorded as overwritten by {id}",
                    target.gallery_image_version_id
                ));
            }
            Ok(None)
        }
        PromoteOutcome::AlreadyPromoted => {
            messages::say(&format!(
                "{id} is recorded as promoted to {} already, with the same regions, end of life and publish date: nothing changed (a version deleted and created again has another publishedDate: give its `az sig image-version create` output)",
                target.gallery_image_version_id
            ));
            Ok(None)
        }
        _ => Err(Failure::NothingFound(format!(
            "no image `{id}` in {}",
            catalog.describe()
        ))),
    }
}

pub(crate) async fn clean(open: &CatalogArgs, a: CleanArgs) -> Result<Option<Fault>, Failure> {
    let mut ids = a.resource_ids.clone();
    if let Some(p) = &a.publishing_info {
        let (name, text) = read_input(p)?;
        let info = PublishingInfo::read(&text, &name).map_err(input)?;
        ids.extend(info.managed_image_id);
        ids.extend(info.gallery_image_version_id);
    }
    if ids.is_empty() {
        return Err(Failure::Usage(
            "what was deleted? give resource ids or --publishing-info FILE".into(),
        ));
    }
    for id in &ids {
        let known = sigcat::record::GalleryImageVersionId::parse(id).is_ok()
            || sigcat::record::ManagedImageId::parse(id).is_ok();
        if !known {
            return Err(Failure::Usage(format!(
                "`{id}` is not a gallery image version or managed image resource id"
            )));
        }
    }
    let catalog = open.open_for_writing(&a.signing)?;
    let outcomes = catalog.clean(&ids, a.reason.as_deref()).await?;
    let mut worst = None;
    for (r, outcome) in outcomes {
        match outcome {
            CleanOutcome::Deleted { id } => {
                messages::say(&format!(
                    "recorded {r} as deleted: {id} is never served from it again"
                ));
            }
            CleanOutcome::AlreadyDeleted { id } => {
                messages::say(&format!("{r} was already recorded as deleted ({id})"));
            }
            _ => {
                messages::warn(&format!(
                    "{r}: no image in {} has it as a location; nothing recorded",
                    catalog.describe()
                ));
                worst = Fault::worst_of([worst, Some(Fault::NothingFound)]);
            }
        }
    }
    Ok(worst)
}

pub(crate) async fn end_of_life(
    open: &CatalogArgs,
    a: EndOfLifeArgs,
) -> Result<Option<Fault>, Failure> {
    if sigcat::catalog::entry::normalize_time(&a.date).is_none() {
        return Err(Failure::Usage(format!(
            "`{}` is not a date (2027-06-04) or an RFC 3339 time",
            a.date
        )));
    }
    let catalog = open.open_for_writing(&a.signing)?;
    match catalog
        .set_end_of_life(&a.id, &a.date, a.reason.as_deref())
        .await?
    {
        EndOfLifeOutcome::Done(event) => {
            messages::say(&format!(
                "{} reaches its end of life {}: `latest` never returns it after that ({})",
                a.id, a.date, event.key
            ));
            Ok(None)
        }
        EndOfLifeOutcome::AlreadySo => {
            messages::say(&format!(
                "{} already ends its life then; nothing changed",
                a.id
            ));
            Ok(None)
        }
        _ => Err(Failure::NothingFound(format!(
            "no image `{}` in {}",
            a.id,
            catalog.describe()
        ))),
    }
}

/// Why `az` did not do it.
pub(crate) enum AzFailed {
    /// Not installed.
    Missing,
    /// It said no (its message, redacted).
    Refused(String),
}

/// Runs `az` with `args`.
pub(crate) fn run_az(args: &[String]) -> Result<(), AzFailed> {
    let out = std::process::Command::new("az")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => AzFailed::Missing,
            _ => AzFailed::Refused(e.to_string()),
        })?;
    if out.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&out.stderr);
    let status = {
        use std::os::unix::process::ExitStatusExt;
        match (out.status.code(), out.status.signal()) {
            (Some(code), _) => format!("exit {code}"),
            (None, Some(signal)) => format!("killed by signal {signal}"),
            _ => "stopped".to_string(),
        }
    };
    let line = match said.lines().map(str::trim).find(|l| !l.is_empty()) {
        Some(line) => format!("{line} ({status})"),
        None => format!("{status}, with no message"),
    };
    Err(AzFailed::Refused(
        sigcat::redact::redact_secrets(&line).into_owned(),
    ))
}

/// What an `az` failure means for the exit code: `az` missing is the operator's to fix; a
/// refusal is Azure's (try again later, or read its message).
pub(crate) fn az_fault(f: &AzFailed) -> Fault {
    match f {
        AzFailed::Missing => Fault::Settings,
        AzFailed::Refused(_) => Fault::Storage,
    }
}

pub(crate) fn az_line(args: &[String]) -> String {
    std::iter::once("az".to_string())
        .chain(args.iter().map(|a| {
            // Only what no shell reads specially goes bare (a flag that carried `;` would not).
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.=_/:,@+".contains(c))
            {
                a.clone()
            } else {
                shell_quote(a)
            }
        }))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `az sig image-version update` commands that set `excludeFromLatest` on every gallery
/// image version of an image that is still there, so Azure's own "latest" agrees with the
/// catalog after a yank (or unyank).
pub(crate) fn exclude_from_latest(e: &IndexEntry, exclude: bool) -> Vec<Vec<String>> {
    e.live_locations()
        .into_iter()
        .filter(|(_, rid)| sigcat::record::GalleryImageVersionId::parse(rid).is_ok())
        .map(|(_, rid)| {
            vec![
                "sig".into(),
                "image-version".into(),
                "update".into(),
                "--ids".into(),
                rid,
                "--set".into(),
                format!("publishingProfile.excludeFromLatest={exclude}"),
            ]
        })
        .collect()
}

pub(crate) async fn prune(open: &CatalogArgs, a: PruneArgs) -> Result<Option<Fault>, Failure> {
    let mut in_use = InUse::default();
    for p in &a.in_use {
        let (name, text) = read_input(p)?;
        in_use.read(&text, &name).map_err(input)?;
    }
    let catalog = if a.run_az {
        open.open_for_writing(&a.signing)?
    } else {
        open.open()?
    };
    let mut filter = sigcat::catalog::index::Filter {
        include_yanked: true,
        ..Default::default()
    };
    filter.in_service = false;
    let entries = catalog.list(&filter).await?;
    let policy = Policy {
        keep_minors: a.keep_minors as usize,
        keep_patches: a.keep_patches as usize,
    };
    let plan = prune::plan(
        &entries,
        policy,
        &in_use,
        &sigcat::catalog::entry::now_rfc3339(),
    );
    let text = render_plan(&plan, a.output, &catalog);
    output::write(a.file.output_file.as_deref(), text.as_bytes())?;
    messages::say(&format!(
        "{} locations of {} images can be deleted; {} images kept",
        plan.delete.len(),
        plan.delete
            .iter()
            .map(|r| &r.id)
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        plan.keep.len()
    ));
    if !a.run_az {
        return Ok(None);
    }
    let mut deleted = Vec::new();
    let mut worst = None;
    for row in &plan.delete {
        let args = row.az_args();
        match run_az(&args) {
            Ok(()) => {
                messages::say(&format!("deleted {} ({})", row.resource_id, row.id));
                deleted.push(row.resource_id.clone());
            }
            Err(f) => {
                let why = match &f {
                    AzFailed::Missing => {
                        "az (the Azure CLI) is not on PATH: install it and sign in (az login)"
                            .to_string()
                    }
                    AzFailed::Refused(m) => m.clone(),
                };
                messages::warn(&format!(
                    "{} was not deleted: {why}; it stays in the catalog as it is",
                    row.resource_id
                ));
                worst = Fault::worst_of([worst, Some(az_fault(&f))]);
                if matches!(f, AzFailed::Missing) {
                    break;
                }
            }
        }
    }
    if !deleted.is_empty() {
        catalog
            .clean(&deleted, Some("deleted by `sigcat catalog prune --run-az`"))
            .await?;
        messages::say(&format!("recorded {} deletions", deleted.len()));
    }
    Ok(worst)
}

fn render_plan(plan: &Plan, format: PruneFormat, catalog: &Catalog<AnyStore>) -> String {
    match format {
        PruneFormat::Json => serde_json::to_string_pretty(plan).unwrap_or_default() + "\n",
        PruneFormat::Table => {
            let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
            let rows: Vec<[String; 6]> = plan
                .delete
                .iter()
                .map(|r| {
                    [
                        r.id.clone(),
                        dash(&r.kubernetes_version),
                        dash(&r.os),
                        r.stage.clone(),
                        r.resource_id.clone(),
                        r.reason.clone(),
                    ]
                })
                .collect();
            if rows.is_empty() {
                "nothing to delete\n".into()
            } else {
                columns(
                    &["ID", "KUBERNETES", "OS", "STAGE", "RESOURCE", "WHY"],
                    &rows,
                )
            }
        }
        PruneFormat::Az => {
            let mut out = String::from(
                "#!/usr/bin/env bash\n# Written by `sigcat catalog prune`: each deletion, then the clean-up event that records it.\nset -euo pipefail\n",
            );
            for r in &plan.delete {
                out.push_str(&format!(
                    "# {} ({}, {}): {}\n{} && sigcat catalog clean {} --reason {} --catalog {}\n",
                    r.id,
                    r.kubernetes_version.as_deref().unwrap_or("-"),
                    r.stage,
                    r.reason.replace('\n', " "),
                    az_line(&r.az_args()),
                    shell_quote(&r.resource_id),
                    shell_quote("pruned"),
                    shell_quote(&catalog.identity()),
                ));
            }
            out
        }
    }
}
