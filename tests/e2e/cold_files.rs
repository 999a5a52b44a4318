//! Cold files as users' tools see them, through a real mount with a
//! `file://` remote.
//!
//! * `tools`: cp, mv, tar, rsync, cpio, bsdtar, Python's sendfile copy,
//!   `copy_file_range`, mmap, O_DIRECT and sqlite3 on cold files (dense,
//!   sparse, empty, one byte, several chunks, a nested tree), each starting
//!   from cold, compared with the originals by checksum.
//! * `operations`: what each operation on a cold file downloads (from the
//!   cost ledger) and the state it leaves (the table in docs/cold-files.md).
//! * `layout`: a sparse file keeps its holes while cold and after a recall.
//! * `times`: `tar` over 1,000 cold files sees no change, and every
//!   recalled file keeps its modification and change times.
//! * `links`: a file with several names is one file to the catalog.

use crate::common;

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::tiering::{
    add_rule, ask, cold_mount, content, migrate, state, wait_for_background_recalls, write_old,
};
use common::{MountOptions, TestMount, wait_until};
use tierfs::control::{Reply, Request};

const CHUNK: usize = 4 << 20;

/// Every catalogued file's state, by path.
fn catalog_states(m: &TestMount) -> BTreeMap<String, String> {
    let conn = rusqlite::Connection::open_with_flags(
        m.catalog(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut stmt = conn
        .prepare("SELECT CAST(path AS TEXT), state FROM files ORDER BY path")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Bytes fetched from the remote by requests made since `since_ns`, from
/// the cost ledger (each entry carries the time its request was made, so
/// the migration's own read-back, logged in the background, is not counted).
fn downloaded_since(m: &TestMount, since_ns: i64) -> u64 {
    let conn = rusqlite::Connection::open_with_flags(
        m.catalog(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    conn.query_row(
        "SELECT COALESCE(SUM(bytes), 0) FROM ledger WHERE op = 'get' AND ts_ns >= ?1",
        [since_ns],
        |r| r.get::<_, i64>(0),
    )
    .unwrap() as u64
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// Migrates (once the recalls reads started are done) and checks that every
/// file under the mount is cold.
fn make_all_cold(m: &TestMount) {
    wait_for_background_recalls(m);
    let summary = migrate(m);
    let states = catalog_states(m);
    assert!(
        states.values().all(|s| s == "cold"),
        "files did not all become cold: {states:?}\n{summary:?}\n{}",
        m.log_banner()
    );
}

/// Waits until no recall is running: every file is cold or premigrated
/// (the full recall a complete read started has ended).
fn wait_recalls_done(m: &TestMount, path: &Path) {
    assert!(
        wait_until(Duration::from_secs(30), || state(path) != "cold").is_some(),
        "{} still cold 30 s after being read in full\n{}",
        path.display(),
        m.log_banner()
    );
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn sha(data: &[u8]) -> String {
    blake3::hash(data).to_hex().to_string()
}

fn sha_file(p: &Path) -> String {
    sha(&fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display())))
}

/// A sparse file: 4 KiB of data at 0 and at 6 MiB, 8 MiB long.
fn write_sparse(path: &Path) -> Vec<u8> {
    let f = fs::File::create(path).unwrap();
    let a = content(901, 4096);
    let b = content(902, 4096);
    f.write_all_at(&a, 0).unwrap();
    f.write_all_at(&b, 6 << 20).unwrap();
    f.set_len(8 << 20).unwrap();
    let mut want = vec![0u8; 8 << 20];
    want[..4096].copy_from_slice(&a);
    want[6 << 20..(6 << 20) + 4096].copy_from_slice(&b);
    want
}

/// The data ranges `SEEK_DATA`/`SEEK_HOLE` report for `path`.
fn data_ranges(path: &Path) -> Vec<(u64, u64)> {
    let f = fs::File::open(path).unwrap();
    let size = f.metadata().unwrap().len() as i64;
    let mut out = Vec::new();
    let mut pos = 0i64;
    while pos < size {
        let Ok(data) = common::lseek(&f, pos, libc::SEEK_DATA) else {
            break;
        };
        let hole = common::lseek(&f, data, libc::SEEK_HOLE).unwrap();
        out.push((data as u64, hole as u64));
        pos = hole;
    }
    out
}

/// The test set: name -> content. Made old so `older` rules would match.
fn originals() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("dense.bin", content(1, 3 << 20)),
        ("empty", Vec::new()),
        ("one", vec![b'x']),
        ("chunks.bin", content(2, 3 * CHUNK + 12_345)),
        ("tree/a.txt", content(3, 10_000)),
        ("tree/sub/b.bin", content(4, CHUNK + 1)),
        ("tree/sub/deeper/c", content(5, 77)),
        ("tree/sub/deeper/empty", Vec::new()),
    ]
}

/// A mount holding [`originals`], a sparse file and an SQLite database, all
/// cold. Returns the mount and every file's expected content.
fn cold_set() -> (TestMount, BTreeMap<String, Vec<u8>>) {
    let m = cold_mount();
    let mut want = BTreeMap::new();
    for (name, data) in originals() {
        write_old(&m.m(name), &data, 30);
        want.insert(name.to_string(), data);
    }
    want.insert("sparse.bin".into(), write_sparse(&m.m("sparse.bin")));
    let db = m.m("db.sqlite");
    run(Command::new("sqlite3").arg(&db).arg(
        "CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
         INSERT INTO t SELECT i, hex(randomblob(40)) FROM n;",
    ));
    want.insert("db.sqlite".into(), fs::read(&db).unwrap());
    make_all_cold(&m);
    (m, want)
}

/// Checks that `dir` holds exactly the files of `want` under `prefix`.
fn assert_copied(dir: &Path, want: &BTreeMap<String, Vec<u8>>, what: &str) {
    for (name, data) in want {
        let got = dir.join(name);
        assert_eq!(
            sha_file(&got),
            sha(data),
            "{what}: {name} differs from the original"
        );
    }
}

mod tools {
    use super::*;

    /// Every tool, each from cold, over one set of cold files.
    #[test]
    fn users_tools_copy_the_real_bytes_of_cold_files() {
        let (m, want) = cold_set();
        let out = tempfile::tempdir().unwrap();
        let out = out.path();
        let files: Vec<&String> = want.keys().collect();

        // cp of each file, then with --sparse=always.
        for sparse in ["auto", "always"] {
            let dest = out.join(format!("cp-{sparse}"));
            for name in &files {
                let target = dest.join(name);
                fs::create_dir_all(target.parent().unwrap()).unwrap();
                run(Command::new("cp")
                    .arg(format!("--sparse={sparse}"))
                    .arg(m.m(name))
                    .arg(&target));
            }
            assert_copied(&dest, &want, &format!("cp --sparse={sparse}"));
            make_all_cold(&m);
        }

        // cp -a of the tree (keeps modes and times).
        let tree = out.join("cp-a");
        run(Command::new("cp").arg("-a").arg(m.m("tree")).arg(&tree));
        let tree_want: BTreeMap<String, Vec<u8>> = want
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("tree/").map(|k| (k.to_string(), v.clone())))
            .collect();
        assert_copied(&tree, &tree_want, "cp -a");
        for name in tree_want.keys() {
            let (a, b) = (
                fs::metadata(m.m("tree").join(name)).unwrap(),
                fs::metadata(tree.join(name)).unwrap(),
            );
            assert_eq!(
                (a.mtime(), a.mtime_nsec()),
                (b.mtime(), b.mtime_nsec()),
                "{name}"
            );
        }
        make_all_cold(&m);

        // cp within the mount.
        for name in ["dense.bin", "chunks.bin", "sparse.bin", "one"] {
            run(Command::new("cp")
                .arg(m.m(name))
                .arg(m.m(format!("{name}.copy"))));
            assert_eq!(
                sha_file(&m.m(format!("{name}.copy"))),
                sha(&want[name]),
                "cp within: {name}"
            );
            fs::remove_file(m.m(format!("{name}.copy"))).unwrap();
        }
        make_all_cold(&m);

        // tar and tar --sparse: extract and compare; no "file changed".
        for (flag, label) in [(None, "tar"), (Some("--sparse"), "tar --sparse")] {
            let archive = out.join(format!("{}.tar", label.replace(' ', "")));
            let mut cmd = Command::new("tar");
            cmd.arg("-cf").arg(&archive);
            if let Some(f) = flag {
                cmd.arg(f);
            }
            let o = run(cmd.arg("-C").arg(m.mnt()).args(&files));
            let stderr = String::from_utf8_lossy(&o.stderr);
            assert!(!stderr.contains("changed"), "{label}: {stderr}");
            let x = out.join(format!("x-{}", label.replace(' ', "")));
            fs::create_dir_all(&x).unwrap();
            run(Command::new("tar")
                .arg("-xf")
                .arg(&archive)
                .arg("-C")
                .arg(&x));
            assert_copied(&x, &want, label);
            if flag.is_some() {
                assert!(
                    fs::metadata(x.join("sparse.bin")).unwrap().blocks() < 64,
                    "tar --sparse archived the sparse file's holes as data"
                );
            }
            make_all_cold(&m);
        }

        // rsync -a of everything.
        let r = out.join("rsync");
        run(Command::new("rsync")
            .arg("-a")
            .arg(format!("{}/", m.mnt().display()))
            .arg(&r));
        assert_copied(&r, &want, "rsync -a");
        make_all_cold(&m);

        // cpio and bsdtar.
        let c = out.join("cpio");
        fs::create_dir_all(&c).unwrap();
        let list: String = files.iter().map(|f| format!("{f}\n")).collect();
        let archive = out.join("a.cpio");
        let mut child = Command::new("cpio")
            .args(["-o", "-H", "newc", "-F"])
            .arg(&archive)
            .current_dir(m.mnt())
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(list.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "cpio -o");
        run(Command::new("cpio")
            .args(["-i", "-d", "-F"])
            .arg(&archive)
            .current_dir(&c));
        assert_copied(&c, &want, "cpio");
        make_all_cold(&m);
        let b = out.join("bsdtar");
        fs::create_dir_all(&b).unwrap();
        let archive = out.join("b.tar");
        run(Command::new("bsdtar")
            .arg("-cf")
            .arg(&archive)
            .arg("-C")
            .arg(m.mnt())
            .args(&files));
        run(Command::new("bsdtar")
            .arg("-xf")
            .arg(&archive)
            .arg("-C")
            .arg(&b));
        assert_copied(&b, &want, "bsdtar");
        make_all_cold(&m);

        // Python: shutil.copyfile (sendfile), os.copy_file_range within the
        // mount, mmap.
        let script = r#"
import mmap, os, shutil, sys
src, dst, inmount = sys.argv[1], sys.argv[2], sys.argv[3]
shutil.copyfile(src, dst)
with open(src, 'rb') as i, open(inmount, 'wb') as o:
    n = os.fstat(i.fileno()).st_size
    off = 0
    while off < n:
        k = os.copy_file_range(i.fileno(), o.fileno(), n - off, off, off)
        if k == 0:
            break
        off += k
with open(src, 'rb') as i:
    if os.fstat(i.fileno()).st_size:
        with mmap.mmap(i.fileno(), 0, prot=mmap.PROT_READ) as mm:
            sys.stdout.buffer.write(mm[:])
"#;
        for name in ["dense.bin", "chunks.bin", "sparse.bin", "one", "empty"] {
            let dst = out.join(format!("py-{}", name));
            let inmount = m.m(format!("{name}.cfr"));
            let o = run(Command::new("python3")
                .arg("-c")
                .arg(script)
                .arg(m.m(name))
                .arg(&dst)
                .arg(&inmount));
            assert_eq!(sha_file(&dst), sha(&want[name]), "shutil.copyfile {name}");
            assert_eq!(
                sha_file(&inmount),
                sha(&want[name]),
                "copy_file_range {name}"
            );
            assert_eq!(sha(&o.stdout), sha(&want[name]), "mmap {name}");
            fs::remove_file(&inmount).unwrap();
            make_all_cold(&m);
        }

        // dd with O_DIRECT.
        for name in ["dense.bin", "chunks.bin"] {
            let dst = out.join(format!("dd-{name}"));
            run(Command::new("dd")
                .arg(format!("if={}", m.m(name).display()))
                .arg(format!("of={}", dst.display()))
                .args(["iflag=direct", "bs=1M", "status=none"]));
            assert_eq!(sha_file(&dst), sha(&want[name]), "dd iflag=direct {name}");
        }
        make_all_cold(&m);

        // mv to another file system (copy, then unlink), and within the mount.
        let moved = out.join("moved.bin");
        run(Command::new("mv").arg(m.m("dense.bin")).arg(&moved));
        assert_eq!(
            sha_file(&moved),
            sha(&want["dense.bin"]),
            "mv to another fs"
        );
        assert!(!m.m("dense.bin").exists());
        run(Command::new("mv")
            .arg(m.m("chunks.bin"))
            .arg(m.m("tree/renamed.bin")));
        assert_eq!(
            state(&m.m("tree/renamed.bin")),
            "cold",
            "a rename downloads nothing"
        );
        assert_eq!(
            sha_file(&m.m("tree/renamed.bin")),
            sha(&want["chunks.bin"]),
            "mv within"
        );

        // sqlite3 opening a cold database.
        make_all_cold(&m);
        let o = run(Command::new("sqlite3")
            .arg(m.m("db.sqlite"))
            .arg("SELECT count(*), sum(length(v)) FROM t; PRAGMA integrity_check;"));
        assert_eq!(String::from_utf8_lossy(&o.stdout), "20000|1600000\nok\n");
    }
}

mod operations {
    use super::*;

    /// One cold file of `len` bytes at `name`; returns its content.
    fn one_cold(m: &TestMount, name: &str, len: usize, seed: u64) -> Vec<u8> {
        let data = content(seed, len);
        write_old(&m.m(name), &data, 30);
        make_all_cold(m);
        data
    }

    /// Runs `op` and returns the bytes it downloaded. Ledger entries are
    /// written in the background: a clean unmount flushes them all.
    fn downloads(m: &mut TestMount, op: impl FnOnce(&TestMount)) -> u64 {
        let start = now_ns();
        op(m);
        m.unmount();
        let n = downloaded_since(m, start);
        m.mount();
        n
    }

    #[test]
    fn metadata_operations_download_nothing_and_leave_the_file_cold() {
        let mut m = cold_mount();
        let data = one_cold(&m, "f.bin", 3 * CHUNK, 11);
        let p = m.m("f.bin");
        let n = downloads(&mut m, |m| {
            // open without a read
            drop(fs::File::open(&p).unwrap());
            // stat
            fs::metadata(&p).unwrap();
            // touch (opens for writing, sets the times)
            run(Command::new("touch").arg(&p));
            // chmod, chown
            fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
            std::os::unix::fs::chown(&p, Some(1234), Some(5678)).unwrap();
            // rename and link
            fs::rename(&p, m.m("g.bin")).unwrap();
            fs::hard_link(m.m("g.bin"), m.m("h.bin")).unwrap();
            // xattrs
            common::setxattr(&m.m("g.bin"), "user.note", b"x", 0, false).unwrap();
            common::getxattr(&m.m("g.bin"), "user.note").unwrap();
            // an open for writing that writes nothing
            drop(
                fs::OpenOptions::new()
                    .write(true)
                    .open(m.m("g.bin"))
                    .unwrap(),
            );
        });
        assert_eq!(
            n,
            0,
            "bytes downloaded by metadata operations\n{}",
            m.log_banner()
        );
        for name in ["g.bin", "h.bin"] {
            assert_eq!(state(&m.m(name)), "cold", "{name}");
            let md = fs::metadata(m.m(name)).unwrap();
            assert_eq!(md.mode() & 0o7777, 0o640);
            assert_eq!((md.uid(), md.gid()), (1234, 5678));
            // No data block; the user's own xattr needs one xattr block
            // beside the stub marker.
            assert!(md.blocks() <= 8, "{name} uses {} blocks", md.blocks());
            let age = std::time::SystemTime::now()
                .duration_since(md.modified().unwrap())
                .unwrap();
            assert!(
                age < Duration::from_secs(60),
                "touch set the mtime: {age:?}"
            );
        }
        assert_eq!(
            fs::read(m.m("h.bin")).unwrap(),
            data,
            "content under the new name"
        );
    }

    #[test]
    fn truncating_to_zero_and_o_trunc_download_nothing() {
        let mut m = cold_mount();
        one_cold(&m, "t.bin", 2 * CHUNK, 12);
        one_cold(&m, "o.bin", 2 * CHUNK, 13);
        let n = downloads(&mut m, |m| {
            run(Command::new("truncate").args(["-s", "0"]).arg(m.m("t.bin")));
            // The shell's `>`: open(O_WRONLY | O_CREAT | O_TRUNC), then a write.
            fs::write(m.m("o.bin"), b"new content").unwrap();
        });
        assert_eq!(n, 0, "truncate 0 / O_TRUNC downloaded the old content");
        assert_eq!(fs::metadata(m.m("t.bin")).unwrap().len(), 0);
        assert_eq!(fs::read(m.m("o.bin")).unwrap(), b"new content");
        assert_eq!(state(&m.m("t.bin")), "hot");
        assert_eq!(state(&m.m("o.bin")), "hot");
    }

    #[test]
    fn a_partial_read_downloads_what_it_reads_plus_readahead() {
        let mut m = cold_mount();
        let data = one_cold(&m, "big.bin", 64 << 20, 14);
        let n = downloads(&mut m, |m| {
            let mut f = fs::File::open(m.m("big.bin")).unwrap();
            let mut buf = vec![0u8; 4096];
            f.read_exact(&mut buf).unwrap();
            assert_eq!(buf, data[..4096]);
            drop(f);
            assert!(
                wait_until(Duration::from_secs(10), || fs::metadata(m.h("big.bin"))
                    .unwrap()
                    .blocks()
                    == 0)
                .is_some(),
                "the chunks a partial read kept were not given back"
            );
        });
        assert!(
            n <= 2 * CHUNK as u64,
            "reading 4 KiB of 64 MiB downloaded {n} bytes (the chunk read and one of read-ahead is {})",
            2 * CHUNK
        );
        assert!(n >= 4096, "downloaded {n}");
        assert_eq!(state(&m.m("big.bin")), "cold");
    }

    #[test]
    fn a_full_read_downloads_the_file_once_and_keeps_it() {
        let mut m = cold_mount();
        let data = one_cold(&m, "r.bin", 5 * CHUNK + 99, 15);
        let n = downloads(&mut m, |m| {
            assert!(fs::read(m.m("r.bin")).unwrap() == data);
            wait_recalls_done(m, &m.m("r.bin"));
        });
        let conn = rusqlite::Connection::open(m.catalog()).unwrap();
        let rows: Vec<(i64, String, i64, i64)> = conn
            .prepare("SELECT ts_ns, op, requests, bytes FROM ledger ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            n,
            data.len() as u64,
            "a full read {rows:?}\n{}",
            m.log_banner()
        );
        assert_eq!(state(&m.m("r.bin")), "premigrated");
        assert!(fs::read(m.h("r.bin")).unwrap() == data, "local copy");
    }

    #[test]
    fn a_second_read_brings_the_file_back() {
        let m = cold_mount();
        let data = one_cold(&m, "twice.bin", 3 * CHUNK, 16);
        let mut buf = vec![0u8; 100];
        fs::File::open(m.m("twice.bin"))
            .unwrap()
            .read_exact(&mut buf)
            .unwrap();
        assert_eq!(
            state(&m.m("twice.bin")),
            "cold",
            "one partial read keeps it cold"
        );
        let mut f = fs::File::open(m.m("twice.bin")).unwrap();
        f.seek(SeekFrom::Start(CHUNK as u64)).unwrap();
        f.read_exact(&mut buf).unwrap();
        assert_eq!(buf, data[CHUNK..CHUNK + 100]);
        drop(f);
        wait_recalls_done(&m, &m.m("twice.bin"));
        assert!(fs::read(m.h("twice.bin")).unwrap() == data);
    }

    #[test]
    fn append_and_overwrite_in_the_middle_recall_first() {
        let mut m = cold_mount();
        let a = one_cold(&m, "a.bin", 2 * CHUNK + 5, 17);
        let w = one_cold(&m, "w.bin", 2 * CHUNK + 5, 18);
        let n = downloads(&mut m, |m| {
            fs::OpenOptions::new()
                .append(true)
                .open(m.m("a.bin"))
                .unwrap()
                .write_all(b"tail")
                .unwrap();
        });
        assert_eq!(n, a.len() as u64, "append downloads the file");
        let mut want = a.clone();
        want.extend_from_slice(b"tail");
        assert!(fs::read(m.m("a.bin")).unwrap() == want);
        assert_eq!(state(&m.m("a.bin")), "hot");

        let n = downloads(&mut m, |m| {
            run(Command::new("dd")
                .arg(format!("of={}", m.m("w.bin").display()))
                .args(["bs=1", "seek=1000", "conv=notrunc", "status=none"])
                .arg("if=/dev/zero")
                .arg("count=10"));
        });
        assert_eq!(
            n,
            w.len() as u64,
            "overwrite in the middle downloads the file"
        );
        let mut want = w.clone();
        want[1000..1010].fill(0);
        assert!(fs::read(m.m("w.bin")).unwrap() == want);
        assert_eq!(state(&m.m("w.bin")), "hot");
    }

    #[test]
    fn reads_of_cold_files_count_as_accesses() {
        let m = cold_mount();
        one_cold(&m, "seen.bin", 1000, 19);
        let before = std::time::SystemTime::now();
        let mut buf = [0u8; 10];
        fs::File::open(m.m("seen.bin"))
            .unwrap()
            .read_exact(&mut buf)
            .unwrap();
        // Access times are flushed at unmount.
        let mut m = m;
        m.unmount();
        let conn = rusqlite::Connection::open(m.catalog()).unwrap();
        let at: Option<i64> = conn
            .query_row(
                "SELECT last_access_ns FROM files WHERE path = CAST('seen.bin' AS BLOB)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let since = before
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64;
        assert!(
            at.is_some_and(|t| t >= since - 1_000_000_000),
            "last access {at:?}"
        );
    }
}

mod layout {
    use super::*;

    #[test]
    fn a_sparse_file_keeps_its_holes_while_cold_and_after_a_recall() {
        let m = cold_mount();
        let want = write_sparse(&m.m("s.bin"));
        let before = data_ranges(&m.m("s.bin"));
        assert_eq!(before, vec![(0, 4096), (6 << 20, (6 << 20) + 4096)]);
        make_all_cold(&m);
        // One block shown (tar takes zero blocks for "all hole"); none used.
        assert_eq!(fs::metadata(m.m("s.bin")).unwrap().blocks(), 1);
        assert_eq!(fs::metadata(m.h("s.bin")).unwrap().blocks(), 0);
        assert_eq!(
            data_ranges(&m.m("s.bin")),
            before,
            "holes reported while cold"
        );
        let out = ask(
            &m,
            Request::Recall {
                paths: vec!["s.bin".into()],
            },
        );
        assert!(matches!(out, Reply::Recall(_)), "{out:?}");
        assert_eq!(state(&m.m("s.bin")), "premigrated");
        assert!(fs::read(m.m("s.bin")).unwrap() == want);
        assert_eq!(data_ranges(&m.m("s.bin")), before, "holes after the recall");
        assert!(
            fs::metadata(m.h("s.bin")).unwrap().blocks() <= 16,
            "the recalled file is sparse: {} blocks",
            fs::metadata(m.h("s.bin")).unwrap().blocks()
        );
    }

    #[test]
    fn a_dense_cold_file_is_all_data() {
        let m = cold_mount();
        let data = content(7, CHUNK + 10);
        write_old(&m.m("d.bin"), &data, 30);
        make_all_cold(&m);
        assert_eq!(data_ranges(&m.m("d.bin")), vec![(0, data.len() as u64)]);
    }
}

mod times {
    use super::*;

    /// `tar cf -` over 1,000 cold files: exit 0, no "file changed as we
    /// read it", and every file keeps its mtime and ctime once recalled.
    #[test]
    fn tar_sees_no_change_and_recalls_keep_every_files_times() {
        let m = cold_mount();
        for i in 0..1000u64 {
            let data = content(1000 + i, 1000 + (i as usize * 37) % 9000);
            write_old(&m.m(format!("d{}/f{i}", i % 10)), &data, 40);
        }
        let stamp = |p: &Path| {
            let md = fs::metadata(p).unwrap();
            (
                md.mtime(),
                md.mtime_nsec(),
                md.ctime(),
                md.ctime_nsec(),
                md.len(),
            )
        };
        let list = || -> Vec<PathBuf> {
            (0..1000u64)
                .map(|i| m.m(format!("d{}/f{i}", i % 10)))
                .collect()
        };
        let before: Vec<_> = list().iter().map(|p| stamp(p)).collect();
        make_all_cold(&m);
        let cold: Vec<_> = list().iter().map(|p| stamp(p)).collect();
        assert_eq!(cold, before, "releasing changed what stat shows");

        let out = Command::new("tar")
            .args(["cf", "-", "-C"])
            .arg(m.mnt())
            .args((0..10).map(|d| format!("d{d}")))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "tar exit {}: {stderr}", out.status);
        assert!(!stderr.contains("changed"), "{stderr}");
        for p in list() {
            wait_recalls_done(&m, &p);
        }
        let after: Vec<_> = list().iter().map(|p| stamp(p)).collect();
        for (i, (a, b)) in before.iter().zip(&after).enumerate() {
            assert_eq!(a, b, "file {i}: times changed by its recall");
        }
    }
}

mod links {
    use super::*;

    #[test]
    fn a_file_with_several_names_is_one_file() {
        let m = cold_mount();
        let data = content(77, CHUNK + 3);
        write_old(&m.m("x/one"), &data, 30);
        fs::hard_link(m.m("x/one"), m.m("x/two")).unwrap();
        make_all_cold(&m);
        let s = migrate(&m);
        assert_eq!(s.failures.len(), 0, "{:?}", s.failures);
        // A third name for the cold file: the same file, cold.
        fs::hard_link(m.m("x/one"), m.m("x/three")).unwrap();
        assert!(
            wait_until(Duration::from_secs(5), || catalog_states(&m).get("x/three")
                == Some(&"cold".to_string()))
            .is_some(),
            "{:?}",
            catalog_states(&m)
        );
        for n in ["one", "two", "three"] {
            assert_eq!(state(&m.m(format!("x/{n}"))), "cold");
            assert_eq!(
                fs::metadata(m.m(format!("x/{n}"))).unwrap().len(),
                data.len() as u64
            );
        }
        let out = m.tierctl(&["fsck"]);
        assert!(
            out.status.success(),
            "fsck: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // Recalled under one name: every name is local.
        ask(
            &m,
            Request::Recall {
                paths: vec!["x/two".into()],
            },
        );
        let states = catalog_states(&m);
        for n in ["x/one", "x/two", "x/three"] {
            assert_eq!(states[n], "premigrated", "{states:?}");
        }
        assert!(fs::read(m.m("x/three")).unwrap() == data);
    }
}

mod archives {
    use super::*;

    /// GNU tar takes a file with no blocks for entirely sparse and archives
    /// zeros without asking `SEEK_DATA`: a stub must never show zero blocks.
    /// Alternates plain and `--sparse` archives of a file that is recalled
    /// by each read and released again before the next.
    #[test]
    fn tar_archives_a_cold_file_read_and_released_again_with_its_data() {
        let m = cold_mount();
        let data = content(2, 3 * CHUNK + 12_345);
        write_old(&m.m("chunks.bin"), &data, 30);
        let out = tempfile::tempdir().unwrap();
        for round in 0..6 {
            make_all_cold(&m);
            let sparse = round % 2 == 1;
            let archive = out.path().join(format!("{round}.tar"));
            let mut cmd = Command::new("tar");
            cmd.arg("-cf").arg(&archive);
            if sparse {
                cmd.arg("--sparse");
            }
            run(cmd.arg("-C").arg(m.mnt()).arg("chunks.bin"));
            let x = out.path().join(format!("x{round}"));
            fs::create_dir_all(&x).unwrap();
            run(Command::new("tar")
                .arg("-xf")
                .arg(&archive)
                .arg("-C")
                .arg(&x));
            let got = fs::read(x.join("chunks.bin")).unwrap();
            assert!(
                got == data,
                "round {round} (sparse: {sparse}): the archive holds other bytes ({} zero bytes)",
                got.iter().filter(|&&b| b == 0).count()
            );
        }
    }
}

/// Races found by the stress test between a recall in progress and a
/// user's change to the same file.
mod races {
    use super::*;
    use std::os::fd::AsRawFd;

    /// Starts the full recall of the cold file at `path` by reading it in
    /// full, and returns as soon as the read is done (the recall runs on).
    fn read_in_full(path: &Path, want: &[u8]) {
        assert!(fs::read(path).unwrap() == want, "{}", path.display());
    }

    /// An `O_TRUNC` rewrite while a recall runs: the recall must not write
    /// the old content over the new one (it did: data loss).
    #[test]
    fn a_rewrite_during_a_recall_keeps_the_new_content() {
        let m = cold_mount();
        let p = m.m("t.bin");
        for round in 0..8u64 {
            let old = content(300 + round, 8 << 20);
            write_old(&p, &old, 30);
            make_all_cold(&m);
            if round % 2 == 0 {
                read_in_full(&p, &old);
            } else {
                // A partial copy_file_range from it (the kernel reads).
                let input = fs::File::open(&p).unwrap();
                let output = fs::File::create(m.m("dst")).unwrap();
                let (mut a, mut b): (libc::loff_t, libc::loff_t) = (231_821, 0);
                // SAFETY: two open descriptors and our own offsets.
                let n = unsafe {
                    libc::copy_file_range(
                        input.as_raw_fd(),
                        &mut a,
                        output.as_raw_fd(),
                        &mut b,
                        299_044,
                        0,
                    )
                };
                assert!(n > 0, "{}", std::io::Error::last_os_error());
            }
            let new = content(400 + round, 1 << 20);
            fs::write(&p, &new).unwrap();
            assert!(fs::read(&p).unwrap() == new, "round {round}: right after");
            // Whatever recall was running has ended by the time the file is
            // in a settled state; the new content must still be there.
            assert!(
                wait_until(Duration::from_secs(10), || state(&p) == "hot").is_some(),
                "round {round}: state {}",
                state(&p)
            );
            assert!(fs::read(&p).unwrap() == new, "round {round}: later");
            assert!(
                fs::read(m.h("t.bin")).unwrap() == new,
                "round {round}: hot copy"
            );
        }
    }

    /// A touch while a recall runs: the recall must not put the old times
    /// back.
    #[test]
    fn a_touch_during_a_recall_is_kept() {
        let m = cold_mount();
        let p = m.m("t.bin");
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        for round in 0..8i64 {
            let data = content(500 + round as u64, 8 << 20);
            write_old(&p, &data, 30);
            make_all_cold(&m);
            read_in_full(&p, &data);
            let t = libc::timespec {
                tv_sec: 1_000_000_000 + round * 1000,
                tv_nsec: 7,
            };
            // SAFETY: a C path and two timespecs.
            assert_eq!(
                unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), [t, t].as_ptr(), 0) },
                0
            );
            // The recall ends premigrated, or hot if the touch came after it
            // (a new mtime on a local file counts as new content).
            assert!(
                wait_until(Duration::from_secs(10), || state(&p) != "cold").is_some(),
                "round {round}: the recall did not finish"
            );
            let md = fs::metadata(&p).unwrap();
            assert_eq!(
                (md.mtime(), md.mtime_nsec()),
                (t.tv_sec, t.tv_nsec),
                "round {round}: the touch was undone"
            );
        }
    }

    /// A cold file whose first name was unlinked opens under its other name.
    #[test]
    fn a_cold_file_opens_under_its_remaining_name() {
        let m = cold_mount();
        for variant in 0..4 {
            let (a, b) = (m.m(format!("a{variant}")), m.m(format!("b{variant}")));
            let data = content(600 + variant as u64, 3 << 20);
            write_old(&a, &data, 30);
            fs::hard_link(&a, &b).unwrap();
            if variant % 2 == 0 {
                fs::remove_file(&a).unwrap();
                make_all_cold(&m);
            } else {
                make_all_cold(&m);
                fs::remove_file(&a).unwrap();
            }
            assert_eq!(state(&b), "cold", "variant {variant}");
            assert!(fs::read(&b).unwrap() == data, "variant {variant}");
        }
    }

    /// A stub swapped in beside the mount for another catalogued file (the
    /// watcher off, so the catalog keeps the old inode) is neither recalled
    /// nor "repaired": recall and fsck compare the opened inode with the row's.
    #[test]
    fn recall_and_fsck_refuse_a_swapped_stub() {
        let mut m = TestMount::unmounted(MountOptions::default());
        let cloud = m.root().join("cloud");
        fs::create_dir(&cloud).unwrap();
        m.set_options(MountOptions {
            allow_other: true,
            watch_hot_dir: Some(false),
            extra_top: "migrate_interval = \"off\"\n".into(),
            extra_sections: format!("[remote.cloud]\nurl = \"file://{}\"\n", cloud.display()),
            ..Default::default()
        });
        m.mount();
        add_rule(&m, "* -> cloud");
        write_old(&m.m("mine"), &content(1, 10_000), 30);
        write_old(&m.m("theirs"), &content(2, 20_000), 30);
        make_all_cold(&m);
        let theirs_ino = fs::metadata(m.h("theirs")).unwrap().ino();

        // Beside the mount: `theirs`' stub replaces `mine`.
        fs::rename(m.h("theirs"), m.h("mine")).unwrap();
        assert_eq!(fs::metadata(m.h("mine")).unwrap().ino(), theirs_ino);

        let out = m.tierctl(&["recall", "mine"]);
        assert_ne!(
            out.status.code(),
            Some(0),
            "{}",
            common::tiering::text(&out)
        );
        let said = common::tiering::text(&out);
        assert!(said.contains("is not the catalogued file"), "{said}");
        // Still a stub: nothing was downloaded into it.
        assert_eq!(fs::metadata(m.h("mine")).unwrap().blocks(), 0, "{said}");

        for args in [&["fsck"][..], &["fsck", "--repair"][..]] {
            let out = m.tierctl(args);
            let said = common::tiering::text(&out);
            assert_eq!(out.status.code(), Some(1), "{said}");
            assert!(
                said.contains(&format!(
                    "mine: inode {theirs_ino} is not the catalogued file"
                )),
                "{said}"
            );
        }
        assert_eq!(
            catalog_states(&m).get("mine").map(String::as_str),
            Some("cold")
        );
        m.unmount();
    }
}
