//! The `tierctl` side: send one request, wait for one answer.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use super::MAX_RESPONSE_BYTES;
use super::error::ControlError;
use super::protocol::{DaemonStatus, Reply, Request, Response};

/// Sends `req` to the daemon serving `socket` and returns its answer.
///
/// `timeout` bounds sending the request and waiting for the whole answer.
/// (Connecting to a Unix socket does not wait unless the daemon's accept
/// backlog is full.) A daemon that is not running is reported as
/// [`ControlError::NotRunning`]; a [`Response::Error`] is returned as `Ok`,
/// since the exchange itself worked. A successful reply is always the one
/// for `req` (same op); any other is a [`ControlError::Protocol`] error.
pub fn request(socket: &Path, req: &Request, timeout: Duration) -> Result<Response, ControlError> {
    let deadline = Instant::now() + timeout;
    let stream = UnixStream::connect(socket)
        .map_err(|e| ControlError::from_connect(socket.to_path_buf(), e))?;
    let exchange = Exchange {
        stream,
        socket,
        timeout,
        deadline,
    };
    exchange.send(req)?;
    let line = exchange.receive_line()?;
    let response: Response = serde_json::from_slice(&line)
        .map_err(|e| exchange.protocol(format!("invalid response: {e}")))?;
    match &response {
        Response::Ok(reply) if reply.op() != req.op() => Err(exchange.protocol(format!(
            "the daemon answered `{}` with a `{}` reply",
            req.op(),
            reply.op()
        ))),
        _ => Ok(response),
    }
}

/// Sends `req` and returns its reply as the type `T` that request expects
/// (e.g. [`DaemonStatus`] for [`Request::Status`]). A refusal is
/// [`ControlError::Refused`], carrying the daemon's
/// [`RequestError`](super::RequestError).
pub fn call<T>(socket: &Path, req: &Request, timeout: Duration) -> Result<T, ControlError>
where
    T: TryFrom<Reply, Error = Reply>,
{
    match request(socket, req, timeout)? {
        Response::Ok(reply) => T::try_from(reply).map_err(|other| ControlError::Protocol {
            socket: socket.to_path_buf(),
            message: format!(
                "`{}` answered with a reply of the wrong type ({})",
                req.op(),
                other.op()
            ),
        }),
        Response::Error(error) => Err(ControlError::Refused {
            socket: socket.to_path_buf(),
            error,
        }),
    }
}

/// Asks the daemon for its [`DaemonStatus`].
pub fn status(socket: &Path, timeout: Duration) -> Result<DaemonStatus, ControlError> {
    call(socket, &Request::Status, timeout)
}

/// One request/response exchange on a connected socket, under a deadline.
struct Exchange<'a> {
    stream: UnixStream,
    socket: &'a Path,
    timeout: Duration,
    deadline: Instant,
}

impl Exchange<'_> {
    /// Writes the request line. If the daemon already closed its side (it
    /// may refuse before reading everything), its answer is still read.
    fn send(&self, req: &Request) -> Result<(), ControlError> {
        let mut line = serde_json::to_vec(req)
            .map_err(|e| self.protocol(format!("cannot encode request: {e}")))?;
        line.push(b'\n');
        self.stream
            .set_write_timeout(Some(self.remaining()?))
            .map_err(|e| self.io("cannot configure connection to", e))?;
        match (&self.stream).write_all(&line) {
            Ok(()) => Ok(()),
            Err(e) if is_timeout(&e) => Err(self.timed_out()),
            Err(e) if is_closed(&e) => Ok(()),
            Err(e) => Err(self.io("cannot send request to", e)),
        }
    }

    /// Reads one newline-terminated answer (without the newline).
    fn receive_line(&self) -> Result<Vec<u8>, ControlError> {
        let mut line = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            self.stream
                .set_read_timeout(Some(self.remaining()?))
                .map_err(|e| self.io("cannot configure connection to", e))?;
            let n = match (&self.stream).read(&mut chunk) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_timeout(&e) => return Err(self.timed_out()),
                Err(e) if is_closed(&e) => 0,
                Err(e) => return Err(self.io("cannot read answer from", e)),
            };
            if n == 0 {
                let message = if line.is_empty() {
                    "the daemon closed the connection without answering"
                } else {
                    "the daemon's answer ended without a newline"
                };
                return Err(self.protocol(message.into()));
            }
            if let Some(pos) = chunk[..n].iter().position(|&b| b == b'\n') {
                line.extend_from_slice(&chunk[..pos]);
                return Ok(line);
            }
            line.extend_from_slice(&chunk[..n]);
            if line.len() > MAX_RESPONSE_BYTES {
                return Err(self.protocol(format!("answer longer than {MAX_RESPONSE_BYTES} bytes")));
            }
        }
    }

    /// Time left before the deadline, or a timeout error if none is left.
    fn remaining(&self) -> Result<Duration, ControlError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(self.timed_out());
        }
        Ok(left)
    }

    fn timed_out(&self) -> ControlError {
        ControlError::Timeout {
            socket: self.socket.to_path_buf(),
            timeout: self.timeout,
        }
    }

    fn protocol(&self, message: String) -> ControlError {
        ControlError::Protocol {
            socket: self.socket.to_path_buf(),
            message,
        }
    }

    fn io(&self, action: &'static str, source: io::Error) -> ControlError {
        ControlError::Io {
            socket: self.socket.to_path_buf(),
            action,
            source,
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn is_closed(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
    )
}
