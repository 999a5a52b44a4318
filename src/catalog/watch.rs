//! Watching the hot directory for changes made beside the mount.
//!
//! Changes made through the mount reach the catalog from the FUSE layer; this
//! watcher covers everything else (an admin copying files straight into the
//! hot directory, or a no-FUSE mode). It uses recursive inotify through
//! `notify`'s `RecommendedWatcher` — not `notify-debouncer-full`, whose file-id
//! cache keeps every path in memory.
//!
//! Changed paths are coalesced for [`WINDOW`], then each is sent to the
//! catalog as a hint (`Look`, or `Gone` if it was deleted or moved out); the
//! catalog writer looks at the path when it applies the hint, so what it
//! records is what is there then. A directory that appeared (created or moved
//! in) is walked, a hint per file. Renames inside the tree are forwarded at
//! once as `Moved` hints so rows keep their ids and states. A queue overflow
//! triggers a full `reconcile`.
//!
//! The watcher also sees every change the daemon itself makes (through the
//! mount, or the tiering engine rewriting a file). It needs no way to tell
//! them apart: a hint only makes the writer look again, and a look at a file
//! whose row already matches it changes nothing; a `Moved` hint moves a row
//! only if that row's file (its inode) is at the new name and no longer at
//! the old one, which a rename already applied never satisfies.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};

use super::event::{key_to_path, path_key};
use super::look::{Found, look_beneath};
use super::walk::walk;
use super::{Catalog, CatalogError, FileEvent};

/// How long changed paths are gathered before they are examined.
pub(crate) const WINDOW: Duration = Duration::from_millis(300);
/// How often the queue is looked at while a window is open.
const POLL: Duration = Duration::from_millis(10);
/// Examine early once this many distinct paths are pending (bounds memory).
const MAX_PENDING: usize = 65_536;
/// Events handed over less than this apart came from one read of the inotify
/// queue (the notify thread handles a read's events back to back).
const SAME_READ: Duration = Duration::from_micros(20);
/// A read that starts less than this after the previous event means changes
/// are streaming in: see [`Pacer`].
const BUSY: Duration = Duration::from_millis(5);
/// How long the notify thread pauses at the start of a read while busy.
const PAUSE: Duration = Duration::from_millis(5);

/// Makes notify's inotify thread read events in batches while changes stream
/// in. That thread wakes for every readable inotify queue: during a burst of
/// small-file work through the mount (five events per file) it woke for
/// nearly every event, and those wake-ups cost more CPU than anything else
/// the watcher does, on a machine where the FUSE threads need it. Pausing
/// for [`PAUSE`] at the start of a read that follows closely on the previous
/// one lets the kernel queue the next events (at most a few hundred, far
/// below `max_queued_events`), which the thread then reads in one go. The
/// pause delays nothing that matters: pending paths are examined only after
/// [`WINDOW`] anyway.
#[derive(Debug)]
struct Pacer {
    last: Option<Instant>,
}

impl Pacer {
    /// Called on the notify thread for each event, before it is handled.
    fn pace(&mut self) {
        if self.should_pause(Instant::now()) {
            std::thread::sleep(PAUSE);
        }
        self.last = Some(Instant::now());
    }

    /// Whether an event handed over at `now` starts a new read that follows
    /// closely on the previous event.
    fn should_pause(&self, now: Instant) -> bool {
        self.last.is_some_and(|last| {
            let gap = now.saturating_duration_since(last);
            gap > SAME_READ && gap < BUSY
        })
    }
}

/// Whether the coalescer would ignore `event` (opens and reads, closes without
/// writing): such events are dropped on the notify thread instead of being
/// queued.
fn ignored(event: &notify::Result<Event>) -> bool {
    matches!(event, Ok(e) if matches!(e.kind, EventKind::Access(kind)
        if kind != AccessKind::Close(AccessMode::Write)))
}

/// A running watch on a hot directory. Dropping it stops the watch.
pub struct Watcher {
    inotify: Option<RecommendedWatcher>,
    tx: Sender<WatchMsg>,
    thread: Option<std::thread::JoinHandle<()>>,
    dir: PathBuf,
    barriers: Arc<Barriers>,
}

/// Barriers (see [`Watcher::barrier`]): a private directory watched by the
/// same inotify instance as the hot dir, and the callers waiting for their
/// sentinel file to come through.
struct Barriers {
    dir: tempfile::TempDir,
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, Sender<()>>>,
}

impl Barriers {
    /// The barrier number of a sentinel path, if it is one.
    fn number(&self, path: &Path) -> Option<u64> {
        let name = path.strip_prefix(self.dir.path()).ok()?.to_str()?;
        name.strip_prefix("b-")?.parse().ok()
    }
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

enum WatchMsg {
    Event(notify::Result<Event>),
    Stop,
}

/// Starts watching `hot_dir` (recursively) and feeding changes to `catalog`.
/// Returns once every existing directory is watched.
pub fn watch(hot_dir: &Path, catalog: Catalog) -> Result<Watcher, CatalogError> {
    let dir = std::path::absolute(hot_dir).unwrap_or_else(|_| hot_dir.to_path_buf());
    let watch_err = |source| CatalogError::Watch {
        path: catalog.path().to_path_buf(),
        dir: dir.clone(),
        source,
    };
    let barriers = Arc::new(Barriers {
        dir: tempfile::Builder::new()
            .prefix("tierfs-watch-")
            .tempdir()
            .map_err(|source| CatalogError::Io {
                path: std::env::temp_dir(),
                op: "create the watcher's barrier directory",
                source,
            })?,
        next: AtomicU64::new(0),
        waiting: Mutex::new(HashMap::new()),
    });
    let (tx, rx) = crossbeam_channel::unbounded();
    let handler_tx = tx.clone();
    let mut pacer = Pacer { last: None };
    let mut inotify = RecommendedWatcher::new(
        move |res: notify::Result<Event>| {
            pacer.pace();
            if !ignored(&res) {
                let _ = handler_tx.send(WatchMsg::Event(res));
            }
        },
        notify::Config::default(),
    )
    .map_err(watch_err)?;
    inotify
        .watch(&dir, RecursiveMode::Recursive)
        .map_err(watch_err)?;
    inotify
        .watch(barriers.dir.path(), RecursiveMode::NonRecursive)
        .map_err(watch_err)?;
    let coalescer = Coalescer {
        root: dir.clone(),
        catalog: catalog.clone(),
        pending: HashMap::new(),
        since: None,
        barriers: Some(barriers.clone()),
    };
    let thread = std::thread::Builder::new()
        .name("tierfs-watch".into())
        .spawn(move || coalescer.run(rx))
        .map_err(|source| CatalogError::Io {
            path: catalog.path().to_path_buf(),
            op: "start watcher thread",
            source,
        })?;
    tracing::info!(dir = %dir.display(), "watching hot directory");
    Ok(Watcher {
        inotify: Some(inotify),
        tx,
        thread: Some(thread),
        dir,
        barriers,
    })
}

impl Watcher {
    /// Waits until every change made in the hot dir before this call has been
    /// sent to the catalog as a hint (at most `timeout`; `false` if it took
    /// longer). A sentinel file is created in a private directory watched by
    /// the same inotify instance, whose events arrive in the order they
    /// happened: once the watcher thread sees the sentinel it has seen every
    /// earlier change, and it sends the pending hints at once instead of at
    /// the end of its window. `tierctl` gets read-your-writes for changes
    /// made beside the mount this way (see the daemon's sync request).
    pub fn barrier(&self, timeout: Duration) -> bool {
        let n = self.barriers.next.fetch_add(1, Ordering::Relaxed);
        let (done, wait) = crossbeam_channel::bounded(1);
        self.barriers.waiting.lock().insert(n, done);
        let sentinel = self.barriers.dir.path().join(format!("b-{n}"));
        let passed = match std::fs::File::create(&sentinel) {
            Ok(_) => wait.recv_timeout(timeout).is_ok(),
            Err(e) => {
                tracing::warn!(path = %sentinel.display(), "cannot create watcher barrier: {e}");
                false
            }
        };
        self.barriers.waiting.lock().remove(&n);
        let _ = std::fs::remove_file(&sentinel);
        passed
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        drop(self.inotify.take());
        let _ = self.tx.send(WatchMsg::Stop);
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!(dir = %self.dir.display(), "watcher thread panicked");
        }
    }
}

/// Gathers changed paths and turns them into catalog events.
struct Coalescer {
    root: PathBuf,
    catalog: Catalog,
    /// Changed absolute paths and what happened to them.
    pending: HashMap<PathBuf, Mark>,
    /// When the oldest pending change arrived.
    since: Option<Instant>,
    /// Sentinels of [`Watcher::barrier`] (`None` in unit tests).
    barriers: Option<Arc<Barriers>>,
}

impl Coalescer {
    fn run(mut self, rx: Receiver<WatchMsg>) {
        loop {
            let msg = match self.since {
                // Within a window, look at the queue every `POLL` rather than
                // blocking on it: a blocking receive spins (`sched_yield`)
                // before it parks, and during a burst of changes (several
                // inotify events per file) that spinning was most of this
                // thread's CPU time.
                Some(since) => match rx.try_recv() {
                    Ok(msg) => Some(msg),
                    Err(TryRecvError::Disconnected) => Some(WatchMsg::Stop),
                    Err(TryRecvError::Empty) => {
                        let deadline = since + WINDOW;
                        let now = Instant::now();
                        if now >= deadline {
                            None
                        } else {
                            std::thread::sleep((deadline - now).min(POLL));
                            continue;
                        }
                    }
                },
                None => Some(rx.recv().unwrap_or(WatchMsg::Stop)),
            };
            match msg {
                None => self.examine(),
                Some(WatchMsg::Stop) => {
                    self.examine();
                    return;
                }
                Some(WatchMsg::Event(Ok(event))) => {
                    if self.is_barrier(&event) {
                        continue;
                    }
                    if event.need_rescan() {
                        self.rescan();
                    } else {
                        self.note(event);
                    }
                }
                Some(WatchMsg::Event(Err(e))) => match e.kind {
                    notify::ErrorKind::MaxFilesWatch => tracing::warn!(
                        dir = %self.root.display(),
                        "inotify watch limit reached: changes in new directories will be missed until the next \
                         reconcile; raise fs.inotify.max_user_watches"
                    ),
                    _ => tracing::warn!(dir = %self.root.display(), "watch error: {e}"),
                },
            }
            if self.pending.len() >= MAX_PENDING {
                self.examine();
            }
        }
    }

    /// Handles an event in the barrier directory: a new sentinel sends the
    /// pending hints now and releases its waiter. Returns whether `event` was
    /// one (such events are never hot-dir changes).
    fn is_barrier(&mut self, event: &Event) -> bool {
        let Some(barriers) = self.barriers.clone() else {
            return false;
        };
        if !event
            .paths
            .iter()
            .any(|p| p.starts_with(barriers.dir.path()))
        {
            return false;
        }
        if matches!(event.kind, EventKind::Create(_)) {
            let numbers: Vec<u64> = event
                .paths
                .iter()
                .filter_map(|p| barriers.number(p))
                .collect();
            self.examine();
            let waiting = barriers.waiting.lock();
            for n in numbers {
                if let Some(done) = waiting.get(&n) {
                    let _ = done.try_send(());
                }
            }
        }
        true
    }

    fn note(&mut self, event: Event) {
        match event.kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
                self.mark_all(&event.paths, Mark::CHANGED)
            }
            EventKind::Access(_) => {}
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)) if event.paths.len() == 2 => {
                self.renamed(&event.paths[0], &event.paths[1]);
            }
            EventKind::Create(_) | EventKind::Modify(ModifyKind::Name(RenameMode::To)) => {
                self.mark_all(&event.paths, Mark::APPEARED);
            }
            EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(RenameMode::From)) => {
                self.mark_all(&event.paths, Mark::REMOVED)
            }
            _ => self.mark_all(&event.paths, Mark::CHANGED),
        }
    }

    fn mark_all(&mut self, paths: &[PathBuf], mark: Mark) {
        for path in paths {
            self.mark(path.clone(), mark);
        }
    }

    fn mark(&mut self, path: PathBuf, mark: Mark) {
        self.pending.entry(path).or_default().add(mark);
        self.since.get_or_insert_with(Instant::now);
    }

    /// A rename inside the tree: forward it at once, in order, so rows keep
    /// their ids (the writer moves a row only if its file is at the new name
    /// when the hint is applied), and move pending changes below `from` to
    /// their new place.
    fn renamed(&mut self, from: &Path, to: &Path) {
        let (Some(from_key), Some(to_key)) = (self.key(from), self.key(to)) else {
            self.mark(from.to_path_buf(), Mark::REMOVED);
            self.mark(to.to_path_buf(), Mark::APPEARED);
            return;
        };
        let from_mark = self.pending.remove(from);
        self.pending.remove(to);
        let moved: Vec<PathBuf> = self
            .pending
            .keys()
            .filter(|p| p.starts_with(from))
            .cloned()
            .collect();
        for old in moved {
            if let (Some(mark), Ok(rest)) = (self.pending.remove(&old), old.strip_prefix(from)) {
                self.mark(to.join(rest), mark);
            }
        }
        self.catalog.send(FileEvent::Moved {
            from: key_to_path(&from_key),
            to: key_to_path(&to_key),
        });
        // A directory created and renamed within one window still has to be
        // walked at its new name.
        if let Some(mark) = from_mark.filter(|m| m.appeared) {
            self.mark(to.to_path_buf(), mark);
        }
    }

    /// The catalog key of an absolute path under the root.
    fn key(&self, path: &Path) -> Option<Vec<u8>> {
        path_key(path.strip_prefix(&self.root).ok()?)
    }

    /// Sends a hint for every pending path; the catalog writer looks at each
    /// when it applies it. Directories that appeared are walked here, a hint
    /// per file found.
    fn examine(&mut self) {
        self.since = None;
        let mut paths: Vec<(PathBuf, Mark)> = self.pending.drain().collect();
        // Component order puts every directory right before its descendants.
        paths.sort_by(|a, b| a.0.cmp(&b.0));
        let mut walked: Option<PathBuf> = None;
        for (path, mark) in paths {
            let Some(key) = self.key(&path) else { continue };
            let hint_path = key_to_path(&key);
            self.catalog.send(if mark.removed {
                FileEvent::Gone { path: hint_path }
            } else {
                FileEvent::Look { path: hint_path }
            });
            if mark.appeared
                && !walked.as_ref().is_some_and(|w| path.starts_with(w))
                && matches!(look_beneath_root(&self.root, &key), Ok(Found::Directory))
            {
                self.walk(&key);
                walked = Some(path);
            }
        }
    }

    /// Sends a hint for every regular file below directory `key` (moved in
    /// or created).
    fn walk(&self, key: &[u8]) {
        let result = walk(&self.root, key, |f| {
            self.catalog.send(FileEvent::Look {
                path: key_to_path(&f.key),
            });
            true
        });
        if let Err(e) = result
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %String::from_utf8_lossy(key), "cannot walk new directory: {e}");
        }
    }

    /// Events were lost (inotify queue overflow): rebuild from a full scan.
    fn rescan(&mut self) {
        tracing::warn!(dir = %self.root.display(), "file change events were lost; reconciling the catalog");
        self.pending.clear();
        self.since = None;
        if let Err(e) = self.catalog.reconcile(&self.root) {
            tracing::error!("reconcile after lost events failed: {e}");
        }
    }
}

/// What is at `key` below `root` (see [`super::look`]).
fn look_beneath_root(root: &Path, key: &[u8]) -> io::Result<Found> {
    use std::os::fd::AsFd;
    let dir = std::fs::File::open(root)?;
    look_beneath(dir.as_fd(), key)
}

/// What happened to a pending path within the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Mark {
    /// It was created or moved in: a directory there must be walked.
    appeared: bool,
    /// It was deleted or moved out: a missing path drops its rows.
    removed: bool,
}

impl Mark {
    const CHANGED: Mark = Mark {
        appeared: false,
        removed: false,
    };
    const APPEARED: Mark = Mark {
        appeared: true,
        removed: false,
    };
    const REMOVED: Mark = Mark {
        appeared: false,
        removed: true,
    };

    fn add(&mut self, other: Mark) {
        self.appeared |= other.appeared;
        self.removed |= other.removed;
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use notify::event::{CreateKind, Flag};

    use super::*;
    use crate::catalog::{CatalogOptions, CatalogReader};

    #[test]
    fn opens_and_reads_are_dropped_before_queueing() {
        let ev = |kind| Ok(Event::new(kind));
        assert!(ignored(&ev(EventKind::Access(AccessKind::Open(
            AccessMode::Any
        )))));
        assert!(ignored(&ev(EventKind::Access(AccessKind::Close(
            AccessMode::Read
        )))));
        assert!(!ignored(&ev(EventKind::Access(AccessKind::Close(
            AccessMode::Write
        )))));
        assert!(!ignored(&ev(EventKind::Create(CreateKind::File))));
        assert!(!ignored(&Err(notify::Error::generic("lost"))));
    }

    #[test]
    fn pacer_pauses_only_when_events_stream_in() {
        let t = Instant::now();
        let after = |micros| t + Duration::from_micros(micros);
        let mut p = Pacer { last: None };
        assert!(!p.should_pause(t), "first event");
        p.last = Some(t);
        assert!(!p.should_pause(after(5)), "same read, back to back");
        assert!(
            p.should_pause(after(1_000)),
            "new read 1 ms after the last event"
        );
        assert!(!p.should_pause(after(1_000_000)), "after an idle second");
        p.pace();
        assert!(p.last.is_some_and(|l| l >= t));
    }

    fn with_hot_dir(root: &Path) -> CatalogOptions {
        CatalogOptions {
            hot_dir: Some(root.to_path_buf()),
            ..CatalogOptions::default()
        }
    }

    /// Feeds `events` straight to a coalescer (no inotify) and waits for it to finish.
    fn feed(root: &Path, catalog: &Catalog, events: Vec<Event>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        for e in events {
            tx.send(WatchMsg::Event(Ok(e))).unwrap();
        }
        tx.send(WatchMsg::Stop).unwrap();
        let coalescer = Coalescer {
            root: root.to_path_buf(),
            catalog: catalog.clone(),
            pending: HashMap::new(),
            since: None,
            barriers: None,
        };
        coalescer.run(rx);
        catalog.flush().unwrap();
    }

    fn ev(kind: EventKind, paths: &[&Path]) -> Event {
        paths
            .iter()
            .fold(Event::new(kind), |e, p| e.add_path(p.to_path_buf()))
    }

    #[test]
    fn rescan_event_runs_reconcile() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("hot");
        fs::create_dir_all(root.join("d")).unwrap();
        fs::write(root.join("d/f"), b"x").unwrap();
        let db = dir.path().join("c.db");
        let catalog = Catalog::open(&db, with_hot_dir(&root)).unwrap();
        catalog.send(FileEvent::Upsert {
            path: "stale".into(),
            size: 1,
            mtime_ns: 1,
            ino: 1,
        });
        feed(
            &root,
            &catalog,
            vec![Event::new(EventKind::Other).set_flag(Flag::Rescan)],
        );
        let reader = CatalogReader::open(&db).unwrap();
        assert!(reader.file(Path::new("d/f")).unwrap().is_some());
        assert!(reader.file(Path::new("stale")).unwrap().is_none());
    }

    #[test]
    fn pending_changes_follow_a_rename_in_the_same_window() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("hot");
        fs::create_dir_all(root.join("b")).unwrap();
        // Created as a/new, then its directory renamed a → b, all within one window.
        fs::write(root.join("b/new"), b"abc").unwrap();
        // Created as x, then renamed to y.
        fs::write(root.join("y"), b"12").unwrap();
        let db = dir.path().join("c.db");
        let catalog = Catalog::open(&db, with_hot_dir(&root)).unwrap();
        let both = EventKind::Modify(ModifyKind::Name(RenameMode::Both));
        feed(
            &root,
            &catalog,
            vec![
                ev(EventKind::Create(CreateKind::Folder), &[&root.join("a")]),
                ev(EventKind::Create(CreateKind::File), &[&root.join("a/new")]),
                ev(both, &[&root.join("a"), &root.join("b")]),
                ev(EventKind::Create(CreateKind::File), &[&root.join("x")]),
                ev(both, &[&root.join("x"), &root.join("y")]),
                ev(
                    EventKind::Access(AccessKind::Open(AccessMode::Any)),
                    &[&root.join("ignored")],
                ),
            ],
        );
        let reader = CatalogReader::open(&db).unwrap();
        assert_eq!(
            reader.file(Path::new("b/new")).unwrap().map(|r| r.size),
            Some(3)
        );
        assert_eq!(
            reader.file(Path::new("y")).unwrap().map(|r| r.size),
            Some(2)
        );
        assert_eq!(reader.status().unwrap().total_files, 2);
    }

    #[test]
    fn a_path_that_changed_kind_loses_its_stale_rows() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("hot");
        fs::create_dir_all(root.join("was-file")).unwrap();
        fs::write(root.join("was-file/inner"), b"1").unwrap();
        fs::write(root.join("was-dir"), b"1").unwrap();
        let db = dir.path().join("c.db");
        let catalog = Catalog::open(&db, with_hot_dir(&root)).unwrap();
        for path in ["was-file", "was-dir/a", "was-dir/b/c"] {
            catalog.send(FileEvent::Upsert {
                path: path.into(),
                size: 9,
                mtime_ns: 1,
                ino: 1,
            });
        }
        feed(
            &root,
            &catalog,
            vec![
                ev(
                    EventKind::Create(CreateKind::Folder),
                    &[&root.join("was-file")],
                ),
                ev(
                    EventKind::Create(CreateKind::File),
                    &[&root.join("was-dir")],
                ),
            ],
        );
        let reader = CatalogReader::open(&db).unwrap();
        assert!(reader.file(Path::new("was-file")).unwrap().is_none());
        assert!(reader.file(Path::new("was-file/inner")).unwrap().is_some());
        assert!(reader.file(Path::new("was-dir")).unwrap().is_some());
        assert_eq!(reader.status().unwrap().total_files, 2);
    }
}
