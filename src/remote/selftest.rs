//! `tierctl remote test`: a step-by-step check of a remote, each step
//! timed, stopping at the first failure with a message that says what to
//! fix.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use object_store::path::Path as ObjPath;
use object_store::{GetOptions, PutPayload};
use serde::Serialize;

use super::backend::Backend;
use super::{META_BLAKE3, META_SIZE, PutOptions, Remote, RemoteError};

/// The steps, in order.
pub const STEPS: [&str; 5] = ["connect", "credentials", "write", "read back", "delete"];

/// The result of [`Remote::self_test`].
#[derive(Debug, Clone, Serialize)]
pub struct RemoteTestReport {
    /// The remote's name.
    pub remote: String,
    /// [`Remote::describe`].
    pub target: String,
    /// Every step passed.
    pub ok: bool,
    /// Every step of [`STEPS`], in order (those after a failure are
    /// `skipped`).
    pub steps: Vec<TestStep>,
}

/// One step of a [`RemoteTestReport`].
#[derive(Debug, Clone, Serialize)]
pub struct TestStep {
    /// "connect", "credentials", "write", "read back" or "delete".
    pub name: String,
    /// How it went.
    pub status: StepStatus,
    /// How long it took, in milliseconds.
    pub millis: f64,
    /// What was done, or what went wrong and what to check.
    pub detail: String,
    /// For failures: the [`RemoteError::kind`] (e.g. "unauthenticated").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<String>,
}

/// A step's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Passed.
    Ok,
    /// Failed; later steps were skipped.
    Failed,
    /// Not run because an earlier step failed.
    Skipped,
}

struct Steps {
    done: Vec<TestStep>,
}

impl Steps {
    fn ok(&mut self, name: &str, start: Instant, detail: String) {
        self.push(name, StepStatus::Ok, start.elapsed(), detail, None);
    }

    fn fail(&mut self, name: &str, start: Instant, detail: String, kind: Option<&str>) {
        self.push(
            name,
            StepStatus::Failed,
            start.elapsed(),
            detail,
            kind.map(str::to_string),
        );
    }

    fn push(
        &mut self,
        name: &str,
        status: StepStatus,
        elapsed: Duration,
        detail: String,
        error_kind: Option<String>,
    ) {
        self.done.push(TestStep {
            name: name.to_string(),
            status,
            millis: (elapsed.as_secs_f64() * 10_000.0).round() / 10.0,
            detail,
            error_kind,
        });
    }
}

pub(crate) async fn run(remote: &Remote) -> RemoteTestReport {
    let mut steps = Steps { done: Vec::new() };
    let _ = run_steps(remote, &mut steps).await;
    let ok =
        steps.done.len() == STEPS.len() && steps.done.iter().all(|s| s.status == StepStatus::Ok);
    for name in STEPS.iter().skip(steps.done.len()) {
        steps.push(
            name,
            StepStatus::Skipped,
            Duration::ZERO,
            "not run (an earlier step failed)".into(),
            None,
        );
    }
    RemoteTestReport {
        remote: remote.name().to_string(),
        target: remote.describe(),
        ok,
        steps: steps.done,
    }
}

/// Runs the steps; `Err(())` after the first failure (already recorded).
async fn run_steps(remote: &Remote, steps: &mut Steps) -> Result<(), ()> {
    // 1. connect
    let start = Instant::now();
    match connect(remote).await {
        Ok(detail) => steps.ok("connect", start, detail),
        Err(detail) => {
            steps.fail("connect", start, detail, Some("unreachable"));
            return Err(());
        }
    }

    // 2. credentials: an authenticated listing of <prefix>/probe/.
    let start = Instant::now();
    let probe_dir = format!("{}probe", remote.prefix_slash());
    let listed = async {
        let loc = ObjPath::parse(&probe_dir).map_err(|e| RemoteError::Other {
            remote: remote.name().into(),
            op: format!("LIST {probe_dir}/"),
            detail: e.to_string(),
        })?;
        let mut list = remote.store().list(Some(&loc));
        match list.next().await {
            None | Some(Ok(_)) => Ok(()),
            Some(Err(object_store::Error::NotFound { .. }))
                if matches!(remote.backend(), Backend::File { .. }) =>
            {
                Ok(())
            }
            Some(Err(e)) => Err(remote.map_err("LIST", &format!("{probe_dir}/"), e)),
        }
    }
    .await;
    match listed {
        Ok(()) => steps.ok(
            "credentials",
            start,
            format!(
                "listed {probe_dir}/ with credentials from {}",
                remote.credential_source()
            ),
        ),
        Err(e) => {
            steps.fail("credentials", start, explain(remote, &e), Some(e.kind()));
            return Err(());
        }
    }

    // 3. write a probe object (with the metadata and storage class real
    // uploads use, so a rejected class shows up here).
    let start = Instant::now();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let key = format!("{probe_dir}/{nanos}-{}", std::process::id());
    let body = probe_body(&key);
    let hash = blake3::hash(&body);
    let written = async {
        let loc = remote.location(&key, "PUT")?;
        let opts = object_store::PutOptions {
            attributes: remote.put_attributes(body.len() as u64, &hash, &PutOptions::default()),
            ..Default::default()
        };
        remote
            .store()
            .put_opts(&loc, PutPayload::from(body.clone()), opts)
            .await
            .map_err(|e| remote.map_err("PUT", &key, e))
    }
    .await;
    match written {
        Ok(_) => {
            let class = remote
                .effective_storage_class(&PutOptions::default())
                .map(|c| format!(", storage class {c}"))
                .unwrap_or_default();
            steps.ok(
                "write",
                start,
                format!("wrote {} bytes to {key}{class}", body.len()),
            )
        }
        Err(e) => {
            steps.fail("write", start, explain(remote, &e), Some(e.kind()));
            return Err(());
        }
    }

    // 4. read it back and compare.
    let start = Instant::now();
    let read = async {
        let loc = remote.location(&key, "GET")?;
        let res = remote
            .store()
            .get_opts(&loc, GetOptions::default())
            .await
            .map_err(|e| remote.map_err("GET", &key, e))?;
        let attrs = res.attributes.clone();
        let got = res
            .bytes()
            .await
            .map_err(|e| remote.map_err("GET", &key, e))?;
        Ok::<_, RemoteError>((got, attrs))
    }
    .await;
    match read {
        Ok((got, attrs)) if got == body => {
            let meta = if remote.takes_attributes() {
                let has = |k: &str| {
                    attrs
                        .get(&object_store::Attribute::Metadata(k.to_string().into()))
                        .is_some()
                };
                if has(META_BLAKE3) && has(META_SIZE) {
                    ", metadata kept"
                } else {
                    ", metadata NOT returned by the store (integrity still checked by content)"
                }
            } else {
                ""
            };
            steps.ok(
                "read back",
                start,
                format!("read {} bytes, content matches{meta}", got.len()),
            );
        }
        Ok((got, _)) => {
            steps.fail(
                "read back",
                start,
                format!(
                    "read {} bytes from {key} but they differ from what was written \
                     (expected blake3 {}, got {}); the store or a proxy alters data",
                    got.len(),
                    hash.to_hex(),
                    blake3::hash(&got).to_hex()
                ),
                Some("corrupt"),
            );
            let _ = remote.delete(&key).await;
            return Err(());
        }
        Err(e) => {
            steps.fail("read back", start, explain(remote, &e), Some(e.kind()));
            let _ = remote.delete(&key).await;
            return Err(());
        }
    }

    // 5. delete it and check that it is gone.
    let start = Instant::now();
    let deleted = async {
        remote.delete(&key).await?;
        remote.head(&key).await
    }
    .await;
    match deleted {
        Ok(None) => steps.ok("delete", start, format!("deleted {key}")),
        Ok(Some(_)) => {
            steps.fail(
                "delete",
                start,
                format!("{key} still exists after DELETE"),
                Some("other"),
            );
            return Err(());
        }
        Err(e) => {
            steps.fail("delete", start, explain(remote, &e), Some(e.kind()));
            return Err(());
        }
    }
    Ok(())
}

fn probe_body(key: &str) -> bytes::Bytes {
    let mut body = format!("tierfs remote probe {key}\n").into_bytes();
    // 64 KiB more so the request carries a real body.
    let mut xof = blake3::Hasher::new().update(key.as_bytes()).finalize_xof();
    let mut tail = vec![0u8; 64 << 10];
    xof.fill(&mut tail);
    body.extend_from_slice(&tail);
    body.into()
}

/// The error plus what to do about it.
fn explain(remote: &Remote, e: &RemoteError) -> String {
    let hint = match e {
        RemoteError::Unreachable { .. } => {
            format!("check the endpoint {} and the network", remote.endpoint())
        }
        RemoteError::Timeout { .. } => format!(
            "the store did not answer within request_timeout ({}); check the network, or \
             raise request_timeout",
            humantime::format_duration(remote.request_timeout())
        ),
        RemoteError::PermissionDenied { .. } => {
            "the credentials are valid but lack the permission: grant list, read, write and \
             delete on the bucket and prefix"
                .to_string()
        }
        RemoteError::Other { detail, .. }
            if detail.contains("NoSuchBucket")
                || detail.contains("ContainerNotFound")
                || detail.contains("bucket does not exist") =>
        {
            "the bucket (or container) does not exist: create it, or fix `url`".to_string()
        }
        _ => String::new(),
    };
    if hint.is_empty() {
        e.to_string()
    } else {
        format!("{e} — {hint}")
    }
}

/// Step 1: can we open a connection to the endpoint (or, for `file://`, is
/// the directory there and writable)?
async fn connect(remote: &Remote) -> Result<String, String> {
    let endpoint = match remote.backend() {
        Backend::File { root } => {
            let root = root.clone();
            return tokio::task::spawn_blocking(move || {
                let meta = std::fs::metadata(&root)
                    .map_err(|e| format!("directory {}: {e}", root.display()))?;
                if !meta.is_dir() {
                    return Err(format!("{} is not a directory", root.display()));
                }
                Ok(format!("directory {} exists", root.display()))
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
        }
        _ => remote.endpoint(),
    };
    let url = url::Url::parse(&endpoint).map_err(|e| format!("endpoint `{endpoint}`: {e}"))?;
    let host = url
        .host_str()
        .ok_or_else(|| format!("endpoint `{endpoint}` has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = url
        .port_or_known_default()
        .ok_or_else(|| format!("endpoint `{endpoint}` has no port"))?;
    let proxied = [
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
        "HTTP_PROXY",
        "http_proxy",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()));
    if proxied {
        return Ok(format!(
            "{host}:{port} is reached through a proxy (from the environment); the next step checks it"
        ));
    }
    let limit = remote.request_timeout().min(Duration::from_secs(10));
    let attempt = async {
        let addrs: Vec<_> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .collect();
        let mut last = format!("{host} has no address");
        for addr in addrs {
            match tokio::net::TcpStream::connect(addr).await {
                Ok(_) => return Ok(format!("connected to {host}:{port} ({})", addr.ip())),
                Err(e) => last = format!("cannot connect to {host}:{port} ({addr}): {e}"),
            }
        }
        Err(last)
    };
    match tokio::time::timeout(limit, attempt).await {
        Ok(r) => r.map_err(|d| format!("remote `{}` is unreachable: {d}", remote.name())),
        Err(_) => Err(format!(
            "remote `{}` is unreachable: no connection to {host}:{port} within {}",
            remote.name(),
            humantime::format_duration(limit)
        )),
    }
}
