//! Evaluation rate of a 20-rule `RuleSet` (not a timed test).
//!
//! Builds N synthetic files (default 1,000,000) with paths 2 to 6 levels
//! deep, sizes and times spread over a few years, then runs
//! `RuleSet::decide` on each and prints the rate (wall and thread CPU time)
//! and how the decisions fell.
//! The target is well under 2 s for 1M files on one core.
//!
//! `cargo bench --bench rules_eval -- [N] [--json]` (needs `harness = false`);
//! `--json` prints one JSON object instead of the sentence.

// Until the `[[bench]]` entry with `harness = false` exists, cargo builds this
// file with the test harness and `main` is unused.
#![cfg_attr(test, allow(dead_code))]

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tierfs::rules::{Decision, FileFacts, RuleSet, parse};

const RULES: [&str; 20] = [
    "pin legal/**",
    "pin **/*.kdbx",
    "pin home/*/.ssh",
    "accounting/* older 365d -> cloud",
    "projects/**/*.iso -> s3:GLACIER_IR",
    "media/** larger 1GiB -> b2,s3west:DEEP_ARCHIVE",
    "media/** unaccessed 90d -> b2",
    "home/*/Downloads older 30d -> b2",
    "**/*.{log,tmp} older 7d -> b2",
    "backups/** older 14d -> s3:GLACIER",
    "scratch/** newer 1d -> b2",
    "\"shared drive/**\" older 6m -> b2",
    "projects/*/build/** unaccessed 30d -> b2",
    "projects/*/data older 90d larger 100MB -> s3",
    "photos/20[0-1][0-9]/** -> b2",
    "**/node_modules unaccessed 60d -> b2",
    "vm/*.qcow2 unaccessed 14d -> s3:STANDARD_IA",
    "archive/** -> s3:GLACIER",
    "home/** unaccessed 1y -> b2",
    "* larger 1GiB unaccessed 90d -> b2",
];

const TOP: [&str; 12] = [
    "legal",
    "accounting",
    "projects",
    "media",
    "home",
    "backups",
    "scratch",
    "shared drive",
    "photos",
    "vm",
    "archive",
    "misc",
];
const EXT: [&str; 8] = ["txt", "log", "iso", "jpg", "xlsx", "kdbx", "qcow2", "tmp"];

fn main() {
    let json = std::env::args().any(|a| a == "--json");
    let n: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.replace('_', "").parse().ok())
        .unwrap_or(1_000_000);
    let now = UNIX_EPOCH + Duration::from_secs(2_000_000_000);

    let rules = RuleSet::new(
        RULES
            .iter()
            .enumerate()
            .map(|(i, r)| (i as i64 + 1, parse(r).expect("bench rule parses")))
            .collect(),
    );

    // A cheap deterministic generator (xorshift), so runs are comparable.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let build = Instant::now();
    let mut files: Vec<(PathBuf, u64, SystemTime, Option<SystemTime>)> =
        Vec::with_capacity(n as usize);
    for i in 0..n {
        let r = next();
        let depth = 1 + (r % 5) as usize;
        let mut path = String::with_capacity(64);
        path.push_str(TOP[(r >> 8) as usize % TOP.len()]);
        for level in 0..depth {
            path.push('/');
            path.push_str(&format!("d{}_{}", level, (r >> (12 + 4 * level)) % 40));
        }
        path.push_str(&format!("/f{i}.{}", EXT[(r >> 40) as usize % EXT.len()]));
        let size = 1u64 << ((r >> 44) % 34);
        let mtime = now - Duration::from_secs((r >> 20) % (3 * 365 * 86_400));
        let read = (r >> 50) % 3 != 0;
        let access = read.then(|| now - Duration::from_secs((r >> 30) % (400 * 86_400)));
        files.push((PathBuf::from(path), size, mtime, access));
    }
    let build_time = build.elapsed();

    let mut counts = [0u64; 3];
    let cpu_start = thread_cpu_time();
    let start = Instant::now();
    for (path, size, mtime, last_access) in &files {
        let facts = FileFacts {
            path,
            size: *size,
            mtime: *mtime,
            last_access: *last_access,
        };
        let d = rules.decide(black_box(&facts), now);
        counts[match d {
            Decision::Pin { .. } => 0,
            Decision::Migrate { .. } => 1,
            Decision::None => 2,
        }] += 1;
        black_box(d);
    }
    let elapsed = start.elapsed();
    let cpu = thread_cpu_time() - cpu_start;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "rules": rules.len(),
                "files": n,
                "generate_s": build_time.as_secs_f64(),
                "wall_s": elapsed.as_secs_f64(),
                "cpu_s": cpu.as_secs_f64(),
                "files_per_cpu_s": n as f64 / cpu.as_secs_f64(),
                "pin": counts[0],
                "migrate": counts[1],
                "none": counts[2],
            })
        );
        return;
    }
    println!(
        "rules_eval: {} rules, {n} files (generated in {:.2} s): decided in {:.3} s wall, {:.3} s CPU \
         = {:.0} files/s ({:.0} ns/file CPU); pin {}, migrate {}, none {}",
        rules.len(),
        build_time.as_secs_f64(),
        elapsed.as_secs_f64(),
        cpu.as_secs_f64(),
        n as f64 / cpu.as_secs_f64(),
        cpu.as_nanos() as f64 / n as f64,
        counts[0],
        counts[1],
        counts[2],
    );
}

/// CPU time of this thread: on a busy machine it measures the work itself,
/// where wall time also counts waiting for a core.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
