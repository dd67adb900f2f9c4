//! Records → CAPZ manifests: a new `AzureMachineTemplate` whose `image:` section points at the
//! record's image, and the changes that move a control plane and its MachineDeployments to it.
//!
//! Everything is built as YAML values and written by a serializer, never by string templates,
//! so values YAML would misread (`1.30`, `on`, `0123`) stay strings.

pub mod change;
pub mod kustomize;
pub mod template;
pub mod topology;
pub mod upgrade;
pub mod yaml;

pub use change::Change;
pub use template::{ImageKind, Plan, PlanRule, TemplateOptions, new_template, template_name};
pub use upgrade::{Request as UpgradeRequest, UpgradeOutput, plan_upgrade};

/// Why sigcat will not produce a manifest (or catalog an image): applying it would fail or do
/// harm. The texts say what is wrong; the binary adds which flag would fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A VHD alone: CAPZ boots gallery images and managed images only.
    #[error(
        "`{build}` published no gallery image version or managed image (only a VHD, or nothing): CAPZ cannot boot it"
    )]
    NoBootableImage { build: String },
    /// Third-party bases (Flatcar by Kinvolk) need a Plan or VM creation fails.
    #[error(
        "`{build}` looks built from a third-party base (Flatcar): its VMs need a Plan, or creating them fails with \"requires Plan information\""
    )]
    NeedsPlan { build: String },
    #[error("`{build}` published no managed image, so it has no image id")]
    NoManagedImage { build: String },
    #[error("`{build}` published no gallery image version")]
    NoGalleryImage { build: String },
    #[error("an `id` image cannot carry a Plan in CAPZ; use a gallery image")]
    PlanWithId,
    #[error("the template to copy holds a {found}, not an AzureMachineTemplate")]
    NotATemplate { found: String },
    #[error("the template to copy has no spec.template.spec.vmSize, which CAPZ requires")]
    TemplateWithoutVmSize,
    #[error("a template made from scratch needs a VM size")]
    VmSizeMissing,
    #[error(
        "the Kubernetes version of `{build}` is unknown, and an upgrade sets the control plane and workers to it"
    )]
    UnknownKubernetesVersion { build: String },
    /// An upgrade that Cluster API would refuse or that would break the cluster.
    #[error("{0}")]
    Upgrade(String),
}
