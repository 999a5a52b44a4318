//! Tiering through a live mount against real object-store servers started by
//! the tests on 127.0.0.1: S3 (SeaweedFS, SigV4 keys checked), Azure Blob
//! (Azurite, account-key signing) and GCS (fake-gcs-server behind the XML-API
//! proxy). Each runs the accounting scenario: objects in the bucket, `du`
//! shrinking, byte-identical reads, `tierctl fsck` clean. On S3 also recovery
//! after `kill -9` mid-migration.

use crate::common;
use crate::servers;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::tiering::{
    Pause, add_rule, content, migrate, migrate_in_background, remount_with_env, write_old,
};
use common::{MountOptions, TestMount};
use futures::TryStreamExt;
use object_store::ObjectStore;
use servers::{Azurite, FakeGcs, SeaweedFs, rt};
use std::sync::Arc;

fn mount_with_remote(remote_toml: &str, env: Vec<(String, String)>) -> TestMount {
    TestMount::with_options(MountOptions {
        allow_other: true,
        extra_top: "migrate_interval = \"off\"\n".into(),
        extra_sections: format!("[remote.cloud]\n{remote_toml}"),
        env,
        ..Default::default()
    })
}

/// Object keys under `prefix/data/` in the bucket, with sizes.
fn bucket_objects(store: &Arc<dyn ObjectStore>, prefix: &str) -> Vec<(String, u64)> {
    let list_prefix = object_store::path::Path::from(format!("{prefix}/data"));
    let mut v: Vec<(String, u64)> = rt()
        .block_on(store.list(Some(&list_prefix)).try_collect::<Vec<_>>())
        .unwrap()
        .into_iter()
        .map(|m| (m.location.to_string(), m.size))
        .collect();
    v.sort();
    v
}

fn hot_bytes(m: &TestMount) -> u64 {
    walk(m.hot())
        .iter()
        .map(|p| fs::metadata(p).unwrap().blocks() * 512)
        .sum()
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn accounting_scenario_against_s3() {
    let server = SeaweedFs::shared();
    accounting_scenario(&server.remote_toml("acct", ""), &server.raw_store(), "acct");
}

#[test]
fn accounting_scenario_against_azure() {
    let server = Azurite::shared();
    accounting_scenario(&server.remote_toml("acct", ""), &server.raw_store(), "acct");
}

#[test]
fn accounting_scenario_against_gcs() {
    let server = FakeGcs::shared();
    accounting_scenario(&server.remote_toml("acct", ""), &server.raw_store(), "acct");
}

fn accounting_scenario(remote_toml: &str, store: &Arc<dyn ObjectStore>, prefix: &str) {
    let m = mount_with_remote(remote_toml, vec![]);
    let ledger = content(1, 12 << 20); // multipart
    let invoice = content(2, 300_000);
    let recent = content(3, 200_000);
    let other = content(4, 250_000);
    write_old(&m.m("accounting/2019/q1/ledger.xlsx"), &ledger, 800);
    write_old(&m.m("accounting/2020/invoice.pdf"), &invoice, 400);
    write_old(&m.m("accounting/2026/recent.pdf"), &recent, 10);
    write_old(&m.m("engineering/old.bin"), &other, 900);
    let before = hot_bytes(&m);

    add_rule(&m, "accounting/* older 365d -> cloud");
    let s = migrate(&m);
    assert_eq!(
        (s.candidates, s.released),
        (2, 2),
        "{s:?}\n{}",
        m.log_banner()
    );
    assert!(s.failures.is_empty(), "{s:?}");

    let migrated = (ledger.len() + invoice.len()) as u64;
    let after = hot_bytes(&m);
    assert!(
        before - after >= migrated,
        "du of the hot dir shrank by {} bytes, expected at least {migrated}",
        before - after
    );
    let objects = bucket_objects(store, prefix);
    let mut sizes: Vec<u64> = objects.iter().map(|(_, s)| *s).collect();
    sizes.sort();
    assert_eq!(
        sizes,
        vec![invoice.len() as u64, ledger.len() as u64],
        "{objects:?}"
    );

    assert_eq!(
        fs::read(m.m("accounting/2019/q1/ledger.xlsx")).unwrap(),
        ledger
    );
    assert_eq!(
        fs::read(m.m("accounting/2020/invoice.pdf")).unwrap(),
        invoice
    );
    assert_eq!(fs::read(m.m("accounting/2026/recent.pdf")).unwrap(), recent);
    assert_eq!(fs::read(m.m("engineering/old.bin")).unwrap(), other);
    let out = m.tierctl(&["fsck"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn kill_during_s3_migration_loses_nothing() {
    let server = SeaweedFs::shared();
    let pause = Pause::at("uploaded");
    let mut m = mount_with_remote(&server.remote_toml("crash", ""), pause.env());
    let files: Vec<(String, Vec<u8>)> = (0..3)
        .map(|i| (format!("d/f{i}"), content(50 + i, 9 << 20)))
        .collect();
    for (p, d) in &files {
        write_old(&m.m(p), d, 30);
    }
    add_rule(&m, "d -> cloud");
    let job = migrate_in_background(&m);
    pause.wait(&m);
    m.kill9();
    let _ = job.join();
    remount_with_env(&mut m, vec![]);
    for (p, d) in &files {
        assert_eq!(&fs::read(m.m(p)).unwrap(), d, "{p}");
    }
    let out = m.tierctl(&["fsck"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        m.log_banner()
    );
    let s = migrate(&m);
    assert_eq!(s.released, 3, "{s:?}");
    for (p, d) in &files {
        assert_eq!(&fs::read(m.m(p)).unwrap(), d, "{p}");
    }
}
