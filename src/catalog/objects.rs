//! The catalog's objects and their names. Everything but `index.json`, its convenience
//! signature copy and the `latest/` pointers is immutable and named by its content, so the
//! index is derived data: it can be rebuilt from the image objects alone.
//!
//! ```text
//! index.json                                the root: every section, with sha256 (signed)
//! index.json.sig                            a copy of the newest root's signature, for ssh-keygen
//! signatures/<sha256 of a root>.sig         the signature of each root (written before it)
//! sections/<minor>/<os>-<16 hex>.json      the shards and pointer of one Kubernetes minor and OS
//! shards/<kubernetes>/<os>-<16 hex>.json    the entries of one Kubernetes version and OS
//! latest/<minor>/<os>.json (+ .sig)         the latest image of a minor and OS, for curl
//! images/<id>/record-<16 hex>.json          a revision of the record
//! images/<id>/template-<16 hex>.yaml        its AzureMachineTemplate
//! images/<id>/revision-<16 hex>.json (+ .sig)   what the entry points at, and when
//! images/<id>/event-<16 hex>.json (+ .sig)      a yank, unyank, promotion, deletion or end of life,
//!                                               chained to the image's previous event
//! images/<id>/template-<16 hex>.yaml        also the template of a promoted location (its event names it)
//! images/<id>/yank-<16 hex>.json            layout 3's yank events (read, never written)
//! images/<id>/record.json, template.yaml    layout 1's objects (read, never written)
//! images/<id>/image.json                    which shard the image is in: a hint that spares a
//!                                           publish a listing (unsigned, checked where it points)
//! ```
//!
//! A `.sig` beside an object is the OpenSSH signature (SSHSIG) of its exact bytes.

use super::index::{Location, ObjectRef};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};

/// The root's key.
pub const INDEX_KEY: &str = "index.json";
/// The key of a copy of the newest root's signature (for `ssh-keygen -Y verify`).
pub const INDEX_SIGNATURE_KEY: &str = "index.json.sig";
/// Where the image objects are.
pub const IMAGES_PREFIX: &str = "images/";
/// The schema name of revisions and events (objects that carry a signature).
pub const EVENT_SCHEMA: &str = "sigcat.event/v1";
/// The schema name of revisions.
pub const REVISION_SCHEMA: &str = "sigcat.revision/v1";

/// The sha256 of `bytes`, in lower-case hex.
pub fn sha256(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// The signature of the root whose bytes hash to `index_sha256`.
pub fn signature_key(index_sha256: &str) -> String {
    format!("signatures/{index_sha256}.sig")
}

/// The detached signature of an object.
pub fn sig_key(object_key: &str) -> String {
    format!("{object_key}.sig")
}

/// What an object under `images/<id>/` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A revision of the record.
    Record,
    /// The AzureMachineTemplate.
    Template,
    /// What an index entry pointed at, and when.
    Revision,
    /// A yank, unyank, promotion, deletion or end of life (layout 5).
    Event,
    /// Layout 3's yank events.
    LegacyYank,
    /// Layout 1: `images/<id>/record.json`.
    LegacyRecord,
    /// Layout 1: `images/<id>/template.yaml`.
    LegacyTemplate,
    /// The signature of another object (`<key>.sig`).
    Signature,
    /// `images/<id>/image.json`: which shard the image is in (a hint).
    Anchor,
}

impl Kind {
    fn stem(self) -> &'static str {
        match self {
            Kind::Record | Kind::LegacyRecord => "record",
            Kind::Template | Kind::LegacyTemplate => "template",
            Kind::Revision => "revision",
            Kind::Event => "event",
            Kind::LegacyYank => "yank",
            Kind::Signature => "sig",
            Kind::Anchor => "image",
        }
    }
}

/// `images/<id>/<kind>-<first 16 hex of sha256>.<json|yaml>`.
pub fn object_key(id: &str, kind: Kind, bytes: &[u8]) -> String {
    let extension = if kind == Kind::Template {
        "yaml"
    } else {
        "json"
    };
    format!(
        "images/{id}/{}-{}.{extension}",
        kind.stem(),
        &sha256(bytes)[..16]
    )
}

/// The key of image `id`'s anchor: which shard it is in.
pub fn anchor_key(id: &str) -> String {
    format!("{IMAGES_PREFIX}{id}/image.json")
}

/// What an anchor says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    /// The image.
    pub id: String,
    /// The shard its entry is in.
    pub shard: String,
}

/// A reference to an object with these bytes.
pub fn object_ref(id: &str, kind: Kind, bytes: &[u8]) -> ObjectRef {
    ObjectRef {
        key: object_key(id, kind, bytes),
        sha256: sha256(bytes),
    }
}

/// The image and kind of an object key, if it is one of the catalog's image objects.
pub fn parse_key(key: &str) -> Option<(String, Kind)> {
    let rest = key.strip_prefix(IMAGES_PREFIX)?;
    let (id, name) = rest.split_once('/')?;
    if id.is_empty() || name.contains('/') || !valid_id(id) {
        return None;
    }
    if let Some(signed) = name.strip_suffix(".sig") {
        return parse_key(&format!("{IMAGES_PREFIX}{id}/{signed}"))
            .filter(|(_, k)| matches!(k, Kind::Revision | Kind::Event))
            .map(|(id, _)| (id, Kind::Signature));
    }
    let kind = match name {
        "record.json" => Kind::LegacyRecord,
        "image.json" => Kind::Anchor,
        "template.yaml" => Kind::LegacyTemplate,
        _ => {
            let (stem, tail) = name.split_once('-')?;
            let (hex, ext) = tail.split_once('.')?;
            if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            match (stem, ext) {
                ("record", "json") => Kind::Record,
                ("template", "yaml") => Kind::Template,
                ("revision", "json") => Kind::Revision,
                ("event", "json") => Kind::Event,
                ("yank", "json") => Kind::LegacyYank,
                _ => return None,
            }
        }
    };
    Some((id.to_string(), kind))
}

/// An image id as sigcat makes them: lower-case letters, digits, `.` and `-`, starting with a
/// letter or digit (what [`super::entry::image_id`] produces). Anything else in an index is
/// the catalog's own data gone wrong, not a key to follow.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 200
        && id.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && !id.contains("..")
}

/// What an index entry pointed at, written whenever an image's entry changes: the record
/// (revision) and the template, and when. Signed (a `.sig` beside it) in a signed catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    /// The image.
    pub id: String,
    /// The record object.
    pub record: ObjectRef,
    /// The template object.
    pub template: ObjectRef,
    /// When (RFC 3339, UTC).
    pub at: String,
    /// The root sequence it was written for (absent in layout 3's revisions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
    /// The catalog it was written for (the root's `catalog_id`): a copy in another catalog
    /// signed by the same key is recognised as foreign. Absent in objects from before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_id: Option<String>,
}

/// What an event does to its image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    /// Out of service: `latest` never returns it.
    Yank,
    /// Back in service.
    Unyank,
    /// Copied to another gallery (`location`), served from there from now on.
    Promote,
    /// One of its locations (`resource_id`) was deleted: never served from there again.
    Delete,
    /// Out of support after `end_of_life`: `latest` never returns it after that.
    EndOfLife,
}

impl Change {
    /// As events name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Yank => "yank",
            Change::Unyank => "unyank",
            Change::Promote => "promote",
            Change::Delete => "delete",
            Change::EndOfLife => "end-of-life",
        }
    }
}

/// Something that happened to an image after it was published, chained to the image's
/// previous event: the chain orders them without trusting clocks. Signed in a signed catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// [`EVENT_SCHEMA`].
    pub schema: String,
    /// The image.
    pub id: String,
    /// What it does.
    pub event: Change,
    /// Why, as given.
    pub reason: Option<String>,
    /// When (RFC 3339, UTC).
    pub at: String,
    /// The key of the event this one follows; none for the first.
    pub previous: Option<String>,
    /// The root sequence it was written for.
    pub sequence: u64,
    /// The catalog it was written for (the root's `catalog_id`), as in [`Revision`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_id: Option<String>,
    /// Promote: where the image now is (with its template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// Delete: the resource id of the location that is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// Delete: the image whose promotion overwrote it (image-builder deletes and recreates a
    /// version of the same name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<String>,
    /// End of life: the date (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_of_life: Option<String>,
}

impl Event {
    /// An event of image `id` with no payload yet.
    pub fn new(id: &str, change: Change, reason: Option<String>, at: &str, sequence: u64) -> Event {
        Event {
            schema: EVENT_SCHEMA.into(),
            id: id.to_string(),
            event: change,
            reason,
            at: at.to_string(),
            previous: None,
            sequence,
            catalog_id: None,
            location: None,
            resource_id: None,
            replaced_by: None,
            end_of_life: None,
        }
    }

    /// Whether it has what its kind needs (and nothing another kind carries), so that a fold
    /// never meets half an event.
    pub fn well_formed(&self) -> bool {
        let (l, r, e) = (
            self.location.is_some(),
            self.resource_id.is_some(),
            self.end_of_life.is_some(),
        );
        match self.event {
            Change::Yank | Change::Unyank => !l && !r && !e && self.replaced_by.is_none(),
            Change::Promote => l && !r && !e && self.replaced_by.is_none(),
            Change::Delete => !l && r && !e,
            Change::EndOfLife => !l && !r && e && self.replaced_by.is_none(),
        }
    }
}

/// Layout 3's yank (or unyank) event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct YankEvent {
    /// The image.
    pub id: String,
    /// Yanked (true) or put back (false).
    pub yanked: bool,
    /// Why, as given.
    pub reason: Option<String>,
    /// When (RFC 3339, UTC).
    pub at: String,
    /// The key of the event this one follows; none for the first.
    pub previous: Option<String>,
}

/// An event of either layout, as the chain and the fold of it need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The image.
    pub id: String,
    /// What it does.
    pub change: Change,
    /// Why.
    pub reason: Option<String>,
    /// When.
    pub at: String,
    /// The event before it.
    pub previous: Option<String>,
    /// The root sequence it was written for (0 for layout 3's).
    pub sequence: u64,
    /// The catalog it was written for (none for older events).
    pub catalog_id: Option<String>,
    /// Promote: where.
    pub location: Option<Location>,
    /// Delete: what.
    pub resource_id: Option<String>,
    /// Delete: by whose promotion.
    pub replaced_by: Option<String>,
    /// End of life: when.
    pub end_of_life: Option<String>,
}

impl Link {
    /// Reads an event object of either layout (`None`: not an event, or not a whole one).
    pub fn parse(kind: Kind, bytes: &[u8]) -> Option<Link> {
        match kind {
            Kind::Event => serde_json::from_slice::<Event>(bytes)
                .ok()
                .filter(|e| e.schema == EVENT_SCHEMA && e.well_formed())
                .map(|e| Link {
                    id: e.id,
                    change: e.event,
                    reason: e.reason,
                    at: e.at,
                    previous: e.previous,
                    sequence: e.sequence,
                    catalog_id: e.catalog_id,
                    location: e.location,
                    resource_id: e.resource_id,
                    replaced_by: e.replaced_by,
                    end_of_life: e.end_of_life,
                }),
            Kind::LegacyYank => serde_json::from_slice::<YankEvent>(bytes)
                .ok()
                .map(|e| Link {
                    id: e.id,
                    change: if e.yanked {
                        Change::Yank
                    } else {
                        Change::Unyank
                    },
                    reason: e.reason,
                    at: e.at,
                    previous: e.previous,
                    sequence: 0,
                    catalog_id: None,
                    location: None,
                    resource_id: None,
                    replaced_by: None,
                    end_of_life: None,
                }),
            _ => None,
        }
    }

    /// Whether it says the same as `other` (what, and its payload; not when or under which
    /// sequence): a racing writer's dead end that agrees with the event that took effect.
    pub fn says_the_same(&self, other: &Link) -> bool {
        self.change == other.change
            && self.location == other.location
            && self.resource_id == other.resource_id
            && self.replaced_by == other.replaced_by
            && self.end_of_life == other.end_of_life
    }
}

/// The newest of an image's events: the end of the longest chain (an event written by a
/// writer that then lost the index race is a dead end that no later event follows); a tie is
/// broken by sequence, then time, then key. Racing writers can only leave siblings that say the
/// same thing (a writer writes an event only to change the state it read), so a tie never
/// changes the image's state.
pub fn chain_head(events: &[(String, Link)]) -> Option<&(String, Link)> {
    let by_key: HashMap<&str, &Link> = events.iter().map(|(k, e)| (k.as_str(), e)).collect();
    let followed: HashSet<&str> = events
        .iter()
        .filter_map(|(_, e)| e.previous.as_deref())
        .collect();
    let length = |key: &str| chain(&by_key, key).len();
    events
        .iter()
        .filter(|(k, _)| !followed.contains(k.as_str()))
        .max_by(|(ka, a), (kb, b)| {
            length(ka)
                .cmp(&length(kb))
                .then_with(|| a.sequence.cmp(&b.sequence))
                .then_with(|| a.at.cmp(&b.at))
                .then_with(|| ka.cmp(kb))
        })
}

/// The keys of the events that lead to `start`, newest first, following `previous` (a planted
/// cycle ends the walk).
pub fn chain<'a>(by_key: &HashMap<&'a str, &'a Link>, start: &'a str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut key = start;
    while let Some(e) = by_key.get(key) {
        if !seen.insert(key) {
            break;
        }
        out.push(key);
        match e.previous.as_deref() {
            Some(p) => key = p,
            None => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_their_image_and_kind() {
        let k = object_key("capi-x-1-2-3-abcd1234", Kind::Revision, b"x");
        assert!(k.starts_with("images/capi-x-1-2-3-abcd1234/revision-") && k.ends_with(".json"));
        assert_eq!(
            parse_key(&k),
            Some(("capi-x-1-2-3-abcd1234".into(), Kind::Revision))
        );
        assert_eq!(
            parse_key(&sig_key(&k)),
            Some(("capi-x-1-2-3-abcd1234".into(), Kind::Signature))
        );
        assert_eq!(
            parse_key(&object_key("i", Kind::Template, b"t")),
            Some(("i".into(), Kind::Template))
        );
        assert_eq!(
            parse_key("images/i/record.json"),
            Some(("i".into(), Kind::LegacyRecord))
        );
        for not_ours in [
            "index.json",
            "images/i/notes.txt",
            "images/i/record-xyz.json",
            "images/i/a/b",
            "other/i/record.json",
            "images/../record-0123456789abcdef.json",
            "images/I/record-0123456789abcdef.json",
            "images/i/record-0123456789abcdef.json.sig",
        ] {
            assert_eq!(parse_key(not_ours), None, "{not_ours}");
        }
    }

    fn link(yanked: bool, at: &str, previous: Option<&str>, sequence: u64) -> Link {
        Link {
            id: "i".into(),
            change: if yanked { Change::Yank } else { Change::Unyank },
            reason: None,
            at: at.into(),
            previous: previous.map(str::to_string),
            sequence,
            catalog_id: None,
            location: None,
            resource_id: None,
            replaced_by: None,
            end_of_life: None,
        }
    }

    #[test]
    fn the_head_is_the_end_of_the_longest_chain_not_the_latest_clock() {
        assert!(chain_head(&[]).is_none());
        let events = vec![
            (
                "a".to_string(),
                link(true, "2026-01-01T00:00:00.000Z", None, 1),
            ),
            (
                "b".to_string(),
                link(false, "2026-01-02T00:00:00.000Z", Some("a"), 2),
            ),
            // A writer with a fast clock that lost the race: a dead end after `a`.
            (
                "z".to_string(),
                link(false, "2099-01-01T00:00:00.000Z", Some("a"), 2),
            ),
            (
                "c".to_string(),
                link(true, "2026-01-03T00:00:00.000Z", Some("b"), 3),
            ),
        ];
        assert_eq!(chain_head(&events).unwrap().0, "c");
        let by_key: HashMap<&str, &Link> = events.iter().map(|(k, e)| (k.as_str(), e)).collect();
        assert_eq!(chain(&by_key, "c"), ["c", "b", "a"]);
        // A planted cycle does not hang.
        let cycle = vec![
            ("a".to_string(), link(true, "t", Some("b"), 1)),
            ("b".to_string(), link(true, "t", Some("a"), 1)),
        ];
        let _ = chain_head(&cycle);
    }

    #[test]
    fn ids_are_what_sigcat_makes() {
        assert!(valid_id("capi-ubuntu-2404-0-3-1721037000-669dfbcd"));
        for bad in ["", "../x", "a/b", "A", "-x", "a..b", "x y"] {
            assert!(!valid_id(bad), "{bad}");
        }
    }
}
