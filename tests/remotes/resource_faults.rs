//! Local resource faults, through the real binaries: a full hot disk during
//! a recall (ENOSPC to the opener, the stub stays intact, works once space
//! is freed), and a locked or corrupt catalog (the mount refuses to start
//! with an error naming the catalog and the cause, and never replaces it).

use crate::common;
use crate::servers;

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::tiering::{add_rule, content, migrate, state, text, write_old};
use common::{MountOptions, TIERFS, TestMount, errname, is_mountpoint};
use servers::SeaweedFs;

/// A tmpfs mounted on a directory; lazily unmounted on drop. Mode 0755 (a
/// tmpfs root is 1777 by default, which the daemon refuses as a hot dir).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        let st = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tierfs-test",
            ])
            .arg(dir)
            .status()
            .unwrap();
        assert!(st.success(), "mount tmpfs on {}", dir.display());
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system holding `dir` until a write fails with ENOSPC.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = fs::File::create(&path).unwrap();
    let block = vec![0xa5u8; 64 << 10];
    loop {
        match f.write_all(&block) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling {}: {e}", dir.display()),
        }
    }
    let _ = f.sync_all();
    path
}

#[test]
fn recall_into_a_full_disk_fails_with_enospc_and_keeps_the_stub() {
    let server = SeaweedFs::shared();
    let mut m = TestMount::unmounted(MountOptions::default());
    let _tmpfs = Tmpfs::mount(m.hot(), "24m");
    m.set_options(MountOptions {
        allow_other: true,
        extra_top: "migrate_interval = \"off\"\n".into(),
        extra_sections: format!(
            "[remote.cloud]\n{}",
            server.remote_toml("enospc", "request_timeout = \"30s\"")
        ),
        ..Default::default()
    });
    m.mount();
    let data = content(41, (9 << 20) + 333);
    write_old(&m.m("archive/big.bin"), &data, 30);
    add_rule(&m, "archive -> cloud");
    let s = migrate(&m);
    assert_eq!(s.released, 1, "{s:?}\n{}", m.log_banner());

    // The hot disk fills up (directly in the hot dir: not a tierfs file).
    let filler = fill(m.hot());

    // Writing needs a full recall first: ENOSPC, not EIO (the open itself
    // downloads nothing and succeeds).
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(m.m("archive/big.bin"))
        .unwrap();
    let err = f.write_all(b"x").expect_err("recalled into a full disk?");
    assert_eq!(errname(&err), "ENOSPC", "{err}\n{}", m.log_banner());
    drop(f);
    // The stub is intact: cold, its size, no blocks, no partial data.
    let md = fs::metadata(m.h("archive/big.bin")).unwrap();
    assert_eq!((md.len(), md.blocks()), (data.len() as u64, 0));
    assert_eq!(state(&m.m("archive/big.bin")), "cold");
    // tierctl recall says why.
    let out = m.tierctl(&["recall", "archive"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("No space left on device"),
        "{}",
        text(&out)
    );
    // Reading needs no local space: verified chunks come from the cloud.
    assert_eq!(fs::read(m.m("archive/big.bin")).unwrap(), data);
    assert_eq!(state(&m.m("archive/big.bin")), "cold");
    assert_eq!(fs::metadata(m.h("archive/big.bin")).unwrap().blocks(), 0);
    assert!(
        m.daemon_log()
            .contains("recall cannot write the local copy"),
        "{}",
        m.log_banner()
    );

    // Space comes back: the next open recalls it.
    fs::remove_file(filler).unwrap();
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(m.m("archive/big.bin"))
        .unwrap();
    f.write_all(b"tail").unwrap();
    drop(f);
    let mut want = data.clone();
    want.extend_from_slice(b"tail");
    assert_eq!(fs::read(m.m("archive/big.bin")).unwrap(), want);
    assert_eq!(state(&m.m("archive/big.bin")), "hot");
    m.unmount();
}

/// Runs `tierfs mount -f` and waits for it to exit (it must, within 60 s,
/// without ever mounting).
fn mount_must_fail(m: &TestMount) -> Output {
    let mut child = Command::new(TIERFS)
        .arg("mount")
        .arg("-f")
        .arg(m.config())
        .arg(m.mnt())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if is_mountpoint(m.mnt()) || started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = Command::new("umount").arg(m.mnt()).status();
            panic!("tierfs mounted (or hung) over a bad catalog");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// A mounted TestMount with one cold file on S3, unmounted again; returns
/// the cold file's content and the server (keep it alive).
fn with_a_cold_file(prefix: &str) -> (TestMount, Vec<u8>, std::sync::Arc<SeaweedFs>) {
    let server = SeaweedFs::shared();
    let mut m = TestMount::with_options(MountOptions {
        allow_other: true,
        extra_top: "migrate_interval = \"off\"\n".into(),
        extra_sections: format!(
            "[remote.cloud]\n{}",
            server.remote_toml(prefix, "request_timeout = \"30s\"")
        ),
        ..Default::default()
    });
    let data = content(51, 3 << 20);
    write_old(&m.m("old/a.bin"), &data, 30);
    add_rule(&m, "old -> cloud");
    assert_eq!(migrate(&m).released, 1, "{}", m.log_banner());
    m.unmount();
    (m, data, server)
}

#[test]
fn a_corrupt_catalog_stops_the_mount_and_is_never_replaced() {
    let (mut m, data, _server) = with_a_cold_file("badcatalog");
    let catalog = m.catalog();
    let wal = PathBuf::from(format!("{}-wal", catalog.display()));
    let good = fs::read(&catalog).unwrap();
    assert!(
        fs::metadata(&wal).map(|md| md.len()).unwrap_or(0) == 0,
        "the catalog was not checkpointed at unmount"
    );

    for (what, damaged) in [
        // Not a database at all.
        ("garbage", content(52, good.len())),
        // A valid header page, every other page destroyed.
        ("damaged pages", {
            let mut d = good.clone();
            d[4096..].copy_from_slice(&content(53, good.len() - 4096));
            d
        }),
    ] {
        fs::write(&catalog, &damaged).unwrap();
        let out = mount_must_fail(&m);
        assert!(!out.status.success(), "{what}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().last().unwrap_or_default();
        assert!(
            last.contains(&catalog.display().to_string())
                && (last.contains("not a tierfs catalog") || last.contains("malformed")),
            "{what}: unclear error\n{}",
            text(&out)
        );
        // Left exactly as it was: no rebuild, no new empty catalog.
        assert!(
            fs::read(&catalog).unwrap() == damaged,
            "{what}: catalog rewritten"
        );
        let stub = fs::metadata(m.h("old/a.bin")).unwrap();
        assert_eq!(
            (stub.len(), stub.blocks()),
            (data.len() as u64, 0),
            "{what}: stub touched"
        );
    }

    // The admin restores the catalog: the cold file is known and reads back.
    fs::write(&catalog, &good).unwrap();
    m.mount();
    assert_eq!(state(&m.m("old/a.bin")), "cold");
    assert_eq!(fs::read(m.m("old/a.bin")).unwrap(), data);
}

#[test]
fn a_locked_catalog_stops_the_mount_with_a_clear_error() {
    let (mut m, data, _server) = with_a_cold_file("lockedcatalog");
    let catalog = m.catalog();
    {
        let holder = rusqlite::Connection::open(&catalog).unwrap();
        holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
        let out = mount_must_fail(&m);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!(
                "catalog {} is locked by another process",
                catalog.display()
            )),
            "{}",
            text(&out)
        );
        holder.execute_batch("ROLLBACK").unwrap();
    }
    m.mount();
    assert_eq!(fs::read(m.m("old/a.bin")).unwrap(), data);
}
