//! Attributes and open files: getattr/setattr, open/create with passthrough,
//! and the userspace I/O fallback.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use fuser::{BackingId, Errno, FileAttr, FileHandle, INodeNo, Request, TimeOrNow};

use super::handles::OpenFile;
use super::inode::Inode;
use super::{FileEvent, FsResult, FsShared, attr, errno, sys};

/// The attribute changes of one `setattr` request.
#[derive(Debug, Clone, Copy)]
pub struct AttrChange {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<TimeOrNow>,
    pub mtime: Option<TimeOrNow>,
}

/// Flags that only make sense on the first open, or that would break
/// reopening through `/proc/self/fd`.
const STRIP_ON_REOPEN: i32 = libc::O_CREAT | libc::O_EXCL | libc::O_NOCTTY | libc::O_NOFOLLOW;

pub(super) fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

impl FsShared {
    pub(super) fn do_getattr(&self, ino: INodeNo, fh: Option<FileHandle>) -> FsResult<FileAttr> {
        if let Some(open) = fh.and_then(|fh| self.handles.file(fh.0)) {
            let st = sys::stat_fd(open.file.as_fd()).map_err(errno)?;
            let st = self.shown(open.file.as_fd(), st);
            return Ok(attr::file_attr(open.inode.ino, &st));
        }
        let inode = self.inode(ino)?;
        let fd = inode.path_fd()?;
        let st = sys::stat_fd(fd.as_fd()).map_err(errno)?;
        let st = self.shown(fd.as_fd(), st);
        Ok(attr::file_attr(inode.ino, &st))
    }

    pub(super) fn do_setattr(
        &self,
        ino: INodeNo,
        fh: Option<FileHandle>,
        change: AttrChange,
    ) -> FsResult<FileAttr> {
        let inode = self.inode(ino)?;
        let open = fh.and_then(|fh| self.handles.file(fh.0));
        // A stub's shown times live in its marker, which a recall or release
        // also writes: one at a time (see `Gate::times`).
        let _times = self.tiering.as_ref().map(|_| self.gate.times(inode.ino));
        if let Some(mode) = change.mode {
            match &open {
                Some(f) => f
                    .file
                    .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode)),
                None if inode.is_symlink() => {
                    Err(std::io::Error::from_raw_os_error(libc::EOPNOTSUPP))
                }
                None => sys::chmod_fd(inode.path_fd()?.as_fd(), mode),
            }
            .map_err(errno)?;
        }
        if change.uid.is_some() || change.gid.is_some() {
            sys::chown_fd(
                inode.path_fd()?.as_fd(),
                change.uid.unwrap_or(u32::MAX),
                change.gid.unwrap_or(u32::MAX),
            )
            .map_err(errno)?;
        }
        if let Some(size) = change.size {
            match &open {
                Some(f) => f.file.set_len(size),
                None => sys::truncate_fd(inode.path_fd()?.as_fd(), size),
            }
            .map_err(errno)?;
        }
        if change.atime.is_some() || change.mtime.is_some() {
            let times = [attr::timespec(change.atime), attr::timespec(change.mtime)];
            sys::utimens_fd(inode.path_fd()?.as_fd(), &times).map_err(errno)?;
        }
        let fd = inode.path_fd()?;
        let st = sys::stat_fd(fd.as_fd()).map_err(errno)?;
        let set_mtime_ns = change.mtime.map(|t| match t {
            TimeOrNow::SpecificTime(t) => attr::nanos_since_epoch(t),
            // What the kernel stamped: the backing inode's, just set.
            TimeOrNow::Now => attr::unix_nanos(st.st_mtime, st.st_mtime_nsec),
        });
        self.user_changed(fd.as_fd(), &st, set_mtime_ns);
        let st = self.shown(fd.as_fd(), st);
        drop(fd);
        if change.size.is_some() || change.mtime.is_some() {
            self.report_file(self.rel_path(&inode), &st);
        }
        Ok(attr::file_attr(inode.ino, &st))
    }

    /// Registers the inode's single passthrough backing (shared by all its open
    /// handles). `None` means userspace I/O for this handle.
    ///
    /// The kernel does passthrough I/O with the credentials of whoever
    /// registered the backing, and allows one backing per inode at a time
    /// (a cached open beside a passthrough one fails with ETXTBSY), so the
    /// backing cannot be keyed per caller: `open_backing` registers it as
    /// the first opener (see `sys::CallerCreds`), and later openers of the
    /// same inode, whoever they are, share it until the last handle closes.
    /// A user writing while root (or another user) holds the file open
    /// therefore allocates with the first opener's credentials; writing
    /// alone (the usual case) it allocates with its own.
    fn passthrough_for(
        &self,
        inode: &Inode,
        file: &File,
        open_backing: impl FnOnce(&File) -> std::io::Result<BackingId>,
    ) -> Option<Arc<BackingId>> {
        if !self.stats.passthrough.load(Ordering::Relaxed)
            || inode.cached_opens.load(Ordering::Relaxed) > 0
        {
            return None;
        }
        let mut slot = inode.backing.lock();
        if let Some(id) = slot.upgrade() {
            return Some(id);
        }
        match open_backing(file) {
            Ok(id) => {
                let id = Arc::new(id);
                *slot = Arc::downgrade(&id);
                Some(id)
            }
            Err(e) => {
                if !self.warned_passthrough.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "FUSE passthrough refused; using userspace I/O");
                }
                None
            }
        }
    }

    /// Opens `inode` if its data is local: counts the open in the release gate
    /// (waiting out a release in progress) and returns `None` if it is a stub.
    pub(super) fn open_hot(
        &self,
        inode: &Arc<Inode>,
        flags: i32,
        open_backing: impl FnOnce(&File) -> std::io::Result<BackingId>,
    ) -> FsResult<Option<(u64, Option<Arc<BackingId>>)>> {
        self.gate.enter(inode.ino);
        if inode.is_stub() {
            self.gate.leave(inode.ino);
            return Ok(None);
        }
        match self.open_handle(inode.clone(), flags, None, open_backing) {
            Ok(opened) => Ok(Some(opened)),
            Err(e) => {
                self.gate.leave(inode.ino);
                Err(e)
            }
        }
    }

    /// Opens a cold file for writing without downloading it: the handle
    /// does its I/O in userspace, and the first operation that needs the
    /// content ([`FsShared::pending_recall`]) recalls the file first. So
    /// `touch`, an `O_TRUNC` open (the kernel truncates with a separate
    /// `setattr`) and an open that writes nothing download nothing.
    /// `None` if the file is no longer a stub (open it normally).
    pub(super) fn open_stub_for_writing(
        &self,
        inode: &Arc<Inode>,
        flags: i32,
    ) -> FsResult<Option<u64>> {
        self.handles.admit()?;
        let file =
            sys::reopen(inode.path_fd()?.as_fd(), flags & !STRIP_ON_REOPEN).map_err(errno)?;
        self.gate.enter(inode.ino);
        if !inode.is_stub() {
            self.gate.leave(inode.ino);
            return Ok(None);
        }
        inode.cached_opens.fetch_add(1, Ordering::Relaxed);
        let fh = self.handles.insert_file(OpenFile {
            inode: inode.clone(),
            file,
            writable: flags & libc::O_ACCMODE != libc::O_RDONLY,
            dirty: Default::default(),
            passthrough: None,
            stub: None,
        });
        self.update_stats();
        Ok(Some(fh))
    }

    /// The inode behind handle `fh` if its content must be recalled before
    /// the handle's next data operation (opened on a stub for writing).
    pub(super) fn pending_recall(&self, fh: FileHandle) -> Option<Arc<Inode>> {
        let open = self.handles.file(fh.0)?;
        (open.stub.is_none() && open.passthrough.is_none() && open.inode.is_stub())
            .then(|| open.inode.clone())
    }

    /// Recalls a stub on the tiering runtime, then calls `then` with the
    /// outcome. The FUSE request thread returns at once.
    pub(super) fn after_recall(
        &self,
        inode: Arc<Inode>,
        then: impl FnOnce(FsResult<()>) + Send + 'static,
    ) {
        let Some(tiering) = self.tiering.clone() else {
            tracing::error!(
                ino = inode.ino,
                "file is a stub but no remotes are configured"
            );
            return then(Err(Errno::EIO));
        };
        let Some(rel) = self.rel_path(&inode) else {
            return then(Err(Errno::ENOENT));
        };
        tiering.runtime.spawn(async move {
            let result = tiering
                .tier
                .recall(&rel)
                .await
                .map(|_| ())
                .map_err(|e| Errno::from_i32(e.errno()));
            then(result);
        });
    }

    /// Truncating a stub to zero needs no download: the file becomes hot and
    /// empty. Runs on the tiering runtime (it waits for a recall of the file
    /// in progress, see `Tier::discard_stub`), then calls `then`.
    pub(super) fn after_discard(
        &self,
        inode: &Inode,
        then: impl FnOnce(FsResult<()>) + Send + 'static,
    ) {
        let (Some(tiering), Some(rel)) = (self.tiering.clone(), self.rel_path(inode)) else {
            return then(Err(Errno::EIO));
        };
        tiering.runtime.spawn(async move {
            let result = tiering
                .tier
                .discard_stub(&rel)
                .await
                .map_err(|e| Errno::from_i32(e.errno()));
            then(result);
        });
    }

    /// Opens a handle on `inode`; `file` is the already-open backing file when
    /// called from `create`. Returns the handle number and passthrough id.
    pub(super) fn open_handle(
        &self,
        inode: Arc<Inode>,
        flags: i32,
        file: Option<File>,
        open_backing: impl FnOnce(&File) -> std::io::Result<BackingId>,
    ) -> FsResult<(u64, Option<Arc<BackingId>>)> {
        self.handles.admit()?;
        let file = match file {
            Some(f) => f,
            None => {
                sys::reopen(inode.path_fd()?.as_fd(), flags & !STRIP_ON_REOPEN).map_err(errno)?
            }
        };
        let acc = flags & libc::O_ACCMODE;
        let writable = acc != libc::O_RDONLY;
        if acc != libc::O_WRONLY
            && let Some(path) = self.rel_path(&inode)
        {
            self.feed.send(FileEvent::Accessed {
                path,
                at_ns: now_ns(),
            });
        }
        let passthrough = self.passthrough_for(&inode, &file, open_backing);
        if passthrough.is_none() {
            inode.cached_opens.fetch_add(1, Ordering::Relaxed);
        }
        let fh = self.handles.insert_file(OpenFile {
            inode,
            file,
            writable,
            dirty: Default::default(),
            passthrough: passthrough.clone(),
            stub: None,
        });
        self.update_stats();
        Ok((fh, passthrough))
    }

    pub(super) fn do_create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        flags: i32,
        open_backing: impl FnOnce(&File) -> std::io::Result<BackingId>,
    ) -> FsResult<(FileAttr, u64, Option<Arc<BackingId>>)> {
        self.handles.admit()?;
        let parent = self.inode(parent)?;
        let fd = sys::open_at(
            parent.path_fd()?.as_fd(),
            name,
            (flags | libc::O_CREAT) & !(libc::O_NOCTTY | libc::O_NOFOLLOW),
            mode,
        )
        .map_err(errno)?;
        let file = File::from(fd);
        let st = self.set_creator(req, &parent, file.as_fd(), mode)?;
        self.report_file(self.child_path(&parent, name), &st);
        let path_fd = sys::reopen(file.as_fd(), libc::O_PATH).map_err(errno)?;
        let inode = self
            .inodes
            .remember(&st, || Ok(path_fd.into()))
            .map_err(errno)?;
        let attr = attr::file_attr(inode.ino, &st);
        let (fh, id) = self.open_handle(inode, flags, Some(file), open_backing)?;
        Ok((attr, fh, id))
    }

    fn open_file(&self, fh: FileHandle) -> FsResult<Arc<OpenFile>> {
        self.handles.file(fh.0).ok_or(Errno::EBADF)
    }

    pub(super) fn do_read(&self, fh: FileHandle, offset: u64, size: u32) -> FsResult<Vec<u8>> {
        let open = self.open_file(fh)?;
        let mut buf = vec![0u8; size as usize];
        let mut filled = 0;
        while filled < buf.len() {
            match open
                .file
                .read_at(&mut buf[filled..], offset + filled as u64)
            {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(errno(e)),
            }
        }
        buf.truncate(filled);
        Ok(buf)
    }

    pub(super) fn do_write(&self, fh: FileHandle, offset: u64, data: &[u8]) -> FsResult<u32> {
        let open = self.open_file(fh)?;
        // With O_APPEND on the backing file the kernel appends whatever the offset.
        open.file.write_all_at(data, offset).map_err(errno)?;
        open.dirty.store(true, Ordering::Relaxed);
        Ok(data.len() as u32)
    }

    /// `close` of a handle: a handle that may have written reports its file.
    pub(super) fn do_flush(&self, fh: FileHandle) {
        if let Ok(open) = self.open_file(fh)
            && (open.writable || open.dirty.load(Ordering::Relaxed))
            && let Some(path) = self.rel_path(&open.inode)
        {
            self.feed.send(FileEvent::Look { path });
        }
    }

    pub(super) fn do_release(&self, fh: FileHandle) {
        if let Some(open) = self.handles.remove_file(fh.0) {
            if (open.writable || open.dirty.load(Ordering::Relaxed))
                && let Ok(st) = sys::stat_fd(open.file.as_fd())
            {
                if !open.inode.is_stub() {
                    // Written: a recalled file's kept change time no longer applies.
                    self.user_changed(open.file.as_fd(), &st, None);
                }
                let st = self.shown(open.file.as_fd(), st);
                self.report_file(self.rel_path(&open.inode), &st);
            }
            if open.passthrough.is_none() {
                open.inode.cached_opens.fetch_sub(1, Ordering::Relaxed);
            }
            self.gate.leave(open.inode.ino);
            if let Some(reader) = open.stub.clone() {
                self.stub_handle_closed(&open, reader);
            }
        }
        self.update_stats();
    }

    pub(super) fn do_fsync(&self, fh: FileHandle, datasync: bool) -> FsResult<()> {
        let open = self.open_file(fh)?;
        if datasync {
            open.file.sync_data()
        } else {
            open.file.sync_all()
        }
        .map_err(errno)
    }

    pub(super) fn do_fallocate(
        &self,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
    ) -> FsResult<()> {
        let open = self.open_file(fh)?;
        sys::fallocate(open.file.as_raw_fd(), mode, offset, length).map_err(errno)?;
        open.dirty.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// `SEEK_DATA`/`SEEK_HOLE` (the kernel answers the other whences). A
    /// cold file answers from the layout the original had (its backing stub
    /// has no blocks and would say "all hole": `cp` and `tar --sparse` would
    /// copy zeros); a local file from its backing file.
    pub(super) fn do_lseek(&self, fh: FileHandle, offset: i64, whence: i32) -> FsResult<i64> {
        let open = self.open_file(fh)?;
        if let Some(stub) = &open.stub
            && open.inode.is_stub()
        {
            let src = stub.source();
            let from = u64::try_from(offset).map_err(|_| Errno::EINVAL)?;
            let found = match whence {
                libc::SEEK_DATA => src.holes.seek_data(from, src.size),
                libc::SEEK_HOLE => src.holes.seek_hole(from, src.size),
                _ => return Err(Errno::EINVAL),
            };
            return found.map(|o| o as i64).ok_or(Errno::from_i32(libc::ENXIO));
        }
        sys::lseek(open.file.as_raw_fd(), offset, whence).map_err(errno)
    }

    pub(super) fn do_copy_file_range(
        &self,
        fh_in: FileHandle,
        offset_in: u64,
        fh_out: FileHandle,
        offset_out: u64,
        len: u64,
    ) -> FsResult<u32> {
        let input = self.open_file(fh_in)?;
        let output = self.open_file(fh_out)?;
        if input.inode.is_stub() {
            // The backing stub holds no data. EXDEV makes the kernel copy
            // through `read` (splice), which serves the real bytes.
            return Err(Errno::EXDEV);
        }
        let len = len.min(u32::MAX as u64 & !0xfff);
        let n = sys::copy_file_range(
            input.file.as_raw_fd(),
            offset_in,
            output.file.as_raw_fd(),
            offset_out,
            len,
        )
        .map_err(errno)?;
        output.dirty.store(true, Ordering::Relaxed);
        Ok(n as u32)
    }
}

impl super::TierFs {
    /// Opens a stub once its content is back. A migration may release the
    /// file again between the recall and the open, so this retries. The
    /// passthrough backing is registered as the caller `creds` (uid, gid).
    pub(super) fn open_after_recall(
        &self,
        inode: Arc<Inode>,
        flags: i32,
        creds: (u32, u32),
        reply: fuser::ReplyOpen,
    ) {
        let fs = self.clone();
        let target = inode.clone();
        let caller = super::handles::current_caller();
        self.after_recall(inode, move |recalled| {
            let _caller = super::handles::CallerGuard::with(caller);
            if let Err(e) = recalled {
                return reply.error(e);
            }
            let register = |file: &std::fs::File| {
                let _as_caller = sys::CallerCreds::enter(creds.0, creds.1);
                reply.open_backing(file)
            };
            match fs.open_hot(&target, flags, register) {
                Ok(Some((fh, id))) => super::reply_opened(reply, fh, id),
                Ok(None) => fs.open_after_recall(target, flags, creds, reply),
                Err(e) => reply.error(e),
            }
        });
    }
}
