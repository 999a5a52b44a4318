//! The `remote` module against a real S3 server (SeaweedFS `weed mini` on
//! 127.0.0.1, SigV4 keys enforced), started by the tests.

use crate::servers;

use std::time::{Duration, Instant};

use servers::suite::{self, Tamper};
use servers::{S3_ACCESS_KEY, SeaweedFs, rt};
use tierfs::remote::{Remote, RemoteError};

fn remote(server: &SeaweedFs, prefix: &str) -> Remote {
    Remote::from_config(&server.remote_config("sw", prefix, "")).unwrap()
}

#[test]
fn small_round_trip() {
    let server = SeaweedFs::shared();
    rt().block_on(suite::small_round_trip(&remote(&server, "t-small")));
}

#[test]
fn large_multipart_upload() {
    let server = SeaweedFs::shared();
    rt().block_on(suite::large_multipart(
        &remote(&server, "t-large"),
        40 << 20,
        8 << 20,
    ));
}

#[test]
fn corruption_is_detected() {
    let server = SeaweedFs::shared();
    let tamper = Tamper::Store(server.raw_store());
    rt().block_on(suite::corruption_detected(
        &remote(&server, "t-corrupt"),
        &tamper,
    ));
}

#[test]
fn source_changed_leaves_nothing() {
    let server = SeaweedFs::shared();
    rt().block_on(suite::source_changed(&remote(&server, "t-changed")));
}

#[test]
fn self_test_passes() {
    let server = SeaweedFs::shared();
    let r = remote(&server, "t-selftest");
    assert!(
        r.describe().contains(&server.endpoint()),
        "{}",
        r.describe()
    );
    rt().block_on(suite::self_test_passes(&r));
}

#[test]
fn wrong_secret_is_unauthenticated() {
    let server = SeaweedFs::shared();
    let toml = server
        .remote_toml("t-auth", "")
        .replace(servers::S3_SECRET_KEY, "not-the-secret-key-000000");
    let r = Remote::from_config(&servers::remote_config("badsecret", &toml)).unwrap();
    rt().block_on(suite::expect_unauthenticated(&r));
    // The wrong secret never shows up in messages.
    let e = rt().block_on(r.list_data()).unwrap_err().to_string();
    assert!(!e.contains("not-the-secret-key-000000"), "{e}");
}

#[test]
fn unknown_access_key_is_unauthenticated() {
    let server = SeaweedFs::shared();
    let toml = server
        .remote_toml("t-auth2", "")
        .replace(S3_ACCESS_KEY, "nobody-knows-this-key");
    let r = Remote::from_config(&servers::remote_config("badkey", &toml)).unwrap();
    rt().block_on(suite::expect_unauthenticated(&r));
}

#[test]
fn server_down_is_unreachable_quickly() {
    // A private server, killed under the remote's feet.
    let mut server = SeaweedFs::start();
    let r = Remote::from_config(&server.remote_config("sw", "t-down", "request_timeout = \"2s\""))
        .unwrap();
    let runtime = rt();
    runtime.block_on(suite::self_test_passes(&r));
    server.stop();
    // request_timeout 2s bounds the retries; allow scheduling slack.
    runtime.block_on(suite::expect_unreachable(&r, Duration::from_secs(8)));
}

#[test]
fn stalled_server_times_out() {
    // Accepts connections and never answers: Timeout after about
    // request_timeout (plus one retry), not a hang.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let held2 = held.clone();
    std::thread::spawn(move || {
        for s in listener.incoming().take(20) {
            match s {
                Ok(s) => held2.lock().unwrap().push(s),
                Err(_) => break,
            }
        }
    });
    let toml = format!(
        "url = \"s3://b/p\"\nendpoint = \"http://127.0.0.1:{port}\"\nallow_http = true\n\
         access_key_id = \"AK\"\nsecret_access_key = \"SK\"\nrequest_timeout = \"1s\"\n"
    );
    let r = Remote::from_config(&servers::remote_config("stall", &toml)).unwrap();
    let start = Instant::now();
    let e = rt().block_on(r.head("p/data/x")).unwrap_err();
    assert!(matches!(e, RemoteError::Timeout { .. }), "{e:?}");
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );
    assert!(
        e.to_string().contains("`stall`") && e.to_string().contains("p/data/x"),
        "{e}"
    );
}

#[test]
fn storage_class_is_sent() {
    // SeaweedFS refuses unknown storage classes (400 InvalidStorageClass),
    // which proves the configured class and the per-upload override go out
    // (B2 never gets one: unit-tested).
    let server = SeaweedFs::shared();
    let runtime = rt();
    let ok = Remote::from_config(&server.remote_config(
        "cls",
        "t-class",
        "storage_class = \"STANDARD_IA\"",
    ))
    .unwrap();
    runtime.block_on(suite::self_test_passes(&ok));

    let bad = Remote::from_config(&server.remote_config(
        "cls",
        "t-class",
        "storage_class = \"NOT_A_CLASS\"",
    ))
    .unwrap();
    let report = runtime.block_on(bad.self_test());
    assert!(!report.ok);
    assert_eq!(report.steps[2].name, "write");
    assert!(
        report.steps[2].detail.contains("InvalidStorageClass"),
        "{report:#?}"
    );

    let scratch = suite::Scratch::new();
    let bytes = suite::data(1000, 9);
    let hash = blake3::hash(&bytes);
    let src = scratch.file("f", &bytes);
    let opts = tierfs::remote::PutOptions {
        storage_class: Some("NOT_A_CLASS".into()),
        ..Default::default()
    };
    let e = runtime
        .block_on(ok.put_file(&src, 1000, &hash, &opts, &|_| {}))
        .unwrap_err();
    assert!(e.to_string().contains("InvalidStorageClass"), "{e}");
}
