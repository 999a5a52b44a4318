//! Mounting through mount(8) and fuse3's `mount.fuse3` helper, exactly as an
//! `/etc/fstab` line or a systemd `.mount` unit of type `fuse.tierfs` does.
//!
//! mount(8) runs the helper with PATH stripped, so `/bin/sh` finds `tierfs`
//! only in its default PATH; these tests put a symlink to the freshly built
//! binary at `/usr/local/sbin/tierfs` (first in dash's default PATH) for the
//! duration of each test and remove it afterwards.

use crate::common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use common::{MountOptions, TIERCTL, TIERFS, TestMount, is_mountpoint, wait_until};

/// Where the helper's `/bin/sh -c tierfs …` finds the binary under test.
const INSTALLED: &str = "/usr/local/sbin/tierfs";

/// Serialises the tests of this binary: they share [`INSTALLED`].
static INSTALL_LOCK: Mutex<()> = Mutex::new(());

/// The test binary symlinked at [`INSTALLED`]; removed on drop.
struct Installed {
    _lock: MutexGuard<'static, ()>,
}

impl Installed {
    fn new() -> Installed {
        let lock = INSTALL_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let path = Path::new(INSTALLED);
        match fs::read_link(path) {
            Ok(target) if target == Path::new(TIERFS) => {
                // Left over from an interrupted run of this test.
                fs::remove_file(path).unwrap();
            }
            Ok(target) => panic!(
                "{INSTALLED} already points at {}; refusing to replace it",
                target.display()
            ),
            Err(_) if path.exists() => {
                panic!("{INSTALLED} exists and is not ours; refusing to replace it")
            }
            Err(_) => {}
        }
        symlink(TIERFS, path).unwrap();
        Installed { _lock: lock }
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = fs::remove_file(INSTALLED);
    }
}

/// A test root with the daemon logging to the harness's log file (the
/// backgrounded daemon has no stderr of ours to write to).
fn prepared() -> TestMount {
    let mut m = TestMount::unmounted(MountOptions::default());
    let opts = MountOptions {
        extra_top: format!("log_file = \"{}\"\n", m.log_path().display()),
        ..MountOptions::default()
    };
    m.set_options(opts);
    m
}

/// `findmnt -no FSTYPE,SOURCE MNT`, split into its two columns.
fn findmnt(mnt: &Path) -> (String, String) {
    let out = Command::new("findmnt")
        .args(["-no", "FSTYPE,SOURCE"])
        .arg(mnt)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "findmnt {} failed: {}",
        mnt.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut cols = text.split_whitespace();
    (
        cols.next().unwrap_or_default().to_string(),
        cols.next().unwrap_or_default().to_string(),
    )
}

/// The daemon's pid as `tierctl status --json` reports it.
fn daemon_pid(config: &Path) -> i32 {
    let out = Command::new(TIERCTL)
        .arg("-c")
        .arg(config)
        .args(["status", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "tierctl status failed: {out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["daemon"]["state"], "running", "{v}");
    v["daemon"]["pid"].as_i64().unwrap() as i32
}

fn process_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// Writes and reads a file through the mount, unmounts with `umount`, and
/// checks the daemon exited with the file recorded in the catalog.
fn use_then_umount(m: &mut TestMount) {
    let pid = daemon_pid(m.config());
    let data = b"written through a mount.fuse3 mount\n".repeat(100);
    fs::write(m.m("via-helper.txt"), &data).unwrap();
    assert_eq!(fs::read(m.m("via-helper.txt")).unwrap(), data);
    assert_eq!(fs::read(m.h("via-helper.txt")).unwrap(), data);

    let out = Command::new("umount").arg(m.mnt()).output().unwrap();
    assert!(
        out.status.success(),
        "umount failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        m.log_banner()
    );
    assert!(!is_mountpoint(m.mnt()), "still mounted after umount");
    assert!(
        wait_until(Duration::from_secs(20), || !process_alive(pid)).is_some(),
        "daemon {pid} still running 20 s after umount\n{}",
        m.log_banner()
    );
    // The catalog (read directly, daemon gone) has the file: flushed at exit.
    let out = Command::new(TIERCTL)
        .arg("-c")
        .arg(m.config())
        .args(["status", "via-helper.txt", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["in_catalog"], true, "{v}");
    assert_eq!(v["size"], data.len(), "{v}");
    let log = m.daemon_log();
    assert!(log.contains("filesystem unmounted"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn mount_t_fuse_tierfs_mounts_and_umount_unmounts() {
    let _installed = Installed::new();
    let mut m = prepared();
    let out = Command::new("mount")
        .args(["-t", "fuse.tierfs"])
        .arg(m.config())
        .arg(m.mnt())
        .args(["-o", "allow_other,_netdev,nofail,x-systemd.foo"])
        .env_clear()
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mount -t fuse.tierfs failed ({}): {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        m.log_banner()
    );
    assert!(is_mountpoint(m.mnt()), "mount returned but nothing mounted");
    let (fstype, source) = findmnt(m.mnt());
    assert_eq!(fstype, "fuse.tierfs");
    assert_eq!(PathBuf::from(source), m.config());
    use_then_umount(&mut m);
}

#[test]
fn fstab_line_mounts_by_mountpoint() {
    let _installed = Installed::new();
    let mut m = prepared();
    // The line an admin writes, in a private fstab (mount --fstab), mounted by
    // naming only the mount point as `mount /srv/files` would.
    let fstab = m.root().join("fstab");
    fs::write(
        &fstab,
        format!(
            "# test fstab\n{} {} fuse.tierfs _netdev,allow_other,nofail 0 0\n",
            m.config().display(),
            m.mnt().display()
        ),
    )
    .unwrap();
    let out = Command::new("mount")
        .arg("--fstab")
        .arg(&fstab)
        .arg(m.mnt())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mount from fstab failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        m.log_banner()
    );
    let (fstype, source) = findmnt(m.mnt());
    assert_eq!(fstype, "fuse.tierfs");
    assert_eq!(PathBuf::from(source), m.config());
    use_then_umount(&mut m);
}

#[test]
fn helper_reports_a_bad_option_and_mounts_nothing() {
    let _installed = Installed::new();
    let m = prepared();
    let out = Command::new("mount")
        .args(["-t", "fuse.tierfs"])
        .arg(m.config())
        .arg(m.mnt())
        .args(["-o", "allow_other,frobnicate"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "mount accepted a bad option");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("frobnicate"), "{stderr}");
    assert!(!is_mountpoint(m.mnt()));
}
