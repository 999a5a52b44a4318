//! Catalog snapshots for disaster recovery, and the restored copy that
//! `tierctl rebuild` works on.
//!
//! A snapshot is a consistent copy of the live catalog taken with
//! `VACUUM INTO` through a read-only connection (safe while the daemon
//! writes: WAL readers see one committed state), brought to the latest
//! schema, then enriched with what the live catalog does not keep: each
//! file's permission bits, owner and access time, and every directory of the
//! hot dir ([`Snapshot::record_attributes`]). The tier engine
//! (`src/tier/backup.rs`) compresses and uploads it.
//!
//! [`RestoredCatalog`] opens such a copy after it was downloaded: it lists
//! the files with the verified copies of their content, the directories, and
//! records the stubs that were recreated.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, params};

use super::CatalogError;
use super::apply::{from_sql_u64, to_sql_u64};
use super::event::{key_to_path, path_key};
use super::schema;

/// Permission bits, owner and access time of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileAttrs {
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Access time, nanoseconds since the Unix epoch.
    pub atime_ns: i64,
}

/// One directory of the hot dir, as a snapshot records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirAttrs {
    /// Path relative to the hot dir.
    pub path: PathBuf,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// Access time, nanoseconds since the Unix epoch.
    pub atime_ns: i64,
}

/// A consistent copy of a catalog, being prepared for upload.
#[derive(Debug)]
pub struct Snapshot {
    conn: Connection,
    path: PathBuf,
}

impl Snapshot {
    /// Copies the catalog at `catalog` into `dest` (which must not exist)
    /// with `VACUUM INTO`, and migrates the copy to the latest schema.
    pub fn take(catalog: &Path, dest: &Path) -> Result<Snapshot, CatalogError> {
        if !catalog.exists() {
            return Err(CatalogError::NotFound {
                path: catalog.to_path_buf(),
            });
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let src = Connection::open_with_flags(catalog, flags)
            .map_err(|e| CatalogError::sqlite(catalog, "open for backup", e))?;
        src.busy_timeout(schema::BUSY_TIMEOUT)
            .map_err(|e| CatalogError::sqlite(catalog, "configure connection", e))?;
        let version = schema::current_version(&src, catalog)?;
        if version == 0 {
            return Err(CatalogError::NotACatalog {
                path: catalog.to_path_buf(),
                reason: "empty database, never initialised by tierfs".into(),
            });
        }
        schema::check_not_too_new(version, catalog)?;
        let dest_text = dest.to_str().ok_or_else(|| CatalogError::Io {
            path: dest.to_path_buf(),
            op: "name snapshot",
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "snapshot path is not UTF-8",
            ),
        })?;
        // VACUUM INTO accepts an empty file: create it private first, so the
        // snapshot never exists with SQLite's default mode (0644 & ~umask).
        {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(dest)
                .map_err(|source| CatalogError::Io {
                    path: dest.to_path_buf(),
                    op: "create snapshot",
                    source,
                })?;
        }
        src.execute("VACUUM INTO ?1", [dest_text])
            .map_err(|e| CatalogError::sqlite(catalog, "snapshot (VACUUM INTO)", e))?;
        drop(src);
        let mut conn =
            Connection::open(dest).map_err(|e| CatalogError::sqlite(dest, "open snapshot", e))?;
        schema::migrate(&mut conn, dest)?;
        Ok(Snapshot {
            conn,
            path: dest.to_path_buf(),
        })
    }

    /// Records each file's attributes (`attrs` is asked for every catalogued
    /// path; `None` leaves them unknown) and replaces the directory list with
    /// `dirs`. Returns how many files got attributes.
    pub fn record_attributes(
        &mut self,
        mut attrs: impl FnMut(&Path) -> Option<FileAttrs>,
        dirs: &[DirAttrs],
    ) -> Result<u64, CatalogError> {
        let path = self.path.clone();
        let err = |e| CatalogError::sqlite(&path, "record attributes in snapshot", e);
        let tx = self.conn.transaction().map_err(err)?;
        let rows: Vec<(i64, Vec<u8>)> = {
            let mut stmt = tx.prepare("SELECT id, path FROM files").map_err(err)?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(err)?
                .collect::<rusqlite::Result<_>>()
                .map_err(err)?
        };
        let mut recorded = 0;
        {
            let mut update = tx
                .prepare(
                    "UPDATE files SET mode = ?2, uid = ?3, gid = ?4, atime_ns = ?5 WHERE id = ?1",
                )
                .map_err(err)?;
            for (id, key) in rows {
                if let Some(a) = attrs(&key_to_path(&key)) {
                    update
                        .execute(params![id, a.mode, a.uid, a.gid, a.atime_ns])
                        .map_err(err)?;
                    recorded += 1;
                }
            }
            tx.execute("DELETE FROM dirs", []).map_err(err)?;
            let mut insert = tx
                .prepare(
                    "INSERT OR REPLACE INTO dirs (path, mode, uid, gid, mtime_ns, atime_ns)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(err)?;
            for d in dirs {
                let Some(key) = path_key(&d.path) else {
                    continue;
                };
                insert
                    .execute(params![key, d.mode, d.uid, d.gid, d.mtime_ns, d.atime_ns])
                    .map_err(err)?;
            }
        }
        tx.commit().map_err(err)?;
        Ok(recorded)
    }

    /// Number of file rows in the snapshot.
    pub fn file_count(&self) -> Result<u64, CatalogError> {
        self.conn
            .query_row("SELECT count(*) FROM files", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| CatalogError::sqlite(&self.path, "count files", e))
    }

    /// Closes the snapshot file (flushing it) and returns its path.
    pub fn finish(self) -> Result<PathBuf, CatalogError> {
        let path = self.path.clone();
        // One self-contained file: no write-ahead log beside it.
        let _: String = self
            .conn
            .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
            .map_err(|e| CatalogError::sqlite(&path, "finish snapshot", e))?;
        self.conn
            .close()
            .map_err(|(_, e)| CatalogError::sqlite(&path, "close snapshot", e))?;
        Ok(path)
    }
}

/// A file row of a restored catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoredFile {
    /// Row id.
    pub id: i64,
    /// Path relative to the hot dir.
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
    /// Modification time (ns).
    pub mtime_ns: i64,
    /// Tiering state at backup time.
    pub state: String,
    /// Content hash, if the file had a verified cloud copy.
    pub blake3: Option<[u8; 32]>,
    /// Permission bits, owner and access time, if the backup recorded them.
    pub attrs: Option<FileAttrs>,
    /// (remote, key) of every verified copy of the content.
    pub copies: Vec<(String, String)>,
    /// Why the row's values cannot be used as they are (out of range, wrong
    /// type); `None` for a well-formed row. The path is checked by the caller.
    pub problem: Option<String>,
}

/// A directory row of a restored catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoredDir {
    /// The recorded attributes (defaults where a value was unusable).
    pub attrs: DirAttrs,
    /// Why the row's values cannot be used, if they cannot.
    pub problem: Option<String>,
}

/// Checks the 100-byte SQLite header of a restored file before SQLite
/// opens it: the magic string, and that the file holds every page the header
/// counts (a truncated download or object says so plainly instead of "disk
/// image is malformed").
fn check_sqlite_header(path: &Path) -> Result<(), CatalogError> {
    use std::io::Read;
    let not = |reason: String| CatalogError::NotACatalog {
        path: path.to_path_buf(),
        reason,
    };
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(not("empty database, not a catalog backup".into()));
        }
        Err(source) => {
            return Err(CatalogError::Io {
                path: path.to_path_buf(),
                op: "open",
                source,
            });
        }
    };
    let len = f
        .metadata()
        .map_err(|source| CatalogError::Io {
            path: path.to_path_buf(),
            op: "stat",
            source,
        })?
        .len();
    let mut h = [0u8; 100];
    if len == 0 {
        return Err(not("empty database, not a catalog backup".into()));
    }
    if len < 100 || f.read_exact(&mut h).is_err() {
        return Err(not(format!(
            "{len} bytes: too short to be an SQLite database (truncated?)"
        )));
    }
    if &h[..16] != b"SQLite format 3\0" {
        return Err(not("not an SQLite database (no SQLite header)".into()));
    }
    let page_size = match u16::from_be_bytes([h[16], h[17]]) {
        1 => 65_536u64,
        n => u64::from(n),
    };
    let pages = u64::from(u32::from_be_bytes([h[28], h[29], h[30], h[31]]));
    // The page count is valid when the two change counters agree.
    if h[24..28] == h[92..96] && pages > 0 && len < pages * page_size {
        return Err(not(format!(
            "truncated: the SQLite header counts {pages} pages of {page_size} bytes \
             ({} bytes), the file has {len}",
            pages * page_size
        )));
    }
    Ok(())
}

/// An integer column, or `None` (noting why in `problems` unless NULL).
fn int_column(
    r: &rusqlite::Row<'_>,
    i: usize,
    name: &str,
    problems: &mut Vec<String>,
) -> Option<i64> {
    match r.get_ref(i) {
        Ok(rusqlite::types::ValueRef::Integer(n)) => Some(n),
        Ok(rusqlite::types::ValueRef::Null) => None,
        _ => {
            problems.push(format!("{name} is not an integer"));
            None
        }
    }
}

/// An integer column in `0..=max`, or `None` (noting why unless NULL).
fn u32_column(
    r: &rusqlite::Row<'_>,
    i: usize,
    name: &str,
    max: u32,
    problems: &mut Vec<String>,
) -> Option<u32> {
    let n = int_column(r, i, name, problems)?;
    match u32::try_from(n) {
        Ok(v) if v <= max => Some(v),
        _ => {
            problems.push(format!("{name} {n} is out of range (0..={max})"));
            None
        }
    }
}

/// A catalog restored from a backup, opened for `tierctl rebuild`.
#[derive(Debug)]
pub struct RestoredCatalog {
    conn: Connection,
    path: PathBuf,
}

impl RestoredCatalog {
    /// Opens the restored catalog at `path` (rejecting anything that is not a
    /// tierfs catalog) and brings it to the latest schema.
    pub fn open(path: &Path) -> Result<RestoredCatalog, CatalogError> {
        check_sqlite_header(path)?;
        let mut conn = Connection::open(path).map_err(|e| CatalogError::sqlite(path, "open", e))?;
        let version = schema::current_version(&conn, path)?;
        if version == 0 {
            return Err(CatalogError::NotACatalog {
                path: path.to_path_buf(),
                reason: "empty database, not a catalog backup".into(),
            });
        }
        // tierfs never creates triggers or views; in a backup they would run
        // SQL of the bucket's choosing on every later catalog write.
        let foreign: Vec<String> = conn
            .prepare(
                "SELECT type || ' ' || name FROM sqlite_schema WHERE type IN ('trigger', 'view')",
            )
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(|e| CatalogError::sqlite(path, "read schema", e))?;
        if !foreign.is_empty() {
            return Err(CatalogError::NotACatalog {
                path: path.to_path_buf(),
                reason: format!(
                    "foreign schema: tierfs catalogs have no triggers or views, this one has {}",
                    foreign.join(", ")
                ),
            });
        }
        schema::migrate(&mut conn, path)?;
        // At most three problems: enough to say what is wrong, short enough
        // for one message.
        let problems: Vec<String> = conn
            .prepare("PRAGMA quick_check(3)")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(|e| CatalogError::sqlite(path, "integrity check", e))?;
        if problems != ["ok"] {
            return Err(CatalogError::NotACatalog {
                path: path.to_path_buf(),
                reason: format!(
                    "integrity check failed: {}",
                    problems.join("; ").replace('\n', " ")
                ),
            });
        }
        // A valid SQLite file that claims to be a catalog but lacks what
        // rebuild reads (tables or columns) is a foreign schema.
        for (table, columns) in [
            (
                "files",
                "id, path, size, mtime_ns, state, blake3, mode, uid, gid, atime_ns, ino, seen",
            ),
            ("objects", "remote, key, blake3, verified_at_ns"),
            ("dirs", "path, mode, uid, gid, mtime_ns, atime_ns"),
        ] {
            if let Err(e) = conn.prepare(&format!("SELECT {columns} FROM {table} LIMIT 0")) {
                return Err(CatalogError::NotACatalog {
                    path: path.to_path_buf(),
                    reason: format!(
                        "foreign schema: table `{table}` lacks what tierfs writes ({columns}): {e}"
                    ),
                });
            }
        }
        Ok(RestoredCatalog {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// Every file row, in path order, with the verified copies of its content.
    ///
    /// The backup came from a bucket, so nothing in it is trusted: values
    /// that do not fit (a negative size, a hash that is not 32 bytes, a mode
    /// or owner out of range) do not fail the whole listing but are reported
    /// in [`RestoredFile::problem`] for the caller to reject that row.
    pub fn files(&self) -> Result<Vec<RestoredFile>, CatalogError> {
        let err = |e| CatalogError::sqlite(&self.path, "list restored files", e);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, CAST(path AS BLOB), size, mtime_ns, CAST(state AS BLOB), blake3,
                        mode, uid, gid, atime_ns
                 FROM files ORDER BY path",
            )
            .map_err(err)?;
        let mut files: Vec<RestoredFile> = stmt
            .query_map([], |r| {
                let mut problems = Vec::new();
                let blake3: Option<Vec<u8>> = r.get(5).unwrap_or_else(|_| {
                    problems.push("blake3 is not a blob".to_string());
                    None
                });
                let blake3 = match blake3 {
                    None => None,
                    Some(b) => match <[u8; 32]>::try_from(b.as_slice()) {
                        Ok(h) => Some(h),
                        Err(_) => {
                            problems.push(format!("blake3 has {} bytes, not 32", b.len()));
                            None
                        }
                    },
                };
                let mtime_ns: i64 = int_column(r, 3, "mtime_ns", &mut problems).unwrap_or(0);
                let size = match int_column(r, 2, "size", &mut problems) {
                    Some(n) if n >= 0 => from_sql_u64(n),
                    Some(n) => {
                        problems.push(format!("size {n} is negative"));
                        0
                    }
                    None => 0,
                };
                let mode = u32_column(r, 6, "mode", 0o7777, &mut problems);
                // u32::MAX is chown's "leave unchanged", never an owner.
                let uid = u32_column(r, 7, "uid", u32::MAX - 1, &mut problems);
                let gid = u32_column(r, 8, "gid", u32::MAX - 1, &mut problems);
                let atime_ns = int_column(r, 9, "atime_ns", &mut problems);
                let attrs = match (mode, uid, gid) {
                    (Some(mode), Some(uid), Some(gid)) => Some(FileAttrs {
                        mode,
                        uid,
                        gid,
                        atime_ns: atime_ns.unwrap_or(mtime_ns),
                    }),
                    _ => None,
                };
                let state: Option<Vec<u8>> = r.get(4).unwrap_or(None);
                let state = String::from_utf8_lossy(&state.unwrap_or_default()).into_owned();
                Ok(RestoredFile {
                    id: r.get(0)?,
                    path: key_to_path(&r.get::<_, Option<Vec<u8>>>(1)?.unwrap_or_default()),
                    size,
                    mtime_ns,
                    state,
                    blake3,
                    attrs,
                    copies: Vec::new(),
                    problem: (!problems.is_empty()).then(|| problems.join("; ")),
                })
            })
            .map_err(err)?
            .collect::<rusqlite::Result<_>>()
            .map_err(err)?;
        let mut copies = self
            .conn
            .prepare(
                "SELECT remote, key FROM objects
                 WHERE blake3 = ?1 AND verified_at_ns IS NOT NULL ORDER BY id",
            )
            .map_err(err)?;
        for f in &mut files {
            if let Some(hash) = &f.blake3 {
                // Rows whose remote or key is not text are not copies.
                f.copies = copies
                    .query_map([&hash[..]], |r| {
                        Ok((r.get::<_, String>(0).ok(), r.get::<_, String>(1).ok()))
                    })
                    .map_err(err)?
                    .filter_map(|row| match row {
                        Ok((Some(remote), Some(key))) => Some(Ok((remote, key))),
                        Ok(_) => None,
                        Err(e) => Some(Err(e)),
                    })
                    .collect::<rusqlite::Result<_>>()
                    .map_err(err)?;
            }
        }
        Ok(files)
    }

    /// Every directory the backup recorded, parents before children (rows
    /// with values out of range carry a [`RestoredDir::problem`]).
    pub fn dirs(&self) -> Result<Vec<RestoredDir>, CatalogError> {
        let err = |e| CatalogError::sqlite(&self.path, "list restored directories", e);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT CAST(path AS BLOB), mode, uid, gid, mtime_ns, atime_ns
                 FROM dirs ORDER BY path",
            )
            .map_err(err)?;
        let mut dirs: Vec<RestoredDir> = stmt
            .query_map([], |r| {
                let mut problems = Vec::new();
                let mode = u32_column(r, 1, "mode", 0o7777, &mut problems);
                let uid = u32_column(r, 2, "uid", u32::MAX - 1, &mut problems);
                let gid = u32_column(r, 3, "gid", u32::MAX - 1, &mut problems);
                let mtime_ns = int_column(r, 4, "mtime_ns", &mut problems);
                let atime_ns = int_column(r, 5, "atime_ns", &mut problems);
                for (v, name) in [
                    (mode.is_none(), "mode"),
                    (uid.is_none(), "uid"),
                    (gid.is_none(), "gid"),
                ] {
                    if v && !problems.iter().any(|p| p.starts_with(name)) {
                        problems.push(format!("{name} is missing"));
                    }
                }
                Ok(RestoredDir {
                    attrs: DirAttrs {
                        path: key_to_path(&r.get::<_, Option<Vec<u8>>>(0)?.unwrap_or_default()),
                        mode: mode.unwrap_or(0o700),
                        uid: uid.unwrap_or(0),
                        gid: gid.unwrap_or(0),
                        mtime_ns: mtime_ns.unwrap_or(0),
                        atime_ns: atime_ns.unwrap_or(0),
                    },
                    problem: (!problems.is_empty()).then(|| problems.join("; ")),
                })
            })
            .map_err(err)?
            .collect::<rusqlite::Result<_>>()
            .map_err(err)?;
        dirs.sort_by_key(|d| {
            d.attrs
                .path
                .as_os_str()
                .as_bytes()
                .iter()
                .filter(|&&b| b == b'/')
                .count()
        });
        Ok(dirs)
    }

    /// Records the outcome of a rebuild in one transaction: `stubs` (row id,
    /// new inode number) are cold now; `lost` rows (no cloud copy) are
    /// dropped, as are the directory list and the backup-only attributes.
    pub fn finish(mut self, stubs: &[(i64, u64)], lost: &[i64]) -> Result<(), CatalogError> {
        let path = self.path.clone();
        let err = |e| CatalogError::sqlite(&path, "record rebuilt files", e);
        let tx = self.conn.transaction().map_err(err)?;
        {
            let mut cold = tx
                .prepare(
                    "UPDATE files SET state = 'cold', ino = ?2, seen = NULL,
                         mode = NULL, uid = NULL, gid = NULL, atime_ns = NULL
                     WHERE id = ?1",
                )
                .map_err(err)?;
            for (id, ino) in stubs {
                cold.execute(params![id, to_sql_u64(*ino)]).map_err(err)?;
            }
            let mut drop_row = tx.prepare("DELETE FROM files WHERE id = ?1").map_err(err)?;
            for id in lost {
                drop_row.execute([id]).map_err(err)?;
            }
            tx.execute("DELETE FROM dirs", []).map_err(err)?;
        }
        tx.commit().map_err(err)?;
        self.conn
            .close()
            .map_err(|(_, e)| CatalogError::sqlite(&path, "close", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Catalog, CatalogOptions, FileEvent};

    #[test]
    fn snapshot_records_attributes_and_restores() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("c.db");
        let catalog = Catalog::open(&db, CatalogOptions::default()).unwrap();
        for (p, size) in [("a/x", 5u64), ("b", 7)] {
            catalog.send(FileEvent::Upsert {
                path: p.into(),
                size,
                mtime_ns: 1_000,
                ino: 9,
            });
        }
        catalog.flush().unwrap();
        let hash = [7u8; 32];
        catalog
            .exec("fake a cold file", move |c| {
                c.execute(
                    "UPDATE files SET state = 'cold', blake3 = ?1 WHERE path = x'612f78'",
                    [&hash[..]],
                )?;
                c.execute(
                    "INSERT INTO objects (remote, key, blake3, size, created_at_ns, verified_at_ns)
                     VALUES ('cloud', 'data/k', ?1, 5, 1, 2),
                            ('other', 'data/u', ?1, 5, 1, NULL)",
                    [&hash[..]],
                )?;
                Ok(())
            })
            .unwrap();

        let snap_path = dir.path().join("snap.db");
        let mut snap = Snapshot::take(&db, &snap_path).unwrap();
        assert_eq!(snap.file_count().unwrap(), 2);
        let recorded = snap
            .record_attributes(
                |p| {
                    (p == Path::new("a/x")).then_some(FileAttrs {
                        mode: 0o640,
                        uid: 12,
                        gid: 34,
                        atime_ns: 5_000,
                    })
                },
                &[DirAttrs {
                    path: "a".into(),
                    mode: 0o750,
                    uid: 1,
                    gid: 2,
                    mtime_ns: 3,
                    atime_ns: 4,
                }],
            )
            .unwrap();
        assert_eq!(recorded, 1);
        snap.finish().unwrap();
        // The live catalog is untouched by the snapshot's enrichment.
        catalog.close().unwrap();
        let live = Connection::open(&db).unwrap();
        let dirs: i64 = live
            .query_row("SELECT count(*) FROM dirs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(dirs, 0);

        let restored = RestoredCatalog::open(&snap_path).unwrap();
        let files = restored.files().unwrap();
        assert_eq!(files.len(), 2);
        let x = &files[0];
        assert_eq!(x.path, Path::new("a/x"));
        assert_eq!(x.state, "cold");
        assert_eq!(x.blake3, Some(hash));
        assert_eq!(x.copies, vec![("cloud".to_string(), "data/k".to_string())]);
        assert_eq!(
            x.attrs.map(|a| (a.mode, a.uid, a.gid)),
            Some((0o640, 12, 34))
        );
        assert_eq!(files[1].attrs, None);
        assert_eq!(restored.dirs().unwrap()[0].attrs.mode, 0o750);
        let (x_id, b_id) = (x.id, files[1].id);
        restored.finish(&[(x_id, 77)], &[b_id]).unwrap();
        let conn = Connection::open(&snap_path).unwrap();
        let rows: Vec<(String, i64)> = conn
            .prepare("SELECT state, ino FROM files")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows, vec![("cold".to_string(), 77)]);
    }

    #[test]
    fn restoring_something_else_fails_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("junk.db");
        std::fs::write(&p, b"this is not sqlite at all, just bytes").unwrap();
        let e = RestoredCatalog::open(&p).unwrap_err().to_string();
        assert!(e.contains("junk.db"), "{e}");
        let empty = dir.path().join("empty.db");
        let e = RestoredCatalog::open(&empty).unwrap_err().to_string();
        assert!(e.contains("not a tierfs catalog"), "{e}");
    }
}
