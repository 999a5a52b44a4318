//! The `remote` module on a `file://` remote (LocalFileSystem, fsync on):
//! the same scenarios as the object-store backends.

use crate::servers;

use servers::suite::{self, Tamper};
use servers::{remote_config, rt};
use tierfs::remote::{Remote, RemoteError};

struct Local {
    dir: tempfile::TempDir,
    remote: Remote,
}

fn local() -> Local {
    let dir = tempfile::tempdir().unwrap();
    let url = url::Url::from_directory_path(dir.path()).unwrap();
    let remote = Remote::from_config(&remote_config(
        "local",
        &format!("url = \"{url}\"\nmax_concurrency = 3\n"),
    ))
    .unwrap();
    Local { dir, remote }
}

#[test]
fn small_round_trip() {
    let l = local();
    rt().block_on(suite::small_round_trip(&l.remote));
}

#[test]
fn large_multipart_upload() {
    let l = local();
    rt().block_on(suite::large_multipart(&l.remote, 40 << 20, 8 << 20));
    // No staging files left behind.
    let leftovers: Vec<_> = walk(l.dir.path());
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn corruption_is_detected() {
    let l = local();
    let tamper = Tamper::Dir(l.dir.path().to_path_buf());
    rt().block_on(suite::corruption_detected(&l.remote, &tamper));
}

#[test]
fn source_changed_leaves_nothing() {
    let l = local();
    rt().block_on(suite::source_changed(&l.remote));
    let leftovers: Vec<_> = walk(l.dir.path());
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn self_test_passes() {
    let l = local();
    rt().block_on(suite::self_test_passes(&l.remote));
}

#[test]
fn missing_directory_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let gone = dir.path().join("not-created");
    let url = url::Url::from_directory_path(&gone).unwrap();
    let e =
        Remote::from_config(&remote_config("local", &format!("url = \"{url}\"\n"))).unwrap_err();
    assert!(matches!(e, RemoteError::Config { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("`local`") && msg.contains(&gone.display().to_string()),
        "{msg}"
    );
}

fn walk(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}
