//! Scale check for the catalog (not a timed test).
//!
//! Creates N empty-ish files (default 1,000,000) as 1000 directories under a
//! temporary directory in /tmp, then measures a first `reconcile` (every file
//! new), a second one (nothing changed, as after a restart), a directory
//! rename, and `CatalogReader::status`. Prints one JSON line with the figures
//! and the peak RSS (VmHWM), then deletes the tree.
//!
//! `cargo bench --bench catalog_scale -- [N] [--keep-catalog PATH]` (needs
//! `harness = false`). With `--keep-catalog` the finished catalog file is
//! copied to PATH before the tree is deleted, so `scripts/bench` can time
//! `tierctl status` on it.

// Until the `[[bench]]` entry with `harness = false` exists, cargo builds this
// file with the test harness and `main` is unused.
#![cfg_attr(test, allow(dead_code))]

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tierfs::catalog::{Catalog, CatalogOptions, CatalogReader, FileEvent};

const DIRS: u64 = 1000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: u64 = args
        .iter()
        .find_map(|a| a.replace('_', "").parse().ok())
        .unwrap_or(1_000_000);
    let keep_catalog = args
        .iter()
        .position(|a| a == "--keep-catalog")
        .map(|i| {
            args.get(i + 1)
                .map(PathBuf::from)
                .ok_or("--keep-catalog needs a path")
        })
        .transpose()?;
    let tree = tempfile::Builder::new()
        .prefix("tierfs-catalog-scale-")
        .tempdir_in("/tmp")?;
    let hot = tree.path().join("hot");
    let db = tree.path().join("catalog.db");

    let t = Instant::now();
    create_tree(&hot, n)?;
    // Let the fresh tree's writeback settle so it does not skew the first reconcile.
    let _ = std::process::Command::new("sync").status();
    let create = t.elapsed();

    let catalog = Catalog::open(&db, CatalogOptions::default())?;
    let first = catalog.reconcile(&hot)?;
    let second = catalog.reconcile(&hot)?;

    // One directory (n / DIRS rows) renamed: a single UPDATE.
    let t = Instant::now();
    catalog.send(FileEvent::Renamed {
        from: PathBuf::from("d0000"),
        to: PathBuf::from("renamed"),
    });
    catalog.flush()?;
    let rename_dir = t.elapsed();
    catalog.close()?;
    drop(catalog);

    let reader = CatalogReader::open(&db)?;
    let t = Instant::now();
    let status = reader.status()?;
    let status_first = t.elapsed();
    let t = Instant::now();
    reader.status()?;
    let status_again = t.elapsed();
    assert_eq!(status.total_files, n, "catalog should hold every file");

    let secs = |d: Duration| (d.as_secs_f64() * 1000.0).round() / 1000.0;
    let line = serde_json::json!({
        "files": n,
        "dirs": DIRS,
        "create_tree_s": secs(create),
        "reconcile_new_s": secs(first.elapsed),
        "reconcile_new": first,
        "reconcile_unchanged_s": secs(second.elapsed),
        "reconcile_unchanged": second,
        "rename_dir_rows": n.div_ceil(DIRS),
        "rename_dir_s": secs(rename_dir),
        "status_first_s": secs(status_first),
        "status_again_s": secs(status_again),
        "status": status,
        "peak_rss_kib": peak_rss_kib(),
        // Other work on the machine skews every figure above.
        "loadavg": fs::read_to_string("/proc/loadavg").ok().map(|l| l.trim().to_string()),
    });
    println!("{line}");

    drop(reader);
    if let Some(dest) = keep_catalog {
        fs::copy(&db, &dest)?;
    }
    let t = Instant::now();
    tree.close()?;
    eprintln!("tree deleted in {:.1}s", t.elapsed().as_secs_f64());
    Ok(())
}

/// `DIRS` directories, `n` files spread evenly, sizes 0–4095 (sparse).
fn create_tree(hot: &Path, n: u64) -> std::io::Result<()> {
    let per_dir = n.div_ceil(DIRS);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..2u64)
            .map(|w| {
                s.spawn(move || -> std::io::Result<()> {
                    for d in (w..DIRS).step_by(2) {
                        let dir = hot.join(format!("d{d:04}"));
                        fs::create_dir_all(&dir)?;
                        for f in 0..per_dir {
                            let i = d * per_dir + f;
                            if i >= n {
                                break;
                            }
                            File::create(dir.join(format!("f{f:05}")))?.set_len(i % 4096)?;
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        workers.into_iter().try_for_each(|w| {
            w.join()
                .unwrap_or_else(|_| Err(std::io::Error::other("worker panicked")))
        })
    })
}

/// Peak resident set size of this process, from /proc/self/status.
fn peak_rss_kib() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
