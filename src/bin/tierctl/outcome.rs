//! How a `tierctl` command ended: [`Outcome`] for a report that was
//! printed, [`UsageError`] for a mistake in how it was invoked.

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
