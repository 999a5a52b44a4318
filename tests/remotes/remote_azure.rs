//! The `remote` module against Azurite (Azure Blob emulator on 127.0.0.1,
//! SharedKey signatures checked), started by the tests.

use crate::servers;

use std::time::Duration;

use servers::suite::{self, Tamper};
use servers::{Azurite, rt};
use tierfs::remote::Remote;

fn remote(server: &Azurite, prefix: &str) -> Remote {
    Remote::from_config(&server.remote_config("az", prefix, "")).unwrap()
}

#[test]
fn small_round_trip() {
    let server = Azurite::shared();
    rt().block_on(suite::small_round_trip(&remote(&server, "t-small")));
}

#[test]
fn large_multipart_upload() {
    let server = Azurite::shared();
    rt().block_on(suite::large_multipart(
        &remote(&server, "t-large"),
        40 << 20,
        8 << 20,
    ));
}

#[test]
fn corruption_is_detected() {
    let server = Azurite::shared();
    let tamper = Tamper::Store(server.raw_store());
    rt().block_on(suite::corruption_detected(
        &remote(&server, "t-corrupt"),
        &tamper,
    ));
}

#[test]
fn source_changed_leaves_nothing() {
    let server = Azurite::shared();
    rt().block_on(suite::source_changed(&remote(&server, "t-changed")));
}

#[test]
fn self_test_passes() {
    let server = Azurite::shared();
    let r = remote(&server, "t-selftest");
    assert!(
        r.describe().contains("devstoreaccount1"),
        "{}",
        r.describe()
    );
    rt().block_on(suite::self_test_passes(&r));
}

#[test]
fn wrong_key_is_unauthenticated() {
    let server = Azurite::shared();
    // A well-formed key that is not the account's.
    let wrong =
        "AAAAvdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
    let cfg = server.remote_config("badkey", "t-auth", &format!("access_key = \"{wrong}\""));
    let r = Remote::from_config(&cfg).unwrap();
    rt().block_on(suite::expect_unauthenticated(&r));
    let e = rt().block_on(r.list_data()).unwrap_err().to_string();
    assert!(!e.contains(wrong), "{e}");
}

#[test]
fn server_down_is_unreachable_quickly() {
    let mut server = Azurite::start();
    let r = Remote::from_config(&server.remote_config("az", "t-down", "request_timeout = \"2s\""))
        .unwrap();
    let runtime = rt();
    runtime.block_on(suite::self_test_passes(&r));
    server.stop();
    runtime.block_on(suite::expect_unreachable(&r, Duration::from_secs(8)));
}
