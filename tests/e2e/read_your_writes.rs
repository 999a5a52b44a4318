//! Read-your-writes: a `tierctl` command issued right after an operation
//! through the mount returned sees that operation — no stale answer, no
//! spurious failure, no file skipped that should have moved, and no waiting.
//!
//! One mount, 1,000 rounds; each round changes the tree through the mount
//! (write, rename, delete, overwrite, age) and immediately asks `tierctl`
//! (`migrate`, `status PATH`, `rule test`) what it sees.

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use common::tiering::{content, state, text, write_old};
use common::*;
use serde_json::Value;

const ROUNDS: usize = 1_000;

fn mount() -> TestMount {
    let mut m = TestMount::unmounted(MountOptions::default());
    let cloud = m.root().join("cloud");
    fs::create_dir(&cloud).unwrap();
    m.set_options(MountOptions {
        extra_top: "migrate_interval = \"off\"\n".into(),
        extra_sections: format!("[remote.cloud]\nurl = \"file://{}\"\n", cloud.display()),
        ..Default::default()
    });
    m.mount();
    let out = m.tierctl(&["rule", "add", "** older 30d -> cloud"]);
    assert!(out.status.success(), "{}", text(&out));
    m
}

fn json(m: &TestMount, args: &[&str]) -> Value {
    let out = m.tierctl(args);
    assert!(out.status.success(), "tierctl {args:?}: {}", text(&out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("tierctl {args:?}: not JSON ({e}): {}", text(&out)))
}

/// `tierctl status --json REL`.
fn entry(m: &TestMount, rel: &str) -> Value {
    json(m, &["status", "--json", rel])
}

/// `tierctl migrate --json`: must exit 0 and report no failure.
fn migrate(m: &TestMount, round: usize) -> Value {
    let report = json(m, &["migrate", "--json"]);
    assert_eq!(
        report["failures"].as_array().map(Vec::len),
        Some(0),
        "round {round}: {report}\n{}",
        m.log_banner()
    );
    report
}

fn set_age(path: &Path, days: u64) {
    let t = SystemTime::now() - Duration::from_secs(days * 86_400);
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

#[test]
fn tierctl_sees_every_operation_that_returned() {
    let m = mount();
    // Cold files (released) by name; rotated through by the rounds.
    let mut cold: Vec<PathBuf> = Vec::new();
    let mut released_total = 0;
    for round in 0..ROUNDS {
        let name = PathBuf::from(format!("d{}/f{round}", round % 7));
        let rel = name.to_str().unwrap().to_string();
        match round % 5 {
            // A new old file, then at once `migrate`: it moves.
            0 => {
                write_old(&m.m(&name), &content(round as u64, 3_000), 400);
                let report = migrate(&m, round);
                assert_eq!(report["released"], 1, "round {round}: {report}");
                assert_eq!(report["skipped"], 0, "round {round}: {report}");
                released_total += 1;
                assert_eq!(state(&m.m(&name)), "cold", "round {round}");
                cold.push(name);
            }
            // A cold file renamed: `status` finds it cold at its new name
            // and nothing at the old one.
            1 if !cold.is_empty() => {
                let old = cold.remove(round % cold.len());
                fs::create_dir_all(m.m(&name).parent().unwrap()).unwrap();
                fs::rename(m.m(&old), m.m(&name)).unwrap();
                let now = entry(&m, &rel);
                assert_eq!(now["in_catalog"], true, "round {round}: {now}");
                assert_eq!(now["state"], "cold", "round {round}: {now}");
                let before = entry(&m, old.to_str().unwrap());
                assert_eq!(before["in_catalog"], false, "round {round}: {before}");
                cold.push(name);
            }
            // A file deleted, then `migrate`: no failure, nothing to move,
            // and `status` no longer knows the name.
            2 if !cold.is_empty() => {
                let gone = cold.remove(round % cold.len());
                fs::remove_file(m.m(&gone)).unwrap();
                let report = migrate(&m, round);
                assert_eq!(report["candidates"], 0, "round {round}: {report}");
                let after = entry(&m, gone.to_str().unwrap());
                assert_eq!(after["in_catalog"], false, "round {round}: {after}");
            }
            // A young file: `rule test` says it stays; aged through the
            // mount, it says it would move.
            3 => {
                fs::create_dir_all(m.m(&name).parent().unwrap()).unwrap();
                fs::write(m.m(&name), content(round as u64, 100)).unwrap();
                let young = json(&m, &["rule", "test", "--json", &rel]);
                assert_eq!(young["in_catalog"], true, "round {round}: {young}");
                assert_eq!(young["would_migrate"], false, "round {round}: {young}");
                set_age(&m.m(&name), 400);
                let old = json(&m, &["rule", "test", "--json", &rel]);
                assert_eq!(old["would_migrate"], true, "round {round}: {old}");
                fs::remove_file(m.m(&name)).unwrap();
            }
            // A cold file overwritten through the mount: `status` shows the
            // new size, hot.
            _ if !cold.is_empty() => {
                let target = cold.remove(round % cold.len());
                fs::write(m.m(&target), content(round as u64, 77)).unwrap();
                let now = entry(&m, target.to_str().unwrap());
                assert_eq!(now["size"], 77, "round {round}: {now}");
                assert_eq!(now["state"], "hot", "round {round}: {now}");
                fs::remove_file(m.m(&target)).unwrap();
            }
            _ => {}
        }
    }
    assert_eq!(released_total, ROUNDS / 5);
    let out = m.tierctl(&["fsck"]);
    assert!(out.status.success(), "{}", text(&out));
}
