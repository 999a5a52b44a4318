//! The TOML configuration file: parsing, defaults and validation.
//!
//! Every error names the offending key (and the file), so an admin can fix a
//! config without reading source code.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

mod group;
mod secrets;

/// Errors raised while loading or validating a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// Config file path.
        path: PathBuf,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown/mistyped keys.
    #[error("invalid config {path}: {message}")]
    Parse {
        /// Config file path.
        path: PathBuf,
        /// Parser message; names the key and its line.
        message: String,
    },
    /// A `[remote.NAME]` section is not acceptable.
    #[error("invalid config {path}: remote `{remote}`: {message}")]
    InvalidRemote {
        /// Config file path.
        path: PathBuf,
        /// The remote's name.
        remote: String,
        /// What is wrong, naming the key.
        message: String,
    },
    /// A file holding secrets is readable by other users.
    #[error("refusing to use {path}: {message}")]
    Insecure {
        /// The config file or key file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A key has a value that parses but is not acceptable.
    #[error("invalid config {path}: key `{key}`: {message}")]
    Invalid {
        /// Config file path.
        path: PathBuf,
        /// Dotted key name, e.g. `mount.threads`.
        key: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

/// Longest excerpt of config text (or of a value) an error message quotes.
pub const EXCERPT_MAX: usize = 80;

/// `text` if it is short, else its first [`EXCERPT_MAX`] characters, "…"
/// and how long it really was. Control characters are escaped so a message
/// stays on one line.
pub fn excerpt(text: &str) -> String {
    let mut out = String::new();
    for (n, c) in text.chars().enumerate() {
        if n == EXCERPT_MAX {
            out.push_str(&format!("… ({} bytes in all)", text.len()));
            return out;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The parser's message with the line and column, quoting only a short
/// excerpt of the offending line (toml's own text quotes the whole line).
fn parse_message(text: &str, e: &toml::de::Error) -> String {
    let Some(span) = e.span() else {
        return excerpt(e.message().trim_end());
    };
    let start = span.start.min(text.len());
    let before = text.get(..start).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = text.get(line_start..start).map_or(0, |s| s.chars().count()) + 1;
    let line_text = text[line_start..].split('\n').next().unwrap_or("");
    format!(
        "line {line}, column {column}: {} (in `{}`)",
        excerpt(e.message().trim_end()).replace('\n', " "),
        excerpt(line_text.trim_end_matches('\r'))
    )
}

impl ConfigError {
    /// The same error with every quoted message cut to an excerpt.
    fn shortened(self) -> ConfigError {
        // Keep both ends: the start names the value, the end says what is wrong.
        let cut = |m: String| {
            let n = m.chars().count();
            if n <= 4 * EXCERPT_MAX {
                return m;
            }
            let head: String = m.chars().take(EXCERPT_MAX).collect();
            let tail: String = m.chars().skip(n - EXCERPT_MAX).collect();
            format!(
                "{head} … ({} bytes cut) … {tail}",
                m.len() - head.len() - tail.len()
            )
        };
        match self {
            ConfigError::Parse { path, message } => ConfigError::Parse {
                path,
                message: cut(message),
            },
            ConfigError::InvalidRemote {
                path,
                remote,
                message,
            } => ConfigError::InvalidRemote {
                path,
                remote: excerpt(&remote),
                message: cut(message),
            },
            ConfigError::Invalid { path, key, message } => ConfigError::Invalid {
                path,
                key,
                message: cut(message),
            },
            other => other,
        }
    }
}

/// Fully validated configuration with all defaults filled in.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was loaded from (absolute).
    pub source: PathBuf,
    /// Directory holding the hot (local) data; the mount shows its contents.
    pub hot_dir: PathBuf,
    /// SQLite catalog path.
    pub catalog: PathBuf,
    /// Unix socket on which the daemon answers `tierctl`.
    pub control_socket: PathBuf,
    /// `tracing` filter used when `RUST_LOG` is not set.
    pub log_level: String,
    /// Where a backgrounded daemon writes its log (default: discarded once the
    /// mount is up; use `-f` under a supervisor to keep logs on stderr).
    pub log_file: Option<PathBuf>,
    /// Mount behaviour.
    pub mount: MountConfig,
    /// Whether to watch `hot_dir` for changes made beside the mount.
    pub watch_hot_dir: bool,
    /// How often last-access times gathered in memory are written to the catalog.
    pub access_flush_interval: Duration,
    /// Object stores files can be migrated to, by name (`[remote.NAME]`).
    pub remotes: BTreeMap<String, RemoteConfig>,
    /// How often the daemon evaluates the rules and migrates (`None` = only
    /// when asked with `tierctl migrate`).
    pub migrate_interval: Option<Duration>,
    /// How long an object no file references is kept before `gc` deletes it.
    pub gc_grace: Duration,
    /// `[cost]`: settings for `tierctl cost-report`.
    pub cost: CostConfig,
    /// The Prometheus metrics endpoint (`[metrics]`); `None` = off (the default).
    pub metrics: Option<MetricsConfig>,
    /// How often the daemon backs the catalog up to every remote (`None` =
    /// only when asked with `tierctl backup`). Default 6h.
    pub catalog_backup_interval: Option<Duration>,
    /// How many catalog backups to keep on each remote (older ones are
    /// deleted after a new one is verified). Default 7.
    pub catalog_backup_keep: usize,
    /// Group (gid) whose members may send control requests besides root
    /// (`control_group`, a name or a number); the socket gets that group
    /// and mode 0660. `None`: root only, socket mode 0600.
    pub control_group: Option<u32>,
}

/// `[cost]`: what local storage costs and where remote prices come from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostConfig {
    /// Local storage cost, USD per TB-month (TB = 10^12 bytes; default 12).
    #[serde(default = "default_local_per_tb_month")]
    pub local_per_tb_month: f64,
    /// A price file merged over the shipped price catalog (relative paths
    /// are relative to the config file).
    #[serde(default)]
    pub prices: Option<PathBuf>,
    /// Remote name → price-catalog provider id (`b2`, `aws-s3`, `gcs`,
    /// `azure`, or one a price file adds), for remotes whose URL does not say.
    #[serde(default)]
    pub providers: BTreeMap<String, String>,
}

fn default_local_per_tb_month() -> f64 {
    12.0
}

impl Default for CostConfig {
    fn default() -> Self {
        CostConfig {
            local_per_tb_month: default_local_per_tb_month(),
            prices: None,
            providers: BTreeMap::new(),
        }
    }
}

/// `[metrics]`: where to serve Prometheus metrics (`GET /metrics`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Address and port to listen on; loopback unless `allow_remote`.
    pub listen: std::net::SocketAddr,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: String,
    allow_remote: Option<bool>,
}

/// One `[remote.NAME]` section: where and how to reach an object store.
///
/// `url` picks the backend: `s3://bucket/prefix` (Amazon S3, Backblaze B2 and
/// other S3-compatible stores via `endpoint`), `gs://bucket/prefix`,
/// `az://container/prefix`, `file:///path`. Credentials not given here may
/// come from the environment the way each cloud's own tools read them.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteConfig {
    /// The section name (filled in by the loader).
    #[serde(skip)]
    pub name: String,
    /// Backend, bucket/container and key prefix.
    pub url: String,
    /// S3: custom endpoint (B2: `https://s3.<region>.backblazeb2.com`). Azure: blob endpoint.
    pub endpoint: Option<String>,
    /// S3: region (B2: `us-west-004`).
    pub region: Option<String>,
    /// S3: access key id.
    pub access_key_id: Option<String>,
    /// S3: secret access key.
    pub secret_access_key: Option<String>,
    /// S3: session token for temporary credentials.
    pub session_token: Option<String>,
    /// Allow plain `http://` endpoints (test servers on localhost).
    #[serde(default)]
    pub allow_http: bool,
    /// GCS: path of a service-account JSON key.
    pub service_account_path: Option<PathBuf>,
    /// Azure: storage account name.
    pub account: Option<String>,
    /// Azure: storage account key.
    pub access_key: Option<String>,
    /// Azure: talk to the Azurite emulator.
    #[serde(default)]
    pub use_emulator: bool,
    /// Default storage class for objects (a rule's `-> REMOTE:CLASS` overrides it).
    pub storage_class: Option<String>,
    /// Upload/download streams running at once for this remote (default 4).
    pub max_concurrency: Option<usize>,
    /// Files migrated at once to this remote (default 16). Their data in
    /// flight stays within `max_concurrency` × part size.
    pub max_files_in_flight: Option<usize>,
    /// Multipart part size, e.g. `16MiB` (default: scaled to the file, at least 8 MiB).
    pub part_size: Option<String>,
    /// Give up on one request after this long without progress (default `60s`).
    pub request_timeout: Option<String>,
    /// A read of a cold file waits this long for the remote (no progress)
    /// before failing with `EIO` (default `60s`).
    pub recall_timeout: Option<String>,
    /// Encrypt objects before upload with the 32-byte key in this file
    /// (`tierctl keygen FILE` creates one, mode 0600). Losing it loses the
    /// cold data: see docs/safety.md.
    pub encryption_key_file: Option<PathBuf>,
}

impl std::fmt::Debug for RemoteConfig {
    /// Secrets are never printed, so a config can be logged safely.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redact = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        f.debug_struct("RemoteConfig")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &redact(&self.secret_access_key))
            .field("session_token", &redact(&self.session_token))
            .field("allow_http", &self.allow_http)
            .field("service_account_path", &self.service_account_path)
            .field("account", &self.account)
            .field("access_key", &redact(&self.access_key))
            .field("use_emulator", &self.use_emulator)
            .field("storage_class", &self.storage_class)
            .field("max_concurrency", &self.max_concurrency)
            .field("max_files_in_flight", &self.max_files_in_flight)
            .field("part_size", &self.part_size)
            .field("request_timeout", &self.request_timeout)
            .field("recall_timeout", &self.recall_timeout)
            .field("encryption_key_file", &self.encryption_key_file)
            .finish()
    }
}

/// Options that shape the FUSE mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountConfig {
    /// Let users other than the mounting user access the mount.
    pub allow_other: bool,
    /// Let the kernel check permissions against file modes (required with `allow_other`).
    pub default_permissions: bool,
    /// Number of FUSE request threads.
    pub threads: usize,
    /// How long the kernel may cache attributes and names.
    pub attr_timeout: Duration,
    /// Mount read-only.
    pub read_only: bool,
    /// Most files and directories one user (other than root) may hold open
    /// through the mount at once (`mount.max_open_per_user`, default 4096);
    /// further opens by that user fail with `EMFILE`.
    pub max_open_per_user: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    hot_dir: Option<PathBuf>,
    catalog: Option<PathBuf>,
    control_socket: Option<PathBuf>,
    log_level: Option<String>,
    log_file: Option<PathBuf>,
    watch_hot_dir: Option<bool>,
    access_flush_interval: Option<String>,
    migrate_interval: Option<String>,
    gc_grace: Option<String>,
    catalog_backup_interval: Option<String>,
    catalog_backup_keep: Option<usize>,
    control_group: Option<String>,
    #[serde(default)]
    mount: RawMount,
    #[serde(default)]
    remote: BTreeMap<String, RemoteConfig>,
    #[serde(default)]
    cost: CostConfig,
    metrics: Option<RawMetrics>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMount {
    allow_other: Option<bool>,
    default_permissions: Option<bool>,
    threads: Option<usize>,
    attr_timeout: Option<String>,
    read_only: Option<bool>,
    max_open_per_user: Option<usize>,
}

impl Config {
    /// Reads, parses and validates the config file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let source = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let config = Self::from_toml(&text, &source)?;
        let remotes: Vec<&RemoteConfig> = config.remotes.values().collect();
        secrets::check(&source, &remotes)?;
        Ok(config)
    }

    /// Parses and validates config text; `source` is used in messages and to
    /// resolve relative paths (relative to the file's directory).
    ///
    /// Messages quote at most a short excerpt of the text ([`EXCERPT_MAX`]
    /// characters): a huge value or line is never echoed whole.
    pub fn from_toml(text: &str, source: &Path) -> Result<Config, ConfigError> {
        Self::from_toml_unshortened(text, source).map_err(ConfigError::shortened)
    }

    fn from_toml_unshortened(text: &str, source: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: source.to_path_buf(),
            message: parse_message(text, &e),
        })?;
        let invalid = |key: &'static str, message: String| ConfigError::Invalid {
            path: source.to_path_buf(),
            key,
            message,
        };
        let base = source.parent().unwrap_or(Path::new("/"));
        let resolve = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };

        let hot_dir = resolve(
            raw.hot_dir
                .ok_or_else(|| invalid("hot_dir", "is required".into()))?,
        );
        let meta = std::fs::metadata(&hot_dir)
            .map_err(|e| invalid("hot_dir", format!("{}: {e}", hot_dir.display())))?;
        if !meta.is_dir() {
            return Err(invalid(
                "hot_dir",
                format!("{} is not a directory", hot_dir.display()),
            ));
        }
        let hot_dir = hot_dir
            .canonicalize()
            .map_err(|e| invalid("hot_dir", format!("{}: {e}", hot_dir.display())))?;

        let catalog = match raw.catalog {
            Some(p) => resolve(p),
            None => default_catalog_path(&hot_dir),
        };
        let catalog = absolute_with_existing_parent(&catalog)
            .map_err(|m| invalid("catalog", format!("{}: {m}", catalog.display())))?;
        if catalog.starts_with(&hot_dir) {
            return Err(invalid(
                "catalog",
                format!(
                    "{} is inside hot_dir {}; the catalog must live outside the data it describes",
                    catalog.display(),
                    hot_dir.display()
                ),
            ));
        }

        let control_socket = match raw.control_socket {
            Some(p) => resolve(p),
            None => catalog.with_extension("sock"),
        };
        let control_socket = absolute_with_existing_parent(&control_socket).map_err(|m| {
            invalid(
                "control_socket",
                format!("{}: {m}", control_socket.display()),
            )
        })?;
        if control_socket.as_os_str().len() >= 108 {
            return Err(invalid(
                "control_socket",
                format!(
                    "{} is longer than the 107 bytes a Unix socket path may have",
                    control_socket.display()
                ),
            ));
        }

        let log_level = raw.log_level.unwrap_or_else(|| "info".into());
        if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
            return Err(invalid(
                "log_level",
                format!("`{log_level}` is not a level (error, warn, info, debug, trace) or filter"),
            ));
        }

        let log_file = match raw.log_file {
            Some(p) => Some(
                absolute_with_existing_parent(&resolve(p.clone()))
                    .map_err(|m| invalid("log_file", format!("{}: {m}", p.display())))?,
            ),
            None => None,
        };

        let access_flush_interval =
            parse_duration(raw.access_flush_interval.as_deref().unwrap_or("30s"))
                .map_err(|m| invalid("access_flush_interval", m))?;

        let threads = raw.mount.threads.unwrap_or(4);
        if !(1..=64).contains(&threads) {
            return Err(invalid(
                "mount.threads",
                format!("{threads} is out of range 1..=64"),
            ));
        }
        let attr_timeout = parse_duration(raw.mount.attr_timeout.as_deref().unwrap_or("1s"))
            .map_err(|m| invalid("mount.attr_timeout", m))?;
        let max_open_per_user = raw.mount.max_open_per_user.unwrap_or(4096);
        if max_open_per_user == 0 {
            return Err(invalid(
                "mount.max_open_per_user",
                "must be at least 1".into(),
            ));
        }
        let allow_other = raw.mount.allow_other.unwrap_or(false);
        let default_permissions = raw.mount.default_permissions.unwrap_or(true);
        if allow_other && !default_permissions {
            return Err(invalid(
                "mount.default_permissions",
                "must be true when allow_other is set: tierfs relies on the kernel to check \
                 permissions for other users"
                    .into(),
            ));
        }

        let migrate_interval = match raw.migrate_interval.as_deref().unwrap_or("1h").trim() {
            "off" | "never" | "0" => None,
            text => Some(parse_duration(text).map_err(|m| invalid("migrate_interval", m))?),
        };
        let gc_grace = parse_duration(raw.gc_grace.as_deref().unwrap_or("30d"))
            .map_err(|m| invalid("gc_grace", m))?;

        let catalog_backup_interval = match raw
            .catalog_backup_interval
            .as_deref()
            .unwrap_or("6h")
            .trim()
        {
            "off" | "never" | "0" => None,
            text => Some(parse_duration(text).map_err(|m| invalid("catalog_backup_interval", m))?),
        };
        let catalog_backup_keep = raw.catalog_backup_keep.unwrap_or(7);
        if catalog_backup_keep == 0 {
            return Err(invalid(
                "catalog_backup_keep",
                "must be at least 1 (the newest backup is always kept)".into(),
            ));
        }

        let control_group = match &raw.control_group {
            Some(name) => Some(group::resolve(name).map_err(|m| invalid("control_group", m))?),
            None => None,
        };

        let mut remotes = raw.remote;
        for (name, remote) in remotes.iter_mut() {
            remote.name = name.clone();
            validate_remote(remote).map_err(|m| ConfigError::InvalidRemote {
                path: source.to_path_buf(),
                remote: name.clone(),
                message: m,
            })?;
        }

        let mut cost = raw.cost;
        if !cost.local_per_tb_month.is_finite() || cost.local_per_tb_month < 0.0 {
            return Err(invalid(
                "cost.local_per_tb_month",
                format!("{} is not a price (a number >= 0)", cost.local_per_tb_month),
            ));
        }
        cost.prices = cost.prices.map(resolve);
        if let Some(name) = cost.providers.keys().find(|n| !remotes.contains_key(*n)) {
            return Err(invalid(
                "cost.providers",
                format!("`{name}` is not a configured remote (no [remote.{name}] section)"),
            ));
        }
        let metrics = match raw.metrics {
            None => None,
            Some(m) => {
                let listen: std::net::SocketAddr = m.listen.parse().map_err(|e| {
                    invalid(
                        "metrics.listen",
                        format!("`{}` is not an address:port ({e})", m.listen),
                    )
                })?;
                if !listen.ip().is_loopback() && !m.allow_remote.unwrap_or(false) {
                    return Err(invalid(
                        "metrics.listen",
                        format!(
                            "{listen} is not a loopback address; metrics reveal file counts and \
                             sizes, so serving them to the network needs `allow_remote = true`"
                        ),
                    ));
                }
                Some(MetricsConfig { listen })
            }
        };

        Ok(Config {
            source: source.to_path_buf(),
            hot_dir,
            catalog,
            control_socket,
            log_level,
            log_file,
            mount: MountConfig {
                allow_other,
                default_permissions,
                threads,
                attr_timeout,
                read_only: raw.mount.read_only.unwrap_or(false),
                max_open_per_user,
            },
            watch_hot_dir: raw.watch_hot_dir.unwrap_or(true),
            access_flush_interval,
            remotes,
            migrate_interval,
            gc_grace,
            cost,
            metrics,
            catalog_backup_interval,
            catalog_backup_keep,
            control_group,
        })
    }
}

/// Checks what can be checked about a remote without touching the network.
fn validate_remote(r: &RemoteConfig) -> Result<(), String> {
    if r.name.is_empty()
        || !r
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err("names may only use letters, digits, `-` and `_`".into());
    }
    let scheme = r.url.split_once("://").map(|(s, _)| s).unwrap_or("");
    if !["s3", "gs", "az", "file"].contains(&scheme) {
        return Err(format!(
            "key `url`: `{}` must start with s3://, gs://, az:// or file://",
            r.url
        ));
    }
    if let Some(ep) = &r.endpoint
        && ep.starts_with("http://")
        && !r.allow_http
    {
        return Err(format!(
            "key `endpoint`: `{ep}` is plain http; set allow_http = true to allow it"
        ));
    }
    if r.access_key_id.is_some() != r.secret_access_key.is_some() {
        return Err("keys `access_key_id` and `secret_access_key` must be given together".into());
    }
    if let Some(n) = r.max_concurrency
        && !(1..=256).contains(&n)
    {
        return Err(format!(
            "key `max_concurrency`: {n} is out of range 1..=256"
        ));
    }
    if let Some(n) = r.max_files_in_flight
        && !(1..=1024).contains(&n)
    {
        return Err(format!(
            "key `max_files_in_flight`: {n} is out of range 1..=1024"
        ));
    }
    if let Some(t) = &r.request_timeout {
        parse_duration(t).map_err(|m| format!("key `request_timeout`: {m}"))?;
    }
    if let Some(p) = &r.part_size {
        parse_size(p).map_err(|m| format!("key `part_size`: {m}"))?;
    }
    Ok(())
}

/// Parses a byte size such as `100MB` (10^6), `1GiB` (2^30), `512` (bytes).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size (e.g. 512KiB, 100MB, 1GiB)"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        "PB" => 1_000_000_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        "PiB" => 1 << 50,
        other => {
            return Err(format!(
                "`{s}`: unknown unit `{other}` (use B, KB, MB, GB, TB, PB, KiB, MiB, GiB, TiB, PiB)"
            ));
        }
    };
    Ok((value * mult as f64).round() as u64)
}

/// Default catalog location: beside the hot dir, e.g. `/srv/.files-hot` →
/// `/srv/.files-hot.tierfs.db`.
pub fn default_catalog_path(hot_dir: &Path) -> PathBuf {
    let name = hot_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "root".into());
    hot_dir
        .parent()
        .unwrap_or(Path::new("/"))
        .join(format!("{name}.tierfs.db"))
}

fn absolute_with_existing_parent(p: &Path) -> Result<PathBuf, String> {
    let abs = std::path::absolute(p).map_err(|e| e.to_string())?;
    let parent = abs.parent().ok_or("has no parent directory")?;
    if !parent.is_dir() {
        return Err(format!(
            "parent directory {} does not exist",
            parent.display()
        ));
    }
    let parent = parent.canonicalize().map_err(|e| e.to_string())?;
    Ok(parent.join(abs.file_name().ok_or("has no file name")?))
}

/// Parses a human duration such as `30s`, `5m`, `250ms`, `1h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("`{s}` is not a duration ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("hot")).unwrap();
        let cfg = dir.path().join("t.toml");
        std::fs::write(&cfg, text).unwrap();
        // Owner-only, as a config holding credentials must be.
        std::fs::set_permissions(&cfg, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let r = Config::load(&cfg);
        drop(dir);
        r
    }

    #[test]
    fn errors_quote_only_a_short_excerpt() {
        let huge = "x".repeat(1 << 20);
        for text in [
            format!("hot_dir = \"hot\"\nlog_level = {huge}\n"),
            format!("hot_dir = \"hot\"\ncatalog = \"/nonexistent/{huge}/c.db\"\n"),
            format!("hot_dir = \"hot\"\n[remote.{huge}]\nurl = 5\n"),
        ] {
            let e = load(&text).unwrap_err().to_string();
            assert!(e.len() < 600, "{} bytes: {}", e.len(), &e[..600]);
        }
        let e = load(&format!("hot_dir = \"hot\"\nlog_level = {huge}\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2, column 13"), "{e}");
        assert_eq!(excerpt("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
    }

    #[test]
    fn minimal_config_fills_defaults() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("hot")).unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(&path, "hot_dir = \"hot\"\n").unwrap();
        let c = Config::load(&path).unwrap();
        let root = dir.path().canonicalize().unwrap();
        assert_eq!(c.hot_dir, root.join("hot"));
        assert_eq!(c.catalog, root.join("hot.tierfs.db"));
        assert_eq!(c.control_socket, root.join("hot.tierfs.sock"));
        assert!(c.mount.default_permissions);
        assert!(!c.mount.allow_other);
        assert_eq!(c.mount.threads, 4);
        assert_eq!(c.access_flush_interval, Duration::from_secs(30));
    }

    #[test]
    fn unknown_key_is_named() {
        let e = load("hot_dir = \"hot\"\nhotdir = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("hotdir"), "{e}");
    }

    #[test]
    fn unknown_mount_key_is_named() {
        let e = load("hot_dir = \"hot\"\n[mount]\nallow_others = true\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("allow_others"), "{e}");
    }

    #[test]
    fn missing_hot_dir_is_named() {
        let e = load("hot_dir = \"nope\"\n").unwrap_err().to_string();
        assert!(e.contains("hot_dir") && e.contains("nope"), "{e}");
        let e = load("log_level = \"info\"\n").unwrap_err().to_string();
        assert!(e.contains("`hot_dir`: is required"), "{e}");
    }

    #[test]
    fn catalog_parent_must_exist_and_be_outside_hot_dir() {
        let e = load("hot_dir = \"hot\"\ncatalog = \"no/such/dir/c.db\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`catalog`") && e.contains("does not exist"),
            "{e}"
        );
        let e = load("hot_dir = \"hot\"\ncatalog = \"hot/c.db\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`catalog`") && e.contains("inside hot_dir"),
            "{e}"
        );
    }

    #[test]
    fn allow_other_requires_default_permissions() {
        let e =
            load("hot_dir = \"hot\"\n[mount]\nallow_other = true\ndefault_permissions = false\n")
                .unwrap_err()
                .to_string();
        assert!(e.contains("mount.default_permissions"), "{e}");
    }

    #[test]
    fn issue_example_remote_parses() {
        let c = load(
            "hot_dir = \"hot\"\n[remote.cloud]\nurl = \"s3://my-bucket/tier\"\n\
             endpoint = \"https://s3.us-west-004.backblazeb2.com\"\nregion = \"us-west-004\"\n\
             access_key_id = \"AK\"\nsecret_access_key = \"SECRET\"\nallow_http = false\n",
        )
        .unwrap();
        let r = &c.remotes["cloud"];
        assert_eq!(r.name, "cloud");
        assert_eq!(r.region.as_deref(), Some("us-west-004"));
        assert!(!format!("{r:?}").contains("SECRET"));
    }

    #[test]
    fn bad_remotes_are_named() {
        let e = load("hot_dir = \"hot\"\n[remote.x]\nurl = \"ftp://h/p\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("remote `x`") && e.contains("url"), "{e}");
        let e = load(
            "hot_dir = \"hot\"\n[remote.x]\nurl = \"s3://b\"\nendpoint = \"http://127.0.0.1:1\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("allow_http"), "{e}");
        let e = load("hot_dir = \"hot\"\n[remote.x]\nurl = \"s3://b\"\nsecret = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("secret"), "{e}");
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("100MB").unwrap(), 100_000_000);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("512").unwrap(), 512);
        assert_eq!(parse_size("1.5KiB").unwrap(), 1536);
        assert!(parse_size("5 parsecs").is_err());
        assert!(parse_size("MB").is_err());
    }

    #[test]
    fn cost_section_defaults_and_checks() {
        let c = load("hot_dir = \"hot\"\n").unwrap();
        assert_eq!(c.cost, CostConfig::default());
        assert_eq!(c.cost.local_per_tb_month, 12.0);
        let c = load(
            "hot_dir = \"hot\"\n[remote.b]\nurl = \"file:///tmp/x\"\n[cost]\nlocal_per_tb_month = 20.0\nprices = \"p.toml\"\n[cost.providers]\nb = \"b2\"\n",
        )
        .unwrap();
        assert_eq!(c.cost.local_per_tb_month, 20.0);
        assert!(c.cost.prices.unwrap().is_absolute());
        assert_eq!(c.cost.providers["b"], "b2");
        let e = load("hot_dir = \"hot\"\n[cost.providers]\nnope = \"b2\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cost.providers") && e.contains("nope"), "{e}");
        let e = load("hot_dir = \"hot\"\n[cost]\nlocal_per_tb_month = -1.0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cost.local_per_tb_month"), "{e}");
        let e = load("hot_dir = \"hot\"\n[cost]\nlocal = 1.0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field"), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        let e = load("hot_dir = \"hot\"\nlog_level = \"loud=?\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("log_level"), "{e}");
        let e = load("hot_dir = \"hot\"\naccess_flush_interval = \"soon\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("access_flush_interval"), "{e}");
        let e = load("hot_dir = \"hot\"\n[mount]\nthreads = 0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("mount.threads"), "{e}");
    }
}

#[cfg(test)]
mod metrics_tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("hot")).unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(&path)
    }

    #[test]
    fn metrics_are_off_by_default_and_loopback_only_unless_allowed() {
        assert_eq!(load("hot_dir = \"hot\"\n").unwrap().metrics, None);
        let c = load("hot_dir = \"hot\"\n[metrics]\nlisten = \"127.0.0.1:9184\"\n").unwrap();
        assert_eq!(c.metrics.unwrap().listen.to_string(), "127.0.0.1:9184");
        let e = load("hot_dir = \"hot\"\n[metrics]\nlisten = \"0.0.0.0:9184\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("metrics.listen") && e.contains("allow_remote"),
            "{e}"
        );
        let c =
            load("hot_dir = \"hot\"\n[metrics]\nlisten = \"0.0.0.0:9184\"\nallow_remote = true\n")
                .unwrap();
        assert!(c.metrics.is_some());
        let e = load("hot_dir = \"hot\"\n[metrics]\nlisten = \"localhost\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("metrics.listen") && e.contains("localhost"),
            "{e}"
        );
    }
}
