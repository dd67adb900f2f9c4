//! The local-directory backend: the embedded default, so the catalog works on a fresh machine
//! with nothing else running. Writes are a temporary file renamed into place (atomic);
//! conditional writes hold an exclusive lock on a per-object lock file, so that publishers in
//! other processes are serialised just as Azure's ETags serialise them.

use super::store::{PutMode, Store, StoreError, Versioned};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalStore { root: root.into() }
    }

    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        if key.is_empty()
            || key.starts_with('/')
            || key
                .split('/')
                .any(|p| p.is_empty() || p == "." || p == "..")
        {
            return Err(StoreError::Permanent(format!("invalid object key `{key}`")));
        }
        Ok(self.root.join(key))
    }
}

/// The local ETag: a hash of the content, so it changes whenever the content does.
fn etag(bytes: &[u8]) -> String {
    format!("\"{:x}\"", Sha256::digest(bytes))
}

fn io_error(path: &Path, e: std::io::Error) -> StoreError {
    let message = format!("{}: {e}", path.display());
    match e.kind() {
        std::io::ErrorKind::Interrupted
        | std::io::ErrorKind::TimedOut
        | std::io::ErrorKind::WouldBlock => StoreError::Transient(message),
        _ => StoreError::Permanent(message),
    }
}

fn read(path: &Path) -> Result<Option<Versioned>, StoreError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(Versioned {
            etag: etag(&bytes),
            bytes,
        })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(path, e)),
    }
}

fn put_blocking(path: &Path, bytes: &[u8], mode: &PutMode) -> Result<String, StoreError> {
    let io = |e| io_error(path, e);
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
    let current = read(path)?;
    match (mode, &current) {
        (PutMode::Create, Some(_)) => return Err(StoreError::Conflict(path.display().to_string())),
        (PutMode::IfMatch(_), None) => {
            return Err(StoreError::Conflict(path.display().to_string()));
        }
        (PutMode::IfMatch(expected), Some(cur)) if *expected != cur.etag => {
            return Err(StoreError::Conflict(path.display().to_string()));
        }
        _ => {}
    }
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // The rename is durable only once the directory is.
        std::fs::File::open(dir)?.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    Ok(etag(bytes))
}

fn list_blocking(root: &Path, prefix: &str) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_error(&dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| io_error(&dir, e))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue; // lock and temporary files
            }
            if entry.file_type().map_err(|e| io_error(&path, e))?.is_dir() {
                stack.push(path);
            } else if let Ok(rel) = path.strip_prefix(root) {
                let key = rel.to_string_lossy().replace('\\', "/");
                if key.starts_with(prefix) {
                    out.push(key);
                }
            }
        }
    }
    Ok(out)
}

impl Store for LocalStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let path = self.path(key)?;
        tokio::task::spawn_blocking(move || read(&path))
            .await
            .map_err(|e| StoreError::Permanent(e.to_string()))?
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, mode: PutMode) -> Result<String, StoreError> {
        let path = self.path(key)?;
        tokio::task::spawn_blocking(move || put_blocking(&path, &bytes, &mode))
            .await
            .map_err(|e| StoreError::Permanent(e.to_string()))?
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let (root, prefix) = (self.root.clone(), prefix.to_string());
        tokio::task::spawn_blocking(move || list_blocking(&root, &prefix))
            .await
            .map_err(|e| StoreError::Permanent(e.to_string()))?
    }

    fn describe(&self) -> String {
        self.root.display().to_string()
    }
}
