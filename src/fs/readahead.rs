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

use std::os::unix::fs::MetadataExt;
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
/// [`READ_AHEAD_KB`] from a background thread, once the mount answers (its
/// INIT would otherwise clamp the window back). Best effort: without root or
/// with a read-only sysfs the kernel default stays, and the reason is logged.
pub fn raise_in_background(mountpoint: &Path, parent_dev: u64) {
    let mountpoint = mountpoint.to_path_buf();
    let spawned = std::thread::Builder::new()
        .name("tierfs-readahead".into())
        .spawn(move || {
            // stat blocks until INIT is answered; the device then differs
            // from the directory underneath.
            for _ in 0..100 {
                match std::fs::metadata(&mountpoint) {
                    Ok(m) if m.dev() != parent_dev => {
                        let path = sysfs_path(m.dev());
                        match std::fs::write(&path, READ_AHEAD_KB.to_string()) {
                            Ok(()) => tracing::debug!(path = %path.display(), kib = READ_AHEAD_KB, "readahead window raised"),
                            Err(e) => tracing::info!(path = %path.display(), error = %e, "readahead window left at the kernel default"),
                        }
                        return;
                    }
                    _ => std::thread::sleep(Duration::from_millis(50)),
                }
            }
            tracing::info!(mountpoint = %mountpoint.display(), "mount did not answer in time; readahead window left at the kernel default");
        });
    if let Err(e) = spawned {
        tracing::info!(error = %e, "readahead window left at the kernel default");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_bdi_of_a_device() {
        let dev = libc::makedev(0, 53);
        assert_eq!(
            sysfs_path(dev),
            PathBuf::from("/sys/class/bdi/0:53/read_ahead_kb")
        );
    }
}
