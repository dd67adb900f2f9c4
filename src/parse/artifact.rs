//! One artifact block (the `Key: value` lines after `--> NAME: Azure.ResourceManagement.VMImage:`
//! or the chroot builder's `Azure resources created:` list) → one [`Record`].
//!
//! This is where input is judged: a missing key, a bad resource id or gallery lines that disagree
//! with the gallery id are errors that point at the line, never a guess.

use crate::error::InputError;
use crate::record::{
    BuildResult, DataDisk, GalleryImage, GalleryImageVersionId, ManagedImage, ManagedImageId,
    Provenance, Record, Vhd,
};
use crate::redact::redact_secrets;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

pub(crate) const VM_IMAGE_BUILDER_ID: &str = "Azure.ResourceManagement.VMImage";
pub(crate) const CHROOT_BUILDER_ID: &str = "azure.chroot";
/// First line of each artifact kind, as printed after `--> NAME: `.
pub(crate) const VM_IMAGE_HEADER: &str = "Azure.ResourceManagement.VMImage:";
pub(crate) const CHROOT_HEADER: &str = "Azure resources created:";

#[derive(Debug, Clone)]
pub(crate) struct Field {
    pub(crate) key: String,
    /// Already redacted.
    pub(crate) value: String,
    pub(crate) line: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct ArtifactBlock {
    pub(crate) build_name: String,
    pub(crate) builder_id: &'static str,
    pub(crate) first_line: u64,
    pub(crate) last_line: u64,
    pub(crate) fields: Vec<Field>,
    /// Chroot only: created resource ids with their lines.
    pub(crate) resources: Vec<(String, u64)>,
}

impl ArtifactBlock {
    pub(crate) fn new(build_name: &str, builder_id: &'static str, line: u64) -> Self {
        ArtifactBlock {
            build_name: build_name.to_string(),
            builder_id,
            first_line: line,
            last_line: line,
            fields: Vec::new(),
            resources: Vec::new(),
        }
    }

    /// Adds a `Key: value` line. A key seen before must have the same value.
    pub(crate) fn add_field(
        &mut self,
        key: &str,
        value: &str,
        line: u64,
        source: &str,
    ) -> Result<(), InputError> {
        if let Some(c) = crate::record::control_character(value) {
            return Err(InputError::new(
                source,
                Some(line),
                format!(
                    "`{key}` holds the control character {c}; expected an Azure name, id or URI"
                ),
            ));
        }
        let value = redact_secrets(value).into_owned();
        self.last_line = line;
        if let Some(prev) = self.fields.iter().find(|f| f.key == key) {
            if prev.value != value {
                return Err(InputError::new(
                    source,
                    Some(line),
                    format!(
                        "`{key}` appears twice in the artifact block of `{}` with different values (line {}: `{}`, here: `{value}`); expected one value per key",
                        self.build_name, prev.line, prev.value
                    ),
                ));
            }
            return Ok(());
        }
        self.fields.push(Field {
            key: key.to_string(),
            value,
            line,
        });
        Ok(())
    }

    pub(crate) fn add_resource(
        &mut self,
        id: &str,
        line: u64,
        source: &str,
    ) -> Result<(), InputError> {
        if let Some(c) = crate::record::control_character(id) {
            return Err(InputError::new(
                source,
                Some(line),
                format!(
                    "a created resource holds the control character {c}; expected an Azure resource id"
                ),
            ));
        }
        self.last_line = line;
        self.resources.push((redact_secrets(id).into_owned(), line));
        Ok(())
    }

    /// Identity of the image this block describes, so the duplicate block that the manifest
    /// post-processor causes (and the machine-readable copy) collapse into one record.
    pub(crate) fn fingerprint(&self) -> u64 {
        let mut fields: Vec<(&str, &str)> = self
            .fields
            .iter()
            .map(|f| (f.key.as_str(), f.value.as_str()))
            .collect();
        fields.sort_unstable();
        let mut h = DefaultHasher::new();
        crate::record::split_build_name(&self.build_name)
            .1
            .hash(&mut h);
        self.builder_id.hash(&mut h);
        fields.hash(&mut h);
        for (r, _) in &self.resources {
            r.hash(&mut h);
        }
        h.finish()
    }

    fn get(&self, key: &str) -> Option<&Field> {
        self.fields
            .iter()
            .find(|f| f.key == key && !f.value.is_empty())
    }

    pub(crate) fn into_record(self, provenance: Provenance) -> Result<Record, InputError> {
        let source = provenance.source.clone();
        let mut record = Record::new(&self.build_name, BuildResult::Succeeded, provenance);
        record.builder_id = Some(self.builder_id.to_string());
        record.provenance.first_line = Some(self.first_line);
        record.provenance.last_line = Some(self.last_line);
        let err = |line: u64, problem: String| InputError::new(&source, Some(line), problem);

        if self.builder_id == CHROOT_BUILDER_ID {
            return chroot_record(self, record, &source);
        }
        if self.fields.is_empty() {
            return Err(err(
                self.first_line,
                format!(
                    "the artifact block of `{}` has no `Key: value` lines; expected OSType, ManagedImage... or SharedImageGallery... lines (is the log truncated?)",
                    self.build_name
                ),
            ));
        }

        if let Some(os) = self.get("OSType") {
            if !matches!(os.value.as_str(), "Linux" | "Windows") {
                return Err(err(
                    os.line,
                    format!("expected OSType `Linux` or `Windows`, found `{}`", os.value),
                ));
            }
            record.os_type = Some(os.value.clone());
        }

        record.managed_image = self.managed_image(&source)?;
        record.gallery_image = self.gallery_image(&source)?;
        record.vhd = self.vhd(&source)?;

        if !record.has_image() {
            return Err(err(
                self.first_line,
                format!(
                    "the artifact block of `{}` names no image; expected ManagedImageId, ManagedImageSharedImageGalleryId or a VHD OS disk URI",
                    self.build_name
                ),
            ));
        }
        for f in &self.fields {
            if !is_known_key(&f.key) {
                record.extra.insert(f.key.clone(), f.value.clone());
            }
        }
        record.infer_kubernetes_version();
        Ok(record)
    }

    fn managed_image(&self, source: &str) -> Result<Option<ManagedImage>, InputError> {
        let keys = [
            "ManagedImageResourceGroupName",
            "ManagedImageName",
            "ManagedImageId",
        ];
        let present: Vec<&Field> = keys.iter().filter_map(|k| self.get(k)).collect();
        if present.is_empty() {
            return Ok(None);
        }
        let anchor = present[0].line;
        let need = |key: &str| {
            self.get(key).ok_or_else(|| {
                InputError::new(
                    source,
                    Some(anchor),
                    format!("the managed image of `{}` has no `{key}` line; expected ManagedImageResourceGroupName, ManagedImageName and ManagedImageId together", self.build_name),
                )
            })
        };
        let (rg, name, id) = (need(keys[0])?, need(keys[1])?, need(keys[2])?);
        let parsed = ManagedImageId::parse(&id.value)
            .map_err(|e| InputError::new(source, Some(id.line), e.to_string()))?;
        for (field, part, what) in [
            (rg, &parsed.resource_group, "resource group"),
            (name, &parsed.name, "name"),
        ] {
            if !field.value.eq_ignore_ascii_case(part) {
                return Err(InputError::new(
                    source,
                    Some(field.line),
                    format!(
                        "`{}: {}` disagrees with the {what} `{part}` in ManagedImageId (line {})",
                        field.key, field.value, id.line
                    ),
                ));
            }
        }
        Ok(Some(ManagedImage {
            resource_group: rg.value.clone(),
            name: name.value.clone(),
            id: id.value.clone(),
            subscription_id: Some(parsed.subscription_id),
            location: self.get("ManagedImageLocation").map(|f| f.value.clone()),
            os_disk_snapshot_name: self
                .get("ManagedImageOSDiskSnapshotName")
                .map(|f| f.value.clone()),
            data_disk_snapshot_prefix: self
                .get("ManagedImageDataDiskSnapshotPrefix")
                .map(|f| f.value.clone()),
        }))
    }

    fn gallery_image(&self, source: &str) -> Result<Option<GalleryImage>, InputError> {
        let checks = [
            ("SharedImageGalleryResourceGroup", "resource group"),
            ("SharedImageGalleryName", "gallery"),
            ("SharedImageGalleryImageName", "image definition"),
            ("SharedImageGalleryImageVersion", "version"),
        ];
        let Some(id) = self.get("ManagedImageSharedImageGalleryId") else {
            if let Some(stray) = checks.iter().find_map(|(k, _)| self.get(k)) {
                return Err(InputError::new(
                    source,
                    Some(stray.line),
                    format!(
                        "`{}` without a ManagedImageSharedImageGalleryId line in the artifact block of `{}`; expected the gallery image version id too",
                        stray.key, self.build_name
                    ),
                ));
            }
            return Ok(None);
        };
        let parsed = GalleryImageVersionId::parse(&id.value)
            .map_err(|e| InputError::new(source, Some(id.line), e.to_string()))?;
        let parts = [
            &parsed.resource_group,
            &parsed.gallery,
            &parsed.image_definition,
            &parsed.version,
        ];
        for ((key, what), part) in checks.iter().zip(parts) {
            let Some(field) = self.get(key) else { continue };
            // Azure names are case-insensitive; versions are compared exactly.
            let agrees = if *key == "SharedImageGalleryImageVersion" {
                field.value == *part
            } else {
                field.value.eq_ignore_ascii_case(part)
            };
            if !agrees {
                return Err(InputError::new(
                    source,
                    Some(field.line),
                    format!(
                        "`{key}: {}` disagrees with the {what} `{part}` in ManagedImageSharedImageGalleryId (line {})",
                        field.value, id.line
                    ),
                ));
            }
        }
        let replicated_regions = self
            .get("SharedImageGalleryReplicatedRegions")
            .map(|f| {
                f.value
                    .split(',')
                    .map(str::trim)
                    .filter(|r| !r.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Some(GalleryImage::from_id(
            id.value.clone(),
            parsed,
            replicated_regions,
        )))
    }

    fn vhd(&self, source: &str) -> Result<Option<Vhd>, InputError> {
        let value = |k: &str| self.get(k).map(|f| f.value.clone());
        let os_disk_uri = match (self.get("OSDiskUri"), self.get("VHDOSDiskUri")) {
            (Some(a), Some(b)) if a.value != b.value => {
                return Err(InputError::new(
                    source,
                    Some(b.line),
                    format!(
                        "`VHDOSDiskUri` disagrees with `OSDiskUri` (line {}); expected one OS disk",
                        a.line
                    ),
                ));
            }
            (a, b) => a.or(b).map(|f| f.value.clone()),
        };
        let mut data_disks: Vec<DataDisk> = Vec::new();
        for f in &self.fields {
            let Some((kind, disk)) = data_disk_key(&f.key) else {
                continue;
            };
            let slot = match data_disks.iter().position(|d| d.name == disk) {
                Some(i) => i,
                None => {
                    data_disks.push(DataDisk {
                        name: disk.to_string(),
                        uri: None,
                        uri_read_only_sas: None,
                    });
                    data_disks.len() - 1
                }
            };
            let value = (!f.value.is_empty()).then(|| f.value.clone());
            if kind == "AdditionalDiskUri" {
                data_disks[slot].uri = value;
            } else {
                data_disks[slot].uri_read_only_sas = value;
            }
        }
        let vhd = Vhd {
            storage_account_location: value("StorageAccountLocation"),
            os_disk_uri,
            os_disk_uri_read_only_sas: value("OSDiskUriReadOnlySas"),
            template_uri: value("TemplateUri"),
            template_uri_read_only_sas: value("TemplateUriReadOnlySas"),
            data_disks,
        };
        if vhd == Vhd::default() {
            return Ok(None);
        }
        if vhd.os_disk_uri.is_none() && vhd.storage_account_location.is_some() {
            let line = self.get("StorageAccountLocation").map(|f| f.line);
            return Err(InputError::new(
                source,
                line,
                format!(
                    "the VHD output of `{}` has no OS disk; expected an OSDiskUri or VHDOSDiskUri line",
                    self.build_name
                ),
            ));
        }
        Ok(Some(vhd))
    }
}

/// `AdditionalDiskUri (datadisk-1)` → (`AdditionalDiskUri`, `datadisk-1`).
fn data_disk_key(key: &str) -> Option<(&str, &str)> {
    let (kind, rest) = key.split_once(" (")?;
    let disk = rest.strip_suffix(')')?;
    matches!(kind, "AdditionalDiskUri" | "AdditionalDiskUriReadOnlySas").then_some((kind, disk))
}

fn is_known_key(key: &str) -> bool {
    const KNOWN: [&str; 19] = [
        "OSType",
        "ManagedImageResourceGroupName",
        "ManagedImageName",
        "ManagedImageId",
        "ManagedImageLocation",
        "ManagedImageOSDiskSnapshotName",
        "ManagedImageDataDiskSnapshotPrefix",
        "ManagedImageSharedImageGalleryId",
        "SharedImageGalleryResourceGroup",
        "SharedImageGalleryName",
        "SharedImageGalleryImageName",
        "SharedImageGalleryImageVersion",
        "SharedImageGalleryReplicatedRegions",
        "StorageAccountLocation",
        "OSDiskUri",
        "OSDiskUriReadOnlySas",
        "VHDOSDiskUri",
        "TemplateUri",
        "TemplateUriReadOnlySas",
    ];
    KNOWN.contains(&key) || data_disk_key(key).is_some()
}

/// The chroot builder lists lower-cased resource ids; the image and gallery version among them
/// are recognised, everything else is kept in `resources`.
fn chroot_record(
    block: ArtifactBlock,
    mut record: Record,
    source: &str,
) -> Result<Record, InputError> {
    if block.resources.is_empty() {
        return Err(InputError::new(
            source,
            Some(block.first_line),
            format!(
                "the chroot artifact of `{}` lists no resources; expected resource ids after `{CHROOT_HEADER}`",
                block.build_name
            ),
        ));
    }
    for (id, _) in &block.resources {
        if let Ok(g) = GalleryImageVersionId::parse(id) {
            record
                .gallery_image
                .get_or_insert(GalleryImage::from_id(id.clone(), g, Vec::new()));
        } else if let Ok(m) = ManagedImageId::parse(id) {
            record
                .managed_image
                .get_or_insert(ManagedImage::from_id(id.clone(), m));
        }
    }
    record.resources = block.resources.into_iter().map(|(id, _)| id).collect();
    record.infer_kubernetes_version();
    Ok(record)
}
