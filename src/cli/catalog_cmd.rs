//! `sigcat publish`, `sigcat ingest` and `sigcat catalog`: the catalog from the command line.
//!
//! Publishing handles each input, and each image in it, on its own: one that is invalid,
//! refused or in conflict is reported with what it is and why, the others are published, and
//! a summary line per item says what happened. Only the storage (or the catalog's own data)
//! stops a whole call.

use super::exit::Exit;
use super::failure::{self, Failure};
use super::{inputs, messages, output};
use clap::{Args, Subcommand, ValueEnum};
use sigcat::catalog::entry::{self, Entry};
use sigcat::catalog::index::{Filter, IndexEntry};
use sigcat::catalog::rebuild::{self, FindingKind, Severity};
use sigcat::catalog::{self, AnyStore, Catalog, Outcome, YankOutcome, signing};
use sigcat::parse::{self, Parsed, lines::LineReader};
use sigcat::record::BuildResult;
use sigcat::record::kubernetes::KubeVersion;
use sigcat::render::TemplateOptions;
use sigcat::retry::RetryConfig;
use std::path::{Path, PathBuf};
use std::time::Duration;

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

const CATALOG_EXAMPLES: &str = "\
Examples:
  sigcat catalog list --kubernetes 1.30 --os ubuntu-2404 --region westeurope
  sigcat catalog latest --kubernetes 1.30 --definition capi-ubuntu-2404 | kubectl apply -f -
  sigcat catalog latest --kubernetes 1.30 --record
  sigcat catalog show capi-ubuntu-2404-0-3-1721037000-1a2b3c4d --template
  sigcat catalog yank capi-ubuntu-2404-0-3-1721037000-1a2b3c4d --reason \"CVE-2026-1234 in containerd\"
  sigcat catalog verify --trusted-keys allowed_signers
  sigcat catalog rebuild-index --signing-key ~/.ssh/sigcat_ed25519";

/// The `--help` heading of the options every catalog command shares.
const CATALOG_OPTIONS: &str = "Catalog options";

/// Where the catalog is, and how long to wait on its storage: shared by every catalog command.
#[derive(Args, Clone)]
pub struct CatalogArg {
    /// Catalog location: a directory, azblob://ACCOUNT/CONTAINER[/PREFIX], or
    /// http(s)://HOST/ACCOUNT/CONTAINER[/PREFIX]. Default: $SIGCAT_CATALOG, else
    /// ~/.local/share/sigcat/catalog.
    #[arg(long, value_name = "URL", global = true, help_heading = CATALOG_OPTIONS)]
    catalog: Option<String>,
    /// The longest a storage operation is retried (all its tries and waits) before it fails.
    #[arg(long, value_name = "DURATION", value_parser = super::parse_duration, default_value = "30s", global = true, help_heading = CATALOG_OPTIONS)]
    storage_timeout: Duration,
    /// Sign every index written with this OpenSSH private key (ed25519, ECDSA P-256 or RSA;
    /// a passphrase comes from SIGCAT_SIGNING_KEY_PASSPHRASE). Default: $SIGCAT_SIGNING_KEY.
    #[arg(long, value_name = "FILE", global = true, help_heading = CATALOG_OPTIONS)]
    signing_key: Option<PathBuf>,
    /// Trust only indexes signed by a key in this file (ssh-keygen's allowed_signers format);
    /// refuse anything else. Default: $SIGCAT_TRUSTED_KEYS.
    #[arg(long, value_name = "FILE", global = true, help_heading = CATALOG_OPTIONS)]
    trusted_keys: Option<PathBuf>,
}

impl CatalogArg {
    pub fn open(&self) -> Result<Catalog<AnyStore>, Failure> {
        let location = self
            .catalog
            .clone()
            .unwrap_or_else(catalog::default_location);
        let store = catalog::open_store(&location)?;
        if self.storage_timeout.is_zero() {
            return Err(Failure::Usage(
                "--storage-timeout must be more than 0".into(),
            ));
        }
        let mut catalog =
            Catalog::new(store).with_retry(RetryConfig::with_timeout(self.storage_timeout));
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|e| sigcat::Error::io(path.display().to_string(), e))
        };
        let from_env = |name| catalog::settings::env_var(name).map(PathBuf::from);
        if let Some(path) = self
            .signing_key
            .clone()
            .or_else(|| from_env("SIGCAT_SIGNING_KEY"))
        {
            let passphrase = catalog::settings::env_var("SIGCAT_SIGNING_KEY_PASSPHRASE");
            if let Some(p) = &passphrase {
                sigcat::redact::register_secret(p);
            }
            let signer = signing::Signer::from_openssh(
                &path.display().to_string(),
                &read(&path)?,
                passphrase.as_deref(),
            )?;
            catalog = catalog.with_signer(signer);
        }
        if let Some(path) = self
            .trusted_keys
            .clone()
            .or_else(|| from_env("SIGCAT_TRUSTED_KEYS"))
        {
            let text = String::from_utf8_lossy(&read(&path)?).into_owned();
            catalog =
                catalog.with_trust(signing::Trust::parse(&path.display().to_string(), &text)?);
        }
        Ok(catalog)
    }
}

/// How the stored AzureMachineTemplate is rendered, and what completes the records.
#[derive(Args, Clone)]
pub struct TemplateArgs {
    /// VM size of the stored template (adjust it later with `sigcat render --from`).
    #[arg(long, value_name = "SIZE", default_value = "Standard_D2s_v3")]
    vm_size: String,
    #[command(flatten)]
    image: inputs::ImageArgs,
    /// The manifest.json of the same run (adds the Kubernetes version).
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// Kubernetes version when the input does not tell.
    #[arg(long, value_name = "VERSION", value_parser = super::parse_kubernetes_version)]
    kubernetes_version: Option<KubeVersion>,
}

impl TemplateArgs {
    pub fn options(&self) -> Result<TemplateOptions, Failure> {
        self.image.template_options(Some(self.vm_size.clone()))
    }
}

#[derive(Args)]
#[command(about = "Publish records, logs or manifests into the image catalog", after_help = super::help(PUBLISH_EXAMPLES))]
pub struct PublishArgs {
    /// Records (JSON lines from `sigcat parse`), build logs or manifest.json files; stdin if none.
    files: Vec<PathBuf>,
    #[command(flatten)]
    catalog: CatalogArg,
    #[command(flatten)]
    template: TemplateArgs,
}

#[derive(Args)]
#[command(about = "Pass a build log through, parse it as it streams, publish its images at the end", after_help = super::help(INGEST_EXAMPLES))]
pub struct IngestArgs {
    #[command(flatten)]
    catalog: CatalogArg,
    #[command(flatten)]
    template: TemplateArgs,
}

#[derive(Args)]
#[command(about = "Query the image catalog", after_help = super::help(CATALOG_EXAMPLES))]
pub struct CatalogArgs {
    #[command(subcommand)]
    command: CatalogCommand,
    #[command(flatten)]
    catalog: CatalogArg,
}

#[derive(Subcommand)]
enum CatalogCommand {
    /// Images in the catalog, newest first (yanked ones marked).
    List {
        #[command(flatten)]
        filter: FilterArgs,
        /// Leave yanked images out.
        #[arg(long)]
        hide_yanked: bool,
        /// table (for people), json (one index entry per line) or yaml (one document each).
        #[arg(short, long, alias = "format", value_name = "FORMAT", value_parser = super::output_format::<ListFormat>, default_value = "table")]
        output: ListFormat,
        #[command(flatten)]
        file: OutputFile,
    },
    /// The newest image that matches and is not yanked: its AzureMachineTemplate, or its record.
    Latest {
        #[command(flatten)]
        filter: FilterArgs,
        /// Print the record (JSON) instead of the template.
        #[arg(long)]
        record: bool,
        /// yaml or json; default: yaml for a template, json for a record.
        #[arg(short, long, value_name = "FORMAT", value_parser = super::output_format::<ObjectFormat>)]
        output: Option<ObjectFormat>,
        #[command(flatten)]
        file: OutputFile,
    },
    /// One image by id: its record, or its template (a yanked one with a warning).
    Show {
        /// The image's id, as `catalog list` shows it.
        id: String,
        /// Print its AzureMachineTemplate instead of its record.
        #[arg(long)]
        template: bool,
        /// yaml or json; default: yaml for a template, json for a record.
        #[arg(short, long, value_name = "FORMAT", value_parser = super::output_format::<ObjectFormat>)]
        output: Option<ObjectFormat>,
        #[command(flatten)]
        file: OutputFile,
    },
    /// Take an image out of service: `latest` never returns it; its objects stay.
    Yank {
        /// The image's id, as `catalog list` shows it.
        id: String,
        /// Why: shown by `list` and `show`.
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// Put a yanked image back in service.
    Unyank {
        /// The image's id, as `catalog list` shows it.
        id: String,
        /// Why (kept in the yank events).
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Check the catalog: objects against their sha256, the index against the records, yanks,
    /// the signature; objects the index does not account for are reported.
    Verify {
        /// table (for people), json or yaml (the whole report).
        #[arg(short, long, alias = "format", value_name = "FORMAT", value_parser = super::output_format::<ListFormat>, default_value = "table")]
        output: ListFormat,
        #[command(flatten)]
        file: OutputFile,
    },
    /// Rebuild the index from the objects (after it was lost or corrupted), replacing it.
    RebuildIndex,
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
    /// Only images known to be in this region (`westeurope` or `West Europe`).
    #[arg(long)]
    region: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum ListFormat {
    Table,
    Json,
    Yaml,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ObjectFormat {
    Yaml,
    Json,
}

#[derive(Args)]
struct OutputFile {
    /// Write to PATH (atomically) instead of stdout.
    #[arg(long, value_name = "PATH")]
    output_file: Option<PathBuf>,
}

/// A JSON-serialisable value as YAML documents (kubectl-safe quoting).
fn yaml_docs<T: serde::Serialize>(items: &[T]) -> String {
    let docs: Vec<serde_norway::Value> = items
        .iter()
        .map(|i| serde_norway::to_value(i).expect("catalog data serialises"))
        .collect();
    sigcat::render::yaml::to_stream(&docs)
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime starts")
}

/// What happened to each item of one call, said as it happens, and the exit code they add up to.
struct Report {
    catalog: String,
    exit: Exit,
}

impl Report {
    fn new(catalog: String) -> Report {
        Report {
            catalog,
            exit: Exit::Ok,
        }
    }

    fn note(&mut self, exit: Exit, line: String) {
        self.exit = self.exit.worst(exit);
        messages::say(&line);
    }

    /// An input that could not be read, or not all of it: nothing of it is published.
    fn input_failed(&mut self, e: sigcat::Error) {
        let text = sigcat::error::chain(&e);
        let exit = Failure::from(e).exit();
        let what = match exit {
            Exit::Io => "cannot read",
            Exit::InvalidInput => "invalid",
            _ => "not published",
        };
        self.note(exit, format!("{what}: {text}"));
    }

    fn parsed(&mut self, source: &str, parsed: &Parsed) {
        for r in parsed
            .records
            .iter()
            .filter(|r| r.result != BuildResult::Succeeded)
        {
            let what = if r.result == BuildResult::Failed {
                "failed"
            } else {
                "was interrupted"
            };
            self.note(
                Exit::BuildFailed,
                format!(
                    "build {} {what}: {}",
                    r.build_name,
                    r.error.as_deref().unwrap_or("")
                ),
            );
        }
        if !parsed.incomplete.is_empty() {
            self.note(
                Exit::NothingFound,
                format!(
                    "{source}: no result for {} (truncated log?)",
                    parsed.incomplete.join(", ")
                ),
            );
        } else if parsed.records.is_empty() {
            self.note(Exit::NothingFound, inputs::no_packer_build(source));
        }
    }

    fn refused(&mut self, refused: &entry::Refused) {
        let hint = failure::refusal_hint(&refused.reason)
            .map(|h| format!("; {h}"))
            .unwrap_or_default();
        self.note(
            Exit::Refused,
            format!("refused: {}: {}{hint}", refused.item, refused.reason),
        );
    }

    fn outcome(&mut self, entry: &Entry, outcome: &Outcome) {
        let item = &entry.item;
        match outcome {
            Outcome::Published { id } => self.note(
                Exit::Ok,
                format!("published {id} ({item}) to {}", self.catalog),
            ),
            Outcome::Updated { id, added } => self.note(
                Exit::Ok,
                format!(
                    "updated {id} ({item}) in {}: added {}",
                    self.catalog,
                    added.join(", ")
                ),
            ),
            Outcome::Unchanged { id } => self.note(
                Exit::Ok,
                format!("unchanged: {id} ({item}) is already in {}", self.catalog),
            ),
            Outcome::Conflict(c) => self.note(Exit::Conflict, format!("conflict: {c}")),
        }
    }
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

fn publish_entries(
    catalog: &Catalog<AnyStore>,
    report: &mut Report,
    entries: &[Entry],
) -> Result<(), Failure> {
    if entries.is_empty() {
        return Ok(());
    }
    let outcomes = runtime().block_on(catalog.publish(entries))?;
    for (e, o) in entries.iter().zip(&outcomes) {
        report.outcome(e, o);
    }
    Ok(())
}

pub fn run_publish(args: PublishArgs) -> Result<Exit, Failure> {
    let options = args.template.options()?;
    let catalog = args.catalog.open()?;
    let manifest = inputs::read_manifest(args.template.manifest.as_deref())?;
    let mut report = Report::new(catalog.describe());
    let mut entries = Vec::new();
    for path in inputs::or_stdin(&args.files) {
        let source = inputs::source_name(&path);
        let parsed = read_one(
            &path,
            manifest.as_ref(),
            args.template.kubernetes_version.as_ref(),
        );
        match parsed {
            Ok(parsed) => {
                for w in &parsed.warnings {
                    messages::warn(w);
                }
                report.parsed(&source, &parsed);
                entries.extend(prepare(&mut report, &parsed, &options));
            }
            Err(e) => report.input_failed(e),
        }
    }
    publish_entries(&catalog, &mut report, &entries)?;
    Ok(report.exit)
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

pub fn run_ingest(args: IngestArgs) -> Result<Exit, Failure> {
    // The settings are checked first, but nothing stops the log from passing through: a
    // problem is said at once, and again (with the exit code) at the end.
    let setup = args
        .template
        .options()
        .and_then(|o| Ok((o, args.catalog.open()?)));
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
    let manifest_path = args.template.manifest.as_deref().filter(|m| {
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
        args.template.kubernetes_version.as_ref(),
    )?;
    for w in &parsed.warnings {
        messages::warn(w);
    }
    let mut report = Report::new(catalog.describe());
    report.parsed("<stdin>", &parsed);
    let entries = prepare(&mut report, &parsed, &options);
    publish_entries(&catalog, &mut report, &entries)?;
    Ok(report.exit)
}

pub fn run_catalog(args: CatalogArgs) -> Result<Exit, Failure> {
    let catalog = args.catalog.open()?;
    runtime().block_on(async {
        match args.command {
            CatalogCommand::List {
                filter,
                hide_yanked,
                output: format,
                file,
            } => {
                let mut filter = to_filter(filter);
                filter.include_yanked = !hide_yanked;
                let entries = catalog.list(&filter).await?;
                let text = match format {
                    ListFormat::Json => entries
                        .iter()
                        .map(|e| serde_json::to_string(e).expect("entries serialise") + "\n")
                        .collect(),
                    ListFormat::Yaml => yaml_docs(&entries),
                    ListFormat::Table => table(&entries),
                };
                output::write(file.output_file.as_deref(), text.as_bytes())?;
                Ok(Exit::Ok)
            }
            CatalogCommand::Latest {
                filter,
                record,
                output: format,
                file,
            } => {
                let Some(entry) = catalog.latest(&to_filter(filter)).await? else {
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
            CatalogCommand::Yank { id, reason } => yank(&catalog, &id, true, Some(&reason)).await,
            CatalogCommand::Unyank { id, reason } => {
                yank(&catalog, &id, false, reason.as_deref()).await
            }
            CatalogCommand::Verify { output, file } => verify(&catalog, output, file).await,
            CatalogCommand::RebuildIndex => {
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
                Ok(if findings.iter().any(|f| f.severity == Severity::Error) {
                    Exit::Corrupt
                } else {
                    Exit::Ok
                })
            }
        }
    })
}

async fn yank(
    catalog: &Catalog<AnyStore>,
    id: &str,
    yanked: bool,
    reason: Option<&str>,
) -> Result<Exit, Failure> {
    let what = if yanked { "yanked" } else { "unyanked" };
    match catalog.yank(id, yanked, reason).await? {
        YankOutcome::Done(state) => {
            messages::say(&format!(
                "{what} {id} in {} ({})",
                catalog.describe(),
                state.event.key
            ));
            Ok(Exit::Ok)
        }
        YankOutcome::AlreadySo => {
            messages::say(&format!("{id} is already {what}; nothing changed"));
            Ok(Exit::Ok)
        }
        YankOutcome::NoSuchImage => Err(Failure::NothingFound(format!(
            "no image `{id}` in {}",
            catalog.describe()
        ))),
    }
}

async fn verify(
    catalog: &Catalog<AnyStore>,
    format: ListFormat,
    file: OutputFile,
) -> Result<Exit, Failure> {
    let report = rebuild::verify(catalog).await?;
    let text = match format {
        ListFormat::Json => {
            serde_json::to_string_pretty(&report).expect("reports serialise") + "\n"
        }
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
    Ok(match report.worst() {
        Some((Severity::Error, FindingKind::Signature)) => Exit::Untrusted,
        Some((Severity::Error, _)) => Exit::Corrupt,
        _ => Exit::Ok,
    })
}

async fn print_object(
    catalog: &Catalog<AnyStore>,
    entry: &IndexEntry,
    record: bool,
    format: Option<ObjectFormat>,
    file: OutputFile,
) -> Result<Exit, Failure> {
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
            let mut docs =
                sigcat::render::yaml::read_objects(&text, &source).map_err(|e| corrupt(&e))?;
            if docs.len() != 1 {
                return Err(corrupt(&"it is not one object"));
            }
            docs.remove(0)
        };
        bytes = match wanted {
            ObjectFormat::Json => serde_json::to_string_pretty(&value)
                .expect("json serialises")
                .into_bytes(),
            ObjectFormat::Yaml => sigcat::render::yaml::to_stream(&[value]).into_bytes(),
        };
    }
    if !bytes.ends_with(b"\n") {
        bytes.push(b'\n');
    }
    output::write(file.output_file.as_deref(), &bytes)?;
    Ok(Exit::Ok)
}

fn to_filter(f: FilterArgs) -> Filter {
    Filter {
        kubernetes: f.kubernetes,
        os: f.os,
        definition: f.definition,
        gallery: f.gallery,
        region: f.region,
        include_yanked: false,
    }
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

/// Rows under a header, in columns as kubectl aligns them (Go's tabwriter, padding 3).
fn columns<const N: usize>(header: &[&str; N], rows: &[[String; N]]) -> String {
    use std::io::Write;
    let mut out = tabwriter::TabWriter::new(Vec::new()).padding(3);
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for cells in std::iter::once(&header[..]).chain(rows.iter().map(|r| &r[..])) {
        // A tab or newline inside a cell would break the columns.
        let cells: Vec<String> = cells.iter().map(|c| c.replace(['\t', '\n'], " ")).collect();
        let _ = writeln!(out, "{}", cells.join("\t"));
    }
    let bytes = out.into_inner().expect("writing to memory cannot fail");
    String::from_utf8(bytes).expect("cells are text")
}
