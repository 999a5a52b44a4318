//! [`RuleError`]: what is wrong with a rule, and where.

use std::fmt;

use serde::Serialize;

/// A rule that does not parse.
///
/// `position` is the 0-based column (in characters, not bytes) of the
/// offending token in `rule`; `token` is that token exactly as written (empty
/// when something is missing at the end of the rule). `Display` prints three
/// lines — the rule, a caret line under the token, and the message:
///
/// ```text
/// accounting/* older 365 -> cloud
///                    ^^^
/// expected a duration like 30d, 12w, 6m or 1y after 'older', found '365'
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleError {
    /// The rule as given.
    pub rule: String,
    /// 0-based character column of the offending token.
    pub position: usize,
    /// The offending token as written; empty if something is missing.
    pub token: String,
    /// What is wrong, in one line.
    pub message: String,
}

impl RuleError {
    pub(crate) fn new(
        rule: &str,
        position: usize,
        token: impl Into<String>,
        message: impl Into<String>,
    ) -> RuleError {
        RuleError {
            rule: rule.to_string(),
            position,
            token: token.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Every whitespace character (tab, newline) is shown as one space so
        // the caret stays under the token.
        // A long rule is quoted as an excerpt around the token: at most
        // CONTEXT characters either side and MAX_TOKEN of the token, with
        // `…` where something was left out. Control characters are escaped
        // as `?` so the caret stays aligned and the terminal safe.
        const CONTEXT: usize = 40;
        const MAX_TOKEN: usize = 40;
        let chars: Vec<char> = self.rule.chars().collect();
        let width = self.token.chars().count().clamp(1, MAX_TOKEN);
        let from = self.position.saturating_sub(CONTEXT);
        let to = (self.position + width + CONTEXT).min(chars.len());
        let mut shown = String::new();
        if from > 0 {
            shown.push('…');
        }
        for &c in chars.get(from..to).unwrap_or(&[]) {
            shown.push(if c.is_whitespace() || c.is_control() {
                ' '
            } else {
                c
            });
        }
        if to < chars.len() {
            shown.push('…');
        }
        let caret_at = self.position - from + usize::from(from > 0);
        writeln!(f, "{shown}")?;
        writeln!(f, "{}{}", " ".repeat(caret_at), "^".repeat(width))?;
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for RuleError {}
