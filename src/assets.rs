//! Man pages and shell completions generated from the binaries' `clap`
//! definitions, for packaging (`tierctl generate-assets DIR`,
//! `tierfs generate-assets DIR`; see `scripts/build-deb`).
//!
//! Layout written under the output directory:
//! `man/NAME.1` (plus `NAME-SUB.1` for each visible subcommand),
//! `completions/bash/NAME.bash`, `completions/zsh/_NAME`,
//! `completions/fish/NAME.fish`.

use std::path::{Path, PathBuf};

use clap_complete::Shell;

/// Why the assets could not be written.
#[derive(Debug, thiserror::Error)]
#[error("writing {what} to {path}: {source}")]
pub struct AssetError {
    /// Which asset (e.g. "man pages", "bash completion").
    pub what: String,
    /// The file or directory being written.
    pub path: PathBuf,
    /// The underlying error.
    pub source: std::io::Error,
}

/// Writes the man pages and completions of `cmd` under `dir` and returns the
/// files written.
pub fn write_assets(cmd: clap::Command, dir: &Path) -> Result<Vec<PathBuf>, AssetError> {
    let name = cmd.get_name().to_string();
    let err = |what: &str, path: &Path| {
        let what = what.to_string();
        let path = path.to_path_buf();
        move |source| AssetError { what, path, source }
    };
    let man_dir = dir.join("man");
    std::fs::create_dir_all(&man_dir).map_err(err("man pages", &man_dir))?;
    let before = list(&man_dir);
    clap_mangen::generate_to(cmd.clone(), &man_dir).map_err(err("man pages", &man_dir))?;
    let mut written: Vec<PathBuf> = list(&man_dir)
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    for (shell, sub) in [
        (Shell::Bash, "bash"),
        (Shell::Zsh, "zsh"),
        (Shell::Fish, "fish"),
    ] {
        let out = dir.join("completions").join(sub);
        std::fs::create_dir_all(&out).map_err(err("completions", &out))?;
        let mut cmd = cmd.clone();
        let path = clap_complete::generate_to(shell, &mut cmd, &name, &out)
            .map_err(err(&format!("{sub} completion"), &out))?;
        written.push(path);
    }
    Ok(written)
}

fn list(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_man_pages_and_completions() {
        let cmd = clap::Command::new("demo")
            .about("A demo tool")
            .subcommand(clap::Command::new("run").about("Run it"))
            .subcommand(clap::Command::new("secret").hide(true));
        let tmp = tempfile::tempdir().unwrap();
        let files = write_assets(cmd, tmp.path()).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|p| p.strip_prefix(tmp.path()).unwrap().display().to_string())
            .collect();
        for want in [
            "man/demo.1",
            "man/demo-run.1",
            "completions/bash/demo.bash",
            "completions/zsh/_demo",
            "completions/fish/demo.fish",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
        }
        assert!(!names.iter().any(|n| n.contains("secret")), "{names:?}");
        let page = std::fs::read_to_string(tmp.path().join("man/demo.1")).unwrap();
        assert!(page.contains("A demo tool"), "{page}");
        let bash = std::fs::read_to_string(tmp.path().join("completions/bash/demo.bash")).unwrap();
        assert!(bash.contains("run"), "{bash}");
    }
}
