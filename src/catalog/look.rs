//! Looking at a path of the hot directory: what the catalog writer does
//! when it applies a hint ([`FileEvent::Look`](super::FileEvent::Look) and
//! friends), so that the catalog records what is there when the hint is
//! applied, never an older snapshot taken by whoever sent it.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// What a look at one path found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    /// A regular file.
    File {
        /// Size in bytes.
        size: u64,
        /// Modification time, nanoseconds since the Unix epoch.
        mtime_ns: i64,
        /// Inode number.
        ino: u64,
    },
    /// A directory.
    Directory,
    /// A symlink, device, FIFO or socket: never a catalogued file.
    Other,
    /// Nothing (or only something reachable through a symlink).
    Missing,
}

/// The hot directory as the writer sees it: a descriptor every look starts
/// from, so that no look follows a symlink out of it.
#[derive(Debug)]
pub(crate) struct HotDir {
    fd: OwnedFd,
}

impl HotDir {
    /// Opens `dir` (`O_PATH | O_DIRECTORY`).
    pub(crate) fn open(dir: &Path) -> io::Result<HotDir> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
            .open(dir)?;
        Ok(HotDir {
            fd: OwnedFd::from(file),
        })
    }

    /// Looks at `key` (a catalog key) beneath the hot directory without
    /// following a symlink on the way; a final symlink is looked at itself.
    /// An error other than "not there" is returned as is.
    pub(crate) fn look(&self, key: &[u8]) -> io::Result<Found> {
        look_beneath(self.fd.as_fd(), key)
    }
}

/// See [`HotDir::look`].
pub(crate) fn look_beneath(dir: BorrowedFd<'_>, key: &[u8]) -> io::Result<Found> {
    let path = Path::new(OsStr::from_bytes(key));
    let fd = match crate::sys::open_beneath(dir, path, libc::O_PATH) {
        Ok(fd) => fd,
        Err(e) if is_gone(&e) => return Ok(Found::Missing),
        Err(e) => return Err(e),
    };
    let st = crate::sys::stat_fd(fd.as_fd())?;
    Ok(match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => Found::File {
            size: st.st_size as u64,
            mtime_ns: st.st_mtime.saturating_mul(1_000_000_000) + st.st_mtime_nsec,
            ino: st.st_ino,
        },
        libc::S_IFDIR => Found::Directory,
        _ => Found::Other,
    })
}

/// Whether an error opening a path means nothing is there to catalogue: it
/// is gone, a parent is no longer a directory, or a symlink is on the way.
pub(crate) fn is_gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    ) || matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::EXDEV))
}
