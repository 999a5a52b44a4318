//! A hostile local user against a live `allow_other` mount (issue 15, local
//! side). Each test runs what an unprivileged account (created by the test if
//! missing) can do, and checks what an admin would: modes of the daemon's
//! state, files outside the hot dir unchanged, exit codes and messages.
//!
//! Findings covered: private state (1), the symlink race during a migration
//! (2, driven by the `opening` pause point), a FIFO swapped in for a queued
//! file (4), descriptor exhaustion by one user (5), config and error text
//! (8), `tierctl status` on a read-only catalog (8).

use crate::common;

use std::ffi::CString;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use common::tiering::{Pause, add_rule, content, migrate, remount_with_env, write_old};
use common::{MountOptions, TIERCTL, TIERFS, TestMount, as_user, ok_or_errno};
use tierfs::control::{Reply, Request};

/// The unprivileged account the tests act as.
const USER: &str = "tierfs-hostile";

/// uid and gid of [`USER`], creating the account if needed.
fn hostile() -> (u32, u32) {
    common::system_user(USER)
}

/// A mount with `allow_other`, a `file://` remote `cloud`, no schedule,
/// extra `[mount]` lines and daemon environment `env`.
fn hostile_mount(extra_mount: &str, env: Vec<(String, String)>) -> (TestMount, PathBuf) {
    let mut m = TestMount::unmounted(MountOptions::default());
    let cloud = m.root().join("cloud");
    fs::create_dir(&cloud).unwrap();
    m.set_options(MountOptions {
        allow_other: true,
        extra_top: "migrate_interval = \"off\"\n".into(),
        extra_mount: extra_mount.into(),
        extra_sections: format!("[remote.cloud]\nurl = \"file://{}\"\n", cloud.display()),
        env,
        ..Default::default()
    });
    m.mount();
    (m, cloud)
}

/// A directory `name` in the mount owned by the hostile user (mode 0755).
fn user_dir(m: &TestMount, name: &str, uid: u32, gid: u32) -> PathBuf {
    let d = m.mnt().join(name);
    fs::create_dir(&d).unwrap();
    std::os::unix::fs::chown(&d, Some(uid), Some(gid)).unwrap();
    d
}

fn c(p: &Path) -> CString {
    CString::new(p.as_os_str().as_encoded_bytes()).unwrap()
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

/// Every file and directory below `dir` with its mode.
fn tree_modes(dir: &Path) -> Vec<(PathBuf, bool, u32)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let md = fs::symlink_metadata(&p).unwrap();
            out.push((p.clone(), md.is_dir(), md.mode() & 0o7777));
            if md.is_dir() {
                todo.push(p);
            }
        }
    }
    out
}

/// Runs `args` as the hostile user (no supplementary groups).
fn run_as(uid: u32, gid: u32, program: &str, args: &[&str]) -> std::process::Output {
    Command::new("setpriv")
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .arg("--clear-groups")
        .arg(program)
        .args(args)
        .env_remove("TIERFS_CONFIG")
        .output()
        .unwrap()
}

fn text(out: &std::process::Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The daemon's state is private: catalog, its -wal/-shm, control socket,
/// objects and directories of a `file://` remote. The user cannot read or
/// change the catalog, and a daemon refuses to start on a catalog or hot dir
/// other users could have written. Nodes created through the mount still get
/// exactly the mode the caller asked for.
#[test]
fn state_files_are_private_and_the_catalog_cannot_be_tampered_with() {
    let (uid, gid) = hostile();
    let (mut m, cloud) = hostile_mount("", vec![]);
    let dir = user_dir(&m, "u", uid, gid);
    write_old(&m.mnt().join("data/report.bin"), &content(1, 300_000), 10);
    add_rule(&m, "data/ -> cloud");
    assert_eq!(migrate(&m).released, 1, "{}", m.log_banner());

    let catalog = m.catalog();
    assert_eq!(mode(&catalog), 0o600, "catalog");
    for side in ["-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{side}", catalog.display()));
        if p.exists() {
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
    }
    assert_eq!(
        mode(&catalog.with_extension("sock")),
        0o600,
        "control socket"
    );
    let stored = tree_modes(&cloud);
    assert!(stored.iter().any(|(_, d, _)| !d), "no object stored");
    for (p, is_dir, mode) in &stored {
        let want = if *is_dir { 0o700 } else { 0o600 };
        assert_eq!(*mode, want, "{} on the file:// remote", p.display());
    }

    // The user can neither read nor write the catalog.
    let cat = c(&catalog);
    for flags in [libc::O_RDONLY, libc::O_RDWR] {
        let r = as_user(uid, gid, || {
            ok_or_errno(unsafe { libc::open(cat.as_ptr(), flags) })
        });
        assert_eq!(r, Err(libc::EACCES), "open catalog with flags {flags}");
    }
    // tierctl run by the user with their own config naming root's catalog
    // learns nothing about the files.
    let own = m.root().join("user.toml");
    fs::write(
        &own,
        format!(
            "hot_dir = \"{}\"\ncatalog = \"{}\"\n",
            m.hot().display(),
            catalog.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&own, fs::Permissions::from_mode(0o644)).unwrap();
    let out = run_as(
        uid,
        gid,
        TIERCTL,
        &["-c", own.to_str().unwrap(), "status", "--json"],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("report.bin"),
        "{}",
        text(&out)
    );

    // Exact modes through the mount: the daemon's private umask does not
    // leak into nodes users create (the kernel already applied theirs).
    let f = c(&dir.join("shared.txt"));
    let d = c(&dir.join("shared-dir"));
    let r = as_user(uid, gid, || unsafe {
        libc::umask(0);
        let fd = libc::open(f.as_ptr(), libc::O_CREAT | libc::O_WRONLY, 0o664);
        if fd < 0 {
            return ok_or_errno(fd);
        }
        libc::close(fd);
        ok_or_errno(libc::mkdir(d.as_ptr(), 0o775))
    });
    assert_eq!(r, Ok(()));
    assert_eq!(mode(&m.hot().join("u/shared.txt")), 0o664);
    assert_eq!(mode(&m.hot().join("u/shared-dir")), 0o775);

    // A catalog others could have written, or a hot dir others can write:
    // the daemon refuses to start and says which path and how to fix it.
    m.unmount();
    fs::set_permissions(&catalog, fs::Permissions::from_mode(0o666)).unwrap();
    let refused = start_fails(&m);
    assert!(
        refused.contains(&catalog.display().to_string()) && refused.contains("chmod"),
        "{refused}"
    );
    fs::set_permissions(&catalog, fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(m.hot(), fs::Permissions::from_mode(0o777)).unwrap();
    let refused = start_fails(&m);
    assert!(
        refused.contains(&m.hot().display().to_string()) && refused.contains("chmod go-w"),
        "{refused}"
    );
    fs::set_permissions(m.hot(), fs::Permissions::from_mode(0o755)).unwrap();
    m.mount();
}

/// Runs `tierfs mount -f` on `m`'s config, expecting it to refuse; returns
/// its stderr.
fn start_fails(m: &TestMount) -> String {
    let out = Command::new(TIERFS)
        .args(["mount", "-f"])
        .arg(m.config())
        .arg(m.mnt())
        .output()
        .unwrap();
    assert!(!out.status.success(), "daemon started: {}", text(&out));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A migration paused between its plan and its first open; the user swaps a
/// directory for a symlink to a root-only directory outside the hot dir with
/// a file of the same name. Nothing outside the hot dir is read, uploaded,
/// released or marked, and fsck does not repair through the link.
#[test]
fn symlink_swapped_in_during_migration_reaches_nothing_outside() {
    let (uid, gid) = hostile();
    let pause = Pause::at("opening");
    let resume = std::env::temp_dir().join(format!("tierfs-resume-sym-{}", std::process::id()));
    let _ = fs::remove_file(&resume);
    let (mut m, cloud) = hostile_mount("", vec![]);
    let outside = m.root().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::set_permissions(&outside, fs::Permissions::from_mode(0o700)).unwrap();
    let secret = content(7, 200_000);
    write_old(&outside.join("f"), &secret, 30);
    fs::set_permissions(outside.join("f"), fs::Permissions::from_mode(0o600)).unwrap();
    let before = fs::metadata(outside.join("f")).unwrap();

    let udir = user_dir(&m, "u", uid, gid);
    let mine = content(8, 150_000);
    write_old(&udir.join("d/f"), &mine, 30);
    std::os::unix::fs::chown(udir.join("d"), Some(uid), Some(gid)).unwrap();
    std::os::unix::fs::chown(udir.join("d/f"), Some(uid), Some(gid)).unwrap();
    add_rule(&m, "u/ -> cloud");
    let mut env = pause.env();
    env.push((
        "TIERFS_TEST_RESUME_FILE".into(),
        resume.display().to_string(),
    ));
    remount_with_env(&mut m, env);

    let (tx, rx) = mpsc::channel();
    let sock = common::tiering::socket(&m);
    std::thread::spawn(move || {
        let r = tierfs::control::request(
            &sock,
            &Request::Migrate(Default::default()),
            Duration::from_secs(120),
        );
        let _ = tx.send(r);
    });
    pause.wait(&m);
    // The user, through the mount: d moves away, d becomes a symlink.
    let (d, moved, target) = (c(&udir.join("d")), c(&udir.join("d.old")), c(&outside));
    let r = as_user(uid, gid, || unsafe {
        if libc::rename(d.as_ptr(), moved.as_ptr()) != 0 {
            return ok_or_errno(-1);
        }
        ok_or_errno(libc::symlink(target.as_ptr(), d.as_ptr()))
    });
    assert_eq!(r, Ok(()));
    fs::write(&resume, "opening").unwrap();
    let summary = match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(Ok(resp)) => match resp.into_result() {
            Ok(Reply::Migrate(s)) => s,
            other => panic!("unexpected reply {other:?}"),
        },
        other => panic!("migration did not answer: {other:?}\n{}", m.log_banner()),
    };
    assert_eq!(summary.released, 0, "{summary:?}\n{}", m.log_banner());

    let after = fs::metadata(outside.join("f")).unwrap();
    assert_eq!(
        fs::read(outside.join("f")).unwrap(),
        secret,
        "outside file changed"
    );
    assert_eq!(
        after.blocks(),
        before.blocks(),
        "outside file's blocks freed"
    );
    assert_eq!(after.mode(), before.mode());
    assert!(
        xattr_names(&outside.join("f")).is_empty(),
        "outside file got a stub marker"
    );
    for (p, is_dir, _) in tree_modes(&cloud) {
        if !is_dir {
            let stored = fs::read(&p).unwrap();
            assert!(
                !stored.windows(64).any(|w| w == &secret[..64]),
                "the outside file's bytes reached the remote: {}",
                p.display()
            );
        }
    }

    // fsck --repair neither follows nor "repairs" through the link.
    let out = m.tierctl(&["fsck", "--repair"]);
    assert_eq!(
        fs::read(outside.join("f")).unwrap(),
        secret,
        "{}",
        text(&out)
    );
    assert!(xattr_names(&outside.join("f")).is_empty());
    let _ = fs::remove_file(&resume);
}

fn xattr_names(p: &Path) -> Vec<u8> {
    let cp = c(p);
    let mut buf = vec![0u8; 4096];
    // SAFETY: buffer and path valid for the call.
    let n = unsafe { libc::llistxattr(cp.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    buf.truncate(n.max(0) as usize);
    buf
}

/// A FIFO put in place of a file the migration has planned: the migration
/// returns promptly, skipping it, and the next one does too.
#[test]
fn fifo_in_place_of_a_queued_file_does_not_hang_migration() {
    let (uid, gid) = hostile();
    let pause = Pause::at("opening");
    let resume = std::env::temp_dir().join(format!("tierfs-resume-fifo-{}", std::process::id()));
    let _ = fs::remove_file(&resume);
    let (mut m, _cloud) = hostile_mount("", vec![]);
    let udir = user_dir(&m, "u", uid, gid);
    write_old(&udir.join("q.bin"), &content(9, 100_000), 30);
    std::os::unix::fs::chown(udir.join("q.bin"), Some(uid), Some(gid)).unwrap();
    add_rule(&m, "u/ -> cloud");
    let mut env = pause.env();
    env.push((
        "TIERFS_TEST_RESUME_FILE".into(),
        resume.display().to_string(),
    ));
    remount_with_env(&mut m, env);

    let migrate_in_thread = |m: &TestMount| {
        let (tx, rx) = mpsc::channel();
        let sock = common::tiering::socket(m);
        std::thread::spawn(move || {
            let r = tierfs::control::request(
                &sock,
                &Request::Migrate(Default::default()),
                Duration::from_secs(300),
            );
            let _ = tx.send(r);
        });
        rx
    };
    let rx = migrate_in_thread(&m);
    pause.wait(&m);
    // The user swaps the file for a FIFO through the mount (in the hot dir,
    // where the engine looks, so the catalog's plan still names it).
    let (q, tmp) = (c(&udir.join("q.bin")), c(&udir.join("fifo.tmp")));
    let r = as_user(uid, gid, || unsafe {
        if libc::mkfifo(tmp.as_ptr(), 0o644) != 0 {
            return ok_or_errno(-1);
        }
        ok_or_errno(libc::rename(tmp.as_ptr(), q.as_ptr()))
    });
    assert_eq!(r, Ok(()));
    fs::write(&resume, "opening").unwrap();
    let first = migrate_summary(&m, &rx);
    assert_eq!(first.released, 0, "{first:?}");
    assert!(
        first.failures.is_empty(),
        "the FIFO was an error, not a skip: {first:?}"
    );
    assert_eq!(first.skipped, 1, "{first:?}");
    // The next run does not hang on it either.
    let second = migrate_summary(&m, &migrate_in_thread(&m));
    assert_eq!(second.released, 0, "{second:?}");
    let _ = fs::remove_file(&resume);
}

/// The summary a migration started in a thread sends within 30 s.
fn migrate_summary(
    m: &TestMount,
    rx: &mpsc::Receiver<Result<tierfs::control::Response, tierfs::control::ControlError>>,
) -> tierfs::tier::MigrateSummary {
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(Ok(resp)) => match resp.into_result() {
            Ok(Reply::Migrate(s)) => s,
            other => panic!("unexpected reply {other:?}"),
        },
        other => panic!(
            "migration did not answer within 30 s: {other:?}\n{}",
            m.log_banner()
        ),
    }
}

/// One user opening a file over and over through the mount gets `EMFILE` at
/// `mount.max_open_per_user` while holding them all; root's `ls`, root's
/// opens, another user's opens and `tierctl status` keep working.
#[test]
fn one_user_holding_many_descriptors_leaves_others_working() {
    const CAP: usize = 64;
    let (uid, gid) = hostile();
    let (m, _cloud) = hostile_mount(&format!("max_open_per_user = {CAP}\n"), vec![]);
    let udir = user_dir(&m, "u", uid, gid);
    fs::write(udir.join("f"), b"x").unwrap();
    fs::set_permissions(udir.join("f"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(m.mnt().join("root-file"), b"root").unwrap();
    fs::set_permissions(m.mnt().join("root-file"), fs::Permissions::from_mode(0o644)).unwrap();

    // The child (the user) opens until refused, reports how many it got and
    // the errno, then holds them until we close `hold`.
    let path = c(&udir.join("f"));
    let created = c(&udir.join("created-at-cap"));
    let mut report = [0 as libc::c_int; 2];
    let mut hold = [0 as libc::c_int; 2];
    // SAFETY: pipes into local arrays.
    unsafe {
        assert_eq!(libc::pipe(report.as_mut_ptr()), 0);
        assert_eq!(libc::pipe(hold.as_mut_ptr()), 0);
    }
    // SAFETY: the child makes raw syscalls only and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        unsafe {
            libc::close(report[0]);
            libc::close(hold[1]);
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setresgid(gid, gid, gid) != 0
                || libc::setresuid(uid, uid, uid) != 0
            {
                libc::_exit(3);
            }
            let mut opened: libc::c_int = 0;
            let mut err: libc::c_int = 0;
            for _ in 0..(CAP * 4) {
                if libc::open(path.as_ptr(), libc::O_RDONLY) < 0 {
                    err = *libc::__errno_location();
                    break;
                }
                opened += 1;
            }
            // Creating a file at the cap fails before the file exists.
            let fd = libc::open(created.as_ptr(), libc::O_CREAT | libc::O_WRONLY, 0o644);
            let create_err = if fd < 0 { *libc::__errno_location() } else { 0 };
            let msg = [opened, err, create_err];
            libc::write(report[1], msg.as_ptr().cast(), std::mem::size_of_val(&msg));
            let mut b = 0u8;
            libc::read(hold[0], (&mut b as *mut u8).cast(), 1);
            libc::_exit(0);
        }
    }
    let mut msg = [0 as libc::c_int; 3];
    // SAFETY: reading into a local array from our pipe.
    unsafe {
        libc::close(report[1]);
        libc::close(hold[0]);
        let n = libc::read(
            report[0],
            msg.as_mut_ptr().cast(),
            std::mem::size_of_val(&msg),
        );
        assert_eq!(
            n as usize,
            std::mem::size_of_val(&msg),
            "child reported nothing"
        );
    }
    let [opened, err, create_err] = msg;

    // While the user holds them: everyone else still works.
    let ls = Command::new("ls").arg("-la").arg(m.mnt()).output().unwrap();
    let root_read = fs::read(m.mnt().join("root-file"));
    let rf = c(&m.mnt().join("root-file"));
    let other_user = as_user(65534, 65534, || unsafe {
        let fd = libc::open(rf.as_ptr(), libc::O_RDONLY);
        if fd >= 0 {
            libc::close(fd);
        }
        ok_or_errno(fd)
    });
    let status = m.tierctl(&["status"]);
    // SAFETY: closing our end of the pipe releases the child.
    unsafe {
        libc::close(hold[1]);
        libc::close(report[0]);
        let mut st = 0;
        libc::waitpid(pid, &mut st, 0);
    }

    assert_eq!(
        (opened as usize, err),
        (CAP, libc::EMFILE),
        "the user's opens were not capped at {CAP} with EMFILE"
    );
    assert_eq!(create_err, libc::EMFILE, "create at the cap");
    assert!(
        !udir.join("created-at-cap").exists(),
        "create at the cap left a file"
    );
    assert!(ls.status.success(), "root's ls failed: {}", text(&ls));
    assert_eq!(root_read.unwrap(), b"root");
    assert_eq!(other_user, Ok(()), "another user could not open a file");
    assert!(status.status.success(), "tierctl status: {}", text(&status));
    // Once the user's descriptors are closed, they may open again.
    let r = as_user(uid, gid, || unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_RDONLY);
        if fd >= 0 {
            libc::close(fd);
        }
        ok_or_errno(fd)
    });
    assert_eq!(r, Ok(()));
}

/// A config with a huge line is refused quoting only a short excerpt, and
/// an unreadable config says "Permission denied" once, not twice.
#[test]
fn config_errors_are_short_and_do_not_repeat_their_cause() {
    let (uid, gid) = hostile();
    let dir = tempfile::Builder::new()
        .prefix("tierfs-hostile-cfg-")
        .tempdir()
        .unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::create_dir(dir.path().join("hot")).unwrap();
    let big = dir.path().join("big.toml");
    let junk = "A".repeat(5 << 20);
    fs::write(
        &big,
        format!(
            "hot_dir = \"{}\"\nlog_level = {junk}\n",
            dir.path().join("hot").display()
        ),
    )
    .unwrap();
    fs::set_permissions(&big, fs::Permissions::from_mode(0o600)).unwrap();
    for program in [TIERCTL, TIERFS] {
        let out = if program == TIERCTL {
            Command::new(program)
                .arg("-c")
                .arg(&big)
                .arg("status")
                .output()
                .unwrap()
        } else {
            Command::new(program)
                .args(["mount", "-f"])
                .arg(&big)
                .arg(dir.path())
                .output()
                .unwrap()
        };
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.len() < 1000 && err.contains("line 2"),
            "{program}: {} bytes of error: {}",
            err.len(),
            &err[..err.len().min(600)]
        );
    }

    // Root's private config, read by the user.
    let private = dir.path().join("private.toml");
    fs::write(&private, "hot_dir = \"/nonexistent\"\n").unwrap();
    fs::set_permissions(&private, fs::Permissions::from_mode(0o600)).unwrap();
    let out = run_as(
        uid,
        gid,
        TIERCTL,
        &["-c", private.to_str().unwrap(), "status"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.matches("Permission denied").count(), 1, "{err}");
}

/// `tierctl status` reads a catalog on a read-only file system (no -shm
/// can be created there).
#[test]
fn status_reads_a_catalog_on_a_read_only_file_system() {
    let (mut m, _cloud) = hostile_mount("", vec![]);
    for i in 0..5 {
        fs::write(m.mnt().join(format!("f{i}")), content(i, 1000)).unwrap();
    }
    // Unmounting flushes every change to the catalog and removes -wal/-shm.
    m.unmount();

    // The catalog's directory, bind-mounted read-only.
    let ro = m.root().join("ro");
    fs::create_dir(&ro).unwrap();
    let bind = |args: &[&str]| {
        let out = Command::new("mount").args(args).output().unwrap();
        assert!(out.status.success(), "mount {args:?}: {}", text(&out));
    };
    let src = m.root().to_str().unwrap().to_string();
    bind(&["--bind", &src, ro.to_str().unwrap()]);
    bind(&["-o", "remount,ro,bind", ro.to_str().unwrap()]);
    let cfg = m.root().join("ro.toml");
    fs::write(
        &cfg,
        format!(
            "hot_dir = \"{}\"\ncatalog = \"{}\"\n",
            m.hot().display(),
            ro.join("hot.tierfs.db").display()
        ),
    )
    .unwrap();
    let out = Command::new(TIERCTL)
        .arg("-c")
        .arg(&cfg)
        .args(["status", "--json"])
        .output()
        .unwrap();
    let _ = Command::new("umount").arg(&ro).status();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\"files\""),
        "{}",
        text(&out)
    );
    m.mount();
}

/// A backgrounded daemon's `log_file` is private whatever the umask it was
/// started with, and an existing log left readable by an older version is
/// narrowed.
#[test]
fn the_log_file_is_private() {
    let mut m = TestMount::unmounted(MountOptions::default());
    let log = m.root().join("tierfs.log");
    fs::write(&log, b"old lines\n").unwrap();
    fs::set_permissions(&log, fs::Permissions::from_mode(0o644)).unwrap();
    let mut opts = m.options().clone();
    opts.extra_top = format!("log_file = \"{}\"\n", log.display());
    m.set_options(opts);
    let out = Command::new("sh")
        .arg("-c")
        .arg(r#"umask 000; exec "$0" mount "$1" "$2""#)
        .arg(TIERFS)
        .arg(m.config())
        .arg(m.mnt())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    fs::write(m.mnt().join("f"), b"x").unwrap();
    let log_mode = fs::metadata(&log).map(|md| md.mode() & 0o7777);
    let status = m.tierctl(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let daemon = v["daemon"]["pid"].as_i64().expect("daemon.pid") as i32;
    let _ = Command::new("umount").arg(m.mnt()).status();
    // SAFETY: signal 0 only checks for existence.
    let gone = common::wait_until(Duration::from_secs(20), || unsafe {
        libc::kill(daemon, 0) != 0
    });
    m.forget_daemon();
    assert!(
        gone.is_some(),
        "background daemon still running after umount"
    );
    assert_eq!(log_mode.unwrap(), 0o600, "log_file mode");
}

/// A daemon that has run out of descriptors (here: root, who is not capped,
/// held every one it may have, the daemon unable to raise its limit of 256)
/// still answers `tierctl status` from the control server's reserve.
#[test]
fn the_control_socket_answers_when_the_daemon_is_out_of_descriptors() {
    let mut m = TestMount::unmounted(MountOptions::default());
    fs::write(m.hot().join("f"), b"x").unwrap();
    let log = fs::File::create(m.root().join("lowfd.log")).unwrap();
    let mut child = Command::new("prlimit")
        .args([
            "--nofile=256:256",
            "--",
            "setpriv",
            "--bounding-set=-sys_resource",
            "--",
        ])
        .arg(TIERFS)
        .args(["mount", "-f"])
        .arg(m.config())
        .arg(m.mnt())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let mounted = common::wait_until(Duration::from_secs(10), || common::is_mountpoint(m.mnt()));
    let log_path = m.root().join("lowfd.log");
    let daemon_log = || fs::read_to_string(&log_path).unwrap_or_default();
    assert!(mounted.is_some(), "no mount: {}", daemon_log());

    // This process may hold more than the daemon.
    let lim = libc::rlimit {
        rlim_cur: 4096,
        rlim_max: 4096,
    };
    // SAFETY: setrlimit with a local struct.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    let mut held = Vec::new();
    let mut refused = None;
    for _ in 0..1000 {
        match fs::File::open(m.mnt().join("f")) {
            Ok(f) => held.push(f),
            Err(e) => {
                refused = e.raw_os_error();
                break;
            }
        }
    }
    let status = m.tierctl(&["status"]);
    drop(held);
    let _ = Command::new("umount").arg(m.mnt()).status();
    let exited = common::wait_until(Duration::from_secs(20), || {
        child.try_wait().ok().flatten().is_some()
    });
    if exited.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    m.forget_daemon();
    assert_eq!(
        refused,
        Some(libc::EMFILE),
        "the daemon never ran out: {}",
        daemon_log()
    );
    assert!(
        status.status.success(),
        "tierctl status with the daemon out of descriptors: {}\n{}",
        text(&status),
        daemon_log()
    );
}
