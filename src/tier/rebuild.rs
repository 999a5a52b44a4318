//! `tierctl rebuild`: recreate a lost hot dir and catalog from a catalog
//! backup on a remote (disaster recovery).
//!
//! Preconditions (checked, with a message saying what to do): the daemon is
//! not running, the configured catalog does not exist, and the hot dir is
//! empty. Then:
//!
//! 1. download the newest backup (or the one asked for), decompress it to a
//!    temporary file beside the catalog and check that it is an intact
//!    tierfs catalog;
//! 2. list the remotes' objects; a file is recoverable if it had a verified
//!    cloud copy (`premigrated`, `releasing`, `cold`, `recalling`) and that
//!    object is still listed with the right size. Files that were only
//!    local (`hot`, `uploading`) or whose object is gone are reported by
//!    path and dropped from the catalog;
//! 3. create the directories, and every recoverable file as a stub: a sparse
//!    file of the original size carrying the stub marker (written and
//!    synced before anything else refers to it), then owner, mode and times;
//! 4. give directories their owner, mode and times (deepest first);
//! 5. mark the recreated files `cold` in the restored catalog and move it
//!    into place last, so an interrupted rebuild never leaves a catalog that
//!    claims files it did not recreate.
//!
//! After that `tierfs mount` serves every stub by ranged, verified reads.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::backup::{DrError, dr_io, temp_beside};
use super::stub::{self, StubMarker};
use crate::catalog::backup::{DirAttrs, FileAttrs, RestoredCatalog, RestoredFile};
use crate::config::Config;
use crate::fs::sys;
use crate::remote::Remote;

/// What `tierctl rebuild` is asked to do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebuildRequest {
    /// The remote holding the backup (`[remote.NAME]`).
    pub remote: String,
    /// A backup key (or its file name under `<prefix>/catalog/`); `None` = the newest.
    pub backup_key: Option<String>,
}

/// A file that could not be recreated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostFile {
    /// Path relative to the mount root (lossy UTF-8).
    pub path: String,
    /// Why.
    pub reason: String,
}

/// What a rebuild did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RebuildReport {
    /// The backup used.
    pub backup_key: String,
    /// Its compressed size.
    pub backup_bytes: u64,
    /// Files recreated as stubs.
    pub files_restored: u64,
    /// Their total size.
    pub bytes_restored: u64,
    /// Of those, files the backup had no mode/owner for (given 0644, root).
    pub files_without_attributes: u64,
    /// Directories created.
    pub dirs_created: u64,
    /// Files that cannot be recovered, with the reason.
    pub lost: Vec<LostFile>,
    /// Wall time.
    pub seconds: f64,
}

/// States in which a file has a verified cloud copy of its current content.
const HAS_COPY: [&str; 4] = ["premigrated", "releasing", "cold", "recalling"];

/// Runs a rebuild for `config` (see the module docs).
pub async fn rebuild(config: &Config, req: &RebuildRequest) -> Result<RebuildReport, DrError> {
    let started = Instant::now();
    check_preconditions(config)?;
    let Some(remote_cfg) = config.remotes.get(&req.remote) else {
        let names: Vec<&str> = config.remotes.keys().map(String::as_str).collect();
        return Err(DrError::Refused(format!(
            "no remote named `{}` in {} (configured: {})",
            req.remote,
            config.source.display(),
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        )));
    };
    let remote = Remote::from_config(remote_cfg).map_err(super::TierError::from)?;
    let key = match &req.backup_key {
        Some(k) if k.starts_with(&remote.catalog_prefix()) => k.clone(),
        Some(k) => format!("{}{k}", remote.catalog_prefix()),
        None => remote
            .list_catalog_backups()
            .await?
            .pop()
            .map(|o| o.key)
            .ok_or_else(|| {
                DrError::Refused(format!(
                    "remote `{}` has no catalog backup under `{}`; nothing to rebuild from",
                    req.remote,
                    remote.catalog_prefix()
                ))
            })?,
    };
    let data = remote.get_bytes(&key).await?;
    tracing::info!(remote = %req.remote, key, bytes = data.len(), "catalog backup downloaded");

    let tmp = temp_beside(&config.catalog, "rebuild");
    let result = restore(config, &remote, &tmp, &data).await;
    let mut report = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    report.backup_key = key;
    report.backup_bytes = data.len() as u64;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

fn check_preconditions(config: &Config) -> Result<(), DrError> {
    for suffix in ["", "-wal"] {
        let mut p = config.catalog.clone().into_os_string();
        p.push(suffix);
        let p = PathBuf::from(p);
        if p.exists() {
            return Err(DrError::Refused(format!(
                "{} exists: rebuild writes a new catalog and never overwrites one; \
                 move it away (or set `catalog` to a new path) and stop any tierfs daemon using it",
                p.display()
            )));
        }
    }
    let entries = std::fs::read_dir(&config.hot_dir)
        .map_err(dr_io(&config.hot_dir, "list hot dir"))?
        .count();
    if entries > 0 {
        return Err(DrError::Refused(format!(
            "hot_dir {} is not empty ({entries} entries): rebuild recreates the namespace \
             in an empty directory",
            config.hot_dir.display()
        )));
    }
    Ok(())
}

async fn restore(
    config: &Config,
    remote: &Remote,
    tmp: &Path,
    data: &[u8],
) -> Result<RebuildReport, DrError> {
    {
        let mut out = File::options()
            .write(true)
            .create_new(true)
            .open(tmp)
            .map_err(dr_io(tmp, "create restored catalog"))?;
        zstd::stream::copy_decode(data, &mut out).map_err(dr_io(tmp, "decompress backup"))?;
        out.sync_all().map_err(dr_io(tmp, "fsync"))?;
    }
    let restored = RestoredCatalog::open(tmp)?;
    let files = restored.files()?;
    let dirs = restored.dirs()?;

    // Which copies still exist: one listing per configured remote in use.
    let mut listed: HashMap<String, HashMap<String, u64>> = HashMap::new();
    let mut used: HashMap<String, Remote> = HashMap::new();
    let wanted: HashSet<&str> = files
        .iter()
        .flat_map(|f| f.copies.iter().map(|(r, _)| r.as_str()))
        .collect();
    for name in wanted {
        let r = if name == remote.name() {
            remote.clone()
        } else if let Some(cfg) = config.remotes.get(name) {
            Remote::from_config(cfg).map_err(super::TierError::from)?
        } else {
            continue;
        };
        let objects = r.list_data().await?;
        listed.insert(
            name.to_string(),
            objects.into_iter().map(|o| (o.key, o.size)).collect(),
        );
        used.insert(name.to_string(), r);
    }

    let hot_fd = sys::open_at(
        // SAFETY: AT_FDCWD is valid for *at() calls; hot_dir is absolute.
        unsafe { BorrowedFd::borrow_raw(libc::AT_FDCWD) },
        config.hot_dir.as_os_str(),
        libc::O_PATH | libc::O_DIRECTORY,
        0,
    )
    .map_err(dr_io(&config.hot_dir, "open hot dir"))?;

    let mut report = RebuildReport::default();
    let mut created_dirs: BTreeMap<PathBuf, ()> = BTreeMap::new();
    for d in &dirs {
        make_dirs(hot_fd.as_fd(), &config.hot_dir, &d.path, &mut created_dirs)?;
    }
    let mut stubs = Vec::new();
    let mut lost_ids = Vec::new();
    for f in &files {
        match recoverable(f, &listed, &used) {
            Err(reason) => {
                lost_ids.push(f.id);
                report.lost.push(LostFile {
                    path: String::from_utf8_lossy(f.path.as_os_str().as_bytes()).into_owned(),
                    reason,
                });
            }
            Ok(hash) => {
                if let Some(parent) = f.path.parent() {
                    make_dirs(hot_fd.as_fd(), &config.hot_dir, parent, &mut created_dirs)?;
                }
                let ino = make_stub(hot_fd.as_fd(), &config.hot_dir, f, &hash)?;
                if f.attrs.is_none() {
                    report.files_without_attributes += 1;
                }
                report.files_restored += 1;
                report.bytes_restored += f.size;
                stubs.push((f.id, ino));
            }
        }
    }
    // Deepest first, so setting a child's times does not change its parent's.
    let mut by_depth: Vec<&DirAttrs> = dirs.iter().collect();
    by_depth.sort_by_key(|d| std::cmp::Reverse(d.path.components().count()));
    for d in by_depth {
        set_dir_attrs(hot_fd.as_fd(), &config.hot_dir, d)?;
    }
    report.dirs_created = created_dirs.len() as u64;
    File::open(&config.hot_dir)
        .and_then(|d| d.sync_all())
        .map_err(dr_io(&config.hot_dir, "fsync hot dir"))?;

    restored.finish(&stubs, &lost_ids)?;
    std::fs::rename(tmp, &config.catalog)
        .map_err(dr_io(&config.catalog, "move restored catalog into place"))?;
    if let Some(parent) = config.catalog.parent() {
        File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(dr_io(parent, "fsync"))?;
    }
    for l in &report.lost {
        tracing::warn!(path = %l.path, reason = %l.reason, "not recoverable");
    }
    Ok(report)
}

/// The content hash to give `f`'s stub, or why it cannot be recovered.
fn recoverable(
    f: &RestoredFile,
    listed: &HashMap<String, HashMap<String, u64>>,
    remotes: &HashMap<String, Remote>,
) -> Result<blake3::Hash, String> {
    let hash = match (&f.blake3, HAS_COPY.contains(&f.state.as_str())) {
        (Some(h), true) => blake3::Hash::from_bytes(*h),
        _ => {
            return Err(format!(
                "was `{}` (only on the lost disk, no cloud copy)",
                f.state
            ));
        }
    };
    let present = f.copies.iter().any(|(r, k)| {
        listed
            .get(r)
            .and_then(|objects| objects.get(k))
            // Encrypted remotes store more bytes than the content has.
            .is_some_and(|&size| remotes.get(r).map(|r| r.stored_size(f.size)) == Some(size))
    });
    if !present {
        let names: Vec<String> = f.copies.iter().map(|(r, k)| format!("{r}:{k}")).collect();
        return Err(if names.is_empty() {
            "no verified cloud copy is recorded".into()
        } else {
            format!(
                "its object is missing (or has the wrong size) on every configured remote ({})",
                names.join(", ")
            )
        });
    }
    Ok(hash)
}

/// Creates `rel` and its missing parents (mode 0700 until their attributes
/// are applied).
fn make_dirs(
    hot_fd: BorrowedFd<'_>,
    hot_dir: &Path,
    rel: &Path,
    created: &mut BTreeMap<PathBuf, ()>,
) -> Result<(), DrError> {
    let mut so_far = PathBuf::new();
    for part in rel.components() {
        so_far.push(part);
        if created.contains_key(&so_far) {
            continue;
        }
        match sys::mkdir_at(hot_fd, so_far.as_os_str(), 0o700) {
            Ok(()) => {
                created.insert(so_far.clone(), ());
            }
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                created.insert(so_far.clone(), ());
            }
            Err(e) => return Err(dr_io(&hot_dir.join(&so_far), "create directory")(e)),
        }
    }
    Ok(())
}

fn timespec(ns: i64) -> libc::timespec {
    libc::timespec {
        tv_sec: ns.div_euclid(1_000_000_000),
        tv_nsec: ns.rem_euclid(1_000_000_000),
    }
}

/// Creates the stub of `f`: marker first (synced), then size, owner, mode
/// and times. Returns its inode number.
fn make_stub(
    hot_fd: BorrowedFd<'_>,
    hot_dir: &Path,
    f: &RestoredFile,
    hash: &blake3::Hash,
) -> Result<u64, DrError> {
    let full = hot_dir.join(&f.path);
    let fd: OwnedFd = sys::open_at(
        hot_fd,
        f.path.as_os_str(),
        libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        0o600,
    )
    .map_err(dr_io(&full, "create stub"))?;
    let file = File::from(fd);
    stub::write_marker(&file, &StubMarker::new(hash, f.size))
        .map_err(dr_io(&full, "write stub marker"))?;
    file.sync_all().map_err(dr_io(&full, "fsync"))?;
    file.set_len(f.size).map_err(dr_io(&full, "set size"))?;
    let attrs = f.attrs.unwrap_or(FileAttrs {
        mode: 0o644,
        uid: 0,
        gid: 0,
        atime_ns: f.mtime_ns,
    });
    // chown first: it clears set-ID bits, which chmod then restores.
    sys::chown_fd(file.as_fd(), attrs.uid, attrs.gid).map_err(dr_io(&full, "chown"))?;
    sys::chmod_fd(file.as_fd(), attrs.mode).map_err(dr_io(&full, "chmod"))?;
    sys::utimens_fd(
        file.as_fd(),
        &[timespec(attrs.atime_ns), timespec(f.mtime_ns)],
    )
    .map_err(dr_io(&full, "set times"))?;
    file.sync_all().map_err(dr_io(&full, "fsync"))?;
    let st = sys::stat_fd(file.as_fd()).map_err(dr_io(&full, "stat"))?;
    Ok(st.st_ino)
}

fn set_dir_attrs(hot_fd: BorrowedFd<'_>, hot_dir: &Path, d: &DirAttrs) -> Result<(), DrError> {
    let full = hot_dir.join(&d.path);
    let fd = sys::open_at(
        hot_fd,
        d.path.as_os_str(),
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        0,
    )
    .map_err(dr_io(&full, "open directory"))?;
    sys::chown_fd(fd.as_fd(), d.uid, d.gid).map_err(dr_io(&full, "chown"))?;
    sys::chmod_fd(fd.as_fd(), d.mode).map_err(dr_io(&full, "chmod"))?;
    sys::utimens_fd(fd.as_fd(), &[timespec(d.atime_ns), timespec(d.mtime_ns)])
        .map_err(dr_io(&full, "set times"))?;
    Ok(())
}
