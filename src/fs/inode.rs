//! The inode table: which backing inode each FUSE inode number stands for.
//!
//! A FUSE inode number is the backing inode number itself, so `ls -i` through
//! the mount matches the hot dir, hard links share one inode, and numbers stay
//! the same across remounts. Two exceptions keep numbers unique: the hot dir's
//! root is FUSE inode 1 (and a backing inode 1, if any, takes the root's backing
//! number in exchange), and inodes on another filesystem mounted inside the hot
//! dir get synthetic numbers from the top of the range.
//!
//! Each known inode is reached through an `O_PATH` descriptor, so operations
//! reach exactly that inode even if it is renamed. Descriptors are a bounded
//! resource (the kernel may hold millions of inodes, the process may have
//! 20,000 descriptors): up to a budget of half the open-file limit each inode
//! keeps its descriptor; beyond it an inode keeps only its kernel file handle
//! (`name_to_handle_at`) and is opened on demand (`open_by_handle_at`). If a
//! backing inode number is reused while the kernel still holds the old one, the
//! FUSE number follows the file that now has it.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use fuser::{BackingId, INodeNo};
use parking_lot::{Mutex, RwLock, RwLockReadGuard};

use crate::sys::{self, FileHandleBuf};

/// Synthetic inode numbers for foreign filesystems start here.
const FOREIGN_BASE: u64 = 1 << 63;

/// How an inode reaches its backing inode.
#[derive(Debug)]
enum Access {
    /// A held `O_PATH` descriptor (counted against the budget).
    Held(OwnedFd),
    /// A kernel file handle, opened on demand.
    Handle(FileHandleBuf),
}

/// The descriptor budget shared by all inodes.
#[derive(Debug)]
struct Budget {
    /// Any descriptor on the hot dir's filesystem, for `open_by_handle_at`.
    mount_fd: OwnedFd,
    held: AtomicUsize,
    max: usize,
}

impl Budget {
    /// Keeps `fd` if the budget allows (or there is no handle to fall back to).
    fn access_for(&self, fd: OwnedFd) -> Access {
        if self.held.load(Ordering::Relaxed) < self.max {
            self.held.fetch_add(1, Ordering::Relaxed);
            return Access::Held(fd);
        }
        match sys::file_handle(fd.as_fd()) {
            Some(handle) => Access::Handle(handle),
            None => {
                self.held.fetch_add(1, Ordering::Relaxed);
                Access::Held(fd)
            }
        }
    }

    fn release(&self, access: &Access) {
        if matches!(access, Access::Held(_)) {
            self.held.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// A usable descriptor for an inode, valid while this value lives.
pub struct InodeFd<'a>(FdSource<'a>);

enum FdSource<'a> {
    /// The inode's own held descriptor.
    Held(RwLockReadGuard<'a, Access>),
    /// A descriptor opened from the inode's file handle for this use.
    Opened(OwnedFd),
}

impl AsFd for InodeFd<'_> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.0 {
            FdSource::Held(guard) => match &**guard {
                Access::Held(fd) => fd.as_fd(),
                // `fd()` only builds `Held` over `Access::Held`.
                Access::Handle(_) => unreachable!("a held descriptor over a file handle"),
            },
            FdSource::Opened(fd) => fd.as_fd(),
        }
    }
}

/// One inode known to the kernel.
#[derive(Debug)]
pub struct Inode {
    /// FUSE inode number.
    pub ino: u64,
    access: RwLock<Access>,
    budget: Arc<Budget>,
    /// `st_mode & S_IFMT` of the backing inode.
    pub file_type: u32,
    /// How many lookups the kernel holds (decremented by `forget`).
    lookups: AtomicU64,
    /// The passthrough registration shared by all open handles (one per inode).
    pub backing: Mutex<Weak<BackingId>>,
    /// Handles open without passthrough. The kernel refuses a passthrough open
    /// while any exist, so further opens also go through userspace until they close.
    pub cached_opens: std::sync::atomic::AtomicU32,
    /// A read-only handle read from this inode while it was cold: a later
    /// read-only open that reads again recalls it in full.
    pub streamed: std::sync::atomic::AtomicBool,
}

impl Drop for Inode {
    fn drop(&mut self) {
        self.budget.release(&self.access.read());
    }
}

impl Inode {
    /// An `O_PATH` descriptor of the backing inode. Fails (`ESTALE`) only for
    /// an inode known by handle whose backing inode no longer exists.
    pub fn fd(&self) -> io::Result<InodeFd<'_>> {
        let access = self.access.read();
        match &*access {
            Access::Held(_) => Ok(InodeFd(FdSource::Held(access))),
            Access::Handle(handle) => sys::open_handle(self.budget.mount_fd.as_fd(), handle)
                .map(|fd| InodeFd(FdSource::Opened(fd))),
        }
    }

    /// [`fd`](Self::fd) with the error as the errno FUSE returns.
    pub fn path_fd(&self) -> Result<InodeFd<'_>, fuser::Errno> {
        self.fd().map_err(super::errno)
    }

    /// Reaches this inode through `fd` from now on: another name of the same
    /// backing inode (the name it was first known by was unlinked, and
    /// `/proc` paths of the old descriptor say "(deleted)").
    pub fn reach_through(&self, fd: OwnedFd) {
        self.replace_access(fd);
    }

    /// Points this inode at a new backing inode with the same number (the old
    /// one was deleted and its number reused).
    fn replace_access(&self, fd: OwnedFd) {
        let mut access = self.access.write();
        self.budget.release(&access);
        *access = self.budget.access_for(fd);
    }

    /// Whether `fd` refers to the backing inode this one currently stands for.
    fn same_backing(&self, fd: BorrowedFd<'_>) -> bool {
        match &*self.access.read() {
            // A held descriptor pins its inode, so its number cannot be reused.
            Access::Held(_) => true,
            Access::Handle(handle) => sys::file_handle(fd).is_some_and(|h| h == *handle),
        }
    }

    /// Whether this is a regular file.
    pub fn is_regular(&self) -> bool {
        self.file_type == libc::S_IFREG
    }

    /// Whether this is a regular file whose data lives in the cloud.
    pub fn is_stub(&self) -> bool {
        self.is_regular()
            && self
                .fd()
                .is_ok_and(|fd| crate::tier::stub::is_stub(fd.as_fd()))
    }

    /// Whether this is a symbolic link.
    pub fn is_symlink(&self) -> bool {
        self.file_type == libc::S_IFLNK
    }
}

/// Maps backing `(dev, ino)` to FUSE inode numbers and holds the live inodes.
#[derive(Debug)]
pub struct InodeTable {
    budget: Arc<Budget>,
    root_dev: u64,
    root_backing_ino: u64,
    inodes: RwLock<HashMap<u64, Arc<Inode>>>,
    foreign: Mutex<HashMap<(u64, u64), u64>>,
}

impl InodeTable {
    /// Creates the table with the hot dir's root (`fd` is an `O_PATH` handle).
    pub fn new(root_fd: OwnedFd, root_stat: &libc::stat) -> io::Result<InodeTable> {
        // open_by_handle_at wants a real (not O_PATH) descriptor on the filesystem.
        let mount_fd = sys::reopen(root_fd.as_fd(), libc::O_RDONLY | libc::O_DIRECTORY)?.into();
        let budget = Arc::new(Budget {
            mount_fd,
            held: AtomicUsize::new(1),
            max: descriptor_budget(),
        });
        let root = Arc::new(Inode {
            ino: INodeNo::ROOT.0,
            access: RwLock::new(Access::Held(root_fd)),
            budget: budget.clone(),
            file_type: libc::S_IFDIR,
            lookups: AtomicU64::new(1),
            backing: Mutex::new(Weak::new()),
            cached_opens: Default::default(),
            streamed: Default::default(),
        });
        let mut inodes = HashMap::new();
        inodes.insert(INodeNo::ROOT.0, root);
        Ok(InodeTable {
            budget,
            root_dev: root_stat.st_dev,
            root_backing_ino: root_stat.st_ino,
            inodes: RwLock::new(inodes),
            foreign: Mutex::new(HashMap::new()),
        })
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
        let known = self.inodes.read().get(&ino).cloned();
        if let Some(inode) = &known
            && matches!(*inode.access.read(), Access::Held(_))
        {
            inode.lookups.fetch_add(1, Ordering::Relaxed);
            return Ok(inode.clone());
        }
        let fd = open_fd()?;
        if let Some(inode) = known {
            if !inode.same_backing(fd.as_fd()) {
                inode.replace_access(fd);
            }
            inode.lookups.fetch_add(1, Ordering::Relaxed);
            return Ok(inode);
        }
        let mut inodes = self.inodes.write();
        let inode = inodes.entry(ino).or_insert_with(|| {
            Arc::new(Inode {
                ino,
                access: RwLock::new(self.budget.access_for(fd)),
                budget: self.budget.clone(),
                file_type: st.st_mode & libc::S_IFMT,
                lookups: AtomicU64::new(0),
                backing: Mutex::new(Weak::new()),
                cached_opens: Default::default(),
                streamed: Default::default(),
            })
        });
        inode.lookups.fetch_add(1, Ordering::Relaxed);
        Ok(inode.clone())
    }

    /// Records one more kernel lookup of the inode described by `st` if it is
    /// already known and reached through a held descriptor. A held descriptor
    /// pins its backing inode, so `st`'s number cannot belong to another file:
    /// the caller needs no descriptor of its own. `None`: use [`remember`](Self::remember).
    pub fn remember_held(&self, st: &libc::stat) -> Option<Arc<Inode>> {
        let ino = self.fuse_ino(st.st_dev, st.st_ino);
        let inode = self.inodes.read().get(&ino).cloned()?;
        if !matches!(*inode.access.read(), Access::Held(_)) {
            return None;
        }
        inode.lookups.fetch_add(1, Ordering::Relaxed);
        Some(inode)
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

/// How many descriptors inodes may hold: half the open-file limit (the rest
/// is for open files, the catalog and sockets), at most 500,000.
/// `TIERFS_FD_BUDGET` overrides it (tests use a tiny budget to exercise the
/// file-handle path).
fn descriptor_budget() -> usize {
    if let Some(n) = std::env::var("TIERFS_FD_BUDGET")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        return n.max(1);
    }
    // SAFETY: getrlimit fills a local struct.
    let limit = unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur
        } else {
            1024
        }
    };
    ((limit / 2) as usize).clamp(64, 500_000)
}
