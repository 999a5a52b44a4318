//! Behaviour tests of the catalog as a whole: events, access times,
//! reconcile, watching, reading, and the error cases an admin can hit.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::*;

fn p(s: &str) -> PathBuf {
    PathBuf::from(s)
}

fn raw(b: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(b))
}

fn upsert(path: &str, size: u64) -> FileEvent {
    FileEvent::Upsert {
        path: p(path),
        size,
        mtime_ns: 1_000,
        ino: 7,
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    db: PathBuf,
    catalog: Catalog,
}

impl Fixture {
    fn new() -> Self {
        Self::with_options(CatalogOptions {
            access_flush_interval: Duration::from_secs(3600),
            ..Default::default()
        })
    }

    fn with_options(opts: CatalogOptions) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("catalog.db");
        let catalog = Catalog::open(&db, opts).unwrap();
        Fixture { dir, db, catalog }
    }

    fn hot(&self) -> PathBuf {
        let hot = self.dir.path().join("hot");
        fs::create_dir_all(&hot).unwrap();
        hot
    }

    fn send(&self, events: impl IntoIterator<Item = FileEvent>) {
        for e in events {
            self.catalog.send(e);
        }
        self.catalog.flush().unwrap();
    }

    /// Every (path, id) in path order, read through a separate connection.
    fn rows(&self) -> Vec<(Vec<u8>, i64)> {
        let conn = Connection::open(&self.db).unwrap();
        let mut stmt = conn
            .prepare("SELECT path, id FROM files ORDER BY path")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn paths(&self) -> Vec<String> {
        self.rows()
            .into_iter()
            .map(|(k, _)| String::from_utf8_lossy(&k).into_owned())
            .collect()
    }

    fn id(&self, path: &str) -> Option<i64> {
        self.rows()
            .into_iter()
            .find(|(k, _)| k == path.as_bytes())
            .map(|(_, id)| id)
    }

    fn size(&self, path: &str) -> Option<u64> {
        self.reader().file(Path::new(path)).unwrap().map(|r| r.size)
    }

    fn reader(&self) -> CatalogReader {
        CatalogReader::open(&self.db).unwrap()
    }

    fn sql(&self, sql: &str) {
        Connection::open(&self.db)
            .unwrap()
            .execute_batch(sql)
            .unwrap();
    }
}

/// Polls `check` until it holds or `timeout` passes.
fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn new_content_unlinks_a_premigrated_file_only() {
    let f = Fixture::new();
    f.send([upsert("p", 10), upsert("c", 10)]);
    let hash = format!("x'{}'", "ab".repeat(32));
    f.sql(&format!(
        "UPDATE files SET state = 'premigrated', blake3 = {hash} WHERE path = CAST('p' AS BLOB)"
    ));
    f.sql(&format!(
        "UPDATE files SET state = 'cold', blake3 = {hash} WHERE path = CAST('c' AS BLOB)"
    ));
    f.send([
        FileEvent::Upsert {
            path: p("p"),
            size: 11,
            mtime_ns: 5,
            ino: 7,
        },
        FileEvent::Upsert {
            path: p("c"),
            size: 10,
            mtime_ns: 6,
            ino: 7,
        },
    ]);
    let conn = Connection::open(&f.db).unwrap();
    let state = |name: &str| -> (String, bool) {
        conn.query_row(
            "SELECT state, blake3 IS NOT NULL FROM files WHERE path = CAST(?1 AS BLOB)",
            [name],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    };
    assert_eq!(state("p"), ("hot".to_string(), false));
    assert_eq!(state("c"), ("cold".to_string(), true));
}

/// Another inode at a catalogued path is another file (the old one was
/// replaced beside the mount): it starts hot, whatever the old row said.
#[test]
fn another_inode_at_a_path_starts_hot() {
    let f = Fixture::new();
    f.send([upsert("r", 10)]);
    let hash = format!("x'{}'", "ab".repeat(32));
    f.sql(&format!("UPDATE files SET state = 'cold', blake3 = {hash}"));
    f.send([FileEvent::Upsert {
        path: p("r"),
        size: 10,
        mtime_ns: 1_000,
        ino: 99,
    }]);
    let conn = Connection::open(&f.db).unwrap();
    let (state, hashed): (String, bool) = conn
        .query_row("SELECT state, blake3 IS NOT NULL FROM files", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((state.as_str(), hashed), ("hot", false));
}

#[test]
fn upsert_inserts_then_updates_keeping_other_columns() {
    let f = Fixture::new();
    f.send([upsert("a/x", 10)]);
    f.sql("UPDATE files SET state = 'cold', last_access_ns = 99, pinned = 5");
    f.send([FileEvent::Upsert {
        path: p("a/x"),
        size: 20,
        mtime_ns: 2_000,
        ino: 7,
    }]);
    let row = f.reader().file(Path::new("a/x")).unwrap().unwrap();
    assert_eq!(
        row,
        FileRow {
            path: p("a/x"),
            size: 20,
            mtime_ns: 2_000,
            last_access_ns: Some(99),
            state: crate::catalog::FileState::Cold,
            ino: 7
        }
    );
    let conn = Connection::open(&f.db).unwrap();
    let (generation, pinned): (i64, i64) = conn
        .query_row("SELECT generation, pinned FROM files", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((generation, pinned), (1, 5));
    // Same size, mtime and inode: the content generation stays.
    f.send([FileEvent::Upsert {
        path: p("a/x"),
        size: 20,
        mtime_ns: 2_000,
        ino: 7,
    }]);
    let generation: i64 = conn
        .query_row("SELECT generation FROM files", [], |r| r.get(0))
        .unwrap();
    assert_eq!(generation, 1);
    assert_eq!(f.paths(), ["a/x"]);
    // Inode numbers above i64::MAX survive the round trip.
    f.send([FileEvent::Upsert {
        path: p("big"),
        size: 1,
        mtime_ns: -5,
        ino: u64::MAX,
    }]);
    let row = f.reader().file(Path::new("big")).unwrap().unwrap();
    assert_eq!((row.ino, row.mtime_ns), (u64::MAX, -5));
}

#[test]
fn remove_drops_file_or_whole_directory_but_not_prefix_siblings() {
    let f = Fixture::new();
    let all = ["a", "a-b", "a/b", "a/c/d", "a0", "ab", "b/a"];
    f.send(all.iter().map(|s| upsert(s, 1)));
    f.send([FileEvent::Removed { path: p("a") }]);
    assert_eq!(f.paths(), ["a-b", "a0", "ab", "b/a"]);
    f.send([
        FileEvent::Removed { path: p("a-b") },
        FileEvent::Removed {
            path: p("nothing/here"),
        },
    ]);
    assert_eq!(f.paths(), ["a0", "ab", "b/a"]);
    // The root is never removed wholesale.
    f.send([
        FileEvent::Removed { path: p("") },
        FileEvent::Removed { path: p("/") },
    ]);
    assert_eq!(f.paths().len(), 3);
}

#[test]
fn rename_file_keeps_id_and_replaces_target() {
    let f = Fixture::new();
    f.send([upsert("x", 1), upsert("y", 2)]);
    let id = f.id("x").unwrap();
    f.send([FileEvent::Renamed {
        from: p("x"),
        to: p("y"),
    }]);
    assert_eq!(f.rows(), vec![(b"y".to_vec(), id)]);
    assert_eq!(f.reader().file(Path::new("y")).unwrap().unwrap().size, 1);
    // Renaming something unknown changes nothing.
    f.send([FileEvent::Renamed {
        from: p("ghost"),
        to: p("y2"),
    }]);
    assert_eq!(f.paths(), ["y"]);
}

/// A fixture whose catalog looks at hints in its hot directory.
fn with_hot_dir() -> (Fixture, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let hot = dir.path().join("hot");
    fs::create_dir_all(&hot).unwrap();
    let db = dir.path().join("catalog.db");
    let catalog = Catalog::open(
        &db,
        CatalogOptions {
            access_flush_interval: Duration::from_secs(3600),
            hot_dir: Some(hot.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    (Fixture { dir, db, catalog }, hot)
}

fn look(path: &str) -> FileEvent {
    FileEvent::Look { path: p(path) }
}

/// A hint records what is at the path when the writer applies it, not
/// when it was sent; a missing path is dropped only by a `Gone` hint.
#[test]
fn hints_record_what_is_there_when_applied() {
    let (f, hot) = with_hot_dir();
    fs::write(hot.join("x"), b"1").unwrap();
    f.catalog.send(look("x"));
    fs::write(hot.join("x"), b"12345").unwrap();
    f.send([]);
    assert_eq!(f.size("x"), Some(5), "the look saw the file as it is now");
    fs::remove_file(hot.join("x")).unwrap();
    f.send([look("x")]);
    assert_eq!(f.paths(), ["x"], "a look at a missing path removes nothing");
    f.send([FileEvent::Gone { path: p("x") }]);
    assert!(f.paths().is_empty());
    // A directory that replaced a file, and a file that replaced a directory.
    fs::create_dir(hot.join("d")).unwrap();
    fs::write(hot.join("d/a"), b"a").unwrap();
    fs::write(hot.join("e"), b"e").unwrap();
    f.send([look("d/a"), look("e")]);
    fs::remove_dir_all(hot.join("d")).unwrap();
    fs::write(hot.join("d"), b"now a file").unwrap();
    fs::remove_file(hot.join("e")).unwrap();
    fs::create_dir(hot.join("e")).unwrap();
    f.send([look("d"), look("e")]);
    assert_eq!(f.paths(), ["d"]);
}

/// The watcher also sees renames made through the mount and reports them
/// late, maybe after a new file took the old name: such an echo moves
/// nothing, while a rename made beside the mount moves the row.
#[test]
fn a_late_echo_of_a_rename_moves_nothing() {
    let (f, hot) = with_hot_dir();
    let moved = |from: &str, to: &str| FileEvent::Moved {
        from: p(from),
        to: p(to),
    };
    fs::write(hot.join("x"), b"1").unwrap();
    f.send([look("x")]);
    let renamed = f.id("x").unwrap();
    // Through the mount: x → y, then a new file x.
    fs::rename(hot.join("x"), hot.join("y")).unwrap();
    fs::write(hot.join("x"), b"22").unwrap();
    f.send([
        FileEvent::Renamed {
            from: p("x"),
            to: p("y"),
        },
        look("x"),
    ]);
    let new = f.id("x").unwrap();
    assert_ne!(new, renamed);
    f.send([moved("x", "y")]);
    assert_eq!(f.id("y"), Some(renamed));
    assert_eq!(f.id("x"), Some(new));
    // Beside the mount: x → z.
    fs::rename(hot.join("x"), hot.join("z")).unwrap();
    f.send([moved("x", "z")]);
    assert_eq!(f.id("z"), Some(new));
    assert_eq!(f.paths(), ["y", "z"]);
    // Directories: an echo finds the rows already moved.
    fs::create_dir(hot.join("d")).unwrap();
    fs::write(hot.join("d/a"), b"a").unwrap();
    f.send([look("d/a")]);
    fs::rename(hot.join("d"), hot.join("e")).unwrap();
    fs::create_dir(hot.join("d")).unwrap();
    fs::write(hot.join("d/b"), b"b").unwrap();
    f.send([
        FileEvent::Renamed {
            from: p("d"),
            to: p("e"),
        },
        look("d/b"),
    ]);
    let b = f.id("d/b").unwrap();
    f.send([moved("d", "e")]);
    assert_eq!(f.paths(), ["d/b", "e/a", "y", "z"]);
    fs::rename(hot.join("d"), hot.join("f")).unwrap();
    f.send([moved("d", "f")]);
    assert_eq!(f.paths(), ["e/a", "f/b", "y", "z"]);
    assert_eq!(f.id("f/b"), Some(b));
}

/// Reports that arrive out of order (a close reported after the rename that
/// followed it, renames of one file reported in reverse) still leave one
/// row, with its id, at the file's current name.
#[test]
fn reordered_reports_keep_the_row_at_the_current_name() {
    let (f, hot) = with_hot_dir();
    fs::write(hot.join("x"), b"data").unwrap();
    f.send([look("x")]);
    let id = f.id("x").unwrap();
    fs::rename(hot.join("x"), hot.join("y")).unwrap();
    fs::rename(hot.join("y"), hot.join("z")).unwrap();
    f.send([
        look("x"),
        FileEvent::Renamed {
            from: p("y"),
            to: p("z"),
        },
        FileEvent::Renamed {
            from: p("x"),
            to: p("y"),
        },
    ]);
    assert_eq!(f.paths(), ["z"]);
    assert_eq!(f.id("z"), Some(id));
    // A hard link's other name still holds the inode: no adoption.
    fs::hard_link(hot.join("z"), hot.join("w")).unwrap();
    f.send([look("w")]);
    assert_eq!(f.paths(), ["w", "z"]);
    assert_eq!(f.id("z"), Some(id));
    // A rename between two links of one file changes nothing (POSIX): both
    // names keep a row.
    fs::rename(hot.join("z"), hot.join("w")).unwrap();
    assert!(hot.join("z").exists());
    f.send([FileEvent::Renamed {
        from: p("z"),
        to: p("w"),
    }]);
    assert_eq!(f.paths(), ["w", "z"]);
}

#[test]
fn rename_directory_moves_subtree_only() {
    let f = Fixture::new();
    f.send(
        ["a/b", "a/c/d", "a-b", "ab", "a0", "z/old", "z-keep"]
            .iter()
            .map(|s| upsert(s, 1)),
    );
    let id_b = f.id("a/b").unwrap();
    let id_d = f.id("a/c/d").unwrap();
    f.send([FileEvent::Renamed {
        from: p("a"),
        to: p("z"),
    }]);
    assert_eq!(f.paths(), ["a-b", "a0", "ab", "z-keep", "z/b", "z/c/d"]);
    assert_eq!(f.id("z/b"), Some(id_b));
    assert_eq!(f.id("z/c/d"), Some(id_d));
    // Into a deeper, new place and back.
    f.send([FileEvent::Renamed {
        from: p("z/c"),
        to: p("deep/er/c"),
    }]);
    assert_eq!(
        f.paths(),
        ["a-b", "a0", "ab", "deep/er/c/d", "z-keep", "z/b"]
    );
    // Renames into or out of their own subtree are refused (POSIX forbids them).
    f.send([FileEvent::Renamed {
        from: p("z"),
        to: p("z/inner"),
    }]);
    f.send([FileEvent::Renamed {
        from: p("deep/er"),
        to: p("deep"),
    }]);
    assert_eq!(
        f.paths(),
        ["a-b", "a0", "ab", "deep/er/c/d", "z-keep", "z/b"]
    );
}

#[test]
fn rename_large_directory() {
    let f = Fixture::new();
    f.send((0..20_000).map(|i| upsert(&format!("big/d{}/f{i}", i % 100), i)));
    f.send([upsert("big0", 1), upsert("bi", 1)]);
    f.send([FileEvent::Renamed {
        from: p("big"),
        to: p("moved"),
    }]);
    let paths = f.paths();
    assert_eq!(paths.len(), 20_002);
    assert_eq!(
        paths.iter().filter(|s| s.starts_with("moved/")).count(),
        20_000
    );
    let row = f
        .reader()
        .file(Path::new("moved/d7/f107"))
        .unwrap()
        .unwrap();
    assert_eq!(row.size, 107);
}

#[test]
fn non_utf8_names_round_trip() {
    let f = Fixture::new();
    let dir = b"d\xff\xfe";
    let file = b"d\xff\xfe/\x80name";
    f.send([FileEvent::Upsert {
        path: raw(file),
        size: 3,
        mtime_ns: 1,
        ino: 1,
    }]);
    f.send([FileEvent::Renamed {
        from: raw(dir),
        to: raw(b"e\xc3"),
    }]);
    let row = f.reader().file(&raw(b"e\xc3/\x80name")).unwrap().unwrap();
    assert_eq!(row.path, raw(b"e\xc3/\x80name"));
    // JSON keeps the exact bytes (escape::path_bytes), never U+FFFD.
    assert!(
        serde_json::to_string(&row)
            .unwrap()
            .contains(r#""path":{"hex":"65c32f806e616d65"}"#)
    );
    f.send([FileEvent::Removed {
        path: raw(b"e\xc3"),
    }]);
    assert!(f.paths().is_empty());
}

#[test]
fn access_times_are_coalesced_until_flush() {
    let f = Fixture::new();
    f.send([upsert("r", 1), upsert("d/x", 1), upsert("gone", 1)]);
    for t in [5, 50, 20] {
        f.catalog.send(FileEvent::Accessed {
            path: p("r"),
            at_ns: t,
        });
    }
    f.catalog.send(FileEvent::Accessed {
        path: p("d/x"),
        at_ns: 7,
    });
    f.catalog.send(FileEvent::Accessed {
        path: p("gone"),
        at_ns: 7,
    });
    f.catalog.send(FileEvent::Renamed {
        from: p("d"),
        to: p("e"),
    });
    f.catalog.send(FileEvent::Removed { path: p("gone") });
    f.catalog.send(upsert("gone", 1));
    // Nothing written yet: the interval is an hour. Wait for the batch to land.
    f.catalog.send(upsert("marker", 1));
    assert!(eventually(Duration::from_secs(5), || f
        .paths()
        .contains(&"marker".to_string())));
    assert_eq!(
        f.reader()
            .file(Path::new("r"))
            .unwrap()
            .unwrap()
            .last_access_ns,
        None
    );
    f.catalog.flush().unwrap();
    let r = f.reader();
    assert_eq!(
        r.file(Path::new("r")).unwrap().unwrap().last_access_ns,
        Some(50)
    );
    assert_eq!(
        r.file(Path::new("e/x")).unwrap().unwrap().last_access_ns,
        Some(7)
    );
    assert_eq!(
        r.file(Path::new("gone")).unwrap().unwrap().last_access_ns,
        None
    );
    // Older accesses never move the time back.
    f.send([FileEvent::Accessed {
        path: p("r"),
        at_ns: 10,
    }]);
    assert_eq!(
        r.file(Path::new("r")).unwrap().unwrap().last_access_ns,
        Some(50)
    );
}

#[test]
fn access_times_are_written_on_the_interval() {
    let f = Fixture::with_options(CatalogOptions {
        access_flush_interval: Duration::from_millis(100),
        ..Default::default()
    });
    f.send([upsert("r", 1)]);
    f.catalog.send(FileEvent::Accessed {
        path: p("r"),
        at_ns: 42,
    });
    let reader = f.reader();
    assert!(eventually(Duration::from_secs(5), || {
        reader.file(Path::new("r")).unwrap().unwrap().last_access_ns == Some(42)
    }));
}

#[test]
fn reconcile_adds_updates_and_removes() {
    let f = Fixture::new();
    let hot = f.hot();
    fs::create_dir_all(hot.join("a/b")).unwrap();
    fs::write(hot.join("a/b/one"), b"1").unwrap();
    fs::write(hot.join("two"), b"22").unwrap();
    fs::write(hot.join(OsStr::from_bytes(b"\xffraw")), b"333").unwrap();
    std::os::unix::fs::symlink("two", hot.join("link")).unwrap();
    // Rows the scan must remove, including a stale directory.
    f.send([upsert("stale", 1), upsert("old/dir/file", 1)]);
    f.sql("UPDATE files SET state = 'cold'");

    let s = f.catalog.reconcile(&hot).unwrap();
    assert_eq!(
        (s.scanned, s.added, s.updated, s.removed),
        (3, 3, 0, 2),
        "{s:?}"
    );
    assert_eq!(f.paths(), ["a/b/one", "two", "\u{fffd}raw"]);
    let two = f.reader().file(Path::new("two")).unwrap().unwrap();
    assert_eq!((two.size, two.state.as_str()), (2, "hot"));

    f.sql("UPDATE files SET state = 'premigrated', last_access_ns = 3 WHERE path = CAST('two' AS BLOB)");
    fs::write(hot.join("two"), b"2222").unwrap();
    fs::remove_file(hot.join("a/b/one")).unwrap();
    fs::write(hot.join("a/new"), b"").unwrap();
    let s = f.catalog.reconcile(&hot).unwrap();
    assert_eq!(
        (s.scanned, s.added, s.updated, s.removed),
        (3, 1, 1, 1),
        "{s:?}"
    );
    let two = f.reader().file(Path::new("two")).unwrap().unwrap();
    assert_eq!(
        (two.size, two.state.as_str(), two.last_access_ns),
        (4, "premigrated", Some(3))
    );

    let s = f.catalog.reconcile(&hot).unwrap();
    assert_eq!(
        (s.scanned, s.added, s.updated, s.removed),
        (3, 0, 0, 0),
        "{s:?}"
    );
    assert!(serde_json::to_string(&s).unwrap().contains("\"elapsed\":"));

    let e = f.catalog.reconcile(&hot.join("missing")).unwrap_err();
    assert!(matches!(e, CatalogError::Scan { .. }), "{e}");
    assert_eq!(f.paths().len(), 3, "a failed scan deletes nothing");
}

#[test]
fn status_counts_files_and_bytes_per_state() {
    let f = Fixture::new();
    f.send([
        upsert("a", 10),
        upsert("b", 20),
        upsert("c", 30),
        upsert("d", 40),
    ]);
    f.sql("UPDATE files SET state = 'cold' WHERE size >= 30");
    let s = f.reader().status().unwrap();
    assert_eq!(s.schema_version, 5);
    assert_eq!((s.total_files, s.total_bytes), (4, 100));
    let by: Vec<(&str, u64, u64)> = s
        .by_state
        .iter()
        .map(|c| (c.state.as_str(), c.files, c.bytes))
        .collect();
    assert_eq!(
        by,
        [
            ("hot", 2, 30),
            ("uploading", 0, 0),
            ("premigrated", 0, 0),
            ("releasing", 0, 0),
            ("cold", 2, 70),
            ("recalling", 0, 0)
        ]
    );
    assert!(s.db_bytes > 0);
    let json = serde_json::to_string(&s).unwrap();
    assert!(json.contains("\"total_bytes\":100"), "{json}");
}

#[test]
fn status_reads_only_the_covering_index() {
    let f = Fixture::new();
    let conn = Connection::open(&f.db).unwrap();
    let plan: Vec<String> = conn
        .prepare("EXPLAIN QUERY PLAN SELECT state, count(*), sum(size) FROM files GROUP BY state")
        .unwrap()
        .query_map([], |r| r.get(3))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(
        plan.iter()
            .any(|l| l.contains("COVERING INDEX files_state_size")),
        "{plan:?}"
    );
}

#[test]
fn reader_works_while_daemon_writes_and_after_close() {
    let f = Fixture::new();
    f.send([upsert("a", 1)]);
    let reader = f.reader();
    f.send([upsert("b", 1)]);
    assert_eq!(reader.status().unwrap().total_files, 2);
    f.catalog.close().unwrap();
    let reader = f.reader();
    assert_eq!(reader.status().unwrap().total_files, 2);
    assert_eq!(reader.file(Path::new("nope")).unwrap(), None);
}

#[test]
fn reader_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.db");
    let e = CatalogReader::open(&missing).unwrap_err();
    assert!(matches!(e, CatalogError::NotFound { .. }));
    assert!(e.to_string().contains("missing.db does not exist"), "{e}");
    assert!(!missing.exists(), "a reader must not create the catalog");

    let text = dir.path().join("notes.txt");
    fs::write(
        &text,
        "hello, this is not a database at all, just some text.........",
    )
    .unwrap();
    let e = CatalogReader::open(&text).unwrap_err();
    assert!(e.to_string().contains("is not a tierfs catalog"), "{e}");
}

#[test]
fn open_rejects_foreign_newer_and_locked_catalogs() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    let content = "hello, this is not a database at all, just some text.........";
    fs::write(&text, content).unwrap();
    let e = Catalog::open(&text, CatalogOptions::default()).unwrap_err();
    assert!(matches!(e, CatalogError::NotACatalog { .. }), "{e}");
    assert!(
        e.to_string().contains("notes.txt is not a tierfs catalog"),
        "{e}"
    );
    assert_eq!(
        fs::read_to_string(&text).unwrap(),
        content,
        "a foreign file is left untouched"
    );

    let other = dir.path().join("other.db");
    Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    let e = Catalog::open(&other, CatalogOptions::default()).unwrap_err();
    assert!(matches!(e, CatalogError::NotACatalog { .. }), "{e}");

    let db = dir.path().join("c.db");
    let catalog = Catalog::open(&db, CatalogOptions::default()).unwrap();
    let e = Catalog::open(&db, CatalogOptions::default()).unwrap_err();
    assert!(matches!(e, CatalogError::Locked { .. }), "{e}");
    assert!(
        e.to_string().contains("c.db is locked by another process"),
        "{e}"
    );
    // A failed second open must not break the first one's locks.
    catalog.send(upsert("still", 1));
    catalog.flush().unwrap();
    drop(catalog);

    Connection::open(&db)
        .unwrap()
        .execute("UPDATE meta SET value = 7 WHERE key = 'schema_version'", [])
        .unwrap();
    let e = Catalog::open(&db, CatalogOptions::default()).unwrap_err();
    assert!(
        e.to_string()
            .contains("schema version 7 is newer than this tierfs (max 5)"),
        "{e}"
    );
    let e = CatalogReader::open(&db).unwrap_err();
    assert!(
        matches!(
            e,
            CatalogError::TooNew {
                found: 7,
                max: 5,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn reopen_keeps_rows_and_version() {
    let f = Fixture::new();
    f.send([upsert("kept", 5)]);
    f.catalog.close().unwrap();
    let again = Catalog::open(&f.db, CatalogOptions::default()).unwrap();
    again.send(upsert("more", 1));
    drop(again); // Drop flushes.
    assert_eq!(f.paths(), ["kept", "more"]);
}

#[test]
fn close_is_idempotent_and_later_calls_fail_softly() {
    let f = Fixture::new();
    let clone = f.catalog.clone();
    f.catalog.send(upsert("a", 1));
    f.catalog.close().unwrap();
    f.catalog.close().unwrap();
    clone.send(upsert("dropped", 1)); // must not panic or block
    assert!(matches!(clone.flush(), Err(CatalogError::Closed { .. })));
    assert!(matches!(
        clone.reconcile(Path::new("/")),
        Err(CatalogError::Closed { .. })
    ));
    assert_eq!(f.paths(), ["a"]);
}

#[test]
fn catalog_is_send_sync_and_usable_from_many_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Catalog>();
    let f = Fixture::new();
    std::thread::scope(|s| {
        for t in 0..4 {
            let c = f.catalog.clone();
            s.spawn(move || {
                for i in 0..500 {
                    c.send(upsert(&format!("t{t}/f{i}"), i));
                }
            });
        }
    });
    f.catalog.flush().unwrap();
    assert_eq!(f.reader().status().unwrap().total_files, 2000);
}

#[test]
fn watcher_follows_changes_made_in_the_hot_dir() {
    let (f, hot) = with_hot_dir();
    fs::create_dir_all(hot.join("sub")).unwrap();
    let watcher = watch(&hot, f.catalog.clone()).unwrap();
    let reader = f.reader();
    let wait = Duration::from_secs(10);
    let row = |path: &str| {
        f.catalog.flush().unwrap();
        reader.file(Path::new(path)).unwrap()
    };

    // Created.
    fs::write(hot.join("sub/new"), b"12345").unwrap();
    assert!(eventually(wait, || row("sub/new").is_some_and(|r| r.size == 5)));
    let id = f.id("sub/new").unwrap();
    // Modified.
    fs::write(hot.join("sub/new"), b"1234567890").unwrap();
    assert!(eventually(wait, || row("sub/new").is_some_and(|r| r.size == 10)));
    // Renamed (keeps its id), and a directory renamed.
    fs::rename(hot.join("sub/new"), hot.join("sub/renamed")).unwrap();
    assert!(eventually(wait, || row("sub/new").is_none()
        && row("sub/renamed").is_some()));
    assert_eq!(f.id("sub/renamed"), Some(id));
    fs::rename(hot.join("sub"), hot.join("sub2")).unwrap();
    assert!(eventually(wait, || row("sub2/renamed").is_some()
        && row("sub/renamed").is_none()));
    assert_eq!(f.id("sub2/renamed"), Some(id));
    // Deleted.
    fs::remove_file(hot.join("sub2/renamed")).unwrap();
    assert!(eventually(wait, || row("sub2/renamed").is_none()));

    // A tree moved in from outside the watched directory is walked.
    let outside = f.dir.path().join("outside");
    fs::create_dir_all(outside.join("deep/er")).unwrap();
    fs::write(outside.join("deep/er/f"), b"x").unwrap();
    fs::write(outside.join("top"), b"x").unwrap();
    fs::rename(&outside, hot.join("moved-in")).unwrap();
    assert!(eventually(wait, || row("moved-in/deep/er/f").is_some()
        && row("moved-in/top").is_some()));
    // New file in a directory created after the watch started.
    fs::create_dir_all(hot.join("fresh/dir")).unwrap();
    fs::write(hot.join("fresh/dir/f"), b"abc").unwrap();
    assert!(eventually(wait, || row("fresh/dir/f").is_some()));
    // A directory removed wholesale.
    fs::remove_dir_all(hot.join("moved-in")).unwrap();
    assert!(eventually(wait, || row("moved-in/deep/er/f").is_none()
        && row("moved-in/top").is_none()));
    // Non-UTF-8 names and symlinks (not catalogued).
    fs::write(hot.join(OsStr::from_bytes(b"\xfe\xff")), b"z").unwrap();
    std::os::unix::fs::symlink("fresh", hot.join("link")).unwrap();
    assert!(eventually(wait, || {
        f.catalog.flush().unwrap();
        reader.file(&raw(b"\xfe\xff")).unwrap().is_some()
    }));
    assert!(row("link").is_none());

    drop(watcher);
    fs::write(hot.join("after-drop"), b"x").unwrap();
    std::thread::sleep(super::watch::WINDOW * 2);
    assert!(row("after-drop").is_none(), "a dropped watcher must stop");
}

#[test]
fn failed_writes_are_reported_by_flush() {
    let f = Fixture::new();
    f.sql(
        "CREATE TRIGGER refuse BEFORE INSERT ON files WHEN NEW.path = CAST('bad' AS BLOB)
         BEGIN SELECT RAISE(ABORT, 'refused by test'); END;",
    );
    f.catalog.send(upsert("good1", 1));
    f.catalog.send(upsert("bad", 1));
    f.catalog.send(upsert("good2", 1));
    let e = f.catalog.flush().unwrap_err();
    assert!(matches!(e, CatalogError::Write { failed: 1, .. }), "{e}");
    assert!(e.to_string().contains("refused by test"), "{e}");
    // The rest of the batch was committed, and the failure is reported once.
    assert_eq!(f.paths(), ["good1", "good2"]);
    f.catalog.flush().unwrap();
}

#[test]
fn durable_jobs_queued_together_commit_together_and_fail_alone() {
    let f = Fixture::new();
    // Hold the writer busy so every durable job below queues behind it and
    // they run as one group.
    let (release, wait) = crossbeam_channel::bounded::<()>(0);
    f.catalog.exec_detached("hold the writer", move |_| {
        let _ = wait.recv();
        Ok(())
    });
    let handles: Vec<_> = (0..6)
        .map(|i| {
            let catalog = f.catalog.clone();
            std::thread::spawn(move || {
                catalog.exec_durable("test insert", move |c| {
                    c.execute(
                        "INSERT INTO meta (key, value) VALUES (?1, 'x')",
                        [format!("group-{i}")],
                    )?;
                    if i == 3 {
                        // Fails after writing: its own row must go away.
                        c.execute("INSERT INTO no_such_table VALUES (1)", [])?;
                    }
                    Ok(i)
                })
            })
        })
        .collect();
    // Let the jobs reach the queue, then free the writer.
    let deadline = Instant::now() + Duration::from_secs(10);
    while f.catalog.queue_len() < 6 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    release.send(()).unwrap();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for (i, r) in results.iter().enumerate() {
        if i == 3 {
            let e = r.as_ref().unwrap_err().to_string();
            assert!(e.contains("no_such_table"), "{e}");
        } else {
            assert_eq!(*r.as_ref().unwrap(), i);
        }
    }
    let keys: Vec<String> = f
        .catalog
        .exec("read back", |c| {
            let mut st = c.prepare("SELECT key FROM meta WHERE key LIKE 'group-%' ORDER BY key")?;
            st.query_map([], |r| r.get(0))?.collect()
        })
        .unwrap();
    assert_eq!(
        keys,
        ["group-0", "group-1", "group-2", "group-4", "group-5"]
    );
    // The writer is back to normal commits afterwards.
    let sync: i64 = f
        .catalog
        .exec("pragma", |c| {
            c.query_row("PRAGMA synchronous", [], |r| r.get(0))
        })
        .unwrap();
    assert_eq!(sync, 1, "synchronous = NORMAL after the group");
}
