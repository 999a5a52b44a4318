//! Graceful shutdown while a transfer runs: SIGTERM (what `systemctl stop`
//! sends after unmounting, and what an admin sends) in the middle of a large
//! upload stops it cleanly: the upload is abandoned and the file set back to
//! hot before the daemon unmounts and exits 0; the file is intact, no staging
//! file is left in the bucket, and after the next start the migration
//! completes and the bytes read back identical.

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::tiering::{add_rule, ask, content, migrate, migrate_in_background, write_old};
use common::{MountOptions, TestMount, wait_until};
use tierfs::control::{Reply, Request};

fn tiering_mount() -> (TestMount, PathBuf) {
    let mut m = TestMount::unmounted(MountOptions::default());
    let cloud = m.root().join("cloud");
    fs::create_dir(&cloud).unwrap();
    m.set_options(MountOptions {
        extra_top: "migrate_interval = \"off\"\n".into(),
        extra_sections: format!("[remote.cloud]\nurl = \"file://{}\"\n", cloud.display()),
        ..Default::default()
    });
    m.mount();
    (m, cloud)
}

/// Every file below `dir`, relative.
fn files_below(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

fn state_of(m: &TestMount, rel: &str) -> String {
    let conn = rusqlite::Connection::open_with_flags(
        m.catalog(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    conn.query_row(
        "SELECT state FROM files WHERE CAST(path AS TEXT) = ?1",
        [rel],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn sigterm_mid_upload_stops_cleanly_and_the_next_start_completes_it() {
    let (mut m, cloud) = tiering_mount();
    let data = content(42, 256 << 20);
    write_old(&m.m("big.bin"), &data, 400);
    add_rule(&m, "* older 30d -> cloud");

    let job = migrate_in_background(&m);
    // Wait until the upload is under way (bytes sent, not all of them).
    let mut seen = (0, 0);
    let under_way = wait_until(Duration::from_secs(60), || {
        if let Reply::Progress(p) = ask(&m, Request::Progress) {
            seen = (p.bytes_done, p.bytes_total);
            p.bytes_done > 0 && p.bytes_done < p.bytes_total
        } else {
            false
        }
    });
    assert!(
        under_way.is_some(),
        "upload never seen in progress (last progress {seen:?})\n{}",
        m.log_banner()
    );
    let st = m.sigterm();
    assert!(
        st.success(),
        "daemon exit status {st} on SIGTERM\n{}",
        m.log_banner()
    );
    job.join().unwrap();
    let log = m.daemon_log();
    assert!(log.contains("unmounting"), "{log}");
    // The upload was abandoned (not left to finish or to be killed): the file
    // went back to hot before the daemon exited.
    assert!(
        log.contains("daemon shutting down; resumes at the next start"),
        "{log}"
    );
    assert_eq!(state_of(&m, "big.bin"), "hot");

    // Nothing half-done is visible: the file is whole in the hot dir, and the
    // bucket holds no partial object or staging file.
    let hot = fs::read(m.h("big.bin")).unwrap();
    assert!(
        hot == data,
        "hot file changed: {} bytes, first difference at {:?}",
        hot.len(),
        hot.iter().zip(&data).position(|(a, b)| a != b)
    );
    let left = files_below(&cloud);
    assert!(
        left.iter().all(|f| !f.contains('#')),
        "staging files left in the bucket: {left:?}"
    );

    // The next start resumes: a migration completes.
    m.mount();
    let summary = migrate(&m);
    assert_eq!(summary.released, 1, "{summary:?}\n{}", m.log_banner());
    assert_eq!(state_of(&m, "big.bin"), "cold");
    let objects = files_below(&cloud.join("data"));
    assert_eq!(objects.len(), 1, "{objects:?}");
    assert_eq!(
        fs::metadata(cloud.join("data").join(&objects[0]))
            .unwrap()
            .len(),
        data.len() as u64
    );
    // Read back through the mount: recalled, verified, identical.
    assert!(fs::read(m.m("big.bin")).unwrap() == data, "bytes differ");
    assert!(
        wait_until(Duration::from_secs(30), || state_of(&m, "big.bin")
            != "cold")
        .is_some()
    );
}
