//! Every `tierctl` and `tierfs` command's `--help` is complete: it runs, has a
//! one-line description, a longer explanation and examples; and every command
//! whose output is a table or a report offers `--json`.

use crate::common;

use std::process::Command;

use common::{TIERCTL, TIERFS};

/// Commands that print only a one-line confirmation, not a table or report.
const NO_JSON_NEEDED: &[&str] = &["rule rm", "rule move"];

fn help(bin: &str, path: &[String]) -> String {
    let out = Command::new(bin).args(path).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{bin} {} --help failed: {}",
        path.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// The names listed under "Commands:" (without clap's own `help`).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .map(|n| n.trim_end_matches(',').to_string())
        .filter(|n| n != "help")
        .collect()
}

/// Walks the command tree of `bin`; returns (path, help text) for each command.
fn walk(bin: &str) -> Vec<(Vec<String>, String)> {
    let mut todo = vec![Vec::new()];
    let mut seen = Vec::new();
    while let Some(path) = todo.pop() {
        let text = help(bin, &path);
        for sub in subcommands(&text) {
            let mut p = path.clone();
            p.push(sub);
            todo.push(p);
        }
        seen.push((path, text));
    }
    seen
}

fn check_help(bin: &str, path: &[String], text: &str) {
    let name = format!("{bin} {}", path.join(" "));
    let first = text.lines().next().unwrap_or_default();
    assert!(
        first.len() > 10 && !first.starts_with("Usage"),
        "{name}: no description line:\n{text}"
    );
    // A long explanation: at least one paragraph beyond the summary.
    let paragraphs = text.split("\n\n").count();
    assert!(paragraphs >= 4, "{name}: help has no explanation:\n{text}");
    assert!(text.contains("Usage:"), "{name}:\n{text}");
    let examples = text
        .split("Examples:")
        .nth(1)
        .unwrap_or_else(|| panic!("{name}: no examples:\n{text}"));
    // Each example line runs this command (or, for groups, a subcommand).
    let prog = bin;
    let lines: Vec<&str> = examples
        .lines()
        .skip(1)
        .map(str::trim)
        .take_while(|l| !l.is_empty())
        .collect();
    assert!(!lines.is_empty(), "{name}: empty examples:\n{text}");
    let want = std::iter::once(prog.to_string())
        .chain(path.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        lines.iter().any(|l| l.starts_with(&want)
            || (prog == "tierfs" && l.starts_with("mount -t fuse.tierfs"))
            || l.starts_with(&want.replace("tierctl ", "tierctl -c "))),
        "{name}: no example starts with `{want}`:\n{text}"
    );
}

#[test]
fn every_tierctl_command_has_complete_help() {
    let tree = walk(TIERCTL);
    let names: Vec<String> = tree.iter().map(|(p, _)| p.join(" ")).collect();
    // The tree really was walked (a parser bug would find only the root).
    for want in [
        "status",
        "remote",
        "remote list",
        "remote test",
        "rule add",
        "rule list",
        "rule test",
        "migrate",
        "recall",
        "pin",
        "unpin",
        "gc",
        "fsck",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
    }
    assert!(
        !names.iter().any(|n| n.contains("generate-assets")),
        "the packaging helper must stay hidden: {names:?}"
    );
    for (path, text) in &tree {
        check_help("tierctl", path, text);
        let leaf = subcommands(text).is_empty();
        let name = path.join(" ");
        if leaf && !path.is_empty() && !NO_JSON_NEEDED.contains(&name.as_str()) {
            assert!(
                text.contains("--json"),
                "tierctl {name} prints a report but has no --json:\n{text}"
            );
        }
    }
}

#[test]
fn every_tierfs_command_has_complete_help() {
    let tree = walk(TIERFS);
    let names: Vec<String> = tree.iter().map(|(p, _)| p.join(" ")).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    for (path, text) in &tree {
        check_help("tierfs", path, text);
    }
    let root = &tree.iter().find(|(p, _)| p.is_empty()).unwrap().1;
    assert!(root.contains("mount -t fuse.tierfs"), "{root}");
}
