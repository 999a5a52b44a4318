//! A cloud outage in the middle of the work: the S3 server (SeaweedFS on
//! 127.0.0.1) is killed while a migration is under way and cold files are
//! being read, then started again on the same port and data directory.
//!
//! While it is down: hot files read and write normally, reads of cold files
//! fail with EIO within `recall_timeout` (plus a margin) and leave the stub
//! intact, the migration fails without losing the file, and `tierctl status`
//! shows the remote down. Once it is back, without restarting the daemon, the
//! schedule's back-off retry finishes the migration, every file reads back
//! byte-exact and `tierctl fsck` is clean.

use crate::common;
use crate::servers;

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::tiering::{add_rule, content, migrate, remount_with_env, state, text, write_old};
use common::{MountOptions, TIERCTL, TestMount, errname, wait_until};
use servers::SeaweedFs;

/// How long a cold read may wait for the remote (the config under test).
const RECALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Slack for scheduling on a loaded 2-core machine.
const MARGIN: Duration = Duration::from_secs(5);

/// Reads `len` bytes at `offset`, timing the read.
fn timed_read(path: &Path, offset: u64, len: usize) -> (std::io::Result<Vec<u8>>, Duration) {
    let started = Instant::now();
    let result = fs::File::open(path).and_then(|mut f| {
        f.seek(SeekFrom::Start(offset))?;
        let mut buf = vec![0; len];
        f.read_exact(&mut buf)?;
        Ok(buf)
    });
    (result, started.elapsed())
}

#[test]
fn s3_outage_during_migration_and_recall_loses_nothing_and_heals_without_restart() {
    let mut server = SeaweedFs::start();
    let remote = server.remote_toml(
        "outage",
        &format!(
            // Four files in flight for five files: the fifth starts only after
            // the first failure, and must not be tried.
            "request_timeout = \"15s\"\nrecall_timeout = \"{}s\"\nmax_files_in_flight = 4\n",
            RECALL_TIMEOUT.as_secs()
        ),
    );
    let mut m = TestMount::with_options(MountOptions {
        allow_other: true,
        // Long enough that only the back-off retry can finish the job in time.
        extra_top: "migrate_interval = \"1h\"\n".into(),
        extra_sections: format!("[remote.cloud]\n{remote}"),
        ..Default::default()
    });

    // Cold files (one of three 4 MiB chunks and a tail, one large), a file
    // to migrate during the outage, and a hot file.
    let cold = content(1, (10 << 20) + 12_345);
    let large = content(3, 48 << 20);
    let big = content(2, 24 << 20);
    // Four more files than the 4 transfers a run starts at once.
    let more: Vec<Vec<u8>> = (0..4).map(|i| content(10 + i, 300_000)).collect();
    let hot = b"hot data stays local\n".to_vec();
    write_old(&m.m("cold/data.bin"), &cold, 30);
    write_old(&m.m("cold/large.bin"), &large, 30);
    write_old(&m.m("big/video.bin"), &big, 30);
    for (i, data) in more.iter().enumerate() {
        write_old(&m.m(format!("big/zz-{i}.bin")), data, 30);
    }
    fs::write(m.m("hot.txt"), &hot).unwrap();
    add_rule(&m, "cold -> cloud");
    let s = migrate(&m);
    assert_eq!(s.released, 2, "{s:?}\n{}", m.log_banner());
    assert_eq!(state(&m.m("cold/data.bin")), "cold");

    // Restart the daemon so that a recall stops once its download is under
    // way, and an upload just before it starts.
    let paused = m.root().join("paused");
    let resume = m.root().join("resume");
    remount_with_env(
        &mut m,
        vec![
            ("TIERFS_TEST_PAUSE_AT".into(), "receiving,uploading".into()),
            (
                "TIERFS_TEST_PAUSE_FILE".into(),
                paused.display().to_string(),
            ),
            (
                "TIERFS_TEST_RESUME_FILE".into(),
                resume.display().to_string(),
            ),
        ],
    );
    let wait_paused = |step: &str| {
        assert!(
            wait_until(Duration::from_secs(60), || {
                fs::read_to_string(&paused).is_ok_and(|s| s == step)
            })
            .is_some(),
            "never paused at {step}\n{}",
            m.log_banner()
        );
    };
    // A recall: the first write to the large cold file downloads it whole
    // (the open alone downloads nothing).
    let recall_job = {
        let path = m.m("cold/large.bin");
        std::thread::spawn(move || {
            let result = fs::OpenOptions::new()
                .append(true)
                .open(path)
                .and_then(|mut f| std::io::Write::write_all(&mut f, b"x"));
            (result, Instant::now())
        })
    };
    wait_paused("receiving");
    // A migration.
    add_rule(&m, "big -> cloud");
    let migrate_job = {
        let config = m.config().to_path_buf();
        std::thread::spawn(move || {
            Command::new(TIERCTL)
                .arg("-c")
                .arg(config)
                .arg("migrate")
                .output()
                .unwrap()
        })
    };
    wait_paused("uploading");

    // The cloud goes away in the middle of both.
    server.stop();

    // Hot files: reads, writes, appends and new files work as usual.
    assert_eq!(fs::read(m.m("hot.txt")).unwrap(), hot);
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(m.m("hot.txt"))
        .unwrap();
    f.write_all(b"written during the outage\n").unwrap();
    drop(f);
    fs::write(m.m("new.txt"), b"created during the outage").unwrap();
    let mut hot_now = hot.clone();
    hot_now.extend_from_slice(b"written during the outage\n");
    assert_eq!(fs::read(m.m("hot.txt")).unwrap(), hot_now);
    // The file being migrated is still local and readable.
    assert_eq!(fs::read(m.m("big/video.bin")).unwrap(), big);

    // Let the paused recall go on: its download breaks off; the opener gets
    // EIO within the timeout, and the stub is intact (no partial data).
    fs::write(&resume, b"receiving").unwrap();
    let resumed = Instant::now();
    let (result, done) = recall_job.join().unwrap();
    let err = result.expect_err("a recall completed with the server down");
    assert_eq!(errname(&err), "EIO", "{err}");
    assert!(
        done - resumed <= RECALL_TIMEOUT + MARGIN,
        "the interrupted recall failed only after {:?}",
        done - resumed
    );
    let md = fs::metadata(m.h("cold/large.bin")).unwrap();
    assert_eq!((md.len(), md.blocks()), (large.len() as u64, 0));
    assert_eq!(state(&m.m("cold/large.bin")), "cold");
    assert!(
        m.daemon_log().lines().any(|l| l.contains("recall failed")
            && l.contains("cold/large.bin")
            && l.contains("remote `cloud`")),
        "no log line for the interrupted recall\n{}",
        m.log_banner()
    );

    // Reading a cold file fails with EIO within the timeout, never hangs,
    // never returns other bytes.
    for offset in [0u64, 8 << 20] {
        let (result, took) = timed_read(&m.m("cold/data.bin"), offset, 4096);
        let err = result.expect_err("a cold read succeeded with the server down");
        assert_eq!(errname(&err), "EIO", "offset {offset}: {err}");
        assert!(
            took <= RECALL_TIMEOUT + MARGIN,
            "cold read took {took:?} (recall_timeout {RECALL_TIMEOUT:?})"
        );
    }
    // Writing to it needs a full recall: EIO too, within the timeout (the
    // open alone downloads nothing and succeeds).
    let started = Instant::now();
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(m.m("cold/data.bin"))
        .unwrap();
    let err = std::io::Write::write_all(&mut f, b"x")
        .expect_err("wrote to a cold file with the server down");
    assert_eq!(errname(&err), "EIO", "{err}");
    assert!(started.elapsed() <= RECALL_TIMEOUT + MARGIN);
    drop(f);
    // The stub is intact: still cold, right size, no local blocks.
    let md = fs::metadata(m.h("cold/data.bin")).unwrap();
    assert_eq!(
        (md.len(), md.blocks()),
        (cold.len() as u64, 0),
        "stub changed"
    );
    assert_eq!(state(&m.m("cold/data.bin")), "cold");
    let log = m.daemon_log();
    assert!(
        log.lines().any(|l| l.contains("cold read failed")
            && l.contains("cold/data.bin")
            && l.contains("remote `cloud`")),
        "no log line naming the path and the remote\n{}",
        m.log_banner()
    );
    assert!(
        !log.contains("Encountered transport error"),
        "every retry is logged\n{}",
        m.log_banner()
    );

    // Let the paused upload go on against the dead server: it fails and the
    // file stays local and hot.
    fs::write(&resume, b"receiving uploading").unwrap();
    let out = migrate_job.join().unwrap();
    assert!(!out.status.success(), "migrate succeeded?\n{}", text(&out));
    let report =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        report.contains("big/video.bin") && report.contains("unreachable"),
        "{}",
        text(&out)
    );
    assert_eq!(state(&m.m("big/video.bin")), "hot");
    assert_eq!(fs::read(m.m("big/video.bin")).unwrap(), big);
    // The file started after the first failure was not tried at all: it
    // would only have waited another request_timeout.
    assert!(
        report.contains("big/zz-3.bin: remote `cloud` was unreachable earlier in this run"),
        "{}",
        text(&out)
    );
    for i in 0..4 {
        assert_eq!(state(&m.m(format!("big/zz-{i}.bin"))), "hot");
    }

    // Status shows the remote down.
    let out = m.tierctl(&["status"]);
    let status = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(status.contains("cloud: down"), "{}", text(&out));
    let out = m.tierctl(&["status", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["remotes"][0]["remote"], "cloud", "{json}");
    assert_eq!(json["remotes"][0]["state"], "down", "{json}");
    assert!(
        json["remotes"][0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("unreachable")),
        "{json}"
    );

    // The schedule retries on its own (1 s after the failed run, then 2 s,
    // 4 s...): let at least one of its runs fail too, then wait for the log.
    assert!(
        wait_until(Duration::from_secs(60), || m
            .daemon_log()
            .contains("remote unreachable during the scheduled migration"))
        .is_some(),
        "the schedule did not retry during the outage\n{}",
        m.log_banner()
    );
    assert_eq!(state(&m.m("big/video.bin")), "hot");

    // The cloud comes back on the same port with the same data.
    let outage_ended = Instant::now();
    server.restart();

    // No command, no restart: the schedule's back-off retry releases the file.
    let released = wait_until(Duration::from_secs(90), || {
        state(&m.m("big/video.bin")) == "cold"
            && (0..4).all(|i| state(&m.m(format!("big/zz-{i}.bin"))) == "cold")
    });
    assert!(
        released.is_some(),
        "big/video.bin not migrated 90 s after the server came back\n{}",
        m.log_banner()
    );
    eprintln!(
        "migration resumed {:?} after the server came back",
        outage_ended.elapsed()
    );
    assert_eq!(fs::read(m.m("cold/data.bin")).unwrap(), cold);
    assert_eq!(fs::read(m.m("cold/large.bin")).unwrap(), large);
    assert_eq!(fs::read(m.m("big/video.bin")).unwrap(), big);
    for (i, data) in more.iter().enumerate() {
        assert_eq!(&fs::read(m.m(format!("big/zz-{i}.bin"))).unwrap(), data);
    }
    assert_eq!(fs::read(m.m("hot.txt")).unwrap(), hot_now);
    let out = m.tierctl(&["status"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("cloud: up"),
        "{}",
        text(&out)
    );
    let out = m.tierctl(&["fsck"]);
    assert!(out.status.success(), "{}\n{}", text(&out), m.log_banner());
}
