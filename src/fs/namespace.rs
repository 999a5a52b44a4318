//! Name operations: lookup, creating nodes, unlink, rename and link.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use fuser::{Errno, FileAttr, INodeNo, Request};

use super::inode::Inode;
use super::{FileEvent, FsResult, FsShared, attr, errno, sys};

/// What kind of node `make_node` creates.
enum NewNode<'a> {
    Dir { mode: u32 },
    Special { mode: u32, rdev: u32 },
    Symlink { target: &'a Path },
}

impl FsShared {
    /// Registers one kernel lookup of the inode behind `fd` and returns its attributes.
    fn remember(&self, fd: OwnedFd) -> FsResult<(Arc<Inode>, FileAttr)> {
        let st = sys::stat_fd(fd.as_fd()).map_err(errno)?;
        let st = self.shown(fd.as_fd(), st);
        let inode = self.inodes.remember(&st, || Ok(fd)).map_err(errno)?;
        Ok((inode.clone(), attr::file_attr(inode.ino, &st)))
    }

    /// A lookup stats the name first: an inode the kernel already holds (the
    /// usual case for `stat` after the entry's TTL ran out) needs no new
    /// descriptor, saving an `open(O_PATH)` and a `close`.
    pub(super) fn do_lookup(&self, parent: INodeNo, name: &OsStr) -> FsResult<FileAttr> {
        match name.as_encoded_bytes() {
            b"." => return self.lookup_self(parent),
            b".." => return self.lookup_parent(parent),
            _ => {}
        }
        let parent = self.inode(parent)?;
        let parent_fd = parent.path_fd()?;
        let st = sys::stat_at(parent_fd.as_fd(), name).map_err(errno)?;
        if let Some(inode) = self.inodes.remember_held(&st) {
            return Ok(self.attr_of(&inode, st));
        }
        let fd = sys::open_path(parent_fd.as_fd(), name).map_err(errno)?;
        self.remember(fd).map(|(_, attr)| attr)
    }

    /// An `O_PATH` descriptor of inode `ino`: a live one's, or one reopened
    /// from the file handle of a number the kernel forgot (or a previous
    /// daemon gave out). `ESTALE` if unknown or deleted.
    fn fd_by_number(&self, ino: INodeNo) -> FsResult<OwnedFd> {
        match self.inodes.get(ino.0) {
            Some(inode) => inode.path_fd()?.as_fd().try_clone_to_owned().map_err(errno),
            None => self.inodes.revive(ino.0).ok_or(Errno::ESTALE),
        }
    }

    /// `LOOKUP` of "." (export support): the kernel asks for a node by
    /// number, typically one it forgot, to decode an NFS file handle. Any
    /// file type, not only directories.
    fn lookup_self(&self, ino: INodeNo) -> FsResult<FileAttr> {
        let fd = self.fd_by_number(ino)?;
        self.remember(fd).map(|(_, attr)| attr)
    }

    /// `LOOKUP` of ".." (export support: the parent of a directory decoded
    /// from a handle). The root's parent is the root; a parent outside the
    /// hot dir (a directory moved out of it beside the mount) is `ESTALE`.
    fn lookup_parent(&self, ino: INodeNo) -> FsResult<FileAttr> {
        if ino == INodeNo::ROOT {
            return self.lookup_self(ino);
        }
        let dir = self.fd_by_number(ino)?;
        let fd = sys::open_path(dir.as_fd(), OsStr::new("..")).map_err(errno)?;
        let st = sys::stat_fd(fd.as_fd()).map_err(errno)?;
        if self.inodes.fuse_ino(st.st_dev, st.st_ino) != INodeNo::ROOT.0 {
            let path = sys::fd_path(fd.as_fd()).map_err(errno)?;
            if !Path::new(&path).starts_with(&self.hot_dir) {
                return Err(Errno::ESTALE);
            }
        }
        self.remember(fd).map(|(_, attr)| attr)
    }

    /// Gives a node created by the daemon (as root) the owner the kernel would
    /// have given it: the caller's uid, and the caller's gid unless the parent
    /// directory is set-group-ID. Returns the node's final stat.
    pub(super) fn set_creator(
        &self,
        req: &Request,
        parent: &Inode,
        node: BorrowedFd<'_>,
        requested_mode: u32,
    ) -> FsResult<libc::stat> {
        let st = sys::stat_fd(node).map_err(errno)?;
        let parent_st = sys::stat_fd(parent.path_fd()?.as_fd()).map_err(errno)?;
        let gid = if parent_st.st_mode & libc::S_ISGID != 0 {
            parent_st.st_gid
        } else {
            req.gid()
        };
        if st.st_uid == req.uid() && st.st_gid == gid {
            return Ok(st);
        }
        sys::chown_fd(node, req.uid(), gid).map_err(errno)?;
        let kind = st.st_mode & libc::S_IFMT;
        let set_id = requested_mode & (libc::S_ISUID | libc::S_ISGID);
        if set_id != 0 && kind != libc::S_IFDIR && kind != libc::S_IFLNK {
            // chown(2) clears set-ID bits of non-directories; restore the ones asked
            // for, except set-group-ID on a group the caller may not belong to.
            let mut mode = requested_mode & 0o7777;
            if req.uid() != 0 && gid != req.gid() {
                mode &= !libc::S_ISGID;
            }
            sys::chmod_fd(node, mode).map_err(errno)?;
        }
        sys::stat_fd(node).map_err(errno)
    }

    fn make_node(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        node: NewNode<'_>,
    ) -> FsResult<FileAttr> {
        let parent = self.inode(parent)?;
        let requested_mode = match node {
            NewNode::Dir { mode } => {
                sys::mkdir_at(parent.path_fd()?.as_fd(), name, mode).map_err(errno)?;
                mode
            }
            NewNode::Special { mode, rdev } => {
                sys::mknod_at(parent.path_fd()?.as_fd(), name, mode, rdev.into()).map_err(errno)?;
                mode
            }
            NewNode::Symlink { target } => {
                sys::symlink_at(target, parent.path_fd()?.as_fd(), name).map_err(errno)?;
                0
            }
        };
        let fd = sys::open_path(parent.path_fd()?.as_fd(), name).map_err(errno)?;
        let st = self.set_creator(req, &parent, fd.as_fd(), requested_mode)?;
        if st.st_mode & libc::S_IFMT == libc::S_IFREG {
            self.report_file(self.child_path(&parent, name), &st);
        }
        self.remember(fd).map(|(_, attr)| attr)
    }

    pub(super) fn do_mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
    ) -> FsResult<FileAttr> {
        self.make_node(req, parent, name, NewNode::Dir { mode })
    }

    pub(super) fn do_mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        rdev: u32,
    ) -> FsResult<FileAttr> {
        self.make_node(req, parent, name, NewNode::Special { mode, rdev })
    }

    pub(super) fn do_symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        target: &Path,
    ) -> FsResult<FileAttr> {
        self.make_node(req, parent, name, NewNode::Symlink { target })
    }

    /// `unlink` (flags 0) or `rmdir` (`AT_REMOVEDIR`).
    pub(super) fn do_unlink(&self, parent: INodeNo, name: &OsStr, flags: i32) -> FsResult<()> {
        let parent = self.inode(parent)?;
        let path = self.child_path(&parent, name);
        sys::unlink_at(parent.path_fd()?.as_fd(), name, flags).map_err(errno)?;
        if let Some(path) = path {
            self.feed.send(FileEvent::Gone { path });
        }
        Ok(())
    }

    pub(super) fn do_rename(
        &self,
        parent: INodeNo,
        name: &OsStr,
        new_parent: INodeNo,
        new_name: &OsStr,
        flags: u32,
    ) -> FsResult<()> {
        let parent = self.inode(parent)?;
        let new_parent = self.inode(new_parent)?;
        let from = self.child_path(&parent, name);
        let to = self.child_path(&new_parent, new_name);
        // Renames reach the catalog in the order they happened: a rename of
        // the new name by another thread cannot be reported before this one.
        let _order = self.rename_order.lock();
        sys::rename_at(
            parent.path_fd()?.as_fd(),
            name,
            new_parent.path_fd()?.as_fd(),
            new_name,
            flags,
        )
        .map_err(errno)?;
        let (Some(from), Some(to)) = (from, to) else {
            return Ok(());
        };
        if flags & libc::RENAME_EXCHANGE != 0 {
            // Both names still exist with swapped contents: re-read each one.
            for (dir, name, path) in [(&parent, name, from), (&new_parent, new_name, to)] {
                if let Ok(st) = dir.fd().and_then(|fd| sys::stat_at(fd.as_fd(), name)) {
                    self.report_file(Some(path), &st);
                }
            }
        } else {
            self.feed.send(FileEvent::Renamed { from, to });
        }
        Ok(())
    }

    pub(super) fn do_link(
        &self,
        ino: INodeNo,
        new_parent: INodeNo,
        new_name: &OsStr,
    ) -> FsResult<FileAttr> {
        let inode = self.inode(ino)?;
        let new_parent = self.inode(new_parent)?;
        sys::link_fd(
            inode.path_fd()?.as_fd(),
            new_parent.path_fd()?.as_fd(),
            new_name,
        )
        .map_err(errno)?;
        let fd = inode.path_fd()?;
        let st = sys::stat_fd(fd.as_fd()).map_err(errno)?;
        self.user_changed(fd.as_fd(), &st, None);
        let st = self.shown(fd.as_fd(), st);
        drop(fd);
        self.report_file(self.child_path(&new_parent, new_name), &st);
        self.inodes.add_lookup(&inode);
        Ok(attr::file_attr(inode.ino, &st))
    }
}
