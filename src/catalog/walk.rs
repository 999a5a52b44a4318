//! Walking the hot directory for regular files.
//!
//! Used by `reconcile` (whole tree) and by the watcher (a directory moved in
//! from outside). Symlinks are never followed, directories on another file
//! system are skipped, and memory stays bounded: only the directories still
//! to visit are kept, never the files found.

use std::ffi::OsStr;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A regular file found by [`walk`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScannedFile {
    /// Path key relative to the walk root.
    pub key: Vec<u8>,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// Inode number.
    pub ino: u64,
}

impl ScannedFile {
    /// Builds an entry from `lstat` data.
    pub(crate) fn new(key: Vec<u8>, meta: &Metadata) -> Self {
        ScannedFile {
            key,
            size: meta.size(),
            mtime_ns: mtime_ns(meta),
            ino: meta.ino(),
        }
    }
}

/// Modification time of `meta` in nanoseconds since the Unix epoch.
pub(crate) fn mtime_ns(meta: &Metadata) -> i64 {
    meta.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(meta.mtime_nsec())
}

/// What a walk could not see.
#[derive(Debug, Default)]
pub(crate) struct WalkReport {
    /// Keys (directories or files) that exist but could not be read; their
    /// catalog rows must be kept rather than treated as deleted.
    pub unreadable: Vec<Vec<u8>>,
}

/// `root` joined with a path key.
pub(crate) fn join(root: &Path, key: &[u8]) -> PathBuf {
    if key.is_empty() {
        root.to_path_buf()
    } else {
        root.join(OsStr::from_bytes(key))
    }
}

/// Calls `visit` for every regular file at or below `root/start` (`start` is
/// a path key; empty for the whole tree). `visit` returns `false` to stop.
///
/// Fails only if `root` or `root/start` cannot be read; problems further down
/// are logged and listed in the report.
pub(crate) fn walk(
    root: &Path,
    start: &[u8],
    mut visit: impl FnMut(ScannedFile) -> bool,
) -> io::Result<WalkReport> {
    // `root` itself may be a symlink to the hot directory; nothing below it is followed.
    let root_dev = fs::metadata(root)?.dev();
    let root_dir = fs::File::open(root)?;
    let mut report = WalkReport::default();
    let mut stack = vec![start.to_vec()];
    while let Some(dir) = stack.pop() {
        let entries = match read_dir_beneath(&root_dir, &dir) {
            Ok(entries) => entries,
            Err(e) if dir == start => return Err(e),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                unreadable(&mut report, root, dir, &e);
                continue;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    unreadable(&mut report, root, dir.clone(), &e);
                    break;
                }
            };
            let mut key = Vec::with_capacity(dir.len() + 1 + entry.file_name().len());
            if !dir.is_empty() {
                key.extend_from_slice(&dir);
                key.push(b'/');
            }
            key.extend_from_slice(entry.file_name().as_bytes());
            let Ok(kind) = entry.file_type() else {
                // d_type unknown and the lstat fallback failed: decide below.
                match entry.metadata() {
                    Ok(meta) => {
                        if !handle(meta, key, root_dev, &mut stack, &mut visit) {
                            return Ok(report);
                        }
                    }
                    Err(e) => vanished_or_unreadable(&mut report, root, key, &e),
                }
                continue;
            };
            if !(kind.is_file() || kind.is_dir()) {
                continue; // symlink, device, fifo, socket
            }
            match entry.metadata() {
                Ok(meta) => {
                    if !handle(meta, key, root_dev, &mut stack, &mut visit) {
                        return Ok(report);
                    }
                }
                Err(e) => vanished_or_unreadable(&mut report, root, key, &e),
            }
        }
    }
    Ok(report)
}

/// Lists the directory `key` below the root open as `root`, reached beneath
/// it without following a symlink (a directory swapped for a symlink during
/// the scan is not listed) and at any depth, even beyond `PATH_MAX`.
/// Entries are listed through `/proc/self/fd/N`, so their metadata is read
/// relative to that directory.
fn read_dir_beneath(root: &fs::File, key: &[u8]) -> io::Result<fs::ReadDir> {
    use std::os::fd::AsFd;
    let fd = if key.is_empty() {
        root.try_clone()?.into()
    } else {
        crate::sys::open_beneath(
            root.as_fd(),
            Path::new(OsStr::from_bytes(key)),
            libc::O_RDONLY | libc::O_DIRECTORY,
        )?
    };
    let proc = crate::sys::proc_path(fd.as_fd());
    fs::read_dir(OsStr::from_bytes(proc.as_bytes()))
}

/// Visits a file or queues a directory; returns `false` if `visit` asked to stop.
fn handle(
    meta: Metadata,
    key: Vec<u8>,
    root_dev: u64,
    stack: &mut Vec<Vec<u8>>,
    visit: &mut impl FnMut(ScannedFile) -> bool,
) -> bool {
    if meta.is_file() {
        return visit(ScannedFile::new(key, &meta));
    }
    if meta.is_dir() {
        if meta.dev() == root_dev {
            stack.push(key);
        } else {
            tracing::debug!(dir = %String::from_utf8_lossy(&key), "skipping directory on another file system");
        }
    }
    true
}

fn vanished_or_unreadable(report: &mut WalkReport, root: &Path, key: Vec<u8>, e: &io::Error) {
    if e.kind() != io::ErrorKind::NotFound {
        unreadable(report, root, key, e);
    }
}

fn unreadable(report: &mut WalkReport, root: &Path, key: Vec<u8>, e: &io::Error) {
    tracing::warn!(path = %join(root, &key).display(), "cannot read during scan, keeping its catalog rows: {e}");
    report.unreadable.push(key);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_regular_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("a/b")).unwrap();
        fs::write(root.join("top"), b"1").unwrap();
        fs::write(root.join("a/b/deep"), b"22").unwrap();
        std::os::unix::fs::symlink("top", root.join("link")).unwrap();
        std::os::unix::fs::symlink(root.join("a"), root.join("dirlink")).unwrap();
        let mut found = Vec::new();
        let report = walk(root, b"", |f| {
            found.push((f.key, f.size));
            true
        })
        .unwrap();
        found.sort();
        assert_eq!(found, vec![(b"a/b/deep".to_vec(), 2), (b"top".to_vec(), 1)]);
        assert!(report.unreadable.is_empty());

        let mut found = Vec::new();
        walk(root, b"a", |f| {
            found.push(f.key);
            true
        })
        .unwrap();
        assert_eq!(found, vec![b"a/b/deep".to_vec()]);
        assert!(walk(root, b"missing", |_| true).is_err());
    }

    #[test]
    fn files_deeper_than_path_max_are_found() {
        use std::os::fd::AsFd;
        let dir = tempfile::tempdir().unwrap();
        let name = "d".repeat(200);
        let mut cur = std::os::fd::OwnedFd::from(fs::File::open(dir.path()).unwrap());
        for _ in 0..24 {
            crate::sys::mkdir_at(cur.as_fd(), OsStr::new(&name), 0o755).unwrap();
            cur = crate::sys::open_at(
                cur.as_fd(),
                OsStr::new(&name),
                libc::O_RDONLY | libc::O_DIRECTORY,
                0,
            )
            .unwrap();
        }
        let f = crate::sys::open_at(
            cur.as_fd(),
            OsStr::new("bottom"),
            libc::O_CREAT | libc::O_WRONLY,
            0o644,
        )
        .unwrap();
        drop(f);
        let mut found = Vec::new();
        let report = walk(dir.path(), b"", |f| {
            found.push(f.key);
            true
        })
        .unwrap();
        assert!(
            report.unreadable.is_empty(),
            "{:?}",
            report.unreadable.len()
        );
        assert_eq!(found.len(), 1);
        assert!(found[0].len() > 4096 && found[0].ends_with(b"/bottom"));
    }
}
