//! The control socket admits root only, or also the members of a configured
//! `control_group`: checked with the real `tierctl` binary run as a non-root
//! user (uid 65534) with and without that group.

use crate::common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};

use common::{MountOptions, TIERCTL, TestMount};

const NOBODY: u32 = 65534;
const ADMIN_GID: u32 = 4242;

/// Runs `tierctl -c CONFIG status` as `uid`/`gid` with exactly `groups`.
fn status_as(m: &TestMount, uid: u32, gid: u32, groups: &[u32]) -> String {
    let groups: Vec<libc::gid_t> = groups.to_vec();
    // The build's tierctl may sit under a directory only root can enter
    // (/root): run a copy from the test's own world-readable root.
    let exe = m.root().join("tierctl");
    if !exe.exists() {
        fs::copy(TIERCTL, &exe).unwrap();
        fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut cmd = Command::new(&exe);
    cmd.arg("-c")
        .arg(m.config())
        .arg("status")
        .stdin(Stdio::null());
    // SAFETY: only async-signal-safe calls (setgroups, setgid, setuid)
    // between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                || libc::setgid(gid) != 0
                || libc::setuid(uid) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // A test forking at the moment the copy was written holds its write
    // descriptor until it execs: ETXTBSY for a moment. Retry briefly.
    let mut tries = 0;
    let out: Output = loop {
        match cmd.output() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 100 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => break other.expect("run tierctl"),
        }
    };
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn daemon_line(text: &str) -> String {
    text.lines()
        .find(|l| l.trim_start().starts_with("daemon"))
        .unwrap_or_else(|| panic!("no daemon line in:\n{text}"))
        .to_string()
}

fn mount(extra_top: &str) -> TestMount {
    let m = TestMount::with_options(MountOptions {
        extra_top: extra_top.into(),
        ..Default::default()
    });
    // No secrets in it: let the unprivileged tierctl read the config.
    fs::set_permissions(m.config(), fs::Permissions::from_mode(0o644)).unwrap();
    m
}

#[test]
fn members_of_the_control_group_may_use_tierctl() {
    let m = mount(&format!("control_group = \"{ADMIN_GID}\"\n"));
    let sock = m.catalog().with_extension("sock");
    let md = fs::metadata(&sock).unwrap();
    assert_eq!(md.mode() & 0o777, 0o660);
    assert_eq!(md.gid(), ADMIN_GID);

    let member = status_as(&m, NOBODY, NOBODY, &[ADMIN_GID]);
    assert!(
        daemon_line(&member).contains("running (pid"),
        "{member}\n{}",
        m.log_banner()
    );
    let primary = status_as(&m, NOBODY, ADMIN_GID, &[]);
    assert!(daemon_line(&primary).contains("running (pid"), "{primary}");

    // Not a member: the socket's mode keeps it out (or the daemon refuses it).
    let outsider = status_as(&m, NOBODY, NOBODY, &[]);
    let line = daemon_line(&outsider);
    assert!(!line.contains("running (pid"), "{outsider}");
    assert!(
        line.to_lowercase().contains("permission denied"),
        "{outsider}"
    );

    // Root still may.
    let out = m.tierctl(&["status"]);
    assert!(
        daemon_line(&String::from_utf8_lossy(&out.stdout)).contains("running (pid"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn without_a_control_group_only_root_may_use_tierctl() {
    let m = mount("");
    let sock = m.catalog().with_extension("sock");
    assert_eq!(fs::metadata(&sock).unwrap().mode() & 0o777, 0o600);
    let text = status_as(&m, NOBODY, NOBODY, &[ADMIN_GID]);
    let line = daemon_line(&text);
    assert!(!line.contains("running (pid"), "{text}");
    assert!(line.to_lowercase().contains("permission denied"), "{text}");
}

#[test]
fn an_unknown_control_group_is_a_config_error_naming_the_key() {
    let m = TestMount::unmounted(MountOptions {
        extra_top: "control_group = \"no-such-group-tierfs\"\n".into(),
        ..Default::default()
    });
    let out = m.tierctl(&["status"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("control_group") && err.contains("no-such-group-tierfs"),
        "{err}"
    );
}
