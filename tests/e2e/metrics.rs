//! The optional Prometheus endpoint, scraped over HTTP from a real mount:
//! off by default; when configured, the per-state gauges and the migration
//! and recall counters move as files migrate and are read back.

use crate::common;

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use common::tiering::{content, write_old};
use common::{MountOptions, TestMount, wait_until};

/// A free loopback port (bound and released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` over HTTP/1.1; returns (status line, body).
fn get(port: u16, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_string(), body.to_string())
}

/// The value of the sample line that starts with `name` + space.
fn sample(body: &str, name: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} not in:\n{body}"))
        .parse()
        .unwrap()
}

fn mount_with_metrics(port: u16) -> (TestMount, PathBuf) {
    let mut m = TestMount::unmounted(MountOptions::default());
    let cloud = m.root().join("cloud");
    fs::create_dir(&cloud).unwrap();
    m.set_options(MountOptions {
        extra_top: "migrate_interval = \"off\"\n".into(),
        extra_sections: format!(
            "[remote.cloud]\nurl = \"file://{}\"\n\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n",
            cloud.display()
        ),
        ..Default::default()
    });
    m.mount();
    (m, cloud)
}

#[test]
fn metrics_move_with_migrations_and_recalls() {
    let port = free_port();
    let (m, _cloud) = mount_with_metrics(port);
    let data = content(9, (1 << 20) + 5);
    write_old(&m.m("old/a.bin"), &data, 400);
    // Let the release of the write reach the catalog.
    let out = m.tierctl(&["status", "--json"]);
    assert!(out.status.success());

    let (status, body) = get(port, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(body.ends_with("# EOF\n"), "{body}");
    assert_eq!(sample(&body, "tierfs_files{state=\"hot\"}"), 1.0);
    assert_eq!(sample(&body, "tierfs_files{state=\"cold\"}"), 0.0);
    let migrated_before = sample(&body, "tierfs_migrated_files_total");
    let recalls_before = sample(&body, "tierfs_recalls_total");

    let out = m.tierctl(&["rule", "add", "* older 30d -> cloud"]);
    assert!(out.status.success(), "{out:?}");
    let out = m.tierctl(&["migrate"]);
    assert!(out.status.success(), "{out:?}\n{}", m.log_banner());
    let (_, body) = get(port, "/metrics");
    assert_eq!(sample(&body, "tierfs_files{state=\"cold\"}"), 1.0);
    assert_eq!(sample(&body, "tierfs_files{state=\"hot\"}"), 0.0);
    assert_eq!(
        sample(&body, "tierfs_bytes{state=\"cold\"}"),
        data.len() as f64
    );
    assert_eq!(
        sample(&body, "tierfs_migrated_files_total"),
        migrated_before + 1.0
    );
    assert_eq!(sample(&body, "tierfs_remote_up{remote=\"cloud\"}"), 1.0);

    // Reading the cold file back recalls it (in the background for readers).
    assert!(fs::read(m.m("old/a.bin")).unwrap() == data);
    let recalled = common::wait_until(std::time::Duration::from_secs(30), || {
        let (_, body) = get(port, "/metrics");
        sample(&body, "tierfs_recalls_total") == recalls_before + 1.0
    });
    assert!(recalled.is_some(), "recall not counted\n{}", m.log_banner());
    let (_, body) = get(port, "/metrics");
    assert!(
        sample(&body, "tierfs_recall_duration_seconds_count") >= 1.0,
        "{body}"
    );

    let (status, _) = get(port, "/other");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
}

#[test]
fn metrics_are_off_by_default() {
    let m = TestMount::new();
    // The daemon logs "mounted" just after the kernel shows the mount.
    let logged = wait_until(Duration::from_secs(10), || {
        m.daemon_log().contains("mounted")
    });
    let log = m.daemon_log();
    assert!(logged.is_some(), "{log}");
    assert!(!log.contains("serving Prometheus metrics"), "{log}");
}
