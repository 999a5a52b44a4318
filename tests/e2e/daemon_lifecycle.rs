//! The daemon as an admin sees it: the ways to unmount, background mode,
//! status over the control socket, and resource hygiene (no descriptor leaks).

use crate::common;

use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

fn status(m: &TestMount) -> Value {
    let out = m.tierctl(&["status", "--json"]);
    assert!(
        out.status.success(),
        "tierctl status failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn pid_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(pid, 0) == 0 }
}

fn fd_count(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

#[test]
fn umount_and_fusermount_and_sigterm_exit_cleanly() {
    // umount(8)
    let mut m = TestMount::new();
    fs::write(m.m("f"), b"x").unwrap();
    let st = m.unmount();
    assert!(st.success(), "exit after umount: {st}\n{}", m.log_banner());
    assert!(!m.is_mountpoint_now());

    // fusermount3 -u
    m.mount();
    let out = Command::new("fusermount3")
        .arg("-u")
        .arg(m.mnt())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fusermount3 -u: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let st = m.wait_exit();
    assert!(
        st.success(),
        "exit after fusermount3 -u: {st}\n{}",
        m.log_banner()
    );

    // SIGTERM
    m.mount();
    let st = m.sigterm();
    assert!(st.success(), "exit after SIGTERM: {st}\n{}", m.log_banner());

    // SIGINT (Ctrl-C on a foreground daemon)
    m.mount();
    let pid = m.daemon_pid().unwrap() as i32;
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid, libc::SIGINT) };
    let st = m.wait_exit();
    assert!(st.success(), "exit after SIGINT: {st}\n{}", m.log_banner());
    assert!(!m.is_mountpoint_now(), "SIGINT left the mount behind");
    // The data is intact in the hot dir.
    assert_eq!(fs::read(m.h("f")).unwrap(), b"x");
}

#[test]
fn background_mode_returns_once_mounted() {
    let mut m = TestMount::unmounted(MountOptions::default());
    let err_log = m.root().join("bg-stderr.log");
    let st = Command::new(TIERFS)
        .arg("mount")
        .arg(m.config())
        .arg(m.mnt())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&err_log).unwrap())
        .status()
        .unwrap();
    assert!(
        st.success(),
        "tierfs mount (background) failed: {st}: {}",
        fs::read_to_string(&err_log).unwrap()
    );
    // The mount is live as soon as the command returns.
    assert!(
        is_mountpoint(m.mnt()),
        "tierfs mount returned before the mount was live"
    );
    fs::write(m.m("f"), b"bg").unwrap();
    assert_eq!(fs::read(m.h("f")).unwrap(), b"bg");
    let v = status(&m);
    assert_eq!(v["daemon"]["state"], "running", "{v}");
    let pid = v["daemon"]["pid"].as_i64().expect("daemon.pid") as i32;
    assert!(pid_alive(pid));
    assert_ne!(pid as u32, std::process::id());
    let out = Command::new("umount").arg(m.mnt()).output().unwrap();
    assert!(out.status.success());
    let gone = wait_until(Duration::from_secs(20), || !pid_alive(pid));
    assert!(
        gone.is_some(),
        "background daemon {pid} still running 20 s after umount"
    );
    m.forget_daemon();
}

#[test]
fn background_mount_releases_callers_stdio() {
    // `out=$(tierfs mount ...)`, ssh and CI log capture wait for EOF on the
    // pipes: a daemon that keeps the caller's stdout/stderr open hangs them
    // until it is unmounted.
    let mut m = TestMount::unmounted(MountOptions::default());
    let mut child = Command::new(TIERFS)
        .arg("mount")
        .arg(m.config())
        .arg(m.mnt())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let st = child.wait().unwrap();
    assert!(st.success(), "tierfs mount failed: {st}");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stdout.read_to_end(&mut s);
        let mut e = Vec::new();
        let _ = stderr.read_to_end(&mut e);
        let _ = tx.send(());
    });
    let eof = rx.recv_timeout(Duration::from_secs(5)).is_ok();
    let out = Command::new("umount").arg(m.mnt()).output().unwrap();
    assert!(out.status.success());
    m.forget_daemon();
    assert!(
        eof,
        "the background daemon kept the caller's stdout/stderr pipe open after `tierfs mount` returned \
         (a caller capturing its output blocks until unmount)"
    );
}

#[test]
fn mount_errors_are_reported_without_hanging() {
    let m = TestMount::unmounted(MountOptions::default());
    // Missing mount point, foreground and background.
    for fg in [true, false] {
        let mut cmd = Command::new(TIERFS);
        cmd.arg("mount");
        if fg {
            cmd.arg("-f");
        }
        let out = cmd
            .arg(m.config())
            .arg(m.root().join("no-such-dir"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "mount on a missing dir succeeded (fg={fg})"
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("no-such-dir"),
            "error does not name the mount point (fg={fg}): {err}"
        );
    }
    // Broken config.
    let bad = m.root().join("bad.toml");
    fs::write(&bad, "hot_dir = \"/nonexistent/tierfs-hot\"\n").unwrap();
    let out = Command::new(TIERFS)
        .arg("mount")
        .arg(&bad)
        .arg(m.mnt())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("hot_dir"),
        "config error does not name the key: {err}"
    );
    assert!(!is_mountpoint(m.mnt()));
    // Mounting twice on the same mount point: the second must fail, not stack.
    drop(m);
    let m = TestMount::new();
    let out = Command::new(TIERFS)
        .arg("mount")
        .arg(m.config())
        .arg(m.mnt())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stacked = fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.split(' ').nth(4) == Some(m.mnt().to_str().unwrap()))
        .count();
    if stacked > 1 {
        let _ = Command::new("umount").arg(m.mnt()).status();
    }
    assert!(
        !out.status.success(),
        "a second daemon mounted over a live tierfs mount"
    );
    assert_eq!(stacked, 1, "mounts stacked on one mount point");
}

#[test]
fn status_shows_passthrough_and_open_files() {
    let m = TestMount::new();
    let v = status(&m);
    assert_eq!(
        v["daemon"]["passthrough"], true,
        "FUSE passthrough not in use: {v}"
    );
    assert_eq!(v["daemon"]["mountpoint"], m.mnt().to_str().unwrap(), "{v}");
    assert_eq!(v["daemon"]["hot_dir"], m.hot().to_str().unwrap(), "{v}");
    let base = v["daemon"]["open_files"].as_u64().unwrap();
    let files: Vec<File> = (0..5)
        .map(|i| {
            fs::write(m.m(format!("f{i}")), b"x").unwrap();
            File::open(m.m(format!("f{i}"))).unwrap()
        })
        .collect();
    let v = status(&m);
    assert_eq!(v["daemon"]["open_files"].as_u64().unwrap(), base + 5, "{v}");
    drop(files);
    let back = wait_until(Duration::from_secs(5), || {
        status(&m)["daemon"]["open_files"].as_u64() == Some(base)
    });
    assert!(
        back.is_some(),
        "open_files did not return to {base}: {}",
        status(&m)
    );
}

#[test]
fn no_descriptor_leak_after_forget() {
    let m = TestMount::new();
    let pid = m.daemon_pid().unwrap();
    fs::create_dir(m.m("many")).unwrap();
    drop_kernel_caches();
    std::thread::sleep(Duration::from_millis(300));
    let before = fd_count(pid);
    for i in 0..2000 {
        let p = m.m(format!("many/f{i}"));
        fs::write(&p, b"x").unwrap();
        let _ = fs::metadata(&p).unwrap().ino();
        let mut s = String::new();
        File::open(&p).unwrap().read_to_string(&mut s).unwrap();
    }
    let peak = fd_count(pid);
    // Let the kernel forget every inode; the daemon must close what it held.
    let mut after = peak;
    let settled = wait_until(Duration::from_secs(10), || {
        drop_kernel_caches();
        after = fd_count(pid);
        after <= before + 50
    });
    assert!(
        settled.is_some(),
        "daemon fds: {before} before, {peak} after touching 2000 files, still {after} after the kernel forgot them"
    );
    // Unlinked files are released too.
    for i in 0..2000 {
        fs::remove_file(m.m(format!("many/f{i}"))).unwrap();
    }
    drop_kernel_caches();
    let settled = wait_until(Duration::from_secs(10), || {
        drop_kernel_caches();
        after = fd_count(pid);
        after <= before + 50
    });
    assert!(
        settled.is_some(),
        "daemon fds {after} after unlinking (baseline {before})"
    );
    let _ = Path::new("/");
    let _ = fs::metadata(m.mnt()).unwrap().ino();
}
