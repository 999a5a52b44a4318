//! Disaster recovery commands of `tierctl`: `backup` (store a catalog
//! backup on every remote now) and `rebuild` (recreate a lost hot dir and
//! catalog from one). Both run in tierctl itself, not through the daemon.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use tierfs::config::Config;
use tierfs::escape::{Escaped, escape_str};
use tierfs::remote::Remote;
use tierfs::tier::backup::{BackupReport, backup_catalog};
use tierfs::tier::rebuild::{RebuildReport, RebuildRequest, rebuild};

use crate::daemon::{self, write_json};
use crate::table::write_fields;
use crate::{Outcome, human};

/// The disaster-recovery subcommands, flattened into tierctl's command list.
#[derive(Debug, Subcommand)]
pub enum DrCommand {
    /// Back the catalog up to every remote now
    ///
    /// Takes a consistent snapshot of the catalog (safe while the daemon
    /// runs), adds every file's mode, owner and access time and the hot
    /// dir's directories, compresses it (zstd) and stores it on every
    /// configured remote as <prefix>/catalog/<UTC time>.db.zst. Each copy is
    /// read back and checked; then backups beyond catalog_backup_keep
    /// (default 7) are deleted, oldest first. The daemon does the same every
    /// catalog_backup_interval (default 6h).
    ///
    /// Works with the daemon running or stopped. Exits 1 if any remote
    /// failed.
    ///
    /// Examples:
    ///   tierctl backup
    ///   tierctl backup --json | jq '.stored[].key'
    #[command(verbatim_doc_comment)]
    Backup(BackupArgs),

    /// Recreate a lost hot dir and catalog from a catalog backup
    ///
    /// For a new machine (or a replaced disk): with a config whose hot_dir is
    /// an empty directory and whose catalog does not exist yet, and the
    /// daemon stopped, downloads the newest catalog backup from REMOTE (or
    /// the one given with --catalog-backup), and recreates every file that
    /// had a cloud copy as a stub with its path, size, mode, owner and
    /// times, plus the directories. Then `tierfs mount` reads every file back
    /// from the cloud, verified.
    ///
    /// Files that existed only on the lost disk (never migrated, or changed
    /// since) cannot be recovered: they are listed by path. The backup is
    /// untrusted input: rows with unsafe paths (absolute, `..`, empty
    /// components, NUL), out-of-range modes or owners are refused and
    /// listed; set-ID bits are never restored on files. A backup that
    /// decompresses beyond --max-catalog-size (or 1000x its size), is not
    /// intact SQLite, or is not a tierfs catalog is refused whole. Exits 1 if
    /// any file was lost or any row refused, 0 if everything was recreated.
    ///
    /// Examples:
    ///   tierctl rebuild --from cloud
    ///   tierctl rebuild --from cloud --catalog-backup 20261122T081500.123456789Z.db.zst
    #[command(verbatim_doc_comment)]
    Rebuild(RebuildArgs),

    /// Create a new random encryption key file (mode 0600)
    ///
    /// Writes 32 random bytes to FILE, which must not exist, readable by its
    /// owner only, and prints the key id. Name it in a remote's section as
    /// encryption_key_file = "FILE" to encrypt that remote's objects before
    /// upload. Losing the key loses the cold data: copy it somewhere safe and
    /// offline now (see docs/safety.md). Needs no config.
    ///
    /// Examples:
    ///   tierctl keygen /etc/tierfs/cloud.key
    #[command(verbatim_doc_comment)]
    Keygen(KeygenArgs),
}

/// Arguments of `tierctl keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the key (must not exist)
    #[arg(value_name = "FILE")]
    pub file: std::path::PathBuf,
    /// Print one JSON object (`path`, `key_id`) instead of text
    #[arg(long)]
    pub json: bool,
}

/// `tierctl keygen FILE` (runs without a config).
pub fn keygen(args: &KeygenArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let id = tierfs::remote::crypt::generate_key_file(&args.file)?;
    if args.json {
        let report = serde_json::json!({
            "path": args.file.to_string_lossy(),
            "key_id": id.to_string(),
        });
        writeln!(out, "{report}")?;
        return Ok(Outcome::Success);
    }
    writeln!(
        out,
        "wrote a new encryption key to {} (mode 0600, key id {id})",
        args.file.display()
    )?;
    writeln!(
        out,
        "back it up offline now: without it, objects encrypted with it cannot be read"
    )?;
    Ok(Outcome::Success)
}

/// Arguments of `tierctl backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Print one JSON object instead of text
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `tierctl rebuild`.
#[derive(Debug, Args)]
pub struct RebuildArgs {
    /// The remote holding the catalog backups (its [remote.NAME] section)
    #[arg(long = "from", value_name = "REMOTE")]
    pub from: String,
    /// A backup key, or its name under <prefix>/catalog/ [default: the newest]
    #[arg(long, value_name = "KEY")]
    pub catalog_backup: Option<String>,
    /// Refuse a backup that decompresses to more than SIZE (e.g. 8GiB)
    /// [default: 4GiB]
    #[arg(long, value_name = "SIZE", value_parser = parse_size_arg)]
    pub max_catalog_size: Option<u64>,
    /// Print one JSON object instead of text
    #[arg(long)]
    pub json: bool,
}

fn parse_size_arg(s: &str) -> Result<u64, String> {
    tierfs::config::parse_size(s)
}

impl DrCommand {
    /// Runs the command, writing its report to `out`.
    pub fn run(&self, config: &Config, out: &mut impl Write) -> anyhow::Result<Outcome> {
        match self {
            DrCommand::Backup(args) => run_backup(config, args, out),
            DrCommand::Rebuild(args) => run_rebuild(config, args, out),
            DrCommand::Keygen(args) => keygen(args, out),
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the I/O runtime")
}

fn run_backup(config: &Config, args: &BackupArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let mut remotes = BTreeMap::new();
    for (name, cfg) in &config.remotes {
        let remote = Remote::from_config(cfg).with_context(|| format!("remote `{name}`"))?;
        remotes.insert(name.clone(), remote);
    }
    let rt = runtime()?;
    let report = rt
        .block_on(backup_catalog(
            &config.catalog,
            &config.hot_dir,
            &remotes,
            config.catalog_backup_keep,
        ))
        .with_context(|| format!("backing up the catalog {}", config.catalog.display()))?;
    rt.shutdown_timeout(Duration::from_secs(5));
    let outcome = if report.failures.is_empty() {
        Outcome::Success
    } else {
        Outcome::Failure
    };
    if args.json {
        write_json(out, &report)?;
    } else {
        write_backup(out, &report)?;
    }
    Ok(outcome)
}

fn write_backup(out: &mut impl Write, r: &BackupReport) -> anyhow::Result<()> {
    write_fields(
        out,
        &[
            (
                "catalog",
                format!(
                    "{} files ({} with mode/owner/times), {} directories",
                    human::count(r.files),
                    human::count(r.files_with_attributes),
                    human::count(r.dirs)
                ),
            ),
            (
                "size",
                format!(
                    "{} snapshot, {} compressed",
                    human::bytes(r.snapshot_bytes),
                    human::bytes(r.compressed_bytes)
                ),
            ),
            ("time", daemon::seconds(r.seconds)),
        ],
    )?;
    for s in &r.stored {
        writeln!(out, "stored on {}: {} (verified)", s.remote, s.key)?;
        for p in &s.pruned {
            writeln!(out, "  deleted older backup {p}")?;
        }
    }
    for f in &r.failures {
        writeln!(out, "FAILED: {f}")?;
    }
    Ok(())
}

fn run_rebuild(
    config: &Config,
    args: &RebuildArgs,
    out: &mut impl Write,
) -> anyhow::Result<Outcome> {
    if let Some(status) = daemon::status(config)? {
        anyhow::bail!(
            "a tierfs daemon (pid {}) is running with this config; stop it before rebuilding",
            status.pid
        );
    }
    let rt = runtime()?;
    let req = RebuildRequest {
        remote: args.from.clone(),
        backup_key: args.catalog_backup.clone(),
        max_catalog_bytes: args.max_catalog_size,
    };
    let report = rt.block_on(rebuild(config, &req)).with_context(|| {
        format!(
            "rebuilding {} from remote `{}`",
            config.hot_dir.display(),
            args.from
        )
    })?;
    rt.shutdown_timeout(Duration::from_secs(5));
    let outcome = if report.lost.is_empty() && report.rejected.is_empty() {
        Outcome::Success
    } else {
        Outcome::Failure
    };
    if args.json {
        write_json(out, &report)?;
    } else {
        write_rebuild(out, config, &report)?;
    }
    if !report.rejected.is_empty() {
        eprintln!(
            "tierctl: {} row(s) of backup `{}` refused as unsafe (listed above)",
            report.rejected.len(),
            escape_str(&report.backup_key)
        );
    }
    Ok(outcome)
}

fn write_rebuild(out: &mut impl Write, config: &Config, r: &RebuildReport) -> anyhow::Result<()> {
    write_fields(
        out,
        &[
            (
                "backup",
                format!(
                    "{} ({})",
                    escape_str(&r.backup_key),
                    human::bytes(r.backup_bytes)
                ),
            ),
            (
                "restored",
                format!(
                    "{} files as stubs ({}), {} directories",
                    human::count(r.files_restored),
                    human::bytes(r.bytes_restored),
                    human::count(r.dirs_created)
                ),
            ),
            (
                "lost",
                format!(
                    "{} files (no cloud copy)",
                    human::count(r.lost.len() as u64)
                ),
            ),
            ("time", daemon::seconds(r.seconds)),
        ],
    )?;
    if r.files_without_attributes > 0 {
        writeln!(
            out,
            "{} file(s) had no recorded mode/owner in the backup: given mode 0644, owner root",
            r.files_without_attributes
        )?;
    }
    if !r.lost.is_empty() {
        writeln!(out, "not recoverable:")?;
        for l in &r.lost {
            writeln!(
                out,
                "  {}: {}",
                Escaped::path(&l.path),
                escape_str(&l.reason)
            )?;
        }
    }
    if !r.rejected.is_empty() {
        writeln!(
            out,
            "refused {} unsafe row(s) of the backup (nothing created for them):",
            r.rejected.len()
        )?;
        for n in &r.rejected {
            writeln!(out, "  {n}")?;
        }
    }
    if !r.adjusted.is_empty() {
        writeln!(out, "restored with a safer mode:")?;
        for n in &r.adjusted {
            writeln!(out, "  {n}")?;
        }
    }
    writeln!(
        out,
        "catalog written to {}; mount with: tierfs mount {} MOUNTPOINT",
        config.catalog.display(),
        config.source.display()
    )?;
    Ok(())
}
