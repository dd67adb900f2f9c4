//! The integration tests: one binary (so the crate and its Azure SDK are linked once), one
//! module per command or stage, and `util` for what they share. Storage tests run against a
//! real Azurite that the tests install and start themselves.

mod util;

mod catalog;
mod cli_catalog;
mod cli_habits;
mod cli_parse;
mod faults;
mod layers;
mod lifecycle;
mod never_panics;
mod parse_fixtures;
mod pipelines;
mod render;
mod render_mixed;
mod render_readme;
mod render_upgrade;
mod schemas;
mod secrets;
mod trust;
mod watch;
