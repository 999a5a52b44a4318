//! Splits a rule into tokens, remembering each token's character columns.
//!
//! Tokens are separated by whitespace. `->` is a token of its own wherever it
//! appears outside quotes (so `365d->cloud` works), and after `->` a comma is
//! one too (`b2, s3west`). Before `->` commas belong to the pattern, where
//! globs use them in `{a,b}`.
//!
//! A token that starts with `"` runs to the next unescaped `"`; inside it `\"`
//! is a quote and `\\` a backslash, and every other character (including any
//! other backslash, which globset then reads as an escape) is kept as is.

use super::error::RuleError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Unquoted text.
    Word,
    /// Text in double quotes.
    Quoted,
    /// `->`
    Arrow,
    /// `,` after `->`
    Comma,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub kind: Kind,
    /// The value: quotes removed and escapes resolved.
    pub text: String,
    /// The token exactly as written.
    pub source: String,
    /// Column of the first character.
    pub start: usize,
}

impl Token {
    /// True for an unquoted word equal to `s`.
    pub fn is_word(&self, s: &str) -> bool {
        self.kind == Kind::Word && self.text == s
    }
}

pub(crate) fn lex(rule: &str) -> Result<Vec<Token>, RuleError> {
    let chars: Vec<char> = rule.chars().collect();
    let at = |i: usize| chars.get(i).copied();
    let is_arrow = |i: usize| at(i) == Some('-') && at(i + 1) == Some('>');
    let source = |from: usize, to: usize| chars[from..to].iter().collect::<String>();

    let mut tokens = Vec::new();
    let mut after_arrow = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let (kind, text) = if is_arrow(i) {
            after_arrow = true;
            i += 2;
            (Kind::Arrow, "->".to_string())
        } else if after_arrow && c == ',' {
            i += 1;
            (Kind::Comma, ",".to_string())
        } else if c == '"' {
            let mut text = String::new();
            i += 1;
            loop {
                match at(i) {
                    None => {
                        return Err(RuleError::new(
                            rule,
                            start,
                            source(start, chars.len()),
                            "unterminated quote: the pattern needs a closing '\"'",
                        ));
                    }
                    Some('\\') if matches!(at(i + 1), Some('"' | '\\')) => {
                        text.push(chars[i + 1]);
                        i += 2;
                    }
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some(other) => {
                        text.push(other);
                        i += 1;
                    }
                }
            }
            if let Some(next) = at(i)
                && !next.is_whitespace()
                && !is_arrow(i)
                && !(after_arrow && next == ',')
            {
                let mut end = i;
                while end < chars.len() && !chars[end].is_whitespace() && !is_arrow(end) {
                    end += 1;
                }
                return Err(RuleError::new(
                    rule,
                    i,
                    source(i, end),
                    "expected a space after the closing quote (put the whole pattern inside the quotes)",
                ));
            }
            (Kind::Quoted, text)
        } else {
            while i < chars.len()
                && !chars[i].is_whitespace()
                && !is_arrow(i)
                && (!after_arrow || chars[i] != ',')
            {
                i += 1;
            }
            (Kind::Word, source(start, i))
        };
        tokens.push(Token {
            kind,
            text,
            source: source(start, i),
            start,
        });
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(rule: &str) -> Vec<(Kind, String, usize)> {
        lex(rule)
            .unwrap()
            .into_iter()
            .map(|t| (t.kind, t.text, t.start))
            .collect()
    }

    #[test]
    fn splits_words_arrows_and_commas() {
        use Kind::*;
        assert_eq!(
            kinds("a/{x,y} older 1d->b2, s3:GLACIER"),
            vec![
                (Word, "a/{x,y}".into(), 0),
                (Word, "older".into(), 8),
                (Word, "1d".into(), 14),
                (Arrow, "->".into(), 16),
                (Word, "b2".into(), 18),
                (Comma, ",".into(), 20),
                (Word, "s3:GLACIER".into(), 22),
            ]
        );
    }

    #[test]
    fn quotes_and_escapes() {
        use Kind::*;
        assert_eq!(
            kinds(r#""my docs/*" -> x"#),
            vec![
                (Quoted, "my docs/*".into(), 0),
                (Arrow, "->".into(), 12),
                (Word, "x".into(), 15),
            ]
        );
        assert_eq!(
            kinds(r#"pin "a \"b\" \\ \*""#),
            vec![(Word, "pin".into(), 0), (Quoted, r#"a "b" \ \*"#.into(), 4)]
        );
        // Columns count characters, not bytes.
        assert_eq!(kinds("é x")[1], (Word, "x".into(), 2));
    }

    #[test]
    fn quote_errors() {
        let e = lex(r#"pin "abc"#).unwrap_err();
        assert_eq!((e.position, e.token.as_str()), (4, "\"abc"));
        let e = lex(r#"pin "abc"def"#).unwrap_err();
        assert_eq!((e.position, e.token.as_str()), (9, "def"));
    }
}
