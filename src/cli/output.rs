//! Where a command's result goes: stdout, or a file.
//!
//! A regular file is replaced atomically (a temporary file beside it, created exclusively with
//! an unpredictable name by `tempfile`, then renamed), so readers see the old file or the whole
//! new one. Anything else is written through, never replaced: a FIFO or a device (`/dev/null`,
//! `/dev/stdout`) is opened and written, and a symlink's target is updated while the link
//! stays a link.

use super::exit::Exit;
use super::failure::Failure;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes to stdout. A reader that went away (`| head`) ends the command quietly, as ripgrep
/// does: there is nobody left to tell.
pub fn print(bytes: &[u8]) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(Failure::Quiet(Exit::Ok)),
        Err(e) => Err(sigcat::Error::io("<stdout>", e).into()),
    }
}

/// Writes to `path` when given, else to stdout.
pub fn write(path: Option<&Path>, bytes: &[u8]) -> Result<(), Failure> {
    match path {
        Some(path) => write_file(path, bytes)
            .map_err(|e| sigcat::Error::io(path.display().to_string(), e).into()),
        None => print(bytes),
    }
}

/// Follows symlinks to the file they name (which may not exist yet).
fn resolve(path: &Path) -> std::io::Result<PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&current) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = std::fs::read_link(&current)?;
                current = match current.parent() {
                    Some(dir) if target.is_relative() => dir.join(target),
                    _ => target,
                };
            }
            _ => return Ok(current),
        }
    }
    Err(std::io::Error::other("too many levels of symbolic links"))
}

pub fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let target = resolve(path)?;
    let existing = std::fs::metadata(&target).ok();
    if let Some(m) = &existing {
        if m.is_dir() {
            return Err(std::io::Error::other("is a directory"));
        }
        if !m.is_file() {
            // A FIFO, a device or a socket: written through. Replacing it would destroy it
            // (as root, `-o /dev/null` would replace the system's node).
            let mut f = std::fs::OpenOptions::new().write(true).open(&target)?;
            return f.write_all(bytes).and_then(|()| f.flush());
        }
    }
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // Created 0666 less the umask (open(2) applies it), like a plain `File::create`; a file
    // being replaced keeps its mode.
    use std::os::unix::fs::PermissionsExt;
    let mut tmp = tempfile::Builder::new()
        .prefix(".sigcat-")
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    if let Some(m) = existing {
        tmp.as_file().set_permissions(m.permissions())?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(&target).map_err(|e| e.error)?;
    Ok(())
}
