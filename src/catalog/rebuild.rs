//! The index is derived data: everything it says comes from immutable image objects (records,
//! templates, revisions, events). [`Catalog::rebuild_index`] derives it from them, for
//! `catalog rebuild-index` after the index was lost, corrupted or rolled back.
//!
//! Recovery never adopts, signs or drops anything silently. With trusted keys, only revisions
//! and events signed by one of them are used; an unsigned or untrusted one is left out and
//! named. Unsigned objects are adopted (and signed) only when asked (`--adopt-unsigned`, to
//! start signing a catalog that never was), or when a trusted layout 1 to 3 index vouches for
//! them (the upgrade of a catalog signed the old way); each one adopted is named. An image
//! whose objects are missing or altered is named with what is wrong, and makes the rebuild
//! exit non-zero.

use super::entry;
use super::index::{IndexEntry, ObjectRef, Root, Shard};
use super::objects::{
    self, IMAGES_PREFIX, Kind, Link, Revision, chain, chain_head, parse_key, sha256, sig_key,
};
use super::revision::{self, Comparison};
use super::signing::{Trust, Untrusted};
use super::snapshot::Read;
use super::store::Store;
use super::verify::{Finding, FindingKind, Progress, Severity};
use super::view::View;
use super::{Catalog, CatalogError};
use crate::record::Record;
use futures::StreamExt;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// What rebuild-index may adopt besides objects signed by trusted keys.
#[derive(Debug, Clone, Default)]
pub struct Adoption {
    /// Sign unsigned revisions and events (to start signing a catalog that never was).
    pub unsigned: bool,
    /// Objects a trusted layout 1 to 3 index names (its signature vouches for them).
    pub(crate) vouched: HashSet<String>,
    /// The images a trusted root (even a stale or rolled-back one) lists, each with the
    /// newest event it names: a rebuild must find that event on the image's chain, or the
    /// image is left out (deleting an event must not undo a yank or a clean-up).
    pub(crate) known: HashMap<String, Option<String>>,
    /// The catalog the objects must have been written for: a revision or event naming
    /// another (copied from another catalog signed by the same key) is left out.
    pub(crate) catalog_id: Option<String>,
    /// Rebuild even when the newest trusted index cannot be read whole (so a deleted newest
    /// event cannot be noticed), naming each image that is not checked.
    pub accept_unverified: bool,
}

/// What a rebuild wrote and found.
#[derive(Debug, Clone)]
pub struct Rebuilt {
    /// Images in the new index.
    pub images: usize,
    /// Of which yanked.
    pub yanked: usize,
    /// The new root's sequence.
    pub sequence: u64,
    /// What was left out, adopted or wrong.
    pub findings: Vec<Finding>,
}

/// One image's objects, as listed.
#[derive(Debug, Default, Clone)]
pub(crate) struct Listed {
    pub(crate) keys: Vec<(String, Kind)>,
}

impl Adoption {
    /// Adopt unsigned revisions and events (`--adopt-unsigned`) or not.
    pub fn unsigned(adopt: bool) -> Adoption {
        Adoption {
            unsigned: adopt,
            vouched: HashSet::new(),
            known: HashMap::new(),
            catalog_id: None,
            accept_unverified: false,
        }
    }
}

impl Listed {
    pub(crate) fn of(&self, kind: Kind) -> impl Iterator<Item = &str> {
        self.keys
            .iter()
            .filter(move |(_, k)| *k == kind)
            .map(|(key, _)| key.as_str())
    }
}

/// An image derived from its objects.
pub(crate) struct Derived {
    /// Its entry, unless it cannot be derived (then a finding says why).
    pub(crate) entry: Option<IndexEntry>,
    pub(crate) findings: Vec<Finding>,
    /// Unsigned objects accepted by adoption: signed when the rebuild writes.
    pub(crate) adopt: Vec<(ObjectRef, Vec<u8>)>,
    /// A revision object to write (a layout 1 image has none).
    pub(crate) create: Option<(ObjectRef, Vec<u8>)>,
    /// The highest sequence any of its (accepted) objects was written for.
    pub(crate) max_sequence: u64,
    /// When the object of that sequence was written.
    pub(crate) max_sequence_at: String,
    /// The catalog ids its accepted objects name.
    pub(crate) catalog_ids: BTreeSet<String>,
    /// Objects left out as another catalog's.
    pub(crate) foreign: usize,
}

impl Derived {
    /// Whether an object written for `theirs` belongs in a catalog of `ours` (objects from
    /// before catalog ids belong anywhere); a foreign one is a finding.
    fn belongs(&mut self, ours: Option<&str>, theirs: Option<&str>, key: &str, what: &str) -> bool {
        match (ours, theirs) {
            (Some(ours), Some(theirs)) if ours != theirs => {
                self.foreign += 1;
                self.findings.push(finding(
                    Severity::Error,
                    FindingKind::Signature,
                    key,
                    format!("{what} written for another catalog (id {theirs}; this one is {ours}): copied here, left out, never adopted"),
                ));
                false
            }
            (_, theirs) => {
                self.catalog_ids.extend(theirs.map(str::to_string));
                true
            }
        }
    }

    fn saw(&mut self, sequence: u64, at: &str) {
        if sequence > self.max_sequence {
            self.max_sequence = sequence;
            self.max_sequence_at = at.to_string();
        }
    }
}

pub(crate) fn finding(
    severity: Severity,
    kind: FindingKind,
    subject: &str,
    problem: impl Into<String>,
) -> Finding {
    Finding {
        severity,
        kind,
        subject: subject.to_string(),
        problem: problem.into(),
    }
}

/// Lists `images/`, a page at a time, and hands each image's keys to `each` (keys come in
/// order, so an image's objects are contiguous): memory holds one image's keys, not the
/// catalog's.
pub(crate) async fn each_image<S: Store>(
    catalog: &Catalog<S>,
    mut each: impl FnMut(String, Listed),
) -> Result<usize, CatalogError> {
    let mut after: Option<String> = None;
    let mut current: Option<(String, Listed)> = None;
    let mut objects = 0;
    loop {
        let page = catalog.list_page(IMAGES_PREFIX, after.as_deref()).await?;
        for key in page.keys {
            objects += 1;
            let Some((id, kind)) = parse_key(&key) else {
                continue;
            };
            match &mut current {
                Some((cid, listed)) if *cid == id => listed.keys.push((key, kind)),
                _ => {
                    if let Some((cid, listed)) = current.take() {
                        each(cid, listed);
                    }
                    current = Some((
                        id,
                        Listed {
                            keys: vec![(key, kind)],
                        },
                    ));
                }
            }
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    if let Some((cid, listed)) = current {
        each(cid, listed);
    }
    Ok(objects)
}

impl<S: Store> Catalog<S> {
    /// Signs every revision and event again with this catalog's signing key, each one only
    /// after its present signature is checked against the trusted keys: the middle step of a
    /// key rotation (add the new key to the trust file, re-sign, remove the old key). An object
    /// no trusted key signed is named and left as it is. Returns how many were re-signed.
    pub async fn resign_objects(
        &self,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<(usize, Vec<Finding>), CatalogError> {
        let (Some(signer), Some(trust)) = (&self.signer, self.trusted_keys()) else {
            return Err(CatalogError::Settings {
                catalog: self.describe(),
                problem: "re-signing needs --signing-key (the new key) and --trusted-keys (listing the key the objects are signed with now)".into(),
            });
        };
        let mut keys = Vec::new();
        each_image(self, |_, listed| {
            keys.extend(
                listed
                    .keys
                    .into_iter()
                    .filter(|(_, k)| matches!(k, Kind::Revision | Kind::Event))
                    .map(|(key, _)| key),
            );
        })
        .await?;
        let total = keys.len();
        let mut work = futures::stream::iter(keys.into_iter().map(|key| {
            let trust = &trust;
            async move {
                let Some(v) = self.get(&key).await? else {
                    return Ok::<_, CatalogError>(None);
                };
                let sig = self.get(&sig_key(&key)).await?.map(|v| v.bytes);
                match trust.verify(&v.bytes, sig.as_deref()) {
                    Ok(_) => {
                        self.put(
                            &sig_key(&key),
                            signer.sign(&v.bytes).as_bytes(),
                            &super::store::PutMode::Overwrite,
                        )
                        .await
                        .map_err(|e| self.storage(e))?;
                        Ok(None)
                    }
                    Err(problem) => Ok(Some(finding(
                        Severity::Error,
                        FindingKind::Signature,
                        &key,
                        format!("not signed by a trusted key ({problem}): not re-signed"),
                    ))),
                }
            }
        }))
        .buffer_unordered(self.concurrency);
        let (mut done, mut findings) = (0, Vec::new());
        while let Some(r) = work.next().await {
            findings.extend(r?);
            done += 1;
            if done % 1000 == 0 || done == total {
                progress(Progress {
                    phase: "re-signed",
                    done,
                    total,
                });
            }
        }
        Ok((total - findings.len(), findings))
    }

    /// Writes an index of `entries`, whose objects are already stored, replacing whatever index
    /// is there (shards, pointers, root, signed with the signing key). Nothing is checked: it
    /// is for tools that generate large catalogs (the scale benchmark); anything else publishes.
    #[doc(hidden)]
    pub async fn import_index(&self, entries: Vec<IndexEntry>) -> Result<u64, CatalogError> {
        let snap = self.inspect().await?;
        let base = match &snap.read {
            Read::Root(root) => root.sequence,
            _ => 0,
        };
        let shards = Shard::group(entries);
        let now = entry::now_rfc3339();
        let mut root = Root::empty(&now, &now);
        root.sequence = base;
        let mut view = View::rebuilt(root, snap.mode, shards);
        for name in view.all_pointer_names() {
            let latest = view.derive_pointer(self, &name).await?;
            view.set_pointer(&name, latest);
        }
        view.commit(self)
            .await?
            .ok_or_else(|| self.corrupt(objects::INDEX_KEY, "changed while it was imported"))
    }

    /// Whether an object is signed by a trusted key, adopted, or neither (a finding).
    async fn accept(
        &self,
        trust: Option<&Trust>,
        adoption: &Adoption,
        key: &str,
        bytes: &[u8],
        out: &mut Derived,
        what: &str,
    ) -> Result<bool, CatalogError> {
        let Some(trust) = trust else {
            return Ok(true);
        };
        let sig = self.get(&sig_key(key)).await?.map(|v| v.bytes);
        match trust.verify(bytes, sig.as_deref()) {
            Ok(_) => Ok(true),
            Err(problem) => {
                let r = ObjectRef {
                    key: key.to_string(),
                    sha256: sha256(bytes),
                };
                if adoption.vouched.contains(key) {
                    out.findings.push(finding(
                        Severity::Warning,
                        FindingKind::Adopted,
                        key,
                        format!("{what} vouched for by the signed older index: signed now"),
                    ));
                    out.adopt.push((r, bytes.to_vec()));
                    Ok(true)
                } else if adoption.unsigned && problem == Untrusted::Unsigned {
                    out.findings.push(finding(
                        Severity::Warning,
                        FindingKind::Adopted,
                        key,
                        format!("unsigned {what} adopted (--adopt-unsigned): signed now"),
                    ));
                    out.adopt.push((r, bytes.to_vec()));
                    Ok(true)
                } else {
                    out.findings.push(finding(
                        Severity::Error,
                        FindingKind::Signature,
                        key,
                        format!(
                            "{what} not signed by a trusted key ({problem}): left out, never adopted (a forgery, or written by a key the trust file does not list)"
                        ),
                    ));
                    Ok(false)
                }
            }
        }
    }

    /// The images a root lists, each with the newest event it names, and the sections and
    /// shards it names that cannot be read (missing or altered).
    async fn images_of(
        &self,
        root: &Root,
    ) -> Result<(HashMap<String, Option<String>>, BTreeSet<String>), CatalogError> {
        let mut shard_refs = Vec::new();
        let mut missing = BTreeSet::new();
        for (name, r) in &root.sections {
            match self.read_section(name, r).await {
                Ok(section) => shard_refs.extend(section.shards),
                Err(CatalogError::Corrupt { .. }) => {
                    missing.insert(name.clone());
                }
                Err(e) => return Err(e),
            }
        }
        // Shard by shard as they arrive: only the ids and heads are kept.
        let mut read = futures::stream::iter(shard_refs.into_iter().map(|(name, r)| async move {
            match self.read_shard(&name, &r).await {
                Ok(shard) => Ok((name, Some(shard))),
                Err(CatalogError::Corrupt { .. }) => Ok((name, None)),
                Err(e) => Err(e),
            }
        }))
        .buffer_unordered(self.concurrency);
        let mut out = HashMap::new();
        while let Some(shard) = read.next().await {
            let (name, shard): (String, Option<Shard>) = shard?;
            let Some(shard) = shard else {
                missing.insert(name);
                continue;
            };
            for e in shard.images {
                let head = e.head_event().map(|r| r.key.clone());
                out.insert(e.id, head);
            }
        }
        Ok((out, missing))
    }

    /// Derives one image from its objects.
    pub(crate) async fn derive_image(
        &self,
        id: &str,
        listed: &Listed,
        adoption: &Adoption,
        fallback_at: &str,
    ) -> Result<Derived, CatalogError> {
        let trust = self.trusted_keys();
        let mut out = Derived {
            entry: None,
            findings: Vec::new(),
            adopt: Vec::new(),
            create: None,
            max_sequence: 0,
            max_sequence_at: String::new(),
            catalog_ids: BTreeSet::new(),
            foreign: 0,
        };
        let ours = adoption.catalog_id.as_deref();
        let mut revisions: Vec<(ObjectRef, Revision)> = Vec::new();
        for key in listed.of(Kind::Revision) {
            let Some(v) = self.get(key).await? else {
                continue;
            };
            let Ok(r) = serde_json::from_slice::<Revision>(&v.bytes) else {
                out.findings.push(finding(
                    Severity::Error,
                    FindingKind::Data,
                    key,
                    "not a revision: left out",
                ));
                continue;
            };
            if r.id != id {
                out.findings.push(finding(
                    Severity::Error,
                    FindingKind::Data,
                    key,
                    format!("a revision of {}, not of {id}: left out", r.id),
                ));
                continue;
            }
            if !out.belongs(ours, r.catalog_id.as_deref(), key, "a revision") {
                continue;
            }
            if self
                .accept(
                    trust.as_ref(),
                    adoption,
                    key,
                    &v.bytes,
                    &mut out,
                    "revision",
                )
                .await?
            {
                out.saw(r.sequence.unwrap_or(0), &r.at);
                revisions.push((
                    ObjectRef {
                        key: key.to_string(),
                        sha256: sha256(&v.bytes),
                    },
                    r,
                ));
            }
        }
        // Layout 1: one record and one template at fixed keys, and no revision objects.
        if listed.of(Kind::Revision).next().is_none()
            && let (Some(rk), Some(tk)) = (
                listed.of(Kind::LegacyRecord).next(),
                listed.of(Kind::LegacyTemplate).next(),
            )
            && let (Some(rb), Some(tb)) = (self.get(rk).await?, self.get(tk).await?)
        {
            let vouched = adoption.vouched.contains(rk);
            if trust.is_none() || vouched || adoption.unsigned {
                let record = ObjectRef {
                    key: rk.into(),
                    sha256: sha256(&rb.bytes),
                };
                let template = ObjectRef {
                    key: tk.into(),
                    sha256: sha256(&tb.bytes),
                };
                let (r, bytes) = entry::revision(id, &record, &template, fallback_at, 0, ours);
                if trust.is_some() {
                    out.findings.push(finding(
                        Severity::Warning,
                        FindingKind::Adopted,
                        &r.key,
                        "a revision written for a layout 1 image (which had none), signed now",
                    ));
                }
                out.create = Some((r.clone(), bytes));
                revisions.push((
                    r,
                    Revision {
                        id: id.to_string(),
                        record,
                        template,
                        at: fallback_at.to_string(),
                        sequence: None,
                        catalog_id: ours.map(str::to_string),
                    },
                ));
            } else {
                out.findings.push(finding(
                    Severity::Error,
                    FindingKind::Signature,
                    rk,
                    "a layout 1 record no trusted signature vouches for: left out (--adopt-unsigned signs it)",
                ));
            }
        }
        // Each revision read whole: its record and template there, with their hashes.
        struct Usable {
            revision: ObjectRef,
            at: String,
            sequence: u64,
            record_ref: ObjectRef,
            template_ref: ObjectRef,
            record: Record,
            value: serde_json::Value,
        }
        let mut usable = Vec::new();
        for (revision, r) in revisions {
            let record_bytes = match self.read_object(&r.record).await {
                Ok(b) => b,
                Err(CatalogError::Corrupt { key, problem, .. }) => {
                    out.findings.push(finding(
                        Severity::Error,
                        FindingKind::Data,
                        &key,
                        format!(
                            "the record of image {id} in {}: {problem}; that revision is left out",
                            revision.key
                        ),
                    ));
                    continue;
                }
                Err(e) => return Err(e),
            };
            if let Err(CatalogError::Corrupt { key, problem, .. }) =
                self.read_object(&r.template).await
            {
                out.findings.push(finding(
                    Severity::Error,
                    FindingKind::Data,
                    &key,
                    format!(
                        "the template of image {id} in {}: {problem}; that revision is left out",
                        revision.key
                    ),
                ));
                continue;
            }
            let (Ok(record), Ok(value)) = (
                serde_json::from_slice::<Record>(&record_bytes),
                serde_json::from_slice::<serde_json::Value>(&record_bytes),
            ) else {
                out.findings.push(finding(
                    Severity::Error,
                    FindingKind::Data,
                    &r.record.key,
                    format!("not a record (image {id}); that revision is left out"),
                ));
                continue;
            };
            usable.push(Usable {
                revision,
                at: r.at,
                sequence: r.sequence.unwrap_or(0),
                record_ref: r.record,
                template_ref: r.template,
                record,
                value,
            });
        }
        usable.sort_by(|a, b| {
            (a.sequence, &a.at, &a.revision.key).cmp(&(b.sequence, &b.at, &b.revision.key))
        });
        let Some(first) = usable.first() else {
            if !listed.keys.is_empty() {
                out.findings.push(finding(
                    Severity::Error,
                    FindingKind::Data,
                    id,
                    if listed.of(Kind::Revision).next().is_none() {
                        "no revision object (a publish that stopped before it wrote one, or objects planted): the image is left out of the index"
                    } else {
                        "no usable revision (missing, altered or untrusted objects, said above): the image is left out of the index"
                    },
                ));
            }
            return Ok(out);
        };
        // Each revision adds to the one before; the newest that does is the image now.
        let mut newest = first;
        for r in &usable[1..] {
            match revision::compare(&newest.value, &r.value) {
                Comparison::Known => {}
                Comparison::Adds { .. } => newest = r,
                Comparison::Disagrees { field, stored, offered } => out.findings.push(finding(
                    Severity::Error,
                    FindingKind::Data,
                    &r.revision.key,
                    format!("contradicts an earlier revision ({field} `{stored}` / `{offered}`); the earlier one stands"),
                )),
            }
        }
        if entry::image_id(&newest.record).as_deref() != Some(id) {
            out.findings.push(finding(
                Severity::Error,
                FindingKind::Data,
                &newest.record_ref.key,
                format!("its record is not image {id}: the image is left out"),
            ));
            return Ok(out);
        }
        let objects = BTreeMap::from([
            ("record".to_string(), newest.record_ref.clone()),
            ("template".to_string(), newest.template_ref.clone()),
            ("revision".to_string(), newest.revision.clone()),
        ]);
        let mut e = entry::describe(id, &newest.record, objects, first.at.clone());
        if newest.at != first.at {
            e.updated_at = Some(newest.at.clone());
        }
        // Events: the head of the chain of those that are trusted.
        let mut links = Vec::new();
        let mut bytes_of = std::collections::HashMap::new();
        for (key, kind) in &listed.keys {
            if !matches!(kind, Kind::Event | Kind::LegacyYank) {
                continue;
            }
            let Some(v) = self.get(key).await? else {
                continue;
            };
            match Link::parse(*kind, &v.bytes) {
                Some(link) if link.id == id => {
                    if out.belongs(ours, link.catalog_id.as_deref(), key, "an event")
                        && self
                            .accept(trust.as_ref(), adoption, key, &v.bytes, &mut out, "event")
                            .await?
                    {
                        out.saw(link.sequence, &link.at);
                        bytes_of.insert(key.clone(), v.bytes);
                        links.push((key.clone(), link));
                    }
                }
                _ => out.findings.push(finding(
                    Severity::Error,
                    FindingKind::Data,
                    key,
                    format!("not an event of image {id}: left out"),
                )),
            }
        }
        // Its state: the fold of the chain that ends at the head (an event a racing writer
        // left as a dead end never took effect). The newest event a trusted index named must
        // be on it: without it, the fold would undo what that event did.
        let expected = adoption.known.get(id).cloned().flatten();
        let on_chain = |keys: &[&str]| expected.as_deref().is_none_or(|x| keys.contains(&x));
        let lost = |out: &mut Derived, x: &str| {
            out.findings.push(finding(
                Severity::Error,
                FindingKind::Data,
                id,
                format!("its newest event {x}, which the signed index names, is not there (deleted?): the image is left out rather than have its events folded without it (that could undo a yank or a clean-up); restore it from the container's soft delete or versions and rebuild again"),
            ));
        };
        if chain_head(&links).is_none()
            && let Some(x) = &expected
        {
            lost(&mut out, x);
            return Ok(out);
        }
        if let Some((head, _)) = chain_head(&links) {
            let by_key: std::collections::HashMap<&str, &Link> =
                links.iter().map(|(k, l)| (k.as_str(), l)).collect();
            let mut keys = chain(&by_key, head);
            if !on_chain(&keys) {
                lost(&mut out, expected.as_deref().unwrap_or_default());
                return Ok(out);
            }
            keys.reverse();
            let refs: Vec<(ObjectRef, &Link)> = keys
                .iter()
                .map(|k| {
                    (
                        ObjectRef {
                            key: k.to_string(),
                            sha256: sha256(&bytes_of[*k]),
                        },
                        by_key[k],
                    )
                })
                .collect();
            let (yank, lifecycle) = super::lifecycle::fold(&e, refs.iter().map(|(r, l)| (r, *l)));
            e.yank = yank;
            e.lifecycle = lifecycle;
        }
        out.entry = Some(e);
        Ok(out)
    }

    /// Rebuilds the index from the objects and replaces whatever index is there (lost,
    /// corrupted, untrusted or rolled back) under compare-and-swap, signed when there is a
    /// signing key, with a sequence above any seen (of the old root, the state, the objects).
    pub async fn rebuild_index(
        &self,
        adoption: Adoption,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<Rebuilt, CatalogError> {
        self.check_writer()?;
        if adoption.unsigned && self.signer.is_none() {
            return Err(CatalogError::Settings {
                catalog: self.describe(),
                problem: "--adopt-unsigned signs what it adopts: give --signing-key".into(),
            });
        }
        let mut contention = self.contention();
        loop {
            let snap = self.inspect().await?;
            let mut adoption = adoption.clone();
            let mut base = 0u64;
            let mut previous = BTreeMap::new();
            let mut extra = Default::default();
            let mut root_id = None;
            let mut index_root = None;
            let raw_root = self.get(objects::INDEX_KEY).await?;
            let root_signature = match &raw_root {
                Some(raw) => self.root_signature(&raw.bytes).await?,
                None => None,
            };
            // What a root says counts only when it is trusted: an attacker's unsigned root
            // must not set the sequence the owner signs (or its catalog id).
            let root_trusted = match (self.trusted_keys(), &raw_root) {
                (Some(trust), Some(raw)) => {
                    trust.verify(&raw.bytes, root_signature.as_deref()).is_ok()
                }
                (None, _) => true,
                (Some(_), None) => false,
            };
            match &snap.read {
                Read::Root(root) if root_trusted => {
                    base = root.sequence;
                    extra = root.extra.clone();
                    root_id = root.catalog_id.clone();
                    index_root = Some((**root).clone());
                }
                Read::Legacy(index) => {
                    extra = index.extra.clone();
                    for e in &index.images {
                        previous.insert(e.id.clone(), e.published_at.clone());
                    }
                    // A trusted old index vouches for every object it names (checked above,
                    // as the root is).
                    if self.trusted_keys().is_some() && root_trusted {
                        for e in &index.images {
                            adoption
                                .vouched
                                .extend(e.objects.values().map(|r| r.key.clone()));
                            if let Some(y) = &e.yank {
                                adoption.vouched.insert(y.event.key.clone());
                            }
                        }
                    }
                }
                _ => {}
            }
            let seen = self.seen()?;
            base = base.max(seen.as_ref().map(|s| s.sequence).unwrap_or(0));
            // Which catalog this is: as pinned, else as remembered (an attacker cannot write
            // the state), else as the trusted root says (it may be another catalog's root,
            // signed by the same key: the state and the pin are there for that).
            let mut catalog_id = self
                .catalog_id
                .clone()
                .or_else(|| seen.as_ref().and_then(|s| s.catalog_id.clone()))
                .or(root_id.clone());
            adoption.catalog_id = catalog_id.clone();
            // What every image's newest event was, as the newest trusted root says: the root in
            // the store, or the copy the state kept of the newest root it saw (an attacker can
            // roll the store back and delete an event; not the state).
            let state_root = match &seen {
                Some(s) => self
                    .seen_root(s)?
                    .and_then(|bytes| serde_json::from_slice::<Root>(&bytes).ok()),
                None => None,
            };
            let evidence = [index_root, state_root]
                .into_iter()
                .flatten()
                .filter(|r| {
                    r.catalog_id.is_none() || catalog_id.is_none() || r.catalog_id == catalog_id
                })
                .max_by_key(|r| r.sequence);
            let mut unverifiable = Vec::new();
            if let Some(s) = &seen
                && evidence.as_ref().is_none_or(|r| r.sequence < s.sequence)
            {
                unverifiable.push(format!(
                    "the newest index the state saw (sequence {}) is not in the store, and the state kept no copy of it",
                    s.sequence
                ));
            }
            let mut unreadable = BTreeSet::new();
            if let Some(root) = &evidence {
                base = base.max(root.sequence);
                let (known, missing) = self.images_of(root).await?;
                adoption.known = known;
                if !missing.is_empty() {
                    unverifiable.push(format!(
                        "what the signed index (sequence {}) names cannot all be read ({})",
                        root.sequence,
                        missing.iter().cloned().collect::<Vec<_>>().join(", ")
                    ));
                }
                unreadable = missing;
            }
            // Without trust anyone can write anything: there is nothing to check against.
            if self.trusted_keys().is_none() {
                unverifiable.clear();
                unreadable.clear();
            }
            if !unverifiable.is_empty() && !adoption.accept_unverified {
                return Err(self.corrupt(
                    objects::INDEX_KEY,
                    format!(
                        "rebuild-index cannot check that no image lost its newest event (which would undo a yank or a clean-up): {}. Restore what is missing (the container's soft delete or versions) and run it again, or run it with --accept-unverified to rebuild from the events that remain (each image it cannot check is named)",
                        unverifiable.join("; ")
                    ),
                ));
            }
            let everything_unverified = !unverifiable.is_empty() && unreadable.is_empty();
            let now = entry::now_rfc3339();
            // List first (one image's keys at a time), then derive each image, a bounded
            // number at once.
            let mut images: Vec<(String, Listed)> = Vec::new();
            each_image(self, |id, listed| images.push((id, listed))).await?;
            let signed_objects = images
                .iter()
                .flat_map(|(_, l)| l.keys.iter())
                .filter(|(_, k)| *k == Kind::Signature)
                .count();
            // Signed if anything says so: the root's signature, any object's, or a state that
            // remembers a signed root (an attacker can delete signatures, not the state).
            let remembered = seen.is_some();
            let signed = root_signature.is_some() || signed_objects > 0 || remembered;
            if signed && self.signer.is_none() {
                return Err(CatalogError::Settings {
                    catalog: self.describe(),
                    problem: "the catalog is signed, and this command has no signing key: what it wrote would strip the signature; give --signing-key".into(),
                });
            }
            if signed && adoption.unsigned {
                return Err(CatalogError::Settings {
                    catalog: self.describe(),
                    problem: format!(
                        "--adopt-unsigned is for a catalog that was never signed, and this one is ({}): rebuild without it, and what carries no trusted signature is left out and named",
                        if root_signature.is_some() {
                            "its index carries a signature".to_string()
                        } else if signed_objects > 0 {
                            format!("{signed_objects} of its objects carry signatures")
                        } else {
                            "the state directory remembers a signed index of it".to_string()
                        }
                    ),
                });
            }
            let total = images.len();
            let anchored: HashSet<String> = images
                .iter()
                .filter(|(_, l)| l.keys.iter().any(|(_, k)| *k == Kind::Anchor))
                .map(|(id, _)| id.clone())
                .collect();
            let mut derived = futures::stream::iter(images.into_iter().map(|(id, listed)| {
                let at = previous.get(&id).cloned().unwrap_or_else(|| now.clone());
                let adoption = &adoption;
                async move {
                    let d = self.derive_image(&id, &listed, adoption, &at).await;
                    (id, d)
                }
            }))
            .buffer_unordered(self.concurrency);
            let mut shards: BTreeMap<String, Shard> = BTreeMap::new();
            let mut findings = Vec::new();
            let mut to_sign = Vec::new();
            let mut to_create = Vec::new();
            let mut anchors = Vec::new();
            let mut done = 0;
            let mut catalog_ids = BTreeSet::new();
            let mut derived_ids = HashSet::new();
            let mut foreign = 0;
            while let Some((id, d)) = derived.next().await {
                let d = d?;
                foreign += d.foreign;
                catalog_ids.extend(d.catalog_ids);
                derived_ids.insert(id.clone());
                base = base.max(d.max_sequence);
                findings.extend(d.findings);
                to_sign.extend(d.adopt);
                to_create.extend(d.create);
                if let Some(e) = d.entry {
                    let name = e.shard_name();
                    if everything_unverified
                        || unreadable.contains(&name)
                        || unreadable.contains(&super::index::section_of(&name))
                    {
                        findings.push(finding(
                            Severity::Warning,
                            FindingKind::Data,
                            &id,
                            "derived from the events that remain, unchecked (--accept-unverified): the index that named its newest event could not be read",
                        ));
                    }
                    if !anchored.contains(&id) {
                        anchors.push((id.clone(), name.clone()));
                    }
                    shards
                        .entry(name.clone())
                        .or_insert_with(|| Shard::new(&name))
                        .images
                        .push(e);
                }
                done += 1;
                if done % 1000 == 0 || done == total {
                    progress(Progress {
                        phase: "rebuilt",
                        done,
                        total,
                    });
                }
            }
            drop(derived);
            // Everything another catalog's: the id is wrong, not every object.
            if shards.is_empty() && foreign > 0 {
                return Err(CatalogError::Settings {
                    catalog: self.describe(),
                    problem: format!(
                        "every revision and event here names another catalog than {} ({foreign} of them): a wrong --catalog-id? nothing was written",
                        catalog_id.as_deref().unwrap_or("this one")
                    ),
                });
            }
            // Images the trusted root listed whose objects are all gone.
            for id in adoption.known.keys() {
                if !derived_ids.contains(id) {
                    findings.push(finding(
                        Severity::Error,
                        FindingKind::Data,
                        id,
                        "listed by the signed index, but none of its objects is there: left out (restore them from the container's soft delete or versions, and rebuild again)",
                    ));
                }
            }
            if catalog_id.is_none() {
                // Nothing says which catalog this is: the objects must agree.
                if catalog_ids.len() > 1 {
                    return Err(CatalogError::Settings {
                        catalog: self.describe(),
                        problem: format!(
                            "its objects were written for {} catalogs ({}): some were copied from another catalog; give --catalog-id with this catalog's id (readers' state files and `catalog verify` output name it)",
                            catalog_ids.len(),
                            catalog_ids.iter().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    });
                }
                catalog_id = catalog_ids.into_iter().next();
            }
            // A bounded number at once: one at a time, 100,000 anchors of a catalog that had
            // none took most of a rebuild on Azurite.
            let writes =
                to_create
                    .iter()
                    .chain(&to_sign)
                    .map(|(r, bytes)| futures::future::Either::Left(self.put_signed(r, bytes)))
                    .chain(anchors.iter().map(|(id, shard)| {
                        futures::future::Either::Right(self.put_anchor(id, shard))
                    }));
            self.all_bounded(writes).await?;
            let mut root = Root::empty(&now, &now);
            root.sequence = base;
            root.extra = extra;
            if catalog_id.is_none() {
                tracing::warn!(
                    "{}: no trusted root or state says which catalog this is: it gets a new catalog id, and readers that saw the old one refuse it (give --catalog-id to keep it)",
                    self.describe()
                );
            }
            root.catalog_id = catalog_id;
            let mut view = View::rebuilt(root, snap.mode.clone(), shards);
            let names = view.all_pointer_names();
            for name in names {
                let latest = view.derive_pointer(self, &name).await?;
                view.set_pointer(&name, latest);
            }
            let images = view.image_count();
            let yanked = view.yanked_count();
            if let Some(sequence) = view.commit(self).await? {
                findings.sort_by(|a, b| {
                    b.severity
                        .cmp(&a.severity)
                        .then_with(|| a.subject.cmp(&b.subject))
                });
                return Ok(Rebuilt {
                    images,
                    yanked,
                    sequence,
                    findings,
                });
            }
            // A publish got in between: its objects are there now too; derive again.
            contention.lost(self).await?;
        }
    }
}
