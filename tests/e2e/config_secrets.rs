//! A config file holding secrets must be readable by its owner only: both
//! binaries refuse it otherwise, naming the file, its mode and the fix,
//! without printing the secret.

use crate::common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::{MountOptions, TIERFS, TestMount};

const SECRET: &str = "never-print-this-secret-0123456789";

#[test]
fn world_readable_config_with_secrets_is_refused_by_tierfs_and_tierctl() {
    let m = TestMount::unmounted(MountOptions {
        extra_sections: format!(
            "[remote.cloud]\nurl = \"s3://bucket/p\"\nendpoint = \"http://127.0.0.1:1\"\n\
             allow_http = true\naccess_key_id = \"AK\"\nsecret_access_key = \"{SECRET}\"\n"
        ),
        ..Default::default()
    });
    fs::set_permissions(m.config(), fs::Permissions::from_mode(0o644)).unwrap();

    let out = m.tierctl(&["remote", "list"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.contains(&m.config().display().to_string()), "{err}");
    assert!(err.contains("0644") && err.contains("chmod 600"), "{err}");
    assert!(err.contains("remote.cloud.secret_access_key"), "{err}");
    assert!(!err.contains(SECRET), "{err}");

    let out = Command::new(TIERFS)
        .args(["mount", "-f"])
        .arg(m.config())
        .arg(m.mnt())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.contains("chmod 600"), "{err}");
    assert!(!err.contains(SECRET), "{err}");
    assert!(!m.is_mountpoint_now());

    // Owner-only: accepted.
    fs::set_permissions(m.config(), fs::Permissions::from_mode(0o600)).unwrap();
    let out = m.tierctl(&["remote", "list"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("cloud"), "{text}");
    assert!(!text.contains(SECRET), "{text}");
}
