//! The image record: what one Packer build produced (or why it produced nothing).
//!
//! Records are plain data with a stable, serde-derived JSON form (`schema` names its version).
//! Every parser ends with [`Record::redact`], which runs every string of the record (nested
//! `custom_data` and its keys included) through [`crate::redact::redact_secrets`]: no
//! credential reaches a record, whichever field it was planted in.

pub mod azure_id;
pub mod kubernetes;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use azure_id::{GalleryImageVersionId, ManagedImageId};

/// Version tag written into every record; bump it when a field changes meaning.
pub const RECORD_SCHEMA: &str = "sigcat.record/v1";

/// The JSON Schema of a record (what `sigcat schema record` prints).
pub const SCHEMA: &str = include_str!("record.schema.json");

/// One image (or one failed build) as sigcat understands it: every artifact field, the gallery reference split into its parts, the Kubernetes version and the build's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// `sigcat.record/v1`.
    pub schema: String,
    /// Build name as Packer printed it (`azure-arm.sig-ubuntu-2404` or `sig-ubuntu-2404`).
    pub build_name: String,
    /// Build name without the builder type (`sig-ubuntu-2404`), as the manifest stores it.
    pub build: String,
    /// Builder type when known (`azure-arm`, `azure-chroot`, `azure-dtl`).
    pub builder_type: Option<String>,
    /// Packer artifact builder id (`Azure.ResourceManagement.VMImage`, `azure.chroot`).
    pub builder_id: Option<String>,
    /// How the build ended.
    pub result: BuildResult,
    /// Duration as Packer printed it (`27 minutes 12 seconds`).
    pub duration: Option<String>,
    /// Packer's duration, in seconds.
    pub duration_seconds: Option<f64>,
    /// Error text of a failed or interrupted build.
    pub error: Option<String>,
    /// `Linux` or `Windows`; absent before Packer 1.3.
    pub os_type: Option<String>,
    /// The managed image the build created.
    pub managed_image: Option<ManagedImage>,
    /// The gallery image version the build published.
    pub gallery_image: Option<GalleryImage>,
    /// The VHD the build left in a storage account.
    pub vhd: Option<Vhd>,
    /// The chroot builder's list of created resources (lower-cased ids, as printed).
    pub resources: Vec<String>,
    /// Kubernetes version without the leading `v` (`1.30.3`).
    pub kubernetes_version: Option<String>,
    /// Where the Kubernetes version came from.
    pub kubernetes_version_source: Option<KubernetesVersionSource>,
    /// `custom_data` of the matching manifest build, when a manifest was read.
    pub custom_data: BTreeMap<String, serde_json::Value>,
    /// Where the record was read.
    pub provenance: Provenance,
    /// `Key: value` lines of the artifact block that sigcat does not know (newer plugins).
    pub extra: BTreeMap<String, String>,
}

/// How a build ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BuildResult {
    /// Packer reported an artifact.
    Succeeded,
    /// The build errored.
    Failed,
    /// The build was cancelled.
    Interrupted,
}

/// Where a record's Kubernetes version came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KubernetesVersionSource {
    /// `custom_data.kubernetes_semver` of the manifest post-processor.
    Manifest,
    /// The gallery image version is itself a Kubernetes version (image-builder CI's convention).
    GalleryVersion,
    /// `--kubernetes-version` on the command line.
    CommandLine,
}

/// A managed image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagedImage {
    /// Its resource group.
    pub resource_group: String,
    /// Its name.
    pub name: String,
    /// Its resource id.
    pub id: String,
    /// Subscription, parsed from `id`.
    pub subscription_id: Option<String>,
    /// Location as configured (`northcentralus`, or `East US`).
    pub location: Option<String>,
    /// The OS disk snapshot the build made, if any.
    pub os_disk_snapshot_name: Option<String>,
    /// The prefix of the data disk snapshots, if any.
    pub data_disk_snapshot_prefix: Option<String>,
}

impl ManagedImage {
    /// What an id alone tells (manifests, the chroot builder): no location or snapshots.
    pub fn from_id(id: String, parsed: ManagedImageId) -> Self {
        ManagedImage {
            resource_group: parsed.resource_group,
            name: parsed.name,
            id,
            subscription_id: Some(parsed.subscription_id),
            location: None,
            os_disk_snapshot_name: None,
            data_disk_snapshot_prefix: None,
        }
    }
}

/// A Shared (Compute) Image Gallery image version, split into its parts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GalleryImage {
    /// The gallery image version's resource id.
    pub id: String,
    /// Its subscription.
    pub subscription_id: String,
    /// Its resource group.
    pub resource_group: String,
    /// Its gallery.
    pub gallery: String,
    /// The image definition (`capi-ubuntu-2404`); CAPZ calls it `name`.
    pub image_definition: String,
    /// Its version.
    pub version: String,
    /// Normalised region names; empty when the build did not list them.
    pub replicated_regions: Vec<String>,
}

impl GalleryImage {
    /// The parts of a gallery image version id, and the regions it was replicated to.
    pub fn from_id(
        id: String,
        parsed: GalleryImageVersionId,
        replicated_regions: Vec<String>,
    ) -> Self {
        GalleryImage {
            id,
            subscription_id: parsed.subscription_id,
            resource_group: parsed.resource_group,
            gallery: parsed.gallery,
            image_definition: parsed.image_definition,
            version: parsed.version,
            replicated_regions,
        }
    }
}

/// VHD outputs. Every URI has its SAS signature redacted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vhd {
    /// The storage account's location.
    pub storage_account_location: Option<String>,
    /// The OS disk's URL (any SAS signature redacted).
    pub os_disk_uri: Option<String>,
    /// The OS disk's read-only SAS URL (its signature redacted).
    pub os_disk_uri_read_only_sas: Option<String>,
    /// The deployment template's URL.
    pub template_uri: Option<String>,
    /// The deployment template's read-only SAS URL (its signature redacted).
    pub template_uri_read_only_sas: Option<String>,
    /// Data disks.
    pub data_disks: Vec<DataDisk>,
}

/// A data disk of a VHD build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataDisk {
    /// As printed: `datadisk-1`.
    pub name: String,
    /// Its URL.
    pub uri: Option<String>,
    /// Its read-only SAS URL (its signature redacted).
    pub uri_read_only_sas: Option<String>,
}

/// Where a record came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// File name as given, or `<stdin>`.
    pub source: String,
    /// The input's format.
    pub format: InputFormat,
    /// First and last line of the artifact block (or of the result line for failures).
    pub first_line: Option<u64>,
    /// The last line of the artifact block (or the result line).
    pub last_line: Option<u64>,
    /// The Packer run, from the manifest.
    pub packer_run_uuid: Option<String>,
    /// The manifest joined with a log (`--manifest`).
    pub manifest: Option<String>,
}

/// What a record was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputFormat {
    /// Packer's console output.
    Console,
    /// `-machine-readable` output.
    MachineReadable,
    /// manifest.json.
    Manifest,
}

impl Record {
    /// An empty record for `build_name`; parsers fill in what they find.
    pub fn new(build_name: &str, result: BuildResult, provenance: Provenance) -> Record {
        let (builder_type, bare) = split_build_name(build_name);
        Record {
            schema: RECORD_SCHEMA.to_string(),
            build_name: build_name.to_string(),
            build: bare.to_string(),
            builder_type: builder_type.map(str::to_string),
            builder_id: None,
            result,
            duration: None,
            duration_seconds: None,
            error: None,
            os_type: None,
            managed_image: None,
            gallery_image: None,
            vhd: None,
            resources: Vec::new(),
            kubernetes_version: None,
            kubernetes_version_source: None,
            custom_data: BTreeMap::new(),
            provenance,
            extra: BTreeMap::new(),
        }
    }

    /// The distro or OS variant the build made (`ubuntu-2404`, `windows-2022-containerd`):
    /// image-builder's `build_name` variable when the manifest carries it, else the build
    /// name without its `sig-` prefix (image-builder names builds `sig-{{build_name}}`).
    pub fn distro(&self) -> String {
        self.custom_data
            .get("build_name")
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| {
                split_build_name(&self.build)
                    .1
                    .trim_start_matches("sig-")
                    .to_string()
            })
    }

    /// Whether this record describes an image (rather than a failure).
    pub fn has_image(&self) -> bool {
        self.managed_image.is_some()
            || self.gallery_image.is_some()
            || self.vhd.as_ref().is_some_and(|v| v.os_disk_uri.is_some())
            || !self.resources.is_empty()
    }

    /// Every Azure id or URI that identifies this image, used to match a manifest's `artifact_id`.
    pub fn artifact_ids(&self) -> Vec<&str> {
        let mut ids = Vec::new();
        if let Some(m) = &self.managed_image {
            ids.push(m.id.as_str());
        }
        if let Some(g) = &self.gallery_image {
            ids.push(g.id.as_str());
        }
        if let Some(uri) = self.vhd.as_ref().and_then(|v| v.os_disk_uri.as_deref()) {
            ids.push(uri);
        }
        ids.extend(self.resources.iter().map(String::as_str));
        ids
    }

    /// Removes credentials from every string of the record.
    pub fn redact(&mut self) {
        fn s(v: &mut String) {
            if let std::borrow::Cow::Owned(r) = crate::redact::redact_secrets(v) {
                *v = r;
            }
        }
        fn o(v: &mut Option<String>) {
            if let Some(v) = v {
                s(v);
            }
        }
        s(&mut self.build_name);
        s(&mut self.build);
        o(&mut self.builder_type);
        o(&mut self.builder_id);
        o(&mut self.duration);
        o(&mut self.error);
        o(&mut self.os_type);
        if let Some(m) = &mut self.managed_image {
            for v in [&mut m.resource_group, &mut m.name, &mut m.id] {
                s(v);
            }
            for v in [
                &mut m.subscription_id,
                &mut m.location,
                &mut m.os_disk_snapshot_name,
                &mut m.data_disk_snapshot_prefix,
            ] {
                o(v);
            }
        }
        if let Some(g) = &mut self.gallery_image {
            for v in [
                &mut g.id,
                &mut g.subscription_id,
                &mut g.resource_group,
                &mut g.gallery,
                &mut g.image_definition,
                &mut g.version,
            ] {
                s(v);
            }
            g.replicated_regions.iter_mut().for_each(s);
        }
        if let Some(v) = &mut self.vhd {
            for f in [
                &mut v.storage_account_location,
                &mut v.os_disk_uri,
                &mut v.os_disk_uri_read_only_sas,
                &mut v.template_uri,
                &mut v.template_uri_read_only_sas,
            ] {
                o(f);
            }
            for d in &mut v.data_disks {
                s(&mut d.name);
                o(&mut d.uri);
                o(&mut d.uri_read_only_sas);
            }
        }
        self.resources.iter_mut().for_each(s);
        o(&mut self.kubernetes_version);
        self.custom_data = std::mem::take(&mut self.custom_data)
            .into_iter()
            .map(|(mut k, mut v)| {
                s(&mut k);
                redact_json(&mut v);
                (k, v)
            })
            .collect();
        let p = &mut self.provenance;
        s(&mut p.source);
        o(&mut p.packer_run_uuid);
        o(&mut p.manifest);
        self.extra = std::mem::take(&mut self.extra)
            .into_iter()
            .map(|(mut k, mut v)| {
                s(&mut k);
                s(&mut v);
                (k, v)
            })
            .collect();
    }

    /// A record read back from `sigcat parse` output (JSON lines): redacted like any other,
    /// since a hand-edited or foreign file may hold what sigcat never writes.
    pub fn from_json(line: &str) -> Result<Record, serde_json::Error> {
        let mut record: Record = serde_json::from_str(line)?;
        record.redact();
        Ok(record)
    }

    /// Sets the Kubernetes version from the gallery version when that is a Kubernetes version.
    pub fn infer_kubernetes_version(&mut self) {
        if self.kubernetes_version.is_some() {
            return;
        }
        if let Some(g) = &self.gallery_image
            && kubernetes::looks_like_kubernetes_release(&g.version)
        {
            self.kubernetes_version = Some(g.version.clone());
            self.kubernetes_version_source = Some(KubernetesVersionSource::GalleryVersion);
        }
    }
}

/// The one image among `records`, when there is exactly one.
pub fn the_one_image(records: &[Record]) -> Result<&Record, crate::error::Selection> {
    let images: Vec<&Record> = records.iter().filter(|r| r.has_image()).collect();
    match images.as_slice() {
        [one] => Ok(one),
        [] => Err(crate::error::Selection::NoImage {
            failed: records
                .iter()
                .filter(|r| r.result != BuildResult::Succeeded)
                .map(|r| r.build_name.clone())
                .collect(),
        }),
        many => Err(crate::error::Selection::SeveralImages {
            builds: many.iter().map(|r| r.build.clone()).collect(),
        }),
    }
}

/// Redacts every string in a JSON value, object keys included.
pub fn redact_json(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(text) => {
            if let std::borrow::Cow::Owned(r) = crate::redact::redact_secrets(text) {
                *text = r;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_json),
        Value::Object(map) => {
            *map = std::mem::take(map)
                .into_iter()
                .map(|(k, mut v)| {
                    redact_json(&mut v);
                    (crate::redact::redact_secrets(&k).into_owned(), v)
                })
                .collect();
        }
        _ => {}
    }
}

/// The first control character (C0, DEL, C1) in `text`, as `U+XXXX`: no Azure name, id or
/// build name holds one, so a value with one is not what it claims to be.
pub fn control_character(text: &str) -> Option<String> {
    text.chars()
        .find(|c| c.is_control())
        .map(|c| format!("U+{:04X}", c as u32))
}

/// Azure builder types, as they prefix build names (`azure-arm.sig-ubuntu-2404`).
const AZURE_BUILDER_TYPES: [&str; 3] = ["azure-arm", "azure-chroot", "azure-dtl"];

/// Splits `[BUILD_BLOCK.]TYPE.SOURCE` into the builder type and the bare name the manifest uses.
/// Names without a known Azure type prefix are already bare.
pub fn split_build_name(name: &str) -> (Option<&str>, &str) {
    for ty in AZURE_BUILDER_TYPES {
        let dotted_len = ty.len() + 1;
        let mut search_from = 0;
        while let Some(pos) = name[search_from..].find(ty) {
            let at = search_from + pos;
            let starts_segment = at == 0 || name.as_bytes()[at - 1] == b'.';
            let followed_by_dot = name.as_bytes().get(at + ty.len()) == Some(&b'.');
            if starts_segment && followed_by_dot && name.len() > at + dotted_len {
                return (Some(ty), &name[at + dotted_len..]);
            }
            search_from = at + 1;
        }
    }
    (None, name)
}

/// Whether two printed build names name the same build (`azure-arm.x` and `x`).
pub fn same_build(a: &str, b: &str) -> bool {
    split_build_name(a).1 == split_build_name(b).1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_names_lose_their_builder_type() {
        assert_eq!(
            split_build_name("azure-arm.sig-ubuntu-2404"),
            (Some("azure-arm"), "sig-ubuntu-2404")
        );
        assert_eq!(
            split_build_name("sig-ubuntu-2404"),
            (None, "sig-ubuntu-2404")
        );
        assert_eq!(
            split_build_name("Linux.azure-arm.template"),
            (Some("azure-arm"), "template")
        );
        assert_eq!(
            split_build_name("azure-chroot.img"),
            (Some("azure-chroot"), "img")
        );
        // A name that merely contains the type is not prefixed by it.
        assert_eq!(split_build_name("my-azure-arm.x"), (None, "my-azure-arm.x"));
        assert_eq!(split_build_name("azure-arm."), (None, "azure-arm."));
        assert!(same_build("azure-arm.sig-flatcar-gen2", "sig-flatcar-gen2"));
        assert!(!same_build("azure-arm.sig-a", "sig-b"));
    }
}
