//! `catalog verify`: checks a catalog against its objects and its trust, shard by shard, a
//! bounded number of objects read at once. It reports; it never writes.
//!
//! It checks the root's signature and freshness (with trusted keys), every shard against its
//! sha256, every entry against its objects and its record, each revision and event for a
//! trusted signature, each yank state against the chain of events, every `latest/` pointer
//! against what the shards say, and what the index does not account for: an image the index
//! does not list is reported with what `rebuild-index` would do with it (add it, or leave it out
//! and why), and any object written under a later sequence than the root's is evidence of a
//! rollback.

use super::entry;
use super::index::{IndexEntry, ObjectRef};
use super::objects::{self, INDEX_KEY, Kind, Link, Revision, chain, chain_head, sig_key};
use super::pointer::Latest;
use super::rebuild::{Adoption, Listed, each_image, finding};
use super::snapshot::Read;
use super::store::Store;
use super::view::View;
use super::{Catalog, CatalogError, Distrust};
use crate::fault::{Classify, Fault};
use crate::record::Record;
use futures::StreamExt;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing, harmless: an object nothing refers to, an adopted object.
    Warning,
    /// The catalog is not what it claims to be.
    Error,
}

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FindingKind {
    /// A signature: missing, by an unknown key, not of these bytes.
    Signature,
    /// Freshness: an expired, rolled-back or vanished index.
    Freshness,
    /// The index and the objects disagree, or an object is missing or altered.
    Data,
    /// Objects the index does not account for.
    Orphan,
    /// An object rebuild-index adopted and signed.
    Adopted,
    /// Something in an image's lifecycle an operator should know (promoted twice to one
    /// version, overwritten by another image's promotion, every location deleted).
    Lifecycle,
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

impl Classify for Finding {
    fn fault(&self) -> Option<Fault> {
        match (self.severity, self.kind) {
            (Severity::Warning, _) => None,
            (Severity::Error, FindingKind::Signature | FindingKind::Freshness) => {
                Some(Fault::Untrusted)
            }
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
    /// `signature`, `freshness`, `data`, `orphan`, `lifecycle` or `adopted`.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::Signature => "signature",
            FindingKind::Freshness => "freshness",
            FindingKind::Data => "data",
            FindingKind::Orphan => "orphan",
            FindingKind::Lifecycle => "lifecycle",
            FindingKind::Adopted => "adopted",
        }
    }
}

/// How far a long run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// What is being done (`listed`, `verified`, `rebuilt`).
    pub phase: &'static str,
    /// How many so far.
    pub done: usize,
    /// How many in all (0 when not known yet).
    pub total: usize,
}

/// What `catalog verify` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// The index's layout.
    pub layout: Option<u32>,
    /// Images in the index.
    pub images: usize,
    /// Yanked images in the index.
    pub yanked: usize,
    /// Shards.
    pub shards: usize,
    /// Objects under `images/`.
    pub objects: usize,
    /// The root's sequence.
    pub sequence: Option<u64>,
    /// The catalog's id (what `--catalog-id` pins).
    pub catalog_id: Option<String>,
    /// When the root expires.
    pub expires: Option<String>,
    /// Who signed the index, or why it is not checked.
    pub signature: String,
    /// What was found, errors first.
    pub findings: Vec<Finding>,
}

impl Report {
    /// The worst finding's fault, if any.
    pub fn fault(&self) -> Option<Fault> {
        Fault::worst_of(self.findings.iter().map(Classify::fault))
    }
}

fn error(kind: FindingKind, subject: &str, problem: impl Into<String>) -> Finding {
    finding(Severity::Error, kind, subject, problem)
}

fn warning(kind: FindingKind, subject: &str, problem: impl Into<String>) -> Finding {
    finding(Severity::Warning, kind, subject, problem)
}

/// Checks a catalog. `progress` hears how far it is on long runs.
pub async fn verify<S: Store>(
    catalog: &Catalog<S>,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Report, CatalogError> {
    let mut report = Report::default();
    let mut findings = Vec::new();
    let raw = catalog.get(INDEX_KEY).await?;
    if raw.is_none() && !catalog.store_exists().await? {
        return Err(CatalogError::Missing {
            catalog: catalog.describe(),
            what: catalog.store().root_noun(),
        });
    }
    // The root, whatever it is; what is wrong with it is a finding, and the objects are still
    // checked (an unreadable index is what rebuild-index is for).
    let view = match catalog.inspect().await {
        Ok(snap) => {
            check_root_trust(
                catalog,
                &snap,
                raw.as_ref().map(|v| v.bytes.as_slice()),
                &mut report,
                &mut findings,
            )
            .await?;
            Some(View::of(catalog, snap).await?)
        }
        Err(CatalogError::Corrupt { key, problem, .. }) => {
            findings.push(error(FindingKind::Data, &key, problem));
            report.signature = "not checked (the index cannot be read)".into();
            None
        }
        Err(e) => return Err(e),
    };
    let mut images: BTreeMap<String, Listed> = BTreeMap::new();
    report.objects = each_image(catalog, |id, listed| {
        images.insert(id, listed);
    })
    .await?;
    progress(Progress {
        phase: "listed",
        done: images.len(),
        total: images.len(),
    });
    if raw.is_none() && !images.is_empty() {
        findings.push(error(
            FindingKind::Data,
            INDEX_KEY,
            format!(
                "missing, but {} images have objects: `sigcat catalog rebuild-index` rebuilds it from them (what it would leave out is said below)",
                images.len()
            ),
        ));
    }
    let mut indexed: HashSet<String> = HashSet::new();
    let mut orphan_root_sequence = None;
    let mut root_catalog_id = None;
    if let Some(mut view) = view {
        let root_sequence = (!view.legacy).then_some(view.root.sequence);
        root_catalog_id = view.root.catalog_id.clone();
        let root_catalog_id = root_catalog_id.as_deref();
        orphan_root_sequence = root_sequence;
        let names = match view.all_shard_names(catalog).await {
            Ok(names) => names,
            Err(CatalogError::Corrupt { key, problem, .. }) => {
                findings.push(error(FindingKind::Data, &key, problem));
                Vec::new()
            }
            Err(e) => return Err(e),
        };
        report.shards = names.len();
        let total = view.root.image_count();
        let now = entry::now_rfc3339();
        let mut pointers: BTreeMap<String, Latest> = BTreeMap::new();
        let mut done = 0;
        for name in names {
            let shard = match view.shard(catalog, &name).await {
                Ok(s) => s.images.clone(),
                Err(CatalogError::Corrupt { key, problem, .. }) => {
                    findings.push(error(
                        FindingKind::Data,
                        &key,
                        format!("shard {name}: {problem}"),
                    ));
                    continue;
                }
                Err(e) => return Err(e),
            };
            view = View::forget_shards(view);
            for e in &shard {
                if !indexed.insert(e.id.clone()) {
                    findings.push(error(
                        FindingKind::Data,
                        &e.id,
                        format!("listed twice (again in shard {name})"),
                    ));
                }
                report.images += 1;
                report.yanked += usize::from(e.is_yanked());
                if let Some(p) = e.pointer_name() {
                    pointers
                        .entry(p.clone())
                        .or_insert_with(|| Latest::new(&p))
                        .offer(e, &now);
                }
            }
            let mut checks =
                futures::stream::iter(
                    shard.iter().map(|e| {
                        let listed = images.get(&e.id);
                        async move {
                            check_entry(catalog, e, listed, root_sequence, root_catalog_id).await
                        }
                    }),
                )
                .buffer_unordered(catalog.concurrency);
            while let Some(found) = checks.next().await {
                findings.extend(found?);
                done += 1;
                if done % 1000 == 0 {
                    progress(Progress {
                        phase: "verified",
                        done,
                        total,
                    });
                }
            }
        }
        if !view.legacy {
            check_pointers(catalog, &view, &pointers, &mut findings).await?;
        }
    }
    // What the index does not list.
    let orphans: Vec<(&String, &Listed)> = images
        .iter()
        .filter(|(id, _)| !indexed.contains(*id))
        .collect();
    let now = entry::now_rfc3339();
    let adoption = Adoption {
        catalog_id: root_catalog_id,
        ..Adoption::default()
    };
    let mut derived = futures::stream::iter(orphans.into_iter().map(|(id, listed)| {
        let (now, adoption) = (&now, &adoption);
        async move {
            (
                id,
                listed,
                catalog.derive_image(id, listed, adoption, now).await,
            )
        }
    }))
    .buffer_unordered(catalog.concurrency);
    while let Some((id, listed, d)) = derived.next().await {
        let d = d?;
        if let Some(index) = orphan_root_sequence
            && catalog.trusted_keys().is_some()
            && d.max_sequence > index
        {
            let problem = format!(
                "an image the index does not list, whose objects were written under sequence {}, after this index's {}: the index was rolled back or lost a write; `sigcat catalog rebuild-index` restores it",
                d.max_sequence, index
            );
            findings.push(
                if written_after(d.max_sequence, &d.max_sequence_at, index) {
                    error(FindingKind::Freshness, id, problem)
                } else {
                    warning(FindingKind::Freshness, id, in_flight(&problem))
                },
            );
        }
        match d.entry {
            Some(_) => findings.push(warning(
                FindingKind::Orphan,
                id,
                format!("{} objects of a complete image the index does not list (a publish that never finished?); `sigcat catalog rebuild-index` would add it", listed.keys.len()),
            )),
            // What a publish killed before its revision leaves (its record, template and
            // anchor): nothing reads it, and publishing the image again completes it. Not the
            // catalog's data being wrong.
            None if listed.of(Kind::Revision).next().is_none()
                && listed.of(Kind::Event).next().is_none() =>
            {
                findings.push(warning(
                    FindingKind::Orphan,
                    id,
                    format!("{} objects of an image the index does not list, with no revision: what a publish that stopped before it wrote one leaves (publishing the image again completes it), or objects planted; nothing reads them", listed.keys.len()),
                ));
            }
            None => {
                let why: Vec<String> = d.findings.iter().filter(|f| f.severity == Severity::Error).map(|f| format!("{}: {}", f.subject, f.problem)).collect();
                findings.push(error(
                    FindingKind::Data,
                    id,
                    format!("{} objects of an image the index does not list, which `sigcat catalog rebuild-index` would leave out: {}", listed.keys.len(), why.join("; ")),
                ));
            }
        }
    }
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.subject.cmp(&b.subject))
            .then_with(|| a.problem.cmp(&b.problem))
    });
    findings.dedup();
    report.findings = findings;
    Ok(report)
}

/// The root's signature and freshness, as findings.
async fn check_root_trust<S: Store>(
    catalog: &Catalog<S>,
    snap: &super::snapshot::Snapshot,
    raw: Option<&[u8]>,
    report: &mut Report,
    findings: &mut Vec<Finding>,
) -> Result<(), CatalogError> {
    let trust = catalog.trusted_keys();
    match &snap.read {
        Read::Root(root) => {
            report.layout = Some(root.layout);
            report.sequence = Some(root.sequence);
            report.catalog_id = root.catalog_id.clone();
            report.expires = Some(root.expires.clone());
        }
        Read::Legacy(index) => report.layout = Some(index.layout),
        Read::Unreadable(problem) => {
            findings.push(error(FindingKind::Data, INDEX_KEY, problem.clone()));
        }
        Read::Empty => {}
    }
    let Some(raw) = raw else {
        report.signature = "no index".into();
        if trust.is_some() {
            let seen = catalog
                .seen()?
                .map(|s| s.sequence)
                .unwrap_or(0)
                .max(catalog.min_sequence);
            if seen > 0 {
                findings.push(error(
                    FindingKind::Freshness,
                    INDEX_KEY,
                    Distrust::Gone { seen }.to_string(),
                ));
            }
        }
        return Ok(());
    };
    let sig = catalog.root_signature(raw).await?;
    let Some(trust) = trust else {
        report.signature = match sig {
            Some(_) => "signed, not checked (give --trusted-keys to check it)".into(),
            None => "not signed".into(),
        };
        return Ok(());
    };
    match trust.verify(raw, sig.as_deref()) {
        Ok(who) => report.signature = format!("signed by {who}"),
        Err(problem) => {
            report.signature = format!("not trusted: {problem}");
            findings.push(error(
                FindingKind::Signature,
                INDEX_KEY,
                problem.to_string(),
            ));
        }
    }
    match &snap.read {
        Read::Legacy(index) => findings.push(error(
            FindingKind::Freshness,
            INDEX_KEY,
            format!(
                "{}; upgrade it once: `sigcat catalog rebuild-index --signing-key KEY --trusted-keys FILE` (it signs what the trusted index vouches for)",
                Distrust::OldLayout { layout: index.layout }
            ),
        )),
        Read::Root(root) => {
            let sha = objects::sha256(raw);
            let now = time::OffsetDateTime::now_utc();
            if let Ok(expires) =
                time::OffsetDateTime::parse(&root.expires, &time::format_description::well_known::Rfc3339)
                && now > expires
            {
                findings.push(error(
                    FindingKind::Freshness,
                    INDEX_KEY,
                    Distrust::Expired { at: root.expires.clone() }.to_string(),
                ));
            }
            if root.sequence < catalog.min_sequence {
                findings.push(error(
                    FindingKind::Freshness,
                    INDEX_KEY,
                    Distrust::BelowMinimum { min: catalog.min_sequence, got: root.sequence }.to_string(),
                ));
            }
            if let Some(seen) = catalog.seen()? {
                if root.sequence < seen.sequence {
                    findings.push(error(
                        FindingKind::Freshness,
                        INDEX_KEY,
                        Distrust::Rollback { seen: seen.sequence, got: root.sequence }.to_string(),
                    ));
                } else if root.sequence == seen.sequence && seen.sha256 != sha {
                    findings.push(error(
                        FindingKind::Freshness,
                        INDEX_KEY,
                        Distrust::Fork { sequence: root.sequence }.to_string(),
                    ));
                }
            }
        }
        Read::Empty | Read::Unreadable(_) => {}
    }
    Ok(())
}

/// One indexed image against its objects, its record, its signatures and its events.
async fn check_entry<S: Store>(
    catalog: &Catalog<S>,
    e: &IndexEntry,
    listed: Option<&Listed>,
    root_sequence: Option<u64>,
    root_catalog_id: Option<&str>,
) -> Result<Vec<Finding>, CatalogError> {
    let foreign = |theirs: Option<&str>| match (root_catalog_id, theirs) {
        (Some(ours), Some(theirs)) if ours != theirs => Some(format!(
            "written for another catalog (id {theirs}; this one is {ours}): copied here; `sigcat catalog rebuild-index` leaves it out"
        )),
        _ => None,
    };
    let mut out = Vec::new();
    let trust = catalog.trusted_keys();
    let mut contents: HashMap<String, Vec<u8>> = HashMap::new();
    for (which, r) in &e.objects {
        match catalog.read_object(r).await {
            Ok(bytes) => {
                contents.insert(which.clone(), bytes);
            }
            Err(CatalogError::Corrupt { key, problem, .. }) => out.push(error(
                FindingKind::Data,
                &key,
                format!("{which} of {}: {problem}; `sigcat catalog rebuild-index` would derive the image from its other revisions, or leave it out if none is whole", e.id),
            )),
            Err(err) => return Err(err),
        }
    }
    if !out.is_empty() {
        return Ok(out);
    }
    // The entry says what its record says.
    let Some(record) = contents
        .get("record")
        .and_then(|b| serde_json::from_slice::<Record>(b).ok())
    else {
        out.push(error(
            FindingKind::Data,
            &e.objects["record"].key,
            format!("not a record (image {})", e.id),
        ));
        return Ok(out);
    };
    let mut expected = entry::describe(&e.id, &record, e.objects.clone(), e.published_at.clone());
    expected.updated_at = e.updated_at.clone();
    expected.yank = e.yank.clone();
    expected.lifecycle = e.lifecycle.clone();
    expected.extra = e.extra.clone();
    if entry::image_id(&record).as_deref() != Some(e.id.as_str()) {
        out.push(error(
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
        out.push(error(
            FindingKind::Data,
            &e.id,
            format!(
                "the index disagrees with its record on {}",
                fields.join(", ")
            ),
        ));
    }
    if let (Some(r), Some(bytes)) = (e.objects.get("revision"), contents.get("revision")) {
        match serde_json::from_slice::<Revision>(bytes) {
            Ok(rev)
                if Some(&rev.record) == e.objects.get("record")
                    && Some(&rev.template) == e.objects.get("template") => {}
            _ => out.push(error(
                FindingKind::Data,
                &r.key,
                format!("names other objects than the index does for {}", e.id),
            )),
        }
    }
    let Some(listed) = listed else {
        out.push(error(
            FindingKind::Data,
            &e.id,
            "indexed, but no object of it is listed",
        ));
        return Ok(out);
    };
    if listed.of(Kind::Anchor).next().is_none() {
        out.push(warning(
            FindingKind::Data,
            &e.id,
            "has no anchor (image.json): a publish of it with other content, such as another Kubernetes version, would take it for a new image and add it again instead of saying `conflict`; `sigcat catalog rebuild-index` writes it",
        ));
    }
    // Every revision and event of the image: signed by a trusted key, and not written under a
    // later sequence than the index (which would mean the index was rolled back).
    let mut links = Vec::new();
    // Trusted objects written under a later sequence than the index: reported once, as
    // freshness; what they leave inconsistent below is the same finding, not another.
    let mut ahead_keys: HashSet<String> = HashSet::new();
    let mut accounted: BTreeSet<String> = e.objects.values().map(|r| r.key.clone()).collect();
    accounted.insert(objects::anchor_key(&e.id));
    for (key, kind) in &listed.keys {
        if !matches!(kind, Kind::Revision | Kind::Event | Kind::LegacyYank) {
            continue;
        }
        accounted.insert(key.clone());
        accounted.insert(sig_key(key));
        let Some(v) = catalog.get(key).await? else {
            continue;
        };
        let (sequence, at) = match kind {
            Kind::Revision => match serde_json::from_slice::<Revision>(&v.bytes) {
                Ok(r) if let Some(problem) = foreign(r.catalog_id.as_deref()) => {
                    out.push(error(FindingKind::Signature, key, problem));
                    continue;
                }
                Ok(r) if r.id == e.id => {
                    accounted.insert(r.record.key);
                    accounted.insert(r.template.key);
                    (r.sequence.unwrap_or(0), r.at)
                }
                Ok(r) => {
                    out.push(error(
                        FindingKind::Data,
                        key,
                        format!(
                            "a revision of {} in the objects of {}: `sigcat catalog rebuild-index` leaves it out",
                            r.id, e.id
                        ),
                    ));
                    continue;
                }
                Err(_) => {
                    out.push(error(FindingKind::Data, key, "not a revision"));
                    continue;
                }
            },
            _ => match Link::parse(*kind, &v.bytes) {
                Some(link) if let Some(problem) = foreign(link.catalog_id.as_deref()) => {
                    out.push(error(FindingKind::Signature, key, problem));
                    continue;
                }
                Some(link) if link.id == e.id => {
                    let s = (link.sequence, link.at.clone());
                    links.push((key.clone(), link));
                    s
                }
                _ => {
                    out.push(error(
                        FindingKind::Data,
                        key,
                        format!("not an event of {}", e.id),
                    ));
                    continue;
                }
            },
        };
        let mut trusted = false;
        if let Some(trust) = &trust {
            let sig = catalog.get(&sig_key(key)).await?.map(|v| v.bytes);
            match trust.verify(&v.bytes, sig.as_deref()) {
                Ok(_) => trusted = true,
                Err(problem) => out.push(error(
                    FindingKind::Signature,
                    key,
                    format!("not signed by a trusted key ({problem}): a forgery, or written by a key the trust file does not list; `sigcat catalog rebuild-index` would leave it out"),
                )),
            }
        }
        // Written under a later sequence than the index, by a trusted key: the index was
        // rolled back (an untrusted object's sequence says nothing).
        if let Some(index) = root_sequence
            && trusted
            && sequence > index
        {
            let ahead = Distrust::Ahead {
                object: sequence,
                index,
            };
            ahead_keys.insert(key.clone());
            out.push(if written_after(sequence, &at, index) {
                error(FindingKind::Freshness, key, ahead.to_string())
            } else {
                warning(FindingKind::Freshness, key, in_flight(&ahead))
            });
        }
    }
    // The entry's head is the head of its chain of events, no event follows it, and its
    // state (yank, promotions, deletions, end of life) is the fold of that chain.
    let by_key: HashMap<&str, &Link> = links.iter().map(|(k, l)| (k.as_str(), l)).collect();
    for (_, link) in &links {
        if let Some(l) = &link.location {
            accounted.insert(l.template.key.clone());
        }
    }
    match e.head_event() {
        Some(head) => {
            if !by_key.contains_key(head.key.as_str()) {
                out.push(error(
                    FindingKind::Data,
                    &e.id,
                    format!("its newest event {} is not there (deleted?): `sigcat catalog rebuild-index` leaves the image out rather than fold its events without it (that could undo a yank or a clean-up); restore it from the container's soft delete or versions", head.key),
                ));
            } else {
                if let Some((later, _)) = links.iter().find(|(k, l)| {
                    l.previous.as_deref() == Some(head.key.as_str()) && !ahead_keys.contains(k)
                }) {
                    out.push(error(
                        FindingKind::Data,
                        &e.id,
                        format!("event {later} follows its newest event {}: the index lost a later event (rolled back?)", head.key),
                    ));
                }
                let mut keys = chain(&by_key, &head.key);
                keys.reverse();
                let mut refs = Vec::new();
                for k in &keys {
                    let Some(v) = catalog.get(k).await? else {
                        continue;
                    };
                    refs.push((
                        ObjectRef {
                            key: k.to_string(),
                            sha256: objects::sha256(&v.bytes),
                        },
                        by_key[k],
                    ));
                }
                let (yank, lifecycle) =
                    super::lifecycle::fold(e, refs.iter().map(|(r, l)| (r, *l)));
                if yank != e.yank || lifecycle != e.lifecycle {
                    out.push(error(
                        FindingKind::Data,
                        &e.id,
                        "its yank or lifecycle state is not what its events say; `sigcat catalog rebuild-index` derives it from them",
                    ));
                }
                for (_, link) in &refs {
                    if let Some(l) = &link.location
                        && let Err(CatalogError::Corrupt { key, problem, .. }) =
                            catalog.read_object(&l.template).await
                    {
                        out.push(error(
                            FindingKind::Data,
                            &key,
                            format!(
                                "the template of {}'s promotion to {}: {problem}",
                                e.id, l.gallery_image_version_id
                            ),
                        ));
                    }
                }
                let on_chain: HashSet<&str> = keys.iter().copied().collect();
                for (key, link) in &links {
                    let followed = links
                        .iter()
                        .any(|(_, l)| l.previous.as_deref() == Some(key.as_str()));
                    if on_chain.contains(key.as_str()) || followed || ahead_keys.contains(key) {
                        continue;
                    }
                    // A dead end: harmless when it is the sibling of an event that did take
                    // effect and says the same (a writer that lost the race to it).
                    let sibling = links.iter().find(|(k, l)| {
                        on_chain.contains(k.as_str())
                            && l.previous == link.previous
                            && l.says_the_same(link)
                    });
                    match sibling {
                        Some((won, _)) => out.push(warning(
                            FindingKind::Orphan,
                            key,
                            format!("an event that never took effect: its writer lost a race to {won}, which says the same"),
                        )),
                        None => out.push(error(
                            FindingKind::Data,
                            key,
                            format!("an event of {} that no index state follows, and that no event in effect agrees with", e.id),
                        )),
                    }
                }
            }
        }
        None => {
            let known: Vec<(String, Link)> = links
                .iter()
                .filter(|(k, _)| !ahead_keys.contains(k))
                .cloned()
                .collect();
            if let Some((key, _)) = chain_head(&known) {
                out.push(error(
                    FindingKind::Data,
                    &e.id,
                    format!("the index says it never had an event, but event {key} is there"),
                ));
            }
        }
    }
    out.extend(lifecycle_findings(e));
    for (key, _) in &listed.keys {
        if !accounted.contains(key) {
            out.push(warning(
                FindingKind::Orphan,
                key,
                "nothing refers to it (written by a publisher that lost a race, or never finished)",
            ));
        }
    }
    Ok(out)
}

/// Whether an object written under `sequence` at `at` says the index (at `index`) lost a
/// write: it is more than one write ahead, or one write ahead and older than a publish in
/// progress could be (its objects come a moment before its index).
pub(crate) fn written_after(sequence: u64, at: &str, index: u64) -> bool {
    if sequence <= index {
        return false;
    }
    if sequence > index + 1 {
        return true;
    }
    let in_flight = time::OffsetDateTime::now_utc() - time::Duration::minutes(10);
    time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
        .map_or(true, |at| at < in_flight)
}

/// A finding one write ahead of the index, written in the last minutes: a publish in
/// progress (its objects come a moment before its index), or a rollback of its last write.
fn in_flight(problem: &dyn std::fmt::Display) -> String {
    format!(
        "{problem} (written minutes ago under the next sequence: a publish in progress, or the index lost its last write; if `catalog verify` still says so in ten minutes, it is an error)"
    )
}

/// What an image's lifecycle says an operator should know: a location promoted to more than
/// once (image-builder deletes and creates it again: VMs made before may run another image),
/// a location another image's promotion overwrote, an image with no location left.
fn lifecycle_findings(e: &IndexEntry) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(l) = &e.lifecycle else {
        return out;
    };
    for p in &l.promoted {
        if p.times > 1 {
            out.push(warning(
                FindingKind::Lifecycle,
                &e.id,
                format!(
                    "promoted {} times to {} (the version was deleted and created again): VMs created from it before {} may run another image than its template now names",
                    p.times, p.location.gallery_image_version_id, p.at
                ),
            ));
        }
    }
    for d in &l.deleted {
        if let Some(by) = &d.replaced_by {
            out.push(warning(
                FindingKind::Lifecycle,
                &e.id,
                format!(
                    "its location {} was overwritten by the promotion of {by}: it is no longer served from there",
                    d.resource_id
                ),
            ));
        }
    }
    if e.all_deleted() {
        out.push(warning(
            FindingKind::Lifecycle,
            &e.id,
            "every location of it is deleted: nothing serves it (its records stay; `catalog list` shows it)",
        ));
    }
    out
}

/// A pointer that is not what the index names because a trusted writer rewrote it under a
/// later sequence: the index was rolled back, or a publish is in progress (one write ahead:
/// its events, which carry their time, decide which). `None`: not that.
async fn pointer_ahead<S: Store>(
    catalog: &Catalog<S>,
    key: &str,
    view: &View,
) -> Result<Option<Finding>, CatalogError> {
    let (Some(trust), false) = (catalog.trusted_keys(), view.legacy) else {
        return Ok(None);
    };
    let Some(v) = catalog.get(key).await? else {
        return Ok(None);
    };
    let Ok(stored) = serde_json::from_slice::<Latest>(&v.bytes) else {
        return Ok(None);
    };
    let sig = catalog.get(&sig_key(key)).await?.map(|v| v.bytes);
    let index = view.root.sequence;
    if stored.catalog_sequence <= index || trust.verify(&v.bytes, sig.as_deref()).is_err() {
        return Ok(None);
    }
    let ahead = Distrust::Ahead {
        object: stored.catalog_sequence,
        index,
    };
    Ok(Some(if stored.catalog_sequence > index + 1 {
        error(FindingKind::Freshness, key, ahead.to_string())
    } else {
        warning(FindingKind::Freshness, key, in_flight(&ahead))
    }))
}

/// Every pointer says what the shards say, and is signed (with trusted keys).
async fn check_pointers<S: Store>(
    catalog: &Catalog<S>,
    view: &View,
    derived: &BTreeMap<String, Latest>,
    findings: &mut Vec<Finding>,
) -> Result<(), CatalogError> {
    let trust = catalog.trusted_keys();
    let now = entry::now_rfc3339();
    let named = view.all_pointer_names();
    let names: BTreeSet<&String> = derived.keys().chain(named.iter()).collect();
    // Pointers nobody names: consumers who read pointers without checking them would act on
    // them.
    let keys: BTreeSet<String> = names
        .iter()
        .map(|n| super::pointer::pointer_key(n))
        .collect();
    for key in catalog.list_keys("latest/").await? {
        if key.ends_with(".json") && !keys.contains(&key) {
            findings.push(warning(
                FindingKind::Orphan,
                &key,
                "a pointer the index does not name (planted, or left from images no longer in the catalog): a consumer that reads pointers without checking them against the signed root would act on it; delete it",
            ));
        }
    }
    for name in names {
        let expected = derived
            .get(name)
            .cloned()
            .unwrap_or_else(|| Latest::new(name));
        let Some(r) = view.pointer_ref(name) else {
            findings.push(error(
                FindingKind::Data,
                &super::pointer::pointer_key(name),
                "the index names no such pointer (derived data: the next publish, `catalog refresh` or `rebuild-index` writes it)",
            ));
            continue;
        };
        let bytes = match catalog.read_object(r).await {
            Ok(b) => b,
            Err(CatalogError::Corrupt { key, problem, .. }) => {
                findings.push(match pointer_ahead(catalog, &key, view).await? {
                    Some(ahead) => ahead,
                    None => error(
                        FindingKind::Data,
                        &key,
                        format!(
                            "{problem} (pointers are written just after the root: a writer stopped between the two leaves this; `sigcat catalog refresh` rewrites every pointer)"
                        ),
                    ),
                });
                continue;
            }
            Err(e) => return Err(e),
        };
        let stored: Latest = match serde_json::from_slice(&bytes) {
            Ok(l) => l,
            Err(e) => {
                findings.push(error(
                    FindingKind::Data,
                    &r.key,
                    format!("not a latest pointer: {e}"),
                ));
                continue;
            }
        };
        if let Some(trust) = &trust {
            let sig = catalog.get(&sig_key(&r.key)).await?.map(|v| v.bytes);
            if let Err(problem) = trust.verify(&bytes, sig.as_deref()) {
                findings.push(error(FindingKind::Signature, &r.key, problem.to_string()));
            }
        }
        if !stored.same_answer(&expected) {
            let id = |l: &Latest| {
                l.image
                    .as_ref()
                    .map_or("nothing".to_string(), |s| s.id.clone())
            };
            // Signed and named by its section: what its writer derived. A pointer cannot change
            // when time passes; one that serves what has reached its end of life since is
            // stale, not wrong.
            if stored.serves_expired(&now) {
                findings.push(warning(
                    FindingKind::Freshness,
                    &r.key,
                    format!(
                        "it serves {}, which reached its end of life after the pointer was written; the shards now say {} (`catalog refresh`, weekly in pipelines/, or the next write rewrites it; consumers with curl check `.image.end_of_life`)",
                        id(&stored),
                        id(&expected)
                    ),
                ));
                continue;
            }
            findings.push(error(
                FindingKind::Data,
                &r.key,
                format!(
                    "it serves {}, but the shards say {} (derived data: `catalog refresh` or `rebuild-index` writes it again)",
                    id(&stored),
                    id(&expected)
                ),
            ));
        }
    }

    Ok(())
}
