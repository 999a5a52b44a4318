//! `tierctl rebuild`: recreate a lost hot dir and catalog from a catalog
//! backup on a remote (disaster recovery).
//!
//! Preconditions (checked, with a message saying what to do): the daemon is
//! not running, the configured catalog does not exist, and the hot dir is
//! empty. Then:
//!
//! 1. download the newest backup (or the one asked for), decompress it to a
//!    temporary file beside the catalog, stopping at a size cap (absolute
//!    and a ratio: a zstd bomb never reaches the disk), and check that it is
//!    an intact tierfs catalog (header, `quick_check`, the expected tables,
//!    no triggers or views); on an encrypted remote the object must open
//!    with the remote's key. Then check every row, since the backup is
//!    untrusted input: paths must be relative and made of plain names
//!    ([`check_backup_path`]); modes, owners, sizes and hashes must be in
//!    range; refused rows are reported and dropped. Set-ID bits are never
//!    restored on files;
//! 2. list the remotes' objects; a file is recoverable if it had a verified
//!    cloud copy (`premigrated`, `releasing`, `cold`, `recalling`) and that
//!    object is still listed with the right size. Files that were only
//!    local (`hot`, `uploading`) or whose object is gone are reported by
//!    path and dropped from the catalog;
//! 3. create the directories, and every recoverable file as a stub, all
//!    beneath the hot dir's descriptor by an `O_NOFOLLOW` walk: a sparse
//!    file of the original size carrying the stub marker (written and
//!    synced before anything else refers to it), then owner, mode and times;
//! 4. give directories their owner, mode and times (deepest first);
//! 5. mark the recreated files `cold` in the restored catalog and move it
//!    into place last, so an interrupted rebuild never leaves a catalog that
//!    claims files it did not recreate.
//!
//! After that `tierfs mount` serves every stub by ranged, verified reads.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::backup::{DrError, dr_io, temp_beside};
use super::stub::{self, StubMarker};
use crate::catalog::backup::{DirAttrs, FileAttrs, RestoredCatalog, RestoredFile};
use crate::config::Config;
use crate::escape::{Escaped, escape_str};
use crate::remote::Remote;
use crate::sys;

/// What `tierctl rebuild` is asked to do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebuildRequest {
    /// The remote holding the backup (`[remote.NAME]`).
    pub remote: String,
    /// A backup key (or its file name under `<prefix>/catalog/`); `None` = the newest.
    pub backup_key: Option<String>,
    /// Largest decompressed catalog accepted, in bytes; `None` =
    /// [`DEFAULT_MAX_CATALOG_BYTES`].
    #[serde(default)]
    pub max_catalog_bytes: Option<u64>,
}

/// Default cap on a decompressed catalog backup (4 GiB: a catalog of tens
/// of millions of files).
pub const DEFAULT_MAX_CATALOG_BYTES: u64 = 4 << 30;
/// A backup may decompress to at most this many times its compressed size
/// (beyond [`RATIO_FLOOR`]). Real catalogs compress 3–20×; a zstd bomb
/// reaches 10,000× and more.
pub const MAX_RATIO: u64 = 1000;
/// Decompressed size always allowed whatever the ratio (small catalogs are
/// mostly empty pages and compress very well).
pub const RATIO_FLOOR: u64 = 64 << 20;
/// Longest path accepted from a backup (Linux `PATH_MAX` less the NUL).
pub const MAX_PATH_BYTES: usize = 4095;
/// Longest path component accepted from a backup (Linux `NAME_MAX`).
pub const MAX_NAME_BYTES: usize = 255;

/// A file that could not be recreated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostFile {
    /// Path relative to the mount root (exact bytes, see
    /// [`crate::escape::path_bytes`]).
    #[serde(with = "crate::escape::path_bytes")]
    pub path: PathBuf,
    /// Why.
    pub reason: String,
}

/// A row of the backup that was not used (or used with changes), because
/// its values are unsafe or impossible.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowNote {
    /// `file` or `directory`.
    pub kind: String,
    /// The row id (files) or 0 (directories).
    pub row: i64,
    /// The row's path, exactly as the backup has it (see
    /// [`crate::escape::path_bytes`]).
    #[serde(with = "crate::escape::path_bytes")]
    pub path: PathBuf,
    /// What is wrong and what rebuild did.
    pub reason: String,
}

impl std::fmt::Display for RowNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.kind == "file" {
            write!(f, "file row {} ", self.row)?;
        } else {
            write!(f, "{} row ", self.kind)?;
        }
        write!(
            f,
            "`{}`: {}",
            crate::escape::Escaped::path(&self.path),
            crate::escape::escape_str(&self.reason)
        )
    }
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
    /// Rows refused because their path, mode, owner or other values are
    /// unsafe (nothing was created for them).
    #[serde(default)]
    pub rejected: Vec<RowNote>,
    /// Rows restored with a safer mode than recorded (set-ID bits dropped).
    #[serde(default)]
    pub adjusted: Vec<RowNote>,
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
    let max = req.max_catalog_bytes.unwrap_or(DEFAULT_MAX_CATALOG_BYTES);
    // The compressed object can be no larger than what it may decompress to.
    if let Some(info) = remote.head(&key).await?
        && info.size
            > max
                .saturating_add(crate::remote::crypt::HEADER)
                .saturating_mul(2)
    {
        return Err(DrError::Backup {
            remote: req.remote.clone(),
            key,
            message: format!(
                "the object is {} bytes, more than the {max}-byte catalog limit \
                 (--max-catalog-size) allows",
                info.size
            ),
        });
    }
    let data = remote.get_bytes(&key).await?;
    tracing::info!(remote = %req.remote, key, bytes = data.len(), "catalog backup downloaded");

    let tmp = temp_beside(&config.catalog, "rebuild");
    let result = restore(config, &remote, &tmp, &data, max).await;
    let mut report = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            // Whatever went wrong with the backup's content, say which backup.
            return Err(match e {
                e @ (DrError::Catalog(_) | DrError::Refused(_)) => DrError::Backup {
                    remote: req.remote.clone(),
                    key,
                    message: e.to_string(),
                },
                e => e,
            });
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

/// Decompresses `data` into `out`, refusing (before writing past it) more
/// than `cap` bytes. Returns the decompressed size.
pub fn decompress_capped(
    data: &[u8],
    out: &mut impl std::io::Write,
    cap: u64,
) -> Result<u64, String> {
    use std::io::Read;
    let mut decoder =
        zstd::stream::read::Decoder::new(data).map_err(|e| format!("not a zstd stream: {e}"))?;
    let mut buf = vec![0u8; 256 << 10];
    let mut total: u64 = 0;
    loop {
        let n = match decoder.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("does not decompress (truncated or corrupt): {e}")),
        };
        total += n as u64;
        if total > cap {
            return Err(format!(
                "decompresses to more than {cap} bytes ({} compressed): refused as a \
                 decompression bomb (raise --max-catalog-size if the catalog really is that big)",
                data.len()
            ));
        }
        out.write_all(&buf[..n])
            .map_err(|e| format!("writing the decompressed catalog: {e}"))?;
    }
    if total == 0 {
        return Err("decompresses to nothing".into());
    }
    Ok(total)
}

/// The decompressed size allowed for a backup of `compressed` bytes.
pub fn decompressed_cap(compressed: u64, max: u64) -> u64 {
    max.min(RATIO_FLOOR.max(compressed.saturating_mul(MAX_RATIO)))
}

/// Checks a path read from a backup: relative, non-empty, no empty, `.` or
/// `..` component, no NUL, at most [`MAX_PATH_BYTES`] with components of at
/// most [`MAX_NAME_BYTES`]. Only such a path can be created beneath the hot
/// dir by a component-by-component walk.
pub fn check_backup_path(bytes: &[u8]) -> Result<(), String> {
    if bytes.is_empty() {
        return Err("the path is empty".into());
    }
    if bytes.len() > MAX_PATH_BYTES {
        return Err(format!(
            "the path is {} bytes long, more than {MAX_PATH_BYTES}",
            bytes.len()
        ));
    }
    if bytes.contains(&0) {
        return Err("the path contains a NUL byte".into());
    }
    if bytes[0] == b'/' {
        return Err("the path is absolute (backups hold paths relative to the hot dir)".into());
    }
    for part in bytes.split(|&b| b == b'/') {
        match part {
            b"" => return Err("the path has an empty component (`//` or a trailing `/`)".into()),
            b"." | b".." => {
                return Err(format!(
                    "the path has a `{}` component",
                    String::from_utf8_lossy(part)
                ));
            }
            p if p.len() > MAX_NAME_BYTES => {
                return Err(format!(
                    "a component is {} bytes long, more than {MAX_NAME_BYTES}",
                    p.len()
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Set-ID and sticky bits are never restored on files: a hostile backup
/// would otherwise create set-user-ID-root programs. Directories keep
/// set-group-ID and sticky (they grant no privilege).
const FILE_MODE_KEPT: u32 = 0o777;
const DIR_MODE_KEPT: u32 = 0o3777;

async fn restore(
    config: &Config,
    remote: &Remote,
    tmp: &Path,
    data: &[u8],
    max: u64,
) -> Result<RebuildReport, DrError> {
    {
        let mut out = File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(tmp)
            .map_err(dr_io(tmp, "create restored catalog"))?;
        decompress_capped(data, &mut out, decompressed_cap(data.len() as u64, max))
            .map_err(DrError::Refused)?;
        out.sync_all().map_err(dr_io(tmp, "fsync"))?;
    }
    let restored = RestoredCatalog::open(tmp)?;
    let mut report = RebuildReport::default();
    let mut rejected_ids = Vec::new();
    let mut files = Vec::new();
    let mut seen_paths = HashSet::new();
    for mut f in restored.files()? {
        let bytes = f.path.as_os_str().as_bytes();
        let verdict = check_backup_path(bytes)
            .and_then(|()| f.problem.clone().map_or(Ok(()), Err))
            .and_then(|()| {
                if seen_paths.insert(f.path.clone()) {
                    Ok(())
                } else {
                    Err("a second row with the same path".into())
                }
            });
        if let Err(reason) = verdict {
            rejected_ids.push(f.id);
            report.rejected.push(RowNote {
                kind: "file".into(),
                row: f.id,
                path: f.path.clone(),
                reason,
            });
            continue;
        }
        if let Some(a) = &mut f.attrs
            && a.mode & !FILE_MODE_KEPT != 0
        {
            report.adjusted.push(RowNote {
                kind: "file".into(),
                row: f.id,
                path: f.path.clone(),
                reason: format!(
                    "mode {:04o} restored as {:04o}: set-ID and sticky bits are never \
                     restored from a backup (set them again by hand if they were meant)",
                    a.mode,
                    a.mode & FILE_MODE_KEPT
                ),
            });
            a.mode &= FILE_MODE_KEPT;
        }
        files.push(f);
    }
    let mut dirs = Vec::new();
    for d in restored.dirs()? {
        let verdict = check_backup_path(d.attrs.path.as_os_str().as_bytes())
            .and_then(|()| d.problem.clone().map_or(Ok(()), Err));
        if let Err(reason) = verdict {
            report.rejected.push(RowNote {
                kind: "directory".into(),
                row: 0,
                path: d.attrs.path.clone(),
                reason,
            });
            continue;
        }
        let mut attrs = d.attrs;
        if attrs.mode & !DIR_MODE_KEPT != 0 {
            report.adjusted.push(RowNote {
                kind: "directory".into(),
                row: 0,
                path: attrs.path.clone(),
                reason: format!(
                    "mode {:04o} restored as {:04o} (set-user-ID dropped)",
                    attrs.mode,
                    attrs.mode & DIR_MODE_KEPT
                ),
            });
            attrs.mode &= DIR_MODE_KEPT;
        }
        dirs.push(attrs);
    }

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
    let beneath = Beneath {
        root: hot_fd.as_fd(),
        root_path: &config.hot_dir,
        last_parent: std::cell::RefCell::new(None),
    };

    let mut created_dirs: HashSet<PathBuf> = HashSet::new();
    let mut good_dirs = Vec::new();
    for d in dirs {
        match beneath.make_dirs(&d.path, &mut created_dirs) {
            Ok(_) => good_dirs.push(d),
            Err(RowError::Row(reason)) => report.rejected.push(RowNote {
                kind: "directory".into(),
                row: 0,
                path: d.path.clone(),
                reason,
            }),
            Err(RowError::Fatal(e)) => return Err(e),
        }
    }
    let mut stubs = Vec::new();
    let mut lost_ids = Vec::new();
    for f in &files {
        match recoverable(f, &listed, &used) {
            Err(reason) => {
                lost_ids.push(f.id);
                report.lost.push(LostFile {
                    path: f.path.clone(),
                    reason,
                });
            }
            Ok(hash) => match beneath.make_stub(f, &hash, &mut created_dirs) {
                Ok(ino) => {
                    if f.attrs.is_none() {
                        report.files_without_attributes += 1;
                    }
                    report.files_restored += 1;
                    report.bytes_restored += f.size;
                    stubs.push((f.id, ino));
                }
                Err(RowError::Row(reason)) => {
                    rejected_ids.push(f.id);
                    report.rejected.push(RowNote {
                        kind: "file".into(),
                        row: f.id,
                        path: f.path.clone(),
                        reason,
                    });
                }
                Err(RowError::Fatal(e)) => return Err(e),
            },
        }
    }
    // Deepest first, so setting a child's times does not change its parent's.
    good_dirs.sort_by_key(|d| std::cmp::Reverse(d.path.components().count()));
    for d in &good_dirs {
        match beneath.set_dir_attrs(d) {
            Ok(()) => {}
            Err(RowError::Row(reason)) => report.rejected.push(RowNote {
                kind: "directory".into(),
                row: 0,
                path: d.path.clone(),
                reason,
            }),
            Err(RowError::Fatal(e)) => return Err(e),
        }
    }
    report.dirs_created = created_dirs.len() as u64;
    File::open(&config.hot_dir)
        .and_then(|d| d.sync_all())
        .map_err(dr_io(&config.hot_dir, "fsync hot dir"))?;

    lost_ids.extend(&rejected_ids);
    restored.finish(&stubs, &lost_ids)?;
    std::fs::rename(tmp, &config.catalog)
        .map_err(dr_io(&config.catalog, "move restored catalog into place"))?;
    if let Some(parent) = config.catalog.parent() {
        File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(dr_io(parent, "fsync"))?;
    }
    for l in &report.lost {
        tracing::warn!(path = %Escaped::path(&l.path), reason = %l.reason, "not recoverable");
    }
    for r in &report.rejected {
        tracing::warn!(kind = %r.kind, row = r.row, path = %Escaped::path(&r.path),
            reason = %escape_str(&r.reason), "backup row rejected");
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

fn timespec(ns: i64) -> libc::timespec {
    libc::timespec {
        tv_sec: ns.div_euclid(1_000_000_000),
        tv_nsec: ns.rem_euclid(1_000_000_000),
    }
}

/// A failure while recreating one row: the row is refused (its values do
/// not fit what is on disk, e.g. a file where a directory must be) or the
/// whole rebuild stops (the disk failed).
enum RowError {
    Row(String),
    Fatal(DrError),
}

/// Errors that say something about the row, not about the disk.
fn row_or_fatal(full: &Path, op: &'static str, e: std::io::Error) -> RowError {
    match e.raw_os_error() {
        Some(
            libc::ENOTDIR
            | libc::EEXIST
            | libc::ELOOP
            | libc::ENAMETOOLONG
            | libc::EFBIG
            | libc::EINVAL
            | libc::EISDIR
            | libc::EXDEV,
        ) => RowError::Row(format!("{op}: {e}")),
        _ => RowError::Fatal(dr_io(full, op)(e)),
    }
}

/// Everything rebuild creates, it creates beneath the new hot dir: each
/// path (already checked by [`check_backup_path`]) is walked one component
/// at a time with `O_NOFOLLOW | O_DIRECTORY`, so neither a `..` nor a
/// symlink (say, one planted by a local user while the rebuild runs) can
/// lead outside, and owners and modes are only ever set through
/// descriptors obtained that way.
struct Beneath<'a> {
    root: BorrowedFd<'a>,
    root_path: &'a Path,
    /// The directory of the previous stub: files come in path order, so
    /// siblings reuse it instead of walking from the root again.
    last_parent: std::cell::RefCell<Option<(PathBuf, OwnedFd)>>,
}

impl Beneath<'_> {
    /// Opens (creating missing ones, mode 0700 until their attributes are
    /// applied) the directories of `rel` and returns the last.
    fn make_dirs(&self, rel: &Path, created: &mut HashSet<PathBuf>) -> Result<OwnedFd, RowError> {
        let mut so_far = PathBuf::new();
        let mut cur: Option<OwnedFd> = None;
        for part in rel.components() {
            let std::path::Component::Normal(name) = part else {
                return Err(RowError::Row(format!("component {part:?} is not a name")));
            };
            so_far.push(name);
            let full = self.root_path.join(&so_far);
            let dir = cur.as_ref().map_or(self.root, |fd| fd.as_fd());
            // Created by this rebuild already: only open it.
            if !created.contains(&so_far) {
                match sys::mkdir_at(dir, name, 0o700) {
                    Ok(()) => {
                        created.insert(so_far.clone());
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                    Err(e) => return Err(row_or_fatal(&full, "create directory", e)),
                }
            }
            let next = sys::open_at(
                dir,
                name,
                libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
            )
            .map_err(|e| row_or_fatal(&full, "open directory (without following symlinks)", e))?;
            cur = Some(next);
        }
        cur.ok_or_else(|| RowError::Row("the path is empty".into()))
    }

    /// Creates the stub of `f`: marker first (synced), then size, owner,
    /// mode and times. Returns its inode number.
    fn make_stub(
        &self,
        f: &RestoredFile,
        hash: &blake3::Hash,
        created: &mut HashSet<PathBuf>,
    ) -> Result<u64, RowError> {
        let full = self.root_path.join(&f.path);
        let name = f
            .path
            .file_name()
            .ok_or_else(|| RowError::Row("the path has no file name".into()))?;
        let parent_path = f.path.parent().filter(|p| !p.as_os_str().is_empty());
        let mut cache = self.last_parent.borrow_mut();
        let parent_fd: Option<&OwnedFd> = match parent_path {
            None => None,
            Some(parent) => {
                if cache.as_ref().is_none_or(|(p, _)| p != parent) {
                    *cache = None;
                    let fd = self.make_dirs(parent, created)?;
                    *cache = Some((parent.to_path_buf(), fd));
                }
                cache.as_ref().map(|(_, fd)| fd)
            }
        };
        let parent = parent_fd.map_or(self.root, |fd| fd.as_fd());
        let fd: OwnedFd = sys::open_at(
            parent,
            name,
            libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o600,
        )
        .map_err(|e| row_or_fatal(&full, "create stub", e))?;
        let fatal = |op: &'static str| {
            let full = full.clone();
            move |e| RowError::Fatal(dr_io(&full, op)(e))
        };
        let file = File::from(fd);
        stub::write_marker(&file, &StubMarker::new(hash, f.size))
            .map_err(fatal("write stub marker"))?;
        file.sync_all().map_err(fatal("fsync"))?;
        file.set_len(f.size)
            .map_err(|e| row_or_fatal(&self.root_path.join(&f.path), "set size", e))?;
        let attrs = f.attrs.unwrap_or(FileAttrs {
            mode: 0o644,
            uid: 0,
            gid: 0,
            atime_ns: f.mtime_ns,
        });
        // chown first: it would clear set-ID bits (none are restored anyway).
        sys::chown_fd(file.as_fd(), attrs.uid, attrs.gid).map_err(fatal("chown"))?;
        sys::chmod_fd(file.as_fd(), attrs.mode & FILE_MODE_KEPT).map_err(fatal("chmod"))?;
        sys::utimens_fd(
            file.as_fd(),
            &[timespec(attrs.atime_ns), timespec(f.mtime_ns)],
        )
        .map_err(fatal("set times"))?;
        file.sync_all().map_err(fatal("fsync"))?;
        let st = sys::stat_fd(file.as_fd()).map_err(fatal("stat"))?;
        Ok(st.st_ino)
    }

    /// Gives directory `d` its owner, mode and times.
    fn set_dir_attrs(&self, d: &DirAttrs) -> Result<(), RowError> {
        let full = self.root_path.join(&d.path);
        let fatal = |op: &'static str| {
            let full = full.clone();
            move |e| RowError::Fatal(dr_io(&full, op)(e))
        };
        let mut ignored = HashSet::new();
        let path_fd = self.make_dirs(&d.path, &mut ignored)?;
        // chown/chmod/utimens need a real descriptor, not O_PATH.
        let fd = sys::open_at(
            path_fd.as_fd(),
            std::ffi::OsStr::new("."),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            0,
        )
        .map_err(fatal("open directory"))?;
        sys::chown_fd(fd.as_fd(), d.uid, d.gid).map_err(fatal("chown"))?;
        sys::chmod_fd(fd.as_fd(), d.mode & DIR_MODE_KEPT).map_err(fatal("chmod"))?;
        sys::utimens_fd(fd.as_fd(), &[timespec(d.atime_ns), timespec(d.mtime_ns)])
            .map_err(fatal("set times"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_pass() {
        for ok in ["a", "a/b/c", "sp ace/ünï", "-dash", "..a/b..", ".hidden/x"] {
            assert_eq!(check_backup_path(ok.as_bytes()), Ok(()), "{ok}");
        }
        let long_name = "n".repeat(MAX_NAME_BYTES + 1);
        let long_path = "d/".repeat(MAX_PATH_BYTES / 2 + 1);
        for (bad, why) in [
            ("", "empty"),
            ("/etc/passwd", "absolute"),
            ("../../outside/pwned", "`..`"),
            ("a/../../b", "`..`"),
            ("..", "`..`"),
            (".", "`.`"),
            ("a/./b", "`.`"),
            ("a//b", "empty component"),
            ("a/", "empty component"),
            ("a\0b", "NUL"),
            (long_name.as_str(), "component is 256 bytes"),
            (long_path.as_str(), "more than 4095"),
        ] {
            let e = check_backup_path(bad.as_bytes()).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn decompression_stops_at_the_cap_before_writing_past_it() {
        let plain = vec![0u8; 8 << 20];
        let packed = zstd::encode_all(&plain[..], 3).unwrap();
        let mut out = Vec::new();
        assert_eq!(decompress_capped(&packed, &mut out, 8 << 20), Ok(8 << 20));
        let mut out = Vec::new();
        let e = decompress_capped(&packed, &mut out, 1 << 20).unwrap_err();
        assert!(e.contains("decompression bomb"), "{e}");
        assert!(out.len() <= 1 << 20, "wrote {} bytes", out.len());
        // Truncated and garbage input fail, never yield a short catalog.
        let e =
            decompress_capped(&packed[..packed.len() - 3], &mut Vec::new(), u64::MAX).unwrap_err();
        assert!(e.contains("truncated or corrupt"), "{e}");
        assert!(decompress_capped(b"not zstd", &mut Vec::new(), u64::MAX).is_err());
        assert!(decompress_capped(b"", &mut Vec::new(), u64::MAX).is_err());
    }

    #[test]
    fn the_cap_follows_the_ratio_above_the_floor() {
        assert_eq!(
            decompressed_cap(1_000, DEFAULT_MAX_CATALOG_BYTES),
            RATIO_FLOOR
        );
        assert_eq!(
            decompressed_cap(1 << 20, DEFAULT_MAX_CATALOG_BYTES),
            MAX_RATIO << 20
        );
        assert_eq!(
            decompressed_cap(1 << 30, DEFAULT_MAX_CATALOG_BYTES),
            DEFAULT_MAX_CATALOG_BYTES
        );
        assert_eq!(decompressed_cap(1 << 30, 5), 5);
    }
}
