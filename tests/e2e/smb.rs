//! Samba on a tierfs mount (issue 17, SMB part): a real `smbd` on 127.0.0.1
//! and a free port, started and stopped by the test with a private config,
//! shares a directory of an `allow_other` mount; `smbclient` is the client.
//!
//! Cold files must show `FILE_ATTRIBUTE_OFFLINE` (from the `user.DOSATTRIB`
//! blob the mount shows for stubs), recalled and hot ones must not, `ls` and
//! `allinfo` must download nothing, `get` returns the exact bytes and `put`
//! over a cold file works. Needs apt `samba smbclient` (`scripts/setup`).

use crate::common;

use std::collections::BTreeMap;
use std::fs;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::tiering::{ask, cold_mount, content, migrate, state, write_old};
use common::{TestMount, wait_until};
use tierfs::control::Request;

const OFFLINE: u32 = 0x1000;
const RECALL_ON_DATA_ACCESS: u32 = 0x0040_0000;
const ARCHIVE: u32 = 0x20;
const PASSWORD: &str = "tierfs-smb-test";

/// Samba's v5 `user.DOSATTRIB` blob for a file with attributes `attrib`
/// (valid: attrib and creation time), as smbd 4.17 writes it.
fn dosattrib_v5(attrib: u32) -> Vec<u8> {
    let mut b = vec![0, 0, 5, 0, 5, 0, 0, 0, 0x11, 0, 0, 0];
    b.extend_from_slice(&attrib.to_le_bytes());
    b.extend_from_slice(&0x01dd_85ef_140e_fd5bu64.to_le_bytes());
    b
}

/// The attributes in a v5 blob (the layout above).
fn attrib_of(blob: &[u8]) -> u32 {
    assert_eq!(&blob[..4], &[0, 0, 5, 0], "not a v5 blob: {blob:02x?}");
    u32::from_le_bytes(blob[12..16].try_into().unwrap())
}

/// A running smbd with a private config under `dir`; killed on drop.
struct Smbd {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Smbd {
    /// Starts smbd sharing `path` as `share`, with root as its one user.
    fn start(dir: &Path, path: &Path) -> Smbd {
        for tool in ["smbd", "smbclient", "smbpasswd"] {
            assert!(
                Command::new("sh")
                    .args(["-c", &format!("command -v {tool}")])
                    .stdout(Stdio::null())
                    .status()
                    .unwrap()
                    .success(),
                "{tool} is missing: run scripts/setup (apt samba smbclient)"
            );
        }
        fs::create_dir_all(dir).unwrap();
        let sub = |name: &str| {
            let d = dir.join(name);
            fs::create_dir_all(&d).unwrap();
            d.display().to_string()
        };
        // A free port: bound, noted, released (smbd binds it right after).
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conf = format!(
            "[global]\n\
             server role = standalone server\n\
             interfaces = lo\n\
             bind interfaces only = yes\n\
             smb ports = {port}\n\
             disable netbios = yes\n\
             map to guest = never\n\
             private dir = {private}\n\
             lock directory = {lock}\n\
             state directory = {state}\n\
             cache directory = {cache}\n\
             pid directory = {pid}\n\
             ncalrpc dir = {ncalrpc}\n\
             log file = {dir}/log.%m\n\
             \n\
             [share]\n\
             path = {path}\n\
             read only = no\n\
             store dos attributes = yes\n\
             ea support = yes\n",
            private = sub("private"),
            lock = sub("lock"),
            state = sub("state"),
            cache = sub("cache"),
            pid = sub("pid"),
            ncalrpc = sub("ncalrpc"),
            dir = dir.display(),
            path = path.display(),
        );
        let conf_path = dir.join("smb.conf");
        fs::write(&conf_path, conf).unwrap();
        let mut passwd = Command::new("smbpasswd")
            .arg("-c")
            .arg(&conf_path)
            .args(["-a", "-s", "root"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        passwd
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{PASSWORD}\n{PASSWORD}\n").as_bytes())
            .unwrap();
        let out = passwd.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "smbpasswd: {}",
            common::tiering::text(&out)
        );

        let log = fs::File::create(dir.join("smbd.out")).unwrap();
        let child = Command::new("smbd")
            .args([
                "--foreground",
                "--no-process-group",
                "--debug-stdout",
                "-d",
                "1",
            ])
            .arg("-s")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            // Its own process group, so that drop ends smbd and its helpers.
            .process_group(0)
            .spawn()
            .unwrap();
        let mut smbd = Smbd {
            child,
            dir: dir.to_path_buf(),
            port,
        };
        let up = wait_until(Duration::from_secs(30), || {
            if let Ok(Some(status)) = smbd.child.try_wait() {
                panic!("smbd exited at start: {status}\n{}", smbd.log());
            }
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(
            up.is_some(),
            "smbd not listening after 30 s\n{}",
            smbd.log()
        );
        smbd
    }

    fn log(&self) -> String {
        let mut s = fs::read_to_string(self.dir.join("smbd.out")).unwrap_or_default();
        if let Ok(rd) = fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with("log.") {
                    s += &format!("--- {}\n", e.path().display());
                    s += &fs::read_to_string(e.path()).unwrap_or_default();
                }
            }
        }
        s
    }

    /// Runs `smbclient -c cmds` on the share in `cwd` (where `get` writes
    /// and `put` reads); fails the test on any error.
    fn client(&self, cwd: &Path, cmds: &str) -> String {
        let out = Command::new("smbclient")
            .arg("//127.0.0.1/share")
            .args(["-p", &self.port.to_string()])
            .args(["-U", &format!("root%{PASSWORD}")])
            .arg("-s")
            .arg(self.dir.join("smb.conf"))
            .args(["-c", cmds])
            .current_dir(cwd)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && !text.contains("NT_STATUS_"),
            "smbclient -c {cmds:?}: {}\n{text}\n--- smbd\n{}",
            out.status,
            self.log()
        );
        text
    }
}

impl Drop for Smbd {
    fn drop(&mut self) {
        let pgid = self.child.id() as libc::pid_t;
        // SAFETY: signals the process group this test started.
        unsafe { libc::kill(-pgid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: as above; whatever of the group is left.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// `ls` output: name -> attribute letters.
fn ls_attrs(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| {
            let t: Vec<&str> = l.split_whitespace().collect();
            // "  NAME  ATTRS  SIZE  Day Mon dd hh:mm:ss yyyy"
            (t.len() == 8 && t[2].parse::<u64>().is_ok())
                .then(|| (t[0].to_string(), t[1].to_string()))
        })
        .collect()
}

/// `allinfo` output of several files: altname -> attribute word.
fn allinfo_attrs(out: &str) -> BTreeMap<String, u32> {
    let mut map = BTreeMap::new();
    let mut name = None;
    for l in out.lines() {
        if let Some(n) = l.strip_prefix("altname: ") {
            name = Some(n.trim().to_string());
        } else if let Some(a) = l.strip_prefix("attributes:") {
            let hex = a.rsplit('(').next().unwrap().trim_end_matches(')');
            let attrib = u32::from_str_radix(hex.trim(), 16).unwrap();
            map.insert(name.take().expect("attributes before altname"), attrib);
        }
    }
    map
}

/// Bytes fetched from the remote by requests made in `[from, to)` (ns),
/// from the cost ledger.
fn downloaded(m: &TestMount, from: i64, to: i64) -> u64 {
    let conn = rusqlite::Connection::open_with_flags(
        m.catalog(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    conn.query_row(
        "SELECT COALESCE(SUM(bytes), 0) FROM ledger
         WHERE op = 'get' AND ts_ns >= ?1 AND ts_ns < ?2",
        [from, to],
        |r| r.get::<_, i64>(0),
    )
    .unwrap() as u64
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

const FILES: usize = 50;

#[test]
fn smb_clients_see_cold_files_offline_and_listing_them_downloads_nothing() {
    let mut m = cold_mount();

    // 50 files (8.3 names: smbclient's allinfo names them by altname); the
    // even ones carry the blob Samba wrote for them (ARCHIVE), the odd ones
    // none. One of 9 MiB (three chunks) for `get`.
    let mut want = BTreeMap::new();
    for i in 0..FILES {
        let name = format!("c{i:02}.bin");
        let len = if i == 7 { 9 << 20 } else { 1000 + i * 2011 };
        let data = content(100 + i as u64, len);
        write_old(&m.m(format!("share/cold/{name}")), &data, 30);
        if i.is_multiple_of(2) {
            common::setxattr(
                &m.m(format!("share/cold/{name}")),
                "user.DOSATTRIB",
                &dosattrib_v5(ARCHIVE),
                0,
                false,
            )
            .unwrap();
        }
        want.insert(name, data);
    }
    let recalled = content(99, 300_000);
    write_old(&m.m("share/cold/recalled.bin"), &recalled, 30);
    let summary = migrate(&m);
    for name in want.keys().chain([&"recalled.bin".to_string()]) {
        assert_eq!(
            state(&m.m(format!("share/cold/{name}"))),
            "cold",
            "{name}: {summary:?}\n{}",
            m.log_banner()
        );
    }
    // One file read back in full: recalled, no longer offline.
    assert_eq!(fs::read(m.m("share/cold/recalled.bin")).unwrap(), recalled);
    assert!(
        wait_until(Duration::from_secs(30), || state(
            &m.m("share/cold/recalled.bin")
        ) != "cold")
        .is_some(),
        "recalled.bin still cold after a full read\n{}",
        m.log_banner()
    );
    fs::write(m.m("share/hot.txt"), b"hot").unwrap();

    // Through the mount itself: the stub shows the bits, its stored blob
    // does not have them, and listxattr names the attribute.
    let c00 = m.m("share/cold/c00.bin");
    let shown = common::getxattr(&c00, "user.DOSATTRIB").unwrap();
    assert_eq!(attrib_of(&shown), ARCHIVE | OFFLINE | RECALL_ON_DATA_ACCESS);
    let stored = common::getxattr(&m.h("share/cold/c00.bin"), "user.DOSATTRIB").unwrap();
    assert_eq!(stored, dosattrib_v5(ARCHIVE));
    let c01 = m.m("share/cold/c01.bin");
    assert!(
        common::listxattr(&c01, false)
            .unwrap()
            .contains(&"user.DOSATTRIB".to_string())
    );
    assert_eq!(
        attrib_of(&common::getxattr(&c01, "user.DOSATTRIB").unwrap()),
        OFFLINE | RECALL_ON_DATA_ACCESS
    );
    // A write of the bits through the mount never stores them.
    common::setxattr(
        &m.m("share/hot.txt"),
        "user.DOSATTRIB",
        &dosattrib_v5(ARCHIVE | OFFLINE | RECALL_ON_DATA_ACCESS),
        0,
        false,
    )
    .unwrap();
    assert_eq!(
        common::getxattr(&m.h("share/hot.txt"), "user.DOSATTRIB").unwrap(),
        dosattrib_v5(ARCHIVE)
    );

    let smbd = Smbd::start(&m.root().join("smb"), &m.m("share"));
    let local = m.root().join("client");
    fs::create_dir(&local).unwrap();

    // `ls` and `allinfo` of every file.
    let t0 = now_ns();
    let started = Instant::now();
    let ls = ls_attrs(&smbd.client(&local, "cd cold; ls"));
    let took_ls = started.elapsed();
    let names: Vec<String> = want
        .keys()
        .cloned()
        .chain(["recalled.bin".to_string()])
        .collect();
    let cmds: Vec<String> = names.iter().map(|n| format!("allinfo cold/{n}")).collect();
    let started = Instant::now();
    let info = allinfo_attrs(&smbd.client(&local, &cmds.join("; ")));
    let took_allinfo = started.elapsed();
    let root_ls = ls_attrs(&smbd.client(&local, "ls"));
    let hot_info = allinfo_attrs(&smbd.client(&local, "allinfo hot.txt"));
    for name in want.keys() {
        let i: usize = name[1..name.len() - 4].parse().unwrap();
        let letters = &ls[name];
        let attrib = info[name];
        assert!(letters.contains('o'), "ls shows {name} as {letters:?}");
        assert_ne!(attrib & OFFLINE, 0, "allinfo {name}: {attrib:#x}");
        if i.is_multiple_of(2) {
            assert!(letters.contains('A'), "{name} lost ARCHIVE: {letters:?}");
            assert_ne!(attrib & ARCHIVE, 0, "{name}: {attrib:#x}");
        }
    }
    assert!(
        !ls["recalled.bin"].contains('o'),
        "{:?}",
        ls["recalled.bin"]
    );
    assert_eq!(info["recalled.bin"] & OFFLINE, 0);
    assert!(
        !root_ls["hot.txt"].contains('o'),
        "{:?}",
        root_ls["hot.txt"]
    );
    assert_eq!(hot_info["hot.txt"] & OFFLINE, 0);
    for name in want.keys() {
        assert_eq!(
            state(&m.m(format!("share/cold/{name}"))),
            "cold",
            "{name} after ls and allinfo\n{}",
            m.log_banner()
        );
    }
    ask(&m, Request::Sync);
    let t1 = now_ns();

    // `get` returns the exact bytes (the multi-chunk file and two small).
    for name in ["c07.bin", "c10.bin", "c33.bin"] {
        smbd.client(&local, &format!("get cold/{name} {name}"));
        assert!(
            fs::read(local.join(name)).unwrap() == want[name],
            "get {name}: wrong bytes"
        );
    }
    let t2 = now_ns();

    // `put` over a cold file.
    let new = content(4242, 70_000);
    fs::write(local.join("new.bin"), &new).unwrap();
    smbd.client(&local, "put new.bin cold/c20.bin");
    assert_eq!(fs::read(m.m("share/cold/c20.bin")).unwrap(), new);
    ask(&m, Request::Sync);
    assert_eq!(state(&m.m("share/cold/c20.bin")), "hot");
    let after_put = allinfo_attrs(&smbd.client(&local, "allinfo cold/c20.bin"));
    assert_eq!(after_put["c20.bin"] & OFFLINE, 0, "{after_put:?}");
    if let Ok(blob) = common::getxattr(&m.h("share/cold/c20.bin"), "user.DOSATTRIB") {
        assert_eq!(
            attrib_of(&blob) & (OFFLINE | RECALL_ON_DATA_ACCESS),
            0,
            "Samba's write-back stored the offline bits"
        );
    }
    let t3 = now_ns();

    drop(smbd);
    // A clean unmount flushes the ledger.
    m.unmount();
    let (ls_bytes, get_bytes, put_bytes) = (
        downloaded(&m, t0, t1),
        downloaded(&m, t1, t2),
        downloaded(&m, t2, t3),
    );
    eprintln!(
        "smb: ls {took_ls:?}, allinfo of {} files {took_allinfo:?}; downloaded: \
         ls+allinfo {ls_bytes} B, get {get_bytes} B, put {put_bytes} B",
        names.len()
    );
    assert_eq!(ls_bytes, 0, "ls and allinfo of cold files downloaded data");
    let got: u64 = ["c07.bin", "c10.bin", "c33.bin"]
        .iter()
        .map(|n| want[*n].len() as u64)
        .sum();
    assert!(
        get_bytes >= got,
        "get downloaded {get_bytes} of {got} bytes"
    );
    assert_eq!(put_bytes, 0, "put over a cold file downloaded its old data");
}
