//! The drop directory's convention, and what happens to a file once it is judged.
//!
//! - `NAME.log` or `NAME.out`: a build log, optionally with `NAME.manifest.json` beside it;
//! - `NAME/`: one sub-directory per build, holding `*.log` / `*.out` and optionally
//!   `manifest.json` (or `*.manifest.json`); drop it by renaming the finished directory in.
//!
//! Handled items move to `done/` (published, or nothing to publish), `failed/` (every build
//! failed) or `quarantine/` (invalid input, with `NAME.error` saying why).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Names of the areas inside the drop directory; never taken as builds.
pub const AREAS: [&str; 3] = ["done", "failed", "quarantine"];

/// The last component of a path as text (empty for `/` or `..`).
fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub fn is_log(path: &Path) -> bool {
    let name = file_name(path);
    !name.starts_with('.') && (name.ends_with(".log") || name.ends_with(".out"))
}

/// The drop item a path belongs to (the log or the build directory), if any.
pub fn item_for(dir: &Path, path: &Path) -> Option<PathBuf> {
    let rel = path.strip_prefix(dir).ok()?;
    let first = rel
        .components()
        .next()?
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    if first.starts_with('.') || AREAS.contains(&first.as_str()) {
        return None;
    }
    let top = dir.join(&first);
    if rel.components().count() > 1 || top.is_dir() {
        return Some(top);
    }
    if is_log(&top) {
        return Some(top);
    }
    // A manifest arriving after its log: look at the log again.
    let stem = first.strip_suffix(".manifest.json")?;
    ["log", "out"]
        .iter()
        .map(|ext| dir.join(format!("{stem}.{ext}")))
        .find(|p| p.exists())
}

/// Every item in the directory now (the backlog, or a rescan).
pub fn scan(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut items = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if let Some(item) = item_for(dir, &path)
            && item == path
        {
            items.push(item);
        }
    }
    items.sort();
    Ok(items)
}

/// The logs and the manifest of an item.
pub struct Parts {
    pub logs: Vec<PathBuf>,
    pub manifest: Option<PathBuf>,
}

pub fn parts(item: &Path) -> std::io::Result<Parts> {
    if item.is_dir() {
        let mut logs = Vec::new();
        let mut manifest = None;
        for entry in std::fs::read_dir(item)? {
            let path = entry?.path();
            let name = file_name(&path);
            if name == "manifest.json" || name.ends_with(".manifest.json") {
                manifest = Some(path);
            } else if is_log(&path) {
                logs.push(path);
            }
        }
        logs.sort();
        return Ok(Parts { logs, manifest });
    }
    let manifest = companion_manifest(item).filter(|m| m.exists());
    Ok(Parts {
        logs: vec![item.to_path_buf()],
        manifest,
    })
}

/// `NAME.log` → `NAME.manifest.json`.
pub fn companion_manifest(log: &Path) -> Option<PathBuf> {
    let name = log.file_name()?.to_string_lossy().into_owned();
    let stem = name
        .strip_suffix(".log")
        .or_else(|| name.strip_suffix(".out"))?;
    Some(log.with_file_name(format!("{stem}.manifest.json")))
}

/// How long since anything in the item last changed.
pub fn quiet_for(item: &Path) -> Duration {
    let mut newest = SystemTime::UNIX_EPOCH;
    let mut consider = |p: &Path| {
        if let Ok(m) = std::fs::metadata(p).and_then(|m| m.modified()) {
            newest = newest.max(m);
        }
    };
    consider(item);
    if let Ok(parts) = parts(item) {
        parts.logs.iter().for_each(|p| consider(p));
        if let Some(m) = &parts.manifest {
            consider(m);
        }
    }
    SystemTime::now().duration_since(newest).unwrap_or_default()
}

/// Moves an item (and a manifest beside it) into an area; returns the new path. A name
/// already taken there gets a numeric suffix: nothing in an area is ever overwritten.
pub fn move_to(dir: &Path, area: &str, item: &Path) -> std::io::Result<PathBuf> {
    let target_dir = dir.join(area);
    std::fs::create_dir_all(&target_dir)?;
    let name = file_name(item);
    let target = free_name(&target_dir, &name);
    // The log first: if we die between the two renames, the orphaned manifest is moved on the
    // next start (see `adopt_orphans`), and the log is never re-read without its manifest.
    std::fs::rename(item, &target)?;
    if !item.is_dir()
        && let Some(m) = companion_manifest(item).filter(|m| m.exists())
        && let Some(target_manifest) = companion_manifest(&target)
    {
        std::fs::rename(m, target_manifest)?;
    }
    Ok(target)
}

fn free_name(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if !first.exists() {
        return first;
    }
    // Keep the extension last so the suffixed name is still a log: `packer.2.out`.
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s.to_string(), format!(".{e}")),
        _ => (name.to_string(), String::new()),
    };
    (2..)
        .map(|n| dir.join(format!("{stem}.{n}{ext}")))
        .find(|p| !p.exists() && !companion_manifest(p).is_some_and(|m| m.exists()))
        .expect("some name is free")
}

/// A manifest left behind by a crash between the two renames of `move_to`.
pub fn adopt_orphans(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = file_name(&path);
        let Some(stem) = name.strip_suffix(".manifest.json") else {
            continue;
        };
        let has_log = ["log", "out"]
            .iter()
            .any(|e| dir.join(format!("{stem}.{e}")).exists());
        if has_log {
            continue;
        }
        for area in AREAS {
            let moved = ["log", "out"]
                .iter()
                .map(|e| dir.join(area).join(format!("{stem}.{e}")))
                .find(|p| p.exists());
            if let Some(log) = moved
                && let Some(target) = companion_manifest(&log)
                && !target.exists()
            {
                std::fs::rename(&path, target)?;
                break;
            }
        }
    }
    Ok(())
}

/// Writes `quarantine/NAME.error` next to a quarantined item.
pub fn write_error(moved: &Path, reason: &str) -> std::io::Result<()> {
    let name = file_name(moved);
    let path = moved.with_file_name(format!("{name}.error"));
    std::fs::write(path, format!("{}\n", crate::redact::redact_secrets(reason)))
}
