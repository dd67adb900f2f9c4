//! The catalog's objects and their names. Everything but the index (and its convenience
//! signature copy) is immutable and named by its content, so the index is derived data: it can
//! be rebuilt from these objects alone.
//!
//! ```text
//! index.json                            the index (replaced with compare-and-swap)
//! index.json.sig                        a copy of the newest index's signature, for ssh-keygen
//! signatures/<sha256 of index>.sig      the signature of each signed index (written first)
//! images/<id>/record-<16 hex>.json      a revision of the record
//! images/<id>/template-<16 hex>.yaml    its AzureMachineTemplate
//! images/<id>/revision-<16 hex>.json    what an index entry pointed at, and when
//! images/<id>/yank-<16 hex>.json        a yank or unyank, chained to the one before
//! images/<id>/record.json, template.yaml    layout 1's objects (read, never written)
//! ```

use super::index::ObjectRef;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};

/// The index's key.
pub const INDEX_KEY: &str = "index.json";
/// The key of a copy of the newest index's signature (for `ssh-keygen -Y verify`).
pub const INDEX_SIGNATURE_KEY: &str = "index.json.sig";

/// The sha256 of `bytes`, in lower-case hex.
pub fn sha256(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// The signature of the index whose bytes hash to `index_sha256`.
pub fn signature_key(index_sha256: &str) -> String {
    format!("signatures/{index_sha256}.sig")
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
    /// A yank or unyank.
    Yank,
    /// Layout 1: `images/<id>/record.json`.
    LegacyRecord,
    /// Layout 1: `images/<id>/template.yaml`.
    LegacyTemplate,
}

impl Kind {
    fn stem(self) -> &'static str {
        match self {
            Kind::Record | Kind::LegacyRecord => "record",
            Kind::Template | Kind::LegacyTemplate => "template",
            Kind::Revision => "revision",
            Kind::Yank => "yank",
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

/// A reference to an object with these bytes.
pub fn object_ref(id: &str, kind: Kind, bytes: &[u8]) -> ObjectRef {
    ObjectRef {
        key: object_key(id, kind, bytes),
        sha256: sha256(bytes),
    }
}

/// The image and kind of an object key, if it is one of the catalog's.
pub fn parse_key(key: &str) -> Option<(String, Kind)> {
    let rest = key.strip_prefix("images/")?;
    let (id, name) = rest.split_once('/')?;
    if id.is_empty() || name.contains('/') {
        return None;
    }
    let kind = match name {
        "record.json" => Kind::LegacyRecord,
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
                ("yank", "json") => Kind::Yank,
                _ => return None,
            }
        }
    };
    Some((id.to_string(), kind))
}

/// What an index entry pointed at, written whenever an image's entry changes: the record
/// (revision) and the template, and when.
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
}

/// A yank (or unyank), chained to the image's previous one: the chain orders them without
/// trusting clocks.
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

/// The newest of an image's yank events: the end of the longest chain. An event written by a
/// writer that then lost the index race is a dead end that no later event follows; a tie is
/// broken by time, then by key.
pub fn chain_head(events: &[(String, YankEvent)]) -> Option<&(String, YankEvent)> {
    let by_key: HashMap<&str, &YankEvent> = events.iter().map(|(k, e)| (k.as_str(), e)).collect();
    let followed: HashSet<&str> = events
        .iter()
        .filter_map(|(_, e)| e.previous.as_deref())
        .collect();
    let length = |key: &str| chain_length(&by_key, key);
    events
        .iter()
        .filter(|(k, _)| !followed.contains(k.as_str()))
        .max_by(|(ka, a), (kb, b)| {
            length(ka)
                .cmp(&length(kb))
                .then_with(|| a.at.cmp(&b.at))
                .then_with(|| ka.cmp(kb))
        })
}

/// How many events lead to `key`, following `previous`.
fn chain_length(by_key: &HashMap<&str, &YankEvent>, start: &str) -> usize {
    let mut key = start.to_string();
    let mut n = 0;
    let mut seen = HashSet::new();
    while let Some(e) = by_key.get(key.as_str()) {
        if !seen.insert(key.clone()) {
            break; // a cycle cannot be written, but need not hang us if planted
        }
        n += 1;
        match &e.previous {
            Some(p) => key = p.clone(),
            None => break,
        }
    }
    n
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
        ] {
            assert_eq!(parse_key(not_ours), None, "{not_ours}");
        }
    }

    fn event(yanked: bool, at: &str, previous: Option<&str>) -> YankEvent {
        YankEvent {
            id: "i".into(),
            yanked,
            reason: None,
            at: at.into(),
            previous: previous.map(str::to_string),
        }
    }

    #[test]
    fn the_head_is_the_end_of_the_longest_chain_not_the_latest_clock() {
        assert!(chain_head(&[]).is_none());
        let events = vec![
            (
                "a".to_string(),
                event(true, "2026-01-01T00:00:00.000Z", None),
            ),
            (
                "b".to_string(),
                event(false, "2026-01-02T00:00:00.000Z", Some("a")),
            ),
            // A writer with a fast clock that lost the race: a dead end after `a`.
            (
                "z".to_string(),
                event(false, "2099-01-01T00:00:00.000Z", Some("a")),
            ),
            (
                "c".to_string(),
                event(true, "2026-01-03T00:00:00.000Z", Some("b")),
            ),
        ];
        assert_eq!(chain_head(&events).unwrap().0, "c");
        // Two heads of the same length: the later one.
        let tie = vec![
            (
                "a".to_string(),
                event(true, "2026-01-01T00:00:00.000Z", None),
            ),
            (
                "b".to_string(),
                event(false, "2026-01-02T00:00:00.000Z", Some("a")),
            ),
            (
                "c".to_string(),
                event(true, "2026-01-03T00:00:00.000Z", Some("a")),
            ),
        ];
        assert_eq!(chain_head(&tie).unwrap().0, "c");
        // A planted cycle does not hang.
        let cycle = vec![
            ("a".to_string(), event(true, "t", Some("b"))),
            ("b".to_string(), event(true, "t", Some("a"))),
        ];
        let _ = chain_head(&cycle);
    }
}
