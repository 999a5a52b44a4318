//! Per-rule counts of one migration run ([`crate::events::RuleRun`]).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::events::RuleRun;

/// What each rule selected, released and failed in one run.
#[derive(Debug)]
pub(super) struct RuleTally {
    rule_of: HashMap<PathBuf, i64>,
    runs: BTreeMap<i64, RuleRun>,
}

impl RuleTally {
    /// Starts a tally for the rules `rule_ids`, where `rule_of` says which
    /// rule selected each planned file.
    pub(super) fn new(rule_ids: &[i64], rule_of: HashMap<PathBuf, i64>) -> Self {
        let mut runs: BTreeMap<i64, RuleRun> = rule_ids
            .iter()
            .map(|&rule_id| {
                let run = RuleRun {
                    rule_id,
                    ..Default::default()
                };
                (rule_id, run)
            })
            .collect();
        for id in rule_of.values() {
            if let Some(r) = runs.get_mut(id) {
                r.selected += 1;
            }
        }
        RuleTally { rule_of, runs }
    }

    fn run_of(&mut self, path: &Path) -> Option<&mut RuleRun> {
        let id = self.rule_of.get(path)?;
        self.runs.get_mut(id)
    }

    /// Counts a released file.
    pub(super) fn released(&mut self, path: &Path, bytes: u64) {
        if let Some(r) = self.run_of(path) {
            r.released += 1;
            r.released_bytes += bytes;
        }
    }

    /// Counts a failed file.
    pub(super) fn failed(&mut self, path: &Path) {
        if let Some(r) = self.run_of(path) {
            r.failed += 1;
        }
    }

    /// Every rule's run, ended at `finished_unix`.
    pub(super) fn finish(self, finished_unix: i64) -> Vec<RuleRun> {
        let mut runs: Vec<RuleRun> = self.runs.into_values().collect();
        for r in &mut runs {
            r.finished_unix = finished_unix;
        }
        runs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_runs_count_per_rule() {
        let rule_of: HashMap<PathBuf, i64> = [("a".into(), 1), ("b".into(), 1), ("c".into(), 2)]
            .into_iter()
            .collect();
        let mut tally = RuleTally::new(&[1, 2, 3], rule_of);
        tally.released(Path::new("a"), 10);
        tally.failed(Path::new("c"));
        let rules = tally.finish(5);
        assert_eq!(rules.len(), 3);
        let r = &rules[0];
        assert_eq!((r.selected, r.released, r.released_bytes), (2, 1, 10));
        assert_eq!((rules[1].selected, rules[1].failed), (1, 1));
        assert_eq!(rules[2].selected, 0);
        assert!(rules.iter().all(|r| r.finished_unix == 5));
    }
}
