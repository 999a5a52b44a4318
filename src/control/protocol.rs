//! Message types of the control protocol and their JSON encoding.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::rules::edit::PlacedRule;

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
    /// Add a rule (already validated by the client, parsed again here);
    /// answered with [`Reply::RuleAdd`].
    RuleAdd {
        /// Rule text.
        text: String,
        /// 1-based position; last if absent.
        #[serde(default)]
        position: Option<usize>,
    },
    /// Remove rule `id`; answered with [`Reply::RuleRemove`], or a
    /// [`ErrorKind::NotFound`] error.
    RuleRemove {
        /// Rule id.
        id: i64,
    },
    /// Move rule `id` to `position`; answered with [`Reply::RuleMove`], or a
    /// [`ErrorKind::NotFound`] error.
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
    /// Pin (or unpin) every file at or below `paths`; answered with
    /// [`Reply::Pin`].
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
    /// Commit every change the mount reported before this request; answered
    /// with [`Reply::Sync`] once committed. `tierctl` sends it before reading
    /// the catalog itself, so it sees every operation that returned before.
    Sync,
}

impl Request {
    /// Decodes one request line; when the line is not a request this daemon
    /// understands, an [`ErrorKind::InvalidRequest`] error fit to send back.
    pub fn from_json(line: &str) -> Result<Request, RequestError> {
        serde_json::from_str(line).map_err(|e| {
            let msg = e.to_string().replace("unknown variant", "unknown op");
            RequestError::new(
                ErrorKind::InvalidRequest,
                format!("unsupported request: {msg} (is tierctl newer than the daemon?)"),
            )
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
            Request::Sync => "sync",
        }
    }
}

/// The daemon's answer to one [`Request`].
///
/// Encoded as `{"ok":true,"<op>":{...}}` on success (see [`Reply`]) and
/// `{"ok":false,"error":{"kind":"<kind>","message":"<text>"}}` on failure.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    /// The request succeeded.
    Ok(Reply),
    /// The request was refused or failed.
    Error(RequestError),
}

impl Response {
    /// A failure response of `kind` carrying `message`.
    pub fn error(kind: ErrorKind, message: impl Into<String>) -> Response {
        Response::Error(RequestError::new(kind, message))
    }

    /// The reply on success, the daemon's error on failure.
    pub fn into_result(self) -> Result<Reply, RequestError> {
        match self {
            Response::Ok(reply) => Ok(reply),
            Response::Error(error) => Err(error),
        }
    }
}

impl From<Reply> for Response {
    fn from(reply: Reply) -> Response {
        Response::Ok(reply)
    }
}

impl From<RequestError> for Response {
    fn from(error: RequestError) -> Response {
        Response::Error(error)
    }
}

/// What kind of failure a request met: what a client decides on (the
/// message is for humans and may change).
///
/// Encoded as a snake_case string (`"not_found"`). A kind this build does not
/// know decodes as [`ErrorKind::Unknown`], so a newer daemon may add kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The daemon could not decode the request: not JSON, too long, or an op
    /// or field it does not know (`tierctl` newer than the daemon).
    InvalidRequest,
    /// The request decoded but an argument is wrong (e.g. rule text that
    /// does not parse).
    InvalidArgument,
    /// What the request names does not exist (e.g. no rule with that id).
    NotFound,
    /// The connecting user may not use the control socket.
    PermissionDenied,
    /// The work failed for a reason that may pass by itself (a remote is
    /// unreachable or timed out); trying again later may succeed.
    Unavailable,
    /// The work was tried and failed (catalog, remote or local I/O error);
    /// the message says why.
    Failed,
    /// A bug in the daemon (a handler panicked, a reply could not be
    /// encoded); its log has the details.
    Internal,
    /// A kind this build does not know, or none given (an older daemon sent
    /// only a message).
    Unknown,
}

impl ErrorKind {
    /// Every kind but [`ErrorKind::Unknown`], for decoding.
    const KNOWN: [ErrorKind; 7] = [
        ErrorKind::InvalidRequest,
        ErrorKind::InvalidArgument,
        ErrorKind::NotFound,
        ErrorKind::PermissionDenied,
        ErrorKind::Unavailable,
        ErrorKind::Failed,
        ErrorKind::Internal,
    ];

    /// The kind's name on the wire, e.g. `"not_found"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::NotFound => "not_found",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Failed => "failed",
            ErrorKind::Internal => "internal",
            ErrorKind::Unknown => "unknown",
        }
    }

    /// The kind named `name`; [`ErrorKind::Unknown`] for any other name.
    pub fn from_name(name: &str) -> ErrorKind {
        ErrorKind::KNOWN
            .into_iter()
            .find(|k| k.as_str() == name)
            .unwrap_or(ErrorKind::Unknown)
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ErrorKind, D::Error> {
        let name = std::borrow::Cow::<str>::deserialize(deserializer)?;
        Ok(ErrorKind::from_name(&name))
    }
}

/// Why the daemon refused or failed a request: a [`ErrorKind`] to act on
/// and a message for humans that says what to do about it.
///
/// Encoded as `{"kind":"not_found","message":"no rule #9"}`; displayed as
/// the message alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
#[non_exhaustive]
pub struct RequestError {
    /// What kind of failure it is.
    pub kind: ErrorKind,
    /// What happened, for humans.
    pub message: String,
}

impl RequestError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> RequestError {
        RequestError {
            kind,
            message: message.into(),
        }
    }
}

/// The payload of a successful [`Response`]: one variant per [`Request`]
/// variant, of the same name, each with its own type.
///
/// Encoded as a single key, the request's op, placed beside `"ok":true`
/// (`{"ok":true,"rule_add":{...}}`). Each payload type converts back out of
/// a `Reply` with `TryFrom`, which is how
/// [`call`](crate::control::call) returns the type a request expects.
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
    /// Answer to [`Request::RuleAdd`].
    RuleAdd(RuleAdded),
    /// Answer to [`Request::RuleRemove`].
    RuleRemove(RuleRemoved),
    /// Answer to [`Request::RuleMove`].
    RuleMove(RuleMoved),
    /// Answer to [`Request::Fsck`].
    Fsck(crate::tier::FsckReport),
    /// Answer to [`Request::Pin`].
    Pin(PinSummary),
    /// Answer to [`Request::Activity`].
    Activity(crate::activity::ActivityReport),
    /// Answer to [`Request::RemoteHealth`]: one entry per configured remote.
    RemoteHealth(Vec<crate::remote::HealthReport>),
    /// Answer to [`Request::Sync`].
    Sync(Synced),
}

impl Reply {
    /// The op of the request this answers (also its key on the wire).
    pub fn op(&self) -> &'static str {
        match self {
            Reply::Status(_) => "status",
            Reply::Migrate(_) => "migrate",
            Reply::Recall(_) => "recall",
            Reply::Gc(_) => "gc",
            Reply::Progress(_) => "progress",
            Reply::RuleAdd(_) => "rule_add",
            Reply::RuleRemove(_) => "rule_remove",
            Reply::RuleMove(_) => "rule_move",
            Reply::Fsck(_) => "fsck",
            Reply::Pin(_) => "pin",
            Reply::Activity(_) => "activity",
            Reply::RemoteHealth(_) => "remote_health",
            Reply::Sync(_) => "sync",
        }
    }
}

/// `TryFrom<Reply>` for each payload type: the payload if the reply is of
/// that variant, else the reply back.
macro_rules! reply_payloads {
    ($($variant:ident($ty:ty)),* $(,)?) => {$(
        impl TryFrom<Reply> for $ty {
            type Error = Reply;
            fn try_from(reply: Reply) -> Result<Self, Reply> {
                match reply {
                    Reply::$variant(payload) => Ok(payload),
                    other => Err(other),
                }
            }
        }
    )*};
}

reply_payloads!(
    Status(DaemonStatus),
    Migrate(crate::tier::MigrateSummary),
    Recall(crate::tier::RecallSummary),
    Gc(crate::tier::GcSummary),
    Progress(JobProgress),
    RuleAdd(RuleAdded),
    RuleRemove(RuleRemoved),
    RuleMove(RuleMoved),
    Fsck(crate::tier::FsckReport),
    Pin(PinSummary),
    Activity(crate::activity::ActivityReport),
    RemoteHealth(Vec<crate::remote::HealthReport>),
    Sync(Synced),
);

/// Answer to [`Request::Sync`]: the catalog holds every change reported
/// before the request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Synced {
    /// Changes held in memory because the catalog cannot be written (full
    /// disk); they are not in the catalog yet.
    pub pending: u64,
}

/// Progress of the running job (defined beside the activity report).
pub use crate::activity::JobProgress;

/// Answer to [`Request::RuleAdd`]: the new rule's id and where it went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RuleAdded(pub PlacedRule);

/// Answer to [`Request::RuleRemove`]: the rule removed, as it stood.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RuleRemoved(pub PlacedRule);

/// Answer to [`Request::RuleMove`]: the rule at its new position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RuleMoved(pub PlacedRule);

/// Answer to [`Request::Pin`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinSummary {
    /// Files whose pin changed (already pinned or unpinned ones are not
    /// counted).
    pub changed: u64,
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
    error: &'a RequestError,
}

/// Any response as read off the wire, before it is checked.
#[derive(Deserialize)]
struct IncomingWire {
    ok: bool,
    /// `{"kind":..,"message":..}`, or a bare message from an older daemon.
    #[serde(default)]
    error: Option<serde_json::Value>,
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
            let error = match wire.error {
                Some(serde_json::Value::String(message)) => {
                    RequestError::new(ErrorKind::Unknown, message)
                }
                Some(value) => RequestError::deserialize(value).map_err(D::Error::custom)?,
                None => RequestError::new(
                    ErrorKind::Unknown,
                    "daemon reported failure without a message",
                ),
            };
            return Ok(Response::Error(error));
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
        assert!(e.message.contains("unsupported request"), "{e}");
        assert_eq!(e.kind, ErrorKind::InvalidRequest);
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
        assert_eq!(e.kind, ErrorKind::InvalidRequest);
        assert!(e.message.contains("unknown op `frobnicate`"), "{e}");
        assert!(e.message.contains("status"), "lists the known ops: {e}");
        let e = Request::from_json(r#"{"verb":"status"}"#).unwrap_err();
        assert!(e.message.contains("`op`"), "{e}");
        let e = Request::from_json("status").unwrap_err();
        assert!(e.message.starts_with("unsupported request"), "{e}");
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
        let resp = Response::error(ErrorKind::NotFound, "no rule #9");
        assert_eq!(
            serde_json::to_string(&resp).unwrap(),
            r#"{"ok":false,"error":{"kind":"not_found","message":"no rule #9"}}"#
        );
        let back: Response = serde_json::from_str(
            r#"{"ok":false,"error":{"kind":"not_found","message":"no rule #9"}}"#,
        )
        .unwrap();
        assert_eq!(back, resp);
        // A kind this build does not know, and an older daemon's bare message.
        let back: Response =
            serde_json::from_str(r#"{"ok":false,"error":{"kind":"on_fire","message":"m"}}"#)
                .unwrap();
        assert_eq!(back, Response::error(ErrorKind::Unknown, "m"));
        let back: Response = serde_json::from_str(r#"{"ok":false,"error":"nope"}"#).unwrap();
        assert_eq!(back, Response::error(ErrorKind::Unknown, "nope"));
        let back: Response = serde_json::from_str(r#"{"ok":false}"#).unwrap();
        assert!(matches!(back, Response::Error(e) if e.message.contains("without a message")));
        for kind in ErrorKind::KNOWN {
            assert_eq!(ErrorKind::from_name(kind.as_str()), kind);
        }
    }

    /// Each request has its own reply, under the request's op.
    #[test]
    fn replies_are_keyed_by_their_op() {
        let placed = PlacedRule {
            id: 41,
            position: 2,
            rules: 3,
            text: "media/** -> b2".into(),
        };
        let resp = Response::Ok(Reply::RuleAdd(RuleAdded(placed.clone())));
        assert_eq!(
            serde_json::to_string(&resp).unwrap(),
            r#"{"ok":true,"rule_add":{"id":41,"position":2,"rules":3,"text":"media/** -> b2"}}"#
        );
        let back: Response = serde_json::from_str(&serde_json::to_string(&resp).unwrap()).unwrap();
        assert_eq!(back, resp);
        let resp = Response::Ok(Reply::Pin(PinSummary { changed: 3 }));
        assert_eq!(
            serde_json::to_string(&resp).unwrap(),
            r#"{"ok":true,"pin":{"changed":3}}"#
        );
        for (request, reply) in [
            (
                Request::RuleRemove { id: 41 },
                Reply::RuleRemove(RuleRemoved(placed.clone())),
            ),
            (
                Request::RuleMove {
                    id: 41,
                    position: 1,
                },
                Reply::RuleMove(RuleMoved(placed.clone())),
            ),
            (Request::Progress, Reply::Progress(JobProgress::default())),
        ] {
            assert_eq!(request.op(), reply.op());
            let json = serde_json::to_value(Response::Ok(reply.clone())).unwrap();
            assert!(json.get(reply.op()).is_some(), "{json}");
        }
        // Typed extraction.
        let added: Result<RuleAdded, Reply> = Reply::RuleAdd(RuleAdded(placed.clone())).try_into();
        assert_eq!(added.unwrap().0.id, 41);
        let wrong: Result<RuleMoved, Reply> = Reply::RuleAdd(RuleAdded(placed)).try_into();
        assert!(matches!(wrong, Err(Reply::RuleAdd(_))));
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
