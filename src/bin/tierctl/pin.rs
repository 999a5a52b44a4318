//! `tierctl pin` / `tierctl unpin`: keep files local whatever the rules say.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use serde::Serialize;
use tierfs::config::Config;
use tierfs::control::{PinSummary, Request};

use crate::daemon::{self, CHANGE_TIMEOUT, exact_all, write_json};
use crate::paths::{self, Mount};
use crate::{Outcome, human};

#[derive(Debug, Args)]
pub struct PinArgs {
    /// Files or directories (relative to the mount root, or absolute under the mountpoint or hot dir)
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
    /// Print one JSON object instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct PinJson {
    pinned: bool,
    paths: Vec<tierfs::escape::ExactPath>,
    /// Files whose pin changed.
    changed: u64,
}

/// `tierctl pin` (`pinned` true) or `tierctl unpin`: sets or clears the pin
/// on every file at or below each path.
pub fn run(
    config: &Config,
    args: &PinArgs,
    pinned: bool,
    out: &mut impl Write,
) -> anyhow::Result<Outcome> {
    let status = daemon::require_running(config)?;
    let paths = paths::resolve(config, &args.paths, Mount::Known(&status.mountpoint))?;
    paths::require_catalogued(config, &paths)?;
    let request = Request::Pin {
        paths: paths.clone(),
        pinned,
    };
    let PinSummary { changed } = daemon::ask_running(config, &request, CHANGE_TIMEOUT)?;
    if args.json {
        write_json(
            out,
            &PinJson {
                pinned,
                paths: exact_all(&paths),
                changed,
            },
        )?;
        return Ok(Outcome::Success);
    }
    let verb = if pinned { "pinned" } else { "unpinned" };
    if changed == 0 {
        writeln!(
            out,
            "no change: every file at or below the given paths was already {verb}"
        )?;
    } else {
        writeln!(
            out,
            "{verb} {} {}",
            human::count(changed),
            if changed == 1 { "file" } else { "files" }
        )?;
    }
    Ok(Outcome::Success)
}
