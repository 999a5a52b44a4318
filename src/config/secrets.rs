//! Secrets in the config file: refuse a file that holds one and that other
//! users can read.
//!
//! Remote credentials may be written into `[remote.NAME]` sections
//! (`secret_access_key`, `session_token`, Azure `access_key`) or named there
//! (`service_account_path`, a JSON key file). Either way, a file other users
//! can read leaks them, so tierfs and tierctl refuse to use it and say how to
//! fix it. Credentials from the environment are not affected.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::{ConfigError, RemoteConfig};

/// Permission bits that let users other than the owner read (or write) a file.
const GROUP_OR_OTHERS: u32 = 0o077;

/// The config keys of `r` that hold a secret inline.
pub(super) fn inline_secrets(r: &RemoteConfig) -> Vec<&'static str> {
    let mut keys = Vec::new();
    if r.secret_access_key.is_some() {
        keys.push("secret_access_key");
    }
    if r.session_token.is_some() {
        keys.push("session_token");
    }
    if r.access_key.is_some() {
        keys.push("access_key");
    }
    keys
}

/// Fails if `file` can be read by its group or by others.
fn check_private(file: &Path, what: &str) -> Result<(), ConfigError> {
    let meta = std::fs::metadata(file).map_err(|source| ConfigError::Read {
        path: file.to_path_buf(),
        source,
    })?;
    let mode = meta.mode() & 0o7777;
    if mode & GROUP_OR_OTHERS != 0 {
        return Err(ConfigError::Insecure {
            path: file.to_path_buf(),
            message: format!(
                "{what}, but its mode is {mode:04o}, so other users can read it; \
                 run: chmod 600 {}",
                file.display()
            ),
        });
    }
    Ok(())
}

/// Checks that the config at `source`, if it holds secrets, and every
/// service-account key file it names, can be read by their owner only.
pub(super) fn check(source: &Path, remotes: &[&RemoteConfig]) -> Result<(), ConfigError> {
    let mut inline: Vec<String> = Vec::new();
    for r in remotes {
        for key in inline_secrets(r) {
            inline.push(format!("remote.{}.{key}", r.name));
        }
    }
    if !inline.is_empty() {
        check_private(source, &format!("it holds secrets ({})", inline.join(", ")))?;
    }
    for r in remotes {
        // A missing key file is reported by the remote itself, with its key.
        if let Some(key_file) = r.service_account_path.as_ref().filter(|p| p.exists()) {
            check_private(
                key_file,
                &format!(
                    "it is the service-account key of remote `{}` (service_account_path in {})",
                    r.name,
                    source.display()
                ),
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::config::Config;

    fn write(dir: &Path, name: &str, text: &str, mode: u32) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    const WITH_SECRET: &str = "hot_dir = \"hot\"\n[remote.cloud]\nurl = \"s3://b/p\"\n\
        access_key_id = \"AKID\"\nsecret_access_key = \"TOPSECRET\"\n";

    #[test]
    fn readable_config_with_secrets_is_refused_with_a_fix() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("hot")).unwrap();
        let p = write(dir.path(), "t.toml", WITH_SECRET, 0o644);
        let e = Config::load(&p).unwrap_err().to_string();
        assert!(e.contains("t.toml"), "{e}");
        assert!(e.contains("remote.cloud.secret_access_key"), "{e}");
        assert!(e.contains("0644") && e.contains("chmod 600"), "{e}");
        assert!(!e.contains("TOPSECRET"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(Config::load(&p).is_err());
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        Config::load(&p).unwrap();
    }

    #[test]
    fn readable_config_without_secrets_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("hot")).unwrap();
        let p = write(
            dir.path(),
            "t.toml",
            "hot_dir = \"hot\"\n[remote.cloud]\nurl = \"s3://b/p\"\n",
            0o644,
        );
        Config::load(&p).unwrap();
    }

    #[test]
    fn service_account_key_files_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("hot")).unwrap();
        let key = write(dir.path(), "sa.json", "{}", 0o644);
        let p = write(
            dir.path(),
            "t.toml",
            &format!(
                "hot_dir = \"hot\"\n[remote.g]\nurl = \"gs://b/p\"\nservice_account_path = \"{}\"\n",
                key.display()
            ),
            0o644,
        );
        let e = Config::load(&p).unwrap_err().to_string();
        assert!(e.contains("sa.json") && e.contains("remote `g`"), "{e}");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        Config::load(&p).unwrap();
    }
}
