//! `tierctl fsck`: check that the catalog, the hot dir and the remotes agree.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tierfs::catalog::{Catalog, CatalogOptions};
use tierfs::config::Config;
use tierfs::control::Request;
use tierfs::tier::{FsckReport, Tier, gate::Gate};

use crate::Outcome;
use crate::daemon::{self, write_json};

#[derive(Debug, Args)]
pub struct FsckArgs {
    /// Fix what can be fixed: catalog states that disagree with stubs on disk,
    /// objects on a remote the catalog lost track of, rows of files that are gone
    #[arg(long)]
    pub repair: bool,
    /// Print one JSON object instead of text
    #[arg(long)]
    pub json: bool,
}

/// Runs the check through the daemon, or (daemon stopped) on its own.
/// Exits 1 if any problem remains.
pub fn run(config: &Config, args: &FsckArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let request = Request::Fsck {
        repair: args.repair,
    };
    let report = match daemon::ask(config, &request, daemon::JOB_TIMEOUT)? {
        Some(report) => report,
        None => run_locally(config, args.repair)?,
    };
    let remaining = report.problems.len().saturating_sub(report.repaired.len());
    let outcome =
        if report.is_clean() || (args.repair && report.unrepairable.is_empty() && remaining == 0) {
            Outcome::Success
        } else {
            Outcome::Failure
        };
    if args.json {
        write_json(out, &report)?;
        return Ok(outcome);
    }
    write_report(out, &report)?;
    Ok(outcome)
}

/// The daemon is not running: open the catalog and the remotes here.
fn run_locally(config: &Config, repair: bool) -> anyhow::Result<FsckReport> {
    let catalog = Catalog::open(&config.catalog, CatalogOptions::default())
        .with_context(|| format!("opening the catalog {}", config.catalog.display()))?;
    let tier = Arc::new(Tier::new(
        config,
        catalog.clone(),
        Arc::new(Gate::default()),
    )?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the I/O runtime")?;
    let report = runtime.block_on(tier.fsck(repair))?;
    runtime.shutdown_timeout(Duration::from_secs(5));
    catalog.close()?;
    Ok(report)
}

fn write_report(out: &mut impl Write, r: &FsckReport) -> anyhow::Result<()> {
    writeln!(
        out,
        "checked {} catalogued file(s) and {} object(s) on the remotes",
        r.files_checked, r.objects_listed
    )?;
    if r.is_clean() {
        writeln!(out, "clean: catalog, hot dir and remotes agree")?;
        return Ok(());
    }
    writeln!(out, "{} problem(s):", r.problems.len())?;
    let esc = |p: &dyn std::fmt::Display| tierfs::escape::escape_str(&p.to_string()).into_owned();
    for p in &r.problems {
        writeln!(out, "  {}", esc(p))?;
    }
    if !r.repaired.is_empty() {
        writeln!(out, "repaired:")?;
        for p in &r.repaired {
            writeln!(out, "  {}", esc(p))?;
        }
    }
    if !r.unrepairable.is_empty() {
        writeln!(out, "need attention (not repairable automatically):")?;
        for p in &r.unrepairable {
            writeln!(out, "  {}", esc(p))?;
        }
    }
    Ok(())
}
