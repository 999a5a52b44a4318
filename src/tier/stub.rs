//! The stub: what is left of a released file in the hot dir.
//!
//! A stub is the original inode (same name, size, mode, owner, times, hard
//! links and xattrs) with every data block punched out, plus the xattr
//! `trusted.tierfs.stub` naming its content. The marker is written (and
//! synced) *before* any block is freed and removed only *after* a recall has
//! been verified and synced, so "marker present" always means "the local
//! bytes may be missing; the cloud copy is authoritative". The marker lives in
//! the `trusted` namespace: only root (the daemon) can read or set it, and the
//! mount hides it. It is 41 bytes (version, blake3, size) so that it fits
//! inside an ext4 inode and the stub really uses no blocks.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use crate::fs::sys;

/// Name of the stub marker xattr.
pub const MARKER: &str = "trusted.tierfs.stub";

/// Contents of the stub marker: enough to find and verify the object even
/// without the catalog (disaster recovery).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StubMarker {
    /// blake3 of the file's content.
    pub hash: blake3::Hash,
    /// Size in bytes.
    pub size: u64,
}

/// Marker format version (first byte).
const VERSION: u8 = 1;
/// Encoded length: version, hash, size (little-endian).
const ENCODED_LEN: usize = 1 + 32 + 8;

impl StubMarker {
    /// A marker for content `hash` of `size` bytes.
    pub fn new(hash: &blake3::Hash, size: u64) -> StubMarker {
        StubMarker { hash: *hash, size }
    }

    /// The content hash.
    pub fn hash(&self) -> io::Result<blake3::Hash> {
        Ok(self.hash)
    }

    fn encode(&self) -> [u8; ENCODED_LEN] {
        let mut out = [0u8; ENCODED_LEN];
        out[0] = VERSION;
        out[1..33].copy_from_slice(self.hash.as_bytes());
        out[33..].copy_from_slice(&self.size.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> io::Result<StubMarker> {
        let bad = |why: &str| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad stub marker: {why}"),
            )
        };
        if bytes.len() != ENCODED_LEN {
            return Err(bad(&format!(
                "{} bytes, expected {ENCODED_LEN}",
                bytes.len()
            )));
        }
        if bytes[0] != VERSION {
            return Err(bad(&format!("version {}", bytes[0])));
        }
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&bytes[1..33]);
        let mut size = [0u8; 8];
        size.copy_from_slice(&bytes[33..]);
        Ok(StubMarker {
            hash: blake3::Hash::from_bytes(hash),
            size: u64::from_le_bytes(size),
        })
    }
}

/// Reads the marker of the inode behind `fd` (`None` if it is not a stub).
pub fn read_marker(fd: BorrowedFd<'_>) -> io::Result<Option<StubMarker>> {
    let mut buf = [0u8; 64];
    match sys::getxattr_fd(fd, OsStr::new(MARKER), &mut buf) {
        Ok(n) => StubMarker::decode(&buf[..n]).map(Some),
        Err(e) if e.raw_os_error() == Some(libc::ENODATA) => Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether the inode behind `fd` is a stub (errors count as "not a stub").
pub fn is_stub(fd: BorrowedFd<'_>) -> bool {
    let mut buf = [0u8; 0];
    sys::getxattr_fd(fd, OsStr::new(MARKER), &mut buf).is_ok()
}

/// Writes the marker.
pub fn write_marker(file: &File, marker: &StubMarker) -> io::Result<()> {
    sys::setxattr_fd(file.as_fd(), OsStr::new(MARKER), &marker.encode(), 0)
}

/// Removes the marker (missing is fine).
pub fn remove_marker(file: &File) -> io::Result<()> {
    match sys::removexattr_fd(file.as_fd(), OsStr::new(MARKER)) {
        Err(e) if e.raw_os_error() != Some(libc::ENODATA) => Err(e),
        _ => Ok(()),
    }
}

/// Frees every block of `file` (data and extent tree) while keeping its
/// size: truncate to zero, then extend to a hole of `size` bytes. A crash in
/// between leaves a marked file of the wrong size, which [`fix_size`] repairs.
pub fn empty_keeping_size(file: &File, size: u64) -> io::Result<()> {
    file.set_len(0)?;
    super::failpoint::pause("emptied");
    file.set_len(size)
}

/// Gives back the blocks a failed recall wrote into a stub, keeping its size
/// visible throughout where the file system allows: nothing to do if no block
/// was written; else [`free_blocks_keeping_size`].
pub fn give_back_blocks(file: &File, size: u64) -> io::Result<()> {
    if sys::stat_fd(file.as_fd())?.st_blocks == 0 {
        return Ok(());
    }
    free_blocks_keeping_size(file, size)
}

/// Frees every block of `file`, keeping its `size` visible throughout where
/// the file system allows: a hole punched over the whole file (the size never
/// changes, so a `stat` during a release sees the real size); only if blocks
/// remain after that (an extent index block on ext4), or the file system
/// cannot punch holes, the size-changing [`empty_keeping_size`].
pub fn free_blocks_keeping_size(file: &File, size: u64) -> io::Result<()> {
    if !super::failpoint::punch_disabled() && punch_whole(file, size)? {
        return Ok(());
    }
    empty_keeping_size(file, size)
}

/// Punches a hole over `[0, size)`; whether no block is left afterwards.
fn punch_whole(file: &File, size: u64) -> io::Result<bool> {
    let len = libc::off_t::try_from(size).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    // SAFETY: fallocate on a descriptor we own; no memory is passed.
    let punched = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            0,
            len,
        )
    } == 0;
    Ok(punched && sys::stat_fd(file.as_fd())?.st_blocks == 0)
}

/// Gives a stub the size its marker records (after a crash mid-release).
pub fn fix_size(file: &File, marker: &StubMarker) -> io::Result<bool> {
    let st = sys::stat_fd(file.as_fd())?;
    if st.st_size as u64 == marker.size {
        return Ok(false);
    }
    file.set_len(marker.size)?;
    Ok(true)
}

/// Sets access and modification times from a `stat` taken earlier.
pub fn restore_times(file: &File, st: &libc::stat) -> io::Result<()> {
    let times = [
        libc::timespec {
            tv_sec: st.st_atime,
            tv_nsec: st.st_atime_nsec,
        },
        libc::timespec {
            tv_sec: st.st_mtime,
            tv_nsec: st.st_mtime_nsec,
        },
    ];
    sys::utimens_fd(file.as_fd(), &times)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_round_trips_and_fits_in_an_inode() {
        let m = StubMarker::new(&blake3::hash(b"x"), 5_000_000_123);
        let bytes = m.encode();
        assert_eq!(bytes.len(), 41);
        assert_eq!(StubMarker::decode(&bytes).unwrap(), m);
        assert!(StubMarker::decode(&bytes[1..]).is_err());
        let mut other = bytes;
        other[0] = 9;
        assert!(StubMarker::decode(&other).is_err());
    }
}
