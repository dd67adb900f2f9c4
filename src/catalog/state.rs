//! What a reader (or writer) that trusts a catalog remembers of it: the highest sequence it
//! has seen and that index's sha256, one small file per catalog. A lower sequence later is a
//! rollback, the same sequence with other bytes a fork, and a missing index a deletion; all
//! are refused. Client state is part of the security (TUF clients persist the newest version
//! they trusted; go-tuf once checked it for the root role only, CVE-2022-29173).

use super::objects::sha256;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What was seen of one catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    /// The catalog (its location, absolute).
    pub catalog: String,
    /// The highest sequence seen.
    pub sequence: u64,
    /// The sha256 of the index of that sequence.
    pub sha256: String,
    /// The catalog's id, as its root says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_id: Option<String>,
    /// When it was first seen.
    pub at: String,
}

/// A directory of what was seen, one file per catalog.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

/// Why the state could not be used.
#[derive(Debug)]
pub struct StateError {
    /// The file or directory.
    pub path: PathBuf,
    /// What went wrong.
    pub problem: String,
}

impl StateDir {
    /// State kept in `dir` (created when first written).
    pub fn new(dir: impl Into<PathBuf>) -> StateDir {
        StateDir { dir: dir.into() }
    }

    /// The default: `$XDG_STATE_HOME/sigcat`, else `~/.local/state/sigcat`.
    pub fn default_dir() -> Option<PathBuf> {
        let var = |name| {
            std::env::var(name)
                .ok()
                .filter(|v: &String| !v.trim().is_empty())
        };
        var("XDG_STATE_HOME")
            .map(|d| PathBuf::from(d).join("sigcat"))
            .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".local/state/sigcat")))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&self, catalog: &str) -> PathBuf {
        self.dir
            .join("catalogs")
            .join(format!("{}.json", &sha256(catalog.as_bytes())[..32]))
    }

    /// What was seen of `catalog`, if anything.
    pub fn seen(&self, catalog: &str) -> Result<Option<Seen>, StateError> {
        let path = self.file(catalog);
        match std::fs::read(&path) {
            Ok(bytes) => parse(&path, &bytes, catalog).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StateError {
                path,
                problem: e.to_string(),
            }),
        }
    }

    /// The copy of the root `seen` names, if this state kept one (a writer keeps the root it
    /// wrote) and it is that root.
    pub fn root(&self, seen: &Seen) -> Result<Option<Vec<u8>>, StateError> {
        let path = self.file(&seen.catalog).with_extension("root");
        match std::fs::read(&path) {
            Ok(bytes) if sha256(&bytes) == seen.sha256 => Ok(Some(bytes)),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StateError {
                path,
                problem: e.to_string(),
            }),
        }
    }

    /// Remembers `seen` unless a higher sequence is remembered already (concurrent readers
    /// and writers of one catalog serialise on a lock; the file is replaced atomically), with
    /// a copy of that root when given: what `rebuild-index` checks the objects against when
    /// the root in the store was rolled back or deleted.
    pub fn record(&self, seen: &Seen, root: Option<&[u8]>) -> Result<(), StateError> {
        let path = self.file(&seen.catalog);
        let fail = |p: &Path, e: std::io::Error| StateError {
            path: p.to_path_buf(),
            problem: e.to_string(),
        };
        let dir = path.parent().unwrap_or(&self.dir).to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| fail(&dir, e))?;
        let lock_path = path.with_extension("lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock_path)
            .map_err(|e| fail(&lock_path, e))?;
        lock.lock().map_err(|e| fail(&lock_path, e))?;
        if let Some(old) = self.seen(&seen.catalog)?
            && old.sequence >= seen.sequence
        {
            return Ok(());
        }
        let write = |path: &Path, bytes: &[u8]| -> Result<(), StateError> {
            let mut tmp = tempfile::Builder::new()
                .prefix(".sigcat-")
                .suffix(".tmp")
                .tempfile_in(&dir)
                .map_err(|e| fail(&dir, e))?;
            tmp.write_all(bytes).map_err(|e| fail(path, e))?;
            tmp.as_file().sync_all().map_err(|e| fail(path, e))?;
            tmp.persist(path).map_err(|e| fail(path, e.error))?;
            Ok(())
        };
        // The copy first: read back, it counts only when its hash is the one remembered.
        if let Some(root) = root {
            write(&path.with_extension("root"), root)?;
        }
        write(&path, &serde_json::to_vec_pretty(seen).unwrap_or_default())
    }
}

fn parse(path: &Path, bytes: &[u8], catalog: &str) -> Result<Seen, StateError> {
    let seen: Seen = serde_json::from_slice(bytes).map_err(|e| StateError {
        path: path.to_path_buf(),
        problem: format!(
            "not sigcat's state ({e}); remove it only if you trust the catalog as it is now"
        ),
    })?;
    if seen.catalog != catalog {
        return Err(StateError {
            path: path.to_path_buf(),
            problem: format!("it is the state of {}, not of {catalog}", seen.catalog),
        });
    }
    Ok(seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(sequence: u64) -> Seen {
        Seen {
            catalog: "/srv/cat".into(),
            sequence,
            sha256: format!("{sequence:064}"),
            catalog_id: None,
            at: "t".into(),
        }
    }

    #[test]
    fn only_a_higher_sequence_is_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        assert_eq!(state.seen("/srv/cat").unwrap(), None);
        state.record(&seen(5), None).unwrap();
        state.record(&seen(3), None).unwrap();
        assert_eq!(state.seen("/srv/cat").unwrap().unwrap().sequence, 5);
        state.record(&seen(9), None).unwrap();
        assert_eq!(state.seen("/srv/cat").unwrap().unwrap().sequence, 9);
        assert_eq!(
            state.seen("/srv/other").unwrap(),
            None,
            "one file per catalog"
        );
    }

    #[test]
    fn a_damaged_state_file_is_an_error_not_a_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        state.record(&seen(5), None).unwrap();
        let file = state.file("/srv/cat");
        std::fs::write(&file, "garbage").unwrap();
        assert!(state.seen("/srv/cat").is_err());
    }
}
