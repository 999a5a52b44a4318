//! The FUSE adapter: a faithful passthrough of the hot directory.
//!
//! [`TierFs`] implements `fuser::Filesystem`. Each trait method is a thin shim
//! that calls an inherent method returning `Result<_, Errno>` and turns the
//! result into the reply; the inherent methods live in files grouped by job:
//! `namespace` (names: lookup, create, rename, link…), `file_ops` (open files
//! and attributes), `dir_ops` (directory streams) and `xattr`.
//!
//! Hot files are opened with FUSE passthrough: after `open`, reads, writes and
//! mmap go straight from the kernel to the backing file and never reach this
//! process. Userspace read/write remain as a fallback when the kernel refuses
//! passthrough. Nothing here touches the network; catalog updates are handed to
//! a [`ChangeFeed`] that must never block.

mod attr;
mod dir;
mod dir_ops;
mod dosattrib;
mod file_ops;
mod handles;
mod inode;
mod namespace;
pub mod readahead;
mod stub_read;
use crate::sys;
mod xattr;

use std::ffi::OsStr;
use std::io;
use std::os::fd::AsFd;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, CopyFileRangeFlags, Errno, FileHandle, Filesystem, FopenFlags, Generation,
    INodeNo, InitFlags, KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyLseek, ReplyOpen,
    ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

pub use crate::catalog::FileEvent;
use handles::HandleTable;
use inode::{Inode, InodeTable};

/// Where the mount reports file changes. The daemon passes the catalog; the
/// implementation must return immediately (FUSE request threads call it).
pub trait ChangeFeed: Send + Sync + 'static {
    /// Records one change.
    fn send(&self, event: FileEvent);
}

impl ChangeFeed for crate::catalog::Catalog {
    fn send(&self, event: FileEvent) {
        crate::catalog::Catalog::send(self, event);
    }
}

/// The tiering engine as the mount uses it: recalls run on `runtime`, never
/// on a FUSE request thread.
#[derive(Clone)]
pub struct Tiering {
    /// The engine.
    pub tier: Arc<crate::tier::Tier>,
    /// Where recalls run.
    pub runtime: tokio::runtime::Handle,
}

/// Tunables for the mount.
#[derive(Clone)]
pub struct FsOptions {
    /// How long the kernel may cache attributes and directory entries.
    pub attr_timeout: Duration,
    /// Ask the kernel for FUSE passthrough (falls back to userspace I/O if refused).
    pub passthrough: bool,
    /// Tiering: stubs are recalled on open. `None` serves the hot dir only.
    pub tiering: Option<Tiering>,
    /// Most handles one user other than root may hold open (`EMFILE` beyond).
    pub max_open_per_user: usize,
    /// Where the backing file handles of the inode numbers given out are
    /// saved at unmount and loaded at start, so NFS handles survive a daemon
    /// restart. `None`: not kept.
    pub handle_map: Option<PathBuf>,
}

impl Default for FsOptions {
    fn default() -> Self {
        FsOptions {
            attr_timeout: Duration::from_secs(1),
            passthrough: true,
            tiering: None,
            max_open_per_user: handles::DEFAULT_MAX_OPEN_PER_USER,
            handle_map: None,
        }
    }
}

/// Live counters shared with the daemon's status endpoint.
#[derive(Debug, Default)]
pub struct FsStats {
    /// Whether the kernel accepted FUSE passthrough.
    pub passthrough: AtomicBool,
    /// Files currently open through the mount.
    pub open_files: AtomicU64,
    /// Inodes the kernel currently holds.
    pub inodes: AtomicU64,
}

/// The passthrough filesystem over a hot directory. Cheap to clone into
/// background tasks (everything lives in [`FsShared`]).
#[derive(Clone)]
pub struct TierFs {
    shared: Arc<FsShared>,
}

impl std::ops::Deref for TierFs {
    type Target = FsShared;
    fn deref(&self) -> &FsShared {
        &self.shared
    }
}

/// State shared by the FUSE request threads and background tasks.
pub struct FsShared {
    hot_dir: PathBuf,
    inodes: InodeTable,
    handles: HandleTable,
    feed: Arc<dyn ChangeFeed>,
    ttl: Duration,
    want_passthrough: bool,
    stats: Arc<FsStats>,
    warned_passthrough: AtomicBool,
    tiering: Option<Tiering>,
    gate: Arc<crate::tier::gate::Gate>,
    /// Held across a rename and its report to the catalog (see `do_rename`).
    rename_order: parking_lot::Mutex<()>,
    /// See [`FsOptions::handle_map`].
    handle_map: Option<PathBuf>,
}

impl std::fmt::Debug for TierFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TierFs")
            .field("hot_dir", &self.hot_dir)
            .finish_non_exhaustive()
    }
}

/// Result type of the inherent operations.
type FsResult<T> = Result<T, Errno>;

/// Converts an I/O error to the errno FUSE returns (EIO if it has none).
fn errno(e: io::Error) -> Errno {
    match e.raw_os_error() {
        Some(code) if code > 0 => Errno::from_i32(code),
        _ => Errno::EIO,
    }
}

impl TierFs {
    /// Prepares a filesystem serving `hot_dir` (must be an existing directory).
    pub fn new(
        hot_dir: &Path,
        feed: Arc<dyn ChangeFeed>,
        options: FsOptions,
    ) -> io::Result<(TierFs, Arc<FsStats>)> {
        let root_fd = sys::open_at(
            cwd(),
            hot_dir.as_os_str(),
            libc::O_PATH | libc::O_DIRECTORY,
            0,
        )?;
        let root_stat = sys::stat_fd(root_fd.as_fd())?;
        let stats = Arc::new(FsStats::default());
        let inodes = InodeTable::new(root_fd, &root_stat)?;
        if let Some(path) = &options.handle_map {
            match inodes.load(path) {
                Ok(n) => tracing::debug!(handles = n, path = %path.display(), "loaded handle map"),
                Err(e) => tracing::warn!(error = %e, path = %path.display(),
                    "cannot read the handle map; NFS handles from before the restart will be stale"),
            }
        }
        let fs = FsShared {
            hot_dir: hot_dir.to_path_buf(),
            inodes,
            handles: HandleTable::new(options.max_open_per_user),
            feed,
            ttl: options.attr_timeout,
            want_passthrough: options.passthrough,
            stats: stats.clone(),
            warned_passthrough: AtomicBool::new(false),
            gate: options
                .tiering
                .as_ref()
                .map(|t| t.tier.gate().clone())
                .unwrap_or_default(),
            tiering: options.tiering,
            rename_order: parking_lot::Mutex::new(()),
            handle_map: options.handle_map,
        };
        Ok((
            TierFs {
                shared: Arc::new(fs),
            },
            stats,
        ))
    }
}

impl FsShared {
    /// The live inode `ino`; an unknown number means the kernel and we disagree.
    fn inode(&self, ino: INodeNo) -> FsResult<Arc<Inode>> {
        self.inodes.get(ino.0).ok_or(Errno::ESTALE)
    }

    /// The generation number of live inode `ino` for an entry reply.
    fn generation(&self, ino: INodeNo) -> Generation {
        Generation(
            self.inodes
                .get(ino.0)
                .map_or(0, |i| u64::from(i.generation)),
        )
    }

    /// Path of an inode relative to the mount root, as the kernel currently
    /// knows it (`None` once unlinked, or outside the hot dir).
    fn rel_path(&self, inode: &Inode) -> Option<PathBuf> {
        if inode.ino == INodeNo::ROOT.0 {
            return Some(PathBuf::new());
        }
        let fd = inode.fd().ok()?;
        // A handle-opened descriptor may name a disconnected dentry: its path
        // then lies outside the hot dir and the caller skips the event.
        let abs = sys::fd_path(fd.as_fd()).ok()?;
        if abs.as_bytes().ends_with(b" (deleted)") {
            drop(fd);
            return self.another_name(inode);
        }
        match Path::new(&abs).strip_prefix(&self.hot_dir) {
            Ok(rel) => Some(rel.to_path_buf()),
            // A file reopened from its handle (after the kernel forgot it, or
            // beyond the descriptor budget) may have no connected path yet.
            Err(_) => {
                drop(fd);
                self.another_name(inode)
            }
        }
    }

    /// The name an inode first known by a name since unlinked still has
    /// (a hard link made before), or the name of a file reopened from its
    /// handle without a connected path: found through the catalog, and the
    /// inode is reached through it from now on. `None` for a file with no name
    /// left, or without tiering (nothing then needs a hot file's name).
    fn another_name(&self, inode: &Inode) -> Option<PathBuf> {
        let tiering = self.tiering.as_ref()?;
        let st = inode
            .fd()
            .ok()
            .and_then(|fd| sys::stat_fd(fd.as_fd()).ok())?;
        if st.st_nlink == 0 || st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return None;
        }
        let rel = tiering.tier.name_of_inode(st.st_dev, st.st_ino)?;
        let root = self.inodes.get(INodeNo::ROOT.0)?;
        let fd = sys::open_beneath(root.fd().ok()?.as_fd(), &rel, libc::O_PATH).ok()?;
        inode.reach_through(fd);
        Some(rel)
    }

    /// Relative path of `name` inside directory `parent`.
    fn child_path(&self, parent: &Inode, name: &OsStr) -> Option<PathBuf> {
        self.rel_path(parent).map(|p| p.join(name))
    }

    /// `st` (the backing inode behind `fd`) with the times the file shows
    /// through the mount: a stub's are its marker's, a recalled file keeps
    /// its change time (see [`crate::tier::stub::show_times`]). Without
    /// tiering there are no stubs and nothing to look up.
    fn shown(&self, fd: BorrowedFd<'_>, mut st: libc::stat) -> libc::stat {
        if self.tiering.is_some() {
            crate::tier::stub::show_times(fd, &mut st);
        }
        st
    }

    /// FUSE attributes of `inode` from its backing `st`, with shown times.
    fn attr_of(&self, inode: &Inode, st: libc::stat) -> fuser::FileAttr {
        let st = match inode.fd() {
            Ok(fd) => self.shown(fd.as_fd(), st),
            Err(_) => st,
        };
        attr::file_attr(inode.ino, &st)
    }

    /// After a change a user made through the mount to the file behind `fd`
    /// (now `st`): the file shows it (see [`crate::tier::stub::user_changed`]).
    fn user_changed(&self, fd: BorrowedFd<'_>, st: &libc::stat, set_mtime_ns: Option<i64>) {
        if self.tiering.is_some()
            && let Err(e) = crate::tier::stub::user_changed(fd, st, set_mtime_ns)
        {
            tracing::warn!(error = %e, "cannot record a change to a tiered file's shown times");
        }
    }

    /// Tells the catalog that the regular file `st` at `path` changed; the
    /// catalog looks at it when it applies the hint. Sent before the
    /// operation is answered, so a `tierctl` command issued after it returned
    /// finds it applied (the control server flushes the catalog first).
    fn report_file(&self, path: Option<PathBuf>, st: &libc::stat) {
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return;
        }
        if let Some(path) = path {
            self.feed.send(FileEvent::Look { path });
        }
    }

    fn update_stats(&self) {
        self.stats
            .open_files
            .store(self.handles.open_files() as u64, Ordering::Relaxed);
        self.stats
            .inodes
            .store(self.inodes.len() as u64, Ordering::Relaxed);
    }
}

/// `AT_FDCWD` as a borrowed descriptor, for the one absolute-path open at start.
fn cwd() -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: AT_FDCWD is valid for *at() calls and is never closed.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(libc::AT_FDCWD) }
}

fn reply_opened(reply: ReplyOpen, fh: u64, id: Option<Arc<fuser::BackingId>>) {
    match id {
        Some(id) => reply.opened_passthrough(FileHandle(fh), FopenFlags::empty(), &id),
        None => reply.opened(FileHandle(fh), FopenFlags::empty()),
    }
}

impl Filesystem for TierFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        if self.want_passthrough {
            let ok = config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok()
                && config.set_max_stack_depth(1).is_ok();
            if !ok {
                tracing::warn!(
                    "kernel does not offer FUSE passthrough; hot file I/O goes through userspace"
                );
            }
            self.stats.passthrough.store(ok, Ordering::Relaxed);
        }
        // Not FUSE_ATOMIC_O_TRUNC: with it, `open(O_TRUNC)` would truncate here,
        // before the kernel's ETXTBSY check, and could destroy a running program.
        for flag in [
            InitFlags::FUSE_DO_READDIRPLUS,
            InitFlags::FUSE_READDIRPLUS_AUTO,
            InitFlags::FUSE_PARALLEL_DIROPS,
            InitFlags::FUSE_CACHE_SYMLINKS,
            InitFlags::FUSE_BIG_WRITES,
            InitFlags::FUSE_ASYNC_READ,
        ] {
            let _ = config.add_capabilities(flag);
        }
        // Export support: the kernel may then look up "." of a node by
        // number (one it forgot, to decode an NFS or `open_by_handle_at`
        // handle) and ".." of a directory; see `do_lookup` and `InodeTable::revive`.
        if config
            .add_capabilities(InitFlags::FUSE_EXPORT_SUPPORT)
            .is_err()
        {
            tracing::warn!("kernel does not offer FUSE export support; NFS handles may go stale");
        }
        let _ = config.set_max_write(1 << 20);
        let _ = config.set_max_background(64);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.do_lookup(parent, name) {
            Ok(attr) => reply.entry(&self.ttl, &attr, self.generation(attr.ino)),
            Err(e) => reply.error(e),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.inodes.forget(ino.0, nlookup);
    }

    fn destroy(&mut self) {
        if let Some(path) = &self.handle_map {
            match self.inodes.save(path) {
                Ok(n) => tracing::debug!(handles = n, path = %path.display(), "saved handle map"),
                Err(e) => tracing::warn!(error = %e, path = %path.display(),
                    "cannot save the handle map; NFS handles will be stale after the restart"),
            }
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.do_getattr(ino, fh) {
            Ok(attr) => reply.attr(&self.ttl, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let change = file_ops::AttrChange {
            mode,
            uid,
            gid,
            size,
            atime,
            mtime,
        };
        if let Some(size) = change.size
            && let Ok(inode) = self.inode(ino)
            && inode.is_stub()
        {
            if size == 0 {
                let fs = self.clone();
                return self.after_discard(&inode, move |discarded| {
                    match discarded.and_then(|()| fs.do_setattr(ino, fh, change)) {
                        Ok(attr) => reply.attr(&fs.ttl, &attr),
                        Err(e) => reply.error(e),
                    }
                });
            } else {
                // Keeping part of a cold file needs its content first.
                let fs = self.clone();
                return self.after_recall(inode, move |recalled| {
                    match recalled.and_then(|()| fs.do_setattr(ino, fh, change)) {
                        Ok(attr) => reply.attr(&fs.ttl, &attr),
                        Err(e) => reply.error(e),
                    }
                });
            }
        }
        match self.do_setattr(ino, fh, change) {
            Ok(attr) => reply.attr(&self.ttl, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self
            .inode(ino)
            .and_then(|i| sys::readlink_fd(i.path_fd()?.as_fd()).map_err(errno))
        {
            Ok(target) => reply.data(&target),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        match self.do_mknod(req, parent, name, mode, rdev) {
            Ok(attr) => reply.entry(&self.ttl, &attr, self.generation(attr.ino)),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        match self.do_mkdir(req, parent, name, mode) {
            Ok(attr) => reply.entry(&self.ttl, &attr, self.generation(attr.ino)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.do_unlink(parent, name, 0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.do_unlink(parent, name, libc::AT_REMOVEDIR) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        match self.do_symlink(req, parent, link_name, target) {
            Ok(attr) => reply.entry(&self.ttl, &attr, self.generation(attr.ino)),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        match self.do_rename(parent, name, newparent, newname, flags.bits()) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        match self.do_link(ino, newparent, newname) {
            Ok(attr) => reply.entry(&self.ttl, &attr, self.generation(attr.ino)),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let _caller = handles::caller(req.uid());
        let inode = match self.inode(ino) {
            Ok(i) => i,
            Err(e) => return reply.error(e),
        };
        // The backing registration records the registering thread's
        // credentials; passthrough I/O runs with them (see CallerCreds).
        let (uid, gid) = (req.uid(), req.gid());
        let register = |file: &std::fs::File| {
            let _as_caller = sys::CallerCreds::enter(uid, gid);
            reply.open_backing(file)
        };
        match self.open_hot(&inode, flags.0, register) {
            Ok(Some((fh, id))) => reply_opened(reply, fh, id),
            Ok(None) => {
                if flags.0 & libc::O_ACCMODE == libc::O_RDONLY {
                    if flags.0 & libc::O_TRUNC == 0 {
                        return self.open_stub_for_reading(inode, flags.0, (uid, gid), reply);
                    }
                    return self.open_after_recall(inode, flags.0, (uid, gid), reply);
                }
                match self.open_stub_for_writing(&inode, flags.0) {
                    Ok(Some(fh)) => reply.opened(FileHandle(fh), FopenFlags::empty()),
                    Ok(None) => self.open_after_recall(inode, flags.0, (uid, gid), reply),
                    Err(e) => reply.error(e),
                }
            }
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let reply = match self.handles.file(fh.0) {
            Some(open) if open.stub.is_some() => match self.read_stub(&open, offset, size, reply) {
                Some(reply) => reply,
                None => return,
            },
            _ => reply,
        };
        if let Some(inode) = self.pending_recall(fh) {
            let fs = self.clone();
            return self.after_recall(inode, move |r| {
                match r.and_then(|()| fs.do_read(fh, offset, size)) {
                    Ok(data) => reply.data(&data),
                    Err(e) => reply.error(e),
                }
            });
        }
        match self.do_read(fh, offset, size) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        if let Some(inode) = self.pending_recall(fh) {
            // The first write to a cold file opened for writing: its old
            // content comes back first, then the write lands on it.
            let fs = self.clone();
            let data = data.to_vec();
            let (uid, gid) = (req.uid(), req.gid());
            return self.after_recall(inode, move |r| {
                let _as_caller = sys::CallerCreds::enter(uid, gid);
                match r.and_then(|()| fs.do_write(fh, offset, &data)) {
                    Ok(n) => reply.written(n),
                    Err(e) => reply.error(e),
                }
            });
        }
        let written = {
            let _as_caller = sys::CallerCreds::enter(req.uid(), req.gid());
            self.do_write(fh, offset, data)
        };
        match written {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Nothing is buffered in userspace. FLUSH is the one request `close`
        // waits for (RELEASE comes later, asynchronously): a file written
        // through this handle is reported to the catalog here, so whoever
        // closed it and then runs `tierctl` finds the change catalogued.
        self.do_flush(fh);
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.do_release(fh);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self.do_fsync(fh, datasync) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let _caller = handles::caller(req.uid());
        match self.do_opendir(ino) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        reply: ReplyDirectory,
    ) {
        self.do_readdir(fh, offset, reply);
    }

    fn readdirplus(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        reply: ReplyDirectoryPlus,
    ) {
        self.do_readdirplus(fh, offset, reply);
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.handles.remove_dir(fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self.do_fsyncdir(fh, datasync) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match sys::statvfs(&self.hot_dir) {
            Ok(s) => reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                s.f_bsize as u32,
                s.f_namemax as u32,
                s.f_frsize as u32,
            ),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        match self.do_setxattr(ino, name, value, flags) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        if name == xattr::STATE_XATTR {
            let inode = match self.inode(ino) {
                Ok(i) => i,
                Err(e) => return reply.error(e),
            };
            return self.reply_tier_state(&inode, size, move |r| match r {
                Ok(xattr::XattrReply::Size(n)) => reply.size(n),
                Ok(xattr::XattrReply::Data(d)) => reply.data(&d),
                Err(e) => reply.error(e),
            });
        }
        match self.do_getxattr(ino, name, size) {
            Ok(xattr::XattrReply::Size(n)) => reply.size(n),
            Ok(xattr::XattrReply::Data(d)) => reply.data(&d),
            Err(e) => reply.error(e),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        match self.do_listxattr(ino, size) {
            Ok(xattr::XattrReply::Size(n)) => reply.size(n),
            Ok(xattr::XattrReply::Data(d)) => reply.data(&d),
            Err(e) => reply.error(e),
        }
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.do_removexattr(ino, name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        // Only reached without `default_permissions`, which tierfs allows only for
        // single-user mounts; existence is the one thing left to check.
        match self.inode(ino) {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let _caller = handles::caller(req.uid());
        let (uid, gid) = (req.uid(), req.gid());
        let created = self.do_create(req, parent, name, mode, flags, |file| {
            let _as_caller = sys::CallerCreds::enter(uid, gid);
            reply.open_backing(file)
        });
        match created {
            Ok((attr, fh, Some(id))) => reply.created_passthrough(
                &self.ttl,
                &attr,
                self.generation(attr.ino),
                FileHandle(fh),
                FopenFlags::empty(),
                &id,
            ),
            Ok((attr, fh, None)) => reply.created(
                &self.ttl,
                &attr,
                self.generation(attr.ino),
                FileHandle(fh),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        if let Some(inode) = self.pending_recall(fh) {
            let fs = self.clone();
            return self.after_recall(inode, move |r| {
                match r.and_then(|()| fs.do_fallocate(fh, offset, length, mode)) {
                    Ok(()) => reply.ok(),
                    Err(e) => reply.error(e),
                }
            });
        }
        match self.do_fallocate(fh, offset, length, mode) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn lseek(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        if let Some(inode) = self.pending_recall(fh) {
            let fs = self.clone();
            return self.after_recall(inode, move |r| {
                match r.and_then(|()| fs.do_lseek(fh, offset, whence)) {
                    Ok(off) => reply.offset(off),
                    Err(e) => reply.error(e),
                }
            });
        }
        match self.do_lseek(fh, offset, whence) {
            Ok(off) => reply.offset(off),
            Err(e) => reply.error(e),
        }
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        fh_in: FileHandle,
        offset_in: u64,
        _ino_out: INodeNo,
        fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        if let Some(inode) = self.pending_recall(fh_out) {
            let fs = self.clone();
            return self.after_recall(inode, move |r| {
                match r
                    .and_then(|()| fs.do_copy_file_range(fh_in, offset_in, fh_out, offset_out, len))
                {
                    Ok(n) => reply.written(n),
                    Err(e) => reply.error(e),
                }
            });
        }
        match self.do_copy_file_range(fh_in, offset_in, fh_out, offset_out, len) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }
}
