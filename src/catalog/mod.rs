//! Records and manifests → a catalog in blob storage, and the queries that find "the image for
//! Kubernetes 1.30 on Ubuntu 24.04" later.
//!
//! Layout ([`index::LAYOUT_VERSION`], the objects in [`objects`]): immutable objects named by
//! their content, and `index.json`, derived from them ([`rebuild`]), pointing at each image's
//! newest record revision, template, revision object and yank state, with their sha256.
//!
//! Objects are written first (create-only), the index last, with optimistic concurrency
//! (ETag `If-Match`, or create-only for the first index), tried again after a backoff when
//! another publisher won. So the index never names an object that is not fully there, and
//! concurrent publishers lose no entry. Every storage request runs under one [`RetryConfig`].
//! With a signing key, each index is signed before it is written ([`signing`]); with trusted
//! keys, every index read is checked first.
//!
//! Errors say whose fault they are: an item the catalog will not hold is refused when it is
//! prepared ([`entry::prepare`]), an item that contradicts the catalog is a per-item
//! [`Outcome::Conflict`], and only the storage ([`CatalogError::Storage`]), the catalog's own
//! data ([`CatalogError::Corrupt`]) or its signature ([`CatalogError::Untrusted`]) fail a call.

#[cfg(feature = "azure")]
pub mod azure;
pub mod conformance;
pub mod entry;
pub mod index;
pub mod local;
pub mod memory;
pub mod objects;
pub mod rebuild;
pub mod revision;
pub mod settings;
pub mod signing;
pub mod store;

mod access;
mod any;
mod error;
mod publish;
mod query;
mod yank;

use crate::retry::{Backoff, RetryConfig, Stop};
use index::Index;
use std::time::Duration;
use store::{Op, PutMode, Store, StoreError};

pub use any::{AnyStore, default_location, open_store};
pub use error::{CatalogError, Conflict, Outcome, YankOutcome};
pub use objects::INDEX_KEY;
pub use settings::{Location, SettingsError};

/// A catalog: a store, how patiently it is retried, and the keys that sign and are trusted.
pub struct Catalog<S> {
    store: S,
    retry: RetryConfig,
    /// How long a writer keeps trying when other writers keep winning the index.
    contention_timeout: Duration,
    signer: Option<signing::Signer>,
    trust: Option<signing::Trust>,
    /// Ends retries early (a service shutting down).
    stop: Option<Stop>,
}

/// The index as read: parsed, with the version a conditional write must name.
pub(crate) struct Current {
    pub index: Index,
    pub mode: PutMode,
}

impl<S: Store> Catalog<S> {
    /// A catalog in `store`, with the default retry policy, unsigned and trusting everything.
    pub fn new(store: S) -> Self {
        Catalog {
            store,
            retry: RetryConfig::default(),
            contention_timeout: Duration::from_secs(120),
            signer: None,
            trust: None,
            stop: None,
        }
    }

    /// How storage requests are retried.
    pub fn with_retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// Once `stop` fires, failing storage requests are not tried again (see
    /// [`RetryConfig::run_until`]): a service that is shutting down does not wait out an outage.
    pub fn with_stop(mut self, stop: Stop) -> Self {
        self.stop = Some(stop);
        self
    }

    /// Every index this catalog writes is signed with this key.
    pub fn with_signer(mut self, signer: signing::Signer) -> Self {
        self.signer = Some(signer);
        self
    }

    /// Every index this catalog reads must be signed by one of these keys.
    pub fn with_trust(mut self, trust: signing::Trust) -> Self {
        self.trust = Some(trust);
        self
    }

    /// Where the catalog is, for messages (never a credential).
    pub fn describe(&self) -> String {
        self.store.describe()
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The keys it trusts, if any.
    pub fn trust(&self) -> Option<&signing::Trust> {
        self.trust.as_ref()
    }

    /// How long, and how patiently, a writer keeps trying when other writers keep winning.
    pub(crate) fn contention(&self) -> Contention {
        Contention {
            backoff: Backoff::new(self.retry.backoff),
            deadline: tokio::time::Instant::now() + self.contention_timeout,
            timeout: self.contention_timeout,
        }
    }
}

/// A writer's patience with other writers winning the index: a jittered backoff between
/// rounds, and a deadline.
pub(crate) struct Contention {
    backoff: Backoff,
    deadline: tokio::time::Instant,
    timeout: Duration,
}

impl Contention {
    /// Another writer won this round: wait, or give up past the deadline.
    pub(crate) async fn lost<S: Store>(
        &mut self,
        catalog: &Catalog<S>,
    ) -> Result<(), CatalogError> {
        let delay = self.backoff.next_delay();
        let stopped = catalog.stop.as_ref().is_some_and(Stop::is_stopped);
        if stopped || tokio::time::Instant::now() + delay > self.deadline {
            return Err(catalog.storage(StoreError::Unavailable {
                op: Op::Write,
                key: INDEX_KEY.into(),
                source: format!("other writers kept changing it for {:?}", self.timeout).into(),
            }));
        }
        tokio::time::sleep(delay).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
