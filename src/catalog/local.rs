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
    /// The sorted entries of the last large directory a listing read, so that the pages of
    /// one listing of `images/` do not each read and sort the whole directory again.
    listing: std::sync::Arc<std::sync::Mutex<Option<DirListing>>>,
}

/// A directory's entries as the keys they stand for, sorted, and whether each is a directory.
type Entries = std::sync::Arc<Vec<(String, bool)>>;

/// A directory's entries as keys, sorted, with the modification time they were read at.
#[derive(Debug)]
struct DirListing {
    dir: PathBuf,
    modified: std::time::SystemTime,
    children: Entries,
}

/// Directories with fewer entries are read afresh: caching them saves nothing.
const CACHED_FROM: usize = 512;
/// A directory changed more recently than this is not cached: a change within the same
/// timestamp tick would leave its modification time as it was.
const SETTLED: Duration = Duration::from_secs(2);

impl LocalStore {
    /// A store rooted at `root` (created on the first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalStore {
            root: root.into(),
            listing: Default::default(),
        }
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
        // No directory on the way may be a symlink: `O_NOFOLLOW` covers only the last part,
        // and a planted `latest/1.30 -> /elsewhere` would have writes land outside the catalog
        // and reads come from there.
        let mut dir = self.root.clone();
        for part in key.split('/').take(key.split('/').count() - 1) {
            dir.push(part);
            match std::fs::symlink_metadata(&dir) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(StoreError::Planted {
                        op,
                        key: dir.display().to_string(),
                        what: "a symbolic link to a directory".into(),
                    });
                }
                Ok(_) => {}
                Err(_) => break, // not there (yet): nothing to follow
            }
        }
        Ok(self.root.join(key))
    }
}

/// The largest object sigcat reads: far above any it writes (a layout 3 index of 100,000
/// images is about 150 MB), so that a planted sparse file of gigabytes is refused, not read.
const MAX_OBJECT: usize = 512 << 20;

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
    read_at_most(path, Some(MAX_OBJECT))
}

/// Reads an object's file, never one that is not a regular file: sigcat writes nothing else,
/// and a FIFO, device or symlink planted under the catalog (which could block the reader for
/// ever, or feed it `/dev/zero`) is refused without being read.
fn read_at_most(path: &Path, max: Option<usize>) -> Result<Option<Versioned>, StoreError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |e| io_error(Op::Read, path, e);
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(not_regular(path, "a symbolic link"));
        }
        Err(e) => return Err(io(e)),
    };
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(not_regular(
            path,
            "something other than a regular file (a directory, FIFO or device)",
        ));
    }
    if let Some(max) = max
        && meta.len() > max as u64
    {
        return Err(StoreError::too_large(&path.display().to_string(), max));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(max.map_or(u64::MAX, |m| m as u64 + 1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if let Some(max) = max
        && bytes.len() > max
    {
        return Err(StoreError::too_large(&path.display().to_string(), max));
    }
    Ok(Some(Versioned {
        etag: etag(&bytes),
        bytes,
    }))
}

fn not_regular(path: &Path, what: &str) -> StoreError {
    StoreError::Planted {
        op: Op::Read,
        key: path.display().to_string(),
        what: what.to_string(),
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

/// Removes an object under its lock, then the lock file (see [`Store::delete`]: nobody writes
/// the key again, so nobody can be waiting on that lock for a write that matters).
fn delete_blocking(path: &Path) -> Result<(), StoreError> {
    let io = |e| io_error(Op::Delete, path, e);
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(());
    };
    let lock_path = dir.join(format!(".{}.lock", name.to_string_lossy()));
    let lock = match std::fs::OpenOptions::new().write(true).open(&lock_path) {
        Ok(lock) => Some(lock),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(e)),
    };
    if let Some(lock) = &lock {
        lock.lock().map_err(io)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    if lock.is_some() {
        let _ = std::fs::remove_file(&lock_path);
    }
    Ok(())
}

/// One page of the keys under `prefix` after `after`, in ascending byte order. The walk visits
/// directories in key order and skips every subtree that holds only keys before `after` or
/// outside `prefix`, so a page costs what it returns (plus the depth), not the whole tree.
fn list_page_blocking(
    root: &Path,
    prefix: &str,
    after: Option<&str>,
    max: usize,
    cache: &std::sync::Mutex<Option<DirListing>>,
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
    let mut walk = Walk {
        prefix,
        after,
        limit,
        cache,
        out: &mut keys,
    };
    walk.dir(&root.join(&dir), &dir)?;
    let next = if keys.len() == limit {
        keys.pop();
        keys.last().cloned()
    } else {
        None
    };
    Ok(Page { keys, next })
}

/// One page's walk through the tree.
struct Walk<'a> {
    prefix: &'a str,
    after: Option<&'a str>,
    limit: usize,
    cache: &'a std::sync::Mutex<Option<DirListing>>,
    out: &'a mut Vec<String>,
}

impl Walk<'_> {
    fn dir(&mut self, dir: &Path, rel: &str) -> Result<(), StoreError> {
        let Some(children) = children(dir, rel, self.cache)? else {
            return Ok(());
        };
        // Everything before `after` that is not a directory holding it is skipped at once:
        // the entries are sorted, so a page starts where the last one ended.
        let start = self.after.map_or(0, |a| {
            children.partition_point(|(key, _)| key.as_str() < a && !a.starts_with(key.as_str()))
        });
        for (key, is_dir) in &children[start..] {
            if self.out.len() >= self.limit {
                return Ok(());
            }
            let name = &key[rel.len()..];
            if *is_dir {
                // Every key in it starts with `key`.
                let relevant =
                    key.starts_with(self.prefix) || self.prefix.starts_with(key.as_str());
                let all_before = self
                    .after
                    .is_some_and(|a| a > key.as_str() && !a.starts_with(key.as_str()));
                if relevant && !all_before {
                    self.dir(&dir.join(name.trim_end_matches('/')), key)?;
                }
            } else if key.starts_with(self.prefix) && self.after.is_none_or(|a| key.as_str() > a) {
                self.out.push(key.clone());
            }
        }
        Ok(())
    }
}

/// A directory's entries as the keys they stand for (a directory as `name/`), sorted, so that
/// sorting the entries sorts the keys: `a-b` (a file) comes before `a/x` (in directory `a`).
/// `None` when the directory does not exist. A large directory that has not changed since the
/// last listing read it is not read again.
fn children(
    dir: &Path,
    rel: &str,
    cache: &std::sync::Mutex<Option<DirListing>>,
) -> Result<Option<Entries>, StoreError> {
    let modified = match std::fs::metadata(dir) {
        Ok(m) => m.modified().ok(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(Op::List, dir, e)),
    };
    if let (Some(modified), Ok(cached)) = (modified, cache.lock())
        && let Some(c) = cached.as_ref()
        && c.dir == dir
        && c.modified == modified
    {
        return Ok(Some(c.children.clone()));
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(Op::List, dir, e)),
    };
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
        children.push((key, is_dir));
    }
    children.sort();
    let children = std::sync::Arc::new(children);
    let settled = modified.filter(|m| m.elapsed().is_ok_and(|age| age >= SETTLED));
    if children.len() >= CACHED_FROM
        && let Some(modified) = settled
        && let Ok(mut cached) = cache.lock()
    {
        *cached = Some(DirListing {
            dir: dir.to_path_buf(),
            modified,
            children: children.clone(),
        });
    }
    Ok(Some(children))
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

    async fn get_at_most(&self, key: &str, max: usize) -> Result<Option<Versioned>, StoreError> {
        let path = self.path(Op::Read, key)?;
        blocking(Op::Read, key, move || {
            read_at_most(&path, Some(max.min(MAX_OBJECT)))
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path(Op::Delete, key)?;
        blocking(Op::Delete, key, move || delete_blocking(&path)).await
    }

    async fn list_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        max: usize,
    ) -> Result<Page, StoreError> {
        let (root, owned, after, cache) = (
            self.root.clone(),
            prefix.to_string(),
            after.map(str::to_string),
            self.listing.clone(),
        );
        blocking(Op::List, prefix, move || {
            list_page_blocking(&root, &owned, after.as_deref(), max, &cache)
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

    /// Every key, page by page, as a listing reads them.
    fn all_keys(store: &LocalStore, prefix: &str, max: usize) -> Vec<String> {
        let mut keys = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page =
                list_page_blocking(&store.root, prefix, after.as_deref(), max, &store.listing)
                    .unwrap();
            keys.extend(page.keys);
            match page.next {
                Some(next) => after = Some(next),
                None => return keys,
            }
        }
    }

    /// What someone who can write the directory plants where sigcat reads (a FIFO, a symlink
    /// to `/dev/zero` or to a secret, a directory, a huge sparse file) is refused without
    /// blocking or reading it; a regular file is read, and the size limit holds.
    #[tokio::test]
    async fn only_regular_files_are_read_and_never_past_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let pending = dir.path().join("pending");
        std::fs::create_dir_all(pending.join("dir.json")).unwrap();
        let fifo = std::ffi::CString::new(pending.join("fifo.json").to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        std::os::unix::fs::symlink("/dev/zero", pending.join("zero.json")).unwrap();
        std::fs::write(dir.path().join("secret"), b"PLANTED-SECRET-7").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), pending.join("secret.json")).unwrap();
        let huge = std::fs::File::create(pending.join("huge.json")).unwrap();
        huge.set_len(1 << 30).unwrap();
        std::fs::write(pending.join("ok.json"), b"{}").unwrap();
        for key in ["fifo.json", "zero.json", "secret.json", "dir.json"] {
            let key = format!("pending/{key}");
            let got = tokio::time::timeout(Duration::from_secs(5), store.get(&key))
                .await
                .expect("never blocks");
            let err = got.unwrap_err().to_string();
            assert!(!err.contains("PLANTED-SECRET-7"), "{err}");
        }
        assert!(matches!(
            store.get_at_most("pending/huge.json", 1 << 20).await,
            Err(StoreError::Planted { .. })
        ));
        assert_eq!(
            store
                .get_at_most("pending/ok.json", 2)
                .await
                .unwrap()
                .unwrap()
                .bytes,
            b"{}"
        );
        assert!(store.get_at_most("pending/ok.json", 1).await.is_err());
        assert_eq!(
            store.get_at_most("pending/none.json", 1).await.unwrap(),
            None
        );
        // Any object: a sparse file of gigabytes is refused, not read into memory.
        std::fs::File::create(dir.path().join("index.json"))
            .unwrap()
            .set_len(4 << 30)
            .unwrap();
        assert!(matches!(
            store.get("index.json").await,
            Err(StoreError::Planted { .. })
        ));
    }

    /// A directory on the way that is a symlink (`latest/1.30 -> /elsewhere`) is refused for
    /// reads and writes: nothing lands outside the catalog, nothing is read from there.
    #[tokio::test]
    async fn a_symlinked_directory_is_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("ubuntu-2404.json"), b"PLANTED-OUTSIDE").unwrap();
        std::fs::create_dir_all(dir.path().join("latest")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("latest/1.30")).unwrap();
        let store = LocalStore::new(dir.path());
        let read = store.get("latest/1.30/ubuntu-2404.json").await;
        assert!(read.is_err(), "{read:?}");
        assert!(
            store
                .put(
                    "latest/1.30/ubuntu-2404.json",
                    b"x".to_vec(),
                    PutMode::Overwrite
                )
                .await
                .is_err()
        );
        assert_eq!(
            std::fs::read(outside.path().join("ubuntu-2404.json")).unwrap(),
            b"PLANTED-OUTSIDE"
        );
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 1);
    }

    /// A large directory is read once per listing, and a change to it is seen at once.
    #[test]
    fn pages_of_a_large_directory_are_complete_and_see_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let images = dir.path().join("images");
        let mut expected = Vec::new();
        for i in 0..(CACHED_FROM + 100) {
            let id = format!("img-{i:04}");
            std::fs::create_dir_all(images.join(&id)).unwrap();
            for f in ["record.json", "template.yaml"] {
                std::fs::write(images.join(&id).join(f), "x").unwrap();
                expected.push(format!("images/{id}/{f}"));
            }
        }
        // A file beside the directories sorts between them as its key does.
        std::fs::write(images.join("img-0001-note"), "x").unwrap();
        expected.push("images/img-0001-note".into());
        expected.sort();
        // Settled long ago, so the listing may be kept between pages.
        let old = std::time::SystemTime::now() - 10 * SETTLED;
        std::fs::File::open(&images)
            .unwrap()
            .set_modified(old)
            .unwrap();
        for max in [1, 7, 1000] {
            assert_eq!(all_keys(&store, "images/", max), expected, "pages of {max}");
        }
        assert!(
            store.listing.lock().unwrap().is_some(),
            "kept for the next page"
        );
        let one: Vec<String> = expected
            .iter()
            .filter(|k| k.starts_with("images/img-0003/"))
            .cloned()
            .collect();
        assert_eq!(all_keys(&store, "images/img-0003/", 1), one);
        // A new image changes the directory: the next listing reads it again.
        std::fs::create_dir_all(images.join("img-0000a")).unwrap();
        std::fs::write(images.join("img-0000a/record.json"), "x").unwrap();
        expected.push("images/img-0000a/record.json".into());
        expected.sort();
        assert_eq!(all_keys(&store, "images/", 13), expected);
        // So does a removed one.
        std::fs::remove_dir_all(images.join("img-0002")).unwrap();
        expected.retain(|k| !k.starts_with("images/img-0002/"));
        assert_eq!(all_keys(&store, "images/", 13), expected);
    }

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
