//! Directory streams with stable offsets.
//!
//! FUSE `readdir` resumes from an opaque offset. We hand the kernel the backing
//! filesystem's own `telldir` cookies (`d_off`), which stay valid across
//! concurrent creates and deletes (ext4 uses hash-based cookies), so a reader of
//! a large directory neither skips nor repeats entries.

use std::ffi::{CStr, OsStr};
use std::io;
use std::os::fd::{IntoRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

/// One entry as read from the backing directory.
#[derive(Debug)]
pub struct DirEntry<'a> {
    /// Backing inode number.
    pub ino: u64,
    /// Cookie that resumes the stream just after this entry.
    pub next_offset: u64,
    /// `d_type` (`DT_*`).
    pub kind: u8,
    /// Entry name.
    pub name: &'a OsStr,
}

/// An open directory stream (`DIR*`).
#[derive(Debug)]
pub struct DirStream {
    dir: *mut libc::DIR,
}

// SAFETY: a DIR* may be used from any thread as long as calls are not
// concurrent; callers keep each stream behind a mutex.
unsafe impl Send for DirStream {}

impl DirStream {
    /// Takes ownership of a directory descriptor opened with `O_RDONLY | O_DIRECTORY`.
    pub fn new(fd: OwnedFd) -> io::Result<DirStream> {
        let raw = fd.into_raw_fd();
        // SAFETY: `raw` is an open directory fd; on success DIR* owns it.
        let dir = unsafe { libc::fdopendir(raw) };
        if dir.is_null() {
            let err = io::Error::last_os_error();
            // SAFETY: fdopendir failed, so we still own `raw`.
            unsafe { libc::close(raw) };
            return Err(err);
        }
        Ok(DirStream { dir })
    }

    /// Positions the stream at `offset` (0 = start, otherwise a cookie from
    /// [`DirEntry::next_offset`]).
    pub fn seek(&mut self, offset: u64) {
        // SAFETY: `self.dir` is a valid open stream.
        unsafe {
            if offset == 0 {
                libc::rewinddir(self.dir);
            } else {
                libc::seekdir(self.dir, offset as libc::c_long);
            }
        }
    }

    /// Current position cookie.
    pub fn tell(&self) -> u64 {
        // SAFETY: valid stream.
        unsafe { libc::telldir(self.dir) as u64 }
    }

    /// Reads the next entry, or `None` at the end.
    pub fn next_entry(&mut self) -> io::Result<Option<DirEntry<'_>>> {
        // SAFETY: clearing errno distinguishes end-of-stream from failure.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: valid stream; the returned pointer stays valid until the next call,
        // which the `&mut self` borrow on the result enforces.
        let ent = unsafe { libc::readdir64(self.dir) };
        if ent.is_null() {
            let errno = io::Error::last_os_error();
            return match errno.raw_os_error() {
                Some(0) | None => Ok(None),
                _ => Err(errno),
            };
        }
        // SAFETY: non-null entry from readdir64.
        let ent = unsafe { &*ent };
        // SAFETY: d_name is NUL-terminated.
        let name = unsafe { CStr::from_ptr(ent.d_name.as_ptr()) };
        Ok(Some(DirEntry {
            ino: ent.d_ino,
            next_offset: ent.d_off as u64,
            kind: ent.d_type,
            name: OsStr::from_bytes(name.to_bytes()),
        }))
    }

    /// Raw descriptor (for `fsync`).
    pub fn raw_fd(&self) -> i32 {
        // SAFETY: valid stream.
        unsafe { libc::dirfd(self.dir) }
    }
}

impl Drop for DirStream {
    fn drop(&mut self) {
        // SAFETY: the stream is open and owned by us.
        unsafe { libc::closedir(self.dir) };
    }
}
