//! Stress: worker processes (forked children of the test, so the mount sees
//! separate processes) do random reads, writes, renames, truncates,
//! appends, `SEEK_DATA`/`SEEK_HOLE` walks, `copy_file_range`, mmap reads,
//! hard links and touches through the mount, each checked against an
//! in-memory model of its own files, while a thread of the test runs migrations (rule `* -> cloud`, no
//! age condition, a real S3 server) and recalls over and over. Bounded in
//! time (`TIERFS_STRESS_SECS`, default 40 s) and seeded (`TIERFS_STRESS_SEED`,
//! printed on failure). Passes only with zero mismatches, no I/O error, real
//! tiering traffic during the run, each of the layout and metadata
//! operations run at least once on a cold file, and `tierctl fsck` clean at
//! the end.

mod common;
mod servers;

use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::tiering::{add_rule, socket};
use common::{MountOptions, TestMount};
use servers::SeaweedFs;
use tierfs::control::{Reply, Request};

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

/// What one worker found wrong, and how often it ran each of [`NEW_OPS`]
/// (`"<op>"`) and ran it on a file that was cold at the time (`"<op>.cold"`).
#[derive(Default)]
struct Tally {
    ops: u64,
    counts: BTreeMap<String, u64>,
    mismatches: Vec<String>,
}

impl Tally {
    /// Counts one run of `op`, on a cold file if `cold`.
    fn ran(&mut self, op: &str, cold: bool) {
        *self.counts.entry(op.to_string()).or_default() += 1;
        if cold {
            *self.counts.entry(format!("{op}.cold")).or_default() += 1;
        }
    }
}

/// The operations on cold files' layout and metadata that must each run on
/// a cold file at least once: `SEEK_DATA`/`SEEK_HOLE` walks,
/// `copy_file_range` from the file, mmap reads, hard links and touch.
const NEW_OPS: [&str; 5] = ["seek", "copy", "mmap", "link", "touch"];

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

/// A worker's files: names (`0..NAMES`) bound to files, and each file's
/// content. Hard links are names bound to the same file.
#[derive(Default)]
struct Model {
    names: BTreeMap<u64, u64>,
    files: BTreeMap<u64, Vec<u8>>,
    next_file: u64,
}

impl Model {
    /// The content of the file named `i`.
    fn get(&self, i: u64) -> Option<&Vec<u8>> {
        self.files.get(self.names.get(&i)?)
    }

    /// A new file named `i` (the name was free).
    fn create(&mut self, i: u64, data: Vec<u8>) {
        self.next_file += 1;
        self.names.insert(i, self.next_file);
        self.files.insert(self.next_file, data);
    }

    /// New content for the file named `i`, whatever its names.
    fn set(&mut self, i: u64, data: Vec<u8>) {
        self.files.insert(self.names[&i], data);
    }

    /// Removes the name `i`; the file goes with its last name.
    fn unlink(&mut self, i: u64) {
        if let Some(f) = self.names.remove(&i)
            && !self.names.values().any(|&g| g == f)
        {
            self.files.remove(&f);
        }
    }

    /// `rename(i, j)`: nothing when both name the same file (POSIX).
    fn rename(&mut self, i: u64, j: u64) {
        if self.same_file(i, j) {
            return;
        }
        let f = self.names[&i];
        self.unlink(j);
        self.names.remove(&i);
        self.names.insert(j, f);
    }

    /// `link(i, j)`: `j` (free) becomes another name of `i`'s file.
    fn link(&mut self, i: u64, j: u64) {
        self.names.insert(j, self.names[&i]);
    }

    fn same_file(&self, i: u64, j: u64) -> bool {
        self.names.contains_key(&i) && self.names.get(&i) == self.names.get(&j)
    }

    /// Every name of `i`'s file (`i` included).
    fn names_of(&self, i: u64) -> Vec<u64> {
        let f = self.names.get(&i);
        self.names
            .iter()
            .filter(|(_, g)| Some(*g) == f)
            .map(|(&n, _)| n)
            .collect()
    }
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

fn is_cold(path: &Path) -> bool {
    xattr_state(path) == "cold"
}

/// `lseek`; `Ok(None)` for ENXIO.
fn lseek(f: &fs::File, off: u64, whence: i32) -> std::io::Result<Option<u64>> {
    // SAFETY: lseek on a descriptor we own; no memory is passed.
    let r = unsafe { libc::lseek(f.as_raw_fd(), off as libc::off_t, whence) };
    if r >= 0 {
        return Ok(Some(r as u64));
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENXIO) => Ok(None),
        _ => Err(e),
    }
}

/// The data ranges `SEEK_DATA`/`SEEK_HOLE` report from `start` on in `f`
/// (`size` bytes), checking the answers are well formed: in order, inside
/// the file, and ENXIO for both whences at the end.
fn data_ranges(f: &fs::File, start: u64, size: u64) -> Result<Vec<(u64, u64)>, String> {
    let seek = |off, whence| {
        let name = if whence == libc::SEEK_DATA {
            "SEEK_DATA"
        } else {
            "SEEK_HOLE"
        };
        lseek(f, off, whence).map_err(|e| format!("{name} @{off}: {e}"))
    };
    let mut ranges = Vec::new();
    let mut pos = start;
    while pos < size {
        let Some(data) = seek(pos, libc::SEEK_DATA)? else {
            break;
        };
        if data < pos || data >= size {
            return Err(format!("SEEK_DATA @{pos} -> {data} (size {size})"));
        }
        let hole = seek(data, libc::SEEK_HOLE)?;
        match hole {
            Some(hole) if hole > data && hole <= size => ranges.push((data, hole)),
            _ => return Err(format!("SEEK_HOLE @{data} -> {hole:?} (size {size})")),
        }
        pos = ranges.last().unwrap().1;
    }
    for whence in [libc::SEEK_DATA, libc::SEEK_HOLE] {
        if let Some(at) = seek(size, whence)? {
            return Err(format!(
                "lseek({size}, {whence}) at the end -> {at}, want ENXIO"
            ));
        }
    }
    Ok(ranges)
}

/// One worker's state: its files, their model, and what it found.
struct Worker {
    mnt: PathBuf,
    worker: u64,
    rng: Rng,
    model: Model,
    tally: Tally,
    history: History,
    started: Instant,
}

/// One worker: random operations on its own files until `until`, checked
/// against its model.
fn worker(mnt: PathBuf, worker: u64, seed: u64, until: Instant) -> Tally {
    let mut w = Worker {
        mnt,
        worker,
        rng: Rng::new(seed ^ (worker + 1).wrapping_mul(0x1234_5678_9abc)),
        model: Model::default(),
        tally: Tally::default(),
        history: History::default(),
        started: Instant::now(),
    };
    for i in 0..NAMES / 2 {
        let len = w.rng.below(MAX_SIZE) as usize;
        let data = w.rng.bytes(len);
        fs::write(w.path(i), &data).unwrap();
        w.history.note(i, format!("create {len}"));
        w.model.create(i, data);
    }
    while Instant::now() < until {
        w.tally.ops += 1;
        w.step();
    }
    w.final_check();
    w.tally
}

impl Worker {
    fn path(&self, i: u64) -> PathBuf {
        self.mnt.join(name(self.worker, i))
    }

    /// Records an unexpected error of an operation on name `i`.
    fn failed(&mut self, i: u64, what: String, e: std::io::Error) {
        let state = xattr_state(&self.path(i));
        self.tally.mismatches.push(format!(
            "{:?} {what}: {e}; state now {state}; history: {}",
            self.started.elapsed(),
            self.history.of(i)
        ));
    }

    /// Notes `op` in the history of every name of `i`'s file.
    fn note(&mut self, i: u64, op: &str) {
        let op = format!("{:?} {op}", self.started.elapsed());
        for n in self.model.names_of(i) {
            self.history.note(n, op.clone());
        }
    }

    /// Checks a whole read of name `i` against the model, with context.
    fn check_read(&mut self, i: u64, what: &str) {
        let path = self.path(i);
        let want = self.model.get(i).cloned().unwrap_or_default();
        match fs::read(&path) {
            Ok(got) => {
                let ctx = format!(
                    "{:?} {what} {}",
                    self.started.elapsed(),
                    name(self.worker, i)
                );
                if check(&mut self.tally, ctx, &got, &want) {
                    let context = format!(
                        "    {}; history: {}",
                        second_look(&path, &want),
                        self.history.of(i)
                    );
                    self.tally.mismatches.push(context);
                }
            }
            Err(e) => self.failed(i, format!("{what} {}", name(self.worker, i)), e),
        }
    }

    /// Checks that all names of `i`'s file are one file: one inode number,
    /// and as many links as names.
    fn check_links(&mut self, i: u64, what: &str) {
        let names = self.model.names_of(i);
        let stats: Vec<_> = names
            .iter()
            .map(|&n| fs::metadata(self.path(n)).map(|m| (m.ino(), m.nlink())))
            .collect();
        let want = stats.first().and_then(|s| s.as_ref().ok()).map(|s| s.0);
        let ok = stats.iter().all(
            |s| matches!(s, Ok((ino, nlink)) if Some(*ino) == want && *nlink == names.len() as u64),
        );
        if !ok {
            self.tally.mismatches.push(format!(
                "{what}: names {names:?} of {} (inode, links) {stats:?}; history: {}",
                name(self.worker, i),
                self.history.of(i)
            ));
        }
    }

    /// One random operation on a random name.
    fn step(&mut self) {
        // A file is cold only from its release to the next operation that
        // recalls it (a few operations later): half the time, one of the
        // layout and metadata operations goes to a cold file if there is
        // one, so each runs on cold files too.
        if self.rng.below(2) == 0
            && let Some(i) = self.cold_name()
        {
            let want = self.model.get(i).cloned().unwrap_or_default();
            let op = self.rng.below(5);
            return self.new_op(op, i, &want);
        }
        let i = self.rng.below(NAMES);
        let path = self.path(i);
        let Some(want) = self.model.get(i).cloned() else {
            // Create it.
            let len = self.rng.below(MAX_SIZE / 2) as usize;
            let data = self.rng.bytes(len);
            match fs::write(&path, &data) {
                Ok(()) => {
                    self.model.create(i, data);
                    self.note(i, &format!("create {len}"));
                }
                Err(e) => self.failed(i, format!("create {}", name(self.worker, i)), e),
            }
            return;
        };
        let what = name(self.worker, i);
        match self.rng.below(15) {
            // Whole read.
            0..=2 => self.check_read(i, "read"),
            // Ranged read (often across a 4 MiB chunk boundary).
            3 => {
                let off = self.rng.below(want.len() as u64 + 1);
                let len = self.rng.below(1 << 20).min(want.len() as u64 - off) as usize;
                let got = fs::File::open(&path).and_then(|mut f| {
                    f.seek(SeekFrom::Start(off))?;
                    let mut buf = vec![0; len];
                    f.read_exact(&mut buf)?;
                    Ok(buf)
                });
                match got {
                    Ok(got) => {
                        let ctx = format!("{:?} read {what} @{off}+{len}", self.started.elapsed());
                        let want = &want[off as usize..off as usize + len];
                        if check(&mut self.tally, ctx, &got, want) {
                            let context = format!("    history: {}", self.history.of(i));
                            self.tally.mismatches.push(context);
                        }
                    }
                    Err(e) => self.failed(i, format!("read {what} @{off}+{len}"), e),
                }
            }
            // Write in place (may extend the file, leaving a hole).
            4 | 5 => {
                let off = self.rng.below(want.len() as u64 + (1 << 20)).min(MAX_SIZE);
                let n = self.rng.below(256 << 10) as usize + 1;
                let data = self.rng.bytes(n);
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
                        self.note(i, &format!("write @{off}+{n} -> {}", new.len()));
                        self.model.set(i, new);
                    }
                    Err(e) => self.failed(i, format!("write {what} @{off}"), e),
                }
            }
            // Truncate (shorter, or longer: a hole at the end).
            6 => {
                let len = self.rng.below(want.len() as u64 + (1 << 20));
                let res = fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_len(len));
                match res {
                    Ok(()) => {
                        let mut new = want;
                        new.resize(len as usize, 0);
                        self.note(i, &format!("truncate {len}"));
                        self.model.set(i, new);
                    }
                    Err(e) => self.failed(i, format!("truncate {what} to {len}"), e),
                }
            }
            // Rewrite from scratch with O_TRUNC.
            7 => {
                let n = self.rng.below(MAX_SIZE / 4) as usize;
                let data = self.rng.bytes(n);
                match fs::write(&path, &data) {
                    Ok(()) => {
                        self.note(i, &format!("rewrite {n}"));
                        self.model.set(i, data);
                    }
                    Err(e) => self.failed(i, format!("rewrite {what}"), e),
                }
            }
            // Rename over another name (existing or not, maybe a link of
            // the same file).
            8 => {
                let j = self.rng.below(NAMES);
                if j != i {
                    match fs::rename(&path, self.path(j)) {
                        Ok(()) if self.model.same_file(i, j) => {
                            self.note(i, &format!("renamed to its link {j}: no-op"));
                        }
                        Ok(()) => {
                            self.model.rename(i, j);
                            self.history.moved(i, j);
                            self.note(j, &format!("renamed from {i}"));
                        }
                        Err(e) => self.failed(i, format!("rename {what} -> {j}"), e),
                    }
                }
            }
            // Delete.
            9 => match fs::remove_file(&path) {
                Ok(()) => {
                    self.note(i, &format!("unlink {i}"));
                    self.model.unlink(i);
                }
                Err(e) => self.failed(i, format!("unlink {what}"), e),
            },
            op => self.new_op(op - 10, i, &want),
        }
    }

    /// A random existing name whose file is cold now.
    fn cold_name(&mut self) -> Option<u64> {
        let cold: Vec<u64> = (self.model.names.keys())
            .copied()
            .filter(|&i| is_cold(&self.path(i)))
            .collect();
        (!cold.is_empty()).then(|| cold[self.rng.below(cold.len() as u64) as usize])
    }

    /// [`NEW_OPS`]`[op]` on name `i` (content `want`).
    fn new_op(&mut self, op: u64, i: u64, want: &[u8]) {
        match op {
            0 => self.seek_walk(i, want),
            1 => self.copy_range(i, want),
            2 => self.mmap_read(i, want),
            3 => self.link(i),
            _ => self.touch(i),
        }
    }

    /// `SEEK_DATA`/`SEEK_HOLE` from the start or a random offset: no
    /// non-zero byte of the model may lie in a reported hole.
    fn seek_walk(&mut self, i: u64, want: &[u8]) {
        let path = self.path(i);
        let size = want.len() as u64;
        let start = if self.rng.below(2) == 0 {
            0
        } else {
            self.rng.below(size + 1)
        };
        let f = match fs::File::open(&path) {
            Ok(f) => f,
            Err(e) => return self.failed(i, format!("seek: open {}", name(self.worker, i)), e),
        };
        let cold = is_cold(&path);
        let what = format!(
            "{:?} seek {} from {start}{}",
            self.started.elapsed(),
            name(self.worker, i),
            if cold { " (cold)" } else { "" }
        );
        match data_ranges(&f, start, size) {
            Ok(ranges) => {
                self.tally.ran("seek", cold);
                let mut got = vec![0u8; want.len()];
                for &(s, e) in &ranges {
                    got[s as usize..e as usize].copy_from_slice(&want[s as usize..e as usize]);
                }
                let holes = ranges.iter().map(|r| r.1 - r.0).sum::<u64>() < size - start;
                if cold && holes {
                    self.tally.ran("seek.cold.holes", false);
                }
                let ctx = format!(
                    "{what}: data ranges {:?} fill with zeros",
                    &ranges[..ranges.len().min(8)]
                );
                if check(
                    &mut self.tally,
                    ctx,
                    &got[start as usize..],
                    &want[start as usize..],
                ) {
                    let context = format!(
                        "    {}; history: {}",
                        second_look(&path, want),
                        self.history.of(i)
                    );
                    self.tally.mismatches.push(context);
                }
            }
            Err(e) => self
                .tally
                .mismatches
                .push(format!("{what}: {e}; history: {}", self.history.of(i))),
        }
    }

    /// `copy_file_range` of a random part of `i` to another file of the
    /// worker (new, or existing: then not a link of `i`), at a random
    /// offset; then the destination is read back.
    fn copy_range(&mut self, i: u64, want: &[u8]) {
        let j = self.rng.below(NAMES);
        if j == i || self.model.same_file(i, j) {
            return;
        }
        let size = want.len() as u64;
        let off_in = self.rng.below(size + 1);
        let len = self.rng.below(2 << 20) + 1; // may ask past the end
        let dst_len = self.model.get(j).map_or(0, |d| d.len() as u64);
        let off_out = self.rng.below(dst_len + (1 << 20)).min(MAX_SIZE);
        let (src, dst) = (self.path(i), self.path(j));
        let what = format!(
            "copy_file_range {}@{off_in}+{len} -> {}@{off_out}",
            name(self.worker, i),
            name(self.worker, j)
        );
        let res = fs::File::open(&src).and_then(|input| {
            let output = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&dst)?;
            let cold = is_cold(&src);
            let (mut at_in, mut at_out) = (off_in as libc::loff_t, off_out as libc::loff_t);
            let mut done = 0u64;
            while done < len {
                // SAFETY: both descriptors are open; the offsets are ours.
                let n = unsafe {
                    libc::copy_file_range(
                        input.as_raw_fd(),
                        &mut at_in,
                        output.as_raw_fd(),
                        &mut at_out,
                        (len - done) as usize,
                        0,
                    )
                };
                match n {
                    n if n < 0 => return Err(std::io::Error::last_os_error()),
                    0 => break,
                    n => done += n as u64,
                }
            }
            Ok((done, cold))
        });
        let (done, cold) = match res {
            Ok(r) => r,
            Err(e) => return self.failed(i, what, e),
        };
        self.tally.ran("copy", cold);
        let expected = len.min(size - off_in);
        if done != expected {
            self.tally.mismatches.push(format!(
                "{what}{}: copied {done} bytes, want {expected}; history: {}",
                if cold { " (cold)" } else { "" },
                self.history.of(i)
            ));
        }
        // The model: what the kernel says it copied (at most what is there).
        let mut new = self.model.get(j).cloned().unwrap_or_default();
        let (from, to) = (off_in as usize, (off_in + done.min(expected)) as usize);
        let end = off_out as usize + (to - from);
        if !self.model.names.contains_key(&j) {
            self.model.create(j, Vec::new());
        }
        if new.len() < end {
            new.resize(end, 0);
        }
        new[off_out as usize..end].copy_from_slice(&want[from..to]);
        self.model.set(j, new);
        self.note(
            i,
            &format!(
                "copied {done} @{off_in} to {j}@{off_out}{}",
                if cold { " (cold)" } else { "" }
            ),
        );
        self.note(
            j,
            &format!("got {done} @{off_out} copied from {i}@{off_in}"),
        );
        self.check_read(j, &format!("read after {what}:"));
    }

    /// mmap (`PROT_READ`, `MAP_SHARED`) of the whole file, compared with the
    /// model.
    fn mmap_read(&mut self, i: u64, want: &[u8]) {
        if want.is_empty() {
            return;
        }
        let path = self.path(i);
        let what = format!("{:?} mmap {}", self.started.elapsed(), name(self.worker, i));
        let f = match fs::File::open(&path) {
            Ok(f) => f,
            Err(e) => return self.failed(i, what, e),
        };
        let cold = is_cold(&path);
        // SAFETY: a fresh read-only shared mapping of an open file; nothing
        // else of this process changes the file while it is mapped.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                want.len(),
                libc::PROT_READ,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return self.failed(i, what, std::io::Error::last_os_error());
        }
        // SAFETY: the mapping is want.len() readable bytes until munmap.
        let got = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), want.len()) };
        let what = format!("{what}{}", if cold { " (cold)" } else { "" });
        let bad = check(&mut self.tally, what, got, want);
        // SAFETY: unmapping the mapping made above; `got` is not used after.
        unsafe { libc::munmap(p, want.len()) };
        if bad {
            let context = format!(
                "    {}; history: {}",
                second_look(&path, want),
                self.history.of(i)
            );
            self.tally.mismatches.push(context);
        }
        self.tally.ran("mmap", cold);
    }

    /// A new name for `i`'s file (a free name `j`); then both names read
    /// the same, right content and are one inode.
    fn link(&mut self, i: u64) {
        let free: Vec<u64> = (0..NAMES)
            .filter(|j| !self.model.names.contains_key(j))
            .collect();
        if free.is_empty() {
            return;
        }
        let j = free[self.rng.below(free.len() as u64) as usize];
        let path = self.path(i);
        let cold = is_cold(&path);
        if let Err(e) = fs::hard_link(&path, self.path(j)) {
            return self.failed(i, format!("link {} -> {j}", name(self.worker, i)), e);
        }
        self.tally.ran("link", cold);
        self.model.link(i, j);
        self.note(
            i,
            &format!("linked {i} to {j}{}", if cold { " (cold)" } else { "" }),
        );
        self.check_links(i, "link");
        self.check_read(j, "read new link");
        self.check_read(i, "read linked");
    }

    /// utimensat to a random past time (then, half the time, to now): the
    /// time set shows, survives reading the content, which is unchanged.
    fn touch(&mut self, i: u64) {
        let path = self.path(i);
        let cold = is_cold(&path);
        let past = libc::timespec {
            tv_sec: 1_000_000_000 + self.rng.below(600_000_000) as libc::time_t,
            tv_nsec: self.rng.below(1_000_000_000) as libc::c_long,
        };
        let now = libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        };
        let to_now = self.rng.below(2) == 0;
        let what = format!(
            "{:?} touch {} to {}.{:09}{}{}",
            self.started.elapsed(),
            name(self.worker, i),
            past.tv_sec,
            past.tv_nsec,
            if to_now { " then now" } else { "" },
            if cold { " (cold)" } else { "" }
        );
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        let utimens = |t: libc::timespec| {
            // SAFETY: a NUL-terminated path and two timespecs.
            let r = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), [t, t].as_ptr(), 0) };
            if r == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        };
        let mtime = |p: &Path| fs::metadata(p).map(|m| (m.mtime(), m.mtime_nsec()));
        let wanted = (past.tv_sec, past.tv_nsec);
        if let Err(e) = utimens(past) {
            return self.failed(i, what, e);
        }
        self.tally.ran("touch", cold);
        self.note(i, &what);
        match mtime(&path) {
            Ok(got) if got == wanted => {}
            got => self.tally.mismatches.push(format!(
                "{what}: mtime {got:?}, want {wanted:?}; history: {}",
                self.history.of(i)
            )),
        }
        if to_now {
            let before = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64;
            if let Err(e) = utimens(now) {
                return self.failed(i, format!("{what} (now)"), e);
            }
            let after = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64;
            match mtime(&path) {
                // The file system's clock is coarse: one second of slack.
                Ok((s, _)) if s >= before - 1 && s <= after + 1 => {}
                got => self.tally.mismatches.push(format!(
                    "{what}: mtime after UTIME_NOW {got:?}, want {before}..={after}; history: {}",
                    self.history.of(i)
                )),
            }
        }
        // The content is unchanged, and reading it (which may recall the
        // file) keeps the time.
        let kept = mtime(&path).ok();
        self.check_read(i, &format!("read after {what}:"));
        let got = mtime(&path).ok();
        if got != kept {
            self.tally.mismatches.push(format!(
                "{what}: mtime after reading {got:?}, before {kept:?}; history: {}",
                self.history.of(i)
            ));
        }
    }

    /// Every name against the model, linked names as one inode, and no
    /// other name exists.
    fn final_check(&mut self) {
        for i in 0..NAMES {
            let path = self.path(i);
            match (self.model.get(i).is_some(), fs::symlink_metadata(&path)) {
                (true, _) => {
                    self.check_read(i, "final");
                    if self.model.names_of(i).len() > 1 {
                        self.check_links(i, "final");
                    }
                }
                (false, Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
                (false, Ok(_)) => self.tally.mismatches.push(format!(
                    "final {}: exists but was deleted",
                    name(self.worker, i)
                )),
                (false, Err(e)) => self.failed(i, format!("final {}", name(self.worker, i)), e),
            }
        }
    }
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

    // Migrations (`tierctl migrate`, as a cron job runs it: its exit status
    // must be 0 whatever the workers just renamed or deleted) and recalls
    // (control socket), back to back.
    let released = Arc::new(AtomicU64::new(0));
    let recalled = Arc::new(AtomicU64::new(0));
    let migrations = Arc::new(AtomicU64::new(0));
    let tiering = {
        let (sock, stop) = (socket(&m), stop.clone());
        let config = m.config().to_path_buf();
        let (released, recalled, migrations) =
            (released.clone(), recalled.clone(), migrations.clone());
        std::thread::spawn(move || {
            let mut errors = Vec::new();
            let mut round = 0u64;
            while !stop.load(Ordering::Relaxed) {
                round += 1;
                if !round.is_multiple_of(2) {
                    let out = std::process::Command::new(common::TIERCTL)
                        .arg("-c")
                        .arg(&config)
                        .args(["migrate", "--json"])
                        .stdin(std::process::Stdio::null())
                        .output()
                        .unwrap();
                    migrations.fetch_add(1, Ordering::Relaxed);
                    let report: serde_json::Value =
                        serde_json::from_slice(&out.stdout).unwrap_or_default();
                    if !out.status.success() {
                        errors.push(format!(
                            "tierctl migrate exited {}: {}{}",
                            out.status,
                            String::from_utf8_lossy(&out.stdout),
                            String::from_utf8_lossy(&out.stderr)
                        ));
                    }
                    released.fetch_add(report["released"].as_u64().unwrap_or(0), Ordering::Relaxed);
                    continue;
                }
                // A recall right after every migration, while files are
                // still cold.
                let req = Request::Recall {
                    paths: vec![PathBuf::from("s")],
                };
                match tierfs::control::request(&sock, &req, Duration::from_secs(300))
                    .map(|r| r.into_result())
                {
                    Ok(Ok(Reply::Recall(s))) => {
                        recalled.fetch_add(s.recalled, Ordering::Relaxed);
                    }
                    other => errors.push(format!("{req:?}: {other:?}")),
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
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for (k, v) in tallies.iter().flat_map(|t| &t.counts) {
        *counts.entry(k).or_default() += v;
    }
    let mismatches: Vec<&String> = tallies.iter().flat_map(|t| &t.mismatches).collect();
    let (released, recalled, migrations) = (
        released.load(Ordering::Relaxed),
        recalled.load(Ordering::Relaxed),
        migrations.load(Ordering::Relaxed),
    );
    // Recalls made by opening cold files (reads, writes), from the daemon log.
    let log = m.daemon_log();
    let recalls_on_open = log.lines().filter(|l| l.contains(" recalled ")).count() as u64;
    eprintln!(
        "stress seed {seed}: {ops} ops in {:?}, {migrations} `tierctl migrate` runs ({} exited \
         non-zero), {released} releases, {recalled} recalls by tierctl, {recalls_on_open} recalls \
         in all, {} mismatches; ran (on cold files) {counts:?}",
        started.elapsed(),
        tier_errors.len(),
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
    let never_cold: Vec<&str> = NEW_OPS
        .into_iter()
        .filter(|op| {
            counts
                .get(format!("{op}.cold").as_str())
                .copied()
                .unwrap_or(0)
                == 0
        })
        .collect();
    assert!(
        never_cold.is_empty(),
        "seed {seed}: never ran on a cold file: {never_cold:?} (ran {counts:?})"
    );
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
/// the child and decodes its tally (first line: ops; second: the counts as
/// `op=n` separated by spaces; then one mismatch per line) from a pipe.
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
                    let counts: Vec<String> =
                        t.counts.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    let mut r = format!("{}\n{}\n", t.ops, counts.join(" "));
                    for m in &t.mismatches {
                        r.push_str(&m.replace('\n', " "));
                        r.push('\n');
                    }
                    r
                }
                Err(_) => format!("0\n\nworker {w} panicked\n"),
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
        let counts = lines
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect();
        let mut mismatches: Vec<String> = lines.map(String::from).collect();
        if ops.is_none() || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
            mismatches.push(format!(
                "worker process {w} (pid {pid}) failed: status {status}"
            ));
        }
        Tally {
            ops: ops.unwrap_or(0),
            counts,
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
