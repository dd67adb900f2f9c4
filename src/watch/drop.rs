//! The drop directory's convention, and what happens to a file once it is judged.
//!
//! - `NAME.log` or `NAME.out`: a build log, optionally with `NAME.manifest.json` beside it;
//! - `NAME/`: one sub-directory per build, holding `*.log` / `*.out` and optionally
//!   `manifest.json` (or `*.manifest.json`); drop it by renaming the finished directory in;
//! - `NAME.manifest.json` alone: the manifest of a log dropped before (already in `done/`, it
//!   adds what the manifest knows: an enrichment) or after (it waits for its log).
//!
//! Handled items move to `done/` (published), `failed/` (every build failed) or `quarantine/`
//! (invalid input, refused, in conflict, or not a regular file, with `NAME.error` saying why).

use std::path::{Path, PathBuf};

/// Names of the areas inside the drop directory; never taken as builds.
pub(crate) const AREAS: [&str; 3] = ["done", "failed", "quarantine"];
pub(crate) const MANIFEST_SUFFIX: &str = ".manifest.json";

/// The last component of a path as text (empty for `/` or `..`).
pub(crate) fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub(crate) fn is_log(path: &Path) -> bool {
    let name = file_name(path);
    !name.starts_with('.') && (name.ends_with(".log") || name.ends_with(".out"))
}

pub(crate) fn is_manifest(path: &Path) -> bool {
    let name = file_name(path);
    !name.starts_with('.') && name.ends_with(MANIFEST_SUFFIX)
}

/// `NAME.log` → `NAME`.
fn stem(log: &Path) -> Option<String> {
    let name = file_name(log);
    name.strip_suffix(".log")
        .or_else(|| name.strip_suffix(".out"))
        .map(str::to_string)
}

/// The drop item a path in the directory belongs to (the log, the build directory, or a
/// manifest whose log is not there), if any. `dir` must be absolute, like notify's paths.
pub(crate) fn item_for(dir: &Path, path: &Path) -> Option<PathBuf> {
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
    if rel.components().count() > 1 {
        return Some(top);
    }
    // What a name is decides, not what it is on disk: a FIFO named `x.log` is an item (to be
    // set aside), and `symlink_metadata` never follows or opens anything.
    let is_dir = std::fs::symlink_metadata(&top).is_ok_and(|m| m.is_dir());
    if is_dir || is_log(&top) {
        return Some(top);
    }
    let stem = first.strip_suffix(MANIFEST_SUFFIX)?;
    // A manifest beside its log is part of the log's item.
    match ["log", "out"]
        .iter()
        .map(|ext| dir.join(format!("{stem}.{ext}")))
        .find(|p| std::fs::symlink_metadata(p).is_ok())
    {
        Some(log) => Some(log),
        None => Some(top),
    }
}

/// Every item in the directory now (the backlog, or a rescan).
pub(crate) fn scan(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
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

/// `NAME.log` → `NAME.manifest.json`.
pub(crate) fn companion_manifest(log: &Path) -> Option<PathBuf> {
    Some(log.with_file_name(format!("{}{MANIFEST_SUFFIX}", stem(log)?)))
}

/// The log in `done/` that a lone `NAME.manifest.json` belongs to: `NAME.log` / `NAME.out`,
/// or, when that name was taken, the newest `NAME.N.log`.
pub(crate) fn done_log_for(dir: &Path, manifest: &Path) -> Option<PathBuf> {
    let stem = file_name(manifest)
        .strip_suffix(MANIFEST_SUFFIX)?
        .to_string();
    let done = dir.join("done");
    let mut best: Option<(u64, PathBuf)> = None;
    for entry in std::fs::read_dir(&done).ok()?.flatten() {
        let path = entry.path();
        let Some(s) = stem_of_done(&path) else {
            continue;
        };
        let n = if s == stem {
            1
        } else {
            match s
                .strip_prefix(&stem)
                .and_then(|r| r.strip_prefix('.'))
                .and_then(|n| n.parse::<u64>().ok())
            {
                Some(n) => n,
                None => continue,
            }
        };
        if best.as_ref().is_none_or(|(b, _)| n > *b) {
            best = Some((n, path));
        }
    }
    best.map(|(_, p)| p)
}

fn stem_of_done(path: &Path) -> Option<String> {
    if !std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file()) {
        return None;
    }
    stem(path)
}

/// Moves an item into an area; with it, the manifest that was used with it (and only that
/// one: a manifest that arrived later is news for later). Returns the new path. A name
/// already taken gets a numeric suffix: nothing in an area is ever overwritten.
pub(crate) fn move_to(
    dir: &Path,
    area: &str,
    item: &Path,
    manifest: Option<&Path>,
) -> std::io::Result<PathBuf> {
    let target_dir = dir.join(area);
    std::fs::create_dir_all(&target_dir)?;
    let target = free_name(&target_dir, &file_name(item));
    // The log first: if we die between the two renames, the manifest left behind is a lone
    // manifest whose log is in an area, which the next start handles (`adopt_orphans`, or as
    // an enrichment for done/), and the log is never re-read without its manifest.
    std::fs::rename(item, &target)?;
    if let Some(m) = manifest {
        let name = match companion_manifest(&target) {
            Some(beside) if !beside.exists() => beside,
            _ => free_name(&target_dir, &file_name(m)),
        };
        std::fs::rename(m, name)?;
    }
    Ok(target)
}

/// A manifest moved into an area on its own (an enrichment, or one set aside), next to its
/// log when `log` is given.
pub(crate) fn move_manifest(
    dir: &Path,
    area: &str,
    manifest: &Path,
    log: Option<&Path>,
) -> std::io::Result<PathBuf> {
    let target_dir = dir.join(area);
    std::fs::create_dir_all(&target_dir)?;
    let target = match log.and_then(companion_manifest) {
        Some(beside) if !beside.exists() => beside,
        _ => free_name(&target_dir, &file_name(manifest)),
    };
    std::fs::rename(manifest, &target)?;
    Ok(target)
}

fn free_name(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if std::fs::symlink_metadata(&first).is_err() {
        return first;
    }
    // Keep the extension last so the suffixed name is still a log: `packer.2.out`.
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s.to_string(), format!(".{e}")),
        _ => (name.to_string(), String::new()),
    };
    (2..)
        .map(|n| dir.join(format!("{stem}.{n}{ext}")))
        .find(|p| {
            std::fs::symlink_metadata(p).is_err()
                && !companion_manifest(p).is_some_and(|m| m.exists())
        })
        .expect("some name is free")
}

/// A manifest left behind by a crash between the two renames of `move_to`, whose log is in
/// `failed/` or `quarantine/`: it follows its log. (One whose log is in `done/` is handled as an
/// enrichment, which is idempotent when the manifest was used, and right when it was not.)
pub(crate) fn adopt_orphans(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = file_name(&path);
        let Some(stem) = name.strip_suffix(MANIFEST_SUFFIX) else {
            continue;
        };
        let has_log = ["log", "out"]
            .iter()
            .any(|e| dir.join(format!("{stem}.{e}")).exists());
        if has_log {
            continue;
        }
        for area in ["failed", "quarantine"] {
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
pub(crate) fn write_error(moved: &Path, reason: &str) -> std::io::Result<()> {
    let name = file_name(moved);
    let path = moved.with_file_name(format!("{name}.error"));
    std::fs::write(path, format!("{}\n", crate::redact::redact_secrets(reason)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_their_items() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("a.log"), "").unwrap();
        std::fs::write(d.join("a.manifest.json"), "").unwrap();
        std::fs::write(d.join("b.manifest.json"), "").unwrap();
        std::fs::create_dir(d.join("build-1")).unwrap();
        assert_eq!(item_for(d, &d.join("a.log")), Some(d.join("a.log")));
        assert_eq!(
            item_for(d, &d.join("a.manifest.json")),
            Some(d.join("a.log")),
            "beside its log"
        );
        assert_eq!(
            item_for(d, &d.join("b.manifest.json")),
            Some(d.join("b.manifest.json")),
            "alone"
        );
        assert_eq!(
            item_for(d, &d.join("build-1/packer.out")),
            Some(d.join("build-1"))
        );
        assert_eq!(item_for(d, &d.join("done/a.log")), None);
        assert_eq!(item_for(d, &d.join(".hidden.log")), None);
        assert_eq!(item_for(d, &d.join("notes.txt")), None);
        assert_eq!(item_for(d, Path::new("/elsewhere/a.log")), None);
        assert_eq!(
            scan(d).unwrap(),
            [
                d.join("a.log"),
                d.join("b.manifest.json"),
                d.join("build-1")
            ]
        );
    }

    #[test]
    fn a_lone_manifest_finds_the_newest_log_of_its_name_in_done() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("done")).unwrap();
        let m = d.join("x.manifest.json");
        assert_eq!(done_log_for(d, &m), None);
        std::fs::write(d.join("done/x.log"), "").unwrap();
        assert_eq!(done_log_for(d, &m), Some(d.join("done/x.log")));
        std::fs::write(d.join("done/x.3.log"), "").unwrap();
        std::fs::write(d.join("done/x.2.log"), "").unwrap();
        std::fs::write(d.join("done/xy.9.log"), "").unwrap();
        assert_eq!(done_log_for(d, &m), Some(d.join("done/x.3.log")));
    }

    #[test]
    fn moves_never_overwrite_and_take_only_the_manifest_given() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for _ in 0..2 {
            std::fs::write(d.join("a.log"), "log").unwrap();
            std::fs::write(d.join("a.manifest.json"), "m").unwrap();
            move_to(
                d,
                "done",
                &d.join("a.log"),
                Some(&d.join("a.manifest.json")),
            )
            .unwrap();
        }
        assert!(d.join("done/a.log").exists() && d.join("done/a.manifest.json").exists());
        assert!(d.join("done/a.2.log").exists() && d.join("done/a.2.manifest.json").exists());
        std::fs::write(d.join("b.log"), "log").unwrap();
        std::fs::write(d.join("b.manifest.json"), "arrived later").unwrap();
        move_to(d, "done", &d.join("b.log"), None).unwrap();
        assert!(
            d.join("b.manifest.json").exists(),
            "an unused manifest stays"
        );
    }
}
