//! Helpers for the tiering end-to-end tests: driving the daemon over its
//! control socket and making test files with known content and age.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tierfs::control::{Reply, Request};
use tierfs::tier::{MigrateRequest, MigrateSummary};

use super::TestMount;

/// The daemon's control socket (the default beside the catalog).
pub fn socket(m: &TestMount) -> PathBuf {
    m.catalog().with_extension("sock")
}

/// Sends `req` and returns the reply, failing the test (with the daemon log)
/// if the daemon refuses or does not answer.
pub fn ask(m: &TestMount, req: Request) -> Reply {
    tierfs::control::request(&socket(m), &req, Duration::from_secs(300))
        .unwrap_or_else(|e| panic!("control request failed: {e}\n{}", m.log_banner()))
        .into_result()
        .unwrap_or_else(|e| panic!("daemon refused: {e}\n{}", m.log_banner()))
}

/// Adds a rule at the end of the list.
pub fn add_rule(m: &TestMount, text: &str) {
    ask(
        m,
        Request::RuleAdd {
            text: text.into(),
            position: None,
        },
    );
}

/// Runs a migration of everything the rules select and waits for it.
pub fn migrate(m: &TestMount) -> MigrateSummary {
    match ask(m, Request::Migrate(MigrateRequest::default())) {
        Reply::Migrate(s) => s,
        other => panic!("unexpected reply {other:?}"),
    }
}

/// Waits until the recalls that reads through the mount started in the
/// background (a cold file read in full) have finished: a migration right
/// after them would find those files still `recalling` and leave them.
pub fn wait_for_background_recalls(m: &TestMount) {
    let mut last = u64::MAX;
    let done = super::wait_until(Duration::from_secs(120), || {
        last = match ask(m, Request::Activity) {
            Reply::Activity(a) => a.background_recalls,
            other => panic!("unexpected reply {other:?}"),
        };
        last == 0
    });
    assert!(
        done.is_some(),
        "{last} background recalls still running after 120 s\n{}",
        m.log_banner()
    );
}

/// A mount (with `allow_other`) with one `file://` remote named `cloud`, no
/// scheduled migrations, and the rule `* -> cloud`.
pub fn cold_mount() -> TestMount {
    let mut m = TestMount::unmounted(super::MountOptions::default());
    let cloud = m.root().join("cloud");
    fs::create_dir(&cloud).unwrap();
    m.set_options(super::MountOptions {
        allow_other: true,
        extra_top: "migrate_interval = \"off\"\n".into(),
        extra_sections: format!("[remote.cloud]\nurl = \"file://{}\"\n", cloud.display()),
        ..Default::default()
    });
    m.mount();
    add_rule(&m, "* -> cloud");
    m
}

/// Deterministic pseudo-random content (xorshift), different per seed.
pub fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Writes `data` to `path` (creating directories) and sets its mtime
/// `age_days` into the past.
pub fn write_old(path: &Path, data: &[u8], age_days: u64) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, data).unwrap();
    let t = SystemTime::now() - Duration::from_secs(age_days * 86_400);
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

/// A crash-test pause point: the daemon started with [`Pause::env`] stops at
/// `step` and writes the step's name to a file, so the test knows when to
/// `kill -9` it.
pub struct Pause {
    step: String,
    file: PathBuf,
}

impl Pause {
    /// A pause at `step` (see `src/tier/failpoint.rs` for the steps).
    pub fn at(step: &str) -> Pause {
        let file = std::env::temp_dir().join(format!("tierfs-pause-{}-{step}", std::process::id()));
        let _ = fs::remove_file(&file);
        Pause {
            step: step.to_string(),
            file,
        }
    }

    /// Environment for a daemon that should stop at this step.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("TIERFS_TEST_PAUSE_AT".to_string(), self.step.clone()),
            (
                "TIERFS_TEST_PAUSE_FILE".to_string(),
                self.file.display().to_string(),
            ),
        ]
    }

    /// Whether the daemon has stopped at the step.
    pub fn reached(&self) -> bool {
        self.file.exists()
    }

    /// Waits until the daemon has stopped at the step.
    pub fn wait(&self, m: &TestMount) {
        assert!(
            super::wait_until(Duration::from_secs(120), || self.file.exists()).is_some(),
            "never reached step {}\n{}",
            self.step,
            m.log_banner()
        );
    }
}

impl Drop for Pause {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.file);
    }
}

/// Unmounts (if mounted) and mounts again with `env` as the daemon's extra
/// environment (empty: a normal daemon).
pub fn remount_with_env(m: &mut TestMount, env: Vec<(String, String)>) {
    if m.daemon_pid().is_some() {
        m.unmount();
    }
    let mut opts = m.options().clone();
    opts.env = env;
    m.set_options(opts);
    m.mount();
}

/// Starts a migration on another thread (it blocks until the job ends, or
/// until the daemon dies).
pub fn migrate_in_background(m: &TestMount) -> std::thread::JoinHandle<()> {
    let sock = socket(m);
    std::thread::spawn(move || {
        let _ = tierfs::control::request(
            &sock,
            &Request::Migrate(MigrateRequest::default()),
            Duration::from_secs(300),
        );
    })
}

/// Waits until remote `name` takes writes (`tierctl remote test` writes,
/// reads back and deletes a probe): a freshly started SeaweedFS on a busy
/// machine can stall its first writes for longer than request_timeout.
pub fn wait_for_writes(m: &TestMount, name: &str) {
    let mut last = String::new();
    let ok = super::wait_until(Duration::from_secs(120), || {
        let out = m.tierctl(&["remote", "test", name]);
        last = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out.status.success()
    });
    assert!(ok.is_some(), "remote `{name}` never took a write: {last}");
}

/// `user.tierfs.state` of `path` (empty if it cannot be read).
pub fn state(path: &Path) -> String {
    let out = std::process::Command::new("getfattr")
        .args(["--only-values", "-n", "user.tierfs.state"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A command's exit status and output, for assertion messages.
pub fn text(out: &std::process::Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
