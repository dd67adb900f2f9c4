//! sigcat turns Packer / kubernetes-sigs/image-builder Azure build output into structured image
//! records, CAPZ manifests, and a catalog of images in blob storage.
//!
//! The data flows one way, and the modules follow it:
//! input → [`parse::lines`] → [`parse`] (console, machine-readable, manifest) → [`record`] →
//! [`output`] (CI formats) and [`render`] (CAPZ manifests) → [`catalog`] (storage), with
//! [`watch`] feeding a drop directory through the same stages. [`redact`] keeps credentials
//! out of all of it; [`retry`] bounds every wait on storage.

#![deny(missing_docs, unreachable_pub)]

pub mod catalog;
pub mod error;
pub mod fault;
pub mod output;
pub mod parse;
pub mod record;
pub mod redact;
pub mod render;
pub mod retry;
#[cfg(feature = "watch")]
pub mod watch;
pub mod yaml;

pub use error::{Error, InputError};
pub use fault::{Classify, Fault};

/// FNV-1a: unlike `DefaultHasher`, the same on every machine and Rust version, which generated
/// names and delimiters rely on.
pub(crate) fn stable_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}
pub use record::Record;
