//! `tierctl migrate`: run a migration now, through the daemon.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use serde::Serialize;
use tierfs::config::Config;
use tierfs::control::Request;
use tierfs::tier::{MigrateRequest, MigrateSummary};

use crate::daemon::{self, exact_all, mib_per_sec, seconds, write_json};
use crate::paths::{self, Mount};
use crate::table::write_fields;
use crate::{Outcome, human};

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Only files at or below these paths (relative to the mount root, or absolute under the mountpoint or hot dir)
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Only report what would migrate; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Print one JSON object instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct MigrateJson<'a> {
    dry_run: bool,
    paths: Vec<tierfs::escape::ExactPath>,
    #[serde(flatten)]
    summary: &'a MigrateSummary,
    /// Bytes uploaded per second of wall time.
    upload_bytes_per_sec: f64,
}

/// `tierctl migrate`: asks the daemon to migrate now and reports the result.
/// Exits 1 if any file failed; files skipped (gone, changed, open) are not
/// failures.
pub fn run(config: &Config, args: &MigrateArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let status = daemon::require_running(config)?;
    let paths = paths::resolve(config, &args.paths, Mount::Known(&status.mountpoint))?;
    if !paths.is_empty() {
        paths::require_catalogued(config, &paths)?;
    }
    let request = Request::Migrate(MigrateRequest {
        paths: paths.clone(),
        dry_run: args.dry_run,
    });
    let verb = if args.dry_run {
        "planning"
    } else {
        "migrating"
    };
    let summary: MigrateSummary = daemon::run_job(config, &request, verb)?;
    let outcome = if summary.failures.is_empty() {
        Outcome::Success
    } else {
        Outcome::Failure
    };
    if args.json {
        let rate = if summary.seconds > 0.0 {
            summary.uploaded_bytes as f64 / summary.seconds
        } else {
            0.0
        };
        write_json(
            out,
            &MigrateJson {
                dry_run: args.dry_run,
                paths: exact_all(&paths),
                summary: &summary,
                upload_bytes_per_sec: rate,
            },
        )?;
    } else {
        write_text(out, &summary, args.dry_run, !paths.is_empty())?;
    }
    Ok(outcome)
}

fn files(n: u64) -> String {
    format!(
        "{} {}",
        human::count(n),
        if n == 1 { "file" } else { "files" }
    )
}

fn write_text(
    out: &mut impl Write,
    s: &MigrateSummary,
    dry_run: bool,
    scoped: bool,
) -> std::io::Result<()> {
    let nothing = if scoped {
        "nothing to migrate: no file at or below the given paths matches a rule right now"
    } else {
        "nothing to migrate: no file matches a rule right now"
    };
    if dry_run {
        if s.candidates == 0 {
            writeln!(out, "{nothing}")?;
        } else {
            writeln!(
                out,
                "would migrate {} ({})",
                files(s.candidates),
                human::bytes(s.candidate_bytes)
            )?;
        }
        return writeln!(out, "dry run: nothing was changed");
    }
    if s.candidates == 0 && s.failures.is_empty() {
        return writeln!(out, "{nothing}");
    }
    let mut fields = vec![
        (
            "candidates",
            format!(
                "{} ({})",
                files(s.candidates),
                human::bytes(s.candidate_bytes)
            ),
        ),
        (
            "released",
            format!(
                "{} ({} freed locally)",
                files(s.released),
                human::bytes(s.released_bytes)
            ),
        ),
        ("uploaded", human::bytes(s.uploaded_bytes)),
    ];
    if s.skipped > 0 {
        fields.push((
            "skipped",
            format!(
                "{} (open or changed meanwhile; tried again next run)",
                files(s.skipped)
            ),
        ));
    }
    fields.push(("failed", files(s.failures.len() as u64)));
    fields.push((
        "time",
        format!(
            "{} ({} uploaded)",
            seconds(s.seconds),
            mib_per_sec(s.uploaded_bytes, s.seconds)
        ),
    ));
    write_fields(out, &fields)?;
    write_failures(out, &s.failures)
}

/// `failures:` and one indented line per failure, if there are any.
pub fn write_failures(out: &mut impl Write, failures: &[String]) -> std::io::Result<()> {
    if failures.is_empty() {
        return Ok(());
    }
    writeln!(out, "failures:")?;
    for failure in failures {
        // Failure messages embed file names: one escaped line each.
        writeln!(out, "  {}", tierfs::escape::escape_str(failure))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_text() {
        let s = MigrateSummary {
            candidates: 3,
            candidate_bytes: 30 << 20,
            released: 1,
            released_bytes: 10 << 20,
            uploaded_bytes: 10 << 20,
            skipped: 1,
            skips: Vec::new(),
            failures: vec!["docs/b: remote `cloud`: timed out".into()],
            seconds: 2.0,
        };
        let mut out = Vec::new();
        write_text(&mut out, &s, false, false).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("candidates  3 files (30.0 MiB)"), "{text}");
        assert!(
            text.contains("released    1 file (10.0 MiB freed locally)"),
            "{text}"
        );
        assert!(text.contains("failed      1 file"), "{text}");
        assert!(
            text.contains("time        2.0s (5.0 MiB/s uploaded)"),
            "{text}"
        );
        assert!(text.contains("failures:\n  docs/b: remote"), "{text}");
    }
}
