//! Tests of the rule language: grammar, coverage, conditions, precedence,
//! errors and explanations.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;

const DAY: u64 = 86_400;

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(2_000_000_000)
}

fn days(n: u64) -> Duration {
    Duration::from_secs(n * DAY)
}

fn ago(d: Duration) -> SystemTime {
    now() - d
}

fn rule(text: &str) -> Rule {
    parse(text).unwrap_or_else(|e| panic!("{text:?} should parse:\n{e}"))
}

/// A file of `size` bytes modified `modified` ago and never read.
fn file(path: &str, size: u64, modified: Duration) -> FileFacts<'_> {
    FileFacts {
        path: Path::new(path),
        size,
        mtime: ago(modified),
        last_access: None,
    }
}

fn set(rules: &[&str]) -> RuleSet {
    RuleSet::new(
        rules
            .iter()
            .enumerate()
            .map(|(i, r)| (i as i64 + 1, rule(r)))
            .collect(),
    )
}

fn target(remote: &str, class: Option<&str>) -> Target {
    Target {
        remote: remote.into(),
        storage_class: class.map(str::to_string),
    }
}

fn migrate(rule_id: i64, remotes: &[&str]) -> Decision {
    Decision::Migrate {
        rule_id,
        targets: remotes.iter().map(|r| target(r, None)).collect(),
    }
}

// ---------------------------------------------------------------- grammar

#[test]
fn the_issue_example() {
    let r = rule("accounting/* older 365d -> cloud");
    assert_eq!(r.text, "accounting/* older 365d -> cloud");
    assert_eq!(r.pattern(), "accounting/*");
    assert_eq!(
        r.action,
        Action::Migrate {
            targets: vec![target("cloud", None)]
        }
    );
    assert_eq!(
        r.conditions,
        Conditions {
            older: Some(days(365)),
            ..Conditions::default()
        }
    );
    for covered in [
        "accounting/ledger.xlsx",
        "accounting/2019/ledger.xlsx",
        "accounting/2019/q1/ledger.xlsx",
        "/accounting/2019/q1/ledger.xlsx",
    ] {
        assert!(r.covers(Path::new(covered)), "{covered}");
    }
    for not in [
        "accounting2/x",
        "other/accounting/x",
        "accounting",
        "xaccounting/y",
        "Accounting/x",
    ] {
        assert!(!r.covers(Path::new(not)), "{not}");
    }
    assert!(r.matches(
        &file("accounting/2019/q1/ledger.xlsx", 10, days(412)),
        now()
    ));
    assert!(!r.matches(&file("accounting/2019/q1/ledger.xlsx", 10, days(12)), now()));
    assert!(!r.matches(&file("accounting2/ledger.xlsx", 10, days(412)), now()));
}

#[test]
fn every_duration_unit() {
    for (text, expected, canonical) in [
        ("older 36h", Duration::from_secs(36 * 3600), "older 36h"),
        ("older 48h", days(2), "older 2d"),
        ("older 30d", days(30), "older 30d"),
        ("older 12w", days(84), "older 84d"),
        ("older 6m", days(180), "older 180d"),
        ("older 1y", days(365), "older 365d"),
        ("older 007d", days(7), "older 7d"),
    ] {
        let r = rule(&format!("* {text} -> b2"));
        assert_eq!(r.conditions.older, Some(expected), "{text}");
        assert_eq!(r.text, format!("* {canonical} -> b2"));
    }
}

#[test]
fn every_condition_keyword() {
    let r = rule("x newer 7d -> b2");
    assert_eq!(r.conditions.newer, Some(days(7)));
    let r = rule("x unaccessed 90d -> b2");
    assert_eq!(r.conditions.unaccessed, Some(days(90)));
    let r = rule("x larger 100MB -> b2");
    assert_eq!(r.conditions.larger, Some(100_000_000));
    let r = rule("x smaller 1GiB -> b2");
    assert_eq!(r.conditions.smaller, Some(1 << 30));
    let r = rule("x larger 0 -> b2");
    assert_eq!(r.conditions.larger, Some(0));
    assert_eq!(r.text, "x larger 0B -> b2");
    let r = rule("x larger 1.5KiB -> b2");
    assert_eq!(r.conditions.larger, Some(1536));
    assert_eq!(r.text, "x larger 1536B -> b2");
}

#[test]
fn all_conditions_in_any_order_come_out_in_grammar_order() {
    let r = rule("data/** smaller 10GB larger 1MiB unaccessed 30d newer 2y older 60d -> b2");
    assert_eq!(
        r.conditions,
        Conditions {
            older: Some(days(60)),
            newer: Some(days(730)),
            unaccessed: Some(days(30)),
            larger: Some(1 << 20),
            smaller: Some(10_000_000_000),
        }
    );
    assert_eq!(
        r.text,
        "data/** older 60d newer 730d unaccessed 30d larger 1MiB smaller 10GB -> b2"
    );
}

#[test]
fn targets_mirrors_and_storage_classes() {
    let r = rule("projects/**/*.iso -> s3:GLACIER_IR");
    assert_eq!(r.targets(), &[target("s3", Some("GLACIER_IR"))]);
    let r = rule("media/**  ->  b2 , s3west:deep-archive_2,azure-1");
    assert_eq!(
        r.targets(),
        &[
            target("b2", None),
            target("s3west", Some("deep-archive_2")),
            target("azure-1", None)
        ]
    );
    assert_eq!(r.text, "media/** -> b2,s3west:deep-archive_2,azure-1");
    // No spaces needed around the arrow or the commas.
    let r = rule("a/* older 1d->b2,s3");
    assert_eq!(r.text, "a/* older 1d -> b2,s3");
    assert!(!r.is_pin());
}

#[test]
fn pin_rules() {
    let r = rule("pin legal/**");
    assert!(r.is_pin());
    assert_eq!(r.action, Action::Pin);
    assert_eq!(r.text, "pin legal/**");
    assert!(r.targets().is_empty());
    assert!(r.conditions.is_empty());
    assert!(r.covers(Path::new("legal/contracts/a.pdf")));
    assert!(!r.covers(Path::new("legalese/a.pdf")));
    // A pin matches whatever the file's age or size.
    assert!(r.matches(&file("legal/a", 0, Duration::ZERO), now()));
}

#[test]
fn pattern_normalisation_and_quoting() {
    assert_eq!(rule("/accounting/* -> b2").text, "accounting/* -> b2");
    assert_eq!(rule("accounting/ -> b2").pattern(), "accounting");
    assert_eq!(rule("a//b -> b2").pattern(), "a/b");
    let r = rule(r#""my docs/*" older 30d -> b2"#);
    assert_eq!(r.pattern(), "my docs/*");
    assert_eq!(r.text, r#""my docs/*" older 30d -> b2"#);
    assert!(r.covers(Path::new("my docs/reports/a.txt")));
    let r = rule(r#"pin "say \"hi\"/**""#);
    assert_eq!(r.pattern(), r#"say "hi"/**"#);
    assert_eq!(r.text, r#"pin "say \"hi\"/**""#);
    // A quoted keyword is a pattern, not a keyword.
    let r = rule(r#""pin" -> b2"#);
    assert_eq!(r.pattern(), "pin");
    assert_eq!(r.text, r#""pin" -> b2"#);
    let r = rule(r#""a->b" -> b2"#);
    assert_eq!(r.pattern(), "a->b");
    assert_eq!(r.text, r#""a->b" -> b2"#);
    // Glob escapes pass through, bare or quoted.
    let r = rule(r"notes/\*.txt -> b2");
    assert!(r.covers(Path::new("notes/*.txt")));
    assert!(!r.covers(Path::new("notes/a.txt")));
    assert_eq!(rule(r#""notes/\*.txt" -> b2"#), r);
}

#[test]
fn glob_semantics_follow_globset_with_literal_separator() {
    let top = rule("*.pdf -> b2");
    assert!(top.covers(Path::new("a.pdf")));
    assert!(!top.covers(Path::new("docs/a.pdf")));
    let deep = rule("**/*.pdf -> b2");
    assert!(deep.covers(Path::new("a.pdf")));
    assert!(deep.covers(Path::new("docs/2020/a.pdf")));
    let every = rule("* -> b2");
    for p in ["a", "a/b", "a/b/c/d", ".hidden/x"] {
        assert!(every.covers(Path::new(p)), "{p}");
    }
    let alt = rule("{music,video}/** -> b2");
    assert!(alt.covers(Path::new("video/x.mkv")));
    assert!(!alt.covers(Path::new("photos/x.jpg")));
    let class = rule("logs/202[0-3]-* -> b2");
    assert!(class.covers(Path::new("logs/2021-01/app.log")));
    assert!(!class.covers(Path::new("logs/2024-01/app.log")));
}

/// Coverage is defined as "the pattern matches the path or one of its
/// ancestor directories"; the implementation compiles `P/**` instead. Check
/// the two agree on a spread of patterns and paths.
#[test]
fn coverage_equals_matching_the_path_or_an_ancestor() {
    let patterns = [
        "*",
        "**",
        "a",
        "a/*",
        "a/**",
        "a/**/c",
        "**/c",
        "**/b/*",
        "*/b",
        "a*",
        "a?",
        "?/?",
        "{a,b/c}",
        "a/[bc]",
        "a/[!b]",
        "*.txt",
        "**/*.txt",
        "a/**/*.txt",
        "a/*/c/**",
    ];
    let paths = [
        "a",
        "b",
        "ab",
        "a/b",
        "a/c",
        "a/b/c",
        "a/b/c/d",
        "b/c",
        "b/c/d",
        "x/b/c",
        "x/y/b/z",
        "a.txt",
        "a/b.txt",
        "a/b/c.txt",
        "c",
        "a/x/c/y/z",
        "ab/c",
    ];
    for p in patterns {
        let glob = globset::GlobBuilder::new(p)
            .literal_separator(true)
            .build()
            .unwrap()
            .compile_matcher();
        let r = rule(&format!("{p} -> b2"));
        for path in paths {
            let mut expected = glob.is_match(path);
            let mut prefix = path;
            while let Some((parent, _)) = prefix.rsplit_once('/') {
                expected |= glob.is_match(parent);
                prefix = parent;
            }
            assert_eq!(
                r.covers(Path::new(path)),
                expected,
                "pattern {p}, path {path}"
            );
            let via_set = set(&[&format!("{p} -> b2")]).decide(&file(path, 1, days(1)), now());
            assert_eq!(
                via_set != Decision::None,
                expected,
                "set: pattern {p}, path {path}"
            );
        }
    }
}

#[test]
fn non_utf8_paths_do_not_panic() {
    let raw = Path::new(OsStr::from_bytes(b"accounting/\xff\xfe/ledger"));
    let r = rule("accounting/* older 1d -> cloud");
    assert!(r.covers(raw));
    let f = FileFacts {
        path: raw,
        size: 1,
        mtime: ago(days(400)),
        last_access: None,
    };
    assert!(r.matches(&f, now()));
    let rules = set(&[
        "pin legal/**",
        "accounting/* older 1d -> cloud",
        "**/*.iso -> b2",
    ]);
    assert_eq!(rules.decide(&f, now()), migrate(2, &["cloud"]));
    let e = rules.explain(&f, now());
    assert_eq!(e.path, r"accounting/\xff\xfe/ledger");
    assert_eq!(
        e.rules[1].covered_through.as_deref(),
        Some(r"accounting/\xff\xfe")
    );
    let _ = e.to_string();
    let bin = Path::new(OsStr::from_bytes(b"\x80.iso"));
    assert_eq!(rules.decide(&file_at(bin), now()), migrate(3, &["b2"]));
}

fn file_at(path: &Path) -> FileFacts<'_> {
    FileFacts {
        path,
        size: 1,
        mtime: ago(days(1)),
        last_access: None,
    }
}

// ------------------------------------------------------------- conditions

#[test]
fn boundaries_are_strict() {
    let older = rule("* older 365d -> b2");
    assert!(!older.matches(&file("f", 1, days(365)), now()));
    assert!(older.matches(&file("f", 1, days(365) + Duration::from_nanos(1)), now()));
    let newer = rule("* newer 7d -> b2");
    assert!(!newer.matches(&file("f", 1, days(7)), now()));
    assert!(newer.matches(&file("f", 1, days(7) - Duration::from_nanos(1)), now()));
    let unused = rule("* unaccessed 90d -> b2");
    assert!(!unused.matches(&file("f", 1, days(90)), now()));
    assert!(unused.matches(&file("f", 1, days(91)), now()));
    let larger = rule("* larger 1GiB -> b2");
    assert!(!larger.matches(&file("f", 1 << 30, days(1)), now()));
    assert!(larger.matches(&file("f", (1 << 30) + 1, days(1)), now()));
    let smaller = rule("* smaller 1KB -> b2");
    assert!(!smaller.matches(&file("f", 1000, days(1)), now()));
    assert!(smaller.matches(&file("f", 999, days(1)), now()));
}

#[test]
fn conditions_and_together() {
    let r = rule("* larger 1GiB unaccessed 90d -> b2");
    assert!(r.matches(&file("big", 2 << 30, days(100)), now()));
    assert!(!r.matches(&file("small", 1 << 20, days(100)), now()));
    assert!(!r.matches(&file("recent", 2 << 30, days(10)), now()));
}

#[test]
fn unaccessed_counts_from_the_later_of_last_read_and_mtime() {
    let r = rule("* unaccessed 90d -> b2");
    // Never read through the mount: counts from mtime.
    assert!(r.matches(&file("f", 1, days(100)), now()));
    assert!(!r.matches(&file("f", 1, days(80)), now()));
    // Read recently: not unaccessed, however old the data.
    let mut f = file("f", 1, days(400));
    f.last_access = Some(ago(days(5)));
    assert!(!r.matches(&f, now()));
    f.last_access = Some(ago(days(120)));
    assert!(r.matches(&f, now()));
    // Written after its last read: the write counts as use.
    let mut f = file("f", 1, days(10));
    f.last_access = Some(ago(days(200)));
    assert!(!r.matches(&f, now()));
    let checks = r.explain(&f, now());
    assert_eq!(
        checks[0].detail,
        "modified 10 days ago, after the last read 200 days ago"
    );
}

#[test]
fn future_times_count_as_now() {
    let f = FileFacts {
        path: Path::new("f"),
        size: 1,
        mtime: now() + days(3),
        last_access: None,
    };
    assert!(!rule("* older 1d -> b2").matches(&f, now()));
    assert!(rule("* newer 1d -> b2").matches(&f, now()));
    let checks = rule("* older 1d -> b2").explain(&f, now());
    assert_eq!(checks[0].detail, "modified in the future (clock skew?)");
}

#[test]
fn condition_checks_name_the_condition_and_the_fact() {
    let r = rule("* older 1y larger 1GiB smaller 10GB unaccessed 30d -> b2");
    let mut f = file("f", 3 << 30, days(412));
    f.last_access = Some(ago(days(40)));
    let checks = r.explain(&f, now());
    let summary: Vec<(&str, bool, &str)> = checks
        .iter()
        .map(|c| (c.condition.as_str(), c.passed, c.detail.as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("older 365d", true, "modified 412 days ago"),
            ("unaccessed 30d", true, "last read 40 days ago"),
            ("larger 1GiB", true, "size 3 GiB (3221225472 bytes)"),
            ("smaller 10GB", true, "size 3.2 GB (3221225472 bytes)"),
        ]
    );
    let exact = r.explain(&file("f", 1, days(365)), now());
    assert_eq!(exact[0].detail, "modified exactly 365 days ago");
    assert!(!exact[0].passed);
    let never = r.explain(&file("f", 1, days(2)), now());
    assert_eq!(
        never[1].detail,
        "never read through the mount; modified 2 days ago"
    );
}

// ------------------------------------------------------------- precedence

#[test]
fn pin_wins_regardless_of_order() {
    let f = file("legal/contracts/2019.pdf", 5 << 30, days(1000));
    for rules in [
        set(&["pin legal/**", "* -> b2"]),
        set(&["* -> b2", "pin legal/**"]),
        set(&["* older 1d -> b2", "**/*.pdf -> s3", "pin legal/**"]),
    ] {
        let pin_id = rules
            .rules()
            .iter()
            .find(|(_, r)| r.is_pin())
            .map(|(id, _)| *id)
            .unwrap();
        assert_eq!(rules.decide(&f, now()), Decision::Pin { rule_id: pin_id });
    }
    // Not covered by the pin: the migration rule applies.
    let rules = set(&["* -> b2", "pin legal/**"]);
    assert_eq!(
        rules.decide(&file("other/x", 1, days(1)), now()),
        migrate(1, &["b2"])
    );
    // Of several covering pins, the first is reported.
    let rules = set(&["* -> b2", "pin legal/**", "pin **/*.pdf"]);
    assert_eq!(rules.decide(&f, now()), Decision::Pin { rule_id: 2 });
}

#[test]
fn first_matching_rule_wins() {
    let rules = set(&[
        "media/** larger 1GiB -> glacier",
        "media/** -> b2",
        "* older 30d -> s3",
    ]);
    assert_eq!(
        rules.decide(&file("media/film.mkv", 4 << 30, days(1)), now()),
        migrate(1, &["glacier"])
    );
    // Rule 1 covers but its condition fails, so rule 2 decides.
    assert_eq!(
        rules.decide(&file("media/clip.mp4", 1 << 20, days(100)), now()),
        migrate(2, &["b2"])
    );
    assert_eq!(
        rules.decide(&file("docs/a.txt", 1, days(100)), now()),
        migrate(3, &["s3"])
    );
    assert_eq!(
        rules.decide(&file("docs/a.txt", 1, days(1)), now()),
        Decision::None
    );
    // Rule ids are the catalog's, not positions.
    let rules = RuleSet::new(vec![(42, rule("a/** -> x")), (7, rule("* -> y"))]);
    assert_eq!(
        rules.decide(&file("a/b", 1, days(1)), now()),
        migrate(42, &["x"])
    );
    assert_eq!(
        rules.decide(&file("b", 1, days(1)), now()),
        migrate(7, &["y"])
    );
}

#[test]
fn mirrors_are_returned_in_order() {
    let rules = set(&["* -> b2,s3west:GLACIER"]);
    assert_eq!(
        rules.decide(&file("x", 1, days(1)), now()),
        Decision::Migrate {
            rule_id: 1,
            targets: vec![target("b2", None), target("s3west", Some("GLACIER"))]
        }
    );
}

#[test]
fn empty_rule_set_decides_nothing() {
    let rules = RuleSet::new(Vec::new());
    assert!(rules.is_empty());
    assert_eq!(rules.decide(&file("x", 1, days(1)), now()), Decision::None);
    assert!(rules.remotes().is_empty());
    let text = rules.explain(&file("x", 1, days(1)), now()).to_string();
    assert!(text.contains("(no rules)"), "{text}");
}

#[test]
fn remotes_lists_every_target_once() {
    let rules = set(&[
        "pin a/**",
        "b/** -> b2,s3:GLACIER",
        "c/** -> s3",
        "* -> azure",
    ]);
    assert_eq!(
        rules.remotes().into_iter().collect::<Vec<_>>(),
        vec!["azure", "b2", "s3"]
    );
    assert_eq!(rules.len(), 4);
}

// ------------------------------------------------------------ explanations

#[test]
fn explanation_text() {
    let rules = RuleSet::new(vec![
        (1, rule("pin accounting/keep/**")),
        (2, rule("accounting/* older 365d -> cloud")),
    ]);
    let f = file("accounting/2019/ledger.xlsx", 10, days(412));
    let e = rules.explain(&f, now());
    assert_eq!(e.decision, rules.decide(&f, now()));
    assert_eq!(
        e.to_string(),
        "accounting/2019/ledger.xlsx\n\
         \x20 #1 pin accounting/keep/**            not covered (pattern does not match the path or a parent)\n\
         \x20 #2 accounting/* older 365d -> cloud  covered through accounting/2019; older 365d: yes (modified 412 days ago)  => MIGRATE to cloud\n\
         decision: migrate to cloud (rule #2)"
    );
}

#[test]
fn explanation_verdicts() {
    let rules = set(&[
        "* larger 1GiB -> big",
        "docs/** -> b2,s3",
        "docs/old/** -> s3",
        "pin docs/old/keep.txt",
    ]);
    let e = rules.explain(&file("docs/old/keep.txt", 10, days(3)), now());
    let verdicts: Vec<&Verdict> = e.rules.iter().map(|r| &r.verdict).collect();
    assert_eq!(
        verdicts,
        vec![
            &Verdict::NoMatch,
            &Verdict::Overridden { by_rule: 4 },
            &Verdict::Overridden { by_rule: 4 },
            &Verdict::Pin,
        ]
    );
    assert_eq!(e.decision, Decision::Pin { rule_id: 4 });
    let text = e.to_string();
    assert!(text.contains("=> matches, but pin rule #4 wins"), "{text}");
    assert!(
        text.contains("larger 1GiB: no (size 10 bytes)  => no match"),
        "{text}"
    );
    assert!(
        text.ends_with("decision: pin: never migrate (rule #4)"),
        "{text}"
    );
    // The pin covers the path itself, not through a parent.
    assert_eq!(e.rules[3].covered_through, None);

    let e = rules.explain(&file("docs/old/a.txt", 10, days(3)), now());
    assert_eq!(
        e.rules[1].verdict,
        Verdict::Migrate {
            targets: vec![target("b2", None), target("s3", None)]
        }
    );
    assert_eq!(e.rules[2].verdict, Verdict::Overridden { by_rule: 2 });
    assert_eq!(e.rules[3].verdict, Verdict::NotCovered);
    assert!(e.rules[3].checks.is_empty());
    let text = e.to_string();
    assert!(text.contains("=> MIGRATE to b2 and s3"), "{text}");
    assert!(
        text.contains("=> matches, but rule #2 comes first"),
        "{text}"
    );
    assert!(
        text.ends_with("decision: migrate to b2 and s3 (mirrors; rule #2)"),
        "{text}"
    );

    let e = rules.explain(&file("photos/a.jpg", 10, days(3)), now());
    assert!(
        e.to_string()
            .ends_with("decision: none (no rule matches; the file stays local)")
    );
}

#[test]
fn explain_agrees_with_decide() {
    let rules = set(&[
        "a/** older 10d -> x",
        "pin a/keep/**",
        "**/*.iso larger 1MB -> y",
        "* unaccessed 30d smaller 1KB -> z",
        "b/* newer 5d -> w",
    ]);
    let slow = rules.clone().without_combined_matcher();
    let paths = [
        "a/1",
        "a/keep/1",
        "a/z.iso",
        "b/c/d.iso",
        "b/q",
        "c",
        "keep/a/1",
    ];
    for path in paths {
        for size in [0, 999, 5_000_000] {
            for age in [1, 7, 20, 60] {
                for read in [None, Some(2), Some(100)] {
                    let mut f = file(path, size, days(age));
                    f.last_access = read.map(|d| ago(days(d)));
                    let e = rules.explain(&f, now());
                    assert_eq!(e.decision, rules.decide(&f, now()), "{f:?}");
                    assert_eq!(e.decision, slow.decide(&f, now()), "{f:?}");
                    let deciders = e
                        .rules
                        .iter()
                        .filter(|r| matches!(r.verdict, Verdict::Pin | Verdict::Migrate { .. }))
                        .count();
                    assert_eq!(deciders, usize::from(e.decision != Decision::None));
                    for (r, (_, rule)) in e.rules.iter().zip(rules.rules()) {
                        assert_eq!(r.covered, rule.covers(f.path));
                        let matched = !matches!(r.verdict, Verdict::NotCovered | Verdict::NoMatch);
                        assert_eq!(matched, rule.matches(&f, now()), "{} {f:?}", rule.text);
                    }
                }
            }
        }
    }
}

#[test]
fn decisions_and_explanations_serialise_to_json() {
    let d = serde_json::to_value(migrate(2, &["cloud"])).unwrap();
    assert_eq!(
        d,
        serde_json::json!({"decision": "migrate", "rule_id": 2,
            "targets": [{"remote": "cloud", "storage_class": null}]})
    );
    assert_eq!(
        serde_json::to_value(Decision::Pin { rule_id: 1 }).unwrap(),
        serde_json::json!({"decision": "pin", "rule_id": 1})
    );
    assert_eq!(
        serde_json::to_value(Decision::None).unwrap(),
        serde_json::json!({"decision": "none"})
    );
    let rules = set(&["pin a/**", "* older 1d -> b2"]);
    let e = serde_json::to_value(rules.explain(&file("b/c", 1, days(2)), now())).unwrap();
    assert_eq!(
        e["rules"][0]["verdict"],
        serde_json::json!({"verdict": "not_covered"})
    );
    assert_eq!(e["rules"][1]["checks"][0]["condition"], "older 1d");
    assert_eq!(e["rules"][1]["covered_through"], "b");
    assert_eq!(e["decision"]["rule_id"], 2);
    assert_eq!(
        serde_json::to_value(rule("/x  -> b2")).unwrap(),
        serde_json::json!("x -> b2")
    );
}

// ------------------------------------------------------------- round trip

#[test]
fn canonical_text_round_trips() {
    for text in [
        "accounting/* older 365d -> cloud",
        "  /accounting/*   older 1y ->cloud  ",
        "* larger 1GiB unaccessed 90d -> b2",
        "projects/**/*.iso -> s3:GLACIER_IR",
        "pin legal/**",
        "pin   \"my docs/*\"",
        "\"my docs\" newer 12w -> a,b:C,c-d_e:F-1",
        "x smaller 1.5GB larger 1536 -> b2",
        "x older 36h -> b2",
        "\"pin\" -> b2",
        "\"older\" older 1d -> b2",
        "\"back\\\\slash \\\"quoted\\\"\" -> b2",
        "{a,b}/** -> b2",
        "\"a->b\" -> b2",
        "é/ü/** older 6m -> b2",
        "x newer 1y older 6m -> b2",
    ] {
        let r = rule(text);
        let again = parse(&r.text).unwrap_or_else(|e| panic!("{:?}:\n{e}", r.text));
        assert_eq!(again, r, "{text}");
        assert_eq!(again.text, r.text);
        assert_eq!(r.to_string(), r.text);
        assert_eq!(text.parse::<Rule>().unwrap(), r);
    }
}

// ----------------------------------------------------------------- errors

/// Asserts that `text` fails with the caret at `column` under `token` and a
/// message containing `message`.
#[track_caller]
fn fails(text: &str, column: usize, token: &str, message: &str) {
    let e = parse(text).expect_err(text);
    assert_eq!(
        (e.position, e.token.as_str()),
        (column, token),
        "{text:?}: {}",
        e.message
    );
    assert!(
        e.message.contains(message),
        "{text:?}: message {:?} lacks {message:?}",
        e.message
    );
    assert_eq!(e.rule, text);
}

#[test]
fn error_positions_and_messages() {
    fails(
        "accounting/* older 365 -> cloud",
        19,
        "365",
        "expected a duration like 30d, 12w, 6m or 1y after 'older', found '365'",
    );
    fails("", 0, "", "empty rule");
    fails("   ", 3, "", "empty rule");
    fails(
        "accounting/* older 365d",
        23,
        "",
        "missing '->' and a target",
    );
    fails(
        "accounting/* bigger 1GB -> b2",
        13,
        "bigger",
        "unknown condition 'bigger' (did you mean 'larger'?); expected one of: older, newer, unaccessed, larger, smaller, or '->'",
    );
    fails(
        "x unacessed 3d -> b2",
        2,
        "unacessed",
        "(did you mean 'unaccessed'?)",
    );
    fails(
        "x zzz 3d -> b2",
        2,
        "zzz",
        "unknown condition 'zzz'; expected one of",
    );
    fails(
        "x older than 3d -> b2",
        8,
        "than",
        "without 'than', e.g. 'older 30d'",
    );
    fails(
        "x older 1y6m -> b2",
        8,
        "1y6m",
        "a duration has one unit; write 545d instead",
    );
    fails("x older 30days -> b2", 8, "30days", "(write 30d)");
    fails(
        "x older 30d older 60d -> b2",
        12,
        "older",
        "'older' is given twice (first at column 2)",
    );
    fails("x older 0d -> b2", 8, "0d", "must be greater than zero");
    fails(
        "x older -5d -> b2",
        8,
        "-5d",
        "durations cannot be negative",
    );
    fails(
        "x older 30x -> b2",
        8,
        "30x",
        "(units are h (hours), d (days)",
    );
    fails("x older 2D -> b2", 8, "2D", "units are lower-case");
    fails("x older 1.5d -> b2", 8, "1.5d", "whole numbers");
    fails("x older -> b2", 8, "->", "after 'older', found '->'");
    fails("x newer", 7, "", "after 'newer', found end of rule");
    fails(
        "x larger lots -> b2",
        9,
        "lots",
        "expected a size like 100MB or 1GiB after 'larger', found 'lots'",
    );
    fails(
        "x larger 5parsecs -> b2",
        9,
        "5parsecs",
        "unknown unit `parsecs`",
    );
    fails("x larger -5MB -> b2", 9, "-5MB", "sizes cannot be negative");
    fails(
        "x larger 100 MB -> b2",
        13,
        "MB",
        "write sizes without a space, e.g. '100MB'",
    );
    fails(
        "a[ -> b2",
        0,
        "a[",
        "invalid pattern: unclosed character class",
    );
    fails(
        "a[z-a] -> b2",
        0,
        "a[z-a]",
        "invalid pattern: invalid range",
    );
    fails(
        "{a,b -> b2",
        0,
        "{a,b",
        "invalid pattern: unclosed alternate group",
    );
    fails("/ -> b2", 0, "/", "the pattern is empty; use *");
    fails("../etc/* -> b2", 0, "../etc/*", "'..' component");
    fails("-> b2", 0, "->", "missing pattern before '->'");
    fails(
        "older 30d -> b2",
        0,
        "older",
        "missing pattern: a rule starts with the files it applies to, e.g. '* older 30d -> b2'",
    );
    fails(
        "x older 1d ->",
        13,
        "",
        "expected a remote name after '->', found end of rule",
    );
    fails(
        "x -> b2,",
        8,
        "",
        "expected a remote name after ',', found end of rule",
    );
    fails("x -> b2,,s3", 8, ",", "expected a remote name after ','");
    fails(
        "x -> b2 s3",
        8,
        "s3",
        "separate mirror targets with commas: 'b2,s3'",
    );
    fails("x -> b2 older 3d", 8, "older", "conditions go before '->'");
    fails("x -> b2 -> s3", 8, "->", "unexpected second '->'");
    fails(
        "x -> b2!",
        7,
        "!",
        "invalid character '!' in remote name 'b2!'",
    );
    fails("x -> s3:", 5, "s3:", "missing storage class after ':'");
    fails(
        "x -> :GLACIER",
        5,
        ":GLACIER",
        "missing remote name before ':'",
    );
    fails(
        "x -> s3:A:B",
        9,
        ":",
        "invalid character ':' in storage class 'A:B'",
    );
    fails(
        "x -> b2,s3,b2:COLD",
        11,
        "b2:COLD",
        "remote 'b2' is listed twice",
    );
    fails(
        "my docs/* -> b2",
        3,
        "docs/*",
        "quote a pattern that contains spaces",
    );
    fails(
        r#""my docs/* -> b2"#,
        0,
        r#""my docs/* -> b2"#,
        "unterminated quote",
    );
    fails(
        r#"x "y" -> b2"#,
        2,
        r#""y""#,
        "only the pattern may be quoted",
    );
    fails(
        "x Older 3d -> b2",
        2,
        "Older",
        "keywords are lower-case, write 'older'",
    );
    fails("x 30d -> b2", 2, "30d", "a value needs a keyword before it");
    fails("x older 3d pin -> b2", 11, "pin", "'pin' must come first");
}

#[test]
fn pin_errors() {
    fails(
        "pin",
        3,
        "",
        "expected a pattern after 'pin', found end of rule",
    );
    fails(
        "pin -> b2",
        4,
        "->",
        "expected a pattern after 'pin', found '->'",
    );
    fails(
        "pin legal/** -> b2",
        13,
        "-> b2",
        "a pin rule keeps files local, so it takes no targets",
    );
    fails(
        "pin legal/** older 1d",
        13,
        "older 1d",
        "a pin rule takes no conditions",
    );
    fails(
        "pin my docs",
        7,
        "docs",
        "quote a pattern that contains spaces",
    );
    fails("pin older 30d -> b2", 10, "30d -> b2", "quote it: \"pin\"");
    fails("pin a[", 4, "a[", "invalid pattern");
    fails(
        "PIN legal/**",
        0,
        "PIN",
        "keywords are lower-case: write 'pin PATTERN'",
    );
    assert_eq!(rule("PIN -> b2").pattern(), "PIN");
}

#[test]
fn unsatisfiable_conditions_are_errors() {
    fails(
        "x older 30d newer 10d -> b2",
        12,
        "newer 10d",
        "'older 30d' and 'newer 10d' can never both hold",
    );
    fails(
        "x newer 10d older 10d -> b2",
        12,
        "older 10d",
        "can never both hold",
    );
    fails(
        "x unaccessed 30d newer 7d -> b2",
        17,
        "newer 7d",
        "'unaccessed 30d' and 'newer 7d' can never both hold",
    );
    fails(
        "x larger 1GB smaller 1GB -> b2",
        13,
        "smaller 1GB",
        "'larger 1GB' and 'smaller 1GB' can never both hold",
    );
    fails(
        "x larger 10 smaller 11 -> b2",
        12,
        "smaller 11",
        "can never both hold",
    );
    fails(
        "x smaller 0 -> b2",
        2,
        "smaller 0",
        "'smaller 0B' can never hold",
    );
    // Satisfiable neighbours parse.
    rule("x older 10d newer 11d -> b2");
    rule("x larger 10 smaller 12 -> b2");
    rule("x unaccessed 7d newer 30d -> b2");
    rule("x smaller 1 -> b2");
}

#[test]
fn error_columns_count_characters_not_bytes() {
    fails("données/* older 3q -> b2", 16, "3q", "expected a duration");
}

#[test]
fn error_display_shows_the_rule_a_caret_line_and_the_message() {
    let e = parse("accounting/* older 365 -> cloud").unwrap_err();
    assert_eq!(
        e.to_string(),
        "accounting/* older 365 -> cloud\n\
         \x20                  ^^^\n\
         expected a duration like 30d, 12w, 6m or 1y after 'older', found '365'"
    );
    // Missing things get one caret just past the end; tabs are shown as
    // spaces so the caret lines up.
    let e = parse("x\tolder 1d").unwrap_err();
    assert_eq!(
        e.to_string().lines().take(2).collect::<Vec<_>>(),
        vec!["x older 1d", "          ^"]
    );
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(json["position"], 10);
}

/// Random rules from a vocabulary of valid and invalid pieces: parsing never
/// panics, errors point inside (or just past) the rule, and every rule that
/// parses round-trips through its canonical text.
#[test]
fn random_rules_never_panic_and_round_trip() {
    const PIECES: [&str; 40] = [
        "pin",
        "older",
        "newer",
        "unaccessed",
        "larger",
        "smaller",
        "->",
        "-",
        ">",
        ",",
        ":",
        "\"",
        "\\",
        " ",
        " ",
        " ",
        "\t",
        "*",
        "**",
        "/",
        "a",
        "é",
        "{a,b}",
        "[a-c]",
        "?",
        "30d",
        "12w",
        "6m",
        "1y",
        "36h",
        "0d",
        "100MB",
        "1GiB",
        "1.5KiB",
        "b2",
        "s3:GLACIER",
        "x y",
        "..",
        "than",
        "7",
    ];
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut parsed = 0;
    for _ in 0..5_000 {
        let len = 1 + next() % 10;
        let text: String = (0..len)
            .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
            .collect();
        match parse(&text) {
            Ok(r) => {
                parsed += 1;
                assert_eq!(parse(&r.text).as_ref(), Ok(&r), "{text:?} -> {:?}", r.text);
                let _ = r.covers(Path::new("a/b"));
            }
            Err(e) => {
                assert!(e.position <= text.chars().count(), "{text:?}: {e:?}");
                assert!(!e.message.is_empty());
                let _ = e.to_string();
            }
        }
    }
    assert!(parsed > 50, "only {parsed} random rules parsed");
}

/// Issue 15: a 20,000-character pattern took 8 s per `rule test`. Patterns
/// are limited to MAX_PATTERN_CHARS; a longer one is refused at once with
/// the position, and the error quotes an excerpt, not the whole rule.
#[test]
fn overlong_patterns_are_refused_quickly_with_the_position() {
    let max = pattern::MAX_PATTERN_CHARS;
    for (text, at) in [
        (format!("{} -> cloud", "a".repeat(20_000)), max),
        (format!("\"{}\" -> cloud", "b".repeat(max + 1)), max + 1),
        (format!("pin {}", "*c".repeat(50_000)), 4 + max),
    ] {
        let started = std::time::Instant::now();
        let e = parse(&text).unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(e.position, at, "{}", e.message);
        assert!(
            e.message.contains("limited to 4096 characters"),
            "{}",
            e.message
        );
        let shown = e.to_string();
        assert!(shown.len() < 600, "{} bytes: {shown}", shown.len());
        let lines: Vec<&str> = shown.lines().collect();
        let caret = lines[1].chars().position(|c| c == '^').unwrap();
        assert_eq!(lines[0].chars().nth(caret), text.chars().nth(at), "{shown}");
    }
    // At the limit: accepted, and it matches.
    let long = "d".repeat(max - 2);
    let r = parse(&format!("{long}/* -> cloud")).unwrap();
    let p = format!("{long}/x");
    assert!(r.covers(Path::new(&p)));
}
