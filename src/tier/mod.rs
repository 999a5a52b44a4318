//! The tiering engine. [`Tier`] is a thin front over parts with one job
//! each, sharing one context (`core`):
//!
//! * `planner` — which catalogued files the rules would migrate now;
//! * `migrator` — upload, verify and release (the safety ordering is in its
//!   module doc and in `docs/safety.md`);
//! * `recaller` — whole-file and chunked recall, stub discard and the
//!   give-back after a streamed read;
//! * `collector` — garbage collection of unreferenced objects;
//! * `fsck`, `verify`, `backup`, `rebuild` — checks and disaster recovery.
//!
//! What the engine did goes out as [`crate::events::Event`]s (billing,
//! activity, metrics); the catalog is reached through its async API from
//! async code, and blocking work (hashing, marker and punch system calls)
//! runs on blocking threads.

pub mod backup;
mod collector;
mod core;
mod error;
pub mod failpoint;
mod fsck;
pub mod gate;
mod hash;
pub mod layout;
mod migrator;
mod planner;
pub mod rebuild;
mod recaller;
pub mod schedule;
pub mod stop;
pub mod stub;
mod stub_fill;
mod summary;
mod tally;
pub mod verify;
mod watchdog;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

pub use error::TierError;
use error::io_err;
pub use fsck::FsckReport;
use gate::Gate;
pub use recaller::StubSource;
pub use stub_fill::{FillReader, StubFill};
pub use summary::{
    GcSummary, MigrateRequest, MigrateSummary, Progress, RecallSummary, SkipReason, Skipped,
};

use self::core::{Core, FileLocks};
use crate::catalog::tiering::{self, TierFile};
use crate::catalog::{Catalog, FileState, path_key};
use crate::config::Config;
use crate::events::{Event, Events, Recorder};
use crate::remote::Remote;
use crate::rules::{RuleSet, Target};
use crate::sys;

/// The tiering engine shared by the daemon's scheduler, the control socket
/// and the FUSE layer (for recalls).
pub struct Tier {
    core: Core,
    migrator: migrator::Migrator,
    recaller: recaller::Recaller,
    /// One migration, recall, gc or fsck job at a time.
    job: tokio::sync::Mutex<()>,
    retry_soon: tokio::sync::Notify,
    /// Recalls the mount started in the background (a stream promoted to
    /// a full recall), counted from the moment they are decided.
    background_recalls: Arc<std::sync::atomic::AtomicU64>,
}

/// One background recall, counted in [`Tier::background_recalls`] until
/// dropped.
#[derive(Debug)]
pub struct BackgroundRecall(Arc<std::sync::atomic::AtomicU64>);

impl Drop for BackgroundRecall {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl std::fmt::Debug for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tier")
            .field("hot_dir", &self.core.hot_dir)
            .field("remotes", &self.core.remotes.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Tier {
    /// Builds the engine: one client per configured remote (no network
    /// I/O). Its events go to the catalog (cost ledger, rule runs), the
    /// activity record and the metrics.
    pub fn new(config: &Config, catalog: Catalog, gate: Arc<Gate>) -> Result<Tier, TierError> {
        let mut remotes = BTreeMap::new();
        for (name, cfg) in &config.remotes {
            remotes.insert(name.clone(), Remote::from_config(cfg)?);
        }
        let recorders: Vec<Arc<dyn Recorder>> = vec![
            Arc::new(tiering::CatalogRecorder(catalog.clone())),
            Arc::new(crate::activity::activity()),
            Arc::new(crate::metrics::metrics()),
        ];
        Tier::with_parts(
            &config.hot_dir,
            catalog,
            remotes,
            gate,
            Events::new(recorders),
        )
    }

    /// Builds the engine over `hot_dir` with these remotes, sending its
    /// events to `events`.
    pub fn with_parts(
        hot_dir: &Path,
        catalog: Catalog,
        remotes: BTreeMap<String, Remote>,
        gate: Arc<Gate>,
        events: Events,
    ) -> Result<Tier, TierError> {
        let hot_fd = sys::open_at(
            // SAFETY: AT_FDCWD is valid for *at() calls; hot_dir is absolute.
            unsafe { std::os::fd::BorrowedFd::borrow_raw(libc::AT_FDCWD) },
            hot_dir.as_os_str(),
            libc::O_PATH | libc::O_DIRECTORY,
            0,
        )
        .map_err(io_err(hot_dir, "open hot dir"))?;
        let core = Core {
            hot_dir: hot_dir.to_path_buf(),
            hot_fd,
            catalog,
            remotes,
            gate,
            locks: FileLocks::default(),
            progress: Default::default(),
            events,
            invalidate: Default::default(),
            stop: Default::default(),
        };
        Ok(Tier {
            core,
            migrator: Default::default(),
            recaller: Default::default(),
            job: Default::default(),
            retry_soon: Default::default(),
            background_recalls: Default::default(),
        })
    }

    /// The context the parts share.
    fn core(&self) -> &Core {
        &self.core
    }

    /// Sets how to tell the kernel that a file's attributes changed behind
    /// its back (its block count drops to 0 on release). Set once, after mounting.
    /// The function is given the inode and a sender to answer once done; it
    /// must not block (the daemon hands the work to a thread of its own).
    pub fn set_invalidator(
        &self,
        f: impl Fn(u64, tokio::sync::oneshot::Sender<()>) + Send + Sync + 'static,
    ) {
        let _ = self.core.invalidate.set(Box::new(f));
    }

    /// Stops running migrations at their next safe point (see [`stop`]) and
    /// waits, at most `timeout`, for the running job to end and for the
    /// aborts of the uploads it abandoned. Called at
    /// shutdown; later migrations do nothing.
    pub async fn stop(&self, timeout: std::time::Duration) {
        self.core.stop.stop();
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
        for remote in self.core.remotes.values() {
            remote.finish_aborts(left).await;
        }
    }

    /// Whether a migration, recall, gc or fsck job is running now.
    pub fn is_busy(&self) -> bool {
        self.job.try_lock().is_err()
    }

    /// The configured remotes.
    pub fn remotes(&self) -> &BTreeMap<String, Remote> {
        &self.core.remotes
    }

    /// The open/release coordination shared with the FUSE layer.
    pub fn gate(&self) -> &Arc<Gate> {
        &self.core.gate
    }

    /// Progress of the running migration or recall.
    pub fn progress(&self) -> &Arc<Progress> {
        &self.core.progress
    }

    /// Resolves files left in transient states by a crash. Run at start,
    /// before the mount serves requests.
    pub fn recover(&self) -> Result<Vec<(PathBuf, FileState, FileState)>, TierError> {
        let hot_fd = self
            .core
            .hot_fd
            .try_clone()
            .map_err(io_err(&self.core.hot_dir, "dup"))?;
        let changes = self
            .core
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
                let file = self.core.open_rel(path, libc::O_RDWR)?;
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
        let rows = self
            .core
            .catalog
            .exec_grouped("load rules", tiering::rules)?;
        Ok(planner::rule_set(rows))
    }

    /// Files the rules would migrate now: (file, targets).
    pub fn plan(&self, req: &MigrateRequest) -> Result<Vec<(TierFile, Vec<Target>)>, TierError> {
        let (rows, files) = self
            .core
            .catalog
            .exec_grouped("list migration candidates", candidates)?;
        let plan = planner::plan(planner::rule_set(rows), files, req, SystemTime::now());
        Ok(plan
            .files
            .into_iter()
            .map(|p| (p.file, p.targets))
            .collect())
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
        let started = Instant::now();
        let (rows, files) = self
            .core
            .catalog
            .exec_grouped_async("list migration candidates", candidates)
            .await?;
        let plan = planner::plan(planner::rule_set(rows), files, &req, SystemTime::now());
        let mut summary = MigrateSummary {
            candidates: plan.files.len() as u64,
            candidate_bytes: plan.files.iter().map(|p| p.file.size).sum(),
            ..Default::default()
        };
        self.core
            .reset_progress(summary.candidates, summary.candidate_bytes);
        if req.dry_run {
            summary.seconds = started.elapsed().as_secs_f64();
            return Ok((summary, 0));
        }
        let run = self.migrator.run(&self.core, plan, &mut summary).await;
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
        self.core.events.emit(Event::RuleRuns(run.rule_runs));
        Ok((summary, run.transient))
    }

    /// Reports a finished migration run (not a dry run) started by
    /// `trigger` (`schedule` or `tierctl`) to the recorders.
    pub fn record_run(&self, trigger: &'static str, result: &Result<MigrateSummary, String>) {
        let outcome = result
            .as_ref()
            .map(MigrateSummary::totals)
            .map_err(Clone::clone);
        self.core
            .events
            .emit(Event::MigrationRun { trigger, outcome });
    }

    /// Counts a background recall from now until the returned guard is
    /// dropped: taken by the mount before it answers the read that decided
    /// the recall, so a caller of [`Tier::background_recalls`] afterwards
    /// sees it.
    pub fn background_recall(&self) -> BackgroundRecall {
        self.background_recalls
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        BackgroundRecall(self.background_recalls.clone())
    }

    /// The longest `recall_timeout` of the configured remotes: how long a
    /// read of one chunk of a cold file may wait in all.
    pub fn longest_recall_timeout(&self) -> std::time::Duration {
        self.core
            .remotes
            .values()
            .map(|r| r.recall_timeout())
            .max()
            .unwrap_or(std::time::Duration::from_secs(60))
    }

    /// Background recalls decided and not finished yet.
    pub fn background_recalls(&self) -> u64 {
        self.background_recalls
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Brings a cold file's content back into its stub and verifies it.
    /// Concurrent recalls of one file share a single download. Returns the
    /// bytes downloaded (0 if the file was not cold).
    pub async fn recall(&self, rel: &Path) -> Result<u64, TierError> {
        self.recaller.recall(&self.core, rel).await
    }

    /// Recalls every cold file at or below each of `paths`.
    pub async fn recall_paths(&self, paths: &[PathBuf]) -> Result<RecallSummary, TierError> {
        let _job = self.job.lock().await;
        let started = Instant::now();
        let mut files = Vec::new();
        for p in paths {
            let key = path_key(p).unwrap_or_default();
            let mut under = self
                .core
                .catalog
                .exec_grouped_async("list files", move |c| tiering::files_under(c, &key))
                .await?;
            under.retain(|f| f.state == FileState::Cold);
            files.extend(under);
        }
        let progress = &self.core.progress;
        self.core
            .reset_progress(files.len() as u64, files.iter().map(|f| f.size).sum());
        let mut summary = RecallSummary::default();
        for f in files {
            match self.recall(&f.path).await {
                Ok(n) => {
                    summary.recalled += 1;
                    summary.bytes += n;
                    progress.bytes_done.fetch_add(n, Ordering::Relaxed);
                }
                Err(e) => summary.failures.push(format!("{}: {e}", f.path.display())),
            }
            progress.files_done.fetch_add(1, Ordering::Relaxed);
        }
        summary.seconds = started.elapsed().as_secs_f64();
        Ok(summary)
    }

    /// Truncates a stub to zero bytes: no download, and the file is hot again.
    /// Under the file's lock, so a recall cannot write the old content over
    /// the truncated file afterwards (it finds no marker and does nothing),
    /// and after the chunk writes of the file's readers have stopped.
    pub async fn discard_stub(&self, rel: &Path) -> Result<(), TierError> {
        self.recaller.discard_stub(&self.core, rel).await
    }

    /// A reader of the cold file being filled by `fill` closed. Once the
    /// last one has, unless the stream was promoted to a full recall, the
    /// chunks kept in the stub while reading are given back: reading part
    /// of a cold file leaves it using no local blocks.
    pub async fn stream_closed(&self, fill: Arc<StubFill>) {
        self.recaller.stream_closed(&self.core, fill).await
    }

    /// Whether a recall of the file at `rel` is running or waiting.
    fn recall_running(&self, rel: &Path) -> bool {
        let Ok(file) = self.core.open_rel(rel, libc::O_PATH) else {
            return false;
        };
        crate::tier::core::file_id(&file).is_ok_and(|id| self.core.locks.is_busy(id))
    }

    /// The shared chunk-by-chunk fill of the stub at `rel` (see
    /// [`StubFill`]), or `None` if it is not a stub or has no recorded chunk
    /// hashes (then only a full recall can serve it).
    pub fn stub_fill(&self, rel: &Path) -> Result<Option<Arc<StubFill>>, TierError> {
        self.recaller.stub_fill(&self.core, rel)
    }

    /// Chunk `index` of a cold file, fetched with a ranged GET and verified
    /// against its recorded hash; tries each copy in turn. Never returns
    /// unverified bytes.
    pub async fn read_chunk(
        &self,
        src: &StubSource,
        index: u64,
    ) -> Result<bytes::Bytes, TierError> {
        recaller::read_chunk(&self.core, src, index).await
    }

    /// Deletes objects that no file has referenced for at least `grace`.
    pub async fn gc(&self, grace: Duration) -> Result<GcSummary, TierError> {
        collector::gc(&self.core, grace).await
    }

    /// Whether each configured remote answered its last requests.
    pub fn remote_health(&self) -> Vec<crate::remote::HealthReport> {
        self.core
            .remotes
            .values()
            .map(|r| r.health().report())
            .collect()
    }

    /// The catalog state of the file at `rel`, if catalogued.
    pub fn state_of(&self, rel: &Path) -> Option<FileState> {
        let key = path_key(rel)?;
        self.core
            .catalog
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
            .core
            .catalog
            .exec_grouped("find names of an inode", move |c| {
                tiering::paths_with_ino(c, ino)
            })
            .ok()?;
        rows.into_iter().find(|rel| {
            sys::open_beneath(self.core.hot_fd.as_fd(), rel, libc::O_PATH)
                .and_then(|fd| sys::stat_fd(fd.as_fd()))
                .is_ok_and(|st| st.st_dev == dev && st.st_ino == ino)
        })
    }

    /// Whether `name` (a relative path) is a stub right now.
    pub fn is_stub_path(&self, rel: &Path) -> bool {
        sys::open_beneath(self.core.hot_fd.as_fd(), rel, libc::O_PATH)
            .map(|fd| stub::is_stub(fd.as_fd()))
            .unwrap_or(false)
    }
}

/// The rules and the files a migration considers (one catalog job).
fn candidates(
    c: &rusqlite::Connection,
) -> rusqlite::Result<(Vec<tiering::RuleRow>, Vec<TierFile>)> {
    let rows = tiering::rules(c)?;
    let mut all = Vec::new();
    tiering::for_each_file_in_states(c, &planner::MOVABLE, |f| all.push(f))?;
    Ok((rows, all))
}
