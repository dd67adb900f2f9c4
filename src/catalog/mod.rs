//! Records and manifests → a catalog in blob storage, and the queries that find "the image for
//! Kubernetes 1.30 on Ubuntu 24.04" later.
//!
//! Layout 5 ([`index::LAYOUT_VERSION`]; the objects in [`objects`]): immutable image objects
//! named by their content (records, templates, revisions, events, each revision and event
//! signed on its own), content-named shards of the index, one per Kubernetes version and OS,
//! content-named sections, one per Kubernetes minor and OS, naming their shards and their
//! `latest/` pointer (for consumers with only curl), and a small signed root (`index.json`)
//! that names every section by its sha256 and carries a `sequence` and an `expires` time. The
//! index is derived data: [`rebuild`] derives it from the image objects, [`verify`] checks it
//! against them.
//!
//! The plumbing ([`access`]: every storage request under one retry policy, objects checked
//! against their hashes and signatures) is separate from the protocols built on it:
//! [`publish`] and [`events`] write (objects first, create-only; then the changed shards and
//! sections; then the root with compare-and-swap, signed; then the pointers), [`query`] reads, [`snapshot`]
//! decides whether the root may be trusted (signature, sequence, expiry, what was seen before:
//! [`state`]).
//!
//! Errors say whose fault they are: an item the catalog will not hold is refused when it is
//! prepared ([`entry::prepare`]), an item that contradicts the catalog is a per-item
//! [`Outcome::Conflict`], and only the storage, the settings, the catalog's data or its trust
//! ([`CatalogError`]) fail a call.

#[cfg(feature = "azure")]
pub mod azure;
pub mod conformance;
pub mod entry;
pub mod index;
pub mod lifecycle;
pub mod local;
pub mod memory;
pub mod objects;
pub mod pending;
pub mod pointer;
pub mod prune;
pub mod rebuild;
pub mod revision;
pub mod settings;
pub mod signing;
pub mod state;
pub mod store;
pub mod verify;

mod access;
mod any;
mod error;
mod events;
mod keyfile;
mod publish;
mod query;
mod recent;
mod snapshot;
mod view;

use crate::retry::{Backoff, RetryConfig, Stop};
use std::time::Duration;
use store::{Op, Store, StoreError};

pub use any::{AnyStore, default_location, open_store};
pub use error::{CatalogError, Conflict, Distrust, Outcome, YankOutcome};
pub use objects::INDEX_KEY;
pub use pointer::{Latest, Summary};
pub use query::Found;
pub use settings::{Location, SettingsError};

/// How long a written root stays valid by default: two weeks, as Bottlerocket's snapshot and
/// targets metadata. With a weekly `catalog refresh` (the scheduled jobs in `pipelines/`), one
/// missed run still leaves a week.
pub const DEFAULT_VALIDITY: Duration = Duration::from_secs(14 * 24 * 3600);

/// Readers warn when the root expires within this.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(3 * 24 * 3600);

/// A catalog: a store, how patiently it is retried, the key that signs what is written, the
/// keys that are trusted, and what was seen of it before.
pub struct Catalog<S> {
    store: S,
    retry: RetryConfig,
    /// How long a writer keeps trying when other writers keep winning the root.
    contention_timeout: Duration,
    signer: Option<signing::Signer>,
    trust: Option<signing::Trust>,
    state: Option<state::StateDir>,
    min_sequence: u64,
    /// The catalog id a reader expects (a stateless reader's pin against another catalog).
    catalog_id: Option<String>,
    validity: Duration,
    /// Ends retries early (a service shutting down).
    stop: Option<Stop>,
    /// Objects read at once (verify, rebuild-index).
    concurrency: usize,
    /// Immutable objects read and written a moment ago (a writer's next round).
    recent: recent::Recent,
    /// Pending changes this process already said it skipped (said once, not every round).
    pending_said: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Whether publishers that lose the root commit together (see `pending`).
    group_commit: bool,
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
            state: None,
            min_sequence: 0,
            catalog_id: None,
            validity: DEFAULT_VALIDITY,
            stop: None,
            concurrency: 16,
            recent: recent::Recent::default(),
            pending_said: Default::default(),
            group_commit: false,
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

    /// Everything this catalog writes is signed with this key (and its own signatures are
    /// trusted when it reads).
    pub fn with_signer(mut self, signer: signing::Signer) -> Self {
        self.signer = Some(signer);
        self
    }

    /// Everything this catalog reads must be signed by one of these keys, and be fresh.
    pub fn with_trust(mut self, trust: signing::Trust) -> Self {
        self.trust = Some(trust);
        self
    }

    /// Where the highest sequence seen of each catalog is remembered (needed to refuse a
    /// rollback; used whenever signatures are checked).
    pub fn with_state(mut self, state: state::StateDir) -> Self {
        self.state = Some(state);
        self
    }

    /// Refuse a root below this sequence (a stateless reader's pin).
    pub fn with_min_sequence(mut self, min: u64) -> Self {
        self.min_sequence = min;
        self
    }

    /// Refuse a root of another catalog than `id` (what `catalog verify` prints): a stateless
    /// reader's pin against a root copied from another catalog signed by the same key.
    pub fn with_catalog_id(mut self, id: impl Into<String>) -> Self {
        self.catalog_id = Some(id.into());
        self
    }

    /// How long a root written by this catalog stays valid.
    pub fn with_validity(mut self, validity: Duration) -> Self {
        self.validity = validity;
        self
    }

    /// How many objects verify and rebuild-index read at once.
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// Whether a publisher that loses the root leaves its change pending for others to commit
    /// with theirs (group commit, see `pending`), or merges again and retries after a backoff
    /// (the default). Experimental: tested, and measured faster than the default with 16
    /// publishers, but not attacked since its last change (see the README's "Catalog scale").
    pub fn with_group_commit(mut self, group_commit: bool) -> Self {
        self.group_commit = group_commit;
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

    /// The keys it trusts, if any (the trust file's).
    pub fn trust(&self) -> Option<&signing::Trust> {
        self.trust.as_ref()
    }

    /// Whether signatures are checked: with a trust file, or a signing key (a writer trusts
    /// its own signatures).
    pub fn checks_signatures(&self) -> bool {
        self.trust.is_some() || self.signer.is_some()
    }

    /// The keys whose signatures count: the trust file's and the signing key's own.
    pub(crate) fn trusted_keys(&self) -> Option<signing::Trust> {
        let own = self
            .signer
            .as_ref()
            .map(|s| s.allowed_signer("this sigcat's signing key"));
        match (self.trust.clone(), own) {
            (Some(t), Some(o)) => Some(t.and(o)),
            (t, o) => t.or(o),
        }
    }

    /// Runs every one of `work` (writes, mostly), at most `concurrency` at a time and in any
    /// order; then says the first error, if any. Each runs to its end whatever the others do:
    /// a pointer that could be written after its root still is.
    pub(crate) async fn all_bounded<T>(
        &self,
        work: impl IntoIterator<Item = impl std::future::Future<Output = Result<T, CatalogError>>>,
    ) -> Result<Vec<T>, CatalogError> {
        use futures::StreamExt;
        let done: Vec<_> = futures::stream::iter(work)
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        done.into_iter().collect()
    }

    /// How long, and how patiently, a writer keeps trying when other writers keep winning
    /// the root.
    pub(crate) fn contention(&self) -> Contention {
        self.contention_on(INDEX_KEY)
    }

    /// The same patience with other writers winning the compare-and-swap of `key`.
    pub(crate) fn contention_on(&self, key: &str) -> Contention {
        Contention {
            backoff: Backoff::new(CONTENTION_BACKOFF),
            deadline: tokio::time::Instant::now() + self.contention_timeout,
            timeout: self.contention_timeout,
            key: key.to_string(),
        }
    }
}

/// The waits between rounds of a writer that lost the root to another: short, because the
/// root is small and another round takes tens of milliseconds; a storage outage's backoff
/// (up to 15 s) here would leave the root idle while writers sleep. Not shorter: measured with
/// 16 writers on Azurite, a 200 ms cap took twice as long in all as this 1 s one (the rounds
/// that lose anyway load the storage the winner waits on).
const CONTENTION_BACKOFF: crate::retry::BackoffConfig = crate::retry::BackoffConfig {
    init: Duration::from_millis(20),
    max: Duration::from_secs(1),
    base: 2.0,
};

/// A writer's patience with other writers winning the root: a jittered backoff between
/// rounds, and a deadline.
pub(crate) struct Contention {
    backoff: Backoff,
    deadline: tokio::time::Instant,
    timeout: Duration,
    /// What the writers contend on (named when this one gives up).
    key: String,
}

impl Contention {
    /// Another writer won this round: wait, or give up past the deadline.
    pub(crate) async fn lost<S: Store>(
        &mut self,
        catalog: &Catalog<S>,
    ) -> Result<(), CatalogError> {
        let delay = self.backoff.next_delay();
        self.wait(catalog, delay).await
    }

    /// A writer that left its change pending gives the others a moment: the first whose
    /// moment ends commits every pending change, and the rest find theirs committed, rather
    /// than all of them doing the same work and all but one losing it.
    pub(crate) async fn let_others_commit<S: Store>(
        &mut self,
        catalog: &Catalog<S>,
    ) -> Result<(), CatalogError> {
        self.wait(catalog, Duration::from_millis(fastrand::u64(20..=150)))
            .await
    }

    /// Waits `delay`, or gives up past the deadline (or once the service is stopping).
    async fn wait<S: Store>(
        &mut self,
        catalog: &Catalog<S>,
        delay: Duration,
    ) -> Result<(), CatalogError> {
        let stopped = catalog.stop.as_ref().is_some_and(Stop::is_stopped);
        if stopped || tokio::time::Instant::now() + delay > self.deadline {
            return Err(catalog.storage(StoreError::Unavailable {
                op: Op::Write,
                key: self.key.clone(),
                source: format!("other writers kept changing it for {:?}", self.timeout).into(),
            }));
        }
        tokio::time::sleep(delay).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
