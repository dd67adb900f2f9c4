//! sigcat turns Packer / kubernetes-sigs/image-builder Azure build output into structured image
//! records (and, in later stages, CAPZ manifests and a catalog).
//!
//! The data flows one way, and the modules follow it:
//! input → [`parse::lines`] → [`parse`] (console, machine-readable, manifest) → [`record`] →
//! [`output`] (CI formats) and [`render`] (CAPZ manifests).

pub mod error;
pub mod output;
pub mod parse;
pub mod record;
pub mod render;

pub use error::{Error, InputError};
pub use record::Record;
