//! `tierctl verify`: read cold objects back and check their hashes.
//!
//! Runs on its own, from the catalog (read-only) and the remotes in the
//! config: verifying changes nothing, so it needs no daemon, works while the
//! daemon is down, and never holds up the daemon's migrations.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tierfs::escape::escape_str;

use anyhow::Context;
use clap::Args;
use tierfs::catalog::path_key;
use tierfs::config::{Config, parse_size};
use tierfs::remote::Remote;
use tierfs::tier::verify::{self, VerifyReport};

use crate::daemon::{mib_per_sec, seconds, write_json};
use crate::table::write_fields;
use crate::{Outcome, UsageError, human, paths};

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Files or directories to check (default: everything); relative to the mount root, or absolute under the mountpoint or hot dir
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Read at most this much per second, e.g. `20MiB` (default: no limit)
    #[arg(long, value_name = "SIZE")]
    pub rate: Option<String>,
    /// Print one JSON object instead of text
    #[arg(long)]
    pub json: bool,
}

/// Checks the objects of every premigrated or cold file at or below the
/// paths. Exits 1 if any object is missing, corrupt or unreadable.
pub fn run(config: &Config, args: &VerifyArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let rate = args
        .rate
        .as_deref()
        .map(|r| parse_size(r).map_err(|m| UsageError(format!("--rate {r}: {m}"))))
        .transpose()?;
    let rel = paths::resolve_without_daemon(config, &args.paths)?;
    paths::require_catalogued(config, &rel)?;
    let prefixes: Vec<Vec<u8>> = rel.iter().filter_map(|p| path_key(p)).collect();
    let Some(conn) = paths::open_catalog(config)? else {
        writeln!(
            out,
            "no catalog at {}: nothing to verify",
            config.catalog.display()
        )?;
        return Ok(Outcome::Success);
    };
    let items = verify::plan(&conn, &prefixes)
        .with_context(|| format!("reading the catalog {}", config.catalog.display()))?;
    drop(conn);
    let mut remotes = std::collections::BTreeMap::new();
    for (name, cfg) in &config.remotes {
        let remote =
            Remote::from_config(cfg).with_context(|| format!("setting up remote `{name}`"))?;
        remotes.insert(name.clone(), remote);
    }
    let total: u64 = items.iter().map(|i| i.size * i.copies_count() as u64).sum();
    let done = Arc::new(AtomicU64::new(0));
    let drawer = std::io::stderr()
        .is_terminal()
        .then(|| spawn_progress(done.clone(), total));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the I/O runtime")?;
    let counter = done.clone();
    let report = runtime.block_on(verify::run(&items, &remotes, rate, &move |n| {
        counter.fetch_add(n, Ordering::Relaxed);
    }));
    runtime.shutdown_timeout(Duration::from_secs(5));
    if let Some((stop, handle)) = drawer {
        drop(stop);
        let _ = handle.join();
    }
    let outcome = if report.is_clean() {
        Outcome::Success
    } else {
        Outcome::Failure
    };
    if args.json {
        write_json(out, &report)?;
    } else {
        write_text(out, &report)?;
    }
    Ok(outcome)
}

/// Draws `verifying: 1.2 GiB/6.0 GiB  20%` on stderr until the sender drops.
fn spawn_progress(
    done: Arc<AtomicU64>,
    total: u64,
) -> (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let handle = std::thread::spawn(move || {
        let mut stderr = std::io::stderr();
        let mut drawn = false;
        while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
            rx.recv_timeout(Duration::from_millis(500))
        {
            let d = done.load(Ordering::Relaxed);
            let pct = (d * 100).checked_div(total).unwrap_or(100);
            let _ = write!(
                stderr,
                "\r\x1b[2Kverifying: {}/{}  {pct}%",
                human::bytes(d),
                human::bytes(total)
            );
            let _ = stderr.flush();
            drawn = true;
        }
        if drawn {
            let _ = write!(stderr, "\r\x1b[2K");
        }
    });
    (tx, handle)
}

fn write_text(out: &mut impl Write, r: &VerifyReport) -> anyhow::Result<()> {
    let secs = r.millis as f64 / 1000.0;
    write_fields(
        out,
        &[
            ("files", human::count(r.files)),
            ("objects", human::count(r.objects)),
            ("read", human::bytes(r.bytes_read)),
            ("time", seconds(secs)),
            ("rate", mib_per_sec(r.bytes_read, secs)),
        ],
    )?;
    if r.is_clean() {
        writeln!(out, "all objects match their recorded blake3")?;
        return Ok(());
    }
    writeln!(out, "{} bad object(s):", r.problems.len())?;
    for p in &r.problems {
        writeln!(
            out,
            "  {} remote `{}` object `{}`: {}",
            p.kind,
            escape_str(&p.remote),
            escape_str(&p.key),
            escape_str(&p.detail)
        )?;
        let fallback = if p.other_copy_good {
            "still readable from another copy"
        } else {
            "NO good copy: reads fail with EIO"
        };
        writeln!(out, "    affects ({fallback}):")?;
        for path in &p.paths {
            writeln!(out, "      {}", escape_str(&path.to_string()))?;
        }
    }
    Ok(())
}
