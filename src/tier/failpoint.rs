//! Test hooks for crash and outage testing.
//!
//! When `TIERFS_TEST_PAUSE_AT` names a step (or several, comma-separated), the
//! engine stops there: it writes the step's name to `TIERFS_TEST_PAUSE_FILE`
//! (if set) and sleeps, so a test can `kill -9` the daemon at exactly that
//! point and check what the next start recovers. With
//! `TIERFS_TEST_RESUME_FILE` set, a paused step goes on once that file lists
//! the step's name (whitespace-separated), and passes at once from then on:
//! for tests that change the world (stop a server) at a known point.
//! Unset (always, in production), this is one environment lookup.

use std::path::Path;
use std::time::Duration;

/// Steps a release or recall can be paused at, in order ("emptied" only
/// when blocks are freed by truncating: see [`punch_disabled`]).
pub const STEPS: [&str; 9] = [
    "uploading",
    "uploaded",
    "premigrated",
    "marked",
    "emptied",
    "freed",
    "punched",
    "receiving",
    "downloaded",
];

/// Whether `TIERFS_TEST_NO_PUNCH` is set: a release then frees a file's
/// blocks by truncating it to zero and extending it again (the fallback for
/// file systems without hole punching), so a test can crash it in between.
pub fn punch_disabled() -> bool {
    std::env::var_os("TIERFS_TEST_NO_PUNCH").is_some()
}

/// Stops here if the test asked to pause at `step`.
pub fn pause(step: &str) {
    let Some(wanted) = std::env::var_os("TIERFS_TEST_PAUSE_AT") else {
        return;
    };
    if !wanted.to_string_lossy().split(',').any(|w| w == step) {
        return;
    }
    let resume = std::env::var_os("TIERFS_TEST_RESUME_FILE");
    if let Some(resume) = &resume
        && resumed(Path::new(resume), step)
    {
        return;
    }
    if let Some(file) = std::env::var_os("TIERFS_TEST_PAUSE_FILE") {
        let _ = std::fs::write(file, step);
    }
    if let Some(resume) = resume {
        tracing::warn!(
            step,
            "test pause point reached; waiting for the resume file"
        );
        off_the_runtime(|| {
            while !resumed(Path::new(&resume), step) {
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        return;
    }
    tracing::warn!(step, "test pause point reached; waiting to be killed");
    off_the_runtime(|| {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    });
}

/// Runs the blocking `wait`. On a runtime worker the worker's other tasks
/// (such as a reader the paused recall just woke) are handed to another
/// thread first, or they would be stranded behind this one.
fn off_the_runtime(wait: impl FnOnce()) {
    let on_worker = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if on_worker {
        tokio::task::block_in_place(wait)
    } else {
        wait()
    }
}

fn resumed(file: &Path, step: &str) -> bool {
    std::fs::read_to_string(file).is_ok_and(|s| s.split_whitespace().any(|w| w == step))
}
