//! End-to-end tiering through a live mount with a `file://` remote: rules,
//! migration to stubs, transparent recall, dedupe, stubs under truncate and
//! append, garbage collection, and crash recovery after `kill -9` at every
//! step of a release and a recall.

use crate::common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::tiering::{
    Pause, add_rule, ask, content, migrate, migrate_in_background, remount_with_env, state,
    write_old,
};
use common::{MountOptions, TestMount, wait_until};
use tierfs::control::{Reply, Request};

/// A mount whose config has one `file://` remote named `cloud` and no
/// scheduled migrations, plus the remote's directory.
fn tiering_mount(env: Vec<(String, String)>) -> (TestMount, PathBuf) {
    let mut m = TestMount::unmounted(MountOptions::default());
    let cloud = m.root().join("cloud");
    fs::create_dir(&cloud).unwrap();
    let opts = MountOptions {
        allow_other: true,
        extra_top: "migrate_interval = \"off\"\n".into(),
        extra_sections: format!("[remote.cloud]\nurl = \"file://{}\"\n", cloud.display()),
        env,
        ..Default::default()
    };
    m.set_options(opts);
    m.mount();
    (m, cloud)
}

/// Waits until the background recall a read started has made `path` local.
fn wait_local(path: &Path) {
    assert!(
        wait_until(Duration::from_secs(20), || state(path) != "cold").is_some(),
        "{} still cold 20 s after being read",
        path.display()
    );
}

fn blocks(path: &Path) -> u64 {
    fs::metadata(path).unwrap().blocks()
}

fn objects(cloud: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(cloud.join("data"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Every row's path, state, size and mtime (for failure messages).
fn catalog_rows(m: &TestMount) -> Vec<(String, String, i64, i64)> {
    let conn = rusqlite::Connection::open_with_flags(
        m.catalog(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut stmt = conn
        .prepare("SELECT CAST(path AS TEXT), state, size, mtime_ns FROM files ORDER BY path")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Every row's path and state.
fn catalog_states(m: &TestMount) -> Vec<(String, String)> {
    catalog_rows(m)
        .into_iter()
        .map(|(path, state, _, _)| (path, state))
        .collect()
}

#[test]
fn accounting_files_older_than_a_year_move_to_the_cloud() {
    let (m, cloud) = tiering_mount(vec![]);
    let ledger = content(1, 3 << 20);
    let invoice = content(2, 700_000);
    let recent = content(3, 500_000);
    let other = content(4, 400_000);
    write_old(&m.m("accounting/2019/q1/ledger.xlsx"), &ledger, 800);
    write_old(&m.m("accounting/2020/invoice.pdf"), &invoice, 400);
    write_old(&m.m("accounting/2026/recent.pdf"), &recent, 10);
    write_old(&m.m("engineering/old.bin"), &other, 900);
    let before = fs::metadata(m.m("accounting/2019/q1/ledger.xlsx")).unwrap();
    let hot_blocks_before: u64 = [
        "accounting/2019/q1/ledger.xlsx",
        "accounting/2020/invoice.pdf",
    ]
    .iter()
    .map(|p| blocks(&m.h(p)))
    .sum();
    assert!(hot_blocks_before > 0);

    add_rule(&m, "accounting/* older 365d -> cloud");
    let s = migrate(&m);
    assert_eq!(
        (s.candidates, s.released),
        (2, 2),
        "{s:?}\n{}",
        m.log_banner()
    );
    assert_eq!(s.released_bytes, (ledger.len() + invoice.len()) as u64);
    assert!(s.failures.is_empty(), "{s:?}");

    // Local blocks freed; everything else untouched.
    assert_eq!(blocks(&m.h("accounting/2019/q1/ledger.xlsx")), 0);
    assert_eq!(blocks(&m.h("accounting/2020/invoice.pdf")), 0);
    assert!(blocks(&m.h("accounting/2026/recent.pdf")) > 0);
    assert!(blocks(&m.h("engineering/old.bin")) > 0);
    // The stub keeps name, size, mode, owner and times.
    let after = fs::metadata(m.m("accounting/2019/q1/ledger.xlsx")).unwrap();
    assert_eq!(
        (
            after.len(),
            after.mode(),
            after.uid(),
            after.gid(),
            after.mtime(),
            after.mtime_nsec()
        ),
        (
            before.len(),
            before.mode(),
            before.uid(),
            before.gid(),
            before.mtime(),
            before.mtime_nsec()
        )
    );
    // One 512-byte block shown (never zero: GNU tar would take the file for
    // all hole), none used on the hot disk.
    assert_eq!(after.blocks(), 1, "du through the mount shows the savings");
    assert_eq!(
        fs::metadata(m.h("accounting/2019/q1/ledger.xlsx"))
            .unwrap()
            .blocks(),
        0,
        "the stub uses no block"
    );
    assert_eq!(state(&m.m("accounting/2019/q1/ledger.xlsx")), "cold");
    assert_eq!(state(&m.m("accounting/2026/recent.pdf")), "hot");
    assert_eq!(objects(&cloud).len(), 2, "one object per migrated file");
    let out = m.tierctl(&["status", "accounting/2019/q1/ledger.xlsx"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("cold"), "{text}");
    let object = objects(&cloud)
        .into_iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .find(|name| text.contains(name.as_str()));
    assert!(object.is_some(), "status names the object: {text}");

    // Reads return the original bytes and make the file local again.
    assert_eq!(
        fs::read(m.m("accounting/2019/q1/ledger.xlsx")).unwrap(),
        ledger
    );
    wait_local(&m.m("accounting/2019/q1/ledger.xlsx"));
    assert_eq!(state(&m.m("accounting/2019/q1/ledger.xlsx")), "premigrated");
    assert!(blocks(&m.h("accounting/2019/q1/ledger.xlsx")) > 0);
    assert_eq!(
        fs::read(m.m("accounting/2020/invoice.pdf")).unwrap(),
        invoice
    );
    wait_local(&m.m("accounting/2020/invoice.pdf"));
    assert_eq!(fs::read(m.m("engineering/old.bin")).unwrap(), other);

    // The hot-dir watcher reports the recall's own writes a moment later (its
    // 300 ms window); a run before it has seen the restored times may skip a
    // file it takes on the next run. Wait until the catalog has what is on disk.
    let recalled = [
        "accounting/2019/q1/ledger.xlsx",
        "accounting/2020/invoice.pdf",
    ];
    let caught_up = wait_until(Duration::from_secs(20), || {
        let rows = catalog_rows(&m);
        recalled.iter().all(|p| {
            let md = fs::metadata(m.h(p)).unwrap();
            let on_disk = md.mtime() * 1_000_000_000 + md.mtime_nsec();
            rows.iter()
                .any(|(path, _, _, mtime)| path == p && *mtime == on_disk)
        })
    });
    assert!(caught_up.is_some(), "catalog: {:?}", catalog_rows(&m));

    // Releasing an unchanged premigrated file again uploads nothing.
    let s = migrate(&m);
    assert_eq!(
        (s.released, s.uploaded_bytes),
        (2, 0),
        "{s:?}\ncatalog: {:?}\n{}",
        catalog_rows(&m),
        m.log_banner()
    );
    assert_eq!(
        fs::read(m.m("accounting/2020/invoice.pdf")).unwrap(),
        invoice
    );
}

#[test]
fn identical_files_are_stored_once() {
    let (m, cloud) = tiering_mount(vec![]);
    let data = content(7, 100 << 20);
    write_old(&m.m("a/one.bin"), &data, 10);
    write_old(&m.m("b/two.bin"), &data, 10);
    add_rule(&m, "* -> cloud");
    let s = migrate(&m);
    assert_eq!(s.released, 2, "{s:?}\n{}", m.log_banner());
    assert_eq!(s.uploaded_bytes, data.len() as u64, "uploaded once");
    assert_eq!(objects(&cloud).len(), 1);
    // Renaming a cold file touches nothing in the cloud.
    fs::rename(m.m("b/two.bin"), m.m("a/renamed.bin")).unwrap();
    assert_eq!(objects(&cloud).len(), 1);
    assert_eq!(fs::read(m.m("a/renamed.bin")).unwrap(), data);
    assert_eq!(fs::read(m.m("a/one.bin")).unwrap(), data);
}

#[test]
fn writing_to_a_stub_recalls_it_and_truncating_does_not() {
    let (m, _cloud) = tiering_mount(vec![]);
    let data = content(9, 1 << 20);
    write_old(&m.m("append.log"), &data, 5);
    write_old(&m.m("trunc.bin"), &data, 5);
    add_rule(&m, "* -> cloud");
    assert_eq!(migrate(&m).released, 2);

    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(m.m("append.log"))
        .unwrap();
    f.write_all(b"tail").unwrap();
    drop(f);
    let mut expected = data.clone();
    expected.extend_from_slice(b"tail");
    assert_eq!(fs::read(m.m("append.log")).unwrap(), expected);
    assert_eq!(
        state(&m.m("append.log")),
        "hot",
        "new content unlinks the old copy"
    );

    fs::write(m.m("trunc.bin"), b"new").unwrap();
    assert_eq!(fs::read(m.m("trunc.bin")).unwrap(), b"new");
    assert_eq!(state(&m.m("trunc.bin")), "hot");
}

#[test]
fn deleted_cold_files_are_collected_after_the_grace_period() {
    let (m, cloud) = tiering_mount(vec![]);
    write_old(&m.m("gone.bin"), &content(11, 300_000), 5);
    write_old(&m.m("kept.bin"), &content(12, 300_000), 5);
    add_rule(&m, "* -> cloud");
    assert_eq!(migrate(&m).released, 2);
    fs::remove_file(m.m("gone.bin")).unwrap();
    // Within the grace period nothing is deleted.
    let Reply::Gc(g) = ask(
        &m,
        Request::Gc {
            grace_secs: Some(3600),
        },
    ) else {
        panic!("gc reply")
    };
    assert_eq!((g.unreferenced, g.deleted), (1, 0), "{g:?}");
    assert_eq!(objects(&cloud).len(), 2);
    let Reply::Gc(g) = ask(
        &m,
        Request::Gc {
            grace_secs: Some(0),
        },
    ) else {
        panic!("gc reply")
    };
    assert_eq!(g.deleted, 1, "{g:?}");
    assert_eq!(objects(&cloud).len(), 1);
    assert_eq!(fs::read(m.m("kept.bin")).unwrap(), content(12, 300_000));
}

/// Kills the daemon with SIGKILL at `step` of a migration (or of a recall
/// for `downloaded`), restarts it, and checks every file reads back intact,
/// no file is left in a transient state, and a new run completes the job.
fn crash_at(step: &str) {
    crash_at_with(step, &[]);
}

/// [`crash_at`], with `extra` in the environment of the crashed daemon only.
fn crash_at_with(step: &str, extra: &[(&str, &str)]) {
    let pause = Pause::at(step);
    let mut env = pause.env();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let (mut m, _cloud) = tiering_mount(env);
    let files: Vec<(String, Vec<u8>)> = (0..3)
        .map(|i| (format!("dir/f{i}.bin"), content(100 + i, 2 << 20)))
        .collect();
    for (p, d) in &files {
        write_old(&m.m(p), d, 30);
    }
    add_rule(&m, "dir -> cloud");
    let job = if step == "downloaded" {
        // Release without pausing first, then pause the recall.
        remount_with_env(&mut m, vec![]);
        assert_eq!(migrate(&m).released, 3);
        remount_with_env(&mut m, pause.env());
        let path = m.m(&files[0].0);
        std::thread::spawn(move || {
            let _ = fs::read(path);
        })
    } else {
        migrate_in_background(&m)
    };
    pause.wait(&m);
    if step == "freed" {
        // A release never shows a user a wrong size: the file being released
        // has no block left and still its full length.
        let backing: Vec<_> = files
            .iter()
            .map(|(p, _)| fs::metadata(m.h(p)).unwrap())
            .collect();
        for ((p, d), md) in files.iter().zip(&backing) {
            assert_eq!(md.len(), d.len() as u64, "{p}: size while releasing");
        }
        assert!(
            backing.iter().any(|md| md.blocks() == 0),
            "no file had its blocks freed at the pause: {:?}",
            backing.iter().map(|md| md.blocks()).collect::<Vec<_>>()
        );
    }
    m.kill9();
    let _ = job.join();
    remount_with_env(&mut m, vec![]);
    for (path, state) in catalog_states(&m) {
        assert!(
            ["hot", "premigrated", "cold"].contains(&state.as_str()),
            "{path} left in {state} after recovery\n{}",
            m.log_banner()
        );
    }
    for (p, d) in &files {
        assert_eq!(&fs::read(m.m(p)).unwrap(), d, "{p} after a crash at {step}");
        wait_local(&m.m(p));
    }
    assert_fsck_clean(&m);
    // The interrupted job can be completed.
    let s = migrate(&m);
    assert!(s.failures.is_empty(), "{s:?}");
    for (p, d) in &files {
        assert_eq!(state(&m.m(p)), "cold", "{p}");
        assert_eq!(&fs::read(m.m(p)).unwrap(), d);
    }
    assert_fsck_clean(&m);
}

fn assert_fsck_clean(m: &TestMount) {
    let out = m.tierctl(&["fsck"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("clean"),
        "fsck: {text}{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        m.log_banner()
    );
}

#[test]
fn fsck_finds_and_repairs_disagreements() {
    let (m, cloud) = tiering_mount(vec![]);
    write_old(&m.m("kept.bin"), &content(21, 200_000), 5);
    write_old(&m.m("lost.bin"), &content(22, 200_000), 5);
    add_rule(&m, "* -> cloud");
    assert_eq!(migrate(&m).released, 2);
    assert_fsck_clean(&m);

    // An object the catalog does not know: reported, then recorded for gc.
    let stray = cloud.join("data").join("ab".repeat(32));
    fs::write(&stray, b"stray").unwrap();
    let out = m.tierctl(&["fsck"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("orphan"));
    let out = m.tierctl(&["fsck", "--repair"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("recorded orphan"));
    assert_fsck_clean(&m);

    // A cold file's only object vanishes: a problem fsck cannot repair, named by path.
    let objects_now = objects(&cloud);
    let lost_hash = {
        let conn = rusqlite::Connection::open_with_flags(
            m.catalog(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        conn.query_row(
            "SELECT lower(hex(blake3)) FROM files WHERE path = CAST('lost.bin' AS BLOB)",
            [],
            |r| r.get::<_, String>(0),
        )
        .unwrap()
    };
    let victim = objects_now
        .iter()
        .find(|p| p.file_name().unwrap().to_string_lossy() == lost_hash)
        .unwrap();
    fs::remove_file(victim).unwrap();
    let out = m.tierctl(&["fsck", "--repair"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("lost.bin") && text.contains("missing from remote"),
        "{text}"
    );
    // Reading it fails cleanly instead of returning wrong bytes.
    let err = fs::read(m.m("lost.bin")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert_eq!(fs::read(m.m("kept.bin")).unwrap(), content(21, 200_000));
}

#[test]
fn crash_during_upload() {
    crash_at("uploading");
}

#[test]
fn crash_after_upload_before_commit() {
    crash_at("uploaded");
}

#[test]
fn crash_after_commit_before_release() {
    crash_at("premigrated");
}

#[test]
fn crash_after_marker_before_punch() {
    crash_at("marked");
}

/// The fallback for file systems without hole punching: truncate to zero,
/// then extend; killed in between.
#[test]
fn crash_between_the_two_truncates() {
    crash_at_with("emptied", &[("TIERFS_TEST_NO_PUNCH", "1")]);
}

#[test]
fn crash_after_blocks_freed_before_fsync() {
    crash_at("freed");
}

/// A release frees a file's blocks by punching a hole over the whole file, so
/// its size never changes on the way: a `stat` while it runs never shows 0.
/// The size-changing fallback (truncate to zero, extend; its pause step is
/// "emptied") is for file systems that cannot punch holes, and must not be
/// taken on ext4, for small files or large ones.
#[test]
fn a_release_keeps_the_size_visible_throughout() {
    let pause = Pause::at("emptied");
    let (m, _cloud) = tiering_mount(pause.env());
    let files: Vec<(String, Vec<u8>)> = [(1, 4096), (2, 2 << 20), (3, 40 << 20)]
        .into_iter()
        .map(|(seed, len)| (format!("dir/f{seed}.bin"), content(200 + seed, len)))
        .collect();
    for (p, d) in &files {
        write_old(&m.m(p), d, 30);
    }
    add_rule(&m, "dir -> cloud");
    let job = migrate_in_background(&m);
    wait_until(Duration::from_secs(120), || {
        job.is_finished() || pause.reached()
    });
    assert!(
        !pause.reached(),
        "a release truncated a file to zero on its way to a stub\n{}",
        m.log_banner()
    );
    job.join().unwrap();
    // The files the paused run did not reach are released by the next one.
    migrate(&m);
    assert!(!pause.reached(), "a later release truncated a file to zero");
    for (path, state) in catalog_states(&m) {
        assert_eq!(state, "cold", "{path}");
    }
    for (p, d) in &files {
        let md = fs::metadata(m.h(p)).unwrap();
        assert_eq!(
            (md.len(), md.blocks()),
            (d.len() as u64, 0),
            "{p} after release"
        );
        assert_eq!(&fs::read(m.m(p)).unwrap(), d, "{p} read back");
    }
}

#[test]
fn crash_after_punch_before_commit() {
    crash_at("punched");
}

#[test]
fn crash_during_recall() {
    crash_at("downloaded");
}

/// With the background recall held at its last step, a cold file must still
/// read back completely and correctly: from verified chunks fetched by range.
#[test]
fn cold_files_read_before_the_recall_finishes() {
    let pause = Pause::at("downloaded");
    let (mut m, _cloud) = tiering_mount(vec![]);
    let data = content(31, (4 << 20) * 5 + 12_345); // six chunks, the last partial
    write_old(&m.m("big.bin"), &data, 10);
    add_rule(&m, "* -> cloud");
    assert_eq!(migrate(&m).released, 1);
    remount_with_env(&mut m, pause.env());

    let mut f = fs::File::open(m.m("big.bin")).unwrap();
    let mut first = vec![0u8; 4096];
    std::io::Read::read_exact(&mut f, &mut first).unwrap();
    assert_eq!(first, data[..4096]);
    let mut all = Vec::new();
    std::io::Read::read_to_end(&mut f, &mut all).unwrap();
    assert_eq!(all, data[4096..]);
    // The background recall started and is held at its last step.
    pause.wait(&m);
    assert_eq!(
        state(&m.m("big.bin")),
        "cold",
        "served while the recall is held"
    );
    assert!(
        blocks(&m.h("big.bin")) > 0,
        "the recall is writing the stub"
    );
    drop(f);
    m.kill9();
}

/// Recalls and stub fills belong to a file, not to its name. While a cold
/// file's recall is held at its last step, the file is renamed and a new
/// file is released under the old name: reading the new file must give its
/// own bytes (not chunks of the renamed one), and both end local with their
/// own content once the recalls go on.
#[test]
fn a_new_stub_under_the_name_of_a_file_being_recalled_reads_its_own_bytes() {
    let pause = Pause::at("downloaded");
    let resume = std::env::temp_dir().join(format!("tierfs-resume-{}", std::process::id()));
    let _ = fs::remove_file(&resume);
    let (mut m, _cloud) = tiering_mount(vec![]);
    let old = content(41, (4 << 20) * 3 + 777);
    let new = content(42, (1 << 20) + 5);
    write_old(&m.m("r/x.bin"), &old, 10);
    add_rule(&m, "* -> cloud");
    assert_eq!(migrate(&m).released, 1);
    let mut env = pause.env();
    env.push((
        "TIERFS_TEST_RESUME_FILE".into(),
        resume.display().to_string(),
    ));
    remount_with_env(&mut m, env);

    // Reading starts the old file's recall, which stops at its last step.
    assert_eq!(fs::read(m.m("r/x.bin")).unwrap(), old);
    pause.wait(&m);
    // The old file moves away; a new one takes its name and is released.
    fs::rename(m.m("r/x.bin"), m.m("r/y.bin")).unwrap();
    write_old(&m.m("r/x.bin"), &new, 10);
    let released = match ask(
        &m,
        Request::Migrate(tierfs::tier::MigrateRequest {
            paths: vec!["r/x.bin".into()],
            dry_run: false,
        }),
    ) {
        Reply::Migrate(s) => s.released,
        other => panic!("unexpected reply {other:?}"),
    };
    assert_eq!(released, 1, "{}", m.log_banner());

    assert_eq!(state(&m.m("r/x.bin")), "cold");
    assert!(
        fs::read(m.m("r/x.bin")).unwrap() == new,
        "the new file under the old name read back other bytes\n{}",
        m.log_banner()
    );
    assert!(fs::read(m.m("r/y.bin")).unwrap() == old, "the renamed file");

    // The recalls go on: each file ends local with its own content.
    fs::write(&resume, "downloaded").unwrap();
    wait_local(&m.m("r/x.bin"));
    wait_local(&m.m("r/y.bin"));
    assert!(fs::read(m.h("r/x.bin")).unwrap() == new, "hot copy of x");
    assert!(fs::read(m.h("r/y.bin")).unwrap() == old, "hot copy of y");
    assert_fsck_clean(&m);
    let _ = fs::remove_file(&resume);
}

/// A corrupted object is never served: the read fails with EIO.
#[test]
fn corrupt_objects_fail_reads_with_eio() {
    let (m, cloud) = tiering_mount(vec![]);
    let data = content(41, (4 << 20) + 100);
    write_old(&m.m("c.bin"), &data, 10);
    add_rule(&m, "* -> cloud");
    assert_eq!(migrate(&m).released, 1);
    let object = objects(&cloud).pop().unwrap();
    let mut bytes = fs::read(&object).unwrap();
    bytes[10] ^= 0xff;
    fs::write(&object, bytes).unwrap();
    let err = fs::read(m.m("c.bin")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert_eq!(state(&m.m("c.bin")), "cold", "the stub stays a stub");
    assert!(
        m.daemon_log().contains("failed verification") || m.daemon_log().contains("recall failed")
    );
}

/// Bytes fetched from the remote so far, from the cost ledger.
fn ledger_get_bytes(m: &TestMount) -> u64 {
    let conn = rusqlite::Connection::open_with_flags(
        m.catalog(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    conn.query_row(
        "SELECT COALESCE(SUM(bytes), 0) FROM ledger WHERE op = 'get'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .unwrap() as u64
}

/// Reading a whole stub while its background recall runs, from two readers
/// at once, downloads the file exactly once: readers and the recall share one
/// chunk-by-chunk fill, each chunk fetched once and read locally after that.
#[test]
fn concurrent_readers_and_the_recall_share_one_download() {
    let (m, _cloud) = tiering_mount(vec![]);
    let chunk = 4u64 << 20;
    let data = content(53, (16 * chunk + 4321) as usize);
    write_old(&m.m("seq.bin"), &data, 10);
    add_rule(&m, "* -> cloud");
    assert_eq!(migrate(&m).released, 1);
    assert_eq!(state(&m.m("seq.bin")), "cold");
    let before = ledger_get_bytes(&m);

    let readers: Vec<_> = (0..2)
        .map(|_| {
            let path = m.m("seq.bin");
            std::thread::spawn(move || fs::read(path).unwrap())
        })
        .collect();
    for r in readers {
        assert!(r.join().unwrap() == data, "a reader got different bytes");
    }
    assert!(
        wait_until(Duration::from_secs(20), || state(&m.m("seq.bin"))
            == "premigrated")
        .is_some(),
        "the background recall did not finish"
    );
    assert!(
        fs::read(m.h("seq.bin")).unwrap() == data,
        "hot copy differs"
    );
    let fetched = ledger_get_bytes(&m) - before;
    assert_eq!(
        fetched,
        data.len() as u64,
        "bytes fetched from the remote for one {} MiB file",
        data.len() >> 20
    );
}
