//! [`Catalog`]: the cheap, cloneable handle through which the daemon records
//! changes. It opens and migrates the database, then hands the connection to
//! the writer thread and talks to it over an unbounded channel.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_channel::Sender;
use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags};

use super::look::HotDir;
use super::writer::{Control, GroupedJob, Job, JobStep, Msg, Writer, WriterStats};
use super::{CatalogError, FileEvent, ReconcileStats, schema};

/// Tunables for [`Catalog::open`].
#[derive(Debug, Clone)]
pub struct CatalogOptions {
    /// How often coalesced last-access times are written (default 30 s).
    pub access_flush_interval: Duration,
    /// `control_group`: the catalog (and its `-wal`/`-shm`, which SQLite
    /// creates with the catalog's mode and owner) gets this group and mode
    /// 0660, so its members' `tierctl` can read it. `None`: mode 0600.
    pub group: Option<u32>,
    /// The hot directory the mount serves: hints
    /// ([`FileEvent::Look`](super::FileEvent::Look) and friends) are looked
    /// up beneath it when applied. `None` (tools, tests): hints are ignored.
    pub hot_dir: Option<PathBuf>,
}

impl Default for CatalogOptions {
    fn default() -> Self {
        CatalogOptions {
            access_flush_interval: Duration::from_secs(30),
            group: None,
            hot_dir: None,
        }
    }
}

/// Handle to the catalog's writer. Cloning is cheap; all clones feed the same
/// writer thread. The thread stops on [`Catalog::close`] or when the last
/// handle is dropped (after flushing).
#[derive(Clone)]
pub struct Catalog {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    tx: Sender<Msg>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    warned_closed: AtomicBool,
    dropped_events: AtomicU64,
    stats: Arc<WriterStats>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl Catalog {
    /// Opens or creates the catalog at `path`, upgrades its schema and starts
    /// the writer thread.
    ///
    /// Fails if another process holds the catalog, if the file is not a
    /// tierfs catalog, or if its schema is newer than this build.
    pub fn open(path: &Path, opts: CatalogOptions) -> Result<Catalog, CatalogError> {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        // Declared before `conn` so that it is dropped after it (see `Writer`).
        let lock = lock(&path, opts.group)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(&path, flags)
            .map_err(|e| CatalogError::sqlite(&path, "open", e))?;
        // Identify the file before changing anything in it (journal mode included).
        let version = schema::current_version(&conn, &path)?;
        schema::check_not_too_new(version, &path)?;
        schema::configure_writer(&conn, &path)?;
        let version = schema::migrate(&mut conn, &path)?;
        tracing::info!(catalog = %path.display(), schema_version = version, "catalog opened");

        let hot = match &opts.hot_dir {
            Some(dir) => Some(HotDir::open(dir).map_err(|source| CatalogError::Io {
                path: dir.clone(),
                op: "open hot directory",
                source,
            })?),
            None => None,
        };
        let (tx, rx) = crossbeam_channel::unbounded();
        let stats = Arc::new(WriterStats::default());
        let writer = Writer::new(
            conn,
            path.clone(),
            opts.access_flush_interval,
            lock,
            stats.clone(),
            hot,
        );
        let thread = std::thread::Builder::new()
            .name("tierfs-catalog".into())
            .spawn(move || writer.run(rx))
            .map_err(|source| CatalogError::Io {
                path: path.clone(),
                op: "start writer thread",
                source,
            })?;
        Ok(Catalog {
            inner: Arc::new(Inner {
                path,
                tx,
                thread: Mutex::new(Some(thread)),
                warned_closed: AtomicBool::new(false),
                dropped_events: AtomicU64::new(0),
                stats,
            }),
        })
    }

    /// Queues a change. Never blocks and never fails: if the writer has
    /// stopped, the event is dropped and a warning is logged (once).
    pub fn send(&self, ev: FileEvent) {
        if self.inner.tx.send(Msg::Event(ev)).is_err() {
            let n = self.inner.dropped_events.fetch_add(1, Ordering::Relaxed) + 1;
            if !self.inner.warned_closed.swap(true, Ordering::Relaxed) {
                tracing::warn!(catalog = %self.inner.path.display(), "catalog writer has stopped; dropping file events");
            } else {
                tracing::debug!(catalog = %self.inner.path.display(), dropped = n, "catalog event dropped");
            }
        }
    }

    /// Blocks until every event sent before this call, and every pending
    /// access time, is committed. Reports writes that failed since the last flush.
    pub fn flush(&self) -> Result<(), CatalogError> {
        self.request(Control::Flush)?
    }

    /// Makes the catalog match `hot_dir` (the real directory, not the mount):
    /// inserts new regular files, updates changed size/mtime/inode and deletes
    /// rows whose file is gone. Runs on the writer thread after every event
    /// sent before it; events sent meanwhile are applied afterwards.
    ///
    /// Symlinks are not followed, other file systems mounted inside are
    /// skipped, and rows below directories that cannot be read are kept.
    pub fn reconcile(&self, hot_dir: &Path) -> Result<ReconcileStats, CatalogError> {
        let dir = std::path::absolute(hot_dir).unwrap_or_else(|_| hot_dir.to_path_buf());
        self.request(|reply| Control::Reconcile(dir, reply))?
    }

    /// Flushes and stops the writer thread. Later `send`s are dropped and
    /// later `flush`/`reconcile` calls fail with [`CatalogError::Closed`].
    /// Closing twice is harmless.
    pub fn close(&self) -> Result<(), CatalogError> {
        self.inner.shutdown()
    }

    /// Runs `job` on the writer's connection after every event sent before
    /// it, and returns its result. Used by the tiering engine for state
    /// transitions that must be ordered with the event stream.
    pub fn exec<T: Send + 'static>(
        &self,
        what: &'static str,
        job: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, CatalogError> {
        let (reply, answer) = crossbeam_channel::bounded(1);
        let run: Job = Box::new(move |conn| {
            let _ = reply.send(job(conn));
        });
        self.inner
            .tx
            .send(Msg::Control(Control::Exec(run)))
            .map_err(|_| self.closed())?;
        answer
            .recv()
            .map_err(|_| self.closed())?
            .map_err(|e| CatalogError::sqlite(&self.inner.path, what, e))
    }

    /// Like [`exec_grouped`](Self::exec_grouped), but does not wait: for
    /// records nobody waits on (the cost ledger), so callers on a read path
    /// do not queue behind the writer. A failure is logged on the writer
    /// thread.
    pub fn exec_detached(
        &self,
        what: &'static str,
        job: impl FnOnce(&Connection) -> rusqlite::Result<()> + Send + 'static,
    ) {
        let path = self.inner.path.clone();
        let run = grouped_job(false, job, move |answer| {
            if let Err(e) = answer {
                tracing::warn!(catalog = %path.display(), error = %e, "{what} failed");
            }
        });
        if self
            .inner
            .tx
            .send(Msg::Control(Control::Grouped(run)))
            .is_err()
        {
            tracing::warn!(catalog = %self.inner.path.display(), "catalog writer has stopped; {what} lost");
        }
    }

    /// Like [`exec`](Self::exec) for short work that needs no transaction of
    /// its own: it shares one with the other grouped jobs queued behind it
    /// (one commit for many), and returns after that commit.
    pub fn exec_grouped<T: Send + 'static>(
        &self,
        what: &'static str,
        job: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, CatalogError> {
        self.run_grouped(what, false, job)
    }

    /// Like [`exec_grouped`](Self::exec_grouped), but the commit is fsynced
    /// (`synchronous = FULL`) before this returns: for commits after which
    /// local data may be freed. Durable jobs queued together share one fsync.
    pub fn exec_durable<T: Send + 'static>(
        &self,
        what: &'static str,
        job: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, CatalogError> {
        self.run_grouped(what, true, job)
    }

    fn run_grouped<T: Send + 'static>(
        &self,
        what: &'static str,
        durable: bool,
        job: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, CatalogError> {
        let (reply, answer) = crossbeam_channel::bounded(1);
        let run = grouped_job(durable, job, move |result| {
            let _ = reply.send(result);
        });
        self.inner
            .tx
            .send(Msg::Control(Control::Grouped(run)))
            .map_err(|_| self.closed())?;
        answer
            .recv()
            .map_err(|_| self.closed())?
            .map_err(|e| CatalogError::sqlite(&self.inner.path, what, e))
    }

    /// [`exec`](Self::exec) for async callers: the writer answers on a
    /// `tokio` oneshot channel, so waiting does not block a runtime thread.
    pub async fn exec_async<T: Send + 'static>(
        &self,
        what: &'static str,
        job: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, CatalogError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let run: Job = Box::new(move |conn| {
            let _ = reply.send(job(conn));
        });
        self.inner
            .tx
            .send(Msg::Control(Control::Exec(run)))
            .map_err(|_| self.closed())?;
        answer
            .await
            .map_err(|_| self.closed())?
            .map_err(|e| CatalogError::sqlite(&self.inner.path, what, e))
    }

    /// [`exec_grouped`](Self::exec_grouped) for async callers (see
    /// [`exec_async`](Self::exec_async)).
    pub async fn exec_grouped_async<T: Send + 'static>(
        &self,
        what: &'static str,
        job: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, CatalogError> {
        self.run_grouped_async(what, false, job).await
    }

    /// [`exec_durable`](Self::exec_durable) for async callers (see
    /// [`exec_async`](Self::exec_async)).
    pub async fn exec_durable_async<T: Send + 'static>(
        &self,
        what: &'static str,
        job: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, CatalogError> {
        self.run_grouped_async(what, true, job).await
    }

    async fn run_grouped_async<T: Send + 'static>(
        &self,
        what: &'static str,
        durable: bool,
        job: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, CatalogError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let run = grouped_job(durable, job, move |result| {
            let _ = reply.send(result);
        });
        self.inner
            .tx
            .send(Msg::Control(Control::Grouped(run)))
            .map_err(|_| self.closed())?;
        answer
            .await
            .map_err(|_| self.closed())?
            .map_err(|e| CatalogError::sqlite(&self.inner.path, what, e))
    }

    fn closed(&self) -> CatalogError {
        CatalogError::Closed {
            path: self.inner.path.clone(),
        }
    }

    /// Number of messages queued for the writer thread and not yet taken
    /// (a backlog indicator for `tierctl status`).
    pub fn queue_len(&self) -> usize {
        self.inner.tx.len()
    }

    /// Changes the writer holds in memory because writing them failed (a
    /// full disk): retried with back-off until they are written.
    pub fn pending_writes(&self) -> u64 {
        self.inner.stats.pending.load(Ordering::Relaxed)
    }

    /// Catalog write attempts that failed since the catalog was opened.
    pub fn failed_writes(&self) -> u64 {
        self.inner.stats.failed.load(Ordering::Relaxed)
    }

    /// Changes dropped: sent after the writer stopped, or while its retry
    /// queue was full.
    pub fn dropped_writes(&self) -> u64 {
        self.inner.stats.dropped.load(Ordering::Relaxed)
            + self.inner.dropped_events.load(Ordering::Relaxed)
    }

    /// The catalog file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn request<T>(&self, make: impl FnOnce(Sender<T>) -> Control) -> Result<T, CatalogError> {
        let (reply, answer) = crossbeam_channel::bounded(1);
        let closed = || CatalogError::Closed {
            path: self.inner.path.clone(),
        };
        self.inner
            .tx
            .send(Msg::Control(make(reply)))
            .map_err(|_| closed())?;
        answer.recv().map_err(|_| closed())
    }
}

impl Inner {
    fn shutdown(&self) -> Result<(), CatalogError> {
        let Some(thread) = self.thread.lock().take() else {
            return Ok(());
        };
        let (reply, answer) = crossbeam_channel::bounded(1);
        let result = match self.tx.send(Msg::Control(Control::Shutdown(reply))) {
            Ok(()) => answer.recv().unwrap_or(Ok(())),
            Err(_) => Ok(()),
        };
        if thread.join().is_err() {
            return Err(CatalogError::Closed {
                path: self.path.clone(),
            });
        }
        tracing::debug!(catalog = %self.path.display(), "catalog writer stopped");
        result
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!("closing catalog: {e}");
        }
    }
}

/// Gives `file` exactly `mode`, and group `group` if set.
fn restrict(file: &File, mode: u32, group: Option<u32>) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
    }
    if let Some(gid) = group
        && meta.gid() != gid
    {
        std::os::unix::fs::fchown(file, None, Some(gid))?;
    }
    if meta.mode() & 0o7777 != mode {
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Takes an exclusive advisory lock (flock) on the catalog file, creating it
/// if needed, so two daemons never write the same catalog. Readers do not lock.
///
/// The file gets mode 0600 (0660 and group `group` with a `control_group`),
/// whatever the umask, and so do its `-wal` and `-shm` if they exist
/// (SQLite creates them with the catalog's mode).
fn lock(path: &Path, group: Option<u32>) -> Result<File, CatalogError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |op: &'static str| {
        move |source| CatalogError::Io {
            path: path.to_path_buf(),
            op,
            source,
        }
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(io("open"))?;
    let mode = if group.is_some() { 0o660 } else { 0o600 };
    restrict(&file, mode, group).map_err(io("set owner and mode"))?;
    for suffix in ["-wal", "-shm"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        if let Ok(f) = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&side)
        {
            restrict(&f, mode, group).map_err(io("set owner and mode of -wal/-shm"))?;
        }
    }
    // A process that just closed the catalog may still share the lock for a
    // moment through a child between fork and exec; wait briefly before
    // concluding that another daemon owns it.
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(CatalogError::Locked {
                    path: path.to_path_buf(),
                });
            }
            Err(TryLockError::Error(source)) => {
                return Err(CatalogError::Io {
                    path: path.to_path_buf(),
                    op: "lock",
                    source,
                });
            }
        }
    }
}

/// How long `open` waits for a catalog lock held by someone else.
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// A [`GroupedJob`] running `job` and handing `answer` its result once the
/// group's commit is known (a failed commit fails the job).
fn grouped_job<T: Send + 'static>(
    durable: bool,
    job: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    answer: impl FnOnce(rusqlite::Result<T>) + Send + 'static,
) -> GroupedJob {
    GroupedJob {
        durable,
        run: Box::new(move |conn| {
            let result = conn.map_err(copy_error).and_then(job);
            JobStep {
                ok: result.is_ok(),
                reply: Box::new(move |committed| {
                    answer(match (result, committed) {
                        (Err(e), _) => Err(e),
                        (Ok(_), Err(e)) => Err(copy_error(e)),
                        (Ok(v), Ok(())) => Ok(v),
                    })
                }),
            }
        }),
    }
}

/// An owned copy of `e` keeping its SQLite result code (one commit error is
/// reported to every job of its group).
fn copy_error(e: &rusqlite::Error) -> rusqlite::Error {
    match e {
        rusqlite::Error::SqliteFailure(code, msg) => rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(code.extended_code),
            msg.clone(),
        ),
        other => rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(other.to_string()),
        ),
    }
}
