//! Errors of the tiering engine.

use std::path::PathBuf;

use crate::catalog::CatalogError;
use crate::remote::RemoteError;

/// Why a tiering operation on a file failed.
#[derive(Debug, thiserror::Error)]
pub enum TierError {
    /// The object store failed.
    #[error(transparent)]
    Remote(#[from] RemoteError),
    /// The catalog failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// A local file operation failed.
    #[error("{path}: {op}: {source}")]
    Io {
        /// File (relative to the mount root).
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The file changed while it was being migrated; it stays local.
    #[error("{path}: changed during migration; left local")]
    Changed {
        /// File.
        path: PathBuf,
    },
    /// The catalogued path is not a regular file beneath the hot dir any
    /// more (a FIFO, device, directory or symlink took its place); nothing
    /// was done to it.
    #[error("{path}: not a regular file; left alone")]
    NotRegular {
        /// File.
        path: PathBuf,
    },
    /// The file at the catalogued path is not the catalogued file (another
    /// inode was put in its place beside the mount); nothing was done to it.
    #[error(
        "{path}: inode {found} is not the catalogued file (inode {catalogued}); left alone \
         (run `tierctl fsck` to re-check it)"
    )]
    NotCatalogued {
        /// File.
        path: PathBuf,
        /// The catalog row's inode number.
        catalogued: u64,
        /// The inode found at the path.
        found: u64,
    },
    /// A rule names a remote that is not configured.
    #[error("no remote named `{name}` in the config")]
    NoRemote {
        /// The missing name.
        name: String,
    },
    /// The remote was unreachable earlier in the same migration run, so this
    /// file was not tried; it stays local and is retried later.
    #[error(
        "remote `{name}` was unreachable earlier in this run; not tried (the file stays local)"
    )]
    RemoteDown {
        /// The remote's name.
        name: String,
    },
    /// No configured remote holds a valid copy of a cold file.
    #[error("{path}: no remote holds a valid copy ({detail})")]
    NoCopy {
        /// File.
        path: PathBuf,
        /// What the remotes answered.
        detail: String,
        /// Every copy failed for a reason that may pass (unreachable, timed out).
        transient: bool,
    },
}

impl TierError {
    /// The errno a FUSE request that needed this operation should fail with.
    pub fn errno(&self) -> i32 {
        match self {
            TierError::Remote(e) => e.errno(),
            TierError::Io { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
            _ => libc::EIO,
        }
    }

    /// Whether the same operation may succeed later without anyone doing
    /// anything (the remote was unreachable or timed out).
    pub fn is_transient(&self) -> bool {
        match self {
            TierError::Remote(e) => e.is_transient(),
            TierError::NoCopy { transient, .. } => *transient,
            TierError::RemoteDown { .. } => true,
            _ => false,
        }
    }

    /// Whether a local file was not there: nothing at its path, or a path
    /// component is no longer a directory (`ENOENT`, `ENOTDIR`).
    pub fn is_missing(&self) -> bool {
        matches!(self, TierError::Io { source, .. }
            if matches!(source.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)))
    }
}

/// Shorthand for building [`TierError::Io`].
pub(crate) fn io_err(
    path: &std::path::Path,
    op: &'static str,
) -> impl FnOnce(std::io::Error) -> TierError + use<> {
    let path = path.to_path_buf();
    move |source| TierError::Io { path, op, source }
}
