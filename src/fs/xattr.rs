//! Extended attributes, passed through to the backing inode, except for
//! the daemon's own (hidden, or virtual: [`STATE_XATTR`]) and Samba's DOS
//! attributes of a cold file, which show it offline (`dosattrib`).

use std::ffi::OsStr;
use std::os::fd::AsFd;

use fuser::{Errno, INodeNo};

use super::{FsResult, FsShared, dosattrib, errno, sys};

/// Answer to a getxattr/listxattr request: the size asked for, or the bytes.
pub enum XattrReply {
    /// Caller passed size 0: report how big the value is.
    Size(u32),
    /// The value (or the NUL-separated name list).
    Data(Vec<u8>),
}

/// Applies the FUSE size protocol to a value read in full.
fn sized(value: Vec<u8>, size: u32) -> FsResult<XattrReply> {
    if size == 0 {
        Ok(XattrReply::Size(value.len() as u32))
    } else if value.len() > size as usize {
        Err(Errno::ERANGE)
    } else {
        Ok(XattrReply::Data(value))
    }
}

/// Calls a get/list style syscall twice: once for the size, once for the data.
fn read_all(mut call: impl FnMut(&mut [u8]) -> std::io::Result<usize>) -> FsResult<Vec<u8>> {
    loop {
        let len = call(&mut []).map_err(errno)?;
        let mut buf = vec![0u8; len];
        match call(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            // Grew between the two calls: try again.
            Err(e) if e.raw_os_error() == Some(libc::ERANGE) => continue,
            Err(e) => return Err(errno(e)),
        }
    }
}

/// One get-style syscall answering a FUSE request of `size` bytes directly:
/// the length for size 0, else the value read into a `size`-byte buffer
/// (ERANGE if it does not fit, as the kernel expects). [`read_all`] needs two
/// calls; `ls -l` asks two absent attributes per entry, each answered by the
/// first call alone either way, but every present value saves one here.
fn get_sized(
    mut call: impl FnMut(&mut [u8]) -> std::io::Result<usize>,
    size: u32,
) -> FsResult<XattrReply> {
    if size == 0 {
        let len = call(&mut []).map_err(errno)?;
        return Ok(XattrReply::Size(len as u32));
    }
    let mut buf = vec![0u8; size as usize];
    let n = call(&mut buf).map_err(errno)?;
    buf.truncate(n);
    Ok(XattrReply::Data(buf))
}

/// Read-only attribute showing a file's tier: `hot`, `premigrated` or `cold`.
pub const STATE_XATTR: &str = "user.tierfs.state";

/// Prefix of the daemon's own attributes on backing files, never shown.
const PRIVATE_PREFIX: &[u8] = b"trusted.tierfs.";

fn is_private(name: &OsStr) -> bool {
    name.as_encoded_bytes().starts_with(PRIVATE_PREFIX)
}

/// Removes the daemon's private names from a NUL-separated xattr name list.
fn without_private(list: Vec<u8>) -> Vec<u8> {
    list.split_inclusive(|&b| b == 0)
        .filter(|name| !name.starts_with(PRIVATE_PREFIX))
        .flatten()
        .copied()
        .collect()
}

impl FsShared {
    /// Answers a read of [`STATE_XATTR`] on `inode`. A stub is cold and a
    /// non-stub without tiering is hot at once; otherwise the catalog is asked
    /// on the tiering runtime (a FUSE thread never waits for it) and `reply`
    /// called from there.
    pub(super) fn reply_tier_state(
        &self,
        inode: &super::inode::Inode,
        size: u32,
        reply: impl FnOnce(FsResult<XattrReply>) + Send + 'static,
    ) {
        if !inode.is_regular() {
            return reply(Err(Errno::NO_XATTR));
        }
        use crate::catalog::FileState;
        if inode.is_stub() {
            return reply(sized(b"cold".to_vec(), size));
        }
        let (Some(tiering), Some(rel)) = (self.tiering.clone(), self.rel_path(inode)) else {
            return reply(sized(b"hot".to_vec(), size));
        };
        tiering.runtime.spawn(async move {
            let tier = tiering.tier.clone();
            let state = tokio::task::spawn_blocking(move || tier.state_of(&rel))
                .await
                .ok()
                .flatten()
                .unwrap_or(FileState::Hot);
            let shown = match state {
                FileState::Premigrated | FileState::Releasing => FileState::Premigrated,
                FileState::Cold | FileState::Recalling => FileState::Cold,
                FileState::Hot | FileState::Uploading => FileState::Hot,
            };
            reply(sized(shown.as_str().as_bytes().to_vec(), size));
        });
    }

    pub(super) fn do_getxattr(
        &self,
        ino: INodeNo,
        name: &OsStr,
        size: u32,
    ) -> FsResult<XattrReply> {
        let inode = self.inode(ino)?;
        if is_private(name) {
            return Err(Errno::NO_XATTR);
        }
        if inode.is_symlink() {
            // No race-free way to reach a symlink's xattrs through /proc; user.*
            // attributes cannot exist on symlinks anyway.
            return Err(Errno::NO_XATTR);
        }
        let fd = inode.path_fd()?;
        if name == dosattrib::NAME && inode.is_stub() {
            // A cold file is offline to SMB clients: its own blob with the
            // bits merged in. Only local xattr reads: no data, no catalog.
            let stored = match read_all(|buf| sys::getxattr_fd(fd.as_fd(), name, buf)) {
                Ok(value) => Some(value),
                Err(e) if e == Errno::NO_XATTR => None,
                Err(e) => return Err(e),
            };
            let shown = dosattrib::with_cold_bits(stored.as_deref()).into_owned();
            return sized(shown, size);
        }
        get_sized(|buf| sys::getxattr_fd(fd.as_fd(), name, buf), size)
    }

    pub(super) fn do_listxattr(&self, ino: INodeNo, size: u32) -> FsResult<XattrReply> {
        let inode = self.inode(ino)?;
        if inode.is_symlink() {
            return sized(Vec::new(), size);
        }
        let fd = inode.path_fd()?;
        let mut list = without_private(read_all(|buf| sys::listxattr_fd(fd.as_fd(), buf))?);
        if inode.is_stub() {
            with_name(&mut list, dosattrib::NAME);
        }
        sized(list, size)
    }

    pub(super) fn do_setxattr(
        &self,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
    ) -> FsResult<()> {
        let inode = self.inode(ino)?;
        if inode.is_symlink() || is_private(name) || name == STATE_XATTR {
            return Err(Errno::EPERM);
        }
        let fd = inode.path_fd()?;
        if name == dosattrib::NAME {
            // The offline bits describe the tier, not the file: never stored.
            let mut flags = flags;
            if inode.is_stub() {
                // A stub shows the attribute whether or not it has one stored.
                if flags & libc::XATTR_CREATE != 0 {
                    return Err(Errno::EEXIST);
                }
                flags &= !libc::XATTR_REPLACE;
            }
            let value = dosattrib::without_cold_bits(value);
            return sys::setxattr_fd(fd.as_fd(), name, &value, flags).map_err(errno);
        }
        sys::setxattr_fd(fd.as_fd(), name, value, flags).map_err(errno)
    }

    pub(super) fn do_removexattr(&self, ino: INodeNo, name: &OsStr) -> FsResult<()> {
        let inode = self.inode(ino)?;
        if inode.is_symlink() || is_private(name) || name == STATE_XATTR {
            return Err(Errno::EPERM);
        }
        sys::removexattr_fd(inode.path_fd()?.as_fd(), name).map_err(errno)
    }
}

/// Adds `name` to a NUL-separated xattr name list unless it is there.
fn with_name(list: &mut Vec<u8>, name: &str) {
    if !list.split(|&b| b == 0).any(|n| n == name.as_bytes()) {
        list.extend_from_slice(name.as_bytes());
        list.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_names_are_hidden_from_lists() {
        let list = b"user.a\0trusted.tierfs.stub\0security.x\0".to_vec();
        assert_eq!(without_private(list), b"user.a\0security.x\0".to_vec());
    }

    #[test]
    fn a_name_is_added_to_a_list_once() {
        let mut list = Vec::new();
        with_name(&mut list, "user.DOSATTRIB");
        assert_eq!(list, b"user.DOSATTRIB\0");
        with_name(&mut list, "user.DOSATTRIB");
        assert_eq!(list, b"user.DOSATTRIB\0");
        let mut list = b"user.DOSATTRIBX\0user.a\0".to_vec();
        with_name(&mut list, "user.DOSATTRIB");
        assert_eq!(list, b"user.DOSATTRIBX\0user.a\0user.DOSATTRIB\0");
    }
}
