//! The mount daemon: opens the catalog, brings it up to date, mounts the
//! filesystem, serves the control socket, and shuts everything down in order
//! when the filesystem is unmounted or a termination signal arrives.
//!
//! Threads: the FUSE request threads (`mount.threads`, one `/dev/fuse` clone
//! each), the catalog writer, the hot-dir watcher, the control socket server
//! and one signal thread. None of them blocks another: FUSE threads only make
//! local system calls and hand catalog updates to a channel.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use fuser::{MountOption, Session, SessionACL};

use crate::catalog::{Catalog, CatalogError, CatalogOptions, path_key, tiering};
use crate::config::Config;
use crate::control::{
    self, ControlError, DaemonStatus, ErrorKind, JobProgress, PinSummary, Reply, Request,
    RequestError, Response, RuleAdded, RuleMoved, RuleRemoved,
};
use crate::fs::{FsOptions, FsStats, TierFs, Tiering};
use crate::rules::edit;
use crate::tier::{Tier, TierError, gate::Gate};

/// Why the daemon could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The mount point is unusable.
    #[error("mount point {path}: {message}")]
    MountPoint {
        /// The mount point given on the command line.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The catalog could not be opened or updated.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The control socket could not be served.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// The tiering engine could not start (bad remote, recovery failed).
    #[error(transparent)]
    Tier(#[from] TierError),
    /// The kernel refused the mount or the session failed.
    #[error("FUSE mount on {path}: {source}")]
    Fuse {
        /// The mount point.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A directory or file holding the daemon's state is open to other
    /// users, so it may have been tampered with.
    #[error("refusing to start: {path}: {message}")]
    Insecure {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// Another system-level failure (signals, hot dir access).
    #[error("{context}: {source}")]
    System {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Extra `-o` options given on the command line (the fstab/mount.fuse3 form).
#[derive(Debug, Default, Clone)]
pub struct MountOverrides {
    /// `-o allow_other`.
    pub allow_other: bool,
    /// `-o ro`.
    pub read_only: bool,
    /// Other kernel mount flags (`nodev`, `nosuid`, `noexec`, `noatime`, …).
    pub extra: Vec<MountOption>,
}

/// Checks the mount point and that nothing tierfs needs lives inside it.
pub fn check_mountpoint(config: &Config, mountpoint: &Path) -> Result<PathBuf, DaemonError> {
    let bad = |message: String| DaemonError::MountPoint {
        path: mountpoint.to_path_buf(),
        message,
    };
    let abs = mountpoint.canonicalize().map_err(|e| bad(format!("{e}")))?;
    if !abs.is_dir() {
        return Err(bad("is not a directory".into()));
    }
    if abs.starts_with(&config.hot_dir) || config.hot_dir.starts_with(&abs) {
        return Err(bad(format!(
            "overlaps hot_dir {}; mount somewhere outside the hot directory",
            config.hot_dir.display()
        )));
    }
    for (key, path) in [
        ("catalog", &config.catalog),
        ("control_socket", &config.control_socket),
    ] {
        if path.starts_with(&abs) {
            return Err(bad(format!(
                "`{key}` ({}) would be hidden inside the mount",
                path.display()
            )));
        }
    }
    Ok(abs)
}

/// Refuses to start when another user could have changed the daemon's state:
/// the hot dir, the catalog's directory, the catalog or its `-wal`/`-shm`
/// writable by group or others (the catalog's group may be `control_group`).
/// Warns when other users may enter the hot dir directly.
pub fn check_private_state(config: &Config) -> Result<(), DaemonError> {
    let group = config.control_group;
    let insecure = |path: &Path, message: String| DaemonError::Insecure {
        path: path.to_path_buf(),
        message,
    };
    let meta = |path: &Path| std::fs::symlink_metadata(path);
    // The hot dir and the catalog's directory may be reached through a
    // (root's) symlink; what matters is the directory itself.
    let hot = std::fs::metadata(&config.hot_dir).map_err(|source| DaemonError::System {
        context: format!("hot_dir {}", config.hot_dir.display()),
        source,
    })?;
    if hot.mode() & 0o022 != 0 {
        return Err(insecure(
            &config.hot_dir,
            format!(
                "the hot directory is writable by {} (mode {:04o}); other users could \
                 plant files and symlinks the daemon acts on as root. Fix: chmod go-w {} \
                 (0700 recommended; users reach the data through the mount)",
                who(hot.mode(), 0o020, 0o002),
                hot.mode() & 0o7777,
                config.hot_dir.display()
            ),
        ));
    }
    if hot.mode() & 0o001 != 0 {
        tracing::warn!(
            hot_dir = %config.hot_dir.display(),
            mode = format!("{:04o}", hot.mode() & 0o7777),
            "other users may enter the hot directory and bypass the mount's checks and \
             accounting; chmod 0700 it and let users work through the mount"
        );
    }
    let group_ok = |gid: u32| group == Some(gid);
    if let Some(dir) = config.catalog.parent() {
        let d = std::fs::metadata(dir).map_err(|source| DaemonError::System {
            context: format!("catalog directory {}", dir.display()),
            source,
        })?;
        let bad_group = d.mode() & 0o020 != 0 && !group_ok(d.gid());
        if d.mode() & 0o002 != 0 || bad_group {
            return Err(insecure(
                dir,
                format!(
                    "the catalog's directory is writable by {} (mode {:04o}); other users \
                     could replace the catalog or plant its -wal/-shm files. Fix: chmod go-w {} \
                     or move `catalog` to a root-only directory such as /var/lib/tierfs",
                    who(d.mode(), if bad_group { 0o020 } else { 0 }, 0o002),
                    d.mode() & 0o7777,
                    dir.display()
                ),
            ));
        }
    }
    for suffix in ["", "-wal", "-shm", HANDLE_MAP_SUFFIX] {
        let mut name = config.catalog.clone().into_os_string();
        name.push(suffix);
        let path = PathBuf::from(name);
        let Ok(m) = meta(&path) else { continue };
        let bad_group = m.mode() & 0o020 != 0 && !group_ok(m.gid());
        if !m.file_type().is_file() {
            return Err(insecure(
                &path,
                "is not a regular file (a symlink or special file planted in place of the \
                 catalog?). Fix: remove it"
                    .into(),
            ));
        }
        if m.mode() & 0o002 != 0 || bad_group {
            return Err(insecure(
                &path,
                format!(
                    "the catalog is writable by {} (mode {:04o}), so its rows may have been \
                     changed by another user. Fix: check it (`tierctl fsck`) and chmod 600 {}{}",
                    who(m.mode(), if bad_group { 0o020 } else { 0 }, 0o002),
                    m.mode() & 0o7777,
                    path.display(),
                    if group.is_some() {
                        " (or 660 with the control_group)"
                    } else {
                        ""
                    }
                ),
            ));
        }
    }
    Ok(())
}

/// "group", "others" or "group and others", for the write bits set in `mode`.
fn who(mode: u32, group_bit: u32, other_bit: u32) -> &'static str {
    match (mode & group_bit != 0, mode & other_bit != 0) {
        (true, true) => "group and others",
        (true, false) => "its group",
        _ => "others",
    }
}

/// Blocks termination signals in this thread (and every thread it spawns
/// later) so that one dedicated thread can wait for them. Call first.
pub fn block_termination_signals() -> Result<(), DaemonError> {
    // SAFETY: sigset manipulation on a local set; pthread_sigmask on this thread.
    let rc = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut())
    };
    if rc != 0 {
        return Err(DaemonError::System {
            context: "blocking signals".into(),
            source: std::io::Error::from_raw_os_error(rc),
        });
    }
    Ok(())
}

/// How long a signalled daemon keeps trying to unmount a busy mount.
const UNMOUNT_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);
/// Pause between those attempts.
const UNMOUNT_RETRY: std::time::Duration = std::time::Duration::from_millis(100);

/// Waits for SIGTERM/SIGINT/SIGHUP (blocked beforehand) and returns its number.
fn wait_for_signal() -> i32 {
    // SAFETY: as above; sigwait only reads the set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        let mut sig = 0;
        libc::sigwait(&set, &mut sig);
        sig
    }
}

/// Keeps freed transfer buffers from pinning memory. The daemon moves data in
/// 4–8 MiB buffers from many threads (tokio workers, the blocking pool), and
/// glibc gives threads their own arenas (up to 8 per core), each keeping
/// freed buffers for reuse: the resident size grew to ~350 MiB over a few
/// 1 GiB transfers. So: two arenas; buffers of 2 MiB and more mmapped (the
/// transfer buffers — parts, read-back ranges, cold-read chunks — are reused
/// from a pool, so they are not mapped afresh each time; 1 MiB FUSE read
/// buffers stay on the heap), and the heap trimmed only past 16 MiB free
/// (trimming at glibc's 128 KiB default made the HTTP client's read buffers
/// fault in again and again: recall CPU rose by half). Measured in full
/// `scripts/bench` runs: peak RSS 137 → 83 MiB over the migration section,
/// 92 → 59 MiB over the cold path (docs/benchmarks.md). `MALLOC_MMAP_THRESHOLD_`
/// and `MALLOC_TRIM_THRESHOLD_` in the environment still win.
fn limit_allocator_retention() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator tunables; called before the
    // daemon starts its worker threads.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 2 << 20);
        }
        if std::env::var_os("MALLOC_TRIM_THRESHOLD_").is_none() {
            libc::mallopt(libc::M_TRIM_THRESHOLD, 16 << 20);
        }
    }
}

/// Lets the daemon hold one descriptor per inode the kernel knows: raises the
/// open-file limit to the system maximum (`fs.nr_open`; root may raise the
/// hard limit), or at least to the current hard limit. Returns the new limit.
fn raise_fd_limit() -> u64 {
    let system_max = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(1 << 20);
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        let wanted = libc::rlimit {
            rlim_cur: system_max,
            rlim_max: system_max.max(lim.rlim_max),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) == 0 {
            return wanted.rlim_cur;
        }
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        lim.rlim_cur
    }
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Runs the daemon until the filesystem is unmounted. `ready` is called once:
/// with `Ok` as soon as the mount is live, or with the error that stopped the
/// start-up (so a backgrounding parent can report it).
pub fn run(
    config: &Config,
    mountpoint: &Path,
    overrides: &MountOverrides,
    ready: impl FnOnce(Result<(), String>),
) -> Result<(), DaemonError> {
    let mut ready = Some(ready);
    let result = run_inner(config, mountpoint, overrides, &mut ready);
    if let (Err(e), Some(ready)) = (&result, ready.take()) {
        ready(Err(e.to_string()));
    }
    result
}

fn run_inner(
    config: &Config,
    mountpoint: &Path,
    overrides: &MountOverrides,
    ready: &mut Option<impl FnOnce(Result<(), String>)>,
) -> Result<(), DaemonError> {
    let mountpoint = check_mountpoint(config, mountpoint)?;
    limit_allocator_retention();
    let fd_limit = raise_fd_limit();
    if fd_limit < 100_000 {
        tracing::warn!(
            fd_limit,
            "open-file limit is low: the daemon holds one descriptor per inode in use, \
             so large directories may fail with EMFILE; raise fs.nr_open or run as root"
        );
    }
    // Everything the daemon creates for itself is private. The FUSE threads
    // give themselves a umask of 0 (`sys::caller_umask`): the modes they
    // receive were already masked with the caller's umask by the kernel.
    // SAFETY: umask has no failure mode.
    unsafe { libc::umask(0o077) };
    check_private_state(config)?;

    let catalog = Catalog::open(
        &config.catalog,
        CatalogOptions {
            access_flush_interval: config.access_flush_interval,
            group: config.control_group,
            hot_dir: Some(config.hot_dir.clone()),
        },
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("tierfs-io")
        .enable_all()
        .build()
        .map_err(|source| DaemonError::System {
            context: "starting the I/O runtime".into(),
            source,
        })?;
    let tier = Arc::new(Tier::new(
        config,
        catalog.clone(),
        Arc::new(Gate::default()),
    )?);
    tier.recover()?;
    // Each rule's last run, saved by earlier runs, for `tierctl status`.
    if let Ok(Some(saved)) = catalog.exec("load rule runs", |c| tiering::saved_rule_runs(c)) {
        crate::activity::activity().restore_rule_runs(&saved);
    }
    // Resolve interrupted releases and recalls first (this restores stub
    // sizes), so the scan below sees every file as it really is.
    let stats = catalog.reconcile(&config.hot_dir)?;
    tracing::info!(
        scanned = stats.scanned,
        added = stats.added,
        updated = stats.updated,
        removed = stats.removed,
        elapsed_ms = stats.elapsed.as_millis() as u64,
        "catalog reconciled with {}",
        config.hot_dir.display()
    );
    let tiering = Some(Tiering {
        tier: tier.clone(),
        runtime: runtime.handle().clone(),
    });
    if let Some(metrics) = &config.metrics {
        let listener = runtime
            .block_on(crate::metrics::bind(metrics.listen))
            .map_err(|source| DaemonError::System {
                context: format!("metrics.listen {}", metrics.listen),
                source,
            })?;
        tracing::info!(listen = %metrics.listen, "serving Prometheus metrics at /metrics");
        runtime.spawn(crate::metrics::serve(
            listener,
            metrics_scraper(config.catalog.clone(), tier.clone()),
        ));
    }
    if let Some(every) = config.migrate_interval {
        runtime.spawn(crate::tier::schedule::run(
            tier.clone(),
            every,
            config.gc_grace,
        ));
    }
    if let Some(every) = config.catalog_backup_interval
        && !tier.remotes().is_empty()
    {
        runtime.spawn(crate::tier::backup::scheduled_backups(
            config.catalog.clone(),
            config.hot_dir.clone(),
            tier.remotes().clone(),
            every,
            config.catalog_backup_keep,
        ));
    }

    let watcher = if config.watch_hot_dir {
        Some(Arc::new(crate::catalog::watch(
            &config.hot_dir,
            catalog.clone(),
        )?))
    } else {
        None
    };

    let (fs, fs_stats) = TierFs::new(
        &config.hot_dir,
        Arc::new(catalog.clone()),
        FsOptions {
            attr_timeout: config.mount.attr_timeout,
            passthrough: true,
            tiering: tiering.clone(),
            max_open_per_user: config.mount.max_open_per_user,
            handle_map: Some(handle_map_path(&config.catalog)),
        },
    )
    .map_err(|source| DaemonError::System {
        context: format!("opening hot_dir {}", config.hot_dir.display()),
        source,
    })?;

    let mut fuse_config = fuser::Config::default();
    fuse_config.mount_options = vec![
        MountOption::FSName(config.source.display().to_string()),
        // fuser's direct mount(2) (used as root) drops `Subtype`; the kernel
        // takes `subtype=` as a mount data option, so pass it that way to make
        // /proc/mounts and findmnt say `fuse.tierfs` (what fstab and .mount
        // units name as the type).
        MountOption::CUSTOM("subtype=tierfs".into()),
    ];
    if config.mount.default_permissions {
        fuse_config
            .mount_options
            .push(MountOption::DefaultPermissions);
    }
    if config.mount.read_only || overrides.read_only {
        fuse_config.mount_options.push(MountOption::RO);
    }
    fuse_config
        .mount_options
        .extend(overrides.extra.iter().cloned());
    if config.mount.allow_other || overrides.allow_other {
        fuse_config.acl = SessionACL::All;
    }
    fuse_config.n_threads = Some(config.mount.threads);
    fuse_config.clone_fd = true;

    // The control socket answers before the mount appears: whoever sees
    // the mount (a script, a test, systemd's mount unit) can use tierctl
    // at once.
    let control = control::serve_with_group(
        &config.control_socket,
        handler(
            config,
            &mountpoint,
            fs_stats.clone(),
            catalog.clone(),
            tier.clone(),
            runtime.handle().clone(),
            watcher.as_ref().map(Arc::downgrade),
        ),
        config.control_group,
    )?;
    let parent_dev = std::fs::metadata(&mountpoint).map(|m| m.dev()).ok();
    let mut session = match Session::new(fs, &mountpoint, &fuse_config) {
        Ok(session) => session,
        Err(source) => {
            control.shutdown();
            return Err(DaemonError::Fuse {
                path: mountpoint.clone(),
                source,
            });
        }
    };
    if let Some(dev) = parent_dev {
        crate::fs::readahead::raise_in_background(&mountpoint, dev);
    }
    // Invalidations go out from a thread of their own: the kernel may wait
    // in one for a page lock held by a write through the mount, and that
    // write may wait for a recall by the engine, which must never be the
    // one blocked (an engine thread, or one holding the file's lock, waiting
    // here would deadlock).
    let notifier = session.notifier();
    let (inval_tx, inval_rx) =
        crossbeam_channel::unbounded::<(u64, tokio::sync::oneshot::Sender<()>)>();
    std::thread::Builder::new()
        .name("tierfs-inval".into())
        .spawn(move || {
            for (ino, done) in inval_rx {
                if let Err(e) = notifier.inval_inode(fuser::INodeNo(ino), 0, 0) {
                    tracing::debug!(ino, error = %e, "attribute invalidation not delivered");
                }
                let _ = done.send(());
            }
        })
        .map_err(|source| DaemonError::System {
            context: "starting the invalidation thread".into(),
            source,
        })?;
    tier.set_invalidator(move |ino, done| {
        let _ = inval_tx.send((ino, done));
    });
    tracing::info!(
        mountpoint = %mountpoint.display(),
        hot_dir = %config.hot_dir.display(),
        passthrough = fs_stats.passthrough.load(Ordering::Relaxed),
        "mounted"
    );

    if let Some(ready) = ready.take() {
        ready(Ok(()));
    }

    let mut unmounter = session.unmount_callable();
    let signal_mountpoint = mountpoint.clone();
    std::thread::Builder::new()
        .name("tierfs-signals".into())
        .spawn(move || {
            let sig = wait_for_signal();
            tracing::info!(
                signal = sig,
                "unmounting {} on signal",
                signal_mountpoint.display()
            );
            // A mount that is busy for a moment (a process walking into it as
            // the signal came) is tried again for a while before giving up.
            let deadline = std::time::Instant::now() + UNMOUNT_PATIENCE;
            loop {
                match unmounter.unmount() {
                    Ok(()) => break,
                    Err(e)
                        if e.raw_os_error() == Some(libc::EBUSY)
                            && std::time::Instant::now() < deadline =>
                    {
                        tracing::debug!("mount busy; unmounting again shortly");
                        std::thread::sleep(UNMOUNT_RETRY);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "unmount failed; the mount stays (is a process using it?)");
                        break;
                    }
                }
            }
        })
        .map_err(|source| DaemonError::System {
            context: "starting the signal thread".into(),
            source,
        })?;

    let served = session.run();
    tracing::info!("filesystem unmounted; shutting down");
    // Running migrations stop at their next safe point (an upload in flight
    // is abandoned, nothing more is released), before the control server
    // waits for the requests that started them; whatever still runs after
    // that is dropped, in a state `recover` resolves at the next start.
    runtime.block_on(tier.stop(std::time::Duration::from_secs(20)));
    control.shutdown();
    drop(watcher);
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    catalog.close()?;
    served.map_err(|source| DaemonError::Fuse {
        path: mountpoint,
        source,
    })
}

/// What a metrics scrape reads: per-state counts from the catalog (its own
/// read-only connection) and each remote's reachability.
fn metrics_scraper(catalog: PathBuf, tier: Arc<Tier>) -> crate::metrics::Scraper {
    Arc::new(move || crate::metrics::Scrape {
        by_state: crate::catalog::CatalogReader::open(&catalog)
            .and_then(|r| r.status())
            .map(|s| {
                s.by_state
                    .iter()
                    .map(|c| (c.state.to_string(), c.files, c.bytes))
                    .collect()
            })
            .map_err(|e| e.to_string()),
        remotes: tier.remote_health(),
    })
}

fn handler(
    config: &Config,
    mountpoint: &Path,
    fs_stats: Arc<FsStats>,
    catalog: Catalog,
    tier: Arc<Tier>,
    runtime: tokio::runtime::Handle,
    watcher: Option<std::sync::Weak<crate::catalog::Watcher>>,
) -> control::Handler {
    let mountpoint = mountpoint.to_path_buf();
    let hot_dir = config.hot_dir.clone();
    let gc_grace = config.gc_grace;
    let started_at_unix = now_unix();
    Arc::new(move |request: Request| {
        // Jobs that record cost-ledger rows (written behind the work) answer
        // only once those rows are committed, so a report run right after
        // sees them.
        let records_ledger = matches!(
            request,
            Request::Migrate(_)
                | Request::Recall { .. }
                | Request::Gc { .. }
                | Request::Fsck { .. }
        );
        let result: Result<Reply, RequestError> = match request {
            Request::Status => {
                // Changes made through the mount before the command are in
                // the counts `tierctl status` reads next (the writer batches
                // events for up to 20 ms).
                if let Err(e) = catalog.exec_grouped("status barrier", |_| Ok(())) {
                    tracing::warn!(error = %e, "catalog writer did not answer the status barrier");
                }
                Ok(Reply::Status(DaemonStatus {
                    pid: std::process::id(),
                    version: env!("CARGO_PKG_VERSION").to_string(),
                    mountpoint: mountpoint.clone(),
                    hot_dir: hot_dir.clone(),
                    started_at_unix,
                    passthrough: fs_stats.passthrough.load(Ordering::Relaxed),
                    open_files: fs_stats.open_files.load(Ordering::Relaxed),
                    catalog_queue: catalog.queue_len() as u64 + catalog.pending_writes(),
                    catalog_pending_writes: catalog.pending_writes(),
                    catalog_write_failures: catalog.failed_writes(),
                    catalog_dropped_writes: catalog.dropped_writes(),
                }))
            }
            Request::Migrate(req) => {
                let dry_run = req.dry_run;
                let result = runtime.block_on(tier.migrate(req));
                if !dry_run {
                    let record = result.as_ref().map(Clone::clone).map_err(|e| e.to_string());
                    tier.record_run("tierctl", &record);
                }
                result.map(Reply::Migrate).map_err(tier_error)
            }
            Request::Activity => {
                let p = tier.progress();
                let job = JobProgress {
                    files_done: p.files_done.load(Ordering::Relaxed),
                    files_total: p.files_total.load(Ordering::Relaxed),
                    bytes_done: p.bytes_done.load(Ordering::Relaxed),
                    bytes_total: p.bytes_total.load(Ordering::Relaxed),
                };
                let running = tier.is_busy();
                let mut report = crate::activity::activity()
                    .report(running.then_some(job), crate::activity::now_unix());
                report.background_recalls = tier.background_recalls();
                Ok(Reply::Activity(report))
            }
            Request::Recall { paths } => runtime
                .block_on(tier.recall_paths(&paths))
                .map(Reply::Recall)
                .map_err(tier_error),
            Request::Gc { grace_secs } => runtime
                .block_on(tier.gc(grace_secs.map_or(gc_grace, std::time::Duration::from_secs)))
                .map(Reply::Gc)
                .map_err(tier_error),
            Request::RemoteHealth => Ok(Reply::RemoteHealth(tier.remote_health())),
            Request::Sync => {
                // Changes made beside the mount before this request have
                // reached the catalog's queue (the watcher's barrier) ...
                if let Some(watcher) = watcher.as_ref().and_then(std::sync::Weak::upgrade)
                    && !watcher.barrier(std::time::Duration::from_secs(5))
                {
                    tracing::warn!("the hot-dir watcher did not pass a sync barrier within 5 s");
                }
                // ... and every hint sent before it, the mount's too, is
                // applied (the writer handles its queue in order) and committed.
                if let Err(e) = catalog.flush() {
                    tracing::warn!(error = %e, "catalog writes failed before a sync");
                }
                Ok(Reply::Sync(crate::control::Synced {
                    pending: catalog.pending_writes(),
                }))
            }
            Request::Fsck { repair } => runtime
                .block_on(tier.fsck(repair))
                .map(Reply::Fsck)
                .map_err(tier_error),
            Request::Progress => {
                let p = tier.progress();
                Ok(Reply::Progress(JobProgress {
                    files_done: p.files_done.load(Ordering::Relaxed),
                    files_total: p.files_total.load(Ordering::Relaxed),
                    bytes_done: p.bytes_done.load(Ordering::Relaxed),
                    bytes_total: p.bytes_total.load(Ordering::Relaxed),
                }))
            }
            Request::RuleAdd { text, position } => match crate::rules::parse(&text) {
                Err(e) => Err(RequestError::new(ErrorKind::InvalidArgument, e.to_string())),
                Ok(rule) => edit::add(&catalog, &rule, position, now_unix() * 1_000_000_000)
                    .map(|placed| Reply::RuleAdd(RuleAdded(placed)))
                    .map_err(edit_error),
            },
            Request::RuleRemove { id } => edit::remove(&catalog, id)
                .map(|placed| Reply::RuleRemove(RuleRemoved(placed)))
                .map_err(edit_error),
            Request::RuleMove { id, position } => edit::move_to(&catalog, id, position)
                .map(|placed| Reply::RuleMove(RuleMoved(placed)))
                .map_err(edit_error),
            Request::Pin { paths, pinned } => {
                let keys: Vec<Vec<u8>> = paths.iter().filter_map(|p| path_key(p)).collect();
                catalog
                    .exec("pin", move |c| {
                        let mut n = 0;
                        for k in &keys {
                            n += tiering::set_pinned(c, k, pinned)?;
                        }
                        Ok(n)
                    })
                    .map(|n| Reply::Pin(PinSummary { changed: n as u64 }))
                    .map_err(|e| RequestError::new(ErrorKind::Failed, e.to_string()))
            }
        };
        if records_ledger && let Err(e) = catalog.exec("commit queued ledger rows", |_| Ok(())) {
            tracing::warn!(error = %e, "catalog barrier failed");
        }
        match result {
            Ok(reply) => Response::Ok(reply),
            Err(error) => Response::Error(error),
        }
    })
}

/// A failed tiering job as a control error: `unavailable` when trying again
/// later may work (a remote was unreachable), else `failed`.
fn tier_error(e: TierError) -> RequestError {
    let kind = if e.is_transient() {
        ErrorKind::Unavailable
    } else {
        ErrorKind::Failed
    };
    RequestError::new(kind, e.to_string())
}

/// A refused rule change as a control error: `not_found` for a missing
/// rule, else `failed`.
fn edit_error(e: edit::EditError) -> RequestError {
    let kind = match e {
        edit::EditError::NotFound { .. } => ErrorKind::NotFound,
        edit::EditError::Catalog(_) => ErrorKind::Failed,
    };
    RequestError::new(kind, e.to_string())
}

/// Suffix of the file beside the catalog where the mount keeps the backing
/// file handles of the inode numbers it gave out (see `FsOptions::handle_map`).
const HANDLE_MAP_SUFFIX: &str = "-handles";

/// `<catalog>-handles`.
fn handle_map_path(catalog: &Path) -> PathBuf {
    let mut name = catalog.as_os_str().to_os_string();
    name.push(HANDLE_MAP_SUFFIX);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn set_mode(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn state_others_could_write_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        set_mode(root, 0o755);
        std::fs::create_dir(root.join("hot")).unwrap();
        set_mode(&root.join("hot"), 0o755);
        // A hot dir reached through a symlink is judged by the directory.
        std::os::unix::fs::symlink(root.join("hot"), root.join("link")).unwrap();
        let text = format!(
            "hot_dir = \"{}\"\ncatalog = \"{}\"\n",
            root.join("link").display(),
            root.join("c.db").display()
        );
        let config = Config::from_toml(&text, &root.join("t.toml")).unwrap();
        check_private_state(&config).unwrap();

        set_mode(&root.join("hot"), 0o775);
        let e = check_private_state(&config).unwrap_err().to_string();
        assert!(
            e.contains("writable by its group") && e.contains("chmod go-w"),
            "{e}"
        );
        set_mode(&root.join("hot"), 0o700);

        std::fs::write(root.join("c.db"), b"").unwrap();
        set_mode(&root.join("c.db"), 0o646);
        let e = check_private_state(&config).unwrap_err().to_string();
        assert!(e.contains("c.db") && e.contains("chmod 600"), "{e}");
        set_mode(&root.join("c.db"), 0o600);
        check_private_state(&config).unwrap();

        std::os::unix::fs::symlink("/etc/shadow", root.join("c.db-wal")).unwrap();
        let e = check_private_state(&config).unwrap_err().to_string();
        assert!(
            e.contains("c.db-wal") && e.contains("not a regular file"),
            "{e}"
        );
        std::fs::remove_file(root.join("c.db-wal")).unwrap();

        set_mode(root, 0o1777);
        let e = check_private_state(&config).unwrap_err().to_string();
        assert!(e.contains("catalog's directory"), "{e}");
        set_mode(root, 0o700);
    }
}
