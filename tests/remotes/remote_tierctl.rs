//! `tierctl remote list` and `tierctl remote test` as a user runs them,
//! against SeaweedFS started by the test.

use crate::servers;

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;
use servers::{S3_SECRET_KEY, SeaweedFs};

const TIERCTL: &str = env!("CARGO_BIN_EXE_tierctl");

struct Setup {
    _dir: tempfile::TempDir,
    config: PathBuf,
}

fn setup(remotes: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("hot")).unwrap();
    let config = dir.path().join("tierfs.toml");
    std::fs::write(&config, format!("hot_dir = \"hot\"\n\n{remotes}")).unwrap();
    // Credentials inside: owner-only, or tierctl refuses the file.
    std::fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    Setup { _dir: dir, config }
}

impl Setup {
    fn tierctl(&self, args: &[&str]) -> Output {
        Command::new(TIERCTL)
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .output()
            .unwrap()
    }
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn remote_test_and_list_against_seaweedfs() {
    let server = SeaweedFs::shared();
    let good = server.remote_toml("cli", "storage_class = \"STANDARD\"");
    let bad = server
        .remote_toml("cli", "")
        .replace(S3_SECRET_KEY, "wrong-secret-wrong-secret");
    let s = setup(&format!("[remote.good]\n{good}\n[remote.bad]\n{bad}\n"));

    // remote test: every step ✓, exit 0.
    let out = s.tierctl(&["remote", "test", "good"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    for step in ["connect", "credentials", "write", "read back", "delete"] {
        assert!(t.contains(&format!("✓ {step}")), "{step}: {t}");
    }
    assert!(t.contains("ok: all 5 steps passed"), "{t}");

    let out = s.tierctl(&["remote", "test", "good", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["remote"], "good");
    assert_eq!(v["steps"].as_array().unwrap().len(), 5);
    assert!(v["steps"][2]["millis"].as_f64().is_some());

    // Wrong secret: connect ✓, credentials ✗, rest skipped, exit 1.
    let out = s.tierctl(&["remote", "test", "bad"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("✓ connect") && t.contains("✗ credentials"),
        "{t}"
    );
    assert!(t.contains("SignatureDoesNotMatch"), "{t}");
    assert!(t.contains("- write") && t.contains("skipped"), "{t}");
    assert!(
        !t.contains("wrong-secret-wrong-secret"),
        "secret printed: {t}"
    );
    let out = s.tierctl(&["remote", "test", "bad", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["steps"][1]["status"], "failed");
    assert_eq!(v["steps"][1]["error_kind"], "unauthenticated");
    assert_eq!(v["steps"][2]["status"], "skipped");

    // Unknown remote: usage error, exit 2, names the configured ones.
    let out = s.tierctl(&["remote", "test", "nope"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(t.contains("nope") && t.contains("bad, good"), "{t}");

    // remote list: both, no secrets.
    let out = s.tierctl(&["remote", "list"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        t.contains("NAME") && t.contains("good") && t.contains("bad"),
        "{t}"
    );
    assert!(
        t.contains("s3://tierfs-test/cli") && t.contains(&server.endpoint()),
        "{t}"
    );
    assert!(t.contains("STANDARD"), "{t}");
    assert!(
        !t.contains(S3_SECRET_KEY) && !t.contains("wrong-secret"),
        "secret printed: {t}"
    );

    let out = s.tierctl(&["remote", "list", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let raw = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!raw.contains(S3_SECRET_KEY), "secret printed: {raw}");
    let v: Value = serde_json::from_str(&raw).unwrap();
    let remotes = v["remotes"].as_array().unwrap();
    assert_eq!(remotes.len(), 2);
    let good = remotes.iter().find(|r| r["name"] == "good").unwrap();
    assert_eq!(good["kind"], "s3");
    assert_eq!(good["endpoint"], server.endpoint());
    assert_eq!(good["storage_class"], "STANDARD");
    assert_eq!(good["credentials"], "config (access_key_id)");
}

#[test]
fn remote_list_reports_unusable_remotes() {
    let s = setup(
        "[remote.nocreds]\nurl = \"s3://bucket/p\"\nregion = \"us-east-1\"\n\
         [remote.gone]\nurl = \"file:///nonexistent/tierfs-remote\"\n",
    );
    let out = s.tierctl(&["remote", "list"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("AWS_ACCESS_KEY_ID"), "{t}");
    assert!(t.contains("/nonexistent/tierfs-remote"), "{t}");
    // And `remote test` on such a remote is a config error (exit 2).
    let out = s.tierctl(&["remote", "test", "nocreds"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    let s = setup("");
    let out = s.tierctl(&["remote", "list"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no remotes configured"));
}
