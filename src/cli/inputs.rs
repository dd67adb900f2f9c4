//! Reading records for the commands that take them: `sigcat parse` output (JSON lines), or a
//! log / manifest parsed on the fly.

use super::warn;
use clap::{Args, ValueEnum};
use sigcat::parse;
use sigcat::record::Record;
use sigcat::render::{ImageKind, Plan, TemplateOptions};
use std::path::{Path, PathBuf};

/// How the image section of a template is written: shared by render, publish, ingest and watch.
#[derive(Args, Clone)]
pub struct ImageArgs {
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
    pub fn template_options(
        &self,
        vm_size: Option<String>,
    ) -> Result<TemplateOptions, sigcat::Error> {
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
                sigcat::render::template::read_plans(&text, &path.display().to_string())?;
        }
        Ok(options)
    }
}

pub fn load_records(
    inputs: &[PathBuf],
    manifest: Option<&Path>,
    kubernetes_version: Option<&str>,
) -> Result<Vec<Record>, sigcat::Error> {
    let mut records = Vec::new();
    let stdin = [PathBuf::from("-")];
    let inputs: &[PathBuf] = if inputs.is_empty() { &stdin } else { inputs };
    for path in inputs {
        let (bytes, source) = if path.as_os_str() == "-" {
            let mut b = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut b)
                .map_err(|e| sigcat::Error::io("<stdin>", e))?;
            (b, "<stdin>".to_string())
        } else {
            (
                std::fs::read(path)
                    .map_err(|e| sigcat::Error::io(path.display().to_string(), e))?,
                path.display().to_string(),
            )
        };
        records.extend(records_from_bytes(&bytes, &source)?);
    }
    finish_records(&mut records, manifest, kubernetes_version)?;
    Ok(records)
}

/// JSON lines of records, or any input `sigcat parse` reads.
pub fn records_from_bytes(bytes: &[u8], source: &str) -> Result<Vec<Record>, sigcat::Error> {
    let as_records: Option<Vec<Record>> = std::str::from_utf8(bytes).ok().and_then(|t| {
        t.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str::<Record>(l).ok())
            .collect()
    });
    match as_records {
        Some(r) if !r.is_empty() => Ok(r),
        _ => Ok(parse::parse_bytes(bytes, source, None)?.records),
    }
}

/// Applies `--manifest` and `--kubernetes-version`.
pub fn finish_records(
    records: &mut [Record],
    manifest: Option<&Path>,
    kubernetes_version: Option<&str>,
) -> Result<(), sigcat::Error> {
    if let Some(manifest) = manifest {
        let builds = parse::read_manifest(manifest)?;
        for w in parse::manifest::join(records, &builds, &manifest.display().to_string())? {
            warn(&w);
        }
    }
    if let Some(v) = kubernetes_version {
        parse::apply_kubernetes_version(records, v)?;
    }
    Ok(())
}
