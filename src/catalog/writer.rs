//! The single writer thread: it owns the read-write connection, applies the
//! changes sent by [`Catalog::send`](super::Catalog::send) in batched
//! transactions, coalesces access times, and runs reconciles.
//!
//! Batching (group commit): the thread blocks for one message, then keeps
//! gathering changes into the same transaction for up to [`GATHER_TIME`]
//! (draining the queue, and sleeping [`GATHER_NAP`] whenever it is empty), or
//! until [`MAX_BATCH`] changes or a request arrive. A burst of file operations
//! through the mount therefore costs one commit per [`GATHER_TIME`] rather
//! than one per operation; a lone change is committed at most [`GATHER_TIME`]
//! later. Queued changes live in memory either way: what a crash loses is
//! found again by the start-up reconcile.
//!
//! Full disk: a batch whose transaction fails for want of space or I/O
//! (`SQLITE_FULL`, `SQLITE_IOERR`, a busy or locked database) is not dropped.
//! Its changes move to an in-memory retry queue ([`Retry`]), bounded and
//! coalesced per path (repeated updates of one file keep only the latest),
//! and are retried with exponential back-off (100 ms doubling to 5 s), before
//! any later change so order is kept. The queue's length and the number of
//! failed attempts are published in [`WriterStats`] for `tierctl status` and
//! the metrics. Only if the queue overflows ([`MAX_RETRY`]) are changes
//! dropped, counted and logged; `tierctl fsck` finds the files they concerned.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use rusqlite::{Connection, TransactionBehavior};

use super::access::PendingAccesses;
use super::event::{FileEvent, path_key};
use super::look::HotDir;
use super::{CatalogError, ReconcileStats, apply, reconcile};

/// Most changes applied in one transaction.
pub(crate) const MAX_BATCH: usize = 10_000;
/// How long changes are gathered into one transaction after the first.
pub(crate) const GATHER_TIME: Duration = Duration::from_millis(20);
/// Sleep between looks at an empty queue while gathering. The thread sleeps
/// rather than blocking on the channel, whose receive spins (`sched_yield`)
/// before it parks: with changes arriving one by one that spinning cost more
/// CPU than the SQL.
const GATHER_NAP: Duration = Duration::from_millis(2);

/// Most changes held for retry while the catalog cannot be written.
pub(crate) const MAX_RETRY: usize = 500_000;
/// First wait before retrying a failed write.
const RETRY_MIN: Duration = Duration::from_millis(100);
/// Longest wait between retries.
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Counters the writer publishes for `tierctl status` and the metrics.
#[derive(Debug, Default)]
pub(crate) struct WriterStats {
    /// Changes waiting in the retry queue (not yet in the catalog).
    pub(crate) pending: AtomicU64,
    /// Catalog write attempts that failed (each failed transaction once).
    pub(crate) failed: AtomicU64,
    /// Changes dropped because the retry queue was full.
    pub(crate) dropped: AtomicU64,
}

/// A request that needs an answer; it ends the current batch.
/// Work run on the writer's connection, in order with queued events; it sends
/// its own result back.
pub(crate) type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// A short piece of catalog work that shares a transaction with the other
/// grouped jobs queued behind it (group commit), each in its own savepoint so
/// a failing job takes back only its own changes. Its answer is sent after
/// the group's commit, so a caller sees its change committed (and, for a
/// durable job, fsynced) when it hears back.
pub(crate) struct GroupedJob {
    /// Commit with `synchronous = FULL` (one fsync covers the whole group).
    pub(crate) durable: bool,
    /// The work, given the connection or the error that kept the group's
    /// transaction from starting.
    pub(crate) run: JobRun,
}

/// The work of a [`GroupedJob`].
pub(crate) type JobRun = Box<dyn FnOnce(Result<&Connection, &rusqlite::Error>) -> JobStep + Send>;

/// Sends a [`GroupedJob`]'s answer, given whether the group's commit
/// succeeded.
pub(crate) type JobReply = Box<dyn FnOnce(Result<(), &rusqlite::Error>) + Send>;

/// What a [`GroupedJob`] did: whether its changes stand, and how to answer.
pub(crate) struct JobStep {
    /// `false` rolls the job's savepoint back.
    pub(crate) ok: bool,
    /// Called once the group's commit outcome is known.
    pub(crate) reply: JobReply,
}

/// Most grouped jobs in one transaction.
const MAX_GROUP: usize = 256;

pub(crate) enum Control {
    /// Commit everything queued so far, including pending access times.
    Flush(Sender<Result<(), CatalogError>>),
    /// Make the catalog match this hot directory.
    Reconcile(PathBuf, Sender<Result<ReconcileStats, CatalogError>>),
    /// Flush, then stop the thread.
    Shutdown(Sender<Result<(), CatalogError>>),
    Exec(Job),
    /// A [`GroupedJob`]: consecutive ones share one transaction.
    Grouped(GroupedJob),
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Control::Flush(_) => "Flush",
            Control::Reconcile(..) => "Reconcile",
            Control::Shutdown(_) => "Shutdown",
            Control::Exec(_) => "Exec",
            Control::Grouped(_) => "Grouped",
        })
    }
}

/// What travels on the writer's channel.
#[derive(Debug)]
pub(crate) enum Msg {
    /// A change.
    Event(FileEvent),
    /// A request.
    Control(Control),
}

/// Write failures since the last flush, reported by the next `flush`.
#[derive(Debug, Default)]
struct Failures {
    count: u64,
    first: Option<String>,
}

/// State owned by the writer thread.
pub(crate) struct Writer {
    // Field order matters: `conn` is dropped before `_lock`. Closing any file
    // descriptor of the database releases SQLite's POSIX locks in this
    // process, so the lock file must stay open until SQLite has closed.
    conn: Connection,
    path: PathBuf,
    accesses: PendingAccesses,
    failures: Failures,
    /// A message taken off the channel while gathering a durable group that
    /// did not belong to it; handled next, before the channel.
    stashed: Option<Msg>,
    /// Changes whose write failed for want of space, waiting to be retried.
    retry: Retry,
    stats: Arc<WriterStats>,
    /// Where hints are looked at; `None` for a catalog without a mount
    /// (tools, tests), which then ignores hints.
    hot: Option<HotDir>,
    _lock: File,
}

/// Changes waiting to be written again, in order, with repeated upserts of
/// one path coalesced (only the latest is kept, in the earlier one's place,
/// as long as no rename or removal came between them).
#[derive(Debug)]
struct Retry {
    ops: VecDeque<FileEvent>,
    /// Position in `ops` (counted from `base`) of the latest upsert per path
    /// since the last non-upsert change.
    upserts: HashMap<Vec<u8>, u64>,
    /// Number of ops ever taken from the front of `ops`.
    base: u64,
    /// When to try next (set while `ops` is not empty).
    at: Option<Instant>,
    backoff: Duration,
    /// Whether the overflow was already logged.
    warned_overflow: bool,
}

impl Retry {
    fn new() -> Self {
        Retry {
            ops: VecDeque::new(),
            upserts: HashMap::new(),
            base: 0,
            at: None,
            backoff: RETRY_MIN,
            warned_overflow: false,
        }
    }

    fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Queues `op` behind the others, coalescing an upsert with a queued one
    /// of the same path. Returns `false` if the queue is full (`op` dropped).
    fn push(&mut self, op: FileEvent) -> bool {
        if let FileEvent::Upsert { path, .. } | FileEvent::Look { path } = &op
            && let Some(key) = path_key(path)
        {
            if let Some(&pos) = self.upserts.get(&key)
                && let Some(slot) = pos
                    .checked_sub(self.base)
                    .and_then(|i| usize::try_from(i).ok())
                    .and_then(|i| self.ops.get_mut(i))
            {
                *slot = op;
                return true;
            }
            if self.ops.len() >= MAX_RETRY {
                return false;
            }
            self.upserts.insert(key, self.base + self.ops.len() as u64);
            self.ops.push_back(op);
            return true;
        }
        if self.ops.len() >= MAX_RETRY {
            return false;
        }
        // A rename or removal may concern any queued path: later upserts must
        // stay behind it.
        self.upserts.clear();
        self.ops.push_back(op);
        true
    }

    /// Takes up to `n` changes from the front.
    fn take_front(&mut self, n: usize) -> Vec<FileEvent> {
        let n = n.min(self.ops.len());
        self.base += n as u64;
        self.upserts.retain(|_, pos| *pos >= self.base);
        self.ops.drain(..n).collect()
    }

    /// Puts changes taken with [`take_front`](Self::take_front) back.
    fn put_back(&mut self, ops: Vec<FileEvent>) {
        self.base -= ops.len() as u64;
        for op in ops.into_iter().rev() {
            self.ops.push_front(op);
        }
    }

    /// Schedules the next attempt after a failure.
    fn failed(&mut self) {
        self.at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(RETRY_MAX);
    }

    fn due(&self) -> bool {
        self.at.is_some_and(|at| Instant::now() >= at)
    }
}

/// Whether an SQLite error means "try again later" (no space, an I/O error,
/// the database busy) rather than a problem with the change itself.
fn is_transient(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode;
    matches!(
        e.sqlite_error_code(),
        Some(
            ErrorCode::DiskFull
                | ErrorCode::SystemIoFailure
                | ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::OutOfMemory
                | ErrorCode::CannotOpen
        )
    )
}

impl Writer {
    /// Takes ownership of an open, migrated connection and the catalog's lock.
    pub(crate) fn new(
        conn: Connection,
        path: PathBuf,
        access_interval: Duration,
        lock: File,
        stats: Arc<WriterStats>,
        hot: Option<HotDir>,
    ) -> Self {
        Writer {
            conn,
            path,
            accesses: PendingAccesses::new(access_interval),
            failures: Failures::default(),
            stashed: None,
            retry: Retry::new(),
            stats,
            hot,
            _lock: lock,
        }
    }

    /// The earliest of the access-time and retry deadlines.
    fn deadline(&self) -> Option<Instant> {
        match (self.accesses.deadline(), self.retry.at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The thread's main loop; returns when asked to shut down or when every
    /// sender is gone.
    pub(crate) fn run(mut self, rx: Receiver<Msg>) {
        loop {
            let msg = if let Some(msg) = self.stashed.take() {
                msg
            } else {
                match self.deadline() {
                    Some(deadline) => match rx.recv_deadline(deadline) {
                        Ok(msg) => msg,
                        Err(RecvTimeoutError::Timeout) => {
                            if self.retry.due() {
                                self.retry_pending();
                            }
                            if self
                                .accesses
                                .deadline()
                                .is_some_and(|d| Instant::now() >= d)
                            {
                                self.write_accesses();
                            }
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    },
                    None => match rx.recv() {
                        Ok(msg) => msg,
                        Err(_) => break,
                    },
                }
            };
            let control = match msg {
                Msg::Event(op) => self.gather_and_apply(op, &rx),
                Msg::Control(c) => Some(c),
            };
            if self
                .accesses
                .deadline()
                .is_some_and(|d| Instant::now() >= d)
            {
                self.write_accesses();
            }
            if control.is_some() && !self.retry.is_empty() {
                // Requests are answered in order with the changes before
                // them: try the held-back changes first, back-off or not.
                self.retry_pending();
            }
            match control {
                None => {}
                Some(Control::Flush(reply)) => {
                    self.write_accesses();
                    let _ = reply.send(self.take_failures());
                }
                Some(Control::Reconcile(dir, reply)) => {
                    let result = reconcile::run(&mut self.conn, &self.path, &dir);
                    let _ = reply.send(result);
                }
                Some(Control::Exec(job)) => job(&mut self.conn),
                Some(Control::Grouped(job)) => self.run_group(job, &rx),
                Some(Control::Shutdown(reply)) => {
                    self.write_accesses();
                    let _ = reply.send(self.take_failures());
                    return;
                }
            }
        }
        self.write_accesses();
        self.retry_pending();
        if !self.retry.is_empty() {
            tracing::error!(catalog = %self.path.display(), changes = self.retry.ops.len(), "catalog writer stopped with changes it could not write; the next start-up reconcile finds them");
        }
    }

    /// Runs `first` and every grouped job queued right behind it in one
    /// transaction, committed with `synchronous = FULL` if any of them is
    /// durable, and answers each after the commit.
    fn run_group(&mut self, first: GroupedJob, rx: &Receiver<Msg>) {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(Msg::Control(Control::Grouped(job))) => jobs.push(job),
                Ok(other) => {
                    self.stashed = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        let durable = jobs.iter().any(|j| j.durable);
        let conn = &self.conn;
        let begun = if durable {
            conn.pragma_update(None, "synchronous", "FULL")
        } else {
            Ok(())
        }
        .and_then(|()| conn.execute_batch("BEGIN IMMEDIATE"));
        let outcome = match begun {
            Err(e) => {
                for job in jobs {
                    ((job.run)(Err(&e)).reply)(Err(&e));
                }
                Err(e)
            }
            Ok(()) => {
                let mut replies = Vec::with_capacity(jobs.len());
                let mut broken = None;
                for job in jobs {
                    if let Some(e) = &broken {
                        ((job.run)(Err(e)).reply)(Err(e));
                        continue;
                    }
                    if let Err(e) = conn.execute_batch("SAVEPOINT grouped_job") {
                        ((job.run)(Err(&e)).reply)(Err(&e));
                        broken = Some(e);
                        continue;
                    }
                    let step = (job.run)(Ok(conn));
                    let end = if step.ok {
                        "RELEASE grouped_job"
                    } else {
                        "ROLLBACK TO grouped_job; RELEASE grouped_job"
                    };
                    if let Err(e) = conn.execute_batch(end) {
                        broken = Some(e);
                    }
                    replies.push(step.reply);
                }
                let committed = match broken {
                    Some(e) => Err(e),
                    None => conn.execute_batch("COMMIT"),
                };
                if committed.is_err() && !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                match &committed {
                    Ok(()) => replies.into_iter().for_each(|r| r(Ok(()))),
                    Err(e) => replies.into_iter().for_each(|r| r(Err(e))),
                }
                committed
            }
        };
        if let Err(e) = outcome {
            tracing::warn!(catalog = %self.path.display(), error = %e, "grouped catalog commit failed; its callers were told");
        }
        if durable && let Err(e) = self.conn.pragma_update(None, "synchronous", "NORMAL") {
            tracing::warn!(catalog = %self.path.display(), error = %e, "could not reset synchronous = NORMAL");
        }
    }

    /// Applies `first` and the changes that follow it within [`GATHER_TIME`],
    /// in one transaction. Returns the request that ended the batch, if any.
    fn gather_and_apply(&mut self, first: FileEvent, rx: &Receiver<Msg>) -> Option<Control> {
        let started = Instant::now();
        let mut batch = vec![first];
        let mut control = None;
        'gather: while batch.len() < MAX_BATCH {
            loop {
                match rx.try_recv() {
                    Ok(Msg::Event(op)) => {
                        batch.push(op);
                        if batch.len() >= MAX_BATCH {
                            break 'gather;
                        }
                    }
                    Ok(Msg::Control(c)) => {
                        control = Some(c);
                        break 'gather;
                    }
                    Err(_) => break,
                }
            }
            let Some(left) = GATHER_TIME.checked_sub(started.elapsed()) else {
                break;
            };
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(GATHER_NAP));
        }
        self.apply_batch(batch);
        control
    }

    fn apply_batch(&mut self, batch: Vec<FileEvent>) {
        if !self.retry.is_empty() {
            // Earlier changes are waiting for space: queue behind them.
            for op in batch {
                self.hold(op);
            }
            self.publish_pending();
            if self.retry.due() {
                self.retry_pending();
            }
            return;
        }
        let needs_sql = batch
            .iter()
            .any(|op| !matches!(op, FileEvent::Accessed { .. }));
        if !needs_sql {
            for op in batch {
                apply_in_memory(&mut self.accesses, op);
            }
            return;
        }
        if let Err((batch, e)) = self.write_ops(batch) {
            self.count_failure();
            tracing::error!(catalog = %self.path.display(), changes = batch.len(), error = %e, "catalog write failed; holding the changes in memory and retrying until it succeeds");
            for op in batch {
                self.hold(op);
            }
            self.retry.failed();
            self.publish_pending();
        }
    }

    /// Queues `op` for retry; access times go straight to the in-memory set.
    fn hold(&mut self, op: FileEvent) {
        if matches!(op, FileEvent::Accessed { .. }) {
            apply_in_memory(&mut self.accesses, op);
            return;
        }
        if !self.retry.push(op) {
            let n = self.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if !self.retry.warned_overflow {
                self.retry.warned_overflow = true;
                tracing::error!(catalog = %self.path.display(), held = MAX_RETRY, "catalog retry queue is full: further changes are dropped; once the catalog can be written again run `tierctl fsck --repair` (or restart the daemon) to catalogue the files they concerned");
            }
            self.failures
                .record(&self.path, format!("retry queue full, {n} changes dropped"));
        }
    }

    /// Counts a failed write attempt.
    fn count_failure(&self) {
        self.stats.failed.fetch_add(1, Ordering::Relaxed);
        crate::metrics::metrics().record_catalog_write_failure();
    }

    /// Publishes the retry queue's length.
    fn publish_pending(&self) {
        let n = self.retry.ops.len() as u64;
        self.stats.pending.store(n, Ordering::Relaxed);
        crate::metrics::metrics().set_catalog_pending(n);
    }

    /// Writes the held-back changes, a batch per transaction, until one fails
    /// (its changes go back to the front of the queue) or all are written.
    fn retry_pending(&mut self) {
        while !self.retry.is_empty() {
            let batch = self.retry.take_front(MAX_BATCH);
            match self.write_ops(batch) {
                Ok(()) => {}
                Err((batch, e)) => {
                    self.count_failure();
                    tracing::debug!(catalog = %self.path.display(), held = self.retry.ops.len() + batch.len(), error = %e, "catalog write still failing");
                    self.retry.put_back(batch);
                    self.retry.failed();
                    self.publish_pending();
                    return;
                }
            }
        }
        tracing::info!(catalog = %self.path.display(), "catalog writable again: held-back changes written");
        self.retry.at = None;
        self.retry.backoff = RETRY_MIN;
        self.retry.warned_overflow = false;
        self.publish_pending();
    }

    /// Applies `batch` in one transaction. A transient failure (no space, I/O,
    /// busy) rolls the whole transaction back and hands the batch back;
    /// other per-change errors are recorded and the rest is committed.
    fn write_ops(
        &mut self,
        batch: Vec<FileEvent>,
    ) -> Result<(), (Vec<FileEvent>, rusqlite::Error)> {
        let tx = match self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
        {
            Ok(tx) => tx,
            Err(e) if is_transient(&e) => return Err((batch, e)),
            Err(e) => {
                self.failures.record(
                    &self.path,
                    format!("begin transaction ({} changes lost): {e}", batch.len()),
                );
                return Ok(());
            }
        };
        let mut errors = Vec::new();
        let mut transient = None;
        for op in &batch {
            if let Err(e) = apply_op(&tx, self.hot.as_ref(), &mut self.accesses, op) {
                if is_transient(&e) {
                    transient = Some(e);
                    break;
                }
                errors.push(format!("{op:?}: {e}"));
            }
        }
        if let Some(e) = transient {
            drop(tx); // rolls back
            return Err((batch, e));
        }
        match tx.commit() {
            Ok(()) => {}
            Err(e) if is_transient(&e) => {
                if !self.conn.is_autocommit() {
                    let _ = self.conn.execute_batch("ROLLBACK");
                }
                return Err((batch, e));
            }
            Err(e) => self.failures.record(&self.path, format!("commit: {e}")),
        }
        for e in errors {
            self.failures.record(&self.path, e);
        }
        Ok(())
    }

    /// Writes every pending access time in one transaction.
    fn write_accesses(&mut self) {
        let pending = self.accesses.take();
        if pending.is_empty() {
            return;
        }
        let n = pending.len();
        let result = (|| -> rusqlite::Result<()> {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            for (key, at_ns) in &pending {
                apply::set_last_access(&tx, key, *at_ns)?;
            }
            tx.commit()
        })();
        match result {
            Ok(()) => {
                tracing::debug!(catalog = %self.path.display(), paths = n, "access times written")
            }
            Err(e) if is_transient(&e) => {
                // Keep them for the next round rather than losing them.
                self.count_failure();
                tracing::debug!(catalog = %self.path.display(), paths = n, error = %e, "access times not written; kept for later");
                for (key, at_ns) in pending {
                    self.accesses.record(key, at_ns);
                }
            }
            Err(e) => self
                .failures
                .record(&self.path, format!("writing {n} access times: {e}")),
        }
    }

    fn take_failures(&mut self) -> Result<(), CatalogError> {
        if !self.retry.is_empty() {
            self.failures.record(
                &self.path,
                format!(
                    "{} changes held in memory until the catalog can be written again",
                    self.retry.ops.len()
                ),
            );
        }
        let f = std::mem::take(&mut self.failures);
        match f.first {
            None => Ok(()),
            Some(first) => Err(CatalogError::Write {
                path: self.path.clone(),
                failed: f.count,
                first,
            }),
        }
    }
}

impl Failures {
    fn record(&mut self, path: &Path, message: String) {
        // Avoid flooding the log when every write fails (e.g. disk full).
        if self.count < 10 {
            tracing::error!(catalog = %path.display(), "catalog write failed: {message}");
        } else {
            tracing::debug!(catalog = %path.display(), "catalog write failed: {message}");
        }
        self.count += 1;
        if self.first.is_none() {
            self.first = Some(message);
        }
    }
}

/// Applies an access event to the pending set (no SQL).
fn apply_in_memory(accesses: &mut PendingAccesses, op: FileEvent) {
    if let FileEvent::Accessed { path, at_ns } = op
        && let Some(key) = path_key(&path)
    {
        accesses.record(key, at_ns);
    }
}

/// Applies one change inside the current transaction.
fn apply_op(
    conn: &Connection,
    hot: Option<&HotDir>,
    accesses: &mut PendingAccesses,
    op: &FileEvent,
) -> rusqlite::Result<()> {
    match op {
        FileEvent::Upsert {
            path,
            size,
            mtime_ns,
            ino,
        } => match path_key(path) {
            Some(key) => apply::upsert(conn, &key, *size, *mtime_ns, *ino),
            None => Ok(()),
        },
        FileEvent::Removed { path } => match path_key(path) {
            Some(key) => {
                accesses.remove(&key);
                apply::remove(conn, &key)
            }
            None => {
                tracing::warn!("ignoring removal of the mount root");
                Ok(())
            }
        },
        FileEvent::Renamed { from, to } => match (path_key(from), path_key(to)) {
            (Some(from_key), Some(to_key)) => {
                if apply::rename(conn, &from_key, &to_key)? {
                    accesses.rename(&from_key, &to_key);
                } else {
                    tracing::warn!(from = %from.display(), to = %to.display(), "ignoring rename into or out of its own subtree");
                }
                // A later rename or unlink may already have taken `to` away;
                // and a rename between two links of one file changes nothing
                // (POSIX), so `from` may still be there.
                match hot {
                    Some(hot) => {
                        apply::look(conn, hot, &to_key, true)?;
                        apply::look(conn, hot, &from_key, true)
                    }
                    None => Ok(()),
                }
            }
            _ => {
                tracing::warn!(from = %from.display(), to = %to.display(), "ignoring rename of the mount root");
                Ok(())
            }
        },
        FileEvent::Look { path } | FileEvent::Gone { path } => {
            let gone = matches!(op, FileEvent::Gone { .. });
            match (path_key(path), hot) {
                (Some(key), Some(hot)) => {
                    if gone {
                        accesses.remove(&key);
                    }
                    apply::look(conn, hot, &key, gone)
                }
                (Some(_), None) => {
                    tracing::debug!(path = %path.display(), "no hot directory to look at; hint ignored");
                    Ok(())
                }
                (None, _) => Ok(()),
            }
        }
        FileEvent::Moved { from, to } => match (path_key(from), path_key(to), hot) {
            (Some(from_key), Some(to_key), Some(hot)) => {
                apply::moved(conn, hot, &from_key, &to_key)
            }
            _ => Ok(()),
        },
        FileEvent::Accessed { path, at_ns } => {
            if let Some(key) = path_key(path) {
                accesses.record(key, *at_ns);
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod retry_tests {
    use super::*;

    fn upsert(path: &str, size: u64) -> FileEvent {
        FileEvent::Upsert {
            path: PathBuf::from(path),
            size,
            mtime_ns: 0,
            ino: 1,
        }
    }

    fn sizes(ops: &[FileEvent]) -> Vec<(String, u64)> {
        ops.iter()
            .filter_map(|op| match op {
                FileEvent::Upsert { path, size, .. } => Some((path.display().to_string(), *size)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn coalesces_upserts_per_path_until_a_rename_or_removal() {
        let mut r = Retry::new();
        assert!(r.push(upsert("a", 1)));
        assert!(r.push(upsert("b", 1)));
        assert!(r.push(upsert("a", 2)));
        assert_eq!(r.ops.len(), 2, "the second upsert of a replaced the first");
        assert!(r.push(FileEvent::Removed {
            path: PathBuf::from("a")
        }));
        assert!(r.push(upsert("a", 3)));
        assert_eq!(r.ops.len(), 4, "an upsert after a removal is kept apart");
        // Taking from the front and putting back keeps positions right.
        let front = r.take_front(1);
        assert!(r.push(upsert("a", 4)));
        r.put_back(front);
        let all = r.take_front(usize::MAX);
        assert_eq!(
            sizes(&all),
            [("a".into(), 2), ("b".into(), 1), ("a".into(), 4)]
        );
        assert!(r.is_empty());
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let mut r = Retry::new();
        for _ in 0..20 {
            r.failed();
        }
        assert_eq!(r.backoff, RETRY_MAX);
        assert!(r.at.is_some());
    }
}
