//! PATH arguments of the tiering commands, and read-only catalog access.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rusqlite::{Connection, OpenFlags};
use tierfs::catalog::{CatalogError, CatalogReader, path_key};
use tierfs::config::Config;

use crate::UsageError;
use crate::mount_path::{Root, to_mount_relative};

/// How long a read waits while the daemon holds a write lock.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// What is known about the mountpoint when resolving paths.
#[derive(Debug, Clone, Copy)]
pub enum Mount<'a> {
    /// The running daemon's mountpoint.
    Known(&'a Path),
    /// Not known; the text says why (for the error message).
    Unknown(&'a str),
}

/// Turns the user's PATH arguments into paths relative to the mount root:
/// relative ones are taken as such, absolute ones must lie under the
/// mountpoint or the hot dir.
pub fn resolve(
    config: &Config,
    inputs: &[PathBuf],
    mount: Mount<'_>,
) -> Result<Vec<PathBuf>, UsageError> {
    let hot = Root {
        name: "the hot dir",
        path: &config.hot_dir,
    };
    inputs
        .iter()
        .map(|input| {
            match mount {
                Mount::Known(path) => {
                    let mount = Root {
                        name: "the mountpoint",
                        path,
                    };
                    to_mount_relative(input, &[mount, hot], "")
                }
                Mount::Unknown(why) => to_mount_relative(input, &[hot], why),
            }
            .map_err(UsageError)
        })
        .collect()
}

/// [`resolve`] for commands that work without the daemon: asks the daemon for
/// its mountpoint only if an absolute path is not under the hot dir.
pub fn resolve_without_daemon(config: &Config, inputs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let first_try = resolve(config, inputs, Mount::Unknown(""));
    if first_try.is_ok() || inputs.iter().all(|p| !p.is_absolute()) {
        return Ok(first_try?);
    }
    let resolved = match crate::daemon::status(config) {
        Ok(Some(status)) => resolve(config, inputs, Mount::Known(&status.mountpoint)),
        Ok(None) => resolve(
            config,
            inputs,
            Mount::Unknown("the mountpoint is unknown while the daemon is not running"),
        ),
        Err(e) => resolve(
            config,
            inputs,
            Mount::Unknown(&format!("the mountpoint is unknown: {e}")),
        ),
    };
    Ok(resolved?)
}

/// A read-only connection to the catalog, `None` if the catalog does not
/// exist yet. Works while the daemon writes (WAL). A running daemon commits
/// what the mount reported first (see [`crate::daemon::sync_catalog`]).
pub fn open_catalog(config: &Config) -> anyhow::Result<Option<Connection>> {
    crate::daemon::sync_catalog(config);
    // The reader checks that the file is a tierfs catalog of a known version.
    match CatalogReader::open(&config.catalog) {
        Ok(_) => {}
        Err(CatalogError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(&config.catalog, flags)
        .with_context(|| format!("cannot open catalog {}", config.catalog.display()))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .with_context(|| format!("cannot configure catalog {}", config.catalog.display()))?;
    Ok(Some(conn))
}

/// Whether the catalog has a file at `path` or below it (a directory).
pub fn has_files_at_or_below(conn: &Connection, path: &Path) -> rusqlite::Result<bool> {
    let Some(key) = path_key(path) else {
        return Ok(false);
    };
    // Every path strictly below `key` sorts between `key/` and `key0`.
    let mut below = key.clone();
    below.push(b'/');
    let mut after = key.clone();
    after.push(b'0');
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM files WHERE path = ?1 OR (path > ?2 AND path < ?3))",
    )?
    .query_row(rusqlite::params![key, below, after], |r| r.get(0))
}

/// Fails with a usage error naming every path the catalog knows nothing
/// about, so a typo does nothing rather than silently matching no file.
pub fn require_catalogued(config: &Config, paths: &[PathBuf]) -> anyhow::Result<()> {
    let missing: Vec<&PathBuf> = match open_catalog(config)? {
        None => paths.iter().collect(),
        Some(conn) => {
            let mut missing = Vec::new();
            for path in paths {
                let known = has_files_at_or_below(&conn, path).with_context(|| {
                    format!(
                        "cannot look up {} in catalog {}",
                        path.display(),
                        config.catalog.display()
                    )
                })?;
                if !known {
                    missing.push(path);
                }
            }
            missing
        }
    };
    if missing.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = missing.iter().map(|p| p.display().to_string()).collect();
    let noun = if list.len() == 1 { "path" } else { "paths" };
    Err(UsageError(format!(
        "the catalog ({}) has no file at or below {noun} {}; nothing was done \
         (paths are relative to the mount root)",
        config.catalog.display(),
        list.join(", ")
    ))
    .into())
}
