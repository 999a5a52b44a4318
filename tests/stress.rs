//! Stress: worker processes (forked children of the test, so the mount sees
//! separate processes) do random reads, writes, renames, truncates and
//! appends through the mount, each checked against an in-memory model of its
//! own files, while a thread of the test runs migrations (rule `* -> cloud`, no
//! age condition, a real S3 server) and recalls over and over. Bounded in
//! time (`TIERFS_STRESS_SECS`, default 40 s) and seeded (`TIERFS_STRESS_SEED`,
//! printed on failure). Passes only with zero mismatches, no I/O error, real
//! tiering traffic during the run, and `tierctl fsck` clean at the end.

mod common;
mod servers;

use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::FromRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::tiering::{add_rule, socket};
use common::{MountOptions, TestMount};
use servers::SeaweedFs;
use tierfs::control::{Reply, Request};
use tierfs::tier::MigrateRequest;

const WORKERS: u64 = 3;
/// Names each worker may use; about half exist at any time.
const NAMES: u64 = 6;
const MAX_SIZE: u64 = 9 << 20;

/// xorshift64*: deterministic from the seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n);
        while v.len() < n {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

/// What one worker found wrong.
#[derive(Default)]
struct Tally {
    ops: u64,
    mismatches: Vec<String>,
}

fn name(worker: u64, i: u64) -> String {
    format!("s/w{worker}-{i}")
}

/// Returns whether `got` differs from `want` (and records the mismatch).
fn check(tally: &mut Tally, what: String, got: &[u8], want: &[u8]) -> bool {
    if got == want {
        return false;
    }
    let first = got.iter().zip(want).position(|(a, b)| a != b);
    tally.mismatches.push(format!(
        "{what}: got {} bytes, want {} (first difference at {first:?})",
        got.len(),
        want.len()
    ));
    true
}

/// The last operations on each name, printed with a mismatch so a failure
/// says what led up to it.
#[derive(Default)]
struct History(BTreeMap<u64, VecDeque<String>>);

impl History {
    fn note(&mut self, i: u64, op: String) {
        let ops = self.0.entry(i).or_default();
        if ops.len() == 8 {
            ops.pop_front();
        }
        ops.push_back(op);
    }
    fn moved(&mut self, from: u64, to: u64) {
        let ops = self.0.remove(&from).unwrap_or_default();
        self.0.insert(to, ops);
    }
    fn of(&self, i: u64) -> String {
        self.0
            .get(&i)
            .map(|ops| ops.iter().cloned().collect::<Vec<_>>().join("; "))
            .unwrap_or_default()
    }
}

/// What a second look at a mismatching file shows: its size and tiering
/// state through the mount, and whether an immediate re-read is right.
fn second_look(path: &Path, want: &[u8]) -> String {
    let size = fs::metadata(path).map(|m| m.len());
    let state = xattr_state(path);
    let again = fs::read(path).map(|d| (d.len(), d == want));
    format!("stat size {size:?}, state {state}, re-read (len, right) {again:?}")
}

fn xattr_state(path: &Path) -> String {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap_or_default();
    let mut buf = [0u8; 32];
    // SAFETY: getxattr writes at most buf.len() bytes into buf.
    let n = unsafe {
        libc::getxattr(
            c.as_ptr(),
            c"user.tierfs.state".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return format!("({})", std::io::Error::last_os_error());
    }
    String::from_utf8_lossy(&buf[..n as usize]).into_owned()
}

fn io_failed(tally: &mut Tally, what: String, e: std::io::Error) {
    tally.mismatches.push(format!("{what}: {e}"));
}

/// One worker: random operations on its own files until `until`, checked
/// against `model`.
fn worker(mnt: PathBuf, worker: u64, seed: u64, until: Instant) -> Tally {
    let mut rng = Rng::new(seed ^ (worker + 1).wrapping_mul(0x1234_5678_9abc));
    let mut model: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut tally = Tally::default();
    let mut history = History::default();
    let started = Instant::now();
    for i in 0..NAMES / 2 {
        let len = rng.below(MAX_SIZE) as usize;
        let data = rng.bytes(len);
        fs::write(mnt.join(name(worker, i)), &data).unwrap();
        history.note(i, format!("create {len}"));
        model.insert(i, data);
    }
    while Instant::now() < until {
        tally.ops += 1;
        let i = rng.below(NAMES);
        let path = mnt.join(name(worker, i));
        let Some(want) = model.get(&i).cloned() else {
            // Create it.
            let len = rng.below(MAX_SIZE / 2) as usize;
            let data = rng.bytes(len);
            match fs::write(&path, &data) {
                Ok(()) => {
                    history.note(i, format!("{:?} create {len}", started.elapsed()));
                    model.insert(i, data);
                }
                Err(e) => io_failed(&mut tally, format!("create {}", name(worker, i)), e),
            }
            continue;
        };
        let what = name(worker, i);
        match rng.below(10) {
            // Whole read.
            0..=2 => match fs::read(&path) {
                Ok(got) => {
                    let when = started.elapsed();
                    if check(&mut tally, format!("{when:?} read {what}"), &got, &want) {
                        let context = format!(
                            "    {}; history: {}",
                            second_look(&path, &want),
                            history.of(i)
                        );
                        tally.mismatches.push(context);
                    }
                }
                Err(e) => io_failed(&mut tally, format!("read {what}"), e),
            },
            // Ranged read (often across a 4 MiB chunk boundary).
            3 => {
                let off = rng.below(want.len() as u64 + 1);
                let len = rng.below(1 << 20).min(want.len() as u64 - off) as usize;
                let got = fs::File::open(&path).and_then(|mut f| {
                    f.seek(SeekFrom::Start(off))?;
                    let mut buf = vec![0; len];
                    f.read_exact(&mut buf)?;
                    Ok(buf)
                });
                match got {
                    Ok(got) => {
                        let ctx = format!("{:?} read {what} @{off}+{len}", started.elapsed());
                        let want = &want[off as usize..off as usize + len];
                        if check(&mut tally, ctx, &got, want) {
                            tally
                                .mismatches
                                .push(format!("    history: {}", history.of(i)));
                        }
                    }
                    Err(e) => io_failed(&mut tally, format!("read {what} @{off}+{len}"), e),
                }
            }
            // Write in place (may extend the file).
            4 | 5 => {
                let off = rng.below(want.len() as u64 + (1 << 20)).min(MAX_SIZE);
                let n = rng.below(256 << 10) as usize + 1;
                let data = rng.bytes(n);
                let res = fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|mut f| {
                        f.seek(SeekFrom::Start(off))?;
                        f.write_all(&data)
                    });
                match res {
                    Ok(()) => {
                        let mut new = want;
                        let end = off as usize + data.len();
                        if new.len() < end {
                            new.resize(end, 0);
                        }
                        new[off as usize..end].copy_from_slice(&data);
                        history.note(
                            i,
                            format!("{:?} write @{off}+{n} -> {}", started.elapsed(), new.len()),
                        );
                        model.insert(i, new);
                    }
                    Err(e) => io_failed(&mut tally, format!("write {what} @{off}"), e),
                }
            }
            // Truncate (shorter or longer).
            6 => {
                let len = rng.below(want.len() as u64 + (1 << 20));
                let res = fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_len(len));
                match res {
                    Ok(()) => {
                        let mut new = want;
                        new.resize(len as usize, 0);
                        history.note(i, format!("{:?} truncate {len}", started.elapsed()));
                        model.insert(i, new);
                    }
                    Err(e) => io_failed(&mut tally, format!("truncate {what} to {len}"), e),
                }
            }
            // Rewrite from scratch with O_TRUNC.
            7 => {
                let n = rng.below(MAX_SIZE / 4) as usize;
                let data = rng.bytes(n);
                match fs::write(&path, &data) {
                    Ok(()) => {
                        history.note(i, format!("{:?} rewrite {n}", started.elapsed()));
                        model.insert(i, data);
                    }
                    Err(e) => io_failed(&mut tally, format!("rewrite {what}"), e),
                }
            }
            // Rename over another name (existing or not).
            8 => {
                let j = rng.below(NAMES);
                if j != i {
                    match fs::rename(&path, mnt.join(name(worker, j))) {
                        Ok(()) => {
                            model.remove(&i);
                            model.insert(j, want);
                            history.moved(i, j);
                            history.note(j, format!("{:?} renamed from {i}", started.elapsed()));
                        }
                        Err(e) => io_failed(&mut tally, format!("rename {what} -> {j}"), e),
                    }
                }
            }
            // Delete.
            _ => match fs::remove_file(&path) {
                Ok(()) => {
                    model.remove(&i);
                    history.note(i, format!("{:?} unlink", started.elapsed()));
                }
                Err(e) => io_failed(&mut tally, format!("unlink {what}"), e),
            },
        }
    }
    // Final check of every file, and that no other name exists.
    for i in 0..NAMES {
        let path = mnt.join(name(worker, i));
        match (model.get(&i), fs::read(&path)) {
            (Some(want), Ok(got)) => {
                if check(&mut tally, format!("final {}", name(worker, i)), &got, want) {
                    let context = format!(
                        "    {}; history: {}",
                        second_look(&path, want),
                        history.of(i)
                    );
                    tally.mismatches.push(context);
                }
            }
            (None, Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
            (None, Ok(_)) => tally
                .mismatches
                .push(format!("final {}: exists but was deleted", name(worker, i))),
            (_, Err(e)) => io_failed(&mut tally, format!("final {}", name(worker, i)), e),
        }
    }
    tally
}

#[test]
fn random_io_during_migrations_and_recalls_matches_the_model() {
    let seed: u64 = std::env::var("TIERFS_STRESS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_122);
    let secs: u64 = std::env::var("TIERFS_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    let server = SeaweedFs::shared();
    let m = TestMount::with_options(MountOptions {
        allow_other: true,
        extra_top: "migrate_interval = \"off\"\n".into(),
        extra_sections: format!(
            "[remote.cloud]\n{}",
            server.remote_toml("stress", "request_timeout = \"30s\"")
        ),
        ..Default::default()
    });
    fs::create_dir(m.m("s")).unwrap();
    add_rule(&m, "* -> cloud");

    let stop = Arc::new(AtomicBool::new(false));
    let until = Instant::now() + Duration::from_secs(secs);
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| worker_process(m.mnt().to_path_buf(), w, seed, until))
        .collect();

    // Migrations and recalls, back to back, through the control socket.
    let released = Arc::new(AtomicU64::new(0));
    let recalled = Arc::new(AtomicU64::new(0));
    let tiering = {
        let (sock, stop) = (socket(&m), stop.clone());
        let (released, recalled) = (released.clone(), recalled.clone());
        std::thread::spawn(move || {
            let mut errors = Vec::new();
            let mut round = 0u64;
            while !stop.load(Ordering::Relaxed) {
                round += 1;
                // A recall right after every other migration, while files
                // are still cold.
                let req = if round.is_multiple_of(2) {
                    Request::Recall {
                        paths: vec![PathBuf::from("s")],
                    }
                } else {
                    Request::Migrate(MigrateRequest::default())
                };
                match tierfs::control::request(&sock, &req, Duration::from_secs(300))
                    .map(|r| r.into_result())
                {
                    Ok(Ok(Reply::Migrate(s))) => {
                        released.fetch_add(s.released, Ordering::Relaxed);
                    }
                    Ok(Ok(Reply::Recall(s))) => {
                        recalled.fetch_add(s.recalled, Ordering::Relaxed);
                    }
                    other => errors.push(format!("{req:?}: {other:?}")),
                }
                if !round.is_multiple_of(2) {
                    continue;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            errors
        })
    };

    let started = Instant::now();
    let tallies: Vec<Tally> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    stop.store(true, Ordering::Relaxed);
    let tier_errors = tiering.join().unwrap();
    let ops: u64 = tallies.iter().map(|t| t.ops).sum();
    let mismatches: Vec<&String> = tallies.iter().flat_map(|t| &t.mismatches).collect();
    let (released, recalled) = (
        released.load(Ordering::Relaxed),
        recalled.load(Ordering::Relaxed),
    );
    // Recalls made by opening cold files (reads, writes), from the daemon log.
    let log = m.daemon_log();
    let recalls_on_open = log.lines().filter(|l| l.contains(" recalled ")).count() as u64;
    eprintln!(
        "stress seed {seed}: {ops} ops in {:?}, {released} releases, {recalled} recalls by \
         tierctl, {recalls_on_open} recalls in all, {} mismatches",
        started.elapsed(),
        mismatches.len()
    );
    assert!(
        mismatches.is_empty(),
        "seed {seed}: {} mismatch(es):\n{}\n{}",
        mismatches.len(),
        mismatches
            .iter()
            .take(20)
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        m.log_banner()
    );
    assert!(tier_errors.is_empty(), "seed {seed}: {tier_errors:?}");
    assert!(
        released >= 5 && recalls_on_open >= 5,
        "seed {seed}: too little tiering traffic ({released} releases, {recalled} recalls by \
         tierctl, {recalls_on_open} in all)"
    );

    // Everything released once more, then read back cold: still the model.
    let out = m.tierctl(&["fsck"]);
    assert!(
        out.status.success(),
        "seed {seed}: fsck\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        m.log_banner()
    );
    assert_cold_reads_match(&m, &tallies_paths(m.mnt()));
}

/// Runs [`worker`] in a forked child process; the returned thread waits for
/// the child and decodes its tally (first line: ops; then one mismatch per
/// line) from a pipe.
fn worker_process(
    mnt: PathBuf,
    w: u64,
    seed: u64,
    until: Instant,
) -> std::thread::JoinHandle<Tally> {
    let mut fds = [0; 2];
    // SAFETY: plain pipe2 on a two-int array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let (read_fd, write_fd) = (fds[0], fds[1]);
    // SAFETY: the child only runs the worker (file I/O and allocation, which
    // glibc keeps fork-safe), writes to its pipe and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: the child owns write_fd; _exit never returns.
        unsafe {
            libc::close(read_fd);
            let report = match std::panic::catch_unwind(|| worker(mnt, w, seed, until)) {
                Ok(t) => {
                    let mut r = format!("{}\n", t.ops);
                    for m in &t.mismatches {
                        r.push_str(&m.replace('\n', " "));
                        r.push('\n');
                    }
                    r
                }
                Err(_) => format!("0\nworker {w} panicked\n"),
            };
            let mut out = std::fs::File::from(std::os::fd::OwnedFd::from_raw_fd(write_fd));
            let _ = out.write_all(report.as_bytes());
            drop(out);
            libc::_exit(0);
        }
    }
    // SAFETY: the parent keeps only the read end.
    unsafe { libc::close(write_fd) };
    // SAFETY: read_fd is ours from here on.
    let mut input = std::fs::File::from(unsafe { std::os::fd::OwnedFd::from_raw_fd(read_fd) });
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = input.read_to_string(&mut text);
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        let mut lines = text.lines();
        let ops = lines.next().and_then(|l| l.parse().ok());
        let mut mismatches: Vec<String> = lines.map(String::from).collect();
        if ops.is_none() || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
            mismatches.push(format!(
                "worker process {w} (pid {pid}) failed: status {status}"
            ));
        }
        Tally {
            ops: ops.unwrap_or(0),
            mismatches,
        }
    })
}

/// Every file under s/ with its current content (read through the mount).
fn tallies_paths(mnt: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<(PathBuf, Vec<u8>)> = fs::read_dir(mnt.join("s"))
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let data = fs::read(&p).unwrap();
            (p, data)
        })
        .collect();
    v.sort();
    v
}

fn assert_cold_reads_match(m: &TestMount, files: &[(PathBuf, Vec<u8>)]) {
    let s = common::tiering::migrate(m);
    assert!(s.failures.is_empty(), "{s:?}\n{}", m.log_banner());
    for (p, want) in files {
        assert_eq!(&fs::read(p).unwrap(), want, "{} after release", p.display());
    }
}
