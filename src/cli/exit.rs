//! Exit codes: one table, the same meaning in every subcommand, printed in every `--help`.
//! CI scripts branch on them, so they are stable.

/// What a run of sigcat ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    /// A build failed or was interrupted (its record is still written).
    BuildFailed = 1,
    /// The command line or a setting (catalog location, credential variable) is wrong.
    Usage = 2,
    /// Nothing to work with: no artifact in the input, or no catalog image matches.
    NothingFound = 3,
    /// The input is invalid: the message names the file, the line and what was expected.
    InvalidInput = 4,
    /// A local file could not be read or written.
    Io = 5,
    /// sigcat will not produce or publish this: applying it would fail or do harm.
    Refused = 6,
    /// The catalog holds the same image with different content.
    Conflict = 7,
    /// The storage service failed or was unreachable (after bounded retries).
    Storage = 8,
    /// The catalog's own data is wrong (unreadable index, an object not matching its hash).
    Corrupt = 9,
    /// The catalog's index is not signed by a trusted key (missing, invalid, unknown signer).
    Untrusted = 10,
}

impl Exit {
    /// When several things happen in one call (one input refused, another invalid), the exit
    /// code is the one that comes first here: what stops everything, then what the catalog
    /// or storage did, then what one input did.
    const PRECEDENCE: [Exit; 11] = [
        Exit::Usage,
        Exit::Io,
        Exit::Storage,
        Exit::Untrusted,
        Exit::Corrupt,
        Exit::Conflict,
        Exit::InvalidInput,
        Exit::Refused,
        Exit::NothingFound,
        Exit::BuildFailed,
        Exit::Ok,
    ];

    pub fn worst(self, other: Exit) -> Exit {
        let rank = |e: Exit| Exit::PRECEDENCE.iter().position(|p| *p == e).unwrap_or(0);
        if rank(other) < rank(self) {
            other
        } else {
            self
        }
    }

    pub fn code(self) -> u8 {
        self as u8
    }
}

/// The table as `--help` shows it (and the README repeats).
pub const TABLE: &str = "\
Exit codes (the same in every subcommand):
  0  done
  1  a build failed or was interrupted (its record is still written)
  2  usage or settings: a bad flag, catalog location or credential variable
  3  nothing found: no artifact in the input (truncated log, wrong file), or no
     catalog image matches
  4  invalid input: the message names the file, the line and what was expected
  5  a local file could not be read or written
  6  refused: sigcat will not produce or publish this (no gallery or managed
     image, a third-party base without a Plan, an unsafe upgrade)
  7  conflict: the catalog holds the same image with different content
  8  storage failure: unreachable or failing after bounded retries; nothing is
     half-published, so running again later completes the job
  9  the catalog's own data is wrong (index, object hash, yank state)
 10  untrusted: the catalog's index is unsigned, altered, or signed by a key
     the trust file does not list
When several apply, the first of 2, 5, 8, 10, 9, 7, 4, 6, 3, 1 is returned.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_outcome_wins_whatever_the_order() {
        assert_eq!(Exit::Ok.worst(Exit::Refused), Exit::Refused);
        assert_eq!(Exit::Refused.worst(Exit::Ok), Exit::Refused);
        assert_eq!(Exit::Refused.worst(Exit::Storage), Exit::Storage);
        assert_eq!(
            Exit::BuildFailed.worst(Exit::NothingFound),
            Exit::NothingFound
        );
        assert_eq!(Exit::Conflict.worst(Exit::InvalidInput), Exit::Conflict);
    }

    #[test]
    fn the_table_lists_every_code_in_order() {
        let codes: Vec<u8> = TABLE
            .lines()
            .filter_map(|l| l.split_whitespace().next()?.parse().ok())
            .collect();
        assert_eq!(codes, (0..=10).collect::<Vec<u8>>());
        let order: Vec<u8> = Exit::PRECEDENCE[..10].iter().map(|e| e.code()).collect();
        assert!(
            TABLE.contains(
                &order
                    .iter()
                    .map(u8::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        );
    }
}
