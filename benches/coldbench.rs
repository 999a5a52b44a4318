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
//! ```
//!
//! Credentials come from `COLDBENCH_ACCESS_KEY` / `COLDBENCH_SECRET_KEY`
//! (never from instance metadata). Uploads use 8 MiB parts with 4 in flight,
//! tierfs's defaults for files under 80 GiB (`part_size_for`, `max_concurrency`).

use std::fs::File;
use std::io::{Read, Write};
use std::path::PathBuf;
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
  coldbench ttfb  FILE [--bytes N]";

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
    };
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--endpoint" => a.endpoint = value()?,
            "--bucket" => a.bucket = value()?,
            "--key" => a.key = value()?,
            "--bytes" => a.bytes = value()?.parse().map_err(|e| format!("--bytes: {e}"))?,
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
    let mut f = File::open(&a.file).map_err(|e| format!("{}: {e}", a.file.display()))?;
    let t0 = Instant::now();
    let upload = s
        .put_multipart(&ObjectPath::from(a.key.as_str()))
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
    Ok(result(total, t0.elapsed()))
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
