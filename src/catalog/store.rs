//! The one storage trait every catalog backend implements (a local directory, Azure Blob
//! Storage, memory for tests), with the two conditional writes the catalog's guarantees rest
//! on, and its typed errors.

use crate::fault::{Classify, Fault};
use crate::retry::Retryable;
use std::fmt;
use std::future::Future;
use std::time::Duration;

/// Any error, as the cause of a store error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An object's bytes and the version tag a conditional write must name to replace it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// The content.
    pub bytes: Vec<u8>,
    /// Its version tag, for a conditional write.
    pub etag: String,
}

/// How a write may proceed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutMode {
    /// Only if nothing is there yet (`If-None-Match: *`).
    Create,
    /// Only if the object is still at this version (`If-Match: ETAG`).
    IfMatch(String),
    /// Whatever is there: only for a convenience copy whose readers do not depend on it.
    Overwrite,
}

/// What a storage request was doing, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// A read.
    Read,
    /// A write.
    Write,
    /// A listing.
    List,
    /// A removal.
    Delete,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Read => "reading",
            Op::Write => "writing",
            Op::List => "listing",
            Op::Delete => "deleting",
        })
    }
}

/// Why a storage request failed, and so who must act. The cause is kept as the error's
/// source (its text is redacted wherever it is shown).
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// A conditional write lost: someone else wrote first (409 exists, 412 stale ETag).
    /// Not a failure: the catalog re-reads and decides.
    Precondition {
        /// The object.
        key: String,
    },
    /// Worth retrying: a timeout, a 5xx, throttling, a refused or reset connection.
    Unavailable {
        /// What the request was doing.
        op: Op,
        /// The object (or prefix).
        key: String,
        /// The cause.
        source: BoxError,
    },
    /// The storage refused the credentials or their rights (401, 403): the operator's settings.
    Denied {
        /// What the request was doing.
        op: Op,
        /// The object (or prefix).
        key: String,
        /// The cause.
        source: BoxError,
    },
    /// The local filesystem refused (permissions, a read-only or full filesystem, a file
    /// where a directory should be): the operator must fix the directory.
    Local {
        /// What the request was doing.
        op: Op,
        /// The path.
        key: String,
        /// What the operating system said.
        source: BoxError,
    },
    /// Not worth retrying: a request the service rejected.
    Failed {
        /// What the request was doing.
        op: Op,
        /// The object (or prefix).
        key: String,
        /// The cause.
        source: BoxError,
    },
    /// Something at the key that sigcat never writes there: a FIFO, device, symlink or
    /// directory, an empty object, or one larger than sigcat ever writes. Someone who can write
    /// the store put it there: the catalog's own data, not the storage or the filesystem.
    Planted {
        /// What the request was doing.
        op: Op,
        /// The object (or path).
        key: String,
        /// What is there.
        what: String,
    },
    /// Transient failures went on past the retry budget.
    GaveUp {
        /// How many tries were made.
        attempts: u32,
        /// How long they took.
        elapsed: Duration,
        /// The last try's error.
        last: Box<StoreError>,
    },
}

/// The `source` of a request that took too long.
#[derive(Debug, thiserror::Error)]
#[error("no answer within {0:?}")]
pub struct TimedOut(pub Duration);

impl StoreError {
    /// The storage service is down or slow (as opposed to refusing us or the request).
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Unavailable { .. } => true,
            StoreError::GaveUp { last, .. } => last.is_unavailable(),
            _ => false,
        }
    }

    /// Names the request in an error the retry loop made without knowing it (a timeout).
    pub fn about(self, what: Op, name: &str) -> Self {
        match self {
            StoreError::Unavailable { key, source, .. } if key.is_empty() => {
                StoreError::Unavailable {
                    op: what,
                    key: name.to_string(),
                    source,
                }
            }
            StoreError::GaveUp {
                attempts,
                elapsed,
                last,
            } => StoreError::GaveUp {
                attempts,
                elapsed,
                last: Box::new(last.about(what, name)),
            },
            other => other,
        }
    }

    /// An object larger than a reader takes.
    pub fn too_large(key: &str, max: usize) -> Self {
        StoreError::Planted {
            op: Op::Read,
            key: key.to_string(),
            what: format!("an object larger than {max} bytes"),
        }
    }

    /// The operator must fix credentials or permissions.
    pub fn is_denied(&self) -> bool {
        match self {
            StoreError::Denied { .. } => true,
            StoreError::GaveUp { last, .. } => last.is_denied(),
            _ => false,
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Precondition { key } => write!(f, "{key}: changed by someone else"),
            StoreError::Unavailable { op, key, .. } => {
                write!(f, "{op} {key}: the storage is unavailable")
            }
            StoreError::Denied { op, key, .. } => {
                write!(f, "{op} {key}: access denied")
            }
            StoreError::Local { op, key, .. } => write!(f, "{op} {key}"),
            StoreError::Failed { op, key, .. } => write!(f, "{op} {key} failed"),
            StoreError::Planted { op, key, what } => write!(
                f,
                "{op} {key}: {what} is there, which sigcat never writes (someone put it there)"
            ),
            StoreError::GaveUp {
                attempts,
                elapsed,
                last,
            } => write!(
                f,
                "gave up after {attempts} attempts in {:.1} s: {last}",
                elapsed.as_secs_f64()
            ),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Precondition { .. } | StoreError::Planted { .. } => None,
            StoreError::Unavailable { source, .. }
            | StoreError::Denied { source, .. }
            | StoreError::Local { source, .. }
            | StoreError::Failed { source, .. } => Some(source.as_ref()),
            StoreError::GaveUp { last, .. } => last.source(),
        }
    }
}

impl Classify for StoreError {
    fn fault(&self) -> Option<Fault> {
        Some(match self {
            StoreError::Denied { .. } => Fault::Settings,
            StoreError::Local { .. } => Fault::LocalFile,
            StoreError::Planted { .. } => Fault::CatalogData,
            StoreError::GaveUp { last, .. } => return last.fault(),
            StoreError::Precondition { .. }
            | StoreError::Unavailable { .. }
            | StoreError::Failed { .. } => Fault::Storage,
        })
    }
}

impl Retryable for StoreError {
    fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
    fn timed_out(after: Duration) -> Self {
        // The key is filled in by the catalog, which knows it; a bare timeout names none.
        StoreError::Unavailable {
            op: Op::Read,
            key: String::new(),
            source: Box::new(TimedOut(after)),
        }
    }
    fn gave_up(self, attempts: u32, elapsed: Duration) -> Self {
        StoreError::GaveUp {
            attempts,
            elapsed,
            last: Box::new(self),
        }
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page {
    /// Keys in ascending byte order.
    pub keys: Vec<String>,
    /// Where the next page starts (pass it back to [`Store::list_page`]); `None` after the last.
    pub next: Option<String>,
}

/// A flat key → bytes store. Keys use `/` as separator and never start with one.
/// Implementations must make `put` atomic: readers see the old object or the whole new one.
/// They do not retry or time out: the catalog does both, with one policy for every backend
/// (a listing is retried page by page, resuming from the page that failed).
pub trait Store: Send + Sync {
    /// The object, or `None` when there is none.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Versioned>, StoreError>> + Send;
    /// Writes `bytes` under `key` if `mode` allows; returns the new ETag.
    fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        mode: PutMode,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;
    /// One page of the keys under `prefix`, in ascending order: the first page (`after` is
    /// `None`), or the one a previous page's `next` names. At most `max` keys (fewer is fine).
    fn list_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        max: usize,
    ) -> impl Future<Output = Result<Page, StoreError>> + Send;
    /// The object, or `None`; one larger than `max` bytes is refused (`Planted`), where the
    /// backend can without reading it all: for objects that anyone who can write the store
    /// could plant where a writer reads them (pending changes).
    fn get_at_most(
        &self,
        key: &str,
        max: usize,
    ) -> impl Future<Output = Result<Option<Versioned>, StoreError>> + Send {
        async move {
            match self.get(key).await? {
                Some(v) if v.bytes.len() > max => Err(StoreError::too_large(key, max)),
                v => Ok(v),
            }
        }
    }
    /// Removes the object at `key`; none there is fine. Only for objects nobody writes again
    /// under the same key (a pending change's key is random): on the local store a removal
    /// racing a write of the same key may leave either, and the key's lock file goes too.
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Whether the store's root (the directory, the container) exists at all: a catalog that
    /// was never written and a mistyped location look alike otherwise.
    fn exists(&self) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Where the store is, for messages: never a credential.
    fn describe(&self) -> String;

    /// What identifies the store across runs (the state of what was seen is kept per
    /// catalog): by default what [`Store::describe`] says.
    fn identity(&self) -> String {
        self.describe()
    }

    /// What its root is called in messages (`directory`, `container`).
    fn root_noun(&self) -> &'static str {
        "location"
    }

    /// Every key under `prefix`, in ascending order (every page, without retries: for small
    /// prefixes and tests; the catalog lists page by page).
    fn list(&self, prefix: &str) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send {
        async move {
            let mut keys = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let page = self.list_page(prefix, after.as_deref(), 1000).await?;
                keys.extend(page.keys);
                match page.next {
                    Some(next) => after = Some(next),
                    None => return Ok(keys),
                }
            }
        }
    }
}
