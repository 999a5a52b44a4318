//! Property-based fuzzing of the two parsers that read admin input: the rule
//! language (`tierfs::rules::parse`) and the config file
//! (`tierfs::config::Config::from_toml`). Arbitrary strings and structured,
//! nearly valid inputs (valid pieces, then characters deleted, inserted or
//! swapped) must never panic; rule errors must point inside the rule at the
//! token they name; rules that parse must re-parse from their canonical text
//! to the same rule; config errors must name the file.
//!
//! Bounded for CI: `PROPTEST_CASES` cases per property (default 2000), which
//! runs in a few seconds.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::Config as ProptestConfig;
use tierfs::config::Config;
use tierfs::rules;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

fn proptest_config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        // Failures are shrunk and printed; no persistence files in the tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Checks everything a rule parse must guarantee for `text`.
fn check_rule(text: &str) -> Result<(), TestCaseError> {
    match rules::parse(text) {
        Ok(rule) => {
            let again = rules::parse(&rule.text).map_err(|e| {
                TestCaseError::fail(format!(
                    "canonical text {:?} of {text:?} does not parse: {e}",
                    rule.text
                ))
            })?;
            prop_assert_eq!(
                &again,
                &rule,
                "canonical form of {:?} changed meaning",
                text
            );
            prop_assert_eq!(&again.text, &rule.text);
        }
        Err(e) => {
            let chars: Vec<char> = e.rule.chars().collect();
            prop_assert!(
                e.position <= chars.len(),
                "position {} beyond the end of {:?} ({} chars)",
                e.position,
                e.rule,
                chars.len()
            );
            let token: Vec<char> = e.token.chars().collect();
            if !token.is_empty() {
                prop_assert!(
                    chars[e.position..].starts_with(&token),
                    "token {:?} is not at column {} of {:?}",
                    e.token,
                    e.position,
                    e.rule
                );
            }
            prop_assert!(!e.message.is_empty());
            // Rendering (caret line) must not panic either.
            let shown = e.to_string();
            prop_assert!(shown.lines().count() >= 3, "{}", shown);
        }
    }
    Ok(())
}

/// Valid-looking rule pieces.
fn pattern() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("accounting/*".to_string()),
        Just("**/*.iso".to_string()),
        Just("{music,video}/**".to_string()),
        Just("\"shared drive/archive\"".to_string()),
        Just("a\\*b".to_string()),
        Just("[a-z]?x".to_string()),
        Just("/".to_string()),
        Just("\"unterminated".to_string()),
        "[a-zé/*?{},.\\[\\]-]{0,12}",
    ]
}

fn condition() -> impl Strategy<Value = String> {
    let keyword = prop_oneof![
        Just("older"),
        Just("newer"),
        Just("unaccessed"),
        Just("larger"),
        Just("smaller"),
        Just("bigger"),
    ];
    let value = prop_oneof![
        (
            0u64..100_000,
            prop_oneof![
                Just("h"),
                Just("d"),
                Just("w"),
                Just("m"),
                Just("y"),
                Just("s"),
                Just("")
            ]
        )
            .prop_map(|(n, u)| format!("{n}{u}")),
        (
            0u64..u64::MAX,
            prop_oneof![
                Just("B"),
                Just("KB"),
                Just("MiB"),
                Just("GiB"),
                Just("PiB"),
                Just("parsecs")
            ]
        )
            .prop_map(|(n, u)| format!("{n}{u}")),
        "[0-9.]{1,25}[A-Za-z]{0,3}",
        Just(String::new()),
    ];
    (keyword, value).prop_map(|(k, v)| format!("{k} {v}"))
}

fn targets() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            "[a-z0-9_-]{1,8}",
            "[a-z0-9]{1,6}:[A-Z_]{1,12}",
            Just("b2".to_string()),
            Just(String::new()),
            Just("bad name".to_string()),
        ],
        0..4,
    )
    .prop_map(|t| t.join(","))
}

fn near_valid_rule() -> impl Strategy<Value = String> {
    let migrate = (
        pattern(),
        prop::collection::vec(condition(), 0..4),
        prop_oneof![Just(" -> "), Just("->"), Just(" > "), Just(" ")],
        targets(),
    )
        .prop_map(|(p, c, arrow, t)| {
            let mut s = p;
            for c in c {
                s.push(' ');
                s.push_str(&c);
            }
            s.push_str(arrow);
            s.push_str(&t);
            s
        });
    let pin = pattern().prop_map(|p| format!("pin {p}"));
    prop_oneof![4 => migrate, 1 => pin]
}

/// Applies up to three random edits (delete, insert, duplicate) to `s`.
fn mutate(base: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    (
        base,
        prop::collection::vec((any::<prop::sample::Index>(), any::<char>(), 0u8..3), 0..3),
    )
        .prop_map(|(s, edits)| {
            let mut chars: Vec<char> = s.chars().collect();
            for (at, c, kind) in edits {
                let i = if chars.is_empty() {
                    0
                } else {
                    at.index(chars.len() + 1)
                };
                match kind {
                    0 if i < chars.len() => {
                        chars.remove(i);
                    }
                    1 => chars.insert(i, c),
                    _ if i < chars.len() => {
                        let d = chars[i];
                        chars.insert(i, d);
                    }
                    _ => chars.push(c),
                }
            }
            chars.into_iter().collect()
        })
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn rule_parser_survives_arbitrary_strings(text in any::<String>()) {
        check_rule(&text)?;
    }

    #[test]
    fn rule_parser_survives_near_valid_rules(text in mutate(near_valid_rule())) {
        check_rule(&text)?;
    }

    #[test]
    fn rule_parser_accepts_the_valid_core(
        p in prop_oneof![Just("accounting/*"), Just("media/**"), Just("**/*.iso")],
        n in 1u32..10_000,
        unit in prop_oneof![Just("h"), Just("d"), Just("w"), Just("m"), Just("y")],
        remote in "[a-z][a-z0-9_-]{0,10}",
    ) {
        let text = format!("{p} older {n}{unit} -> {remote}");
        let rule = rules::parse(&text)
            .map_err(|e| TestCaseError::fail(format!("{text:?} must parse: {e}")))?;
        check_rule(&rule.text)?;
    }
}

// ---------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------

/// A temp dir with `hot/` in it, shared by every config case.
fn config_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("hot")).unwrap();
        d
    })
    .path()
}

fn check_config(text: &str) -> Result<(), TestCaseError> {
    let source: PathBuf = config_dir().join("fuzz.toml");
    match Config::from_toml(text, &source) {
        Ok(c) => {
            prop_assert!(c.hot_dir.is_absolute());
            prop_assert!(c.mount.threads >= 1);
            // Debug output (used in logs) never shows a secret: it appears
            // no more often than in the same config without secrets (the
            // value may legitimately occur elsewhere, e.g. as a part size).
            let shown = format!("{c:?}");
            let mut bare = c.clone();
            for r in bare.remotes.values_mut() {
                r.secret_access_key = None;
                r.session_token = None;
                r.access_key = None;
            }
            let shown_bare = format!("{bare:?}");
            for r in c.remotes.values() {
                for secret in [&r.secret_access_key, &r.session_token, &r.access_key]
                    .into_iter()
                    .flatten()
                    // Short strings and pieces of the mask itself prove nothing.
                    .filter(|s| s.len() >= 4 && !"Some(\"<redacted>\")".contains(s.as_str()))
                {
                    prop_assert_eq!(
                        shown.matches(secret.as_str()).count(),
                        shown_bare.matches(secret.as_str()).count(),
                        "secret {:?} in {}",
                        secret,
                        shown
                    );
                }
            }
        }
        Err(e) => {
            let msg = e.to_string();
            prop_assert!(
                msg.contains("fuzz.toml"),
                "error does not name the file: {msg}"
            );
        }
    }
    Ok(())
}

fn toml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("\"hot\"".to_string()),
        Just("\"30s\"".to_string()),
        Just("\"off\"".to_string()),
        Just("\"1h\"".to_string()),
        Just("\"16MiB\"".to_string()),
        Just("true".to_string()),
        Just("false".to_string()),
        (-5i64..100_000).prop_map(|n| n.to_string()),
        "\"[ -~]{0,12}\"".prop_map(|s| s.replace('\\', "/")),
        Just("[1, 2]".to_string()),
        Just("{ a = 1 }".to_string()),
        Just("\"s3://bucket/prefix\"".to_string()),
        Just("\"file:///nonexistent\"".to_string()),
        Just("\"http://127.0.0.1:1\"".to_string()),
        Just("\"../../etc\"".to_string()),
    ]
}

fn near_valid_config() -> impl Strategy<Value = String> {
    let top_key = prop_oneof![
        Just("hot_dir"),
        Just("catalog"),
        Just("control_socket"),
        Just("log_level"),
        Just("log_file"),
        Just("watch_hot_dir"),
        Just("access_flush_interval"),
        Just("migrate_interval"),
        Just("gc_grace"),
        Just("catalog_backup_interval"),
        Just("catalog_backup_keep"),
        Just("bogus"),
    ];
    let mount_key = prop_oneof![
        Just("allow_other"),
        Just("default_permissions"),
        Just("threads"),
        Just("attr_timeout"),
        Just("read_only"),
    ];
    let remote_key = prop_oneof![
        Just("url"),
        Just("endpoint"),
        Just("region"),
        Just("access_key_id"),
        Just("secret_access_key"),
        Just("session_token"),
        Just("allow_http"),
        Just("account"),
        Just("access_key"),
        Just("storage_class"),
        Just("max_concurrency"),
        Just("part_size"),
        Just("request_timeout"),
    ];
    // Mostly well-typed values (so the validation paths after parsing are
    // reached), sometimes anything.
    let valid_top = prop_oneof![
        Just(("log_level", "\"debug\"")),
        Just(("watch_hot_dir", "false")),
        Just(("access_flush_interval", "\"5s\"")),
        Just(("migrate_interval", "\"off\"")),
        Just(("gc_grace", "\"7d\"")),
        Just(("catalog_backup_interval", "\"12h\"")),
        Just(("catalog_backup_keep", "3")),
        Just(("catalog_backup_keep", "0")),
        Just(("control_group", "\"root\"")),
        Just(("control_group", "\"no-such-group\"")),
    ]
    .prop_map(|(k, v)| (k, v.to_string()));
    let valid_mount = prop_oneof![
        Just(("threads", "8")),
        Just(("threads", "0")),
        Just(("attr_timeout", "\"2s\"")),
        Just(("read_only", "true")),
        Just(("allow_other", "true")),
    ]
    .prop_map(|(k, v)| (k, v.to_string()));
    let top = prop_oneof![3 => valid_top, 1 => (top_key, toml_value())];
    let mount = prop_oneof![3 => valid_mount, 1 => (mount_key, toml_value())];
    (
        prop::collection::vec(top, 0..4),
        prop::collection::vec(mount, 0..3),
        prop::option::of("[a-z_-]{1,6}"),
        prop::collection::vec((remote_key, toml_value()), 0..6),
        any::<bool>(),
    )
        .prop_map(|(top, mount, remote, rkeys, with_hot)| {
            let mut s = String::new();
            if with_hot {
                s.push_str("hot_dir = \"hot\"\n");
            }
            for (k, v) in top {
                s.push_str(&format!("{k} = {v}\n"));
            }
            s.push_str("[mount]\n");
            for (k, v) in mount {
                s.push_str(&format!("{k} = {v}\n"));
            }
            if let Some(remote) = remote {
                s.push_str(&format!("[remote.{remote}]\nurl = \"s3://bucket/p\"\n"));
                for (k, v) in rkeys {
                    if k != "url" {
                        s.push_str(&format!("{k} = {v}\n"));
                    }
                }
            }
            s
        })
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn config_parser_survives_arbitrary_strings(text in any::<String>()) {
        check_config(&text)?;
    }

    #[test]
    fn config_parser_survives_near_valid_configs(text in mutate(near_valid_config())) {
        check_config(&text)?;
    }
}

#[test]
fn the_generators_reach_valid_inputs() {
    // Guard against a fuzzer that only ever produces errors: the structured
    // generators must hit the success paths too.
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let rules = near_valid_rule();
    let configs = near_valid_config();
    let (mut ok_rules, mut ok_configs) = (0, 0);
    for _ in 0..500 {
        let r = rules.new_tree(&mut runner).unwrap().current();
        ok_rules += rules::parse(&r).is_ok() as u32;
        let c = configs.new_tree(&mut runner).unwrap().current();
        ok_configs += Config::from_toml(&c, &config_dir().join("fuzz.toml")).is_ok() as u32;
    }
    assert!(ok_rules >= 25, "only {ok_rules}/500 generated rules parse");
    assert!(
        ok_configs >= 25,
        "only {ok_configs}/500 generated configs load"
    );
}
