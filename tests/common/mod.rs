//! Shared harness for the tierfs end-to-end tests.
//!
//! * [`TestMount`] creates a private temporary root holding `hot/` (the hot
//!   directory), `mnt/` (the mount point), `plain/` (an ordinary directory on
//!   the same file system, used as the reference for every comparison), a
//!   config file and the daemon log. It runs `tierfs mount -f` as a child,
//!   waits for the mount to show in `/proc/self/mountinfo`, and on drop
//!   unmounts it, waits for the daemon and checks it exited cleanly.
//! * [`Twin`] runs the same closure on a plain directory and on the mount and
//!   asserts that both produced the same [`Transcript`] (return values, errnos,
//!   stat fields, contents) and the same tree, and that the hot dir holds what
//!   the plain dir holds.
//! * Small libc wrappers for calls std has no API for.
//!
//! Each test binary uses a subset of this module.
#![allow(dead_code)]

pub mod tiering;

use std::collections::BTreeMap;
use std::ffi::{CStr, CString, OsStr, OsString};
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::hash::{Hash, Hasher};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// The daemon binary under test.
pub const TIERFS: &str = env!("CARGO_BIN_EXE_tierfs");
/// The control client.
pub const TIERCTL: &str = env!("CARGO_BIN_EXE_tierctl");

/// How long to wait for a mount to appear or a daemon to exit.
pub const MOUNT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a daemon may take to exit after its mount is gone.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------
// Mount options and config
// ---------------------------------------------------------------------------

/// Knobs for the generated config file. `Default` is the plain default config.
#[derive(Clone, Debug, Default)]
pub struct MountOptions {
    /// `[mount] allow_other = true` (implies default_permissions, the default).
    pub allow_other: bool,
    /// `[mount] attr_timeout = "..."`.
    pub attr_timeout: Option<String>,
    /// `watch_hot_dir = ...`.
    pub watch_hot_dir: Option<bool>,
    /// `access_flush_interval = "..."`.
    pub access_flush_interval: Option<String>,
    /// `[mount] read_only = true`.
    pub read_only: bool,
    /// Raw TOML lines appended at top level (before `[mount]`).
    pub extra_top: String,
    /// Raw TOML lines appended inside `[mount]`.
    pub extra_mount: String,
    /// Raw TOML appended after `[mount]` (e.g. `[remote.NAME]` sections).
    pub extra_sections: String,
    /// Extra environment variables for the daemon (e.g. test pause points).
    pub env: Vec<(String, String)>,
}

impl MountOptions {
    /// Renders the config file text for `hot`.
    pub fn render(&self, hot: &Path) -> String {
        let mut s = format!(
            "hot_dir = {}\nlog_level = \"tierfs=debug\"\n",
            toml_str(hot)
        );
        if let Some(w) = self.watch_hot_dir {
            s += &format!("watch_hot_dir = {w}\n");
        }
        if let Some(i) = &self.access_flush_interval {
            s += &format!("access_flush_interval = {}\n", toml_str(Path::new(i)));
        }
        s += &self.extra_top;
        if !self.extra_top.is_empty() && !self.extra_top.ends_with('\n') {
            s.push('\n');
        }
        s += "\n[mount]\n";
        if self.allow_other {
            s += "allow_other = true\ndefault_permissions = true\n";
        }
        if let Some(t) = &self.attr_timeout {
            s += &format!("attr_timeout = {}\n", toml_str(Path::new(t)));
        }
        if self.read_only {
            s += "read_only = true\n";
        }
        s += &self.extra_mount;
        if !self.extra_sections.is_empty() {
            s += "\n";
            s += &self.extra_sections;
        }
        s
    }
}

/// Writes a config file readable by its owner only, as an admin would for a
/// config holding credentials (tierfs refuses others-readable ones).
pub fn write_private(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

fn toml_str(p: &Path) -> String {
    let s = p.to_str().expect("test paths are UTF-8");
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

// ---------------------------------------------------------------------------
// TestMount
// ---------------------------------------------------------------------------

/// A live tierfs mount over a private hot dir, plus a plain reference dir.
pub struct TestMount {
    // `tmp` must be dropped last: our Drop impl unmounts first.
    tmp: Option<tempfile::TempDir>,
    root: PathBuf,
    hot: PathBuf,
    mnt: PathBuf,
    plain: PathBuf,
    config: PathBuf,
    log: PathBuf,
    opts: MountOptions,
    child: Option<Child>,
    mounts: u32,
}

impl TestMount {
    /// Mounts with the default config.
    pub fn new() -> TestMount {
        Self::with_options(MountOptions::default())
    }

    /// Mounts with the given config knobs.
    pub fn with_options(opts: MountOptions) -> TestMount {
        let mut m = Self::unmounted(opts);
        m.mount();
        m
    }

    /// Creates the directories and config but does not mount (call [`mount`]).
    ///
    /// [`mount`]: TestMount::mount
    pub fn unmounted(opts: MountOptions) -> TestMount {
        let tmp = tempfile::Builder::new()
            .prefix("tierfs-e2e-")
            .tempdir()
            .expect("create temp root");
        let root = tmp.path().canonicalize().unwrap();
        // Other users (allow_other tests, pjdfstest's dummy users) must be able
        // to traverse the root.
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        let hot = root.join("hot");
        let mnt = root.join("mnt");
        let plain = root.join("plain");
        for d in [&hot, &mnt, &plain] {
            fs::create_dir(d).unwrap();
            fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
        }
        let config = root.join("tierfs.toml");
        write_private(&config, &opts.render(&hot));
        TestMount {
            tmp: Some(tmp),
            log: root.join("daemon.log"),
            root,
            hot,
            mnt,
            plain,
            config,
            opts,
            child: None,
            mounts: 0,
        }
    }

    /// The temp root holding everything.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// The hot directory (backing store).
    pub fn hot(&self) -> &Path {
        &self.hot
    }
    /// The mount point.
    pub fn mnt(&self) -> &Path {
        &self.mnt
    }
    /// A plain directory on the same file system as `hot`, for reference.
    pub fn plain(&self) -> &Path {
        &self.plain
    }
    /// The config file.
    pub fn config(&self) -> &Path {
        &self.config
    }
    /// The catalog path implied by the default config.
    pub fn catalog(&self) -> PathBuf {
        self.root.join("hot.tierfs.db")
    }
    /// The daemon's stderr log (all mounts of this TestMount, appended).
    pub fn log_path(&self) -> &Path {
        &self.log
    }
    /// The daemon log text.
    pub fn daemon_log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
    /// The options this mount was created with.
    pub fn options(&self) -> &MountOptions {
        &self.opts
    }
    /// Pid of the running daemon, if mounted.
    pub fn daemon_pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }
    /// Whether our mount point is currently a mount.
    pub fn is_mounted(&self) -> bool {
        is_mountpoint(&self.mnt)
    }
    /// `path` below the mount.
    pub fn m(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.mnt.join(rel)
    }
    /// `path` below the hot dir.
    pub fn h(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.hot.join(rel)
    }

    /// Rewrites the config file (takes effect at the next [`mount`](Self::mount)).
    pub fn set_options(&mut self, opts: MountOptions) {
        write_private(&self.config, &opts.render(&self.hot));
        self.opts = opts;
    }

    /// Starts `tierfs mount -f` and waits until the mount is live.
    pub fn mount(&mut self) {
        assert!(self.child.is_none(), "already mounted");
        self.mounts += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        use std::io::Write;
        writeln!(log, "===== tierfs mount #{} =====", self.mounts).unwrap();
        let child = Command::new(TIERFS)
            .arg("mount")
            .arg("-f")
            .arg(&self.config)
            .arg(&self.mnt)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .env("RUST_BACKTRACE", "1")
            .envs(self.opts.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {TIERFS}: {e}"));
        self.child = Some(child);
        let start = Instant::now();
        loop {
            if is_mountpoint(&self.mnt) {
                return;
            }
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                panic!(
                    "tierfs exited ({st}) before the mount appeared\n{}",
                    self.log_banner()
                );
            }
            if start.elapsed() > MOUNT_TIMEOUT {
                let mut c = self.child.take().unwrap();
                let _ = c.kill();
                let _ = c.wait();
                panic!(
                    "mount did not appear at {} within {MOUNT_TIMEOUT:?}\n{}",
                    self.mnt.display(),
                    self.log_banner()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Unmounts with `umount` (the normal admin path) and waits for the daemon
    /// to exit. Returns its exit status. Panics if it does not exit in time.
    pub fn unmount(&mut self) -> ExitStatus {
        let out = umount_retrying(&self.mnt).unwrap();
        assert!(
            out.status.success(),
            "umount {} failed: {}\n{}",
            self.mnt.display(),
            String::from_utf8_lossy(&out.stderr),
            self.log_banner()
        );
        self.wait_daemon_exit()
    }

    /// Stops the daemon with SIGTERM (it must unmount and exit 0 by itself).
    pub fn sigterm(&mut self) -> ExitStatus {
        let pid = self.daemon_pid().expect("not mounted") as libc::pid_t;
        // SAFETY: plain kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let st = self.wait_daemon_exit();
        assert!(
            !is_mountpoint(&self.mnt),
            "daemon exited on SIGTERM but left the mount behind\n{}",
            self.log_banner()
        );
        st
    }

    /// Kills the daemon with SIGKILL (a crash: nothing is flushed) and clears
    /// the dead mount it leaves behind.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("no daemon running");
        child.kill().expect("kill -9 the daemon");
        let _ = child.wait();
        let _ = Command::new("umount").arg("-l").arg(&self.mnt).output();
        assert!(
            wait_until(Duration::from_secs(5), || !is_mountpoint(&self.mnt)).is_some(),
            "dead mount still present after kill -9"
        );
    }

    /// Unmounts, asserts a clean exit, and mounts again over the same hot dir.
    pub fn remount(&mut self) {
        let st = self.unmount();
        assert!(
            st.success(),
            "daemon exit status {st}\n{}",
            self.log_banner()
        );
        self.mount();
    }

    /// Waits for the daemon to exit after the mount was removed by other
    /// means (fusermount3 -u, a signal) and returns its status.
    pub fn wait_exit(&mut self) -> ExitStatus {
        self.wait_daemon_exit()
    }

    /// Whether the mount point is currently mounted.
    pub fn is_mountpoint_now(&self) -> bool {
        is_mountpoint(&self.mnt)
    }

    /// For tests that started a daemon themselves (background mode) and
    /// already unmounted it: nothing left for Drop to stop.
    pub fn forget_daemon(&mut self) {
        self.child = None;
    }

    fn wait_daemon_exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("no daemon running");
        let start = Instant::now();
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st;
            }
            if start.elapsed() > EXIT_TIMEOUT {
                let _ = child.kill();
                let st = child.wait().unwrap();
                panic!(
                    "daemon did not exit within {EXIT_TIMEOUT:?} after unmount (killed: {st})\n{}",
                    self.log_banner()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs `tierctl -c CONFIG ARGS...`.
    pub fn tierctl(&self, args: &[&str]) -> Output {
        Command::new(TIERCTL)
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {TIERCTL}: {e}"))
    }

    /// Creates `name` as an empty directory in both the plain dir and the
    /// mount and returns the pair.
    pub fn twin(&self, name: &str) -> Twin {
        let t = Twin {
            plain: self.plain.join(name),
            mnt: self.mnt.join(name),
            hot: self.hot.join(name),
        };
        fs::create_dir(&t.plain).unwrap();
        fs::create_dir(&t.mnt).unwrap_or_else(|e| panic!("mkdir {} via mount: {e}", name));
        for d in [&t.plain, &t.mnt] {
            fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
        }
        t
    }

    /// The daemon log wrapped in banners, for panic messages.
    pub fn log_banner(&self) -> String {
        format!(
            "----- tierfs daemon log ({}) -----\n{}\n----- end of daemon log -----",
            self.log.display(),
            self.daemon_log()
        )
    }

    fn teardown(&mut self) -> Result<(), String> {
        let mut problems = Vec::new();
        if is_mountpoint(&self.mnt) {
            let out = umount_retrying(&self.mnt);
            if !matches!(&out, Ok(o) if o.status.success()) {
                problems.push(format!("umount failed: {out:?}; using umount -l"));
                let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
            }
        }
        if let Some(mut child) = self.child.take() {
            let start = Instant::now();
            let st = loop {
                if let Ok(Some(st)) = child.try_wait() {
                    break Some(st);
                }
                if start.elapsed() > EXIT_TIMEOUT {
                    problems.push(format!(
                        "daemon did not exit within {EXIT_TIMEOUT:?} after unmount; killed"
                    ));
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            if let Some(st) = st
                && !st.success()
            {
                problems.push(format!("daemon exited with {st} after unmount"));
            }
        }
        let log = self.daemon_log();
        if log.contains("panicked at") {
            problems.push("the daemon log contains a panic".into());
        }
        if is_mountpoint(&self.mnt) {
            problems.push("mount point still mounted after teardown".into());
            // Never let TempDir's recursive delete walk into a live mount.
            if let Some(t) = self.tmp.take() {
                let _ = t.keep();
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n"))
        }
    }
}

/// `umount PATH`, retried for up to 2 s while it fails: another test thread
/// may be between fork and exec holding a copy of one of our descriptors into
/// the mount, which makes it busy for a moment.
fn umount_retrying(mnt: &Path) -> io::Result<std::process::Output> {
    let mut out = Command::new("umount").arg(mnt).output();
    for _ in 0..20 {
        if matches!(&out, Ok(o) if o.status.success()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        out = Command::new("umount").arg(mnt).output();
    }
    out
}

impl Drop for TestMount {
    fn drop(&mut self) {
        let res = self.teardown();
        if std::thread::panicking() {
            if let Err(p) = &res {
                eprintln!("teardown problems: {p}");
            }
            eprintln!("{}", self.log_banner());
        } else if let Err(p) = res {
            panic!("{p}\n{}", self.log_banner());
        }
    }
}

/// Whether `path` is a mount point according to /proc/self/mountinfo.
pub fn is_mountpoint(path: &Path) -> bool {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let want = path.as_os_str().as_bytes();
    info.lines().any(|l| {
        l.split(' ')
            .nth(4)
            .is_some_and(|mp| unescape_mountinfo(mp) == want)
    })
}

/// The mountinfo line for `path` (last one wins), if mounted.
pub fn mountinfo_line(path: &Path) -> Option<String> {
    let info = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let want = path.as_os_str().as_bytes();
    info.lines()
        .rev()
        .find(|l| {
            l.split(' ')
                .nth(4)
                .is_some_and(|mp| unescape_mountinfo(mp) == want)
        })
        .map(str::to_owned)
}

fn unescape_mountinfo(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Polls `f` every 20 ms until it returns true or `timeout` passes.
/// Returns how long it took, or None on timeout.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if f() {
            return Some(start.elapsed());
        }
        if start.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------
// Twin directories and transcripts
// ---------------------------------------------------------------------------

/// The same directory name below plain/, mnt/ and hot/.
#[derive(Clone, Debug)]
pub struct Twin {
    /// Reference directory (plain ext4).
    pub plain: PathBuf,
    /// The directory through the mount.
    pub mnt: PathBuf,
    /// The same directory seen directly in the hot dir.
    pub hot: PathBuf,
}

impl Twin {
    /// Runs `f` on the plain dir, then on the mount, and asserts both
    /// transcripts are identical and that plain, mount and hot dir trees
    /// match afterwards. Returns (plain, mount) transcripts.
    pub fn run<F: FnMut(&Path, &mut Transcript)>(&self, mut f: F) -> (Transcript, Transcript) {
        let mut tp = Transcript::default();
        f(&self.plain, &mut tp);
        let mut tm = Transcript::default();
        f(&self.mnt, &mut tm);
        assert_same_transcript(&tp, &tm);
        self.assert_trees_match();
        (tp, tm)
    }

    /// Asserts plain, mount and hot trees hold the same entries, types, modes,
    /// owners, link counts, sizes, contents and symlink targets.
    pub fn assert_trees_match(&self) {
        let p = snapshot(&self.plain);
        let m = snapshot(&self.mnt);
        let h = snapshot(&self.hot);
        assert_trees_eq("plain dir", &p, "mount", &m);
        assert_trees_eq("plain dir", &p, "hot dir", &h);
    }
}

/// An ordered record of observations (operation label → result).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Transcript {
    /// One line per observation.
    pub lines: Vec<String>,
}

impl Transcript {
    /// Records `value` under `label`.
    pub fn rec(&mut self, label: &str, value: impl Debug) {
        self.lines.push(format!("{label}: {value:?}"));
    }
    /// Records an io::Result (or a `Result<T, &io::Error>`) as `Ok(value)`
    /// or `Err(ERRNO)`.
    pub fn res<T: Debug, E: std::borrow::Borrow<io::Error>>(
        &mut self,
        label: &str,
        r: Result<T, E>,
    ) {
        let s = match &r {
            Ok(v) => format!("Ok({v:?})"),
            Err(e) => format!("Err({})", errname(e.borrow())),
        };
        self.lines.push(format!("{label}: {s}"));
    }
}

/// `Ok(v)` or `Err(ENAME)`.
pub fn show<T: Debug>(r: &io::Result<T>) -> String {
    match r {
        Ok(v) => format!("Ok({v:?})"),
        Err(e) => format!("Err({})", errname(e)),
    }
}

/// Asserts two transcripts are equal, printing both and the first difference.
pub fn assert_same_transcript(plain: &Transcript, mnt: &Transcript) {
    if plain == mnt {
        return;
    }
    let mut msg = String::from("mount behaved differently from a plain directory\n");
    let n = plain.lines.len().max(mnt.lines.len());
    for i in 0..n {
        let a = plain
            .lines
            .get(i)
            .map(String::as_str)
            .unwrap_or("<missing>");
        let b = mnt.lines.get(i).map(String::as_str).unwrap_or("<missing>");
        if a == b {
            msg += &format!("    {a}\n");
        } else {
            msg += &format!("  - plain: {a}\n  + mount: {b}\n");
        }
    }
    panic!("{msg}");
}

/// Errno of an io::Error (0 if none).
pub fn errno_of(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

/// Symbolic errno name for messages (`ENOENT` ...).
pub fn errname(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => errno_name(n),
        None => format!("{:?}:{e}", e.kind()),
    }
}

/// Symbolic name of an errno value.
pub fn errno_name(n: i32) -> String {
    let s = match n {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::ETXTBSY => "ETXTBSY",
        libc::EFBIG => "EFBIG",
        libc::ENOSPC => "ENOSPC",
        libc::ESPIPE => "ESPIPE",
        libc::EROFS => "EROFS",
        libc::EMLINK => "EMLINK",
        libc::ERANGE => "ERANGE",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOSYS => "ENOSYS",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ELOOP => "ELOOP",
        libc::ENODATA => "ENODATA",
        libc::EOVERFLOW => "EOVERFLOW",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ENOTCONN => "ENOTCONN",
        libc::ESTALE => "ESTALE",
        libc::E2BIG => "E2BIG",
        _ => return format!("errno {n}"),
    };
    s.to_string()
}

// ---------------------------------------------------------------------------
// Metadata and tree snapshots
// ---------------------------------------------------------------------------

/// The stat fields that must match between a plain dir and the mount.
#[derive(Clone, PartialEq, Eq)]
pub struct Meta {
    /// 'f' file, 'd' dir, 'l' symlink, 'p' fifo, 's' socket, 'c'/'b' device.
    pub kind: char,
    /// Permission bits including setuid/setgid/sticky (mode & 0o7777).
    pub perm: u32,
    /// Link count.
    pub nlink: u64,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes (directories excluded: their size is fs-internal).
    pub size: Option<u64>,
}

impl Debug for Meta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {:04o} nlink={} {}:{}",
            self.kind, self.perm, self.nlink, self.uid, self.gid
        )?;
        if let Some(s) = self.size {
            write!(f, " size={s}")?;
        }
        Ok(())
    }
}

/// File-type letter of a metadata record.
pub fn kind_of(ft: fs::FileType) -> char {
    if ft.is_symlink() {
        'l'
    } else if ft.is_dir() {
        'd'
    } else if ft.is_file() {
        'f'
    } else if ft.is_fifo() {
        'p'
    } else if ft.is_socket() {
        's'
    } else if ft.is_char_device() {
        'c'
    } else if ft.is_block_device() {
        'b'
    } else {
        '?'
    }
}

/// Comparable metadata from a std Metadata.
pub fn meta_of(md: &fs::Metadata) -> Meta {
    let kind = kind_of(md.file_type());
    Meta {
        kind,
        perm: md.mode() & 0o7777,
        nlink: md.nlink(),
        uid: md.uid(),
        gid: md.gid(),
        size: (kind != 'd').then_some(md.size()),
    }
}

/// lstat → Meta.
pub fn lmeta(p: &Path) -> io::Result<Meta> {
    fs::symlink_metadata(p).map(|m| meta_of(&m))
}

/// stat (follows symlinks) → Meta.
pub fn meta(p: &Path) -> io::Result<Meta> {
    fs::metadata(p).map(|m| meta_of(&m))
}

/// One entry of a tree snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// Directory with its metadata.
    Dir(Meta),
    /// Regular file with metadata and content digest.
    File(Meta, Digest),
    /// Symlink with its target.
    Symlink(Meta, OsString),
    /// Anything else.
    Other(Meta),
}

/// Content of a regular file: exact bytes when small, a hash of the data
/// extents when large.
#[derive(Clone, PartialEq, Eq)]
pub enum Digest {
    /// Exact content (files up to 64 KiB).
    Bytes(Vec<u8>),
    /// Hash of all bytes (larger files; holes hash as zeros but are skipped fast).
    Hash(u64),
    /// Could not read.
    Unreadable(String),
}

impl Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Digest::Bytes(b) if b.len() <= 64 => write!(f, "{:?}", String::from_utf8_lossy(b)),
            Digest::Bytes(b) => write!(f, "<{} bytes, hash {:016x}>", b.len(), hash_bytes(b)),
            Digest::Hash(h) => write!(f, "<hash {h:016x}>"),
            Digest::Unreadable(e) => write!(f, "<unreadable: {e}>"),
        }
    }
}

/// Simple 64-bit hash of bytes.
pub fn hash_bytes(b: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    b.hash(&mut h);
    h.finish()
}

/// Digest of a file's contents, reading only data extents (SEEK_DATA/SEEK_HOLE)
/// so multi-GiB sparse files are cheap. Holes are treated as zeros: the digest
/// is over (offset, bytes) of non-zero 64 KiB blocks.
pub fn digest_file(p: &Path) -> Digest {
    let mut f = match File::open(p) {
        Ok(f) => f,
        Err(e) => return Digest::Unreadable(errname(&e)),
    };
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    if size <= 64 * 1024 {
        let mut v = Vec::new();
        return match f.read_to_end(&mut v) {
            Ok(_) => Digest::Bytes(v),
            Err(e) => Digest::Unreadable(errname(&e)),
        };
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    size.hash(&mut h);
    let fd = f.as_raw_fd();
    let mut off: i64 = 0;
    let mut buf = vec![0u8; 64 * 1024];
    while (off as u64) < size {
        // SAFETY: lseek on an fd we own.
        let data = unsafe { libc::lseek(fd, off, libc::SEEK_DATA) };
        if data < 0 {
            break; // ENXIO: only a hole remains
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        let end = if hole < 0 { size as i64 } else { hole };
        // Align to 64 KiB so different extent layouts hash the same.
        let mut pos = data - data % buf.len() as i64;
        while pos < end {
            f.seek(SeekFrom::Start(pos as u64)).unwrap();
            let n = read_full(&mut f, &mut buf);
            if n == 0 {
                break;
            }
            if buf[..n].iter().any(|&b| b != 0) {
                pos.hash(&mut h);
                buf[..n].hash(&mut h);
            }
            pos += n as i64;
        }
        off = end.max(pos);
    }
    Digest::Hash(h.finish())
}

fn read_full(f: &mut File, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    n
}

/// Snapshot of a directory tree, keyed by path relative to `root`.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, Node> {
    let mut out = BTreeMap::new();
    walk(root, Path::new(""), &mut out);
    out
}

fn walk(root: &Path, rel: &Path, out: &mut BTreeMap<PathBuf, Node>) {
    let dir = root.join(rel);
    let mut names: Vec<OsString> = match fs::read_dir(&dir) {
        Ok(rd) => rd.map(|e| e.unwrap().file_name()).collect(),
        Err(e) => panic!("read_dir {}: {e}", dir.display()),
    };
    names.sort();
    for name in names {
        let r = rel.join(&name);
        let p = root.join(&r);
        let md = fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("lstat {}: {e}", p.display()));
        let m = meta_of(&md);
        let node = match m.kind {
            'd' => {
                walk(root, &r, out);
                Node::Dir(m)
            }
            'f' => Node::File(m, digest_file(&p)),
            'l' => Node::Symlink(m, fs::read_link(&p).unwrap().into_os_string()),
            _ => Node::Other(m),
        };
        out.insert(r, node);
    }
}

/// Asserts two snapshots are equal, listing every difference.
pub fn assert_trees_eq(
    an: &str,
    a: &BTreeMap<PathBuf, Node>,
    bn: &str,
    b: &BTreeMap<PathBuf, Node>,
) {
    if a == b {
        return;
    }
    let mut msg = format!("trees differ ({an} vs {bn}):\n");
    let keys: std::collections::BTreeSet<_> = a.keys().chain(b.keys()).collect();
    for k in keys {
        match (a.get(k), b.get(k)) {
            (Some(x), Some(y)) if x == y => {}
            (x, y) => {
                msg += &format!("  {}:\n    {an}: {x:?}\n    {bn}: {y:?}\n", k.display());
            }
        }
    }
    panic!("{msg}");
}

// ---------------------------------------------------------------------------
// libc helpers
// ---------------------------------------------------------------------------

/// Path → NUL-terminated C string.
pub fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("path without NUL")
}

/// String → C string.
pub fn cstr(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// Converts a `-1 + errno` return into io::Result.
pub fn cvt<T: PartialOrd + Default + Copy>(r: T) -> io::Result<T> {
    if r < T::default() {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// renameat2(AT_FDCWD, from, AT_FDCWD, to, flags) via syscall(2).
pub fn renameat2(from: &Path, to: &Path, flags: u32) -> io::Result<()> {
    let (a, b) = (cpath(from), cpath(to));
    // SAFETY: valid NUL-terminated paths; raw syscall with documented args.
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            flags as libc::c_uint,
        )
    };
    cvt(r).map(|_| ())
}

/// A `timespec` for utimensat: `Some((sec, nsec))`, or the special values.
#[derive(Clone, Copy, Debug)]
pub enum TimeSpec {
    /// Explicit seconds and nanoseconds.
    At(i64, i64),
    /// UTIME_NOW.
    Now,
    /// UTIME_OMIT.
    Omit,
}

impl TimeSpec {
    fn raw(self) -> libc::timespec {
        match self {
            TimeSpec::At(s, n) => libc::timespec {
                tv_sec: s,
                tv_nsec: n,
            },
            TimeSpec::Now => libc::timespec {
                tv_sec: 0,
                tv_nsec: libc::UTIME_NOW,
            },
            TimeSpec::Omit => libc::timespec {
                tv_sec: 0,
                tv_nsec: libc::UTIME_OMIT,
            },
        }
    }
}

/// utimensat(AT_FDCWD, p, [atime, mtime], flags).
pub fn utimensat(p: &Path, atime: TimeSpec, mtime: TimeSpec, flags: i32) -> io::Result<()> {
    let c = cpath(p);
    let ts = [atime.raw(), mtime.raw()];
    // SAFETY: valid path and a 2-element timespec array.
    cvt(unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), ts.as_ptr(), flags) }).map(|_| ())
}

/// futimens(fd, [atime, mtime]).
pub fn futimens(f: &File, atime: TimeSpec, mtime: TimeSpec) -> io::Result<()> {
    let ts = [atime.raw(), mtime.raw()];
    // SAFETY: valid fd and a 2-element timespec array.
    cvt(unsafe { libc::futimens(f.as_raw_fd(), ts.as_ptr()) }).map(|_| ())
}

/// (atime, mtime, ctime) as (sec, nsec) triples.
pub fn times(md: &fs::Metadata) -> [(i64, i64); 3] {
    [
        (md.atime(), md.atime_nsec()),
        (md.mtime(), md.mtime_nsec()),
        (md.ctime(), md.ctime_nsec()),
    ]
}

/// setxattr / lsetxattr.
pub fn setxattr(p: &Path, name: &str, value: &[u8], flags: i32, nofollow: bool) -> io::Result<()> {
    let (c, n) = (cpath(p), cstr(name));
    // SAFETY: valid C strings and a buffer of the given length.
    let r = unsafe {
        if nofollow {
            libc::lsetxattr(
                c.as_ptr(),
                n.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                flags,
            )
        } else {
            libc::setxattr(
                c.as_ptr(),
                n.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                flags,
            )
        }
    };
    cvt(r).map(|_| ())
}

/// getxattr with an explicit buffer size (0 = size query). Returns the
/// value (or, for a size query, a vec of that many zero bytes' length).
pub fn getxattr_sized(p: &Path, name: &str, size: usize) -> io::Result<Result<Vec<u8>, usize>> {
    let (c, n) = (cpath(p), cstr(name));
    let mut buf = vec![0u8; size];
    // SAFETY: buffer of `size` bytes (null pointer for a size query is allowed).
    let r = unsafe {
        libc::getxattr(
            c.as_ptr(),
            n.as_ptr(),
            if size == 0 {
                std::ptr::null_mut()
            } else {
                buf.as_mut_ptr().cast()
            },
            size,
        )
    };
    let r = cvt(r)? as usize;
    if size == 0 {
        Ok(Err(r))
    } else {
        buf.truncate(r);
        Ok(Ok(buf))
    }
}

/// getxattr returning the whole value.
pub fn getxattr(p: &Path, name: &str) -> io::Result<Vec<u8>> {
    match getxattr_sized(p, name, 0)? {
        Err(len) => match getxattr_sized(p, name, len.max(1))? {
            Ok(v) => Ok(v),
            Err(_) => unreachable!(),
        },
        Ok(_) => unreachable!(),
    }
}

/// listxattr (or llistxattr) → sorted names.
pub fn listxattr(p: &Path, nofollow: bool) -> io::Result<Vec<String>> {
    let c = cpath(p);
    let call = |buf: *mut libc::c_char, size: usize| unsafe {
        // SAFETY: buffer of `size` bytes or null for a size query.
        if nofollow {
            libc::llistxattr(c.as_ptr(), buf, size)
        } else {
            libc::listxattr(c.as_ptr(), buf, size)
        }
    };
    let len = cvt(call(std::ptr::null_mut(), 0))? as usize;
    let mut buf = vec![0u8; len.max(1)];
    let n = cvt(call(buf.as_mut_ptr().cast(), buf.len()))? as usize;
    let mut names: Vec<String> = buf[..n]
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    names.sort();
    Ok(names)
}

/// listxattr with an explicit buffer size (to provoke ERANGE); returns the length.
pub fn listxattr_sized(p: &Path, size: usize) -> io::Result<usize> {
    let c = cpath(p);
    let mut buf = vec![0u8; size.max(1)];
    // SAFETY: buffer of at least `size` bytes.
    cvt(unsafe {
        libc::listxattr(
            c.as_ptr(),
            if size == 0 {
                std::ptr::null_mut()
            } else {
                buf.as_mut_ptr().cast()
            },
            size,
        )
    })
    .map(|n| n as usize)
}

/// removexattr.
pub fn removexattr(p: &Path, name: &str) -> io::Result<()> {
    let (c, n) = (cpath(p), cstr(name));
    // SAFETY: valid C strings.
    cvt(unsafe { libc::removexattr(c.as_ptr(), n.as_ptr()) }).map(|_| ())
}

/// fallocate(fd, mode, off, len).
pub fn fallocate(f: &File, mode: i32, off: i64, len: i64) -> io::Result<()> {
    // SAFETY: valid fd.
    cvt(unsafe { libc::fallocate(f.as_raw_fd(), mode, off, len) }).map(|_| ())
}

/// posix_fallocate (returns the error number directly, not via errno).
pub fn posix_fallocate(f: &File, off: i64, len: i64) -> io::Result<()> {
    // SAFETY: valid fd.
    let r = unsafe { libc::posix_fallocate(f.as_raw_fd(), off, len) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(r))
    }
}

/// lseek(fd, off, whence).
pub fn lseek(f: &File, off: i64, whence: i32) -> io::Result<i64> {
    // SAFETY: valid fd.
    cvt(unsafe { libc::lseek(f.as_raw_fd(), off, whence) })
}

/// statvfs.
pub fn statvfs(p: &Path) -> io::Result<libc::statvfs> {
    let c = cpath(p);
    // SAFETY: zeroed POD struct filled by the kernel.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    cvt(unsafe { libc::statvfs(c.as_ptr(), &mut s) })?;
    Ok(s)
}

/// mkfifo.
pub fn mkfifo(p: &Path, mode: u32) -> io::Result<()> {
    let c = cpath(p);
    // SAFETY: valid path.
    cvt(unsafe { libc::mkfifo(c.as_ptr(), mode as libc::mode_t) }).map(|_| ())
}

/// mknod (for sockets/devices).
pub fn mknod(p: &Path, mode: u32, dev: u64) -> io::Result<()> {
    let c = cpath(p);
    // SAFETY: valid path.
    cvt(unsafe { libc::mknod(c.as_ptr(), mode as libc::mode_t, dev as libc::dev_t) }).map(|_| ())
}

/// open(2) with raw flags and mode; returns an owned File.
pub fn open_raw(p: &Path, flags: i32, mode: u32) -> io::Result<File> {
    use std::os::unix::io::FromRawFd;
    let c = cpath(p);
    // SAFETY: valid path; the fd returned is owned by the File.
    let fd = cvt(unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint) })?;
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// close(2) of a File, returning close's result (std ignores it).
pub fn close(f: File) -> io::Result<()> {
    use std::os::unix::io::IntoRawFd;
    let fd = f.into_raw_fd();
    // SAFETY: we own fd.
    cvt(unsafe { libc::close(fd) }).map(|_| ())
}

/// One directory entry as returned by readdir(3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// Name.
    pub name: OsString,
    /// d_ino.
    pub ino: u64,
    /// d_type.
    pub dtype: u8,
    /// telldir() after this entry was returned (position of the *next* entry).
    pub pos_after: i64,
}

/// An open directory stream (opendir/readdir/telldir/seekdir).
pub struct DirStream(*mut libc::DIR);

impl DirStream {
    /// opendir.
    pub fn open(p: &Path) -> io::Result<DirStream> {
        let c = cpath(p);
        // SAFETY: valid path.
        let d = unsafe { libc::opendir(c.as_ptr()) };
        if d.is_null() {
            Err(io::Error::last_os_error())
        } else {
            Ok(DirStream(d))
        }
    }
    /// readdir; None at end. Includes "." and "..".
    pub fn next_entry(&mut self) -> io::Result<Option<DirEntry>> {
        // SAFETY: errno reset then readdir on our stream; the returned dirent
        // is valid until the next readdir call and is copied out at once.
        unsafe {
            *libc::__errno_location() = 0;
            let e = libc::readdir(self.0);
            if e.is_null() {
                let err = *libc::__errno_location();
                return if err == 0 {
                    Ok(None)
                } else {
                    Err(io::Error::from_raw_os_error(err))
                };
            }
            let name = OsString::from_vec(CStr::from_ptr((*e).d_name.as_ptr()).to_bytes().to_vec());
            let ino = (*e).d_ino;
            let dtype = (*e).d_type;
            let pos_after = libc::telldir(self.0) as i64;
            Ok(Some(DirEntry {
                name,
                ino,
                dtype,
                pos_after,
            }))
        }
    }
    /// telldir.
    pub fn tell(&mut self) -> i64 {
        // SAFETY: valid stream.
        unsafe { libc::telldir(self.0) as i64 }
    }
    /// seekdir.
    pub fn seek(&mut self, pos: i64) {
        // SAFETY: valid stream; pos came from telldir on it.
        unsafe { libc::seekdir(self.0, pos as libc::c_long) }
    }
    /// rewinddir.
    pub fn rewind(&mut self) {
        // SAFETY: valid stream.
        unsafe { libc::rewinddir(self.0) }
    }
    /// All remaining entries except "." and "..".
    pub fn rest(&mut self) -> io::Result<Vec<DirEntry>> {
        let mut v = Vec::new();
        while let Some(e) = self.next_entry()? {
            if e.name != "." && e.name != ".." {
                v.push(e);
            }
        }
        Ok(v)
    }
}

impl Drop for DirStream {
    fn drop(&mut self) {
        // SAFETY: stream opened by opendir and not closed elsewhere.
        unsafe { libc::closedir(self.0) };
    }
}

/// Sorted names in a directory (excluding . and ..) via std.
pub fn names(p: &Path) -> io::Result<Vec<String>> {
    let mut v: Vec<String> = fs::read_dir(p)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<io::Result<_>>()?;
    v.sort();
    Ok(v)
}

/// Current errno (safe to call after fork).
pub fn last_errno() -> i32 {
    // SAFETY: reading the thread-local errno.
    unsafe { *libc::__errno_location() }
}

/// Runs `op` in a forked child whose credentials are `uid`/`gid` with no
/// supplementary groups, and returns its result: `Ok(())` if `op` returned 0,
/// otherwise `Err(errno)`.
///
/// `op` runs after fork(2) in a multi-threaded process, so it must only make
/// raw syscalls: no allocation, no locks, no std I/O. Build every CString
/// beforehand and capture it by reference.
pub fn as_user<F: FnOnce() -> i32>(uid: u32, gid: u32, op: F) -> Result<(), i32> {
    // SAFETY: the child only makes async-signal-safe raw syscalls (op must do
    // the same) and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed: {}", io::Error::last_os_error());
    if pid == 0 {
        unsafe {
            if libc::setgroups(0, std::ptr::null()) != 0 {
                libc::_exit(250);
            }
            if libc::setresgid(gid, gid, gid) != 0 {
                libc::_exit(251);
            }
            if libc::setresuid(uid, uid, uid) != 0 {
                libc::_exit(252);
            }
            let r = op();
            libc::_exit(r.clamp(0, 249));
        }
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    let w = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(w, pid, "waitpid: {}", io::Error::last_os_error());
    assert!(libc::WIFEXITED(status), "child died: status {status:#x}");
    match libc::WEXITSTATUS(status) {
        0 => Ok(()),
        c @ 250..=252 => panic!("as_user: dropping privileges failed (code {c})"),
        e => Err(e),
    }
}

/// For `as_user` closures: 0 if `r >= 0`, else errno.
pub fn ok_or_errno(r: libc::c_int) -> i32 {
    if r >= 0 { 0 } else { last_errno() }
}

/// Writes a file with `data` via std (create/truncate).
pub fn write_file(p: &Path, data: &[u8]) {
    fs::write(p, data).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
}

/// Runs a command and returns (status, stdout, stderr) as strings.
pub fn run_cmd(cmd: &mut Command) -> (ExitStatus, String, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `OsStr` helper.
pub fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// Drops the kernel's dentry and inode caches (root only) so the next lookup
/// through FUSE is answered by the daemon again (after FORGET).
pub fn drop_kernel_caches() {
    let _ = fs::write("/proc/sys/vm/drop_caches", "2");
}

/// uid and gid of the unprivileged system account `user`, creating it
/// (`useradd --system`) if needed. Parallel tests may race to create it;
/// either way it exists afterwards.
pub fn system_user(user: &str) -> (u32, u32) {
    let id = |flag: &str| {
        let out = Command::new("id").args([flag, user]).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<u32>()
            .ok()
    };
    if let (Some(u), Some(g)) = (id("-u"), id("-g")) {
        return (u, g);
    }
    let _ = Command::new("useradd")
        .args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            user,
        ])
        .status();
    match (id("-u"), id("-g")) {
        (Some(u), Some(g)) => (u, g),
        _ => panic!("cannot create the test user {user} (useradd)"),
    }
}
