//! Client-side encryption end to end, against a real S3 server (SeaweedFS on
//! 127.0.0.1): a key made with `tierctl keygen`, files migrated through the
//! mount, objects in the bucket that contain no plaintext and are not named
//! by the plaintext hash, identical files stored once, byte-exact reads,
//! `fsck` clean, and a tampered object failing the read with EIO.

use crate::common;
use crate::servers;

use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;

use common::tiering::{add_rule, content, migrate, wait_for_writes, write_old};
use common::{MountOptions, TestMount, errno_of};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use servers::{SeaweedFs, rt};

const CHUNK: u64 = 4 << 20;

fn encrypted_size(plain: u64) -> u64 {
    32 + plain + plain.div_ceil(CHUNK) * 16
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Waits until the background recalls that reads of these cold files
/// started have finished (state `premigrated`).
fn wait_recalled(m: &TestMount, paths: &[&str]) {
    for p in paths {
        let done = common::wait_until(std::time::Duration::from_secs(120), || {
            common::getxattr(&m.m(p), "user.tierfs.state").is_ok_and(|v| v == b"premigrated")
        });
        assert!(
            done.is_some(),
            "{p} never finished recalling\n{}",
            m.log_banner()
        );
    }
}

#[test]
fn encrypted_objects_hide_content_dedupe_and_read_back() {
    let server = SeaweedFs::shared();
    let prefix = format!("enc{}", std::process::id());
    let mut m = TestMount::unmounted(MountOptions::default());
    let key = m.root().join("cloud.key");
    let out = m.tierctl(&["keygen", key.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("key id"), "{}", text(&out));
    let md = fs::metadata(&key).unwrap();
    assert_eq!((md.len(), md.mode() & 0o777), (32, 0o600));
    let out = m.tierctl(&["keygen", key.to_str().unwrap()]);
    assert!(!out.status.success(), "keygen must not overwrite a key");

    let remote = server.remote_toml(
        &prefix,
        &format!("encryption_key_file = \"{}\"\n", key.display()),
    );
    m.set_options(MountOptions {
        allow_other: true,
        extra_top: "migrate_interval = \"off\"\n".into(),
        extra_sections: format!("[remote.cloud]\n{remote}"),
        ..Default::default()
    });
    m.mount();

    let big = content(11, (9 << 20) + 123); // three chunks, multipart
    let phrase = b"The quarterly numbers are confidential. ".repeat(2_000);
    write_old(&m.m("a/one.bin"), &big, 30);
    write_old(&m.m("a/two.bin"), &big, 30); // identical: one object
    write_old(&m.m("b/secret.txt"), &phrase, 30);
    add_rule(&m, "* -> cloud");
    wait_for_writes(&m, "cloud");
    // A file the catalog has not caught up with yet is taken by the next run.
    let s = migrate(&m);
    assert_eq!(s.released, 3, "{s:?}\n{}", m.log_banner());

    let store = server.raw_store();
    let list_prefix = object_store::path::Path::from(format!("{prefix}/data"));
    let objects: Vec<object_store::ObjectMeta> = rt()
        .block_on(store.list(Some(&list_prefix)).try_collect::<Vec<_>>())
        .unwrap();
    let mut sizes: Vec<u64> = objects.iter().map(|o| o.size).collect();
    sizes.sort();
    let mut want = vec![
        encrypted_size(phrase.len() as u64),
        encrypted_size(big.len() as u64),
    ];
    want.sort();
    assert_eq!(sizes, want, "two objects (the identical files share one)");
    let plain_names = [
        blake3::hash(&big).to_hex().to_string(),
        blake3::hash(&phrase).to_hex().to_string(),
    ];
    for o in &objects {
        let name = o.location.filename().unwrap().to_string();
        assert!(
            !plain_names.contains(&name),
            "object named by the plaintext hash: {name}"
        );
        let bytes = rt()
            .block_on(async { store.get(&o.location).await?.bytes().await })
            .unwrap();
        assert!(
            !bytes.windows(40).any(|w| w == &phrase[..40]),
            "plaintext phrase found in {name}"
        );
        assert!(
            !bytes
                .windows(64)
                .any(|w| w == &big[CHUNK as usize..CHUNK as usize + 64]),
            "plaintext found in {name}"
        );
    }

    // Byte-exact reads: first through verified chunk reads, then the recall.
    for (p, data) in [
        ("a/one.bin", &big),
        ("a/two.bin", &big),
        ("b/secret.txt", &phrase),
    ] {
        assert!(
            fs::read(m.m(p)).unwrap() == *data,
            "{p} differs\n{}",
            m.log_banner()
        );
    }
    let out = m.tierctl(&["fsck"]);
    assert!(out.status.success(), "{}\n{}", text(&out), m.log_banner());

    // Release again (no upload) and back the catalog up: the backup is
    // encrypted too (it holds every path).
    wait_recalled(&m, &["a/one.bin", "a/two.bin", "b/secret.txt"]);
    let s = migrate(&m);
    assert_eq!(
        (s.released, s.uploaded_bytes),
        (3, 0),
        "{s:?}\n{}\n{}",
        text(&m.tierctl(&["status", "b/secret.txt"])),
        m.log_banner()
    );
    let out = m.tierctl(&["backup", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let backup_key = report["stored"][0]["key"].as_str().unwrap().to_string();
    let backup = rt()
        .block_on(async {
            store
                .get(&object_store::path::Path::from(backup_key.as_str()))
                .await?
                .bytes()
                .await
        })
        .unwrap();
    assert_eq!(&backup[..8], b"tierfsE1", "the backup is encrypted");

    // Disaster recovery from the encrypted remote, with the same key.
    let options = m.options().clone();
    m.unmount();
    fs::remove_dir_all(m.hot()).unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let mut p = m.catalog().into_os_string();
        p.push(suffix);
        let _ = fs::remove_file(std::path::PathBuf::from(p));
    }
    let mut fresh = TestMount::unmounted(options);
    let out = fresh.tierctl(&["rebuild", "--from", "cloud"]);
    assert!(out.status.success(), "{}", text(&out));
    fresh.mount();
    for (p, data) in [
        ("a/one.bin", &big),
        ("a/two.bin", &big),
        ("b/secret.txt", &phrase),
    ] {
        assert!(
            fs::read(fresh.m(p)).unwrap() == *data,
            "{p} differs after rebuild\n{}",
            fresh.log_banner()
        );
    }
    wait_recalled(&fresh, &["a/one.bin", "a/two.bin", "b/secret.txt"]);
    let s = migrate(&fresh);
    assert_eq!((s.released, s.uploaded_bytes), (3, 0), "{s:?}");

    // Tamper with the phrase's object: the read fails with EIO, never
    // returns other bytes.
    let victim = objects
        .iter()
        .find(|o| o.size == encrypted_size(phrase.len() as u64))
        .unwrap();
    let mut bytes = rt()
        .block_on(async { store.get(&victim.location).await?.bytes().await })
        .unwrap()
        .to_vec();
    bytes[32 + 1_000] ^= 0x55;
    rt().block_on(store.put(&victim.location, bytes.into()))
        .unwrap();
    let mut f = fs::File::open(fresh.m("b/secret.txt")).unwrap();
    let mut buf = Vec::new();
    let e = f.read_to_end(&mut buf).unwrap_err();
    assert_eq!(errno_of(&e), libc::EIO, "{e}");
    assert!(buf.is_empty(), "no bytes of a tampered chunk are returned");
    drop(f);
    assert!(fs::read(fresh.m("a/one.bin")).unwrap() == big);
}

#[test]
fn a_wrong_key_is_a_clear_error_not_garbage() {
    let server = SeaweedFs::shared();
    let prefix = format!("encwrong{}", std::process::id());
    let mut m = TestMount::unmounted(MountOptions::default());
    let (good, bad) = (m.root().join("good.key"), m.root().join("bad.key"));
    for k in [&good, &bad] {
        let out = m.tierctl(&["keygen", k.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out));
    }
    let options = |key: &std::path::Path| MountOptions {
        allow_other: true,
        extra_top: "migrate_interval = \"off\"\n".into(),
        extra_sections: format!(
            "[remote.cloud]\n{}",
            server.remote_toml(
                &prefix,
                &format!("encryption_key_file = \"{}\"\n", key.display())
            )
        ),
        ..Default::default()
    };
    m.set_options(options(&good));
    m.mount();
    let data = content(21, 100_000);
    write_old(&m.m("d/f.bin"), &data, 30);
    add_rule(&m, "d -> cloud");
    wait_for_writes(&m, "cloud");
    assert_eq!(migrate(&m).released, 1);

    // Same bucket, another key: the recall fails and says why.
    m.unmount();
    m.set_options(options(&bad));
    m.mount();
    let out = m.tierctl(&["recall", "d/f.bin"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("different key"),
        "{}\n{}",
        text(&out),
        m.log_banner()
    );
    let e = fs::read(m.m("d/f.bin")).unwrap_err();
    assert_eq!(errno_of(&e), libc::EIO, "{e}");

    // The right key reads it.
    m.unmount();
    m.set_options(options(&good));
    m.mount();
    assert!(fs::read(m.m("d/f.bin")).unwrap() == data);
}
