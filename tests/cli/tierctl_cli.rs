//! Runs the real `tierctl` binary: config lookup and errors, `status` on a
//! catalog built here, and `status` against an in-process control server.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tierfs::catalog::{Catalog, CatalogOptions, FileEvent};
use tierfs::config::Config;
use tierfs::control::{self, DaemonStatus, ErrorKind, Reply, Request, Response};

const TIERCTL: &str = env!("CARGO_BIN_EXE_tierctl");

/// A temporary installation: `hot/` and `tierfs.toml` (default catalog and
/// socket paths, beside `hot/`).
struct Setup {
    dir: tempfile::TempDir,
    config_path: PathBuf,
    config: Config,
}

impl Setup {
    fn new() -> Setup {
        Setup::with_config("hot_dir = \"hot\"\n")
    }

    fn with_config(text: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("hot")).unwrap();
        let config_path = dir.path().join("tierfs.toml");
        std::fs::write(&config_path, text).unwrap();
        let config = Config::load(&config_path).unwrap();
        Setup {
            dir,
            config_path,
            config,
        }
    }

    fn mountpoint(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }

    /// `tierctl -c <config> ARGS…`.
    fn tierctl(&self, args: &[&str]) -> Output {
        let mut cmd = tierctl_cmd();
        cmd.arg("-c").arg(&self.config_path).args(args);
        cmd.output().unwrap()
    }

    fn tierctl_json(&self, args: &[&str]) -> Value {
        let out = self.tierctl(args);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", describe(&out)))
    }

    /// Fills the catalog with `files` (path, size) and flushes it.
    fn fill_catalog(&self, files: &[(String, u64)]) {
        let catalog = Catalog::open(&self.config.catalog, CatalogOptions::default()).unwrap();
        for (i, (path, size)) in files.iter().enumerate() {
            catalog.send(FileEvent::Upsert {
                path: PathBuf::from(path),
                size: *size,
                mtime_ns: MTIME_NS,
                ino: 1000 + i as u64,
            });
        }
        catalog.flush().unwrap();
        catalog.close().unwrap();
    }
}

/// 2023-11-14T22:13:20Z.
const MTIME_NS: i64 = 1_700_000_000_000_000_000;

/// `tierctl` with no config from the environment.
fn tierctl_cmd() -> Command {
    let mut cmd = Command::new(TIERCTL);
    cmd.env_remove("TIERFS_CONFIG").env_remove("RUST_LOG");
    cmd
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        stdout(out),
        stderr(out)
    )
}

/// The line of `text` whose first word is `first`.
fn line_starting<'a>(text: &'a str, first: &str) -> &'a str {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(first))
        .unwrap_or_else(|| panic!("no line starting with {first:?} in:\n{text}"))
}

/// The row of the STATE/FILES/BYTES table for `state` (or "total").
fn table_row<'a>(text: &'a str, state: &str) -> &'a str {
    let table = &text[text
        .find("STATE")
        .unwrap_or_else(|| panic!("no table in:\n{text}"))..];
    line_starting(table, state)
}

/// 1,234 small files plus two large ones: 1,236 files in all.
fn sample_files() -> (Vec<(String, u64)>, u64) {
    let mut files: Vec<(String, u64)> = (0..1234)
        .map(|i| (format!("small/f{i:04}.txt"), 100))
        .collect();
    files.push(("big/video.mkv".into(), 3 << 29)); // 1.5 GiB
    files.push(("docs/report.pdf".into(), 2048));
    let total = files.iter().map(|(_, s)| s).sum();
    (files, total)
}

// ------------------------------------------------------------ config errors

#[test]
fn missing_config_exits_2_and_lists_where_it_looked() {
    if Path::new("/etc/tierfs/tierfs.toml").exists() {
        eprintln!("skipped: this machine has /etc/tierfs/tierfs.toml");
        return;
    }
    let out = tierctl_cmd().arg("status").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = stderr(&out);
    for needle in [
        "no tierfs config file found",
        "--config",
        "not given",
        "$TIERFS_CONFIG",
        "not set",
        "/etc/tierfs/tierfs.toml (does not exist)",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
}

#[test]
fn missing_config_from_env_or_flag_is_named() {
    let out = tierctl_cmd()
        .env("TIERFS_CONFIG", "/nonexistent/env.toml")
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = stderr(&out);
    assert!(
        err.contains("$TIERFS_CONFIG") && err.contains("/nonexistent/env.toml (does not exist)"),
        "{err}"
    );

    // The flag wins over the environment.
    let out = tierctl_cmd()
        .env("TIERFS_CONFIG", "/nonexistent/env.toml")
        .args(["status", "--config", "/nonexistent/flag.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = stderr(&out);
    assert!(
        err.contains("/nonexistent/flag.toml (does not exist)"),
        "{err}"
    );
    assert!(!err.contains("env.toml"), "{err}");
}

#[test]
fn config_from_env_is_used() {
    let setup = Setup::new();
    let out = tierctl_cmd()
        .env("TIERFS_CONFIG", &setup.config_path)
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(stdout(&out).contains(&setup.config_path.display().to_string()));
}

#[test]
fn bad_config_key_exits_2_naming_the_key() {
    let setup = Setup::new();
    std::fs::write(&setup.config_path, "hot_dir = \"hot\"\nhot_dri = \"x\"\n").unwrap();
    let out = setup.tierctl(&["status"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = stderr(&out);
    assert!(err.contains("hot_dri"), "{err}");
    assert!(
        err.contains(&setup.config_path.display().to_string()),
        "{err}"
    );

    std::fs::write(
        &setup.config_path,
        "hot_dir = \"hot\"\n[mount]\nthreads = 0\n",
    )
    .unwrap();
    let out = setup.tierctl(&["status"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(stderr(&out).contains("mount.threads"), "{}", describe(&out));
}

#[test]
fn bad_arguments_exit_2() {
    let out = tierctl_cmd()
        .args(["status", "--frobnicate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let out = tierctl_cmd().output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}

#[test]
fn help_texts_have_examples() {
    for args in [&["--help"][..], &["status", "--help"]] {
        let out = tierctl_cmd().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        let text = stdout(&out);
        assert!(text.contains("Examples:"), "{args:?}:\n{text}");
        assert!(text.contains("--config"), "{args:?}:\n{text}");
    }
    let out = tierctl_cmd().args(["status", "--help"]).output().unwrap();
    assert!(stdout(&out).contains("--json"));
}

// ------------------------------------------------------------ status, daemon down

#[test]
fn status_reports_catalog_counts_and_not_running() {
    let setup = Setup::new();
    let (files, total) = sample_files();
    setup.fill_catalog(&files);

    let out = setup.tierctl(&["status"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = stdout(&out);
    assert!(
        line_starting(&text, "daemon").contains("not running"),
        "{text}"
    );
    assert!(
        text.contains(&setup.config.catalog.display().to_string()),
        "{text}"
    );
    assert!(
        line_starting(&text, "schema").contains("version 5"),
        "{text}"
    );
    assert!(line_starting(&text, "STATE").contains("FILES"), "{text}");
    let hot = table_row(&text, "hot");
    assert!(hot.contains("1,236") && hot.contains("1.5 GiB"), "{text}");
    let all = table_row(&text, "total");
    assert!(all.contains("1,236") && all.contains("1.5 GiB"), "{text}");

    let json = setup.tierctl_json(&["status", "--json"]);
    assert_eq!(json["daemon"]["state"], "not_running", "{json}");
    assert!(
        json["daemon"]["message"]
            .as_str()
            .unwrap()
            .contains("no control socket at"),
        "{json}"
    );
    let catalog = &json["catalog"];
    assert_eq!(catalog["state"], "ok", "{json}");
    assert_eq!(
        catalog["path"],
        setup.config.catalog.display().to_string().as_str()
    );
    assert_eq!(catalog["schema_version"], 5);
    assert_eq!(catalog["total_files"], 1236);
    assert_eq!(catalog["total_bytes"], total);
    assert!(catalog["db_bytes"].as_u64().unwrap() > 0, "{json}");
    let by_state = catalog["by_state"].as_array().unwrap();
    let hot = by_state
        .iter()
        .find(|s| s["state"] == "hot")
        .unwrap_or_else(|| panic!("no hot row: {json}"));
    assert_eq!(hot["files"], 1236);
    assert_eq!(hot["bytes"], total);
    assert_eq!(
        json["config"],
        setup.config_path.display().to_string().as_str()
    );
}

#[test]
fn status_without_catalog_says_so() {
    let setup = Setup::new();
    let out = setup.tierctl(&["status"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = stdout(&out);
    assert!(text.contains("does not exist yet"), "{text}");
    assert!(
        !setup.config.catalog.exists(),
        "status must not create the catalog"
    );

    let json = setup.tierctl_json(&["status", "--json"]);
    assert_eq!(json["catalog"]["state"], "absent", "{json}");

    let json = setup.tierctl_json(&["status", "--json", "docs/a.pdf"]);
    assert_eq!(json["catalog_exists"], false, "{json}");
    assert_eq!(json["in_catalog"], false, "{json}");
}

#[test]
fn status_of_one_file() {
    let setup = Setup::new();
    let (files, _) = sample_files();
    setup.fill_catalog(&files);

    let out = setup.tierctl(&["status", "docs/report.pdf"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = stdout(&out);
    assert!(line_starting(&text, "state").contains("hot"), "{text}");
    assert!(
        line_starting(&text, "size").contains("2.0 KiB (2,048 bytes)"),
        "{text}"
    );
    assert!(
        line_starting(&text, "modified").contains("2023-11-14T22:13:20Z"),
        "{text}"
    );
    assert!(
        line_starting(&text, "last").contains("never recorded"),
        "{text}"
    );

    // Same file by other spellings: ./, .., absolute under the hot dir.
    let hot_path = setup.config.hot_dir.join("docs/report.pdf");
    for spelling in ["./docs/../docs/report.pdf", hot_path.to_str().unwrap()] {
        let json = setup.tierctl_json(&["status", "--json", spelling]);
        assert_eq!(json["path"], "docs/report.pdf", "{spelling}: {json}");
        assert_eq!(json["in_catalog"], true, "{spelling}: {json}");
        assert_eq!(json["size"], 2048);
        assert_eq!(json["state"], "hot");
        assert_eq!(json["mtime_ns"], MTIME_NS);
        assert_eq!(json["mtime"], "2023-11-14T22:13:20Z");
        assert_eq!(json["last_access_ns"], Value::Null);
    }

    let out = setup.tierctl(&["status", "docs/missing.pdf"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        stdout(&out).contains("docs/missing.pdf: not in catalog"),
        "{}",
        describe(&out)
    );
    let json = setup.tierctl_json(&["status", "--json", "docs/missing.pdf"]);
    assert_eq!(json["in_catalog"], false, "{json}");
}

/// Names with terminal escapes, line breaks and bytes that are not UTF-8
/// are printed escaped (one line, no control character) and kept exact in
/// JSON (issue 15, finding 7).
#[test]
fn status_of_a_hostile_name_is_escaped_for_humans_and_exact_in_json() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let setup = Setup::new();
    let raw = b"docs/\x1b]0;owned\x07\nstate     cold\r\xff.txt";
    let catalog = Catalog::open(&setup.config.catalog, CatalogOptions::default()).unwrap();
    catalog.send(FileEvent::Upsert {
        path: PathBuf::from(OsStr::from_bytes(raw)),
        size: 7,
        mtime_ns: MTIME_NS,
        ino: 77,
    });
    catalog.flush().unwrap();
    catalog.close().unwrap();
    let arg = OsStr::from_bytes(raw);
    let out = tierctl_cmd()
        .arg("-c")
        .arg(&setup.config_path)
        .arg("status")
        .arg(arg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = stdout(&out);
    assert!(
        text.contains("docs/\\x1b]0;owned\\x07\\nstate     cold\\r\\xff.txt"),
        "{text}"
    );
    assert!(
        !out.stdout.iter().any(|&b| b < 0x20 && b != b'\n'),
        "raw control bytes: {text:?}"
    );
    assert!(line_starting(&text, "state").contains("hot"), "{text}");

    let out = tierctl_cmd()
        .arg("-c")
        .arg(&setup.config_path)
        .args(["status", "--json"])
        .arg(arg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(json["path"], serde_json::json!({ "hex": hex }), "{json}");
    assert_eq!(json["in_catalog"], true, "{json}");

    // Not catalogued: the message quotes the name escaped, too.
    let out = tierctl_cmd()
        .arg("-c")
        .arg(&setup.config_path)
        .arg("status")
        .arg(OsStr::from_bytes(b"docs/x\x1b[2J\nforged"))
        .output()
        .unwrap();
    assert!(
        stdout(&out).contains("docs/x\\x1b[2J\\nforged: not in catalog"),
        "{}",
        describe(&out)
    );
}

#[test]
fn status_refuses_paths_outside_the_mount() {
    let setup = Setup::new();
    setup.fill_catalog(&[]);

    let out = setup.tierctl(&["status", "../etc/passwd"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        stderr(&out).contains("outside the mount root"),
        "{}",
        describe(&out)
    );

    // Without a daemon the mountpoint is unknown, and the message says so.
    let out = setup.tierctl(&["status", "/etc/passwd"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = stderr(&out);
    assert!(err.contains("not under the hot dir"), "{err}");
    assert!(err.contains("daemon is not running"), "{err}");
}

// ------------------------------------------------------------ status, daemon up

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Serves a fixed status on the setup's control socket.
fn fake_daemon(setup: &Setup) -> control::ControlServer {
    let status = DaemonStatus {
        pid: 4242,
        version: "0.1.0-test".into(),
        mountpoint: setup.mountpoint(),
        hot_dir: setup.config.hot_dir.clone(),
        started_at_unix: now_unix() - 3_720,
        passthrough: true,
        open_files: 1_500,
        catalog_queue: 7,
        catalog_pending_writes: 0,
        catalog_write_failures: 0,
        catalog_dropped_writes: 0,
    };
    let handler: control::Handler = Arc::new(move |req| match req {
        Request::Status => Response::Ok(Reply::Status(status.clone())),
        other => Response::error(
            ErrorKind::InvalidRequest,
            format!("{} is not supported by this test server", other.op()),
        ),
    });
    control::serve(&setup.config.control_socket, handler).unwrap()
}

#[test]
fn status_reports_a_running_daemon() {
    let setup = Setup::new();
    let (files, _) = sample_files();
    setup.fill_catalog(&files);
    let _daemon = fake_daemon(&setup);

    let out = setup.tierctl(&["status"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = stdout(&out);
    let daemon = line_starting(&text, "daemon");
    assert!(daemon.contains("running (pid 4242"), "{text}");
    assert!(daemon.contains("up 1h 2m"), "{text}");
    assert!(
        line_starting(&text, "mountpoint").contains(&setup.mountpoint().display().to_string()),
        "{text}"
    );
    assert!(
        line_starting(&text, "passthrough").ends_with("on"),
        "{text}"
    );
    assert!(line_starting(&text, "open").contains("1,500"), "{text}");
    assert!(
        line_starting(&text, "catalog").contains("7 pending"),
        "{text}"
    );
    assert!(table_row(&text, "total").contains("1,236"), "{text}");

    let json = setup.tierctl_json(&["status", "--json"]);
    let daemon = &json["daemon"];
    assert_eq!(daemon["state"], "running", "{json}");
    assert_eq!(daemon["pid"], 4242);
    assert_eq!(daemon["passthrough"], true);
    assert_eq!(daemon["catalog_queue"], 7);
    assert_eq!(
        daemon["mountpoint"],
        setup.mountpoint().display().to_string().as_str()
    );
    let uptime = daemon["uptime_secs"].as_u64().unwrap();
    assert!((3_720..3_800).contains(&uptime), "{json}");
    assert_eq!(json["catalog"]["total_files"], 1236);

    // With the daemon up, absolute paths under its mountpoint resolve.
    let under_mount = setup.mountpoint().join("docs/report.pdf");
    let json = setup.tierctl_json(&["status", "--json", under_mount.to_str().unwrap()]);
    assert_eq!(json["path"], "docs/report.pdf", "{json}");
    assert_eq!(json["in_catalog"], true, "{json}");
}

#[test]
fn status_exits_1_when_the_daemon_does_not_answer() {
    let setup = Setup::new();
    // A socket that accepts connections but never answers.
    let _silent = std::os::unix::net::UnixListener::bind(&setup.config.control_socket).unwrap();

    let out = setup.tierctl(&["status"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let daemon = line_starting(&stdout(&out), "daemon").to_string();
    assert!(
        daemon.contains("unreachable") && daemon.contains("did not answer"),
        "{daemon}"
    );

    let out = setup.tierctl(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["daemon"]["state"], "unreachable", "{json}");
}
