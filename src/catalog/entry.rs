//! A record prepared for the catalog: its id, the bytes of its objects (the record and its
//! rendered AzureMachineTemplate) and the index entry that will describe it. Preparing is a
//! pure step done per item before anything is written, so an item the catalog cannot hold is
//! refused on its own, naming itself, and never fails the others.

use super::index::{Extra, IndexEntry, ObjectRef, normalize_region};
use super::objects::{self, Kind, Revision};
use crate::record::Record;
use crate::render::{self, Refusal, TemplateOptions};
use std::collections::BTreeMap;
use std::fmt;

pub use objects::sha256;

/// Which input an item came from, for messages: the build and its source file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The build name as printed.
    pub build: String,
    /// The file it was read from, or `<stdin>`.
    pub source: String,
}

impl Item {
    /// The item a record is.
    pub fn of(record: &Record) -> Item {
        Item {
            build: record.build_name.clone(),
            source: record.provenance.source.clone(),
        }
    }
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.build, self.source)
    }
}

/// An item the catalog will not hold, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{item}: {reason}")]
pub struct Refused {
    /// The item.
    pub item: Item,
    /// Why.
    #[source]
    pub reason: Refusal,
}

/// A record ready to be published.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The image's catalog id.
    pub id: String,
    /// Where it came from.
    pub item: Item,
    /// The record.
    pub record: Record,
    /// The record object's bytes.
    pub record_bytes: Vec<u8>,
    /// The AzureMachineTemplate object's bytes.
    pub template_bytes: Vec<u8>,
}

/// The catalog id of an image: readable parts, and a hash of the full Azure id so that equal
/// gallery names in different subscriptions stay apart.
pub fn image_id(record: &Record) -> Option<String> {
    let (readable, full) = match (&record.gallery_image, &record.managed_image) {
        (Some(g), _) => (
            format!("{}-{}", g.image_definition, g.version),
            g.id.as_str(),
        ),
        (None, Some(m)) => (m.name.clone(), m.id.as_str()),
        _ => return None,
    };
    Some(id_from(&readable, full))
}

/// The id of the image built to gallery image version `id` (what `image_id` gives its record),
/// when `id` is one.
pub fn image_id_of_gallery_version(id: &str) -> Option<String> {
    let parsed = crate::record::azure_id::GalleryImageVersionId::parse(id).ok()?;
    Some(id_from(
        &format!("{}-{}", parsed.image_definition, parsed.version),
        id,
    ))
}

fn id_from(readable: &str, full: &str) -> String {
    let name = render::template_name(readable, "");
    format!(
        "{}-{:08x}",
        name.trim_end_matches('-'),
        crate::stable_hash(&full.to_ascii_lowercase()) as u32
    )
}

/// A time or a date (`2027-06-04`, `2027-06-04T00:00:00+00:00`) as the catalog writes times:
/// RFC 3339 in UTC with milliseconds, so that times compare as text.
pub fn normalize_time(text: &str) -> Option<String> {
    use time::format_description::well_known::Rfc3339;
    let text = text.trim();
    let at = match time::OffsetDateTime::parse(text, &Rfc3339) {
        Ok(at) => at,
        Err(_) => {
            let date = time::Date::parse(
                text,
                &time::macros::format_description!("[year]-[month]-[day]"),
            )
            .ok()?;
            date.with_hms(0, 0, 0).ok()?.assume_utc()
        }
    };
    let at = at.to_offset(time::UtcOffset::UTC);
    let at = at
        .replace_nanosecond(at.millisecond() as u32 * 1_000_000)
        .ok()?;
    at.format(&time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    ))
    .ok()
}

/// Prepares a record: refused when it names no gallery or managed image, or when its template
/// would be refused (a third-party base without a Plan).
pub fn prepare(record: &Record, template: &TemplateOptions) -> Result<Entry, Refused> {
    let refused = |reason| Refused {
        item: Item::of(record),
        reason,
    };
    let id = image_id(record).ok_or_else(|| {
        refused(Refusal::NoBootableImage {
            build: record.build.clone(),
        })
    })?;
    let rendered = render::new_template(record, None, template).map_err(refused)?;
    Ok(Entry {
        id,
        item: Item::of(record),
        record: record.clone(),
        record_bytes: record_bytes(record),
        template_bytes: crate::yaml::to_stream(&[rendered]).into_bytes(),
    })
}

/// A record as the catalog stores it (pretty JSON).
pub fn record_bytes(record: &Record) -> Vec<u8> {
    serde_json::to_vec_pretty(record).unwrap_or_default()
}

/// Where an image can be used: its gallery's replicated regions, else a managed image's
/// location, normalised; empty when the build did not say.
pub fn regions(record: &Record) -> Vec<String> {
    let mut regions: Vec<String> = match (&record.gallery_image, &record.managed_image) {
        (Some(g), _) => g
            .replicated_regions
            .iter()
            .map(|r| normalize_region(r))
            .collect(),
        (None, Some(m)) => m.location.iter().map(|l| normalize_region(l)).collect(),
        _ => Vec::new(),
    };
    regions.retain(|r| !r.is_empty());
    regions.dedup();
    regions
}

/// The revision object for an entry's record and template, at `at`, written for the root
/// sequence `sequence` of catalog `catalog_id`.
pub fn revision(
    id: &str,
    record: &ObjectRef,
    template: &ObjectRef,
    at: &str,
    sequence: u64,
    catalog_id: Option<&str>,
) -> (ObjectRef, Vec<u8>) {
    let bytes = serde_json::to_vec_pretty(&Revision {
        id: id.to_string(),
        record: record.clone(),
        template: template.clone(),
        at: at.to_string(),
        sequence: Some(sequence),
        catalog_id: catalog_id.map(str::to_string),
    })
    .unwrap_or_default();
    (objects::object_ref(id, Kind::Revision, &bytes), bytes)
}

/// The index entry for `record` with its objects (`kind` → key and bytes' hash).
pub fn describe(
    id: &str,
    record: &Record,
    objects: BTreeMap<String, ObjectRef>,
    published_at: String,
) -> IndexEntry {
    let g = record.gallery_image.as_ref();
    let distro = record.distro();
    IndexEntry {
        id: id.to_string(),
        build: record.build.clone(),
        kubernetes_version: record.kubernetes_version.clone(),
        os_type: record.os_type.clone(),
        distro: Some(distro),
        image_definition: g.map(|g| g.image_definition.clone()),
        gallery: g.map(|g| g.gallery.clone()),
        gallery_image_version: g.map(|g| g.version.clone()),
        gallery_image_version_id: g.map(|g| g.id.clone()),
        managed_image_id: record.managed_image.as_ref().map(|m| m.id.clone()),
        regions: regions(record),
        yank: None,
        lifecycle: None,
        published_at,
        updated_at: None,
        objects,
        extra: Extra::new(),
    }
}

impl Entry {
    /// The record object's key and hash.
    pub fn record_ref(&self) -> ObjectRef {
        objects::object_ref(&self.id, Kind::Record, &self.record_bytes)
    }

    /// The template object's key and hash.
    pub fn template_ref(&self) -> ObjectRef {
        objects::object_ref(&self.id, Kind::Template, &self.template_bytes)
    }

    /// The index entry, pointing at its objects and at the revision object `revision`.
    pub fn index_entry(&self, revision: ObjectRef, published_at: String) -> IndexEntry {
        let objects = BTreeMap::from([
            ("record".to_string(), self.record_ref()),
            ("template".to_string(), self.template_ref()),
            ("revision".to_string(), revision),
        ]);
        describe(&self.id, &self.record, objects, published_at)
    }
}

/// Now, as RFC 3339 in UTC with millisecond precision (what common parsers read).
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let now = now
        .replace_nanosecond(now.millisecond() as u32 * 1_000_000)
        .unwrap_or(now);
    now.format(&time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    ))
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(path: &str) -> Record {
        let bytes =
            std::fs::read(format!("{}/fixtures/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        crate::parse::parse_bytes(&bytes, path, None)
            .unwrap()
            .records
            .remove(0)
    }

    fn options() -> TemplateOptions {
        TemplateOptions {
            vm_size: Some("Standard_D2s_v3".into()),
            ..TemplateOptions::default()
        }
    }

    #[test]
    fn a_gallery_image_is_prepared_with_content_named_objects() {
        let e = prepare(&record("console/sig-ubuntu-2404.log"), &options()).unwrap();
        assert!(
            e.id.starts_with("capi-ubuntu-2404-0-3-1721037000-"),
            "{}",
            e.id
        );
        let r = e.record_ref();
        assert!(r.key.starts_with(&format!("images/{}/record-", e.id)) && r.key.ends_with(".json"));
        assert_eq!(r.sha256, sha256(&e.record_bytes));
        assert!(e.template_ref().key.ends_with(".yaml"));
        let at = "2026-01-01T00:00:00.000Z";
        let (rev, _) = revision(&e.id, &e.record_ref(), &e.template_ref(), at, 1, None);
        let entry = e.index_entry(rev, at.into());
        assert_eq!(entry.distro.as_deref(), Some("ubuntu-2404"));
        assert_eq!(entry.regions, ["northcentralus", "eastus2"]);
        assert_eq!(
            entry.gallery_image_version.as_deref(),
            Some("0.3.1721037000")
        );
    }

    #[test]
    fn what_the_catalog_cannot_hold_is_refused_naming_the_item() {
        let vhd = record("console/vhd-plugin-2.5.log");
        let err = prepare(&vhd, &options()).unwrap_err();
        assert_eq!(err.item.build, "azure-arm.vhd-ubuntu-2204");
        assert!(matches!(err.reason, Refusal::NoBootableImage { .. }));
        let flatcar = record("console/flatcar-gen2.log");
        let err = prepare(&flatcar, &options()).unwrap_err();
        assert!(matches!(err.reason, Refusal::NeedsPlan { .. }), "{err}");
    }

    #[test]
    fn timestamps_have_milliseconds() {
        let t = now_rfc3339();
        assert_eq!(t.len(), "2026-01-01T00:00:00.000Z".len(), "{t}");
        assert!(
            time::OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339).is_ok()
        );
    }
}
