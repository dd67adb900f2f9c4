//! Records → CAPZ manifests: a new `AzureMachineTemplate` whose `image:` section points at the
//! record's image, and the changes that move a control plane and its MachineDeployments to it.
//!
//! Everything is built as YAML values and written by a serializer, never by string templates,
//! so values YAML would misread (`1.30`, `on`, `0123`) stay strings.

mod change;
pub mod kustomize;
pub mod slots;
pub mod template;
mod topology;
mod upgrade;

pub use change::Change;
pub use slots::{PlanLine, Selector, copy_templates};
pub use template::{
    GalleryTarget, ImageKind, Plan, PlanRule, TemplateOptions, new_template, relocated,
    template_name,
};
pub use upgrade::{Request as UpgradeRequest, UpgradeOutput, plan_upgrade};

pub use crate::error::{NoRecordFits, OsMismatch, Refusal};
