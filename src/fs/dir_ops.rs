//! Directory handles: opendir, readdir, readdirplus, fsyncdir.

use std::os::fd::AsFd;

use fuser::{Errno, FileHandle, INodeNo, ReplyDirectory, ReplyDirectoryPlus};
use parking_lot::Mutex;

use super::dir::DirStream;
use super::handles::OpenDir;
use super::{FsResult, FsShared, attr, errno, sys};

fn is_dot(name: &[u8]) -> bool {
    name == b"." || name == b".."
}

impl FsShared {
    pub(super) fn do_opendir(&self, ino: INodeNo) -> FsResult<u64> {
        self.handles.admit()?;
        let inode = self.inode(ino)?;
        let fd = sys::open_at(
            inode.path_fd()?.as_fd(),
            std::ffi::OsStr::new("."),
            libc::O_RDONLY | libc::O_DIRECTORY,
            0,
        )
        .map_err(errno)?;
        let stream = DirStream::new(fd).map_err(errno)?;
        Ok(self.handles.insert_dir(OpenDir {
            inode,
            stream: Mutex::new(stream),
        }))
    }

    pub(super) fn do_readdir(&self, fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let Some(dir) = self.handles.dir(fh.0) else {
            return reply.error(Errno::EBADF);
        };
        let mut stream = dir.stream.lock();
        if stream.tell() != offset {
            stream.seek(offset);
        }
        loop {
            let before = stream.tell();
            let entry = match stream.next_entry() {
                Ok(Some(e)) => e,
                Ok(None) => break,
                Err(e) => return reply.error(errno(e)),
            };
            let ino = if entry.name.as_encoded_bytes() == b".." && dir.inode.ino == 1 {
                1
            } else {
                self.inodes.same_dev_ino(entry.ino)
            };
            let full = reply.add(
                INodeNo(ino),
                entry.next_offset,
                attr::dirent_type(entry.kind),
                entry.name,
            );
            if full {
                stream.seek(before);
                break;
            }
        }
        reply.ok();
    }

    pub(super) fn do_readdirplus(
        &self,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let Some(dir) = self.handles.dir(fh.0) else {
            return reply.error(Errno::EBADF);
        };
        let mut stream = dir.stream.lock();
        if stream.tell() != offset {
            stream.seek(offset);
        }
        loop {
            let before = stream.tell();
            let entry = match stream.next_entry() {
                Ok(Some(e)) => e,
                Ok(None) => break,
                Err(e) => return reply.error(errno(e)),
            };
            let next = entry.next_offset;
            let name = entry.name.to_os_string();
            if is_dot(name.as_encoded_bytes()) {
                // The kernel ignores attributes of dot entries and takes no lookup.
                let st = match dir
                    .inode
                    .fd()
                    .and_then(|fd| sys::stat_at(fd.as_fd(), &name))
                {
                    Ok(st) => st,
                    Err(e) => return reply.error(errno(e)),
                };
                let mut a = attr::file_attr(0, &st);
                a.ino = INodeNo(if name == "." { dir.inode.ino } else { 1 });
                if reply.add(a.ino, next, &name, &self.ttl, &a, fuser::Generation(0)) {
                    stream.seek(before);
                    break;
                }
                continue;
            }
            let fd = match dir
                .inode
                .fd()
                .and_then(|fd| sys::open_path(fd.as_fd(), &name))
            {
                Ok(fd) => fd,
                // Removed since the stream was read: skip it, as readdir would soon.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(e) => return reply.error(errno(e)),
            };
            let st = match sys::stat_fd(fd.as_fd()) {
                Ok(st) => self.shown(fd.as_fd(), st),
                Err(e) => return reply.error(errno(e)),
            };
            let inode = match self.inodes.remember(&st, || Ok(fd)) {
                Ok(i) => i,
                Err(e) => return reply.error(errno(e)),
            };
            let a = attr::file_attr(inode.ino, &st);
            if reply.add(
                a.ino,
                next,
                &name,
                &self.ttl,
                &a,
                fuser::Generation(inode.generation.into()),
            ) {
                // Not sent: the kernel did not take this lookup.
                self.inodes.forget(inode.ino, 1);
                stream.seek(before);
                break;
            }
        }
        reply.ok();
    }

    pub(super) fn do_fsyncdir(&self, fh: FileHandle, datasync: bool) -> FsResult<()> {
        let dir = self.handles.dir(fh.0).ok_or(Errno::EBADF)?;
        let fd = dir.stream.lock().raw_fd();
        // SAFETY: plain syscalls on a descriptor owned by the open stream.
        let r = unsafe {
            if datasync {
                libc::fdatasync(fd)
            } else {
                libc::fsync(fd)
            }
        };
        if r == -1 {
            return Err(errno(std::io::Error::last_os_error()));
        }
        Ok(())
    }
}
