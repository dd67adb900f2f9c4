//! `manifest.json` from Packer's manifest post-processor → records, and the join of a log's
//! records with their manifest (`--manifest`), which is where the Kubernetes version lives.

use crate::error::InputError;
use crate::record::kubernetes;
use crate::record::{
    BuildResult, GalleryImage, GalleryImageVersionId, InputFormat, KubernetesVersionSource,
    ManagedImage, ManagedImageId, Provenance, Record, Vhd, same_build,
};
use crate::redact::redact_secrets;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// A manifest larger than this is not a Packer manifest.
pub const MAX_MANIFEST_BYTES: usize = 64 << 20;

/// The file, with each build left as raw JSON (a slice of the input): only the newest run's
/// builds are decoded, so a manifest that has grown over many runs costs little more than its
/// bytes.
#[derive(Debug, Deserialize)]
struct ManifestFile<'a> {
    #[serde(borrow)]
    builds: Vec<&'a RawValue>,
    #[serde(default)]
    last_run_uuid: Option<String>,
}

/// What selecting the newest run needs of each build.
#[derive(Debug, Deserialize)]
struct BuildHead {
    name: String,
    #[serde(default)]
    packer_run_uuid: Option<String>,
}

/// One build of Packer's manifest.json (`builds[]`), as far as sigcat reads it.
#[derive(Debug, Clone, Deserialize)]
pub struct ManifestBuild {
    /// The build's name (`sig-ubuntu-2404`).
    pub name: String,
    /// The builder (`azure-arm`).
    #[serde(default)]
    pub builder_type: Option<String>,
    /// When the build ended (Unix seconds).
    #[serde(default)]
    pub build_time: Option<i64>,
    /// The image's resource id.
    #[serde(default)]
    pub artifact_id: Option<String>,
    /// The Packer run that wrote it.
    #[serde(default)]
    pub packer_run_uuid: Option<String>,
    /// The template's `custom_data` (image-builder puts `kubernetes_semver` there).
    #[serde(default)]
    pub custom_data: Option<BTreeMap<String, serde_json::Value>>,
    /// Line of the build in the file, for messages.
    #[serde(skip)]
    pub line: u64,
}

/// Line numbers of slices of one input, asked for in the order they appear: each call counts
/// only the newlines since the previous one, so numbering every build costs one pass.
struct LineCounter<'a> {
    bytes: &'a [u8],
    offset: usize,
    line: u64,
}

impl LineCounter<'_> {
    fn line_of(&mut self, raw: &RawValue) -> u64 {
        let at = (raw.get().as_ptr() as usize)
            .saturating_sub(self.bytes.as_ptr() as usize)
            .clamp(self.offset, self.bytes.len());
        self.line += memchr::memchr_iter(b'\n', &self.bytes[self.offset..at]).count() as u64;
        self.offset = at;
        self.line
    }
}

fn invalid(source: &str, line: u64, e: &serde_json::Error) -> InputError {
    InputError::new(
        source,
        Some(line + e.line() as u64 - 1),
        format!(
            "invalid manifest (column {}): {e}; expected Packer's manifest.json with a `builds` list",
            e.column()
        ),
    )
}

/// The builds of the newest run: those whose `packer_run_uuid` is `last_run_uuid` (builds are
/// appended across runs). Without `last_run_uuid`, the last entry per build name wins.
pub fn newest_builds(source: &str, bytes: &[u8]) -> Result<Vec<ManifestBuild>, InputError> {
    let manifest: ManifestFile =
        serde_json::from_slice(bytes).map_err(|e| invalid(source, 1, &e))?;
    let mut heads = Vec::with_capacity(manifest.builds.len());
    let mut lines = LineCounter {
        bytes,
        offset: 0,
        line: 1,
    };
    for raw in &manifest.builds {
        let line = lines.line_of(raw);
        let head: BuildHead =
            serde_json::from_str(raw.get()).map_err(|e| invalid(source, line, &e))?;
        heads.push((head, line, *raw));
    }
    let chosen: Vec<&(BuildHead, u64, &RawValue)> = match &manifest.last_run_uuid {
        Some(last) => {
            let newest: Vec<_> = heads
                .iter()
                .filter(|(h, _, _)| h.packer_run_uuid.as_deref() == Some(last))
                .collect();
            if newest.is_empty() && !heads.is_empty() {
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
            let mut last_per_name: Vec<&(BuildHead, u64, &RawValue)> = Vec::new();
            for h in &heads {
                last_per_name.retain(|o| o.0.name != h.0.name);
                last_per_name.push(h);
            }
            last_per_name
        }
    };
    chosen
        .into_iter()
        .map(|(_, line, raw)| {
            let mut build: ManifestBuild =
                serde_json::from_str(raw.get()).map_err(|e| invalid(source, *line, &e))?;
            build.line = *line;
            // Compared with records, whose every value is redacted: redacted the same way.
            for value in [Some(&mut build.name), build.artifact_id.as_mut(), build.packer_run_uuid.as_mut()].into_iter().flatten() {
                *value = redact_secrets(value).into_owned();
            }
            for (field, value) in [("name", Some(&build.name)), ("artifact_id", build.artifact_id.as_ref())] {
                if let Some(c) = value.and_then(|v| crate::record::control_character(v)) {
                    return Err(InputError::new(
                        source,
                        Some(*line),
                        format!("`{field}` of a build holds the control character {c}; expected a build name or an Azure resource id"),
                    ));
                }
            }
            Ok(build)
        })
        .collect()
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
                    (b.line > 0).then_some(b.line),
                    format!("build `{}` has no usable `artifact_id` (found {:?}); expected a managed image id, a gallery image version id or a VHD URI", b.name, b.artifact_id.as_deref().map(redact_secrets)),
                ));
            }
            take_custom_data(&mut record, b, source)?;
            record.infer_kubernetes_version();
            record.redact();
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
        record.custom_data.insert(k.clone(), v.clone());
    }
    if let Some(semver) = data
        .get("kubernetes_semver")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
    {
        let version = kubernetes::normalize(semver).ok_or_else(|| {
            InputError::new(source, (build.line > 0).then_some(build.line), format!("build `{}`: custom_data.kubernetes_semver `{semver}` is not a Kubernetes version; expected `v1.30.3`", build.name))
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
        record.redact();
    }
    Ok(warnings)
}
