//! Errors of the control socket, for both the daemon and the client side.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use super::protocol::RequestError;

/// What went wrong talking over (or setting up) the control socket.
///
/// Every message names the socket path, so that a mismatch between the
/// daemon's and `tierctl`'s config is easy to spot.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Nothing is serving the socket: the file is missing, or nobody is
    /// listening on it (a daemon that exited without cleaning up).
    #[error("tierfs daemon is not running ({reason} {})", socket.display())]
    NotRunning {
        /// The control socket path.
        socket: PathBuf,
        /// Why we think so, e.g. "no control socket at".
        reason: &'static str,
    },
    /// The socket exists but we may not connect to it.
    #[error(
        "permission denied connecting to {}: the control socket is for root only; run tierctl as root (e.g. with sudo)",
        socket.display()
    )]
    PermissionDenied {
        /// The control socket path.
        socket: PathBuf,
    },
    /// The daemon did not answer in time.
    #[error("tierfs daemon at {} did not answer within {}", socket.display(), humantime::format_duration(*timeout))]
    Timeout {
        /// The control socket path.
        socket: PathBuf,
        /// The time we waited.
        timeout: Duration,
    },
    /// The daemon answered with something that is not a valid response.
    #[error("protocol error on {}: {message}", socket.display())]
    Protocol {
        /// The control socket path.
        socket: PathBuf,
        /// What was wrong with the answer.
        message: String,
    },
    /// The daemon answered the request with an error.
    #[error("tierfs daemon at {} refused the request: {error}", socket.display())]
    Refused {
        /// The control socket path.
        socket: PathBuf,
        /// The daemon's error: its kind and message.
        error: RequestError,
    },
    /// Another live daemon already serves this socket.
    #[error("another tierfs daemon is already serving {}", socket.display())]
    AlreadyServing {
        /// The control socket path.
        socket: PathBuf,
    },
    /// The socket path is taken by something that is not a socket.
    #[error("{} exists and is not a socket; refusing to replace it", socket.display())]
    NotASocket {
        /// The control socket path.
        socket: PathBuf,
    },
    /// Any other I/O failure.
    #[error("{action} {}: {source}", socket.display())]
    Io {
        /// The control socket path.
        socket: PathBuf,
        /// What we were doing, e.g. "cannot bind control socket".
        action: &'static str,
        /// The underlying error.
        source: io::Error,
    },
}

impl ControlError {
    /// True when the daemon is simply not running (as opposed to running but
    /// unreachable or misbehaving).
    pub fn is_not_running(&self) -> bool {
        matches!(self, ControlError::NotRunning { .. })
    }

    /// Classifies an error from `connect(2)` on `socket`.
    pub(crate) fn from_connect(socket: PathBuf, err: io::Error) -> ControlError {
        match err.kind() {
            io::ErrorKind::NotFound => ControlError::NotRunning {
                socket,
                reason: "no control socket at",
            },
            io::ErrorKind::ConnectionRefused => ControlError::NotRunning {
                socket,
                reason: "nothing is listening on",
            },
            io::ErrorKind::PermissionDenied => ControlError::PermissionDenied { socket },
            _ => ControlError::Io {
                socket,
                action: "cannot connect to control socket",
                source: err,
            },
        }
    }
}
