//! `fsbench`: metadata micro-benchmarks for `scripts/bench` (std only, no harness).
//!
//! Each op works on a directory given on the command line, so the same binary
//! measures the hot dir directly, a bindfs mount and a tierfs mount. Every op
//! prints one JSON object on stdout with wall-clock timings (seconds) and
//! per-operation latency percentiles (microseconds). Dropping caches between
//! steps is the caller's job (`scripts/bench` does it as root).
//!
//! ```text
//! fsbench smallfiles DIR [--count N] [--size BYTES] [--max-seconds S]
//!     In a fresh subdirectory of DIR: create+write+close N files, then lstat
//!     each, then unlink each; times each phase and the total. With
//!     --max-seconds the create and stat phases stop after S seconds each
//!     (for slow peers); unlink then removes every file created, and the
//!     output says `"capped":true` with the number actually done.
//! fsbench populate DIR --count N [--size BYTES]
//!     Create N files directly in DIR (set-up for `lsl`).
//! fsbench lsl DIR
//!     What `ls -l` does to the file system: readdir the whole directory, then
//!     lstat every entry (fstatat relative to the directory fd).
//! ```
//!
//! Run it through `scripts/bench`, or directly:
//! `cargo bench --bench fsbench -- smallfiles /mnt/x --count 20000`.

// Until Cargo.toml declares this target with `harness = false`, cargo builds
// it with the libtest harness, where `main` is unused; keep that warning-free.
#![cfg_attr(test, allow(dead_code))]

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const USAGE: &str = "usage:
  fsbench smallfiles DIR [--count N] [--size BYTES] [--max-seconds S]
  fsbench populate DIR --count N [--size BYTES]
  fsbench lsl DIR";

struct Args {
    op: String,
    dir: PathBuf,
    count: usize,
    size: usize,
    max_seconds: Option<u64>,
}

fn parse_args() -> Result<Args, String> {
    // `cargo bench` appends `--bench`; ignore it wherever it appears.
    let rest: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let mut positional = Vec::new();
    let mut count = 20_000usize;
    let mut size = 4096usize;
    let mut max_seconds = None;
    let mut i = 0;
    while i < rest.len() {
        let a = &rest[i];
        let mut value = |name: &str| -> Result<usize, String> {
            i += 1;
            rest.get(i)
                .ok_or(format!("{name} needs a value"))?
                .parse::<usize>()
                .map_err(|e| format!("{name}: {e}"))
        };
        match a.as_str() {
            "--count" => count = value("--count")?,
            "--size" => size = value("--size")?,
            "--max-seconds" => max_seconds = Some(value("--max-seconds")? as u64),
            "-h" | "--help" => return Err(String::new()),
            s if s.starts_with("--") => return Err(format!("unknown option {s}")),
            _ => positional.push(a.clone()),
        }
        i += 1;
    }
    if positional.len() != 2 {
        return Err("expected OP and DIR".into());
    }
    let dir = PathBuf::from(&positional[1]);
    Ok(Args {
        op: positional[0].clone(),
        dir,
        count,
        size,
        max_seconds,
    })
}

/// Latency samples of one phase, in nanoseconds.
struct Phase {
    name: &'static str,
    wall: Duration,
    lat_ns: Vec<u64>,
}

impl Phase {
    fn run(
        name: &'static str,
        n: usize,
        op: impl FnMut(usize) -> std::io::Result<()>,
    ) -> std::io::Result<Phase> {
        Phase::run_for(name, n, None, op)
    }

    /// Like `run`, but stops starting operations once `limit` has passed.
    fn run_for(
        name: &'static str,
        n: usize,
        limit: Option<Duration>,
        mut op: impl FnMut(usize) -> std::io::Result<()>,
    ) -> std::io::Result<Phase> {
        let mut lat_ns = Vec::with_capacity(n);
        let start = Instant::now();
        for i in 0..n {
            if limit.is_some_and(|l| start.elapsed() >= l) {
                break;
            }
            let t = Instant::now();
            op(i).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("{name}: operation {} of {n} failed: {e}", i + 1),
                )
            })?;
            lat_ns.push(t.elapsed().as_nanos() as u64);
        }
        let wall = start.elapsed();
        Ok(Phase { name, wall, lat_ns })
    }

    fn json(&mut self) -> String {
        self.lat_ns.sort_unstable();
        let n = self.lat_ns.len();
        let pct = |p: f64| -> f64 {
            if n == 0 {
                return 0.0;
            }
            let idx = ((p / 100.0) * (n as f64 - 1.0)).round() as usize;
            self.lat_ns[idx.min(n - 1)] as f64 / 1000.0
        };
        let secs = self.wall.as_secs_f64();
        let rate = if secs > 0.0 { n as f64 / secs } else { 0.0 };
        format!(
            "\"{name}\":{{\"ops\":{n},\"seconds\":{secs:.6},\"ops_per_sec\":{rate:.1},\
             \"lat_us\":{{\"p50\":{p50:.1},\"p90\":{p90:.1},\"p99\":{p99:.1},\"max\":{max:.1}}}}}",
            name = self.name,
            p50 = pct(50.0),
            p90 = pct(90.0),
            p99 = pct(99.0),
            max = pct(100.0),
        )
    }
}

fn name(i: usize) -> String {
    format!("f{i:07}")
}

fn create_files(
    dir: &Path,
    count: usize,
    size: usize,
    limit: Option<Duration>,
) -> std::io::Result<Phase> {
    let buf = vec![0x5au8; size];
    Phase::run_for("create", count, limit, |i| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dir.join(name(i)))?;
        if size > 0 {
            f.write_all(&buf)?;
        }
        Ok(())
    })
}

fn json_str(p: &Path) -> String {
    let s = p.display().to_string();
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn smallfiles(args: &Args) -> std::io::Result<String> {
    let sub = args
        .dir
        .join(format!("fsbench-small.{}", std::process::id()));
    fs::create_dir(&sub)?;
    let result = smallfiles_in(args, &sub);
    if result.is_err() {
        // Leave no half-filled directory behind for the next run.
        let _ = fs::remove_dir_all(&sub);
    }
    result
}

fn smallfiles_in(args: &Args, sub: &Path) -> std::io::Result<String> {
    let total = Instant::now();
    let limit = args.max_seconds.map(Duration::from_secs);
    let mut create = create_files(sub, args.count, args.size, limit)?;
    let made = create.lat_ns.len();
    let mut stat = Phase::run_for("stat", made, limit, |i| {
        let m = fs::symlink_metadata(sub.join(name(i)))?;
        if m.len() != args.size as u64 {
            return Err(std::io::Error::other(format!(
                "{}: size {} != {}",
                name(i),
                m.len(),
                args.size
            )));
        }
        Ok(())
    })?;
    let capped = made < args.count || stat.lat_ns.len() < made;
    let mut unlink = Phase::run("unlink", made, |i| fs::remove_file(sub.join(name(i))))?;
    let total = total.elapsed().as_secs_f64();
    fs::remove_dir(sub)?;
    let files_per_sec = if total > 0.0 {
        made as f64 / total
    } else {
        0.0
    };
    Ok(format!(
        "{{\"op\":\"smallfiles\",\"dir\":{dir},\"count\":{count},\"requested\":{requested},\
         \"capped\":{capped},\"max_seconds\":{max},\"size\":{size},\
         \"total_seconds\":{total:.6},\"files_per_sec\":{files_per_sec:.1},{c},{s},{u}}}",
        dir = json_str(&args.dir),
        count = made,
        requested = args.count,
        max = args
            .max_seconds
            .map_or_else(|| "null".to_string(), |m| m.to_string()),
        size = args.size,
        c = create.json(),
        s = stat.json(),
        u = unlink.json(),
    ))
}

fn populate(args: &Args) -> std::io::Result<String> {
    fs::create_dir_all(&args.dir)?;
    let mut create = create_files(&args.dir, args.count, args.size, None)?;
    Ok(format!(
        "{{\"op\":\"populate\",\"dir\":{dir},\"count\":{count},\"size\":{size},{c}}}",
        dir = json_str(&args.dir),
        count = args.count,
        size = args.size,
        c = create.json(),
    ))
}

fn lsl(args: &Args) -> std::io::Result<String> {
    let total = Instant::now();
    let t = Instant::now();
    let entries: Vec<fs::DirEntry> = fs::read_dir(&args.dir)?.collect::<Result<_, _>>()?;
    let readdir = t.elapsed().as_secs_f64();
    let mut bytes = 0u64;
    // DirEntry::metadata is fstatat(dirfd, name, AT_SYMLINK_NOFOLLOW), like ls.
    let mut stat = Phase::run("stat", entries.len(), |i| {
        bytes += entries[i].metadata()?.len();
        Ok(())
    })?;
    let total = total.elapsed().as_secs_f64();
    let n = entries.len();
    let per_sec = if total > 0.0 { n as f64 / total } else { 0.0 };
    Ok(format!(
        "{{\"op\":\"lsl\",\"dir\":{dir},\"entries\":{n},\"bytes\":{bytes},\
         \"readdir_seconds\":{readdir:.6},\"total_seconds\":{total:.6},\
         \"entries_per_sec\":{per_sec:.1},{s}}}",
        dir = json_str(&args.dir),
        s = stat.json(),
    ))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("fsbench: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match args.op.as_str() {
        "smallfiles" => smallfiles(&args),
        "populate" => populate(&args),
        "lsl" => lsl(&args),
        other => {
            eprintln!("fsbench: unknown op {other}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fsbench: {} {}: {e}", args.op, args.dir.display());
            ExitCode::FAILURE
        }
    }
}
