//! Reading the root and deciding whether it may be used: its signature (by a key of the trust
//! file, or the writer's own), its freshness (a sequence no lower than any seen before, or than
//! a pinned minimum; not expired), and what a missing root means (an empty catalog, a mistyped
//! location, or a deletion). Writers are held to the same rules, and to two of their own: a
//! writer that trusts signed catalogs must be able to sign, and a writer without a key must
//! not strip a signed catalog's signature.

use super::index::{KNOWN_LAYOUTS, LAYOUT_VERSION, LegacyIndex, Root};
use super::objects::{IMAGES_PREFIX, INDEX_KEY, sha256};
use super::state::Seen;
use super::store::{PutMode, Store};
use super::view::View;
use super::{Catalog, CatalogError, Distrust, EXPIRY_WARNING};
use crate::catalog::entry::now_rfc3339;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// What a caller will do with the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Intent {
    /// Read it (list, latest, show).
    Read,
    /// Write on top of it (publish, yank).
    Write,
    /// Re-sign it; an expired root is accepted only when asked for.
    Refresh {
        /// Re-sign an expired root.
        accept_expired: bool,
    },
    /// Look at it whatever it is (verify reports, rebuild replaces).
    Inspect,
}

/// The root as read.
pub(crate) enum Read {
    /// Nothing: no root and no image objects.
    Empty,
    /// A layout 5 root.
    Root(Box<Root>),
    /// A layout 1 to 3 index.
    Legacy(Box<LegacyIndex>),
    /// A root that cannot be read (only for [`Intent::Inspect`]: what rebuild-index replaces
    /// and verify reports).
    Unreadable(String),
}

/// The root as read, with what a conditional write and the state need.
pub(crate) struct Snapshot {
    /// What is there.
    pub(crate) read: Read,
    /// How to replace it (create-only when there is none).
    pub(crate) mode: PutMode,
    /// The sha256 of its bytes.
    pub(crate) sha256: Option<String>,
    /// Who signed it (the principals), when signatures are checked.
    pub(crate) signed_by: Option<String>,
}

fn parse_time(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

impl<S: Store> Catalog<S> {
    /// Writers that cannot honour the catalog's trust are stopped before they write.
    pub(crate) fn check_writer(&self) -> Result<(), CatalogError> {
        if self.trust.is_some() && self.signer.is_none() {
            return Err(CatalogError::Settings {
                catalog: self.describe(),
                problem: "this command trusts only signed catalogs (--trusted-keys) but has no signing key: what it wrote would be refused by every reader that trusts the catalog; give --signing-key (or SIGCAT_SIGNING_KEY)".into(),
            });
        }
        // The same for a key the trust file does not list: its readers would refuse all of it.
        if let (Some(signer), Some(trust)) = (&self.signer, &self.trust) {
            let probe = b"sigcat: is the signing key in the trust file?";
            if trust
                .verify(probe, Some(signer.sign(probe).as_bytes()))
                .is_err()
            {
                return Err(CatalogError::Settings {
                    catalog: self.describe(),
                    problem: format!(
                        "the signing key ({}) is not in --trusted-keys: every reader that trusts that file would refuse what this writes; add its public key to the file (a key rotation lists both keys)",
                        signer.fingerprint()
                    ),
                });
            }
        }
        Ok(())
    }

    /// The catalog's identity (what the state file is kept for): its location, absolute.
    pub fn identity(&self) -> String {
        self.store.identity()
    }

    /// Reads the root and checks it for `intent`.
    pub(crate) async fn snapshot(&self, intent: Intent) -> Result<Snapshot, CatalogError> {
        self.snapshot_of(intent, false).await
    }

    /// Like [`Catalog::snapshot`]; `was_empty`: the catalog was read empty before this writer
    /// wrote its own objects, so objects found now without a root are those.
    pub(crate) async fn snapshot_of(
        &self,
        intent: Intent,
        was_empty: bool,
    ) -> Result<Snapshot, CatalogError> {
        // Processes that share a state directory (writers on one host) remember each
        // other's roots: one may remember a root newer than the one another just read, which
        // looks like a rollback for a moment. A real rollback is still there when read again.
        for wait_ms in [50, 200] {
            match self.snapshot_once(intent, was_empty).await {
                Err(CatalogError::Untrusted {
                    problem: Distrust::Rollback { .. },
                    ..
                }) => tokio::time::sleep(std::time::Duration::from_millis(wait_ms)).await,
                other => return other,
            }
        }
        self.snapshot_once(intent, was_empty).await
    }

    async fn snapshot_once(
        &self,
        intent: Intent,
        was_empty: bool,
    ) -> Result<Snapshot, CatalogError> {
        if matches!(intent, Intent::Write | Intent::Refresh { .. }) {
            self.check_writer()?;
        }
        // No root but image objects: a catalog whose first publish is under way (its root
        // comes in a moment), or one that lost its root. Wait a little for the former.
        let grace = if matches!(intent, Intent::Read) {
            std::time::Duration::from_secs(5)
        } else {
            self.contention_timeout
                .min(std::time::Duration::from_secs(30))
        };
        let mut backoff = crate::retry::Backoff::new(self.retry.backoff);
        let started = tokio::time::Instant::now();
        let raw = loop {
            match self.get(INDEX_KEY).await? {
                Some(raw) => break raw,
                None => match self.no_root(intent, was_empty).await {
                    // Another writer created the root meanwhile (a new catalog): read it.
                    Err(CatalogError::Corrupt { .. })
                        if started.elapsed() < grace && self.get(INDEX_KEY).await?.is_some() => {}
                    Err(e @ CatalogError::Corrupt { .. })
                        if started.elapsed() < grace && !self.committed_before().await? =>
                    {
                        let delay = backoff.next_delay();
                        tracing::debug!(
                            "no index yet, but image objects: waiting {delay:?} for a first publish to finish ({e})"
                        );
                        tokio::time::sleep(delay).await;
                    }
                    other => return other,
                },
            }
        };
        let sha = sha256(&raw.bytes);
        let unreadable = |problem: String| -> Result<Snapshot, CatalogError> {
            if intent == Intent::Inspect {
                return Ok(Snapshot {
                    read: Read::Unreadable(problem),
                    mode: PutMode::IfMatch(raw.etag.clone()),
                    sha256: Some(sha.clone()),
                    signed_by: None,
                });
            }
            Err(self.corrupt(INDEX_KEY, problem))
        };
        // The signature first: altered bytes are untrusted whatever they parse as.
        let signed_by = match self.trusted_keys() {
            Some(trust) if intent != Intent::Inspect => {
                let sig = self.root_signature(&raw.bytes).await?;
                Some(
                    trust
                        .verify(&raw.bytes, sig.as_deref())
                        .map_err(|problem| self.untrusted(INDEX_KEY, problem))?,
                )
            }
            _ => {
                if matches!(intent, Intent::Write | Intent::Refresh { .. })
                    && self.root_signature(&raw.bytes).await?.is_some()
                {
                    return Err(CatalogError::Settings {
                        catalog: self.describe(),
                        problem: "the catalog is signed, and this command has no signing key: what it wrote would strip the signature; give --signing-key and --trusted-keys".into(),
                    });
                }
                None
            }
        };
        let layout = serde_json::from_slice::<serde_json::Value>(&raw.bytes)
            .ok()
            .and_then(|v| v.get("layout").and_then(serde_json::Value::as_u64));
        let Some(layout) = layout else {
            return unreadable(
                "not sigcat's index (no `layout`); `sigcat catalog rebuild-index` rebuilds it from the objects".into(),
            );
        };
        let layout = u32::try_from(layout).unwrap_or(u32::MAX);
        if layout == super::index::DEVELOPMENT_LAYOUT {
            return unreadable(
                "layout 4 was written by a development build of sigcat (never released); `sigcat catalog rebuild-index` rebuilds it as layout 5 from its objects".into(),
            );
        }
        if !KNOWN_LAYOUTS.contains(&layout) {
            return Err(self.corrupt(
                INDEX_KEY,
                format!(
                    "layout {layout} was written by a newer sigcat (this one reads layouts {KNOWN_LAYOUTS:?}); upgrade sigcat"
                ),
            ));
        }
        let mode = PutMode::IfMatch(raw.etag.clone());
        let read = if layout == LAYOUT_VERSION {
            let root: Root = match serde_json::from_slice(&raw.bytes) {
                Ok(root) => root,
                Err(e) => {
                    return unreadable(format!(
                        "line {}: {e}; expected sigcat's index (layout 5)",
                        e.line()
                    ));
                }
            };
            if let Err(CatalogError::Corrupt { problem, .. }) = self.check_root(&root) {
                return unreadable(problem);
            }
            if signed_by.is_some() {
                self.check_fresh(&root, &sha, intent)?;
            }
            Read::Root(Box::new(root))
        } else {
            let index: LegacyIndex = match serde_json::from_slice(&raw.bytes) {
                Ok(index) => index,
                Err(e) => {
                    return unreadable(format!("line {}: {e}; expected sigcat's index", e.line()));
                }
            };
            if signed_by.is_some() && intent == Intent::Read {
                return Err(self.untrusted(INDEX_KEY, Distrust::OldLayout { layout }));
            }
            Read::Legacy(Box::new(index))
        };
        Ok(Snapshot {
            read,
            mode,
            sha256: Some(sha),
            signed_by,
        })
    }

    /// No root: an empty catalog, a location with nothing there, or a root that was deleted.
    async fn no_root(&self, intent: Intent, was_empty: bool) -> Result<Snapshot, CatalogError> {
        let empty = Snapshot {
            read: Read::Empty,
            mode: PutMode::Create,
            sha256: None,
            signed_by: None,
        };
        if intent == Intent::Inspect {
            return Ok(empty);
        }
        // Gone after it was seen (the index, or the whole container or directory): refused,
        // never "no catalog here" or an empty one.
        if self.checks_signatures() {
            let seen = self.seen()?.map(|s| s.sequence).unwrap_or(0);
            let floor = seen.max(self.min_sequence);
            if floor > 0 {
                return Err(self.untrusted(INDEX_KEY, Distrust::Gone { seen: floor }));
            }
        }
        if intent == Intent::Read && !self.store_exists().await? {
            return Err(CatalogError::Missing {
                catalog: self.describe(),
                what: self.store.root_noun(),
            });
        }
        if !was_empty && self.any_under(IMAGES_PREFIX).await? {
            return Err(self.corrupt(
                INDEX_KEY,
                "missing, but the catalog holds image objects (deleted or lost); `sigcat catalog rebuild-index` rebuilds it from them",
            ));
        }
        Ok(empty)
    }

    /// Whether a root was committed here before: the objects written only after a commit
    /// (the `latest/` pointers, the root signature's copy) are there. Then a missing root is
    /// a lost one at once, with no wait for a first publish to finish.
    async fn committed_before(&self) -> Result<bool, CatalogError> {
        Ok(self.any_under("latest/").await?
            || self
                .get(super::objects::INDEX_SIGNATURE_KEY)
                .await?
                .is_some())
    }

    /// The root's own consistency: every shard and pointer named where sigcat puts them.
    fn check_root(&self, root: &Root) -> Result<(), CatalogError> {
        if !root.images.is_empty() {
            return Err(self.corrupt(INDEX_KEY, "a layout 5 root lists no images itself"));
        }
        for (name, section) in &root.sections {
            let expected = format!("sections/{name}-");
            if !section.key.starts_with(&expected)
                || !section.key.ends_with(".json")
                || name.contains("..")
                || !valid_hash(&section.sha256)
            {
                return Err(self.corrupt(
                    INDEX_KEY,
                    format!(
                        "section `{name}` is named `{}`, not where sigcat puts sections",
                        section.key
                    ),
                ));
            }
        }
        if root.sequence > super::index::MAX_SEQUENCE {
            return Err(self.corrupt(
                INDEX_KEY,
                format!("its sequence {} is beyond any sigcat writes", root.sequence),
            ));
        }
        if root
            .catalog_id
            .as_ref()
            .is_some_and(|id| id.len() != 32 || !valid_hash(&format!("{id}{id}")))
        {
            return Err(self.corrupt(INDEX_KEY, "its `catalog_id` is not 32 hex digits"));
        }
        if parse_time(&root.expires).is_none() {
            return Err(self.corrupt(INDEX_KEY, "`expires` is not an RFC 3339 time"));
        }
        Ok(())
    }

    /// Freshness: not expired (for readers and writers), not older than seen or pinned.
    fn check_fresh(&self, root: &Root, sha: &str, intent: Intent) -> Result<(), CatalogError> {
        let now = OffsetDateTime::now_utc();
        if let Some(expires) = parse_time(&root.expires) {
            let accept = matches!(
                intent,
                Intent::Refresh {
                    accept_expired: true
                }
            );
            if now > expires && !accept {
                return Err(self.untrusted(
                    INDEX_KEY,
                    Distrust::Expired {
                        at: root.expires.clone(),
                    },
                ));
            }
            if now > expires {
                tracing::warn!(
                    "{}: its index expired at {}; re-signing it anyway, as --accept-expired asks (a reader with no state could have been fed an old one: `sigcat catalog verify` it)",
                    self.describe(),
                    root.expires
                );
            }
            if now <= expires
                && expires - now < EXPIRY_WARNING
                && !matches!(intent, Intent::Refresh { .. })
            {
                tracing::warn!(
                    "the catalog {} expires at {}: re-sign it with `sigcat catalog refresh` (a scheduled job in pipelines/ does it weekly), or readers will refuse it",
                    self.describe(),
                    root.expires
                );
            }
        }
        let expected = match (&self.catalog_id, self.seen()?) {
            (Some(pinned), _) => Some(pinned.clone()),
            (None, Some(seen)) => seen.catalog_id,
            (None, None) => None,
        };
        if let Some(expected) = expected
            && root.catalog_id.as_deref() != Some(expected.as_str())
        {
            return Err(self.untrusted(
                INDEX_KEY,
                Distrust::OtherCatalog {
                    expected,
                    got: root.catalog_id.clone().unwrap_or_else(|| "none".into()),
                },
            ));
        }
        if root.sequence < self.min_sequence {
            return Err(self.untrusted(
                INDEX_KEY,
                Distrust::BelowMinimum {
                    min: self.min_sequence,
                    got: root.sequence,
                },
            ));
        }
        if let Some(seen) = self.seen()? {
            if root.sequence < seen.sequence {
                return Err(self.untrusted(
                    INDEX_KEY,
                    Distrust::Rollback {
                        seen: seen.sequence,
                        got: root.sequence,
                    },
                ));
            }
            if root.sequence == seen.sequence && seen.sha256 != sha {
                return Err(self.untrusted(
                    INDEX_KEY,
                    Distrust::Fork {
                        sequence: root.sequence,
                    },
                ));
            }
        }
        Ok(())
    }

    /// What was seen of this catalog before.
    /// The copy of the root the state remembers, if it kept one.
    pub(crate) fn seen_root(&self, seen: &Seen) -> Result<Option<Vec<u8>>, CatalogError> {
        match &self.state {
            Some(state) => state.root(seen).map_err(|e| CatalogError::State {
                path: e.path.display().to_string(),
                problem: e.problem,
            }),
            None => Ok(None),
        }
    }

    pub(crate) fn seen(&self) -> Result<Option<Seen>, CatalogError> {
        match &self.state {
            Some(state) => state
                .seen(&self.identity())
                .map_err(|e| CatalogError::State {
                    path: e.path.display().to_string(),
                    problem: e.problem,
                }),
            None => Ok(None),
        }
    }

    /// Remembers a root that was read and trusted, or written.
    pub(crate) fn remember(
        &self,
        sequence: u64,
        sha: &str,
        catalog_id: Option<&str>,
        root: Option<&[u8]>,
    ) -> Result<(), CatalogError> {
        let Some(state) = &self.state else {
            return Ok(());
        };
        if !self.checks_signatures() {
            return Ok(());
        }
        state
            .record(
                &Seen {
                    catalog: self.identity(),
                    sequence,
                    sha256: sha.to_string(),
                    catalog_id: catalog_id.map(str::to_string),
                    at: now_rfc3339(),
                },
                root,
            )
            .map_err(|e| CatalogError::State {
                path: e.path.display().to_string(),
                problem: e.problem,
            })
    }

    /// The catalog as a reader sees it: checked, remembered, as a view.
    pub(crate) async fn read_view(&self) -> Result<View, CatalogError> {
        let snap = self.snapshot(Intent::Read).await?;
        if let (Read::Root(root), Some(sha)) = (&snap.read, &snap.sha256)
            && snap.signed_by.is_some()
        {
            self.remember(root.sequence, sha, root.catalog_id.as_deref(), None)?;
        }
        View::of(self, snap).await
    }
}

pub(crate) fn valid_hash(h: &str) -> bool {
    h.len() == 64
        && h.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}
