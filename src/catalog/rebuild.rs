//! The index is derived data: everything it says comes from immutable objects (records,
//! templates, revisions, yank events). [`derive`] computes it from them, for
//! `catalog rebuild-index` after an index was lost or corrupted; [`verify`] checks a catalog
//! against its objects, for `catalog verify`.

use super::entry;
use super::index::{Index, IndexEntry, ObjectRef, YankState};
use super::objects::{self, Kind, Revision, YankEvent, chain_head, sha256};
use super::revision::{self, Comparison};
use super::store::{PutMode, Store};
use super::{Catalog, CatalogError};
use crate::record::Record;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing, harmless: an object nothing refers to (a publish that lost a race, or
    /// never finished).
    Warning,
    /// The catalog is not what it claims to be.
    Error,
}

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FindingKind {
    /// The index's signature.
    Signature,
    /// The index and the objects disagree, or an object is missing or altered.
    Data,
    /// Objects the index does not account for.
    Orphan,
}

/// One thing `verify` or `rebuild-index` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// How bad.
    pub severity: Severity,
    /// About what.
    pub kind: FindingKind,
    /// The object key or image id it is about.
    pub subject: String,
    /// What is wrong, and what to do.
    pub problem: String,
}

impl crate::fault::Classify for Finding {
    fn fault(&self) -> Option<crate::fault::Fault> {
        use crate::fault::Fault;
        match (self.severity, self.kind) {
            (Severity::Warning, _) => None,
            (Severity::Error, FindingKind::Signature) => Some(Fault::Untrusted),
            (Severity::Error, _) => Some(Fault::CatalogData),
        }
    }
}

impl Severity {
    /// `warning` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

impl FindingKind {
    /// `signature`, `data` or `orphan`.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::Signature => "signature",
            FindingKind::Data => "data",
            FindingKind::Orphan => "orphan",
        }
    }
}

/// What `catalog verify` found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Images in the index.
    pub images: usize,
    /// Yanked images in the index.
    pub yanked: usize,
    /// Objects in the catalog.
    pub objects: usize,
    /// Who signed the index, or why it is not checked.
    pub signature: String,
    /// What was found, errors first.
    pub findings: Vec<Finding>,
}

impl Report {
    /// The worst finding's severity and kind.
    pub fn worst(&self) -> Option<(Severity, FindingKind)> {
        self.findings
            .iter()
            .map(|f| (f.severity, f.kind))
            .max_by_key(|(s, k)| (*s, *k == FindingKind::Signature))
    }
}

/// An image's objects, as listed.
#[derive(Debug, Default)]
struct ImageObjects {
    keys: Vec<(String, Kind)>,
}

impl ImageObjects {
    fn of(&self, kind: Kind) -> impl Iterator<Item = &str> {
        self.keys
            .iter()
            .filter(move |(_, k)| *k == kind)
            .map(|(key, _)| key.as_str())
    }
}

async fn list_images<S: Store>(
    catalog: &Catalog<S>,
) -> Result<(BTreeMap<String, ImageObjects>, usize), CatalogError> {
    let mut images: BTreeMap<String, ImageObjects> = BTreeMap::new();
    let keys = catalog.list_keys("images/").await?;
    let count = keys.len();
    for key in keys {
        if let Some((id, kind)) = objects::parse_key(&key) {
            images.entry(id).or_default().keys.push((key, kind));
        }
    }
    Ok((images, count))
}

/// Reads an object whose hash is not known in advance (it is the one being derived from).
async fn read_listed<S: Store>(
    catalog: &Catalog<S>,
    key: &str,
) -> Result<Option<Vec<u8>>, CatalogError> {
    Ok(catalog.get(key).await?.map(|v| v.bytes))
}

/// One revision of an image, read and checked.
struct Found {
    revision: ObjectRef,
    at: String,
    record_ref: ObjectRef,
    template_ref: ObjectRef,
    record: Record,
    value: serde_json::Value,
}

/// The image's yank state from its events, and every event key.
async fn yank_state<S: Store>(
    catalog: &Catalog<S>,
    id: &str,
    objs: &ImageObjects,
    findings: &mut Vec<Finding>,
) -> Result<Option<YankState>, CatalogError> {
    let mut events = Vec::new();
    let mut bytes_of = HashMap::new();
    for key in objs.of(Kind::Yank) {
        let Some(bytes) = read_listed(catalog, key).await? else {
            continue;
        };
        match serde_json::from_slice::<YankEvent>(&bytes) {
            Ok(e) if e.id == id => {
                bytes_of.insert(key.to_string(), bytes);
                events.push((key.to_string(), e));
            }
            _ => findings.push(error(
                FindingKind::Data,
                key,
                "not a yank event of this image",
            )),
        }
    }
    Ok(chain_head(&events).map(|(key, e)| YankState {
        yanked: e.yanked,
        reason: e.reason.clone(),
        at: e.at.clone(),
        event: ObjectRef {
            key: key.clone(),
            sha256: sha256(&bytes_of[key]),
        },
    }))
}

fn error(kind: FindingKind, subject: &str, problem: impl Into<String>) -> Finding {
    Finding {
        severity: Severity::Error,
        kind,
        subject: subject.to_string(),
        problem: problem.into(),
    }
}

/// Every revision of an image that can be read whole (its record and template there, with
/// their hashes); the ones that cannot are findings.
async fn revisions<S: Store>(
    catalog: &Catalog<S>,
    id: &str,
    objs: &ImageObjects,
    findings: &mut Vec<Finding>,
    fallback_at: &str,
) -> Result<Vec<Found>, CatalogError> {
    let mut found = Vec::new();
    let mut listed: Vec<(ObjectRef, Revision)> = Vec::new();
    for key in objs.of(Kind::Revision) {
        let Some(bytes) = read_listed(catalog, key).await? else {
            continue;
        };
        match serde_json::from_slice::<Revision>(&bytes) {
            Ok(r) if r.id == id => listed.push((
                ObjectRef {
                    key: key.to_string(),
                    sha256: sha256(&bytes),
                },
                r,
            )),
            _ => findings.push(error(
                FindingKind::Data,
                key,
                "not a revision of this image",
            )),
        }
    }
    // Layout 1: one record and one template at fixed keys, and no revision objects.
    if listed.is_empty()
        && let (Some(r), Some(t)) = (
            objs.of(Kind::LegacyRecord).next(),
            objs.of(Kind::LegacyTemplate).next(),
        )
        && let (Some(rb), Some(tb)) = (
            read_listed(catalog, r).await?,
            read_listed(catalog, t).await?,
        )
    {
        let record_ref = ObjectRef {
            key: r.into(),
            sha256: sha256(&rb),
        };
        let template_ref = ObjectRef {
            key: t.into(),
            sha256: sha256(&tb),
        };
        listed.push((
            ObjectRef {
                key: String::new(),
                sha256: String::new(),
            },
            Revision {
                id: id.into(),
                record: record_ref,
                template: template_ref,
                at: fallback_at.into(),
            },
        ));
    }
    for (revision, r) in listed {
        let record_bytes = match catalog.read_object(&r.record).await {
            Ok(b) => b,
            Err(CatalogError::Corrupt { key, problem, .. }) => {
                findings.push(error(FindingKind::Data, &key, problem));
                continue;
            }
            Err(e) => return Err(e),
        };
        if let Err(CatalogError::Corrupt { key, problem, .. }) =
            catalog.read_object(&r.template).await
        {
            findings.push(error(FindingKind::Data, &key, problem));
            continue;
        }
        let (Ok(record), Ok(value)) = (
            serde_json::from_slice::<Record>(&record_bytes),
            serde_json::from_slice::<serde_json::Value>(&record_bytes),
        ) else {
            findings.push(error(FindingKind::Data, &r.record.key, "not a record"));
            continue;
        };
        found.push(Found {
            revision,
            at: r.at,
            record_ref: r.record,
            template_ref: r.template,
            record,
            value,
        });
    }
    found.sort_by(|a, b| {
        a.at.cmp(&b.at)
            .then_with(|| a.revision.key.cmp(&b.revision.key))
    });
    Ok(found)
}

/// What the index says of one image, from its objects.
async fn derive_image<S: Store>(
    catalog: &Catalog<S>,
    id: &str,
    objs: &ImageObjects,
    findings: &mut Vec<Finding>,
    fallback_at: &str,
) -> Result<Option<IndexEntry>, CatalogError> {
    let found = revisions(catalog, id, objs, findings, fallback_at).await?;
    let Some(first) = found.first() else {
        return Ok(None);
    };
    // Each revision adds to the one before; the newest that does is the image now.
    let mut newest = first;
    for r in &found[1..] {
        match revision::compare(&newest.value, &r.value) {
            Comparison::Known => {}
            Comparison::Adds { .. } => newest = r,
            Comparison::Disagrees { field, stored, offered } => findings.push(error(
                FindingKind::Data,
                &r.revision.key,
                format!("contradicts an earlier revision ({field} `{stored}` / `{offered}`); the earlier one stands"),
            )),
        }
    }
    if entry::image_id(&newest.record).as_deref() != Some(id) {
        findings.push(error(
            FindingKind::Data,
            &newest.record_ref.key,
            format!("its record is not image {id}"),
        ));
        return Ok(None);
    }
    let mut objects = BTreeMap::from([
        ("record".to_string(), newest.record_ref.clone()),
        ("template".to_string(), newest.template_ref.clone()),
    ]);
    if !newest.revision.key.is_empty() {
        objects.insert("revision".to_string(), newest.revision.clone());
    }
    let mut e = entry::describe(id, &newest.record, objects, first.at.clone());
    if newest.at != first.at {
        e.updated_at = Some(newest.at.clone());
    }
    e.yank = yank_state(catalog, id, objs, findings).await?;
    Ok(Some(e))
}

/// The index as the objects say it should be. Times a layout-1 image has no object for come
/// from `previous` (the index being replaced) when it can still be read, else from now.
pub async fn derive<S: Store>(
    catalog: &Catalog<S>,
    previous: Option<&Index>,
) -> Result<(Index, Vec<Finding>), CatalogError> {
    let (images, _) = list_images(catalog).await?;
    let now = entry::now_rfc3339();
    let mut findings = Vec::new();
    let mut index = Index::default();
    if let Some(p) = previous {
        index.extra = p.extra.clone();
    }
    for (id, objs) in &images {
        let old = previous.and_then(|p| p.find(id));
        let at = old.map_or(now.as_str(), |o| o.published_at.as_str());
        if let Some(mut e) = derive_image(catalog, id, objs, &mut findings, at).await? {
            if let Some(old) = old {
                e.extra = old.extra.clone();
            }
            index.images.push(e);
        }
    }
    Ok((index, findings))
}

impl<S: Store> Catalog<S> {
    /// Rebuilds the index from the objects and replaces whatever index is there (unreadable,
    /// untrusted or lost), under compare-and-swap; signed when there is a signing key.
    pub async fn rebuild_index(&self) -> Result<(Index, Vec<Finding>), CatalogError> {
        let mut contention = self.contention();
        loop {
            let raw = self.get(objects::INDEX_KEY).await?;
            let previous = raw.as_ref().and_then(|v| self.parse_index(&v.bytes).ok());
            let mode = match &raw {
                Some(v) => PutMode::IfMatch(v.etag.clone()),
                None => PutMode::Create,
            };
            let (mut index, findings) = derive(self, previous.as_ref()).await?;
            if self.write_index(&mut index, &mode).await? {
                return Ok((index, findings));
            }
            // A publish got in between: its objects are there now too; derive again.
            contention.lost(self).await?;
        }
    }
}

/// Checks a catalog: the signature, every index entry against its objects and its record,
/// the yank states against the yank events, and which objects the index does not account for.
pub async fn verify<S: Store>(catalog: &Catalog<S>) -> Result<Report, CatalogError> {
    let mut findings = Vec::new();
    let (images, objects_count) = list_images(catalog).await?;
    let raw = catalog.get(objects::INDEX_KEY).await?;
    let mut report = Report {
        images: 0,
        yanked: 0,
        objects: objects_count,
        signature: String::new(),
        findings: Vec::new(),
    };
    let Some(raw) = raw else {
        report.signature = "no index".into();
        if !images.is_empty() {
            findings.push(error(
                FindingKind::Data,
                objects::INDEX_KEY,
                format!(
                    "missing, but {} images have objects; run `sigcat catalog rebuild-index`",
                    images.len()
                ),
            ));
        }
        report.findings = findings;
        return Ok(report);
    };
    let signature = catalog.signature_of(&raw.bytes).await?;
    report.signature = match (catalog.trust(), &signature) {
        (Some(trust), sig) => match trust.verify(&raw.bytes, sig.as_deref()) {
            Ok(who) => format!("signed by {who}"),
            Err(problem) => {
                findings.push(error(
                    FindingKind::Signature,
                    objects::INDEX_KEY,
                    problem.to_string(),
                ));
                format!("not trusted: {problem}")
            }
        },
        (None, Some(_)) => "signed, not checked (give --trusted-keys to check it)".into(),
        (None, None) => "not signed".into(),
    };
    let index = match catalog.parse_index(&raw.bytes) {
        Ok(i) => i,
        Err(e) => {
            findings.push(error(
                FindingKind::Data,
                objects::INDEX_KEY,
                crate::error::chain(&e),
            ));
            report.findings = findings;
            return Ok(report);
        }
    };
    report.images = index.images.len();
    report.yanked = index.images.iter().filter(|e| e.is_yanked()).count();
    let mut accounted: HashSet<String> = HashSet::new();
    let empty = ImageObjects::default();
    for e in &index.images {
        let objs = images.get(&e.id).unwrap_or(&empty);
        // What an indexed image's history accounts for: every revision, what each names, and
        // every yank event.
        for (key, kind) in &objs.keys {
            if matches!(kind, Kind::Revision | Kind::Yank) {
                accounted.insert(key.clone());
                if *kind == Kind::Revision
                    && let Some(bytes) = read_listed(catalog, key).await?
                    && let Ok(r) = serde_json::from_slice::<Revision>(&bytes)
                {
                    accounted.insert(r.record.key);
                    accounted.insert(r.template.key);
                }
            }
        }
        let mut entry_ok = true;
        for (which, r) in &e.objects {
            accounted.insert(r.key.clone());
            if let Err(err) = catalog.read_object(r).await {
                match err {
                    CatalogError::Corrupt { key, problem, .. } => {
                        findings.push(error(
                            FindingKind::Data,
                            &key,
                            format!("{which} of {}: {problem}", e.id),
                        ));
                        entry_ok = false;
                    }
                    other => return Err(other),
                }
            }
        }
        if !entry_ok {
            continue;
        }
        // The entry says what its record says.
        let Some(record_ref) = e.objects.get("record") else {
            findings.push(error(FindingKind::Data, &e.id, "the index names no record"));
            continue;
        };
        let bytes = catalog.read_object(record_ref).await?;
        let Ok(record) = serde_json::from_slice::<Record>(&bytes) else {
            findings.push(error(FindingKind::Data, &record_ref.key, "not a record"));
            continue;
        };
        let mut expected =
            entry::describe(&e.id, &record, e.objects.clone(), e.published_at.clone());
        expected.updated_at = e.updated_at.clone();
        expected.yank = e.yank.clone();
        expected.extra = e.extra.clone();
        if entry::image_id(&record).as_deref() != Some(e.id.as_str()) {
            findings.push(error(
                FindingKind::Data,
                &e.id,
                "its record is another image",
            ));
        } else if expected != *e {
            let said = serde_json::to_value(e).unwrap_or_default();
            let should = serde_json::to_value(&expected).unwrap_or_default();
            let fields: Vec<String> = said
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, v)| should.get(k.as_str()) != Some(v))
                .map(|(k, _)| k.clone())
                .collect();
            findings.push(error(
                FindingKind::Data,
                &e.id,
                format!(
                    "the index disagrees with its record on {}",
                    fields.join(", ")
                ),
            ));
        }
        if let Some(rev) = e.objects.get("revision")
            && let Ok(r) = serde_json::from_slice::<Revision>(&catalog.read_object(rev).await?)
            && (Some(&r.record) != e.objects.get("record")
                || Some(&r.template) != e.objects.get("template"))
        {
            findings.push(error(
                FindingKind::Data,
                &rev.key,
                format!("names other objects than the index does for {}", e.id),
            ));
        }
        // The yank state is the head of the yank events.
        let mut yank_findings = Vec::new();
        let head = yank_state(catalog, &e.id, objs, &mut yank_findings).await?;
        findings.extend(yank_findings);
        let said = e.yank.as_ref().map(|y| (&y.event.key, y.yanked));
        let events = head.as_ref().map(|y| (&y.event.key, y.yanked));
        if said != events {
            findings.push(error(
                FindingKind::Data,
                &e.id,
                format!(
                    "its yank state ({}) is not the latest of its yank events ({})",
                    describe_yank(e.yank.as_ref()),
                    describe_yank(head.as_ref())
                ),
            ));
        }
    }
    // Objects the index does not account for.
    let indexed: HashSet<&str> = index.images.iter().map(|e| e.id.as_str()).collect();
    for (id, objs) in &images {
        if !indexed.contains(id.as_str()) {
            findings.push(Finding {
                severity: Severity::Warning,
                kind: FindingKind::Orphan,
                subject: id.clone(),
                problem: format!("{} objects of an image the index does not list (a publish that never finished?); rebuild-index would add it", objs.keys.len()),
            });
            continue;
        }
        for (key, _) in &objs.keys {
            if !accounted.contains(key) {
                findings.push(Finding {
                    severity: Severity::Warning,
                    kind: FindingKind::Orphan,
                    subject: key.clone(),
                    problem: "nothing refers to it (written by a publisher that lost a race)"
                        .into(),
                });
            }
        }
    }
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.subject.cmp(&b.subject))
    });
    report.findings = findings;
    Ok(report)
}

fn describe_yank(y: Option<&YankState>) -> String {
    match y {
        None => "never yanked".into(),
        Some(y) => format!(
            "{} by {}",
            if y.yanked { "yanked" } else { "unyanked" },
            y.event.key
        ),
    }
}
