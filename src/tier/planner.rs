//! The planner: which catalogued files the rules would migrate now. Pure
//! functions over catalog rows; the caller reads the rows.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::SystemTime;

use super::core::time_from_ns;
use super::summary::MigrateRequest;
use crate::catalog::tiering::{RuleRow, TierFile};
use crate::catalog::{FileState, path_key};
use crate::rules::{self, Decision, FileFacts, RuleSet, Target};

/// The states a migration considers.
pub(super) const MOVABLE: [FileState; 2] = [FileState::Hot, FileState::Premigrated];

/// A file the rules selected.
#[derive(Debug, Clone)]
pub(super) struct Planned {
    /// Its row when planned.
    pub(super) file: TierFile,
    /// Where its rule sends it.
    pub(super) targets: Vec<Target>,
    /// The rule that selected it.
    pub(super) rule_id: i64,
}

/// What a migration run will do.
#[derive(Debug)]
pub(super) struct Plan {
    /// The selected files, one per inode, in path order.
    pub(super) files: Vec<Planned>,
    /// The rules, for deciding again about a file found changed.
    pub(super) rules: RuleSet,
    /// Ids of every rule evaluated.
    pub(super) rule_ids: Vec<i64>,
}

impl Plan {
    /// Which rule selected each planned file, by path.
    pub(super) fn rule_of(&self) -> HashMap<PathBuf, i64> {
        self.files
            .iter()
            .map(|p| (p.file.path.clone(), p.rule_id))
            .collect()
    }
}

/// The stored rules that parse (a rule that does not is logged and ignored).
pub(super) fn rule_set(rows: Vec<RuleRow>) -> RuleSet {
    let mut parsed = Vec::new();
    for row in rows {
        match rules::parse(&row.text) {
            Ok(rule) => parsed.push((row.id, rule)),
            Err(e) => {
                tracing::error!(rule = row.id, error = %e, "stored rule does not parse; ignored")
            }
        }
    }
    RuleSet::new(parsed)
}

/// What the rules decide for `f` at `now`: its targets and the rule, if it
/// is to migrate. Pinned files and files in other states never migrate.
pub(super) fn decide(rules: &RuleSet, f: &TierFile, now: SystemTime) -> Option<(Vec<Target>, i64)> {
    if f.pinned || !MOVABLE.contains(&f.state) {
        return None;
    }
    let facts = FileFacts {
        path: &f.path,
        size: f.size,
        mtime: time_from_ns(f.mtime_ns),
        last_access: f.last_access_ns.map(time_from_ns),
    };
    match rules.decide(&facts, now) {
        Decision::Migrate { targets, rule_id } => Some((targets, rule_id)),
        _ => None,
    }
}

/// The files of `files` (rows in [`MOVABLE`] states) that `req` covers and
/// the rules select at `now`. A file with several names (hard links) is one
/// file: it migrates once, and its names' rows follow its state.
pub(super) fn plan(
    rules: RuleSet,
    files: Vec<TierFile>,
    req: &MigrateRequest,
    now: SystemTime,
) -> Plan {
    let prefixes: Vec<Vec<u8>> = req.paths.iter().filter_map(|p| path_key(p)).collect();
    let mut planned = Vec::new();
    let mut inodes = HashSet::new();
    for f in files {
        if !under(&prefixes, &f) {
            continue;
        }
        if let Some((targets, rule_id)) = decide(&rules, &f, now)
            && inodes.insert(f.ino)
        {
            planned.push(Planned {
                file: f,
                targets,
                rule_id,
            });
        }
    }
    let rule_ids = rules.rules().iter().map(|(id, _)| *id).collect();
    Plan {
        files: planned,
        rules,
        rule_ids,
    }
}

/// Whether `f` is at or below one of `prefixes` (all files if none).
fn under(prefixes: &[Vec<u8>], f: &TierFile) -> bool {
    let key = f.path.as_os_str().as_encoded_bytes();
    prefixes.is_empty()
        || prefixes
            .iter()
            .any(|p| key == p.as_slice() || (key.starts_with(p) && key.get(p.len()) == Some(&b'/')))
}
