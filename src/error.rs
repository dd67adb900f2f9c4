//! Typed errors of the library, each saying whose fault it is. The binary maps them to
//! messages (adding which flag to use) and exit codes; nothing here knows about the CLI.

use crate::fault::{Classify, Fault};
use std::fmt;

/// Input that sigcat cannot accept: points at the source, the line and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InputError {
    /// File name as given by the user, or `<stdin>`.
    pub source_name: String,
    /// 1-based line number, when the problem is on one line.
    pub line: Option<u64>,
    /// What was wrong and what was expected. Already free of secrets.
    pub problem: String,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.source_name, line, self.problem),
            None => write!(f, "{}: {}", self.source_name, self.problem),
        }
    }
}

impl InputError {
    /// An input error; the name and the problem are redacted, so no secret reaches a message.
    pub fn new(source_name: &str, line: Option<u64>, problem: impl Into<String>) -> Self {
        InputError {
            source_name: crate::redact::redact_secrets(source_name).into_owned(),
            line,
            problem: crate::redact::redact_secrets(&problem.into()).into_owned(),
        }
    }
}

/// Which image of the input to use was not clear.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Selection {
    /// No record describes an image.
    #[error("{}", no_image(failed))]
    NoImage {
        /// Builds that failed or were interrupted (empty: the input holds no build at all).
        failed: Vec<String>,
    },
    /// One image was needed, the input holds several.
    #[error("{} images ({}); one is needed", builds.len(), builds.join(", "))]
    SeveralImages {
        /// The builds that published an image.
        builds: Vec<String>,
    },
}

fn no_image(failed: &[String]) -> String {
    if failed.is_empty() {
        "no image in the input (a truncated log, or not a Packer log?)".to_string()
    } else {
        format!(
            "no image in the input: the build failed or was interrupted ({})",
            failed.join(", ")
        )
    }
}

/// Why sigcat will not produce a manifest (or catalog an image): applying it would fail or do
/// harm. The texts say what is wrong; the binary adds which flag would fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// A VHD alone: CAPZ boots gallery images and managed images only.
    #[error(
        "`{build}` published no gallery image version or managed image (only a VHD, or nothing): CAPZ cannot boot it"
    )]
    NoBootableImage {
        /// The build.
        build: String,
    },
    /// Third-party bases (Flatcar by Kinvolk) need a Plan or VM creation fails.
    #[error(
        "`{build}` looks built from a third-party base (Flatcar): its VMs need a Plan, or creating them fails with \"requires Plan information\""
    )]
    NeedsPlan {
        /// The build.
        build: String,
    },
    /// `--image-api id` for a build with no managed image.
    #[error("`{build}` published no managed image, so it has no image id")]
    NoManagedImage {
        /// The build.
        build: String,
    },
    /// A gallery image API for a build with no gallery image version.
    #[error("`{build}` published no gallery image version")]
    NoGalleryImage {
        /// The build.
        build: String,
    },
    /// A Plan with a managed image (`id`), which CAPZ cannot express.
    #[error("an `id` image cannot carry a Plan in CAPZ; use a gallery image")]
    PlanWithId,
    /// `--from` names something other than an AzureMachineTemplate.
    #[error("the template to copy holds a {found}, not an AzureMachineTemplate")]
    NotATemplate {
        /// What it holds instead (`kind/name`).
        found: String,
    },
    /// The record's OS type is not the one the template's disk says it boots.
    #[error(
        "`{}` is a {} image, and the template `{}` boots {} (spec.template.spec.osDisk.osType): give a template of the same OS, or a record of its OS",
        .0.build, .0.record, .0.template_name, .0.template
    )]
    OsTypeMismatch(Box<OsMismatch>),
    /// The `--from` template has no VM size.
    #[error("the template to copy has no spec.template.spec.vmSize, which CAPZ requires")]
    TemplateWithoutVmSize,
    /// A template from scratch without a VM size.
    #[error("a template made from scratch needs a VM size")]
    VmSizeMissing,
    /// An upgrade for an image whose Kubernetes version is unknown.
    #[error(
        "the Kubernetes version of `{build}` is unknown, and an upgrade sets the control plane and workers to it"
    )]
    UnknownKubernetesVersion {
        /// The build.
        build: String,
    },
    /// An upgrade that Cluster API would refuse or that would break the cluster.
    #[error("{0}")]
    Upgrade(String),
    /// No record fits a machine slot, and the operator did not say what it gets.
    #[error(
        "{} runs {}, and no record fits it (the same OS and image definition or distro); the records: {}. Give a record for it, choose one with `--image-for {}=BUILD` (a change of distro), or keep its image with `--keep-image {}`",
        .0.slot, .0.runs, .0.records, .0.name, .0.name
    )]
    NoRecordForSlot(Box<NoRecordFits>),
    /// The operator's choices (`--image-for`, `--keep-image`, `--new-class`) do not fit the
    /// cluster or the records: they name no slot, conflict, name no record or no class.
    #[error("{0}")]
    Choices(String),
}

/// A machine slot no record fits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoRecordFits {
    /// The slot ("MachineDeployment `md-gpu`").
    pub slot: String,
    /// The name flags use for it.
    pub name: String,
    /// Its image today.
    pub runs: String,
    /// The records there are.
    pub records: String,
}

/// A record and a template of different OS types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsMismatch {
    /// The build.
    pub build: String,
    /// The record's `os_type`.
    pub record: String,
    /// The template's name.
    pub template_name: String,
    /// The template's `osDisk.osType`.
    pub template: String,
}

/// Everything the library's parsing and rendering stages can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input's fault: the file, the line and what was expected.
    #[error(transparent)]
    Input(#[from] InputError),
    /// A local file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file, as the user named it.
        path: String,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// sigcat will not produce what was asked because it would fail or do harm.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The input does not hold exactly the one image that was needed.
    #[error(transparent)]
    Selection(#[from] Selection),
    /// A Kubernetes version was given for a build whose version the input already says.
    #[error(
        "{source_name}: build `{build}` is Kubernetes {known} (from its {known_from}), not {given}"
    )]
    VersionDisagrees {
        /// The input the build came from.
        source_name: String,
        /// The build.
        build: String,
        /// The version the input says.
        known: String,
        /// Where the input says it (`manifest`, `gallery-version`).
        known_from: &'static str,
        /// The version given on the command line.
        given: String,
    },
}

impl Error {
    /// A local file that could not be read or written.
    pub fn io(path: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// An error and its causes on one line (`a: b: c`), each cause said once, secrets redacted:
/// how errors are shown and logged.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let part = c.to_string();
        if !part.is_empty() && !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = c.source();
    }
    // One line, whatever a cause's text spans (the Azure SDK's credential errors span several).
    let text: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    crate::redact::redact_secrets(&text.join("; ")).into_owned()
}

impl Classify for InputError {
    fn fault(&self) -> Option<Fault> {
        Some(Fault::InvalidInput)
    }
}

impl Classify for Refusal {
    fn fault(&self) -> Option<Fault> {
        Some(match self {
            // A template from scratch without --vm-size: the command line is incomplete.
            Refusal::VmSizeMissing => Fault::Settings,
            // The operator's choices do not fit the cluster or the records.
            Refusal::Choices(_) => Fault::Settings,
            _ => Fault::Refused,
        })
    }
}

impl Classify for Selection {
    fn fault(&self) -> Option<Fault> {
        Some(match self {
            Selection::NoImage { failed } if failed.is_empty() => Fault::NothingFound,
            Selection::NoImage { .. } => Fault::BuildFailed,
            // Which one is the operator's choice (--build).
            Selection::SeveralImages { .. } => Fault::Settings,
        })
    }
}

impl Classify for Error {
    fn fault(&self) -> Option<Fault> {
        match self {
            Error::Input(e) => e.fault(),
            Error::Io { .. } => Some(Fault::LocalFile),
            Error::Refused(r) => r.fault(),
            Error::Selection(s) => s.fault(),
            Error::VersionDisagrees { .. } => Some(Fault::InvalidInput),
        }
    }
}
