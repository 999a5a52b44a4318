//! The kernel's readahead window on the mount.
//!
//! Reads that reach the daemon (a cold file being read before its recall
//! finishes, or hot files where passthrough is unavailable) arrive as the
//! kernel's readahead requests. The kernel offers FUSE at most its default
//! readahead (128 KiB) at INIT, so a sequential reader costs one round trip
//! per 128 KiB. The window is a property of the mount's backing device and
//! can be raised through sysfs once INIT is done; requests then grow up to
//! the connection's `max_pages` (1 MiB here). Passthrough reads are not
//! affected (they use the hot file's own device).

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Readahead window set on the mount, in KiB.
pub const READ_AHEAD_KB: u32 = 4096;

/// The sysfs file holding the readahead window of the device `dev`.
fn sysfs_path(dev: u64) -> PathBuf {
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    PathBuf::from(format!("/sys/class/bdi/{major}:{minor}/read_ahead_kb"))
}

/// Raises the readahead window of the FUSE mount at `mountpoint` to
/// [`READ_AHEAD_KB`] from a background thread. Called once the kernel's
/// INIT was answered (which would otherwise clamp the window back). The
/// mount's device comes from `/proc/self/mountinfo`, not from a `stat` of
/// the mount point: a stat goes through the mount, and a request of the
/// daemon's own in flight there makes an unmount right after mounting fail
/// with EBUSY. Best effort: without root or with a read-only sysfs the
/// kernel default stays, and the reason is logged.
pub fn raise_in_background(mountpoint: &Path, parent_dev: u64) {
    let mountpoint = mountpoint.to_path_buf();
    let spawned = std::thread::Builder::new()
        .name("tierfs-readahead".into())
        .spawn(move || {
            for _ in 0..100 {
                match mounted_dev(&mountpoint) {
                    Some(dev) if dev != parent_dev => {
                        let path = sysfs_path(dev);
                        match std::fs::write(&path, READ_AHEAD_KB.to_string()) {
                            Ok(()) => tracing::debug!(path = %path.display(), kib = READ_AHEAD_KB, "readahead window raised"),
                            Err(e) => tracing::info!(path = %path.display(), error = %e, "readahead window left at the kernel default"),
                        }
                        return;
                    }
                    _ => std::thread::sleep(Duration::from_millis(50)),
                }
            }
            tracing::info!(mountpoint = %mountpoint.display(), "mount not found in mountinfo; readahead window left at the kernel default");
        });
    if let Err(e) = spawned {
        tracing::info!(error = %e, "readahead window left at the kernel default");
    }
}

/// The device of the newest mount at `mountpoint`, from
/// `/proc/self/mountinfo` (field 3 `major:minor`, field 5 the mount point
/// with space, tab, newline and backslash escaped in octal).
fn mounted_dev(mountpoint: &Path) -> Option<u64> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let want = escape_mountinfo(mountpoint.as_os_str().as_bytes());
    info.lines()
        .rev()
        .find_map(|line| {
            let mut fields = line.split(' ');
            let dev = fields.nth(2)?;
            let point = fields.nth(1)?;
            (point.as_bytes() == want.as_slice()).then_some(dev)
        })
        .and_then(|dev| {
            let (major, minor) = dev.split_once(':')?;
            Some(libc::makedev(major.parse().ok()?, minor.parse().ok()?))
        })
}

/// A path as mountinfo writes it.
fn escape_mountinfo(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len());
    for &b in path {
        match b {
            b' ' | b'\t' | b'\n' | b'\\' => out.extend_from_slice(format!("\\{b:03o}").as_bytes()),
            _ => out.push(b),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_mount_in_mountinfo() {
        assert_eq!(escape_mountinfo(b"/a b\\c"), b"/a\\040b\\134c".to_vec());
        let root = mounted_dev(Path::new("/"));
        assert!(root.is_some(), "/ is mounted");
        assert_eq!(mounted_dev(Path::new("/no/such/mount")), None);
    }

    #[test]
    fn names_the_bdi_of_a_device() {
        let dev = libc::makedev(0, 53);
        assert_eq!(
            sysfs_path(dev),
            PathBuf::from("/sys/class/bdi/0:53/read_ahead_kb")
        );
    }
}
