//! Open file and directory handles, keyed by the FUSE file handle number.
//!
//! Every handle holds a descriptor, so handles are rationed per user: a user
//! other than root may hold at most `mount.max_open_per_user` at once, and
//! all users but root together at most a quarter of the process's open-file
//! limit, so that one user opening a file thousands of times gets `EMFILE`
//! while other users, root, the catalog and the control socket keep their
//! descriptors. The FUSE method that opens a handle names its caller with
//! [`caller`]; handles opened without one (the daemon's own) are not counted.
//! The check and the insert are not one atomic step: concurrent opens by one
//! user may exceed the cap by at most the number of FUSE threads.

use std::cell::Cell;
use std::collections::HashMap;
use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use fuser::BackingId;
use parking_lot::{Mutex, RwLock};

use super::dir::DirStream;
use super::inode::Inode;

/// An open regular file.
#[derive(Debug)]
pub struct OpenFile {
    /// The inode it belongs to (kept alive while open).
    pub inode: Arc<Inode>,
    /// Backing file opened with the caller's flags.
    pub file: File,
    /// Opened for writing: its size and times may change behind our back
    /// (passthrough writes never reach userspace), so re-read them on release.
    pub writable: bool,
    /// Set when a change went through userspace (write, fallocate, truncate).
    pub dirty: AtomicBool,
    /// Keeps the inode's passthrough registration alive while this handle is
    /// open; dropping the last one closes the registration in the kernel.
    /// `None`: reads and writes come through userspace.
    pub passthrough: Option<Arc<BackingId>>,
    /// Set for a read-only handle on a cold file opened before its recall
    /// finished: reads fetch verified chunks from the cloud until it has.
    pub stub: Option<Arc<StubReader>>,
}

/// An open directory.
#[derive(Debug)]
pub struct OpenDir {
    /// The directory inode.
    pub inode: Arc<Inode>,
    /// The backing stream; `readdir` calls on one handle are serialised.
    pub stream: Mutex<DirStream>,
}

thread_local! {
    /// The uid of the request this thread is serving, if it opens handles.
    static CALLER: Cell<Option<u32>> = const { Cell::new(None) };
}

/// Names the user the current thread opens handles for until the guard is
/// dropped (then the previous caller, if any, is restored).
pub fn caller(uid: u32) -> CallerGuard {
    CallerGuard(CALLER.with(|c| c.replace(Some(uid))))
}

/// The user named by [`caller`] on this thread, to carry over to another
/// thread that finishes the open.
pub fn current_caller() -> Option<u32> {
    CALLER.with(Cell::get)
}

/// Restores the previous caller when dropped; see [`caller`].
#[must_use = "the caller is forgotten when the guard is dropped"]
pub struct CallerGuard(Option<u32>);

impl CallerGuard {
    /// Names `uid` (or nobody) as the caller on this thread, like [`caller`].
    pub fn with(uid: Option<u32>) -> CallerGuard {
        CallerGuard(CALLER.with(|c| c.replace(uid)))
    }
}

impl Drop for CallerGuard {
    fn drop(&mut self) {
        let previous = self.0;
        CALLER.with(|c| c.set(previous));
    }
}

/// Default of `mount.max_open_per_user`.
pub const DEFAULT_MAX_OPEN_PER_USER: usize = 4096;

/// Who holds which handle, and how many each user holds.
#[derive(Debug, Default)]
struct Owners {
    by_handle: HashMap<u64, u32>,
    per_user: HashMap<u32, usize>,
    unprivileged: usize,
}

/// All handles open on the mount.
#[derive(Debug)]
pub struct HandleTable {
    next: AtomicU64,
    files: RwLock<HashMap<u64, Arc<OpenFile>>>,
    dirs: RwLock<HashMap<u64, Arc<OpenDir>>>,
    owners: Mutex<Owners>,
    max_per_user: usize,
    max_unprivileged: usize,
}

impl Default for HandleTable {
    fn default() -> Self {
        HandleTable::new(DEFAULT_MAX_OPEN_PER_USER)
    }
}

impl HandleTable {
    /// An empty table allowing each user but root `max_per_user` handles.
    pub fn new(max_per_user: usize) -> HandleTable {
        HandleTable {
            next: AtomicU64::new(0),
            files: RwLock::default(),
            dirs: RwLock::default(),
            owners: Mutex::default(),
            max_per_user: max_per_user.max(1),
            max_unprivileged: unprivileged_budget(),
        }
    }

    /// Fails with `EMFILE` if the current caller (see [`caller`]) may not
    /// open another handle. Call before opening the backing descriptor.
    pub fn admit(&self) -> Result<(), fuser::Errno> {
        let Some(uid) = current_caller() else {
            return Ok(());
        };
        if uid == 0 {
            return Ok(());
        }
        let owners = self.owners.lock();
        let held = owners.per_user.get(&uid).copied().unwrap_or(0);
        if held >= self.max_per_user || owners.unprivileged >= self.max_unprivileged {
            drop(owners);
            tracing::debug!(
                uid,
                held,
                "open refused: the user holds the most handles allowed (mount.max_open_per_user)"
            );
            return Err(fuser::Errno::EMFILE);
        }
        Ok(())
    }

    /// How many handles `uid` holds.
    #[cfg(test)]
    pub fn held_by(&self, uid: u32) -> usize {
        self.owners.lock().per_user.get(&uid).copied().unwrap_or(0)
    }

    fn charge(&self, fh: u64) {
        let Some(uid) = current_caller() else {
            return;
        };
        if uid == 0 {
            return;
        }
        let mut owners = self.owners.lock();
        owners.by_handle.insert(fh, uid);
        *owners.per_user.entry(uid).or_default() += 1;
        owners.unprivileged += 1;
    }

    fn refund(&self, fh: u64) {
        let mut owners = self.owners.lock();
        let Some(uid) = owners.by_handle.remove(&fh) else {
            return;
        };
        owners.unprivileged = owners.unprivileged.saturating_sub(1);
        if let Some(n) = owners.per_user.get_mut(&uid) {
            *n -= 1;
            if *n == 0 {
                owners.per_user.remove(&uid);
            }
        }
    }

    fn next_fh(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Registers an open file and returns its handle number.
    /// Counts it against the current caller (see [`caller`]).
    pub fn insert_file(&self, f: OpenFile) -> u64 {
        let fh = self.next_fh();
        self.charge(fh);
        self.files.write().insert(fh, Arc::new(f));
        fh
    }

    /// Registers an open directory and returns its handle number. Counts it
    /// against the current caller (see [`caller`]).
    pub fn insert_dir(&self, d: OpenDir) -> u64 {
        let fh = self.next_fh();
        self.charge(fh);
        self.dirs.write().insert(fh, Arc::new(d));
        fh
    }

    /// The open file `fh`.
    pub fn file(&self, fh: u64) -> Option<Arc<OpenFile>> {
        self.files.read().get(&fh).cloned()
    }

    /// The open directory `fh`.
    pub fn dir(&self, fh: u64) -> Option<Arc<OpenDir>> {
        self.dirs.read().get(&fh).cloned()
    }

    /// Removes and returns the open file `fh`.
    pub fn remove_file(&self, fh: u64) -> Option<Arc<OpenFile>> {
        let f = self.files.write().remove(&fh);
        if f.is_some() {
            self.refund(fh);
        }
        f
    }

    /// Removes the open directory `fh`.
    pub fn remove_dir(&self, fh: u64) -> Option<Arc<OpenDir>> {
        let d = self.dirs.write().remove(&fh);
        if d.is_some() {
            self.refund(fh);
        }
        d
    }

    /// Number of open files.
    pub fn open_files(&self) -> usize {
        self.files.read().len()
    }
}

/// How many handles users other than root may hold together: a quarter of
/// the open-file limit (inodes may take half, see `inode.rs`), leaving the
/// rest to root, the catalog, the control socket and transfers.
fn unprivileged_budget() -> usize {
    // SAFETY: getrlimit fills a local struct.
    let limit = unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur
        } else {
            1024
        }
    };
    ((limit / 4) as usize).max(16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_handle() -> OpenDir {
        let root = crate::sys::open_at(
            std::os::fd::AsFd::as_fd(&std::fs::File::open("/").unwrap()),
            std::ffi::OsStr::new("."),
            libc::O_PATH | libc::O_DIRECTORY,
            0,
        )
        .unwrap();
        let st = crate::sys::stat_fd(std::os::fd::AsFd::as_fd(&root)).unwrap();
        let table = super::super::inode::InodeTable::new(root, &st).unwrap();
        let ino = table.get(1).unwrap();
        let fd = crate::sys::open_at(
            std::os::fd::AsFd::as_fd(&std::fs::File::open("/").unwrap()),
            std::ffi::OsStr::new("."),
            libc::O_RDONLY | libc::O_DIRECTORY,
            0,
        )
        .unwrap();
        OpenDir {
            inode: ino,
            stream: Mutex::new(DirStream::new(fd).unwrap()),
        }
    }

    #[test]
    fn each_user_is_capped_and_root_is_not() {
        let t = HandleTable::new(2);
        let mut held = Vec::new();
        {
            let _c = caller(1000);
            for _ in 0..2 {
                t.admit().unwrap();
                held.push(t.insert_dir(dir_handle()));
            }
            assert_eq!(t.admit(), Err(fuser::Errno::EMFILE));
        }
        {
            let _c = caller(1001);
            t.admit().unwrap();
        }
        {
            let _c = caller(0);
            for _ in 0..3 {
                t.admit().unwrap();
                t.insert_dir(dir_handle());
            }
        }
        assert_eq!(t.held_by(1000), 2);
        t.remove_dir(held[0]);
        assert_eq!(t.held_by(1000), 1);
        let _c = caller(1000);
        t.admit().unwrap();
        assert_eq!(current_caller(), Some(1000));
    }
}

/// The cloud side of a read-only handle on a cold file.
#[derive(Debug)]
pub struct StubReader {
    pub(super) fill: crate::tier::FillReader,
    /// Set once this handle served a read.
    pub(super) read_any: std::sync::atomic::AtomicBool,
}

impl StubReader {
    /// What the cold file is: size, chunks, holes, copies.
    pub fn source(&self) -> &crate::tier::StubSource {
        self.fill.fill().source()
    }
}
