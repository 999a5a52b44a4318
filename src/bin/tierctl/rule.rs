//! `tierctl rule add|list|rm|move|test`: the tiering rules.
//!
//! Rules are stored in the catalog. Changes go through the daemon when it
//! runs; when it does not, tierctl opens the catalog read-write itself (the
//! daemon holds an exclusive lock on it while running, so the two cannot
//! race). Either way the change is made by `tierfs::rules::edit`. `list`,
//! `test` and `add --dry-run` only read the catalog; the dry run's figures
//! come from `tierfs::rules::impact`, as `cost-report --what-if`'s do. This
//! file checks arguments and words the results.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow};
use clap::{Args, Subcommand};
use rusqlite::Connection;
use serde::Serialize;
use tierfs::catalog::tiering::{self, RuleRow};
use tierfs::catalog::{Catalog, CatalogOptions, path_key};
use tierfs::config::Config;
use tierfs::control::{ErrorKind, Request, RuleAdded, RuleMoved, RuleRemoved};
use tierfs::rules::edit::{self, EditError, PlacedRule};
use tierfs::rules::impact::{self, DryRun, Impact, Tally};
use tierfs::rules::{self, Decision, Explanation, FileFacts, Rule, RuleSet};

use crate::daemon::{self, Answer, CHANGE_TIMEOUT, write_json};
use crate::table::{Align, Table, write_fields};
use crate::{Outcome, UsageError, human, paths};

#[derive(Debug, Subcommand)]
pub enum RuleCommand {
    /// Add a rule (checked first; a bad rule is reported and nothing is saved)
    ///
    /// RULE is one line of the rule language (see docs/rules.md):
    ///
    ///   PATTERN [older D] [newer D] [unaccessed D] [larger S] [smaller S] -> REMOTE[:CLASS][,REMOTE…]
    ///   pin PATTERN
    ///
    /// Quote it: it contains spaces, globs and `->`, which the shell would
    /// otherwise interpret. The rule is stored in canonical form. Every remote
    /// it names must be a [remote.NAME] section of the config.
    ///
    /// Rules are evaluated in order and the first match wins, except that a
    /// matching `pin` rule always wins. The new rule goes last unless
    /// --position says otherwise.
    ///
    /// With --dry-run, nothing is saved: the rules, with the new one inserted,
    /// are evaluated against the catalog and tierctl reports how many files
    /// and bytes would migrate, and to which remotes. This reads the catalog
    /// only and works while the daemon is down.
    ///
    /// Without --dry-run the rule is added through the daemon, or directly to
    /// the catalog when the daemon is not running (it applies from its next
    /// start).
    ///
    /// Exits 2 if the rule is invalid or names an unknown remote.
    ///
    /// Examples:
    ///   tierctl rule add 'accounting/* older 365d -> cloud'
    ///   tierctl rule add --dry-run '* larger 1GiB unaccessed 90d -> b2'
    ///   tierctl rule add --position 1 'pin legal/**'
    ///   tierctl rule add --json 'media/** older 30d -> b2,s3west' | jq .id
    #[command(verbatim_doc_comment)]
    Add(AddArgs),

    /// List the rules in evaluation order
    ///
    /// Shows each rule's id (what `rule rm` and `rule move` take), its
    /// position and its text. Rules the daemon cannot use (text that no
    /// longer parses, remotes missing from the config) are flagged on stderr.
    /// Reads the catalog only; works while the daemon is down.
    ///
    /// Examples:
    ///   tierctl rule list
    ///   tierctl rule list --json | jq '.rules[].text'
    #[command(verbatim_doc_comment)]
    List {
        /// Print one JSON object instead of a table
        #[arg(long)]
        json: bool,
    },

    /// Remove a rule by id
    ///
    /// The ids are shown by `tierctl rule list`. Files already migrated stay
    /// where they are. Goes through the daemon, or straight to the catalog
    /// when the daemon is not running. Exits 1 if there is no such rule.
    ///
    /// Examples:
    ///   tierctl rule rm 3
    #[command(verbatim_doc_comment, visible_alias = "remove")]
    Rm {
        /// The rule's id (from `tierctl rule list`)
        #[arg(value_name = "ID", value_parser = parse_id)]
        id: i64,
    },

    /// Move a rule to another position
    ///
    /// POSITION is 1-based; a position past the end moves the rule last.
    /// Earlier rules win, except that pins always win. Goes through the
    /// daemon, or straight to the catalog when the daemon is not running.
    /// Exits 1 if there is no such rule.
    ///
    /// Examples:
    ///   tierctl rule move 3 1
    #[command(verbatim_doc_comment, name = "move")]
    Move {
        /// The rule's id (from `tierctl rule list`)
        #[arg(value_name = "ID", value_parser = parse_id)]
        id: i64,
        /// The new 1-based position
        #[arg(value_name = "POSITION", value_parser = parse_position)]
        position: usize,
    },

    /// Explain which rule applies to a file, and why
    ///
    /// Evaluates every rule against the file's catalog entry (size,
    /// modification time, last read through the mount) and shows, rule by
    /// rule, whether its pattern covers the file and which conditions hold,
    /// then the decision. Also says when the file is pinned or already cold.
    ///
    /// PATH is relative to the mount root (not to the current directory), or
    /// an absolute path under the mountpoint or the hot dir. A file not yet in
    /// the catalog is judged on the hot dir's size and modification time.
    /// Reads the catalog only; works while the daemon is down.
    ///
    /// Examples:
    ///   tierctl rule test accounting/2019/ledger.xlsx
    ///   tierctl rule test /mnt/data/media/film.mkv --json | jq .explanation.decision
    #[command(verbatim_doc_comment)]
    Test {
        /// The file, relative to the mount root or absolute under the mountpoint or hot dir
        #[arg(value_name = "PATH")]
        path: PathBuf,
        /// Print one JSON object instead of text
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The rule, quoted, e.g. 'accounting/* older 365d -> cloud'
    #[arg(value_name = "RULE")]
    pub rule: String,
    /// Insert at this 1-based position (default: last)
    #[arg(long, value_name = "N", value_parser = parse_position)]
    pub position: Option<usize>,
    /// Save nothing; report what the rules would migrate with this one added
    #[arg(long)]
    pub dry_run: bool,
    /// Print one JSON object instead of text
    #[arg(long)]
    pub json: bool,
}

/// A rule id: `3` or `#3`.
fn parse_id(s: &str) -> Result<i64, String> {
    let digits = s.trim().trim_start_matches('#');
    match digits.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(format!(
            "`{s}` is not a rule id (a positive number, see `tierctl rule list`)"
        )),
    }
}

/// A 1-based position.
fn parse_position(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(p) if p >= 1 => Ok(p),
        _ => Err(format!("`{s}` is not a position (1 is the first rule)")),
    }
}

/// Runs one `tierctl rule …` command.
pub fn run(
    config: &Config,
    command: &RuleCommand,
    out: &mut impl Write,
) -> anyhow::Result<Outcome> {
    match command {
        RuleCommand::Add(args) if args.dry_run => {
            let rule = checked_rule(config, &args.rule)?;
            dry_run(config, rule, args.position, args.json, out)
        }
        RuleCommand::Add(args) => add(config, args, out),
        RuleCommand::List { json } => list(config, *json, out),
        RuleCommand::Rm { id } => remove(config, *id, out),
        RuleCommand::Move { id, position } => move_rule(config, *id, *position, out),
        RuleCommand::Test { path, json } => test(config, path, *json, out),
    }
}

// ------------------------------------------------------------ checking

/// Parses `text` and checks that its remotes are configured. Both failures
/// are usage errors (exit 2).
pub(crate) fn checked_rule(config: &Config, text: &str) -> anyhow::Result<Rule> {
    let rule = rules::parse(text)
        .map_err(|e| UsageError(format!("invalid rule:\n{}", indent(&e.to_string()))))?;
    if let Some(problem) = remote_problem(config, &rule) {
        return Err(UsageError(format!("{problem}; nothing was saved")).into());
    }
    Ok(rule)
}

/// Every line of `text` indented by two spaces (keeps a caret line aligned
/// under the line above it).
fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Why the daemon could not migrate with `rule`: a remote it names is not in
/// the config.
fn remote_problem(config: &Config, rule: &Rule) -> Option<String> {
    let missing: Vec<&str> = rule
        .targets()
        .iter()
        .map(|t| t.remote.as_str())
        .filter(|name| !config.remotes.contains_key(*name))
        .collect();
    if missing.is_empty() {
        return None;
    }
    let names: Vec<String> = missing.iter().map(|n| format!("`{n}`")).collect();
    let configured = if config.remotes.is_empty() {
        "no remotes are configured".to_string()
    } else {
        let names: Vec<&str> = config.remotes.keys().map(String::as_str).collect();
        format!("configured remotes: {}", names.join(", "))
    };
    Some(format!(
        "rule `{}` migrates to remote {}, which {} not configured in {} ({configured}; add a [remote.NAME] section)",
        rule.text,
        names.join(" and "),
        if missing.len() == 1 { "is" } else { "are" },
        config.source.display()
    ))
}

/// The stored rules parsed, skipping (and reporting) any that no longer
/// parse, exactly as the daemon does.
pub(crate) fn parsed_rules(rows: &[RuleRow]) -> Vec<(i64, Rule)> {
    let stored = edit::parse_stored(rows);
    for (id, e) in &stored.broken {
        eprintln!(
            "warning: rule #{id} does not parse and is ignored: {}",
            e.message
        );
    }
    stored.usable
}

pub(crate) fn stored_rules(
    conn: Option<&Connection>,
    config: &Config,
) -> anyhow::Result<Vec<RuleRow>> {
    match conn {
        None => Ok(Vec::new()),
        Some(conn) => tiering::rules(conn)
            .with_context(|| format!("cannot read the rules from {}", config.catalog.display())),
    }
}

// ------------------------------------------------------------ add / rm / move

/// How a change was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Via {
    /// Through the running daemon.
    Daemon,
    /// Directly in the catalog (daemon not running).
    Catalog,
}

/// Runs `change` on the catalog opened read-write. Only when the daemon is
/// not running (it holds the catalog's lock otherwise).
fn direct(
    config: &Config,
    change: impl FnOnce(&Catalog) -> Result<PlacedRule, EditError>,
) -> anyhow::Result<PlacedRule> {
    let catalog = Catalog::open(&config.catalog, CatalogOptions::default()).with_context(|| {
        format!(
            "the tierfs daemon is not running (no answer on {}), so tierctl tried to change the catalog directly",
            config.control_socket.display()
        )
    })?;
    let result = change(&catalog);
    let closed = catalog.close();
    let placed = result.map_err(|e| match e {
        EditError::NotFound { id } => missing_rule(id),
        other => other.into(),
    })?;
    closed?;
    Ok(placed)
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

#[derive(Serialize)]
struct AddedJson {
    id: i64,
    position: usize,
    rules: usize,
    text: String,
    saved_via: Via,
}

fn add(config: &Config, args: &AddArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let rule = checked_rule(config, &args.rule)?;
    let request = Request::RuleAdd {
        text: rule.text.clone(),
        position: args.position,
    };
    let (placed, via) = match daemon::ask::<RuleAdded>(config, &request, CHANGE_TIMEOUT)? {
        Some(RuleAdded(placed)) => (placed, Via::Daemon),
        None => {
            let placed = direct(config, |c| edit::add(c, &rule, args.position, now_ns()))?;
            (placed, Via::Catalog)
        }
    };
    let PlacedRule {
        id,
        position,
        rules,
        ..
    } = placed;
    if args.json {
        write_json(
            out,
            &AddedJson {
                id,
                position,
                rules,
                text: rule.text,
                saved_via: via,
            },
        )?;
        return Ok(Outcome::Success);
    }
    writeln!(
        out,
        "added rule #{id} at position {position} of {rules}: {}",
        rule.text
    )?;
    if via == Via::Catalog {
        writeln!(
            out,
            "the daemon is not running: the rule was saved in the catalog and applies once it starts"
        )?;
    }
    Ok(Outcome::Success)
}

fn remove(config: &Config, id: i64, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let request = Request::RuleRemove { id };
    let (removed, via) = match daemon::try_ask::<RuleRemoved>(config, &request, CHANGE_TIMEOUT)? {
        Answer::Done(RuleRemoved(removed)) => (removed, Via::Daemon),
        Answer::Refused(e) if e.kind == ErrorKind::NotFound => return Err(missing_rule(id)),
        Answer::Refused(e) => return Err(daemon::refused(e)),
        Answer::NotRunning => {
            require_catalog_for(config, id)?;
            (direct(config, |c| edit::remove(c, id))?, Via::Catalog)
        }
    };
    writeln!(out, "removed rule #{id}: {}", removed.text)?;
    if via == Via::Catalog {
        writeln!(
            out,
            "the daemon is not running: the change applies once it starts"
        )?;
    }
    Ok(Outcome::Success)
}

fn move_rule(
    config: &Config,
    id: i64,
    position: usize,
    out: &mut impl Write,
) -> anyhow::Result<Outcome> {
    let request = Request::RuleMove { id, position };
    let (moved, via) = match daemon::try_ask::<RuleMoved>(config, &request, CHANGE_TIMEOUT)? {
        Answer::Done(RuleMoved(moved)) => (moved, Via::Daemon),
        Answer::Refused(e) if e.kind == ErrorKind::NotFound => return Err(missing_rule(id)),
        Answer::Refused(e) => return Err(daemon::refused(e)),
        Answer::NotRunning => {
            require_catalog_for(config, id)?;
            (
                direct(config, |c| edit::move_to(c, id, position))?,
                Via::Catalog,
            )
        }
    };
    writeln!(
        out,
        "moved rule #{id} to position {} of {}: {}",
        moved.position, moved.rules, moved.text
    )?;
    if via == Via::Catalog {
        writeln!(
            out,
            "the daemon is not running: the change applies once it starts"
        )?;
    }
    Ok(Outcome::Success)
}

fn missing_rule(id: i64) -> anyhow::Error {
    anyhow!("there is no rule #{id} (see `tierctl rule list`)")
}

/// Without a catalog there are no rules: say so rather than create one.
fn require_catalog_for(config: &Config, id: i64) -> anyhow::Result<()> {
    if config.catalog.exists() {
        return Ok(());
    }
    Err(anyhow!(
        "there is no rule #{id}: the catalog {} does not exist yet",
        config.catalog.display()
    ))
}

// ------------------------------------------------------------ list

#[derive(Serialize)]
struct ListJson {
    catalog: tierfs::escape::ExactPath,
    catalog_exists: bool,
    rules: Vec<RuleJson>,
}

#[derive(Serialize)]
struct RuleJson {
    id: i64,
    position: i64,
    text: String,
    /// Why the daemon cannot use this rule, if it cannot.
    problem: Option<String>,
}

fn list(config: &Config, json: bool, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let conn = paths::open_catalog(config)?;
    let rows = stored_rules(conn.as_ref(), config)?;
    let rules: Vec<RuleJson> = rows
        .into_iter()
        .map(|row| {
            let problem = match rules::parse(&row.text) {
                Err(e) => Some(format!("does not parse, so it is ignored: {}", e.message)),
                Ok(rule) => remote_problem(config, &rule),
            };
            RuleJson {
                id: row.id,
                position: row.position,
                text: row.text,
                problem,
            }
        })
        .collect();
    if json {
        write_json(
            out,
            &ListJson {
                catalog: daemon::exact(&config.catalog),
                catalog_exists: conn.is_some(),
                rules,
            },
        )?;
        return Ok(Outcome::Success);
    }
    if rules.is_empty() {
        let why = if conn.is_none() {
            format!(
                " (the catalog {} does not exist yet)",
                config.catalog.display()
            )
        } else {
            String::new()
        };
        writeln!(out, "no rules{why}: nothing is migrated")?;
        writeln!(
            out,
            "add one with: tierctl rule add 'PATTERN older 90d -> REMOTE'"
        )?;
        return Ok(Outcome::Success);
    }
    let mut table = Table::new(&[
        ("ID", Align::Right),
        ("POS", Align::Right),
        ("RULE", Align::Left),
    ]);
    for rule in &rules {
        table.row(vec![
            rule.id.to_string(),
            rule.position.to_string(),
            rule.text.clone(),
        ]);
    }
    table.write(out)?;
    for rule in &rules {
        if let Some(problem) = &rule.problem {
            eprintln!("warning: rule #{}: {problem}", rule.id);
        }
    }
    Ok(Outcome::Success)
}

// ------------------------------------------------------------ dry run

/// How a tally reads in text: `3 files (1.2 MiB)`.
fn describe(tally: &Tally) -> String {
    format!(
        "{} {} ({})",
        human::count(tally.files),
        if tally.files == 1 { "file" } else { "files" },
        human::bytes(tally.bytes)
    )
}

/// Measures what inserting `rule` at `position` (1-based; default last)
/// would change, exactly as `rule add --dry-run` reports it. `conn` is a
/// read-only catalog connection (`None`: no catalog yet, no files).
pub(crate) fn measure(
    config: &Config,
    conn: Option<&Connection>,
    rule: &Rule,
    position: Option<usize>,
) -> anyhow::Result<DryRun> {
    let rows = stored_rules(conn, config)?;
    let current = parsed_rules(&rows);
    impact::measure(conn, &current, rule, position, SystemTime::now())
        .with_context(|| format!("cannot read the files in {}", config.catalog.display()))
}

#[derive(Serialize)]
struct DryRunJson<'a> {
    rule: &'a str,
    pin: bool,
    /// Where the rule would go (1-based) and how many rules there would be.
    position: usize,
    rules: usize,
    catalog: tierfs::escape::ExactPath,
    catalog_exists: bool,
    saved: bool,
    #[serde(flatten)]
    impact: &'a Impact,
}

fn dry_run(
    config: &Config,
    rule: Rule,
    position: Option<usize>,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<Outcome> {
    let conn = paths::open_catalog(config)?;
    let DryRun {
        impact,
        position,
        rules: total,
    } = measure(config, conn.as_ref(), &rule, position)?;
    if json {
        write_json(
            out,
            &DryRunJson {
                rule: &rule.text,
                pin: rule.is_pin(),
                position,
                rules: total,
                catalog: daemon::exact(&config.catalog),
                catalog_exists: conn.is_some(),
                saved: false,
                impact: &impact,
            },
        )?;
        return Ok(Outcome::Success);
    }
    let catalog = match &conn {
        Some(_) => format!(
            "{} ({} to consider: hot or premigrated, not pinned)",
            config.catalog.display(),
            describe(&impact.considered)
        ),
        None => format!(
            "{} (does not exist yet: no files)",
            config.catalog.display()
        ),
    };
    let this_rule = if rule.is_pin() {
        format!(
            "covers {} that stay local; {} of them would otherwise migrate",
            describe(&impact.decided_by_rule),
            describe(&impact.no_longer_migrating)
        )
    } else {
        format!("would migrate {}", describe(&impact.decided_by_rule))
    };
    let mut fields = vec![
        ("rule", rule.text.clone()),
        ("position", format!("{position} of {total}")),
        ("catalog", catalog),
        ("this rule", this_rule),
        (
            "all rules",
            format!(
                "would migrate {}; without this rule {}",
                describe(&impact.after),
                describe(&impact.before)
            ),
        ),
    ];
    if impact.newly_migrating.files > 0 || impact.no_longer_migrating.files > 0 {
        fields.push((
            "change",
            format!(
                "+{} newly migrating, -{} no longer migrating",
                describe(&impact.newly_migrating),
                describe(&impact.no_longer_migrating)
            ),
        ));
    }
    if impact.retargeted.files > 0 {
        fields.push((
            "retargeted",
            format!("{} go to other remotes", describe(&impact.retargeted)),
        ));
    }
    write_fields(out, &fields)?;
    if !impact.after_by_target.is_empty() {
        writeln!(out)?;
        let mut table = Table::new(&[
            ("TARGET", Align::Left),
            ("FILES", Align::Right),
            ("BYTES", Align::Right),
        ]);
        for (target, tally) in &impact.after_by_target {
            table.row(vec![
                target.clone(),
                human::count(tally.files),
                human::bytes(tally.bytes),
            ]);
        }
        table.write(out)?;
    }
    writeln!(out)?;
    writeln!(out, "dry run: nothing was saved")?;
    Ok(Outcome::Success)
}

// ------------------------------------------------------------ test

/// The file as the rules see it, and where the facts came from.
struct Subject {
    path: PathBuf,
    size: u64,
    mtime_ns: i64,
    last_access_ns: Option<i64>,
    /// `None` when the file is not in the catalog.
    state: Option<String>,
    pinned: bool,
}

#[derive(Serialize)]
struct TestJson<'a> {
    path: tierfs::escape::ExactPath,
    in_catalog: bool,
    state: Option<&'a str>,
    pinned: bool,
    size: u64,
    mtime_ns: i64,
    last_access_ns: Option<i64>,
    /// Whether the next migration would move the file: the rules say so, it
    /// is not pinned and it is hot or premigrated.
    would_migrate: bool,
    explanation: &'a Explanation,
    notes: &'a [String],
}

fn test(
    config: &Config,
    input: &Path,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<Outcome> {
    let relative = paths::resolve_without_daemon(config, &[input.to_path_buf()])?.remove(0);
    let conn = paths::open_catalog(config)?;
    let rows = stored_rules(conn.as_ref(), config)?;
    let set = RuleSet::new(parsed_rules(&rows));
    let subject = subject(config, conn.as_ref(), &relative)?;
    let now = SystemTime::now();
    let facts = FileFacts {
        path: &subject.path,
        size: subject.size,
        mtime: time_from_ns(subject.mtime_ns),
        last_access: subject.last_access_ns.map(time_from_ns),
    };
    let explanation = set.explain(&facts, now);
    let notes = notes(config, &subject, &explanation.decision);
    let movable = matches!(subject.state.as_deref(), Some("hot" | "premigrated"));
    let would_migrate =
        matches!(explanation.decision, Decision::Migrate { .. }) && !subject.pinned && movable;
    if json {
        write_json(
            out,
            &TestJson {
                path: daemon::exact(&subject.path),
                in_catalog: subject.state.is_some(),
                state: subject.state.as_deref(),
                pinned: subject.pinned,
                size: subject.size,
                mtime_ns: subject.mtime_ns,
                last_access_ns: subject.last_access_ns,
                would_migrate,
                explanation: &explanation,
                notes: &notes,
            },
        )?;
        return Ok(Outcome::Success);
    }
    writeln!(out, "{explanation}")?;
    writeln!(out)?;
    let last_access = match subject.last_access_ns {
        Some(ns) => human::timestamp_with_age(ns, now),
        None => "never recorded".into(),
    };
    write_fields(
        out,
        &[
            (
                "size",
                format!(
                    "{} ({} bytes)",
                    human::bytes(subject.size),
                    human::count(subject.size)
                ),
            ),
            ("modified", human::timestamp_with_age(subject.mtime_ns, now)),
            ("last access", last_access),
            (
                "state",
                subject
                    .state
                    .clone()
                    .unwrap_or_else(|| "not in catalog".into()),
            ),
            ("pinned", if subject.pinned { "yes" } else { "no" }.into()),
        ],
    )?;
    for note in &notes {
        writeln!(out, "note: {note}")?;
    }
    Ok(Outcome::Success)
}

fn time_from_ns(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + std::time::Duration::from_nanos(ns.unsigned_abs())
    } else {
        UNIX_EPOCH - std::time::Duration::from_nanos(ns.unsigned_abs())
    }
}

/// The file's facts from the catalog, else from the hot dir.
fn subject(config: &Config, conn: Option<&Connection>, relative: &Path) -> anyhow::Result<Subject> {
    if let (Some(conn), Some(key)) = (conn, path_key(relative)) {
        let row = tiering::file_by_path(conn, &key).with_context(|| {
            format!(
                "cannot look up {} in {}",
                tierfs::escape::Escaped::path(relative),
                config.catalog.display()
            )
        })?;
        if let Some(f) = row {
            return Ok(Subject {
                path: f.path,
                size: f.size,
                mtime_ns: f.mtime_ns,
                last_access_ns: f.last_access_ns,
                state: Some(f.state.to_string()),
                pinned: f.pinned,
            });
        }
    }
    let on_disk = config.hot_dir.join(relative);
    match stat_beneath(&config.hot_dir, relative) {
        Ok(meta) if meta.st_mode & libc::S_IFMT == libc::S_IFREG => {
            let mtime_ns = meta
                .st_mtime
                .saturating_mul(1_000_000_000)
                .saturating_add(meta.st_mtime_nsec);
            Ok(Subject {
                path: relative.to_path_buf(),
                size: u64::try_from(meta.st_size).unwrap_or(0),
                mtime_ns,
                last_access_ns: None,
                state: None,
                pinned: false,
            })
        }
        Ok(meta) if meta.st_mode & libc::S_IFMT == libc::S_IFDIR => Err(UsageError(format!(
            "{} is a directory; `tierctl rule test` explains the rules for one file",
            tierfs::escape::Escaped::path(relative)
        ))
        .into()),
        Ok(_) => Err(anyhow!(
            "{} is not a regular file; tierfs only migrates regular files",
            tierfs::escape::Escaped::path(relative)
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(anyhow!(
            "{}: no such file in the catalog ({}) or in the hot dir ({})",
            tierfs::escape::Escaped::path(relative),
            config.catalog.display(),
            config.hot_dir.display()
        )),
        Err(e)
            if e.raw_os_error() == Some(libc::ELOOP) || e.raw_os_error() == Some(libc::ENOTDIR) =>
        {
            Err(anyhow!(
                "{}: a directory on the way is a symlink (or not a directory); \
                 `tierctl rule test` does not follow symlinks out of the hot dir",
                tierfs::escape::Escaped::path(relative)
            ))
        }
        Err(e) => Err(anyhow!(
            "cannot read {}: {e}",
            tierfs::escape::Escaped::path(&on_disk)
        )),
    }
}

/// `lstat` of `rel` (already normalised: no `..`) beneath `hot_dir`, walking
/// one directory at a time with `O_NOFOLLOW`, so a symlinked directory on the
/// way fails (`ELOOP`/`ENOTDIR`) instead of leading out of the hot dir.
fn stat_beneath(hot_dir: &Path, rel: &Path) -> std::io::Result<libc::stat> {
    use std::os::fd::{AsFd, BorrowedFd};
    use tierfs::sys;
    // SAFETY: AT_FDCWD is valid for *at() calls.
    let cwd = unsafe { BorrowedFd::borrow_raw(libc::AT_FDCWD) };
    let mut dir = sys::open_at(
        cwd,
        hot_dir.as_os_str(),
        libc::O_PATH | libc::O_DIRECTORY,
        0,
    )?;
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for c in rel.components() {
        match c {
            std::path::Component::Normal(n) => parts.push(n),
            std::path::Component::CurDir => {}
            _ => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "the path leaves the hot dir",
                ));
            }
        }
    }
    let Some((last, parents)) = parts.split_last() else {
        return sys::stat_fd(dir.as_fd());
    };
    for p in parents {
        dir = sys::open_at(
            dir.as_fd(),
            p,
            libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        )?;
    }
    sys::stat_at(dir.as_fd(), last)
}

fn notes(config: &Config, subject: &Subject, decision: &Decision) -> Vec<String> {
    let mut notes = Vec::new();
    match subject.state.as_deref() {
        None => notes.push(
            "the file is not in the catalog yet: judged on the hot dir's size and \
             modification time, with no recorded reads"
                .into(),
        ),
        Some("hot" | "premigrated") => {}
        Some("cold") => notes.push(
            "the file is already cold (its data is in the cloud): rules only pick hot files".into(),
        ),
        Some(state) => notes.push(format!(
            "the file is {state} right now: the next migration looks at it only once that is done"
        )),
    }
    if subject.pinned {
        notes.push(
            "the file is pinned (tierctl pin): it is never migrated, whatever the rules say \
             (tierctl unpin to undo)"
                .into(),
        );
    }
    if let Decision::Migrate { targets, .. } = decision {
        for target in targets {
            if !config.remotes.contains_key(&target.remote) {
                notes.push(format!(
                    "remote `{}` is not configured in {}: migrations fail until it is",
                    target.remote,
                    config.source.display()
                ));
            }
        }
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_positions() {
        assert_eq!(parse_id("3"), Ok(3));
        assert_eq!(parse_id("#12"), Ok(12));
        assert!(parse_id("0").is_err());
        assert!(parse_id("x").is_err());
        assert_eq!(parse_position("1"), Ok(1));
        assert!(parse_position("0").is_err());
        assert!(parse_position("-1").is_err());
    }

    #[test]
    fn rule_errors_keep_the_caret_aligned() {
        let err = rules::parse("docs/* older 365 -> cloud").unwrap_err();
        let shown = indent(&err.to_string());
        let lines: Vec<&str> = shown.lines().collect();
        let caret = lines[1].find('^').unwrap();
        assert_eq!(&lines[0][caret..caret + 3], "365");
    }
}
