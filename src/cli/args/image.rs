//! How a template's image section is written (render, publish, ingest, watch), the VM size of
//! the template the catalog stores, and what completes the records of one run (a manifest, a
//! Kubernetes version).

use crate::cli::failure::Failure;
use clap::{Args, ValueEnum};
use sigcat::record::kubernetes::KubeVersion;
use sigcat::render::{ImageKind, Plan, TemplateOptions};
use std::path::PathBuf;

/// How the image section of a template is written: shared by render, publish, ingest and watch.
#[derive(Args, Clone)]
pub(crate) struct ImageArgs {
    /// The image API: computeGallery (CAPZ >= 1.4), sharedGallery (older CAPZ), or id (managed image).
    #[arg(long, value_enum)]
    image_api: Option<ImageApi>,
    /// Plan of a third-party base image: PUBLISHER:OFFER:SKU.
    #[arg(long, value_name = "PUBLISHER:OFFER:SKU")]
    plan: Option<Plan>,
    /// YAML file mapping image definitions (with `*`) to plans: `plans: [{definition, publisher, offer, sku}]`.
    #[arg(long, value_name = "FILE")]
    plans_file: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum ImageApi {
    ComputeGallery,
    SharedGallery,
    Id,
}

impl ImageArgs {
    /// Template options with these image settings and the given VM size.
    pub(crate) fn template_options(
        &self,
        vm_size: Option<String>,
    ) -> Result<TemplateOptions, Failure> {
        let mut options = TemplateOptions {
            image_kind: self.image_api.map(|k| match k {
                ImageApi::ComputeGallery => ImageKind::ComputeGallery,
                ImageApi::SharedGallery => ImageKind::SharedGallery,
                ImageApi::Id => ImageKind::Id,
            }),
            plan: self.plan.clone(),
            vm_size,
            ..TemplateOptions::default()
        };
        if let Some(path) = &self.plans_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| sigcat::Error::io(path.display().to_string(), e))?;
            options.plan_rules =
                sigcat::render::template::read_plans(&text, &path.display().to_string())
                    .map_err(sigcat::Error::from)?;
        }
        Ok(options)
    }
}

/// How the AzureMachineTemplate the catalog stores is rendered.
#[derive(Args, Clone)]
pub(crate) struct TemplateArgs {
    /// VM size of the stored template (adjust it later with `sigcat render --from`).
    #[arg(long, value_name = "SIZE", default_value = "Standard_D2s_v3")]
    vm_size: String,
    #[command(flatten)]
    image: ImageArgs,
}

impl TemplateArgs {
    /// The options the catalog renders each image's template with.
    pub(crate) fn options(&self) -> Result<TemplateOptions, Failure> {
        self.image.template_options(Some(self.vm_size.clone()))
    }
}

/// What completes the records of one run: its manifest, or a Kubernetes version.
#[derive(Args, Clone)]
pub(crate) struct RecordArgs {
    /// The manifest.json of the same run (adds the Kubernetes version).
    #[arg(long, value_name = "FILE")]
    pub(crate) manifest: Option<PathBuf>,
    /// Kubernetes version when the input does not tell.
    #[arg(long, value_name = "VERSION", value_parser = super::parse_kubernetes_version)]
    pub(crate) kubernetes_version: Option<KubeVersion>,
}
