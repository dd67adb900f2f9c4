//! An image's life after its build, as image-builder's jobs live it: promoted to a production
//! or community gallery (the promote job), its staging locations deleted (the clean job, or a
//! prune), its end of life. Each is an event in the image's chain, signed like a yank; an
//! entry's `yank` and `lifecycle` are the fold of that chain ([`apply`], one event at a time,
//! the same for a writer and for `rebuild-index`).
//!
//! A promotion to a gallery image version another image was promoted to before is how
//! image-builder overwrites ("always create a new image"): the other image's location is
//! recorded as deleted, replaced by this one, in the same commit, and both are said.

use super::entry;
use super::index::{Deleted, IndexEntry, Lifecycle, Location, ObjectRef, Promoted, YankState};
use super::objects::{self, Change, Event, Kind, Link};
use super::snapshot::Intent;
use super::store::Store;
use super::view::View;
use super::{Catalog, CatalogError};
use crate::record::GalleryImageVersionId;
use crate::render::{GalleryTarget, relocated};

/// Takes one event into an entry's state: what both a writer (after writing it) and a rebuild
/// (folding the chain from its start) do, so they agree.
pub fn apply(e: &mut IndexEntry, link: &Link, event: &ObjectRef) {
    fn lifecycle<'a>(e: &'a mut IndexEntry, event: &ObjectRef) -> &'a mut Lifecycle {
        e.lifecycle.get_or_insert_with(|| Lifecycle {
            head: event.clone(),
            promoted: Vec::new(),
            deleted: Vec::new(),
            end_of_life: None,
        })
    }
    match link.change {
        Change::Yank | Change::Unyank => {
            e.yank = Some(YankState {
                yanked: link.change == Change::Yank,
                reason: link.reason.clone(),
                at: link.at.clone(),
                event: event.clone(),
            });
        }
        Change::Promote => {
            let Some(location) = link.location.clone() else {
                return;
            };
            let l = lifecycle(e, event);
            let id = location.gallery_image_version_id.clone();
            // Promoted there again: the version was deleted and created again.
            l.deleted
                .retain(|d| !d.resource_id.eq_ignore_ascii_case(&id));
            match l.promoted.iter_mut().find(|p| {
                p.location
                    .gallery_image_version_id
                    .eq_ignore_ascii_case(&id)
            }) {
                Some(p) => {
                    // The same creation (Azure's publishedDate says so) with other details (a
                    // region added): an update, not the version deleted and created again.
                    let same_creation = p.location.published.is_some()
                        && p.location.published == location.published;
                    if !same_creation {
                        p.times += 1;
                    }
                    p.location = location;
                    p.at = link.at.clone();
                    p.event = event.clone();
                }
                None => l.promoted.push(Promoted {
                    location,
                    at: link.at.clone(),
                    times: 1,
                    event: event.clone(),
                }),
            }
        }
        Change::Delete => {
            let Some(id) = link.resource_id.clone() else {
                return;
            };
            let l = lifecycle(e, event);
            l.deleted
                .retain(|d| !d.resource_id.eq_ignore_ascii_case(&id));
            l.deleted.push(Deleted {
                resource_id: id,
                at: link.at.clone(),
                reason: link.reason.clone(),
                replaced_by: link.replaced_by.clone(),
                event: event.clone(),
            });
        }
        Change::EndOfLife => {
            lifecycle(e, event).end_of_life = link.end_of_life.clone();
        }
    }
    if let Some(l) = &mut e.lifecycle {
        l.head = event.clone();
    }
}

/// The state a chain of events (oldest first) leaves: `(yank, lifecycle)`.
pub fn fold<'a>(
    base: &IndexEntry,
    chain: impl IntoIterator<Item = (&'a ObjectRef, &'a Link)>,
) -> (Option<YankState>, Option<Lifecycle>) {
    let mut e = base.clone();
    e.yank = None;
    e.lifecycle = None;
    for (r, link) in chain {
        apply(&mut e, link, r);
    }
    (e.yank, e.lifecycle)
}

/// Where an image was promoted to, as the promote job left it (`az sig image-version
/// create`'s output, and the community gallery's public name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `production` unless said otherwise.
    pub stage: String,
    /// The new gallery image version's resource id.
    pub gallery_image_version_id: String,
    /// A community gallery's public name (CAPZ references community images by it).
    pub public_name: Option<String>,
    /// Regions it was replicated to (any spelling Azure accepts).
    pub regions: Vec<String>,
    /// Its end of life (RFC 3339 or a date).
    pub end_of_life: Option<String>,
    /// When Azure says it was published (`publishingProfile.publishedDate`): a version deleted
    /// and created again has another, a retried step the same.
    pub published: Option<String>,
}

/// What a promotion did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PromoteOutcome {
    /// Recorded; `times` > 1: promoted there before (the version was overwritten);
    /// `overwrote`: other images whose location this one replaced.
    Promoted {
        /// The promotion event.
        event: ObjectRef,
        /// How many times this image was promoted there.
        times: u32,
        /// Other images that were promoted there before, now recorded as replaced.
        overwrote: Vec<String>,
    },
    /// No image has that id.
    NoSuchImage,
    /// That very promotion (the same version, regions, end of life and publish date) is
    /// recorded already: a retried step, nothing written.
    AlreadyPromoted,
}

/// What recording one deleted resource did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CleanOutcome {
    /// Recorded as deleted for image `id`.
    Deleted {
        /// The image.
        id: String,
    },
    /// Image `id` already had it recorded as deleted.
    AlreadyDeleted {
        /// The image.
        id: String,
    },
    /// No image in the catalog has a location with that resource id.
    NotInCatalog,
}

/// What setting an end of life did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndOfLifeOutcome {
    /// Recorded.
    Done(ObjectRef),
    /// It already had that end of life.
    AlreadySo,
    /// No image has that id.
    NoSuchImage,
}

/// Why a promotion target cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadTarget(pub String);

impl Target {
    /// The location (without its template yet), checked: a gallery image version id, a
    /// stage and an end of life sigcat can read.
    fn location(&self, template: ObjectRef) -> Result<Location, BadTarget> {
        let parsed = GalleryImageVersionId::parse(&self.gallery_image_version_id)
            .map_err(|e| BadTarget(format!("the promoted version: {e}")))?;
        let end_of_life = match &self.end_of_life {
            Some(t) => Some(entry::normalize_time(t).ok_or_else(|| {
                BadTarget(format!(
                    "end of life `{t}` is not a date (2027-06-04) or an RFC 3339 time"
                ))
            })?),
            None => None,
        };
        let mut regions: Vec<String> = self
            .regions
            .iter()
            .map(|r| super::index::normalize_region(r))
            .filter(|r| !r.is_empty())
            .collect();
        regions.sort();
        regions.dedup();
        Ok(Location {
            stage: self.stage.to_ascii_lowercase(),
            gallery_image_version_id: self.gallery_image_version_id.clone(),
            gallery: parsed.gallery,
            public_name: self.public_name.clone(),
            image_definition: parsed.image_definition,
            gallery_image_version: parsed.version,
            regions,
            end_of_life,
            published: self.published.clone(),
            template,
        })
    }

    /// Where the template must point.
    fn gallery_target(&self) -> Result<GalleryTarget, BadTarget> {
        let parsed = GalleryImageVersionId::parse(&self.gallery_image_version_id)
            .map_err(|e| BadTarget(format!("the promoted version: {e}")))?;
        Ok(GalleryTarget {
            gallery: self
                .public_name
                .clone()
                .unwrap_or_else(|| parsed.gallery.clone()),
            image_definition: parsed.image_definition,
            version: parsed.version,
            private: match self.public_name {
                Some(_) => None,
                None => Some((parsed.subscription_id, parsed.resource_group)),
            },
        })
    }
}

impl<S: Store> Catalog<S> {
    /// Writes an event of image `id` (in shard `shard`) after its newest one, signed, and
    /// takes it into the entry and its pointer; committed with the view.
    pub(crate) async fn write_event(
        &self,
        view: &mut View,
        shard: &str,
        id: &str,
        mut event: Event,
    ) -> Result<ObjectRef, CatalogError> {
        event.catalog_id = view.root.catalog_id.clone();
        let found = view.shard(self, shard).await?;
        let Some(entry) = found.images.iter_mut().find(|e| e.id == id) else {
            return Err(self.corrupt(shard, format!("image {id} went missing")));
        };
        event.previous = entry.head_event().map(|r| r.key.clone());
        let bytes = serde_json::to_vec_pretty(&event).unwrap_or_default();
        let r = objects::object_ref(id, Kind::Event, &bytes);
        let link = Link::parse(Kind::Event, &bytes)
            .ok_or_else(|| self.corrupt(&r.key, "an event sigcat cannot read back"))?;
        self.put_signed(&r, &bytes).await?;
        apply(entry, &link, &r);
        let pointer = entry.pointer_name();
        view.mark(shard);
        if let Some(p) = pointer {
            let latest = view.derive_pointer(self, &p).await?;
            view.set_pointer(&p, latest);
        }
        Ok(r)
    }

    /// The images (shard, id) that have a location with this resource id still there (or,
    /// with `deleted`, recorded as deleted): where one was built (its id follows from a
    /// gallery image version id), and where images were promoted (shards whose galleries
    /// include its gallery; every shard for a managed image).
    async fn holders(
        &self,
        view: &mut View,
        resource_id: &str,
        deleted: bool,
    ) -> Result<Vec<(String, String)>, CatalogError> {
        let mut out = Vec::new();
        let has = |e: &IndexEntry| {
            if deleted {
                return e.is_deleted(resource_id);
            }
            e.live_locations()
                .iter()
                .any(|(_, r)| r.eq_ignore_ascii_case(resource_id))
        };
        if let Some(id) = entry::image_id_of_gallery_version(resource_id)
            && let Some(shard) = view.locate(self, &id).await?
            && view.shard(self, &shard).await?.find(&id).is_some_and(&has)
        {
            out.push((shard, id));
        }
        let gallery = GalleryImageVersionId::parse(resource_id)
            .ok()
            .map(|g| g.gallery.to_ascii_lowercase());
        let managed = crate::record::ManagedImageId::parse(resource_id).is_ok();
        if gallery.is_none() && !managed {
            return Ok(out);
        }
        let in_gallery = |set: &std::collections::BTreeSet<String>| {
            gallery
                .as_ref()
                .is_none_or(|g| set.iter().any(|s| s.eq_ignore_ascii_case(g)))
        };
        let names = view
            .shard_names(
                self,
                |_, s| in_gallery(&s.galleries),
                |_, s| in_gallery(&s.galleries),
            )
            .await?;
        for name in names {
            for e in &view.shard(self, &name).await?.images {
                if has(e) && !out.iter().any(|(_, id)| *id == e.id) {
                    out.push((name.clone(), e.id.clone()));
                }
            }
        }
        Ok(out)
    }

    /// Records that image `id` was promoted to `target`: a new template that boots from
    /// there, an event that names both; any other image promoted there before is recorded as
    /// replaced. From now on `latest` serves it from there.
    pub async fn promote(
        &self,
        id: &str,
        target: &Target,
        reason: Option<&str>,
    ) -> Result<PromoteOutcome, CatalogError> {
        self.check_writer()?;
        let bad = |e: BadTarget| CatalogError::Settings {
            catalog: self.describe(),
            problem: e.to_string(),
        };
        let gallery_target = target.gallery_target().map_err(bad)?;
        target
            .location(ObjectRef {
                key: String::new(),
                sha256: String::new(),
            })
            .map_err(bad)?;
        let at = entry::now_rfc3339();
        let reason = reason.map(|r| crate::redact::redact_secrets(r).into_owned());
        let mut contention = self.contention();
        loop {
            let mut view = self.write_view(Intent::Write).await?;
            let sequence = view.root.sequence + 1;
            let Some(shard) = view.locate(self, id).await? else {
                return Ok(PromoteOutcome::NoSuchImage);
            };
            let entry = view
                .shard(self, &shard)
                .await?
                .find(id)
                .cloned()
                .ok_or_else(|| self.corrupt(&shard, format!("image {id} went missing")))?;
            // Where an image was built is its own; a promotion never lands there.
            if let Some(built) =
                entry::image_id_of_gallery_version(&target.gallery_image_version_id)
                && view.locate(self, &built).await?.is_some()
            {
                return Err(bad(BadTarget(format!(
                    "`{}` is where image {built} was built (a staging location), not a promotion target",
                    target.gallery_image_version_id
                ))));
            }
            let template = self.promoted_template(&entry, &gallery_target).await?;
            let location = target.location(template).map_err(bad)?;
            if let Some(l) = &entry.lifecycle {
                let same = |r: &str| r.eq_ignore_ascii_case(&location.gallery_image_version_id);
                if l.promoted.iter().any(|p| p.location == location)
                    && !l.deleted.iter().any(|d| same(&d.resource_id))
                {
                    return Ok(PromoteOutcome::AlreadyPromoted);
                }
            }
            let others: Vec<(String, String)> = self
                .holders(&mut view, &location.gallery_image_version_id, false)
                .await?
                .into_iter()
                .filter(|(_, other)| other != id)
                .collect();
            let mut event = Event::new(id, Change::Promote, reason.clone(), &at, sequence);
            event.location = Some(location.clone());
            let r = self.write_event(&mut view, &shard, id, event).await?;
            for (other_shard, other) in &others {
                let mut event = Event::new(
                    other,
                    Change::Delete,
                    Some(format!("overwritten by the promotion of {id}")),
                    &at,
                    sequence,
                );
                event.resource_id = Some(location.gallery_image_version_id.clone());
                event.replaced_by = Some(id.to_string());
                self.write_event(&mut view, other_shard, other, event)
                    .await?;
            }
            let times = view
                .shard(self, &shard)
                .await?
                .find(id)
                .and_then(|e| e.lifecycle.as_ref())
                .and_then(|l| {
                    l.promoted.iter().find(|p| {
                        p.location
                            .gallery_image_version_id
                            .eq_ignore_ascii_case(&location.gallery_image_version_id)
                    })
                })
                .map_or(1, |p| p.times);
            if view.commit(self).await?.is_some() {
                return Ok(PromoteOutcome::Promoted {
                    event: r,
                    times,
                    overwrote: others.into_iter().map(|(_, id)| id).collect(),
                });
            }
            contention.lost(self).await?;
        }
    }

    /// The template of `entry`'s build, pointed at `target` (written as an object of the
    /// image, named by its content).
    async fn promoted_template(
        &self,
        entry: &IndexEntry,
        target: &GalleryTarget,
    ) -> Result<ObjectRef, CatalogError> {
        let stored = entry.objects.get("template").ok_or_else(|| {
            self.corrupt(
                super::INDEX_KEY,
                format!("image {} has no template", entry.id),
            )
        })?;
        let bytes = self.read_object(stored).await?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let corrupt = |problem: String| self.corrupt(&stored.key, problem);
        let mut docs = crate::yaml::read_objects(&text, &stored.key)
            .map_err(|e| corrupt(format!("the template does not read back: {e}")))?;
        if docs.len() != 1 {
            return Err(corrupt("the template is not one object".into()));
        }
        let base = match entry.image_definition.as_deref() {
            Some(d) if d.eq_ignore_ascii_case(&target.image_definition) => {
                format!("{}-{}", target.image_definition, target.gallery)
            }
            _ => target.image_definition.clone(),
        };
        let moved = relocated(&docs.remove(0), target, &base)
            .map_err(|e| corrupt(format!("cannot be pointed at the promoted image: {e}")))?;
        let bytes = crate::yaml::to_stream(&[moved]).into_bytes();
        let r = objects::object_ref(&entry.id, Kind::Template, &bytes);
        self.put_object(&r, &bytes).await?;
        Ok(r)
    }

    /// Records that these resources (gallery image versions, managed images) were deleted:
    /// no image is ever served from them again. Outcomes in order, with the resource id each
    /// is about (one per image that had it).
    pub async fn clean(
        &self,
        resource_ids: &[String],
        reason: Option<&str>,
    ) -> Result<Vec<(String, CleanOutcome)>, CatalogError> {
        self.check_writer()?;
        let at = entry::now_rfc3339();
        let reason = reason.map(|r| crate::redact::redact_secrets(r).into_owned());
        let mut contention = self.contention();
        loop {
            let mut view = self.write_view(Intent::Write).await?;
            let sequence = view.root.sequence + 1;
            let mut outcomes = Vec::new();
            let mut wrote = false;
            for rid in resource_ids {
                let holders = self.holders(&mut view, rid, false).await?;
                if holders.is_empty() {
                    let before = self.holders(&mut view, rid, true).await?;
                    match before.into_iter().next() {
                        Some((_, id)) => {
                            outcomes.push((rid.clone(), CleanOutcome::AlreadyDeleted { id }))
                        }
                        None => outcomes.push((rid.clone(), CleanOutcome::NotInCatalog)),
                    }
                    continue;
                }
                for (shard, id) in holders {
                    let mut event = Event::new(&id, Change::Delete, reason.clone(), &at, sequence);
                    event.resource_id = Some(rid.clone());
                    self.write_event(&mut view, &shard, &id, event).await?;
                    wrote = true;
                    outcomes.push((rid.clone(), CleanOutcome::Deleted { id }));
                }
            }
            if !wrote || view.commit(self).await?.is_some() {
                return Ok(outcomes);
            }
            contention.lost(self).await?;
        }
    }

    /// Sets image `id`'s end of life (RFC 3339 or a date): after it, `latest` never returns
    /// the image. It wins over the end of life of a promotion.
    pub async fn set_end_of_life(
        &self,
        id: &str,
        end_of_life: &str,
        reason: Option<&str>,
    ) -> Result<EndOfLifeOutcome, CatalogError> {
        self.check_writer()?;
        let date = entry::normalize_time(end_of_life).ok_or_else(|| CatalogError::Settings {
            catalog: self.describe(),
            problem: format!(
                "end of life `{end_of_life}` is not a date (2027-06-04) or an RFC 3339 time"
            ),
        })?;
        let at = entry::now_rfc3339();
        let reason = reason.map(|r| crate::redact::redact_secrets(r).into_owned());
        let mut contention = self.contention();
        loop {
            let mut view = self.write_view(Intent::Write).await?;
            let sequence = view.root.sequence + 1;
            let Some(shard) = view.locate(self, id).await? else {
                return Ok(EndOfLifeOutcome::NoSuchImage);
            };
            // What readers see now: its own end of life, else its promotion's.
            let current = view.shard(self, &shard).await?.find(id).and_then(|e| {
                e.lifecycle
                    .as_ref()
                    .and_then(|l| l.end_of_life.clone())
                    .or_else(|| e.served(None).and_then(|s| s.end_of_life))
            });
            if current.as_deref() == Some(date.as_str()) {
                return Ok(EndOfLifeOutcome::AlreadySo);
            }
            let mut event = Event::new(id, Change::EndOfLife, reason.clone(), &at, sequence);
            event.end_of_life = Some(date.clone());
            let r = self.write_event(&mut view, &shard, id, event).await?;
            if view.commit(self).await?.is_some() {
                return Ok(EndOfLifeOutcome::Done(r));
            }
            contention.lost(self).await?;
        }
    }
}

/// What image-builder's `sig-publishing-info.json` says of a build's staging image: where it
/// is, so the promote and clean jobs' steps can name it without scraping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishingInfo {
    /// The staging gallery image version (`managed_image_shared_image_gallery_id`).
    pub gallery_image_version_id: Option<String>,
    /// The managed image the build made (`managed_image_id`).
    pub managed_image_id: Option<String>,
}

fn json_of(text: &str, source: &str, what: &str) -> Result<serde_json::Value, crate::InputError> {
    serde_json::from_str(text).map_err(|e| {
        crate::InputError::new(
            source,
            Some(e.line() as u64),
            format!("{e}; expected {what}"),
        )
    })
}

/// A string field of a JSON object: absent, `null` and `""` (what `jq -r` writes for null)
/// are none; anything else is an error naming the field.
fn field(
    v: &serde_json::Value,
    name: &str,
    source: &str,
) -> Result<Option<String>, crate::InputError> {
    match v.get(name) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) if s.is_empty() || s == "null" => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(crate::InputError::new(
            source,
            None,
            format!("`{name}` is {other}, expected a string"),
        )),
    }
}

impl PublishingInfo {
    /// Reads image-builder's `sig-publishing-info.json`.
    pub fn read(text: &str, source: &str) -> Result<PublishingInfo, crate::InputError> {
        let what = "image-builder's sig-publishing-info.json (a JSON object)";
        let v = json_of(text, source, what)?;
        if !v.is_object() {
            return Err(crate::InputError::new(
                source,
                Some(1),
                format!("expected {what}"),
            ));
        }
        let info = PublishingInfo {
            gallery_image_version_id: field(&v, "managed_image_shared_image_gallery_id", source)?,
            managed_image_id: field(&v, "managed_image_id", source)?,
        };
        if info.gallery_image_version_id.is_none() && info.managed_image_id.is_none() {
            return Err(crate::InputError::new(
                source,
                None,
                "it names no image: neither `managed_image_shared_image_gallery_id` nor `managed_image_id` is set (a build that published nothing?)",
            ));
        }
        Ok(info)
    }

    /// The catalog id of the image it describes.
    pub fn image_id(&self) -> Option<String> {
        match (&self.gallery_image_version_id, &self.managed_image_id) {
            (Some(g), _) => entry::image_id_of_gallery_version(g),
            (None, Some(_)) => None,
            _ => None,
        }
    }
}

impl Target {
    /// Reads `az sig image-version create`'s output (the promote job keeps it as
    /// `sig-publishing.json`): the new version's id, its target regions and end of life.
    pub fn from_image_version(
        text: &str,
        source: &str,
        stage: &str,
    ) -> Result<Target, crate::InputError> {
        let what = "the output of `az sig image-version create` (a JSON object with `id`)";
        let v = json_of(text, source, what)?;
        let id = field(&v, "id", source)?.ok_or_else(|| {
            crate::InputError::new(source, None, format!("no `id`: expected {what}"))
        })?;
        if GalleryImageVersionId::parse(&id).is_err() {
            return Err(crate::InputError::new(
                source,
                None,
                format!("`id` is not a gallery image version id: {id}"),
            ));
        }
        let bad = |problem: String| crate::InputError::new(source, None, problem);
        // A step that went on after a failed create must not record a promotion.
        match field(&v, "provisioningState", source)? {
            Some(state) if state.eq_ignore_ascii_case("Succeeded") => {}
            Some(state) => {
                return Err(bad(format!(
                    "`provisioningState` is `{state}`: the version was not created, nothing to record"
                )));
            }
            None => {
                return Err(bad(format!(
                    "no `provisioningState`: expected {what}, which says `Succeeded` once the version is created"
                )));
            }
        }
        let profile = v
            .get("publishingProfile")
            .filter(|p| p.is_object())
            .ok_or_else(|| bad(format!("no `publishingProfile` object: expected {what}")))?;
        let regions = match profile.get("targetRegions") {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(serde_json::Value::Array(regions)) => regions
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    r.get("name")
                        .and_then(serde_json::Value::as_str)
                        .filter(|n| !n.trim().is_empty())
                        .map(str::to_string)
                        .ok_or_else(|| {
                            bad(format!(
                                "`publishingProfile.targetRegions[{i}]` has no `name`: expected objects such as {{\"name\": \"westeurope\"}}"
                            ))
                        })
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(bad(
                    "`publishingProfile.targetRegions` is not a list: expected objects such as {\"name\": \"westeurope\"}".into(),
                ));
            }
        };
        if regions.is_empty() {
            return Err(bad(
                "`publishingProfile.targetRegions` is empty: a created version is in one region at least".into(),
            ));
        }
        let end_of_life = field(profile, "endOfLifeDate", source)?;
        let published = field(profile, "publishedDate", source)?;
        if let Some(t) = &end_of_life
            && entry::normalize_time(t).is_none()
        {
            return Err(crate::InputError::new(
                source,
                None,
                format!("`publishingProfile.endOfLifeDate` `{t}` is not an RFC 3339 time"),
            ));
        }
        Ok(Target {
            stage: stage.to_string(),
            gallery_image_version_id: id,
            public_name: None,
            regions,
            end_of_life,
            published,
        })
    }
}
