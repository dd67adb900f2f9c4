//! `manifest.json` from Packer's manifest post-processor → records, and the join of a log's
//! records with their manifest (`--manifest`), which is where the Kubernetes version lives.

use crate::error::InputError;
use crate::record::kubernetes;
use crate::record::redact::redact_secrets;
use crate::record::{
    BuildResult, GalleryImage, GalleryImageVersionId, InputFormat, KubernetesVersionSource,
    ManagedImage, ManagedImageId, Provenance, Record, Vhd, same_build,
};
use serde::Deserialize;
use std::collections::BTreeMap;

/// A manifest larger than this is not a Packer manifest.
pub const MAX_MANIFEST_BYTES: usize = 64 << 20;

#[derive(Debug, Deserialize)]
struct ManifestFile {
    builds: Vec<ManifestBuild>,
    #[serde(default)]
    last_run_uuid: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ManifestBuild {
    pub name: String,
    #[serde(default)]
    pub builder_type: Option<String>,
    #[serde(default)]
    pub build_time: Option<i64>,
    #[serde(default)]
    pub artifact_id: Option<String>,
    #[serde(default)]
    pub packer_run_uuid: Option<String>,
    #[serde(default)]
    pub custom_data: Option<BTreeMap<String, serde_json::Value>>,
}

/// The builds of the newest run: those whose `packer_run_uuid` is `last_run_uuid` (builds are
/// appended across runs). Without `last_run_uuid`, the last entry per build name wins.
pub fn newest_builds(source: &str, bytes: &[u8]) -> Result<Vec<ManifestBuild>, InputError> {
    let manifest: ManifestFile = serde_json::from_slice(bytes).map_err(|e| {
        InputError::new(
            source,
            Some(e.line() as u64),
            format!("invalid manifest (column {}): {e}; expected Packer's manifest.json with a `builds` list", e.column()),
        )
    })?;
    let builds = match &manifest.last_run_uuid {
        Some(last) => {
            let newest: Vec<_> = manifest
                .builds
                .iter()
                .filter(|b| b.packer_run_uuid.as_deref() == Some(last))
                .cloned()
                .collect();
            if newest.is_empty() && !manifest.builds.is_empty() {
                return Err(InputError::new(
                    source,
                    None,
                    format!(
                        "no build has `packer_run_uuid` equal to `last_run_uuid` ({last}); expected the newest run's builds"
                    ),
                ));
            }
            newest
        }
        None => {
            let mut last_per_name: Vec<ManifestBuild> = Vec::new();
            for b in manifest.builds {
                last_per_name.retain(|o| o.name != b.name);
                last_per_name.push(b);
            }
            last_per_name
        }
    };
    Ok(builds)
}

/// Records straight from a manifest (no log): what the manifest says, nothing more.
pub fn records_from_manifest(
    source: &str,
    builds: &[ManifestBuild],
) -> Result<Vec<Record>, InputError> {
    builds
        .iter()
        .map(|b| {
            let provenance = Provenance {
                source: source.to_string(),
                format: InputFormat::Manifest,
                first_line: None,
                last_line: None,
                packer_run_uuid: b.packer_run_uuid.clone(),
                manifest: None,
            };
            let mut record = Record::new(&b.name, BuildResult::Succeeded, provenance);
            if record.builder_type.is_none() {
                record.builder_type = b.builder_type.clone();
            }
            if let Some(id) = b.artifact_id.as_deref() {
                describe_artifact(&mut record, id);
            }
            if !record.has_image() {
                return Err(InputError::new(
                    source,
                    None,
                    format!("build `{}` has no usable `artifact_id` (found {:?}); expected a managed image id, a gallery image version id or a VHD URI", b.name, b.artifact_id.as_deref().map(redact_secrets)),
                ));
            }
            take_custom_data(&mut record, b, source)?;
            record.infer_kubernetes_version();
            Ok(record)
        })
        .collect()
}

/// Fills the image fields a manifest's `artifact_id` can tell.
fn describe_artifact(record: &mut Record, id: &str) {
    let id = redact_secrets(id).into_owned();
    if let Ok(g) = GalleryImageVersionId::parse(&id) {
        record.gallery_image = Some(GalleryImage::from_id(id, g, Vec::new()));
    } else if let Ok(m) = ManagedImageId::parse(&id) {
        record.managed_image = Some(ManagedImage::from_id(id, m));
    } else if id.starts_with("https://") || id.starts_with("http://") {
        record.vhd = Some(Vhd {
            os_disk_uri: Some(id),
            ..Vhd::default()
        });
    }
}

/// Copies `custom_data` (and the Kubernetes version in it) onto a record.
fn take_custom_data(
    record: &mut Record,
    build: &ManifestBuild,
    source: &str,
) -> Result<(), InputError> {
    let Some(data) = &build.custom_data else {
        return Ok(());
    };
    for (k, v) in data {
        let v = match v {
            serde_json::Value::String(s) => {
                serde_json::Value::String(redact_secrets(s).into_owned())
            }
            other => other.clone(),
        };
        record.custom_data.insert(k.clone(), v);
    }
    if let Some(semver) = data
        .get("kubernetes_semver")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
    {
        let version = kubernetes::normalize(semver).ok_or_else(|| {
            InputError::new(source, None, format!("build `{}`: custom_data.kubernetes_semver `{semver}` is not a Kubernetes version; expected `v1.30.3`", build.name))
        })?;
        record.kubernetes_version = Some(version);
        record.kubernetes_version_source = Some(KubernetesVersionSource::Manifest);
    }
    if record.provenance.packer_run_uuid.is_none() {
        record.provenance.packer_run_uuid = build.packer_run_uuid.clone();
    }
    Ok(())
}

/// Joins a log's records with the newest run of its manifest, by build name (bare or prefixed).
/// A manifest build whose `artifact_id` is not the record's image is an error: the manifest is
/// from another run, and its Kubernetes version would be a guess.
pub fn join(
    records: &mut [Record],
    builds: &[ManifestBuild],
    manifest_source: &str,
) -> Result<Vec<String>, InputError> {
    let mut warnings = Vec::new();
    for record in records.iter_mut().filter(|r| r.has_image()) {
        let Some(build) = builds
            .iter()
            .find(|b| same_build(&b.name, &record.build_name))
        else {
            warnings.push(format!("{manifest_source}: no build named `{}` in the newest run; its Kubernetes version stays {}", record.build, record.kubernetes_version.as_deref().unwrap_or("unknown")));
            continue;
        };
        if let Some(artifact_id) = build.artifact_id.as_deref().filter(|a| !a.is_empty()) {
            let artifact_id = redact_secrets(artifact_id);
            if !record
                .artifact_ids()
                .iter()
                .any(|id| id.eq_ignore_ascii_case(&artifact_id))
            {
                return Err(InputError::new(
                    manifest_source,
                    None,
                    format!(
                        "build `{}`: artifact_id `{artifact_id}` is not the image in {}; expected the manifest of the same run",
                        build.name, record.provenance.source
                    ),
                ));
            }
        }
        record.kubernetes_version = None;
        record.kubernetes_version_source = None;
        take_custom_data(record, build, manifest_source)?;
        record.infer_kubernetes_version();
        record.provenance.manifest = Some(manifest_source.to_string());
    }
    Ok(warnings)
}
