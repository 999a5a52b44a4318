//! `coldbench`: the physical limits for the cold-path section of `scripts/bench`.
//!
//! tierfs's migrations and recalls are measured through the real daemon; this
//! binary measures what the same S3 server gives a plain `object_store`
//! client with the same part size and concurrency, and how long the first
//! bytes of a file take to arrive. Every op prints one JSON object on stdout.
//!
//! ```text
//! coldbench ready    --endpoint URL --bucket B                 wait (≤ 60 s) until a signed LIST works
//! coldbench put      --endpoint URL --bucket B --key K FILE    raw multipart upload of FILE
//! coldbench get      --endpoint URL --bucket B --key K FILE    raw streaming download into FILE (+ fsync)
//! coldbench ttfb     FILE [--bytes N]                          open FILE and time the first read of N bytes
//! coldbench put-tree --endpoint URL --bucket B --prefix P DIR [--concurrency N]
//!                                                               raw upload of every file under DIR to P/<relative path>
//! coldbench gen-tree DIR --files N --total-mib M [--seed S]     write the migration section's tree (see below)
//! ```
//!
//! `put-tree` is the limit for releasing a tree: N files in flight at once
//! (default 4, like tierfs's `max_concurrency`), each one a single PUT up to
//! one part and a multipart upload with 4 parts in flight above that — what
//! tierfs's migration does per file, minus hashing, verification and the
//! catalog.
//!
//! `gen-tree` writes a deterministic tree of N files of random bytes (a
//! seeded xorshift per file, so no two files share content and nothing
//! dedupes) totalling exactly M MiB, 100 files per directory `dNNN/fNNNNN.bin`:
//! - 97 % small files, 4 KiB–256 KiB, log-uniform;
//! - 2.88 % medium files, 1–16 MiB, log-uniform;
//! - 0.14 % (at least one) large files sharing what is left of M MiB,
//!   weighted 0.6–1.4 around their mean (64–256 MiB each at 10,000 files and
//!   4608 MiB; smaller trees get smaller large files).
//!
//! It prints the counts and bytes per class as JSON.
//!
//! Credentials come from `COLDBENCH_ACCESS_KEY` / `COLDBENCH_SECRET_KEY`
//! (never from instance metadata). Uploads use 8 MiB parts with 4 in flight,
//! tierfs's defaults for files under 80 GiB (`part_size_for`, `max_concurrency`).

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};

const USAGE: &str = "usage:
  coldbench ready --endpoint URL --bucket B
  coldbench put   --endpoint URL --bucket B --key K FILE
  coldbench get   --endpoint URL --bucket B --key K FILE
  coldbench ttfb  FILE [--bytes N]
  coldbench put-tree --endpoint URL --bucket B --prefix P DIR [--concurrency N]
  coldbench gen-tree DIR --files N --total-mib M [--seed S]";

/// tierfs's part size for files up to 80 GiB.
const PART_SIZE: usize = 8 << 20;
/// tierfs's default `max_concurrency`.
const CONCURRENCY: usize = 4;

struct Args {
    op: String,
    endpoint: String,
    bucket: String,
    key: String,
    file: PathBuf,
    bytes: usize,
    prefix: String,
    concurrency: usize,
    files: u64,
    total_mib: u64,
    seed: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let op = it.next().ok_or("missing operation")?;
    let mut a = Args {
        op,
        endpoint: String::new(),
        bucket: String::new(),
        key: String::new(),
        file: PathBuf::new(),
        bytes: 4096,
        prefix: String::new(),
        concurrency: CONCURRENCY,
        files: 10_000,
        total_mib: 4608,
        seed: 7,
    };
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--endpoint" => a.endpoint = value()?,
            "--bucket" => a.bucket = value()?,
            "--key" => a.key = value()?,
            "--bytes" => a.bytes = value()?.parse().map_err(|e| format!("--bytes: {e}"))?,
            "--prefix" => a.prefix = value()?,
            "--concurrency" => {
                a.concurrency = value()?
                    .parse()
                    .map_err(|e| format!("--concurrency: {e}"))?;
                if a.concurrency == 0 {
                    return Err("--concurrency must be at least 1".into());
                }
            }
            "--files" => a.files = value()?.parse().map_err(|e| format!("--files: {e}"))?,
            "--total-mib" => {
                a.total_mib = value()?.parse().map_err(|e| format!("--total-mib: {e}"))?
            }
            "--seed" => a.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--bench" => {} // added by `cargo bench`
            s if s.starts_with("--") => return Err(format!("unknown option {s}")),
            s => a.file = PathBuf::from(s),
        }
    }
    Ok(a)
}

fn store(a: &Args) -> Result<Arc<dyn ObjectStore>, String> {
    let key = std::env::var("COLDBENCH_ACCESS_KEY").map_err(|_| "COLDBENCH_ACCESS_KEY unset")?;
    let secret = std::env::var("COLDBENCH_SECRET_KEY").map_err(|_| "COLDBENCH_SECRET_KEY unset")?;
    let s = AmazonS3Builder::new()
        .with_endpoint(&a.endpoint)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_bucket_name(&a.bucket)
        .with_access_key_id(key)
        .with_secret_access_key(secret)
        .build()
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(s))
}

async fn ready(a: &Args) -> Result<String, String> {
    let s = store(a)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match tokio::time::timeout(Duration::from_secs(5), s.list_with_delimiter(None)).await {
            Ok(Ok(_)) => return Ok("{\"ready\":true}".into()),
            Ok(Err(e)) if Instant::now() > deadline => return Err(e.to_string()),
            Err(_) if Instant::now() > deadline => return Err("timed out".into()),
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

async fn put(a: &Args) -> Result<String, String> {
    let s = store(a)?;
    let t0 = Instant::now();
    let total = put_multipart(&s, &a.file, &a.key).await?;
    Ok(result(total, t0.elapsed()))
}

/// Multipart upload of `file` to `key`, `PART_SIZE` parts, `CONCURRENCY` in flight.
async fn put_multipart(s: &Arc<dyn ObjectStore>, file: &Path, key: &str) -> Result<u64, String> {
    let mut f = File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let upload = s
        .put_multipart(&ObjectPath::from(key))
        .await
        .map_err(|e| e.to_string())?;
    let mut w = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
    let mut buf = vec![0u8; PART_SIZE];
    let mut total = 0u64;
    loop {
        let n = read_full(&mut f, &mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        w.wait_for_capacity(CONCURRENCY)
            .await
            .map_err(|e| e.to_string())?;
        w.write(&buf[..n]);
        total += n as u64;
    }
    w.finish().await.map_err(|e| e.to_string())?;
    Ok(total)
}

/// Every regular file under `dir`, sorted, with its size.
fn walk(dir: &Path) -> Result<Vec<(PathBuf, u64)>, String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))? {
            let e = e.map_err(|e| format!("{}: {e}", d.display()))?;
            let t = e.file_type().map_err(|e| e.to_string())?;
            if t.is_dir() {
                todo.push(e.path());
            } else if t.is_file() {
                let len = e.metadata().map_err(|e| e.to_string())?.len();
                out.push((e.path(), len));
            }
        }
    }
    out.sort();
    Ok(out)
}

async fn put_tree(a: &Args) -> Result<String, String> {
    let s = store(a)?;
    let files = walk(&a.file)?;
    let prefix = a.prefix.trim_end_matches('/').to_string();
    let t0 = Instant::now();
    let mut uploads = futures::stream::iter(files.iter().map(|(path, len)| {
        let s = Arc::clone(&s);
        let rel = path
            .strip_prefix(&a.file)
            .map(|r| r.to_string_lossy().into_owned())
            .unwrap_or_default();
        let key = if prefix.is_empty() {
            rel
        } else {
            format!("{prefix}/{rel}")
        };
        async move {
            if *len > PART_SIZE as u64 {
                put_multipart(&s, path, &key).await
            } else {
                let data = tokio::fs::read(path)
                    .await
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                let n = data.len() as u64;
                s.put(&ObjectPath::from(key.as_str()), data.into())
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(n)
            }
        }
    }))
    .buffer_unordered(a.concurrency);
    let mut total = 0u64;
    while let Some(n) = uploads.next().await {
        total += n?;
    }
    let elapsed = t0.elapsed();
    Ok(format!(
        "{{\"files\":{},\"bytes\":{total},\"seconds\":{:.6},\"mib_per_sec\":{:.3},\"concurrency\":{}}}",
        files.len(),
        elapsed.as_secs_f64(),
        total as f64 / (1 << 20) as f64 / elapsed.as_secs_f64(),
        a.concurrency
    ))
}

/// xorshift64* step.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// A log-uniform size between `lo` and `hi` bytes, rounded to 4 KiB.
fn log_uniform(state: &mut u64, lo: u64, hi: u64) -> u64 {
    let u = (xorshift(state) >> 11) as f64 / (1u64 << 53) as f64;
    let v = (lo as f64) * ((hi as f64) / (lo as f64)).powf(u);
    ((v as u64).max(lo) / 4096).max(1) * 4096
}

/// The sizes of the `gen-tree` files, in file order, and the class of each.
fn tree_sizes(files: u64, total: u64, seed: u64) -> Result<Vec<(u64, &'static str)>, String> {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;
    let large = (files * 14 / 10_000).max(1);
    let medium = files * 288 / 10_000;
    let small = files
        .checked_sub(large + medium)
        .ok_or("--files too small")?;
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    let mut sizes: Vec<(u64, &'static str)> = Vec::with_capacity(files as usize);
    for _ in 0..small {
        sizes.push((log_uniform(&mut state, 4 * KIB, 256 * KIB), "small"));
    }
    for _ in 0..medium {
        sizes.push((log_uniform(&mut state, MIB, 16 * MIB), "medium"));
    }
    let used: u64 = sizes.iter().map(|(s, _)| s).sum();
    let rest = total
        .checked_sub(used)
        .filter(|r| *r >= large * MIB)
        .ok_or(format!(
            "--total-mib {} is too small: small and medium files already take {} MiB",
            total / MIB,
            used.div_ceil(MIB)
        ))?;
    // Weights 0.6..1.4 around the mean, the last file takes the rounding.
    let weights: Vec<f64> = (0..large)
        .map(|i| {
            if large == 1 {
                1.0
            } else {
                0.6 + 0.8 * i as f64 / (large - 1) as f64
            }
        })
        .collect();
    let wsum: f64 = weights.iter().sum();
    let mut given = 0u64;
    for (i, w) in weights.iter().enumerate() {
        let s = if i as u64 == large - 1 {
            rest - given
        } else {
            ((rest as f64 * w / wsum) as u64 / 4096) * 4096
        };
        given += s;
        sizes.push((s, "large"));
    }
    // Spread the classes over the tree deterministically (Fisher–Yates).
    for i in (1..sizes.len()).rev() {
        let j = (xorshift(&mut state) % (i as u64 + 1)) as usize;
        sizes.swap(i, j);
    }
    Ok(sizes)
}

fn gen_tree(a: &Args) -> Result<String, String> {
    let total = a.total_mib << 20;
    let sizes = tree_sizes(a.files, total, a.seed)?;
    let t0 = Instant::now();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let root = &a.file;
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| -> Result<(), String> {
                    let mut buf = vec![0u8; 1 << 20];
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((size, _)) = sizes.get(i) else {
                            return Ok(());
                        };
                        let dir = root.join(format!("d{:03}", i / 100));
                        std::fs::create_dir_all(&dir)
                            .map_err(|e| format!("{}: {e}", dir.display()))?;
                        let path = dir.join(format!("f{i:05}.bin"));
                        let mut f =
                            File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                        let mut state =
                            (a.seed << 32) ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                        let mut left = *size;
                        while left > 0 {
                            let n = left.min(buf.len() as u64) as usize;
                            for chunk in buf[..n].chunks_mut(8) {
                                let v = xorshift(&mut state).to_le_bytes();
                                chunk.copy_from_slice(&v[..chunk.len()]);
                            }
                            f.write_all(&buf[..n])
                                .map_err(|e| format!("{}: {e}", path.display()))?;
                            left -= n as u64;
                        }
                    }
                })
            })
            .collect();
        workers.into_iter().try_for_each(|w| {
            w.join()
                .unwrap_or_else(|_| Err("generator thread panicked".to_string()))
        })
    })?;
    let class = |c: &str| {
        let v: Vec<u64> = sizes
            .iter()
            .filter(|(_, k)| *k == c)
            .map(|(s, _)| *s)
            .collect();
        format!(
            "{{\"files\":{},\"bytes\":{},\"min\":{},\"max\":{}}}",
            v.len(),
            v.iter().sum::<u64>(),
            v.iter().min().copied().unwrap_or(0),
            v.iter().max().copied().unwrap_or(0)
        )
    };
    Ok(format!(
        "{{\"files\":{},\"bytes\":{total},\"seed\":{},\"seconds\":{:.3},\"small\":{},\"medium\":{},\"large\":{}}}",
        sizes.len(),
        a.seed,
        t0.elapsed().as_secs_f64(),
        class("small"),
        class("medium"),
        class("large")
    ))
}

async fn get(a: &Args) -> Result<String, String> {
    let s = store(a)?;
    let mut out = File::create(&a.file).map_err(|e| format!("{}: {e}", a.file.display()))?;
    let t0 = Instant::now();
    let mut stream = s
        .get(&ObjectPath::from(a.key.as_str()))
        .await
        .map_err(|e| e.to_string())?
        .into_stream();
    let mut total = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        out.write_all(&chunk).map_err(|e| e.to_string())?;
        total += chunk.len() as u64;
    }
    out.sync_all().map_err(|e| e.to_string())?;
    Ok(result(total, t0.elapsed()))
}

fn ttfb(a: &Args) -> Result<String, String> {
    let mut buf = vec![0u8; a.bytes];
    let t0 = Instant::now();
    let mut f = File::open(&a.file).map_err(|e| format!("{}: {e}", a.file.display()))?;
    let n = read_full(&mut f, &mut buf).map_err(|e| format!("{}: {e}", a.file.display()))?;
    let elapsed = t0.elapsed();
    Ok(format!(
        "{{\"bytes\":{n},\"seconds\":{:.6}}}",
        elapsed.as_secs_f64()
    ))
}

fn read_full(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn result(bytes: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    format!(
        "{{\"bytes\":{bytes},\"seconds\":{secs:.6},\"mib_per_sec\":{:.3}}}",
        bytes as f64 / (1 << 20) as f64 / secs
    )
}

fn main() -> ExitCode {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("coldbench: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("coldbench: tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    let out = match a.op.as_str() {
        "ready" => runtime.block_on(ready(&a)),
        "put" => runtime.block_on(put(&a)),
        "get" => runtime.block_on(get(&a)),
        "ttfb" => ttfb(&a),
        "put-tree" => runtime.block_on(put_tree(&a)),
        "gen-tree" => gen_tree(&a),
        other => Err(format!("unknown operation {other}\n{USAGE}")),
    };
    match out {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("coldbench {}: {e}", a.op);
            ExitCode::FAILURE
        }
    }
}
