//! Building an `object_store` client from a `[remote.NAME]` section, without
//! network I/O.
//!
//! Credentials come from the section, else from the environment variables
//! each cloud's own tools read. Instance-metadata endpoints (EC2 IMDS, GCE
//! metadata server, Azure managed identity, ECS task roles) are **never**
//! used: a remote without explicit credentials is a configuration error, so
//! a misconfigured gateway fails at start with a message instead of
//! probing 169.254.169.254.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::{BackoffConfig, ClientOptions, RetryConfig};

use crate::config::{RemoteConfig, parse_duration, parse_size};

use super::RemoteError;
use super::error::chain_text;

/// Azurite's well-known development account (public, documented by
/// Microsoft; not a secret).
const AZURITE_ACCOUNT: &str = "devstoreaccount1";
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const AZURITE_DEFAULT_URL: &str = "http://127.0.0.1:10000";

/// rustls needs a process-wide crypto provider; install ring's once.
fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means another provider is already installed: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Default `recall_timeout`.
pub(crate) const DEFAULT_RECALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Default `request_timeout`.
pub(crate) const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `max_concurrency`.
pub(crate) const DEFAULT_CONCURRENCY: usize = 4;
/// Default `max_files_in_flight`: enough small files at once to hide the
/// per-request latency of a remote (a HEAD, a PUT and a GET each).
pub(crate) const DEFAULT_FILES_IN_FLIGHT: usize = 16;

/// Which object store, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Backend {
    S3 {
        bucket: String,
        /// Custom endpoint (B2, SeaweedFS, MinIO…); None = AWS.
        endpoint: Option<String>,
        region: String,
        /// Backblaze B2: no checksum headers, no storage class.
        b2: bool,
    },
    Gcs {
        bucket: String,
        base_url: String,
    },
    Azure {
        container: String,
        account: String,
        endpoint: String,
    },
    File {
        root: PathBuf,
    },
}

impl Backend {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Backend::S3 { .. } => "s3",
            Backend::Gcs { .. } => "gcs",
            Backend::Azure { .. } => "azure",
            Backend::File { .. } => "file",
        }
    }

    /// The URL requests go to (for messages; never contains secrets).
    pub(crate) fn endpoint(&self) -> String {
        match self {
            Backend::S3 {
                endpoint: Some(e), ..
            } => e.clone(),
            Backend::S3 { region, .. } => format!("https://s3.{region}.amazonaws.com"),
            Backend::Gcs { base_url, .. } => base_url.clone(),
            Backend::Azure { endpoint, .. } => endpoint.clone(),
            Backend::File { root } => root.display().to_string(),
        }
    }
}

/// Everything [`super::Remote`] needs, built from a config section.
pub(crate) struct Built {
    pub store: Arc<dyn ObjectStore>,
    pub backend: Backend,
    /// Key prefix inside the bucket, without leading/trailing `/` ("" = none).
    pub prefix: String,
    /// Where the credentials came from (no secret in it).
    pub credentials: String,
    /// Secret strings to scrub from any message.
    pub secrets: Vec<String>,
    pub request_timeout: Duration,
    /// How long a read of a cold file waits before failing with `EIO`.
    pub recall_timeout: Duration,
    pub max_concurrency: usize,
    pub max_files_in_flight: usize,
    pub part_size: Option<u64>,
}

type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Builds the store for `cfg`, reading credentials from `env` when the
/// section has none.
pub(crate) fn build(cfg: &RemoteConfig, env: Env<'_>) -> Result<Built, RemoteError> {
    install_crypto_provider();
    let name = cfg.name.clone();
    let config_err = |message: String| RemoteError::Config {
        remote: name.clone(),
        message,
    };

    let request_timeout = match &cfg.request_timeout {
        Some(t) => {
            parse_duration(t).map_err(|m| config_err(format!("key `request_timeout`: {m}")))?
        }
        None => DEFAULT_REQUEST_TIMEOUT,
    };
    if request_timeout < Duration::from_millis(100) {
        return Err(config_err(format!(
            "key `request_timeout`: {request_timeout:?} is too short (at least 100ms)"
        )));
    }
    let recall_timeout = match &cfg.recall_timeout {
        Some(t) => {
            parse_duration(t).map_err(|m| config_err(format!("key `recall_timeout`: {m}")))?
        }
        None => DEFAULT_RECALL_TIMEOUT,
    };
    if recall_timeout < Duration::from_millis(100) {
        return Err(config_err(format!(
            "key `recall_timeout`: {recall_timeout:?} is too short (at least 100ms)"
        )));
    }
    let max_concurrency = cfg.max_concurrency.unwrap_or(DEFAULT_CONCURRENCY);
    if !(1..=256).contains(&max_concurrency) {
        return Err(config_err(format!(
            "key `max_concurrency`: {max_concurrency} is out of range 1..=256"
        )));
    }
    let max_files_in_flight = cfg.max_files_in_flight.unwrap_or(DEFAULT_FILES_IN_FLIGHT);
    if !(1..=1024).contains(&max_files_in_flight) {
        return Err(config_err(format!(
            "key `max_files_in_flight`: {max_files_in_flight} is out of range 1..=1024"
        )));
    }
    let part_size = match &cfg.part_size {
        Some(p) => Some(parse_size(p).map_err(|m| config_err(format!("key `part_size`: {m}")))?),
        None => None,
    };

    let (scheme, rest) = cfg.url.split_once("://").ok_or_else(|| {
        config_err(format!(
            "key `url`: `{}` must look like s3://bucket/prefix, gs://bucket/prefix, \
             az://container/prefix or file:///path",
            cfg.url
        ))
    })?;

    let mut secrets = Vec::new();
    let (store, backend, prefix, credentials): (Arc<dyn ObjectStore>, _, _, _) = match scheme {
        "file" => {
            let root = file_root(&cfg.url).map_err(config_err)?;
            let fs = LocalFileSystem::new_with_prefix(&root)
                .map_err(|e| config_err(format!("{}: {}", root.display(), chain_text(&e))))?
                .with_fsync(true);
            (
                Arc::new(fs),
                Backend::File { root },
                String::new(),
                "local directory (no credentials)".to_string(),
            )
        }
        "s3" | "gs" | "az" => {
            let (bucket, prefix) = bucket_and_prefix(rest).map_err(config_err)?;
            let client = client_options(cfg.allow_http, request_timeout);
            let retry = retry_config(request_timeout);
            let (store, backend, credentials) = match scheme {
                "s3" => build_s3(cfg, env, bucket, client, retry, &mut secrets)?,
                "gs" => build_gcs(cfg, env, bucket, client, retry)?,
                _ => build_azure(cfg, env, bucket, client, retry, &mut secrets)?,
            };
            (store, backend, prefix, credentials)
        }
        other => {
            return Err(config_err(format!(
                "key `url`: unknown scheme `{other}://` (use s3://, gs://, az:// or file://)"
            )));
        }
    };
    secrets.retain(|s| s.len() >= 4);
    Ok(Built {
        store,
        backend,
        prefix,
        credentials,
        secrets,
        request_timeout,
        recall_timeout,
        max_concurrency,
        max_files_in_flight,
        part_size,
    })
}

/// HTTP client settings: no whole-request timeout (it would kill large
/// transfers on slow links), a connect timeout, and a read timeout of
/// `request_timeout` (time without a byte from the server; for an upload
/// that is the time to send one part and get its answer).
fn client_options(allow_http: bool, request_timeout: Duration) -> ClientOptions {
    ClientOptions::new()
        .with_timeout_disabled()
        .with_connect_timeout(request_timeout.min(Duration::from_secs(10)))
        .with_read_timeout(request_timeout)
        .with_allow_http(allow_http)
}

/// Retries (5xx, 429, connection errors, timeouts of idempotent requests)
/// stop once `request_timeout` has passed since the first attempt, so a
/// dead server is reported within about one `request_timeout`.
pub(crate) fn retry_config(request_timeout: Duration) -> RetryConfig {
    let max_backoff =
        (request_timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(15));
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff,
            base: 2.0,
        },
        max_retries: 10,
        retry_timeout: request_timeout,
    }
}

fn file_root(url: &str) -> Result<PathBuf, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("key `url`: `{url}`: {e}"))?;
    if parsed
        .host_str()
        .is_some_and(|h| !h.is_empty() && h != "localhost")
    {
        return Err(format!(
            "key `url`: `{url}` names a host; use file:///absolute/path"
        ));
    }
    let root = parsed
        .to_file_path()
        .map_err(|()| format!("key `url`: `{url}` is not an absolute file path"))?;
    match std::fs::metadata(&root) {
        Ok(m) if m.is_dir() => Ok(root),
        Ok(_) => Err(format!("key `url`: {} is not a directory", root.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
            "key `url`: directory {} does not exist; create it (tierfs does not create \
             remote directories, so a typo or an unmounted disk is noticed)",
            root.display()
        )),
        Err(e) => Err(format!("key `url`: {}: {e}", root.display())),
    }
}

/// Splits "bucket/some/prefix/" into ("bucket", "some/prefix"), checking
/// that the prefix is a clean key path.
fn bucket_and_prefix(rest: &str) -> Result<(String, String), String> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err("key `url`: the bucket (or container) name is missing".into());
    }
    let prefix = prefix.trim_matches('/');
    if !prefix.is_empty() {
        for seg in prefix.split('/') {
            if seg.is_empty() || seg == "." || seg == ".." {
                return Err(format!(
                    "key `url`: prefix `{prefix}` has an empty, `.` or `..` segment"
                ));
            }
        }
        object_store::path::Path::parse(prefix)
            .map_err(|e| format!("key `url`: prefix `{prefix}` is not a valid key: {e}"))?;
    }
    Ok((bucket.to_string(), prefix.to_string()))
}

/// First set variable among `names`, non-empty.
fn first_env(env: Env<'_>, names: &[&'static str]) -> Option<(&'static str, String)> {
    names
        .iter()
        .find_map(|n| env(n).filter(|v| !v.trim().is_empty()).map(|v| (*n, v)))
}

fn check_http(cfg: &RemoteConfig, url: &str, from: &str) -> Result<(), RemoteError> {
    if url.starts_with("http://") && !cfg.allow_http {
        return Err(RemoteError::Config {
            remote: cfg.name.clone(),
            message: format!(
                "endpoint `{url}` (from {from}) is plain http; set allow_http = true to allow it"
            ),
        });
    }
    Ok(())
}

fn build_s3(
    cfg: &RemoteConfig,
    env: Env<'_>,
    bucket: String,
    client: ClientOptions,
    retry: RetryConfig,
    secrets: &mut Vec<String>,
) -> Result<(Arc<dyn ObjectStore>, Backend, String), RemoteError> {
    let config_err = |message: String| RemoteError::Config {
        remote: cfg.name.clone(),
        message,
    };
    let endpoint = match &cfg.endpoint {
        Some(e) => Some((e.trim_end_matches('/').to_string(), "key `endpoint`")),
        None => first_env(env, &["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"])
            .map(|(n, v)| (v.trim_end_matches('/').to_string(), n)),
    };
    if let Some((e, from)) = &endpoint {
        check_http(cfg, e, from)?;
        url::Url::parse(e).map_err(|err| config_err(format!("endpoint `{e}` ({from}): {err}")))?;
    }
    let endpoint = endpoint.map(|(e, _)| e);
    let b2 = endpoint
        .as_deref()
        .and_then(|e| url::Url::parse(e).ok())
        .and_then(|u| u.host_str().map(|h| h.to_ascii_lowercase()))
        .is_some_and(|h| h == "backblazeb2.com" || h.ends_with(".backblazeb2.com"));

    let region = cfg
        .region
        .clone()
        .or_else(|| first_env(env, &["AWS_REGION", "AWS_DEFAULT_REGION"]).map(|(_, v)| v))
        .or_else(|| endpoint.as_deref().and_then(b2_region))
        .unwrap_or_else(|| "us-east-1".to_string());

    let (key_id, secret, token, credentials) = match (&cfg.access_key_id, &cfg.secret_access_key) {
        (Some(k), Some(s)) => (
            k.clone(),
            s.clone(),
            cfg.session_token.clone(),
            "config (access_key_id)".to_string(),
        ),
        _ => match (
            first_env(env, &["AWS_ACCESS_KEY_ID"]),
            first_env(env, &["AWS_SECRET_ACCESS_KEY"]),
        ) {
            (Some((_, k)), Some((_, s))) => (
                k,
                s,
                cfg.session_token
                    .clone()
                    .or_else(|| first_env(env, &["AWS_SESSION_TOKEN"]).map(|(_, v)| v)),
                "environment (AWS_ACCESS_KEY_ID)".to_string(),
            ),
            _ => {
                return Err(config_err(
                    "no credentials: set access_key_id and secret_access_key in the section, \
                     or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment \
                     (tierfs never uses instance-metadata credentials)"
                        .into(),
                ));
            }
        },
    };
    secrets.push(secret.clone());
    if let Some(t) = &token {
        secrets.push(t.clone());
    }

    let mut b = AmazonS3Builder::new()
        .with_bucket_name(&bucket)
        .with_region(&region)
        .with_access_key_id(key_id)
        .with_secret_access_key(secret)
        .with_allow_http(cfg.allow_http)
        .with_client_options(client)
        .with_retry(retry);
    if let Some(t) = token {
        b = b.with_token(t);
    }
    match &endpoint {
        Some(e) => b = b.with_endpoint(e).with_virtual_hosted_style_request(false),
        // AWS itself: virtual-hosted style, unless the bucket name has dots
        // (they break TLS wildcard certificates).
        None => b = b.with_virtual_hosted_style_request(!bucket.contains('.')),
    }
    if b2 {
        // B2's support for If-None-Match is unclear; tierfs never needs
        // conditional puts (keys are content hashes), so turn them off.
        b = b.with_conditional_put(S3ConditionalPut::Disabled);
    }
    // Checksum headers are never enabled (with_checksum_algorithm): B2
    // rejects them, and integrity is checked end-to-end with blake3.
    let store = b
        .build()
        .map_err(|e| config_err(format!("cannot set up S3 client: {}", chain_text(&e))))?;
    Ok((
        Arc::new(store),
        Backend::S3 {
            bucket,
            endpoint,
            region,
            b2,
        },
        credentials,
    ))
}

/// "https://s3.us-west-004.backblazeb2.com" → "us-west-004".
fn b2_region(endpoint: &str) -> Option<String> {
    let host = url::Url::parse(endpoint)
        .ok()?
        .host_str()?
        .to_ascii_lowercase();
    let rest = host.strip_prefix("s3.")?;
    let region = rest.strip_suffix(".backblazeb2.com")?;
    (!region.is_empty() && !region.contains('.')).then(|| region.to_string())
}

fn build_gcs(
    cfg: &RemoteConfig,
    env: Env<'_>,
    bucket: String,
    client: ClientOptions,
    retry: RetryConfig,
) -> Result<(Arc<dyn ObjectStore>, Backend, String), RemoteError> {
    let config_err = |message: String| RemoteError::Config {
        remote: cfg.name.clone(),
        message,
    };
    let (path, from) = match &cfg.service_account_path {
        Some(p) => (p.clone(), "key `service_account_path`".to_string()),
        None => match first_env(env, &["GOOGLE_APPLICATION_CREDENTIALS"]) {
            Some((n, v)) => (PathBuf::from(v), n.to_string()),
            None => {
                return Err(config_err(
                    "no credentials: set service_account_path in the section, or \
                     GOOGLE_APPLICATION_CREDENTIALS in the environment, to a service-account \
                     JSON key (tierfs never uses the GCE metadata server)"
                        .into(),
                ));
            }
        },
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| config_err(format!("credentials file {} ({from}): {e}", path.display())))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|_| {
        config_err(format!(
            "credentials file {} ({from}) is not a JSON key file",
            path.display()
        ))
    })?;
    let kind = json.get("type").and_then(|t| t.as_str()).unwrap_or("");
    let key_base_url = json
        .get("gcs_base_url")
        .and_then(|u| u.as_str())
        .map(|s| s.trim_end_matches('/').to_string());

    let path_str = path.to_string_lossy().into_owned();
    let mut b = GoogleCloudStorageBuilder::new()
        .with_bucket_name(&bucket)
        .with_client_options(client)
        .with_retry(retry);
    let credentials = if kind == "authorized_user" {
        b = b.with_application_credentials(path_str);
        format!("user credentials {} ({from})", path.display())
    } else {
        b = b.with_service_account_path(path_str);
        format!("service account {} ({from})", path.display())
    };
    let base_url = match &cfg.endpoint {
        Some(e) => {
            let e = e.trim_end_matches('/').to_string();
            b = b.with_base_url(&e);
            check_http(cfg, &e, "key `endpoint`")?;
            e
        }
        None => match key_base_url {
            Some(u) => {
                check_http(cfg, &u, &format!("gcs_base_url in {}", path.display()))?;
                u
            }
            None => "https://storage.googleapis.com".to_string(),
        },
    };
    let store = b
        .build()
        .map_err(|e| config_err(format!("cannot set up GCS client: {}", chain_text(&e))))?;
    Ok((
        Arc::new(store),
        Backend::Gcs { bucket, base_url },
        credentials,
    ))
}

fn build_azure(
    cfg: &RemoteConfig,
    env: Env<'_>,
    container: String,
    client: ClientOptions,
    retry: RetryConfig,
    secrets: &mut Vec<String>,
) -> Result<(Arc<dyn ObjectStore>, Backend, String), RemoteError> {
    let config_err = |message: String| RemoteError::Config {
        remote: cfg.name.clone(),
        message,
    };
    let env_account = || {
        first_env(
            env,
            &["AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT"],
        )
        .map(|(_, v)| v)
    };
    let env_key = || first_env(env, &["AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_KEY"]);

    let (account, key, endpoint, credentials, client) = if cfg.use_emulator {
        let account = cfg
            .account
            .clone()
            .unwrap_or_else(|| AZURITE_ACCOUNT.into());
        let (key, credentials) = match &cfg.access_key {
            Some(k) => (k.clone(), "config (access_key), emulator".to_string()),
            None => (
                AZURITE_KEY.to_string(),
                "Azurite development account".to_string(),
            ),
        };
        let base = cfg
            .endpoint
            .clone()
            .or_else(|| first_env(env, &["AZURITE_BLOB_STORAGE_URL"]).map(|(_, v)| v))
            .unwrap_or_else(|| AZURITE_DEFAULT_URL.into());
        let base = base.trim_end_matches('/').to_string();
        let parsed = url::Url::parse(&base)
            .map_err(|e| config_err(format!("emulator endpoint `{base}`: {e}")))?;
        // Azurite serves accounts path-style: http://host:port/ACCOUNT.
        let endpoint = if parsed.path().trim_matches('/').is_empty() {
            format!("{base}/{account}")
        } else {
            base
        };
        (
            account,
            key,
            endpoint,
            credentials,
            client.with_allow_http(true),
        )
    } else {
        let account = cfg.account.clone().or_else(env_account).ok_or_else(|| {
            config_err(
                "no storage account: set account in the section, or AZURE_STORAGE_ACCOUNT_NAME \
                 in the environment"
                    .into(),
            )
        })?;
        let (key, credentials) = match (&cfg.access_key, env_key()) {
            (Some(k), _) => (k.clone(), "config (access_key)".to_string()),
            (None, Some((n, k))) => (k, format!("environment ({n})")),
            (None, None) => {
                return Err(config_err(
                    "no credentials: set access_key in the section, or AZURE_STORAGE_ACCOUNT_KEY \
                     in the environment (tierfs never uses managed-identity credentials)"
                        .into(),
                ));
            }
        };
        let endpoint = match &cfg.endpoint {
            Some(e) => {
                let e = e.trim_end_matches('/').to_string();
                check_http(cfg, &e, "key `endpoint`")?;
                e
            }
            None => format!("https://{account}.blob.core.windows.net"),
        };
        (account, key, endpoint, credentials, client)
    };
    if key != AZURITE_KEY {
        secrets.push(key.clone());
    }
    let store = MicrosoftAzureBuilder::new()
        .with_account(&account)
        .with_access_key(key)
        .with_container_name(&container)
        .with_endpoint(endpoint.clone())
        .with_allow_http(cfg.use_emulator || cfg.allow_http)
        .with_client_options(client)
        .with_retry(retry)
        .build()
        .map_err(|e| {
            let mut text = chain_text(&e);
            for s in secrets.iter() {
                text = text.replace(s.as_str(), "<redacted>");
            }
            config_err(format!("cannot set up Azure client: {text}"))
        })?;
    Ok((
        Arc::new(store),
        Backend::Azure {
            container,
            account,
            endpoint,
        },
        credentials,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(url: &str) -> RemoteConfig {
        RemoteConfig {
            name: "t".into(),
            url: url.into(),
            ..Default::default()
        }
    }

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn err(r: Result<Built, RemoteError>) -> String {
        match r {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn b2_section_from_the_docs_builds() {
        let mut c = cfg("s3://my-bucket/tier");
        c.endpoint = Some("https://s3.us-west-004.backblazeb2.com".into());
        c.region = Some("us-west-004".into());
        c.access_key_id = Some("AKID".into());
        c.secret_access_key = Some("SUPERSECRET".into());
        let b = build(&c, &no_env).unwrap();
        assert_eq!(b.prefix, "tier");
        match &b.backend {
            Backend::S3 { b2, region, .. } => {
                assert!(*b2);
                assert_eq!(region, "us-west-004");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(b.secrets, vec!["SUPERSECRET".to_string()]);
        assert!(!b.credentials.contains("SUPERSECRET"));
    }

    #[test]
    fn b2_region_is_inferred() {
        assert_eq!(
            b2_region("https://s3.eu-central-003.backblazeb2.com").as_deref(),
            Some("eu-central-003")
        );
        assert_eq!(b2_region("https://s3.amazonaws.com"), None);
    }

    #[test]
    fn s3_without_credentials_is_a_config_error() {
        let e = err(build(&cfg("s3://b/p"), &no_env));
        assert!(e.contains("`t`") && e.contains("AWS_ACCESS_KEY_ID"), "{e}");
        assert!(e.contains("access_key_id"), "{e}");
    }

    #[test]
    fn s3_credentials_and_endpoint_from_env() {
        let env = env_of(&[
            ("AWS_ACCESS_KEY_ID", "AK"),
            ("AWS_SECRET_ACCESS_KEY", "ENVSECRET"),
            ("AWS_SESSION_TOKEN", "TOKENVALUE"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ENDPOINT_URL", "https://minio.example:9000"),
        ]);
        let b = build(&cfg("s3://b"), &env).unwrap();
        assert!(b.credentials.contains("environment"));
        assert_eq!(b.prefix, "");
        assert!(b.secrets.contains(&"TOKENVALUE".to_string()));
        match &b.backend {
            Backend::S3 {
                endpoint, region, ..
            } => {
                assert_eq!(endpoint.as_deref(), Some("https://minio.example:9000"));
                assert_eq!(region, "eu-west-1");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn env_http_endpoint_needs_allow_http() {
        let env = env_of(&[
            ("AWS_ACCESS_KEY_ID", "AK"),
            ("AWS_SECRET_ACCESS_KEY", "S"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
        ]);
        let e = err(build(&cfg("s3://b"), &env));
        assert!(
            e.contains("allow_http") && e.contains("AWS_ENDPOINT_URL"),
            "{e}"
        );
    }

    #[test]
    fn bad_prefixes_are_rejected() {
        let mut c = cfg("s3://b/a/../c");
        c.access_key_id = Some("a".into());
        c.secret_access_key = Some("b".into());
        assert!(err(build(&c, &no_env)).contains("prefix"));
        c.url = "s3://b/a//c".into();
        assert!(err(build(&c, &no_env)).contains("prefix"));
        c.url = "s3:///x".into();
        assert!(err(build(&c, &no_env)).contains("bucket"));
        c.url = "s3://b/x/y/".into();
        assert_eq!(build(&c, &no_env).unwrap().prefix, "x/y");
    }

    #[test]
    fn gcs_needs_a_key_file() {
        let e = err(build(&cfg("gs://b/p"), &no_env));
        assert!(e.contains("GOOGLE_APPLICATION_CREDENTIALS"), "{e}");
        let env = env_of(&[("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/key.json")]);
        let e = err(build(&cfg("gs://b/p"), &env));
        assert!(e.contains("/nonexistent/key.json"), "{e}");
    }

    #[test]
    fn gcs_emulator_key_sets_base_url() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.json");
        std::fs::write(
            &key,
            r#"{"gcs_base_url":"http://127.0.0.1:1","disable_oauth":true,"client_email":"","private_key":"","private_key_id":""}"#,
        )
        .unwrap();
        let mut c = cfg("gs://b/p");
        c.service_account_path = Some(key.clone());
        let e = err(build(&c, &no_env));
        assert!(e.contains("allow_http"), "{e}");
        c.allow_http = true;
        let b = build(&c, &no_env).unwrap();
        assert_eq!(b.backend.endpoint(), "http://127.0.0.1:1");
    }

    #[test]
    fn azure_needs_account_and_key() {
        let e = err(build(&cfg("az://c/p"), &no_env));
        assert!(e.contains("AZURE_STORAGE_ACCOUNT_NAME"), "{e}");
        let mut c = cfg("az://c/p");
        c.account = Some("acct".into());
        let e = err(build(&c, &no_env));
        assert!(e.contains("AZURE_STORAGE_ACCOUNT_KEY"), "{e}");
        let env = env_of(&[("AZURE_STORAGE_ACCOUNT_KEY", AZURITE_KEY)]);
        let b = build(&c, &env).unwrap();
        assert_eq!(b.backend.endpoint(), "https://acct.blob.core.windows.net");
    }

    #[test]
    fn azure_emulator_endpoint_gets_account_path() {
        let mut c = cfg("az://c/p");
        c.use_emulator = true;
        c.endpoint = Some("http://127.0.0.1:10000".into());
        c.allow_http = true;
        let b = build(&c, &no_env).unwrap();
        assert_eq!(
            b.backend.endpoint(),
            "http://127.0.0.1:10000/devstoreaccount1"
        );
        assert!(b.secrets.is_empty());
    }

    #[test]
    fn file_root_must_exist() {
        let e = err(build(&cfg("file:///nonexistent/tierfs-remote"), &no_env));
        assert!(
            e.contains("/nonexistent/tierfs-remote") && e.contains("does not exist"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let url = url::Url::from_directory_path(dir.path())
            .unwrap()
            .to_string();
        let b = build(&cfg(&url), &no_env).unwrap();
        assert_eq!(b.prefix, "");
        assert_eq!(b.backend.kind(), "file");
    }

    #[test]
    fn settings_are_parsed_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let url = url::Url::from_directory_path(dir.path())
            .unwrap()
            .to_string();
        let mut c = cfg(&url);
        c.request_timeout = Some("3s".into());
        c.part_size = Some("16MiB".into());
        c.max_concurrency = Some(2);
        let b = build(&c, &no_env).unwrap();
        assert_eq!(b.request_timeout, Duration::from_secs(3));
        assert_eq!(b.part_size, Some(16 << 20));
        assert_eq!(b.max_concurrency, 2);
        c.request_timeout = Some("1ms".into());
        assert!(err(build(&c, &no_env)).contains("request_timeout"));
        c.request_timeout = None;
        c.max_concurrency = Some(0);
        assert!(err(build(&c, &no_env)).contains("max_concurrency"));
        c.max_concurrency = None;
        assert_eq!(
            build(&c, &no_env).unwrap().recall_timeout,
            DEFAULT_RECALL_TIMEOUT
        );
        c.recall_timeout = Some("5s".into());
        assert_eq!(
            build(&c, &no_env).unwrap().recall_timeout,
            Duration::from_secs(5)
        );
        c.recall_timeout = Some("10ms".into());
        assert!(err(build(&c, &no_env)).contains("recall_timeout"));
        c.recall_timeout = Some("soon".into());
        assert!(err(build(&c, &no_env)).contains("recall_timeout"));
    }

    #[test]
    fn retry_is_bounded_by_request_timeout() {
        let r = retry_config(Duration::from_secs(2));
        assert_eq!(r.retry_timeout, Duration::from_secs(2));
        assert_eq!(r.backoff.max_backoff, Duration::from_millis(500));
        let r = retry_config(Duration::from_secs(600));
        assert_eq!(r.backoff.max_backoff, Duration::from_secs(15));
    }
}
