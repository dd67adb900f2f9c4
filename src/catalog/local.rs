//! The local-directory backend: the embedded default, so the catalog works on a fresh machine
//! with nothing else running. Writes go to a temporary file (created exclusively, with an
//! unpredictable name, by the `tempfile` crate) renamed into place, so readers see the old
//! object or the whole new one; conditional writes hold an exclusive lock on a per-object lock
//! file, so that publishers in other processes are serialised just as Azure's ETags serialise
//! them. Temporary files a crash left behind are removed by the next write in their directory.

use super::store::{Op, Page, PutMode, Store, StoreError, Versioned};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Temporary files start with this; older than [`STALE_AFTER`], they are a crash's leftovers.
const TEMP_PREFIX: &str = ".sigcat-";
const TEMP_SUFFIX: &str = ".tmp";
const STALE_AFTER: Duration = Duration::from_secs(3600);

/// A catalog in a local directory.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// A store rooted at `root` (created on the first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalStore { root: root.into() }
    }

    fn path(&self, op: Op, key: &str) -> Result<PathBuf, StoreError> {
        if key.is_empty()
            || key.starts_with('/')
            || key
                .split('/')
                .any(|p| p.is_empty() || p == "." || p == ".." || p.starts_with('.'))
        {
            return Err(StoreError::Failed {
                op,
                key: key.to_string(),
                source: "not a valid object key".into(),
            });
        }
        Ok(self.root.join(key))
    }
}

/// The local ETag: a hash of the content, so it changes whenever the content does.
fn etag(bytes: &[u8]) -> String {
    format!("\"{:x}\"", Sha256::digest(bytes))
}

fn io_error(op: Op, path: &Path, e: std::io::Error) -> StoreError {
    use std::io::ErrorKind::*;
    let key = path.display().to_string();
    let source = Box::new(e);
    match source.kind() {
        Interrupted | TimedOut | WouldBlock => StoreError::Unavailable { op, key, source },
        _ => StoreError::Local { op, key, source },
    }
}

fn read(path: &Path) -> Result<Option<Versioned>, StoreError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(Versioned {
            etag: etag(&bytes),
            bytes,
        })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(Op::Read, path, e)),
    }
}

/// Removes temporary files of writers that died before renaming them.
fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().unwrap_or_default() > STALE_AFTER);
        if name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX) && stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn put_blocking(path: &Path, bytes: &[u8], mode: &PutMode) -> Result<String, StoreError> {
    let io = |e| io_error(Op::Write, path, e);
    let dir = path.parent().expect("keys have a parent");
    std::fs::create_dir_all(dir).map_err(io)?;
    let name = path
        .file_name()
        .expect("keys have a name")
        .to_string_lossy();
    // The lock file stays: deleting it would let two writers lock different files.
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(format!(".{name}.lock")))
        .map_err(io)?;
    lock.lock().map_err(io)?;
    let precondition = || StoreError::Precondition {
        key: path.display().to_string(),
    };
    match (mode, read(path)?) {
        (PutMode::Overwrite, _) => {}
        (PutMode::Create, Some(_)) => return Err(precondition()),
        (PutMode::IfMatch(_), None) => return Err(precondition()),
        (PutMode::IfMatch(expected), Some(cur)) if *expected != cur.etag => {
            return Err(precondition());
        }
        _ => {}
    }
    remove_stale_temporaries(dir);
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .suffix(TEMP_SUFFIX)
        .tempfile_in(dir)
        .map_err(io)?;
    tmp.write_all(bytes).map_err(io)?;
    // A temporary file is private (0600); a catalog's objects are for whoever may read the
    // directory, as any file this process creates would be (the umask decides).
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o666 & !umask()))
            .map_err(io)?;
    }
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    // The rename is durable only once the directory is.
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)?;
    Ok(etag(bytes))
}

/// One page of the keys under `prefix` after `after`, in ascending byte order. The walk visits
/// directories in key order and skips every subtree that holds only keys before `after` or
/// outside `prefix`, so a page costs what it returns (plus the depth), not the whole tree.
fn list_page_blocking(
    root: &Path,
    prefix: &str,
    after: Option<&str>,
    max: usize,
) -> Result<Page, StoreError> {
    let mut keys = Vec::new();
    let limit = max.max(1) + 1;
    // Start in the deepest directory the prefix names (`images/<id>/` for one image), so
    // listing one image does not read the directory of every image.
    let dir = match prefix.rsplit_once('/') {
        Some((dir, _))
            if dir
                .split('/')
                .all(|p| !p.is_empty() && p != "." && p != ".." && !p.starts_with('.')) =>
        {
            format!("{dir}/")
        }
        _ => String::new(),
    };
    walk(&root.join(&dir), &dir, prefix, after, limit, &mut keys)?;
    let next = if keys.len() == limit {
        keys.pop();
        keys.last().cloned()
    } else {
        None
    };
    Ok(Page { keys, next })
}

fn walk(
    dir: &Path,
    rel: &str,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
    out: &mut Vec<String>,
) -> Result<(), StoreError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error(Op::List, dir, e)),
    };
    // Each entry as the key it stands for (a directory as `name/`), so that sorting the
    // entries sorts the keys: `a-b` (a file) comes before `a/x` (in directory `a`).
    let mut children = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error(Op::List, dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue; // lock and temporary files
        }
        let is_dir = entry
            .file_type()
            .map_err(|e| io_error(Op::List, &entry.path(), e))?
            .is_dir();
        let key = if is_dir {
            format!("{rel}{name}/")
        } else {
            format!("{rel}{name}")
        };
        children.push((key, is_dir, entry.path()));
    }
    children.sort();
    for (key, is_dir, path) in children {
        if out.len() >= limit {
            return Ok(());
        }
        if is_dir {
            // Every key in it starts with `key`.
            let relevant = key.starts_with(prefix) || prefix.starts_with(&key);
            let all_before = after.is_some_and(|a| a > key.as_str() && !a.starts_with(&key));
            if relevant && !all_before {
                walk(&path, &key, prefix, after, limit, out)?;
            }
        } else if key.starts_with(prefix) && after.is_none_or(|a| key.as_str() > a) {
            out.push(key);
        }
    }
    Ok(())
}

/// This process's umask, read where it can be read without changing it (`umask(2)` would
/// change it for every thread for a moment); 022 where it cannot.
fn umask() -> u32 {
    static UMASK: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *UMASK.get_or_init(|| {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Umask:"))
                    .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
            })
            .unwrap_or(0o022)
    })
}

/// Runs blocking filesystem work off the async runtime's threads.
async fn blocking<T: Send + 'static>(
    op: Op,
    key: &str,
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::Failed {
            op,
            key: key.to_string(),
            source: Box::new(e),
        })?
}

impl Store for LocalStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let path = self.path(Op::Read, key)?;
        blocking(Op::Read, key, move || read(&path)).await
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, mode: PutMode) -> Result<String, StoreError> {
        let path = self.path(Op::Write, key)?;
        blocking(Op::Write, key, move || put_blocking(&path, &bytes, &mode)).await
    }

    async fn list_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        max: usize,
    ) -> Result<Page, StoreError> {
        let (root, owned, after) = (
            self.root.clone(),
            prefix.to_string(),
            after.map(str::to_string),
        );
        blocking(Op::List, prefix, move || {
            list_page_blocking(&root, &owned, after.as_deref(), max)
        })
        .await
    }

    async fn exists(&self) -> Result<bool, StoreError> {
        let root = self.root.clone();
        blocking(Op::Read, "", move || match std::fs::metadata(&root) {
            Ok(m) if m.is_dir() => Ok(true),
            Ok(_) => Err(StoreError::Local {
                op: Op::Read,
                key: root.display().to_string(),
                source: "it is not a directory".into(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_error(Op::Read, &root, e)),
        })
        .await
    }

    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn identity(&self) -> String {
        // One catalog, one identity, however its path is spelled (`cat`, `./cat/`,
        // `/x/../x/cat`, a symlink to it): what the state is kept under.
        if let Ok(real) = std::fs::canonicalize(&self.root) {
            return real.display().to_string();
        }
        let absolute = std::path::absolute(&self.root).unwrap_or_else(|_| self.root.clone());
        let mut clean = PathBuf::new();
        for part in absolute.components() {
            match part {
                std::path::Component::ParentDir => {
                    clean.pop();
                }
                std::path::Component::CurDir => {}
                other => clean.push(other),
            }
        }
        clean.display().to_string()
    }

    fn root_noun(&self) -> &'static str {
        "directory"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_temporary_files_are_removed_by_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let stale = dir.path().join(".sigcat-crashed.tmp");
        let fresh = dir.path().join(".sigcat-inflight.tmp");
        std::fs::write(&stale, "x").unwrap();
        std::fs::write(&fresh, "x").unwrap();
        let old = std::time::SystemTime::now() - 2 * STALE_AFTER;
        std::fs::File::options()
            .write(true)
            .open(&stale)
            .unwrap()
            .set_modified(old)
            .unwrap();
        put_blocking(&dir.path().join("index.json"), b"{}", &PutMode::Create).unwrap();
        assert!(!stale.exists(), "a crash's leftover is removed");
        assert!(fresh.exists(), "another writer's file in flight is kept");
        let keys = tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(store.list(""))
            .unwrap();
        assert_eq!(keys, ["index.json"]);
    }

    #[test]
    fn keys_cannot_leave_the_root_or_name_hidden_files() {
        let store = LocalStore::new("/nonexistent");
        for key in ["", "/abs", "a/../b", "a//b", ".hidden", "a/.lock"] {
            assert!(matches!(
                store.path(Op::Read, key),
                Err(StoreError::Failed { .. })
            ));
        }
    }
}
