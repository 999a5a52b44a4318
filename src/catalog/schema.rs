//! The catalog's schema, its migrations, and the connection settings shared
//! by the writer and the readers.
//!
//! The schema version lives in `meta.schema_version`; the file is marked as
//! ours with `PRAGMA application_id`. Migrations are an ordered list of SQL
//! steps, each applied in its own transaction together with the version bump,
//! so a crash mid-upgrade leaves the catalog at the previous version. Later
//! features (objects, rules, ledger) append entries to [`MIGRATIONS`].

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::CatalogError;

/// `PRAGMA application_id` of a tierfs catalog ("TIER" in ASCII).
pub(crate) const APPLICATION_ID: i32 = 0x5449_4552;

/// How long a connection waits for a lock held by another connection.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// One schema upgrade step.
pub(crate) struct Migration {
    /// The schema version this step produces (1, 2, 3… without gaps).
    pub version: u32,
    /// Short description for logs.
    pub name: &'static str,
    /// SQL run inside the step's transaction.
    pub sql: &'static str,
}

/// All migrations, oldest first. Append only; never edit a released step.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "files and meta",
        sql: r#"
        CREATE TABLE meta (
            key   TEXT PRIMARY KEY NOT NULL,
            value
        );
        INSERT INTO meta (key, value) VALUES ('scan_generation', 0);

        -- One row per regular file in the hot directory (or stub of a cold file).
        --   path         relative path, raw bytes (memcmp order: children of 'a' are in ('a/', 'a0'))
        --   generation   bumped whenever size or mtime changes (content changed)
        --   blake3       content hash while a verified cloud copy exists (premigrated,
        --                releasing, cold, recalling); links the file to its objects
        --   pinned       1 = never migrate (tierctl pin)
        --   seen         scan generation of the last reconcile that saw the file
        CREATE TABLE files (
            id             INTEGER PRIMARY KEY,
            path           BLOB    NOT NULL UNIQUE CHECK (typeof(path) = 'blob'),
            size           INTEGER NOT NULL,
            mtime_ns       INTEGER NOT NULL,
            ino            INTEGER NOT NULL,
            last_access_ns INTEGER,
            state          TEXT    NOT NULL DEFAULT 'hot'
                           CHECK (state IN ('hot','uploading','premigrated','releasing','cold','recalling')),
            blake3         BLOB CHECK (blake3 IS NULL OR length(blake3) = 32),
            pinned         INTEGER NOT NULL DEFAULT 0,
            generation     INTEGER NOT NULL DEFAULT 0,
            seen           INTEGER
        );
        -- Covers `status` (GROUP BY state, sum(size)) and size rules per state.
        CREATE INDEX files_state_size ON files (state, size);
        -- Age rules.
        CREATE INDEX files_mtime ON files (mtime_ns);
        CREATE INDEX files_last_access ON files (last_access_ns);
        CREATE INDEX files_blake3 ON files (blake3) WHERE blake3 IS NOT NULL;
    "#,
    },
    Migration {
        version: 2,
        name: "objects, rules and ledger",
        sql: r#"
        -- One row per object stored on a remote. Content-addressed: the key is
        -- derived from blake3, so identical content is stored once per remote.
        -- References are not counted here: the files whose blake3 matches are
        -- the references (no counter to drift). `unreferenced_since_ns` starts
        -- the garbage-collection grace period.
        CREATE TABLE objects (
            id                    INTEGER PRIMARY KEY,
            remote                TEXT    NOT NULL,
            key                   TEXT    NOT NULL,
            blake3                BLOB    NOT NULL CHECK (length(blake3) = 32),
            size                  INTEGER NOT NULL,
            storage_class         TEXT,
            created_at_ns         INTEGER NOT NULL,
            verified_at_ns        INTEGER,
            unreferenced_since_ns INTEGER,
            UNIQUE (remote, key)
        );
        CREATE INDEX objects_blake3 ON objects (blake3);

        -- Migration rules in evaluation order (position), as typed by the admin.
        CREATE TABLE rules (
            id            INTEGER PRIMARY KEY,
            position      INTEGER NOT NULL,
            text          TEXT    NOT NULL,
            created_at_ns INTEGER NOT NULL
        );

        -- Every billable request the daemon makes, for the cost report.
        CREATE TABLE ledger (
            id            INTEGER PRIMARY KEY,
            ts_ns         INTEGER NOT NULL,
            remote        TEXT    NOT NULL,
            op            TEXT    NOT NULL CHECK (op IN ('put','get','delete','head','list')),
            requests      INTEGER NOT NULL DEFAULT 1,
            bytes         INTEGER NOT NULL DEFAULT 0,
            storage_class TEXT,
            object_age_ns INTEGER,
            path          BLOB
        );
        CREATE INDEX ledger_ts ON ledger (ts_ns);
    "#,
    },
    Migration {
        version: 3,
        name: "chunk hashes",
        sql: r#"
        -- blake3 of every fixed-size chunk of a content, so a cold file can be
        -- read piece by piece, each piece verified, before its recall ends.
        -- `hashes` is the 32-byte hashes concatenated in file order.
        CREATE TABLE chunks (
            blake3     BLOB    PRIMARY KEY CHECK (length(blake3) = 32),
            chunk_size INTEGER NOT NULL,
            hashes     BLOB    NOT NULL
        );
    "#,
    },
    Migration {
        version: 4,
        name: "attributes for disaster recovery",
        sql: r#"
        -- Permission bits, owner and access time of each file, and every
        -- directory of the hot dir: what `tierctl rebuild` needs to recreate
        -- the namespace from a catalog backup. Filled into the backup's
        -- snapshot when it is taken (src/tier/backup.rs); NULL (unknown) in
        -- the live catalog, which learns them from the hot dir itself.
        ALTER TABLE files ADD COLUMN mode     INTEGER;
        ALTER TABLE files ADD COLUMN uid      INTEGER;
        ALTER TABLE files ADD COLUMN gid      INTEGER;
        ALTER TABLE files ADD COLUMN atime_ns INTEGER;
        CREATE TABLE dirs (
            path     BLOB    PRIMARY KEY CHECK (typeof(path) = 'blob'),
            mode     INTEGER NOT NULL,
            uid      INTEGER NOT NULL,
            gid      INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            atime_ns INTEGER NOT NULL
        );
    "#,
    },
    Migration {
        version: 5,
        name: "hole maps and hard links",
        sql: r#"
        -- Where the holes of a sparse file were when it was migrated (pairs of
        -- little-endian u64 start/end, see src/tier/layout.rs); NULL = dense.
        -- A stub answers SEEK_DATA/SEEK_HOLE from it and a recall skips them.
        ALTER TABLE chunks ADD COLUMN holes BLOB;
        -- The names of one file (hard links) share its inode number.
        CREATE INDEX files_ino ON files (ino);
    "#,
    },
];

/// The newest schema version this build knows.
pub(crate) fn latest_version() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Settings for the writer connection: WAL, NORMAL sync, foreign keys, a
/// busy timeout and a cache large enough for bulk reconciles.
pub(crate) fn configure_writer(conn: &Connection, path: &Path) -> Result<(), CatalogError> {
    let err = |e| CatalogError::sqlite(path, "configure connection", e);
    conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(CatalogError::NotACatalog {
            path: path.to_path_buf(),
            reason: format!("cannot switch journal_mode to WAL (got {mode})"),
        });
    }
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(err)?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(err)?;
    // 64 MiB page cache (negative = KiB): keeps the path index hot during reconcile.
    conn.pragma_update(None, "cache_size", -65_536)
        .map_err(err)?;
    // Give disk back after a big reconcile has been checkpointed.
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)
        .map_err(err)?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(())
}

/// Checks that `conn` is a tierfs catalog (or an empty database) and returns
/// its schema version (0 for an empty database).
pub(crate) fn current_version(conn: &Connection, path: &Path) -> Result<u32, CatalogError> {
    let err = |e| CatalogError::sqlite(path, "read schema version", e);
    let app_id: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(err)?;
    if app_id != APPLICATION_ID {
        let objects: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
            .map_err(err)?;
        if app_id == 0 && objects == 0 {
            return Ok(0);
        }
        let reason = if app_id == 0 {
            format!(
                "an SQLite database with {objects} other schema object(s) and no tierfs application id"
            )
        } else {
            format!("SQLite application_id is {app_id:#x}, expected {APPLICATION_ID:#x}")
        };
        return Err(CatalogError::NotACatalog {
            path: path.to_path_buf(),
            reason,
        });
    }
    let value: Option<i64> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(err)?;
    match value {
        Some(v) => u32::try_from(v).map_err(|_| CatalogError::NotACatalog {
            path: path.to_path_buf(),
            reason: format!("invalid schema_version {v}"),
        }),
        None => Err(CatalogError::NotACatalog {
            path: path.to_path_buf(),
            reason: "meta table has no schema_version".into(),
        }),
    }
}

/// Fails with [`CatalogError::TooNew`] if `version` is newer than this build.
pub(crate) fn check_not_too_new(version: u32, path: &Path) -> Result<(), CatalogError> {
    let max = latest_version();
    if version > max {
        return Err(CatalogError::TooNew {
            path: path.to_path_buf(),
            found: version,
            max,
        });
    }
    Ok(())
}

/// Brings the catalog to the latest schema version, one transaction per step.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<u32, CatalogError> {
    let start = current_version(conn, path)?;
    check_not_too_new(start, path)?;
    let mut version = start;
    for step in MIGRATIONS.iter().filter(|m| m.version > start) {
        let fail = |source| CatalogError::Migration {
            path: path.to_path_buf(),
            version: step.version,
            source,
        };
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| match CatalogError::sqlite(path, "begin migration", e) {
                CatalogError::Sqlite { source, .. } => fail(source),
                other => other,
            })?;
        tx.execute_batch(step.sql).map_err(fail)?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [step.version],
        )
        .map_err(fail)?;
        tx.pragma_update(None, "application_id", APPLICATION_ID)
            .map_err(fail)?;
        tx.commit().map_err(fail)?;
        tracing::info!(catalog = %path.display(), version = step.version, step = step.name, "catalog schema migrated");
        version = step.version;
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_consecutive() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(
                m.version as usize,
                i + 1,
                "migration {} out of order",
                m.name
            );
        }
    }

    #[test]
    fn migrate_creates_schema_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let mut conn = Connection::open(&path).unwrap();
        configure_writer(&conn, &path).unwrap();
        assert_eq!(current_version(&conn, &path).unwrap(), 0);
        assert_eq!(migrate(&mut conn, &path).unwrap(), latest_version());
        assert_eq!(migrate(&mut conn, &path).unwrap(), latest_version());
        let indexes: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type='index' AND tbl_name='files'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(indexes >= 4, "{indexes}");
        let e = conn
            .execute("INSERT INTO files (path, size, mtime_ns, ino, state) VALUES (x'61', 1, 1, 1, 'bogus')", [])
            .unwrap_err();
        assert!(e.to_string().contains("CHECK"), "{e}");
        let e = conn
            .execute(
                "INSERT INTO files (path, size, mtime_ns, ino) VALUES ('text', 1, 1, 1)",
                [],
            )
            .unwrap_err();
        assert!(e.to_string().contains("CHECK"), "{e}");
    }

    #[test]
    fn foreign_databases_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE t (x)").unwrap();
        let e = current_version(&conn, &path).unwrap_err();
        assert!(matches!(e, CatalogError::NotACatalog { .. }), "{e}");
        assert!(e.to_string().contains("not a tierfs catalog"), "{e}");
    }

    #[test]
    fn newer_schema_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let mut conn = Connection::open(&path).unwrap();
        migrate(&mut conn, &path).unwrap();
        conn.execute("UPDATE meta SET value = 7 WHERE key = 'schema_version'", [])
            .unwrap();
        let e = migrate(&mut conn, &path).unwrap_err();
        assert!(matches!(e, CatalogError::TooNew { found: 7, .. }), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("schema version 7 is newer than this tierfs (max 5)"),
            "{msg}"
        );
        assert!(msg.contains("c.db"), "{msg}");
    }
}
