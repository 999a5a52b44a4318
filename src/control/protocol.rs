//! Message types of the control protocol and their JSON encoding.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A request from `tierctl` to the daemon, one JSON object per line.
///
/// Encoded with an `"op"` tag, e.g. `{"op":"status"}`. Operations that take
/// arguments become struct variants whose fields sit beside the tag, e.g.
/// (future) `{"op":"recall","path":"docs/a.pdf"}`. Unknown fields are ignored,
/// so a newer client may add optional arguments without breaking an older
/// daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Report the daemon's runtime state; answered with [`Reply::Status`].
    Status,
    /// Run a migration now and wait for it; answered with [`Reply::Migrate`].
    Migrate(crate::tier::MigrateRequest),
    /// Recall cold files at or below `paths`; answered with [`Reply::Recall`].
    Recall {
        /// Paths relative to the mount root (exact bytes: a string, or
        /// `{"hex": ...}` for a name that is not UTF-8).
        #[serde(with = "crate::escape::path_bytes::vec")]
        paths: Vec<PathBuf>,
    },
    /// Delete objects unreferenced for longer than `grace_secs` (default from
    /// the config); answered with [`Reply::Gc`].
    Gc {
        /// Grace period override, in seconds.
        #[serde(default)]
        grace_secs: Option<u64>,
    },
    /// Progress of the running migration or recall; answered with [`Reply::Progress`].
    Progress,
    /// Add a rule (already validated by the client, checked again here).
    RuleAdd {
        /// Rule text.
        text: String,
        /// 1-based position; last if absent.
        #[serde(default)]
        position: Option<usize>,
    },
    /// Remove rule `id`.
    RuleRemove {
        /// Rule id.
        id: i64,
    },
    /// Move rule `id` to `position`.
    RuleMove {
        /// Rule id.
        id: i64,
        /// New 1-based position.
        position: usize,
    },
    /// Check that catalog, hot dir and remotes agree; answered with [`Reply::Fsck`].
    Fsck {
        /// Fix what can be fixed.
        #[serde(default)]
        repair: bool,
    },
    /// Pin (or unpin) every file at or below `paths`.
    Pin {
        /// Paths relative to the mount root (exact bytes, as for `Recall`).
        #[serde(with = "crate::escape::path_bytes::vec")]
        paths: Vec<PathBuf>,
        /// `true` to pin, `false` to unpin.
        pinned: bool,
    },
    /// Running job, last migration run and recent errors; answered with
    /// [`Reply::Activity`].
    Activity,
    /// Whether each remote answered its last requests; answered with
    /// [`Reply::RemoteHealth`].
    RemoteHealth,
}

impl Request {
    /// Decodes one request line, with a message fit to send back to the
    /// client when the line is not a request this daemon understands.
    pub fn from_json(line: &str) -> Result<Request, String> {
        serde_json::from_str(line).map_err(|e| {
            let msg = e.to_string().replace("unknown variant", "unknown op");
            format!("unsupported request: {msg} (is tierctl newer than the daemon?)")
        })
    }

    /// The value of the `op` tag, for logs and messages.
    pub fn op(&self) -> &'static str {
        match self {
            Request::Status => "status",
            Request::Migrate(_) => "migrate",
            Request::Recall { .. } => "recall",
            Request::Gc { .. } => "gc",
            Request::Progress => "progress",
            Request::RuleAdd { .. } => "rule_add",
            Request::RuleRemove { .. } => "rule_remove",
            Request::RuleMove { .. } => "rule_move",
            Request::Pin { .. } => "pin",
            Request::Fsck { .. } => "fsck",
            Request::Activity => "activity",
            Request::RemoteHealth => "remote_health",
        }
    }
}

/// The daemon's answer to one [`Request`].
///
/// Encoded as `{"ok":true,"<reply kind>":{...}}` on success and
/// `{"ok":false,"error":"<message>"}` on failure.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    /// The request succeeded.
    Ok(Reply),
    /// The request failed; the message is meant for a human and should say
    /// what to do about it.
    Error(String),
}

impl Response {
    /// A failure response carrying `message`.
    pub fn error(message: impl Into<String>) -> Response {
        Response::Error(message.into())
    }

    /// The reply on success, the daemon's message on failure.
    pub fn into_result(self) -> Result<Reply, String> {
        match self {
            Response::Ok(reply) => Ok(reply),
            Response::Error(message) => Err(message),
        }
    }
}

impl From<Reply> for Response {
    fn from(reply: Reply) -> Response {
        Response::Ok(reply)
    }
}

/// The payload of a successful [`Response`], one variant per kind of answer.
///
/// Encoded as a single key named after the variant, placed beside `"ok":true`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// Answer to [`Request::Status`].
    Status(DaemonStatus),
    /// Answer to [`Request::Migrate`].
    Migrate(crate::tier::MigrateSummary),
    /// Answer to [`Request::Recall`].
    Recall(crate::tier::RecallSummary),
    /// Answer to [`Request::Gc`].
    Gc(crate::tier::GcSummary),
    /// Answer to [`Request::Progress`].
    Progress(JobProgress),
    /// Answer to [`Request::Fsck`].
    Fsck(crate::tier::FsckReport),
    /// Answer to the rule and pin requests: what changed.
    Done(Done),
    /// Answer to [`Request::Activity`].
    Activity(crate::activity::ActivityReport),
    /// Answer to [`Request::RemoteHealth`]: one entry per configured remote.
    RemoteHealth(Vec<crate::remote::HealthReport>),
}

/// Progress of the running job (defined beside the activity report).
pub use crate::activity::JobProgress;

/// Result of a small change request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {
    /// What happened, for humans.
    pub message: String,
    /// Id of a new rule, or number of files changed.
    pub count: i64,
}

/// Runtime state of a daemon, as reported by [`Request::Status`].
///
/// Fields added later must be `#[serde(default)]` so that a newer `tierctl`
/// can still read an older daemon's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonStatus {
    /// Process id of the daemon.
    pub pid: u32,
    /// The daemon's version (`CARGO_PKG_VERSION`).
    pub version: String,
    /// Where the file system is mounted.
    pub mountpoint: PathBuf,
    /// The local directory that holds hot data.
    pub hot_dir: PathBuf,
    /// When the daemon started, in seconds since the Unix epoch.
    pub started_at_unix: i64,
    /// Whether the kernel's FUSE passthrough (direct I/O to the backing file)
    /// is in use.
    pub passthrough: bool,
    /// Files currently open through the mount.
    pub open_files: u64,
    /// Catalog updates queued but not yet written.
    pub catalog_queue: u64,
    /// Catalog changes held in memory because writing them failed (a full
    /// disk); retried until written. Absent from older daemons.
    #[serde(default)]
    pub catalog_pending_writes: u64,
    /// Catalog write attempts that failed since the daemon started.
    #[serde(default)]
    pub catalog_write_failures: u64,
    /// Catalog changes dropped (retry queue full, or writer stopped).
    #[serde(default)]
    pub catalog_dropped_writes: u64,
}

/// Shape of a success response on the wire.
#[derive(Serialize)]
struct OkWire<'a> {
    ok: bool,
    #[serde(flatten)]
    reply: &'a Reply,
}

/// Shape of a failure response on the wire.
#[derive(Serialize)]
struct ErrorWire<'a> {
    ok: bool,
    error: &'a str,
}

/// Any response as read off the wire, before it is checked.
#[derive(Deserialize)]
struct IncomingWire {
    ok: bool,
    #[serde(default)]
    error: Option<String>,
    #[serde(flatten)]
    payload: BTreeMap<String, serde_json::Value>,
}

impl Serialize for Response {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Response::Ok(reply) => OkWire { ok: true, reply }.serialize(serializer),
            Response::Error(error) => ErrorWire { ok: false, error }.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Response {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Response, D::Error> {
        let wire = IncomingWire::deserialize(deserializer)?;
        if !wire.ok {
            let message = wire
                .error
                .unwrap_or_else(|| "daemon reported failure without a message".into());
            return Ok(Response::Error(message));
        }
        if wire.payload.len() != 1 {
            let keys: Vec<&str> = wire.payload.keys().map(String::as_str).collect();
            return Err(D::Error::custom(format!(
                "a successful response must carry exactly one reply, found keys {keys:?}"
            )));
        }
        let payload = serde_json::Value::Object(wire.payload.into_iter().collect());
        Reply::deserialize(payload)
            .map(Response::Ok)
            .map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_status() -> DaemonStatus {
        DaemonStatus {
            pid: 42,
            version: "0.1.0".into(),
            mountpoint: "/mnt/data".into(),
            hot_dir: "/srv/.data-hot".into(),
            started_at_unix: 1_700_000_000,
            passthrough: true,
            open_files: 3,
            catalog_queue: 7,
            catalog_pending_writes: 0,
            catalog_write_failures: 0,
            catalog_dropped_writes: 0,
        }
    }

    /// Paths travel as bytes: UTF-8 names as strings (as before, so older
    /// clients still work), other names as `{"hex": ...}`.
    #[test]
    fn paths_are_bytes_on_the_wire() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let raw = PathBuf::from(OsStr::from_bytes(b"a/\xff\n\x1b.bin"));
        let req = Request::Recall {
            paths: vec!["plain/name".into(), raw.clone()],
        };
        let line = serde_json::to_string(&req).unwrap();
        assert_eq!(
            line,
            r#"{"op":"recall","paths":["plain/name",{"hex":"612fff0a1b2e62696e"}]}"#
        );
        assert_eq!(Request::from_json(&line).unwrap(), req);
        let pin = Request::Pin {
            paths: vec![raw],
            pinned: true,
        };
        let line = serde_json::to_string(&pin).unwrap();
        assert_eq!(Request::from_json(&line).unwrap(), pin);
        // What an older tierctl sends.
        assert_eq!(
            Request::from_json(r#"{"op":"pin","paths":["x"],"pinned":false}"#).unwrap(),
            Request::Pin {
                paths: vec!["x".into()],
                pinned: false
            }
        );
        let e = Request::from_json(r#"{"op":"recall","paths":[{"hex":"zz"}]}"#).unwrap_err();
        assert!(e.contains("unsupported request"), "{e}");
    }

    #[test]
    fn request_wire_format() {
        assert_eq!(
            serde_json::to_string(&Request::Status).unwrap(),
            r#"{"op":"status"}"#
        );
        assert_eq!(
            Request::from_json(r#"{"op":"status"}"#).unwrap(),
            Request::Status
        );
        // Extra fields are ignored so newer clients can add optional arguments.
        assert_eq!(
            Request::from_json(r#"{"op":"status","verbose":true}"#).unwrap(),
            Request::Status
        );
    }

    #[test]
    fn unknown_op_is_explained() {
        let e = Request::from_json(r#"{"op":"frobnicate"}"#).unwrap_err();
        assert!(e.contains("unknown op `frobnicate`"), "{e}");
        assert!(e.contains("status"), "lists the known ops: {e}");
        let e = Request::from_json(r#"{"verb":"status"}"#).unwrap_err();
        assert!(e.contains("`op`"), "{e}");
        let e = Request::from_json("status").unwrap_err();
        assert!(e.starts_with("unsupported request"), "{e}");
    }

    #[test]
    fn ok_response_wire_format() {
        let resp = Response::Ok(Reply::Status(sample_status()));
        let json = serde_json::to_value(&resp).unwrap();
        assert_eq!(json["ok"], true);
        assert_eq!(json["status"]["pid"], 42);
        assert_eq!(json["status"]["mountpoint"], "/mnt/data");
        assert_eq!(json.as_object().unwrap().len(), 2);
        let back: Response = serde_json::from_value(json).unwrap();
        assert_eq!(back, resp);
    }

    #[test]
    fn error_response_wire_format() {
        let resp = Response::error("nope");
        assert_eq!(
            serde_json::to_string(&resp).unwrap(),
            r#"{"ok":false,"error":"nope"}"#
        );
        let back: Response = serde_json::from_str(r#"{"ok":false,"error":"nope"}"#).unwrap();
        assert_eq!(back, resp);
        let back: Response = serde_json::from_str(r#"{"ok":false}"#).unwrap();
        assert!(matches!(back, Response::Error(m) if m.contains("without a message")));
    }

    #[test]
    fn malformed_ok_responses_are_rejected() {
        for bad in [
            r#"{"ok":true}"#,
            r#"{"ok":true,"status":{"pid":1}}"#,
            r#"{"ok":true,"weather":{}}"#,
            r#"{"status":{}}"#,
        ] {
            assert!(serde_json::from_str::<Response>(bad).is_err(), "{bad}");
        }
    }
}
