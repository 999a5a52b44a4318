//! Catalog backups to the remotes, for disaster recovery.
//!
//! Tiering is not backup: the stubs and the catalog live on the hot disk, so
//! losing it loses the namespace of every cold file. A catalog backup is a
//! consistent SQLite snapshot (`VACUUM INTO`, safe while the daemon writes)
//! enriched with every file's permission bits, owner and access time and
//! with the hot dir's directories, compressed with zstd and stored on every
//! remote at `<prefix>/catalog/<UTC timestamp>.db.zst`. Each upload is read
//! back and compared before older backups beyond `catalog_backup_keep` are
//! deleted. `tierctl rebuild` (`rebuild.rs`) recreates the hot dir from one.
//!
//! The daemon takes one every `catalog_backup_interval` (default 6h, first
//! one after one interval); `tierctl backup` takes one at any time, with or
//! without the daemon.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::TierError;
use crate::catalog::CatalogError;
use crate::catalog::backup::{DirAttrs, FileAttrs, Snapshot};
use crate::remote::{Remote, RemoteError};
use crate::sys;

/// zstd level for catalog backups: fast, and SQLite pages compress well.
const ZSTD_LEVEL: i32 = 3;

/// Why a backup or a rebuild could not be done.
#[derive(Debug, thiserror::Error)]
pub enum DrError {
    /// A tiering operation failed.
    #[error(transparent)]
    Tier(#[from] TierError),
    /// The object store failed.
    #[error(transparent)]
    Remote(#[from] RemoteError),
    /// The catalog (live, snapshot or restored) failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// A local file operation failed.
    #[error("{path}: {op}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// The request cannot be carried out as asked (the message says why and what to do).
    #[error("{0}")]
    Refused(String),
    /// A catalog backup was refused: its content is not a usable catalog.
    #[error("catalog backup `{remote}:{key}` refused: {message}")]
    Backup {
        /// The remote it was read from.
        remote: String,
        /// Its key.
        key: String,
        /// Why.
        message: String,
    },
}

/// Shorthand for [`DrError::Io`].
pub(crate) fn dr_io(path: &Path, op: &'static str) -> impl FnOnce(std::io::Error) -> DrError {
    let path = path.to_path_buf();
    move |source| DrError::Io { path, op, source }
}

/// One backup stored on one remote.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredBackup {
    /// The remote's name.
    pub remote: String,
    /// The backup's key.
    pub key: String,
    /// Older backups deleted from this remote afterwards.
    pub pruned: Vec<String>,
}

/// What `tierctl backup` (or a scheduled backup) did.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct BackupReport {
    /// Files in the catalog.
    pub files: u64,
    /// Of those, files whose mode, owner and access time were recorded (the
    /// others were missing from the hot dir at that moment).
    pub files_with_attributes: u64,
    /// Directories recorded.
    pub dirs: u64,
    /// Size of the SQLite snapshot.
    pub snapshot_bytes: u64,
    /// Size after compression (what each remote stores).
    pub compressed_bytes: u64,
    /// Where the backup was stored and verified.
    pub stored: Vec<StoredBackup>,
    /// Remotes the backup could not be stored on, with the reason.
    pub failures: Vec<String>,
    /// Wall time.
    pub seconds: f64,
}

/// Takes a backup of the catalog at `catalog` (describing `hot_dir`) and
/// stores it on every remote, keeping the newest `keep` there. A remote that
/// fails is listed in [`BackupReport::failures`]; the others still get it.
pub async fn backup_catalog(
    catalog: &Path,
    hot_dir: &Path,
    remotes: &BTreeMap<String, Remote>,
    keep: usize,
) -> Result<BackupReport, DrError> {
    let started = Instant::now();
    if remotes.is_empty() {
        return Err(DrError::Refused(
            "no remote is configured: a catalog backup is stored on the remotes ([remote.NAME])"
                .into(),
        ));
    }
    let taken_at = SystemTime::now();
    let (catalog_path, hot) = (catalog.to_path_buf(), hot_dir.to_path_buf());
    let (mut report, compressed) =
        tokio::task::spawn_blocking(move || snapshot_and_compress(&catalog_path, &hot))
            .await
            .map_err(|e| DrError::Refused(format!("catalog snapshot task failed: {e}")))??;
    let compressed = Bytes::from(compressed);
    let want = blake3::hash(&compressed);
    for (name, remote) in remotes {
        let key = remote.catalog_backup_key(taken_at);
        match store_verified(remote, &key, &compressed, &want).await {
            Ok(()) => {
                let pruned = match prune(remote, &key, keep).await {
                    Ok(p) => p,
                    Err(e) => {
                        report
                            .failures
                            .push(format!("{name}: pruning old backups: {e}"));
                        Vec::new()
                    }
                };
                tracing::info!(remote = %name, key, bytes = compressed.len(), "catalog backed up");
                report.stored.push(StoredBackup {
                    remote: name.clone(),
                    key,
                    pruned,
                });
            }
            Err(e) => {
                tracing::error!(remote = %name, key, error = %e, "catalog backup failed");
                report.failures.push(format!("{name}: {e}"));
            }
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Snapshot, attributes, compression: the blocking part of a backup.
fn snapshot_and_compress(
    catalog: &Path,
    hot_dir: &Path,
) -> Result<(BackupReport, Vec<u8>), DrError> {
    let tmp = temp_beside(catalog, "backup");
    let result = (|| {
        let mut snap = Snapshot::take(catalog, &tmp)?;
        // Attributes are read relative to a descriptor of the hot dir,
        // beneath it and without following symlinks (docs/security.md).
        let hot = File::open(hot_dir).map_err(dr_io(hot_dir, "open hot dir"))?;
        let dirs = walk_dirs(&hot, hot_dir);
        let files_with_attributes = snap.record_attributes(|rel| file_attrs(&hot, rel), &dirs)?;
        let files = snap.file_count()?;
        let path = snap.finish()?;
        let snapshot_bytes = std::fs::metadata(&path)
            .map_err(dr_io(&path, "stat snapshot"))?
            .len();
        let input = File::open(&path).map_err(dr_io(&path, "open snapshot"))?;
        let compressed = zstd::stream::encode_all(input, ZSTD_LEVEL)
            .map_err(dr_io(&path, "compress snapshot"))?;
        Ok((
            BackupReport {
                files,
                files_with_attributes,
                dirs: dirs.len() as u64,
                snapshot_bytes,
                compressed_bytes: compressed.len() as u64,
                ..Default::default()
            },
            compressed,
        ))
    })();
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let mut p = tmp.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
    result
}

/// A fresh temporary path beside `file` (same directory, so same admin-only
/// permissions and file system).
pub(crate) fn temp_beside(file: &Path, what: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{what}-{}-{nanos}.tmp", std::process::id()));
    file.with_file_name(name)
}

/// Mode, owner and access time of the regular file at `rel` beneath `hot`
/// (reached without following a symlink).
fn file_attrs(hot: &File, rel: &Path) -> Option<FileAttrs> {
    let fd = sys::open_beneath(hot.as_fd(), rel, libc::O_PATH).ok()?;
    let st = sys::stat_fd(fd.as_fd()).ok()?;
    (st.st_mode & libc::S_IFMT == libc::S_IFREG).then(|| FileAttrs {
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        atime_ns: st.st_atime.saturating_mul(1_000_000_000) + st.st_atime_nsec,
    })
}

/// Every directory below the hot dir open as `hot` (`root` names it in
/// messages), relative to it, each reached beneath it without following a
/// symlink. Directories that vanish or cannot be read during the walk are
/// skipped.
fn walk_dirs(hot: &File, root: &Path) -> Vec<DirAttrs> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = if rel.as_os_str().is_empty() {
            hot.try_clone().map(std::os::fd::OwnedFd::from)
        } else {
            sys::open_beneath(hot.as_fd(), &rel, libc::O_RDONLY | libc::O_DIRECTORY)
        };
        // Listing through /proc/self/fd/N reads exactly the directory the
        // descriptor holds; entries are stat-ed relative to it.
        let entries = dir.and_then(|fd| {
            let listed = std::fs::read_dir(std::ffi::OsStr::from_bytes(
                sys::proc_path(fd.as_fd()).as_bytes(),
            ));
            drop(fd);
            listed
        });
        let entries = match entries {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(dir = %root.join(&rel).display(), error = %e, "catalog backup: directory not recorded");
                continue;
            }
        };
        for entry in entries.flatten() {
            let Ok(m) = entry.metadata() else { continue };
            if !m.is_dir() {
                continue;
            }
            let child = rel.join(entry.file_name());
            out.push(DirAttrs {
                path: child.clone(),
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                mtime_ns: m.mtime().saturating_mul(1_000_000_000) + m.mtime_nsec(),
                atime_ns: m.atime().saturating_mul(1_000_000_000) + m.atime_nsec(),
            });
            stack.push(child);
        }
    }
    out
}

/// Uploads `data` to `key` and reads it back: the stored bytes must hash to `want`.
async fn store_verified(
    remote: &Remote,
    key: &str,
    data: &Bytes,
    want: &blake3::Hash,
) -> Result<(), RemoteError> {
    remote.put_bytes(key, data.clone()).await?;
    let back = remote.get_bytes(key).await?;
    let got = blake3::hash(&back);
    if back.len() != data.len() || got != *want {
        return Err(RemoteError::Corrupt {
            remote: remote.name().to_string(),
            key: key.to_string(),
            expected: format!("size {}, blake3 {}", data.len(), want.to_hex()),
            got: format!("size {}, blake3 {}", back.len(), got.to_hex()),
        });
    }
    Ok(())
}

/// Deletes the oldest backups on `remote` so that `keep` remain (never `newest`).
async fn prune(remote: &Remote, newest: &str, keep: usize) -> Result<Vec<String>, RemoteError> {
    let backups = remote.list_catalog_backups().await?;
    let excess = backups.len().saturating_sub(keep.max(1));
    let mut pruned = Vec::new();
    for old in backups.into_iter().take(excess) {
        if old.key == newest {
            continue;
        }
        remote.delete(&old.key).await?;
        pruned.push(old.key);
    }
    Ok(pruned)
}

/// Backs the catalog up every `every` (the first one after one interval),
/// logging the outcome. Runs until the runtime stops.
pub async fn scheduled_backups(
    catalog: PathBuf,
    hot_dir: PathBuf,
    remotes: BTreeMap<String, Remote>,
    every: Duration,
    keep: usize,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        match backup_catalog(&catalog, &hot_dir, &remotes, keep).await {
            Ok(r) if r.failures.is_empty() => {}
            Ok(r) => tracing::error!(
                failures = %r.failures.join("; "),
                "scheduled catalog backup failed on some remotes"
            ),
            Err(e) => tracing::error!(error = %e, "scheduled catalog backup failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::backup::RestoredCatalog;
    use crate::catalog::{Catalog, CatalogOptions, FileEvent};
    use crate::config::RemoteConfig;
    use std::os::unix::fs::PermissionsExt;

    #[tokio::test]
    async fn backup_is_stored_verified_restorable_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let hot = dir.path().join("hot");
        std::fs::create_dir_all(hot.join("d/e")).unwrap();
        std::fs::write(hot.join("d/e/f"), b"12345").unwrap();
        std::fs::set_permissions(hot.join("d/e/f"), std::fs::Permissions::from_mode(0o751))
            .unwrap();
        std::fs::set_permissions(hot.join("d"), std::fs::Permissions::from_mode(0o700)).unwrap();
        let db = dir.path().join("c.db");
        let catalog = Catalog::open(&db, CatalogOptions::default()).unwrap();
        catalog.send(FileEvent::Upsert {
            path: "d/e/f".into(),
            size: 5,
            mtime_ns: 1,
            ino: 1,
        });
        catalog.flush().unwrap();
        let bucket = dir.path().join("bucket");
        std::fs::create_dir(&bucket).unwrap();
        let remote = Remote::from_config(&RemoteConfig {
            name: "local".into(),
            url: format!("file://{}", bucket.display()),
            ..Default::default()
        })
        .unwrap();
        let remotes = BTreeMap::from([("local".to_string(), remote.clone())]);

        let mut keys = Vec::new();
        for _ in 0..3 {
            let r = backup_catalog(&db, &hot, &remotes, 2).await.unwrap();
            assert!(r.failures.is_empty(), "{:?}", r.failures);
            assert_eq!((r.files, r.files_with_attributes, r.dirs), (1, 1, 2));
            assert!(r.compressed_bytes > 0 && r.compressed_bytes < r.snapshot_bytes);
            keys.push(r.stored[0].key.clone());
        }
        let left: Vec<String> = remote
            .list_catalog_backups()
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(left, keys[1..].to_vec(), "the oldest one is pruned");
        // No temporary snapshot is left beside the catalog.
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");

        let data = remote.get_bytes(&keys[2]).await.unwrap();
        let restored_path = dir.path().join("restored.db");
        let mut out = File::create(&restored_path).unwrap();
        zstd::stream::copy_decode(&data[..], &mut out).unwrap();
        drop(out);
        let restored = RestoredCatalog::open(&restored_path).unwrap();
        let files = restored.files().unwrap();
        assert_eq!(files[0].path, Path::new("d/e/f"));
        assert_eq!(files[0].attrs.map(|a| a.mode), Some(0o751));
        let dirs = restored.dirs().unwrap();
        assert_eq!(dirs[0].attrs.path, Path::new("d"));
        assert_eq!(dirs[0].attrs.mode, 0o700);
        catalog.close().unwrap();
    }

    #[tokio::test]
    async fn backup_without_remotes_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = backup_catalog(&dir.path().join("c.db"), dir.path(), &BTreeMap::new(), 3)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("no remote is configured"), "{e}");
    }
}
