//! What a catalog handle read or wrote a moment ago, so that a writer that lost the root to
//! another and tries again does not read and write the same immutable objects again: each
//! round then costs the root, and what really changed. Objects are named by their content, so
//! what is remembered can never be stale; both memories are bounded, and kept only for the
//! length of one write ([`Recent::scope`]): a check such as `verify` always reads the store.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Objects read (checked against their sha256), at most this many.
const READ_ENTRIES: usize = 64;
/// Nor more than this many bytes of them, and none larger than a quarter of it.
const READ_BYTES: usize = 16 << 20;
/// Objects written, at most this many.
const WRITTEN_ENTRIES: usize = 256;

#[derive(Debug, Default)]
pub(crate) struct Recent {
    inner: Mutex<Inner>,
    /// Writes in progress: remembered only while there is one.
    scopes: std::sync::atomic::AtomicUsize,
}

/// One write's use of [`Recent`]: what it remembered is forgotten when the last ends.
pub(crate) struct Scope<'a>(&'a Recent);

impl Drop for Scope<'_> {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering;
        if self.0.scopes.fetch_sub(1, Ordering::SeqCst) == 1
            && let Ok(mut inner) = self.0.inner.lock()
        {
            *inner = Inner::default();
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    read: VecDeque<(String, String, Arc<Vec<u8>>)>,
    read_bytes: usize,
    written: VecDeque<(String, String)>,
}

impl Recent {
    /// Remembers for the length of one write (the guard).
    pub(crate) fn scope(&self) -> Scope<'_> {
        self.scopes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Scope(self)
    }

    fn on(&self) -> bool {
        self.scopes.load(std::sync::atomic::Ordering::SeqCst) > 0
    }

    /// The bytes of `key` with sha256 `sha`, if read a moment ago.
    pub(crate) fn read(&self, key: &str, sha: &str) -> Option<Arc<Vec<u8>>> {
        if !self.on() {
            return None;
        }
        let inner = self.inner.lock().ok()?;
        inner
            .read
            .iter()
            .find(|(k, s, _)| k == key && s == sha)
            .map(|(_, _, b)| b.clone())
    }

    /// Remembers what `key` held, checked against `sha`.
    pub(crate) fn remember_read(&self, key: &str, sha: &str, bytes: &[u8]) {
        if !self.on() || bytes.len() > READ_BYTES / 4 {
            return;
        }
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if inner.read.iter().any(|(k, s, _)| k == key && s == sha) {
            return;
        }
        inner.read_bytes += bytes.len();
        inner
            .read
            .push_back((key.to_string(), sha.to_string(), Arc::new(bytes.to_vec())));
        while inner.read.len() > READ_ENTRIES || inner.read_bytes > READ_BYTES {
            match inner.read.pop_front() {
                Some((_, _, b)) => inner.read_bytes -= b.len(),
                None => break,
            }
        }
    }

    /// Whether this handle wrote `key` with sha256 `sha` a moment ago.
    pub(crate) fn wrote(&self, key: &str, sha: &str) -> bool {
        self.on()
            && self
                .inner
                .lock()
                .is_ok_and(|i| i.written.iter().any(|(k, s)| k == key && s == sha))
    }

    /// Remembers that `key` now holds content with sha256 `sha`.
    pub(crate) fn remember_written(&self, key: &str, sha: &str) {
        if !self.on() {
            return;
        }
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        inner.written.push_back((key.to_string(), sha.to_string()));
        while inner.written.len() > WRITTEN_ENTRIES {
            inner.written.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_by_key_and_hash_within_a_write_and_stays_bounded() {
        let r = Recent::default();
        r.remember_read("a", "1", b"x");
        assert!(r.read("a", "1").is_none(), "outside a write: nothing kept");
        let scope = r.scope();
        r.remember_read("a", "1", b"x");
        assert_eq!(
            r.read("a", "1").as_deref().map(Vec::as_slice),
            Some(&b"x"[..])
        );
        assert!(r.read("a", "2").is_none(), "another content at the key");
        for i in 0..READ_ENTRIES {
            r.remember_read(&format!("k{i}"), "1", b"y");
        }
        assert!(r.read("a", "1").is_none(), "the oldest is forgotten");
        r.remember_read("big", "1", &vec![0; READ_BYTES]);
        assert!(r.read("big", "1").is_none(), "too large to keep");
        r.remember_written("w", "1");
        assert!(r.wrote("w", "1") && !r.wrote("w", "2"));
        drop(scope);
        let _again = r.scope();
        assert!(!r.wrote("w", "1"), "forgotten when the write ended");
    }
}
