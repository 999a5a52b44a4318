//! A hostile bucket gets nothing: catalog backups crafted by whoever can
//! write to the bucket (path escapes, absolute paths, `..` directory rows,
//! set-user-ID-root modes, a zstd bomb, a truncated SQLite file, SQLite files
//! with a foreign schema, an unauthenticated backup on an encrypted remote)
//! make `tierctl rebuild` refuse the row or the backup, name it, exit
//! non-zero, and create nothing outside the new hot dir. Tampered objects
//! and chunk-hash rows make reads through the mount fail with EIO, never
//! return wrong bytes, and the daemon's log names the object.
//!
//! Runs against a `file://` remote, and one case against SeaweedFS.

use crate::common;
use crate::servers;

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::tiering::{add_rule, content, migrate, text, write_old};
use common::{MountOptions, TestMount, errname, write_private};
use object_store::{ObjectStoreExt, PutPayload};
use rusqlite::{Connection, params};
use servers::{SeaweedFs, rt};
use tierfs::catalog::{Catalog, CatalogOptions};

const TIERCTL: &str = env!("CARGO_BIN_EXE_tierctl");
const BACKUP_NAME: &str = "20260101T000000.000000000Z.db.zst";
const NS: i64 = 1_700_000_000_000_000_000;

/// A machine being rebuilt: `<tmp>/site/hot` (new, empty hot dir),
/// `<tmp>/site/tierfs.toml`, `<tmp>/bucket` (the file:// remote) and
/// `<tmp>/outside` (must stay empty).
struct Site {
    tmp: tempfile::TempDir,
    config: PathBuf,
}

impl Site {
    fn new(remote_toml: &str) -> Site {
        let tmp = tempfile::tempdir().unwrap();
        for d in ["site/hot", "bucket", "outside"] {
            fs::create_dir_all(tmp.path().join(d)).unwrap();
        }
        let config = tmp.path().join("site/tierfs.toml");
        let remote = if remote_toml.is_empty() {
            format!("url = \"file://{}\"\n", tmp.path().join("bucket").display())
        } else {
            remote_toml.to_string()
        };
        write_private(
            &config,
            &format!("hot_dir = \"hot\"\n\n[remote.cloud]\n{remote}"),
        );
        Site { tmp, config }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    fn hot(&self) -> PathBuf {
        self.path("site/hot")
    }

    fn rebuild(&self, extra: &[&str]) -> Output {
        Command::new(TIERCTL)
            .arg("-c")
            .arg(&self.config)
            .args(["rebuild", "--from", "cloud"])
            .args(extra)
            .output()
            .unwrap()
    }

    /// Puts `data` at `key` of the file:// bucket.
    fn put(&self, key: &str, data: &[u8]) {
        let p = self.path("bucket").join(key);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, data).unwrap();
    }

    /// Nothing outside `site/hot` (and the catalog beside it) was created,
    /// and no set-ID file exists anywhere.
    fn assert_nothing_escaped(&self) {
        let mut top: Vec<String> = names(self.tmp.path());
        top.sort();
        assert_eq!(
            top,
            ["bucket", "outside", "site"],
            "new entries beside the site"
        );
        assert!(
            names(&self.path("outside")).is_empty(),
            "created outside: {:?}",
            names(&self.path("outside"))
        );
        for e in names(&self.path("site")) {
            assert!(
                e == "hot" || e == "tierfs.toml" || e.starts_with("hot.tierfs.db"),
                "unexpected {e} beside the hot dir"
            );
        }
        assert_no_set_id(self.tmp.path());
    }
}

fn names(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn assert_no_set_id(dir: &Path) {
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let md = e.path().symlink_metadata().unwrap();
        assert_eq!(
            md.mode() & 0o6000,
            if md.is_dir() { md.mode() & 0o2000 } else { 0 },
            "{} has set-ID bits ({:o})",
            e.path().display(),
            md.mode()
        );
        if md.is_dir() {
            assert_no_set_id(&e.path());
        }
    }
}

/// A catalog backup under construction: a real (empty) tierfs catalog that
/// the test fills with whatever rows it likes.
struct Backup {
    _dir: tempfile::TempDir,
    db: PathBuf,
    conn: Connection,
}

impl Backup {
    fn new() -> Backup {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("backup.db");
        Catalog::open(&db, CatalogOptions::default())
            .unwrap()
            .close()
            .unwrap();
        let conn = Connection::open(&db).unwrap();
        let _: String = conn
            .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
            .unwrap();
        Backup {
            _dir: dir,
            db,
            conn,
        }
    }

    /// A cold file row whose content is `hash` (size `size`).
    fn file(&self, path: &[u8], size: u64, hash: &blake3::Hash, mode: i64, uid: i64) {
        self.file_in("", path, size, hash, mode, uid);
    }

    /// [`Backup::file`] on a remote whose keys start with `prefix`.
    fn file_in(
        &self,
        prefix: &str,
        path: &[u8],
        size: u64,
        hash: &blake3::Hash,
        mode: i64,
        uid: i64,
    ) {
        self.conn
            .execute(
                "INSERT INTO files (path, size, mtime_ns, ino, state, blake3, mode, uid, gid, atime_ns)
                 VALUES (?1, ?2, ?3, 1, 'cold', ?4, ?5, ?6, ?6, ?3)",
                params![path, size as i64, NS, &hash.as_bytes()[..], mode, uid],
            )
            .unwrap();
        self.conn
            .execute(
                "INSERT OR IGNORE INTO objects (remote, key, blake3, size, created_at_ns, verified_at_ns)
                 VALUES ('cloud', ?1, ?2, ?3, 1, 2)",
                params![
                    format!("{prefix}data/{}", hash.to_hex()),
                    &hash.as_bytes()[..],
                    size as i64
                ],
            )
            .unwrap();
    }

    fn dir(&self, path: &[u8], mode: i64, uid: i64) {
        self.conn
            .execute(
                "INSERT INTO dirs (path, mode, uid, gid, mtime_ns, atime_ns)
                 VALUES (?1, ?2, ?3, ?3, ?4, ?4)",
                params![path, mode, uid, NS],
            )
            .unwrap();
    }

    /// The compressed backup.
    fn finish(self) -> Vec<u8> {
        self.conn.close().unwrap();
        zstd::encode_all(&fs::read(&self.db).unwrap()[..], 3).unwrap()
    }

    /// The SQLite file, uncompressed.
    fn raw(self) -> Vec<u8> {
        self.conn.close().unwrap();
        fs::read(&self.db).unwrap()
    }
}

/// Rows a hostile bucket would write, next to one honest file. Returns the
/// backup and the content object (key, bytes).
fn hostile_backup(site: &Site, prefix: &str) -> (Vec<u8>, String, Vec<u8>) {
    let data = content(1, 5_000);
    let hash = blake3::hash(&data);
    let size = data.len() as u64;
    let b = Backup::new();
    let outside = site.path("outside");
    b.file_in(prefix, b"ok/good.txt", size, &hash, 0o640, 1234);
    b.file_in(prefix, b"../../outside/pwned", size, &hash, 0o644, 0);
    b.file_in(
        prefix,
        format!("{}/abs-pwned", outside.display()).as_bytes(),
        size,
        &hash,
        0o6755,
        0,
    );
    b.file_in(prefix, b"ok/setuid-root-shell", size, &hash, 0o6755, 0);
    b.file_in(prefix, b"ok/../../../outside/dotdot", size, &hash, 0o644, 0);
    b.file_in(prefix, b"ok/./dot", size, &hash, 0o644, 0);
    b.file_in(prefix, b"ok//empty", size, &hash, 0o644, 0);
    b.file_in(prefix, b"ok/nul\0byte", size, &hash, 0o644, 0);
    b.file_in(
        prefix,
        b"../\x1b]0;pwned\x07\nforged",
        size,
        &hash,
        0o644,
        0,
    );
    // A legal name full of control characters is restored (and shown escaped).
    b.file_in(prefix, b"ok/\x1b[2Jbell\x07\nx", size, &hash, 0o644, 0);
    b.file_in(prefix, b"ok/neg-owner", size, &hash, 0o644, -1);
    b.file_in(prefix, b"ok/owner-max", size, &hash, 0o644, u32::MAX as i64);
    b.file_in(prefix, b"ok/huge-mode", size, &hash, 0o170777, 0);
    b.dir(b"..", 0o777, 0);
    b.dir(
        format!("{}/some/dir", outside.display()).as_bytes(),
        0o777,
        0,
    );
    b.dir(b"../outside/dirrow", 0o4777, 0);
    b.dir(b"ok", 0o4750, 1234);
    (b.finish(), format!("{prefix}data/{}", hash.to_hex()), data)
}

fn check_hostile_rebuild(site: &Site, out: &Output, data: &[u8]) {
    let t = text(out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    site.assert_nothing_escaped();
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Every refused row is named (escaped: no raw control characters).
    for row in [
        "`../../outside/pwned`: the path has a `..` component",
        "/abs-pwned`: the path is absolute",
        "`ok/../../../outside/dotdot`",
        "`ok/./dot`: the path has a `.` component",
        "`ok//empty`: the path has an empty component",
        "`ok/nul\\x00byte`: the path contains a NUL byte",
        "`../\\x1b]0;pwned\\x07\\nforged`: the path has a `..` component",
        "`ok/neg-owner`: uid -1 is out of range",
        "`ok/owner-max`: uid 4294967295 is out of range",
        "`ok/huge-mode`: mode 61951 is out of range",
        "directory row `..`: the path has a `..` component",
        "/some/dir`: the path is absolute",
        "directory row `../outside/dirrow`",
    ] {
        assert!(stdout.contains(row), "missing {row:?} in\n{t}");
    }
    assert!(
        !stdout.contains('\x1b') && !stdout.contains('\x07'),
        "raw control characters in the report:\n{t}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("13 row(s) of backup"),
        "{t}"
    );
    // Set-ID bits are dropped, and said so.
    assert!(
        stdout.contains("`ok/setuid-root-shell`: mode 6755 restored as 0755"),
        "{t}"
    );
    let hot = site.hot();
    let shell = fs::metadata(hot.join("ok/setuid-root-shell")).unwrap();
    assert_eq!(shell.mode() & 0o7777, 0o755);
    let good = fs::metadata(hot.join("ok/good.txt")).unwrap();
    assert_eq!(
        (good.len(), good.mode() & 0o7777, good.uid()),
        (data.len() as u64, 0o640, 1234)
    );
    let ok_dir = fs::metadata(hot.join("ok")).unwrap();
    assert_eq!((ok_dir.mode() & 0o7777, ok_dir.uid()), (0o750, 1234));
    let mut inside: Vec<String> = names(&hot.join("ok"));
    inside.sort();
    assert_eq!(
        inside,
        ["\x1b[2Jbell\x07\nx", "good.txt", "setuid-root-shell"],
        "{t}"
    );
    assert_eq!(names(&hot), ["ok"]);
}

#[test]
fn rebuild_refuses_hostile_rows_and_creates_nothing_outside() {
    let site = Site::new("");
    let (backup, key, data) = hostile_backup(&site, "");
    site.put(&format!("catalog/{BACKUP_NAME}"), &backup);
    site.put(&key, &data);
    let out = site.rebuild(&[]);
    check_hostile_rebuild(&site, &out, &data);

    // JSON keeps exact names; a name that is not UTF-8 is {"hex": ...}.
    let rejected_paths: Vec<serde_json::Value> = {
        let site = Site::new("");
        let (backup, key, data) = hostile_backup(&site, "");
        site.put(&format!("catalog/{BACKUP_NAME}"), &backup);
        site.put(&key, &data);
        let out = site.rebuild(&["--json"]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["rejected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["path"].clone())
            .collect()
    };
    assert!(
        rejected_paths.contains(&serde_json::json!("../\u{1b}]0;pwned\u{7}\nforged")),
        "{rejected_paths:?}"
    );
}

#[test]
fn rebuild_from_seaweedfs_refuses_hostile_rows() {
    let server = SeaweedFs::shared();
    let prefix = format!("hostile{}", std::process::id());
    let site = Site::new(&server.remote_toml(&prefix, ""));
    let (backup, key, data) = hostile_backup(&site, &format!("{prefix}/"));
    let store = server.raw_store();
    rt().block_on(async {
        for (k, v) in [
            (format!("{prefix}/catalog/{BACKUP_NAME}"), backup),
            (key, data.clone()),
        ] {
            store
                .put(&object_store::path::Path::from(k), PutPayload::from(v))
                .await
                .unwrap();
        }
    });
    let out = site.rebuild(&[]);
    check_hostile_rebuild(&site, &out, &data);
}

/// Rebuild refuses the whole backup: exit non-zero, the message names the
/// object and says why, and the hot dir and catalog are left untouched.
fn assert_backup_refused(site: &Site, out: &Output, why: &str) {
    let t = text(out);
    assert_ne!(out.status.code(), Some(0), "{t}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(BACKUP_NAME), "the object is not named: {t}");
    assert!(stderr.contains(why), "missing {why:?}: {t}");
    assert!(names(&site.hot()).is_empty(), "{t}");
    site.assert_nothing_escaped();
    assert_eq!(
        names(&site.path("site")).len(),
        2,
        "temporary files left: {t}"
    );
}

#[test]
fn a_zstd_bomb_is_refused_before_it_is_written_out() {
    let site = Site::new("");
    // 1 GiB of zeros in about 30 KB.
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 19).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..1024 {
        enc.write_all(&zeros).unwrap();
    }
    let bomb = enc.finish().unwrap();
    assert!(bomb.len() < 200 << 10, "{}", bomb.len());
    site.put(&format!("catalog/{BACKUP_NAME}"), &bomb);
    let out = site.rebuild(&[]);
    assert_backup_refused(&site, &out, "decompression bomb");

    // The absolute cap applies too, whatever the ratio.
    let real = Backup::new().finish();
    site.put(&format!("catalog/{BACKUP_NAME}"), &real);
    let out = site.rebuild(&["--max-catalog-size", "4KiB"]);
    assert_backup_refused(&site, &out, "more than 4096 bytes");
}

#[test]
fn truncated_and_foreign_sqlite_files_are_refused() {
    let site = Site::new("");
    let key = format!("catalog/{BACKUP_NAME}");

    let b = Backup::new();
    let h = blake3::hash(b"x");
    for i in 0..200 {
        b.file(format!("f{i}").as_bytes(), 1, &h, 0o644, 0);
    }
    let raw = b.raw();
    site.put(&key, &zstd::encode_all(&raw[..raw.len() / 2], 3).unwrap());
    let out = site.rebuild(&[]);
    assert_backup_refused(&site, &out, "truncated: the SQLite header counts");

    // A valid SQLite file of some other application.
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.db");
    let c = Connection::open(&other).unwrap();
    c.execute_batch("CREATE TABLE files (name TEXT); INSERT INTO files VALUES ('x');")
        .unwrap();
    c.close().unwrap();
    site.put(
        &key,
        &zstd::encode_all(&fs::read(&other).unwrap()[..], 3).unwrap(),
    );
    let out = site.rebuild(&[]);
    assert_backup_refused(&site, &out, "no tierfs application id");

    // Claims to be a tierfs catalog, but the tables are someone else's.
    let b = Backup::new();
    b.conn
        .execute_batch("DROP TABLE dirs; CREATE TABLE dirs (x);")
        .unwrap();
    site.put(&key, &b.finish());
    let out = site.rebuild(&[]);
    assert_backup_refused(&site, &out, "foreign schema: table `dirs`");

    // Triggers would run the bucket's SQL on every later catalog write.
    let b = Backup::new();
    b.conn
        .execute_batch("CREATE TRIGGER evil AFTER UPDATE ON files BEGIN DELETE FROM objects; END;")
        .unwrap();
    site.put(&key, &b.finish());
    let out = site.rebuild(&[]);
    assert_backup_refused(&site, &out, "trigger evil");
}

#[test]
fn an_encrypted_remote_refuses_backups_not_sealed_with_its_key() {
    let site = Site::new("");
    let keyfile = site.path("site/cloud.key");
    let out = Command::new(TIERCTL)
        .arg("keygen")
        .arg(&keyfile)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    write_private(
        &site.config,
        &format!(
            "hot_dir = \"hot\"\n\n[remote.cloud]\nurl = \"file://{}\"\nencryption_key_file = \"{}\"\n",
            site.path("bucket").display(),
            keyfile.display()
        ),
    );
    // A well-formed plaintext backup, as an attacker without the key writes it.
    site.put(&format!("catalog/{BACKUP_NAME}"), &Backup::new().finish());
    let out = site.rebuild(&[]);
    let t = text(&out);
    assert_ne!(out.status.code(), Some(0), "{t}");
    assert!(t.contains(BACKUP_NAME) && t.contains("bad header"), "{t}");
    assert!(names(&site.hot()).is_empty(), "{t}");
    let mut files = names(&site.path("site"));
    files.sort();
    assert_eq!(files, ["cloud.key", "hot", "tierfs.toml"], "{t}");
}

// ---------------------------------------------------------------------------
// Tampered objects and catalog rows, read through a real mount.
// ---------------------------------------------------------------------------

const CHUNK: usize = 4 << 20;

/// Reads `path` chunk by chunk: each read fails with EIO or returns exactly
/// the original bytes. Returns the chunks that failed.
fn chunks_failing(path: &Path, original: &[u8]) -> Vec<usize> {
    let mut failing = Vec::new();
    for (i, want) in original.chunks(CHUNK).enumerate() {
        let mut f = fs::File::open(path).unwrap();
        f.seek(SeekFrom::Start((i * CHUNK) as u64)).unwrap();
        let mut got = vec![0; want.len()];
        match f.read_exact(&mut got) {
            Ok(()) => assert!(got == want, "chunk {i} of {path:?} returned wrong bytes"),
            Err(e) => {
                assert_eq!(errname(&e), "EIO", "chunk {i}: {e}");
                failing.push(i);
            }
        }
    }
    failing
}

/// A mount on a file:// remote with `a` and `b` (two chunks each) released.
fn released_pair(bucket: &Path) -> (TestMount, Vec<u8>, Vec<u8>) {
    let m = TestMount::with_options(MountOptions {
        allow_other: true,
        extra_top: "migrate_interval = \"off\"\n".into(),
        extra_sections: format!("[remote.cloud]\nurl = \"file://{}\"\n", bucket.display()),
        ..Default::default()
    });
    let a = content(21, CHUNK + 1000);
    let b = content(22, CHUNK + 1000);
    write_old(&m.m("archive/a.bin"), &a, 30);
    write_old(&m.m("archive/b.bin"), &b, 30);
    add_rule(&m, "archive -> cloud");
    let s = migrate(&m);
    assert_eq!(s.released, 2, "{s:?}\n{}", m.log_banner());
    (m, a, b)
}

fn object_file(bucket: &Path, data: &[u8]) -> PathBuf {
    bucket
        .join("data")
        .join(blake3::hash(data).to_hex().as_str())
}

#[test]
fn an_object_swapped_in_the_bucket_reads_as_eio() {
    let bucket = tempfile::tempdir().unwrap();
    let (m, a, b) = released_pair(bucket.path());
    let (a_obj, b_obj) = (
        object_file(bucket.path(), &a),
        object_file(bucket.path(), &b),
    );
    assert!(a_obj.exists(), "{a_obj:?}");
    // The attacker copies another (same-sized) object over a's.
    fs::copy(&b_obj, &a_obj).unwrap();
    assert_eq!(chunks_failing(&m.m("archive/a.bin"), &a), vec![0, 1]);
    assert!(fs::read(m.m("archive/a.bin")).is_err());
    let log = m.daemon_log();
    let a_key = blake3::hash(&a).to_hex().to_string();
    assert!(
        log.lines().any(|l| l.contains(&a_key)),
        "no log line names the object {a_key}:\n{}",
        m.log_banner()
    );
    // The untouched file still reads.
    assert_eq!(fs::read(m.m("archive/b.bin")).unwrap(), b);
}

#[test]
fn a_catalog_key_pointing_at_another_object_reads_as_eio() {
    let bucket = tempfile::tempdir().unwrap();
    let (mut m, a, b) = released_pair(bucket.path());
    m.unmount();
    let (ha, hb) = (blake3::hash(&a), blake3::hash(&b));
    let c = Connection::open(m.catalog()).unwrap();
    let b_key: String = c
        .query_row(
            "SELECT key FROM objects WHERE blake3 = ?1",
            [&hb.as_bytes()[..]],
            |r| r.get(0),
        )
        .unwrap();
    // The two object rows swap keys: each file's row names the other's object.
    let a_key: String = c
        .query_row(
            "SELECT key FROM objects WHERE blake3 = ?1",
            [&ha.as_bytes()[..]],
            |r| r.get(0),
        )
        .unwrap();
    for (key, hash) in [("swap", &ha), (a_key.as_str(), &hb), (b_key.as_str(), &ha)] {
        let n = c
            .execute(
                "UPDATE objects SET key = ?1 WHERE blake3 = ?2",
                params![key, &hash.as_bytes()[..]],
            )
            .unwrap();
        assert_eq!(n, 1);
    }
    drop(c);
    m.mount();
    assert_eq!(chunks_failing(&m.m("archive/a.bin"), &a), vec![0, 1]);
    let log = m.daemon_log();
    assert!(
        log.lines().any(|l| l.contains(b_key.as_str())),
        "no log line names the object {b_key}:\n{}",
        m.log_banner()
    );
    assert_eq!(chunks_failing(&m.m("archive/b.bin"), &b), vec![0, 1]);
}

#[test]
fn an_altered_chunk_hash_row_reads_as_eio() {
    let bucket = tempfile::tempdir().unwrap();
    let (mut m, a, b) = released_pair(bucket.path());
    m.unmount();
    let hb = blake3::hash(&b);
    let c = Connection::open(m.catalog()).unwrap();
    let mut hashes: Vec<u8> = c
        .query_row(
            "SELECT hashes FROM chunks WHERE blake3 = ?1",
            [&hb.as_bytes()[..]],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(hashes.len(), 64);
    // The second chunk's hash now names the first chunk's bytes.
    let first = hashes[..32].to_vec();
    hashes[32..].copy_from_slice(&first);
    c.execute(
        "UPDATE chunks SET hashes = ?1 WHERE blake3 = ?2",
        params![hashes, &hb.as_bytes()[..]],
    )
    .unwrap();
    drop(c);
    m.mount();
    let failing = chunks_failing(&m.m("archive/b.bin"), &b);
    assert!(failing.contains(&1), "{failing:?}\n{}", m.log_banner());
    let log = m.daemon_log();
    let b_key = format!("data/{}", hb.to_hex());
    assert!(
        log.lines().any(|l| l.contains(&b_key)),
        "no log line names the object {b_key}:\n{}",
        m.log_banner()
    );
    assert_eq!(fs::read(m.m("archive/a.bin")).unwrap(), a);
}

// ---------------------------------------------------------------------------
// The control protocol carries paths as bytes.
// ---------------------------------------------------------------------------

/// `tierctl recall` and `pin` on a name that is not UTF-8 (and holds a
/// newline and an escape) reach the daemon exactly, and the JSON reports
/// echo the exact bytes.
#[test]
fn recall_and_pin_work_on_names_that_are_not_utf8() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let bucket = tempfile::tempdir().unwrap();
    let m = TestMount::with_options(MountOptions {
        allow_other: true,
        extra_top: "migrate_interval = \"off\"\n".into(),
        extra_sections: format!(
            "[remote.cloud]\nurl = \"file://{}\"\n",
            bucket.path().display()
        ),
        ..Default::default()
    });
    let raw: &[u8] = b"archive/r\xe9sum\xe9 \x1b[1m\n.bin";
    let rel = Path::new(OsStr::from_bytes(raw));
    let data = content(31, 70_000);
    write_old(&m.m(rel), &data, 30);
    add_rule(&m, "archive -> cloud");
    let s = migrate(&m);
    assert_eq!(s.released, 1, "{s:?}\n{}", m.log_banner());
    assert_eq!(fs::metadata(m.h(rel)).unwrap().blocks(), 0, "not released");

    let run = |args: &[&OsStr]| {
        Command::new(TIERCTL)
            .arg("-c")
            .arg(m.config())
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&[
        OsStr::new("recall"),
        OsStr::new("--json"),
        m.m(rel).as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["recalled"], 1, "{v}");
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(v["paths"][0], serde_json::json!({ "hex": hex }), "{v}");
    assert!(fs::metadata(m.h(rel)).unwrap().blocks() > 0, "not recalled");
    assert_eq!(fs::read(m.m(rel)).unwrap(), data);

    let out = run(&[OsStr::new("pin"), OsStr::new(OsStr::from_bytes(raw))]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("pinned 1 file"),
        "{}",
        text(&out)
    );
    let out = run(&[OsStr::new("unpin"), OsStr::from_bytes(raw)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}
