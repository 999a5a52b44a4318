//! Finding the config file: `--config`, then `$TIERFS_CONFIG`, then the
//! default path.
//!
//! Depends on std only, so any binary can include it.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

/// Environment variable naming the config file when `--config` is not given.
pub const CONFIG_ENV: &str = "TIERFS_CONFIG";

/// Config file used when neither `--config` nor `$TIERFS_CONFIG` is given.
pub const DEFAULT_CONFIG: &str = "/etc/tierfs/tierfs.toml";

/// Where the config path came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigOrigin {
    /// The `-c/--config` flag.
    Flag,
    /// The `TIERFS_CONFIG` environment variable.
    Env,
    /// The built-in default path.
    Default,
}

/// No config file exists where we looked. The message lists every place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigNotFound {
    /// Each place consulted, with what was found there.
    pub looked_at: Vec<(String, String)>,
    /// What to do about it.
    pub hint: &'static str,
}

impl fmt::Display for ConfigNotFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no tierfs config file found; looked at:")?;
        let width = self
            .looked_at
            .iter()
            .map(|(w, _)| w.len())
            .max()
            .unwrap_or(0);
        for (place, finding) in &self.looked_at {
            write!(f, "\n  {place:<width$}  {finding}")?;
        }
        if !self.hint.is_empty() {
            write!(f, "\n{}", self.hint)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigNotFound {}

/// Picks the config file: `flag` if given, else `env` (the value of
/// `$TIERFS_CONFIG`) if set and non-empty, else [`DEFAULT_CONFIG`]. The one
/// picked must exist; the others are not consulted.
pub fn locate_config(
    flag: Option<&Path>,
    env: Option<OsString>,
) -> Result<(PathBuf, ConfigOrigin), ConfigNotFound> {
    let env = env.filter(|v| !v.is_empty()).map(PathBuf::from);
    let (path, origin) = match (flag, env) {
        (Some(path), _) => (path.to_path_buf(), ConfigOrigin::Flag),
        (None, Some(path)) => (path, ConfigOrigin::Env),
        (None, None) => (PathBuf::from(DEFAULT_CONFIG), ConfigOrigin::Default),
    };
    match path.try_exists() {
        Ok(true) => Ok((path, origin)),
        Ok(false) => Err(not_found(&path, origin, "does not exist")),
        Err(e) => Err(not_found(&path, origin, &format!("cannot be checked: {e}"))),
    }
}

/// Describes a lookup that stopped at `path` (from `origin`) for `reason`.
fn not_found(path: &Path, origin: ConfigOrigin, reason: &str) -> ConfigNotFound {
    let found = format!("{} ({reason})", path.display());
    let env_label = format!("${CONFIG_ENV}");
    let (looked_at, hint) = match origin {
        ConfigOrigin::Flag => (vec![("--config".to_string(), found)], ""),
        ConfigOrigin::Env => (
            vec![
                ("--config".to_string(), "not given".to_string()),
                (env_label, found),
            ],
            "fix or unset TIERFS_CONFIG, or pass --config PATH",
        ),
        ConfigOrigin::Default => (
            vec![
                ("--config".to_string(), "not given".to_string()),
                (env_label, "not set".to_string()),
                ("default".to_string(), found),
            ],
            "pass --config PATH or set TIERFS_CONFIG to the daemon's config file",
        ),
    };
    ConfigNotFound { looked_at, hint }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_wins_over_env() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.toml");
        std::fs::write(&file, "").unwrap();
        let (path, origin) = locate_config(Some(&file), Some("/nope.toml".into())).unwrap();
        assert_eq!((path, origin), (file, ConfigOrigin::Flag));
    }

    #[test]
    fn env_is_used_when_no_flag() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.toml");
        std::fs::write(&file, "").unwrap();
        let (path, origin) = locate_config(None, Some(file.clone().into())).unwrap();
        assert_eq!((path, origin), (file, ConfigOrigin::Env));
    }

    #[test]
    fn missing_flag_file_names_it() {
        let e = locate_config(Some(Path::new("/no/such/tierfs.toml")), None).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("--config") && msg.contains("/no/such/tierfs.toml (does not exist)"));
    }

    #[test]
    fn missing_everything_lists_all_places() {
        // The default path does not exist on a test machine.
        if Path::new(DEFAULT_CONFIG).exists() {
            return;
        }
        let msg = locate_config(None, Some(OsString::new()))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("--config") && msg.contains("not given"),
            "{msg}"
        );
        assert!(
            msg.contains("$TIERFS_CONFIG") && msg.contains("not set"),
            "{msg}"
        );
        assert!(msg.contains(DEFAULT_CONFIG), "{msg}");
    }
}
