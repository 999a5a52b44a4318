//! [`RuleSet`]: an ordered list of rules, evaluated per file.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt;
use std::time::SystemTime;

use globset::{Candidate, GlobSet, GlobSetBuilder};
use serde::Serialize;

use super::{Action, ConditionCheck, FileFacts, Rule, Target, display_bytes, relative_bytes};

/// An ordered list of rules (ids are catalog ids). First match wins, except
/// that any matching `pin` wins over everything.
///
/// All patterns are compiled into one [`GlobSet`] when the set is built, so
/// [`decide`](RuleSet::decide) does one glob-set lookup per file and then
/// checks the conditions of covered rules only.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<(i64, Rule)>,
    /// Every rule's globs; `None` only if globset could not combine them
    /// (then each rule is matched on its own — slower, same answers).
    matcher: Option<GlobSet>,
    /// Matcher glob index → index in `rules`, non-decreasing.
    glob_rule: Vec<usize>,
}

/// What to do with a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// A `pin` rule covers the file: never migrate it.
    Pin {
        /// The first covering pin rule.
        rule_id: i64,
    },
    /// Copy the file to every target (mirrors), then stub it.
    Migrate {
        /// The first matching migration rule.
        rule_id: i64,
        /// Its targets.
        targets: Vec<Target>,
    },
    /// No rule matches: the file stays local.
    None,
}

/// How one rule judged one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// The pattern matches neither the path nor any of its parents.
    NotCovered,
    /// Covered, but a condition does not hold.
    NoMatch,
    /// This pin rule decides: the file is never migrated.
    Pin,
    /// This rule decides: migrate to these targets.
    Migrate {
        /// The rule's targets.
        targets: Vec<Target>,
    },
    /// This rule matches, but another decides (a pin, or an earlier rule).
    Overridden {
        /// The rule that decides.
        by_rule: i64,
    },
}

/// One rule's part in an [`Explanation`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleExplanation {
    /// Catalog id.
    pub rule_id: i64,
    /// Canonical rule text.
    pub text: String,
    /// Whether the pattern matches the path or one of its parents.
    pub covered: bool,
    /// When covered through a parent directory rather than the path itself,
    /// the nearest such parent (`accounting/2019` for `accounting/*`).
    pub covered_through: Option<String>,
    /// The conditions, judged; empty when the rule does not cover the file.
    pub checks: Vec<ConditionCheck>,
    /// The outcome for this rule.
    pub verdict: Verdict,
}

/// Why a [`RuleSet`] decided what it did for one file. `Display` renders it
/// as text for `tierctl`:
///
/// ```text
/// accounting/2019/ledger.xlsx
///   #1 pin accounting/keep/**           not covered (pattern does not match the path or a parent)
///   #2 accounting/* older 365d -> cloud  covered through accounting/2019; older 365d: yes (modified 412 days ago)  => MIGRATE to cloud
/// decision: migrate to cloud (rule #2)
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// The file's path relative to the mount root; bytes that are not UTF-8
    /// are shown as `\xNN`.
    pub path: String,
    /// Every rule, in order.
    pub rules: Vec<RuleExplanation>,
    /// The outcome, identical to [`RuleSet::decide`]'s.
    pub decision: Decision,
}

thread_local! {
    /// Reused buffer for the matcher's hits, so `decide` does not allocate.
    static HITS: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

impl RuleSet {
    /// Builds the set; `rules` are in evaluation order.
    pub fn new(rules: Vec<(i64, Rule)>) -> RuleSet {
        let mut builder = GlobSetBuilder::new();
        let mut glob_rule = Vec::new();
        for (index, (_, rule)) in rules.iter().enumerate() {
            for glob in rule.pattern_ref().globs() {
                builder.add(glob.clone());
                glob_rule.push(index);
            }
        }
        let matcher = builder.build().ok();
        RuleSet {
            rules,
            matcher,
            glob_rule,
        }
    }

    /// The same set without the combined matcher, as if globset had refused
    /// to build it: every rule is then matched on its own.
    #[cfg(test)]
    pub(crate) fn without_combined_matcher(mut self) -> RuleSet {
        self.matcher = None;
        self
    }

    /// The rules, in evaluation order.
    pub fn rules(&self) -> &[(i64, Rule)] {
        &self.rules
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True if there are no rules (every decision is [`Decision::None`]).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Every remote some rule migrates to.
    pub fn remotes(&self) -> BTreeSet<&str> {
        self.rules
            .iter()
            .flat_map(|(_, rule)| rule.targets())
            .map(|t| t.remote.as_str())
            .collect()
    }

    /// What to do with `file` at `now`: the first covering pin, else the
    /// first rule (in order) that covers the file and whose conditions hold,
    /// else nothing.
    pub fn decide(&self, file: &FileFacts<'_>, now: SystemTime) -> Decision {
        self.decision(self.deciding_rule(file, now))
    }

    /// [`decide`](RuleSet::decide), with every rule's reasoning.
    pub fn explain(&self, file: &FileFacts<'_>, now: SystemTime) -> Explanation {
        let path = relative_bytes(file.path);
        let decider = self.deciding_rule(file, now);
        let rules = self
            .rules
            .iter()
            .enumerate()
            .map(|(index, (id, rule))| {
                let pattern = rule.pattern_ref();
                let covered = pattern.covers(path);
                let covered_through = if covered {
                    pattern
                        .covered_through(path)
                        .filter(|&len| len < path.len())
                        .map(|len| display_bytes(&path[..len]))
                } else {
                    None
                };
                let checks = if covered {
                    rule.explain(file, now)
                } else {
                    Vec::new()
                };
                let verdict = if !covered {
                    Verdict::NotCovered
                } else if !checks.iter().all(|c| c.passed) {
                    Verdict::NoMatch
                } else if decider == Some(index) {
                    match &rule.action {
                        Action::Pin => Verdict::Pin,
                        Action::Migrate { targets } => Verdict::Migrate {
                            targets: targets.clone(),
                        },
                    }
                } else {
                    // Covered with every condition holding means the set has a
                    // decider (this rule would be one otherwise).
                    let by = decider.map_or(*id, |d| self.rules[d].0);
                    Verdict::Overridden { by_rule: by }
                };
                RuleExplanation {
                    rule_id: *id,
                    text: rule.text.clone(),
                    covered,
                    covered_through,
                    checks,
                    verdict,
                }
            })
            .collect();
        Explanation {
            path: display_bytes(path),
            rules,
            decision: self.decision(decider),
        }
    }

    fn decision(&self, index: Option<usize>) -> Decision {
        let Some(index) = index else {
            return Decision::None;
        };
        let (id, rule) = &self.rules[index];
        match &rule.action {
            Action::Pin => Decision::Pin { rule_id: *id },
            Action::Migrate { targets } => Decision::Migrate {
                rule_id: *id,
                targets: targets.clone(),
            },
        }
    }

    /// Index of the rule that decides for `file`, if any.
    fn deciding_rule(&self, file: &FileFacts<'_>, now: SystemTime) -> Option<usize> {
        let path = relative_bytes(file.path);
        let Some(matcher) = &self.matcher else {
            let covered =
                (0..self.rules.len()).filter(|&i| self.rules[i].1.pattern_ref().covers(path));
            return self.pick(covered, file, now);
        };
        HITS.with_borrow_mut(|hits| {
            matcher.matches_candidate_into(&Candidate::from_bytes(path), hits);
            // Globs were added rule by rule and `hits` is sorted, so this
            // visits covered rules in order (a rule may appear twice).
            self.pick(hits.iter().map(|&g| self.glob_rule[g]), file, now)
        })
    }

    /// Given the covered rules in order: the first pin, else the first rule
    /// whose conditions hold.
    fn pick(
        &self,
        covered: impl Iterator<Item = usize>,
        file: &FileFacts<'_>,
        now: SystemTime,
    ) -> Option<usize> {
        let mut first_match = None;
        for index in covered {
            let rule = &self.rules[index].1;
            if rule.is_pin() {
                return Some(index);
            }
            if first_match.is_none() && rule.conditions.hold(file, now) {
                first_match = Some(index);
            }
        }
        first_match
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Pin { rule_id } => write!(f, "pin: never migrate (rule #{rule_id})"),
            Decision::Migrate { rule_id, targets } => {
                let list: Vec<String> = targets.iter().map(Target::to_string).collect();
                if targets.len() > 1 {
                    write!(
                        f,
                        "migrate to {} (mirrors; rule #{rule_id})",
                        list.join(" and ")
                    )
                } else {
                    write!(f, "migrate to {} (rule #{rule_id})", list.join(""))
                }
            }
            Decision::None => write!(f, "none (no rule matches; the file stays local)"),
        }
    }
}

/// Labels longer than this are not padded to a common column.
const MAX_LABEL_COLUMN: usize = 48;

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.path)?;
        if self.rules.is_empty() {
            writeln!(f, "  (no rules)")?;
        }
        let labels: Vec<String> = self
            .rules
            .iter()
            .map(|r| format!("#{} {}", r.rule_id, r.text))
            .collect();
        let column = labels
            .iter()
            .map(|l| l.chars().count())
            .filter(|&n| n <= MAX_LABEL_COLUMN)
            .max()
            .unwrap_or(0);
        for (rule, label) in self.rules.iter().zip(&labels) {
            let pad = column.saturating_sub(label.chars().count()) + 2;
            write!(f, "  {label}{}", " ".repeat(pad))?;
            if !rule.covered {
                writeln!(
                    f,
                    "not covered (pattern does not match the path or a parent)"
                )?;
                continue;
            }
            match &rule.covered_through {
                Some(parent) => write!(f, "covered through {parent}")?,
                None => write!(f, "covered")?,
            }
            for check in &rule.checks {
                let yes = if check.passed { "yes" } else { "no" };
                write!(f, "; {}: {yes} ({})", check.condition, check.detail)?;
            }
            match &rule.verdict {
                Verdict::NotCovered => writeln!(f)?,
                Verdict::NoMatch => writeln!(f, "  => no match")?,
                Verdict::Pin => writeln!(f, "  => PIN (never migrated)")?,
                Verdict::Migrate { targets } => {
                    let list: Vec<String> = targets.iter().map(Target::to_string).collect();
                    writeln!(f, "  => MIGRATE to {}", list.join(" and "))?;
                }
                Verdict::Overridden { by_rule } => {
                    if matches!(self.decision, Decision::Pin { .. }) {
                        writeln!(f, "  => matches, but pin rule #{by_rule} wins")?;
                    } else {
                        writeln!(f, "  => matches, but rule #{by_rule} comes first")?;
                    }
                }
            }
        }
        write!(f, "decision: {}", self.decision)
    }
}
