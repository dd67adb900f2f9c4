//! Where a command's result goes: stdout, or a file.
//!
//! A regular file is replaced atomically (a temporary file beside it, created exclusively with
//! an unpredictable name by `tempfile`, then renamed), so readers see the old file or the whole
//! new one. Anything else is written through, never replaced: a FIFO or a device (`/dev/null`,
//! `/dev/stdout`) is opened and written, and a symlink's target is updated while the link
//! stays a link.

use super::failure::Failure;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes to stdout. A reader that went away (`| head`) ends the command quietly, as ripgrep
/// does: there is nobody left to tell.
pub(crate) fn print(bytes: &[u8]) -> Result<(), Failure> {
    write(None, bytes)
}

/// Writes to `path` when given, else to stdout.
pub(crate) fn write(path: Option<&Path>, bytes: &[u8]) -> Result<(), Failure> {
    let mut sink = Sink::open(path)?;
    sink.write(bytes)?;
    sink.finish()
}

/// Where a path leads: the file its symlinks name (which may not exist yet), and whether a hop
/// went through `/proc` or `/dev/fd` (`/dev/stdout` is `/proc/self/fd/1`): such a link names an
/// open file (a pipe, a terminal, a file the shell opened), which is written, never replaced.
fn resolve(path: &Path) -> std::io::Result<(PathBuf, bool)> {
    let mut current = path.to_path_buf();
    let mut open_file = false;
    for _ in 0..40 {
        if current.starts_with("/proc") || current.starts_with("/dev/fd") {
            open_file = true;
        }
        match std::fs::symlink_metadata(&current) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = std::fs::read_link(&current)?;
                current = match current.parent() {
                    Some(dir) if target.is_relative() => dir.join(target),
                    _ => target,
                };
            }
            _ => return Ok((current, open_file)),
        }
    }
    Err(std::io::Error::other("too many levels of symbolic links"))
}

/// Where a result is being written, a piece at a time: stdout, a file written through (a FIFO,
/// a device, an open file behind `/dev/stdout`), or a temporary file that replaces a regular
/// file when it is finished (and is removed, leaving the old file, if it never is).
pub(crate) enum Sink {
    /// Standard output.
    Stdout(std::io::StdoutLock<'static>),
    /// Written through.
    Through(std::fs::File, PathBuf),
    /// Renamed over `target` on finish.
    Replace {
        /// The temporary file beside the target.
        tmp: tempfile::NamedTempFile,
        /// The file it replaces.
        target: PathBuf,
        /// The path as given, for messages.
        shown: PathBuf,
    },
}

impl Sink {
    /// Opens `path` for writing, or stdout when there is none.
    pub(crate) fn open(path: Option<&Path>) -> Result<Sink, Failure> {
        let Some(path) = path else {
            return Ok(Sink::Stdout(std::io::stdout().lock()));
        };
        open_file(path).map_err(|e| sigcat::Error::io(path.display().to_string(), e).into())
    }

    /// Writes a piece.
    pub(crate) fn write(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        let (result, shown) = match self {
            Sink::Stdout(out) => (out.write_all(bytes), Path::new("<stdout>")),
            Sink::Through(f, shown) => (f.write_all(bytes), shown.as_path()),
            Sink::Replace { tmp, shown, .. } => (tmp.write_all(bytes), shown.as_path()),
        };
        match result {
            Ok(()) => Ok(()),
            // A reader that went away (`| head`) ends the command quietly, as ripgrep does.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(Failure::Quiet(None)),
            Err(e) => Err(sigcat::Error::io(shown.display().to_string(), e).into()),
        }
    }

    /// Makes what was written visible: flushed, or the regular file replaced whole.
    pub(crate) fn finish(self) -> Result<(), Failure> {
        let io = |shown: &Path, e: std::io::Error| -> Failure {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Failure::Quiet(None);
            }
            sigcat::Error::io(shown.display().to_string(), e).into()
        };
        match self {
            Sink::Stdout(mut out) => out.flush().map_err(|e| io(Path::new("<stdout>"), e)),
            Sink::Through(mut f, shown) => f.flush().map_err(|e| io(&shown, e)),
            Sink::Replace { tmp, target, shown } => {
                tmp.as_file().sync_all().map_err(|e| io(&shown, e))?;
                tmp.persist(&target).map_err(|e| io(&shown, e.error))?;
                Ok(())
            }
        }
    }
}

/// A regular file is replaced atomically; anything else (a FIFO, a device, an open file
/// behind `/dev/stdout`) is written through.
fn open_file(path: &Path) -> std::io::Result<Sink> {
    let (target, open_file) = resolve(path)?;
    if open_file {
        // Appending is what the shell's `>` and `>>` both expect of a write to their file.
        let f = std::fs::OpenOptions::new().append(true).open(path)?;
        return Ok(Sink::Through(f, path.to_path_buf()));
    }
    let existing = std::fs::metadata(&target).ok();
    if let Some(m) = &existing {
        if m.is_dir() {
            return Err(std::io::Error::other("is a directory"));
        }
        if !m.is_file() {
            // A FIFO, a device or a socket: written through. Replacing it would destroy it
            // (as root, `--output-file /dev/null` would replace the system's node).
            let f = std::fs::OpenOptions::new().write(true).open(&target)?;
            return Ok(Sink::Through(f, path.to_path_buf()));
        }
    }
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // Created 0666 less the umask (open(2) applies it), like a plain `File::create`; a file
    // being replaced keeps its mode.
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::Builder::new()
        .prefix(".sigcat-")
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)?;
    if let Some(m) = existing {
        tmp.as_file().set_permissions(m.permissions())?;
    }
    Ok(Sink::Replace {
        tmp,
        target,
        shown: path.to_path_buf(),
    })
}

/// Writes a directory of files (`--as kustomize DIR`) so that DIR holds the old set or the
/// whole new one, never a mix: the files go to a fresh directory beside it, which then takes
/// DIR's place (an atomic exchange where the filesystem offers one). A DIR that exists must be
/// empty or hold a `kustomization.yaml` that starts with `marker` (an earlier run's), so that a
/// typo cannot replace someone's directory.
pub(crate) fn write_dir(
    dir: &Path,
    files: &[(String, String)],
    marker: &str,
) -> Result<(), Failure> {
    let (target, _) = resolve(dir).map_err(|e| sigcat::Error::io(dir.display().to_string(), e))?;
    let shown = dir.display().to_string();
    let exists = match std::fs::metadata(&target) {
        Ok(m) if m.is_dir() => true,
        Ok(_) => {
            return Err(Failure::Usage(format!(
                "{shown} exists and is not a directory; --as kustomize needs a directory"
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(sigcat::Error::io(shown, e).into()),
    };
    // The directory is replaced by renaming a new one over it, which cannot be done to the
    // directory a process (this one) works in, nor to the root.
    let here = std::env::current_dir().and_then(|d| d.canonicalize()).ok();
    if exists
        && let Ok(real) = target.canonicalize()
        && (Some(&real) == here.as_ref() || real.parent().is_none())
    {
        return Err(Failure::Usage(format!(
            "{shown} is the current directory (or /): --as kustomize replaces its directory whole, so give a subdirectory, e.g. --as kustomize upgrade"
        )));
    }
    if exists
        && let Some(why) = not_ours(&target, marker).map_err(|e| sigcat::Error::io(&shown, e))?
    {
        return Err(Failure::Usage(format!(
            "{shown}: {why}; nothing was replaced (choose a new or empty directory, or move that file away)"
        )));
    }
    let mut files = files.to_vec();
    let record: String = files
        .iter()
        .map(|(path, content)| {
            format!(
                "{}  {path}\n",
                sigcat::catalog::objects::sha256(content.as_bytes())
            )
        })
        .collect();
    files.push((WRITTEN.to_string(), record));
    swap_in(&target, &files, exists).map_err(|e| sigcat::Error::io(shown, e).into())
}

/// The record of what `--as kustomize` wrote into a directory (sha256 and path per line): the
/// next run replaces the directory only if it holds exactly that.
const WRITTEN: &str = ".sigcat-written";

/// Why `dir` may not be replaced (a file sigcat did not write, or one changed since), or
/// `None` when it holds only what sigcat wrote (or nothing).
fn not_ours(dir: &Path, marker: &str) -> std::io::Result<Option<String>> {
    let mut found = Vec::new();
    walk(dir, Path::new(""), &mut found)?;
    if found.is_empty() {
        return Ok(None);
    }
    let written = match std::fs::read_to_string(dir.join(WRITTEN)) {
        Ok(text) => Some(
            text.lines()
                .filter_map(|l| l.split_once("  "))
                .map(|(sha, path)| (path.to_string(), sha.to_string()))
                .collect::<std::collections::HashMap<_, _>>(),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let Some(written) = written else {
        // Written by a sigcat from before the record: its own layout, and nothing else.
        let ours = std::fs::read_to_string(dir.join("kustomization.yaml"))
            .is_ok_and(|text| text.lines().next() == Some(marker));
        if !ours {
            return Ok(Some(
                "it is not empty and was not written by `sigcat render --as kustomize`".into(),
            ));
        }
        return Ok(found
            .iter()
            .find(|p| {
                let p = p.to_string_lossy();
                !(p == "kustomization.yaml"
                    || ["new/", "current/", "patches/"]
                        .iter()
                        .any(|d| p.starts_with(d) && !p[d.len()..].contains('/')))
            })
            .map(|p| format!("{} was not written by sigcat", p.display())));
    };
    for path in &found {
        let name = path.to_string_lossy();
        if name == WRITTEN {
            continue;
        }
        match written.get(name.as_ref()) {
            None => return Ok(Some(format!("{name} was not written by sigcat"))),
            Some(sha) => {
                let bytes = std::fs::read(dir.join(path))?;
                if &sigcat::catalog::objects::sha256(&bytes) != sha {
                    return Ok(Some(format!("{name} was changed since sigcat wrote it")));
                }
            }
        }
    }
    Ok(None)
}

/// Every entry under `dir` that is not a directory (files, links, anything else), relative.
fn walk(dir: &Path, relative: &Path, found: &mut Vec<std::path::PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir.join(relative))? {
        let entry = entry?;
        let path = relative.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            walk(dir, &path, found)?;
            if std::fs::read_dir(dir.join(&path))?.next().is_none() {
                found.push(path);
            }
        } else {
            found.push(path);
        }
    }
    Ok(())
}

fn swap_in(target: &Path, files: &[(String, String)], exists: bool) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let parent = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let fresh = tempfile::Builder::new()
        .prefix(".sigcat-")
        .tempdir_in(parent)?;
    std::fs::set_permissions(fresh.path(), std::fs::Permissions::from_mode(0o755))?;
    for (relative, content) in files {
        let path = fresh.path().join(relative);
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d)?;
        }
        let mut f = std::fs::File::create(&path)?;
        f.write_all(content.as_bytes())?;
        f.sync_all()?;
    }
    if !exists {
        std::fs::rename(fresh.path(), target)?;
        // Renamed away: nothing left for the guard to delete.
        let _ = fresh.keep();
        return Ok(());
    }
    if exchange(fresh.path(), target).is_err() {
        // No RENAME_EXCHANGE here (some network filesystems): move the old one aside first.
        let aside = tempfile::Builder::new()
            .prefix(".sigcat-old-")
            .tempdir_in(parent)?;
        std::fs::rename(target, aside.path())?;
        std::fs::rename(fresh.path(), target)?;
        let _ = fresh.keep();
        return Ok(()); // `aside` (the old files) is removed when dropped.
    }
    Ok(()) // `fresh` now holds the old files and is removed when dropped.
}

fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let a = std::ffi::CString::new(a.as_os_str().as_bytes())?;
    let b = std::ffi::CString::new(b.as_os_str().as_bytes())?;
    // SAFETY: both are valid NUL-terminated paths; renameat2 reads them and nothing else.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
