//! End-to-end POSIX behaviour through a real tierfs mount.
//!
//! Almost every test runs the same closure twice, once on a plain directory
//! (ext4, the reference) and once through the mount, and asserts both give the
//! same transcript: return values and errnos, stat fields that must match
//! (type, mode, nlink, uid/gid, size, explicitly set times), contents. Then it
//! asserts the plain dir, the mount and the hot dir hold identical trees.
//! Values that cannot be equal across file systems (inode numbers, ctime) are
//! recorded as invariants instead ("same ino after rename: true").

use crate::common;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;

const MIB: usize = 1 << 20;
const GIB: u64 = 1 << 30;

/// Deterministic pseudo-random bytes.
fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| ((i.wrapping_add(seed).wrapping_mul(2_654_435_761)) >> 13) as u8)
        .collect()
}

fn set_mode(p: &Path, mode: u32) -> io::Result<()> {
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
}

fn ino(p: &Path) -> u64 {
    fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("lstat {}: {e}", p.display()))
        .ino()
}

/// Inode number, or None if lstat fails (for comparisons that must not panic).
fn ino_opt(p: &Path) -> Option<u64> {
    fs::symlink_metadata(p).ok().map(|m| m.ino())
}

fn mtime(p: &Path) -> (i64, i64) {
    let m = fs::symlink_metadata(p).unwrap();
    (m.mtime(), m.mtime_nsec())
}

fn ctime(p: &Path) -> (i64, i64) {
    let m = fs::symlink_metadata(p).unwrap();
    (m.ctime(), m.ctime_nsec())
}

/// Sleep long enough for the next timestamp to differ (ext4 uses a coarse clock).
fn tick() {
    sleep(Duration::from_millis(20));
}

fn now() -> (i64, i64) {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    (d.as_secs() as i64, d.subsec_nanos() as i64)
}

fn read_string(p: &Path) -> io::Result<String> {
    fs::read(p).map(|v| String::from_utf8_lossy(&v).into_owned())
}

// ---------------------------------------------------------------------------
// create / read / write / append / open flags
// ---------------------------------------------------------------------------

#[test]
fn create_write_read() {
    let m = TestMount::new();
    let t = m.twin("crw");
    t.run(|d, tr| {
        let p = d.join("f");
        tr.res("create", File::create(&p).map(|_| ()));
        tr.res("lstat new", lmeta(&p));
        tr.res("write", fs::write(&p, b"hello world"));
        tr.res("read", read_string(&p));
        let f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
        tr.res("pwrite mid", f.write_at(b"WORLD", 6));
        tr.res("pwrite past end", f.write_at(b"!", 20));
        tr.res("fstat size", f.metadata().map(|m| m.len()));
        tr.res("stat size", fs::metadata(&p).map(|m| m.len()));
        let mut buf = [0u8; 64];
        tr.res(
            "pread all",
            f.read_at(&mut buf, 0).map(|n| buf[..n].to_vec()),
        );
        tr.res("pread at eof", f.read_at(&mut buf, 21));
        tr.res("pread past eof", f.read_at(&mut buf, 100));
        drop(f);

        // 3 MiB + odd tail, written in odd-sized chunks, read back in other sizes.
        let big = d.join("big");
        let data = pattern(3 * MIB + 12_345, 7);
        let mut f = File::create(&big).unwrap();
        for c in data.chunks(100_003) {
            f.write_all(c).unwrap();
        }
        tr.res("big fstat before close", f.metadata().map(|m| m.len()));
        drop(f);
        tr.rec("big read == written", fs::read(&big).unwrap() == data);
        let mut f = File::open(&big).unwrap();
        let mut got = Vec::new();
        let mut chunk = vec![0u8; 65_537];
        loop {
            let n = f.read(&mut chunk).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&chunk[..n]);
        }
        tr.rec("big chunked read == written", got == data);

        // mtime/ctime and size must be fresh right after a write through
        // another descriptor (no stale attribute cache).
        let before = mtime(&p);
        let _ = fs::metadata(&p); // prime any attribute cache
        tick();
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        f.write_at(b"0123456789012345678901234567890", 0).unwrap();
        tr.rec(
            "stat size right after write",
            fs::metadata(&p).unwrap().len(),
        );
        tr.rec("mtime advanced after write", mtime(&p) > before);
        drop(f);

        // Reading a directory as a file, writing a read-only fd.
        tr.res("read dir", fs::read(d).map(|_| ()));
        let ro = File::open(&p).unwrap();
        tr.res("write on O_RDONLY fd", (&ro).write(b"x"));
        let wo = OpenOptions::new().write(true).open(&p).unwrap();
        tr.res("read on O_WRONLY fd", (&wo).read(&mut buf));
        tr.res("open missing", File::open(d.join("missing")).map(|_| ()));
        tr.res(
            "create under file",
            File::create(d.join("f/child")).map(|_| ()),
        );
        tr.res(
            "create name too long",
            File::create(d.join("n".repeat(256))).map(|_| ()),
        );
        tr.res(
            "create name 255",
            File::create(d.join("n".repeat(255))).map(|_| ()),
        );
        tr.res(
            "open dir O_WRONLY",
            OpenOptions::new().write(true).open(d).map(|_| ()),
        );
    });
}

#[test]
fn o_append() {
    let m = TestMount::new();
    let t = m.twin("append");
    t.run(|d, tr| {
        let p = d.join("log");
        fs::write(&p, b"start\n").unwrap();
        let mut a = OpenOptions::new().append(true).open(&p).unwrap();
        let mut b = OpenOptions::new().append(true).open(&p).unwrap();
        let w = OpenOptions::new().write(true).open(&p).unwrap();
        tr.res("a1", a.write(b"a1\n"));
        tr.res("b1", b.write(b"b1\n"));
        // Another (non-append) fd extends the file; appends must land after it.
        let len = fs::metadata(&p).unwrap().len();
        tr.res("w extends", w.write_at(b"XXXXXXXXXX\n", len));
        tr.res("a2", a.write(b"a2\n"));
        // On Linux pwrite() on an O_APPEND fd appends regardless of offset.
        tr.res("pwrite on append fd", a.write_at(b"p\n", 0));
        tr.res("b2", b.write(b"b2\n"));
        tr.res("position of a", a.stream_position());
        tr.res("content", read_string(&p));
        tr.res("size", fs::metadata(&p).map(|m| m.len()));
        // Many small appends from two fds alternating.
        for i in 0..200 {
            let f = if i % 2 == 0 { &mut a } else { &mut b };
            f.write_all(format!("{i:03}\n").as_bytes()).unwrap();
        }
        let text = read_string(&p).unwrap();
        let tail: Vec<&str> = text.lines().rev().take(200).collect();
        tr.rec(
            "200 alternating appends in order",
            tail.iter()
                .rev()
                .enumerate()
                .all(|(i, l)| *l == format!("{i:03}")),
        );
    });
}

#[test]
fn o_excl_and_o_trunc() {
    let m = TestMount::new();
    let t = m.twin("excl");
    t.run(|d, tr| {
        let p = d.join("f");
        let excl = |p: &Path| {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o640)
                .open(p)
                .map(|_| ())
        };
        tr.res("O_EXCL new", excl(&p));
        tr.res("lstat", lmeta(&p));
        tr.res("O_EXCL existing", excl(&p));
        fs::create_dir(d.join("dir")).unwrap();
        tr.res("O_EXCL on dir", excl(&d.join("dir")));
        symlink("nowhere", d.join("dangling")).unwrap();
        tr.res("O_EXCL on dangling symlink", excl(&d.join("dangling")));
        tr.res(
            "dangling still dangling",
            fs::metadata(d.join("dangling")).map(|_| ()),
        );
        symlink("f", d.join("link")).unwrap();
        tr.res("O_EXCL on symlink to file", excl(&d.join("link")));

        // O_TRUNC
        fs::write(&p, pattern(10_000, 1)).unwrap();
        let before = mtime(&p);
        tick();
        let f = OpenOptions::new().write(true).truncate(true).open(&p);
        tr.res("O_TRUNC open", f.as_ref().map(|_| ()));
        tr.res("size after O_TRUNC", fs::metadata(&p).map(|m| m.len()));
        tr.rec("mtime advanced by O_TRUNC", mtime(&p) > before);
        tr.res("write after trunc", f.unwrap().write_all(b"new"));
        tr.res("content", read_string(&p));
        // O_TRUNC on an empty file and via O_RDWR|O_CREAT on an existing file.
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&p);
        tr.res("O_CREAT|O_TRUNC existing", f.map(|_| ()));
        tr.res("size", fs::metadata(&p).map(|m| m.len()));
        // O_TRUNC with O_RDONLY is unspecified but Linux truncates.
        fs::write(&p, b"abc").unwrap();
        let f = open_raw(&p, libc::O_RDONLY | libc::O_TRUNC, 0);
        tr.res("O_RDONLY|O_TRUNC", f.map(|_| ()));
        tr.res(
            "size after O_RDONLY|O_TRUNC",
            fs::metadata(&p).map(|m| m.len()),
        );
        // O_DIRECTORY on a file, O_NOFOLLOW on a symlink
        tr.res(
            "O_DIRECTORY on file",
            open_raw(&p, libc::O_RDONLY | libc::O_DIRECTORY, 0).map(|_| ()),
        );
        tr.res(
            "O_NOFOLLOW on symlink",
            open_raw(&d.join("link"), libc::O_RDONLY | libc::O_NOFOLLOW, 0).map(|_| ()),
        );
        tr.res(
            "O_PATH|O_NOFOLLOW on symlink",
            open_raw(&d.join("link"), libc::O_PATH | libc::O_NOFOLLOW, 0).map(|_| ()),
        );
    });
}

// ---------------------------------------------------------------------------
// truncate
// ---------------------------------------------------------------------------

fn truncate_path(p: &Path, len: i64) -> io::Result<()> {
    let c = cpath(p);
    // SAFETY: valid path.
    cvt(unsafe { libc::truncate(c.as_ptr(), len) }).map(|_| ())
}

#[test]
fn truncate_grow_shrink() {
    let m = TestMount::new();
    let t = m.twin("trunc");
    t.run(|d, tr| {
        let p = d.join("f");
        fs::write(&p, pattern(100_000, 3)).unwrap();
        tr.res("truncate shrink", truncate_path(&p, 1000));
        tr.res("size", fs::metadata(&p).map(|m| m.len()));
        tr.res(
            "content",
            fs::read(&p).map(|v| v == pattern(100_000, 3)[..1000]),
        );
        tr.res("truncate grow", truncate_path(&p, 3 * MIB as i64 + 7));
        tr.res("size", fs::metadata(&p).map(|m| m.len()));
        let v = fs::read(&p).unwrap();
        tr.rec(
            "grown tail is zero",
            v.len() == 3 * MIB + 7 && v[1000..].iter().all(|&b| b == 0),
        );
        tr.rec("head kept", v[..1000] == pattern(100_000, 3)[..1000]);
        tr.res("truncate negative", truncate_path(&p, -1));
        tr.res("truncate dir", truncate_path(d, 0));
        tr.res("truncate missing", truncate_path(&d.join("nope"), 0));

        // ftruncate through an open fd, then keep writing at the old offset.
        let mut f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
        f.seek(SeekFrom::Start(500)).unwrap();
        tr.res("ftruncate shrink", f.set_len(10));
        tr.res("fstat size", f.metadata().map(|m| m.len()));
        tr.res("stat size", fs::metadata(&p).map(|m| m.len()));
        tr.res("write at old offset", f.write(b"END"));
        tr.res("size after write", fs::metadata(&p).map(|m| m.len()));
        let v = fs::read(&p).unwrap();
        tr.rec("gap is zero", v[10..500].iter().all(|&b| b == 0));
        tr.res("ftruncate grow", f.set_len(2 * MIB as u64));
        tr.res("stat size", fs::metadata(&p).map(|m| m.len()));
        tr.res("ftruncate to 0", f.set_len(0));
        tr.res("stat size", fs::metadata(&p).map(|m| m.len()));
        let ro = File::open(&p).unwrap();
        tr.res("ftruncate O_RDONLY fd", ro.set_len(5));

        // mtime changes on truncate
        fs::write(&p, b"0123456789").unwrap();
        let before = mtime(&p);
        tick();
        truncate_path(&p, 4).unwrap();
        tr.rec("mtime advanced by truncate", mtime(&p) > before);
        tr.res("content", read_string(&p));
    });
}

// ---------------------------------------------------------------------------
// rename
// ---------------------------------------------------------------------------

#[test]
fn rename_file() {
    let m = TestMount::new();
    let t = m.twin("rename_file");
    t.run(|d, tr| {
        let a = d.join("a");
        fs::write(&a, b"content a").unwrap();
        fs::create_dir(d.join("sub")).unwrap();
        let i0 = ino(&a);
        tr.res("rename a->b", fs::rename(&a, d.join("b")));
        tr.res("stat a", lmeta(&a));
        tr.res("stat b", lmeta(&d.join("b")));
        tr.rec("ino kept", ino(&d.join("b")) == i0);
        tr.res("read b", read_string(&d.join("b")));
        tr.res("rename b->sub/c", fs::rename(d.join("b"), d.join("sub/c")));
        tr.rec("ino kept across dirs", ino(&d.join("sub/c")) == i0);
        tr.res("names", names(d));
        tr.res("names sub", names(&d.join("sub")));
        tr.res(
            "rename to itself",
            fs::rename(d.join("sub/c"), d.join("sub/c")),
        );
        tr.res("rename missing", fs::rename(d.join("nope"), d.join("x")));
        tr.res(
            "rename into missing dir",
            fs::rename(d.join("sub/c"), d.join("nodir/c")),
        );
        tr.res(
            "rename file over dir",
            fs::rename(d.join("sub/c"), d.join("sub")),
        );
        let before = ctime(&d.join("sub/c"));
        tick();
        fs::rename(d.join("sub/c"), d.join("c")).unwrap();
        tr.rec("ctime updated by rename", ctime(&d.join("c")) > before);
        // An open fd follows the file across renames.
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(d.join("c"))
            .unwrap();
        fs::rename(d.join("c"), d.join("moved")).unwrap();
        tr.res("write via fd after rename", f.write_all(b"!"));
        let mut s = String::new();
        f.seek(SeekFrom::Start(0)).unwrap();
        tr.res(
            "read via fd after rename",
            f.read_to_string(&mut s).map(|_| s.clone()),
        );
        tr.res("read new name", read_string(&d.join("moved")));
        // Symlink rename renames the link, not the target.
        symlink("moved", d.join("ln")).unwrap();
        tr.res("rename symlink", fs::rename(d.join("ln"), d.join("ln2")));
        tr.res("readlink", fs::read_link(d.join("ln2")));
        tr.res("lstat ln2", lmeta(&d.join("ln2")));
    });
}

#[test]
fn rename_over_existing_file() {
    let m = TestMount::new();
    let t = m.twin("rename_over");
    t.run(|d, tr| {
        let (a, b) = (d.join("a"), d.join("b"));
        fs::write(&a, b"new content").unwrap();
        fs::write(&b, b"old").unwrap();
        let ia = ino(&a);
        // Keep the victim open: its data must stay readable after replacement.
        let mut victim = File::open(&b).unwrap();
        tr.res("rename a over b", fs::rename(&a, &b));
        tr.res("a gone", lmeta(&a));
        tr.res("b", lmeta(&b));
        tr.rec("b has a's ino", ino(&b) == ia);
        tr.res("read b", read_string(&b));
        let mut s = String::new();
        tr.res(
            "read replaced via open fd",
            victim.read_to_string(&mut s).map(|_| s.clone()),
        );
        tr.res("fstat replaced nlink", victim.metadata().map(|m| m.nlink()));
        tr.res("names", names(d));
        // Replacing one of two hard links: the other keeps the data and nlink drops.
        fs::write(d.join("x"), b"x").unwrap();
        fs::hard_link(d.join("x"), d.join("x2")).unwrap();
        fs::write(d.join("y"), b"y").unwrap();
        tr.res("nlink x before", lmeta(&d.join("x")).map(|m| m.nlink));
        tr.res("rename y over x2", fs::rename(d.join("y"), d.join("x2")));
        tr.res("nlink x after", lmeta(&d.join("x")).map(|m| m.nlink));
        tr.res("read x", read_string(&d.join("x")));
        tr.res("read x2", read_string(&d.join("x2")));
        // Renaming a hard link onto its sibling is a no-op that succeeds.
        fs::hard_link(d.join("x"), d.join("x3")).unwrap();
        tr.res(
            "rename link onto sibling",
            fs::rename(d.join("x"), d.join("x3")),
        );
        tr.res("names", names(d));
        tr.res("nlink x3", lmeta(&d.join("x3")).map(|m| m.nlink));
    });
}

#[test]
fn rename_directory() {
    let m = TestMount::new();
    let t = m.twin("rename_dir");
    t.run(|d, tr| {
        fs::create_dir_all(d.join("p1/src/inner")).unwrap();
        fs::create_dir(d.join("p2")).unwrap();
        fs::write(d.join("p1/src/file"), b"file").unwrap();
        fs::write(d.join("p1/src/inner/deep"), b"deep").unwrap();
        let i0 = ino(&d.join("p1/src"));
        tr.res("nlink p1 before", lmeta(&d.join("p1")).map(|m| m.nlink));
        tr.res("nlink p2 before", lmeta(&d.join("p2")).map(|m| m.nlink));
        tr.res(
            "rename dir across parents",
            fs::rename(d.join("p1/src"), d.join("p2/dst")),
        );
        // Parent link counts change immediately (".." moved).
        tr.res("nlink p1 after", lmeta(&d.join("p1")).map(|m| m.nlink));
        tr.res("nlink p2 after", lmeta(&d.join("p2")).map(|m| m.nlink));
        tr.rec("ino kept", ino(&d.join("p2/dst")) == i0);
        tr.rec(
            "dst/.. is p2",
            ino(&d.join("p2/dst/..")) == ino(&d.join("p2")),
        );
        tr.res("old path", lmeta(&d.join("p1/src")));
        tr.res("children", names(&d.join("p2/dst")));
        tr.res("deep child", read_string(&d.join("p2/dst/inner/deep")));
        tr.res("old child path", read_string(&d.join("p1/src/inner/deep")));
        // Errors
        tr.res(
            "rename dir into own subdir",
            fs::rename(d.join("p2/dst"), d.join("p2/dst/inner/x")),
        );
        fs::write(d.join("afile"), b"").unwrap();
        tr.res(
            "rename dir over file",
            fs::rename(d.join("p2/dst"), d.join("afile")),
        );
        tr.res("rename . ", fs::rename(d.join("p2/dst/."), d.join("p2/zz")));
        // Rename within same parent, then a child file is reachable by new path
        tr.res(
            "rename dir same parent",
            fs::rename(d.join("p2/dst"), d.join("p2/dst2")),
        );
        tr.res("child via new path", read_string(&d.join("p2/dst2/file")));
        tr.res("nlink p2 final", lmeta(&d.join("p2")).map(|m| m.nlink));
    });
}

#[test]
fn rename_dir_over_empty_and_nonempty_dir() {
    let m = TestMount::new();
    let t = m.twin("rename_dir_over");
    t.run(|d, tr| {
        fs::create_dir(d.join("src")).unwrap();
        fs::write(d.join("src/f"), b"f").unwrap();
        fs::create_dir(d.join("empty")).unwrap();
        fs::create_dir(d.join("full")).unwrap();
        fs::write(d.join("full/g"), b"g").unwrap();
        let i0 = ino(&d.join("src"));
        tr.res("nlink parent", lmeta(d).map(|m| m.nlink));
        tr.res(
            "rename over non-empty dir",
            fs::rename(d.join("src"), d.join("full")),
        );
        tr.res("full untouched", names(&d.join("full")));
        tr.res(
            "rename over empty dir",
            fs::rename(d.join("src"), d.join("empty")),
        );
        tr.rec("empty now has src's ino", ino(&d.join("empty")) == i0);
        tr.res("names", names(d));
        tr.res("content", names(&d.join("empty")));
        tr.res("nlink parent after", lmeta(d).map(|m| m.nlink));
        tr.res("rename file over empty dir", {
            fs::create_dir(d.join("e2")).unwrap();
            fs::rename(d.join("empty/f"), d.join("e2"))
        });
    });
}

const RENAME_NOREPLACE: u32 = 1;
const RENAME_EXCHANGE: u32 = 2;

#[test]
fn renameat2_noreplace_and_exchange() {
    let m = TestMount::new();
    let t = m.twin("renameat2");
    t.run(|d, tr| {
        let (a, b, c) = (d.join("a"), d.join("b"), d.join("c"));
        fs::write(&a, b"AAA").unwrap();
        fs::write(&b, b"BB").unwrap();
        tr.res(
            "NOREPLACE onto existing",
            renameat2(&a, &b, RENAME_NOREPLACE),
        );
        tr.res("b unchanged", read_string(&b));
        tr.res("NOREPLACE onto new", renameat2(&a, &c, RENAME_NOREPLACE));
        tr.res("names", names(d));
        let (ib, ic) = (ino_opt(&b), ino_opt(&c));
        tr.res("EXCHANGE b<->c", renameat2(&b, &c, RENAME_EXCHANGE));
        tr.res("b", read_string(&b));
        tr.res("c", read_string(&c));
        tr.rec("inos swapped", ino_opt(&b) == ic && ino_opt(&c) == ib);
        tr.res("stat b", lmeta(&b));
        tr.res("stat c", lmeta(&c));
        tr.res(
            "EXCHANGE with missing",
            renameat2(&b, &d.join("missing"), RENAME_EXCHANGE),
        );
        tr.res(
            "EXCHANGE|NOREPLACE",
            renameat2(&b, &c, RENAME_EXCHANGE | RENAME_NOREPLACE),
        );
        // Exchange a file and a directory across parents.
        fs::create_dir_all(d.join("dir/sub")).unwrap();
        fs::create_dir(d.join("other")).unwrap();
        fs::write(d.join("other/file"), b"file").unwrap();
        tr.res(
            "EXCHANGE dir<->file",
            renameat2(&d.join("dir"), &d.join("other/file"), RENAME_EXCHANGE),
        );
        tr.res("dir is now file", lmeta(&d.join("dir")));
        tr.res("other/file is now dir", names(&d.join("other/file")));
        tr.res("nlink d", lmeta(d).map(|m| m.nlink));
        tr.res("nlink other", lmeta(&d.join("other")).map(|m| m.nlink));
    });
}

// ---------------------------------------------------------------------------
// unlink / rmdir / mkdir
// ---------------------------------------------------------------------------

#[test]
fn unlink_and_rmdir() {
    let m = TestMount::new();
    let t = m.twin("unlink");
    t.run(|d, tr| {
        fs::create_dir(d.join("full")).unwrap();
        fs::write(d.join("full/f"), b"x").unwrap();
        fs::create_dir(d.join("empty")).unwrap();
        fs::write(d.join("file"), b"data").unwrap();
        tr.res("nlink d", lmeta(d).map(|m| m.nlink));
        tr.res("rmdir non-empty", fs::remove_dir(d.join("full")));
        tr.res("rmdir file", fs::remove_dir(d.join("file")));
        tr.res("unlink dir", fs::remove_file(d.join("empty")));
        tr.res("unlink missing", fs::remove_file(d.join("missing")));
        tr.res("rmdir missing", fs::remove_dir(d.join("missing")));
        tr.res("rmdir .", fs::remove_dir(d.join("empty/.")));
        tr.res("rmdir empty", fs::remove_dir(d.join("empty")));
        tr.res("nlink d after rmdir", lmeta(d).map(|m| m.nlink));
        tr.res("stat removed dir", lmeta(&d.join("empty")));
        tr.res("mkdir same name again", fs::create_dir(d.join("empty")));
        tr.res("lstat", lmeta(&d.join("empty")));

        // An unlinked but open file stays readable/writable via its fd.
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(d.join("file"))
            .unwrap();
        let before = ctime(&d.join("file"));
        tr.res("unlink open file", fs::remove_file(d.join("file")));
        tr.res("stat unlinked", lmeta(&d.join("file")));
        tr.res("fstat nlink after unlink", f.metadata().map(|m| m.nlink()));
        tr.res("fstat size after unlink", f.metadata().map(|m| m.len()));
        tr.res("write after unlink", f.write_all(b"MORE"));
        f.seek(SeekFrom::Start(0)).unwrap();
        let mut s = String::new();
        tr.res(
            "read after unlink",
            f.read_to_string(&mut s).map(|_| s.clone()),
        );
        tr.res("fstat size after write", f.metadata().map(|m| m.len()));
        let _ = before;
        tr.res("recreate same name", fs::write(d.join("file"), b"fresh"));
        tr.res("new content", read_string(&d.join("file")));
        f.seek(SeekFrom::Start(0)).unwrap();
        let mut s = String::new();
        tr.res(
            "old fd still sees old data",
            f.read_to_string(&mut s).map(|_| s.clone()),
        );

        // Emptying a directory then rmdir.
        tr.res("unlink full/f", fs::remove_file(d.join("full/f")));
        tr.res("rmdir now-empty", fs::remove_dir(d.join("full")));
        tr.res("names", names(d));
        // Unlinking a symlink removes the link only.
        fs::write(d.join("target"), b"t").unwrap();
        symlink("target", d.join("sl")).unwrap();
        tr.res("unlink symlink", fs::remove_file(d.join("sl")));
        tr.res("target kept", read_string(&d.join("target")));
        // ctime of a multiply linked file changes on unlink of one link.
        fs::hard_link(d.join("target"), d.join("target2")).unwrap();
        let c0 = ctime(&d.join("target"));
        tick();
        fs::remove_file(d.join("target2")).unwrap();
        tr.rec(
            "ctime of remaining link updated",
            ctime(&d.join("target")) > c0,
        );
        tr.res("nlink remaining", lmeta(&d.join("target")).map(|m| m.nlink));
    });
}

#[test]
fn mkdir_modes_and_errors() {
    let m = TestMount::new();
    let t = m.twin("mkdir");
    t.run(|d, tr| {
        use std::os::unix::fs::DirBuilderExt;
        let mk = |p: &Path, mode: u32| fs::DirBuilder::new().mode(mode).create(p);
        tr.res("mkdir 0750", mk(&d.join("a"), 0o750));
        tr.res("lstat a", lmeta(&d.join("a")));
        tr.res("mkdir 0777 (umask applies)", mk(&d.join("b"), 0o777));
        tr.res("lstat b", lmeta(&d.join("b")));
        tr.res("mkdir 01777 sticky", mk(&d.join("sticky"), 0o1777));
        tr.res("lstat sticky", lmeta(&d.join("sticky")));
        tr.res("mkdir existing", mk(&d.join("a"), 0o755));
        tr.res("mkdir missing parent", mk(&d.join("x/y"), 0o755));
        fs::write(d.join("file"), b"").unwrap();
        tr.res("mkdir under file", mk(&d.join("file/y"), 0o755));
        tr.res("mkdir over file", mk(&d.join("file"), 0o755));
        tr.res("mkdir name too long", mk(&d.join("d".repeat(256)), 0o755));
        tr.res("nlink d", lmeta(d).map(|m| m.nlink));
        tr.res("mkdir nested", fs::create_dir_all(d.join("n1/n2/n3/n4")));
        tr.res("nlink n1", lmeta(&d.join("n1")).map(|m| m.nlink));
        tr.res("nlink n4", lmeta(&d.join("n1/n2/n3/n4")).map(|m| m.nlink));
        // mtime of the parent advances when an entry is added.
        let before = mtime(d);
        tick();
        mk(&d.join("c"), 0o700).unwrap();
        tr.rec("parent mtime advanced", mtime(d) > before);
        tr.res("names", names(d));
    });
}

#[test]
fn setgid_directory_inheritance() {
    let m = TestMount::new();
    let t = m.twin("setgid");
    t.run(|d, tr| {
        let g = d.join("g");
        fs::create_dir(&g).unwrap();
        std::os::unix::fs::chown(&g, None, Some(65534)).unwrap();
        set_mode(&g, 0o2775).unwrap();
        tr.res("lstat g", lmeta(&g));
        fs::write(g.join("file"), b"x").unwrap();
        tr.res("file inherits group", lmeta(&g.join("file")));
        fs::create_dir(g.join("sub")).unwrap();
        tr.res("subdir inherits group and setgid", lmeta(&g.join("sub")));
        symlink("file", g.join("ln")).unwrap();
        tr.res("symlink group", lmeta(&g.join("ln")).map(|m| m.gid));
        mkfifo(&g.join("fifo"), 0o644).unwrap();
        tr.res("fifo group", lmeta(&g.join("fifo")).map(|m| m.gid));
    });
}

// ---------------------------------------------------------------------------
// symlinks, hard links, special files
// ---------------------------------------------------------------------------

#[test]
fn symlink_and_readlink() {
    let m = TestMount::new();
    let t = m.twin("symlink");
    t.run(|d, tr| {
        fs::write(d.join("target"), b"tgt").unwrap();
        tr.res("symlink relative", symlink("target", d.join("rel")));
        tr.res("readlink", fs::read_link(d.join("rel")));
        tr.res("lstat", lmeta(&d.join("rel")));
        tr.res("stat follows", meta(&d.join("rel")));
        tr.res("read through", read_string(&d.join("rel")));
        tr.res(
            "symlink dangling",
            symlink("does/not/exist", d.join("dang")),
        );
        tr.res("stat dangling", meta(&d.join("dang")));
        tr.res("lstat dangling", lmeta(&d.join("dang")));
        tr.res("readlink dangling", fs::read_link(d.join("dang")));
        let long = "x/".repeat(1000) + "end";
        tr.res("symlink long target", symlink(&long, d.join("long")));
        tr.res(
            "readlink long",
            fs::read_link(d.join("long")).map(|p| p.as_os_str().len()),
        );
        tr.res("lstat long size", lmeta(&d.join("long")).map(|m| m.size));
        tr.res("symlink existing", symlink("target", d.join("rel")));
        tr.res("readlink on file", fs::read_link(d.join("target")));
        tr.res("readlink on dir", fs::read_link(d));
        tr.res("readlink missing", fs::read_link(d.join("nope")));
        symlink("loop2", d.join("loop1")).unwrap();
        symlink("loop1", d.join("loop2")).unwrap();
        tr.res("stat loop", meta(&d.join("loop1")));
        tr.res("open loop", File::open(d.join("loop1")).map(|_| ()));
        fs::create_dir(d.join("dir")).unwrap();
        fs::write(d.join("dir/inner"), b"inner").unwrap();
        tr.res("symlink to dir", symlink("dir", d.join("dirlink")));
        tr.res(
            "read via dir symlink",
            read_string(&d.join("dirlink/inner")),
        );
        tr.res("names via dir symlink", names(&d.join("dirlink")));
        tr.res("rmdir on dir symlink", fs::remove_dir(d.join("dirlink")));
        tr.res(
            "symlink with unicode",
            symlink("ünïcødé target", d.join("ü")),
        );
        tr.res("readlink unicode", fs::read_link(d.join("ü")));
        tr.res(
            "lchown symlink",
            std::os::unix::fs::lchown(d.join("rel"), Some(65534), Some(65534)),
        );
        tr.res("lstat after lchown", lmeta(&d.join("rel")));
        tr.res("target owner unchanged", lmeta(&d.join("target")));
    });
}

#[test]
fn hard_links() {
    let m = TestMount::new();
    let t = m.twin("hardlink");
    t.run(|d, tr| {
        let (a, b, c) = (d.join("a"), d.join("b"), d.join("c"));
        fs::write(&a, b"shared").unwrap();
        tr.res("nlink a", lmeta(&a).map(|m| m.nlink));
        let c0 = ctime(&a);
        tick();
        tr.res("link a b", fs::hard_link(&a, &b));
        // Seen immediately through both names (no stale attributes).
        tr.res("nlink a after link", lmeta(&a).map(|m| m.nlink));
        tr.res("nlink b after link", lmeta(&b).map(|m| m.nlink));
        tr.rec("same ino", ino(&a) == ino(&b));
        tr.rec("ctime of a updated by link", ctime(&a) > c0);
        tr.res("link b c", fs::hard_link(&b, &c));
        tr.rec(
            "nlink a/b/c",
            [&a, &b, &c].map(|p| lmeta(p).map(|m| m.nlink).ok()),
        );
        // A write through one name is seen through the others.
        let f = OpenOptions::new().write(true).open(&b).unwrap();
        f.write_at(b"SHARED", 0).unwrap();
        drop(f);
        tr.res("read c", read_string(&c));
        set_mode(&c, 0o600).unwrap();
        tr.res(
            "mode via a after chmod c",
            lmeta(&a).map(|m| format!("{:04o}", m.perm)),
        );
        tr.res("unlink a", fs::remove_file(&a));
        tr.res("nlink b after unlink", lmeta(&b).map(|m| m.nlink));
        tr.res("nlink c after unlink", lmeta(&c).map(|m| m.nlink));
        tr.res("unlink b", fs::remove_file(&b));
        tr.res("nlink c", lmeta(&c).map(|m| m.nlink));
        tr.res("read c", read_string(&c));
        // After the kernel forgets the inode, a new lookup gives the same ino.
        fs::hard_link(&c, &a).unwrap();
        drop_kernel_caches();
        tr.rec("same ino after cache drop", ino(&a) == ino(&c));
        tr.res("nlink after cache drop", lmeta(&c).map(|m| m.nlink));
        // Errors
        fs::create_dir(d.join("dir")).unwrap();
        tr.res(
            "link to dir",
            fs::hard_link(d.join("dir"), d.join("dirlink")),
        );
        tr.res("link onto existing", fs::hard_link(&c, &a));
        tr.res(
            "link missing",
            fs::hard_link(d.join("missing"), d.join("m2")),
        );
        tr.res(
            "link into missing dir",
            fs::hard_link(&c, d.join("nodir/x")),
        );
        // Link into a subdirectory and to a symlink (link to the symlink itself).
        tr.res("link into subdir", fs::hard_link(&c, d.join("dir/c")));
        tr.res("nlink", lmeta(&c).map(|m| m.nlink));
        symlink("c", d.join("sl")).unwrap();
        let r = {
            let (x, y) = (cpath(&d.join("sl")), cpath(&d.join("sl2")));
            // SAFETY: valid paths; flags 0 = do not follow the symlink.
            cvt(unsafe { libc::linkat(libc::AT_FDCWD, x.as_ptr(), libc::AT_FDCWD, y.as_ptr(), 0) })
        };
        tr.res("link to symlink", r.map(|_| ()));
        tr.res("lstat sl2", lmeta(&d.join("sl2")));
        tr.res("nlink sl", lmeta(&d.join("sl")).map(|m| m.nlink));
    });
}

#[test]
fn special_files_fifo_socket_device() {
    let m = TestMount::new();
    let t = m.twin("special");
    t.run(|d, tr| {
        tr.res("mkfifo", mkfifo(&d.join("fifo"), 0o640));
        tr.res("lstat fifo", lmeta(&d.join("fifo")));
        tr.res("mkfifo existing", mkfifo(&d.join("fifo"), 0o640));
        tr.res(
            "mknod socket",
            mknod(&d.join("sock"), libc::S_IFSOCK | 0o600, 0),
        );
        tr.res("lstat sock", lmeta(&d.join("sock")));
        let dev = libc::makedev(1, 3);
        tr.res(
            "mknod chr 1,3",
            mknod(&d.join("null"), libc::S_IFCHR | 0o666, dev),
        );
        tr.res("lstat chr", lmeta(&d.join("null")));
        tr.res(
            "rdev",
            fs::symlink_metadata(d.join("null")).map(|m| m.rdev()),
        );
        tr.res(
            "mknod regular",
            mknod(&d.join("reg"), libc::S_IFREG | 0o600, 0),
        );
        tr.res("lstat reg", lmeta(&d.join("reg")));
        // A fifo through the mount works as a fifo (non-blocking open for read).
        let f = open_raw(&d.join("fifo"), libc::O_RDONLY | libc::O_NONBLOCK, 0);
        tr.res("open fifo O_NONBLOCK", f.as_ref().map(|_| ()));
        let w = open_raw(&d.join("fifo"), libc::O_WRONLY | libc::O_NONBLOCK, 0);
        tr.res("open fifo writer", w.as_ref().map(|_| ()));
        if let (Ok(mut r), Ok(mut w)) = (f, w) {
            tr.res("fifo write", w.write(b"ping"));
            let mut buf = [0u8; 8];
            tr.res("fifo read", r.read(&mut buf).map(|n| buf[..n].to_vec()));
        }
        tr.res("rename fifo", fs::rename(d.join("fifo"), d.join("fifo2")));
        tr.res("link fifo", fs::hard_link(d.join("fifo2"), d.join("fifo3")));
        tr.res("nlink fifo", lmeta(&d.join("fifo2")).map(|m| m.nlink));
    });
}

// ---------------------------------------------------------------------------
// chmod / chown / utimens
// ---------------------------------------------------------------------------

#[test]
fn chmod_chown_utimens() {
    let m = TestMount::new();
    let t = m.twin("attrs");
    t.run(|d, tr| {
        let p = d.join("f");
        fs::write(&p, b"x").unwrap();
        for mode in [0o000, 0o644, 0o4755, 0o2755, 0o1777, 0o7777, 0o600] {
            let c0 = ctime(&p);
            tick();
            tr.res(&format!("chmod {mode:o}"), set_mode(&p, mode));
            tr.res("lstat", lmeta(&p));
            tr.rec("ctime advanced", ctime(&p) > c0);
        }
        tr.res("chmod missing", set_mode(&d.join("nope"), 0o644));
        let dir = d.join("dir");
        fs::create_dir(&dir).unwrap();
        tr.res("chmod dir 0700", set_mode(&dir, 0o700));
        tr.res("lstat dir", lmeta(&dir));
        // fchmod through an open fd
        let f = File::open(&p).unwrap();
        tr.res(
            "fchmod 0640",
            f.set_permissions(fs::Permissions::from_mode(0o640)),
        );
        tr.res("lstat", lmeta(&p));

        use std::os::unix::fs::{chown, fchown};
        tr.res("chown 65534:65534", chown(&p, Some(65534), Some(65534)));
        tr.res("lstat", lmeta(&p));
        tr.res("chown gid only", chown(&p, None, Some(1)));
        tr.res("lstat", lmeta(&p));
        tr.res("fchown uid only", fchown(&f, Some(1), None));
        tr.res("lstat", lmeta(&p));
        // chown as root clears setuid/setgid on a regular file.
        set_mode(&p, 0o6755).unwrap();
        tr.res("chown clears suid", chown(&p, Some(0), Some(0)));
        tr.res("lstat", lmeta(&p));
        tr.res("chown -1 -1", chown(&p, None, None));
        tr.res("chown missing", chown(d.join("nope"), Some(0), None));

        // utimensat with explicit times, UTIME_OMIT, UTIME_NOW
        let times_of = |p: &Path| {
            let m = fs::symlink_metadata(p).unwrap();
            ((m.atime(), m.atime_nsec()), (m.mtime(), m.mtime_nsec()))
        };
        tr.res(
            "utimens explicit",
            utimensat(
                &p,
                TimeSpec::At(1_000_000_000, 123_456_789),
                TimeSpec::At(1_500_000_000, 987_654_321),
                0,
            ),
        );
        tr.rec("times", times_of(&p));
        tr.res(
            "utimens omit atime",
            utimensat(&p, TimeSpec::Omit, TimeSpec::At(1_600_000_000, 5), 0),
        );
        tr.rec("times", times_of(&p));
        tr.res(
            "utimens omit mtime",
            utimensat(&p, TimeSpec::At(1_700_000_000, 7), TimeSpec::Omit, 0),
        );
        tr.rec("times", times_of(&p));
        let c0 = ctime(&p);
        tick();
        tr.res(
            "utimens omit both",
            utimensat(&p, TimeSpec::Omit, TimeSpec::Omit, 0),
        );
        tr.rec("times", times_of(&p));
        tr.rec("omit both leaves ctime", ctime(&p) == c0);
        let t0 = now();
        tr.res(
            "utimens now atime, omit mtime",
            utimensat(&p, TimeSpec::Now, TimeSpec::Omit, 0),
        );
        let (at, mt) = times_of(&p);
        let t1 = now();
        tr.rec("atime is now", at >= (t0.0, 0) && at <= t1);
        tr.rec("mtime kept", mt);
        tr.res(
            "utimens now both",
            utimensat(&p, TimeSpec::Now, TimeSpec::Now, 0),
        );
        let (at, mt) = times_of(&p);
        tr.rec(
            "both now",
            at >= (t0.0, 0) && mt >= (t0.0, 0) && mt <= now(),
        );
        // Pre-epoch and far-future times.
        tr.res(
            "utimens pre-epoch",
            utimensat(&p, TimeSpec::At(-1000, 0), TimeSpec::At(-86_400, 500), 0),
        );
        tr.rec("times", times_of(&p));
        tr.res(
            "utimens 2100",
            utimensat(
                &p,
                TimeSpec::At(4_102_444_800, 1),
                TimeSpec::At(4_102_444_800, 2),
                0,
            ),
        );
        tr.rec("times", times_of(&p));
        tr.res(
            "utimens bad nsec",
            utimensat(&p, TimeSpec::At(0, 1_000_000_000), TimeSpec::Omit, 0),
        );
        // futimens via fd
        tr.res(
            "futimens",
            futimens(
                &f,
                TimeSpec::At(1_234_567_890, 0),
                TimeSpec::At(1_234_567_891, 0),
            ),
        );
        tr.rec("times", times_of(&p));
        // On a symlink with AT_SYMLINK_NOFOLLOW: the link's times change, not the target's.
        symlink("f", d.join("ln")).unwrap();
        tr.res(
            "utimens nofollow",
            utimensat(
                &d.join("ln"),
                TimeSpec::At(1_111_111_111, 0),
                TimeSpec::At(1_222_222_222, 0),
                libc::AT_SYMLINK_NOFOLLOW,
            ),
        );
        tr.rec("link times", times_of(&d.join("ln")));
        tr.rec("target times", times_of(&p));
        // On a directory
        tr.res(
            "utimens dir",
            utimensat(
                &dir,
                TimeSpec::At(1_300_000_000, 42),
                TimeSpec::At(1_300_000_001, 43),
                0,
            ),
        );
        tr.rec("dir times", times_of(&dir));
        // Explicit mtime survives a later read (atime may change, mtime may not).
        let _ = fs::read(&p).unwrap();
        tr.rec("mtime after read", times_of(&p).1);
    });
}

// ---------------------------------------------------------------------------
// xattrs
// ---------------------------------------------------------------------------

#[test]
fn xattrs() {
    let m = TestMount::new();
    let t = m.twin("xattr");
    t.run(|d, tr| {
        let p = d.join("f");
        fs::write(&p, b"x").unwrap();
        tr.res("list empty", listxattr(&p, false));
        tr.res("get missing", getxattr(&p, "user.missing"));
        tr.res("remove missing", removexattr(&p, "user.missing"));
        tr.res("set user.a", setxattr(&p, "user.a", b"alpha", 0, false));
        tr.res("get user.a", getxattr(&p, "user.a"));
        tr.res("size query", getxattr_sized(&p, "user.a", 0));
        tr.res("buffer too small", getxattr_sized(&p, "user.a", 2));
        tr.res("set empty value", setxattr(&p, "user.empty", b"", 0, false));
        tr.res("get empty value", getxattr(&p, "user.empty"));
        let bin: Vec<u8> = (0..=255u8).collect();
        tr.res("set binary", setxattr(&p, "user.bin", &bin, 0, false));
        tr.res("get binary", getxattr(&p, "user.bin").map(|v| v == bin));
        let big = pattern(4000, 9);
        tr.res("set 4000 bytes", setxattr(&p, "user.big", &big, 0, false));
        tr.res("get 4000 bytes", getxattr(&p, "user.big").map(|v| v == big));
        tr.res(
            "XATTR_CREATE existing",
            setxattr(&p, "user.a", b"x", libc::XATTR_CREATE, false),
        );
        tr.res(
            "XATTR_CREATE new",
            setxattr(&p, "user.b", b"beta", libc::XATTR_CREATE, false),
        );
        tr.res(
            "XATTR_REPLACE missing",
            setxattr(&p, "user.c", b"x", libc::XATTR_REPLACE, false),
        );
        tr.res(
            "XATTR_REPLACE existing",
            setxattr(&p, "user.a", b"ALPHA2", libc::XATTR_REPLACE, false),
        );
        tr.res("get user.a", getxattr(&p, "user.a"));
        tr.res("list", listxattr(&p, false));
        tr.res("list size query", listxattr_sized(&p, 0));
        tr.res("list buffer too small", listxattr_sized(&p, 3));
        tr.res("remove user.b", removexattr(&p, "user.b"));
        tr.res("get removed", getxattr(&p, "user.b"));
        tr.res("list", listxattr(&p, false));
        tr.res(
            "name too long",
            setxattr(&p, &format!("user.{}", "n".repeat(300)), b"v", 0, false),
        );
        tr.res("unknown namespace", setxattr(&p, "bogus.x", b"v", 0, false));
        tr.res("get unknown namespace", getxattr(&p, "bogus.x"));
        tr.res(
            "trusted.x as root",
            setxattr(&p, "trusted.x", b"t", 0, false),
        );
        tr.res("get trusted.x", getxattr(&p, "trusted.x"));
        // Directories carry user xattrs too.
        let dir = d.join("dir");
        fs::create_dir(&dir).unwrap();
        tr.res("set on dir", setxattr(&dir, "user.d", b"dirval", 0, false));
        tr.res("get on dir", getxattr(&dir, "user.d"));
        // user.* on a symlink itself is not permitted; via the link it hits the target.
        symlink("f", d.join("ln")).unwrap();
        tr.res(
            "lsetxattr user on symlink",
            setxattr(&d.join("ln"), "user.l", b"l", 0, true),
        );
        tr.res(
            "setxattr through symlink",
            setxattr(&d.join("ln"), "user.via", b"v", 0, false),
        );
        tr.res("target got it", getxattr(&p, "user.via"));
        tr.res("llistxattr symlink", listxattr(&d.join("ln"), true));
        // xattrs follow the file across rename and hard link, and the ctime changes.
        let c0 = ctime(&p);
        tick();
        setxattr(&p, "user.t", b"t", 0, false).unwrap();
        tr.rec("ctime advanced by setxattr", ctime(&p) > c0);
        fs::rename(&p, d.join("g")).unwrap();
        tr.res("after rename", getxattr(&d.join("g"), "user.a"));
        fs::hard_link(d.join("g"), d.join("h")).unwrap();
        tr.res("via hard link", getxattr(&d.join("h"), "user.a"));
        tr.res("list via link", listxattr(&d.join("h"), false));
    });
    // The hot dir holds the same xattrs as set through the mount.
    assert_eq!(
        getxattr(&t.hot.join("g"), "user.a").unwrap(),
        b"ALPHA2",
        "xattr not stored on the hot file"
    );
    assert_eq!(
        listxattr(&t.hot.join("g"), false).unwrap(),
        listxattr(&t.plain.join("g"), false).unwrap()
    );
}

// ---------------------------------------------------------------------------
// fallocate, fsync, flush, statfs, lseek
// ---------------------------------------------------------------------------

#[test]
fn fallocate_modes() {
    let m = TestMount::new();
    let t = m.twin("fallocate");
    t.run(|d, tr| {
        let p = d.join("f");
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&p)
            .unwrap();
        f.write_all_at(&pattern(MIB, 5), 0).unwrap();
        f.sync_all().unwrap();
        let blocks = |f: &File| f.metadata().map(|m| m.blocks()).unwrap();
        let b0 = blocks(&f);
        tr.res(
            "fallocate mode 0 extend to 2MiB",
            fallocate(&f, 0, 0, 2 * MIB as i64),
        );
        tr.res("size", fs::metadata(&p).map(|m| m.len()));
        tr.rec("blocks grew", blocks(&f) > b0);
        let b1 = blocks(&f);
        tr.res(
            "KEEP_SIZE 2..4 MiB",
            fallocate(
                &f,
                libc::FALLOC_FL_KEEP_SIZE,
                2 * MIB as i64,
                2 * MIB as i64,
            ),
        );
        tr.res("size unchanged", fs::metadata(&p).map(|m| m.len()));
        tr.rec("blocks grew beyond EOF", blocks(&f) > b1);
        let b2 = blocks(&f);
        tr.res(
            "PUNCH_HOLE|KEEP_SIZE 64K..960K",
            fallocate(
                &f,
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                65_536,
                896 * 1024,
            ),
        );
        tr.res("size unchanged", fs::metadata(&p).map(|m| m.len()));
        tr.rec("blocks shrank", blocks(&f) < b2);
        let v = fs::read(&p).unwrap();
        let orig = pattern(MIB, 5);
        tr.rec(
            "hole reads zero",
            v[65_536..65_536 + 896 * 1024].iter().all(|&b| b == 0),
        );
        tr.rec(
            "data around hole kept",
            v[..65_536] == orig[..65_536] && v[960 * 1024..MIB] == orig[960 * 1024..],
        );
        tr.res(
            "PUNCH_HOLE without KEEP_SIZE",
            fallocate(&f, libc::FALLOC_FL_PUNCH_HOLE, 0, 4096),
        );
        tr.res("fallocate len 0", fallocate(&f, 0, 0, 0));
        tr.res("fallocate negative offset", fallocate(&f, 0, -1, 10));
        let ro = File::open(&p).unwrap();
        tr.res("fallocate on O_RDONLY fd", fallocate(&ro, 0, 0, 10));
        tr.res(
            "posix_fallocate extend",
            posix_fallocate(&f, 0, 3 * MIB as i64),
        );
        tr.res("size", fs::metadata(&p).map(|m| m.len()));
        tr.res(
            "ZERO_RANGE",
            fallocate(&f, libc::FALLOC_FL_ZERO_RANGE, 0, 4096),
        );
        tr.res(
            "first block",
            fs::read(&p).map(|v| v[..4096].iter().all(|&b| b == 0)),
        );
    });
}

#[test]
fn fsync_fdatasync_and_close() {
    let m = TestMount::new();
    let t = m.twin("fsync");
    t.run(|d, tr| {
        let p = d.join("f");
        let mut f = File::create(&p).unwrap();
        f.write_all(&pattern(200_000, 2)).unwrap();
        tr.res("fsync", f.sync_all());
        tr.res("fdatasync", f.sync_data());
        f.write_all(b"tail").unwrap();
        tr.res("fdatasync 2", f.sync_data());
        let dir = File::open(d).unwrap();
        tr.res("fsync dir", dir.sync_all());
        // Closing a dup'ed descriptor flushes; the data is in place before the
        // last close and close() reports success.
        // SAFETY: dup of a valid fd; ownership moves into the new File.
        let dup = unsafe { File::from_raw_fd(libc::dup(f.as_raw_fd())) };
        tr.res("close dup", close(dup));
        tr.res("size after close of dup", fs::metadata(&p).map(|m| m.len()));
        tr.res("close last", close(f));
        tr.res(
            "content",
            fs::read(&p).map(|v| v.len() == 200_004 && v[..200_000] == pattern(200_000, 2)[..]),
        );
        let ro = File::open(&p).unwrap();
        tr.res("fsync O_RDONLY fd", ro.sync_all());
        tr.res("close O_RDONLY", close(ro));
    });
    // Data written through the mount is in the hot file before close.
    let p = t.mnt.join("early");
    let mut f = File::create(&p).unwrap();
    f.write_all(b"visible before close").unwrap();
    f.sync_all().unwrap();
    assert_eq!(
        fs::read(t.hot.join("early")).unwrap(),
        b"visible before close",
        "fsync through the mount did not put the data into the hot dir"
    );
    drop(f);
}

#[test]
fn statfs_matches_hot_dir() {
    let m = TestMount::new();
    let a = statvfs(m.hot()).unwrap();
    let b = statvfs(m.mnt()).unwrap();
    assert_eq!(b.f_bsize, a.f_bsize, "f_bsize");
    assert_eq!(b.f_frsize, a.f_frsize, "f_frsize");
    assert_eq!(b.f_blocks, a.f_blocks, "f_blocks");
    assert_eq!(b.f_files, a.f_files, "f_files");
    assert_eq!(b.f_namemax, a.f_namemax, "f_namemax");
    // Free counts move as other tests write; allow 1% of the total.
    let close = |x: u64, y: u64, tot: u64| x.abs_diff(y) <= tot / 100 + 16;
    assert!(
        close(a.f_bfree, b.f_bfree, a.f_blocks),
        "f_bfree {} vs {}",
        a.f_bfree,
        b.f_bfree
    );
    assert!(
        close(a.f_bavail, b.f_bavail, a.f_blocks),
        "f_bavail {} vs {}",
        a.f_bavail,
        b.f_bavail
    );
    assert!(
        close(a.f_ffree, b.f_ffree, a.f_files),
        "f_ffree {} vs {}",
        a.f_ffree,
        b.f_ffree
    );
    // statfs on a file below the mount reports the same file system.
    fs::write(m.m("f"), b"x").unwrap();
    let c = statvfs(&m.m("f")).unwrap();
    assert_eq!(c.f_blocks, a.f_blocks);
    // The mount reports itself as a FUSE file system.
    let line = mountinfo_line(m.mnt()).unwrap();
    assert!(line.contains(" - fuse"), "not a fuse mount: {line}");
}

#[test]
fn lseek_data_hole_on_sparse_file() {
    let m = TestMount::new();
    let t = m.twin("seek");
    t.run(|d, tr| {
        let p = d.join("sparse");
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&p)
            .unwrap();
        // data at [0,4K), [1M,1M+4K), [8M, 8M+64K); file size 16M
        f.write_all_at(&[1u8; 4096], 0).unwrap();
        f.write_all_at(&[2u8; 4096], MIB as u64).unwrap();
        f.write_all_at(&[3u8; 65536], 8 * MIB as u64).unwrap();
        f.set_len(16 * MIB as u64).unwrap();
        f.sync_all().unwrap();
        let mut off = 0i64;
        let mut extents = Vec::new();
        loop {
            let data = lseek(&f, off, libc::SEEK_DATA);
            tr.res(&format!("SEEK_DATA {off}"), data.as_ref().map(|v| *v));
            let Ok(data) = data else { break };
            let hole = lseek(&f, data, libc::SEEK_HOLE);
            tr.res(&format!("SEEK_HOLE {data}"), hole.as_ref().map(|v| *v));
            let Ok(hole) = hole else { break };
            extents.push((data, hole));
            if extents.len() > 10 {
                break;
            }
            off = hole;
        }
        tr.res(
            "SEEK_DATA past EOF",
            lseek(&f, 32 * MIB as i64, libc::SEEK_DATA),
        );
        tr.res(
            "SEEK_HOLE past EOF",
            lseek(&f, 32 * MIB as i64, libc::SEEK_HOLE),
        );
        tr.res(
            "SEEK_HOLE in last hole",
            lseek(&f, 15 * MIB as i64, libc::SEEK_HOLE),
        );
        tr.res("SEEK_END", lseek(&f, 0, libc::SEEK_END));
        tr.res("SEEK_CUR", lseek(&f, -10, libc::SEEK_CUR));
        tr.res("SEEK_SET negative", lseek(&f, -1, libc::SEEK_SET));
        tr.res(
            "SEEK_SET beyond",
            lseek(&f, 100 * MIB as i64, libc::SEEK_SET),
        );
        tr.res("size", f.metadata().map(|m| m.len()));
    });
    // And the mount really reports holes (not "all data").
    let f = File::open(t.mnt.join("sparse")).unwrap();
    assert_eq!(
        lseek(&f, 0, libc::SEEK_HOLE).unwrap(),
        4096,
        "SEEK_HOLE through the mount"
    );
    assert_eq!(
        lseek(&f, 4096, libc::SEEK_DATA).unwrap(),
        MIB as i64,
        "SEEK_DATA through the mount"
    );
}

// ---------------------------------------------------------------------------
// readdir
// ---------------------------------------------------------------------------

const BIG_DIR: usize = 10_000;

fn make_files(d: &Path, n: usize, prefix: &str) {
    for i in 0..n {
        File::create(d.join(format!("{prefix}{i:05}"))).unwrap();
    }
}

#[test]
fn readdir_big_directory_listing_and_seekdir() {
    let m = TestMount::new();
    let t = m.twin("bigdir");
    let (_, _) = t.run(|d, tr| {
        make_files(d, BIG_DIR, "f");
        fs::create_dir(d.join("subdir")).unwrap();
        symlink("f00000", d.join("symlink")).unwrap();
        let mut s = DirStream::open(d).unwrap();
        let mut all = Vec::new();
        while let Some(e) = s.next_entry().unwrap() {
            all.push(e);
        }
        let names: Vec<String> = all
            .iter()
            .map(|e| e.name.to_string_lossy().into_owned())
            .collect();
        let set: BTreeSet<&String> = names.iter().collect();
        tr.rec("entries incl . and ..", all.len());
        tr.rec("no duplicates", set.len() == names.len());
        tr.rec(
            "has . and ..",
            set.contains(&".".to_string()) && set.contains(&"..".to_string()),
        );
        let expected: BTreeSet<String> = (0..BIG_DIR)
            .map(|i| format!("f{i:05}"))
            .chain(["subdir".into(), "symlink".into(), ".".into(), "..".into()])
            .collect();
        tr.rec(
            "listing == created names",
            set.iter().map(|s| (*s).clone()).collect::<BTreeSet<_>>() == expected,
        );
        // d_type of each kind
        let dtype = |n: &str| all.iter().find(|e| e.name == n).map(|e| e.dtype);
        tr.rec(
            "d_type file/dir/symlink",
            (dtype("f00001"), dtype("subdir"), dtype("symlink")),
        );
        // d_ino agrees with stat for a sample
        let ino_ok = all
            .iter()
            .filter(|e| e.name != "." && e.name != "..")
            .step_by(997)
            .all(|e| ino(&d.join(&e.name)) == e.ino);
        tr.rec("d_ino == st_ino", ino_ok);
        // telldir/seekdir: resume at several remembered positions.
        let n = all.len();
        for k in [0, 1, 2, 100, n / 2, n - 3, n - 2] {
            s.seek(all[k].pos_after);
            let next = s.next_entry().unwrap().map(|e| e.name);
            tr.rec(
                &format!("seekdir after #{k} resumes at #{}", k + 1),
                next.as_ref() == Some(&all[k + 1].name),
            );
        }
        s.seek(all[n - 1].pos_after);
        tr.rec("seekdir to end", s.next_entry().unwrap().is_none());
        // Rewind gives the same listing again.
        s.rewind();
        let again: Vec<_> = std::iter::from_fn(|| s.next_entry().unwrap())
            .map(|e| e.name)
            .collect();
        tr.rec(
            "rewind relists same",
            again == all.iter().map(|e| e.name.clone()).collect::<Vec<_>>(),
        );
        // A second stream from a fresh opendir resumes via seekdir with the first's cookie.
        let mut s2 = DirStream::open(d).unwrap();
        let half = s2.rest().unwrap();
        tr.rec("second stream count", half.len());
        // Reading the rest after a seekdir in the middle returns exactly the tail.
        s.seek(all[n / 2].pos_after);
        let tail: Vec<_> = s.rest().unwrap().into_iter().map(|e| e.name).collect();
        let want: Vec<_> = all[n / 2 + 1..]
            .iter()
            .filter(|e| e.name != "." && e.name != "..")
            .map(|e| e.name.clone())
            .collect();
        tr.rec("tail after seekdir", tail == want);
    });
}

#[test]
fn readdir_while_deleting() {
    let m = TestMount::new();
    let t = m.twin("deldir");
    t.run(|d, tr| {
        // (1) rm -rf pattern: unlink each entry as readdir returns it; the
        // directory must end up empty and no entry may be returned twice.
        let a = d.join("rmrf");
        fs::create_dir(&a).unwrap();
        make_files(&a, BIG_DIR, "x");
        let mut s = DirStream::open(&a).unwrap();
        let mut seen = HashSet::new();
        let mut dups = 0;
        let mut unlink_errors = 0;
        while let Some(e) = s.next_entry().unwrap() {
            if e.name == "." || e.name == ".." {
                continue;
            }
            if !seen.insert(e.name.clone()) {
                dups += 1;
            }
            if fs::remove_file(a.join(&e.name)).is_err() {
                unlink_errors += 1;
            }
        }
        drop(s);
        tr.rec("entries returned", seen.len());
        tr.rec("duplicates", dups);
        tr.rec("unlink errors", unlink_errors);
        tr.res("left over", names(&a).map(|v| v.len()));
        tr.res("rmdir", fs::remove_dir(&a));

        // (2) Delete other entries mid-iteration: every entry that is never
        // deleted is returned exactly once; deleted ones at most once.
        let b = d.join("others");
        fs::create_dir(&b).unwrap();
        make_files(&b, 3000, "y");
        let mut s = DirStream::open(&b).unwrap();
        let mut got: BTreeMap<String, usize> = BTreeMap::new();
        let mut deleted = BTreeSet::new();
        let mut k = 0;
        while let Some(e) = s.next_entry().unwrap() {
            if e.name == "." || e.name == ".." {
                continue;
            }
            *got.entry(e.name.to_string_lossy().into_owned())
                .or_default() += 1;
            k += 1;
            if k == 1000 {
                // delete every third file by number, read or not
                for i in (0..3000).step_by(3) {
                    let n = format!("y{i:05}");
                    fs::remove_file(b.join(&n)).unwrap();
                    deleted.insert(n);
                }
                // and add new ones (may or may not be returned)
                make_files(&b, 100, "z");
            }
        }
        let survivors_once = (0..3000)
            .map(|i| format!("y{i:05}"))
            .filter(|n| !deleted.contains(n))
            .all(|n| got.get(&n) == Some(&1));
        tr.rec("every surviving entry exactly once", survivors_once);
        tr.rec("no entry twice", got.values().all(|&c| c == 1));
        tr.rec(
            "nothing unknown",
            got.keys().all(|n| n.starts_with('y') || n.starts_with('z')),
        );
        tr.res("final count", names(&b).map(|v| v.len()));
    });
}

// ---------------------------------------------------------------------------
// Large files and mmap
// ---------------------------------------------------------------------------

#[test]
fn sparse_file_over_4gib() {
    let m = TestMount::new();
    let p = m.m("huge");
    let off = 5 * GIB;
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&p)
        .unwrap();
    f.write_all_at(b"beyond 4GiB", off).unwrap();
    // Straddle the 4 GiB boundary (32-bit offset truncation bugs).
    f.write_all_at(b"ABCDEFGH", 4 * GIB - 4).unwrap();
    drop(f);
    let md = fs::metadata(&p).unwrap();
    assert_eq!(md.len(), off + 11, "size through the mount");
    assert_eq!(
        fs::metadata(m.h("huge")).unwrap().len(),
        off + 11,
        "size in hot dir"
    );
    assert!(
        md.blocks() < 1024,
        "file should be sparse, blocks={}",
        md.blocks()
    );
    let f = File::open(&p).unwrap();
    let mut buf = [0u8; 11];
    f.read_exact_at(&mut buf, off).unwrap();
    assert_eq!(&buf, b"beyond 4GiB");
    let mut b8 = [0u8; 8];
    f.read_exact_at(&mut b8, 4 * GIB - 4).unwrap();
    assert_eq!(&b8, b"ABCDEFGH");
    let mut z = [9u8; 4096];
    f.read_exact_at(&mut z, 3 * GIB).unwrap();
    assert!(z.iter().all(|&b| b == 0), "hole must read as zeros");
    // Reading across EOF returns the short tail.
    let mut tail = [0u8; 100];
    assert_eq!(f.read_at(&mut tail, off + 5).unwrap(), 6);
    // The same bytes sit in the hot file.
    let h = File::open(m.h("huge")).unwrap();
    h.read_exact_at(&mut buf, off).unwrap();
    assert_eq!(&buf, b"beyond 4GiB");
    h.read_exact_at(&mut b8, 4 * GIB - 4).unwrap();
    assert_eq!(&b8, b"ABCDEFGH");
    // seek to the end and append
    let mut f = OpenOptions::new().append(true).open(&p).unwrap();
    f.write_all(b"+").unwrap();
    assert_eq!(f.stream_position().unwrap(), off + 12);
    // truncate to just over 4 GiB
    f.set_len(4 * GIB + 1).unwrap();
    assert_eq!(fs::metadata(&p).unwrap().len(), 4 * GIB + 1);
    assert_eq!(fs::metadata(m.h("huge")).unwrap().len(), 4 * GIB + 1);
    fs::remove_file(&p).unwrap();
    assert!(!m.h("huge").exists());
}

struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
}

impl Mapping {
    fn new(f: &File, len: usize, prot: i32) -> io::Result<Mapping> {
        // SAFETY: mapping a file we hold open; unmapped in Drop.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            Err(io::Error::last_os_error())
        } else {
            Ok(Mapping { ptr, len })
        }
    }
    fn bytes(&self) -> &[u8] {
        // SAFETY: valid mapping of len bytes.
        unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.len) }
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: valid writable mapping of len bytes.
        unsafe { std::slice::from_raw_parts_mut(self.ptr as *mut u8, self.len) }
    }
    fn msync(&self) -> io::Result<()> {
        // SAFETY: valid mapping.
        cvt(unsafe { libc::msync(self.ptr, self.len, libc::MS_SYNC) }).map(|_| ())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

#[test]
fn mmap_shared_write_and_read() {
    let m = TestMount::new();
    let t = m.twin("mmap");
    t.run(|d, tr| {
        let p = d.join("mapped");
        let len = 256 * 1024 + 123;
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&p)
            .unwrap();
        f.set_len(len as u64).unwrap();
        let mut map = Mapping::new(&f, len, libc::PROT_READ | libc::PROT_WRITE).unwrap();
        let data = pattern(len, 11);
        map.bytes_mut().copy_from_slice(&data);
        tr.res("msync", map.msync());
        // read(2) on a new descriptor sees the mapped writes.
        tr.rec(
            "read() after msync == mapped data",
            fs::read(&p).unwrap() == data,
        );
        // A write through write(2) shows up in the mapping.
        f.write_all_at(b"WRITTEN", 1000).unwrap();
        tr.rec(
            "mapping sees write()",
            &map.bytes()[1000..1007] == b"WRITTEN",
        );
        // Further writes to the mapping without msync reach the file after munmap+close.
        map.bytes_mut()[..5].copy_from_slice(b"HELLO");
        drop(map);
        drop(f);
        let v = fs::read(&p).unwrap();
        tr.rec(
            "after munmap+close",
            (&v[..5] == b"HELLO", &v[1000..1007] == b"WRITTEN", v.len()),
        );

        // Read-only mapping of a file written with write(2).
        let q = d.join("readme");
        let data = pattern(3 * MIB + 17, 13);
        fs::write(&q, &data).unwrap();
        let f = File::open(&q).unwrap();
        let map = Mapping::new(&f, data.len(), libc::PROT_READ).unwrap();
        tr.rec("mmap read == file", map.bytes() == &data[..]);
        tr.res(
            "PROT_WRITE shared on O_RDONLY fd",
            Mapping::new(&f, 4096, libc::PROT_READ | libc::PROT_WRITE).map(|_| ()),
        );
    });
    // The hot file holds the mapped writes.
    let v = fs::read(t.hot.join("mapped")).unwrap();
    assert_eq!(&v[..5], b"HELLO");
    assert_eq!(&v[1000..1007], b"WRITTEN");
}

// ---------------------------------------------------------------------------
// Permissions for other users (allow_other)
// ---------------------------------------------------------------------------

const NOBODY: u32 = 65534;

/// Prepares `d` as root and runs a fixed list of operations as nobody:nogroup.
fn other_user_scenario(d: &Path) -> Vec<(String, Result<(), String>)> {
    use std::os::unix::fs::DirBuilderExt;
    fs::write(d.join("ro.txt"), b"secret").unwrap();
    set_mode(&d.join("ro.txt"), 0o644).unwrap();
    fs::write(d.join("noread"), b"hidden").unwrap();
    set_mode(&d.join("noread"), 0o600).unwrap();
    fs::DirBuilder::new()
        .mode(0o777)
        .create(d.join("pub"))
        .unwrap();
    set_mode(&d.join("pub"), 0o777).unwrap();
    fs::DirBuilder::new()
        .mode(0o755)
        .create(d.join("priv"))
        .unwrap();
    fs::DirBuilder::new().create(d.join("sticky")).unwrap();
    set_mode(&d.join("sticky"), 0o1777).unwrap();
    fs::write(d.join("sticky/rootfile"), b"r").unwrap();
    set_mode(&d.join("sticky/rootfile"), 0o666).unwrap();
    fs::DirBuilder::new().create(d.join("noexec")).unwrap();
    fs::write(d.join("noexec/inner"), b"i").unwrap();
    set_mode(&d.join("noexec/inner"), 0o644).unwrap();
    set_mode(&d.join("noexec"), 0o700).unwrap();

    let c = |rel: &str| cpath(&d.join(rel));
    let (ro, noread, pub_f, pub_f2, priv_x, priv_y, pub_dir, sticky_f, inner, xname) = (
        c("ro.txt"),
        c("noread"),
        c("pub/userfile"),
        c("pub/userfile2"),
        c("priv/x"),
        c("priv/y"),
        c("pub/udir"),
        c("sticky/rootfile"),
        c("noexec/inner"),
        cstr("user.x"),
    );
    let mut out = Vec::new();
    let mut op = |label: &str, f: &dyn Fn() -> i32| {
        let r = as_user(NOBODY, NOBODY, f).map_err(errno_name);
        out.push((label.to_string(), r));
    };
    // SAFETY (all closures): raw syscalls on prepared C strings only.
    op("read ro.txt", &|| unsafe {
        let fd = libc::open(ro.as_ptr(), libc::O_RDONLY);
        if fd < 0 {
            return last_errno();
        }
        let mut buf = [0u8; 16];
        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        if n != 6 || &buf[..6] != b"secret" {
            return 200;
        }
        ok_or_errno(libc::close(fd))
    });
    op("open ro.txt for write", &|| unsafe {
        ok_or_errno(libc::open(ro.as_ptr(), libc::O_WRONLY))
    });
    op("truncate ro.txt", &|| unsafe {
        ok_or_errno(libc::truncate(ro.as_ptr(), 0))
    });
    op("read 0600 root file", &|| unsafe {
        ok_or_errno(libc::open(noread.as_ptr(), libc::O_RDONLY))
    });
    op("chmod root file", &|| unsafe {
        ok_or_errno(libc::chmod(ro.as_ptr(), 0o777))
    });
    op("chown root file", &|| unsafe {
        ok_or_errno(libc::chown(ro.as_ptr(), NOBODY, NOBODY))
    });
    op("utimes(NULL) on root file", &|| unsafe {
        ok_or_errno(libc::utimensat(
            libc::AT_FDCWD,
            ro.as_ptr(),
            std::ptr::null(),
            0,
        ))
    });
    op("setxattr on root file", &|| unsafe {
        ok_or_errno(libc::setxattr(
            ro.as_ptr(),
            xname.as_ptr(),
            b"v".as_ptr().cast(),
            1,
            0,
        ))
    });
    op("create in 0755 root dir", &|| unsafe {
        ok_or_errno(libc::open(
            priv_x.as_ptr(),
            libc::O_CREAT | libc::O_WRONLY,
            0o644,
        ))
    });
    op("mkdir in 0755 root dir", &|| unsafe {
        ok_or_errno(libc::mkdir(priv_y.as_ptr(), 0o755))
    });
    op("create in 0777 dir", &|| unsafe {
        let fd = libc::open(
            pub_f.as_ptr(),
            libc::O_CREAT | libc::O_WRONLY | libc::O_EXCL,
            0o640,
        );
        if fd < 0 {
            return last_errno();
        }
        if libc::write(fd, b"mine".as_ptr().cast(), 4) != 4 {
            return last_errno();
        }
        ok_or_errno(libc::close(fd))
    });
    op("mkdir in 0777 dir", &|| unsafe {
        ok_or_errno(libc::mkdir(pub_dir.as_ptr(), 0o750))
    });
    op("rename own file", &|| unsafe {
        ok_or_errno(libc::rename(pub_f.as_ptr(), pub_f2.as_ptr()))
    });
    op("chmod own file", &|| unsafe {
        ok_or_errno(libc::chmod(pub_f2.as_ptr(), 0o600))
    });
    op("chown own file to root", &|| unsafe {
        ok_or_errno(libc::chown(pub_f2.as_ptr(), 0, 0))
    });
    op("setxattr on own file", &|| unsafe {
        ok_or_errno(libc::setxattr(
            pub_f2.as_ptr(),
            xname.as_ptr(),
            b"v".as_ptr().cast(),
            1,
            0,
        ))
    });
    op("write 0666 file in sticky dir", &|| unsafe {
        let fd = libc::open(sticky_f.as_ptr(), libc::O_WRONLY | libc::O_APPEND);
        if fd < 0 {
            return last_errno();
        }
        if libc::write(fd, b"u".as_ptr().cast(), 1) != 1 {
            return last_errno();
        }
        ok_or_errno(libc::close(fd))
    });
    op("unlink root file in sticky dir", &|| unsafe {
        ok_or_errno(libc::unlink(sticky_f.as_ptr()))
    });
    op("traverse 0700 root dir", &|| unsafe {
        ok_or_errno(libc::open(inner.as_ptr(), libc::O_RDONLY))
    });
    op("access(W_OK) ro.txt", &|| unsafe {
        ok_or_errno(libc::access(ro.as_ptr(), libc::W_OK))
    });
    op("access(R_OK) ro.txt", &|| unsafe {
        ok_or_errno(libc::access(ro.as_ptr(), libc::R_OK))
    });
    // What root sees afterwards.
    for rel in ["pub/userfile2", "pub/udir", "sticky/rootfile", "ro.txt"] {
        out.push((
            format!("root sees {rel}: {}", show(&lmeta(&d.join(rel)))),
            Ok(()),
        ));
    }
    out.push((
        format!(
            "root: sticky content {:?}",
            fs::read(d.join("sticky/rootfile")).ok()
        ),
        Ok(()),
    ));
    out
}

#[test]
fn other_user_access_with_allow_other() {
    let m = TestMount::with_options(MountOptions {
        allow_other: true,
        ..Default::default()
    });
    let t = m.twin("users");
    let plain = other_user_scenario(&t.plain);
    let mnt = other_user_scenario(&t.mnt);
    let fmt = |v: &[(String, Result<(), String>)]| Transcript {
        lines: v.iter().map(|(l, r)| format!("{l}: {r:?}")).collect(),
    };
    assert_same_transcript(&fmt(&plain), &fmt(&mnt));
    // Absolute expectations (in case the plain dir misbehaved too).
    let get = |k: &str| mnt.iter().find(|(l, _)| l == k).unwrap().1.clone();
    assert_eq!(get("read ro.txt"), Ok(()));
    assert_eq!(get("open ro.txt for write"), Err("EACCES".into()));
    assert_eq!(get("create in 0755 root dir"), Err("EACCES".into()));
    assert_eq!(get("create in 0777 dir"), Ok(()));
    assert_eq!(get("chmod root file"), Err("EPERM".into()));
    let md = fs::metadata(t.mnt.join("pub/userfile2")).unwrap();
    assert_eq!((md.uid(), md.gid()), (NOBODY, NOBODY), "owner via mount");
    let md = fs::metadata(t.hot.join("pub/userfile2")).unwrap();
    assert_eq!((md.uid(), md.gid()), (NOBODY, NOBODY), "owner in hot dir");
    let md = fs::metadata(t.hot.join("pub/udir")).unwrap();
    assert_eq!(
        (md.uid(), md.gid()),
        (NOBODY, NOBODY),
        "dir owner in hot dir"
    );
    t.assert_trees_match();
}

#[test]
fn other_users_denied_without_allow_other() {
    let m = TestMount::new();
    fs::write(m.m("f"), b"x").unwrap();
    set_mode(&m.m("f"), 0o644).unwrap();
    let p = cpath(&m.m("f"));
    // SAFETY: raw syscalls on a prepared C string.
    let r = as_user(NOBODY, NOBODY, || unsafe {
        ok_or_errno(libc::open(p.as_ptr(), libc::O_RDONLY))
    });
    assert_eq!(
        r.map_err(errno_name),
        Err("EACCES".to_string()),
        "FUSE denies other users without allow_other"
    );
}

// ---------------------------------------------------------------------------
// Inode numbers
// ---------------------------------------------------------------------------

#[test]
fn inode_numbers_stable_and_unique() {
    let m = TestMount::new();
    let d = m.m("inos");
    fs::create_dir(&d).unwrap();
    let mut inos = BTreeMap::new();
    for i in 0..200 {
        let p = d.join(format!("f{i}"));
        if i % 10 == 0 {
            fs::create_dir(&p).unwrap();
        } else {
            fs::write(&p, b"x").unwrap();
        }
        inos.insert(p.clone(), ino(&p));
    }
    let uniq: HashSet<_> = inos.values().collect();
    assert_eq!(uniq.len(), inos.len(), "inode numbers collide");
    assert!(
        !uniq.contains(&ino(m.mnt())),
        "a file shares the root's inode"
    );
    for (p, i) in &inos {
        assert_eq!(
            ino(p),
            *i,
            "ino changed on a second lookup of {}",
            p.display()
        );
    }
    drop_kernel_caches();
    for (p, i) in &inos {
        assert_eq!(
            ino(p),
            *i,
            "ino changed after the kernel forgot {}",
            p.display()
        );
    }
    // Also through readdir and fstat of an open fd.
    let mut s = DirStream::open(&d).unwrap();
    for e in s.rest().unwrap() {
        assert_eq!(e.ino, inos[&d.join(&e.name)], "d_ino of {:?}", e.name);
    }
    let f = File::open(d.join("f1")).unwrap();
    assert_eq!(f.metadata().unwrap().ino(), inos[&d.join("f1")]);
    // Rename keeps the number; the old name's number is not reused for the new file.
    fs::rename(d.join("f1"), d.join("renamed")).unwrap();
    assert_eq!(ino(&d.join("renamed")), inos[&d.join("f1")]);
    fs::write(d.join("f1"), b"new").unwrap();
    assert_ne!(
        ino(&d.join("f1")),
        inos[&d.join("f1")],
        "new file got the renamed file's ino"
    );
    // Hard links share it.
    fs::hard_link(d.join("f2"), d.join("f2link")).unwrap();
    drop_kernel_caches();
    assert_eq!(ino(&d.join("f2link")), inos[&d.join("f2")]);
}

#[test]
fn inode_numbers_across_remount() {
    let mut m = TestMount::new();
    fs::create_dir(m.m("d")).unwrap();
    fs::write(m.m("d/f"), b"x").unwrap();
    fs::write(m.m("g"), b"y").unwrap();
    fs::hard_link(m.m("g"), m.m("d/glink")).unwrap();
    let rels = ["d", "d/f", "g", "d/glink"];
    let before: Vec<u64> = rels.iter().map(|r| ino(&m.m(r))).collect();
    m.remount();
    let after: Vec<u64> = rels.iter().map(|r| ino(&m.m(r))).collect();
    assert_eq!(
        after[2], after[3],
        "hard links must share an ino after remount"
    );
    // Data survives the remount.
    assert_eq!(fs::read(m.m("d/f")).unwrap(), b"x");
    let hot: Vec<u64> = rels.iter().map(|r| ino(&m.h(r))).collect();
    if before == hot {
        // tierfs exposes the backing inode numbers, so they must survive a remount.
        assert_eq!(after, before, "inode numbers changed across remount");
    } else {
        eprintln!("note: tierfs does not expose backing inode numbers ({before:?} vs hot {hot:?})");
    }
}

// ---------------------------------------------------------------------------
// Changes made directly in the hot dir while mounted
// ---------------------------------------------------------------------------

const VISIBLE_WITHIN: Duration = Duration::from_secs(5);

#[test]
fn hot_dir_changes_visible_through_mount() {
    let m = TestMount::new();
    fs::create_dir(m.m("w")).unwrap();
    fs::write(m.m("w/existing"), b"old").unwrap();
    // Prime the kernel caches with the current state.
    assert_eq!(fs::read(m.m("w/existing")).unwrap(), b"old");
    assert!(fs::metadata(m.m("w/new")).is_err());
    let _ = names(&m.m("w")).unwrap();

    let check = |what: &str, f: &dyn Fn() -> bool| {
        let took = wait_until(VISIBLE_WITHIN, f);
        assert!(
            took.is_some(),
            "{what}: not visible through the mount after {VISIBLE_WITHIN:?}"
        );
        eprintln!("{what}: visible after {:?}", took.unwrap());
    };

    fs::write(m.h("w/new"), b"made in hot").unwrap();
    check("new file (stat)", &|| {
        fs::metadata(m.m("w/new")).is_ok_and(|md| md.len() == 11)
    });
    check("new file (readdir)", &|| {
        names(&m.m("w")).is_ok_and(|v| v.contains(&"new".into()))
    });
    assert_eq!(fs::read(m.m("w/new")).unwrap(), b"made in hot");

    OpenOptions::new()
        .append(true)
        .open(m.h("w/existing"))
        .unwrap()
        .write_all(b" + more")
        .unwrap();
    check("append (size)", &|| {
        fs::metadata(m.m("w/existing")).is_ok_and(|md| md.len() == 10)
    });
    check("append (content)", &|| {
        fs::read(m.m("w/existing")).is_ok_and(|v| v == b"old + more")
    });

    fs::write(m.h("w/existing"), b"rewritten!!").unwrap();
    check("rewrite (content)", &|| {
        fs::read(m.m("w/existing")).is_ok_and(|v| v == b"rewritten!!")
    });

    set_mode(&m.h("w/existing"), 0o600).unwrap();
    check("chmod", &|| {
        lmeta(&m.m("w/existing")).is_ok_and(|md| md.perm == 0o600)
    });

    fs::rename(m.h("w/new"), m.h("w/renamed")).unwrap();
    check("rename (old gone)", &|| fs::metadata(m.m("w/new")).is_err());
    check("rename (new there)", &|| {
        fs::read(m.m("w/renamed")).is_ok_and(|v| v == b"made in hot")
    });

    fs::create_dir_all(m.h("w/sub/deeper")).unwrap();
    fs::write(m.h("w/sub/deeper/file"), b"deep").unwrap();
    check("new subtree", &|| {
        fs::read(m.m("w/sub/deeper/file")).is_ok_and(|v| v == b"deep")
    });

    fs::remove_file(m.h("w/renamed")).unwrap();
    check("delete", &|| {
        fs::metadata(m.m("w/renamed")).is_err()
            && names(&m.m("w")).is_ok_and(|v| !v.contains(&"renamed".into()))
    });
    fs::remove_dir_all(m.h("w/sub")).unwrap();
    check("delete subtree", &|| fs::metadata(m.m("w/sub")).is_err());

    // Replace a file by a directory of the same name.
    fs::remove_file(m.h("w/existing")).unwrap();
    fs::create_dir(m.h("w/existing")).unwrap();
    check("file replaced by dir", &|| {
        fs::metadata(m.m("w/existing")).is_ok_and(|md| md.is_dir())
    });
    fs::write(m.m("w/existing/child"), b"c").unwrap();
    assert_eq!(fs::read(m.h("w/existing/child")).unwrap(), b"c");
}

// ---------------------------------------------------------------------------
// Paths longer than PATH_MAX (fd-relative access)
// ---------------------------------------------------------------------------

fn openat(dir: &OwnedFd, name: &str, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let c = cstr(name);
    // SAFETY: valid dirfd and name; the returned fd is owned.
    let fd =
        cvt(unsafe { libc::openat(dir.as_raw_fd(), c.as_ptr(), flags | libc::O_CLOEXEC, mode) })?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn mkdirat(dir: &OwnedFd, name: &str) -> io::Result<()> {
    let c = cstr(name);
    // SAFETY: valid dirfd and name.
    cvt(unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), 0o755) }).map(|_| ())
}

/// Creates a chain of 24 directories with 200-byte names (≈4.8 KiB, beyond
/// PATH_MAX), then works at the bottom through fd-relative calls.
fn deep_ops(base: &Path, tr: &mut Transcript) {
    let mut dir = OwnedFd::from(File::open(base).unwrap());
    for i in 0..24 {
        let name = format!("{i:02}{}", "d".repeat(198));
        tr.res(&format!("mkdirat #{i}"), mkdirat(&dir, &name));
        match openat(&dir, &name, libc::O_RDONLY | libc::O_DIRECTORY, 0) {
            Ok(d) => dir = d,
            Err(e) => {
                tr.res(&format!("openat #{i}"), Err::<(), _>(e));
                return;
            }
        }
    }
    let f = openat(&dir, "file", libc::O_CREAT | libc::O_RDWR, 0o644);
    tr.res("create at bottom", f.as_ref().map(|_| ()));
    let Ok(f) = f else { return };
    let f = File::from(f);
    tr.res("write", f.write_all_at(b"deep data", 0));
    let mut buf = [0u8; 9];
    tr.res("read", f.read_exact_at(&mut buf, 0).map(|_| buf));
    let (a, b) = (cstr("file"), cstr("file2"));
    // SAFETY: valid dirfd and names.
    tr.res(
        "renameat",
        cvt(unsafe { libc::renameat(dir.as_raw_fd(), a.as_ptr(), dir.as_raw_fd(), b.as_ptr()) }),
    );
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid dirfd, name and stat buffer.
    tr.res(
        "fstatat",
        cvt(unsafe { libc::fstatat(dir.as_raw_fd(), b.as_ptr(), &mut st, 0) }).map(|_| st.st_size),
    );
    let l = cstr("link");
    // SAFETY: valid dirfd and names.
    tr.res(
        "symlinkat",
        cvt(unsafe { libc::symlinkat(b.as_ptr(), dir.as_raw_fd(), l.as_ptr()) }),
    );
    let s = cstr("sub");
    tr.res("mkdirat sub", mkdirat(&dir, "sub"));
    // SAFETY: valid dirfd and name.
    tr.res(
        "unlinkat dir",
        cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), s.as_ptr(), libc::AT_REMOVEDIR) }),
    );
    // SAFETY: valid fd.
    tr.res("fchmod", cvt(unsafe { libc::fchmod(f.as_raw_fd(), 0o600) }));
    tr.res("fstat mode", f.metadata().map(|m| m.mode() & 0o7777));
    let x = cstr("user.deep");
    // SAFETY: valid fd, name and buffer.
    tr.res(
        "fsetxattr",
        cvt(unsafe { libc::fsetxattr(f.as_raw_fd(), x.as_ptr(), b"v".as_ptr().cast(), 1, 0) }),
    );
    // Full path string is beyond PATH_MAX.
    let full = base
        .join(
            (0..24)
                .map(|i| format!("{i:02}{}", "d".repeat(198)))
                .collect::<PathBuf>(),
        )
        .join("file2");
    tr.rec(
        "full path longer than PATH_MAX",
        full.as_os_str().len() > libc::PATH_MAX as usize,
    );
    tr.res("open by full path", File::open(&full).map(|_| ()));
}

#[test]
fn paths_beyond_path_max() {
    let m = TestMount::new();
    let mut tp = Transcript::default();
    fs::create_dir(m.plain().join("deep")).unwrap();
    deep_ops(&m.plain().join("deep"), &mut tp);
    let mut tm = Transcript::default();
    fs::create_dir(m.m("deep")).unwrap();
    deep_ops(&m.m("deep"), &mut tm);
    assert_same_transcript(&tp, &tm);
    // The hot dir holds the data at the bottom.
    let mut dir = OwnedFd::from(File::open(m.h("deep")).unwrap());
    for i in 0..24 {
        dir = openat(
            &dir,
            &format!("{i:02}{}", "d".repeat(198)),
            libc::O_RDONLY | libc::O_DIRECTORY,
            0,
        )
        .unwrap_or_else(|e| panic!("hot dir level {i}: {e}"));
    }
    let f = File::from(openat(&dir, "file2", libc::O_RDONLY, 0).unwrap());
    let mut buf = [0u8; 9];
    f.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"deep data");
}

// ---------------------------------------------------------------------------
// Read-only mount
// ---------------------------------------------------------------------------

#[test]
fn read_only_mount() {
    let mut m = TestMount::unmounted(MountOptions {
        read_only: true,
        ..Default::default()
    });
    fs::write(m.h("f"), b"ro data").unwrap();
    fs::create_dir(m.h("d")).unwrap();
    m.mount();
    assert_eq!(fs::read(m.m("f")).unwrap(), b"ro data");
    let erofs = |r: io::Result<()>, what: &str| {
        let e = r.expect_err(what);
        assert_eq!(errname(&e), "EROFS", "{what}");
    };
    erofs(
        OpenOptions::new().write(true).open(m.m("f")).map(|_| ()),
        "open for write",
    );
    erofs(File::create(m.m("new")).map(|_| ()), "create");
    erofs(fs::create_dir(m.m("d2")), "mkdir");
    erofs(fs::remove_file(m.m("f")), "unlink");
    erofs(fs::rename(m.m("f"), m.m("g")), "rename");
    erofs(set_mode(&m.m("f"), 0o600), "chmod");
    erofs(setxattr(&m.m("f"), "user.x", b"v", 0, false), "setxattr");
    assert_eq!(fs::read(m.h("f")).unwrap(), b"ro data");
    assert!(
        mountinfo_line(m.mnt())
            .unwrap()
            .split(' ')
            .nth(5)
            .unwrap()
            .starts_with("ro")
    );
}

// ---------------------------------------------------------------------------
// Locks, O_DIRECT, copy_file_range
// ---------------------------------------------------------------------------

fn flock(f: &File, op: i32) -> io::Result<()> {
    // SAFETY: valid fd.
    cvt(unsafe { libc::flock(f.as_raw_fd(), op) }).map(|_| ())
}

fn setlk(f: &File, ty: i32, start: i64, len: i64) -> io::Result<()> {
    // SAFETY: zeroed POD struct, valid fd.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = ty as i16;
    fl.l_whence = libc::SEEK_SET as i16;
    fl.l_start = start;
    fl.l_len = len;
    cvt(unsafe { libc::fcntl(f.as_raw_fd(), libc::F_OFD_SETLK, &fl) }).map(|_| ())
}

#[test]
fn file_locks() {
    let m = TestMount::new();
    let t = m.twin("locks");
    t.run(|d, tr| {
        let p = d.join("f");
        fs::write(&p, b"0123456789").unwrap();
        let a = OpenOptions::new().read(true).write(true).open(&p).unwrap();
        let b = OpenOptions::new().read(true).write(true).open(&p).unwrap();
        tr.res("flock a EX", flock(&a, libc::LOCK_EX | libc::LOCK_NB));
        tr.res(
            "flock b EX NB (conflict)",
            flock(&b, libc::LOCK_EX | libc::LOCK_NB),
        );
        tr.res(
            "flock b SH NB (conflict)",
            flock(&b, libc::LOCK_SH | libc::LOCK_NB),
        );
        tr.res("unlock a", flock(&a, libc::LOCK_UN));
        tr.res("flock b EX NB", flock(&b, libc::LOCK_EX | libc::LOCK_NB));
        tr.res("unlock b", flock(&b, libc::LOCK_UN));
        tr.res("flock a SH", flock(&a, libc::LOCK_SH | libc::LOCK_NB));
        tr.res("flock b SH", flock(&b, libc::LOCK_SH | libc::LOCK_NB));
        flock(&a, libc::LOCK_UN).unwrap();
        flock(&b, libc::LOCK_UN).unwrap();
        // Byte-range OFD locks.
        tr.res("OFD write lock a [0,5)", setlk(&a, libc::F_WRLCK, 0, 5));
        tr.res(
            "OFD write lock b [3,6) conflicts",
            setlk(&b, libc::F_WRLCK, 3, 3),
        );
        tr.res("OFD write lock b [5,10) ok", setlk(&b, libc::F_WRLCK, 5, 5));
        tr.res(
            "OFD read lock b [0,1) conflicts",
            setlk(&b, libc::F_RDLCK, 0, 1),
        );
        tr.res("unlock a", setlk(&a, libc::F_UNLCK, 0, 0));
        tr.res("OFD read lock b [0,1) ok", setlk(&b, libc::F_RDLCK, 0, 1));
    });
}

#[test]
fn o_direct_io() {
    let m = TestMount::new();
    let t = m.twin("direct");
    t.run(|d, tr| {
        let p = d.join("f");
        let f = open_raw(&p, libc::O_CREAT | libc::O_RDWR | libc::O_DIRECT, 0o644);
        tr.res("open O_DIRECT", f.as_ref().map(|_| ()));
        let Ok(f) = f else { return };
        // 4 KiB aligned buffer
        let layout = std::alloc::Layout::from_size_align(64 * 1024, 4096).unwrap();
        // SAFETY: non-zero size layout; freed below.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        let buf = unsafe { std::slice::from_raw_parts_mut(ptr, 64 * 1024) };
        buf.copy_from_slice(&pattern(64 * 1024, 21));
        tr.res("direct write 64K", f.write_at(buf, 0));
        tr.res("direct write at 1M", f.write_at(&buf[..4096], MIB as u64));
        buf.fill(0);
        tr.res(
            "direct read 64K",
            f.read_at(buf, 0)
                .map(|n| (n, buf[..n] == pattern(64 * 1024, 21)[..n])),
        );
        tr.res("size", f.metadata().map(|m| m.len()));
        // SAFETY: allocated above with the same layout.
        unsafe { std::alloc::dealloc(ptr, layout) };
        drop(f);
        tr.res(
            "buffered read sees direct writes",
            fs::read(&p).map(|v| v[..65536] == pattern(64 * 1024, 21)[..]),
        );
    });
}

#[test]
fn copy_file_range_within_mount() {
    let m = TestMount::new();
    let t = m.twin("cfr");
    t.run(|d, tr| {
        let src = d.join("src");
        let data = pattern(3 * MIB + 5, 17);
        fs::write(&src, &data).unwrap();
        let a = File::open(&src).unwrap();
        let b = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(d.join("dst"))
            .unwrap();
        let mut off_in: i64 = 100;
        let mut off_out: i64 = 0;
        let mut copied = 0usize;
        let want = data.len() - 100;
        while copied < want {
            // SAFETY: valid fds and offset pointers.
            let n = unsafe {
                libc::copy_file_range(
                    a.as_raw_fd(),
                    &mut off_in,
                    b.as_raw_fd(),
                    &mut off_out,
                    want - copied,
                    0,
                )
            };
            if n <= 0 {
                tr.res("copy_file_range", cvt(n));
                break;
            }
            copied += n as usize;
        }
        tr.rec("copied", copied);
        drop(b);
        tr.res(
            "dst == src[100..]",
            fs::read(d.join("dst")).map(|v| v == data[100..]),
        );
        tr.res("std::fs::copy", fs::copy(&src, d.join("copy")));
        tr.res("copy equal", fs::read(d.join("copy")).map(|v| v == data));
    });
}

// ---------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------

#[test]
fn concurrent_namespace_churn() {
    // Four threads create, write, rename, hard-link, stat and unlink in one
    // directory while the kernel caches are dropped repeatedly; afterwards the
    // mount, the hot dir and each thread's expectations must agree.
    let m = TestMount::new();
    let d = m.m("churn");
    fs::create_dir(&d).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                drop_kernel_caches();
                sleep(Duration::from_millis(30));
            }
        });
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let d = d.clone();
                s.spawn(move || {
                    for i in 0..300 {
                        let a = d.join(format!("w{w}-{i}"));
                        let b = d.join(format!("w{w}-{i}-renamed"));
                        let l = d.join(format!("w{w}-{i}-link"));
                        let content = format!("worker {w} item {i}");
                        fs::write(&a, &content).unwrap();
                        fs::rename(&a, &b).unwrap();
                        fs::hard_link(&b, &l).unwrap();
                        let md = fs::symlink_metadata(&l).unwrap();
                        assert_eq!(md.nlink(), 2, "nlink of {}", l.display());
                        assert_eq!(md.ino(), ino(&b), "hard link ino");
                        assert_eq!(fs::read_to_string(&l).unwrap(), content);
                        if i % 3 != 0 {
                            fs::remove_file(&b).unwrap();
                            assert_eq!(fs::symlink_metadata(&l).unwrap().nlink(), 1);
                            fs::remove_file(&l).unwrap();
                        }
                        if i % 50 == 0 {
                            let sub = d.join(format!("w{w}-dir{i}"));
                            fs::create_dir(&sub).unwrap();
                            fs::write(sub.join("x"), b"x").unwrap();
                            fs::rename(&sub, d.join(format!("w{w}-dir{i}-moved"))).unwrap();
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            if let Err(e) = w.join() {
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                std::panic::resume_unwind(e);
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let expect: usize = 4 * (100 * 2 + 6);
    let got = names(&d).unwrap();
    assert_eq!(got.len(), expect, "entries after churn");
    assert_trees_eq("mount", &snapshot(&d), "hot dir", &snapshot(&m.h("churn")));
}

// ---------------------------------------------------------------------------
// Executables: ETXTBSY
// ---------------------------------------------------------------------------

/// Spawns `exe` (retrying ETXTBSY caused by other test threads forking while
/// the file was open for writing).
fn spawn_retry(exe: &Path) -> std::process::Child {
    for _ in 0..50 {
        match std::process::Command::new(exe).arg("30").spawn() {
            Ok(c) => return c,
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => sleep(Duration::from_millis(20)),
            Err(e) => panic!("spawn {}: {e}", exe.display()),
        }
    }
    panic!("spawn {}: ETXTBSY 50 times", exe.display());
}

#[test]
fn running_executable_is_text_busy() {
    let m = TestMount::new();
    let t = m.twin("etxtbsy");
    let sleep_bin = fs::read("/bin/sleep").expect("/bin/sleep");
    t.run(|d, tr| {
        let exe = d.join("sleeper");
        fs::write(&exe, &sleep_bin).unwrap();
        set_mode(&exe, 0o755).unwrap();
        let mut child = spawn_retry(&exe);
        tr.res(
            "open O_WRONLY",
            open_raw(&exe, libc::O_WRONLY, 0).map(|_| ()),
        );
        tr.res("open O_RDWR", open_raw(&exe, libc::O_RDWR, 0).map(|_| ()));
        tr.res(
            "open O_RDONLY|O_TRUNC",
            open_raw(&exe, libc::O_RDONLY | libc::O_TRUNC, 0).map(|_| ()),
        );
        tr.res("truncate", truncate_path(&exe, 0));
        // A failed open/truncate must not have destroyed the program.
        tr.res(
            "size still intact",
            fs::metadata(&exe).map(|m| m.len() == sleep_bin.len() as u64),
        );
        tr.rec("process still running", child.try_wait().unwrap().is_none());
        child.kill().unwrap();
        child.wait().unwrap();
        tr.res(
            "open O_WRONLY after exit",
            open_raw(&exe, libc::O_WRONLY, 0).map(|_| ()),
        );
    });
}

/// With a descriptor budget of 16, almost every inode is reached through its
/// kernel file handle instead of a held descriptor: everything must still work.
#[test]
fn inodes_beyond_the_descriptor_budget() {
    let m = TestMount::with_options(MountOptions {
        env: vec![("TIERFS_FD_BUDGET".into(), "16".into())],
        ..Default::default()
    });
    let dir = m.m("many");
    fs::create_dir(&dir).unwrap();
    for i in 0..500 {
        fs::write(dir.join(format!("f{i}")), format!("content {i}")).unwrap();
    }
    fs::create_dir(dir.join("sub")).unwrap();
    // Drop the kernel's caches so lookups and getattrs reach the daemon again.
    fs::write("/proc/sys/vm/drop_caches", "3").unwrap();
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 501);
    for i in 0..500 {
        let p = dir.join(format!("f{i}"));
        let md = fs::metadata(&p).unwrap();
        assert_eq!(
            md.ino(),
            fs::metadata(m.h(format!("many/f{i}"))).unwrap().ino()
        );
        assert_eq!(fs::read_to_string(&p).unwrap(), format!("content {i}"));
    }
    fs::set_permissions(dir.join("f7"), fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(fs::metadata(m.h("many/f7")).unwrap().mode() & 0o777, 0o600);
    fs::rename(dir.join("f8"), dir.join("sub/f8")).unwrap();
    assert_eq!(fs::read_to_string(dir.join("sub/f8")).unwrap(), "content 8");
    fs::hard_link(dir.join("f9"), dir.join("f9-link")).unwrap();
    assert_eq!(fs::metadata(dir.join("f9")).unwrap().nlink(), 2);
    for i in 10..500 {
        fs::remove_file(dir.join(format!("f{i}"))).unwrap();
    }
    // f0..f9 without f8 (moved into sub), plus sub and f9-link.
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 11);
}
