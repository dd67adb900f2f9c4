//! The image record: what one Packer build produced (or why it produced nothing).
//!
//! Records are plain data with a stable, serde-derived JSON form (`schema` names its version).
//! Every string in a record has already passed [`redact::redact_secrets`]: SAS signatures
//! never reach a record.

pub mod azure_id;
pub mod kubernetes;
pub mod redact;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use azure_id::{GalleryImageVersionId, ManagedImageId};

/// Version tag written into every record; bump it when a field changes meaning.
pub const RECORD_SCHEMA: &str = "sigcat.record/v1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub schema: String,
    /// Build name as Packer printed it (`azure-arm.sig-ubuntu-2404` or `sig-ubuntu-2404`).
    pub build_name: String,
    /// Build name without the builder type (`sig-ubuntu-2404`), as the manifest stores it.
    pub build: String,
    /// Builder type when known (`azure-arm`, `azure-chroot`, `azure-dtl`).
    pub builder_type: Option<String>,
    /// Packer artifact builder id (`Azure.ResourceManagement.VMImage`, `azure.chroot`).
    pub builder_id: Option<String>,
    pub result: BuildResult,
    /// Duration as Packer printed it (`27 minutes 12 seconds`).
    pub duration: Option<String>,
    pub duration_seconds: Option<f64>,
    /// Error text of a failed or interrupted build.
    pub error: Option<String>,
    /// `Linux` or `Windows`; absent before Packer 1.3.
    pub os_type: Option<String>,
    pub managed_image: Option<ManagedImage>,
    pub gallery_image: Option<GalleryImage>,
    pub vhd: Option<Vhd>,
    /// The chroot builder's list of created resources (lower-cased ids, as printed).
    pub resources: Vec<String>,
    /// Kubernetes version without the leading `v` (`1.30.3`).
    pub kubernetes_version: Option<String>,
    pub kubernetes_version_source: Option<KubernetesVersionSource>,
    /// `custom_data` of the matching manifest build, when a manifest was read.
    pub custom_data: BTreeMap<String, serde_json::Value>,
    pub provenance: Provenance,
    /// `Key: value` lines of the artifact block that sigcat does not know (newer plugins).
    pub extra: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BuildResult {
    Succeeded,
    Failed,
    Interrupted,
}

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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagedImage {
    pub resource_group: String,
    pub name: String,
    pub id: String,
    /// Subscription, parsed from `id`.
    pub subscription_id: Option<String>,
    /// Location as configured (`northcentralus`, or `East US`).
    pub location: Option<String>,
    pub os_disk_snapshot_name: Option<String>,
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
    pub id: String,
    pub subscription_id: String,
    pub resource_group: String,
    pub gallery: String,
    /// The image definition (`capi-ubuntu-2404`); CAPZ calls it `name`.
    pub image_definition: String,
    pub version: String,
    /// Normalised region names; empty when the build did not list them.
    pub replicated_regions: Vec<String>,
}

impl GalleryImage {
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
    pub storage_account_location: Option<String>,
    pub os_disk_uri: Option<String>,
    pub os_disk_uri_read_only_sas: Option<String>,
    pub template_uri: Option<String>,
    pub template_uri_read_only_sas: Option<String>,
    pub data_disks: Vec<DataDisk>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataDisk {
    /// As printed: `datadisk-1`.
    pub name: String,
    pub uri: Option<String>,
    pub uri_read_only_sas: Option<String>,
}

/// Where a record came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// File name as given, or `<stdin>`.
    pub source: String,
    pub format: InputFormat,
    /// First and last line of the artifact block (or of the result line for failures).
    pub first_line: Option<u64>,
    pub last_line: Option<u64>,
    pub packer_run_uuid: Option<String>,
    /// The manifest joined with a log (`--manifest`).
    pub manifest: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputFormat {
    Console,
    MachineReadable,
    Manifest,
}

impl std::str::FromStr for InputFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "console" => Ok(InputFormat::Console),
            "machine-readable" => Ok(InputFormat::MachineReadable),
            "manifest" => Ok(InputFormat::Manifest),
            other => Err(format!(
                "unknown input format `{other}`: expected console, machine-readable or manifest"
            )),
        }
    }
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
