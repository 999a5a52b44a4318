//! The daemon side: accept connections and answer requests with a handler.
//!
//! Plain std threads: one accept thread, plus one thread per open connection
//! (capped at [`MAX_CONNECTIONS`]). No async runtime is required of the caller.

use std::collections::HashMap;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use parking_lot::Mutex;
use tracing::{debug, error, info, warn};

use super::MAX_REQUEST_BYTES;
use super::error::ControlError;
use super::peer::{AccessPolicy, PeerCred, peer_cred, peer_groups};
use super::protocol::{ErrorKind, Request, Response};

/// Answers one request. Called on connection threads, possibly concurrently;
/// it should be quick (it delays shutdown while it runs).
pub type Handler = Arc<dyn Fn(Request) -> Response + Send + Sync>;

/// Most connections served at once; further clients wait in the kernel's
/// accept backlog until one closes.
pub const MAX_CONNECTIONS: usize = 32;

/// A connection that sends nothing for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A client that does not read its answer for this long is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Permissions of the socket file: owner (root) only.
const SOCKET_MODE: u32 = 0o600;

/// Starts serving control requests on `socket`, answering each with `handler`.
///
/// A socket file left behind by a dead daemon is replaced; one that a live
/// process still answers on is not ([`ControlError::AlreadyServing`]), nor is
/// a path that is not a socket at all. The socket is created with mode `0600`
/// and only root (or the daemon's own user) may send requests.
///
/// The returned [`ControlServer`] serves until it is dropped or
/// [`shut down`](ControlServer::shutdown).
pub fn serve(socket: &Path, handler: Handler) -> Result<ControlServer, ControlError> {
    serve_with_policy(socket, handler, AccessPolicy::root_and_self())
}

/// [`serve`], also admitting members of group `gid` (config `control_group`):
/// the socket then gets that group and mode `0660`.
pub fn serve_with_group(
    socket: &Path,
    handler: Handler,
    gid: Option<u32>,
) -> Result<ControlServer, ControlError> {
    serve_with_policy(
        socket,
        handler,
        AccessPolicy::root_and_self().with_group(gid),
    )
}

/// [`serve`] with an explicit access policy.
pub(crate) fn serve_with_policy(
    socket: &Path,
    handler: Handler,
    policy: AccessPolicy,
) -> Result<ControlServer, ControlError> {
    claim_socket_path(socket)?;
    let listener = UnixListener::bind(socket).map_err(|e| match e.kind() {
        // Another daemon bound it between our check and our bind.
        io::ErrorKind::AddrInUse => ControlError::AlreadyServing {
            socket: socket.to_path_buf(),
        },
        _ => io_error(socket, "cannot bind control socket", e),
    })?;
    // From here on the file is ours: `SocketFile` removes it on every exit path.
    let socket_file = SocketFile::new(socket)?;
    fs::set_permissions(socket, fs::Permissions::from_mode(SOCKET_MODE))
        .map_err(|e| io_error(socket, "cannot set permissions of control socket", e))?;
    if let Some(gid) = policy.group() {
        std::os::unix::fs::chown(socket, None, Some(gid))
            .and_then(|()| fs::set_permissions(socket, fs::Permissions::from_mode(0o660)))
            .map_err(|e| io_error(socket, "cannot give the control socket its group", e))?;
    }
    listener
        .set_nonblocking(true)
        .map_err(|e| io_error(socket, "cannot configure control socket", e))?;
    let (wake_tx, wake_rx) = UnixStream::pair()
        .map_err(|e| io_error(socket, "cannot create wake-up pipe for control socket", e))?;

    let shared = Arc::new(Shared {
        socket: socket.to_path_buf(),
        handler,
        policy,
        connections: Mutex::new(Connections::default()),
    });
    let accept_shared = Arc::clone(&shared);
    let accept_thread = thread::Builder::new()
        .name("tierfs-ctl-accept".into())
        .spawn(move || accept_loop(&listener, &wake_rx, &accept_shared))
        .map_err(|e| io_error(socket, "cannot start thread for control socket", e))?;

    info!(socket = %socket.display(), "control socket listening");
    Ok(ControlServer {
        socket_file,
        wake: Some(wake_tx),
        accept_thread: Some(accept_thread),
        shared,
    })
}

/// A running control server. Dropping it (or calling
/// [`shutdown`](ControlServer::shutdown)) stops accepting, closes open
/// connections, waits for running handlers to return and removes the socket.
pub struct ControlServer {
    socket_file: SocketFile,
    wake: Option<UnixStream>,
    accept_thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl ControlServer {
    /// The socket path being served.
    pub fn socket(&self) -> &Path {
        &self.socket_file.path
    }

    /// Stops the server. When this returns no handler is running any more
    /// and the socket file is gone.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        // Closing our end of the pair wakes the accept thread's poll.
        let Some(wake) = self.wake.take() else {
            return;
        };
        drop(wake);
        if let Some(thread) = self.accept_thread.take()
            && thread.join().is_err()
        {
            error!("control accept thread panicked");
        }
        self.shared.close_all_connections();
        self.socket_file.remove();
        debug!(socket = %self.socket().display(), "control socket closed");
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl std::fmt::Debug for ControlServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlServer")
            .field("socket", &self.socket())
            .finish_non_exhaustive()
    }
}

/// The socket file we created, remembered by inode so that we never remove a
/// socket some later daemon bound at the same path.
struct SocketFile {
    path: PathBuf,
    identity: Option<(u64, u64)>,
}

impl SocketFile {
    fn new(path: &Path) -> Result<SocketFile, ControlError> {
        let meta = fs::symlink_metadata(path)
            .map_err(|e| io_error(path, "cannot stat control socket", e))?;
        Ok(SocketFile {
            path: path.to_path_buf(),
            identity: Some((meta.dev(), meta.ino())),
        })
    }

    fn remove(&mut self) {
        let Some(identity) = self.identity.take() else {
            return;
        };
        let still_ours = fs::symlink_metadata(&self.path)
            .map(|m| (m.dev(), m.ino()) == identity)
            .unwrap_or(false);
        if still_ours && let Err(e) = fs::remove_file(&self.path) {
            warn!(socket = %self.path.display(), "cannot remove control socket: {e}");
        }
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Makes `socket` free for binding: absent, or a stale socket that nobody
/// answers on (which is removed).
fn claim_socket_path(socket: &Path) -> Result<(), ControlError> {
    let meta = match fs::symlink_metadata(socket) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error(socket, "cannot inspect control socket path", e)),
    };
    if !meta.file_type().is_socket() {
        return Err(ControlError::NotASocket {
            socket: socket.to_path_buf(),
        });
    }
    match UnixStream::connect(socket) {
        Ok(_) => Err(ControlError::AlreadyServing {
            socket: socket.to_path_buf(),
        }),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            info!(socket = %socket.display(), "removing stale control socket");
            match fs::remove_file(socket) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io_error(socket, "cannot remove stale control socket", e)),
            }
        }
        Err(e) => Err(io_error(
            socket,
            "cannot check whether another daemon serves",
            e,
        )),
    }
}

fn io_error(socket: &Path, action: &'static str, source: io::Error) -> ControlError {
    ControlError::Io {
        socket: socket.to_path_buf(),
        action,
        source,
    }
}

/// State shared by the accept thread and the connection threads.
struct Shared {
    socket: PathBuf,
    handler: Handler,
    policy: AccessPolicy,
    connections: Mutex<Connections>,
}

/// Open connections, so shutdown can close them and wait for their threads.
#[derive(Default)]
struct Connections {
    next_id: u64,
    open: HashMap<u64, OpenConnection>,
    closed: bool,
}

struct OpenConnection {
    /// A second handle on the socket, used to unblock the thread's reads.
    stream: UnixStream,
    thread: JoinHandle<()>,
}

impl Shared {
    /// Starts a thread serving `stream`.
    fn spawn_connection(self: &Arc<Self>, stream: UnixStream) {
        let mut conns = self.connections.lock();
        if conns.closed {
            return;
        }
        let handle = match stream.try_clone() {
            Ok(handle) => handle,
            Err(e) => {
                warn!("cannot clone control connection: {e}");
                return;
            }
        };
        let id = conns.next_id;
        conns.next_id += 1;
        let shared = Arc::clone(self);
        let spawned = thread::Builder::new()
            .name("tierfs-ctl-conn".into())
            .spawn(move || {
                serve_connection(stream, &shared);
                shared.connections.lock().open.remove(&id);
            });
        match spawned {
            Ok(thread) => {
                conns.open.insert(
                    id,
                    OpenConnection {
                        stream: handle,
                        thread,
                    },
                );
            }
            Err(e) => warn!("cannot start control connection thread: {e}"),
        }
    }

    /// Closes every open connection and waits for their threads to finish.
    fn close_all_connections(&self) {
        let open: Vec<OpenConnection> = {
            let mut conns = self.connections.lock();
            conns.closed = true;
            conns.open.drain().map(|(_, c)| c).collect()
        };
        for conn in &open {
            let _ = conn.stream.shutdown(std::net::Shutdown::Both);
        }
        for conn in open {
            if conn.thread.join().is_err() {
                error!("control connection thread panicked");
            }
        }
    }

    /// Runs the handler, turning a panic into an error response.
    fn answer(&self, request: Request) -> Response {
        let op = request.op();
        match catch_unwind(AssertUnwindSafe(|| (self.handler)(request))) {
            Ok(response) => response,
            Err(_) => {
                error!(op, "control request handler panicked");
                Response::error(
                    ErrorKind::Internal,
                    format!(
                        "internal error in the daemon while handling `{op}`; see the daemon's log"
                    ),
                )
            }
        }
    }
}

/// Waits for connections until the wake-up socket closes.
fn accept_loop(listener: &UnixListener, wake: &UnixStream, shared: &Arc<Shared>) {
    let mut reserve = Reserve::new();
    loop {
        reserve.refill();
        // At the connection cap, leave new clients in the kernel's backlog
        // (their own timeouts apply) and look again shortly.
        let has_room = shared.connections.lock().open.len() < MAX_CONNECTIONS;
        match wait_for_event(listener, wake, has_room) {
            Ok(Event::Connection) => {}
            Ok(Event::Idle) => continue,
            Ok(Event::Shutdown) => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                error!(socket = %shared.socket.display(), "poll on control socket failed: {e}");
                thread::sleep(Duration::from_millis(100));
                continue;
            }
        }
        match listener.accept() {
            Ok((stream, _)) => match stream.set_nonblocking(false) {
                Ok(()) => shared.spawn_connection(stream),
                Err(e) => warn!("cannot configure control connection: {e}"),
            },
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            Err(e)
                if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
                    && reserve.release() =>
            {
                // Out of descriptors: the reserve, just closed, makes room for
                // this connection and what its request opens (the catalog),
                // so an admin can still ask what is going on.
                warn!(socket = %shared.socket.display(), "out of descriptors; serving a control connection from the reserve");
                match listener.accept() {
                    Ok((stream, _)) => match stream.set_nonblocking(false) {
                        Ok(()) => shared.spawn_connection(stream),
                        Err(e) => warn!("cannot configure control connection: {e}"),
                    },
                    Err(e) => {
                        warn!(socket = %shared.socket.display(), "cannot accept control connection: {e}");
                        thread::sleep(Duration::from_millis(100));
                    }
                }
            }
            Err(e) => {
                // E.g. EMFILE with the reserve spent: back off instead of spinning.
                warn!(socket = %shared.socket.display(), "cannot accept control connection: {e}");
                thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Descriptors the control server keeps in reserve so that it can still
/// answer when the process has run out (a user holding thousands of files
/// open through the mount): released to accept one connection and serve its
/// request, then taken back as soon as descriptors are free again.
struct Reserve(Vec<std::fs::File>);

/// How many descriptors [`Reserve`] holds: the connection, the catalog and
/// its `-wal`/`-shm`, and some slack.
const RESERVED_FDS: usize = 16;

impl Reserve {
    fn new() -> Reserve {
        let mut r = Reserve(Vec::with_capacity(RESERVED_FDS));
        r.refill();
        r
    }

    /// Opens descriptors until the reserve is full or none can be had.
    fn refill(&mut self) {
        while self.0.len() < RESERVED_FDS {
            match std::fs::File::open("/dev/null") {
                Ok(f) => self.0.push(f),
                Err(_) => break,
            }
        }
    }

    /// Closes the reserve; `false` if it was empty (nothing to gain).
    fn release(&mut self) -> bool {
        let had = !self.0.is_empty();
        self.0.clear();
        had
    }
}

/// What woke the accept thread.
enum Event {
    /// A client is waiting to be accepted.
    Connection,
    /// Nothing happened within the re-check interval (only when full).
    Idle,
    /// The wake-up socket closed: stop.
    Shutdown,
}

/// How often a full server looks whether a connection slot has freed up.
const FULL_RECHECK_MS: libc::c_int = 20;

/// Blocks until the wake-up socket signals shutdown or, if `listen`, the
/// listener has a pending connection. When not listening, returns
/// [`Event::Idle`] after a short interval.
fn wait_for_event(listener: &UnixListener, wake: &UnixStream, listen: bool) -> io::Result<Event> {
    let mut fds = [
        libc::pollfd {
            fd: wake.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            // poll(2) ignores entries with a negative fd.
            fd: if listen { listener.as_raw_fd() } else { -1 },
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    let timeout = if listen { -1 } else { FULL_RECHECK_MS };
    // SAFETY: `fds` is a valid array of two pollfds whose fds stay open for
    // the duration of the call (borrowed from `wake` and `listener`).
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(if fds[0].revents != 0 {
        Event::Shutdown
    } else if fds[1].revents != 0 {
        Event::Connection
    } else {
        Event::Idle
    })
}

/// Serves requests on one connection until the client closes it, goes idle,
/// or the server shuts down.
fn serve_connection(stream: UnixStream, shared: &Shared) {
    let denied = match peer_cred(&stream) {
        Ok(peer) => check_peer(shared, &peer, &stream),
        Err(e) => Some(format!("cannot identify the connecting process: {e}")),
    };
    if let Err(e) = configure_connection(&stream) {
        warn!("cannot configure control connection: {e}");
        return;
    }
    let mut reader = BufReader::new(&stream);
    if let Some(message) = denied {
        // Read the request before refusing, so the client is not writing into
        // a closed socket when our answer arrives.
        let _ = read_request_line(&mut reader);
        let _ = write_response(
            &stream,
            &Response::error(ErrorKind::PermissionDenied, message),
        );
        return;
    }
    loop {
        let (response, then) = match read_request_line(&mut reader) {
            Ok(Some(line)) if line.trim().is_empty() => continue,
            Ok(Some(line)) => (answer_line(shared, &line), Then::Continue),
            Ok(None) => return,
            Err(RequestLineError::TooLong) => (
                Response::error(
                    ErrorKind::InvalidRequest,
                    format!("request too long (limit {MAX_REQUEST_BYTES} bytes)"),
                ),
                Then::Close,
            ),
            Err(RequestLineError::NotUtf8) => (
                Response::error(ErrorKind::InvalidRequest, "request is not valid UTF-8"),
                Then::Continue,
            ),
            Err(RequestLineError::Io(e)) => {
                debug!("control connection closed: {e}");
                return;
            }
        };
        if let Err(e) = write_response(&stream, &response) {
            debug!("cannot answer control request: {e}");
            return;
        }
        if then == Then::Close {
            return;
        }
    }
}

/// Whether a connection stays open after an answer.
#[derive(PartialEq, Eq)]
enum Then {
    Continue,
    Close,
}

/// The refusal message for `peer`, if it may not talk to us.
fn check_peer(shared: &Shared, peer: &PeerCred, stream: &UnixStream) -> Option<String> {
    let verdict = shared
        .policy
        .check_with_groups(peer, || peer_groups(stream).unwrap_or_default())
        .err();
    if verdict.is_some() {
        warn!(
            uid = peer.uid,
            gid = peer.gid,
            pid = peer.pid,
            "refused control connection from unauthorised user"
        );
    } else {
        debug!(uid = peer.uid, pid = peer.pid, "control connection");
    }
    verdict
}

fn configure_connection(stream: &UnixStream) -> io::Result<()> {
    stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    stream.set_write_timeout(Some(WRITE_TIMEOUT))
}

/// Decodes and answers one request line.
fn answer_line(shared: &Shared, line: &str) -> Response {
    match Request::from_json(line) {
        Ok(request) => {
            debug!(op = request.op(), "control request");
            shared.answer(request)
        }
        Err(error) => {
            debug!("bad control request: {error}");
            Response::Error(error)
        }
    }
}

enum RequestLineError {
    TooLong,
    NotUtf8,
    Io(io::Error),
}

/// Reads one newline-terminated request; `None` at a clean end of stream.
/// A last line without a newline is accepted.
fn read_request_line(reader: &mut impl BufRead) -> Result<Option<String>, RequestLineError> {
    let mut buf = Vec::new();
    let limit = MAX_REQUEST_BYTES as u64;
    let n = reader
        .take(limit)
        .read_until(b'\n', &mut buf)
        .map_err(RequestLineError::Io)?;
    if n == 0 {
        return Ok(None);
    }
    if n as u64 == limit && buf.last() != Some(&b'\n') {
        return Err(RequestLineError::TooLong);
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| RequestLineError::NotUtf8)
}

/// Writes `response` as one JSON line.
fn write_response(mut stream: &UnixStream, response: &Response) -> io::Result<()> {
    let mut line = serde_json::to_vec(response).unwrap_or_else(|e| {
        let error = Response::error(ErrorKind::Internal, format!("cannot encode the reply: {e}"));
        serde_json::to_vec(&error).unwrap_or_else(|_| {
            br#"{"ok":false,"error":{"kind":"internal","message":"cannot encode the reply"}}"#
                .to_vec()
        })
    });
    line.push(b'\n');
    stream.write_all(&line)?;
    stream.flush()
}
