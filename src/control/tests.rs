//! Tests over real sockets in temporary directories.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::peer::AccessPolicy;
use super::server::serve_with_policy;
use super::*;

const TIMEOUT: Duration = Duration::from_secs(5);

fn sample_status() -> DaemonStatus {
    DaemonStatus {
        pid: 4242,
        version: "9.9.9".into(),
        mountpoint: "/mnt/data".into(),
        hot_dir: "/srv/.data-hot".into(),
        started_at_unix: 1_700_000_000,
        passthrough: false,
        open_files: 2,
        catalog_queue: 5,
        catalog_pending_writes: 0,
        catalog_write_failures: 0,
        catalog_dropped_writes: 0,
    }
}

fn status_handler() -> Handler {
    Arc::new(|req| match req {
        Request::Status => Reply::Status(sample_status()).into(),
        other => Response::error(
            ErrorKind::InvalidRequest,
            format!("{} is not supported by this test server", other.op()),
        ),
    })
}

fn socket_in(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("ctl.sock")
}

/// Sends raw lines on one connection and returns the raw answer lines.
fn raw_exchange(socket: &Path, lines: &[&str]) -> Vec<String> {
    let stream = UnixStream::connect(socket).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut answers = Vec::new();
    for line in lines {
        (&stream).write_all(format!("{line}\n").as_bytes()).unwrap();
        let mut answer = String::new();
        reader.read_line(&mut answer).unwrap();
        answers.push(answer);
    }
    answers
}

#[test]
fn round_trip_status() {
    let dir = tempfile::tempdir().unwrap();
    let socket = socket_in(&dir);
    let server = serve(&socket, status_handler()).unwrap();
    assert_eq!(server.socket(), socket);

    let resp = request(&socket, &Request::Status, TIMEOUT).unwrap();
    assert_eq!(resp, Response::Ok(Reply::Status(sample_status())));
    assert_eq!(status(&socket, TIMEOUT).unwrap(), sample_status());
}

#[test]
fn one_connection_carries_several_requests() {
    let dir = tempfile::tempdir().unwrap();
    let socket = socket_in(&dir);
    let _server = serve(&socket, status_handler()).unwrap();

    let answers = raw_exchange(
        &socket,
        &[
            r#"{"op":"status"}"#,
            r#"{"op":"launch"}"#,
            "not json",
            r#"{"op":"status"}"#,
        ],
    );
    let parsed: Vec<Response> = answers
        .iter()
        .map(|a| serde_json::from_str(a).unwrap())
        .collect();
    assert!(matches!(parsed[0], Response::Ok(Reply::Status(_))));
    assert!(
        matches!(&parsed[1], Response::Error(e)
            if e.kind == ErrorKind::InvalidRequest && e.message.contains("unknown op `launch`")),
        "{parsed:?}"
    );
    assert!(
        matches!(&parsed[2], Response::Error(e) if e.message.starts_with("unsupported request"))
    );
    assert!(matches!(parsed[3], Response::Ok(Reply::Status(_))));
}

#[test]
fn socket_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let socket = socket_in(&dir);
    let _server = serve(&socket, status_handler()).unwrap();
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
}

#[test]
fn stale_socket_file_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let socket = socket_in(&dir);
    drop(UnixListener::bind(&socket).unwrap()); // leaves the file behind
    assert!(socket.exists());

    let err = request(&socket, &Request::Status, TIMEOUT).unwrap_err();
    assert!(err.is_not_running(), "{err}");
    assert!(err.to_string().contains("nothing is listening on"), "{err}");

    let _server = serve(&socket, status_handler()).unwrap();
    assert_eq!(status(&socket, TIMEOUT).unwrap(), sample_status());
}

#[test]
fn live_socket_is_not_stolen() {
    let dir = tempfile::tempdir().unwrap();
    let socket = socket_in(&dir);
    let _first = serve(&socket, status_handler()).unwrap();

    let err = serve(&socket, status_handler()).unwrap_err();
    assert!(
        matches!(err, ControlError::AlreadyServing { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "another tierfs daemon is already serving {}",
            socket.display()
        )
    );
    // The first server is unharmed.
    assert_eq!(status(&socket, TIMEOUT).unwrap(), sample_status());
}

#[test]
fn non_socket_path_is_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let socket = socket_in(&dir);
    std::fs::write(&socket, "precious").unwrap();
    let err = serve(&socket, status_handler()).unwrap_err();
    assert!(matches!(err, ControlError::NotASocket { .. }), "{err:?}");
    assert!(err.to_string().contains("is not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&socket).unwrap(), "precious");
}

#[test]
fn missing_socket_means_not_running() {
    let dir = tempfile::tempdir().unwrap();
    let socket = socket_in(&dir);
    let err = request(&socket, &Request::Status, TIMEOUT).unwrap_err();
    assert!(err.is_not_running());
    assert_eq!(
        err.to_string(),
        format!(
            "tierfs daemon is not running (no control socket at {})",
            socket.display()
        )
    );
}

#[test]
fn silent_daemon_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let socket = socket_in(&dir);
    // Connections queue in the backlog but are never answered.
    let _listener = UnixListener::bind(&socket).unwrap();

    let started = Instant::now();
    let err = request(&socket, &Request::Status, Duration::from_millis(200)).unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(err, ControlError::Timeout { .. }), "{err:?}");
    assert!(!err.is_not_running());
    assert!(
        err.to_string().contains(&socket.display().to_string())
            && err.to_string().contains("200ms"),
        "{err}"
    );
    assert!(waited >= Duration::from_millis(200), "{waited:?}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
}

#[test]
fn slow_handler_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let socket = socket_in(&dir);
    let handler: Handler = Arc::new(|_| {
        std::thread::sleep(Duration::from_millis(500));
        Response::error(ErrorKind::Failed, "too late")
    });
    let _server = serve(&socket, handler).unwrap();
    let err = request(&socket, &Request::Status, Duration::from_millis(100)).unwrap_err();
    assert!(matches!(err, ControlError::Timeout { .. }), "{err:?}");
}

#[test]
fn shutdown_removes_socket_and_closes_connections() {
    let dir = tempfile::tempdir().unwrap();
    let socket = socket_in(&dir);
    let server = serve(&socket, status_handler()).unwrap();

    // An idle client must not keep shutdown waiting for its idle timeout.
    let idle = UnixStream::connect(&socket).unwrap();
    assert_eq!(status(&socket, TIMEOUT).unwrap(), sample_status());

    let started = Instant::now();
    server.shutdown();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(!socket.exists());
    let err = request(&socket, &Request::Status, TIMEOUT).unwrap_err();
    assert!(err.is_not_running(), "{err}");

    // The idle client sees the connection closed.
    idle.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut buf = String::new();
    assert_eq!(BufReader::new(idle).read_line(&mut buf).unwrap(), 0);
}

#[test]
fn drop_removes_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = socket_in(&dir);
    drop(serve(&socket, status_handler()).unwrap());
    assert!(!socket.exists());
    // And the path can be served again.
    let _again = serve(&socket, status_handler()).unwrap();
}

#[test]
fn shutdown_leaves_a_newer_daemons_socket_alone() {
    let dir = tempfile::tempdir().unwrap();
    let socket = socket_in(&dir);
    let old = serve(&socket, status_handler()).unwrap();
    // Someone removes our socket and binds their own at the same path.
    std::fs::remove_file(&socket).unwrap();
    let _theirs = UnixListener::bind(&socket).unwrap();
    old.shutdown();
    assert!(socket.exists());
}

#[test]
fn unauthorised_peer_is_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let socket = socket_in(&dir);
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let handler: Handler = Arc::new(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
        Reply::Status(sample_status()).into()
    });
    // A policy that admits nobody we can be in this test.
    let _server = serve_with_policy(&socket, handler, AccessPolicy::uids(vec![54_321])).unwrap();

    let resp = request(&socket, &Request::Status, TIMEOUT).unwrap();
    match resp {
        Response::Error(e) => {
            assert_eq!(e.kind, ErrorKind::PermissionDenied);
            assert!(e.message.contains("root only"), "{e}");
        }
        other => panic!("expected refusal, got {other:?}"),
    }
    let err = status(&socket, TIMEOUT).unwrap_err();
    assert!(matches!(err, ControlError::Refused { .. }), "{err:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 0, "handler must not run");
}

#[test]
fn handler_panic_becomes_an_error_response() {
    let dir = tempfile::tempdir().unwrap();
    let socket = socket_in(&dir);
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let handler: Handler = Arc::new(move |_| {
        if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            panic!("boom");
        }
        Reply::Status(sample_status()).into()
    });
    let _server = serve(&socket, handler).unwrap();
    let resp = request(&socket, &Request::Status, TIMEOUT).unwrap();
    assert!(
        matches!(&resp, Response::Error(e)
            if e.kind == ErrorKind::Internal && e.message.contains("internal error")),
        "{resp:?}"
    );
    // The server survives.
    assert_eq!(status(&socket, TIMEOUT).unwrap(), sample_status());
}

#[test]
fn oversized_request_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let socket = socket_in(&dir);
    let _server = serve(&socket, status_handler()).unwrap();
    let stream = UnixStream::connect(&socket).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let huge = format!("{}\n", "x".repeat(MAX_REQUEST_BYTES + 10));
    // The daemon answers and hangs up after the limit, so the tail of this
    // write may fail; the answer is readable either way.
    let _ = (&stream).write_all(huge.as_bytes());
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).unwrap();
    let resp: Response = serde_json::from_str(&answer).unwrap();
    assert!(
        matches!(&resp, Response::Error(e) if e.message.contains("too long")),
        "{resp:?}"
    );
}

#[test]
fn concurrent_clients() {
    let dir = tempfile::tempdir().unwrap();
    let socket = socket_in(&dir);
    let _server = serve(&socket, status_handler()).unwrap();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                for _ in 0..20 {
                    assert_eq!(status(&socket, TIMEOUT).unwrap(), sample_status());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn clients_beyond_the_cap_wait_for_a_free_slot() {
    let dir = tempfile::tempdir().unwrap();
    let socket = socket_in(&dir);
    let server = serve(&socket, status_handler()).unwrap();

    // Fill every slot with a connection that has been served once (so it is
    // surely accepted) and then stays open.
    let mut held: Vec<UnixStream> = (0..MAX_CONNECTIONS)
        .map(|_| {
            let stream = UnixStream::connect(&socket).unwrap();
            let answer = raw_exchange_on(&stream, r#"{"op":"status"}"#);
            assert!(answer.contains(r#""ok":true"#), "{answer}");
            stream
        })
        .collect();

    let err = request(&socket, &Request::Status, Duration::from_millis(300)).unwrap_err();
    assert!(matches!(err, ControlError::Timeout { .. }), "{err:?}");

    drop(held.pop());
    assert_eq!(status(&socket, TIMEOUT).unwrap(), sample_status());

    // Shutdown is prompt even when full.
    let extra = UnixStream::connect(&socket).unwrap();
    held.push(extra);
    let started = Instant::now();
    server.shutdown();
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// One request/answer on an already connected stream.
fn raw_exchange_on(stream: &UnixStream, line: &str) -> String {
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut writer = stream;
    writer.write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).unwrap();
    answer
}
