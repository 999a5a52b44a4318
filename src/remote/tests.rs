//! Unit tests on a `file://` remote (no servers needed); the per-backend
//! integration tests live in `tests/remotes/remote_*.rs`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::*;

fn cfg(name: &str, url: &str) -> RemoteConfig {
    RemoteConfig {
        name: name.into(),
        url: url.into(),
        ..Default::default()
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    remote: Remote,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("store")).unwrap();
    let url = url::Url::from_directory_path(dir.path().join("store"))
        .unwrap()
        .to_string();
    let remote = Remote::from_config(&cfg("local", &url)).unwrap();
    Fixture { dir, remote }
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    let mut out = vec![0u8; len];
    let mut xof = blake3::Hasher::new().update(&[seed]).finalize_xof();
    xof.fill(&mut out);
    out
}

fn write_src(f: &Fixture, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = f.dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn keys_are_content_addressed_under_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg("cloud", "s3://my-bucket/tier/");
    c.access_key_id = Some("AK".into());
    c.secret_access_key = Some("SECRETSECRET".into());
    c.endpoint = Some("https://s3.us-west-004.backblazeb2.com".into());
    c.region = Some("us-west-004".into());
    let r = Remote::from_config(&c).unwrap();
    let h = blake3::hash(b"x");
    assert_eq!(r.object_key(&h), format!("tier/data/{}", h.to_hex()));
    assert_eq!(
        r.describe(),
        "s3://my-bucket/tier/ at https://s3.us-west-004.backblazeb2.com (region us-west-004, Backblaze B2)"
    );
    let dbg = format!("{r:?}");
    assert!(!dbg.contains("SECRETSECRET"), "{dbg}");
    // Keys outside the prefix are refused before any I/O.
    for bad in [
        "other/data/x",
        "tier/",
        "tier/../x",
        "tier//x",
        "tierx/data",
    ] {
        assert!(r.location(bad, "GET").is_err(), "{bad}");
    }
    assert!(r.location("tier/data/abc", "GET").is_ok());
    // B2 never gets a storage class.
    c.storage_class = Some("GLACIER".into());
    let r = Remote::from_config(&c).unwrap();
    assert_eq!(r.effective_storage_class(&PutOptions::default()), None);
    drop(dir);
}

#[test]
fn secrets_are_redacted_from_errors() {
    let mut c = cfg("cloud", "s3://b/p");
    c.access_key_id = Some("AK".into());
    c.secret_access_key = Some("TOPSECRETVALUE".into());
    let r = Remote::from_config(&c).unwrap();
    let e = object_store::Error::Generic {
        store: "S3",
        source: "Server returned non-2xx status code: 500: echo TOPSECRETVALUE".into(),
    };
    let msg = r.map_err("GET", "p/data/x", e).to_string();
    assert!(
        !msg.contains("TOPSECRETVALUE") && msg.contains("<redacted>"),
        "{msg}"
    );
}

#[test]
fn file_remote_round_trip() {
    let f = fixture();
    rt().block_on(async {
        let r = &f.remote;
        let bytes = data(100_000, 1);
        let hash = blake3::hash(&bytes);
        let src = write_src(&f, "small", &bytes);
        let last = AtomicU64::new(0);
        let out = r
            .put_file(
                &src,
                bytes.len() as u64,
                &hash,
                &PutOptions::default(),
                &|n| last.store(n, Ordering::Relaxed),
            )
            .await
            .unwrap();
        assert!(!out.already_present);
        assert_eq!(out.key, format!("data/{}", hash.to_hex()));
        assert_eq!(last.load(Ordering::Relaxed), bytes.len() as u64);
        // On disk, fsynced by LocalFileSystem, where the key says.
        let on_disk = f.dir.path().join("store").join(&out.key);
        assert_eq!(std::fs::read(&on_disk).unwrap(), bytes);

        let again = r
            .put_file(
                &src,
                bytes.len() as u64,
                &hash,
                &PutOptions::default(),
                &|_| {},
            )
            .await
            .unwrap();
        assert!(again.already_present);

        let info = r.head(&out.key).await.unwrap().unwrap();
        assert_eq!(info.size, bytes.len() as u64);
        r.verify(&out.key, bytes.len() as u64, &hash).await.unwrap();
        assert_eq!(
            r.get_range(&out.key, 10..20).await.unwrap().as_ref(),
            &bytes[10..20]
        );

        let dest_path = f.dir.path().join("dest");
        let dest = std::fs::File::create(&dest_path).unwrap();
        r.download_to(&out.key, bytes.len() as u64, &hash, &dest, &|_| {})
            .await
            .unwrap();
        assert_eq!(std::fs::read(&dest_path).unwrap(), bytes);

        let listed = r.list_data().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].key, out.key);

        // Corrupt the stored copy.
        let mut bad = bytes.clone();
        bad[500] ^= 0xff;
        std::fs::write(&on_disk, &bad).unwrap();
        match r.verify(&out.key, bytes.len() as u64, &hash).await {
            Err(RemoteError::Corrupt { key, got, .. }) => {
                assert_eq!(key, out.key);
                assert!(
                    got.contains(&blake3::hash(&bad).to_hex().to_string()),
                    "{got}"
                );
            }
            other => panic!("{other:?}"),
        }

        r.delete(&out.key).await.unwrap();
        r.delete(&out.key).await.unwrap(); // missing is fine
        assert!(r.head(&out.key).await.unwrap().is_none());
        match r.verify(&out.key, 1, &hash).await {
            Err(RemoteError::NotFound { key, .. }) => assert_eq!(key, out.key),
            other => panic!("{other:?}"),
        }
        assert!(r.list_data().await.unwrap().is_empty());
    });
}

#[test]
fn file_remote_multipart_and_source_changed() {
    let f = fixture();
    rt().block_on(async {
        let r = &f.remote;
        let bytes = data(20 << 20, 2); // 3 parts of 8 MiB
        let hash = blake3::hash(&bytes);
        let src = write_src(&f, "big", &bytes);
        let seen = Mutex::new(Vec::new());
        let out = r
            .put_file(
                &src,
                bytes.len() as u64,
                &hash,
                &PutOptions {
                    concurrency: Some(2),
                    ..Default::default()
                },
                &|n| seen.lock().unwrap().push(n),
            )
            .await
            .unwrap();
        let seen = seen.into_inner().unwrap();
        assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
        assert_eq!(*seen.last().unwrap(), bytes.len() as u64);
        assert!(seen.len() >= 3, "{seen:?}");
        r.verify(&out.key, bytes.len() as u64, &hash).await.unwrap();

        // Wrong expected hash (the file "changed" since it was hashed).
        let wrong = blake3::hash(b"something else");
        match r
            .put_file(
                &src,
                bytes.len() as u64,
                &wrong,
                &PutOptions::default(),
                &|_| {},
            )
            .await
        {
            Err(e @ RemoteError::SourceChanged { .. }) => {
                assert_eq!(e.errno(), libc::EAGAIN);
            }
            other => panic!("{other:?}"),
        }
        assert!(r.head(&r.object_key(&wrong)).await.unwrap().is_none());
        // Nothing left in the store but the good object (no staging files).
        let mut names: Vec<_> = walk(&f.dir.path().join("store"));
        names.sort();
        assert_eq!(names, vec![out.key.clone()]);

        // Wrong size.
        match r
            .put_file(&src, 5, &hash, &PutOptions::default(), &|_| {})
            .await
        {
            Err(RemoteError::SourceChanged { .. }) => {}
            other => panic!("{other:?}"),
        }

        // download_to never writes past `size` and reports a size mismatch.
        let dest_path = f.dir.path().join("dest");
        let dest = std::fs::File::create(&dest_path).unwrap();
        match r.download_to(&out.key, 10, &hash, &dest, &|_| {}).await {
            Err(RemoteError::Corrupt { .. }) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(std::fs::metadata(&dest_path).unwrap().len(), 0);
    });
}

fn walk(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out
}

#[test]
fn file_self_test_passes() {
    let f = fixture();
    let report = rt().block_on(f.remote.self_test());
    assert!(report.ok, "{report:#?}");
    let names: Vec<_> = report.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, selftest::STEPS);
    assert!(walk(&f.dir.path().join("store")).is_empty());
}

#[test]
fn unreachable_endpoint_fails_fast() {
    // A port nobody listens on: connection refused, reported as Unreachable
    // within about request_timeout, not a hang.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut c = cfg("down", "s3://b/p");
    c.endpoint = Some(format!("http://127.0.0.1:{port}"));
    c.allow_http = true;
    c.access_key_id = Some("AK".into());
    c.secret_access_key = Some("SK".into());
    c.request_timeout = Some("1s".into());
    let r = Remote::from_config(&c).unwrap();
    let start = std::time::Instant::now();
    let e = rt().block_on(r.head("p/data/x")).unwrap_err();
    assert!(
        matches!(e, RemoteError::Unreachable { .. }),
        "{e:?} after {:?}",
        start.elapsed()
    );
    assert!(
        start.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(e.to_string().contains("`down`"), "{e}");
    let report = rt().block_on(r.self_test());
    assert!(!report.ok);
    assert_eq!(report.steps[0].status, StepStatus::Failed);
    assert_eq!(report.steps[1].status, StepStatus::Skipped);
}

#[test]
fn remote_and_its_futures_are_send() {
    fn send_sync_clone<T: Send + Sync + Clone>() {}
    fn send<T: Send>(_: &T) {}
    send_sync_clone::<Remote>();
    let f = fixture();
    let r = &f.remote;
    let h = blake3::hash(b"");
    let p = std::path::Path::new("/x");
    let file = std::fs::File::open("/dev/null").unwrap();
    let progress = |_: u64| {};
    send(&r.put_file(p, 0, &h, &PutOptions::default(), &progress));
    send(&r.download_to("data/x", 0, &h, &file, &progress));
    send(&r.verify("data/x", 0, &h));
    send(&r.get_range("data/x", 0..1));
    send(&r.head("data/x"));
    send(&r.delete("data/x"));
    send(&r.list_data());
    send(&r.self_test());
}
