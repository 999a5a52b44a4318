//! [`RemoteError`]: what can go wrong talking to an object store, classified
//! so that callers (the migrator, the FUSE layer, `tierctl remote test`) can
//! react per kind, and worded so that an admin knows which remote and which
//! object is concerned.
//!
//! Errors from `object_store` are mapped by [`classify`]: transport failures
//! become [`RemoteError::Unreachable`] or [`RemoteError::Timeout`], HTTP
//! 401/403 become [`RemoteError::Unauthenticated`] (bad or unknown keys,
//! bad signatures, expired tokens) or [`RemoteError::PermissionDenied`]
//! (valid keys without the right), 404 becomes [`RemoteError::NotFound`].
//! Messages never contain secrets: error details pass through the remote's
//! redaction of its configured keys before they are stored.

use std::error::Error as StdError;
use std::path::PathBuf;

/// A failed operation on a remote (an object store).
///
/// Every message names the remote, and the object key or local path where
/// one is concerned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteError {
    /// The endpoint could not be reached: DNS failure, connection refused or
    /// reset, TLS failure, or a connect timeout.
    #[error("remote `{remote}` is unreachable: {detail}")]
    Unreachable {
        /// The remote's name.
        remote: String,
        /// What failed, e.g. "cannot connect to http://127.0.0.1:8333 …".
        detail: String,
    },
    /// The store did not accept the credentials (unknown access key, wrong
    /// secret, expired token, HTTP 401).
    #[error("remote `{remote}` rejected the credentials: {detail}")]
    Unauthenticated {
        /// The remote's name.
        remote: String,
        /// The store's answer and what to check.
        detail: String,
    },
    /// The credentials are valid but lack the right for this operation
    /// (HTTP 403 AccessDenied).
    #[error("remote `{remote}`: permission denied for {op}: {detail}")]
    PermissionDenied {
        /// The remote's name.
        remote: String,
        /// The operation and key, e.g. "PUT tier/data/ab12…".
        op: String,
        /// The store's answer.
        detail: String,
    },
    /// The object does not exist.
    #[error("remote `{remote}`: object `{key}` not found")]
    NotFound {
        /// The remote's name.
        remote: String,
        /// The object's key.
        key: String,
    },
    /// The object's size or content hash is not what was stored.
    #[error("remote `{remote}`: object `{key}` is corrupt: expected {expected}, got {got}")]
    Corrupt {
        /// The remote's name.
        remote: String,
        /// The object's key.
        key: String,
        /// What was expected, e.g. "size 42, blake3 af13…".
        expected: String,
        /// What was found, e.g. "blake3 0b7c…".
        got: String,
    },
    /// The local file changed while it was being uploaded: the bytes sent do
    /// not hash to the hash taken beforehand (or its size changed). Nothing
    /// was left on the remote; hash the file again and retry.
    #[error(
        "upload to remote `{remote}`: {} changed while it was being uploaded \
         (its content no longer matches the hash taken before); nothing was stored",
        path.display()
    )]
    SourceChanged {
        /// The remote's name.
        remote: String,
        /// The local file.
        path: PathBuf,
    },
    /// A request made no progress within the remote's `request_timeout`
    /// (after retries).
    #[error("remote `{remote}`: {op} timed out")]
    Timeout {
        /// The remote's name.
        remote: String,
        /// The operation and key.
        op: String,
    },
    /// The remote's configuration is unusable (bad URL, missing
    /// credentials, missing directory, invalid key…).
    #[error("remote `{remote}`: {message}")]
    Config {
        /// The remote's name.
        remote: String,
        /// What is wrong and what to set.
        message: String,
    },
    /// Writing downloaded bytes to the local file failed (disk full, I/O
    /// error). The remote is fine; the local errno is kept so a reader gets
    /// `ENOSPC` rather than `EIO`.
    #[error("remote `{remote}`: {op}: writing the local copy failed: {detail}")]
    LocalIo {
        /// The remote's name.
        remote: String,
        /// The operation and key.
        op: String,
        /// The local error.
        detail: String,
        /// Its errno (`ENOSPC`, `EIO`, …).
        errno: i32,
    },
    /// Anything else: unexpected HTTP status, local I/O error, …
    #[error("remote `{remote}`: {op} failed: {detail}")]
    Other {
        /// The remote's name.
        remote: String,
        /// The operation and key.
        op: String,
        /// The underlying error.
        detail: String,
    },
}

impl RemoteError {
    /// The errno the FUSE layer should answer with when this error ends a
    /// recall or a read of a migrated file.
    ///
    /// The kernel has already checked the local user's permissions when a
    /// stub is opened or read, so every remote-side failure — unreachable,
    /// timed out, rejected credentials, missing or corrupt object — is an
    /// `EIO` for the application: the data cannot be produced, and read(2)
    /// callers understand EIO, whereas ETIMEDOUT, EACCES or ENOENT from a
    /// read of an existing file would mislead them. The daemon logs the full
    /// error. [`RemoteError::SourceChanged`] is `EAGAIN` (only an upload can
    /// fail that way, and retrying after re-hashing succeeds).
    pub fn errno(&self) -> i32 {
        match self {
            RemoteError::SourceChanged { .. } => libc::EAGAIN,
            RemoteError::LocalIo { errno, .. } => *errno,
            RemoteError::Unreachable { .. }
            | RemoteError::Unauthenticated { .. }
            | RemoteError::PermissionDenied { .. }
            | RemoteError::NotFound { .. }
            | RemoteError::Corrupt { .. }
            | RemoteError::Timeout { .. }
            | RemoteError::Config { .. }
            | RemoteError::Other { .. } => libc::EIO,
        }
    }

    /// A short stable name for the kind of error (for JSON output and logs).
    pub fn kind(&self) -> &'static str {
        match self {
            RemoteError::Unreachable { .. } => "unreachable",
            RemoteError::Unauthenticated { .. } => "unauthenticated",
            RemoteError::PermissionDenied { .. } => "permission_denied",
            RemoteError::NotFound { .. } => "not_found",
            RemoteError::Corrupt { .. } => "corrupt",
            RemoteError::SourceChanged { .. } => "source_changed",
            RemoteError::Timeout { .. } => "timeout",
            RemoteError::Config { .. } => "config",
            RemoteError::LocalIo { .. } => "local_io",
            RemoteError::Other { .. } => "other",
        }
    }

    /// The name of the remote concerned.
    pub fn remote(&self) -> &str {
        match self {
            RemoteError::Unreachable { remote, .. }
            | RemoteError::Unauthenticated { remote, .. }
            | RemoteError::PermissionDenied { remote, .. }
            | RemoteError::NotFound { remote, .. }
            | RemoteError::Corrupt { remote, .. }
            | RemoteError::SourceChanged { remote, .. }
            | RemoteError::Timeout { remote, .. }
            | RemoteError::Config { remote, .. }
            | RemoteError::LocalIo { remote, .. }
            | RemoteError::Other { remote, .. } => remote,
        }
    }

    /// Whether retrying the same operation later may succeed (network
    /// trouble, timeouts, a file that was being written).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            RemoteError::Unreachable { .. }
                | RemoteError::Timeout { .. }
                | RemoteError::SourceChanged { .. }
        )
    }
}

/// What [`classify`] decided an `object_store` error is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Class {
    Unreachable(String),
    Timeout,
    Unauthenticated(String),
    PermissionDenied(String),
    NotFound,
    Other(String),
}

/// S3 / Azure / GCS error codes that mean "these credentials are not
/// valid", as opposed to "valid but not allowed".
const AUTH_CODES: &[&str] = &[
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "TokenRefreshRequired",
    "AuthorizationHeaderMalformed",
    "InvalidSecurity",
    "NotSignedUp",
    "AuthenticationFailed",
    // Azure's (and Azurite's) text for a bad SharedKey signature.
    "Server failed to authenticate the request",
    "InvalidAuthenticationInfo",
    "invalid_grant",
    "Invalid Credentials",
    "bad_access_key",
    "401 Unauthorized",
];

/// Classifies an `object_store` error by its variant, the transport error
/// kind in its source chain, and the HTTP status / error code in its text.
pub(crate) fn classify(err: &object_store::Error) -> Class {
    use object_store::Error as E;
    let text = chain_text(err);
    // Transport failures first: they can hide inside Generic.
    if let Some(t) = transport(err) {
        return t;
    }
    let auth = || AUTH_CODES.iter().any(|c| text.contains(c));
    match err {
        E::NotFound { .. } => Class::NotFound,
        E::Unauthenticated { .. } => Class::Unauthenticated(text),
        E::PermissionDenied { .. } if auth() => Class::Unauthenticated(text),
        E::PermissionDenied { .. } => Class::PermissionDenied(text),
        _ if text.contains("status code: 401") => Class::Unauthenticated(text),
        _ if text.contains("status code: 403") && auth() => Class::Unauthenticated(text),
        _ if text.contains("status code: 403") => Class::PermissionDenied(text),
        _ if text.contains("status code: 404") && text.contains("NoSuchBucket") => {
            Class::Other(text)
        }
        _ if text.contains("status code: 404") => Class::NotFound,
        _ => Class::Other(text),
    }
}

/// A transport-level failure (no HTTP answer) in the source chain.
fn transport(err: &(dyn StdError + 'static)) -> Option<Class> {
    use object_store::client::{HttpError, HttpErrorKind};
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(h) = e.downcast_ref::<HttpError>() {
            // A connect timeout is "unreachable", not a slow server.
            let connect = source_chain(h).any(|s| {
                s.downcast_ref::<reqwest::Error>()
                    .is_some_and(|r| r.is_connect())
            });
            return match h.kind() {
                HttpErrorKind::Connect => Some(Class::Unreachable(root_cause(h))),
                HttpErrorKind::Timeout if connect => Some(Class::Unreachable(format!(
                    "connecting timed out ({})",
                    root_cause(h)
                ))),
                HttpErrorKind::Timeout => Some(Class::Timeout),
                HttpErrorKind::Request | HttpErrorKind::Interrupted => {
                    Some(Class::Unreachable(root_cause(h)))
                }
                HttpErrorKind::Decode | HttpErrorKind::Unknown => None,
                _ => None,
            };
        }
        cur = e.source();
    }
    None
}

fn source_chain<'a>(
    e: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    let mut next: Option<&'a (dyn StdError + 'static)> = Some(e);
    std::iter::from_fn(move || {
        let cur = next?;
        next = cur.source();
        Some(cur)
    })
}

/// The innermost error's text (e.g. "Connection refused (os error 111)").
fn root_cause(e: &(dyn StdError + 'static)) -> String {
    let last = source_chain(e).last().unwrap_or(e);
    last.to_string()
}

/// Shortens an HTTP error text to "HTTP 403 Forbidden, Code: message" when
/// it carries an S3/Azure/GCS XML error body; other texts are kept.
pub(crate) fn summarize(text: &str) -> String {
    let tag = |name: &str| -> Option<String> {
        let open = format!("<{name}>");
        let close = format!("</{name}>");
        let start = text.find(&open)? + open.len();
        let end = text[start..].find(&close)? + start;
        Some(text[start..end].trim().to_string())
    };
    let status = text.find("status code: ").map(|i| {
        let rest = &text[i + "status code: ".len()..];
        rest.split(':').next().unwrap_or("").trim().to_string()
    });
    match (status, tag("Code")) {
        (Some(status), Some(code)) => {
            let message = tag("Message")
                .map(|m| {
                    // Azure appends "RequestId:… Time:…" on new lines.
                    let m = m.split(" RequestId:").next().unwrap_or("");
                    let m = m.split('\n').next().unwrap_or("");
                    format!(": {}", m.trim())
                })
                .unwrap_or_default();
            format!("HTTP {status}, {code}{message}")
        }
        _ => text.to_string(),
    }
}

/// The error and its sources, deduplicated (object_store often repeats the
/// source's text in its own message).
pub(crate) fn chain_text(e: &(dyn StdError + 'static)) -> String {
    let mut out = String::new();
    for s in source_chain(e) {
        let t = s.to_string();
        if out.contains(&t) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&t);
    }
    // Keep messages readable: an HTML or XML error body can be long.
    const MAX: usize = 600;
    if out.len() > MAX {
        let mut cut = MAX;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Body(&'static str);
    impl std::fmt::Display for Body {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl StdError for Body {}

    fn perm(body: &'static str) -> object_store::Error {
        object_store::Error::PermissionDenied {
            path: "p".into(),
            source: Box::new(Body(body)),
        }
    }

    #[test]
    fn forbidden_with_bad_key_is_unauthenticated() {
        let e = perm(
            "Server returned non-2xx status code: 403 Forbidden: <Code>SignatureDoesNotMatch</Code>",
        );
        assert!(matches!(classify(&e), Class::Unauthenticated(_)));
        let e = perm("<Code>InvalidAccessKeyId</Code>");
        assert!(matches!(classify(&e), Class::Unauthenticated(_)));
        let e = perm("<Code>AccessDenied</Code>");
        assert!(matches!(classify(&e), Class::PermissionDenied(_)));
    }

    #[test]
    fn generic_statuses_are_classified() {
        let g = |body: &'static str| object_store::Error::Generic {
            store: "S3",
            source: Box::new(Body(body)),
        };
        assert!(matches!(
            classify(&g(
                "Server returned non-2xx status code: 403 Forbidden: <Code>InvalidAccessKeyId</Code>"
            )),
            Class::Unauthenticated(_)
        ));
        assert!(matches!(
            classify(&g("Server returned non-2xx status code: 401 Unauthorized")),
            Class::Unauthenticated(_)
        ));
        assert!(matches!(
            classify(&g(
                "Server returned non-2xx status code: 403 Forbidden: AccessDenied"
            )),
            Class::PermissionDenied(_)
        ));
        assert!(matches!(
            classify(&g(
                "Server returned non-2xx status code: 404 Not Found: NoSuchBucket"
            )),
            Class::Other(_)
        ));
        assert!(matches!(
            classify(&g("Server returned non-2xx status code: 500")),
            Class::Other(_)
        ));
    }

    #[test]
    fn transport_errors_are_unreachable_or_timeout() {
        use object_store::client::{HttpError, HttpErrorKind};
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        let e = object_store::Error::Generic {
            store: "S3",
            source: Box::new(HttpError::new(HttpErrorKind::Connect, io)),
        };
        match classify(&e) {
            Class::Unreachable(d) => assert!(d.contains("Connection refused"), "{d}"),
            c => panic!("{c:?}"),
        }
        let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "slow");
        let e = object_store::Error::Generic {
            store: "S3",
            source: Box::new(HttpError::new(HttpErrorKind::Timeout, io)),
        };
        assert_eq!(classify(&e), Class::Timeout);
    }

    #[test]
    fn xml_error_bodies_are_summarized() {
        let t = "Generic S3 error: Error performing GET http://h/b?list-type=2 in 6ms - Server \
                 returned non-2xx status code: 403 Forbidden: <?xml version=\"1.0\"?> <Error>\
                 <Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated \
                 does not match.</Message><Resource>/b</Resource></Error>";
        assert_eq!(
            summarize(t),
            "HTTP 403 Forbidden, SignatureDoesNotMatch: The request signature we calculated does not match."
        );
        let az = "status code: 403 Forbidden: <Error> <Code>AuthorizationFailure</Code> \
                  <Message>Server failed to authenticate the request. RequestId:1 Time:2</Message></Error>";
        assert_eq!(
            summarize(az),
            "HTTP 403 Forbidden, AuthorizationFailure: Server failed to authenticate the request."
        );
        assert_eq!(summarize("Connection refused"), "Connection refused");
    }

    #[test]
    fn errno_mapping() {
        let r = || "r".to_string();
        assert_eq!(
            RemoteError::SourceChanged {
                remote: r(),
                path: "/x".into()
            }
            .errno(),
            libc::EAGAIN
        );
        for e in [
            RemoteError::Unreachable {
                remote: r(),
                detail: r(),
            },
            RemoteError::Timeout {
                remote: r(),
                op: r(),
            },
            RemoteError::NotFound {
                remote: r(),
                key: r(),
            },
            RemoteError::Corrupt {
                remote: r(),
                key: r(),
                expected: r(),
                got: r(),
            },
        ] {
            assert_eq!(e.errno(), libc::EIO, "{e}");
        }
    }

    #[test]
    fn messages_name_remote_and_key() {
        let e = RemoteError::Corrupt {
            remote: "cloud".into(),
            key: "tier/data/ab".into(),
            expected: "blake3 ab".into(),
            got: "blake3 cd".into(),
        };
        let m = e.to_string();
        assert!(
            m.contains("`cloud`") && m.contains("tier/data/ab") && m.contains("cd"),
            "{m}"
        );
        let e = RemoteError::SourceChanged {
            remote: "cloud".into(),
            path: "/hot/f".into(),
        };
        assert!(e.to_string().contains("/hot/f") && e.to_string().contains("`cloud`"));
    }
}
