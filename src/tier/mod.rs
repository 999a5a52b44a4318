//! The tiering engine: migration (upload, verify, release), recall, garbage
//! collection and crash recovery.
//!
//! Safety ordering for a release (also in `docs/safety.md`):
//! 1. hash the local file (blake3) and mark the row `uploading`;
//! 2. upload, hashing the bytes as they are sent (a change aborts);
//! 3. verify the stored object by reading it back (size and blake3);
//! 4. commit `premigrated` + hash with a synced commit (guarded by the content
//!    generation, so a file modified meanwhile stays `hot`);
//! 5. re-hash the local file, then with no handle open through the mount:
//!    commit `releasing` (synced), write and sync the stub marker;
//! 6. punch out every block, restore the times, sync; commit `cold`.
//!
//! A crash between any two steps leaves a state that `recover` resolves at the
//! next start without losing data (see [`crate::catalog::tiering::recover_transient_states`]).

pub mod backup;
mod error;
pub mod failpoint;
mod fsck;
pub mod gate;
mod hash;
pub mod layout;
pub mod rebuild;
pub mod schedule;
pub mod stop;
pub mod stub;
mod stub_fill;
pub mod verify;
mod watchdog;

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use serde::{Deserialize, Serialize};

pub use error::TierError;
use error::io_err;
pub use fsck::FsckReport;
use gate::Gate;
use stub::StubMarker;
pub use stub_fill::{FillReader, StubFill};

use crate::catalog::tiering::{self, LedgerEntry, TierFile};
use crate::catalog::{Catalog, FileState, path_key};
use crate::config::Config;
use crate::fs::sys;
use crate::remote::{PutOptions, Remote};
use crate::rules::{self, Decision, FileFacts, RuleSet, Target};

/// What `tierctl migrate` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrateRequest {
    /// Only files at or below these paths (relative to the mount root); empty = all.
    #[serde(default)]
    pub paths: Vec<PathBuf>,
    /// Only report what would move.
    #[serde(default)]
    pub dry_run: bool,
}

/// The result of a migration run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MigrateSummary {
    /// Files whose rule said "migrate".
    pub candidates: u64,
    /// Bytes in those files.
    pub candidate_bytes: u64,
    /// Files released (now cold).
    pub released: u64,
    /// Bytes freed locally.
    pub released_bytes: u64,
    /// Bytes sent to remotes (dedupe and premigrated files send nothing).
    pub uploaded_bytes: u64,
    /// Files skipped because they were open or changed (tried again next run).
    pub skipped: u64,
    /// Files that failed, with the reason.
    pub failures: Vec<String>,
    /// Wall time.
    pub seconds: f64,
}

/// The result of a recall run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RecallSummary {
    /// Files brought back.
    pub recalled: u64,
    /// Bytes downloaded.
    pub bytes: u64,
    /// Files that failed, with the reason.
    pub failures: Vec<String>,
    /// Wall time.
    pub seconds: f64,
}

/// The result of a garbage collection.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct GcSummary {
    /// Objects no file references.
    pub unreferenced: u64,
    /// Of those, deleted now (grace period over).
    pub deleted: u64,
    /// Bytes deleted.
    pub deleted_bytes: u64,
    /// Failures, with the reason.
    pub failures: Vec<String>,
}

/// Live progress of the running job, for `tierctl` progress bars.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes handled so far.
    pub bytes_done: AtomicU64,
    /// Bytes the job will handle.
    pub bytes_total: AtomicU64,
    /// Files finished.
    pub files_done: AtomicU64,
    /// Files in the job.
    pub files_total: AtomicU64,
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

fn time_from_ns(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

fn parse_hash(hex: &str, path: &Path) -> Result<blake3::Hash, TierError> {
    blake3::Hash::from_hex(hex).map_err(|e| TierError::Io {
        path: path.to_path_buf(),
        op: "read content hash",
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
    })
}

/// The tiering engine shared by the daemon's scheduler, the control socket
/// and the FUSE layer (for recalls).
pub struct Tier {
    hot_dir: PathBuf,
    hot_fd: OwnedFd,
    catalog: Catalog,
    remotes: BTreeMap<String, Remote>,
    gate: Arc<Gate>,
    /// One lock per file being recalled, by identity (a rename during the
    /// recall must not let a second recall of the same file start).
    recalls: tokio::sync::Mutex<HashMap<stub_fill::FileId, Arc<tokio::sync::Mutex<()>>>>,
    fills: stub_fill::Fills,
    uploads: tokio::sync::Mutex<HashMap<[u8; 32], Arc<tokio::sync::Mutex<()>>>>,
    progress: Arc<Progress>,
    job: tokio::sync::Mutex<()>,
    invalidate: std::sync::OnceLock<Box<dyn Fn(u64) + Send + Sync>>,
    stop: stop::Stop,
    retry_soon: tokio::sync::Notify,
}

impl std::fmt::Debug for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tier")
            .field("hot_dir", &self.hot_dir)
            .field("remotes", &self.remotes.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Tier {
    /// Builds the engine: one client per configured remote (no network I/O).
    pub fn new(config: &Config, catalog: Catalog, gate: Arc<Gate>) -> Result<Tier, TierError> {
        let mut remotes = BTreeMap::new();
        for (name, cfg) in &config.remotes {
            remotes.insert(name.clone(), Remote::from_config(cfg)?);
        }
        let hot_fd = sys::open_at(
            // SAFETY: AT_FDCWD is valid for *at() calls; hot_dir is absolute.
            unsafe { std::os::fd::BorrowedFd::borrow_raw(libc::AT_FDCWD) },
            config.hot_dir.as_os_str(),
            libc::O_PATH | libc::O_DIRECTORY,
            0,
        )
        .map_err(io_err(&config.hot_dir, "open hot dir"))?;
        Ok(Tier {
            hot_dir: config.hot_dir.clone(),
            hot_fd,
            catalog,
            remotes,
            gate,
            recalls: Default::default(),
            fills: Default::default(),
            uploads: Default::default(),
            progress: Default::default(),
            job: Default::default(),
            invalidate: Default::default(),
            stop: Default::default(),
            retry_soon: Default::default(),
        })
    }

    /// Sets how to tell the kernel that a file's attributes changed behind
    /// its back (its block count drops to 0 on release). Set once, after mounting.
    pub fn set_invalidator(&self, f: impl Fn(u64) + Send + Sync + 'static) {
        let _ = self.invalidate.set(Box::new(f));
    }

    /// Stops running migrations at their next safe point (see [`stop`]) and
    /// waits, at most `timeout`, for the running job to end and for the
    /// aborts of the uploads it abandoned. Called at
    /// shutdown; later migrations do nothing.
    pub async fn stop(&self, timeout: std::time::Duration) {
        self.stop.stop();
        let started = Instant::now();
        if tokio::time::timeout(timeout, self.job.lock())
            .await
            .is_err()
        {
            tracing::warn!(
                "a tiering job did not stop within {timeout:?}; it is abandoned and \
                 resolved at the next start"
            );
        }
        // Uploads abandoned by the stop are aborted, so the store keeps none
        // of their parts.
        let left = timeout.saturating_sub(started.elapsed());
        for remote in self.remotes.values() {
            remote.finish_aborts(left).await;
        }
    }

    /// Whether a migration, recall, gc or fsck job is running now.
    pub fn is_busy(&self) -> bool {
        self.job.try_lock().is_err()
    }

    /// The configured remotes.
    pub fn remotes(&self) -> &BTreeMap<String, Remote> {
        &self.remotes
    }

    /// The open/release coordination shared with the FUSE layer.
    pub fn gate(&self) -> &Arc<Gate> {
        &self.gate
    }

    /// Progress of the running migration or recall.
    pub fn progress(&self) -> &Arc<Progress> {
        &self.progress
    }

    /// Opens `rel` (relative to the hot dir) beneath the hot dir without
    /// following a symlink anywhere on the way, without blocking (a FIFO or
    /// device swapped in is opened `O_NONBLOCK` and refused), and only if it
    /// is a regular file ([`TierError::NotRegular`] otherwise). The pause
    /// point `opening` lets a test change the tree between a plan and this.
    fn open_rel(&self, rel: &Path, flags: i32) -> Result<File, TierError> {
        failpoint::pause("opening");
        let fd = sys::open_beneath(self.hot_fd.as_fd(), rel, flags).map_err(io_err(rel, "open"))?;
        let st = sys::stat_fd(fd.as_fd()).map_err(io_err(rel, "stat"))?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(TierError::NotRegular {
                path: rel.to_path_buf(),
            });
        }
        Ok(File::from(fd))
    }

    fn ledger(&self, entry: LedgerEntry) {
        let now = now_ns();
        self.catalog.exec_detached("cost ledger entry", move |c| {
            tiering::record(c, &entry, now)
        });
    }

    /// Records the file's final size and times after the engine rewrote it, so
    /// that a watcher event seen halfway (blocks being freed or written) cannot
    /// leave the catalog with an intermediate mtime. Sent while the row is in a
    /// transient state, which content updates do not demote.
    fn settle(&self, rel: &Path, file: &File) {
        if let Ok(st) = sys::stat_fd(file.as_fd()) {
            self.catalog.send(crate::catalog::FileEvent::Upsert {
                path: rel.to_path_buf(),
                size: st.st_size as u64,
                mtime_ns: st.st_mtime.saturating_mul(1_000_000_000) + st.st_mtime_nsec,
                ino: st.st_ino,
            });
        }
    }

    /// Resolves files left in transient states by a crash. Run at start,
    /// before the mount serves requests.
    pub fn recover(&self) -> Result<Vec<(PathBuf, FileState, FileState)>, TierError> {
        let hot_fd = self
            .hot_fd
            .try_clone()
            .map_err(io_err(&self.hot_dir, "dup"))?;
        let changes = self
            .catalog
            .exec_durable("recover tiering states", move |c| {
                tiering::recover_transient_states(c, |rel| {
                    sys::open_beneath(hot_fd.as_fd(), rel, libc::O_PATH)
                        .map(|fd| stub::is_stub(fd.as_fd()))
                        .unwrap_or(false)
                })
            })?;
        for (path, from, to) in &changes {
            tracing::warn!(path = %path.display(), %from, %to, "recovered interrupted tiering state");
            if *to == FileState::Cold {
                // A release interrupted between its two truncates.
                let file = self.open_rel(path, libc::O_RDWR)?;
                let marker =
                    stub::read_marker(file.as_fd()).map_err(io_err(path, "read stub marker"))?;
                if let Some(marker) = marker
                    && stub::fix_size(&file, &marker).map_err(io_err(path, "restore size"))?
                {
                    tracing::warn!(path = %path.display(), size = marker.size, "restored stub size");
                }
            }
        }
        Ok(changes)
    }

    /// Loads the rules from the catalog.
    pub fn load_rules(&self) -> Result<RuleSet, TierError> {
        let rows = self.catalog.exec_grouped("load rules", tiering::rules)?;
        let mut parsed = Vec::new();
        for row in rows {
            match rules::parse(&row.text) {
                Ok(rule) => parsed.push((row.id, rule)),
                Err(e) => {
                    tracing::error!(rule = row.id, error = %e, "stored rule does not parse; ignored")
                }
            }
        }
        Ok(RuleSet::new(parsed))
    }

    /// Files the rules would migrate now: (file, targets).
    pub fn plan(&self, req: &MigrateRequest) -> Result<Vec<(TierFile, Vec<Target>)>, TierError> {
        Ok(self.plan_by_rule(req)?.0)
    }

    /// Like [`plan`](Tier::plan), also returning which rule selected each
    /// planned file (by path) and the ids of every rule evaluated.
    #[allow(clippy::type_complexity)]
    fn plan_by_rule(
        &self,
        req: &MigrateRequest,
    ) -> Result<
        (
            Vec<(TierFile, Vec<Target>)>,
            HashMap<PathBuf, i64>,
            Vec<i64>,
        ),
        TierError,
    > {
        let rules = self.load_rules()?;
        let rule_ids: Vec<i64> = rules.rules().iter().map(|(id, _)| *id).collect();
        let mut rule_of = HashMap::new();
        let prefixes: Vec<Vec<u8>> = req.paths.iter().filter_map(|p| path_key(p)).collect();
        let files = self
            .catalog
            .exec_grouped("list migration candidates", |c| {
                let mut all = Vec::new();
                tiering::for_each_file_in_states(
                    c,
                    &[FileState::Hot, FileState::Premigrated],
                    |f| all.push(f),
                )?;
                Ok(all)
            })?;
        let now = SystemTime::now();
        let mut plan = Vec::new();
        // A file with several names (hard links) is one file: it migrates
        // once, and its names' rows follow its state.
        let mut planned_inodes = std::collections::HashSet::new();
        for f in files {
            if f.pinned {
                continue;
            }
            if !prefixes.is_empty() {
                let key = f.path.as_os_str().as_encoded_bytes();
                let under = prefixes.iter().any(|p| {
                    key == p.as_slice() || (key.starts_with(p) && key.get(p.len()) == Some(&b'/'))
                });
                if !under {
                    continue;
                }
            }
            let facts = FileFacts {
                path: &f.path,
                size: f.size,
                mtime: time_from_ns(f.mtime_ns),
                last_access: f.last_access_ns.map(time_from_ns),
            };
            if let Decision::Migrate { targets, rule_id } = rules.decide(&facts, now) {
                if !planned_inodes.insert(f.ino) {
                    continue;
                }
                rule_of.insert(f.path.clone(), rule_id);
                plan.push((f, targets));
            }
        }
        Ok((plan, rule_of, rule_ids))
    }

    /// Runs one migration: every file the rules select is uploaded, verified
    /// and released. One migration or recall job runs at a time.
    pub async fn migrate(&self, req: MigrateRequest) -> Result<MigrateSummary, TierError> {
        let (summary, transient) = self.migrate_counting(req).await?;
        if transient > 0 {
            // Let the schedule retry these without waiting a whole interval.
            self.retry_soon.notify_one();
        }
        Ok(summary)
    }

    /// Resolves when a migration not run by the schedule met an unreachable
    /// remote: the schedule then retries with back-off.
    pub async fn retry_wanted(&self) {
        self.retry_soon.notified().await
    }

    /// [`Tier::migrate`], also returning how many files failed for a reason
    /// that may go away by itself (remote unreachable or timing out): the
    /// scheduler retries those sooner, with back-off.
    pub async fn migrate_counting(
        &self,
        req: MigrateRequest,
    ) -> Result<(MigrateSummary, u64), TierError> {
        let _job = self.job.lock().await;
        let mut transient = 0u64;
        let started = Instant::now();
        let (plan, rule_of, rule_ids) = self.plan_by_rule(&req)?;
        let mut by_rule = crate::activity::RuleTally::new(&rule_ids, &rule_of);
        let mut summary = MigrateSummary {
            candidates: plan.len() as u64,
            candidate_bytes: plan.iter().map(|(f, _)| f.size).sum(),
            ..Default::default()
        };
        self.reset_progress(summary.candidates, summary.candidate_bytes);
        if req.dry_run {
            summary.seconds = started.elapsed().as_secs_f64();
            return Ok((summary, 0));
        }
        // A rule naming an unconfigured remote fails its files, not the run.
        let (plan, unroutable): (Vec<_>, Vec<_>) = plan
            .into_iter()
            .partition(|(_, targets)| targets.iter().all(|t| self.remotes.contains_key(&t.remote)));
        for (f, targets) in unroutable {
            let missing: Vec<&str> = targets
                .iter()
                .filter(|t| !self.remotes.contains_key(&t.remote))
                .map(|t| t.remote.as_str())
                .collect();
            by_rule.failed(&f.path);
            summary.failures.push(format!(
                "{}: no remote named `{}` in the config",
                f.path.display(),
                missing.join("`, `")
            ));
        }
        // Files in flight: small files are bound by request latency, so many
        // go at once; each remote's upload buffer budget bounds the memory.
        let concurrency = self
            .remotes
            .values()
            .map(|r| r.max_files_in_flight())
            .max()
            .unwrap_or(4)
            .max(1);
        // Once a remote proved unreachable in this run, the remaining files
        // for it are not tried (each would wait a whole request_timeout):
        // they stay local, and the schedule retries them with back-off.
        let unreachable: &parking_lot::Mutex<std::collections::BTreeSet<String>> =
            &Default::default();
        let mut results = futures::stream::iter(plan.into_iter().map(|(f, targets)| async move {
            let path = f.path.clone();
            let size = f.size;
            let down = {
                let set = unreachable.lock();
                targets
                    .iter()
                    .find(|t| set.contains(&t.remote))
                    .map(|t| t.remote.clone())
            };
            let result = match down {
                Some(name) => Err(TierError::RemoteDown { name }),
                None => self.migrate_one(f, targets).await,
            };
            if let Err(TierError::Remote(e)) = &result
                && matches!(
                    e,
                    crate::remote::RemoteError::Unreachable { .. }
                        | crate::remote::RemoteError::Timeout { .. }
                )
            {
                unreachable.lock().insert(e.remote().to_string());
            }
            self.progress.files_done.fetch_add(1, Ordering::Relaxed);
            (path, size, result)
        }))
        .buffer_unordered(concurrency);
        while let Some((path, size, result)) = results.next().await {
            match &result {
                Ok(Outcome::Released { .. }) => by_rule.released(&path, size),
                Ok(Outcome::Skipped(_)) => {}
                Err(_) => by_rule.failed(&path),
            }
            match result {
                Ok(Outcome::Released { uploaded }) => {
                    summary.released += 1;
                    summary.released_bytes += size;
                    summary.uploaded_bytes += uploaded;
                }
                Ok(Outcome::Skipped(why)) => {
                    summary.skipped += 1;
                    tracing::info!(path = %path.display(), why, "not released this run");
                }
                Err(e) => {
                    if e.is_transient() {
                        transient += 1;
                        tracing::warn!(path = %path.display(), error = %e, "migration failed; the file stays local and is retried later");
                    } else {
                        tracing::error!(path = %path.display(), error = %e, "migration failed");
                    }
                    summary.failures.push(format!("{}: {e}", path.display()));
                }
            }
        }
        summary.seconds = started.elapsed().as_secs_f64();
        tracing::info!(
            released = summary.released,
            bytes = summary.released_bytes,
            uploaded = summary.uploaded_bytes,
            skipped = summary.skipped,
            failed = summary.failures.len(),
            seconds = summary.seconds,
            "migration batch done"
        );
        crate::activity::activity().record_rule_runs(by_rule);
        let runs = crate::activity::activity().rule_runs_json();
        if let Err(e) = self.catalog.exec_grouped("save rule runs", move |c| {
            c.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('last_rule_runs', ?1)",
                [runs],
            )
        }) {
            tracing::warn!(error = %e, "could not save the rules' last runs");
        }
        Ok((summary, transient))
    }

    fn reset_progress(&self, files: u64, bytes: u64) {
        self.progress.files_total.store(files, Ordering::Relaxed);
        self.progress.bytes_total.store(bytes, Ordering::Relaxed);
        self.progress.files_done.store(0, Ordering::Relaxed);
        self.progress.bytes_done.store(0, Ordering::Relaxed);
    }

    async fn migrate_one(&self, f: TierFile, targets: Vec<Target>) -> Result<Outcome, TierError> {
        if self.stop.is_stopped() {
            return Ok(Outcome::Skipped(STOPPING));
        }
        let rel = f.path.clone();
        let file = match self.open_rel(&rel, libc::O_RDONLY) {
            Ok(file) => file,
            Err(TierError::NotRegular { .. }) => return Ok(Outcome::Skipped("not a regular file")),
            Err(e) => return Err(e),
        };
        let st = sys::stat_fd(file.as_fd()).map_err(io_err(&rel, "stat"))?;
        let mtime_ns = st.st_mtime.saturating_mul(1_000_000_000) + st.st_mtime_nsec;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG
            || st.st_size as u64 != f.size
            || mtime_ns != f.mtime_ns
            || st.st_ino != f.ino
        {
            return Ok(Outcome::Skipped("changed since catalogued"));
        }
        if stub::is_stub(file.as_fd()) {
            return Ok(Outcome::Skipped("already a stub"));
        }
        let (hash, uploaded) = match (f.state.as_str(), &f.blake3) {
            ("premigrated", Some(hex)) => {
                let hash = parse_hash(hex, &rel)?;
                (hash, self.ensure_copies(&f, &hash, &targets).await?)
            }
            _ => {
                let pass_buffer = self.reserve_hash_pass(&targets, f.size).await;
                let hash_started = Instant::now();
                let (hash, n, chunks, holes) = tokio::task::block_in_place(|| {
                    let holes = layout::Holes::of_file(&file, f.size)?;
                    hash::hash_file_with_chunks(&file, holes)
                })
                .map_err(io_err(&rel, "hash"))?;
                drop(pass_buffer);
                tracing::debug!(path = %rel.display(), bytes = n, secs = hash_started.elapsed().as_secs_f64(), "hashed");
                if n != f.size {
                    return Ok(Outcome::Skipped("changed while hashing"));
                }
                let key = *hash.as_bytes();
                let (id, generation) = (f.id, f.generation);
                let started = self.catalog.exec_grouped("mark uploading", move |c| {
                    tiering::record_chunks(
                        c,
                        &key,
                        hash::CHUNK_SIZE,
                        &chunks,
                        holes.encode().as_deref(),
                    )?;
                    tiering::transition(
                        c,
                        id,
                        FileState::Hot,
                        FileState::Uploading,
                        Some(generation),
                    )
                })?;
                if !started {
                    return Ok(Outcome::Skipped("changed since catalogued"));
                }
                failpoint::pause("uploading");
                // At shutdown the upload is dropped mid-way: its object row
                // stays unverified and unreferenced (gc removes it), the file
                // goes back to hot and the next run uploads it again.
                let copies = tokio::select! {
                    r = self.ensure_copies(&f, &hash, &targets) => Some(r),
                    () = self.stop.stopped() => None,
                };
                let uploaded = match copies {
                    Some(Ok(n)) => n,
                    Some(Err(e)) => {
                        self.catalog
                            .exec_grouped("undo uploading", move |c| tiering::mark_hot(c, id))?;
                        return Err(e);
                    }
                    None => {
                        self.catalog
                            .exec_grouped("undo uploading", move |c| tiering::mark_hot(c, id))?;
                        return Ok(Outcome::Skipped(STOPPING));
                    }
                };
                failpoint::pause("uploaded");
                let bytes = *hash.as_bytes();
                let committed = self.catalog.exec_durable("mark premigrated", move |c| {
                    tiering::mark_premigrated(c, id, generation, &bytes)
                })?;
                if !committed {
                    self.catalog
                        .exec_grouped("undo uploading", move |c| tiering::mark_hot(c, id))?;
                    return Ok(Outcome::Skipped("changed during upload"));
                }
                (hash, uploaded)
            }
        };
        drop(file);
        failpoint::pause("premigrated");
        if self.stop.is_stopped() {
            // Verified copy, nothing freed: released at the next run.
            return Ok(Outcome::Skipped(STOPPING));
        }
        let pass_buffer = self.reserve_hash_pass(&targets, f.size).await;
        let release_started = Instant::now();
        let released = tokio::task::block_in_place(|| self.release(&f, &hash))?;
        drop(pass_buffer);
        tracing::debug!(path = %f.path.display(), secs = release_started.elapsed().as_secs_f64(), "release step done");
        Ok(match released {
            None => Outcome::Released { uploaded },
            Some(why) => Outcome::Skipped(why),
        })
    }

    /// Reserves the read buffers of one hash pass over a `size`-byte file
    /// from the first target's transfer budget, so that the memory of the
    /// files in flight stays within that budget however many there are.
    async fn reserve_hash_pass(
        &self,
        targets: &[Target],
        size: u64,
    ) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let remote = targets.first().and_then(|t| self.remotes.get(&t.remote))?;
        remote
            .reserve_upload_buffer(size.clamp(1, hash::PASS_BUFFER))
            .await
    }

    /// Makes sure every target holds a verified copy of content `hash`.
    /// Returns the bytes uploaded.
    async fn ensure_copies(
        &self,
        f: &TierFile,
        hash: &blake3::Hash,
        targets: &[Target],
    ) -> Result<u64, TierError> {
        let bytes = *hash.as_bytes();
        // Identical files in one run upload once: the second waits here and
        // then finds the first one's verified object.
        let lock = self.uploads.lock().await.entry(bytes).or_default().clone();
        let same_content = lock.lock().await;
        let result = self.ensure_copies_locked(f, hash, targets).await;
        drop(same_content);
        self.uploads.lock().await.remove(&bytes);
        result
    }

    async fn ensure_copies_locked(
        &self,
        f: &TierFile,
        hash: &blake3::Hash,
        targets: &[Target],
    ) -> Result<u64, TierError> {
        let abs = self.hot_dir.join(&f.path);
        let bytes = *hash.as_bytes();
        let known = self
            .catalog
            .exec_grouped("find objects", move |c| tiering::objects_for(c, &bytes))?;
        let mut uploaded = 0;
        for target in targets {
            let remote = self
                .remotes
                .get(&target.remote)
                .ok_or_else(|| TierError::NoRemote {
                    name: target.remote.clone(),
                })?;
            let key = remote.object_key(hash);
            if known
                .iter()
                .any(|o| o.remote == target.remote && o.key == key && o.verified_at_ns.is_some())
            {
                continue;
            }
            let class = target
                .storage_class
                .clone()
                .or_else(|| remote.storage_class().map(str::to_string));
            let progress = self.progress.clone();
            let last = AtomicU64::new(0);
            let report = move |done: u64| {
                let prev = last.swap(done, Ordering::Relaxed);
                progress
                    .bytes_done
                    .fetch_add(done.saturating_sub(prev), Ordering::Relaxed);
            };
            // Content the catalog has never recorded anywhere is new: no HEAD
            // first (objects are named by content, so in the rare case it
            // does exist, the PUT rewrites the same bytes).
            let opts = PutOptions {
                storage_class: class.clone(),
                part_size: None,
                concurrency: None,
                assume_new: known.is_empty(),
            };
            // Record the object before it exists, so a crash mid-upload leaves a
            // row (unverified, unreferenced) that gc cleans up, never an orphan.
            let (name, key2, class2, now) =
                (target.remote.clone(), key.clone(), class.clone(), now_ns());
            let size = f.size;
            let object_id = self.catalog.exec_grouped("record object", move |c| {
                tiering::upsert_object(c, &name, &key2, &bytes, size, class2.as_deref(), now)
            })?;
            let upload_started = Instant::now();
            // The upload reads the file opened beneath the hot dir, never the
            // path again (a symlink may have taken its place since).
            let source = self.open_rel(&f.path, libc::O_RDONLY)?;
            let outcome = remote
                .put_open_file(&abs, source, f.size, hash, &opts, &report)
                .await?;
            let upload_secs = upload_started.elapsed().as_secs_f64();
            if !opts.assume_new {
                // put_file asked first whether the object exists (one HEAD).
                self.ledger(LedgerEntry {
                    remote: target.remote.clone(),
                    op: "head",
                    requests: 1,
                    storage_class: class.clone(),
                    ..Default::default()
                });
            }
            if !outcome.already_present {
                uploaded += f.size;
                self.ledger(LedgerEntry {
                    remote: target.remote.clone(),
                    op: "put",
                    requests: remote.put_requests(f.size, &opts),
                    bytes: f.size,
                    storage_class: class.clone(),
                    path: Some(f.path.as_os_str().as_encoded_bytes().to_vec()),
                    ..Default::default()
                });
            }
            let verify_started = Instant::now();
            let verified = remote.verify(&outcome.key, f.size, hash).await;
            tracing::debug!(
                path = %f.path.display(),
                remote = %target.remote,
                bytes = f.size,
                upload_secs,
                verify_secs = verify_started.elapsed().as_secs_f64(),
                already_present = outcome.already_present,
                "copy sent and read back"
            );
            // Billed even when the read-back fails (bytes as far as known).
            self.ledger(LedgerEntry {
                remote: target.remote.clone(),
                op: "get",
                requests: 1,
                bytes: if verified.is_ok() { f.size } else { 0 },
                storage_class: class,
                ..Default::default()
            });
            verified?;
            let now = now_ns();
            self.catalog.exec_grouped("mark verified", move |c| {
                tiering::mark_verified(c, object_id, now)
            })?;
        }
        Ok(uploaded)
    }

    /// Frees the local blocks of a premigrated file. Returns why it was not
    /// released, or `None` when it was.
    fn release(
        &self,
        f: &TierFile,
        hash: &blake3::Hash,
    ) -> Result<Option<&'static str>, TierError> {
        let rel = &f.path;
        let file = self.open_rel(rel, libc::O_RDWR)?;
        if stub::is_stub(file.as_fd()) {
            // Released under another name (a hard link) meanwhile.
            return Ok(Some("already a stub"));
        }
        let before = sys::stat_fd(file.as_fd()).map_err(io_err(rel, "stat"))?;
        // The content must still be exactly what the cloud holds.
        let (now_hash, n) = hash::hash_file(&file).map_err(io_err(rel, "hash"))?;
        if now_hash != *hash || n != f.size {
            let id = f.id;
            self.catalog
                .exec_grouped("unlink changed file", move |c| tiering::mark_hot(c, id))?;
            return Ok(Some("changed after upload"));
        }
        let Some(_guard) = self.gate.try_begin_release(before.st_ino) else {
            return Ok(Some("open through the mount"));
        };
        let st = sys::stat_fd(file.as_fd()).map_err(io_err(rel, "stat"))?;
        if (st.st_ctime, st.st_ctime_nsec, st.st_size)
            != (before.st_ctime, before.st_ctime_nsec, before.st_size)
        {
            return Ok(Some("changed while releasing"));
        }
        let id = f.id;
        let started = self.catalog.exec_durable("mark releasing", move |c| {
            tiering::transition(c, id, FileState::Premigrated, FileState::Releasing, None)
        })?;
        if !started {
            return Ok(Some("catalog state changed"));
        }
        {
            // The stub shows the file's times as they are now, whatever
            // freeing its blocks (or a later recall) does to the inode. Under
            // the times lock: a user's touch or chmod lands before (and is
            // in the marker) or after (and rewrites it), never in between.
            let _times = self.gate.times(st.st_ino);
            let now = sys::stat_fd(file.as_fd()).map_err(io_err(rel, "stat"))?;
            if (now.st_ctime, now.st_ctime_nsec) != (st.st_ctime, st.st_ctime_nsec) {
                self.catalog.exec_grouped("undo releasing", move |c| {
                    tiering::transition(c, id, FileState::Releasing, FileState::Premigrated, None)
                })?;
                return Ok(Some("changed while releasing"));
            }
            let marker = StubMarker::new(hash, f.size).with_times(stub::StubTimes {
                mtime_ns: stub::mtime_ns(&st),
                ctime_ns: stub::shown_ctime_ns(file.as_fd(), &st),
            });
            // A kept ctime is now in the marker; without it the marker fits
            // inside the inode (both would spill into an xattr block).
            stub::drop_kept_ctime(&file).map_err(io_err(rel, "drop kept change time"))?;
            stub::write_marker(&file, &marker).map_err(io_err(rel, "write stub marker"))?;
        }
        file.sync_all().map_err(io_err(rel, "fsync"))?;
        failpoint::pause("marked");
        stub::free_blocks_keeping_size(&file, f.size).map_err(io_err(rel, "free blocks"))?;
        failpoint::pause("freed");
        {
            let _times = self.gate.times(st.st_ino);
            let marker =
                stub::read_marker(file.as_fd()).map_err(io_err(rel, "read stub marker"))?;
            stub::restore_times_with(&file, &st, marker.as_ref())
                .map_err(io_err(rel, "restore times"))?;
        }
        file.sync_all().map_err(io_err(rel, "fsync"))?;
        self.settle(rel, &file);
        if let Some(invalidate) = self.invalidate.get() {
            invalidate(st.st_ino);
        }
        failpoint::pause("punched");
        self.catalog.exec_grouped("mark cold", move |c| {
            tiering::transition(c, id, FileState::Releasing, FileState::Cold, None)
        })?;
        tracing::debug!(path = %rel.display(), bytes = f.size, "released");
        Ok(None)
    }

    /// Brings a cold file's content back into its stub and verifies it.
    /// Concurrent recalls of one file share a single download. Returns the
    /// bytes downloaded (0 if the file was not cold).
    pub async fn recall(&self, rel: &Path) -> Result<u64, TierError> {
        let file = self.open_rel(rel, libc::O_RDWR)?;
        let id = stub_fill::file_id(&file).map_err(io_err(rel, "stat"))?;
        let lock = self.file_lock(id).await;
        let one = lock.lock().await;
        let started = Instant::now();
        let result = self.recall_locked(rel, file, id).await;
        match &result {
            Ok(0) => {}
            r => crate::metrics::metrics().record_recall(r.is_ok(), started.elapsed()),
        }
        drop(one);
        self.unlock_file(id, lock).await;
        result
    }

    /// The lock that keeps recalls, stream give-backs and discards of file
    /// `id` apart (one at a time per file). Hand it back with
    /// [`Tier::unlock_file`] once its guard is dropped.
    async fn file_lock(&self, id: stub_fill::FileId) -> Arc<tokio::sync::Mutex<()>> {
        self.recalls.lock().await.entry(id).or_default().clone()
    }

    /// Forgets file `id`'s lock once nobody else holds or waits for it.
    async fn unlock_file(&self, id: stub_fill::FileId, lock: Arc<tokio::sync::Mutex<()>>) {
        let mut map = self.recalls.lock().await;
        // Only the map and this call hold the lock: nobody waits for it.
        if Arc::strong_count(&lock) <= 2 {
            map.remove(&id);
        }
    }

    /// A reader of the cold file being filled by `fill` closed. Once the
    /// last one has, unless the stream was promoted to a full recall, the
    /// chunks kept in the stub while reading are given back: reading part
    /// of a cold file leaves it using no local blocks. Runs under the
    /// file's recall lock, so it never overlaps a recall.
    pub async fn stream_closed(&self, fill: Arc<StubFill>) {
        // The closed handle's registration ends when the last request still
        // holding it is answered; another open reader may hold the file
        // longer (its own close comes back here).
        if !fill.readers_gone(std::time::Duration::from_secs(5)).await || fill.is_promoted() {
            return;
        }
        let Ok(id) = stub_fill::file_id(fill.file()) else {
            return;
        };
        let lock = self.file_lock(id).await;
        let one = lock.lock().await;
        if fill.readers() == 0 && !fill.is_promoted() {
            let rel = fill.source().rel.clone();
            match stub::read_marker(fill.file().as_fd()) {
                Ok(Some(marker)) => {
                    if let Err(e) = fill.give_back(&marker).await {
                        tracing::warn!(path = %rel.display(), error = %e,
                            "cannot give back the blocks a read of a cold file kept");
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(path = %rel.display(), error = %e, "cannot read stub marker");
                }
            }
        }
        drop(one);
        self.unlock_file(id, lock).await;
    }

    /// Whether a recall of the file at `rel` is running or waiting.
    async fn recall_running(&self, rel: &Path) -> bool {
        let Ok(file) = self.open_rel(rel, libc::O_PATH) else {
            return false;
        };
        match stub_fill::file_id(&file) {
            Ok(id) => self.recalls.lock().await.contains_key(&id),
            Err(_) => false,
        }
    }

    /// Recalls the file open as `file` (found at `rel`; the path is only
    /// used to name it and find its catalog row).
    async fn recall_locked(
        &self,
        rel: &Path,
        file: File,
        id: stub_fill::FileId,
    ) -> Result<u64, TierError> {
        let Some(marker) =
            stub::read_marker(file.as_fd()).map_err(io_err(rel, "read stub marker"))?
        else {
            return Ok(0);
        };
        let hash = marker.hash().map_err(io_err(rel, "read stub marker"))?;
        let st = sys::stat_fd(file.as_fd()).map_err(io_err(rel, "stat"))?;
        let key = path_key(rel).unwrap_or_default();
        let row_key = key.clone();
        let row = self
            .catalog
            .exec_grouped("find file", move |c| tiering::file_by_path(c, &row_key))?;
        if let Some(row) = &row
            && row.ino != st.st_ino
            && row.blake3.as_deref() != Some(hash.to_hex().as_str())
        {
            // Another inode, whose marker names other content than the row,
            // was put at the catalogued path: its marker is not to be
            // trusted. (A row whose inode number lags behind a replacement
            // made through the mount but names the same content is fine:
            // the file gets the content the catalog has for this path.)
            tracing::warn!(path = %rel.display(), catalogued = row.ino, found = st.st_ino,
                "recall refused: the file is not the catalogued one");
            return Err(TierError::NotCatalogued {
                path: rel.to_path_buf(),
                catalogued: row.ino,
                found: st.st_ino,
            });
        }
        if let Some(row) = &row {
            let id = row.id;
            self.catalog.exec_grouped("mark recalling", move |c| {
                tiering::transition(c, id, FileState::Cold, FileState::Recalling, None)
            })?;
        }
        let bytes = *hash.as_bytes();
        let objects = self
            .catalog
            .exec_grouped("find objects", move |c| tiering::objects_for(c, &bytes))?;
        let mut problems = Vec::new();
        let mut done = false;
        let mut transient = !objects.is_empty();
        let mut local_failure = None;
        let fill_started = Instant::now();
        // Chunk by chunk when the chunk hashes are known (shared with the
        // file's readers), else one verified stream per copy.
        let fill = self.fill_for(rel, &file, id, &marker).unwrap_or_else(|e| {
            tracing::warn!(path = %rel.display(), error = %e, "chunked recall unavailable; downloading whole");
            None
        });
        if let Some(fill) = &fill {
            let concurrency = self
                .remotes
                .values()
                .map(Remote::max_concurrency)
                .max()
                .unwrap_or(1);
            match fill.fill_all(self, concurrency).await {
                Ok(()) => done = true,
                Err(e) => {
                    fill.abandon().await;
                    match &e {
                        TierError::Io { .. } => {
                            tracing::error!(path = %rel.display(), error = %e, "recall cannot write the local copy");
                            local_failure = Some(e.errno());
                        }
                        _ => transient = e.is_transient(),
                    }
                    problems.push(e.to_string());
                }
            }
        }
        for object in objects.iter().filter(|_| fill.is_none()) {
            let Some(remote) = self.remotes.get(&object.remote) else {
                problems.push(format!("remote `{}` is not configured", object.remote));
                transient = false;
                continue;
            };
            let written = AtomicU64::new(0);
            let limit = remote.recall_timeout();
            let report = |n: u64| {
                written.store(n, Ordering::Relaxed);
                failpoint::pause("receiving");
            };
            let download = remote.download_to(&object.key, marker.size, &hash, &file, &report);
            let outcome = watchdog::while_progressing(limit, &written, download)
                .await
                .unwrap_or_else(|| Err(watchdog::timed_out(remote, &object.key, limit)));
            match outcome {
                Err(e @ crate::remote::RemoteError::LocalIo { .. }) => {
                    // Disk full or a local I/O error: another copy cannot help.
                    tracing::error!(path = %rel.display(), remote = %object.remote, error = %e, "recall cannot write the local copy");
                    local_failure = Some(e.errno());
                    problems.push(e.to_string());
                    break;
                }
                Ok(()) => {
                    self.ledger(LedgerEntry {
                        remote: object.remote.clone(),
                        op: "get",
                        requests: 1,
                        bytes: marker.size,
                        storage_class: object.storage_class.clone(),
                        path: Some(key.clone()),
                        ..Default::default()
                    });
                    done = true;
                    break;
                }
                Err(e) => {
                    // The GET is billed; how many bytes came is not known.
                    self.ledger(LedgerEntry {
                        remote: object.remote.clone(),
                        op: "get",
                        requests: 1,
                        storage_class: object.storage_class.clone(),
                        path: Some(key.clone()),
                        ..Default::default()
                    });
                    tracing::debug!(path = %rel.display(), remote = %object.remote, error = %e, "recall from this copy failed");
                    transient &= e.is_transient();
                    problems.push(e.to_string());
                }
            }
        }
        if !done {
            // Give back whatever a failed download wrote; the stub stays a stub.
            let _ = stub::give_back_blocks(&file, marker.size);
            let _ = stub::restore_times_with(&file, &st, Some(&marker));
            if let Some(row) = &row {
                let id = row.id;
                self.catalog.exec_grouped("undo recalling", move |c| {
                    tiering::transition(c, id, FileState::Recalling, FileState::Cold, None)
                })?;
            }
            if objects.is_empty() {
                problems.push("the catalog knows no object with this content".into());
            }
            let err = match local_failure {
                Some(errno) => TierError::Io {
                    path: rel.to_path_buf(),
                    op: "write the recalled data (the file stays a stub)",
                    source: std::io::Error::from_raw_os_error(errno),
                },
                None => TierError::NoCopy {
                    path: rel.to_path_buf(),
                    detail: problems.join("; "),
                    transient,
                },
            };
            tracing::error!(error = %err, "recall failed");
            return Err(err);
        }
        let sync_started = Instant::now();
        // The size and times are the stub's already: the data (and the
        // blocks holding it) must be durable before the marker goes.
        file.sync_data().map_err(io_err(rel, "fsync"))?;
        failpoint::pause("downloaded");
        // The file shows the same times before, during and after the recall:
        // its modification time from the marker (what the stub showed; chunk
        // writes moved the inode's), its change time kept in an xattr set
        // as the engine's last change to the file.
        // Under the times lock, with the marker as it is now: a user's
        // touch or chmod during the recall rewrote it, and wins.
        let times_guard = self.gate.times(st.st_ino);
        let marker = stub::read_marker(file.as_fd())
            .map_err(io_err(rel, "read stub marker"))?
            .unwrap_or(marker);
        stub::restore_times_with(&file, &st, Some(&marker))
            .map_err(io_err(rel, "restore times"))?;
        let shown_ctime = marker
            .times
            .map_or_else(|| stub::ctime_ns(&st), |t| t.ctime_ns);
        // At every instant the marker or the kept ctime is there (a `stat`
        // in between would show the recall's ctime, and tar would say the
        // file changed as it read it). Beside the marker the kept ctime
        // spills into an xattr block; set again once the marker is gone, it
        // moves back inside the inode and the block is freed.
        let kept =
            stub::keep_ctime(&file, shown_ctime, None).map_err(io_err(rel, "keep change time"))?;
        stub::remove_marker(&file).map_err(io_err(rel, "remove stub marker"))?;
        stub::keep_ctime(&file, shown_ctime, Some(kept))
            .map_err(io_err(rel, "keep change time"))?;
        drop(times_guard);
        file.sync_all().map_err(io_err(rel, "fsync"))?;
        self.settle(rel, &file);
        tracing::debug!(path = %rel.display(), bytes = marker.size,
            fill_secs = (sync_started - fill_started).as_secs_f64(),
            sync_secs = sync_started.elapsed().as_secs_f64(), "recall phases");
        if let Some(row) = row {
            let id = row.id;
            self.catalog.exec_grouped("mark premigrated", move |c| {
                tiering::transition(c, id, FileState::Recalling, FileState::Premigrated, None)
            })?;
        }
        self.fills.remove(id);
        if let Some(fill) = &fill {
            fill.finished();
        }
        if problems.is_empty() {
            tracing::info!(path = %rel.display(), bytes = marker.size, "recalled");
        } else {
            tracing::warn!(path = %rel.display(), bytes = marker.size, failed_copies = %problems.join("; "), "recalled from another copy after a copy failed");
        }
        Ok(marker.size)
    }

    /// Recalls every cold file at or below each of `paths`.
    pub async fn recall_paths(&self, paths: &[PathBuf]) -> Result<RecallSummary, TierError> {
        let _job = self.job.lock().await;
        let started = Instant::now();
        let mut files = Vec::new();
        for p in paths {
            let key = path_key(p).unwrap_or_default();
            let mut under = self
                .catalog
                .exec_grouped("list files", move |c| tiering::files_under(c, &key))?;
            under.retain(|f| f.state == FileState::Cold);
            files.extend(under);
        }
        self.reset_progress(files.len() as u64, files.iter().map(|f| f.size).sum());
        let mut summary = RecallSummary::default();
        for f in files {
            match self.recall(&f.path).await {
                Ok(n) => {
                    summary.recalled += 1;
                    summary.bytes += n;
                    self.progress.bytes_done.fetch_add(n, Ordering::Relaxed);
                }
                Err(e) => summary.failures.push(format!("{}: {e}", f.path.display())),
            }
            self.progress.files_done.fetch_add(1, Ordering::Relaxed);
        }
        summary.seconds = started.elapsed().as_secs_f64();
        Ok(summary)
    }

    /// Truncates a stub to zero bytes: no download, and the file is hot again.
    /// Under the file's lock, so a recall cannot write the old content over
    /// the truncated file afterwards (it finds no marker and does nothing),
    /// and after the chunk writes of the file's readers have stopped.
    pub async fn discard_stub(&self, rel: &Path) -> Result<(), TierError> {
        let file = self.open_rel(rel, libc::O_RDWR)?;
        let id = stub_fill::file_id(&file).map_err(io_err(rel, "stat"))?;
        let lock = self.file_lock(id).await;
        let one = lock.lock().await;
        let result = self.discard_locked(rel, &file, id).await;
        drop(one);
        self.unlock_file(id, lock).await;
        result
    }

    async fn discard_locked(
        &self,
        rel: &Path,
        file: &File,
        id: stub_fill::FileId,
    ) -> Result<(), TierError> {
        if let Some(fill) = self.fills.live(id) {
            fill.abandon().await;
        }
        self.fills.remove(id);
        let cleared = {
            let _times = self.gate.times(id.1);
            file.set_len(0)
                .and_then(|()| stub::remove_marker(file))
                .and_then(|()| stub::drop_kept_ctime(file))
        };
        cleared.map_err(io_err(rel, "truncate the stub"))?;
        if let Some(key) = path_key(rel) {
            self.catalog
                .exec_grouped("unlink truncated stub", move |c| {
                    if let Some(f) = tiering::file_by_path(c, &key)? {
                        tiering::mark_hot(c, f.id)?;
                    }
                    Ok(())
                })?;
        }
        Ok(())
    }

    /// Deletes objects that no file has referenced for at least `grace`.
    pub async fn gc(&self, grace: Duration) -> Result<GcSummary, TierError> {
        let now = now_ns();
        let candidates = self
            .catalog
            .exec_durable("find unreferenced objects", move |c| {
                tiering::unreferenced_objects(c, now)
            })?;
        let mut summary = GcSummary {
            unreferenced: candidates.len() as u64,
            ..Default::default()
        };
        for (object, since) in candidates {
            if now.saturating_sub(since) < grace.as_nanos() as i64 {
                continue;
            }
            let Some(remote) = self.remotes.get(&object.remote) else {
                summary.failures.push(format!(
                    "{}: remote `{}` is not configured",
                    object.key, object.remote
                ));
                continue;
            };
            // Re-check right before deleting: a migration may have reused it.
            let bytes = blake3::Hash::from_hex(&object.blake3)
                .map(|h| *h.as_bytes())
                .unwrap_or([0; 32]);
            let still_unreferenced = self.catalog.exec_grouped("recheck object", move |c| {
                Ok(!c.query_row(
                    "SELECT EXISTS (SELECT 1 FROM files WHERE blake3 = ?1)",
                    [&bytes[..]],
                    |r| r.get::<_, bool>(0),
                )?)
            })?;
            if !still_unreferenced {
                continue;
            }
            match remote.delete(&object.key).await {
                Ok(()) => {
                    let id = object.id;
                    self.catalog.exec_grouped("forget object", move |c| {
                        tiering::delete_object_row(c, id)
                    })?;
                    summary.deleted += 1;
                    summary.deleted_bytes += object.size;
                    self.ledger(LedgerEntry {
                        remote: object.remote.clone(),
                        op: "delete",
                        requests: 1,
                        bytes: object.size,
                        storage_class: object.storage_class.clone(),
                        object_age_ns: Some(now - object.created_at_ns),
                        ..Default::default()
                    });
                }
                Err(e) => summary.failures.push(e.to_string()),
            }
        }
        Ok(summary)
    }

    /// Whether each configured remote answered its last requests.
    pub fn remote_health(&self) -> Vec<crate::remote::HealthReport> {
        self.remotes.values().map(|r| r.health().report()).collect()
    }

    /// The catalog state of the file at `rel`, if catalogued.
    pub fn state_of(&self, rel: &Path) -> Option<FileState> {
        let key = path_key(rel)?;
        self.catalog
            .exec_grouped("read file state", move |c| tiering::file_by_path(c, &key))
            .ok()
            .flatten()
            .map(|f| f.state)
    }

    /// A current name of the file with backing inode `ino` on device `dev`
    /// (one of its hard links), from the catalog's rows with that inode
    /// number, each checked against the hot dir. `None` if no catalogued
    /// name leads to it.
    pub fn name_of_inode(&self, dev: u64, ino: u64) -> Option<PathBuf> {
        let rows = self
            .catalog
            .exec_grouped("find names of an inode", move |c| {
                tiering::paths_with_ino(c, ino)
            })
            .ok()?;
        rows.into_iter().find(|rel| {
            sys::open_beneath(self.hot_fd.as_fd(), rel, libc::O_PATH)
                .and_then(|fd| sys::stat_fd(fd.as_fd()))
                .is_ok_and(|st| st.st_dev == dev && st.st_ino == ino)
        })
    }

    /// Whether `name` (a relative path) is a stub right now.
    pub fn is_stub_path(&self, rel: &Path) -> bool {
        sys::open_beneath(self.hot_fd.as_fd(), rel, libc::O_PATH)
            .map(|fd| stub::is_stub(fd.as_fd()))
            .unwrap_or(false)
    }
}

/// Everything needed to read a cold file piecewise: its chunk hashes and
/// where copies of it live.
#[derive(Debug, Clone)]
pub struct StubSource {
    /// File, relative to the mount root.
    pub rel: PathBuf,
    /// blake3 of the whole content.
    pub hash: blake3::Hash,
    /// Size in bytes.
    pub size: u64,
    /// Chunk size the hashes were computed with.
    pub chunk_size: u64,
    chunks: Vec<u8>,
    /// Where the original file had holes (a recall leaves them holes).
    pub holes: layout::Holes,
    /// (remote, key, storage class) of every verified copy, in preference order.
    copies: Vec<(String, String, Option<String>)>,
}

impl StubSource {
    /// Number of chunks.
    pub fn chunk_count(&self) -> u64 {
        self.size.div_ceil(self.chunk_size)
    }
}

impl Tier {
    /// How to read the stub at `rel` piecewise, or `None` if it is not a stub
    /// or has no recorded chunk hashes (then only a full recall can serve it).
    fn stub_source(
        &self,
        rel: &Path,
        marker: &StubMarker,
    ) -> Result<Option<StubSource>, TierError> {
        let bytes = *marker.hash.as_bytes();
        let (chunks, objects) = self.catalog.exec_grouped("find chunks", move |c| {
            Ok((
                tiering::chunks_for(c, &bytes)?,
                tiering::objects_for(c, &bytes)?,
            ))
        })?;
        let Some(tiering::ChunkRow {
            chunk_size,
            hashes: chunks,
            holes,
        }) = chunks
        else {
            return Ok(None);
        };
        let holes = layout::Holes::decode(holes.as_deref(), marker.size);
        if chunk_size == 0 || chunks.len() as u64 != marker.size.div_ceil(chunk_size) * 32 {
            return Ok(None);
        }
        let copies = objects
            .into_iter()
            .filter(|o| o.verified_at_ns.is_some() && self.remotes.contains_key(&o.remote))
            .map(|o| (o.remote, o.key, o.storage_class))
            .collect();
        Ok(Some(StubSource {
            rel: rel.to_path_buf(),
            hash: marker.hash,
            size: marker.size,
            chunk_size,
            chunks,
            holes,
            copies,
        }))
    }

    /// The shared chunk-by-chunk fill of the stub at `rel` (see
    /// [`StubFill`]), or `None` if it is not a stub or has no recorded chunk
    /// hashes (then only a full recall can serve it).
    pub fn stub_fill(&self, rel: &Path) -> Result<Option<Arc<StubFill>>, TierError> {
        let file = self.open_rel(rel, libc::O_RDWR)?;
        let Some(marker) =
            stub::read_marker(file.as_fd()).map_err(io_err(rel, "read stub marker"))?
        else {
            return Ok(None);
        };
        let id = stub_fill::file_id(&file).map_err(io_err(rel, "stat"))?;
        self.fill_for(rel, &file, id, &marker)
    }

    /// The fill of the stub open as `file` (identity `id`, marker `marker`).
    fn fill_for(
        &self,
        rel: &Path,
        file: &File,
        id: stub_fill::FileId,
        marker: &StubMarker,
    ) -> Result<Option<Arc<StubFill>>, TierError> {
        self.fills.get_or_insert(id, &marker.hash, || {
            let Some(src) = self.stub_source(rel, marker)? else {
                return Ok(None);
            };
            let file = file.try_clone().map_err(io_err(rel, "reopen"))?;
            Ok(Some(StubFill::new(src, file)))
        })
    }

    /// Chunk `index` of a cold file, fetched with a ranged GET and verified
    /// against its recorded hash; tries each copy in turn. Never returns
    /// unverified bytes.
    pub async fn read_chunk(
        &self,
        src: &StubSource,
        index: u64,
    ) -> Result<bytes::Bytes, TierError> {
        let start = index * src.chunk_size;
        let end = (start + src.chunk_size).min(src.size);
        let mut problems = Vec::new();
        let mut transient = !src.copies.is_empty();
        for (remote_name, key, class) in &src.copies {
            let Some(remote) = self.remotes.get(remote_name) else {
                continue;
            };
            let limit = remote.recall_timeout();
            let result = watchdog::within(limit, remote.get_range(key, start..end))
                .await
                .unwrap_or_else(|| Err(watchdog::timed_out(remote, key, limit)));
            if let Ok(data) = &result {
                // Billed whether or not the chunk verifies.
                self.ledger(LedgerEntry {
                    remote: remote_name.clone(),
                    op: "get",
                    requests: 1,
                    bytes: data.len() as u64,
                    storage_class: class.clone(),
                    path: path_key(&src.rel),
                    ..Default::default()
                });
            }
            match result {
                Ok(data) if hash::chunk_matches(&src.chunks, index as usize, &data) => {
                    return Ok(data);
                }
                Ok(_) => {
                    tracing::error!(path = %src.rel.display(), remote = %remote_name, key, chunk = index, "chunk failed verification");
                    problems.push(format!(
                        "remote `{remote_name}`: object `{key}`: chunk {index} does not match its hash"
                    ));
                    transient = false;
                }
                Err(e) => {
                    transient &= e.is_transient();
                    problems.push(e.to_string());
                }
            }
        }
        if src.copies.is_empty() {
            problems.push("no verified copy is recorded".into());
        }
        Err(TierError::NoCopy {
            path: src.rel.clone(),
            detail: problems.join("; "),
            transient,
        })
    }
}

/// Why a file was skipped when the daemon is shutting down.
const STOPPING: &str = "daemon shutting down; resumes at the next start";

/// How one file's migration ended.
enum Outcome {
    Released { uploaded: u64 },
    Skipped(&'static str),
}
