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

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use rusqlite::{Connection, TransactionBehavior};

use super::access::PendingAccesses;
use super::event::{FileEvent, path_key};
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

/// A change to apply.
#[derive(Debug)]
pub(crate) enum Op {
    /// A public event.
    Event(FileEvent),
    /// Drop the row at exactly this key (the path is a directory now).
    ForgetExact(Vec<u8>),
    /// Drop every row strictly below this key (the path is a file now).
    ForgetBelow(Vec<u8>),
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
    Op(Op),
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
    _lock: File,
}

impl Writer {
    /// Takes ownership of an open, migrated connection and the catalog's lock.
    pub(crate) fn new(
        conn: Connection,
        path: PathBuf,
        access_interval: Duration,
        lock: File,
    ) -> Self {
        Writer {
            conn,
            path,
            accesses: PendingAccesses::new(access_interval),
            failures: Failures::default(),
            stashed: None,
            _lock: lock,
        }
    }

    /// The thread's main loop; returns when asked to shut down or when every
    /// sender is gone.
    pub(crate) fn run(mut self, rx: Receiver<Msg>) {
        loop {
            let msg = if let Some(msg) = self.stashed.take() {
                msg
            } else {
                match self.accesses.deadline() {
                    Some(deadline) => match rx.recv_deadline(deadline) {
                        Ok(msg) => msg,
                        Err(RecvTimeoutError::Timeout) => {
                            self.write_accesses();
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
                Msg::Op(op) => self.gather_and_apply(op, &rx),
                Msg::Control(c) => Some(c),
            };
            if self
                .accesses
                .deadline()
                .is_some_and(|d| Instant::now() >= d)
            {
                self.write_accesses();
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
    fn gather_and_apply(&mut self, first: Op, rx: &Receiver<Msg>) -> Option<Control> {
        let started = Instant::now();
        let mut batch = vec![first];
        let mut control = None;
        'gather: while batch.len() < MAX_BATCH {
            loop {
                match rx.try_recv() {
                    Ok(Msg::Op(op)) => {
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

    fn apply_batch(&mut self, batch: Vec<Op>) {
        let needs_sql = batch
            .iter()
            .any(|op| !matches!(op, Op::Event(FileEvent::Accessed { .. })));
        if !needs_sql {
            for op in batch {
                apply_in_memory(&mut self.accesses, op);
            }
            return;
        }
        let tx = match self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
        {
            Ok(tx) => tx,
            Err(e) => {
                self.failures.record(
                    &self.path,
                    format!("begin transaction ({} changes lost): {e}", batch.len()),
                );
                return;
            }
        };
        let mut errors = Vec::new();
        for op in batch {
            if let Err(e) = apply_op(&tx, &mut self.accesses, &op) {
                errors.push(format!("{op:?}: {e}"));
            }
        }
        let committed = tx.commit();
        for e in errors {
            self.failures.record(&self.path, e);
        }
        if let Err(e) = committed {
            self.failures.record(&self.path, format!("commit: {e}"));
        }
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
            Err(e) => self
                .failures
                .record(&self.path, format!("writing {n} access times: {e}")),
        }
    }

    fn take_failures(&mut self) -> Result<(), CatalogError> {
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
fn apply_in_memory(accesses: &mut PendingAccesses, op: Op) {
    if let Op::Event(FileEvent::Accessed { path, at_ns }) = op
        && let Some(key) = path_key(&path)
    {
        accesses.record(key, at_ns);
    }
}

/// Applies one change inside the current transaction.
fn apply_op(conn: &Connection, accesses: &mut PendingAccesses, op: &Op) -> rusqlite::Result<()> {
    match op {
        Op::Event(FileEvent::Upsert {
            path,
            size,
            mtime_ns,
            ino,
        }) => match path_key(path) {
            Some(key) => apply::upsert(conn, &key, *size, *mtime_ns, *ino),
            None => Ok(()),
        },
        Op::Event(FileEvent::Removed { path }) => match path_key(path) {
            Some(key) => {
                accesses.remove(&key);
                apply::remove(conn, &key)
            }
            None => {
                tracing::warn!("ignoring removal of the mount root");
                Ok(())
            }
        },
        Op::Event(FileEvent::Renamed { from, to }) => match (path_key(from), path_key(to)) {
            (Some(from_key), Some(to_key)) => {
                if apply::rename(conn, &from_key, &to_key)? {
                    accesses.rename(&from_key, &to_key);
                } else {
                    tracing::warn!(from = %from.display(), to = %to.display(), "ignoring rename into or out of its own subtree");
                }
                Ok(())
            }
            _ => {
                tracing::warn!(from = %from.display(), to = %to.display(), "ignoring rename of the mount root");
                Ok(())
            }
        },
        Op::Event(FileEvent::RenamedBeside { from, to, target }) => {
            if let (Some(from_key), Some(to_key)) = (path_key(from), path_key(to))
                && apply::rename_seen_beside(conn, &from_key, &to_key, *target)?
            {
                accesses.rename(&from_key, &to_key);
            }
            Ok(())
        }
        Op::Event(FileEvent::Accessed { path, at_ns }) => {
            if let Some(key) = path_key(path) {
                accesses.record(key, *at_ns);
            }
            Ok(())
        }
        Op::ForgetExact(key) => apply::delete_exact(conn, key).map(drop),
        Op::ForgetBelow(key) => apply::delete_below(conn, key).map(drop),
    }
}
