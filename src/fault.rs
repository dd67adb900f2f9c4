//! Whose fault: the one classification every outcome of the library exposes (errors, publish
//! outcomes, watcher verdicts, verify findings), so that the binary decides exit codes in one
//! place and "the worst of several" means the same everywhere.
//!
//! The variants are declared in the documented precedence (what stops everything, then what
//! the storage or the catalog did, then what one input did), and the derived order follows the
//! declaration: when several things happen in one call, [`Fault::worst`] keeps the one
//! declared first.

use std::fmt;

/// What went wrong, classified by who must act. Declared in precedence order: when several
/// apply, the one declared first is the outcome (see [`Fault::worst`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// The operator's settings: a bad flag, catalog location, credential or trust setting, or
    /// credentials the storage refuses.
    Settings,
    /// A liveness check found the watcher stale (only `sigcat healthcheck` says this).
    Unhealthy,
    /// A local file or directory (an input, an output, the state directory, a local
    /// catalog's directory) could not be read or written.
    LocalFile,
    /// The storage service failed or was unreachable after bounded retries.
    Storage,
    /// The catalog is not trusted: unsigned, altered, signed by an unknown key, rolled back,
    /// expired, or gone after it was seen.
    Untrusted,
    /// The catalog's own data is wrong (its index, an object, a yank chain).
    CatalogData,
    /// The catalog holds the same image with different content.
    Conflict,
    /// The input is invalid: the file, the line and what was expected.
    InvalidInput,
    /// sigcat will not produce or publish this: applying it would fail or do harm.
    Refused,
    /// Nothing to work with: no build in the input, or no catalog image matches.
    NothingFound,
    /// A build failed or was interrupted (its record is still written).
    BuildFailed,
}

/// Who must act on a [`Fault`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// Whoever runs sigcat: its flags, environment, files and credentials.
    Operator,
    /// The storage service (or the network to it): running again later completes the job.
    StorageService,
    /// The catalog's owner: `catalog verify`, `rebuild-index`, the signing keys.
    CatalogOwner,
    /// The input: the file and line the message names.
    Input,
    /// The build itself.
    Build,
}

impl Fault {
    /// Every fault, in precedence order.
    pub const ALL: [Fault; 11] = [
        Fault::Settings,
        Fault::Unhealthy,
        Fault::LocalFile,
        Fault::Storage,
        Fault::Untrusted,
        Fault::CatalogData,
        Fault::Conflict,
        Fault::InvalidInput,
        Fault::Refused,
        Fault::NothingFound,
        Fault::BuildFailed,
    ];

    /// The one of two that takes precedence.
    pub fn worst(self, other: Fault) -> Fault {
        self.min(other)
    }

    /// The outcome of several: the one that takes precedence, or none when nothing went wrong.
    pub fn worst_of(faults: impl IntoIterator<Item = Option<Fault>>) -> Option<Fault> {
        faults.into_iter().flatten().min()
    }

    /// Who must act.
    pub fn actor(self) -> Actor {
        match self {
            Fault::Settings | Fault::Unhealthy | Fault::LocalFile => Actor::Operator,
            Fault::Storage => Actor::StorageService,
            Fault::Untrusted | Fault::CatalogData => Actor::CatalogOwner,
            Fault::Conflict | Fault::InvalidInput | Fault::Refused | Fault::NothingFound => {
                Actor::Input
            }
            Fault::BuildFailed => Actor::Build,
        }
    }

    /// A short name for logs and JSON reports (`settings`, `storage`, `invalid-input`...).
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Settings => "settings",
            Fault::Unhealthy => "unhealthy",
            Fault::LocalFile => "local-file",
            Fault::Storage => "storage",
            Fault::Untrusted => "untrusted",
            Fault::CatalogData => "catalog-data",
            Fault::Conflict => "conflict",
            Fault::InvalidInput => "invalid-input",
            Fault::Refused => "refused",
            Fault::NothingFound => "nothing-found",
            Fault::BuildFailed => "build-failed",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An outcome that can say whose fault it is. Errors always can; outcomes that may be
/// success (a publish outcome, a verify finding) say `None` when nothing went wrong.
pub trait Classify {
    /// The fault, or `None` for success.
    fn fault(&self) -> Option<Fault>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_declared_wins_whatever_the_order_they_come_in() {
        assert_eq!(
            Fault::Refused.worst(Fault::InvalidInput),
            Fault::InvalidInput
        );
        assert_eq!(
            Fault::InvalidInput.worst(Fault::Refused),
            Fault::InvalidInput
        );
        assert_eq!(Fault::Refused.worst(Fault::Storage), Fault::Storage);
        assert_eq!(
            Fault::BuildFailed.worst(Fault::NothingFound),
            Fault::NothingFound
        );
        assert_eq!(Fault::Conflict.worst(Fault::InvalidInput), Fault::Conflict);
        assert_eq!(Fault::worst_of([None, None]), None);
        assert_eq!(
            Fault::worst_of([None, Some(Fault::Refused), Some(Fault::CatalogData)]),
            Some(Fault::CatalogData)
        );
    }

    #[test]
    fn all_lists_every_fault_in_the_order_they_are_declared() {
        let mut sorted = Fault::ALL;
        sorted.sort();
        assert_eq!(sorted, Fault::ALL);
        let names: std::collections::HashSet<&str> =
            Fault::ALL.iter().map(|f| f.as_str()).collect();
        assert_eq!(names.len(), Fault::ALL.len());
    }
}
