//! What the engine's parts share: the hot dir, the catalog, the remotes, the
//! open/release gate, per-file locks, progress, events and the stop flag.

use crate::catalog::tiering::Rewritten;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::error::io_err;
use super::gate::Gate;
use super::{Progress, TierError, failpoint, stop};
use crate::catalog::Catalog;
use crate::events::{Event, Events, LedgerEntry};
use crate::remote::Remote;
use crate::sys;

/// The context every part of the engine works in.
pub(super) struct Core {
    pub(super) hot_dir: PathBuf,
    pub(super) hot_fd: OwnedFd,
    pub(super) catalog: Catalog,
    pub(super) remotes: BTreeMap<String, Remote>,
    pub(super) gate: Arc<Gate>,
    /// One lock per file, by identity: recalls, stream give-backs, discards
    /// and the end of a release of one file run one at a time.
    pub(super) locks: FileLocks,
    pub(super) progress: Arc<Progress>,
    pub(super) events: Events,
    pub(super) invalidate: std::sync::OnceLock<Invalidator>,
    pub(super) stop: stop::Stop,
}

impl Core {
    /// Opens `rel` (relative to the hot dir) beneath the hot dir without
    /// following a symlink anywhere on the way, without blocking (a FIFO or
    /// device swapped in is opened `O_NONBLOCK` and refused), and only if it
    /// is a regular file ([`TierError::NotRegular`] otherwise). The pause
    /// point `opening` lets a test change the tree between a plan and this.
    pub(super) fn open_rel(&self, rel: &Path, flags: i32) -> Result<File, TierError> {
        failpoint::pause("opening");
        let fd = sys::open_beneath(self.hot_fd.as_fd(), rel, flags).map_err(io_err(rel, "open"))?;
        let st = sys::stat_fd(fd.as_fd()).map_err(io_err(rel, "stat"))?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(TierError::NotRegular {
                path: rel.to_path_buf(),
            });
        }
        Ok(File::from(fd))
    }

    /// Records billable requests (the cost ledger).
    pub(super) fn bill(&self, entry: LedgerEntry) {
        self.events.emit(Event::Billed(entry));
    }

    /// Starts the progress counters of a new job.
    pub(super) fn reset_progress(&self, files: u64, bytes: u64) {
        let p = &self.progress;
        p.files_total.store(files, Ordering::Relaxed);
        p.bytes_total.store(bytes, Ordering::Relaxed);
        p.files_done.store(0, Ordering::Relaxed);
        p.bytes_done.store(0, Ordering::Relaxed);
    }

    /// The file's attributes now that the engine has rewritten it, for the
    /// state transition that ends the rewrite.
    pub(super) fn rewritten(rel: &Path, file: &File) -> Result<Rewritten, TierError> {
        let st = sys::stat_fd(file.as_fd()).map_err(io_err(rel, "stat"))?;
        Ok(Rewritten {
            size: st.st_size as u64,
            mtime_ns: mtime_ns(&st),
            ino: st.st_ino,
        })
    }
}

/// Tells the kernel that inode `ino`'s attributes and pages changed behind
/// its back; the sender is answered once it is done.
pub type Invalidator = Box<dyn Fn(u64, tokio::sync::oneshot::Sender<()>) + Send + Sync>;

/// Longest wait for the kernel to take an invalidation.
const INVALIDATE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

impl Core {
    /// Invalidates inode `ino` in the kernel and waits (at most
    /// [`INVALIDATE_WAIT`], without blocking the runtime) until it is done.
    pub(super) async fn invalidate(&self, ino: u64) {
        let Some(invalidate) = self.invalidate.get() else {
            return;
        };
        let (done, taken) = tokio::sync::oneshot::channel();
        invalidate(ino, done);
        if tokio::time::timeout(INVALIDATE_WAIT, taken).await.is_err() {
            tracing::debug!(
                ino,
                "kernel invalidation still pending; attributes refresh within attr_timeout"
            );
        }
    }
}

/// Identity of a file in the hot dir: (device, inode). Unlike its path it
/// survives renames, and no two files open at once share it.
pub(super) type FileId = (u64, u64);

/// The [`FileId`] of an open file.
pub(super) fn file_id(file: &File) -> std::io::Result<FileId> {
    use std::os::unix::fs::MetadataExt;
    let meta = file.metadata()?;
    Ok((meta.dev(), meta.ino()))
}

/// Per-file locks by identity (see [`Core::locks`]).
#[derive(Debug, Default)]
pub(super) struct FileLocks {
    by_file: parking_lot::Mutex<HashMap<FileId, Arc<tokio::sync::Mutex<()>>>>,
}

/// Holds one file's lock; forgets the lock when nobody else holds or waits.
pub(super) struct FileGuard<'a> {
    locks: &'a FileLocks,
    id: FileId,
    lock: Arc<tokio::sync::Mutex<()>>,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl FileLocks {
    /// Waits for file `id`'s lock.
    pub(super) async fn lock(&self, id: FileId) -> FileGuard<'_> {
        let lock = self.by_file.lock().entry(id).or_default().clone();
        let guard = lock.clone().lock_owned().await;
        FileGuard {
            locks: self,
            id,
            lock,
            guard: Some(guard),
        }
    }

    /// Whether file `id`'s lock is held or awaited (a recall runs or waits).
    pub(super) fn is_busy(&self, id: FileId) -> bool {
        self.by_file.lock().contains_key(&id)
    }
}

impl Drop for FileGuard<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut map = self.locks.by_file.lock();
        // Only the map and this guard hold the lock: nobody waits for it.
        if Arc::strong_count(&self.lock) <= 2 {
            map.remove(&self.id);
        }
    }
}

/// Nanoseconds since the Unix epoch, now.
pub(super) fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// The time `ns` nanoseconds from the Unix epoch.
pub(super) fn time_from_ns(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

/// A file's modification time in nanoseconds, as the catalog records it.
pub(super) fn mtime_ns(st: &libc::stat) -> i64 {
    st.st_mtime.saturating_mul(1_000_000_000) + st.st_mtime_nsec
}

/// Parses a content hash the catalog holds as hex.
pub(super) fn parse_hash(hex: &str, path: &Path) -> Result<blake3::Hash, TierError> {
    blake3::Hash::from_hex(hex).map_err(|e| TierError::Io {
        path: path.to_path_buf(),
        op: "read content hash",
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
    })
}
