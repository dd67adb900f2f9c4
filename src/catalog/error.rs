//! What the catalog's operations end with: the errors that stop a whole call (the storage, the
//! operator's settings, the catalog's own data, its trust) and the per-item outcomes that do
//! not.

use super::entry::Item;
use super::index::YankState;
use super::signing;
use super::store::StoreError;
use crate::fault::{Classify, Fault};

/// What stops a whole catalog call. Each variant says whose fault it is (see [`Classify`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// The storage service failed, or refused the credentials.
    #[error("catalog {catalog}")]
    Storage {
        /// Where the catalog is (never a credential).
        catalog: String,
        /// What the storage said.
        #[source]
        source: StoreError,
    },
    /// The catalog's own data is wrong: an unreadable index, an object missing or not matching
    /// its hash, a layout this sigcat does not know.
    #[error("catalog {catalog}: {key}: {problem}")]
    Corrupt {
        /// Where the catalog is.
        catalog: String,
        /// The object that is wrong.
        key: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The catalog (or an object a reader would act on) is not trusted: nothing in it is used.
    #[error("catalog {catalog}: {key} is not trusted: {problem}")]
    Untrusted {
        /// Where the catalog is.
        catalog: String,
        /// The object.
        key: String,
        /// Why.
        problem: Distrust,
    },
    /// Nothing is at the location: no directory, no container.
    #[error(
        "no catalog at {catalog}: the {what} does not exist (check --catalog or SIGCAT_CATALOG)"
    )]
    Missing {
        /// Where it was looked for.
        catalog: String,
        /// `directory` or `container`.
        what: &'static str,
    },
    /// The command's settings cannot work with this catalog (a writer that would strip its
    /// signature, or that trusts signed catalogs but cannot sign).
    #[error("catalog {catalog}: {problem}")]
    Settings {
        /// Where the catalog is.
        catalog: String,
        /// What is wrong, and what to give.
        problem: String,
    },
    /// The file that remembers the catalog's sequence could not be read or written.
    #[error("{path}: {problem}")]
    State {
        /// The state file or directory.
        path: String,
        /// What went wrong.
        problem: String,
    },
}

/// Why a catalog, or one of its objects, is not trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Distrust {
    /// Its signature: missing, malformed, by an unknown key, or not of these bytes.
    #[error("{0}")]
    Signature(#[from] signing::Untrusted),
    /// An older index than one seen before: rolled back.
    #[error(
        "it is at sequence {got}, but sequence {seen} was seen before: an older index was put back (a rollback); its owner restores it with `sigcat catalog rebuild-index`"
    )]
    Rollback {
        /// The highest sequence seen.
        seen: u64,
        /// The sequence found.
        got: u64,
    },
    /// Another catalog's root (another id than the catalog seen here, or pinned).
    #[error(
        "it is the root of another catalog (id {got}; this location's catalog is {expected}): a root copied from another catalog signed by the same key"
    )]
    OtherCatalog {
        /// The id seen here before, or pinned.
        expected: String,
        /// The id of the root found.
        got: String,
    },
    /// Another index of the same sequence was seen before.
    #[error("a different index of the same sequence ({sequence}) was seen before")]
    Fork {
        /// The sequence.
        sequence: u64,
    },
    /// Below the minimum the reader pinned.
    #[error("it is at sequence {got}, below the minimum {min} (--min-sequence)")]
    BelowMinimum {
        /// The minimum.
        min: u64,
        /// The sequence found.
        got: u64,
    },
    /// Past its expiry: a frozen (or abandoned) catalog.
    #[error(
        "it expired at {at}; its owner checks it (`sigcat catalog verify`) and re-signs it (`sigcat catalog refresh --accept-expired`)"
    )]
    Expired {
        /// When it expired.
        at: String,
    },
    /// The index is gone though one was seen (or a minimum pinned).
    #[error(
        "it is missing, but sequence {seen} was seen before: the index was deleted or rolled back"
    )]
    Gone {
        /// The highest sequence seen (or the pinned minimum).
        seen: u64,
    },
    /// Signed the old way, with no sequence or expiry, so a rollback cannot be told.
    #[error(
        "it is layout {layout}, signed without a sequence or an expiry, so a rolled-back copy cannot be told from it"
    )]
    OldLayout {
        /// Its layout.
        layout: u32,
    },
    /// An object written under a later sequence than the index: the index was rolled back.
    #[error(
        "it was written under sequence {object}, but the index is at {index}: the index was rolled back"
    )]
    Ahead {
        /// The object's sequence.
        object: u64,
        /// The index's.
        index: u64,
    },
}

impl Classify for CatalogError {
    fn fault(&self) -> Option<Fault> {
        match self {
            CatalogError::Storage { source, .. } => source.fault(),
            CatalogError::Corrupt { .. } => Some(Fault::CatalogData),
            CatalogError::Untrusted { .. } => Some(Fault::Untrusted),
            CatalogError::Missing { .. } | CatalogError::Settings { .. } => Some(Fault::Settings),
            CatalogError::State { .. } => Some(Fault::LocalFile),
        }
    }
}

/// A published image that another publish contradicts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{item}: image `{id}` is already in the catalog with {field} `{stored}`, not `{offered}`; a gallery image version is immutable, publish a new version instead"
)]
pub struct Conflict {
    /// The input that offered it.
    pub item: Item,
    /// The image.
    pub id: String,
    /// The field the two disagree on (a dotted path).
    pub field: String,
    /// The catalog's value.
    pub stored: String,
    /// The offered value.
    pub offered: String,
}

/// What publishing did with one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// New in the catalog.
    Published {
        /// The image's id.
        id: String,
    },
    /// Already there; the offered record added these fields (a new revision).
    Updated {
        /// The image's id.
        id: String,
        /// The fields the offered record added (dotted paths).
        added: Vec<String>,
    },
    /// Already there, and the offered record says nothing new.
    Unchanged {
        /// The image's id.
        id: String,
    },
    /// Already there with different content: nothing changed.
    Conflict(Conflict),
}

impl Outcome {
    /// The image it is about.
    pub fn id(&self) -> &str {
        match self {
            Outcome::Published { id } | Outcome::Updated { id, .. } | Outcome::Unchanged { id } => {
                id
            }
            Outcome::Conflict(c) => &c.id,
        }
    }

    /// Whether the index changed for it.
    pub fn wrote(&self) -> bool {
        matches!(self, Outcome::Published { .. } | Outcome::Updated { .. })
    }
}

impl Classify for Outcome {
    fn fault(&self) -> Option<Fault> {
        match self {
            Outcome::Conflict(_) => Some(Fault::Conflict),
            _ => None,
        }
    }
}

/// What a yank or unyank did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum YankOutcome {
    /// The image is now in the state asked for; this is its new state.
    Done(YankState),
    /// The image was already in that state: nothing written (another writer may have just
    /// put it there).
    AlreadySo,
    /// No image has that id.
    NoSuchImage,
}

impl Classify for YankOutcome {
    fn fault(&self) -> Option<Fault> {
        match self {
            YankOutcome::NoSuchImage => Some(Fault::NothingFound),
            _ => None,
        }
    }
}
