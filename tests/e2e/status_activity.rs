//! `tierctl status` reports what the daemon has been doing: the running job,
//! the last migration run and the errors of the last 24 hours, in text and in
//! `--json`; and the JSON reports of `migrate`, `gc` and `fsck` are what a
//! script would parse. Through a real mount, with the real `tierctl`.

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::tiering::{content, write_old};
use common::{MountOptions, TestMount};

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

fn ok(m: &TestMount, args: &[&str]) -> Output {
    let out = m.tierctl(args);
    assert!(
        out.status.success(),
        "tierctl {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        m.log_banner()
    );
    out
}

fn json(m: &TestMount, args: &[&str]) -> serde_json::Value {
    let out = ok(m, args);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "tierctl {args:?}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn only_object(cloud: &Path) -> PathBuf {
    let mut v: Vec<PathBuf> = fs::read_dir(cloud.join("data"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(v.len(), 1, "{v:?}");
    v.pop().unwrap()
}

#[test]
fn status_shows_last_migration_and_recent_errors() {
    let (m, cloud) = tiering_mount();
    let data = content(5, (2 << 20) + 17);
    write_old(&m.m("reports/q1.bin"), &data, 400);

    // Before anything ran.
    let status = json(&m, &["status", "--json"]);
    let activity = &status["activity"];
    assert!(activity.is_object(), "{status}");
    assert!(activity["job"].is_null(), "{status}");
    assert!(activity["last_migration"].is_null(), "{status}");
    assert_eq!(activity["errors_24h"], 0, "{status}");

    ok(&m, &["rule", "add", "* older 30d -> cloud"]);
    let migrated = json(&m, &["migrate", "--json"]);
    assert_eq!(migrated["released"], 1, "{migrated}");
    assert_eq!(migrated["released_bytes"], data.len(), "{migrated}");

    let status = json(&m, &["status", "--json"]);
    let last = &status["activity"]["last_migration"];
    assert_eq!(last["trigger"], "tierctl", "{status}");
    assert_eq!(last["released"], 1, "{status}");
    assert_eq!(last["released_bytes"], data.len(), "{status}");
    assert_eq!(last["failed"], 0, "{status}");
    assert_eq!(status["activity"]["errors_24h"], 0, "{status}");
    let rules = status["activity"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 1, "{status}");
    assert_eq!(rules[0]["selected"], 1, "{status}");
    assert_eq!(rules[0]["released"], 1, "{status}");
    assert_eq!(rules[0]["released_bytes"], data.len(), "{status}");
    assert!(rules[0]["finished_unix"].as_i64().unwrap() > 0, "{status}");
    let remote = &status["remotes"][0];
    assert_eq!(remote["remote"], "cloud", "{status}");
    assert_eq!(remote["state"], "up", "{status}");
    assert!(remote["since_unix"].as_i64().unwrap() > 0, "{status}");
    let text = String::from_utf8(ok(&m, &["status"]).stdout).unwrap();
    assert!(text.contains("cloud: up"), "{text}");
    assert!(text.contains("RULE") && text.contains("SELECTED"), "{text}");
    assert!(text.contains("job"), "{text}");
    assert!(text.contains("idle"), "{text}");
    assert!(text.contains("(tierctl): released 1 file(s)"), "{text}");

    // The rules' last runs are kept in the catalog across a restart.
    let mut m = m;
    m.remount();
    let status = json(&m, &["status", "--json"]);
    let rules = status["activity"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 1, "{status}");
    assert_eq!(rules[0]["released"], 1, "{status}");

    // A corrupt object: the read fails with EIO, and status shows the error
    // with the file's path and the cause.
    let object = only_object(&cloud);
    let mut bytes = fs::read(&object).unwrap();
    bytes[100] ^= 0x5a;
    fs::write(&object, bytes).unwrap();
    let err = fs::read(m.m("reports/q1.bin")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");

    let status = json(&m, &["status", "--json"]);
    let activity = &status["activity"];
    let n = activity["errors_24h"].as_u64().unwrap();
    assert!(n >= 1, "{status}");
    let errors = activity["recent_errors"].as_array().unwrap();
    assert!(
        errors
            .iter()
            .any(|e| e["message"].as_str().unwrap().contains("reports/q1.bin")),
        "no error names the file: {status}"
    );
    assert!(errors.iter().all(|e| e["at_unix"].as_i64().unwrap() > 0));
    // A corrupt object is a data problem, not an outage: the ranged GETs
    // themselves succeeded, so the remote counts as up (the outage tests
    // cover `down`).
    let up = common::wait_until(std::time::Duration::from_secs(20), || {
        json(&m, &["status", "--json"])["remotes"][0]["state"] == "up"
    });
    assert!(up.is_some(), "{}", json(&m, &["status", "--json"]));
    let text = String::from_utf8(ok(&m, &["status"]).stdout).unwrap();
    assert!(text.contains("errors (24 h)"), "{text}");
    assert!(text.contains("cloud: up"), "{text}");
    assert!(text.contains("reports/q1.bin"), "{text}");

    // The other JSON reports parse and carry their key numbers.
    let gc = json(&m, &["gc", "--json"]);
    assert!(gc["deleted_bytes"].is_u64(), "{gc}");
    let fsck = m.tierctl(&["fsck", "--json"]);
    let fsck: serde_json::Value = serde_json::from_slice(&fsck.stdout).unwrap_or_else(|e| {
        panic!(
            "fsck --json: {e}: {}",
            String::from_utf8_lossy(&fsck.stdout)
        )
    });
    assert!(fsck["problems"].is_array(), "{fsck}");
    // fsck compares listings and sizes (the flipped byte keeps the size).
    assert_eq!(fsck["files_checked"], 1, "{fsck}");
    assert_eq!(fsck["objects_listed"], 1, "{fsck}");
}

#[test]
fn status_of_a_stopped_daemon_has_no_activity() {
    let mut m = TestMount::new();
    m.unmount();
    let out = m.tierctl(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["daemon"]["state"], "not_running", "{v}");
    assert!(v["activity"].is_null(), "{v}");
    m.forget_daemon();
}
