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
//!
//! Export support (NFS servers, `open_by_handle_at` on the mount): the kernel
//! may ask for an inode by number after it forgot it (a `LOOKUP` of "." in
//! that node). Every forgotten inode leaves its backing file handle in a
//! bounded table ([`FORGOTTEN_MAX`] entries, oldest dropped first), saved to a
//! file at unmount and loaded at start, so numbers resolve again after
//! `drop_caches` and after a clean daemon restart. Each inode's generation
//! number is a digest of its backing file handle (see
//! [`FileHandleBuf::digest`]).

use std::collections::{HashMap, VecDeque};
use std::io::{self, BufRead, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use fuser::{BackingId, INodeNo};
use parking_lot::{Mutex, RwLock, RwLockReadGuard};

use crate::sys::{self, FileHandleBuf};

/// Synthetic inode numbers for foreign filesystems start here.
const FOREIGN_BASE: u64 = 1 << 63;

/// How many forgotten inodes keep their file handle for lookups by number
/// (about 80 bytes each: 20 MiB at most). An NFS client holding a handle to
/// an inode forgotten longer ago gets `ESTALE`.
pub const FORGOTTEN_MAX: usize = 1 << 18;

/// First line of the saved handle map; the root's backing `(dev, ino)` follow.
const HANDLE_MAP_MAGIC: &str = "tierfs-handles 1";

/// File handles of inodes the kernel forgot, by FUSE number, oldest first out.
#[derive(Debug, Default)]
struct Forgotten {
    map: HashMap<u64, (u64, FileHandleBuf)>,
    /// `(ino, seq)` in insertion order; entries whose seq is no longer the
    /// map's are stale and skipped.
    order: VecDeque<(u64, u64)>,
    seq: u64,
}

impl Forgotten {
    fn insert(&mut self, ino: u64, handle: FileHandleBuf) {
        self.seq += 1;
        self.map.insert(ino, (self.seq, handle));
        self.order.push_back((ino, self.seq));
        while self.map.len() > FORGOTTEN_MAX || self.order.len() > 2 * FORGOTTEN_MAX {
            let Some((old, seq)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&old).is_some_and(|(s, _)| *s == seq) {
                self.map.remove(&old);
            }
        }
    }

    fn get(&self, ino: u64) -> Option<&FileHandleBuf> {
        self.map.get(&ino).map(|(_, h)| h)
    }
}

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
    /// Keeps `fd` if the budget allows (or there is no handle to fall back
    /// to); `handle` is `fd`'s file handle.
    fn access_for(&self, fd: OwnedFd, handle: Option<FileHandleBuf>) -> Access {
        if self.held.load(Ordering::Relaxed) < self.max {
            self.held.fetch_add(1, Ordering::Relaxed);
            return Access::Held(fd);
        }
        match handle {
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
    /// Generation number given to the kernel: a digest of the backing file
    /// handle, so a reused backing inode number gets another generation and
    /// an NFS handle of the deleted file fails with `ESTALE` instead of
    /// opening the new one. Not `FS_IOC_GETVERSION`: that ioctl needs a real
    /// open of every file looked up (FIFOs, devices, inotify events), while
    /// the handle (which holds the same on-disk generation on ext4 and xfs,
    /// and the equivalent elsewhere) comes from the `O_PATH` descriptor.
    /// 0 where the filesystem has no handles (and for the root).
    pub generation: u32,
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
        let handle = sys::file_handle(fd.as_fd());
        let mut access = self.access.write();
        self.budget.release(&access);
        *access = self.budget.access_for(fd, handle);
    }

    /// The backing file handle (`None` if its filesystem has none).
    fn handle(&self) -> Option<FileHandleBuf> {
        match &*self.access.read() {
            Access::Held(fd) => sys::file_handle(fd.as_fd()),
            Access::Handle(handle) => Some(handle.clone()),
        }
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
    forgotten: Mutex<Forgotten>,
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
            // The kernel creates the root inode itself, with generation 0.
            generation: 0,
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
            forgotten: Mutex::new(Forgotten::default()),
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
        let handle = sys::file_handle(fd.as_fd());
        let generation = handle.as_ref().map_or(0, FileHandleBuf::digest);
        let mut inodes = self.inodes.write();
        let inode = inodes.entry(ino).or_insert_with(|| {
            Arc::new(Inode {
                ino,
                access: RwLock::new(self.budget.access_for(fd, handle)),
                budget: self.budget.clone(),
                file_type: st.st_mode & libc::S_IFMT,
                generation,
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
        let Some(inode) = inodes.get(&ino) else {
            return;
        };
        // The write lock excludes `remember`, so the count cannot move under us.
        let left = inode.lookups.load(Ordering::Relaxed).saturating_sub(n);
        inode.lookups.store(left, Ordering::Relaxed);
        if left > 0 {
            return;
        }
        let Some(gone) = inodes.remove(&ino) else {
            return;
        };
        drop(inodes);
        // Keep its handle: the kernel may ask for this number again (export support).
        if ino < FOREIGN_BASE
            && let Some(handle) = gone.handle()
        {
            self.forgotten.lock().insert(ino, handle);
        }
    }

    /// Opens (`O_PATH`) the backing inode of a number the kernel forgot, or
    /// that a previous daemon gave out (its handle map was loaded): `None` if
    /// the number is unknown or its file no longer exists.
    pub fn revive(&self, ino: u64) -> Option<OwnedFd> {
        let handle = self.forgotten.lock().get(ino)?.clone();
        let fd = sys::open_handle(self.budget.mount_fd.as_fd(), &handle).ok()?;
        let st = sys::stat_fd(fd.as_fd()).ok()?;
        (self.fuse_ino(st.st_dev, st.st_ino) == ino).then_some(fd)
    }

    /// Writes the file handle of every inode known or forgotten to `path`
    /// (replaced atomically), for [`load`](Self::load) after a restart.
    /// Returns how many were written.
    pub fn save(&self, path: &Path) -> io::Result<usize> {
        let mut entries: Vec<(u64, FileHandleBuf)> = {
            let forgotten = self.forgotten.lock();
            forgotten
                .order
                .iter()
                .filter(|(ino, seq)| forgotten.map.get(ino).is_some_and(|(s, _)| s == seq))
                .filter_map(|(ino, _)| Some((*ino, forgotten.get(*ino)?.clone())))
                .collect()
        };
        let live: Vec<Arc<Inode>> = self.inodes.read().values().cloned().collect();
        entries.extend(
            live.iter()
                .filter(|i| i.ino != INodeNo::ROOT.0 && i.ino < FOREIGN_BASE)
                .filter_map(|i| Some((i.ino, i.handle()?))),
        );
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        {
            let mut w = io::BufWriter::new(tmp.as_file_mut());
            writeln!(
                w,
                "{HANDLE_MAP_MAGIC} {} {}",
                self.root_dev, self.root_backing_ino
            )?;
            for (ino, handle) in &entries {
                writeln!(w, "{ino} {}", handle.to_text())?;
            }
            w.flush()?;
        }
        tmp.as_file().sync_all()?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(entries.len())
    }

    /// Loads a map written by [`save`](Self::save) for the same hot dir
    /// (another's is ignored). Returns how many handles were loaded; a
    /// missing file is 0. Later lines win, and the last [`FORGOTTEN_MAX`] stay.
    pub fn load(&self, path: &Path) -> io::Result<usize> {
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut lines = io::BufReader::new(file).lines();
        let header = format!(
            "{HANDLE_MAP_MAGIC} {} {}",
            self.root_dev, self.root_backing_ino
        );
        if lines.next().transpose()?.as_deref() != Some(header.as_str()) {
            return Ok(0);
        }
        let mut forgotten = self.forgotten.lock();
        let mut n = 0;
        for line in lines {
            let line = line?;
            let Some((ino, handle)) = line.split_once(' ') else {
                continue;
            };
            if let (Ok(ino), Some(handle)) = (ino.parse(), FileHandleBuf::from_text(handle)) {
                forgotten.insert(ino, handle);
                n += 1;
            }
        }
        Ok(n)
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
