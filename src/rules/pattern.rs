//! A rule's path pattern: a glob relative to the mount root that covers the
//! paths it matches and everything below them.

use std::fmt;

use globset::{Candidate, Glob, GlobBuilder, GlobSet, GlobSetBuilder};

/// Longest pattern accepted, in characters. Compiling a glob (globset, on
/// the `regex` crate) costs time that grows faster than linearly with long
/// literal runs: about 0.1 s at this length in a debug build, 2 s at 20,000.
/// Matching stays linear in the path. No path is longer than 4096 bytes, so
/// a longer pattern is never needed; several rules can split a long list.
pub const MAX_PATTERN_CHARS: usize = 4096;

/// The error for a pattern over [`MAX_PATTERN_CHARS`], if `raw` is one.
pub(crate) fn too_long(raw: &str) -> Option<String> {
    let n = raw.chars().count();
    (n > MAX_PATTERN_CHARS).then(|| {
        format!(
            "the pattern is {n} characters long; patterns are limited to {MAX_PATTERN_CHARS} \
             characters (no path is longer), and this one passes the limit at character {}",
            MAX_PATTERN_CHARS + 1
        )
    })
}

/// A compiled pattern.
///
/// Directory coverage is compiled in rather than computed per ancestor: for
/// a pattern `P` we also compile `P/**`. With `literal_separator`, `P/**`
/// matches exactly the paths `x/rest` where `x` matches `P`, and since the
/// `/` after `x` is a real separator, `x` is an ancestor directory. So "the
/// path or one of its ancestors matches `P`" costs one set lookup, not one per
/// path component. (`tests.rs` checks this against the definition.)
#[derive(Clone)]
pub(crate) struct Pattern {
    /// The normalised glob.
    text: String,
    /// `text`, compiled.
    exact: Glob,
    /// `text/**`, compiled; `None` when `text` already covers everything
    /// below it (`**`, `.../**`).
    below: Option<Glob>,
    /// `exact` and `below` as one matcher.
    set: GlobSet,
}

impl Pattern {
    /// Normalises and compiles a pattern as written in a rule (quotes already
    /// removed). Errors are one-line messages.
    pub fn new(raw: &str) -> Result<Pattern, String> {
        if let Some(e) = too_long(raw) {
            return Err(e);
        }
        let text = normalise(raw);
        if text.is_empty() {
            return Err("the pattern is empty; use * to cover every file".into());
        }
        if let Some(bad) = text.split('/').find(|c| *c == "." || *c == "..") {
            return Err(format!(
                "a pattern cannot contain a '{bad}' component: patterns are relative to the mount root"
            ));
        }
        let exact = compile(&text)?;
        let below = if text == "**" || text.ends_with("/**") {
            None
        } else {
            Some(compile(&format!("{text}/**"))?)
        };
        let mut builder = GlobSetBuilder::new();
        builder.add(exact.clone());
        if let Some(b) = &below {
            builder.add(b.clone());
        }
        let set = builder
            .build()
            .map_err(|e| format!("invalid pattern: {}", e.kind()))?;
        Ok(Pattern {
            text,
            exact,
            below,
            set,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The globs to add to a rule set's matcher: the pattern and, if needed,
    /// its `/**` form. A path is covered if either matches.
    pub fn globs(&self) -> impl Iterator<Item = &Glob> {
        std::iter::once(&self.exact).chain(self.below.as_ref())
    }

    /// True if `path` (relative to the mount root, as bytes) or one of its
    /// ancestor directories matches.
    pub fn covers(&self, path: &[u8]) -> bool {
        self.set.is_match_candidate(&Candidate::from_bytes(path))
    }

    /// Which part of `path` matched: the whole path (`Some(path.len())`), or
    /// the nearest ancestor that matches (the length of that prefix), or
    /// `None` if the pattern does not cover the path. Slow; for explanations.
    pub fn covered_through(&self, path: &[u8]) -> Option<usize> {
        let exact = self.exact.compile_matcher();
        if exact.is_match_candidate(&Candidate::from_bytes(path)) {
            return Some(path.len());
        }
        path.iter()
            .enumerate()
            .rev()
            .filter(|&(_, &b)| b == b'/')
            .map(|(i, _)| i)
            .find(|&i| exact.is_match_candidate(&Candidate::from_bytes(&path[..i])))
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.text == other.text
    }
}

impl Eq for Pattern {}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pattern").field(&self.text).finish()
    }
}

/// Drops leading and trailing `/` (patterns are relative to the mount root,
/// and a trailing `/` would otherwise never match a file) and collapses runs
/// of `/`.
fn normalise(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.trim_matches('/').chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    out
}

fn compile(glob: &str) -> Result<Glob, String> {
    GlobBuilder::new(glob)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| format!("invalid pattern: {}", e.kind()))
}
