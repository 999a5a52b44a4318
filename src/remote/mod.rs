//! Remotes: the object stores cold files are migrated to.
//!
//! A [`Remote`] wraps one `[remote.NAME]` section (S3 and S3-compatible
//! stores such as Backblaze B2 or SeaweedFS, Google Cloud Storage, Azure
//! Blob Storage, or a local directory) behind the few operations tiering
//! needs: upload a file under its content hash ([`Remote::put_file`]),
//! check it ([`Remote::verify`]), read it back ([`Remote::get_range`],
//! [`Remote::download_to`]), delete it, list everything (for fsck/gc), and
//! a step-by-step connectivity check for `tierctl remote test`
//! ([`Remote::self_test`]).
//!
//! # Keys
//! Objects are content-addressed: the file with blake3 hash `H` is stored
//! at `<prefix>/data/<hex(H)>` ([`Remote::object_key`]). Every operation
//! that takes a key refuses keys outside the remote's prefix.
//!
//! # Integrity
//! Uploads hash the bytes as they are read and sent; if they do not hash
//! to the caller's expected hash the upload is abandoned (multipart
//! uploads are aborted) and [`RemoteError::SourceChanged`] is returned.
//! Where the backend supports user metadata (not `file://`), objects carry
//! `tierfs_blake3` and `tierfs_size`. Reads are checked end-to-end with
//! blake3 ([`Remote::verify`], [`Remote::download_to`]).
//!
//! # Timeouts and retries
//! Requests have no whole-request timeout (it would kill large transfers).
//! Instead `request_timeout` (default 60 s) bounds the time without a byte
//! from the server — for a part upload, the time to send the part and get
//! the answer, so a part of `part_size` must go out within it — and the
//! total time spent retrying one request (5xx, 429, connection errors). A
//! dead endpoint is therefore reported as [`RemoteError::Unreachable`]
//! after about one `request_timeout`, never as a hang.
//!
//! # Credentials
//! From the section, else from the environment the way each cloud's tools
//! read it (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`/
//! `AWS_REGION`/`AWS_ENDPOINT_URL`, `GOOGLE_APPLICATION_CREDENTIALS`,
//! `AZURE_STORAGE_ACCOUNT_NAME`/`AZURE_STORAGE_ACCOUNT_KEY`). Never from
//! cloud instance-metadata endpoints. Secrets never appear in `Debug`
//! output, logs or error messages.
//!
//! # Backend notes
//! * Backblaze B2 (an endpoint under `backblazeb2.com`): no checksum
//!   headers and no storage class are ever sent; conditional puts are off.
//! * `file://`: `LocalFileSystem` with fsync; no metadata or storage class
//!   (the directory must exist).

mod abort;
mod backend;
mod buffers;
mod catalog_backup;
pub mod crypt;
mod error;
pub mod health;
mod selftest;
mod transfer;

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::TryStreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::config::RemoteConfig;

use backend::Backend;
pub use catalog_backup::BACKUP_SUFFIX;
pub use error::RemoteError;
pub use health::{HealthReport, HealthState, RemoteHealth};
pub use selftest::{RemoteTestReport, StepStatus, TestStep};

/// Object metadata keys (C#-identifier style so Azure accepts them).
pub const META_BLAKE3: &str = "tierfs_blake3";
/// See [`META_BLAKE3`].
pub const META_SIZE: &str = "tierfs_size";

/// Per-upload choices; `None` means the remote's configured default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutOptions {
    /// Storage class (S3 `x-amz-storage-class`, GCS storage class, Azure
    /// access tier). Ignored for B2 and `file://`.
    pub storage_class: Option<String>,
    /// Multipart part size in bytes (raised to at least 8 MiB and to what
    /// keeps the upload within 10,000 parts).
    pub part_size: Option<u64>,
    /// Parts in flight at once (default: the remote's `max_concurrency`).
    pub concurrency: Option<usize>,
    /// Skip asking whether the object already exists (one HEAD): for content
    /// nothing has recorded before. Objects are named by their content, so
    /// uploading over an existing one rewrites the same bytes.
    pub assume_new: bool,
}

/// What [`Remote::put_file`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOutcome {
    /// The object's key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// The store's ETag, if any (opaque; differs per backend).
    pub e_tag: Option<String>,
    /// The object already existed with the right size, so nothing was sent.
    pub already_present: bool,
}

/// One object, as listed or HEADed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The full key (including the remote's prefix).
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// The store's ETag, if any.
    pub e_tag: Option<String>,
    /// When the object was last written.
    pub last_modified: SystemTime,
}

/// A configured object store. Cheap to clone (shared inside).
#[derive(Clone)]
pub struct Remote {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    url: String,
    backend: Backend,
    /// "" or "some/prefix" (no leading or trailing slash).
    prefix: String,
    store: Arc<dyn ObjectStore>,
    storage_class: Option<String>,
    max_concurrency: usize,
    max_files_in_flight: usize,
    part_size: Option<u64>,
    /// Upload buffers in flight, in KiB: at most `max_concurrency` parts'
    /// worth however many files are being sent at once.
    upload_buffers: Arc<tokio::sync::Semaphore>,
    /// Capacity of `upload_buffers` (KiB).
    upload_buffer_kib: u32,
    request_timeout: Duration,
    recall_timeout: Duration,
    credentials: String,
    secrets: Vec<String>,
    health: RemoteHealth,
    /// Client-side encryption (`encryption_key_file`), if enabled.
    crypt: Option<crypt::Crypt>,
    /// Aborts of uploads dropped mid-way, awaited at shutdown.
    aborts: abort::PendingAborts,
    /// Part and read-back buffers, reused (their number in use is bounded
    /// by `upload_buffers`).
    buffers: Arc<buffers::BufferPool>,
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("name", &self.inner.name)
            .field("url", &self.inner.url)
            .field("endpoint", &self.inner.backend.endpoint())
            .field("credentials", &self.inner.credentials)
            .finish_non_exhaustive()
    }
}

impl Remote {
    /// On a `file://` remote, gives the object just written at `loc` mode
    /// 0600 and every directory from the remote's root down to it mode 0700,
    /// whatever the umask of the process that wrote it (the object store
    /// creates files 0666 and directories 0777 masked by the umask). Best
    /// effort: a failure is logged, the object itself is already stored.
    pub(crate) async fn make_private(&self, loc: &ObjPath) {
        use std::os::unix::fs::PermissionsExt;
        let Backend::File { root } = &self.inner.backend else {
            return;
        };
        let root = root.clone();
        let rel = loc.as_ref().to_string();
        let done = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let object = root.join(&rel);
            let set = |p: &Path, mode: u32| -> std::io::Result<()> {
                let m = std::fs::symlink_metadata(p)?;
                if m.file_type().is_symlink() {
                    return Err(std::io::Error::from_raw_os_error(libc::ELOOP));
                }
                if m.permissions().mode() & 0o7777 != mode {
                    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))?;
                }
                Ok(())
            };
            set(&object, 0o600)?;
            let mut dir = object.parent();
            while let Some(d) = dir {
                if d == root || !d.starts_with(&root) {
                    break;
                }
                set(d, 0o700)?;
                dir = d.parent();
            }
            Ok(())
        })
        .await;
        if let Ok(Err(e)) | Err(e) = done.map_err(std::io::Error::other) {
            tracing::warn!(object = %loc, error = %e, "cannot make the stored object private");
        }
    }

    /// Builds the remote for a config section. No network I/O: a bad URL,
    /// missing credentials or a missing `file://` directory fail here, but
    /// wrong credentials or an unreachable endpoint only show on first use
    /// (or with [`Remote::self_test`]).
    pub fn from_config(cfg: &RemoteConfig) -> Result<Remote, RemoteError> {
        Self::from_config_with_env(cfg, &|k| std::env::var(k).ok())
    }

    fn from_config_with_env(
        cfg: &RemoteConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Remote, RemoteError> {
        let built = backend::build(cfg, env)?;
        let crypt = match &cfg.encryption_key_file {
            Some(path) => Some(crypt::Crypt::load(path).map_err(|e| RemoteError::Config {
                remote: cfg.name.clone(),
                message: format!("key `encryption_key_file`: {e}"),
            })?),
            None => None,
        };
        let part = transfer::part_size_for(0, built.part_size);
        let upload_buffer_kib =
            u32::try_from((part / 1024).saturating_mul(built.max_concurrency as u64))
                .unwrap_or(u32::MAX)
                .min(tokio::sync::Semaphore::MAX_PERMITS as u32);
        Ok(Remote {
            inner: Arc::new(Inner {
                name: cfg.name.clone(),
                url: cfg.url.clone(),
                backend: built.backend,
                prefix: built.prefix,
                store: built.store,
                storage_class: cfg.storage_class.clone(),
                max_concurrency: built.max_concurrency,
                max_files_in_flight: built.max_files_in_flight,
                upload_buffers: Arc::new(tokio::sync::Semaphore::new(upload_buffer_kib as usize)),
                upload_buffer_kib,
                part_size: built.part_size,
                request_timeout: built.request_timeout,
                recall_timeout: built.recall_timeout,
                credentials: built.credentials,
                secrets: built.secrets,
                health: RemoteHealth::new(&cfg.name),
                crypt,
                aborts: Default::default(),
                buffers: buffers::BufferPool::new(built.max_concurrency + 1),
            }),
        })
    }

    /// A remote named `name` keeping its objects in memory
    /// (`object_store::memory::InMemory`), for engine unit tests. `dir`
    /// stands in as its `file://` root (nothing is written there).
    #[cfg(test)]
    pub(crate) fn in_memory(name: &str, dir: &Path) -> Remote {
        let cfg = RemoteConfig {
            name: name.to_string(),
            url: format!("file://{}", dir.display()),
            ..Default::default()
        };
        let mut remote = Remote::from_config(&cfg).expect("a file:// remote");
        Arc::get_mut(&mut remote.inner)
            .expect("not shared yet")
            .store = Arc::new(object_store::memory::InMemory::new());
        remote
    }

    /// The section name (`[remote.NAME]`).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Waits, at most `timeout`, for the aborts of uploads that were
    /// dropped mid-way (a migration stopped at shutdown), so the store is
    /// left without their parts.
    pub async fn finish_aborts(&self, timeout: Duration) {
        self.inner.aborts.finish(timeout).await;
    }

    /// `s3`, `gcs`, `azure` or `file`.
    pub fn kind(&self) -> &'static str {
        self.inner.backend.kind()
    }

    /// The configured URL (`s3://bucket/prefix`…).
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// The URL requests go to.
    pub fn endpoint(&self) -> String {
        self.inner.backend.endpoint()
    }

    /// The default storage class, if any is configured and the backend
    /// takes one.
    pub fn storage_class(&self) -> Option<&str> {
        self.inner.storage_class.as_deref()
    }

    /// Where the credentials come from, e.g. "config (access_key_id)" or
    /// "environment (AWS_ACCESS_KEY_ID)". Never contains a secret.
    pub fn credential_source(&self) -> &str {
        &self.inner.credentials
    }

    /// The remote's `request_timeout`.
    pub fn request_timeout(&self) -> Duration {
        self.inner.request_timeout
    }

    /// The remote's `recall_timeout`: how long a read of a cold file waits
    /// for this remote before failing with `EIO` (default 60 s).
    pub fn recall_timeout(&self) -> Duration {
        self.inner.recall_timeout
    }

    /// Whether the remote answered its last requests.
    pub fn health(&self) -> &RemoteHealth {
        &self.inner.health
    }

    /// The remote's `max_concurrency`.
    pub fn max_concurrency(&self) -> usize {
        self.inner.max_concurrency
    }

    /// The remote's `max_files_in_flight`: files migrated to it at once.
    pub fn max_files_in_flight(&self) -> usize {
        self.inner.max_files_in_flight
    }

    /// Waits until `bytes` more upload buffer fits in this remote's budget
    /// (`max_concurrency` × part size, shared by every upload); the budget
    /// gets it back when the permit drops. A request larger than the whole
    /// budget waits for all of it.
    pub(crate) async fn reserve_upload_buffer(
        &self,
        bytes: u64,
    ) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, self.inner.upload_buffer_kib.max(1));
        // The semaphore is never closed; if it were, go on without a permit.
        Arc::clone(&self.inner.upload_buffers)
            .acquire_many_owned(kib)
            .await
            .ok()
    }

    /// One line for humans, e.g. `s3://my-bucket/tier at
    /// https://s3.us-west-004.backblazeb2.com (region us-west-004, Backblaze B2)`.
    pub fn describe(&self) -> String {
        let url = &self.inner.url;
        match &self.inner.backend {
            Backend::S3 {
                endpoint,
                region,
                b2,
                ..
            } => {
                let at = endpoint
                    .clone()
                    .unwrap_or_else(|| self.inner.backend.endpoint());
                let b2 = if *b2 { ", Backblaze B2" } else { "" };
                format!("{url} at {at} (region {region}{b2})")
            }
            Backend::Gcs { base_url, .. } => format!("{url} at {base_url}"),
            Backend::Azure {
                endpoint, account, ..
            } => format!("{url} at {endpoint} (account {account})"),
            Backend::File { root } => format!("{url} (local directory {})", root.display()),
        }
    }

    /// `<prefix>/data/<hex>`: where the content with this hash is stored.
    pub fn object_key(&self, hash: &blake3::Hash) -> String {
        match &self.inner.crypt {
            // Encrypted: a keyed name that does not reveal the content hash.
            Some(c) => format!("{}{}", self.data_prefix(), c.object_name(hash)),
            None => format!("{}{}", self.data_prefix(), hash.to_hex()),
        }
    }

    /// Bytes an object holding `plain` bytes of content takes on this
    /// remote (more than `plain` when encrypted).
    pub fn stored_size(&self, plain: u64) -> u64 {
        match &self.inner.crypt {
            Some(_) => crypt::Crypt::encrypted_size(plain),
            None => plain,
        }
    }

    /// Whether objects are encrypted before upload.
    pub fn is_encrypted(&self) -> bool {
        self.inner.crypt.is_some()
    }

    /// `<prefix>/data/` (or `data/` without a prefix).
    pub fn data_prefix(&self) -> String {
        format!("{}data/", self.prefix_slash())
    }

    fn prefix_slash(&self) -> String {
        if self.inner.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.inner.prefix)
        }
    }

    /// Checks that `key` is a clean key under this remote's prefix.
    fn location(&self, key: &str, op: &str) -> Result<ObjPath, RemoteError> {
        let bad = |why: &str| RemoteError::Other {
            remote: self.inner.name.clone(),
            op: format!("{op} {key}"),
            detail: why.to_string(),
        };
        let prefix = self.prefix_slash();
        if !key.starts_with(&prefix) || key.len() == prefix.len() {
            return Err(bad(&format!(
                "key is not under this remote's prefix `{prefix}`"
            )));
        }
        if key
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
        {
            return Err(bad("key has an empty, `.` or `..` segment"));
        }
        ObjPath::parse(key).map_err(|e| bad(&format!("invalid key: {e}")))
    }

    fn redact(&self, mut s: String) -> String {
        for secret in &self.inner.secrets {
            if s.contains(secret.as_str()) {
                s = s.replace(secret.as_str(), "<redacted>");
            }
        }
        s
    }

    /// Maps an `object_store` error for operation `op` on `key`.
    fn map_err(&self, op: &str, key: &str, e: object_store::Error) -> RemoteError {
        let what = if key.is_empty() {
            op.to_string()
        } else {
            format!("{op} {key}")
        };
        let class = error::classify(&e);
        let mapped = self.map_class(what, key, class);
        match &mapped {
            RemoteError::Unreachable { .. } | RemoteError::Timeout { .. } => {
                self.inner.health.record_down(&mapped.to_string())
            }
            _ => self.inner.health.record_up(),
        }
        mapped
    }

    fn map_class(&self, what: String, key: &str, class: error::Class) -> RemoteError {
        use error::Class;
        let remote = self.inner.name.clone();
        match class {
            Class::Unreachable(d) => RemoteError::Unreachable {
                remote,
                detail: self.redact(format!(
                    "{what}: cannot reach {}: {d}",
                    self.inner.backend.endpoint()
                )),
            },
            Class::Timeout => RemoteError::Timeout {
                remote,
                op: format!(
                    "{what} (no answer within request_timeout {})",
                    humantime::format_duration(self.inner.request_timeout)
                ),
            },
            Class::Unauthenticated(d) => RemoteError::Unauthenticated {
                remote,
                detail: self.redact(format!(
                    "{what}: {}; check {}",
                    error::summarize(&d),
                    self.credential_hint()
                )),
            },
            Class::PermissionDenied(d) => RemoteError::PermissionDenied {
                remote,
                op: what,
                detail: self.redact(error::summarize(&d)),
            },
            Class::NotFound => RemoteError::NotFound {
                remote,
                key: key.to_string(),
            },
            Class::Other(d) => RemoteError::Other {
                remote,
                op: what,
                detail: self.redact(error::summarize(&d)),
            },
        }
    }

    fn credential_hint(&self) -> String {
        let keys = match self.inner.backend {
            Backend::S3 { .. } => {
                "access_key_id / secret_access_key (or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)"
            }
            Backend::Gcs { .. } => "service_account_path (or GOOGLE_APPLICATION_CREDENTIALS)",
            Backend::Azure { .. } => {
                "account / access_key (or AZURE_STORAGE_ACCOUNT_NAME / AZURE_STORAGE_ACCOUNT_KEY)"
            }
            Backend::File { .. } => "the directory's permissions",
        };
        format!("{keys}; credentials in use: {}", self.inner.credentials)
    }

    /// HEAD: the object's size and ETag, or `None` if it does not exist.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, RemoteError> {
        let loc = self.location(key, "HEAD")?;
        match self.inner.store.head(&loc).await {
            Ok(meta) => {
                self.inner.health.record_up();
                Ok(Some(ObjectInfo {
                    key: key.to_string(),
                    size: meta.size,
                    e_tag: meta.e_tag,
                    last_modified: meta.last_modified.into(),
                }))
            }
            Err(object_store::Error::NotFound { .. }) => {
                self.inner.health.record_up();
                Ok(None)
            }
            Err(e) => match self.map_err("HEAD", key, e) {
                RemoteError::NotFound { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    /// Deletes the object; deleting a missing object is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), RemoteError> {
        let loc = self.location(key, "DELETE")?;
        match self.inner.store.delete(&loc).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                self.inner.health.record_up();
                Ok(())
            }
            Err(e) => match self.map_err("DELETE", key, e) {
                RemoteError::NotFound { .. } => Ok(()),
                other => Err(other),
            },
        }
    }

    /// Every object under `<prefix>/data/` (for fsck and garbage
    /// collection), in the store's listing order.
    pub async fn list_data(&self) -> Result<Vec<ObjectInfo>, RemoteError> {
        self.list_under(&self.data_prefix()).await
    }

    /// Every object whose key starts with `prefix` (a directory of this
    /// remote, ending in `/`), in the store's listing order. A missing
    /// directory of a `file://` remote is an empty listing.
    pub(crate) async fn list_under(&self, prefix: &str) -> Result<Vec<ObjectInfo>, RemoteError> {
        let loc = ObjPath::parse(prefix.trim_end_matches('/')).map_err(|e| RemoteError::Other {
            remote: self.inner.name.clone(),
            op: format!("LIST {prefix}"),
            detail: e.to_string(),
        })?;
        let metas: Vec<object_store::ObjectMeta> =
            match self.inner.store.list(Some(&loc)).try_collect().await {
                Ok(m) => m,
                Err(object_store::Error::NotFound { .. })
                    if matches!(self.inner.backend, Backend::File { .. }) =>
                {
                    Vec::new()
                }
                Err(e) => return Err(self.map_err("LIST", prefix, e)),
            };
        self.inner.health.record_up();
        Ok(metas
            .into_iter()
            .map(|m| ObjectInfo {
                key: m.location.to_string(),
                size: m.size,
                e_tag: m.e_tag,
                last_modified: m.last_modified.into(),
            })
            .collect())
    }

    /// Runs the `tierctl remote test` checks: reachability, credentials,
    /// write, read back and delete of a probe object under
    /// `<prefix>/probe/`, each timed, stopping at the first failure.
    pub async fn self_test(&self) -> RemoteTestReport {
        selftest::run(self).await
    }

    pub(crate) fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner.store
    }

    pub(crate) fn backend(&self) -> &Backend {
        &self.inner.backend
    }

    /// Whether the backend stores user metadata / storage classes.
    fn takes_attributes(&self) -> bool {
        !matches!(self.inner.backend, Backend::File { .. })
    }

    /// The storage class to send, if any: B2 and `file://` never get one.
    fn effective_storage_class(&self, opts: &PutOptions) -> Option<String> {
        let class = opts
            .storage_class
            .clone()
            .or_else(|| self.inner.storage_class.clone())?;
        match self.inner.backend {
            Backend::S3 { b2: true, .. } | Backend::File { .. } => None,
            _ => Some(class),
        }
    }
}

/// Wraps a local I/O error on `path` during `op` as [`RemoteError::Other`].
fn io_error(remote: &Remote, op: &str, path: &Path, e: &std::io::Error) -> RemoteError {
    RemoteError::Other {
        remote: remote.name().to_string(),
        op: format!("{op} {}", path.display()),
        detail: e.to_string(),
    }
}

#[cfg(test)]
mod tests;
