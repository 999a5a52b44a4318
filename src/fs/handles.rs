//! Open file and directory handles, keyed by the FUSE file handle number.

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
    pub stub: Option<Arc<super::stub_read::StubReader>>,
}

/// An open directory.
#[derive(Debug)]
pub struct OpenDir {
    /// The directory inode.
    pub inode: Arc<Inode>,
    /// The backing stream; `readdir` calls on one handle are serialised.
    pub stream: Mutex<DirStream>,
}

/// All handles open on the mount.
#[derive(Debug, Default)]
pub struct HandleTable {
    next: AtomicU64,
    files: RwLock<HashMap<u64, Arc<OpenFile>>>,
    dirs: RwLock<HashMap<u64, Arc<OpenDir>>>,
}

impl HandleTable {
    fn next_fh(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Registers an open file and returns its handle number.
    pub fn insert_file(&self, f: OpenFile) -> u64 {
        let fh = self.next_fh();
        self.files.write().insert(fh, Arc::new(f));
        fh
    }

    /// Registers an open directory and returns its handle number.
    pub fn insert_dir(&self, d: OpenDir) -> u64 {
        let fh = self.next_fh();
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
        self.files.write().remove(&fh)
    }

    /// Removes the open directory `fh`.
    pub fn remove_dir(&self, fh: u64) -> Option<Arc<OpenDir>> {
        self.dirs.write().remove(&fh)
    }

    /// Number of open files.
    pub fn open_files(&self) -> usize {
        self.files.read().len()
    }
}
