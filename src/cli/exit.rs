//! Exit codes: the one place a [`Fault`] becomes a number. CI scripts branch on these codes,
//! so they are stable; the table is printed at the end of every subcommand's `--help`.

use sigcat::Fault;

/// The exit code of a run that ended with `outcome` (`None`: everything went well).
pub(crate) fn code(outcome: Option<Fault>) -> u8 {
    match outcome {
        None => 0,
        Some(Fault::BuildFailed) => 1,
        Some(Fault::Settings) => 2,
        Some(Fault::NothingFound) => 3,
        Some(Fault::InvalidInput) => 4,
        Some(Fault::LocalFile) => 5,
        Some(Fault::Refused) => 6,
        Some(Fault::Conflict) => 7,
        Some(Fault::Storage) => 8,
        Some(Fault::CatalogData) => 9,
        Some(Fault::Untrusted) => 10,
        Some(Fault::Unhealthy) => 11,
    }
}

/// The table as `--help` shows it (and the README repeats).
pub(crate) const TABLE: &str = "\
Exit codes (the same in every subcommand):
  0  done
  1  a build failed or was interrupted (its record is still written)
  2  usage or settings: a bad flag, catalog location, credential variable, trust
     or signing setting, or credentials the storage refuses
  3  nothing found: no artifact in the input (truncated log, wrong file), or no
     catalog image matches (latest, show; a list that matches nothing exits 0)
  4  invalid input: the message names the file, the line and what was expected
  5  a local file or directory could not be read or written
  6  refused: sigcat will not produce or publish this (no gallery or managed
     image, a third-party base without a Plan, an unsafe upgrade)
  7  conflict: the catalog holds the same image with different content
  8  storage failure: unreachable or failing after bounded retries; nothing is
     half-published, so running again later completes the job
  9  the catalog's own data is wrong (index, object hash, yank state, a file
     planted where an object should be)
 10  untrusted: the catalog is unsigned, altered, signed by a key the trust file
     does not list, rolled back, expired, another catalog's, or gone after it
     was seen
 11  unhealthy (healthcheck): the watcher's heartbeat is stale, from the
     future, missing or not a heartbeat
When several apply, the first of 2, 11, 5, 8, 10, 9, 7, 4, 6, 3, 1 is returned.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lists_every_code_and_the_precedence_of_the_faults() {
        let codes: Vec<u8> = TABLE
            .lines()
            .filter_map(|l| l.split_whitespace().next()?.parse().ok())
            .collect();
        assert_eq!(codes, (0..=11).collect::<Vec<u8>>());
        let mut mapped: Vec<u8> = Fault::ALL.iter().map(|f| code(Some(*f))).collect();
        let order = mapped
            .iter()
            .map(u8::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        assert!(
            TABLE.contains(&format!("the first of {order} is returned")),
            "{order}"
        );
        mapped.sort();
        mapped.dedup();
        assert_eq!(mapped.len(), Fault::ALL.len(), "one code per fault");
        assert_eq!(code(None), 0);
    }
}
