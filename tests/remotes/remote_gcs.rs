//! The `remote` module against fake-gcs-server behind the XML translating
//! proxy (tests/servers/gcs_xml_proxy.py), started by the tests.
//!
//! fake-gcs-server checks no credentials, so there is no "wrong
//! credentials" test here; what is tested is that a GCS remote never runs
//! without an explicit key (config error instead of the metadata server).

use crate::servers;

use std::time::Duration;

use servers::suite::{self, Tamper};
use servers::{FakeGcs, remote_config, rt};
use tierfs::remote::{Remote, RemoteError};

fn remote(server: &FakeGcs, prefix: &str) -> Remote {
    Remote::from_config(&server.remote_config("gcs", prefix, "")).unwrap()
}

#[test]
fn small_round_trip() {
    let server = FakeGcs::shared();
    rt().block_on(suite::small_round_trip(&remote(&server, "t-small")));
}

#[test]
fn large_multipart_upload() {
    let server = FakeGcs::shared();
    rt().block_on(suite::large_multipart(
        &remote(&server, "t-large"),
        40 << 20,
        8 << 20,
    ));
}

#[test]
fn corruption_is_detected() {
    let server = FakeGcs::shared();
    let tamper = Tamper::Store(server.raw_store());
    rt().block_on(suite::corruption_detected(
        &remote(&server, "t-corrupt"),
        &tamper,
    ));
}

#[test]
fn source_changed_leaves_nothing() {
    let server = FakeGcs::shared();
    rt().block_on(suite::source_changed(&remote(&server, "t-changed")));
}

#[test]
fn self_test_passes() {
    let server = FakeGcs::shared();
    rt().block_on(suite::self_test_passes(&remote(&server, "t-selftest")));
}

#[test]
fn no_key_is_a_config_error_not_a_metadata_lookup() {
    // No service_account_path and (in this test's config) nothing else:
    // from_config must fail rather than fall back to 169.254.169.254.
    // GOOGLE_APPLICATION_CREDENTIALS may be set on a developer machine, so
    // point it at a missing file via the section instead of relying on env.
    let cfg = remote_config(
        "gcs",
        "url = \"gs://b/p\"\nservice_account_path = \"/nonexistent/key.json\"\n",
    );
    let e = Remote::from_config(&cfg).unwrap_err();
    assert!(matches!(e, RemoteError::Config { .. }), "{e:?}");
    assert!(e.to_string().contains("/nonexistent/key.json"), "{e}");
}

#[test]
fn server_down_is_unreachable_quickly() {
    let mut server = FakeGcs::start();
    let r = Remote::from_config(&server.remote_config("gcs", "t-down", "request_timeout = \"2s\""))
        .unwrap();
    let runtime = rt();
    runtime.block_on(suite::self_test_passes(&r));
    server.stop();
    runtime.block_on(suite::expect_unreachable(&r, Duration::from_secs(8)));
}
