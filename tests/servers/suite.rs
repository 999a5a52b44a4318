//! Scenarios every backend must pass, run by `tests/remotes/remote_*.rs` against
//! their server. Each scenario works under its own key prefix, so tests
//! sharing a server don't see each other's objects.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use object_store::{ObjectStore, ObjectStoreExt};
use tierfs::remote::{PutOptions, Remote, RemoteError, StepStatus};

const MIB: usize = 1 << 20;

/// How to damage a stored object behind the remote's back.
pub enum Tamper {
    /// Overwrite through object_store on the same bucket.
    Store(Arc<dyn ObjectStore>),
    /// Edit the file under this root directory (`file://` remotes).
    Dir(PathBuf),
}

impl Tamper {
    pub async fn overwrite(&self, key: &str, bytes: Vec<u8>) {
        match self {
            Tamper::Store(store) => {
                store
                    .put(&object_store::path::Path::parse(key).unwrap(), bytes.into())
                    .await
                    .unwrap();
            }
            Tamper::Dir(root) => std::fs::write(root.join(key), bytes).unwrap(),
        }
    }
}

/// Deterministic pseudo-random bytes.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new()
        .update(&seed.to_le_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

/// A scratch directory for source and destination files.
pub struct Scratch(tempfile::TempDir);

impl Scratch {
    pub fn new() -> Scratch {
        Scratch(tempfile::tempdir().unwrap())
    }

    pub fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
}

/// put (small, single request), dedupe, head, verify, get_range,
/// download_to, list_data, delete (twice), and NotFound afterwards.
pub async fn small_round_trip(remote: &Remote) {
    let scratch = Scratch::new();
    let bytes = data(300_000, 1);
    let hash = blake3::hash(&bytes);
    let src = scratch.file("small", &bytes);
    let size = bytes.len() as u64;
    let last = Mutex::new(0u64);
    let out = remote
        .put_file(&src, size, &hash, &PutOptions::default(), &|n| {
            *last.lock().unwrap() = n
        })
        .await
        .unwrap();
    assert!(!out.already_present);
    assert_eq!(out.key, remote.object_key(&hash));
    assert_eq!(
        out.key,
        format!("{}{}", remote.data_prefix(), hash.to_hex())
    );
    assert_eq!(out.size, size);
    assert_eq!(*last.lock().unwrap(), size);

    let again = remote
        .put_file(&src, size, &hash, &PutOptions::default(), &|_| {})
        .await
        .unwrap();
    assert!(again.already_present, "second upload must be skipped");
    assert_eq!(again.key, out.key);

    let info = remote.head(&out.key).await.unwrap().expect("object exists");
    assert_eq!(info.size, size);
    assert_eq!(info.key, out.key);

    remote.verify(&out.key, size, &hash).await.unwrap();

    let r = remote.get_range(&out.key, 1000..5000).await.unwrap();
    assert_eq!(r.as_ref(), &bytes[1000..5000]);
    let r = remote.get_range(&out.key, size - 7..size).await.unwrap();
    assert_eq!(r.as_ref(), &bytes[bytes.len() - 7..]);

    // download_to writes in place without truncating: pre-fill longer.
    let dest_path = scratch.path("dest");
    std::fs::write(&dest_path, vec![0xAAu8; bytes.len() + 10]).unwrap();
    let dest = std::fs::OpenOptions::new()
        .write(true)
        .open(&dest_path)
        .unwrap();
    let got = Mutex::new(0u64);
    remote
        .download_to(&out.key, size, &hash, &dest, &|n| *got.lock().unwrap() = n)
        .await
        .unwrap();
    let written = std::fs::read(&dest_path).unwrap();
    assert_eq!(&written[..bytes.len()], &bytes[..]);
    assert_eq!(&written[bytes.len()..], &[0xAAu8; 10]);
    assert_eq!(*got.lock().unwrap(), size);

    let listed = remote.list_data().await.unwrap();
    assert!(
        listed.iter().any(|o| o.key == out.key && o.size == size),
        "{listed:?}"
    );

    // Metadata recorded where the backend keeps it.
    if remote.kind() != "file" {
        let (_, meta) = remote
            .head_with_metadata(&out.key)
            .await
            .unwrap()
            .expect("object exists");
        let get = |k: &str| meta.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(
            get("tierfs_blake3").as_deref(),
            Some(hash.to_hex().as_str()),
            "{meta:?}"
        );
        assert_eq!(get("tierfs_size"), Some(size.to_string()), "{meta:?}");
    }

    remote.delete(&out.key).await.unwrap();
    remote.delete(&out.key).await.unwrap(); // already gone: still Ok
    assert!(remote.head(&out.key).await.unwrap().is_none());
    match remote.verify(&out.key, size, &hash).await {
        Err(RemoteError::NotFound { key, .. }) => assert_eq!(key, out.key),
        other => panic!("verify of a deleted object: {other:?}"),
    }
    match remote.get_range(&out.key, 0..10).await {
        Err(RemoteError::NotFound { .. }) => {}
        other => panic!("get_range of a deleted object: {other:?}"),
    }
}

/// A `size`-byte multipart upload with `part`-byte parts, then checks.
pub async fn large_multipart(remote: &Remote, size: usize, part: u64) {
    let scratch = Scratch::new();
    let bytes = data(size, 2);
    let hash = blake3::hash(&bytes);
    let src = scratch.file("large", &bytes);
    let seen = Mutex::new(Vec::new());
    let start = Instant::now();
    let out = remote
        .put_file(
            &src,
            size as u64,
            &hash,
            &PutOptions {
                part_size: Some(part),
                concurrency: Some(4),
                storage_class: None,
                assume_new: false,
            },
            &|n| seen.lock().unwrap().push(n),
        )
        .await
        .unwrap();
    eprintln!(
        "{}: {size} bytes uploaded in {:?}",
        remote.name(),
        start.elapsed()
    );
    assert!(!out.already_present);
    let seen = seen.into_inner().unwrap();
    let parts = (size as u64).div_ceil(part) as usize;
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    assert_eq!(seen.last().copied(), Some(size as u64));
    assert!(seen.len() >= parts, "expected a report per part: {seen:?}");

    let info = remote.head(&out.key).await.unwrap().unwrap();
    assert_eq!(info.size, size as u64);
    remote.verify(&out.key, size as u64, &hash).await.unwrap();

    // A range across a part boundary.
    let b = part;
    let r = remote.get_range(&out.key, b - 100..b + 100).await.unwrap();
    assert_eq!(r.as_ref(), &bytes[b as usize - 100..b as usize + 100]);

    let dest_path = scratch.path("dest");
    let dest = std::fs::File::create(&dest_path).unwrap();
    remote
        .download_to(&out.key, size as u64, &hash, &dest, &|_| {})
        .await
        .unwrap();
    drop(dest);
    assert!(
        std::fs::read(&dest_path).unwrap() == bytes,
        "downloaded copy differs"
    );

    remote.delete(&out.key).await.unwrap();
    assert!(remote.head(&out.key).await.unwrap().is_none());
}

/// Damaged objects are reported as Corrupt by verify and download_to, and a
/// re-upload of a wrong-size object replaces it.
pub async fn corruption_detected(remote: &Remote, tamper: &Tamper) {
    let scratch = Scratch::new();
    let bytes = data(200_000, 3);
    let hash = blake3::hash(&bytes);
    let size = bytes.len() as u64;
    let src = scratch.file("c", &bytes);
    let out = remote
        .put_file(&src, size, &hash, &PutOptions::default(), &|_| {})
        .await
        .unwrap();

    // Same size, one byte flipped.
    let mut bad = bytes.clone();
    bad[12345] ^= 0x01;
    tamper.overwrite(&out.key, bad.clone()).await;
    let bad_hash = blake3::hash(&bad);
    match remote.verify(&out.key, size, &hash).await {
        Err(e @ RemoteError::Corrupt { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(&out.key), "{msg}");
            assert!(msg.contains(hash.to_hex().as_str()), "{msg}");
            assert!(msg.contains(bad_hash.to_hex().as_str()), "{msg}");
            assert!(msg.contains(&format!("`{}`", remote.name())), "{msg}");
            assert_eq!(e.errno(), libc::EIO);
        }
        other => panic!("verify of a damaged object: {other:?}"),
    }
    let dest = std::fs::File::create(scratch.path("dest")).unwrap();
    match remote
        .download_to(&out.key, size, &hash, &dest, &|_| {})
        .await
    {
        Err(RemoteError::Corrupt { .. }) => {}
        other => panic!("download of a damaged object: {other:?}"),
    }

    // Truncated.
    tamper.overwrite(&out.key, bytes[..1000].to_vec()).await;
    match remote.verify(&out.key, size, &hash).await {
        Err(RemoteError::Corrupt { got, .. }) => assert!(got.contains("1000"), "{got}"),
        other => panic!("verify of a truncated object: {other:?}"),
    }
    // put_file does not trust a wrong-size object: it uploads again.
    let again = remote
        .put_file(&src, size, &hash, &PutOptions::default(), &|_| {})
        .await
        .unwrap();
    assert!(!again.already_present);
    remote.verify(&out.key, size, &hash).await.unwrap();
    remote.delete(&out.key).await.unwrap();
}

/// The file changes between hashing and uploading: SourceChanged, and
/// nothing is left under the key.
pub async fn source_changed(remote: &Remote) {
    let scratch = Scratch::new();

    // Small file, wrong expected hash (single PUT path).
    let bytes = data(50_000, 4);
    let src = scratch.file("s", &bytes);
    let wrong = blake3::hash(b"what the file held when it was hashed");
    match remote
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
            assert!(e.to_string().contains(&src.display().to_string()), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        remote
            .head(&remote.object_key(&wrong))
            .await
            .unwrap()
            .is_none()
    );

    // Large file modified while its parts are being sent (multipart path):
    // after the first part is acknowledged, change the last byte.
    let size = 20 * MIB;
    let bytes = data(size, 5);
    let hash = blake3::hash(&bytes);
    let src = scratch.file("l", &bytes);
    let src2 = src.clone();
    let touched = Mutex::new(false);
    let res = remote
        .put_file(
            &src,
            size as u64,
            &hash,
            &PutOptions {
                part_size: Some(8 << 20),
                concurrency: Some(1),
                storage_class: None,
                assume_new: false,
            },
            &|n| {
                let mut t = touched.lock().unwrap();
                if n > 0 && n < size as u64 && !*t {
                    use std::os::unix::fs::FileExt;
                    let f = std::fs::OpenOptions::new().write(true).open(&src2).unwrap();
                    f.write_all_at(b"!", size as u64 - 1).unwrap();
                    *t = true;
                }
            },
        )
        .await;
    assert!(
        *touched.lock().unwrap(),
        "the file was not modified mid-upload"
    );
    match res {
        Err(RemoteError::SourceChanged { path, .. }) => assert_eq!(path, src),
        other => panic!("{other:?}"),
    }
    assert!(
        remote
            .head(&remote.object_key(&hash))
            .await
            .unwrap()
            .is_none(),
        "an object was left behind"
    );

    // Large file with a wrong expected hash from the start.
    std::fs::write(&src, &bytes).unwrap();
    match remote
        .put_file(&src, size as u64, &wrong, &PutOptions::default(), &|_| {})
        .await
    {
        Err(RemoteError::SourceChanged { .. }) => {}
        other => panic!("{other:?}"),
    }
    assert!(
        remote
            .head(&remote.object_key(&wrong))
            .await
            .unwrap()
            .is_none()
    );

    // Size differs from what the caller recorded.
    match remote
        .put_file(
            &src,
            size as u64 + 1,
            &hash,
            &PutOptions::default(),
            &|_| {},
        )
        .await
    {
        Err(RemoteError::SourceChanged { .. }) => {}
        other => panic!("{other:?}"),
    }
}

/// `self_test` passes every step.
pub async fn self_test_passes(remote: &Remote) {
    let report = remote.self_test().await;
    assert!(report.ok, "{report:#?}");
    assert_eq!(report.steps.len(), 5);
    assert!(report.steps.iter().all(|s| s.status == StepStatus::Ok));
    // The probe object is gone.
    let listed = remote.list_data().await.unwrap();
    assert!(listed.iter().all(|o| !o.key.contains("/probe/")));
}

/// Every operation fails with Unauthenticated; self_test fails at
/// "credentials".
pub async fn expect_unauthenticated(remote: &Remote) {
    let hash = blake3::hash(b"x");
    let key = remote.object_key(&hash);
    let e = remote.list_data().await.unwrap_err();
    assert!(
        matches!(e, RemoteError::Unauthenticated { .. }),
        "list: {e:?}"
    );
    assert!(
        e.to_string().contains(&format!("`{}`", remote.name())),
        "{e}"
    );
    let e = remote.verify(&key, 1, &hash).await.unwrap_err();
    assert!(
        matches!(e, RemoteError::Unauthenticated { .. }),
        "get: {e:?}"
    );
    let scratch = Scratch::new();
    let src = scratch.file("x", b"x");
    let e = remote
        .put_file(&src, 1, &hash, &PutOptions::default(), &|_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(e, RemoteError::Unauthenticated { .. }),
        "put: {e:?}"
    );
    let report = remote.self_test().await;
    assert!(!report.ok);
    assert_eq!(report.steps[0].status, StepStatus::Ok, "{report:#?}");
    assert_eq!(report.steps[1].status, StepStatus::Failed, "{report:#?}");
    assert_eq!(
        report.steps[1].error_kind.as_deref(),
        Some("unauthenticated"),
        "{report:#?}"
    );
}

/// The server is gone: errors are Unreachable, each within `within`.
pub async fn expect_unreachable(remote: &Remote, within: Duration) {
    let hash = blake3::hash(b"gone");
    let key = remote.object_key(&hash);
    let scratch = Scratch::new();
    let src = scratch.file("x", b"gone");
    let check = |what: &str, start: Instant, e: RemoteError| {
        assert!(
            matches!(e, RemoteError::Unreachable { .. }),
            "{what}: {e:?} after {:?}",
            start.elapsed()
        );
        assert!(
            start.elapsed() < within,
            "{what} took {:?}",
            start.elapsed()
        );
        assert_eq!(e.errno(), libc::EIO);
    };
    let t = Instant::now();
    check("head", t, remote.head(&key).await.unwrap_err());
    let t = Instant::now();
    check(
        "put_file",
        t,
        remote
            .put_file(&src, 4, &hash, &PutOptions::default(), &|_| {})
            .await
            .unwrap_err(),
    );
    let t = Instant::now();
    check(
        "get_range",
        t,
        remote.get_range(&key, 0..2).await.unwrap_err(),
    );
    let t = Instant::now();
    check("list_data", t, remote.list_data().await.unwrap_err());
    let report = remote.self_test().await;
    assert!(!report.ok);
    assert_eq!(report.steps[0].status, StepStatus::Failed, "{report:#?}");
}
