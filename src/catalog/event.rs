//! The events the FUSE layer and the watcher send to the catalog, and how
//! paths become database keys.
//!
//! Paths are stored as raw bytes (BLOB). SQLite compares BLOBs with `memcmp`,
//! so every path below directory `a` lies in the open interval
//! (`a/`, `a0`) — `'0'` is the byte after `'/'` — which turns "a directory and
//! everything below it" into one index range scan.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// A change reported to the catalog. Paths are relative to the mount root
/// (no leading `/`) and may be any bytes, including non-UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileEvent {
    /// A regular file exists at `path`: insert it, or update size/mtime/ino
    /// keeping its state, last access and other columns.
    Upsert {
        /// File path, relative to the mount root.
        path: PathBuf,
        /// Size in bytes.
        size: u64,
        /// Modification time, nanoseconds since the Unix epoch.
        mtime_ns: i64,
        /// Inode number in the hot directory.
        ino: u64,
    },
    /// `path` no longer exists: drop its row and, if it was a directory,
    /// every row below it.
    Removed {
        /// Removed path, relative to the mount root.
        path: PathBuf,
    },
    /// `from` (a file or a whole directory) was renamed to `to` through the
    /// mount: rows move, keeping their ids and columns; rows previously at or
    /// below `to` are replaced. Then `to` is looked at as [`FileEvent::Gone`]
    /// would (a later rename or unlink may already have taken it away). The
    /// mount sends its renames in the order they happened.
    Renamed {
        /// Old path.
        from: PathBuf,
        /// New path.
        to: PathBuf,
    },
    /// Hint: something may have changed at `path`. The catalog writer looks
    /// at the file itself when it applies the hint (the last look wins): a
    /// regular file is inserted or updated (taking over the row of the file
    /// with its inode if that one is no longer at its old name), a directory
    /// replaces a file row. A missing path changes nothing: every
    /// disappearance is reported by [`FileEvent::Gone`] or a rename.
    Look {
        /// Path, relative to the mount root.
        path: PathBuf,
    },
    /// Hint: `path` may have been removed. Applied like [`FileEvent::Look`],
    /// except that a missing path drops its row and every row below it.
    Gone {
        /// Path, relative to the mount root.
        path: PathBuf,
    },
    /// Hint from the hot-dir watcher: `from` may have been renamed to `to`.
    /// Each row at or below `from` moves only if the file now at its new
    /// name is that row's file (same inode) — so a rename already applied
    /// (the watcher also sees renames made through the mount) moves nothing.
    /// Then `to` and `from` are looked at as [`FileEvent::Look`] and
    /// [`FileEvent::Gone`].
    Moved {
        /// Old path.
        from: PathBuf,
        /// New path.
        to: PathBuf,
    },
    /// A read/open through the mount at `at_ns` (Unix nanoseconds). Coalesced
    /// in memory (latest per path) and written every `access_flush_interval`.
    Accessed {
        /// Accessed path.
        path: PathBuf,
        /// When, in nanoseconds since the Unix epoch.
        at_ns: i64,
    },
}

/// The database key of a relative path: its bytes without leading or
/// trailing `/`. `None` for the root (empty path), which is never a row.
pub fn path_key(path: &Path) -> Option<Vec<u8>> {
    let bytes = path.as_os_str().as_bytes();
    let start = bytes.iter().position(|&b| b != b'/')?;
    let end = bytes.iter().rposition(|&b| b != b'/')? + 1;
    let mut trimmed = &bytes[start..end];
    while let Some(rest) = trimmed.strip_prefix(b"./") {
        trimmed = rest;
    }
    if trimmed.is_empty() || trimmed == b"." {
        return None;
    }
    Some(trimmed.to_vec())
}

/// The exclusive bounds (`key/`, `key0`) of every path strictly below `key`.
pub(crate) fn subtree_bounds(key: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut lo = Vec::with_capacity(key.len() + 1);
    lo.extend_from_slice(key);
    let mut hi = lo.clone();
    lo.push(b'/');
    hi.push(b'0');
    (lo, hi)
}

/// Whether `path` is `key` itself or lies below it.
pub(crate) fn is_at_or_below(path: &[u8], key: &[u8]) -> bool {
    path.strip_prefix(key)
        .is_some_and(|rest| rest.is_empty() || rest[0] == b'/')
}

/// Turns a stored key back into a path.
pub(crate) fn key_to_path(key: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_normalised() {
        assert_eq!(path_key(Path::new("a/b")), Some(b"a/b".to_vec()));
        assert_eq!(path_key(Path::new("/a/b/")), Some(b"a/b".to_vec()));
        assert_eq!(path_key(Path::new("./a")), Some(b"a".to_vec()));
        assert_eq!(path_key(Path::new("")), None);
        assert_eq!(path_key(Path::new("/")), None);
        assert_eq!(path_key(Path::new(".")), None);
        let raw = OsStr::from_bytes(b"d/\xff\xfe");
        assert_eq!(path_key(Path::new(raw)), Some(b"d/\xff\xfe".to_vec()));
    }

    #[test]
    fn subtree_bounds_separate_siblings_with_common_prefix() {
        let (lo, hi) = subtree_bounds(b"a");
        let inside = |p: &[u8]| p > lo.as_slice() && p < hi.as_slice();
        assert!(inside(b"a/b"));
        assert!(inside(b"a/\x00"));
        assert!(inside(b"a/\xff\xff"));
        assert!(!inside(b"a"));
        assert!(!inside(b"a-b"));
        assert!(!inside(b"a0"));
        assert!(!inside(b"a0/x"));
        assert!(!inside(b"ab"));
        assert!(is_at_or_below(b"a/b", b"a"));
        assert!(is_at_or_below(b"a", b"a"));
        assert!(!is_at_or_below(b"a-b", b"a"));
        assert!(!is_at_or_below(b"ab", b"a"));
    }
}
