//! Test hooks for crash testing.
//!
//! When `TIERFS_TEST_PAUSE_AT` names a step, the engine stops there: it writes
//! the step's name to `TIERFS_TEST_PAUSE_FILE` (if set) and sleeps, so a test
//! can `kill -9` the daemon at exactly that point and check what the next start
//! recovers, or (with `TIERFS_TEST_RESUME_FILE`) until that file appears.
//! Unset (always, in production), this is one environment lookup.

use std::time::Duration;

/// Steps a release or recall can be paused at, in order.
pub const STEPS: [&str; 7] = [
    "uploading",
    "uploaded",
    "premigrated",
    "marked",
    "emptied",
    "punched",
    "downloaded",
];

/// Stops here forever if the test asked to pause at `step`.
pub fn pause(step: &str) {
    let Some(wanted) = std::env::var_os("TIERFS_TEST_PAUSE_AT") else {
        return;
    };
    if wanted != step {
        return;
    }
    if let Some(file) = std::env::var_os("TIERFS_TEST_PAUSE_FILE") {
        let _ = std::fs::write(file, step);
    }
    // With TIERFS_TEST_RESUME_FILE, the pause ends once that file exists
    // (and every later pause passes at once): for tests that change the
    // world (stop a server) at a known step and then let the daemon go on.
    if let Some(resume) = std::env::var_os("TIERFS_TEST_RESUME_FILE") {
        tracing::warn!(
            step,
            "test pause point reached; waiting for the resume file"
        );
        while !std::path::Path::new(&resume).exists() {
            std::thread::sleep(Duration::from_millis(50));
        }
        return;
    }
    tracing::warn!(step, "test pause point reached; waiting to be killed");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
