//! [`CatalogReader`]: read-only queries for `tierctl`.
//!
//! It opens its own `SQLITE_OPEN_READ_ONLY` connection, so it works while the
//! daemon is writing (WAL lets readers run beside the writer) and can never
//! modify the catalog.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde::Serialize;

use super::CatalogError;
use super::FileState;
use super::apply::from_sql_u64;
use super::event::{key_to_path, path_key};
use super::schema;

/// Read-only access to a catalog.
#[derive(Debug)]
pub struct CatalogReader {
    conn: Connection,
    path: PathBuf,
}

/// Totals for `tierctl status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusSummary {
    /// Schema version of the catalog.
    pub schema_version: u32,
    /// Files and bytes per state, for every state in lifecycle order (zeros included).
    pub by_state: Vec<StateCount>,
    /// Number of files.
    pub total_files: u64,
    /// Sum of file sizes.
    pub total_bytes: u64,
    /// Size on disk of the catalog (database plus write-ahead log).
    pub db_bytes: u64,
}

/// Files and bytes in one state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StateCount {
    /// The state.
    pub state: FileState,
    /// Number of files.
    pub files: u64,
    /// Sum of their sizes.
    pub bytes: u64,
}

/// One file's catalog row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileRow {
    /// Path relative to the mount root (serialized lossily as UTF-8).
    #[serde(serialize_with = "crate::escape::path_bytes::serialize")]
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// Last read/open through the mount, if any was recorded.
    pub last_access_ns: Option<i64>,
    /// Tiering state.
    pub state: FileState,
    /// Inode number in the hot directory.
    pub ino: u64,
}

impl CatalogReader {
    /// Opens the catalog at `path` read-only. Fails clearly if the file does
    /// not exist, is not a tierfs catalog, or is newer than this build.
    pub fn open(path: &Path) -> Result<CatalogReader, CatalogError> {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        match std::fs::metadata(&path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(CatalogError::NotFound { path });
            }
            Err(source) => {
                return Err(CatalogError::Io {
                    path,
                    op: "stat",
                    source,
                });
            }
        }
        match Self::open_with(&path, false) {
            // A WAL database needs its -shm file, which a reader cannot
            // create on a read-only file system (or in a directory it may not
            // write): read the file as immutable instead.
            Err(CatalogError::Sqlite { source, .. }) if needs_immutable(&source) => {
                tracing::debug!(catalog = %path.display(), error = %source, "opening the catalog as immutable");
                Self::open_with(&path, true)
            }
            other => other,
        }
    }

    fn open_with(path: &Path, immutable: bool) -> Result<CatalogReader, CatalogError> {
        let mut flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = if immutable {
            flags |= OpenFlags::SQLITE_OPEN_URI;
            Connection::open_with_flags(immutable_uri(path), flags)
        } else {
            Connection::open_with_flags(path, flags)
        }
        .map_err(|e| CatalogError::sqlite(path, "open", e))?;
        conn.busy_timeout(schema::BUSY_TIMEOUT)
            .map_err(|e| CatalogError::sqlite(path, "configure connection", e))?;
        let reader = CatalogReader {
            conn,
            path: path.to_path_buf(),
        };
        reader.schema_version()?;
        Ok(reader)
    }

    /// The catalog file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn schema_version(&self) -> Result<u32, CatalogError> {
        let version = schema::current_version(&self.conn, &self.path)?;
        if version == 0 {
            return Err(CatalogError::NotACatalog {
                path: self.path.clone(),
                reason: "empty database, never initialised by tierfs".into(),
            });
        }
        schema::check_not_too_new(version, &self.path)?;
        Ok(version)
    }

    /// File and byte counts per state. Reads only the `(state, size)` index.
    pub fn status(&self) -> Result<StatusSummary, CatalogError> {
        let err = |e| CatalogError::sqlite(&self.path, "status query", e);
        // One read transaction, so the version and the counts agree.
        self.conn.execute_batch("BEGIN").map_err(err)?;
        let result = self.status_in_transaction();
        let _ = self.conn.execute_batch("COMMIT");
        result
    }

    fn status_in_transaction(&self) -> Result<StatusSummary, CatalogError> {
        let err = |e| CatalogError::sqlite(&self.path, "status query", e);
        let schema_version = self.schema_version()?;
        let mut stmt = self
            .conn
            .prepare_cached("SELECT state, count(*), sum(size) FROM files GROUP BY state")
            .map_err(err)?;
        let mut counts: Vec<StateCount> = FileState::ALL
            .into_iter()
            .map(|state| StateCount {
                state,
                files: 0,
                bytes: 0,
            })
            .collect();
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, FileState>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                ))
            })
            .map_err(err)?;
        for row in rows {
            let (state, files, bytes) = row.map_err(err)?;
            let (files, bytes) = (files.max(0) as u64, bytes.unwrap_or(0).max(0) as u64);
            match counts.iter_mut().find(|c| c.state == state) {
                Some(c) => {
                    c.files = files;
                    c.bytes = bytes;
                }
                None => counts.push(StateCount {
                    state,
                    files,
                    bytes,
                }),
            }
        }
        Ok(StatusSummary {
            schema_version,
            total_files: counts.iter().map(|c| c.files).sum(),
            total_bytes: counts.iter().map(|c| c.bytes).sum(),
            by_state: counts,
            db_bytes: self.db_bytes(),
        })
    }

    /// Bytes used by the database file and its write-ahead log.
    fn db_bytes(&self) -> u64 {
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        [self.path.as_os_str(), wal.as_os_str()]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    /// The row for `path` (relative to the mount root), if the catalog has one.
    pub fn file(&self, path: &Path) -> Result<Option<FileRow>, CatalogError> {
        let Some(key) = path_key(path) else {
            return Ok(None);
        };
        self.conn
            .prepare_cached("SELECT path, size, mtime_ns, last_access_ns, state, ino FROM files WHERE path = ?1")
            .and_then(|mut stmt| {
                stmt.query_row([&key], |r| {
                    Ok(FileRow {
                        path: key_to_path(&r.get::<_, Vec<u8>>(0)?),
                        size: from_sql_u64(r.get(1)?),
                        mtime_ns: r.get(2)?,
                        last_access_ns: r.get(3)?,
                        state: r.get(4)?,
                        ino: from_sql_u64(r.get(5)?),
                    })
                })
                .optional()
            })
            .map_err(|e| CatalogError::sqlite(&self.path, "file query", e))
    }
}

/// Whether a read-only open failed because SQLite could not create or lock
/// the WAL index (`-shm`): a catalog on a read-only file system.
fn needs_immutable(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode;
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::CannotOpen | ErrorCode::ReadOnly | ErrorCode::PermissionDenied)
    )
}

/// `file:PATH?immutable=1`, with the characters URIs reserve escaped.
fn immutable_uri(path: &Path) -> String {
    let mut uri = String::from("file:");
    for &b in path.as_os_str().as_bytes() {
        match b {
            b'%' | b'?' | b'#' => uri.push_str(&format!("%{b:02X}")),
            _ if b.is_ascii() && !b.is_ascii_control() => uri.push(b as char),
            _ => uri.push_str(&format!("%{b:02X}")),
        }
    }
    uri.push_str("?immutable=1");
    uri
}
