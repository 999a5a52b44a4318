//! Integrity of cold data against a real S3 server (SeaweedFS on 127.0.0.1)
//! and a `file://` mirror: a corrupted object never yields wrong bytes (reads
//! fail with EIO), `tierctl verify` names the object and every affected
//! file, a mirror serves reads when the other copy is bad, and a file is
//! released only once every mirror holds a verified copy.

use crate::common;
use crate::servers;

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::tiering::{add_rule, content, migrate, state, text, write_old};
use common::{MountOptions, TestMount, errname, wait_until};
use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use servers::{SeaweedFs, free_ports, rt};

const CHUNK: usize = 4 << 20;
/// Generous timeouts: the test server shares 2 cores with other builds.
const SLOW_MACHINE: &str = "request_timeout = \"30s\"";

fn mount(sections: &str) -> TestMount {
    TestMount::with_options(MountOptions {
        allow_other: true,
        extra_top: "migrate_interval = \"off\"\n".into(),
        extra_sections: sections.into(),
        ..Default::default()
    })
}

/// The one object under `prefix/data/` in the bucket.
fn only_object(store: &Arc<dyn ObjectStore>, prefix: &str) -> String {
    let list = object_store::path::Path::from(format!("{prefix}/data"));
    let keys: Vec<String> = rt()
        .block_on(store.list(Some(&list)).try_collect::<Vec<_>>())
        .unwrap()
        .into_iter()
        .map(|m| m.location.to_string())
        .collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    keys[0].clone()
}

/// Overwrites the object with the same bytes except one flipped at `at`.
fn corrupt_s3(store: &Arc<dyn ObjectStore>, key: &str, at: usize) {
    let loc = object_store::path::Path::from(key);
    let rt = rt();
    let mut bytes = rt
        .block_on(async { store.get(&loc).await?.bytes().await })
        .unwrap()
        .to_vec();
    bytes[at] ^= 0x5a;
    rt.block_on(store.put(&loc, PutPayload::from(bytes)))
        .unwrap();
}

/// Reads every 4 MiB chunk of `path` separately: each read either fails with
/// EIO or returns exactly the original bytes. Returns the failed chunks.
fn chunks_failing(path: &Path, original: &[u8]) -> Vec<usize> {
    let mut failing = Vec::new();
    for (i, want) in original.chunks(CHUNK).enumerate() {
        let mut f = fs::File::open(path).unwrap();
        f.seek(SeekFrom::Start((i * CHUNK) as u64)).unwrap();
        let mut got = vec![0; want.len()];
        match f.read_exact(&mut got) {
            Ok(()) => assert!(
                got == want,
                "chunk {i} of {} returned wrong bytes",
                path.display()
            ),
            Err(e) => {
                assert_eq!(errname(&e), "EIO", "chunk {i}: {e}");
                failing.push(i);
            }
        }
    }
    failing
}

#[test]
fn a_corrupt_object_fails_reads_with_eio_and_verify_names_the_file() {
    let server = SeaweedFs::shared();
    let prefix = "integrity-corrupt";
    let m = mount(&format!(
        "[remote.cloud]\n{}",
        server.remote_toml(prefix, SLOW_MACHINE)
    ));
    let bad = content(11, 3 * CHUNK + 777);
    let good = content(12, 1 << 20);
    write_old(&m.m("archive/bad.bin"), &bad, 30);
    write_old(&m.m("archive/twin-of-bad.bin"), &bad, 30);
    write_old(&m.m("keep/good.bin"), &good, 30);
    add_rule(&m, "archive -> cloud");
    add_rule(&m, "keep -> cloud");
    let s = migrate(&m);
    assert_eq!(s.released, 3, "{s:?}\n{}", m.log_banner());

    let out = m.tierctl(&["verify"]);
    assert!(out.status.success(), "{}", text(&out));

    // Find the object holding bad.bin's content (the two twins share it).
    let store = server.raw_store();
    let list = object_store::path::Path::from(format!("{prefix}/data"));
    let objects: Vec<(String, u64)> = rt()
        .block_on(store.list(Some(&list)).try_collect::<Vec<_>>())
        .unwrap()
        .into_iter()
        .map(|o| (o.location.to_string(), o.size))
        .collect();
    let key = objects
        .iter()
        .find(|(_, size)| *size == bad.len() as u64)
        .map(|(k, _)| k.clone())
        .unwrap_or_else(|| panic!("{objects:?}"));
    corrupt_s3(&store, &key, CHUNK + 1000);

    // Reads never return wrong bytes: the corrupt chunk fails with EIO.
    let failing = chunks_failing(&m.m("archive/bad.bin"), &bad);
    assert_eq!(failing, [1], "only chunk 1 was corrupted");
    let err = fs::read(m.m("archive/bad.bin")).expect_err("read a corrupt file whole");
    assert_eq!(errname(&err), "EIO");
    // A write needs a full, verified recall first: EIO too (the open
    // itself downloads nothing and succeeds).
    let mut twin = fs::OpenOptions::new()
        .append(true)
        .open(m.m("archive/twin-of-bad.bin"))
        .unwrap();
    let err = std::io::Write::write_all(&mut twin, b"x").expect_err("wrote to a corrupt stub");
    assert_eq!(errname(&err), "EIO");
    drop(twin);
    // The stubs are untouched.
    for p in ["archive/bad.bin", "archive/twin-of-bad.bin"] {
        assert_eq!(state(&m.m(p)), "cold", "{p}");
        assert_eq!(fs::metadata(m.h(p)).unwrap().blocks(), 0, "{p}");
    }
    assert_eq!(fs::read(m.m("keep/good.bin")).unwrap(), good);

    // verify exits 1 and names the object and both files.
    let out = m.tierctl(&["verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for needle in [
        key.as_str(),
        "archive/bad.bin",
        "archive/twin-of-bad.bin",
        "corrupt",
        "chunk 1",
    ] {
        assert!(
            stdout.contains(needle),
            "`{needle}` missing\n{}",
            text(&out)
        );
    }
    assert!(!stdout.contains("keep/good.bin"), "{}", text(&out));
    let out = m.tierctl(&["verify", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{report}");
    assert_eq!(problems[0]["key"], key.as_str());
    assert_eq!(problems[0]["other_copy_good"], false);
    // A path the catalog does not know is a usage error, not "all good".
    let out = m.tierctl(&["verify", "no/such/dir"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    // Only the good file: clean, throttled.
    let out = m.tierctl(&["verify", "keep", "--rate", "100MiB"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("all objects match"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_mirror_serves_reads_when_one_copy_is_corrupt() {
    let server = SeaweedFs::shared();
    let prefix = "integrity-mirror";
    let mut m = TestMount::unmounted(MountOptions::default());
    let local = m.root().join("mirror");
    fs::create_dir(&local).unwrap();
    m.set_options(MountOptions {
        allow_other: true,
        extra_top: "migrate_interval = \"off\"\n".into(),
        extra_sections: format!(
            "[remote.s3]\n{}\n[remote.local]\nurl = \"file://{}\"\n",
            server.remote_toml(prefix, SLOW_MACHINE),
            local.display()
        ),
        ..Default::default()
    });
    m.mount();
    let data = content(21, 2 * CHUNK + 4321);
    write_old(&m.m("media/film.bin"), &data, 30);
    add_rule(&m, "media -> s3,local");
    let s = migrate(&m);
    assert_eq!(s.released, 1, "{s:?}\n{}", m.log_banner());

    // Both copies exist; corrupt the S3 one (tried first).
    let store = server.raw_store();
    let key = only_object(&store, prefix);
    corrupt_s3(&store, &key, 10);
    let local_copy: PathBuf = fs::read_dir(local.join("data"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .next()
        .unwrap();
    assert_eq!(fs::read(&local_copy).unwrap(), data);

    // Reads succeed byte-exact from the mirror, chunk by chunk and whole.
    assert_eq!(
        chunks_failing(&m.m("media/film.bin"), &data),
        Vec::<usize>::new()
    );
    assert_eq!(fs::read(m.m("media/film.bin")).unwrap(), data);
    assert!(
        m.daemon_log().contains("chunk failed verification"),
        "the bad copy was not noticed\n{}",
        m.log_banner()
    );

    // verify reports the bad copy, and that the file is still readable.
    let out = m.tierctl(&["verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&key)
            && stdout.contains("media/film.bin")
            && stdout.contains("still readable from another copy"),
        "{}",
        text(&out)
    );

    // The background recall skipped the bad copy and brought the file back.
    assert!(
        wait_until(Duration::from_secs(20), || state(&m.m("media/film.bin"))
            == "premigrated")
        .is_some(),
        "not recalled from the mirror\n{}",
        m.log_banner()
    );
    assert_eq!(fs::read(m.h("media/film.bin")).unwrap(), data);

    // Release it again (no upload: both copies are recorded as verified),
    // then damage chunk 0 of the mirror too: chunk 0 now has no good copy
    // and fails with EIO, the other chunks still read from whichever copy
    // is good. Never a wrong byte.
    let s = migrate(&m);
    assert_eq!((s.released, s.uploaded_bytes), (1, 0), "{s:?}");
    let mut bytes = fs::read(&local_copy).unwrap();
    bytes[20] ^= 1;
    fs::write(&local_copy, &bytes).unwrap();
    assert_eq!(chunks_failing(&m.m("media/film.bin"), &data), [0]);
    assert_eq!(state(&m.m("media/film.bin")), "cold");
    let out = m.tierctl(&["verify", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2, "{report}");
    assert!(
        problems.iter().all(|p| p["other_copy_good"] == false),
        "{report}"
    );
}

#[test]
fn a_file_is_released_only_when_every_mirror_holds_a_verified_copy() {
    let server = SeaweedFs::shared();
    let dead_port = free_ports(1)[0];
    let mut m = TestMount::unmounted(MountOptions::default());
    let local = m.root().join("mirror");
    fs::create_dir(&local).unwrap();
    m.set_options(MountOptions {
        allow_other: true,
        extra_top: "migrate_interval = \"off\"\n".into(),
        extra_sections: format!(
            "[remote.s3]\n{}\n[remote.local]\nurl = \"file://{}\"\n\
             [remote.gone]\nurl = \"s3://tierfs-test/gone\"\nendpoint = \"http://127.0.0.1:{dead_port}\"\n\
             region = \"us-east-1\"\naccess_key_id = \"x\"\nsecret_access_key = \"yyyyyyyy\"\n\
             allow_http = true\nrequest_timeout = \"1s\"\n",
            server.remote_toml("integrity-release", SLOW_MACHINE),
            local.display()
        ),
        ..Default::default()
    });
    m.mount();
    let data = content(31, 5 << 20);
    write_old(&m.m("two/a.bin"), &data, 30);
    write_old(&m.m("three/b.bin"), &data[..3 << 20], 30);
    add_rule(&m, "two -> s3,local");
    add_rule(&m, "three -> s3,local,gone");
    let s = migrate(&m);
    assert_eq!(s.released, 1, "{s:?}\n{}", m.log_banner());
    assert_eq!(s.failures.len(), 1, "{s:?}");
    assert!(
        s.failures[0].contains("three/b.bin") && s.failures[0].contains("gone"),
        "{s:?}"
    );
    assert_eq!(state(&m.m("two/a.bin")), "cold");
    // One of three mirrors unreachable: the file keeps its local data.
    assert_eq!(state(&m.m("three/b.bin")), "hot");
    assert!(fs::metadata(m.h("three/b.bin")).unwrap().blocks() > 0);
    assert_eq!(fs::read(m.m("three/b.bin")).unwrap(), &data[..3 << 20]);
    // The cold file can be read from either mirror: remove its S3 copy.
    let store = server.raw_store();
    let list = object_store::path::Path::from("integrity-release/data");
    let key = rt()
        .block_on(store.list(Some(&list)).try_collect::<Vec<_>>())
        .unwrap()
        .into_iter()
        .find(|o| o.size == data.len() as u64)
        .map(|o| o.location)
        .expect("a.bin's object on S3");
    rt().block_on(store.delete(&key)).unwrap();
    assert_eq!(fs::read(m.m("two/a.bin")).unwrap(), data);
    // verify reports the missing copy and the file it belonged to.
    let out = m.tierctl(&["verify", "two"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("missing remote `s3` object `{key}`"))
            && stdout.contains("two/a.bin")
            && stdout.contains("still readable from another copy"),
        "{}",
        text(&out)
    );
}
