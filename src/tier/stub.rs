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

use crate::sys;

/// Name of the stub marker xattr.
pub const MARKER: &str = "trusted.tierfs.stub";

/// Contents of the stub marker: enough to find and verify the object even
/// without the catalog (disaster recovery), and the times the file shows
/// while it is a stub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StubMarker {
    /// blake3 of the file's content.
    pub hash: blake3::Hash,
    /// Size in bytes.
    pub size: u64,
    /// The times the file shows through the mount while it is a stub
    /// (markers written before version 2 have none).
    pub times: Option<StubTimes>,
}

/// The modification and change times a stub shows: those of the original
/// file, whatever the engine does to the stub's inode (freeing blocks,
/// writing recalled chunks), until a user changes the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StubTimes {
    /// Modification time (ns since the epoch).
    pub mtime_ns: i64,
    /// Change time shown for the file (ns since the epoch).
    pub ctime_ns: i64,
}

/// Marker format version (first byte): 1 = hash and size, 2 = plus times.
const VERSION: u8 = 2;
/// Encoded length of version 1: version, hash, size (little-endian).
const V1_LEN: usize = 1 + 32 + 8;
/// Encoded length of version 2: version 1 plus mtime and ctime (i64 ns).
/// 57 bytes: with its entry header it still fits in the in-inode xattr
/// space of a 256-byte ext4 inode, so the stub uses no block.
const ENCODED_LEN: usize = V1_LEN + 16;

impl StubMarker {
    /// A marker for content `hash` of `size` bytes, without times.
    pub fn new(hash: &blake3::Hash, size: u64) -> StubMarker {
        StubMarker {
            hash: *hash,
            size,
            times: None,
        }
    }

    /// The same marker showing `times`.
    pub fn with_times(mut self, times: StubTimes) -> StubMarker {
        self.times = Some(times);
        self
    }

    /// The content hash.
    pub fn hash(&self) -> io::Result<blake3::Hash> {
        Ok(self.hash)
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ENCODED_LEN);
        out.push(if self.times.is_some() { VERSION } else { 1 });
        out.extend_from_slice(self.hash.as_bytes());
        out.extend_from_slice(&self.size.to_le_bytes());
        if let Some(t) = self.times {
            out.extend_from_slice(&t.mtime_ns.to_le_bytes());
            out.extend_from_slice(&t.ctime_ns.to_le_bytes());
        }
        out
    }

    fn decode(bytes: &[u8]) -> io::Result<StubMarker> {
        let bad = |why: &str| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad stub marker: {why}"),
            )
        };
        let want = match bytes.first() {
            Some(1) => V1_LEN,
            Some(2) => ENCODED_LEN,
            Some(v) => return Err(bad(&format!("version {v}"))),
            None => return Err(bad("empty")),
        };
        if bytes.len() != want {
            return Err(bad(&format!(
                "{} bytes, expected {want} for version {}",
                bytes.len(),
                bytes[0]
            )));
        }
        let word = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[at..at + 8]);
            w
        };
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&bytes[1..33]);
        let times = (bytes[0] == 2).then(|| StubTimes {
            mtime_ns: i64::from_le_bytes(word(41)),
            ctime_ns: i64::from_le_bytes(word(49)),
        });
        Ok(StubMarker {
            hash: blake3::Hash::from_bytes(hash),
            size: u64::from_le_bytes(word(33)),
            times,
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

/// Replaces the marker of the inode behind `fd` if it still has one (a
/// recall that removed it meanwhile wins). Whether it was replaced.
pub fn replace_marker(fd: BorrowedFd<'_>, marker: &StubMarker) -> io::Result<bool> {
    match sys::setxattr_fd(
        fd,
        OsStr::new(MARKER),
        &marker.encode(),
        libc::XATTR_REPLACE,
    ) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENODATA) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Removes the marker (missing is fine).
pub fn remove_marker(file: &File) -> io::Result<()> {
    match sys::removexattr_fd(file.as_fd(), OsStr::new(MARKER)) {
        Err(e) if e.raw_os_error() != Some(libc::ENODATA) => Err(e),
        _ => Ok(()),
    }
}

/// Name of the xattr that keeps the change time of a file the engine
/// recalled: `{shown ctime, engine's last change}` as two little-endian i64
/// ns. Only the ctime needs it: a recall restores the modification time
/// itself, but no call sets a ctime.
pub const KEPT_CTIME: &str = "trusted.tierfs.ctime";

/// How long after the engine's last change to a file its kept ctime is
/// still shown. Changes through the mount drop the kept ctime at once;
/// this bounds what a change made directly in the hot dir can hide.
const KEPT_WINDOW_NS: i64 = 2_000_000_000;

/// Nanoseconds since the epoch of `CLOCK_REALTIME_COARSE`: the clock the
/// kernel stamps inode times from, so an inode changed after this reading
/// has a ctime at or after it.
fn coarse_now_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
    ts.tv_sec.saturating_mul(1_000_000_000) + ts.tv_nsec
}

/// The change time of a `stat` in ns since the epoch.
pub fn ctime_ns(st: &libc::stat) -> i64 {
    st.st_ctime.saturating_mul(1_000_000_000) + st.st_ctime_nsec
}

/// The modification time of a `stat` in ns since the epoch.
pub fn mtime_ns(st: &libc::stat) -> i64 {
    st.st_mtime.saturating_mul(1_000_000_000) + st.st_mtime_nsec
}

/// Makes the file keep showing change time `ctime_ns` after the engine's
/// change that ends with this call (must be the engine's last change).
/// `after` is the time stamped by an earlier call in the same step: the
/// value then always differs (ext4 skips a write of an identical value,
/// and the write is what moves the xattr into the inode).
pub fn keep_ctime(file: &File, ctime_ns: i64, after: Option<i64>) -> io::Result<i64> {
    // Never later than the change this call makes, so the window covers it.
    let set_at = match after {
        Some(t) => t - 1,
        None => coarse_now_ns(),
    };
    let mut value = [0u8; 16];
    value[..8].copy_from_slice(&ctime_ns.to_le_bytes());
    value[8..].copy_from_slice(&set_at.to_le_bytes());
    sys::setxattr_fd(file.as_fd(), OsStr::new(KEPT_CTIME), &value, 0)?;
    Ok(set_at)
}

/// Removes a kept ctime (missing is fine).
pub fn drop_kept_ctime(file: &File) -> io::Result<()> {
    match sys::removexattr_fd(file.as_fd(), OsStr::new(KEPT_CTIME)) {
        Err(e) if e.raw_os_error() != Some(libc::ENODATA) => Err(e),
        _ => Ok(()),
    }
}

/// The kept ctime of the inode behind `fd` if it still applies to a file
/// whose current ctime is `now_ctime_ns`.
fn kept_ctime(fd: BorrowedFd<'_>, now_ctime_ns: i64) -> Option<i64> {
    let mut buf = [0u8; 16];
    let n = sys::getxattr_fd(fd, OsStr::new(KEPT_CTIME), &mut buf).ok()?;
    if n != 16 {
        return None;
    }
    let mut shown = [0u8; 8];
    let mut set_at = [0u8; 8];
    shown.copy_from_slice(&buf[..8]);
    set_at.copy_from_slice(&buf[8..]);
    let set_at = i64::from_le_bytes(set_at);
    (set_at <= now_ctime_ns && now_ctime_ns <= set_at.saturating_add(KEPT_WINDOW_NS))
        .then(|| i64::from_le_bytes(shown))
}

/// The change time a file shows before the engine changes it: the kept one
/// if it still applies, else its own.
pub fn shown_ctime_ns(fd: BorrowedFd<'_>, st: &libc::stat) -> i64 {
    kept_ctime(fd, ctime_ns(st)).unwrap_or_else(|| ctime_ns(st))
}

/// Replaces the times in `st` (the backing inode behind `fd`) with those the
/// file shows through the mount: a stub shows its marker's modification and
/// change times (the engine frees and fills its blocks) and at least one
/// block, a recalled file its kept change time. Other files and other kinds
/// are left as they are.
pub fn show_times(fd: BorrowedFd<'_>, st: &mut libc::stat) {
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return;
    }
    let mut names = [0u8; 256];
    let listed = match sys::listxattr_fd(fd, &mut names) {
        Ok(0) => return,
        Ok(n) => Some(&names[..n]),
        Err(e) if e.raw_os_error() == Some(libc::ERANGE) => None,
        Err(_) => return,
    };
    let has =
        |name: &str| listed.is_none_or(|l| l.split(|&b| b == 0).any(|n| n == name.as_bytes()));
    if !has(MARKER) && !has(KEPT_CTIME) {
        return;
    }
    // The list is a snapshot: a recall may remove the marker (after setting
    // the kept ctime) between it and these reads, so each is looked up
    // whatever the list said, the marker again last (a release drops the
    // kept ctime just before it writes the marker).
    if let Ok(Some(marker)) = read_marker(fd) {
        return show_stub(&marker, st);
    }
    // The kept ctime is checked against the inode's ctime now, not the
    // snapshot's: a recall finishing between the snapshot and these reads
    // (times restored, then the kept ctime set, then the marker removed)
    // leaves a snapshot older than the kept ctime's window.
    // The snapshot's modification time may also be a chunk write's, which
    // the recall has since put back: the fresh attributes are shown.
    let fresh = sys::stat_fd(fd).unwrap_or(*st);
    if let Some(c) = kept_ctime(fd, ctime_ns(&fresh)) {
        *st = fresh;
        set_time(&mut st.st_ctime, &mut st.st_ctime_nsec, c);
        return;
    }
    if let Ok(Some(marker)) = read_marker(fd) {
        show_stub(&marker, st);
    }
}

/// What a stub with `marker` shows in `st`: its marker's size and times, and one
/// block if it is not empty, never zero: GNU tar takes a file with no
/// blocks for entirely sparse without asking `SEEK_DATA` (`tar --sparse`
/// would archive zeros). Lustre's HSM shows released files the same way.
fn show_stub(marker: &StubMarker, st: &mut libc::stat) {
    // The marker's size: a release frees the blocks by truncating to zero
    // and back, and a `stat` in between must not show (nor the kernel cache)
    // an empty file.
    st.st_size = i64::try_from(marker.size).unwrap_or(i64::MAX);
    if st.st_size > 0 && st.st_blocks == 0 {
        st.st_blocks = 1;
    }
    if let Some(t) = marker.times {
        set_time(&mut st.st_mtime, &mut st.st_mtime_nsec, t.mtime_ns);
        set_time(&mut st.st_ctime, &mut st.st_ctime_nsec, t.ctime_ns);
    }
}

fn set_time(secs: &mut i64, nsecs: &mut i64, ns: i64) {
    *secs = ns.div_euclid(1_000_000_000);
    *nsecs = ns.rem_euclid(1_000_000_000);
}

/// After a user changed the file behind `fd` through the mount (its stat
/// now `st`): a stub's marker takes the new change time (and `set_mtime_ns`,
/// the modification time the user set, if any: taken from the request, not
/// from `st`, which a chunk written into the stub meanwhile may have moved),
/// a kept ctime is dropped, so the file shows the change.
pub fn user_changed(
    fd: BorrowedFd<'_>,
    st: &libc::stat,
    set_mtime_ns: Option<i64>,
) -> io::Result<()> {
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Ok(());
    }
    if let Some(marker) = read_marker(fd)? {
        if let Some(mut t) = marker.times {
            t.ctime_ns = ctime_ns(st);
            if let Some(m) = set_mtime_ns {
                t.mtime_ns = m;
            }
            replace_marker(fd, &marker.with_times(t))?;
        }
        return Ok(());
    }
    match sys::removexattr_fd(fd, OsStr::new(KEPT_CTIME)) {
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
    restore_times_with(file, st, None)
}

/// Sets the access time from `st` and the modification time from `marker`
/// if it records one (the original file's, whatever was written into the
/// stub since), else from `st`.
pub fn restore_times_with(
    file: &File,
    st: &libc::stat,
    marker: Option<&StubMarker>,
) -> io::Result<()> {
    let mtime = match marker.and_then(|m| m.times) {
        Some(t) => libc::timespec {
            tv_sec: t.mtime_ns.div_euclid(1_000_000_000),
            tv_nsec: t.mtime_ns.rem_euclid(1_000_000_000),
        },
        None => libc::timespec {
            tv_sec: st.st_mtime,
            tv_nsec: st.st_mtime_nsec,
        },
    };
    let times = [
        libc::timespec {
            tv_sec: st.st_atime,
            tv_nsec: st.st_atime_nsec,
        },
        mtime,
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
        assert_eq!(bytes.len(), 41, "version 1 without times");
        assert_eq!(StubMarker::decode(&bytes).unwrap(), m);
        assert!(StubMarker::decode(&bytes[1..]).is_err());
        let mut other = bytes;
        other[0] = 9;
        assert!(StubMarker::decode(&other).is_err());
        let timed = m.with_times(StubTimes {
            mtime_ns: -1_500_000_000,
            ctime_ns: 1_700_000_000_123_456_789,
        });
        let bytes = timed.encode();
        assert_eq!(bytes.len(), 57, "version 2 fits an ext4 inode");
        assert_eq!(StubMarker::decode(&bytes).unwrap(), timed);
        assert!(StubMarker::decode(&bytes[..41]).is_err());
    }
}
