//! One module per command: each turns its arguments into library calls and returns the
//! outcome (`None`, or the worst [`sigcat::Fault`] met), or the failure that ended it early.

pub(crate) mod catalog;
pub(crate) mod docs;
pub(crate) mod lifecycle;
pub(crate) mod parse;
pub(crate) mod publish;
pub(crate) mod render;
#[cfg(feature = "watch")]
pub(crate) mod watch;
