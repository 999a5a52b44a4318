//! Property-based fuzzing of the readers of untrusted bytes (issue 15):
//!
//! * the control protocol decoder (`Request::from_json`), fed arbitrary
//!   text and mutated valid requests: never panics; requests whose paths
//!   are arbitrary bytes survive an encode/decode round trip exactly;
//! * the catalog-backup reader (`decompress_capped`, `RestoredCatalog`,
//!   `check_backup_path`), fed arbitrary bytes, mutated and truncated real
//!   backups, and real backups holding arbitrary row values: never panics,
//!   never writes past the decompression cap, and every path it accepts
//!   stays beneath the directory it is joined to.
//!
//! Bounded for CI: `PROPTEST_CASES` cases per property (default 1000 for
//! the cheap properties, a quarter of that for those that open an SQLite
//! file); the whole file runs in well under 30 s.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use rusqlite::{Connection, params};
use tierfs::catalog::backup::RestoredCatalog;
use tierfs::catalog::{Catalog, CatalogOptions};
use tierfs::control::Request;
use tierfs::tier::rebuild::{check_backup_path, decompress_capped};

fn cases(divisor: u32) -> u32 {
    let n: u32 = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    (n / divisor).max(1)
}

fn config(divisor: u32) -> ProptestConfig {
    ProptestConfig {
        cases: cases(divisor),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------- protocol

fn valid_request_line() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(r#"{"op":"status"}"#.to_string()),
        Just(r#"{"op":"recall","paths":["a/b",{"hex":"ff00"}]}"#.to_string()),
        Just(r#"{"op":"pin","paths":["x"],"pinned":true}"#.to_string()),
        Just(r#"{"op":"gc","grace_secs":5}"#.to_string()),
        Just(r#"{"op":"rule_add","text":"a -> b","position":1}"#.to_string()),
        Just(r#"{"op":"migrate"}"#.to_string()),
        Just(r#"{"op":"fsck","repair":true}"#.to_string()),
    ]
}

/// `base` with a few characters deleted, inserted or replaced.
fn mutate(base: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    (
        base,
        prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<char>()), 0..4),
    )
        .prop_map(|(s, edits)| {
            let mut chars: Vec<char> = s.chars().collect();
            for (at, kind, c) in edits {
                let i = at.index(chars.len() + 1);
                match kind {
                    0 if i < chars.len() => {
                        chars.remove(i);
                    }
                    1 => chars.insert(i, c),
                    _ if i < chars.len() => chars[i] = c,
                    _ => chars.push(c),
                }
            }
            chars.into_iter().collect()
        })
}

fn byte_path() -> impl Strategy<Value = PathBuf> {
    prop::collection::vec(any::<u8>(), 0..40).prop_map(|b| PathBuf::from(OsStr::from_bytes(&b)))
}

proptest! {
    #![proptest_config(config(1))]

    #[test]
    fn protocol_decoder_never_panics_on_text(line in ".{0,200}") {
        let _ = Request::from_json(&line);
    }

    #[test]
    fn protocol_decoder_never_panics_on_mutated_requests(line in mutate(valid_request_line())) {
        let _ = Request::from_json(&line);
    }

    #[test]
    fn paths_of_any_bytes_round_trip(paths in prop::collection::vec(byte_path(), 0..5), pinned: bool) {
        for req in [
            Request::Recall { paths: paths.clone() },
            Request::Pin { paths: paths.clone(), pinned },
        ] {
            let line = serde_json::to_string(&req).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(!line.contains('\n'), "{line}");
            prop_assert_eq!(Request::from_json(&line), Ok(req));
        }
    }
}

// ---------------------------------------------------------- backup reader

/// Every path `check_backup_path` accepts is relative and made of plain
/// names only, so joining it to a root stays beneath the root.
fn accepted_path_stays_beneath(bytes: &[u8]) -> Result<(), TestCaseError> {
    if check_backup_path(bytes).is_ok() {
        let p = Path::new(OsStr::from_bytes(bytes));
        prop_assert!(
            p.components().all(|c| matches!(c, Component::Normal(_))),
            "{bytes:?} accepted but has a non-name component"
        );
        let joined = Path::new("/root/hot").join(p);
        prop_assert!(joined.starts_with("/root/hot"), "{bytes:?}");
        prop_assert!(!bytes.contains(&0) && !bytes.is_empty() && bytes.len() <= 4095);
    }
    Ok(())
}

fn hostile_path_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"..".to_vec()),
        Just(b".".to_vec()),
        Just(b"/".to_vec()),
        Just(b"//".to_vec()),
        Just(b"\0".to_vec()),
        Just(b"a".to_vec()),
        Just(b"name.txt".to_vec()),
        Just(b"\x1b[2J".to_vec()),
        Just(vec![0xff, 0xfe]),
        prop::collection::vec(any::<u8>(), 0..4),
    ];
    prop::collection::vec(piece, 0..8).prop_map(|v| v.concat())
}

/// A real catalog backup (uncompressed SQLite bytes) with a few rows.
fn real_backup() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    Catalog::open(&db, CatalogOptions::default())
        .unwrap()
        .close()
        .unwrap();
    let c = Connection::open(&db).unwrap();
    let _: String = c
        .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
        .unwrap();
    for i in 0..20 {
        c.execute(
            "INSERT INTO files (path, size, mtime_ns, ino, state, blake3, mode, uid, gid)
             VALUES (?1, 5, 1, 1, 'cold', ?2, 420, 0, 0)",
            params![format!("d{}/f{i}", i % 3).into_bytes(), vec![i as u8; 32]],
        )
        .unwrap();
    }
    c.execute(
        "INSERT INTO dirs (path, mode, uid, gid, mtime_ns, atime_ns) VALUES (x'6430', 493, 0, 0, 1, 1)",
        [],
    )
    .unwrap();
    c.close().unwrap();
    std::fs::read(&db).unwrap()
}

fn real_backup_cached() -> &'static [u8] {
    static BACKUP: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BACKUP.get_or_init(real_backup)
}

/// Runs the whole reader on `sqlite` bytes: open, list files and dirs,
/// check every path. Errors are fine; panics are not.
fn read_backup(sqlite: &[u8]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("restored.db");
    std::fs::write(&db, sqlite).unwrap();
    if let Ok(restored) = RestoredCatalog::open(&db) {
        if let Ok(files) = restored.files() {
            for f in files {
                accepted_path_stays_beneath(f.path.as_os_str().as_bytes())?;
            }
        }
        if let Ok(dirs) = restored.dirs() {
            for d in dirs {
                accepted_path_stays_beneath(d.attrs.path.as_os_str().as_bytes())?;
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(1))]

    #[test]
    fn backup_paths_are_checked(bytes in hostile_path_bytes()) {
        accepted_path_stays_beneath(&bytes)?;
    }

    #[test]
    fn decompression_never_panics_nor_passes_the_cap(
        data in prop::collection::vec(any::<u8>(), 0..512),
        cap in 0u64..4096,
    ) {
        let mut out = Vec::new();
        let _ = decompress_capped(&data, &mut out, cap);
        prop_assert!(out.len() as u64 <= cap);
    }

    #[test]
    fn decompressing_mutated_backups_respects_the_cap(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in any::<prop::sample::Index>(),
        cap in 1u64..200_000,
    ) {
        let mut packed = zstd::encode_all(real_backup_cached(), 1).unwrap();
        for (at, b) in flips {
            let i = at.index(packed.len());
            packed[i] ^= b;
        }
        packed.truncate(cut.index(packed.len() + 1));
        let mut out = Vec::new();
        let _ = decompress_capped(&packed, &mut out, cap);
        prop_assert!(out.len() as u64 <= cap);
    }
}

proptest! {
    #![proptest_config(config(4))]

    #[test]
    fn restored_catalog_reader_survives_corrupt_sqlite(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let mut bytes = real_backup_cached().to_vec();
        for (at, b) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= b;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        read_backup(&bytes)?;
    }

    #[test]
    fn restored_catalog_reader_survives_hostile_values(
        path in hostile_path_bytes(),
        size in any::<i64>(),
        mode in any::<i64>(),
        uid in any::<i64>(),
        hash_len in 0usize..40,
        dir_path in hostile_path_bytes(),
        dir_mode in any::<i64>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("b.db");
        std::fs::write(&db, real_backup_cached()).unwrap();
        let c = Connection::open(&db).unwrap();
        // A hostile file need not honour the schema's CHECKs.
        c.execute_batch("PRAGMA ignore_check_constraints = ON").unwrap();
        let _ = c.execute(
            "INSERT INTO files (path, size, mtime_ns, ino, state, blake3, mode, uid, gid)
             VALUES (?1, ?2, 1, 1, 'cold', ?3, ?4, ?5, ?5)",
            params![path, size, vec![7u8; hash_len], mode, uid],
        );
        let _ = c.execute(
            "INSERT INTO dirs (path, mode, uid, gid, mtime_ns, atime_ns) VALUES (?1, ?2, ?3, ?3, 1, 1)",
            params![dir_path, dir_mode, uid],
        );
        drop(c);
        read_backup(&std::fs::read(&db).unwrap())?;
    }
}
