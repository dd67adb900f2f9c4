//! What the catalog's operations end with: the errors that stop a whole call (the storage,
//! the catalog's own data, its signature) and the per-item outcomes that do not.

use super::entry::Item;
use super::index::YankState;
use super::store::StoreError;
use super::{INDEX_KEY, signing};
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
    /// The index is not signed by a trusted key: nothing in it is used.
    #[error("catalog {catalog}: {INDEX_KEY} is not trusted: {problem}")]
    Untrusted {
        /// Where the catalog is.
        catalog: String,
        /// Why it is not trusted.
        problem: signing::Untrusted,
    },
}

impl Classify for CatalogError {
    fn fault(&self) -> Option<Fault> {
        match self {
            CatalogError::Storage { source, .. } => source.fault(),
            CatalogError::Corrupt { .. } => Some(Fault::CatalogData),
            CatalogError::Untrusted { .. } => Some(Fault::Untrusted),
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
    /// The image was already in that state: nothing written.
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
