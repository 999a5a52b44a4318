//! The SQLite catalog as seen by `tierctl status --json`, driven through a
//! real mount: changes made through the mount, directly in the hot dir while
//! mounted (watcher), and while unmounted (reconcile at the next mount), and
//! last-access times flushed at unmount / SIGTERM.
//!
//! The catalog holds one row per regular file (symlinks, fifos and
//! directories are not rows), so the expected totals are computed by walking
//! the hot dir.

use crate::common;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, symlink};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use serde_json::Value;

/// How long a change made beside the mount may take to reach the catalog
/// (without `tierctl`'s sync): the bound docs/architecture.md states.
const BESIDE_BOUND: Duration = Duration::from_secs(1);

/// The row of `rel` read straight from the catalog file, without asking the
/// daemon to sync: what a scheduled migration would see.
fn raw_row(m: &TestMount, rel: &str) -> Option<(i64, Option<i64>)> {
    let conn = rusqlite::Connection::open_with_flags(
        m.catalog(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .ok()?;
    conn.query_row(
        "SELECT size, last_access_ns FROM files WHERE path = CAST(?1 AS BLOB)",
        [rel],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .ok()
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

fn tierctl_json(m: &TestMount, args: &[&str]) -> Value {
    let out = m.tierctl(args);
    assert!(
        out.status.success(),
        "tierctl {args:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "tierctl {args:?}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn status(m: &TestMount) -> Value {
    tierctl_json(m, &["status", "--json"])
}

/// (total_files, total_bytes) from `tierctl status --json`.
fn catalog_totals(m: &TestMount) -> (u64, u64) {
    let v = status(m);
    let c = &v["catalog"];
    (
        c["total_files"]
            .as_u64()
            .unwrap_or_else(|| panic!("no catalog.total_files in {v}")),
        c["total_bytes"]
            .as_u64()
            .unwrap_or_else(|| panic!("no catalog.total_bytes in {v}")),
    )
}

/// (regular files, bytes) found by walking `root`.
fn disk_totals(root: &Path) -> (u64, u64) {
    let mut files = 0;
    let mut bytes = 0;
    for node in snapshot(root).values() {
        if let Node::File(meta, _) = node {
            files += 1;
            bytes += meta.size.unwrap();
        }
    }
    (files, bytes)
}

/// The catalog totals as `tierctl status` reports them right now equal
/// `want` (tierctl syncs the catalog with the mount first).
fn assert_totals(m: &TestMount, want: (u64, u64), what: &str) {
    let got = catalog_totals(m);
    assert_eq!(
        got,
        want,
        "{what}: catalog (files, bytes) = {got:?}, hot dir has {want:?}\n{}",
        m.log_banner()
    );
}

/// `tierctl status --json REL`.
fn file_entry(m: &TestMount, rel: &str) -> Value {
    tierctl_json(m, &["status", "--json", rel])
}

/// `rel` is in the catalog with `size` (or absent, for None) as `tierctl
/// status PATH` reports it right now.
fn assert_entry(m: &TestMount, rel: &str, size: Option<u64>) {
    let got = file_entry(m, rel);
    let ok = match size {
        Some(s) => got["in_catalog"] == true && got["size"].as_u64() == Some(s),
        None => got["in_catalog"] == false,
    };
    assert!(
        ok,
        "catalog entry for {rel}: want size {size:?}, got {got}\n{}",
        m.log_banner()
    );
}

fn daemon_state(m: &TestMount) -> String {
    status(m)["daemon"]["state"]
        .as_str()
        .unwrap_or("<missing>")
        .to_string()
}

#[test]
fn status_reports_daemon_up_and_down() {
    let mut m = TestMount::new();
    assert_eq!(daemon_state(&m), "running", "{}", status(&m));
    assert_eq!(status(&m)["catalog"]["state"], "ok");
    let st = m.unmount();
    assert!(st.success(), "daemon exit status {st}\n{}", m.log_banner());
    assert_eq!(daemon_state(&m), "not_running", "{}", status(&m));
    // The catalog is still readable without the daemon.
    assert_eq!(status(&m)["catalog"]["state"], "ok");
    m.mount();
    assert_eq!(daemon_state(&m), "running");
}

#[test]
fn catalog_tracks_changes_through_mount() {
    let m = TestMount::new();
    assert_totals(&m, (0, 0), "empty mount");

    // Create a small tree with assorted sizes.
    fs::create_dir_all(m.m("a/b/c")).unwrap();
    write_file(&m.m("top.txt"), b"hello");
    write_file(&m.m("a/one"), &[1u8; 1000]);
    write_file(&m.m("a/b/two"), &[2u8; 70_000]);
    write_file(&m.m("a/b/c/three"), b"");
    symlink("top.txt", m.m("link")).unwrap();
    mkfifo(&m.m("fifo"), 0o644).unwrap();
    assert_totals(&m, (4, 5 + 1000 + 70_000), "after create");
    assert_eq!(disk_totals(m.hot()), (4, 71_005));
    assert_entry(&m, "a/b/two", Some(70_000));
    assert_entry(&m, "link", None);
    let e = file_entry(&m, "a/one");
    assert_eq!(e["state"], "hot", "{e}");

    // Grow by write, append, truncate.
    let f = OpenOptions::new().write(true).open(m.m("top.txt")).unwrap();
    f.write_all_at(b"!", 99).unwrap();
    drop(f);
    OpenOptions::new()
        .append(true)
        .open(m.m("a/one"))
        .unwrap()
        .write_all(&[0u8; 24])
        .unwrap();
    OpenOptions::new()
        .write(true)
        .open(m.m("a/b/two"))
        .unwrap()
        .set_len(10)
        .unwrap();
    assert_entry(&m, "top.txt", Some(100));
    assert_entry(&m, "a/one", Some(1024));
    assert_entry(&m, "a/b/two", Some(10));
    assert_totals(&m, (4, 100 + 1024 + 10), "after resize");

    // Rename a file, then a directory holding files.
    fs::rename(m.m("top.txt"), m.m("a/top-renamed.txt")).unwrap();
    assert_entry(&m, "top.txt", None);
    assert_entry(&m, "a/top-renamed.txt", Some(100));
    fs::rename(m.m("a/b"), m.m("moved")).unwrap();
    assert_entry(&m, "a/b/two", None);
    assert_entry(&m, "moved/two", Some(10));
    assert_entry(&m, "moved/c/three", Some(0));
    // Rename over an existing file replaces its row.
    write_file(&m.m("victim"), &[9u8; 500]);
    assert_entry(&m, "victim", Some(500));
    fs::rename(m.m("moved/two"), m.m("victim")).unwrap();
    assert_entry(&m, "victim", Some(10));
    assert_entry(&m, "moved/two", None);
    assert_totals(&m, disk_totals(m.hot()), "after renames");

    // Delete a file and a whole subtree.
    fs::remove_file(m.m("victim")).unwrap();
    fs::remove_dir_all(m.m("moved")).unwrap();
    assert_entry(&m, "victim", None);
    assert_entry(&m, "moved/c/three", None);
    assert_totals(&m, (2, 100 + 1024), "after deletes");
    assert_eq!(disk_totals(m.hot()), (2, 1124));

    // Many files at once.
    fs::create_dir(m.m("many")).unwrap();
    for i in 0..300 {
        write_file(&m.m(format!("many/f{i}")), &vec![7u8; i]);
    }
    let want = (2 + 300, 1124 + (0..300u64).sum::<u64>());
    assert_totals(&m, want, "after 300 creates");
}

#[test]
fn catalog_tracks_changes_in_hot_dir_while_mounted() {
    let m = TestMount::new();
    fs::create_dir_all(m.h("x/y")).unwrap();
    write_file(&m.h("x/one"), &[1u8; 123]);
    write_file(&m.h("x/y/two"), &[2u8; 4567]);
    assert_totals(&m, (2, 123 + 4567), "files created in the hot dir");
    assert_entry(&m, "x/y/two", Some(4567));

    OpenOptions::new()
        .append(true)
        .open(m.h("x/one"))
        .unwrap()
        .write_all(&[0u8; 77])
        .unwrap();
    assert_entry(&m, "x/one", Some(200));

    fs::rename(m.h("x/y"), m.h("z")).unwrap();
    assert_entry(&m, "x/y/two", None);
    assert_entry(&m, "z/two", Some(4567));

    fs::remove_file(m.h("x/one")).unwrap();
    assert_entry(&m, "x/one", None);
    assert_totals(&m, (1, 4567), "after hot-dir rename and delete");

    // A directory tree moved into the hot dir from outside appears whole.
    let outside = m.root().join("outside");
    fs::create_dir_all(outside.join("deep/er")).unwrap();
    write_file(&outside.join("deep/er/f"), &[3u8; 1000]);
    write_file(&outside.join("deep/g"), &[4u8; 10]);
    fs::rename(&outside, m.h("imported")).unwrap();
    assert_entry(&m, "imported/deep/er/f", Some(1000));
    assert_totals(&m, (3, 4567 + 1010), "after moving a tree in");
}

#[test]
fn catalog_reconciles_changes_made_while_unmounted() {
    let mut m = TestMount::new();
    fs::create_dir(m.m("d")).unwrap();
    write_file(&m.m("keep"), &[1u8; 10]);
    write_file(&m.m("grow"), &[1u8; 10]);
    write_file(&m.m("gone"), &[1u8; 10]);
    write_file(&m.m("d/move-me"), &[1u8; 10]);
    assert_totals(&m, (4, 40), "before unmount");
    let st = m.unmount();
    assert!(st.success(), "daemon exit status {st}\n{}", m.log_banner());

    // Change the hot dir while nothing watches it.
    write_file(&m.h("grow"), &[2u8; 5000]);
    fs::remove_file(m.h("gone")).unwrap();
    fs::rename(m.h("d/move-me"), m.h("moved")).unwrap();
    fs::create_dir_all(m.h("new/sub")).unwrap();
    write_file(&m.h("new/sub/file"), &[3u8; 333]);
    write_file(&m.h("new/empty"), b"");
    // Same size, different mtime: still must be picked up as a change.
    write_file(&m.h("keep"), &[9u8; 10]);

    m.mount();
    let want = disk_totals(m.hot());
    assert_eq!(want, (5, 10 + 5000 + 10 + 333));
    assert_totals(&m, want, "after remount (reconcile)");
    assert_entry(&m, "grow", Some(5000));
    assert_entry(&m, "gone", None);
    assert_entry(&m, "d/move-me", None);
    assert_entry(&m, "moved", Some(10));
    assert_entry(&m, "new/sub/file", Some(333));
    assert_entry(&m, "new/empty", Some(0));
    // The recorded mtime follows the file.
    let e = file_entry(&m, "keep");
    let md = fs::metadata(m.h("keep")).unwrap();
    use std::os::unix::fs::MetadataExt;
    let mtime_ns = md.mtime() * 1_000_000_000 + md.mtime_nsec();
    assert_eq!(e["mtime_ns"].as_i64(), Some(mtime_ns), "{e}");
    // Data unchanged through the new mount.
    assert_eq!(fs::read(m.m("new/sub/file")).unwrap(), vec![3u8; 333]);
}

#[test]
fn last_access_recorded_after_flush() {
    let mut m = TestMount::unmounted(MountOptions::default());
    // Files that exist before the mount: no access through tierfs yet.
    write_file(&m.h("read-me"), b"read me");
    write_file(&m.h("untouched"), b"never opened through the mount");
    write_file(&m.h("read-later"), b"read after remount");
    m.mount();
    assert_entry(&m, "read-me", Some(7));
    assert_entry(&m, "untouched", Some(30));

    let t0 = now_ns();
    let mut buf = String::new();
    use std::io::Read;
    File::open(m.m("read-me"))
        .unwrap()
        .read_to_string(&mut buf)
        .unwrap();
    assert_eq!(buf, "read me");
    let t1 = now_ns();

    // Unmount flushes the access times (the default flush interval is 30 s).
    let st = m.unmount();
    assert!(st.success(), "daemon exit status {st}\n{}", m.log_banner());
    let e = file_entry(&m, "read-me");
    let at = e["last_access_ns"]
        .as_i64()
        .unwrap_or_else(|| panic!("no last access recorded for read-me after unmount: {e}"));
    // Allow for coarse clocks: the access happened between t0 and t1.
    assert!(
        at >= t0 - 1_000_000_000 && at <= t1 + 1_000_000_000,
        "last_access_ns {at} outside [{t0}, {t1}]"
    );
    let e = file_entry(&m, "untouched");
    if let Some(u) = e["last_access_ns"].as_i64() {
        assert!(
            u < t0,
            "a file nobody opened got an access time after t0: {e}"
        );
    }

    // SIGTERM flushes too.
    m.mount();
    let t2 = now_ns();
    assert_eq!(fs::read(m.m("read-later")).unwrap(), b"read after remount");
    let st = m.sigterm();
    assert!(
        st.success(),
        "daemon exit status on SIGTERM {st}\n{}",
        m.log_banner()
    );
    let e = file_entry(&m, "read-later");
    let at = e["last_access_ns"]
        .as_i64()
        .unwrap_or_else(|| panic!("no last access after SIGTERM: {e}"));
    assert!(at >= t2 - 1_000_000_000, "last_access_ns {at} < {t2}");
    // The earlier access was kept.
    let e = file_entry(&m, "read-me");
    assert!(e["last_access_ns"].as_i64().is_some_and(|a| a < t2), "{e}");
}

#[test]
fn last_access_flushed_periodically() {
    let m = TestMount::with_options(MountOptions {
        access_flush_interval: Some("1s".into()),
        ..Default::default()
    });
    write_file(&m.m("f"), b"data");
    let t0 = now_ns();
    assert_eq!(fs::read(m.m("f")).unwrap(), b"data");
    // Read straight from the file: `tierctl status` would sync (and so
    // write) the access times itself.
    let mut last = None;
    let ok = wait_until(Duration::from_secs(10), || {
        last = raw_row(&m, "f");
        last.and_then(|(_, a)| a)
            .is_some_and(|a| a >= t0 - 1_000_000_000)
    });
    assert!(
        ok.is_some(),
        "access not flushed within 10 s with access_flush_interval = 1s: {last:?}"
    );
}

#[test]
fn rename_through_mount_keeps_last_access() {
    let mut m = TestMount::with_options(MountOptions {
        access_flush_interval: Some("1s".into()),
        ..Default::default()
    });
    fs::create_dir(m.m("dir")).unwrap();
    write_file(&m.m("dir/f"), b"data");
    write_file(&m.m("g"), b"data");
    let t0 = now_ns();
    assert_eq!(fs::read(m.m("dir/f")).unwrap(), b"data");
    assert_eq!(fs::read(m.m("g")).unwrap(), b"data");
    // tierctl's sync also writes the access times held in memory.
    let f = file_entry(&m, "dir/f")["last_access_ns"].as_i64();
    let g = file_entry(&m, "g")["last_access_ns"].as_i64();
    let recorded = match (f, g) {
        (Some(f), Some(g)) if f >= t0 - 1_000_000_000 && g >= t0 - 1_000_000_000 => (f, g),
        other => panic!("accesses not recorded: {other:?}"),
    };
    fs::rename(m.m("g"), m.m("g-renamed")).unwrap();
    fs::rename(m.m("dir"), m.m("dir-renamed")).unwrap();
    // The watcher sees both renames too: its late reports (applied by the
    // sync in each status call, and at unmount) move nothing.
    assert_entry(&m, "g-renamed", Some(4));
    assert_entry(&m, "dir-renamed/f", Some(4));
    let st = m.unmount();
    assert!(st.success());
    let g = file_entry(&m, "g-renamed");
    let f = file_entry(&m, "dir-renamed/f");
    assert_eq!(
        f["in_catalog"], true,
        "dir-renamed/f lost from the catalog: {f}"
    );
    assert_eq!(
        g["in_catalog"], true,
        "g-renamed lost from the catalog: {g}"
    );
    assert_eq!(
        g["last_access_ns"].as_i64(),
        Some(recorded.1),
        "last access lost by a file rename through the mount: {g}"
    );
    assert_eq!(
        f["last_access_ns"].as_i64(),
        Some(recorded.0),
        "last access lost by a directory rename through the mount: {f}"
    );
}

#[test]
fn catalog_survives_daemon_restart_with_many_files() {
    let mut m = TestMount::new();
    let mut f = File::create(m.m("bulk.bin")).unwrap();
    f.write_all(&vec![5u8; 3 << 20]).unwrap();
    drop(f);
    for i in 0..100 {
        write_file(&m.m(format!("n{i:03}")), format!("{i}").as_bytes());
    }
    let want = disk_totals(m.hot());
    assert_totals(&m, want, "before restart");
    let st = m.sigterm();
    assert!(st.success(), "daemon exit status {st}");
    // Read directly while stopped: nothing lost at shutdown.
    assert_eq!(catalog_totals(&m), want, "catalog after SIGTERM");
    m.mount();
    assert_totals(&m, want, "after restart");
}

/// Changes made beside the mount (straight in the hot dir) reach the catalog
/// within the stated bound on their own, and at once for `tierctl`.
#[test]
fn changes_beside_the_mount_reach_the_catalog_within_the_bound() {
    let m = TestMount::new();
    // tierctl: read-your-writes through the watcher's barrier.
    fs::write(m.h("beside-1"), vec![1u8; 321]).unwrap();
    assert_entry(&m, "beside-1", Some(321));
    fs::rename(m.h("beside-1"), m.h("beside-2")).unwrap();
    assert_entry(&m, "beside-2", Some(321));
    assert_entry(&m, "beside-1", None);
    // On its own: within the bound, measured from the write.
    for i in 0..5 {
        let rel = format!("alone-{i}");
        let started = std::time::Instant::now();
        fs::write(m.h(&rel), vec![2u8; 100 + i]).unwrap();
        let seen = wait_until(Duration::from_secs(10), || raw_row(&m, &rel).is_some())
            .map(|_| started.elapsed());
        assert!(
            seen.is_some_and(|t| t <= BESIDE_BOUND),
            "{rel}: reached the catalog after {seen:?}, bound {BESIDE_BOUND:?}\n{}",
            m.log_banner()
        );
    }
}
