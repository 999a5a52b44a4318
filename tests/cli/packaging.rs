//! Packaging: the shipped systemd units pass `systemd-analyze verify`, and the
//! Debian package built by `scripts/build-deb` installs with `dpkg -i`, after
//! which `tierfs --version`, `man tierctl` and the bash completion work; the
//! package is removed again at the end.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use common::{TIERCTL, TIERFS};

/// The shipped units.
fn units() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/systemd");
    let mut units: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    units.sort();
    units
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `systemd-analyze verify` on `units` (`--man=no`: before the package
/// is installed the Documentation= man pages do not exist yet).
fn verify(units: &[PathBuf], check_man: bool) -> Output {
    run(Command::new("systemd-analyze")
        .arg("verify")
        .arg(if check_man { "--man=yes" } else { "--man=no" })
        .args(units))
}

/// Serialises tests that install into /usr.
static SYSTEM_LOCK: Mutex<()> = Mutex::new(());

#[test]
fn shipped_units_pass_systemd_analyze_verify() {
    let units = units();
    let names: Vec<String> = units
        .iter()
        .map(|u| u.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names.contains(&"srv-files.mount".to_string()), "{names:?}");
    assert!(
        names.contains(&"srv-files.automount".to_string()),
        "{names:?}"
    );
    let out = verify(&units, false);
    assert!(out.status.success(), "verify failed:\n{}", text(&out));

    // The mount unit is what the docs promise: fuse.tierfs, the config as
    // What=, ordered after the network.
    let mount = std::fs::read_to_string(
        units
            .iter()
            .find(|u| u.ends_with("srv-files.mount"))
            .unwrap(),
    )
    .unwrap();
    for line in [
        "Type=fuse.tierfs",
        "What=/etc/tierfs/files.toml",
        "Where=/srv/files",
        "After=network-online.target",
        "Wants=network-online.target",
    ] {
        assert!(mount.lines().any(|l| l == line), "missing {line}:\n{mount}");
    }

    // verify does catch a unit whose name does not match Where= (the mistake
    // the docs warn about), so the check above is a real one.
    let tmp = tempfile::tempdir().unwrap();
    let wrong = tmp.path().join("srv-data.mount");
    std::fs::write(&wrong, &mount).unwrap();
    let out = verify(&[wrong], false);
    assert!(!out.status.success(), "misnamed unit accepted");
    assert!(
        text(&out).contains("doesn't match unit name"),
        "{}",
        text(&out)
    );
}

/// Removes the package on drop (also when the test fails half-way).
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let out = run(Command::new("dpkg").args(["-r", "tierfs"]));
        if !out.status.success() {
            eprintln!("dpkg -r tierfs failed: {}", text(&out));
        }
    }
}

#[test]
fn deb_builds_installs_and_works() {
    let _lock = SYSTEM_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let status = run(Command::new("dpkg-query").args(["-W", "-f=${Status}", "tierfs"]));
    assert!(
        !String::from_utf8_lossy(&status.stdout).contains("installed"),
        "a tierfs package is already installed on this machine; refusing to replace and remove it"
    );
    let version = env!("CARGO_PKG_VERSION");

    // Build from the binaries this test run already built (a release build
    // would take minutes on CI).
    let bin_dir = Path::new(TIERFS).parent().unwrap();
    assert_eq!(Path::new(TIERCTL).parent().unwrap(), bin_dir);
    let out_dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/build-deb");
    let out = run(Command::new(&script)
        .arg("--bin-dir")
        .arg(bin_dir)
        .arg("--out")
        .arg(out_dir.path()));
    assert!(out.status.success(), "build-deb failed:\n{}", text(&out));
    let deb = PathBuf::from(String::from_utf8_lossy(&out.stdout).lines().last().unwrap());
    let arch = run(Command::new("dpkg").arg("--print-architecture"));
    let arch = String::from_utf8_lossy(&arch.stdout).trim().to_string();
    assert!(
        deb.ends_with(format!("tierfs_{version}_{arch}.deb")),
        "{deb:?}"
    );
    assert!(deb.exists(), "{deb:?} not written");

    let info = run(Command::new("dpkg-deb")
        .arg("--field")
        .arg(&deb)
        .args(["Package", "Version", "Depends"]));
    let info = text(&info);
    assert!(info.contains("Package: tierfs"), "{info}");
    assert!(info.contains(&format!("Version: {version}")), "{info}");
    assert!(info.contains("fuse3"), "{info}");

    let out = run(Command::new("dpkg").arg("-i").arg(&deb));
    let installed = Installed;
    assert!(out.status.success(), "dpkg -i failed:\n{}", text(&out));

    // The binaries are where mount.fuse3's stripped PATH finds them.
    let out = run(Command::new("/usr/bin/tierfs").arg("--version"));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("tierfs {version}")
    );
    let out = run(Command::new("/usr/bin/tierctl").arg("--version"));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("tierctl {version}")
    );

    // Man pages, generated from the clap definitions, for both binaries and
    // for subcommands.
    let out = run(Command::new("man")
        .args(["-P", "cat", "tierctl"])
        .env("MANWIDTH", "100"));
    let page = text(&out);
    assert!(out.status.success(), "man tierctl failed: {page}");
    assert!(
        page.contains("Inspect and control a tierfs tiering gateway"),
        "{page}"
    );
    assert!(page.contains("tierctl-status(1)"), "{page}");
    let out = run(Command::new("man").args(["-P", "cat", "tierctl-status"]));
    assert!(
        out.status.success() && text(&out).contains("--json"),
        "{}",
        text(&out)
    );
    let out = run(Command::new("man").args(["-P", "cat", "tierfs"]));
    assert!(
        out.status.success() && text(&out).contains("fuse.tierfs"),
        "{}",
        text(&out)
    );

    // The bash completion loads and completes a subcommand.
    let out = run(Command::new("bash").args([
        "-c",
        "source /usr/share/bash-completion/completions/tierctl && \
         COMP_WORDS=(tierctl sta) COMP_CWORD=1 COMP_LINE='tierctl sta' COMP_POINT=11 && \
         _tierctl tierctl sta tierctl && echo \"${COMPREPLY[@]}\"",
    ]));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "status");
    for f in [
        "/usr/share/zsh/vendor-completions/_tierctl",
        "/usr/share/fish/vendor_completions.d/tierctl.fish",
        "/usr/share/doc/tierfs/examples/tierfs.toml",
        "/usr/share/doc/tierfs/operations.md",
    ] {
        assert!(Path::new(f).is_file(), "{f} not installed");
    }

    // With the man pages installed, the example units verify including their
    // Documentation= references.
    let examples: Vec<PathBuf> = ["srv-files.mount", "srv-files.automount"]
        .iter()
        .map(|u| Path::new("/usr/share/doc/tierfs/examples/systemd").join(u))
        .collect();
    let out = verify(&examples, true);
    assert!(
        out.status.success(),
        "verify with man pages failed:\n{}",
        text(&out)
    );

    // The example config is a valid config once hot_dir exists.
    let tmp = tempfile::tempdir().unwrap();
    let example = std::fs::read_to_string("/usr/share/doc/tierfs/examples/tierfs.toml").unwrap();
    let hot = tmp.path().join("hot");
    std::fs::create_dir(&hot).unwrap();
    let cfg = tmp.path().join("files.toml");
    std::fs::write(
        &cfg,
        example.replace("/srv/.files-hot", hot.to_str().unwrap()),
    )
    .unwrap();
    let out = run(Command::new("/usr/bin/tierctl")
        .arg("-c")
        .arg(&cfg)
        .args(["remote", "list"]));
    assert!(
        out.status.success(),
        "example config rejected: {}",
        text(&out)
    );

    drop(installed);
    assert!(
        !Path::new("/usr/bin/tierfs").exists(),
        "dpkg -r left /usr/bin/tierfs"
    );
}
