//! Talking to the daemon for the tiering commands: small change requests,
//! long jobs (with a progress line on a terminal), and the "not running"
//! message.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use tierfs::config::Config;
use tierfs::control::{
    self, ControlError, DaemonStatus, JobProgress, Reply, Request, RequestError,
};
use tierfs::escape::ExactPath;

use crate::human;

/// How long to wait for the daemon's status before calling it unreachable.
pub const DAEMON_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a rule or pin change may take (it waits behind the catalog's
/// queue of pending writes).
pub const CHANGE_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a migration, recall or garbage collection may take.
pub const JOB_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// How often the progress line is refreshed.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

/// The daemon's status, `None` if it is not running. Any other failure
/// (no permission, no answer) is an error.
pub fn status(config: &Config) -> anyhow::Result<Option<DaemonStatus>> {
    match control::status(&config.control_socket, DAEMON_TIMEOUT) {
        Ok(status) => Ok(Some(status)),
        Err(ControlError::NotRunning { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The daemon's status; "not running" is an error that says how to start it.
pub fn require_running(config: &Config) -> anyhow::Result<DaemonStatus> {
    match control::status(&config.control_socket, DAEMON_TIMEOUT) {
        Ok(status) => Ok(status),
        Err(ControlError::NotRunning { socket, reason }) => {
            Err(not_running(config, reason, &socket))
        }
        Err(e) => Err(e.into()),
    }
}

fn not_running(config: &Config, reason: &str, socket: &Path) -> anyhow::Error {
    anyhow!(
        "the tierfs daemon is not running ({reason} {}); start it with: tierfs mount {} MOUNTPOINT",
        socket.display(),
        config.source.display()
    )
}

/// How the daemon answered a request.
pub enum Answer<T> {
    /// It did what was asked; its reply.
    Done(T),
    /// It refused or failed; its error (callers decide on the kind).
    Refused(RequestError),
    /// It is not running.
    NotRunning,
}

/// Sends `req` and returns the daemon's answer. Failing to talk to a
/// running daemon (no permission, no answer, a garbled one) is an error.
pub fn try_ask<T>(config: &Config, req: &Request, timeout: Duration) -> anyhow::Result<Answer<T>>
where
    T: TryFrom<Reply, Error = Reply>,
{
    match control::call(&config.control_socket, req, timeout) {
        Ok(reply) => Ok(Answer::Done(reply)),
        Err(ControlError::Refused { error, .. }) => Ok(Answer::Refused(error)),
        Err(ControlError::NotRunning { .. }) => Ok(Answer::NotRunning),
        Err(e) => Err(e.into()),
    }
}

/// Read-your-writes: asks a running daemon to commit every change the mount
/// reported before now, so that what `tierctl` then reads from the catalog
/// includes every operation that returned before this command. A daemon
/// that is not running has nothing pending; one that does not answer is
/// reported on stderr and the catalog read as it is.
pub fn sync_catalog(config: &Config) {
    match try_ask::<tierfs::control::Synced>(config, &Request::Sync, DAEMON_TIMEOUT) {
        Ok(Answer::Done(synced)) if synced.pending > 0 => eprintln!(
            "tierctl: warning: {} changes are held in memory until the catalog can be written",
            synced.pending
        ),
        Ok(Answer::Done(_)) | Ok(Answer::NotRunning) => {}
        // A daemon older than the sync request: its catalog lags as it did.
        Ok(Answer::Refused(e)) if e.kind == tierfs::control::ErrorKind::InvalidRequest => {}
        Ok(Answer::Refused(e)) => {
            eprintln!(
                "tierctl: warning: the daemon did not sync the catalog: {}",
                e.message
            )
        }
        Err(e) => eprintln!("tierctl: warning: the daemon did not sync the catalog: {e:#}"),
    }
}

/// A refusal as an error carrying the daemon's message.
pub fn refused(error: RequestError) -> anyhow::Error {
    anyhow!("the tierfs daemon reported an error: {}", error.message)
}

/// Sends `req` and returns the reply. `Ok(None)` if the daemon is not
/// running; a refusal is an error carrying the daemon's message.
pub fn ask<T>(config: &Config, req: &Request, timeout: Duration) -> anyhow::Result<Option<T>>
where
    T: TryFrom<Reply, Error = Reply>,
{
    match try_ask(config, req, timeout)? {
        Answer::Done(reply) => Ok(Some(reply)),
        Answer::Refused(error) => Err(refused(error)),
        Answer::NotRunning => Ok(None),
    }
}

/// Like [`ask`], but "not running" is an error that says how to start it.
pub fn ask_running<T>(config: &Config, req: &Request, timeout: Duration) -> anyhow::Result<T>
where
    T: TryFrom<Reply, Error = Reply>,
{
    match control::call(&config.control_socket, req, timeout) {
        Ok(reply) => Ok(reply),
        Err(ControlError::Refused { error, .. }) => Err(refused(error)),
        Err(ControlError::NotRunning { socket, reason }) => {
            Err(not_running(config, reason, &socket))
        }
        Err(e) => Err(e.into()),
    }
}

/// Runs a long job (`req` blocks until it is done). While it runs, when
/// stderr is a terminal, a progress line labelled `verb` is drawn there from
/// the daemon's progress counters, polled on a second connection.
pub fn run_job<T>(config: &Config, req: &Request, verb: &'static str) -> anyhow::Result<T>
where
    T: TryFrom<Reply, Error = Reply>,
{
    if !std::io::stderr().is_terminal() {
        return ask_running(config, req, JOB_TIMEOUT);
    }
    let (stop, stopped) = mpsc::channel::<()>();
    let socket = config.control_socket.clone();
    let drawer = thread::Builder::new()
        .name("progress".into())
        .spawn(move || draw_progress(&socket, verb, &stopped))
        .ok();
    let result = ask_running(config, req, JOB_TIMEOUT);
    drop(stop);
    if let Some(drawer) = drawer {
        let _ = drawer.join();
    }
    result
}

/// Polls the daemon's progress until `stopped` fires, redrawing one line on
/// stderr; erases it at the end.
fn draw_progress(socket: &Path, verb: &str, stopped: &mpsc::Receiver<()>) {
    let started = Instant::now();
    let mut first: Option<JobProgress> = None;
    let mut drawn = false;
    let mut stderr = std::io::stderr();
    // Dropping the sender ends the wait early (`Disconnected`).
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(PROGRESS_INTERVAL) {
        let Some(progress) = poll(socket) else {
            continue;
        };
        let initial = *first.get_or_insert(progress);
        // The counters belong to the previous job until this one has
        // planned its work and reset them.
        let stale = progress == initial && is_complete(&initial);
        let line = progress_line(verb, &progress, stale, started.elapsed());
        let _ = write!(stderr, "\r\x1b[2K{line}");
        let _ = stderr.flush();
        drawn = true;
    }
    if drawn {
        let _ = write!(stderr, "\r\x1b[2K");
        let _ = stderr.flush();
    }
}

fn poll(socket: &Path) -> Option<JobProgress> {
    control::call(socket, &Request::Progress, Duration::from_secs(1)).ok()
}

fn is_complete(p: &JobProgress) -> bool {
    p.files_total > 0 && p.files_done >= p.files_total
}

/// `migrating: 120/1,300 files  1.2 GiB/6.0 GiB  20%  15.3 MiB/s  ETA 1m 5s`.
fn progress_line(verb: &str, p: &JobProgress, stale: bool, elapsed: Duration) -> String {
    if stale || p.files_total == 0 {
        return format!("{verb}: starting… ({})", human::duration(elapsed));
    }
    let mut line = format!(
        "{verb}: {}/{} files  {}/{}",
        human::count(p.files_done),
        human::count(p.files_total),
        human::bytes(p.bytes_done),
        human::bytes(p.bytes_total)
    );
    let fraction = if p.bytes_total > 0 {
        p.bytes_done as f64 / p.bytes_total as f64
    } else {
        p.files_done as f64 / p.files_total as f64
    };
    line.push_str(&format!("  {:.0}%", (fraction * 100.0).clamp(0.0, 100.0)));
    let secs = elapsed.as_secs_f64();
    if secs >= 1.0 && p.bytes_done > 0 {
        let rate = p.bytes_done as f64 / secs;
        line.push_str(&format!("  {}", mib_per_sec(p.bytes_done, secs)));
        let left = p.bytes_total.saturating_sub(p.bytes_done) as f64 / rate;
        if left.is_finite() && left > 0.0 {
            line.push_str(&format!(
                "  ETA {}",
                human::duration(Duration::from_secs_f64(left.min(1e9)))
            ));
        }
    }
    line
}

/// Throughput in MiB/s, e.g. `15.3 MiB/s`.
pub fn mib_per_sec(bytes: u64, secs: f64) -> String {
    if secs <= 0.0 {
        return "- MiB/s".into();
    }
    format!("{:.1} MiB/s", bytes as f64 / secs / (1024.0 * 1024.0))
}

/// A wall time for people: `0.4s`, `12.3s`, `5m 3s`, `2h 10m`.
pub fn seconds(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "?".into();
    }
    if secs < 60.0 {
        return format!("{secs:.1}s");
    }
    human::duration(Duration::from_secs_f64(secs))
}

/// Writes `value` as pretty JSON and a newline.
pub fn write_json(out: &mut impl Write, value: &impl serde::Serialize) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}

/// A path for JSON output with its exact bytes: a string when it is UTF-8,
/// else `{"hex": "..."}` (see [`tierfs::escape::path_bytes`]).
pub fn exact(path: &Path) -> ExactPath {
    ExactPath(path.to_path_buf())
}

/// [`exact`] for a list of paths.
pub fn exact_all(paths: &[PathBuf]) -> Vec<ExactPath> {
    paths.iter().map(|p| exact(p)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines() {
        let p = JobProgress {
            files_done: 120,
            files_total: 1300,
            bytes_done: 1 << 30,
            bytes_total: 4 << 30,
        };
        let line = progress_line("migrating", &p, false, Duration::from_secs(64));
        assert_eq!(
            line,
            "migrating: 120/1,300 files  1.0 GiB/4.0 GiB  25%  16.0 MiB/s  ETA 3m 12s"
        );
        let line = progress_line("recalling", &p, true, Duration::from_secs(3));
        assert_eq!(line, "recalling: starting… (3s)");
        let none = JobProgress::default();
        assert!(progress_line("x", &none, false, Duration::ZERO).contains("starting"));
    }

    #[test]
    fn times_and_rates() {
        assert_eq!(seconds(0.42), "0.4s");
        assert_eq!(seconds(303.0), "5m 3s");
        assert_eq!(mib_per_sec(10 << 20, 2.0), "5.0 MiB/s");
        assert_eq!(mib_per_sec(1, 0.0), "- MiB/s");
    }
}
