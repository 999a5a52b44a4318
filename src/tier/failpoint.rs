//! Test hooks for crash testing.
//!
//! When `TIERFS_TEST_PAUSE_AT` names a step, the engine stops there: it writes
//! the step's name to `TIERFS_TEST_PAUSE_FILE` (if set) and sleeps, so a test
//! can `kill -9` the daemon at exactly that point and check what the next start
//! recovers. Unset (always, in production), this is one environment lookup.

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
    tracing::warn!(step, "test pause point reached; waiting to be killed");
    let wait_forever = || loop {
        std::thread::sleep(Duration::from_secs(3600));
    };
    // On a runtime worker, hand the worker's other tasks (such as a reader
    // the paused recall just woke) to another thread before blocking, or
    // they would be stranded behind this one.
    let on_worker = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if on_worker {
        tokio::task::block_in_place(wait_forever)
    } else {
        wait_forever()
    }
}
