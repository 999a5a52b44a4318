//! `tierctl status`: the daemon's state and catalog totals, or one file's
//! catalog entry.
//!
//! Catalog data is read straight from the catalog file, so this works while
//! the daemon is down; the daemon is asked (briefly) only for its runtime
//! state and its mountpoint.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde::Serialize;
use tierfs::activity::ActivityReport;
use tierfs::catalog::{CatalogError, CatalogReader, FileRow, StatusSummary};
use tierfs::config::Config;
use tierfs::control::{self, ControlError, DaemonStatus, Request};
use tierfs::escape::{Escaped, ExactPath, escape_str};

use crate::daemon::DAEMON_TIMEOUT;
use crate::mount_path::{Root, to_mount_relative};
use crate::table::{Align, Table, write_fields};
use crate::{Outcome, UsageError, human};

/// What the daemon said, or why it said nothing.
#[derive(Debug)]
enum Daemon {
    Running(DaemonStatus),
    /// Not running; the detail says how we know ("no control socket at …").
    NotRunning(String),
    /// Possibly running but not answering properly; the full error message.
    Unreachable(String),
}

impl Daemon {
    fn query(socket: &Path) -> Daemon {
        match control::status(socket, DAEMON_TIMEOUT) {
            Ok(status) => Daemon::Running(status),
            Err(ControlError::NotRunning { socket, reason }) => {
                Daemon::NotRunning(format!("{reason} {}", socket.display()))
            }
            Err(e) => Daemon::Unreachable(e.to_string()),
        }
    }
}

/// The catalog's summary, or why there is none.
#[derive(Debug)]
enum CatalogState {
    Ok(StatusSummary),
    /// The file does not exist yet.
    Absent,
    /// It exists but cannot be read; the full error message.
    Error(String),
}

impl CatalogState {
    fn read(path: &Path) -> CatalogState {
        match CatalogReader::open(path).and_then(|reader| reader.status()) {
            Ok(summary) => CatalogState::Ok(summary),
            Err(CatalogError::NotFound { .. }) => CatalogState::Absent,
            Err(e) => CatalogState::Error(e.to_string()),
        }
    }
}

/// `tierctl status` without a path: daemon and catalog overview.
pub fn overview(config: &Config, json: bool, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let daemon = Daemon::query(&config.control_socket);
    if matches!(daemon, Daemon::Running(_)) {
        crate::daemon::sync_catalog(config);
    }
    let catalog = CatalogState::read(&config.catalog);
    let activity = match daemon {
        Daemon::Running(_) => query_activity(&config.control_socket),
        _ => None,
    };
    let now = SystemTime::now();
    let remotes = match daemon {
        Daemon::Running(_) => crate::remote_health::query(&config.control_socket, DAEMON_TIMEOUT),
        _ => Vec::new(),
    };
    if json {
        let mut report = OverviewJson::new(config, &daemon, &catalog, now);
        report.activity = activity.as_ref();
        report.remotes = &remotes;
        write_json(out, &report)?;
    } else {
        write_overview_text(out, config, &daemon, &catalog, now)?;
        if !remotes.is_empty() {
            writeln!(out)?;
            write_fields(out, &crate::remote_health::fields(&remotes, now))?;
        }
        if let Some(activity) = &activity {
            write_activity_text(out, activity, now)?;
        }
    }
    let healthy =
        !matches!(daemon, Daemon::Unreachable(_)) && !matches!(catalog, CatalogState::Error(_));
    Ok(if healthy {
        Outcome::Success
    } else {
        Outcome::Failure
    })
}

/// The daemon's activity report; `None` from a daemon too old to give one.
fn query_activity(socket: &Path) -> Option<ActivityReport> {
    control::call(socket, &Request::Activity, DAEMON_TIMEOUT).ok()
}

/// Running job, last migration run and recent errors.
fn write_activity_text(
    out: &mut impl Write,
    activity: &ActivityReport,
    now: SystemTime,
) -> std::io::Result<()> {
    let now_unix = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let ago = |t: i64| human::duration(Duration::from_secs(now_unix.saturating_sub(t) as u64));
    let job = match &activity.job {
        None => "idle".to_string(),
        Some(p) => format!(
            "running: {} of {} files, {} of {}",
            human::count(p.files_done),
            human::count(p.files_total),
            human::bytes(p.bytes_done),
            human::bytes(p.bytes_total)
        ),
    };
    let last = match &activity.last_migration {
        None => "none since the daemon started".to_string(),
        Some(r) => match &r.error {
            Some(e) => format!("{} ago ({}): failed: {e}", ago(r.finished_unix), r.trigger),
            None => format!(
                "{} ago ({}): released {} file(s), {}; skipped {}; failed {}",
                ago(r.finished_unix),
                r.trigger,
                human::count(r.released),
                human::bytes(r.released_bytes),
                human::count(r.skipped),
                human::count(r.failed)
            ),
        },
    };
    writeln!(out)?;
    write_fields(
        out,
        &[
            ("job", job),
            ("last migration", last),
            ("errors (24 h)", human::count(activity.errors_24h)),
        ],
    )?;
    for e in &activity.recent_errors {
        // Error messages embed file names: one escaped line each.
        writeln!(out, "  {} ago  {}", ago(e.at_unix), escape_str(&e.message))?;
    }
    if !activity.rules.is_empty() {
        writeln!(out)?;
        let mut table = Table::new(&[
            ("RULE", Align::Right),
            ("LAST RUN", Align::Right),
            ("SELECTED", Align::Right),
            ("RELEASED", Align::Right),
            ("BYTES", Align::Right),
            ("FAILED", Align::Right),
        ]);
        for r in &activity.rules {
            table.row(vec![
                format!("#{}", r.rule_id),
                format!("{} ago", ago(r.finished_unix)),
                human::count(r.selected),
                human::count(r.released),
                human::bytes(r.released_bytes),
                human::count(r.failed),
            ]);
        }
        table.write(out)?;
    }
    Ok(())
}

/// `tierctl status PATH`: one file's catalog entry.
pub fn file(
    config: &Config,
    input: &Path,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<Outcome> {
    let relative = resolve_file_path(config, input)?;
    crate::daemon::sync_catalog(config);
    let lookup = look_up(&config.catalog, &relative)?;
    let cloud = cloud_copies(config, &relative)?;
    if json {
        write_json(out, &FileJson::new(config, &relative, &lookup, cloud))?;
    } else {
        let extra = cloud.as_ref().map(cloud_fields).unwrap_or_default();
        write_file_text(out, config, &relative, &lookup, &extra, SystemTime::now())?;
    }
    Ok(Outcome::Success)
}

/// The cloud side of a file: its content hash, pin, and the objects holding it.
#[derive(Serialize)]
struct Cloud {
    pinned: bool,
    content_blake3: Option<String>,
    objects: Vec<tierfs::catalog::tiering::ObjectRow>,
}

fn cloud_copies(config: &Config, relative: &Path) -> anyhow::Result<Option<Cloud>> {
    let (Some(conn), Some(key)) = (
        crate::paths::open_catalog(config)?,
        tierfs::catalog::path_key(relative),
    ) else {
        return Ok(None);
    };
    use tierfs::catalog::tiering;
    let Some(file) = tiering::file_by_path(&conn, &key)? else {
        return Ok(None);
    };
    let objects = match file
        .blake3
        .as_deref()
        .and_then(|h| blake3::Hash::from_hex(h).ok())
    {
        Some(hash) => tiering::objects_for(&conn, hash.as_bytes())?,
        None => Vec::new(),
    };
    Ok(Some(Cloud {
        pinned: file.pinned,
        content_blake3: file.blake3,
        objects,
    }))
}

/// The cloud side of `status PATH`, as extra fields of the same table.
fn cloud_fields(cloud: &Cloud) -> Vec<(&'static str, String)> {
    let mut fields = vec![(
        "pinned",
        if cloud.pinned { "yes" } else { "no" }.to_string(),
    )];
    if let Some(h) = &cloud.content_blake3 {
        fields.push(("content", format!("blake3 {h}")));
    }
    if cloud.objects.is_empty() {
        fields.push(("objects", "none".to_string()));
    }
    for o in &cloud.objects {
        let verified = match o.verified_at_ns {
            Some(ns) => format!("verified {}", human::timestamp_ns(ns)),
            None => "not verified".to_string(),
        };
        let class = o.storage_class.as_deref().unwrap_or("default class");
        fields.push((
            "object",
            format!(
                "{}:{} ({}, {class}, {verified})",
                o.remote,
                o.key,
                human::bytes(o.size)
            ),
        ));
    }
    fields
}

/// The result of looking a path up in the catalog.
enum Lookup {
    Found(FileRow),
    NotInCatalog,
    NoCatalog,
}

fn look_up(catalog: &Path, relative: &Path) -> anyhow::Result<Lookup> {
    let reader = match CatalogReader::open(catalog) {
        Ok(reader) => reader,
        Err(CatalogError::NotFound { .. }) => return Ok(Lookup::NoCatalog),
        Err(e) => return Err(e.into()),
    };
    let row = reader
        .file(relative)
        .with_context(|| format!("cannot look up {}", Escaped::path(relative)))?;
    Ok(row.map_or(Lookup::NotInCatalog, Lookup::Found))
}

/// Maps the user's PATH to a catalog path. Absolute paths under the hot dir
/// need no daemon; others need the daemon's mountpoint.
fn resolve_file_path(config: &Config, input: &Path) -> Result<PathBuf, UsageError> {
    let hot = Root {
        name: "the hot dir",
        path: &config.hot_dir,
    };
    let first_try = to_mount_relative(input, &[hot], "");
    if first_try.is_ok() || !input.is_absolute() {
        return first_try.map_err(UsageError);
    }
    let resolved = match Daemon::query(&config.control_socket) {
        Daemon::Running(status) => {
            let mount = Root {
                name: "the mountpoint",
                path: &status.mountpoint,
            };
            to_mount_relative(input, &[mount, hot], "")
        }
        Daemon::NotRunning(_) => to_mount_relative(
            input,
            &[hot],
            "the mountpoint is unknown while the daemon is not running",
        ),
        Daemon::Unreachable(why) => {
            to_mount_relative(input, &[hot], &format!("the mountpoint is unknown: {why}"))
        }
    };
    resolved.map_err(UsageError)
}

fn write_json(out: &mut impl Write, value: &impl Serialize) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value).context("cannot encode JSON output")?;
    writeln!(out)?;
    Ok(())
}

// ---------------------------------------------------------------- text

fn write_overview_text(
    out: &mut impl Write,
    config: &Config,
    daemon: &Daemon,
    catalog: &CatalogState,
    now: SystemTime,
) -> std::io::Result<()> {
    let mut fields = vec![("config", config.source.display().to_string())];
    fields.extend(daemon_fields(config, daemon, now));
    fields.extend(catalog_fields(&config.catalog, catalog));
    write_fields(out, &fields)?;
    if let CatalogState::Ok(summary) = catalog {
        writeln!(out)?;
        state_table(summary).write(out)?;
    }
    Ok(())
}

fn daemon_fields(config: &Config, daemon: &Daemon, now: SystemTime) -> Vec<(&'static str, String)> {
    let config_hot = config.hot_dir.display().to_string();
    let status = match daemon {
        Daemon::Running(status) => status,
        Daemon::NotRunning(detail) => {
            return vec![
                ("daemon", format!("not running ({detail})")),
                ("hot dir", config_hot),
            ];
        }
        Daemon::Unreachable(message) => {
            return vec![
                ("daemon", format!("unreachable: {message}")),
                ("hot dir", config_hot),
            ];
        }
    };
    let mut hot_dir = status.hot_dir.display().to_string();
    if status.hot_dir != config.hot_dir {
        hot_dir.push_str(&format!(" (but the config says {config_hot})"));
    }
    vec![
        (
            "daemon",
            format!(
                "running (pid {}, version {}, up {})",
                status.pid,
                status.version,
                human::duration(uptime(status, now))
            ),
        ),
        ("mountpoint", status.mountpoint.display().to_string()),
        ("hot dir", hot_dir),
        ("passthrough", on_off(status.passthrough).into()),
        ("open files", human::count(status.open_files)),
        ("catalog queue", catalog_queue(status)),
    ]
}

/// The writer's backlog, and the writes it holds back or dropped, if any.
fn catalog_queue(status: &DaemonStatus) -> String {
    let mut text = format!("{} pending", human::count(status.catalog_queue));
    if status.catalog_pending_writes > 0 {
        text.push_str(&format!(
            ", {} held back: the catalog cannot be written (disk full?), retrying",
            human::count(status.catalog_pending_writes)
        ));
    }
    if status.catalog_write_failures > 0 {
        text.push_str(&format!(
            ", {} failed write attempts",
            human::count(status.catalog_write_failures)
        ));
    }
    if status.catalog_dropped_writes > 0 {
        text.push_str(&format!(
            ", {} changes dropped (run `tierctl fsck --repair`)",
            human::count(status.catalog_dropped_writes)
        ));
    }
    text
}

fn catalog_fields(path: &Path, catalog: &CatalogState) -> Vec<(&'static str, String)> {
    let path = path.display();
    match catalog {
        CatalogState::Ok(summary) => vec![
            ("catalog", path.to_string()),
            ("schema", format!("version {}", summary.schema_version)),
            ("size on disk", human::bytes(summary.db_bytes)),
        ],
        CatalogState::Absent => vec![(
            "catalog",
            format!("{path} (does not exist yet; the daemon creates it when it first starts)"),
        )],
        CatalogState::Error(message) => vec![
            ("catalog", format!("{path} (unreadable)")),
            ("catalog error", escape_str(message).into_owned()),
        ],
    }
}

/// Files and bytes per state, plus a total row.
fn state_table(summary: &StatusSummary) -> Table {
    let mut table = Table::new(&[
        ("STATE", Align::Left),
        ("FILES", Align::Right),
        ("BYTES", Align::Right),
    ]);
    for row in &summary.by_state {
        table.row(vec![
            row.state.to_string(),
            human::count(row.files),
            human::bytes(row.bytes),
        ]);
    }
    table.row(vec![
        "total".into(),
        human::count(summary.total_files),
        human::bytes(summary.total_bytes),
    ]);
    table
}

fn write_file_text(
    out: &mut impl Write,
    config: &Config,
    relative: &Path,
    lookup: &Lookup,
    extra: &[(&'static str, String)],
    now: SystemTime,
) -> std::io::Result<()> {
    let catalog = Escaped::path(&config.catalog);
    let row = match lookup {
        Lookup::Found(row) => row,
        Lookup::NotInCatalog => {
            return writeln!(
                out,
                "{}: not in catalog ({catalog})",
                Escaped::path(relative)
            );
        }
        Lookup::NoCatalog => {
            return writeln!(
                out,
                "{}: not in catalog (catalog {catalog} does not exist yet)",
                Escaped::path(relative)
            );
        }
    };
    let last_access = match row.last_access_ns {
        Some(ns) => human::timestamp_with_age(ns, now),
        None => "never recorded".into(),
    };
    write_fields(
        out,
        &[
            ("path", Escaped::path(relative).to_string()),
            ("state", row.state.to_string()),
            (
                "size",
                format!(
                    "{} ({} bytes)",
                    human::bytes(row.size),
                    human::count(row.size)
                ),
            ),
            ("modified", human::timestamp_with_age(row.mtime_ns, now)),
            ("last access", last_access),
            ("inode", row.ino.to_string()),
            ("catalog", catalog.to_string()),
        ]
        .into_iter()
        .chain(extra.iter().cloned())
        .collect::<Vec<_>>(),
    )
}

fn on_off(flag: bool) -> &'static str {
    if flag { "on" } else { "off" }
}

fn uptime(status: &DaemonStatus, now: SystemTime) -> Duration {
    let now = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    Duration::from_secs(u64::try_from(now - status.started_at_unix).unwrap_or(0))
}

// ---------------------------------------------------------------- JSON

/// `tierctl status --json`.
#[derive(Serialize)]
struct OverviewJson<'a> {
    config: ExactPath,
    daemon: DaemonJson<'a>,
    catalog: CatalogJson<'a>,
    /// Running job, last migration, recent errors (only while the daemon runs).
    activity: Option<&'a ActivityReport>,
    /// Remote reachability as the daemon sees it (absent when not running).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    remotes: &'a [tierfs::remote::HealthReport],
}

impl<'a> OverviewJson<'a> {
    fn new(
        config: &Config,
        daemon: &'a Daemon,
        catalog: &'a CatalogState,
        now: SystemTime,
    ) -> Self {
        OverviewJson {
            config: lossy(&config.source),
            daemon: DaemonJson::new(daemon, now),
            catalog: CatalogJson {
                path: lossy(&config.catalog),
                state: CatalogStateJson::new(catalog),
            },
            activity: None,
            remotes: &[],
        }
    }
}

#[derive(Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
enum DaemonJson<'a> {
    Running {
        #[serde(flatten)]
        status: &'a DaemonStatus,
        uptime_secs: u64,
    },
    NotRunning {
        message: &'a str,
    },
    Unreachable {
        message: &'a str,
    },
}

impl<'a> DaemonJson<'a> {
    fn new(daemon: &'a Daemon, now: SystemTime) -> Self {
        match daemon {
            Daemon::Running(status) => DaemonJson::Running {
                status,
                uptime_secs: uptime(status, now).as_secs(),
            },
            Daemon::NotRunning(message) => DaemonJson::NotRunning { message },
            Daemon::Unreachable(message) => DaemonJson::Unreachable { message },
        }
    }
}

#[derive(Serialize)]
struct CatalogJson<'a> {
    path: ExactPath,
    #[serde(flatten)]
    state: CatalogStateJson<'a>,
}

#[derive(Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
enum CatalogStateJson<'a> {
    Ok {
        #[serde(flatten)]
        summary: &'a StatusSummary,
    },
    Absent,
    Error {
        message: &'a str,
    },
}

impl<'a> CatalogStateJson<'a> {
    fn new(catalog: &'a CatalogState) -> Self {
        match catalog {
            CatalogState::Ok(summary) => CatalogStateJson::Ok { summary },
            CatalogState::Absent => CatalogStateJson::Absent,
            CatalogState::Error(message) => CatalogStateJson::Error { message },
        }
    }
}

/// `tierctl status PATH --json`.
#[derive(Serialize)]
struct FileJson {
    path: ExactPath,
    catalog: ExactPath,
    catalog_exists: bool,
    in_catalog: bool,
    #[serde(flatten)]
    entry: Option<EntryJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cloud: Option<Cloud>,
}

#[derive(Serialize)]
struct EntryJson {
    state: String,
    size: u64,
    mtime_ns: i64,
    mtime: String,
    last_access_ns: Option<i64>,
    last_access: Option<String>,
    ino: u64,
}

impl FileJson {
    fn new(config: &Config, relative: &Path, lookup: &Lookup, cloud: Option<Cloud>) -> Self {
        let entry = match lookup {
            Lookup::Found(row) => Some(EntryJson {
                state: row.state.to_string(),
                size: row.size,
                mtime_ns: row.mtime_ns,
                mtime: human::timestamp_ns(row.mtime_ns),
                last_access_ns: row.last_access_ns,
                last_access: row.last_access_ns.map(human::timestamp_ns),
                ino: row.ino,
            }),
            Lookup::NotInCatalog | Lookup::NoCatalog => None,
        };
        FileJson {
            path: lossy(relative),
            catalog: lossy(&config.catalog),
            catalog_exists: !matches!(lookup, Lookup::NoCatalog),
            in_catalog: entry.is_some(),
            entry,
            cloud,
        }
    }
}

/// A path with its exact bytes for JSON output.
fn lossy(path: &Path) -> ExactPath {
    ExactPath(path.to_path_buf())
}
