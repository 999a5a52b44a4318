//! The inode table: which backing inode each FUSE inode number stands for.
//!
//! A FUSE inode number is the backing inode number itself, so `ls -i` through
//! the mount matches the hot dir, hard links share one inode, and numbers stay
//! the same across remounts. Two exceptions keep numbers unique: the hot dir's
//! root is FUSE inode 1 (and a backing inode 1, if any, takes the root's backing
//! number in exchange), and inodes on another filesystem mounted inside the hot
//! dir get synthetic numbers from the top of the range.
//!
//! Each known inode holds an `O_PATH` descriptor, so operations reach exactly
//! that inode even if it is renamed, and its backing number cannot be reused
//! while the kernel still refers to it.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use fuser::{BackingId, INodeNo};
use parking_lot::{Mutex, RwLock};

/// Synthetic inode numbers for foreign filesystems start here.
const FOREIGN_BASE: u64 = 1 << 63;

/// One inode known to the kernel.
#[derive(Debug)]
pub struct Inode {
    /// FUSE inode number.
    pub ino: u64,
    /// `O_PATH` descriptor of the backing inode.
    pub fd: OwnedFd,
    /// `st_mode & S_IFMT` of the backing inode.
    pub file_type: u32,
    /// How many lookups the kernel holds (decremented by `forget`).
    lookups: AtomicU64,
    /// The passthrough registration shared by all open handles (one per inode).
    pub backing: Mutex<Weak<BackingId>>,
}

impl Inode {
    /// Borrowed `O_PATH` descriptor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Whether this is a regular file.
    pub fn is_regular(&self) -> bool {
        self.file_type == libc::S_IFREG
    }

    /// Whether this is a regular file whose data lives in the cloud.
    pub fn is_stub(&self) -> bool {
        self.is_regular() && crate::tier::stub::is_stub(self.fd())
    }

    /// Whether this is a symbolic link.
    pub fn is_symlink(&self) -> bool {
        self.file_type == libc::S_IFLNK
    }
}

/// Maps backing `(dev, ino)` to FUSE inode numbers and holds the live inodes.
#[derive(Debug)]
pub struct InodeTable {
    root_dev: u64,
    root_backing_ino: u64,
    inodes: RwLock<HashMap<u64, Arc<Inode>>>,
    foreign: Mutex<HashMap<(u64, u64), u64>>,
}

impl InodeTable {
    /// Creates the table with the hot dir's root (`fd` is an `O_PATH` handle).
    pub fn new(root_fd: OwnedFd, root_stat: &libc::stat) -> InodeTable {
        let root = Arc::new(Inode {
            ino: INodeNo::ROOT.0,
            fd: root_fd,
            file_type: libc::S_IFDIR,
            lookups: AtomicU64::new(1),
            backing: Mutex::new(Weak::new()),
        });
        let mut inodes = HashMap::new();
        inodes.insert(INodeNo::ROOT.0, root);
        InodeTable {
            root_dev: root_stat.st_dev,
            root_backing_ino: root_stat.st_ino,
            inodes: RwLock::new(inodes),
            foreign: Mutex::new(HashMap::new()),
        }
    }

    /// The FUSE inode number for a backing `(dev, ino)`.
    pub fn fuse_ino(&self, dev: u64, backing_ino: u64) -> u64 {
        if dev != self.root_dev {
            let mut foreign = self.foreign.lock();
            let next = FOREIGN_BASE + foreign.len() as u64;
            return *foreign.entry((dev, backing_ino)).or_insert(next);
        }
        self.same_dev_ino(backing_ino)
    }

    /// FUSE number for a backing inode known to be on the hot dir's filesystem
    /// (used for `readdir`, which has no device number).
    pub fn same_dev_ino(&self, backing_ino: u64) -> u64 {
        if backing_ino == self.root_backing_ino {
            INodeNo::ROOT.0
        } else if backing_ino == INodeNo::ROOT.0 {
            self.root_backing_ino
        } else {
            backing_ino
        }
    }

    /// The live inode `ino`, if the kernel knows it.
    pub fn get(&self, ino: u64) -> Option<Arc<Inode>> {
        self.inodes.read().get(&ino).cloned()
    }

    /// Records one more kernel lookup of the inode described by `st`. `open_fd`
    /// is called only if the inode is new, to produce its `O_PATH` handle.
    pub fn remember(
        &self,
        st: &libc::stat,
        open_fd: impl FnOnce() -> std::io::Result<OwnedFd>,
    ) -> std::io::Result<Arc<Inode>> {
        let ino = self.fuse_ino(st.st_dev, st.st_ino);
        if let Some(inode) = self.inodes.read().get(&ino) {
            inode.lookups.fetch_add(1, Ordering::Relaxed);
            return Ok(inode.clone());
        }
        let fd = open_fd()?;
        let mut inodes = self.inodes.write();
        let inode = inodes.entry(ino).or_insert_with(|| {
            Arc::new(Inode {
                ino,
                fd,
                file_type: st.st_mode & libc::S_IFMT,
                lookups: AtomicU64::new(0),
                backing: Mutex::new(Weak::new()),
            })
        });
        inode.lookups.fetch_add(1, Ordering::Relaxed);
        Ok(inode.clone())
    }

    /// Records one more kernel lookup of an inode we already hold (after `link`).
    pub fn add_lookup(&self, inode: &Arc<Inode>) {
        let mut inodes = self.inodes.write();
        let live = inodes.entry(inode.ino).or_insert_with(|| inode.clone());
        live.lookups.fetch_add(1, Ordering::Relaxed);
    }

    /// Drops `n` kernel lookups of `ino`; the inode is released at zero.
    pub fn forget(&self, ino: u64, n: u64) {
        if ino == INodeNo::ROOT.0 {
            return;
        }
        let mut inodes = self.inodes.write();
        if let Some(inode) = inodes.get(&ino) {
            // The write lock excludes `remember`, so the count cannot move under us.
            let left = inode.lookups.load(Ordering::Relaxed).saturating_sub(n);
            inode.lookups.store(left, Ordering::Relaxed);
            if left == 0 {
                inodes.remove(&ino);
            }
        }
    }

    /// Number of inodes the kernel currently holds.
    pub fn len(&self) -> usize {
        self.inodes.read().len()
    }
}
