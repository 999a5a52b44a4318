//! POSIX conformance: runs the pjdfstest suite (Rust version, installed by
//! `scripts/setup` with `cargo install pjdfstest`) as root inside a tierfs
//! mount with the default config plus `allow_other` (the suite switches to
//! other users), using `tests/pjdfstest.toml`.
//!
//! The test fails if
//! * pjdfstest is not installed (run `scripts/setup`): never skipped silently;
//! * any test case fails that is not listed in
//!   `tests/pjdfstest-known-failures.txt` (see docs/conformance.md);
//! * fewer than [`MIN_PASSED`] test cases pass;
//! * the run is incomplete (no summary line, fewer cases than expected).
//!
//! The full pjdfstest output is kept in
//! `target/tmp/pjdfstest-tierfs.log` (CARGO_TARGET_TMPDIR).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Minimum number of passing pjdfstest cases through tierfs. Plain ext4 passes
/// 385 of 398 (13 need a read-only remount and are skipped); through any FUSE
/// mount `link::link_count_max` is skipped as well, because `pathconf(_PC_LINK_MAX)`
/// is unknown for FUSE. tierfs measured 384 passed, 14 skipped, 0 failed.
/// Never lower this without documenting why in docs/conformance.md.
const MIN_PASSED: usize = 384;

/// Minimum number of cases the suite must report (catches a truncated run).
const MIN_TOTAL: usize = 398;

/// Upper bound for one pjdfstest run (ext4 takes ~8 s, tierfs ~10–30 s).
const RUN_TIMEOUT: Duration = Duration::from_secs(600);

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Finds the pjdfstest binary: $PJDFSTEST, $CARGO_HOME/bin, ~/.cargo/bin, PATH.
fn find_pjdfstest() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PJDFSTEST") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let mut candidates = Vec::new();
    if let Some(h) = std::env::var_os("CARGO_HOME") {
        candidates.push(PathBuf::from(h).join("bin/pjdfstest"));
    }
    if let Some(h) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(h).join(".cargo/bin/pjdfstest"));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("pjdfstest")));
    }
    candidates.into_iter().find(|p| p.is_file())
}

/// Outcome of one pjdfstest test case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Passed,
    Failed,
    Skipped,
}

/// Parsed pjdfstest output.
#[derive(Debug, Default)]
struct Report {
    /// Case name → outcome.
    cases: BTreeMap<String, Outcome>,
    /// Failure messages (the indented lines after a FAILED line).
    messages: BTreeMap<String, String>,
    /// The "Summary: N failed, N skipped, N passed, ..." counts, if printed.
    summary: Option<(usize, usize, usize)>,
}

impl Report {
    fn count(&self, o: Outcome) -> usize {
        self.cases.values().filter(|&&v| v == o).count()
    }
}

fn parse(output: &str) -> Report {
    let mut r = Report::default();
    let mut current_failure: Option<String> = None;
    for line in output.lines() {
        if line.starts_with(char::is_whitespace) {
            // Detail lines of the previous case (skip reasons, panic messages).
            if let Some(name) = &current_failure {
                let msg = r.messages.entry(name.clone()).or_default();
                if msg.lines().count() < 6 && !line.trim().is_empty() && !line.contains("Backtrace")
                {
                    msg.push_str(line.trim());
                    msg.push('\n');
                }
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("Summary: ") {
            let nums: Vec<usize> = rest
                .split(',')
                .filter_map(|part| part.split_whitespace().next()?.parse().ok())
                .collect();
            if nums.len() >= 3 {
                r.summary = Some((nums[0], nums[1], nums[2]));
            }
            current_failure = None;
            continue;
        }
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let status = line[name.len()..].trim();
        let outcome = match status {
            "ok" => Outcome::Passed,
            "FAILED" | "PASSED UNEXPECTEDLY" => Outcome::Failed,
            "skipped" => Outcome::Skipped,
            "failed as expected" => Outcome::Failed, // expected_failures is empty
            _ => {
                // Backtrace frames and other noise at column 0.
                if !line.starts_with("Backtrace")
                    && !line.trim_start().starts_with(char::is_numeric)
                {
                    current_failure = None;
                }
                continue;
            }
        };
        current_failure = (outcome == Outcome::Failed).then(|| name.to_string());
        r.cases.insert(name.to_string(), outcome);
    }
    r
}

/// `tests/pjdfstest-known-failures.txt`: one case name per line, `#` comments.
fn known_failures() -> BTreeMap<String, String> {
    let path = manifest_dir().join("tests/pjdfstest-known-failures.txt");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter_map(|l| {
            let (name, reason) = l.split_once('#').unwrap_or((l, ""));
            let name = name.trim();
            (!name.is_empty()).then(|| (name.to_string(), reason.trim().to_string()))
        })
        .collect()
}

/// Runs pjdfstest in `dir`, with `secondary` on another fs; returns the output.
fn run_pjdfstest(bin: &Path, dir: &Path, secondary: &Path, log: &Path) -> String {
    let cfg = manifest_dir().join("tests/pjdfstest.toml");
    let log_file = fs::File::create(log).unwrap();
    let mut child = Command::new(bin)
        .arg("-c")
        .arg(&cfg)
        .arg("-p")
        .arg(dir)
        .arg("-s")
        .arg(secondary)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > RUN_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "pjdfstest did not finish within {RUN_TIMEOUT:?}; output so far in {}",
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    fs::read_to_string(log).unwrap()
}

#[test]
fn pjdfstest_through_tierfs() {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the conformance run needs root (pjdfstest switches users and uses mknod)"
    );
    let bin = find_pjdfstest().unwrap_or_else(|| {
        panic!(
            "pjdfstest is not installed (looked in $PJDFSTEST, $CARGO_HOME/bin, ~/.cargo/bin, PATH). \
             Run scripts/setup to install it (cargo install pjdfstest --locked)."
        )
    });

    // Default config (kernel attribute/entry caching on, 1 s) except
    // allow_other: pjdfstest switches to other users (nobody, daemon), and
    // without allow_other the FUSE kernel module refuses them every access.
    let m = TestMount::with_options(MountOptions {
        allow_other: true,
        ..Default::default()
    });
    let work = m.m("pjdfstest");
    fs::create_dir(&work).unwrap();
    fs::set_permissions(&work, fs::Permissions::from_mode(0o755)).unwrap();
    // A second file system for the EXDEV cases: tmpfs.
    let secondary = tempfile::Builder::new()
        .prefix("tierfs-pjd2-")
        .tempdir_in("/dev/shm")
        .expect("tmpfs /dev/shm for pjdfstest's secondary file system");
    fs::set_permissions(secondary.path(), fs::Permissions::from_mode(0o755)).unwrap();

    let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pjdfstest-tierfs.log");
    let out = run_pjdfstest(&bin, &work, secondary.path(), &log);
    let report = parse(&out);
    let (passed, failed, skipped) = (
        report.count(Outcome::Passed),
        report.count(Outcome::Failed),
        report.count(Outcome::Skipped),
    );
    let line = format!(
        "pjdfstest through tierfs: {passed} passed, {failed} failed, {skipped} skipped \
         ({} cases; log: {})",
        report.cases.len(),
        log.display()
    );
    eprintln!("{line}");
    // scripts/test prints this in its summary.
    let _ = fs::write(
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("pjdfstest-summary.txt"),
        format!("{line}\n"),
    );

    let summary = report.summary.unwrap_or_else(|| {
        panic!(
            "pjdfstest printed no summary (crashed?); see {}",
            log.display()
        )
    });
    assert_eq!(
        summary,
        (failed, skipped, passed),
        "summary line disagrees with the per-case lines; parser out of date? see {}",
        log.display()
    );

    let known = known_failures();
    let failures: BTreeSet<&String> = report
        .cases
        .iter()
        .filter(|(_, o)| **o == Outcome::Failed)
        .map(|(n, _)| n)
        .collect();
    let unexpected: Vec<&&String> = failures
        .iter()
        .filter(|n| !known.contains_key(**n))
        .collect();
    let fixed: Vec<&String> = known
        .keys()
        .filter(|n| report.cases.get(*n) == Some(&Outcome::Passed))
        .collect();
    if !fixed.is_empty() {
        eprintln!(
            "note: these known failures now pass; remove them from \
             tests/pjdfstest-known-failures.txt and raise MIN_PASSED: {fixed:?}"
        );
    }

    let mut problems = Vec::new();
    if !unexpected.is_empty() {
        let mut s = format!(
            "{} pjdfstest case(s) failed that are not known failures:\n",
            unexpected.len()
        );
        for n in &unexpected {
            s += &format!(
                "  {n}\n{}",
                report
                    .messages
                    .get(**n)
                    .map(|m| m
                        .lines()
                        .map(|l| format!("      {l}\n"))
                        .collect::<String>())
                    .unwrap_or_default()
            );
        }
        problems.push(s);
    }
    if passed < MIN_PASSED {
        problems.push(format!(
            "only {passed} cases passed; the committed minimum is {MIN_PASSED}"
        ));
    }
    if report.cases.len() < MIN_TOTAL {
        problems.push(format!(
            "only {} cases ran; expected at least {MIN_TOTAL}",
            report.cases.len()
        ));
    }
    assert!(
        problems.is_empty(),
        "{}\nfull output: {}\nreproduce: pjdfstest -c tests/pjdfstest.toml -p <dir in a tierfs mount> -s /dev/shm/<dir> [CASE...]",
        problems.join("\n"),
        log.display()
    );
}

#[test]
fn known_failures_file_is_well_formed() {
    let path = manifest_dir().join("tests/pjdfstest-known-failures.txt");
    let text = fs::read_to_string(&path).unwrap();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let (name, reason) = l.split_once('#').unwrap_or((l, ""));
        assert!(
            !reason.trim().is_empty(),
            "{}:{}: entry `{}` has no `# reason`",
            path.display(),
            i + 1,
            name.trim()
        );
        assert!(
            name.trim().contains("::"),
            "{}:{}: `{}` is not a pjdfstest case name",
            path.display(),
            i + 1,
            name.trim()
        );
    }
}

#[test]
fn parser_understands_pjdfstest_output() {
    let sample = "\
chmod::ok_case                                                     ok
chmod::bad_case                                                    FAILED
\tassertion `left == right` failed
  left: 1
 right: 2
chmod::erofs                                                       skipped
\tRemounts (allow_remount) are not allowed in the configuration file
x::unexpected                                                PASSED UNEXPECTEDLY

Summary: 2 failed, 1 skipped, 1 passed, 0 expected failures, 4 total
";
    let r = parse(sample);
    assert_eq!(r.cases.len(), 4);
    assert_eq!(r.cases["chmod::ok_case"], Outcome::Passed);
    assert_eq!(r.cases["chmod::bad_case"], Outcome::Failed);
    assert_eq!(r.cases["chmod::erofs"], Outcome::Skipped);
    assert_eq!(r.cases["x::unexpected"], Outcome::Failed);
    assert_eq!(r.summary, Some((2, 1, 1)));
    assert!(r.messages["chmod::bad_case"].contains("left: 1"));
    assert!(!r.messages.contains_key("chmod::erofs"));
}
