//! Looking at one drop item and saying what it is: ready to publish, all builds failed, still
//! being written, gone, not a regular file, unreadable, or invalid.
//!
//! Nothing here can block: items are examined with `symlink_metadata` (never following a
//! link), opened with `O_NONBLOCK | O_NOFOLLOW`, and checked again with `fstat` once open, so a
//! FIFO named `x.log` (or a file swapped for one) is set aside, never waited on. A log is
//! parsed again only when its size, modification time or inode changed since the last look.

use super::drop;
use crate::parse::{self, Parsed, lines::LineReader};
use crate::record::{BuildResult, Record};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The timing rules the judge applies.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules {
    /// A written (not renamed-in) log must have been quiet this long to count as finished.
    pub(crate) settle: Duration,
    /// Quiet this long, an unfinished log is taken as it is, and a lone manifest or an
    /// unreadable file is set aside.
    pub(crate) incomplete_timeout: Duration,
    /// `--once`: judge what is there now; nothing waits to become quiet.
    pub(crate) once: bool,
}

/// What the schedule tells the judge about an item.
#[derive(Debug, Clone, Default)]
pub(crate) struct Context {
    /// It arrived by a rename into the directory: complete as soon as its content says so.
    pub(crate) renamed_in: bool,
    /// How long the watcher has known about it.
    pub(crate) known_for: Duration,
    /// The last look, to skip parsing what did not change.
    pub(crate) previous: Option<Look>,
}

/// One file's identity and version: if none of these changed, neither did the content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub(crate) len: u64,
    pub(crate) mtime: SystemTime,
    pub(crate) inode: u64,
}

/// What the last look found, remembered by the schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Look {
    pub(crate) stamps: Vec<(PathBuf, Stamp)>,
    /// The content's own verdict: every build reported and no artifact block is cut off
    /// (`Ok(true)`), not yet (`Ok(false)`), or invalid (`Err`).
    pub(crate) content: Result<bool, String>,
}

/// A manifest that was read with a log: moved with it only if it is still this file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UsedManifest {
    pub(crate) path: PathBuf,
    pub(crate) stamp: Stamp,
}

#[derive(Debug)]
pub(crate) enum Verdict {
    /// Finished, with at least one image.
    Ready {
        records: Vec<Record>,
        manifest: Option<UsedManifest>,
    },
    /// Finished, and every build failed.
    AllFailed {
        records: Vec<Record>,
        manifest: Option<UsedManifest>,
    },
    /// A lone manifest whose log was published before: the log's records, joined with it.
    Enrich { log: PathBuf, records: Vec<Record> },
    /// Not yet: still being written, not quiet long enough, or a manifest waiting for its log.
    Wait(String),
    /// It is not there any more (or is now part of another item).
    Gone,
    /// Not something sigcat reads (a FIFO, a socket, a device, a symlink), or unreadable past
    /// the timeout: set aside, with the reason.
    SetAside(String),
    /// Cannot be read now (permissions); tried again, and set aside after the timeout.
    Unreadable(String),
    /// The input is invalid: quarantined with the reason.
    Invalid(String),
}

fn kind_of(ft: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_symlink() {
        "a symbolic link"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_char_device() || ft.is_block_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

fn stamp(m: &std::fs::Metadata) -> Stamp {
    Stamp {
        len: m.len(),
        mtime: m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        inode: m.ino(),
    }
}

fn not_regular(path: &Path, ft: &std::fs::FileType) -> String {
    format!(
        "{} is {}; only regular files (and build directories) are taken",
        super::shown(path),
        kind_of(ft)
    )
}

/// Opens a regular file for reading without following links or blocking on a FIFO, and
/// checks what was opened.
pub(crate) fn open_regular(path: &Path) -> Result<std::fs::File, Verdict> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Verdict::Gone,
            std::io::ErrorKind::PermissionDenied => {
                Verdict::Unreadable(format!("{}: {e}", super::shown(path)))
            }
            _ if e.raw_os_error() == Some(libc::ELOOP) => Verdict::SetAside(format!(
                "{} is a symbolic link; only regular files (and build directories) are taken",
                super::shown(path)
            )),
            _ => Verdict::Unreadable(format!("{}: {e}", super::shown(path))),
        })?;
    let meta = file
        .metadata()
        .map_err(|e| Verdict::Unreadable(format!("{}: {e}", super::shown(path))))?;
    if !meta.is_file() {
        return Err(Verdict::SetAside(not_regular(path, &meta.file_type())));
    }
    Ok(file)
}

/// The regular files of an item: its logs and manifest, each stamped.
struct Parts {
    logs: Vec<(PathBuf, Stamp)>,
    manifest: Option<(PathBuf, Stamp)>,
    /// The newest modification among them (and the directory's).
    newest: SystemTime,
}

fn parts(item: &Path) -> Result<Parts, Verdict> {
    let meta = match std::fs::symlink_metadata(item) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Verdict::Gone),
        Err(e) => return Err(Verdict::Unreadable(format!("{}: {e}", super::shown(item)))),
    };
    let regular = |p: &Path| -> Result<Option<Stamp>, Verdict> {
        match std::fs::symlink_metadata(p) {
            Ok(m) if m.is_file() => Ok(Some(stamp(&m))),
            Ok(m) => Err(Verdict::SetAside(not_regular(p, &m.file_type()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Verdict::Unreadable(format!("{}: {e}", super::shown(p)))),
        }
    };
    let mut out = Parts {
        logs: Vec::new(),
        manifest: None,
        newest: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
    };
    if meta.is_dir() {
        let entries = std::fs::read_dir(item)
            .map_err(|e| Verdict::Unreadable(format!("{}: {e}", super::shown(item))))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let name = drop::file_name(&path);
            if name == "manifest.json" || drop::is_manifest(&path) {
                if let Some(s) = regular(&path)? {
                    out.manifest = Some((path, s));
                }
            } else if drop::is_log(&path)
                && let Some(s) = regular(&path)?
            {
                out.logs.push((path, s));
            }
        }
        out.logs.sort_by(|a, b| a.0.cmp(&b.0));
    } else if meta.is_file() {
        out.logs.push((item.to_path_buf(), stamp(&meta)));
        if let Some(m) = drop::companion_manifest(item)
            && let Some(s) = regular(&m)?
        {
            out.manifest = Some((m, s));
        }
    } else {
        return Err(Verdict::SetAside(not_regular(item, &meta.file_type())));
    }
    for (_, s) in out.logs.iter().chain(out.manifest.iter()) {
        out.newest = out.newest.max(s.mtime);
    }
    Ok(out)
}

fn read_log(path: &Path) -> Result<Parsed, Verdict> {
    let file = open_regular(path)?;
    let source = path.display().to_string();
    parse::parse_stream(&mut LineReader::new(file), &source, None)
        .map_err(|e| Verdict::Invalid(crate::error::chain(&e)))
}

fn join_manifest(parsed: &mut Parsed, manifest: &Path) -> Result<(), String> {
    let builds = parse::read_manifest(manifest).map_err(|e| crate::error::chain(&e))?;
    let warnings = parse::manifest::join(
        &mut parsed.records,
        &builds,
        &manifest.display().to_string(),
    )
    .map_err(|e| e.to_string())?;
    parsed.warnings.extend(warnings);
    Ok(())
}

fn finished(p: &Parsed) -> bool {
    p.incomplete.is_empty() && !p.ended_inside_block
}

/// Judges one item. Returns the verdict and what to remember of this look.
pub(crate) fn judge(item: &Path, rules: Rules, ctx: &Context) -> (Verdict, Option<Look>) {
    if drop::is_manifest(item) {
        return (judge_manifest(item, rules, ctx), None);
    }
    let parts = match parts(item) {
        Ok(p) => p,
        Err(v) => return (v, None),
    };
    let quiet = SystemTime::now()
        .duration_since(parts.newest)
        .unwrap_or_default();
    let settled = rules.once || ctx.renamed_in || quiet >= rules.settle;
    let forced = quiet >= rules.incomplete_timeout;
    if parts.logs.is_empty() {
        let why = "no *.log or *.out file in the build directory".to_string();
        return (
            if settled {
                Verdict::Invalid(why)
            } else {
                Verdict::Wait(why)
            },
            None,
        );
    }
    let stamps: Vec<(PathBuf, Stamp)> = parts
        .logs
        .iter()
        .chain(parts.manifest.iter())
        .cloned()
        .collect();
    // Unchanged since the last look and not yet due to be taken: no need to read it again.
    if let Some(prev) = &ctx.previous
        && prev.stamps == stamps
        && !forced
    {
        match &prev.content {
            Ok(false) => {
                return (
                    Verdict::Wait("unchanged since the last look; still being written?".into()),
                    Some(prev.clone()),
                );
            }
            Err(why) if !settled => return (Verdict::Wait(why.clone()), Some(prev.clone())),
            Ok(true) if !settled => {
                return (Verdict::Wait(quiet_for(quiet, rules)), Some(prev.clone()));
            }
            _ => {}
        }
    }
    let mut all = Parsed::default();
    for (log, _) in &parts.logs {
        match read_log(log) {
            Ok(p) => all.extend(p),
            Err(Verdict::Invalid(why)) => {
                let look = Look {
                    stamps,
                    content: Err(why.clone()),
                };
                let verdict = if settled {
                    Verdict::Invalid(why)
                } else {
                    Verdict::Wait(why)
                };
                return (verdict, Some(look));
            }
            Err(other) => return (other, None),
        }
    }
    let look = Look {
        stamps,
        content: Ok(finished(&all)),
    };
    if !finished(&all) && !forced {
        let what = if all.incomplete.is_empty() {
            "the last artifact block".to_string()
        } else {
            all.incomplete.join(", ")
        };
        return (
            Verdict::Wait(format!("still being written? no result yet for {what}")),
            Some(look),
        );
    }
    if !settled {
        return (Verdict::Wait(quiet_for(quiet, rules)), Some(look));
    }
    let mut used = None;
    if let Some((manifest, s)) = &parts.manifest {
        if let Err(why) = join_manifest(&mut all, manifest) {
            return (Verdict::Invalid(why), Some(look));
        }
        used = Some(UsedManifest {
            path: manifest.clone(),
            stamp: s.clone(),
        });
    }
    let verdict = if all.records.iter().any(Record::has_image) {
        Verdict::Ready {
            records: all.records,
            manifest: used,
        }
    } else if !all.records.is_empty()
        && all
            .records
            .iter()
            .all(|r| r.result != BuildResult::Succeeded)
    {
        Verdict::AllFailed {
            records: all.records,
            manifest: used,
        }
    } else if all.incomplete.is_empty() {
        Verdict::Invalid("no Azure artifact in the log (not a Packer build log?)".into())
    } else {
        Verdict::Invalid(format!(
            "truncated: no result for {} after {:?} without a change",
            all.incomplete.join(", "),
            rules.incomplete_timeout
        ))
    };
    (verdict, Some(look))
}

fn quiet_for(quiet: Duration, rules: Rules) -> String {
    format!(
        "finished, but written {:.1} s ago: taken once quiet for {:?} (or renamed in)",
        quiet.as_secs_f64(),
        rules.settle
    )
}

/// A manifest with no log beside it: for a log already published (an enrichment), or one that
/// has not arrived yet.
fn judge_manifest(manifest: &Path, rules: Rules, ctx: &Context) -> Verdict {
    let meta = match std::fs::symlink_metadata(manifest) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Verdict::Gone,
        Err(e) => return Verdict::Unreadable(format!("{}: {e}", super::shown(manifest))),
    };
    if !meta.is_file() {
        return Verdict::SetAside(not_regular(manifest, &meta.file_type()));
    }
    let dir = manifest.parent().unwrap_or(Path::new("."));
    if let Some(item) = drop::item_for(dir, manifest)
        && item != manifest
    {
        return Verdict::Gone; // its log arrived: the manifest is part of the log's item now
    }
    let quiet = SystemTime::now()
        .duration_since(meta.modified().unwrap_or(SystemTime::UNIX_EPOCH))
        .unwrap_or_default();
    let settled = rules.once || ctx.renamed_in || quiet >= rules.settle;
    let Some(log) = drop::done_log_for(dir, manifest) else {
        return if ctx.known_for >= rules.incomplete_timeout {
            Verdict::Invalid(format!(
                "a manifest whose log ({}) never arrived in {:?}",
                drop::file_name(manifest).replace(drop::MANIFEST_SUFFIX, ".log"),
                rules.incomplete_timeout
            ))
        } else {
            Verdict::Wait("a manifest waiting for its log".into())
        };
    };
    if !settled {
        return Verdict::Wait(quiet_for(quiet, rules));
    }
    let mut parsed = match read_log(&log) {
        Ok(p) => p,
        Err(Verdict::Invalid(why)) => return Verdict::Invalid(format!("its log in done/: {why}")),
        Err(other) => return other,
    };
    if let Err(why) = join_manifest(&mut parsed, manifest) {
        return Verdict::Invalid(why);
    }
    Verdict::Enrich {
        log,
        records: parsed.records,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: Rules = Rules {
        settle: Duration::from_secs(2),
        incomplete_timeout: Duration::from_secs(600),
        once: false,
    };

    fn fixture(path: &str) -> Vec<u8> {
        std::fs::read(format!("{}/fixtures/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    fn set_mtime(path: &Path, ago: Duration) {
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(SystemTime::now() - ago)
            .unwrap();
    }

    #[test]
    fn a_finished_log_is_ready_once_quiet_or_renamed_in() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("a.log");
        std::fs::write(&log, fixture("console/sig-ubuntu-2404.log")).unwrap();
        let (v, look) = judge(&log, RULES, &Context::default());
        assert!(
            matches!(v, Verdict::Wait(ref w) if w.contains("quiet")),
            "{v:?}"
        );
        let renamed = Context {
            renamed_in: true,
            ..Context::default()
        };
        assert!(matches!(
            judge(&log, RULES, &renamed).0,
            Verdict::Ready { .. }
        ));
        // Quiet now, and unchanged: taken without the caller having to say anything else.
        set_mtime(&log, Duration::from_secs(5));
        let ctx = Context {
            previous: look,
            ..Context::default()
        };
        assert!(matches!(judge(&log, RULES, &ctx).0, Verdict::Ready { .. }));
    }

    #[test]
    fn an_unfinished_log_waits_and_is_not_read_again_while_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("a.log");
        let text = fixture("console/sig-ubuntu-2404.log");
        // Cut at the start of a line inside the artifact block.
        let cut = String::from_utf8_lossy(&text)
            .find("ManagedImageLocation")
            .unwrap();
        std::fs::write(&log, &text[..cut]).unwrap();
        set_mtime(&log, Duration::from_secs(30));
        let (v, look) = judge(&log, RULES, &Context::default());
        assert!(
            matches!(v, Verdict::Wait(ref w) if w.contains("still being written")),
            "{v:?}"
        );
        let look = look.unwrap();
        assert_eq!(look.content, Ok(false));
        // The same stamps: the verdict comes from the memory of the last look.
        let ctx = Context {
            previous: Some(look),
            ..Context::default()
        };
        assert!(
            matches!(judge(&log, RULES, &ctx).0, Verdict::Wait(ref w) if w.contains("unchanged"))
        );
        // Untouched past the timeout: taken as it is.
        set_mtime(&log, Duration::from_secs(700));
        assert!(!matches!(judge(&log, RULES, &ctx).0, Verdict::Wait(_)));
    }

    #[test]
    fn what_is_not_a_regular_file_is_set_aside_without_being_opened() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("x.log");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        assert!(
            matches!(judge(&fifo, RULES, &Context::default()).0, Verdict::SetAside(ref w) if w.contains("FIFO"))
        );
        let link = dir.path().join("l.log");
        std::os::unix::fs::symlink("/etc/hostname", &link).unwrap();
        assert!(
            matches!(judge(&link, RULES, &Context::default()).0, Verdict::SetAside(ref w) if w.contains("symbolic link"))
        );
        assert!(
            matches!(open_regular(&fifo), Err(Verdict::SetAside(_))),
            "even when opened directly"
        );
        assert!(matches!(
            judge(&dir.path().join("gone.log"), RULES, &Context::default()).0,
            Verdict::Gone
        ));
    }

    #[test]
    fn a_lone_manifest_enriches_its_published_log_or_waits_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let m = d.join("a.manifest.json");
        std::fs::write(&m, fixture("manifest/manifest.json")).unwrap();
        let renamed = Context {
            renamed_in: true,
            ..Context::default()
        };
        assert!(
            matches!(judge(&m, RULES, &renamed).0, Verdict::Wait(ref w) if w.contains("waiting for its log"))
        );
        let late = Context {
            known_for: Duration::from_secs(601),
            ..renamed.clone()
        };
        assert!(
            matches!(judge(&m, RULES, &late).0, Verdict::Invalid(ref w) if w.contains("never arrived"))
        );
        std::fs::create_dir(d.join("done")).unwrap();
        std::fs::write(d.join("done/a.log"), fixture("console/sig-ubuntu-2404.log")).unwrap();
        match judge(&m, RULES, &renamed).0 {
            Verdict::Enrich { log, records } => {
                assert_eq!(log, d.join("done/a.log"));
                assert_eq!(records[0].kubernetes_version.as_deref(), Some("1.30.3"));
            }
            other => panic!("{other:?}"),
        }
        // With its log back in the directory, it is part of the log's item.
        std::fs::write(d.join("a.log"), "").unwrap();
        assert!(matches!(judge(&m, RULES, &renamed).0, Verdict::Gone));
    }
}
