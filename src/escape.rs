//! Safe output of names that come from users and buckets.
//!
//! A file name may hold any byte but `/` and NUL: terminal escape sequences
//! (ESC, BEL), CR/LF that forge extra lines in a report or a log, Unicode
//! direction overrides that reorder what a terminal shows, and bytes that are
//! not UTF-8. Everything tierfs prints for humans goes through one function,
//! [`escape_bytes`] (or its `Display` wrapper [`Escaped`]), so a name always
//! stays one visible, unambiguous token:
//!
//! * printable UTF-8 (including spaces and non-ASCII letters) is kept;
//! * `\` becomes `\\`, so an escape in the output is never a name's text;
//! * TAB, LF, CR become `\t`, `\n`, `\r`; other C0 controls and DEL `\xNN`;
//! * C1 controls (U+0080–U+009F), direction and invisible formatting
//!   characters (U+061C, U+200B–U+200F, U+2028–U+202E, U+2060–U+2069,
//!   U+FEFF) become `\u{NNNN}`;
//! * each byte that is not part of valid UTF-8 becomes `\xNN`.
//!
//! The form reads like a Rust/Python string literal without quotes; it is
//! for people, not for parsing back. Machine output keeps exact names:
//! [`path_bytes`] is the serde encoding used for paths in JSON (a string when
//! the name is UTF-8, else `{"hex": "..."}` with the raw bytes). CSV cells go
//! through [`csv_cell`], HTML through [`html`].

use std::borrow::Cow;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `Display` wrapper that writes its bytes with [`escape_bytes`] rules,
/// without allocating.
#[derive(Clone, Copy)]
pub struct Escaped<'a>(pub &'a [u8]);

impl<'a> Escaped<'a> {
    /// Wraps a path.
    pub fn path(p: &'a Path) -> Escaped<'a> {
        Escaped(p.as_os_str().as_bytes())
    }

    /// Wraps a string (which may still hold control characters).
    pub fn str(s: &'a str) -> Escaped<'a> {
        Escaped(s.as_bytes())
    }
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                write_char(f, c)?;
            }
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// True for characters that must not reach a terminal or a log line raw.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061c}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2069}'
            | '\u{feff}')
}

fn write_char(f: &mut fmt::Formatter<'_>, c: char) -> fmt::Result {
    match c {
        '\\' => f.write_str("\\\\"),
        '\t' => f.write_str("\\t"),
        '\n' => f.write_str("\\n"),
        '\r' => f.write_str("\\r"),
        c if (c as u32) < 0x80 && needs_escape(c) => write!(f, "\\x{:02x}", c as u32),
        c if needs_escape(c) => write!(f, "\\u{{{:04x}}}", c as u32),
        c => write!(f, "{c}"),
    }
}

/// `bytes` escaped for a terminal, a report or a log field (module docs).
pub fn escape_bytes(bytes: &[u8]) -> String {
    Escaped(bytes).to_string()
}

/// A path escaped for humans: [`escape_bytes`] of its bytes.
pub fn escape_path(path: &Path) -> String {
    escape_bytes(path.as_os_str().as_bytes())
}

/// A string escaped for humans (a message that embeds names, or a name
/// already decoded lossily): [`escape_bytes`] of its UTF-8.
pub fn escape_str(s: &str) -> Cow<'_, str> {
    if s.chars().any(|c| c == '\\' || needs_escape(c)) {
        Cow::Owned(escape_bytes(s.as_bytes()))
    } else {
        Cow::Borrowed(s)
    }
}

/// A whole message (an error chain, a report line) with control and
/// direction characters escaped but line breaks and backslashes kept: the
/// last line of defence for text that embeds names, where each name should
/// already have gone through [`Escaped`] (so nothing is escaped twice).
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    escape_controls_but(s, true)
}

fn escape_controls_but(s: &str, keep_newlines: bool) -> Cow<'_, str> {
    let keep = |c: char| (keep_newlines && c == '\n') || !needs_escape(c);
    if s.chars().all(keep) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            c if keep(c) => out.push(c),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push_str(&format!("\\u{{{:04x}}}", c as u32)),
        }
    }
    Cow::Owned(out)
}

/// An [`std::io::Write`] for log output that keeps every event on one line.
///
/// `tracing-subscriber`'s fmt layer formats each event into a buffer and
/// hands it over in one `write` ending in `\n`; this writer escapes every
/// control character in it (line breaks other than the final one, CR, ESC,
/// BEL, direction overrides) as [`escape_controls`] does, so a file name in
/// a field can neither split an event into forged lines nor drive the
/// terminal of whoever reads the log. Use it as
/// `.with_writer(|| LogWriter(std::io::stderr()))`.
#[derive(Debug)]
pub struct LogWriter<W>(pub W);

impl<W: std::io::Write> std::io::Write for LogWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let (body, newline) = match buf.strip_suffix(b"\n") {
            Some(body) => (body, true),
            None => (buf, false),
        };
        let text = String::from_utf8_lossy(body);
        // One write for the whole line, so events of concurrent threads
        // never interleave.
        let mut line = escape_controls_but(&text, false).into_owned();
        if newline {
            line.push('\n');
        }
        self.0.write_all(line.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Text escaped for HTML element content and attribute values, after
/// [`escape_str`] (so control characters are visible there too).
pub fn html(s: &str) -> String {
    let s = escape_str(s);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A CSV cell that a spreadsheet will not run as a formula: text starting
/// with `=`, `+`, `-`, `@`, TAB or CR gets a leading `'` (the OWASP advice).
/// Numbers written by tierfs itself are not passed through here, so a
/// negative amount stays a number.
pub fn csv_cell(s: &str) -> Cow<'_, str> {
    match s.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => Cow::Owned(format!("'{s}")),
        _ => Cow::Borrowed(s),
    }
}

/// Serde encoding of a path that keeps its exact bytes in JSON: a string
/// when the name is valid UTF-8, otherwise an object `{"hex": "..."}` with
/// the raw bytes in lowercase hexadecimal. Decoding accepts both forms.
///
/// Use with `#[serde(with = "crate::escape::path_bytes")]`.
pub mod path_bytes {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::path::{Path, PathBuf};

    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Wire<'a> {
        Text(Cow<'a>),
        Raw { hex: String },
    }

    type Cow<'a> = std::borrow::Cow<'a, str>;

    /// Serializes one path.
    pub fn serialize<S: Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
        wire(path).serialize(s)
    }

    /// Deserializes one path.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
        from_wire(Wire::deserialize(d)?).map_err(D::Error::custom)
    }

    fn wire(path: &Path) -> Wire<'_> {
        let bytes = path.as_os_str().as_bytes();
        match std::str::from_utf8(bytes) {
            Ok(s) => Wire::Text(Cow::Borrowed(s)),
            Err(_) => Wire::Raw {
                hex: super::hex(bytes),
            },
        }
    }

    fn from_wire(w: Wire<'_>) -> Result<PathBuf, String> {
        match w {
            Wire::Text(s) => Ok(PathBuf::from(s.into_owned())),
            Wire::Raw { hex } => {
                let bytes = super::unhex(&hex)
                    .ok_or("a path's \"hex\" must be an even number of hex digits")?;
                Ok(PathBuf::from(OsStr::from_bytes(&bytes)))
            }
        }
    }

    /// The same encoding for a list of paths.
    pub mod vec {
        use super::*;

        /// Serializes a list of paths.
        pub fn serialize<S: Serializer>(paths: &[PathBuf], s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(paths.iter().map(|p| wire(p)))
        }

        /// Deserializes a list of paths.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
            Vec::<Wire<'de>>::deserialize(d)?
                .into_iter()
                .map(|w| from_wire(w).map_err(D::Error::custom))
                .collect()
        }
    }
}

/// A path that serializes with [`path_bytes`]: its exact bytes in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExactPath(pub std::path::PathBuf);

impl serde::Serialize for ExactPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        path_bytes::serialize(&self.0, s)
    }
}

impl<'de> serde::Deserialize<'de> for ExactPath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ExactPath, D::Error> {
        path_bytes::deserialize(d).map(ExactPath)
    }
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn control_characters_and_invalid_utf8_are_escaped() {
        let cases: &[(&[u8], &str)] = &[
            (b"plain name.txt", "plain name.txt"),
            ("ünïcode ✓".as_bytes(), "ünïcode ✓"),
            (b"a\x1b[31mred", "a\\x1b[31mred"),
            (b"bell\x07", "bell\\x07"),
            (b"line\nforged: ok\r", "line\\nforged: ok\\r"),
            (b"tab\there", "tab\\there"),
            (b"back\\slash", "back\\\\slash"),
            (b"del\x7f", "del\\x7f"),
            (b"raw-\xff\xfe.bin", "raw-\\xff\\xfe.bin"),
            ("c1\u{9b}31m".as_bytes(), "c1\\u{009b}31m"),
            ("rtl\u{202e}txt.exe".as_bytes(), "rtl\\u{202e}txt.exe"),
            ("zero\u{200b}width".as_bytes(), "zero\\u{200b}width"),
        ];
        for (raw, want) in cases {
            assert_eq!(escape_bytes(raw), *want, "{raw:?}");
            let shown = escape_bytes(raw);
            assert!(
                shown.chars().all(|c| !needs_escape(c)),
                "{shown:?} still holds a control character"
            );
        }
        assert_eq!(escape_str("ok"), Cow::Borrowed("ok"));
        assert_eq!(escape_str("a\nb"), "a\\nb");
        assert_eq!(
            escape_path(Path::new(OsStr::from_bytes(b"d/\x1b]0;x\x07"))),
            "d/\\x1b]0;x\\x07"
        );
        assert_eq!(format!("{:?}", Escaped::str("a\"b\n")), "\"a\"b\\n\"");
    }

    #[test]
    fn log_events_stay_on_one_line() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || LogWriter(writer.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let name = "evil\n2026-01-01T00:00:00Z  INFO forged\x1b[2J\r";
            tracing::warn!(path = %name, "released");
            tracing::info!("second");
        });
        let out = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert!(
            lines[0].contains(r"path=evil\n2026-01-01T00:00:00Z  INFO forged\x1b[2J\r"),
            "{out}"
        );
        assert!(!out.contains('\x1b') && !out.contains('\r'));
        assert_eq!(escape_controls("a\nb\x07\\"), "a\nb\\x07\\");
    }

    #[test]
    fn html_escapes_markup_and_controls() {
        assert_eq!(
            html("<script>alert('x')</script> & \"q\"\x1b"),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;\\x1b"
        );
    }

    #[test]
    fn csv_cells_that_look_like_formulas_are_neutralised() {
        for bad in ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "\tx", "\rx"] {
            assert_eq!(csv_cell(bad), format!("'{bad}"));
        }
        for ok in ["data/a.txt", "", "1.5", "a=b", " =x"] {
            assert_eq!(csv_cell(ok), ok);
        }
    }

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct One {
        #[serde(with = "path_bytes")]
        p: PathBuf,
        #[serde(with = "path_bytes::vec")]
        ps: Vec<PathBuf>,
    }

    #[test]
    fn json_paths_keep_exact_bytes() {
        let raw = PathBuf::from(OsStr::from_bytes(b"raw-\xff\n.bin"));
        let v = One {
            p: raw.clone(),
            ps: vec!["a/b".into(), raw.clone()],
        };
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(
            json,
            r#"{"p":{"hex":"7261772dff0a2e62696e"},"ps":["a/b",{"hex":"7261772dff0a2e62696e"}]}"#
        );
        assert_eq!(serde_json::from_str::<One>(&json).unwrap(), v);
        // Plain strings (older clients) still decode.
        let old: One = serde_json::from_str(r#"{"p":"x\ny","ps":[]}"#).unwrap();
        assert_eq!(old.p, Path::new("x\ny"));
        for bad in [r#"{"hex":"f"}"#, r#"{"hex":"zz"}"#, r#"{"hex":"é1"}"#, "7"] {
            let json = format!(r#"{{"p":{bad},"ps":[]}}"#);
            assert!(serde_json::from_str::<One>(&json).is_err(), "{bad}");
        }
    }
}
