//! Runs the real `tierctl` binary for the tiering commands: rules with the
//! daemon down (straight to the catalog), `rule add --dry-run` and `rule
//! test` on a catalog built here, the "not running" errors, and the job
//! commands against an in-process control server standing in for the daemon.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tierfs::catalog::{Catalog, CatalogOptions, FileEvent};
use tierfs::config::Config;
use tierfs::control::{
    self, DaemonStatus, ErrorKind, JobProgress, PinSummary, Reply, Request, Response, RuleAdded,
};
use tierfs::rules::edit::PlacedRule;
use tierfs::tier::{GcSummary, MigrateSummary, RecallSummary};

const TIERCTL: &str = env!("CARGO_BIN_EXE_tierctl");

/// 2020-01-01T00:00:00Z: old enough for any `older` rule.
const OLD_NS: i64 = 1_577_836_800_000_000_000;

/// A temporary installation: `hot/`, `tierfs.toml` with remotes `cloud` and
/// `b2`, and the default catalog and socket paths beside `hot/`.
struct Setup {
    dir: tempfile::TempDir,
    config_path: PathBuf,
    config: Config,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("hot")).unwrap();
        let config_path = dir.path().join("tierfs.toml");
        let remotes = dir.path().join("remotes");
        std::fs::write(
            &config_path,
            format!(
                "hot_dir = \"hot\"\n\
                 [remote.cloud]\nurl = \"file://{0}/cloud\"\n\
                 [remote.b2]\nurl = \"file://{0}/b2\"\n",
                remotes.display()
            ),
        )
        .unwrap();
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
        Command::new(TIERCTL)
            .env_remove("TIERFS_CONFIG")
            .arg("-c")
            .arg(&self.config_path)
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs `args`, expects exit 0 and returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.tierctl(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", describe(&out));
        stdout(&out)
    }

    fn json(&self, args: &[&str]) -> Value {
        let text = self.ok(args);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {text}"))
    }

    /// Fills the catalog with `files` (path, size, mtime) and flushes it.
    fn fill_catalog(&self, files: &[(&str, u64, i64)]) {
        let catalog = Catalog::open(&self.config.catalog, CatalogOptions::default()).unwrap();
        for (i, (path, size, mtime_ns)) in files.iter().enumerate() {
            catalog.send(FileEvent::Upsert {
                path: PathBuf::from(path),
                size: *size,
                mtime_ns: *mtime_ns,
                ino: 1000 + i as u64,
            });
        }
        catalog.flush().unwrap();
        catalog.close().unwrap();
    }

    /// The stored rules' texts, in order.
    fn rule_texts(&self) -> Vec<String> {
        self.json(&["rule", "list", "--json"])["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["text"].as_str().unwrap().to_string())
            .collect()
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
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

/// A small tree: two old files under rules' reach, one new one, one pinned later.
fn sample_catalog(setup: &Setup) {
    setup.fill_catalog(&[
        ("accounting/2019/ledger.xlsx", 1000, OLD_NS),
        ("accounting/2024/budget.xlsx", 500, now_ns()),
        ("media/film.mkv", 5000, OLD_NS),
        ("legal/contract.pdf", 200, OLD_NS),
    ]);
}

// ------------------------------------------------------------ rules, daemon down

#[test]
fn rules_are_added_moved_and_removed_without_the_daemon() {
    let setup = Setup::new();
    assert!(!setup.config.catalog.exists());

    let text = setup.ok(&["rule", "add", "/accounting/*  older 1y  -> cloud"]);
    assert!(
        text.contains("added rule #1 at position 1 of 1: accounting/* older 365d -> cloud"),
        "{text}"
    );
    assert!(text.contains("daemon is not running"), "{text}");
    let added = setup.json(&["rule", "add", "--json", "media/** older 30d -> b2"]);
    assert_eq!(added["id"], 2);
    assert_eq!(added["position"], 2);
    assert_eq!(added["rules"], 2);
    assert_eq!(added["saved_via"], "catalog");
    setup.ok(&["rule", "add", "--position", "1", "pin legal/**"]);
    assert_eq!(
        setup.rule_texts(),
        [
            "pin legal/**",
            "accounting/* older 365d -> cloud",
            "media/** older 30d -> b2"
        ]
    );

    let list = setup.ok(&["rule", "list"]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["ID", "POS", "RULE"]
    );
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["3", "1", "pin", "legal/**"]
    );

    let moved = setup.ok(&["rule", "move", "3", "99"]);
    assert!(
        moved.contains("moved rule #3 to position 3 of 3: pin legal/**"),
        "{moved}"
    );
    let removed = setup.ok(&["rule", "rm", "#1"]);
    assert!(
        removed.contains("removed rule #1: accounting/* older 365d -> cloud"),
        "{removed}"
    );
    let list = setup.json(&["rule", "list", "--json"]);
    let rows: Vec<(i64, i64)> = list["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_i64().unwrap(), r["position"].as_i64().unwrap()))
        .collect();
    assert_eq!(rows, [(2, 1), (3, 2)]);

    // Unknown ids are runtime errors (exit 1) that point at `rule list`.
    for args in [["rule", "rm", "1"].as_slice(), &["rule", "move", "7", "1"]] {
        let out = setup.tierctl(args);
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        assert!(stderr(&out).contains("no rule #"), "{}", describe(&out));
        assert!(
            stderr(&out).contains("tierctl rule list"),
            "{}",
            describe(&out)
        );
    }
}

#[test]
fn rm_without_a_catalog_does_not_create_one() {
    let setup = Setup::new();
    let out = setup.tierctl(&["rule", "rm", "1"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        stderr(&out).contains("does not exist yet"),
        "{}",
        describe(&out)
    );
    assert!(!setup.config.catalog.exists());
    let list = setup.ok(&["rule", "list"]);
    assert!(list.contains("no rules"), "{list}");
}

#[test]
fn a_bad_rule_exits_2_with_a_caret_and_saves_nothing() {
    let setup = Setup::new();
    let rule = "accounting/* older 365 -> cloud";
    let out = setup.tierctl(&["rule", "add", rule]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines[0].contains("invalid rule"), "{err}");
    let rule_line = lines
        .iter()
        .position(|l| l.trim_start() == rule)
        .unwrap_or_else(|| panic!("rule not echoed:\n{err}"));
    let caret = lines[rule_line + 1].find('^').expect("caret line");
    assert_eq!(
        &lines[rule_line][caret..caret + 3],
        "365",
        "caret not under the bad token:\n{err}"
    );
    assert!(err.contains("expected a duration"), "{err}");
    assert!(stdout(&out).is_empty());
    // Nothing saved: the catalog was not even created.
    assert!(!setup.config.catalog.exists());

    // With an existing catalog, the rules are unchanged.
    setup.ok(&["rule", "add", "media/** -> b2"]);
    let out = setup.tierctl(&["rule", "add", "--position", "1", "pin"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert_eq!(setup.rule_texts(), ["media/** -> b2"]);

    // A remote missing from the config is a bad rule too.
    let out = setup.tierctl(&["rule", "add", "docs/** -> glacier"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = stderr(&out);
    assert!(
        err.contains("`glacier`") && err.contains("not configured"),
        "{err}"
    );
    assert!(
        err.contains("b2, cloud"),
        "lists the configured remotes: {err}"
    );
    assert_eq!(setup.rule_texts(), ["media/** -> b2"]);

    // So is a bad position (clap's own usage error).
    let out = setup.tierctl(&["rule", "add", "--position", "0", "docs/** -> b2"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert_eq!(setup.rule_texts(), ["media/** -> b2"]);
}

#[test]
fn rule_list_flags_rules_the_daemon_cannot_use() {
    let setup = Setup::new();
    setup.ok(&["rule", "add", "media/** -> b2"]);
    // A config that lost the `b2` remote after the rule was added.
    std::fs::write(&setup.config_path, "hot_dir = \"hot\"\n").unwrap();
    let out = setup.tierctl(&["rule", "list"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        stdout(&out).contains("media/** -> b2"),
        "{}",
        describe(&out)
    );
    assert!(
        stderr(&out).contains("warning: rule #1") && stderr(&out).contains("not configured"),
        "{}",
        describe(&out)
    );
    let list = setup.json(&["rule", "list", "--json"]);
    assert!(
        list["rules"][0]["problem"]
            .as_str()
            .unwrap()
            .contains("no remotes are configured")
    );
}

// ------------------------------------------------------------ dry run

#[test]
fn dry_run_counts_what_would_move_and_saves_nothing() {
    let setup = Setup::new();
    sample_catalog(&setup);
    setup.ok(&["rule", "add", "media/** older 30d -> b2"]);

    let report = setup.json(&[
        "rule",
        "add",
        "--dry-run",
        "--json",
        "accounting/* older 365d -> cloud,b2",
    ]);
    assert_eq!(report["saved"], false);
    assert_eq!(report["position"], 2);
    assert_eq!(report["rules"], 2);
    assert_eq!(report["considered"]["files"], 4);
    assert_eq!(
        report["decided_by_rule"],
        serde_json::json!({"files": 1, "bytes": 1000})
    );
    assert_eq!(
        report["before"],
        serde_json::json!({"files": 1, "bytes": 5000})
    );
    assert_eq!(
        report["after"],
        serde_json::json!({"files": 2, "bytes": 6000})
    );
    assert_eq!(report["newly_migrating"]["files"], 1);
    assert_eq!(
        report["after_by_target"],
        serde_json::json!({
            "b2": {"files": 2, "bytes": 6000},
            "cloud": {"files": 1, "bytes": 1000}
        })
    );

    let text = setup.ok(&[
        "rule",
        "add",
        "--dry-run",
        "accounting/* older 365d -> cloud",
    ]);
    assert!(text.contains("would migrate 1 file (1000 B)"), "{text}");
    assert!(
        text.contains("would migrate 2 files (5.9 KiB); without this rule 1 file (4.9 KiB)"),
        "{text}"
    );
    assert!(text.contains("TARGET"), "{text}");
    assert!(text.contains("nothing was saved"), "{text}");

    // A pin placed first keeps the film local.
    let report = setup.json(&[
        "rule",
        "add",
        "--dry-run",
        "--json",
        "--position",
        "1",
        "pin media/**",
    ]);
    assert_eq!(report["pin"], true);
    assert_eq!(report["position"], 1);
    assert_eq!(report["decided_by_rule"]["files"], 1);
    assert_eq!(
        report["no_longer_migrating"],
        serde_json::json!({"files": 1, "bytes": 5000})
    );
    assert_eq!(report["after"]["files"], 0);

    assert_eq!(setup.rule_texts(), ["media/** older 30d -> b2"]);
}

#[test]
fn dry_run_works_without_a_catalog() {
    let setup = Setup::new();
    let report = setup.json(&["rule", "add", "--dry-run", "--json", "* -> cloud"]);
    assert_eq!(report["catalog_exists"], false);
    assert_eq!(report["after"]["files"], 0);
    assert!(!setup.config.catalog.exists());
}

// ------------------------------------------------------------ rule test

#[test]
fn rule_test_explains_the_decision() {
    let setup = Setup::new();
    sample_catalog(&setup);
    setup.ok(&["rule", "add", "accounting/* older 365d -> cloud"]);
    setup.ok(&["rule", "add", "* -> b2"]);

    let text = setup.ok(&["rule", "test", "accounting/2019/ledger.xlsx"]);
    assert!(text.starts_with("accounting/2019/ledger.xlsx\n"), "{text}");
    assert!(text.contains("covered through accounting/2019"), "{text}");
    assert!(text.contains("older 365d: yes"), "{text}");
    assert!(
        text.contains("decision: migrate to cloud (rule #1)"),
        "{text}"
    );
    assert!(text.contains("state        hot"), "{text}");

    // The new budget fails `older`, and `*` covers it through `accounting`.
    let hot = setup.config.hot_dir.join("accounting/2024/budget.xlsx");
    let report = setup.json(&["rule", "test", "--json", hot.to_str().unwrap()]);
    assert_eq!(report["path"], "accounting/2024/budget.xlsx");
    assert_eq!(report["in_catalog"], true);
    assert_eq!(report["would_migrate"], true);
    let rules = report["explanation"]["rules"].as_array().unwrap();
    assert_eq!(rules[0]["verdict"]["verdict"], "no_match");
    assert_eq!(rules[0]["checks"][0]["passed"], false);
    assert_eq!(report["explanation"]["decision"]["rule_id"], 2);

    // A file the catalog does not know yet is judged from the hot dir.
    std::fs::create_dir_all(setup.config.hot_dir.join("new")).unwrap();
    std::fs::write(setup.config.hot_dir.join("new/x.txt"), b"hello").unwrap();
    let text = setup.ok(&["rule", "test", "new/x.txt"]);
    assert!(text.contains("not in the catalog yet"), "{text}");
    assert!(text.contains("decision: migrate to b2 (rule #2)"), "{text}");

    // Directories and missing files are refused.
    let out = setup.tierctl(&["rule", "test", "new"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let out = setup.tierctl(&["rule", "test", "nope.txt"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(stderr(&out).contains("no such file"), "{}", describe(&out));
    let out = setup.tierctl(&["rule", "test", "../etc/passwd"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));

    // A symlinked directory in the hot dir is not followed (it would report
    // the size and time of a file outside, e.g. in a private directory).
    let outside = setup.dir.path().join("private");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), b"12345678901").unwrap();
    std::os::unix::fs::symlink(&outside, setup.config.hot_dir.join("link")).unwrap();
    let out = setup.tierctl(&["rule", "test", "link/secret.txt"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(stderr(&out).contains("symlink"), "{}", describe(&out));
    assert!(!stdout(&out).contains("11 B"), "{}", describe(&out));
}

// ------------------------------------------------------------ daemon down

#[test]
fn job_commands_need_the_daemon() {
    let setup = Setup::new();
    sample_catalog(&setup);
    for args in [
        ["migrate"].as_slice(),
        &["migrate", "--dry-run", "media"],
        &["recall", "media"],
        &["pin", "legal"],
        &["unpin", "legal"],
        &["gc", "--grace", "7d"],
    ] {
        let out = setup.tierctl(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", describe(&out));
        let err = stderr(&out);
        assert!(err.contains("daemon is not running"), "{args:?}: {err}");
        assert!(
            err.contains(&format!(
                "tierfs mount {} MOUNTPOINT",
                setup.config_path.display()
            )),
            "{args:?}: {err}"
        );
    }
    // Usage errors are reported as such before anything else.
    let out = setup.tierctl(&["recall"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let out = setup.tierctl(&["gc", "--grace", "soon"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}

// ------------------------------------------------------------ fake daemon

/// An in-process control server answering like a daemon, recording requests.
struct FakeDaemon {
    _server: control::ControlServer,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl FakeDaemon {
    fn start(setup: &Setup, migrate_failures: Vec<String>) -> FakeDaemon {
        let status = DaemonStatus {
            pid: 4242,
            version: "0.1.0-test".into(),
            mountpoint: setup.mountpoint(),
            hot_dir: setup.config.hot_dir.clone(),
            started_at_unix: 1_700_000_000,
            passthrough: true,
            open_files: 0,
            catalog_queue: 0,
            catalog_pending_writes: 0,
            catalog_write_failures: 0,
            catalog_dropped_writes: 0,
        };
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let handler: control::Handler = Arc::new(move |req: Request| {
            seen.lock().unwrap().push(req.clone());
            match req {
                Request::Status => Response::Ok(Reply::Status(status.clone())),
                Request::Sync => Response::Ok(Reply::Sync(control::Synced::default())),
                Request::Progress => Response::Ok(Reply::Progress(JobProgress::default())),
                Request::Migrate(m) => Response::Ok(Reply::Migrate(MigrateSummary {
                    candidates: 3,
                    candidate_bytes: 30 << 20,
                    released: if m.dry_run { 0 } else { 2 },
                    released_bytes: if m.dry_run { 0 } else { 20 << 20 },
                    uploaded_bytes: if m.dry_run { 0 } else { 20 << 20 },
                    skipped: 0,
                    skips: Vec::new(),
                    failures: if m.dry_run {
                        Vec::new()
                    } else {
                        migrate_failures.clone()
                    },
                    seconds: 4.0,
                })),
                Request::Recall { .. } => Response::Ok(Reply::Recall(RecallSummary {
                    recalled: 1,
                    bytes: 5000,
                    failures: Vec::new(),
                    seconds: 0.5,
                })),
                Request::Gc { .. } => Response::Ok(Reply::Gc(GcSummary {
                    unreferenced: 3,
                    deleted: 2,
                    deleted_bytes: 2048,
                    failures: Vec::new(),
                })),
                Request::Pin { .. } => Response::Ok(Reply::Pin(PinSummary { changed: 1 })),
                Request::RuleAdd { text, .. } => {
                    Response::Ok(Reply::RuleAdd(RuleAdded(PlacedRule {
                        id: 41,
                        position: 1,
                        rules: 1,
                        text,
                    })))
                }
                Request::RuleRemove { id } => {
                    Response::error(ErrorKind::NotFound, format!("no rule #{id}"))
                }
                Request::Fsck { .. } => {
                    Response::error(ErrorKind::Failed, "fsck is not scripted in this test")
                }
                Request::RuleMove { .. } => Response::error(
                    ErrorKind::InvalidRequest,
                    "not supported by this test server",
                ),
                Request::Activity => Response::error(
                    ErrorKind::InvalidRequest,
                    "not supported by this test server",
                ),
                Request::RemoteHealth => Response::Ok(Reply::RemoteHealth(Vec::new())),
            }
        });
        let server = control::serve(&setup.config.control_socket, handler).unwrap();
        FakeDaemon {
            _server: server,
            requests,
        }
    }

    /// The requests received, without status and progress polls.
    fn jobs(&self) -> Vec<Request> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| {
                !matches!(
                    r,
                    Request::Status | Request::Progress | Request::Activity | Request::Sync
                )
            })
            .cloned()
            .collect()
    }
}

#[test]
fn migrate_reports_and_fails_on_failures() {
    let setup = Setup::new();
    sample_catalog(&setup);
    let daemon = FakeDaemon::start(
        &setup,
        vec!["media/film.mkv: upload failed: timed out".into()],
    );
    let film = setup.mountpoint().join("media/film.mkv");
    let out = setup.tierctl(&["migrate", film.to_str().unwrap(), "accounting"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let text = stdout(&out);
    assert!(
        text.contains("released    2 files (20.0 MiB freed locally)"),
        "{text}"
    );
    assert!(text.contains("uploaded    20.0 MiB"), "{text}");
    assert!(text.contains("failed      1 file"), "{text}");
    assert!(
        text.contains("time        4.0s (5.0 MiB/s uploaded)"),
        "{text}"
    );
    assert!(
        text.contains("failures:\n  media/film.mkv: upload failed"),
        "{text}"
    );
    assert_eq!(
        daemon.jobs(),
        [Request::Migrate(tierfs::tier::MigrateRequest {
            paths: vec!["media/film.mkv".into(), "accounting".into()],
            dry_run: false,
        })]
    );

    let report = setup.json(&["migrate", "--dry-run", "--json"]);
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["candidates"], 3);
    let text = setup.ok(&["migrate", "--dry-run"]);
    assert!(text.contains("would migrate 3 files (30.0 MiB)"), "{text}");

    // An unknown path does nothing (exit 2).
    let before = daemon.jobs().len();
    let out = setup.tierctl(&["migrate", "acounting"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        stderr(&out).contains("no file at or below path acounting"),
        "{}",
        describe(&out)
    );
    assert_eq!(daemon.jobs().len(), before);
}

#[test]
fn recall_pin_gc_and_rules_go_through_the_daemon() {
    let setup = Setup::new();
    sample_catalog(&setup);
    let daemon = FakeDaemon::start(&setup, Vec::new());

    let text = setup.ok(&["recall", "media"]);
    assert!(
        text.contains("recalled  1 file (4.9 KiB downloaded)"),
        "{text}"
    );
    let report = setup.json(&["recall", "--json", "media/film.mkv"]);
    assert_eq!(report["recalled"], 1);
    assert_eq!(report["paths"], serde_json::json!(["media/film.mkv"]));

    assert_eq!(setup.ok(&["pin", "legal"]).trim(), "pinned 1 file");
    let report = setup.json(&["unpin", "--json", "legal"]);
    assert_eq!(report["pinned"], false);

    let text = setup.ok(&["gc", "--grace", "7d"]);
    assert!(text.contains("deleted       2 objects (2.0 KiB)"), "{text}");
    assert!(text.contains("kept          1 object"), "{text}");
    assert!(text.contains("7d"), "{text}");

    let added = setup.json(&["rule", "add", "--json", "/media/**  -> b2"]);
    assert_eq!(added["id"], 41);
    assert_eq!(added["saved_via"], "daemon");
    let out = setup.tierctl(&["rule", "rm", "9"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        stderr(&out).contains("there is no rule #9"),
        "{}",
        describe(&out)
    );

    assert_eq!(
        daemon.jobs(),
        [
            Request::Recall {
                paths: vec!["media".into()]
            },
            Request::Recall {
                paths: vec!["media/film.mkv".into()]
            },
            Request::Pin {
                paths: vec!["legal".into()],
                pinned: true
            },
            Request::Pin {
                paths: vec!["legal".into()],
                pinned: false
            },
            Request::Gc {
                grace_secs: Some(7 * 86_400)
            },
            Request::RuleAdd {
                text: "media/** -> b2".into(),
                position: None
            },
            Request::RuleRemove { id: 9 },
        ]
    );
    // The daemon mode never touched the catalog directly.
    assert!(setup.rule_texts().is_empty());
}
