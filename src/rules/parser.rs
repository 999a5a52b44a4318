//! The rule grammar (see `docs/rules.md`):
//!
//! ```text
//! rule      = pin | migrate
//! pin       = "pin" pattern
//! migrate   = pattern { condition } "->" target { "," target }
//! condition = ("older" | "newer" | "unaccessed") duration
//!           | ("larger" | "smaller") size
//! target    = remote [ ":" storage-class ]
//! ```
//!
//! Conditions may come in any order, each at most once. Every error carries
//! the column of the token that caused it.

use std::time::Duration;

use super::error::RuleError;
use super::lexer::{Kind, Token, lex};
use super::pattern::Pattern;
use super::units::{DurationError, format_duration, format_size, parse_duration};
use super::{Action, Conditions, Rule, Target};

/// The condition keywords, in canonical order.
pub(crate) const CONDITION_KEYWORDS: [&str; 5] =
    ["older", "newer", "unaccessed", "larger", "smaller"];

const EXPECTED_CONDITION: &str =
    "expected one of: older, newer, unaccessed, larger, smaller, or '->' followed by the targets";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keyword {
    Older,
    Newer,
    Unaccessed,
    Larger,
    Smaller,
}

impl Keyword {
    fn from_word(s: &str) -> Option<Keyword> {
        Some(match s {
            "older" => Keyword::Older,
            "newer" => Keyword::Newer,
            "unaccessed" => Keyword::Unaccessed,
            "larger" => Keyword::Larger,
            "smaller" => Keyword::Smaller,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        CONDITION_KEYWORDS[self as usize]
    }

    fn takes_size(self) -> bool {
        matches!(self, Keyword::Larger | Keyword::Smaller)
    }
}

/// Where a condition was written: column of its keyword and one past its value.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
}

struct Parser<'a> {
    rule: &'a str,
    tokens: Vec<Token>,
    /// Number of characters in `rule`.
    len: usize,
}

pub(crate) fn parse(rule: &str) -> Result<Rule, RuleError> {
    let p = Parser {
        rule,
        tokens: lex(rule)?,
        len: rule.chars().count(),
    };
    p.parse()
}

impl Parser<'_> {
    fn err(&self, tok: &Token, message: impl Into<String>) -> RuleError {
        RuleError::new(self.rule, tok.start, tok.source.clone(), message)
    }

    /// An error whose caret spans columns `start..end`.
    fn err_span(&self, start: usize, end: usize, message: impl Into<String>) -> RuleError {
        let token: String = self.rule.chars().skip(start).take(end - start).collect();
        RuleError::new(self.rule, start, token, message)
    }

    /// An error at the end of the rule (something is missing).
    fn err_end(&self, message: impl Into<String>) -> RuleError {
        RuleError::new(self.rule, self.len, "", message)
    }

    /// `'365'`, `'->'` or `end of rule`, for "found ..." in messages.
    fn found(tok: Option<&Token>) -> String {
        match tok {
            Some(t) => format!("'{}'", t.source),
            None => "end of rule".into(),
        }
    }

    fn parse(&self) -> Result<Rule, RuleError> {
        let Some(first) = self.tokens.first() else {
            return Err(self.err_end(
                "empty rule: expected 'PATTERN [conditions] -> REMOTE' or 'pin PATTERN'",
            ));
        };
        if first.is_word("pin") {
            self.parse_pin()
        } else if first.kind == Kind::Word
            && first.text.eq_ignore_ascii_case("pin")
            && !self.tokens.iter().any(|t| t.kind == Kind::Arrow)
        {
            Err(self.err(first, "keywords are lower-case: write 'pin PATTERN'"))
        } else {
            self.parse_migrate()
        }
    }

    fn pattern(&self, tok: &Token) -> Result<Pattern, RuleError> {
        if let Some(m) = super::pattern::too_long(&tok.text) {
            // The caret points at the first character past the limit.
            let quote = usize::from(tok.kind == Kind::Quoted);
            let at = tok.start + quote + super::pattern::MAX_PATTERN_CHARS;
            return Err(self.err_span(at, at + 1, m));
        }
        Pattern::new(&tok.text).map_err(|m| self.err(tok, m))
    }

    fn parse_pin(&self) -> Result<Rule, RuleError> {
        let pat_tok = match self.tokens.get(1) {
            Some(t) if matches!(t.kind, Kind::Word | Kind::Quoted) => t,
            other => {
                let message = format!(
                    "expected a pattern after 'pin', found {}",
                    Self::found(other)
                );
                return Err(match other {
                    Some(t) => self.err(t, message),
                    None => self.err_end(message),
                });
            }
        };
        let pattern = self.pattern(pat_tok)?;
        if let Some(next) = self.tokens.get(2) {
            let message = if next.kind == Kind::Arrow {
                "a pin rule keeps files local, so it takes no targets: write 'pin PATTERN'"
                    .to_string()
            } else if next.kind == Kind::Word && Keyword::from_word(&next.text).is_some() {
                "a pin rule takes no conditions: pinned files are never migrated, whatever their age or size".to_string()
            } else if self.tokens.iter().any(|t| t.kind == Kind::Arrow) {
                format!(
                    "unexpected '{}': a pin rule is just 'pin PATTERN' (for a migration rule on a path named 'pin', quote it: \"pin\")",
                    next.source
                )
            } else {
                format!(
                    "unexpected '{}' after the pattern: a pin rule is just 'pin PATTERN' (quote a pattern that contains spaces: pin \"my docs/*\")",
                    next.source
                )
            };
            return Err(self.err_span(next.start, self.len, message));
        }
        Ok(Rule::build(Action::Pin, pattern, Conditions::default()))
    }

    fn parse_migrate(&self) -> Result<Rule, RuleError> {
        let first = &self.tokens[0];
        if first.kind == Kind::Arrow {
            return Err(self.err(
                first,
                "missing pattern before '->': a rule starts with the files it applies to, e.g. 'projects/** -> b2'",
            ));
        }
        if first.kind == Kind::Word
            && let Some(kw) = Keyword::from_word(&first.text)
            && self
                .tokens
                .get(1)
                .is_some_and(|v| self.value(kw, v).is_ok())
        {
            return Err(self.err(
                first,
                format!(
                    "missing pattern: a rule starts with the files it applies to, e.g. '* {kw} {v} -> b2' (quote a pattern named '{kw}': \"{kw}\")",
                    kw = kw.name(),
                    v = self.tokens[1].source
                ),
            ));
        }
        let pattern = self.pattern(first)?;

        // Conditions, up to the arrow.
        let mut conditions = Conditions::default();
        let mut spans: [Option<Span>; 5] = [None; 5];
        let mut i = 1;
        let arrow = loop {
            let Some(tok) = self.tokens.get(i) else {
                return Err(self.err_end(
                    "missing '->' and a target: a migration rule looks like 'PATTERN [conditions] -> REMOTE' (to keep files local, write 'pin PATTERN')",
                ));
            };
            match tok.kind {
                Kind::Arrow => break i,
                Kind::Quoted => {
                    return Err(self.err(
                        tok,
                        "unexpected quoted text: only the pattern may be quoted, and a rule has one pattern",
                    ));
                }
                Kind::Comma | Kind::Word => {}
            }
            let Some(kw) = Keyword::from_word(&tok.text) else {
                return Err(self.unknown_condition(i));
            };
            if let Some(first) = spans[kw as usize] {
                return Err(self.err(
                    tok,
                    format!(
                        "'{}' is given twice (first at column {}); each condition may appear once",
                        kw.name(),
                        first.start
                    ),
                ));
            }
            let value_tok = self.tokens.get(i + 1).filter(|t| t.kind != Kind::Arrow);
            let Some(value_tok) = value_tok else {
                let what = if kw.takes_size() {
                    "a size like 100MB or 1GiB"
                } else {
                    "a duration like 30d, 12w, 6m or 1y"
                };
                let found = self.tokens.get(i + 1);
                let message = format!(
                    "expected {what} after '{}', found {}",
                    kw.name(),
                    Self::found(found)
                );
                return Err(match found {
                    Some(t) => self.err(t, message),
                    None => self.err_end(message),
                });
            };
            match self.value(kw, value_tok)? {
                Value::Duration(d) => match kw {
                    Keyword::Older => conditions.older = Some(d),
                    Keyword::Newer => conditions.newer = Some(d),
                    _ => conditions.unaccessed = Some(d),
                },
                Value::Size(n) => match kw {
                    Keyword::Larger => conditions.larger = Some(n),
                    _ => conditions.smaller = Some(n),
                },
            }
            spans[kw as usize] = Some(Span {
                start: tok.start,
                end: value_tok.start + value_tok.source.chars().count(),
            });
            i += 2;
        };
        self.check_satisfiable(&conditions, &spans)?;

        let targets = self.parse_targets(arrow)?;
        Ok(Rule::build(
            Action::Migrate { targets },
            pattern,
            conditions,
        ))
    }

    /// The value after a condition keyword.
    fn value(&self, kw: Keyword, tok: &Token) -> Result<Value, RuleError> {
        let name = kw.name();
        let src = tok.source.as_str();
        if src == "than" {
            return Err(self.err(
                tok,
                format!(
                    "write '{name}' and the value without 'than', e.g. '{name} {}'",
                    if kw.takes_size() { "1GiB" } else { "30d" }
                ),
            ));
        }
        if kw.takes_size() {
            let message = if src.starts_with('-') {
                format!("expected a size after '{name}', found '{src}': sizes cannot be negative")
            } else if !src.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
                format!("expected a size like 100MB or 1GiB after '{name}', found '{src}'")
            } else {
                match crate::config::parse_size(src) {
                    Ok(u64::MAX) => format!("the size '{src}' is too large"),
                    Ok(n) => return Ok(Value::Size(n)),
                    Err(e) => format!("invalid size after '{name}': {e}"),
                }
            };
            return Err(self.err(tok, message));
        }
        let message = match parse_duration(src) {
            Ok(d) => return Ok(Value::Duration(d)),
            Err(DurationError::Malformed(hint)) => {
                let mut m = format!(
                    "expected a duration like 30d, 12w, 6m or 1y after '{name}', found '{src}'"
                );
                if let Some(h) = hint {
                    m.push_str(&format!(" ({h})"));
                }
                m
            }
            Err(DurationError::Negative) => {
                format!(
                    "expected a duration after '{name}', found '{src}': durations cannot be negative"
                )
            }
            Err(DurationError::Zero) => {
                format!("'{name} {src}' is not allowed: the duration must be greater than zero")
            }
            Err(DurationError::TooLarge) => format!("the duration '{src}' is too large"),
        };
        Err(self.err(tok, message))
    }

    /// The error for a token where a condition keyword or `->` should be.
    fn unknown_condition(&self, i: usize) -> RuleError {
        let tok = &self.tokens[i];
        let word = tok.text.as_str();
        let lower = word.to_lowercase();
        let prev_is_size =
            i >= 2 && Keyword::from_word(&self.tokens[i - 2].text).is_some_and(Keyword::takes_size);
        let message = if word == "pin" {
            "'pin' must come first: to keep files local write 'pin PATTERN' (and no '->')"
                .to_string()
        } else if lower != word && Keyword::from_word(&lower).is_some() {
            format!("unknown condition '{word}': keywords are lower-case, write '{lower}'")
        } else if prev_is_size && crate::config::parse_size(&format!("1{word}")).is_ok() {
            format!(
                "unexpected '{word}': write sizes without a space, e.g. '{}{word}'",
                self.tokens[i - 1].source
            )
        } else if word.starts_with(|c: char| c.is_ascii_digit()) {
            format!(
                "unexpected '{word}': a value needs a keyword before it, e.g. 'older 30d' or 'larger 1GiB'; {EXPECTED_CONDITION}"
            )
        } else if let Some(keyword) = did_you_mean(&lower) {
            format!("unknown condition '{word}' (did you mean '{keyword}'?); {EXPECTED_CONDITION}")
        } else if i == 1 {
            format!(
                "unknown condition '{word}'; {EXPECTED_CONDITION} (quote a pattern that contains spaces: \"my docs/*\")"
            )
        } else {
            format!("unknown condition '{word}'; {EXPECTED_CONDITION}")
        };
        self.err(tok, message)
    }

    /// Rejects condition combinations that no file can satisfy; the caret
    /// goes under whichever of the two was written second.
    fn check_satisfiable(
        &self,
        c: &Conditions,
        spans: &[Option<Span>; 5],
    ) -> Result<(), RuleError> {
        let later = |a: Keyword, b: Keyword| -> Span {
            let (sa, sb) = (spans[a as usize].unwrap(), spans[b as usize].unwrap());
            if sa.start > sb.start { sa } else { sb }
        };
        let dur = format_duration;
        if let (Some(old), Some(new)) = (c.older, c.newer)
            && old >= new
        {
            let s = later(Keyword::Older, Keyword::Newer);
            return Err(self.err_span(
                s.start,
                s.end,
                format!(
                    "'older {}' and 'newer {}' can never both hold: no file was modified more than {} and less than {} ago",
                    dur(old),
                    dur(new),
                    dur(old),
                    dur(new)
                ),
            ));
        }
        if let (Some(unused), Some(new)) = (c.unaccessed, c.newer)
            && unused >= new
        {
            let s = later(Keyword::Unaccessed, Keyword::Newer);
            return Err(self.err_span(
                s.start,
                s.end,
                format!(
                    "'unaccessed {}' and 'newer {}' can never both hold: a file modified less than {} ago was used less than {} ago (writes count as use)",
                    dur(unused),
                    dur(new),
                    dur(new),
                    dur(unused)
                ),
            ));
        }
        if c.smaller == Some(0) {
            let s = spans[Keyword::Smaller as usize].unwrap();
            return Err(self.err_span(
                s.start,
                s.end,
                "'smaller 0B' can never hold: no file is smaller than 0 bytes",
            ));
        }
        if let (Some(min), Some(max)) = (c.larger, c.smaller)
            && max <= min.saturating_add(1)
        {
            let s = later(Keyword::Larger, Keyword::Smaller);
            return Err(self.err_span(
                s.start,
                s.end,
                format!(
                    "'larger {}' and 'smaller {}' can never both hold: no size is between them",
                    format_size(min),
                    format_size(max)
                ),
            ));
        }
        Ok(())
    }

    /// `REMOTE[:CLASS] {, REMOTE[:CLASS]}` after the arrow at `arrow`.
    fn parse_targets(&self, arrow: usize) -> Result<Vec<Target>, RuleError> {
        let mut targets: Vec<Target> = Vec::new();
        let mut i = arrow + 1;
        loop {
            // A target is required here.
            let tok = match self.tokens.get(i) {
                Some(t) if t.kind == Kind::Word => t,
                other => {
                    let after = if targets.is_empty() { "'->'" } else { "','" };
                    let message = match other.map(|t| t.kind) {
                        Some(Kind::Arrow) => {
                            "unexpected second '->' (quote a pattern that contains '->')"
                                .to_string()
                        }
                        Some(Kind::Quoted) => format!(
                            "expected a remote name after {after}, found {}: remote names are not quoted",
                            Self::found(other)
                        ),
                        _ => format!(
                            "expected a remote name after {after}, found {}",
                            Self::found(other)
                        ),
                    };
                    return Err(match other {
                        Some(t) => self.err(t, message),
                        None => self.err_end(message),
                    });
                }
            };
            let target = self.target(tok)?;
            if let Some(dup) = targets.iter().find(|t| t.remote == target.remote) {
                return Err(self.err(
                    tok,
                    format!(
                        "remote '{}' is listed twice (as '{dup}' and '{target}'); mirror targets must be different remotes",
                        target.remote
                    ),
                ));
            }
            targets.push(target);
            i += 1;
            match self.tokens.get(i) {
                None => return Ok(targets),
                Some(t) if t.kind == Kind::Comma => i += 1,
                Some(t) => {
                    let message = if t.kind == Kind::Word && Keyword::from_word(&t.text).is_some() {
                        format!(
                            "conditions go before '->': write 'PATTERN {} ... -> REMOTE'",
                            t.text
                        )
                    } else if t.kind == Kind::Arrow {
                        "unexpected second '->' (quote a pattern that contains '->')".to_string()
                    } else {
                        format!(
                            "unexpected '{}' after the target '{}'; separate mirror targets with commas: '{},{}'",
                            t.source, tok.source, tok.source, t.source
                        )
                    };
                    return Err(self.err(t, message));
                }
            }
        }
    }

    /// One `REMOTE[:CLASS]`; an invalid character is pointed at exactly.
    fn target(&self, tok: &Token) -> Result<Target, RuleError> {
        let valid = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        let (remote, class) = match tok.text.split_once(':') {
            Some((r, c)) => (r, Some(c)),
            None => (tok.text.as_str(), None),
        };
        if remote.is_empty() {
            return Err(self.err(
                tok,
                format!("missing remote name before ':' in '{}'", tok.source),
            ));
        }
        if let Some((col, bad)) = remote.chars().enumerate().find(|&(_, c)| !valid(c)) {
            return Err(RuleError::new(
                self.rule,
                tok.start + col,
                bad.to_string(),
                format!(
                    "invalid character '{bad}' in remote name '{remote}': remote names use letters, digits, '-' and '_'"
                ),
            ));
        }
        if let Some(class) = class {
            if class.is_empty() {
                return Err(self.err(
                    tok,
                    format!(
                        "missing storage class after ':' in '{}' (e.g. {remote}:GLACIER_IR), or drop the ':'",
                        tok.source
                    ),
                ));
            }
            let offset = remote.chars().count() + 1;
            if let Some((col, bad)) = class.chars().enumerate().find(|&(_, c)| !valid(c)) {
                return Err(RuleError::new(
                    self.rule,
                    tok.start + offset + col,
                    bad.to_string(),
                    format!(
                        "invalid character '{bad}' in storage class '{class}': storage classes use letters, digits, '-' and '_'"
                    ),
                ));
            }
        }
        Ok(Target {
            remote: remote.to_string(),
            storage_class: class.map(str::to_string),
        })
    }
}

/// The keyword a mistaken condition word probably meant: a synonym, or a
/// keyword within two edits.
fn did_you_mean(word: &str) -> Option<&'static str> {
    let synonym = match word {
        "bigger" | "greater" | "over" | "above" | "more" | "size" | "min-size" | "minsize" => {
            Some("larger")
        }
        "less" | "under" | "below" | "fewer" | "max-size" | "maxsize" => Some("smaller"),
        "younger" | "recent" | "modified-within" => Some("newer"),
        "age" | "modified" | "mtime" | "aged" => Some("older"),
        "accessed" | "unread" | "unused" | "idle" | "atime" | "not-accessed" | "last-access" => {
            Some("unaccessed")
        }
        _ => None,
    };
    synonym.or_else(|| {
        CONDITION_KEYWORDS
            .into_iter()
            .find(|k| edit_distance(word, k) <= 2)
    })
}

/// Levenshtein distance (by character).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

enum Value {
    Duration(Duration),
    Size(u64),
}

/// A pattern as it appears in canonical text: bare when it reads back as the
/// same pattern, otherwise in double quotes with `\` and `"` escaped.
pub(crate) fn quote_pattern(pattern: &str) -> String {
    let needs_quotes = pattern.is_empty()
        || pattern.contains(|c: char| c.is_whitespace() || c == '"')
        || pattern.contains("->")
        || pattern == "pin"
        || CONDITION_KEYWORDS.contains(&pattern);
    if !needs_quotes {
        return pattern.to_string();
    }
    let mut out = String::with_capacity(pattern.len() + 2);
    out.push('"');
    for c in pattern.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}
