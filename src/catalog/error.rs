//! The catalog's error type.
//!
//! Every message names the catalog file (or the directory being scanned or
//! watched) and the cause, so an admin can act on it without reading source.

use std::path::PathBuf;

/// Errors returned by [`Catalog`](super::Catalog), [`CatalogReader`](super::CatalogReader)
/// and [`watch`](super::watch()).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// The catalog file does not exist (read-only open).
    #[error(
        "catalog {path} does not exist (has the tierfs daemon ever run with this configuration?)"
    )]
    NotFound {
        /// Catalog file.
        path: PathBuf,
    },
    /// Another process (normally another tierfs daemon) holds the catalog.
    #[error("catalog {path} is locked by another process (is another tierfs daemon using it?)")]
    Locked {
        /// Catalog file.
        path: PathBuf,
    },
    /// The file exists but is not a tierfs catalog.
    #[error("catalog {path} is not a tierfs catalog ({reason})")]
    NotACatalog {
        /// Catalog file.
        path: PathBuf,
        /// Why it was rejected.
        reason: String,
    },
    /// The catalog was written by a newer tierfs.
    #[error(
        "catalog {path}: schema version {found} is newer than this tierfs (max {max}); upgrade tierfs"
    )]
    TooNew {
        /// Catalog file.
        path: PathBuf,
        /// Version recorded in the catalog.
        found: u32,
        /// Newest version this build understands.
        max: u32,
    },
    /// Upgrading the schema failed; the catalog is left at the previous version.
    #[error("catalog {path}: migration to schema version {version} failed: {source}")]
    Migration {
        /// Catalog file.
        path: PathBuf,
        /// Version whose migration failed.
        version: u32,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// An SQLite operation failed.
    #[error("catalog {path}: {op} failed: {source}")]
    Sqlite {
        /// Catalog file.
        path: PathBuf,
        /// What was being done, e.g. "open", "status query".
        op: &'static str,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// A file-system operation on the catalog file failed.
    #[error("catalog {path}: {op}: {source}")]
    Io {
        /// Catalog file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The hot directory could not be scanned by `reconcile`.
    #[error("catalog {path}: cannot scan {dir}: {source}")]
    Scan {
        /// Catalog file.
        path: PathBuf,
        /// Directory being scanned.
        dir: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Writes queued with `send` failed to commit (reported by `flush`).
    #[error(
        "catalog {path}: {failed} queued write(s) failed since the last flush; first error: {first}"
    )]
    Write {
        /// Catalog file.
        path: PathBuf,
        /// How many writes (events or batches) failed.
        failed: u64,
        /// The first failure's message.
        first: String,
    },
    /// The writer thread has stopped (after `close`, or because it panicked).
    #[error("catalog {path} is closed (its writer thread has stopped)")]
    Closed {
        /// Catalog file.
        path: PathBuf,
    },
    /// The hot directory could not be watched.
    #[error("catalog {path}: cannot watch {dir}: {source}")]
    Watch {
        /// Catalog file.
        path: PathBuf,
        /// Directory being watched.
        dir: PathBuf,
        /// notify's error.
        source: notify::Error,
    },
}

impl CatalogError {
    /// Wraps an SQLite error, turning "busy"/"locked" into [`CatalogError::Locked`]
    /// and "not a database" into [`CatalogError::NotACatalog`].
    pub(crate) fn sqlite(
        path: &std::path::Path,
        op: &'static str,
        source: rusqlite::Error,
    ) -> Self {
        use rusqlite::ErrorCode;
        let path = path.to_path_buf();
        match source.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                CatalogError::Locked { path }
            }
            Some(ErrorCode::NotADatabase) => CatalogError::NotACatalog {
                path,
                reason: "not an SQLite database".into(),
            },
            _ => CatalogError::Sqlite { path, op, source },
        }
    }
}
