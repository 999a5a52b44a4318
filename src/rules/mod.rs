//! The rule language: which files move to which remotes, and which never move.
//!
//! ```text
//! accounting/* older 365d -> cloud
//! * larger 1GiB unaccessed 90d -> b2
//! projects/**/*.iso -> s3:GLACIER_IR
//! media/** older 30d -> b2,s3west
//! pin legal/**
//! ```
//!
//! * [`parse`] (or `str::parse`) turns one line into a [`Rule`]; a
//!   [`RuleError`] points at the offending column.
//! * [`Rule::covers`] says whether the rule's pattern applies to a path: the
//!   pattern matches the path or one of its ancestor directories.
//! * [`Rule::matches`] adds the conditions (age, last use, size) for a file
//!   described by [`FileFacts`]; [`Rule::explain`] says why.
//! * [`RuleSet`] is the ordered list the daemon evaluates: a covering `pin`
//!   wins over everything, otherwise the first matching rule decides. It
//!   compiles every pattern into one matcher, so [`RuleSet::decide`] costs one
//!   glob-set lookup per file however many rules there are.
//!
//! * [`edit`] parses the rules stored in the catalog and changes them;
//!   [`impact`] measures what adding one would change. These two read the
//!   catalog; the rest of the module is the language alone.
//!
//! The user-facing reference is `docs/rules.md`.

pub mod edit;
mod error;
pub mod impact;
mod lexer;
mod parser;
mod pattern;
mod set;
mod units;

#[cfg(test)]
mod tests;

use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use serde::Serialize;

pub use error::RuleError;
pub use set::{Decision, Explanation, RuleExplanation, RuleSet, Verdict};

use pattern::Pattern;
use units::{describe_age, describe_size, format_duration, format_size, is_binary_spelling};

/// Parses one rule. Surrounding whitespace is ignored.
///
/// ```
/// let rule = tierfs::rules::parse("/accounting/*  older 1y  -> cloud").unwrap();
/// assert_eq!(rule.text, "accounting/* older 365d -> cloud");
/// ```
pub fn parse(text: &str) -> Result<Rule, RuleError> {
    parser::parse(text)
}

/// One parsed rule.
///
/// Two rules are equal when they mean the same thing, which is exactly when
/// their canonical `text` is equal: `parse(&rule.text) == Ok(rule)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The canonical form: keywords in grammar order (`older newer unaccessed
    /// larger smaller`), single spaces, `->` with a space either side,
    /// targets without spaces, the pattern without a leading `/` and quoted
    /// only when needed, durations in days (or hours when not whole days:
    /// `1y` → `365d`, `36h` stays), sizes in the unit giving the smallest
    /// whole number (`1073741824` → `1GiB`).
    pub text: String,
    /// Pin, or migrate to which targets.
    pub action: Action,
    pattern: Pattern,
    /// The conditions, all of which must hold. Always empty for a pin.
    pub conditions: Conditions,
}

/// What a rule does with the files it matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Never migrate.
    Pin,
    /// Copy to every target (mirrors: each copy is required), then leave a stub.
    Migrate {
        /// One or more targets, each on a different remote, in rule order.
        targets: Vec<Target>,
    },
}

/// A remote, optionally with the storage class to store objects in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Target {
    /// Remote name from the configuration: letters, digits, `-`, `_`.
    pub remote: String,
    /// Storage class such as `GLACIER_IR`, passed to the remote as is.
    pub storage_class: Option<String>,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.storage_class {
            Some(class) => write!(f, "{}:{class}", self.remote),
            None => f.write_str(&self.remote),
        }
    }
}

/// A rule's conditions; `None` means "not constrained". All the given ones
/// must hold. Every comparison is strict: a file modified exactly 365 days
/// ago is not `older 365d` (nor `newer 365d`), a file of exactly 1 GiB is not
/// `larger 1GiB`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Conditions {
    /// Modified more than this long ago.
    pub older: Option<Duration>,
    /// Modified less than this long ago.
    pub newer: Option<Duration>,
    /// Not used for more than this long: neither read through the mount nor
    /// modified. A file never read through the mount counts from its mtime.
    pub unaccessed: Option<Duration>,
    /// More than this many bytes.
    pub larger: Option<u64>,
    /// Fewer than this many bytes.
    pub smaller: Option<u64>,
}

/// What a rule needs to know about a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileFacts<'a> {
    /// Path relative to the mount root (a leading `/` is ignored). Any bytes.
    pub path: &'a Path,
    /// Size in bytes.
    pub size: u64,
    /// Last modification.
    pub mtime: SystemTime,
    /// Last read through the mount, if any was recorded.
    pub last_access: Option<SystemTime>,
}

/// The outcome of one condition for one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConditionCheck {
    /// The condition in canonical form, e.g. `older 365d`.
    pub condition: String,
    /// Whether the file satisfies it.
    pub passed: bool,
    /// The fact it was judged on, e.g. `modified 412 days ago`.
    pub detail: String,
}

impl Rule {
    fn build(action: Action, pattern: Pattern, conditions: Conditions) -> Rule {
        let quoted = parser::quote_pattern(pattern.as_str());
        let text = match &action {
            Action::Pin => format!("pin {quoted}"),
            Action::Migrate { targets } => {
                let mut text = quoted;
                let conds = conditions.canonical();
                if !conds.is_empty() {
                    text.push(' ');
                    text.push_str(&conds);
                }
                text.push_str(" -> ");
                let targets: Vec<String> = targets.iter().map(Target::to_string).collect();
                text.push_str(&targets.join(","));
                text
            }
        };
        Rule {
            text,
            action,
            pattern,
            conditions,
        }
    }

    /// The normalised glob (no leading or trailing `/`, no quotes).
    pub fn pattern(&self) -> &str {
        self.pattern.as_str()
    }

    /// True for a `pin` rule.
    pub fn is_pin(&self) -> bool {
        self.action == Action::Pin
    }

    /// The targets of a migration rule; empty for a pin.
    pub fn targets(&self) -> &[Target] {
        match &self.action {
            Action::Pin => &[],
            Action::Migrate { targets } => targets,
        }
    }

    /// True if the pattern matches `path` (relative to the mount root) or one
    /// of its ancestor directories: `accounting/*` covers
    /// `accounting/2019/q1/ledger.xlsx` through `accounting/2019`.
    pub fn covers(&self, path: &Path) -> bool {
        self.pattern.covers(relative_bytes(path))
    }

    /// True if the rule applies to the file: covered, and every condition holds.
    pub fn matches(&self, file: &FileFacts<'_>, now: SystemTime) -> bool {
        self.covers(file.path) && self.conditions.hold(file, now)
    }

    /// Each condition of the rule, judged for `file` (coverage is
    /// [`covers`](Rule::covers)'s business and is not included).
    pub fn explain(&self, file: &FileFacts<'_>, now: SystemTime) -> Vec<ConditionCheck> {
        self.conditions.check(file, now)
    }

    pub(crate) fn pattern_ref(&self) -> &Pattern {
        &self.pattern
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Rule {
    type Err = RuleError;

    fn from_str(s: &str) -> Result<Rule, RuleError> {
        parse(s)
    }
}

/// A rule serialises as its canonical text.
impl Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// Time from `t` to `now`; zero if `t` is in the future (clock skew).
fn age(now: SystemTime, t: SystemTime) -> Duration {
    now.duration_since(t).unwrap_or(Duration::ZERO)
}

/// The last use of a file: its last read through the mount or its last
/// modification, whichever is later.
fn last_use(file: &FileFacts<'_>) -> SystemTime {
    match file.last_access {
        Some(read) if read > file.mtime => read,
        _ => file.mtime,
    }
}

impl Conditions {
    /// True if no condition is set.
    pub fn is_empty(&self) -> bool {
        *self == Conditions::default()
    }

    /// True if every condition holds for `file` at `now`.
    pub fn hold(&self, file: &FileFacts<'_>, now: SystemTime) -> bool {
        if self.older.is_some() || self.newer.is_some() {
            let modified = age(now, file.mtime);
            if self.older.is_some_and(|d| modified <= d)
                || self.newer.is_some_and(|d| modified >= d)
            {
                return false;
            }
        }
        if let Some(d) = self.unaccessed
            && age(now, last_use(file)) <= d
        {
            return false;
        }
        !(self.larger.is_some_and(|n| file.size <= n)
            || self.smaller.is_some_and(|n| file.size >= n))
    }

    /// One check per condition, in canonical order.
    pub fn check(&self, file: &FileFacts<'_>, now: SystemTime) -> Vec<ConditionCheck> {
        let mut checks = Vec::new();
        let modified = age(now, file.mtime);
        let modified_detail = |threshold: Duration| {
            if file.mtime > now {
                "modified in the future (clock skew?)".to_string()
            } else {
                format!("modified {} ago", describe_age(modified, threshold))
            }
        };
        if let Some(d) = self.older {
            checks.push(ConditionCheck {
                condition: format!("older {}", format_duration(d)),
                passed: modified > d,
                detail: modified_detail(d),
            });
        }
        if let Some(d) = self.newer {
            checks.push(ConditionCheck {
                condition: format!("newer {}", format_duration(d)),
                passed: modified < d,
                detail: modified_detail(d),
            });
        }
        if let Some(d) = self.unaccessed {
            let used = last_use(file);
            let unused = age(now, used);
            let detail = if used > now {
                "used in the future (clock skew?)".to_string()
            } else {
                match file.last_access {
                    None => format!(
                        "never read through the mount; modified {} ago",
                        describe_age(unused, d)
                    ),
                    Some(read) if read >= file.mtime => {
                        format!("last read {} ago", describe_age(unused, d))
                    }
                    Some(read) => format!(
                        "modified {} ago, after the last read {} ago",
                        describe_age(unused, d),
                        describe_age(age(now, read), d)
                    ),
                }
            };
            checks.push(ConditionCheck {
                condition: format!("unaccessed {}", format_duration(d)),
                passed: unused > d,
                detail,
            });
        }
        for (keyword, threshold, passed) in [
            (
                "larger",
                self.larger,
                self.larger.is_some_and(|n| file.size > n),
            ),
            (
                "smaller",
                self.smaller,
                self.smaller.is_some_and(|n| file.size < n),
            ),
        ] {
            if let Some(n) = threshold {
                checks.push(ConditionCheck {
                    condition: format!("{keyword} {}", format_size(n)),
                    passed,
                    detail: format!("size {}", describe_size(file.size, is_binary_spelling(n))),
                });
            }
        }
        checks
    }

    /// `older 365d larger 1GiB`: the set conditions in canonical order.
    fn canonical(&self) -> String {
        let mut parts = Vec::new();
        let durations = [
            ("older", self.older),
            ("newer", self.newer),
            ("unaccessed", self.unaccessed),
        ];
        for (keyword, d) in durations {
            if let Some(d) = d {
                parts.push(format!("{keyword} {}", format_duration(d)));
            }
        }
        for (keyword, n) in [("larger", self.larger), ("smaller", self.smaller)] {
            if let Some(n) = n {
                parts.push(format!("{keyword} {}", format_size(n)));
            }
        }
        parts.join(" ")
    }
}

/// The path's bytes without leading `/`.
fn relative_bytes(path: &Path) -> &[u8] {
    let bytes = path.as_os_str().as_bytes();
    let skip = bytes.iter().take_while(|&&b| b == b'/').count();
    &bytes[skip..]
}

/// A path for people: UTF-8 as is, other bytes as `\xNN`.
fn display_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}
