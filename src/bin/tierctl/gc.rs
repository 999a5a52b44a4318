//! `tierctl gc`: delete cloud objects no file uses any more, through the daemon.

use std::io::Write;
use std::time::Duration;

use clap::Args;
use serde::Serialize;
use tierfs::config::Config;
use tierfs::control::Request;
use tierfs::tier::GcSummary;

use crate::daemon::{self, write_json};
use crate::migrate::write_failures;
use crate::table::write_fields;
use crate::{Outcome, human};

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Delete objects unreferenced for longer than this, e.g. 30d, 12h [default: gc_grace from the config]
    #[arg(long, value_name = "DUR", value_parser = parse_grace)]
    pub grace: Option<Duration>,
    /// Print one JSON object instead of text
    #[arg(long)]
    pub json: bool,
}

fn parse_grace(s: &str) -> Result<Duration, String> {
    tierfs::config::parse_duration(s)
}

#[derive(Serialize)]
struct GcJson<'a> {
    grace_secs: u64,
    #[serde(flatten)]
    summary: &'a GcSummary,
}

/// `tierctl gc`: runs a garbage collection now. Exits 1 if a deletion failed.
pub fn run(config: &Config, args: &GcArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    daemon::require_running(config)?;
    let request = Request::Gc {
        grace_secs: args.grace.map(|d| d.as_secs()),
    };
    let summary: GcSummary = daemon::ask_running(config, &request, daemon::JOB_TIMEOUT)?;
    // The daemon uses the gc_grace of its own config; normally this one.
    let grace = args.grace.unwrap_or(config.gc_grace);
    let outcome = if summary.failures.is_empty() {
        Outcome::Success
    } else {
        Outcome::Failure
    };
    if args.json {
        write_json(
            out,
            &GcJson {
                grace_secs: grace.as_secs(),
                summary: &summary,
            },
        )?;
        return Ok(outcome);
    }
    let kept = summary
        .unreferenced
        .saturating_sub(summary.deleted + summary.failures.len() as u64);
    write_fields(
        out,
        &[
            (
                "unreferenced",
                format!("{} (no file uses them)", objects(summary.unreferenced)),
            ),
            (
                "deleted",
                format!(
                    "{} ({})",
                    objects(summary.deleted),
                    human::bytes(summary.deleted_bytes)
                ),
            ),
            (
                "kept",
                format!(
                    "{} (unreferenced for less than the grace period, {})",
                    objects(kept),
                    human::duration(grace)
                ),
            ),
            ("failed", objects(summary.failures.len() as u64)),
        ],
    )?;
    write_failures(out, &summary.failures)?;
    Ok(outcome)
}

fn objects(n: u64) -> String {
    format!(
        "{} {}",
        human::count(n),
        if n == 1 { "object" } else { "objects" }
    )
}
