//! `tierctl recall`: bring cold files back, through the daemon.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use serde::Serialize;
use tierfs::config::Config;
use tierfs::control::Request;
use tierfs::tier::RecallSummary;

use crate::daemon::{self, exact_all, mib_per_sec, seconds, write_json};
use crate::migrate::write_failures;
use crate::paths::{self, Mount};
use crate::table::write_fields;
use crate::{Outcome, human};

#[derive(Debug, Args)]
pub struct RecallArgs {
    /// Files or directories (relative to the mount root, or absolute under the mountpoint or hot dir)
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
    /// Print one JSON object instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct RecallJson<'a> {
    paths: Vec<tierfs::escape::ExactPath>,
    #[serde(flatten)]
    summary: &'a RecallSummary,
    /// Bytes downloaded per second of wall time.
    download_bytes_per_sec: f64,
}

/// `tierctl recall PATH…`: recalls every cold file at or below each path.
/// Exits 1 if any file failed.
pub fn run(config: &Config, args: &RecallArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let status = daemon::require_running(config)?;
    let paths = paths::resolve(config, &args.paths, Mount::Known(&status.mountpoint))?;
    paths::require_catalogued(config, &paths)?;
    let request = Request::Recall {
        paths: paths.clone(),
    };
    let summary: RecallSummary = daemon::run_job(config, &request, "recalling")?;
    let outcome = if summary.failures.is_empty() {
        Outcome::Success
    } else {
        Outcome::Failure
    };
    if args.json {
        let rate = if summary.seconds > 0.0 {
            summary.bytes as f64 / summary.seconds
        } else {
            0.0
        };
        write_json(
            out,
            &RecallJson {
                paths: exact_all(&paths),
                summary: &summary,
                download_bytes_per_sec: rate,
            },
        )?;
    } else {
        write_text(out, &summary)?;
    }
    Ok(outcome)
}

fn write_text(out: &mut impl Write, s: &RecallSummary) -> std::io::Result<()> {
    if s.recalled == 0 && s.failures.is_empty() {
        return writeln!(
            out,
            "nothing to recall: no cold file at or below the given paths"
        );
    }
    let files = |n: u64| {
        format!(
            "{} {}",
            human::count(n),
            if n == 1 { "file" } else { "files" }
        )
    };
    write_fields(
        out,
        &[
            (
                "recalled",
                format!(
                    "{} ({} downloaded)",
                    files(s.recalled),
                    human::bytes(s.bytes)
                ),
            ),
            ("failed", files(s.failures.len() as u64)),
            (
                "time",
                format!(
                    "{} ({})",
                    seconds(s.seconds),
                    mib_per_sec(s.bytes, s.seconds)
                ),
            ),
        ],
    )?;
    write_failures(out, &s.failures)
}
