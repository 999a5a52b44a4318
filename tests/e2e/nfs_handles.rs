//! File handles on the mount, as an NFS server (nfs-ganesha's FSAL VFS, a
//! kernel nfsd) uses them: `name_to_handle_at` on files and directories, then
//! the kernel's inode cache is dropped (`echo 3 > drop_caches`) or the daemon
//! restarts and the mount is remounted, and `open_by_handle_at` must still
//! return the same file, not `ESTALE`. Drops the whole machine's caches.

use crate::common;

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::tiering::{add_rule, content, migrate, state, write_old};
use common::{MountOptions, TestMount, cpath};

const MAX_HANDLE_BYTES: usize = 128;

/// `struct file_handle` with room for any handle.
#[repr(C)]
struct Handle {
    handle_bytes: libc::c_uint,
    handle_type: libc::c_int,
    f_handle: [u8; MAX_HANDLE_BYTES],
}

fn name_to_handle(path: &Path) -> io::Result<Handle> {
    let mut h = Handle {
        handle_bytes: MAX_HANDLE_BYTES as libc::c_uint,
        handle_type: 0,
        f_handle: [0; MAX_HANDLE_BYTES],
    };
    let mut mount_id: libc::c_int = 0;
    let p = cpath(path);
    // SAFETY: `h` is a file_handle with MAX_HANDLE_BYTES of payload room.
    let r = unsafe {
        libc::syscall(
            libc::SYS_name_to_handle_at,
            libc::AT_FDCWD,
            p.as_ptr(),
            &mut h as *mut Handle,
            &mut mount_id as *mut libc::c_int,
            0,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(h)
}

/// `open_by_handle_at` with `mount` (any file on the mount) as the mount fd.
fn open_by_handle(mount: &File, h: &Handle, flags: i32) -> io::Result<File> {
    // SAFETY: `h` was filled by name_to_handle_at.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_by_handle_at,
            mount.as_raw_fd(),
            h as *const Handle,
            flags | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { File::from_raw_fd(fd as i32) })
}

fn drop_caches() {
    // Syncs first so dirty inodes are evictable too.
    // SAFETY: sync has no arguments.
    unsafe { libc::sync() };
    fs::write("/proc/sys/vm/drop_caches", "3").expect("drop caches (needs root)");
}

/// A file `rel` of the mount, its content and inode number, and its handle.
struct Known {
    rel: &'static str,
    ino: u64,
    data: Option<Vec<u8>>,
    handle: Handle,
}

fn know(m: &TestMount, rel: &'static str) -> Known {
    let p = m.m(rel);
    let md = fs::metadata(&p).unwrap();
    Known {
        rel,
        ino: md.ino(),
        data: md.is_file().then(|| fs::read(&p).unwrap()),
        handle: name_to_handle(&p).unwrap_or_else(|e| panic!("name_to_handle_at {rel}: {e}")),
    }
}

/// Opens every handle through the mount as it is now and checks it is the
/// same file (inode number, content, or directory listing).
fn check_handles(m: &TestMount, known: &[Known], when: &str) {
    let mount = File::open(m.mnt()).unwrap();
    for k in known {
        let flags = if k.data.is_some() {
            libc::O_RDONLY
        } else {
            libc::O_RDONLY | libc::O_DIRECTORY
        };
        let mut f = open_by_handle(&mount, &k.handle, flags).unwrap_or_else(|e| {
            panic!(
                "open_by_handle_at {} {when}: {e}\n{}",
                k.rel,
                m.log_banner()
            )
        });
        assert_eq!(
            f.metadata().unwrap().ino(),
            k.ino,
            "{} {when}: another inode",
            k.rel
        );
        match &k.data {
            Some(data) => {
                let mut got = Vec::new();
                f.read_to_end(&mut got).unwrap();
                assert!(got == *data, "{} {when}: other content", k.rel);
            }
            None => {
                let via = Path::new("/proc/self/fd").join(f.as_raw_fd().to_string());
                let mut names: Vec<_> = fs::read_dir(&via)
                    .unwrap()
                    .map(|e| e.unwrap().file_name())
                    .collect();
                let mut want: Vec<_> = fs::read_dir(m.m(k.rel))
                    .unwrap()
                    .map(|e| e.unwrap().file_name())
                    .collect();
                names.sort();
                want.sort();
                assert_eq!(names, want, "{} {when}: other entries", k.rel);
            }
        }
    }
}

/// Files and directories (nested, so the kernel reconnects them through
/// lookups of ".."), then the same after the caches are dropped.
#[test]
fn handles_survive_dropped_caches() {
    let m = TestMount::new();
    fs::create_dir_all(m.m("d1/d2/d3")).unwrap();
    fs::write(m.m("top.txt"), b"top").unwrap();
    fs::write(m.m("d1/d2/f.bin"), content(1, 70_000)).unwrap();
    fs::write(m.m("d1/d2/d3/g"), b"deep").unwrap();
    let known: Vec<Known> = [
        "top.txt",
        "d1/d2/f.bin",
        "d1/d2/d3/g",
        "d1",
        "d1/d2",
        "d1/d2/d3",
    ]
    .into_iter()
    .map(|rel| know(&m, rel))
    .collect();
    check_handles(&m, &known, "while cached");
    drop_caches();
    check_handles(&m, &known, "after drop_caches");
    drop_caches();
    check_handles(&m, &known, "after a second drop_caches");
}

/// A deleted file's handle is stale, and a new file that gets its inode
/// number is not opened through the old handle.
#[test]
fn handle_of_a_deleted_file_is_stale() {
    let m = TestMount::new();
    fs::write(m.m("gone"), b"old").unwrap();
    let k = know(&m, "gone");
    fs::remove_file(m.m("gone")).unwrap();
    drop_caches();
    let mount = File::open(m.mnt()).unwrap();
    match open_by_handle(&mount, &k.handle, libc::O_RDONLY) {
        Err(e) => assert_eq!(e.raw_os_error(), Some(libc::ESTALE), "{e}"),
        Ok(f) => panic!("deleted file opened: inode {}", f.metadata().unwrap().ino()),
    }
}

/// A cold file (migrated to a `file://` remote) opens by handle after the
/// caches are dropped and reads back its content.
#[test]
fn cold_file_handle_survives_dropped_caches() {
    let mut m = TestMount::unmounted(MountOptions::default());
    let cloud = m.root().join("cloud");
    fs::create_dir(&cloud).unwrap();
    m.set_options(MountOptions {
        extra_top: "migrate_interval = \"off\"\n".into(),
        extra_sections: format!("[remote.cloud]\nurl = \"file://{}\"\n", cloud.display()),
        ..Default::default()
    });
    m.mount();
    write_old(&m.m("cold/a.bin"), &content(2, 300_000), 10);
    add_rule(&m, "cold/* -> cloud");
    let s = migrate(&m);
    assert_eq!(s.released, 1, "{s:?}\n{}", m.log_banner());
    assert_eq!(state(&m.m("cold/a.bin")), "cold");
    // Handles taken while cold; `know` reads the file, which may recall it,
    // so take the handle of a second cold file without reading it.
    write_old(&m.m("cold/b.bin"), &content(3, 200_000), 10);
    let s = migrate(&m);
    assert_eq!(s.released, 1, "{s:?}\n{}", m.log_banner());
    let b = Known {
        rel: "cold/b.bin",
        ino: fs::metadata(m.m("cold/b.bin")).unwrap().ino(),
        data: Some(content(3, 200_000)),
        handle: name_to_handle(&m.m("cold/b.bin")).unwrap(),
    };
    assert_eq!(state(&m.m("cold/b.bin")), "cold");
    drop_caches();
    check_handles(&m, &[b], "cold, after drop_caches");
}

/// Handles taken before a clean daemon restart open the same files and
/// directories on the new mount.
#[test]
fn handles_survive_a_daemon_restart() {
    let mut m = TestMount::new();
    fs::create_dir_all(m.m("r1/r2")).unwrap();
    fs::write(m.m("r1/r2/file"), content(4, 10_000)).unwrap();
    fs::write(m.m("plain"), b"plain").unwrap();
    let known: Vec<Known> = ["plain", "r1/r2/file", "r1", "r1/r2"]
        .into_iter()
        .map(|rel| know(&m, rel))
        .collect();
    // Some forgotten before the restart, some still known at unmount.
    drop_caches();
    let late = know(&m, "r1/r2/file");
    m.remount();
    check_handles(&m, &known, "after a restart");
    check_handles(&m, &[late], "after a restart (known at unmount)");
    drop_caches();
    check_handles(&m, &known, "after a restart and drop_caches");
}
