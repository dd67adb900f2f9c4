//! What happened to each item of one publishing call, said on stderr as it happens, and the
//! outcome they add up to (the worst, by [`Fault`]'s precedence).

use super::{failure, inputs, messages};
use sigcat::catalog::Outcome;
use sigcat::catalog::entry::{self, Entry};
use sigcat::parse::Parsed;
use sigcat::record::BuildResult;
use sigcat::{Classify, Fault};

/// The lines of one call and their worst outcome.
pub(crate) struct Report {
    catalog: String,
    worst: Option<Fault>,
}

impl Report {
    pub(crate) fn new(catalog: String) -> Report {
        Report {
            catalog,
            worst: None,
        }
    }

    /// The outcome of the call so far.
    pub(crate) fn outcome(&self) -> Option<Fault> {
        self.worst
    }

    fn note(&mut self, fault: Option<Fault>, line: String) {
        self.worst = Fault::worst_of([self.worst, fault]);
        messages::say(&line);
    }

    /// An input that could not be read, or not all of it: nothing of it is published.
    pub(crate) fn input_failed(&mut self, e: &sigcat::Error) {
        let fault = e.fault();
        let what = match fault {
            Some(Fault::LocalFile) => "cannot read",
            Some(Fault::InvalidInput) => "invalid",
            _ => "not published",
        };
        self.note(fault, format!("{what}: {}", sigcat::error::chain(e)));
    }

    /// What one input's builds ended with: failed builds and truncated logs are said here.
    pub(crate) fn parsed(&mut self, source: &str, parsed: &Parsed) {
        for r in parsed
            .records
            .iter()
            .filter(|r| r.result != BuildResult::Succeeded)
        {
            let what = if r.result == BuildResult::Failed {
                "failed"
            } else {
                "was interrupted"
            };
            self.note(
                Some(Fault::BuildFailed),
                format!(
                    "build {} ({source}) {what}: {}",
                    r.build_name,
                    r.error.as_deref().unwrap_or("no error given")
                ),
            );
        }
        if !parsed.incomplete.is_empty() {
            self.note(
                Some(Fault::NothingFound),
                format!(
                    "{source}: no result for {} (truncated log?)",
                    parsed.incomplete.join(", ")
                ),
            );
        } else if parsed.records.is_empty() {
            self.note(Some(Fault::NothingFound), inputs::no_packer_build(source));
        }
    }

    /// An item the catalog will not hold.
    pub(crate) fn refused(&mut self, refused: &entry::Refused) {
        let hint = failure::refusal_hint(&refused.reason)
            .map(|h| format!("; {h}"))
            .unwrap_or_default();
        self.note(
            refused.reason.fault(),
            format!("refused: {}: {}{hint}", refused.item, refused.reason),
        );
    }

    /// What publishing did with one entry.
    pub(crate) fn published(&mut self, entry: &Entry, outcome: &Outcome) {
        let item = &entry.item;
        let line = match outcome {
            Outcome::Published { id } => format!("published {id} ({item}) to {}", self.catalog),
            Outcome::Updated { id, added } => format!(
                "updated {id} ({item}) in {}: added {}",
                self.catalog,
                added.join(", ")
            ),
            Outcome::Unchanged { id } => {
                format!("unchanged: {id} ({item}) is already in {}", self.catalog)
            }
            Outcome::Conflict(c) => format!("conflict: {c}"),
            other => format!("{}: {other:?}", other.id()),
        };
        self.note(outcome.fault(), line);
    }
}
