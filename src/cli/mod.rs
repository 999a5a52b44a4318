//! Command-line plumbing for `tierctl`: config lookup, path handling,
//! human-readable formatting and the subcommands' implementations.
//!
//! Compiled into the `tierctl` binary (not the library), via
//! `#[path = "../cli/mod.rs"] mod cli;`.

pub mod config_path;
pub mod cost_report;
pub mod daemon;
pub mod dr;
pub mod fsck;
pub mod gc;
pub mod human;
pub mod migrate;
pub mod mount_path;
pub mod paths;
pub mod pin;
pub mod recall;
pub mod remote_health;
pub mod rule;
pub mod status;
pub mod table;
pub mod tiering;
pub mod verify;

use std::fmt;

/// A mistake in how the command was invoked (e.g. a PATH outside the mount):
/// reported with exit status 2, like clap's own usage errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// How a command that printed its report went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything asked for was reported: exit status 0.
    Success,
    /// The report shows a problem (e.g. the daemon does not answer): exit
    /// status 1, after the report is printed.
    Failure,
}
