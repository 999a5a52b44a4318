//! A full disk, on a small ext4 loop file system that holds both the hot dir
//! and the catalog: catalog writes that fail for want of space are held in
//! memory and retried (counted in `tierctl status`), never dropped, so every
//! file created while the disk was full is catalogued once space returns,
//! and `tierctl fsck` finds (and `--repair` adds) files missing from the
//! catalog.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::tiering::text;
use common::{MountOptions, TestMount, wait_until};

/// A 64 MiB ext4 image loop-mounted on `<root>/disk`, with `disk/hot`
/// bind-mounted on the test mount's hot dir. Unmounted on drop, also when a
/// test panics.
struct LoopExt4 {
    disk: PathBuf,
    hot: PathBuf,
    image: PathBuf,
}

impl LoopExt4 {
    fn new(root: &Path, hot: &Path) -> LoopExt4 {
        let image = root.join("disk.img");
        let disk = root.join("disk");
        fs::create_dir(&disk).unwrap();
        let run = |cmd: &mut Command| {
            let out = cmd.output().unwrap();
            assert!(out.status.success(), "{cmd:?}: {}", text(&out));
        };
        run(Command::new("truncate").args(["-s", "64M"]).arg(&image));
        run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&image));
        let guard = LoopExt4 {
            disk: disk.clone(),
            hot: hot.to_path_buf(),
            image,
        };
        run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&guard.image)
            .arg(&disk));
        let inner = disk.join("hot");
        fs::create_dir(&inner).unwrap();
        run(Command::new("mount").arg("--bind").arg(&inner).arg(hot));
        guard
    }

    /// The catalog's place on the loop file system.
    fn catalog(&self) -> PathBuf {
        self.disk.join("tierfs.db")
    }
}

impl Drop for LoopExt4 {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.hot).status();
        let _ = Command::new("umount").arg("-l").arg(&self.disk).status();
        let _ = fs::remove_file(&self.image);
    }
}

/// Writes `path` until ENOSPC; returns the bytes written.
fn fill(path: &Path) -> u64 {
    let mut f = fs::File::create(path).unwrap();
    let block = vec![0x5au8; 64 << 10];
    let mut written = 0u64;
    loop {
        match f.write(&block) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    let _ = f.sync_all();
    written
}

/// `tierctl status --json`, parsed.
fn status_json(m: &TestMount) -> serde_json::Value {
    let out = m.tierctl(&["status", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
}

/// The first number called `key` anywhere in `v`.
fn find_u64(v: &serde_json::Value, key: &str) -> Option<u64> {
    match v {
        serde_json::Value::Object(map) => map
            .get(key)
            .and_then(|x| x.as_u64())
            .or_else(|| map.values().find_map(|x| find_u64(x, key))),
        serde_json::Value::Array(items) => items.iter().find_map(|x| find_u64(x, key)),
        _ => None,
    }
}

/// Every path in the catalog, read-only.
fn catalogued(db: &Path) -> BTreeSet<Vec<u8>> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut stmt = conn.prepare("SELECT path FROM files").unwrap();
    stmt.query_map([], |r| r.get::<_, Vec<u8>>(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

fn full_disk_mount() -> (TestMount, LoopExt4) {
    let mut m = TestMount::unmounted(MountOptions::default());
    let disk = LoopExt4::new(m.root(), m.hot());
    m.set_options(MountOptions {
        allow_other: true,
        watch_hot_dir: Some(false),
        extra_top: format!(
            "catalog = \"{}\"\nmigrate_interval = \"off\"\n",
            disk.catalog().display()
        ),
        ..Default::default()
    });
    m.mount();
    (m, disk)
}

#[test]
fn catalog_keeps_every_file_created_while_the_disk_was_full() {
    let (mut m, disk) = full_disk_mount();
    fs::create_dir(m.m("d")).unwrap();
    fs::write(m.m("d/before"), b"x").unwrap();

    // Fill the file system through the mount (root: the reserve too).
    let filler = m.m("filler");
    fill(&filler);

    let mut created = 0;
    let mut refused = 0;
    for i in 0..100 {
        let p = m.m(format!("d/f{i:03}"));
        match fs::File::create(&p).and_then(|mut f| f.write_all(b"y")) {
            Ok(()) => created += 1,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => refused += 1,
            Err(e) => panic!("{}: {e}", p.display()),
        }
    }
    assert!(created > 0, "no file could be created at all");
    eprintln!("created {created} (some perhaps empty), refused {refused}");

    // The catalog could not keep up: status says so instead of 0 pending.
    let waited = wait_until(Duration::from_secs(10), || {
        let s = status_json(&m);
        find_u64(&s, "catalog_write_failures").unwrap_or(0) > 0
    });
    let s = status_json(&m);
    assert!(
        waited.is_some(),
        "no failed catalog write reported while the disk was full: {s}\n{}",
        m.log_banner()
    );
    assert!(
        find_u64(&s, "catalog_pending_writes").unwrap_or(0) > 0,
        "{s}\n{}",
        m.log_banner()
    );

    // Space comes back: the held-back changes are written (back-off <= 5 s).
    fs::remove_file(&filler).unwrap();
    let drained = wait_until(Duration::from_secs(30), || {
        find_u64(&status_json(&m), "catalog_pending_writes") == Some(0)
    });
    assert!(drained.is_some(), "{}", m.log_banner());

    let rows = catalogued(&disk.catalog());
    let mut missing = Vec::new();
    for entry in fs::read_dir(m.h("d")).unwrap() {
        let entry = entry.unwrap();
        let key = [b"d/".as_slice(), entry.file_name().as_bytes()].concat();
        if !rows.contains(&key) {
            missing.push(String::from_utf8_lossy(&key).into_owned());
        }
    }
    assert!(
        missing.is_empty(),
        "files missing from the catalog: {missing:?}\n{}",
        m.log_banner()
    );
    let out = m.tierctl(&["fsck"]);
    assert!(out.status.success(), "{}\n{}", text(&out), m.log_banner());
    m.unmount();
}

#[test]
fn fsck_finds_and_repairs_files_missing_from_the_catalog() {
    let (mut m, disk) = full_disk_mount();
    fs::write(m.m("kept"), b"k").unwrap();
    // Created beside the mount with the watcher off: no event reaches the catalog.
    fs::create_dir(m.h("beside")).unwrap();
    fs::write(m.h("beside/lost"), b"lost").unwrap();

    let out = m.tierctl(&["fsck"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("beside/lost: in the hot dir but not in the catalog"),
        "{}",
        text(&out)
    );
    let out = m.tierctl(&["fsck", "--repair"]);
    assert!(
        text(&out).contains("beside/lost: added to the catalog"),
        "{}",
        text(&out)
    );
    assert!(catalogued(&disk.catalog()).contains(b"beside/lost".as_slice()));
    let out = m.tierctl(&["fsck"]);
    assert!(out.status.success(), "{}", text(&out));
    m.unmount();
}
