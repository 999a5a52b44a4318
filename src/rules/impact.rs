//! What adding a rule would change: the files the next migration would move
//! with and without it. `tierctl rule add --dry-run` reports it and
//! `tierctl cost-report --what-if` prices it.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::Connection;
use serde::Serialize;

use super::{Decision, FileFacts, Rule, RuleSet};
use crate::catalog::FileState;
use crate::catalog::tiering::{self, TierFile};

/// A number of files and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Files counted.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}

impl Tally {
    /// Counts one more file of `bytes` bytes.
    pub fn add(&mut self, bytes: u64) {
        self.files += 1;
        self.bytes += bytes;
    }
}

/// What the rules would do with and without the new rule. Serialized as
/// `tierctl rule add --dry-run --json` prints it.
#[derive(Debug, Default, Serialize)]
pub struct Impact {
    /// Hot or premigrated files not pinned: what a migration looks at.
    pub considered: Tally,
    /// Hot or premigrated files skipped because they are pinned.
    pub pinned: Tally,
    /// Would migrate with the current rules.
    pub before: Tally,
    /// Would migrate with the new rule added.
    pub after: Tally,
    /// Of `after`, per target (a mirrored file counts once per target).
    pub after_by_target: BTreeMap<String, Tally>,
    /// Files the new rule decides: migrated by it, or kept local by it (pin).
    pub decided_by_rule: Tally,
    /// Files that migrate only with the new rule.
    pub newly_migrating: Tally,
    /// Files that migrate now but would not with the new rule.
    pub no_longer_migrating: Tally,
    /// Files that migrate either way, to different targets.
    pub retargeted: Tally,
    /// Of `decided_by_rule`, the hot files per target (remote, class): what
    /// the new rule would upload (premigrated files already have a copy).
    #[serde(skip)]
    pub decided_uploads: BTreeMap<(String, Option<String>), Tally>,
}

/// The impact of inserting one rule, and where it would go.
#[derive(Debug)]
pub struct DryRun {
    /// The impact on the catalogued files.
    pub impact: Impact,
    /// The 1-based position the rule would take.
    pub position: usize,
    /// How many rules there would be.
    pub rules: usize,
}

/// Id given to the candidate rule (catalog ids start at 1).
const CANDIDATE: i64 = 0;

/// Measures what inserting `rule` at 1-based `position` (default: last)
/// into `current` (the stored rules that parse, in order) would change, at
/// time `now`. `conn` reads the catalog's files; `None` (no catalog yet)
/// means no files.
pub fn measure(
    conn: Option<&Connection>,
    current: &[(i64, Rule)],
    rule: &Rule,
    position: Option<usize>,
    now: SystemTime,
) -> rusqlite::Result<DryRun> {
    let mut with_new = current.to_vec();
    let at = position
        .map(|p| p.saturating_sub(1).min(with_new.len()))
        .unwrap_or(with_new.len());
    with_new.insert(at, (CANDIDATE, rule.clone()));
    let rules = with_new.len();
    let impact = match conn {
        Some(conn) => measure_impact(
            conn,
            &RuleSet::new(current.to_vec()),
            &RuleSet::new(with_new),
            now,
        )?,
        None => Impact::default(),
    };
    Ok(DryRun {
        impact,
        position: at + 1,
        rules,
    })
}

fn time_from_ns(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

fn facts(f: &TierFile) -> FileFacts<'_> {
    FileFacts {
        path: &f.path,
        size: f.size,
        mtime: time_from_ns(f.mtime_ns),
        last_access: f.last_access_ns.map(time_from_ns),
    }
}

fn measure_impact(
    conn: &Connection,
    current: &RuleSet,
    with_new: &RuleSet,
    now: SystemTime,
) -> rusqlite::Result<Impact> {
    let mut result = Impact::default();
    // The same files a migration considers (see `Tier::plan`).
    tiering::for_each_file_in_states(conn, &[FileState::Hot, FileState::Premigrated], |f| {
        if f.pinned {
            result.pinned.add(f.size);
            return;
        }
        result.considered.add(f.size);
        let facts = facts(&f);
        let before = current.decide(&facts, now);
        let after = with_new.decide(&facts, now);
        let decided = match &after {
            Decision::Migrate { rule_id, .. } | Decision::Pin { rule_id } => *rule_id == CANDIDATE,
            Decision::None => false,
        };
        if decided {
            result.decided_by_rule.add(f.size);
            if let (Decision::Migrate { targets, .. }, "hot") = (&after, f.state.as_str()) {
                for t in targets {
                    result
                        .decided_uploads
                        .entry((t.remote.clone(), t.storage_class.clone()))
                        .or_default()
                        .add(f.size);
                }
            }
        }
        let before_targets = match &before {
            Decision::Migrate { targets, .. } => {
                result.before.add(f.size);
                Some(targets)
            }
            _ => None,
        };
        match &after {
            Decision::Migrate { targets, .. } => {
                result.after.add(f.size);
                for target in targets {
                    result
                        .after_by_target
                        .entry(target.to_string())
                        .or_default()
                        .add(f.size);
                }
                match before_targets {
                    None => result.newly_migrating.add(f.size),
                    Some(old) if old != targets => result.retargeted.add(f.size),
                    Some(_) => {}
                }
            }
            _ => {
                if before_targets.is_some() {
                    result.no_longer_migrating.add(f.size);
                }
            }
        }
    })?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Catalog, CatalogOptions};

    const DAY_NS: i64 = 86_400 * 1_000_000_000;

    #[test]
    fn measures_what_the_candidate_rule_adds_and_takes_away() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let catalog = Catalog::open(&path, CatalogOptions::default()).unwrap();
        let now_ns = 1_000 * DAY_NS;
        catalog
            .exec("files", move |c| {
                let mut insert = c.prepare(
                    "INSERT INTO files (path, size, mtime_ns, ino, state, pinned) \
                     VALUES (CAST(?1 AS BLOB), ?2, ?3, ?4, ?5, ?6)",
                )?;
                let old = now_ns - 400 * DAY_NS;
                for (i, (p, size, state, pinned)) in [
                    ("a/old", 10, "hot", false),
                    ("a/kept", 20, "hot", true),
                    ("b/old", 30, "premigrated", false),
                    ("c/cold", 40, "cold", false),
                ]
                .into_iter()
                .enumerate()
                {
                    insert.execute(rusqlite::params![p, size, old, i as i64 + 1, state, pinned])?;
                }
                Ok(())
            })
            .unwrap();
        catalog.close().unwrap();

        let conn = Connection::open(&path).unwrap();
        let current = vec![(1, crate::rules::parse("b/** -> cloud").unwrap())];
        let candidate = crate::rules::parse("* older 365d -> cloud").unwrap();
        let now = time_from_ns(now_ns);
        let dry = measure(Some(&conn), &current, &candidate, None, now).unwrap();
        assert_eq!((dry.position, dry.rules), (2, 2));
        let i = &dry.impact;
        assert_eq!(
            i.considered,
            Tally {
                files: 2,
                bytes: 40
            }
        );
        assert_eq!(
            i.pinned,
            Tally {
                files: 1,
                bytes: 20
            }
        );
        assert_eq!(
            i.before,
            Tally {
                files: 1,
                bytes: 30
            }
        );
        assert_eq!(
            i.after,
            Tally {
                files: 2,
                bytes: 40
            }
        );
        // b/old stays with rule 1; a/old is the candidate's, and hot.
        assert_eq!(
            i.decided_by_rule,
            Tally {
                files: 1,
                bytes: 10
            }
        );
        assert_eq!(
            i.newly_migrating,
            Tally {
                files: 1,
                bytes: 10
            }
        );
        assert_eq!(
            i.decided_uploads.get(&("cloud".to_string(), None)),
            Some(&Tally {
                files: 1,
                bytes: 10
            })
        );

        // A pin in first place keeps b/old local.
        let pin = crate::rules::parse("pin b/**").unwrap();
        let dry = measure(Some(&conn), &current, &pin, Some(1), now).unwrap();
        assert_eq!(dry.position, 1);
        assert_eq!(
            dry.impact.no_longer_migrating,
            Tally {
                files: 1,
                bytes: 30
            }
        );

        // No catalog: no files.
        let dry = measure(None, &current, &candidate, Some(1), now).unwrap();
        assert_eq!((dry.position, dry.impact.considered), (1, Tally::default()));
    }
}
