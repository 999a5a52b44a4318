//! Thin, safe wrappers over the `*at()` system calls the passthrough needs.
//!
//! Every operation is relative to a directory or `O_PATH` file descriptor, never
//! a full path string: paths can then be as long as the backing filesystem
//! allows, and a rename elsewhere in the tree cannot redirect an operation.
//! Operations that have no `*at()` form with an empty path go through
//! `/proc/self/fd/N`, which names the exact inode the descriptor holds.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

/// Converts a `-1` return into the current `errno`.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn check_size(ret: libc::ssize_t) -> io::Result<usize> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// A file name as a C string; names with an interior NUL are invalid.
pub fn cstr(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

const EMPTY: &CStr = c"";

/// `/proc/self/fd/N` for a descriptor: names the inode it holds.
pub fn proc_path(fd: BorrowedFd<'_>) -> CString {
    // A decimal number never contains NUL.
    CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap_or_default()
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`.
pub fn stat_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<libc::stat> {
    let name = cstr(name)?;
    let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: valid fd, NUL-terminated name, `st` is writable memory for one stat.
    check(unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    // SAFETY: fstatat succeeded and filled the struct.
    Ok(unsafe { st.assume_init() })
}

/// Stat of the inode a descriptor (possibly `O_PATH`) refers to.
pub fn stat_fd(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: as above; AT_EMPTY_PATH makes fstatat act on `fd` itself.
    check(unsafe {
        libc::fstatat(
            fd.as_raw_fd(),
            EMPTY.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    // SAFETY: fstatat succeeded.
    Ok(unsafe { st.assume_init() })
}

fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    let fd = check(fd)?;
    // SAFETY: the kernel just returned this descriptor and nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `openat(dir, name, flags, mode)` with `O_CLOEXEC` added. With `O_CREAT`
/// the mode is applied unmasked by the daemon's umask (see [`caller_umask`]).
pub fn open_at(dir: BorrowedFd<'_>, name: &OsStr, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let name = cstr(name)?;
    if flags & libc::O_CREAT != 0 {
        caller_umask();
    }
    // SAFETY: valid fd and NUL-terminated name.
    owned(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            flags | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    })
}

/// An `O_PATH` handle on `name` inside `dir`, not following a final symlink.
pub fn open_path(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    open_at(dir, name, libc::O_PATH | libc::O_NOFOLLOW, 0)
}

/// Opens the inode behind an `O_PATH` descriptor for I/O with `flags`.
pub fn reopen(fd: BorrowedFd<'_>, flags: i32) -> io::Result<File> {
    let path = proc_path(fd);
    // SAFETY: NUL-terminated path.
    let fd = owned(unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC, 0) })?;
    Ok(File::from(fd))
}

/// `mkdirat`, with `mode` unmasked by the daemon's umask (see [`caller_umask`]).
pub fn mkdir_at(dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<()> {
    let name = cstr(name)?;
    caller_umask();
    // SAFETY: valid fd and name.
    check(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode as libc::mode_t) })?;
    Ok(())
}

/// `mknodat`, with `mode` unmasked by the daemon's umask (see [`caller_umask`]).
pub fn mknod_at(dir: BorrowedFd<'_>, name: &OsStr, mode: u32, rdev: u64) -> io::Result<()> {
    let name = cstr(name)?;
    caller_umask();
    // SAFETY: valid fd and name.
    check(unsafe {
        libc::mknodat(
            dir.as_raw_fd(),
            name.as_ptr(),
            mode as libc::mode_t,
            rdev as libc::dev_t,
        )
    })?;
    Ok(())
}

/// `symlinkat(target, dir, name)`.
pub fn symlink_at(target: &Path, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let target = cstr(target.as_os_str())?;
    let name = cstr(name)?;
    // SAFETY: valid strings and fd.
    check(unsafe { libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), name.as_ptr()) })?;
    Ok(())
}

/// `readlinkat(fd, "")` on an `O_PATH` descriptor of a symlink.
pub fn readlink_fd(fd: BorrowedFd<'_>) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: buffer is valid for buf.len() bytes.
    let n = check_size(unsafe {
        libc::readlinkat(
            fd.as_raw_fd(),
            EMPTY.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    })?;
    buf.truncate(n);
    Ok(buf)
}

/// Absolute path of the inode behind `fd`, as the kernel currently knows it.
pub fn fd_path(fd: BorrowedFd<'_>) -> io::Result<OsString> {
    std::fs::read_link(Path::new(OsStr::from_bytes(proc_path(fd).as_bytes())))
        .map(|p| p.into_os_string())
}

/// `unlinkat(dir, name, flags)`.
pub fn unlink_at(dir: BorrowedFd<'_>, name: &OsStr, flags: i32) -> io::Result<()> {
    let name = cstr(name)?;
    // SAFETY: valid fd and name.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) })?;
    Ok(())
}

/// `renameat2`.
pub fn rename_at(
    old_dir: BorrowedFd<'_>,
    old: &OsStr,
    new_dir: BorrowedFd<'_>,
    new: &OsStr,
    flags: u32,
) -> io::Result<()> {
    let old = cstr(old)?;
    let new = cstr(new)?;
    // SAFETY: valid fds and names.
    check(unsafe {
        libc::renameat2(
            old_dir.as_raw_fd(),
            old.as_ptr(),
            new_dir.as_raw_fd(),
            new.as_ptr(),
            flags,
        )
    })?;
    Ok(())
}

/// Creates a hard link `new_dir/new` to the inode behind `fd`.
pub fn link_fd(fd: BorrowedFd<'_>, new_dir: BorrowedFd<'_>, new: &OsStr) -> io::Result<()> {
    let new = cstr(new)?;
    // SAFETY: valid fds and names; AT_EMPTY_PATH links the inode of `fd` itself.
    check(unsafe {
        libc::linkat(
            fd.as_raw_fd(),
            EMPTY.as_ptr(),
            new_dir.as_raw_fd(),
            new.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    })?;
    Ok(())
}

/// `fchownat(fd, "", uid, gid, AT_EMPTY_PATH)`; `u32::MAX` leaves a field unchanged.
pub fn chown_fd(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: valid fd.
    check(unsafe {
        libc::fchownat(
            fd.as_raw_fd(),
            EMPTY.as_ptr(),
            uid,
            gid,
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(())
}

/// `chmod` of the inode behind `fd` (not valid for symlinks).
pub fn chmod_fd(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    let path = proc_path(fd);
    // SAFETY: NUL-terminated path.
    check(unsafe { libc::chmod(path.as_ptr(), mode as libc::mode_t) })?;
    Ok(())
}

/// `truncate` of the inode behind `fd`.
pub fn truncate_fd(fd: BorrowedFd<'_>, size: u64) -> io::Result<()> {
    let path = proc_path(fd);
    // SAFETY: NUL-terminated path.
    check(unsafe { libc::truncate(path.as_ptr(), size as libc::off_t) })?;
    Ok(())
}

/// `utimensat` on the inode behind `fd` (works for symlinks too).
pub fn utimens_fd(fd: BorrowedFd<'_>, times: &[libc::timespec; 2]) -> io::Result<()> {
    // SAFETY: valid fd and a two-element timespec array.
    check(unsafe {
        libc::utimensat(
            fd.as_raw_fd(),
            EMPTY.as_ptr(),
            times.as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(())
}

/// `getxattr` on the inode behind `fd`; with `size == 0` returns the needed length.
pub fn getxattr_fd(fd: BorrowedFd<'_>, name: &OsStr, buf: &mut [u8]) -> io::Result<usize> {
    let path = proc_path(fd);
    let name = cstr(name)?;
    // SAFETY: valid strings; buffer valid for its length (may be empty).
    check_size(unsafe {
        libc::getxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    })
}

/// `setxattr` on the inode behind `fd`.
pub fn setxattr_fd(fd: BorrowedFd<'_>, name: &OsStr, value: &[u8], flags: i32) -> io::Result<()> {
    let path = proc_path(fd);
    let name = cstr(name)?;
    // SAFETY: valid strings and buffer.
    check(unsafe {
        libc::setxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    })?;
    Ok(())
}

/// `listxattr` on the inode behind `fd`; with an empty buffer returns the needed length.
pub fn listxattr_fd(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    let path = proc_path(fd);
    // SAFETY: valid path; buffer valid for its length.
    check_size(unsafe { libc::listxattr(path.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) })
}

/// `removexattr` on the inode behind `fd`.
pub fn removexattr_fd(fd: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let path = proc_path(fd);
    let name = cstr(name)?;
    // SAFETY: valid strings.
    check(unsafe { libc::removexattr(path.as_ptr(), name.as_ptr()) })?;
    Ok(())
}

/// `statvfs` of the filesystem holding `path`.
pub fn statvfs(path: &Path) -> io::Result<libc::statvfs> {
    let path = cstr(path.as_os_str())?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: valid path; `st` is writable.
    check(unsafe { libc::statvfs(path.as_ptr(), st.as_mut_ptr()) })?;
    // SAFETY: statvfs succeeded.
    Ok(unsafe { st.assume_init() })
}

/// `fallocate` on an open file.
pub fn fallocate(fd: RawFd, mode: i32, offset: u64, len: u64) -> io::Result<()> {
    // SAFETY: plain syscall on a descriptor we own.
    check(unsafe { libc::fallocate(fd, mode, offset as libc::off_t, len as libc::off_t) })?;
    Ok(())
}

/// `lseek` on an open file (used for `SEEK_DATA` / `SEEK_HOLE`).
pub fn lseek(fd: RawFd, offset: i64, whence: i32) -> io::Result<i64> {
    // SAFETY: plain syscall.
    let r = unsafe { libc::lseek(fd, offset as libc::off_t, whence) };
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// `copy_file_range` between two open files.
pub fn copy_file_range(
    fd_in: RawFd,
    off_in: u64,
    fd_out: RawFd,
    off_out: u64,
    len: u64,
) -> io::Result<usize> {
    let mut off_in = off_in as libc::loff_t;
    let mut off_out = off_out as libc::loff_t;
    // SAFETY: offsets point at locals; descriptors are open.
    check_size(unsafe {
        libc::copy_file_range(fd_in, &mut off_in, fd_out, &mut off_out, len as usize, 0)
    })
}

/// Name bytes as an `OsString`.
pub fn os_string(bytes: Vec<u8>) -> OsString {
    OsString::from_vec(bytes)
}

/// A kernel file handle (`name_to_handle_at`): names an inode without
/// holding it open, so the daemon's descriptor count stays bounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHandleBuf {
    handle_type: i32,
    bytes: Vec<u8>,
}

impl FileHandleBuf {
    /// A 32-bit digest of the handle, used as the FUSE generation number.
    /// The handles of every filesystem that has them carry the inode's
    /// on-disk generation (ext4 and xfs: inode number and `i_generation`;
    /// btrfs: object id, subvolume and generation; tmpfs: number and
    /// generation), so a backing inode number reused by a new file gives
    /// another digest, while the same file gives the same one forever
    /// (handles are persistent). FNV-1a, so it is stable across builds.
    pub fn digest(&self) -> u32 {
        let mut h: u32 = 0x811c_9dc5;
        for b in self.handle_type.to_le_bytes().iter().chain(&self.bytes) {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
        h
    }

    /// The handle as one line of text: `TYPE HEX` (for the saved handle map).
    pub fn to_text(&self) -> String {
        let hex: String = self.bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!("{} {hex}", self.handle_type)
    }

    /// Parses [`to_text`](Self::to_text)'s form.
    pub fn from_text(text: &str) -> Option<FileHandleBuf> {
        let (ty, hex) = text.split_once(' ')?;
        if hex.len() % 2 != 0 || hex.len() / 2 > MAX_HANDLE_BYTES {
            return None;
        }
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        Some(FileHandleBuf {
            handle_type: ty.parse().ok()?,
            bytes,
        })
    }
}

/// Room for the largest handle we accept (`MAX_HANDLE_SZ` is 128).
const MAX_HANDLE_BYTES: usize = 128;

#[repr(C)]
struct RawFileHandle {
    handle_bytes: libc::c_uint,
    handle_type: libc::c_int,
    f_handle: [u8; MAX_HANDLE_BYTES],
}

/// The file handle of the inode behind `fd`, or `None` if its filesystem
/// does not support handles.
pub fn file_handle(fd: BorrowedFd<'_>) -> Option<FileHandleBuf> {
    let mut raw = RawFileHandle {
        handle_bytes: MAX_HANDLE_BYTES as libc::c_uint,
        handle_type: 0,
        f_handle: [0; MAX_HANDLE_BYTES],
    };
    let mut mount_id: libc::c_int = 0;
    // SAFETY: `raw` is a valid file_handle buffer of MAX_HANDLE_BYTES payload bytes.
    let r = unsafe {
        libc::syscall(
            libc::SYS_name_to_handle_at,
            fd.as_raw_fd(),
            EMPTY.as_ptr(),
            &mut raw as *mut RawFileHandle,
            &mut mount_id as *mut libc::c_int,
            libc::AT_EMPTY_PATH,
        )
    };
    if r != 0 || raw.handle_bytes as usize > MAX_HANDLE_BYTES {
        return None;
    }
    Some(FileHandleBuf {
        handle_type: raw.handle_type,
        bytes: raw.f_handle[..raw.handle_bytes as usize].to_vec(),
    })
}

/// Opens the inode named by `handle` as an `O_PATH` descriptor; `mount_fd` is
/// any descriptor on the same filesystem.
pub fn open_handle(mount_fd: BorrowedFd<'_>, handle: &FileHandleBuf) -> io::Result<OwnedFd> {
    let mut raw = RawFileHandle {
        handle_bytes: handle.bytes.len() as libc::c_uint,
        handle_type: handle.handle_type,
        f_handle: [0; MAX_HANDLE_BYTES],
    };
    raw.f_handle[..handle.bytes.len()].copy_from_slice(&handle.bytes);
    // SAFETY: `raw` holds a handle produced by name_to_handle_at.
    let r = unsafe {
        libc::syscall(
            libc::SYS_open_by_handle_at,
            mount_fd.as_raw_fd(),
            &mut raw as *mut RawFileHandle,
            libc::O_PATH | libc::O_CLOEXEC,
        )
    };
    owned(r as libc::c_int)
}

/// Flags every [`open_beneath`] adds: never follow a final symlink, never
/// block on a FIFO or device, never acquire a controlling terminal, and do
/// not leak the descriptor into children.
const BENEATH_FLAGS: i32 = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;

/// `struct open_how` of `openat2(2)` (libc's is non-exhaustive).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// `flags` plus [`BENEATH_FLAGS`]; with `O_PATH` only the flags `O_PATH`
/// allows (`openat2` rejects the others).
fn with_beneath_flags(flags: i32) -> i32 {
    if flags & libc::O_PATH != 0 {
        flags | libc::O_NOFOLLOW | libc::O_CLOEXEC
    } else {
        flags | BENEATH_FLAGS
    }
}

/// Opens `rel` beneath `dir` without following any symlink on the way
/// (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
/// RESOLVE_NO_MAGICLINKS`). `rel` must be relative and made of plain names
/// only (no `..`, `.` or empty components); anything else fails with
/// `EXDEV`. A symlink anywhere in the path fails with `ELOOP` (for
/// `O_PATH`, a final symlink is opened itself). `O_NONBLOCK` and `O_NOCTTY`
/// are always added, so a FIFO or device swapped in never blocks the caller:
/// check the type with [`stat_fd`] before using what was opened.
///
/// On kernels without `openat2` (before 5.6), and for paths longer than
/// `PATH_MAX`, it walks the path one component at a time with `O_PATH |
/// O_NOFOLLOW | O_DIRECTORY`, which gives the same guarantees.
pub fn open_beneath(dir: BorrowedFd<'_>, rel: &Path, flags: i32) -> io::Result<OwnedFd> {
    let names = plain_components(rel)?;
    if !openat2_disabled() {
        let path = cstr(rel.as_os_str())?;
        let how = OpenHow {
            flags: with_beneath_flags(flags) as u64,
            mode: 0,
            resolve: libc::RESOLVE_BENEATH
                | libc::RESOLVE_NO_SYMLINKS
                | libc::RESOLVE_NO_MAGICLINKS,
        };
        // The kernel returns EAGAIN when a concurrent rename kept it from
        // proving the walk stayed beneath `dir`; that is worth a few retries.
        for _ in 0..8 {
            // SAFETY: valid fd, NUL-terminated path, `how` outlives the call
            // and its size is passed with it.
            let ret = unsafe {
                libc::syscall(
                    libc::SYS_openat2,
                    dir.as_raw_fd(),
                    path.as_ptr(),
                    &how as *const OpenHow,
                    std::mem::size_of::<OpenHow>(),
                )
            };
            if ret >= 0 {
                // SAFETY: the kernel just returned this descriptor.
                return Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) });
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => continue,
                // No openat2, or a path longer than PATH_MAX (which the
                // walk opens one component at a time).
                Some(libc::ENOSYS) | Some(libc::ENAMETOOLONG) => break,
                _ => return Err(err),
            }
        }
    }
    walk_beneath(dir, &names, flags)
}

/// Whether `TIERFS_TEST_NO_OPENAT2` asks for the component walk (tests of
/// the fallback on kernels that have `openat2`).
fn openat2_disabled() -> bool {
    std::env::var_os("TIERFS_TEST_NO_OPENAT2").is_some()
}

/// The names of `rel`, or `EXDEV` if it is absolute, empty or has a `.` or
/// `..` component (a catalog path never has).
fn plain_components(rel: &Path) -> io::Result<Vec<&OsStr>> {
    use std::path::Component;
    let mut names = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => names.push(n),
            _ => return Err(io::Error::from_raw_os_error(libc::EXDEV)),
        }
    }
    if names.is_empty() {
        return Err(io::Error::from_raw_os_error(libc::EXDEV));
    }
    Ok(names)
}

/// The fallback of [`open_beneath`]: one `openat` per component, each
/// refusing symlinks, intermediate ones required to be directories.
fn walk_beneath(dir: BorrowedFd<'_>, names: &[&OsStr], flags: i32) -> io::Result<OwnedFd> {
    let Some((last, parents)) = names.split_last() else {
        return Err(io::Error::from_raw_os_error(libc::EXDEV));
    };
    let mut held: Option<OwnedFd> = None;
    for name in parents {
        let at = held.as_ref().map_or(dir, |fd| {
            use std::os::fd::AsFd;
            fd.as_fd()
        });
        let next = open_at(
            at,
            name,
            libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        )
        .map_err(|e| {
            // A symlinked directory opened with O_NOFOLLOW|O_DIRECTORY gives
            // ENOTDIR; say ELOOP like openat2 does.
            if e.raw_os_error() == Some(libc::ENOTDIR) && is_symlink_at(at, name) {
                io::Error::from_raw_os_error(libc::ELOOP)
            } else {
                e
            }
        })?;
        held = Some(next);
    }
    let at = held.as_ref().map_or(dir, |fd| {
        use std::os::fd::AsFd;
        fd.as_fd()
    });
    open_at(at, last, with_beneath_flags(flags), 0)
}

fn is_symlink_at(dir: BorrowedFd<'_>, name: &OsStr) -> bool {
    stat_at(dir, name).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFLNK)
}

/// Gives the calling thread a umask of its own, 0, leaving the rest of the
/// process at its (private) umask. The FUSE request threads create nodes on
/// behalf of callers whose modes the kernel has already masked with the
/// caller's umask; masking them again with the daemon's would be wrong, and
/// clearing the umask process-wide would expose every file the daemon itself
/// creates. `unshare(CLONE_FS)` detaches this thread's umask (and cwd/root)
/// from the other threads. Idempotent and cheap after the first call on a
/// thread. Returns whether the thread's umask is 0.
pub fn caller_umask() -> bool {
    thread_local! {
        static DONE: std::cell::Cell<Option<bool>> = const { std::cell::Cell::new(None) };
    }
    DONE.with(|done| {
        if let Some(ok) = done.get() {
            return ok;
        }
        // SAFETY: unshare(CLONE_FS) affects only the calling thread's fs
        // context; umask cannot fail.
        let ok = unsafe { libc::unshare(libc::CLONE_FS) } == 0;
        if ok {
            // SAFETY: as above.
            unsafe { libc::umask(0) };
        } else {
            tracing::warn!(
                error = %io::Error::last_os_error(),
                "cannot give a FUSE thread its own umask; new nodes get their modes by chmod"
            );
        }
        done.set(Some(ok));
        ok
    })
}

/// `CAP_SYS_RESOURCE`: lets a process use the file system's root reserve
/// and exceed quotas.
const CAP_SYS_RESOURCE: u32 = 24;
/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit capability sets in two words.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

/// `struct __user_cap_data_struct`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The calling thread's capability sets.
fn capget() -> io::Result<[CapData; 2]> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: header and data are valid, writable and of the layout
    // version 3 expects (two data structs); pid 0 is the calling thread.
    let r = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut header as *mut CapHeader,
            data.as_mut_ptr(),
        )
    };
    if r == 0 {
        Ok(data)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets the calling thread's capability sets (this thread only: the raw
/// system call, not a libc wrapper that would apply it to every thread).
fn capset(data: &[CapData; 2]) -> io::Result<()> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    // SAFETY: header and data are valid and of the layout version 3
    // expects; pid 0 is the calling thread.
    let r = unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The calling thread acting for a FUSE caller: its file-system uid and gid
/// are the caller's and `CAP_SYS_RESOURCE` is out of its effective set, so
/// block allocation honours the file system's root reserve and quotas as for
/// the caller. Undone on drop (also on error paths and unwinding).
///
/// Used around the passthrough registration (`FUSE_DEV_IOC_BACKING_OPEN`
/// records the credentials of the thread that registers the backing file,
/// and the kernel does the passthrough I/O with them) and around writes done
/// in userspace. Supplementary groups stay the daemon's: ext4 grants the
/// reserve to a group only when `resgid` is not 0, and quotas charge the
/// file's owner, not the writer.
#[derive(Debug)]
pub struct CallerCreds {
    saved: [CapData; 2],
    fsuid: u32,
    fsgid: u32,
}

impl CallerCreds {
    /// Switches the calling thread to act for `uid`/`gid`. `None` for root
    /// callers (nothing to change) and, with a warning, if the switch is not
    /// possible (then the thread is left exactly as it was).
    pub fn enter(uid: u32, gid: u32) -> Option<CallerCreds> {
        if uid == 0 {
            return None;
        }
        let saved = match capget() {
            Ok(caps) => caps,
            Err(e) => {
                warn_once(&e);
                return None;
            }
        };
        // SAFETY: setfsgid/setfsuid change only the calling thread's
        // file-system ids (glibc does not broadcast them to other threads);
        // the outcome is checked below.
        let (fsgid, fsuid) = unsafe { (libc::setfsgid(gid), libc::setfsuid(uid)) };
        let guard = CallerCreds {
            saved,
            fsuid: fsuid as u32,
            fsgid: fsgid as u32,
        };
        // setfsuid reports the previous value: asking again confirms it took.
        // SAFETY: as above.
        let now = unsafe { libc::setfsuid(uid) };
        if now as u32 != uid {
            warn_once(&io::Error::from_raw_os_error(libc::EPERM));
            return None; // drop restores
        }
        // Changing fsuid from 0 dropped the file-system capabilities from the
        // effective set; drop CAP_SYS_RESOURCE too.
        let mut caps = capget().unwrap_or(saved);
        caps[(CAP_SYS_RESOURCE / 32) as usize].effective &= !(1 << (CAP_SYS_RESOURCE % 32));
        if let Err(e) = capset(&caps) {
            warn_once(&e);
            return None; // drop restores
        }
        Some(guard)
    }
}

impl Drop for CallerCreds {
    fn drop(&mut self) {
        // SAFETY: as in `enter`. Back to the saved fsuid first (which, for
        // 0, raises the file-system capabilities again), then every saved
        // capability.
        unsafe {
            libc::setfsuid(self.fsuid);
            libc::setfsgid(self.fsgid);
        }
        if let Err(e) = capset(&self.saved) {
            tracing::error!(error = %e, "cannot restore a FUSE thread's capabilities");
        }
    }
}

fn warn_once(e: &io::Error) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!(error = %e, "cannot act with a caller's credentials; writes through the mount use the daemon's (the root reserve and quotas do not apply)");
    }
}

#[cfg(test)]
mod beneath_tests {
    use super::*;
    use std::os::fd::AsFd;

    fn check_tree(dir: &Path) {
        let root = File::open(dir).unwrap();
        let at = root.as_fd();
        std::fs::create_dir_all(dir.join("a/b")).unwrap();
        std::fs::write(dir.join("a/b/f"), b"x").unwrap();
        std::os::unix::fs::symlink("/etc", dir.join("a/link")).unwrap();
        std::os::unix::fs::symlink("f", dir.join("a/b/flink")).unwrap();
        let errno = |r: io::Result<OwnedFd>| r.err().and_then(|e| e.raw_os_error());
        assert!(open_beneath(at, Path::new("a/b/f"), libc::O_RDONLY).is_ok());
        assert_eq!(
            errno(open_beneath(at, Path::new("a/link/passwd"), libc::O_RDONLY)),
            Some(libc::ELOOP)
        );
        assert_eq!(
            errno(open_beneath(at, Path::new("a/b/flink"), libc::O_RDONLY)),
            Some(libc::ELOOP)
        );
        for bad in ["../x", "/etc/passwd", "a/../a/b/f", "", "./a/b/f"] {
            assert_eq!(
                errno(open_beneath(at, Path::new(bad), libc::O_RDONLY)),
                Some(libc::EXDEV),
                "{bad}"
            );
        }
        // O_PATH on a final symlink opens the link itself.
        let fd = open_beneath(at, Path::new("a/b/flink"), libc::O_PATH).unwrap();
        assert_eq!(
            stat_fd(fd.as_fd()).unwrap().st_mode & libc::S_IFMT,
            libc::S_IFLNK
        );
        // A FIFO opens at once instead of blocking.
        let fifo = cstr(dir.join("a/fifo").as_os_str()).unwrap();
        // SAFETY: NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let fd = open_beneath(at, Path::new("a/fifo"), libc::O_RDONLY).unwrap();
        assert_eq!(
            stat_fd(fd.as_fd()).unwrap().st_mode & libc::S_IFMT,
            libc::S_IFIFO
        );
    }

    #[test]
    fn open_beneath_refuses_symlinks_and_escapes() {
        let dir = tempfile::tempdir().unwrap();
        check_tree(dir.path());
    }

    #[test]
    fn the_component_walk_gives_the_same_answers() {
        let dir = tempfile::tempdir().unwrap();
        let names = plain_components(Path::new("a/b/f")).unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("a/b/f"), b"x").unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("a/link")).unwrap();
        let root = File::open(dir.path()).unwrap();
        assert!(walk_beneath(root.as_fd(), &names, libc::O_RDONLY).is_ok());
        let names = plain_components(Path::new("a/link/passwd")).unwrap();
        let e = walk_beneath(root.as_fd(), &names, libc::O_RDONLY).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP));
    }
}

#[cfg(test)]
mod caller_creds_tests {
    use super::*;

    /// The thread's current fsuid (setfsuid with an invalid id changes
    /// nothing and reports the current one).
    fn fsuid() -> u32 {
        // SAFETY: u32::MAX is rejected by the kernel: nothing changes.
        unsafe { libc::setfsuid(u32::MAX) as u32 }
    }

    #[test]
    fn switches_this_thread_only_and_restores() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return; // needs root
        }
        // A thread started before the switch keeps root's ids.
        let (ask, asked) = std::sync::mpsc::channel::<()>();
        let (tell, told) = std::sync::mpsc::channel();
        let other = std::thread::spawn(move || {
            while asked.recv().is_ok() {
                let _ = tell.send(fsuid());
            }
        });
        std::thread::spawn(move || {
            let before = capget().unwrap();
            let bit = 1 << (CAP_SYS_RESOURCE % 32);
            {
                let guard = CallerCreds::enter(65534, 65534);
                assert!(guard.is_some());
                assert_eq!(fsuid(), 65534);
                assert_eq!(capget().unwrap()[0].effective & bit, 0);
                ask.send(()).unwrap();
                assert_eq!(told.recv().unwrap(), 0);
            }
            assert_eq!(fsuid(), 0);
            assert_eq!(capget().unwrap()[0].effective, before[0].effective);
            assert!(CallerCreds::enter(0, 0).is_none());
            drop(ask);
        })
        .join()
        .unwrap();
        other.join().unwrap();
    }
}

#[cfg(test)]
mod file_handle_tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn handle_text_round_trips_and_digest_follows_the_generation() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"x").unwrap();
        let fd = open_at(cwd_fd(), dir.path().join("f").as_os_str(), libc::O_PATH, 0).unwrap();
        let Some(h) = file_handle(fd.as_fd()) else {
            return; // the temp dir's filesystem has no handles
        };
        let back = FileHandleBuf::from_text(&h.to_text()).unwrap();
        assert_eq!(back, h);
        assert_eq!(back.digest(), h.digest());
        assert!(FileHandleBuf::from_text("1 abc").is_none());
        assert!(FileHandleBuf::from_text("x 00").is_none());
        // Another handle (another generation of the same number) digests apart.
        let mut other = h.clone();
        *other.bytes.last_mut().unwrap() ^= 1;
        assert_ne!(other.digest(), h.digest());
    }

    fn cwd_fd() -> BorrowedFd<'static> {
        // SAFETY: AT_FDCWD is valid for *at() calls and is never closed.
        unsafe { BorrowedFd::borrow_raw(libc::AT_FDCWD) }
    }
}
