//! The one storage trait every catalog backend implements (a local directory, Azure Blob
//! Storage), with the two conditional writes the catalog's guarantees rest on.

use std::future::Future;
use std::time::Duration;

/// An object's bytes and the version tag a conditional write must name to replace it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub bytes: Vec<u8>,
    pub etag: String,
}

/// How a write may proceed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutMode {
    /// Only if nothing is there yet (`If-None-Match: *`).
    Create,
    /// Only if the object is still at this version (`If-Match: ETAG`).
    IfMatch(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A conditional write lost: someone else wrote first (409 exists, 412 stale ETag).
    #[error("{0}: changed by someone else")]
    Conflict(String),
    /// Worth retrying: timeouts, 5xx, throttling, connection refused.
    #[error("{0}")]
    Transient(String),
    /// Not worth retrying: authorization, a bad container name, a full disk.
    #[error("{0}")]
    Permanent(String),
}

/// A flat key → bytes store. Keys use `/` as separator and never start with one.
/// Implementations must make `put` atomic: readers see the old object or the whole new one.
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
    /// Keys under `prefix`, in any order.
    fn list(&self, prefix: &str) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
    /// Where the store is, for messages: never a credential.
    fn describe(&self) -> String;
}

/// How long transient failures are retried before giving up.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 6 attempts, 200 ms doubling to 3 s: about 8 s in all before an error.
    fn default() -> Self {
        RetryPolicy {
            attempts: 6,
            first_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(3),
        }
    }
}

impl RetryPolicy {
    /// Runs `op` until it succeeds, fails for good, or the attempts run out.
    pub async fn run<T, F, Fut>(&self, mut op: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let mut delay = self.first_delay;
        let mut attempt = 1;
        loop {
            match op().await {
                Err(StoreError::Transient(why)) if attempt < self.attempts => {
                    tracing::warn!(
                        attempt,
                        of = self.attempts,
                        ?delay,
                        "transient storage error, retrying: {why}"
                    );
                    tokio::time::sleep(jitter(delay)).await;
                    delay = (delay * 2).min(self.max_delay);
                    attempt += 1;
                }
                Err(StoreError::Transient(why)) => {
                    return Err(StoreError::Transient(format!(
                        "{why} (gave up after {attempt} attempts)"
                    )));
                }
                other => return other,
            }
        }
    }
}

/// Spreads retries of concurrent publishers apart (±25%), without a random-number crate.
pub fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    let factor = 0.75 + (nanos % 1000) as f64 / 2000.0;
    d.mul_f64(factor)
}
