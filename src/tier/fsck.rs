//! `tierctl fsck`: checks that the catalog, the hot dir and the buckets agree,
//! and with `repair` fixes what can be fixed without guessing.

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::core::now_ns;
use super::{Tier, TierError, stub};
use crate::catalog::FileState;
use crate::catalog::tiering::{self, TierFile};
use crate::catalog::{FileEvent, ScannedFile, path_key};

/// What `fsck` found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsckReport {
    /// Catalogued files checked.
    pub files_checked: u64,
    /// Objects listed on the remotes.
    pub objects_listed: u64,
    /// Problems found (one line each, naming the file or object).
    pub problems: Vec<String>,
    /// Repairs made (only with `repair`).
    pub repaired: Vec<String>,
    /// Problems that need a human (data may be unreadable).
    pub unrepairable: Vec<String>,
}

impl FsckReport {
    /// Whether everything agreed.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

fn hex_to_bytes(hex: &str) -> Option<[u8; 32]> {
    blake3::Hash::from_hex(hex).ok().map(|h| *h.as_bytes())
}

impl Tier {
    /// Checks every catalogued file against its hot-dir inode and every
    /// recorded object against the remotes' listings.
    pub async fn fsck(&self, repair: bool) -> Result<FsckReport, TierError> {
        let _job = self.job.lock().await;
        let mut report = FsckReport::default();
        let files = self
            .core
            .catalog
            .exec_async("list files", |c| tiering::files_under(c, b""))
            .await?;
        report.files_checked = files.len() as u64;

        // Objects each remote really holds: key -> size.
        let mut listed: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for (name, remote) in &self.core.remotes {
            match remote.list_data().await {
                Ok(objects) => {
                    // Listings come in pages of up to 1,000 keys (S3, GCS).
                    self.core.bill(crate::events::LedgerEntry {
                        remote: name.clone(),
                        op: "list",
                        requests: (objects.len() as u64).div_ceil(1000).max(1),
                        ..Default::default()
                    });
                    report.objects_listed += objects.len() as u64;
                    listed.insert(
                        name.clone(),
                        objects.into_iter().map(|o| (o.key, o.size)).collect(),
                    );
                }
                Err(e) => report
                    .unrepairable
                    .push(format!("remote `{name}`: cannot list objects: {e}")),
            }
        }

        for f in &files {
            self.check_file(f, &listed, repair, &mut report).await?;
        }
        self.check_uncatalogued(&files, repair, &mut report).await?;
        self.check_orphans(&listed, repair, &mut report).await?;
        report.problems.extend(report.unrepairable.iter().cloned());
        report.problems.sort();
        report.problems.dedup();
        Ok(report)
    }

    async fn check_file(
        &self,
        f: &TierFile,
        listed: &BTreeMap<String, BTreeMap<String, u64>>,
        repair: bool,
        report: &mut FsckReport,
    ) -> Result<(), TierError> {
        let path = f.path.display().to_string();
        if self.recall_running(&f.path) {
            // Being recalled right now (a reader opened it): in flux, not wrong.
            return Ok(());
        }
        if f.state.is_transient() {
            // The list is a snapshot: a recall may have finished since.
            let key = path_key(&f.path).unwrap_or_default();
            let now = self
                .core
                .catalog
                .exec_async("re-read file", move |c| tiering::file_by_path(c, &key))
                .await?;
            match now {
                Some(now) if now.state != f.state => return Ok(()),
                None => return Ok(()),
                Some(_) => report
                    .problems
                    .push(format!("{path}: left in transient state `{}`", f.state)),
            }
        }
        let marker = match self.core.open_rel(&f.path, libc::O_RDONLY) {
            Ok(file) => {
                // Acting on another inode put at the catalogued path (a stub
                // marker of its maker's choosing) is exactly what an attacker
                // wants: a stub whose inode is not the catalogued one and
                // whose marker names other content than the row is left
                // alone. (Only stubs matter: a repair acts on a marker.)
                let marker = stub::read_marker(file.as_fd()).unwrap_or(None);
                let found = super::sys::stat_fd(file.as_fd())
                    .map(|st| st.st_ino)
                    .unwrap_or(0);
                let foreign = |row: &TierFile| {
                    marker.as_ref().is_some_and(|m| {
                        row.ino != found
                            && row.blake3.as_deref().and_then(hex_to_bytes)
                                != Some(*m.hash.as_bytes())
                    })
                };
                if foreign(f) {
                    // The list is a snapshot: the row may have followed a
                    // replacement made through the mount since.
                    let key = path_key(&f.path).unwrap_or_default();
                    let now = self
                        .core
                        .catalog
                        .exec_async("re-read file", move |c| tiering::file_by_path(c, &key))
                        .await?;
                    match now {
                        None => return Ok(()),
                        Some(row) if foreign(&row) => {
                            report.problems.push(format!(
                                "{path}: inode {found} is not the catalogued file (inode {}); \
                                 not checked or repaired",
                                row.ino
                            ));
                            return Ok(());
                        }
                        Some(_) => {}
                    }
                }
                marker
            }
            Err(e) if !e.is_missing() => {
                // A symlink on the way, a FIFO or device in its place: never
                // followed or repaired through, whoever put it there.
                report.unrepairable.push(format!(
                    "{path}: cannot be checked without following a symlink or opening a \
                     non-regular file ({e}); left alone"
                ));
                return Ok(());
            }
            Err(_) => {
                report
                    .problems
                    .push(format!("{path}: catalogued but missing from the hot dir"));
                if repair && let Some(key) = path_key(&f.path) {
                    self.core
                        .catalog
                        .exec_async("forget missing file", move |c| {
                            tiering::forget_file(c, &key)
                        })
                        .await?;
                    report
                        .repaired
                        .push(format!("{path}: removed from the catalog"));
                }
                return Ok(());
            }
        };
        match (&marker, f.state) {
            (Some(m), state) if state != FileState::Cold => {
                report
                    .problems
                    .push(format!("{path}: is a stub but the catalog says `{state}`"));
                if repair {
                    let (id, hash) = (f.id, *m.hash.as_bytes());
                    self.core
                        .catalog
                        .exec_async("mark stub cold", move |c| {
                            tiering::mark_stub_cold(c, id, &hash)
                        })
                        .await?;
                    report.repaired.push(format!("{path}: marked cold"));
                }
            }
            (None, FileState::Cold) => report.unrepairable.push(format!(
                "{path}: the catalog says cold but the hot file is not a stub"
            )),
            _ => {}
        }
        let hash = match (&marker, &f.blake3) {
            (Some(m), Some(hex)) if hex_to_bytes(hex) != Some(*m.hash.as_bytes()) => {
                report.unrepairable.push(format!(
                    "{path}: stub marker and catalog disagree on the content hash"
                ));
                return Ok(());
            }
            (Some(m), _) => Some(*m.hash.as_bytes()),
            (None, Some(hex)) => hex_to_bytes(hex),
            (None, None) => None,
        };
        let Some(hash) = hash else {
            return Ok(());
        };
        // Every file with cloud content needs at least one copy that exists.
        let objects = self
            .core
            .catalog
            .exec_async("find objects", move |c| tiering::objects_for(c, &hash))
            .await?;
        let mut good = 0;
        // Unverified rows are uploads that never finished: not copies yet.
        let objects: Vec<_> = objects
            .into_iter()
            .filter(|o| o.verified_at_ns.is_some())
            .collect();
        // Encrypted remotes store more bytes than the content has.
        let stored_size = |remote: &str, plain: u64| {
            self.core
                .remotes
                .get(remote)
                .map_or(plain, |r| r.stored_size(plain))
        };
        for o in &objects {
            match listed.get(&o.remote).map(|keys| keys.get(&o.key)) {
                Some(Some(&size)) if size == stored_size(&o.remote, o.size) => good += 1,
                Some(Some(&size)) => report.unrepairable.push(format!(
                    "{path}: object {} on `{}` has {size} bytes, expected {}",
                    o.key,
                    o.remote,
                    stored_size(&o.remote, o.size)
                )),
                Some(None) => report.unrepairable.push(format!(
                    "{path}: object {} is missing from remote `{}`",
                    o.key, o.remote
                )),
                None => good += 1, // remote could not be listed; reported above
            }
        }
        if good == 0 && objects.is_empty() {
            // Maybe the object exists but the catalog lost its row (restored catalog).
            let mut found = false;
            for (name, remote) in &self.core.remotes {
                let key = remote.object_key(&blake3::Hash::from_bytes(hash));
                if let Some(&size) = listed.get(name).and_then(|k| k.get(&key)) {
                    found = true;
                    report.problems.push(format!(
                        "{path}: object {key} on `{name}` is not in the catalog"
                    ));
                    if repair {
                        let (name2, key2, now) = (name.clone(), key.clone(), now_ns());
                        self.core
                            .catalog
                            .exec_async("record found object", move |c| {
                                tiering::upsert_object(c, &name2, &key2, &hash, size, None, now)
                            })
                            .await?;
                        report
                            .repaired
                            .push(format!("{path}: recorded object {key} on `{name}`"));
                    }
                }
            }
            if !found && marker.is_some() {
                report
                    .unrepairable
                    .push(format!("{path}: cold, and no remote holds its content"));
            }
        }
        Ok(())
    }

    /// Regular files in the hot dir that have no catalog row (their events
    /// were lost, e.g. while the catalog's disk was full): with `repair`,
    /// they are added as the start-up reconcile would add them.
    async fn check_uncatalogued(
        &self,
        files: &[TierFile],
        repair: bool,
        report: &mut FsckReport,
    ) -> Result<(), TierError> {
        let known: HashSet<Vec<u8>> = files.iter().filter_map(|f| path_key(&f.path)).collect();
        let hot_dir = self.core.hot_dir.clone();
        let walked = tokio::task::spawn_blocking(move || {
            let mut found = Vec::new();
            crate::catalog::walk(&hot_dir, b"", |f| {
                if !known.contains(&f.key) {
                    found.push(f);
                }
                true
            })
            .map(|_| found)
        })
        .await;
        let found = match walked {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => {
                report
                    .unrepairable
                    .push(format!("hot dir: cannot be listed: {e}"));
                return Ok(());
            }
            Err(e) => {
                report
                    .unrepairable
                    .push(format!("hot dir: listing failed: {e}"));
                return Ok(());
            }
        };
        if found.is_empty() {
            return Ok(());
        }
        // The list of rows is a snapshot: files created through the mount
        // since then have rows now (this runs after their queued events).
        let missing = self.still_uncatalogued(found).await?;
        for f in &missing {
            let path = Path::new(OsStr::from_bytes(&f.key));
            report.problems.push(format!(
                "{}: in the hot dir but not in the catalog",
                path.display()
            ));
            if repair {
                self.core.catalog.send(FileEvent::Upsert {
                    path: path.to_path_buf(),
                    size: f.size,
                    mtime_ns: f.mtime_ns,
                    ino: f.ino,
                });
            }
        }
        if repair {
            let left = self.still_uncatalogued(missing.clone()).await?;
            for f in &missing {
                let path = Path::new(OsStr::from_bytes(&f.key)).display();
                if left.iter().any(|l| l.key == f.key) {
                    report.unrepairable.push(format!(
                        "{path}: could not be added to the catalog (is its disk full?)"
                    ));
                } else {
                    report
                        .repaired
                        .push(format!("{path}: added to the catalog"));
                }
            }
        }
        Ok(())
    }

    /// The files of `found` that still have no catalog row, checked after
    /// every change queued so far.
    async fn still_uncatalogued(
        &self,
        found: Vec<ScannedFile>,
    ) -> Result<Vec<ScannedFile>, TierError> {
        Ok(self
            .core
            .catalog
            .exec_async("look up uncatalogued files", move |c| {
                let mut left = Vec::new();
                for f in found {
                    if tiering::file_by_path(c, &f.key)?.is_none() {
                        left.push(f);
                    }
                }
                Ok(left)
            })
            .await?)
    }

    /// Objects on a remote that the catalog does not know.
    async fn check_orphans(
        &self,
        listed: &BTreeMap<String, BTreeMap<String, u64>>,
        repair: bool,
        report: &mut FsckReport,
    ) -> Result<(), TierError> {
        for (name, keys) in listed {
            let name2 = name.clone();
            let known: HashSet<String> = self
                .core
                .catalog
                .exec_async("list objects", move |c| tiering::object_keys(c, &name2))
                .await?
                .into_iter()
                .collect();
            for (key, &size) in keys {
                if known.contains(key) {
                    continue;
                }
                report.problems.push(format!(
                    "remote `{name}`: object {key} is not in the catalog (orphan)"
                ));
                let hash = key.rsplit('/').next().and_then(hex_to_bytes);
                if repair && let Some(hash) = hash {
                    // Recorded as unreferenced, so `gc` deletes it after the grace period.
                    let (name2, key2, now) = (name.clone(), key.clone(), now_ns());
                    self.core
                        .catalog
                        .exec_async("record orphan", move |c| {
                            tiering::upsert_object(c, &name2, &key2, &hash, size, None, now)
                        })
                        .await?;
                    report.repaired.push(format!(
                        "remote `{name}`: recorded orphan {key}; gc deletes it after the grace period"
                    ));
                }
            }
        }
        Ok(())
    }
}
