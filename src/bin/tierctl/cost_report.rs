//! `tierctl cost-report`: what the data costs kept local vs in the cloud,
//! and what each rule saves. Reads the catalog only (works while the daemon
//! is down). The figures come from `tierfs::cost`; this file gathers the
//! inputs and renders the table format.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Args, ValueEnum};
use tierfs::config::{Config, parse_duration, parse_size};
use tierfs::cost::model::{self, Binding, Group, WhatIfInput};
use tierfs::cost::{
    PriceCatalog, Report, Settings, Usage, format_bytes, format_usd, infer_provider, render_csv,
    render_html,
};
use tierfs::rules::RuleSet;

use crate::daemon::write_json;
use crate::table::{Align, Table, write_fields};
use crate::{Outcome, UsageError, human, paths, rule};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned text for a terminal.
    Table,
    /// One JSON object (every figure, unrounded).
    Json,
    /// One row per figure, for spreadsheets.
    Csv,
    /// One self-contained page with a chart (no network needed to view it).
    Html,
}

#[derive(Debug, Args)]
pub struct CostReportArgs {
    /// Output format
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,

    /// Same as --format json (like every other report's --json)
    #[arg(long, conflicts_with = "format")]
    pub json: bool,

    /// A price file merged over the shipped prices (and over [cost] prices)
    #[arg(long, value_name = "FILE")]
    pub prices: Option<PathBuf>,

    /// How far back to count requests, egress and deletions (e.g. 30d, 7d)
    #[arg(long, value_name = "DURATION", default_value = "30d", value_parser = parse_duration)]
    pub period: Duration,

    /// Also show the monthly cost if this rule were added (as `rule add --dry-run` counts it)
    #[arg(long, value_name = "RULE")]
    pub what_if: Option<String>,

    /// Also project today's local/cloud mix to this total size (e.g. 1PB, 500TB)
    #[arg(long, value_name = "SIZE")]
    pub scale: Option<String>,
}

/// The price catalog: shipped, then `[cost] prices`, then `--prices`.
pub fn load_prices(config: &Config, flag: Option<&Path>) -> anyhow::Result<PriceCatalog> {
    let mut catalog = PriceCatalog::shipped()?;
    for path in config.cost.prices.iter().map(PathBuf::as_path).chain(flag) {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read price file {}", path.display()))?;
        catalog.merge_toml(&text, &path.display().to_string())?;
    }
    Ok(catalog)
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Builds the report.
pub fn build(config: &Config, args: &CostReportArgs) -> anyhow::Result<Report> {
    let prices = load_prices(config, args.prices.as_deref())?;
    if args.period.is_zero() {
        return Err(UsageError("--period must be longer than 0".into()).into());
    }
    let conn = paths::open_catalog(config)?;
    let usage = match &conn {
        Some(c) => Usage::read(c, &config.catalog, now_ns(), args.period)?,
        None => Usage {
            now_ns: now_ns(),
            period: args.period,
            ..Default::default()
        },
    };
    let rows = rule::stored_rules(conn.as_ref(), config)?;
    let rules = RuleSet::new(rule::parsed_rules(&rows));
    let remotes = config
        .remotes
        .iter()
        .map(|(name, r)| {
            let provider = config
                .cost
                .providers
                .get(name)
                .cloned()
                .or_else(|| infer_provider(r).map(str::to_string));
            (
                name.clone(),
                Binding {
                    provider,
                    class: r.storage_class.clone(),
                },
            )
        })
        .collect();
    let what_if = match &args.what_if {
        Some(text) => {
            let rule = rule::checked_rule(config, text)?;
            let dry = rule::measure(config, conn.as_ref(), &rule, None)?;
            Some(WhatIfInput {
                rule: rule.text.clone(),
                pin: rule.is_pin(),
                files: dry.impact.decided_by_rule.files,
                bytes: dry.impact.decided_by_rule.bytes,
                uploads: dry
                    .impact
                    .decided_uploads
                    .iter()
                    .map(|((remote, class), t)| (remote.clone(), class.clone(), t.bytes))
                    .collect(),
            })
        }
        None => None,
    };
    let scale_to = match &args.scale {
        Some(text) => Some(parse_size(text).ok().filter(|&n| n > 0).ok_or_else(|| {
            UsageError(format!("--scale: `{text}` is not a size (e.g. 500TB, 1PB)"))
        })?),
        None => None,
    };
    let settings = Settings {
        local_per_tb_month: config.cost.local_per_tb_month,
        remotes,
        scale_to,
        what_if,
    };
    Ok(model::compute(&usage, &prices, &settings, &rules))
}

/// Runs `tierctl cost-report`.
pub fn run(
    config: &Config,
    args: &CostReportArgs,
    out: &mut impl Write,
) -> anyhow::Result<Outcome> {
    let report = build(config, args)?;
    let format = if args.json { Format::Json } else { args.format };
    match format {
        Format::Json => write_json(out, &report)?,
        Format::Csv => render_csv::write(&report, &mut *out).context("cannot write CSV")?,
        Format::Html => render_html::write(&report, &mut *out)?,
        Format::Table => write_table(&report, out)?,
    }
    Ok(Outcome::Success)
}

fn usd_or_blank(v: f64) -> String {
    if v == 0.0 {
        String::new()
    } else {
        format_usd(v)
    }
}

fn groups(out: &mut impl Write, title: &str, groups: &[Group]) -> std::io::Result<()> {
    if groups.is_empty() {
        return Ok(());
    }
    writeln!(out, "\n{title}")?;
    let mut t = Table::new(&[
        ("NAME", Align::Left),
        ("FILES", Align::Right),
        ("BYTES", Align::Right),
        ("COLD", Align::Right),
        ("NOW/MONTH", Align::Right),
        ("ALL-LOCAL/MONTH", Align::Right),
        ("SAVES/MONTH", Align::Right),
    ]);
    for g in groups {
        t.row(vec![
            g.name.clone(),
            human::count(g.files),
            format_bytes(g.bytes),
            format_bytes(g.cold_bytes),
            format_usd(g.monthly),
            format_usd(g.all_local_monthly),
            format_usd(g.savings_monthly),
        ]);
    }
    t.write(out)
}

/// The table format.
pub fn write_table(r: &Report, out: &mut impl Write) -> std::io::Result<()> {
    let mut t = Table::new(&[
        ("WHERE", Align::Left),
        ("CLASS", Align::Left),
        ("STORED", Align::Right),
        ("STORAGE/MONTH", Align::Right),
        ("REQUESTS", Align::Right),
        ("EGRESS", Align::Right),
        ("RETRIEVAL", Align::Right),
        ("EARLY DELETE", Align::Right),
        ("TOTAL/MONTH", Align::Right),
    ]);
    t.row(vec![
        format!("local disk ({}/TB-month)", format_usd(r.local.per_tb_month)),
        String::new(),
        format_bytes(r.local.bytes),
        format_usd(r.local.monthly),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        format_usd(r.local.monthly),
    ]);
    for l in &r.remotes {
        let requests = l.put_requests + l.get_requests + l.list_requests + l.delete_requests;
        t.row(vec![
            if l.priced {
                l.remote.clone()
            } else {
                format!("{} (unpriced)", l.remote)
            },
            l.class.clone(),
            format_bytes(l.bytes),
            format_usd(l.storage_monthly),
            format!(
                "{} {}",
                human::count(requests),
                usd_or_blank(l.requests_cost)
            ),
            format!(
                "{} {}",
                format_bytes(l.egress_bytes),
                usd_or_blank(l.egress_cost)
            ),
            usd_or_blank(l.retrieval_cost),
            if l.early_deletes > 0 {
                format!("{} {}", l.early_deletes, format_usd(l.early_deletion_cost))
            } else {
                String::new()
            },
            format_usd(l.monthly),
        ]);
    }
    t.write(out)?;
    writeln!(out)?;
    let mut fields = vec![
        (
            "total now",
            format!(
                "{} / month, {} / year",
                format_usd(r.monthly),
                format_usd(r.monthly * 12.0)
            ),
        ),
        (
            "all local",
            format!(
                "{} / month ({} at {}/TB-month)",
                format_usd(r.all_local_monthly),
                format_bytes(r.total_bytes),
                format_usd(r.local.per_tb_month)
            ),
        ),
    ];
    if let (Some(v), Some(class)) = (r.all_cloud_monthly, &r.all_cloud_class) {
        fields.push((
            "all cloud",
            format!("{} / month (storage at {class})", format_usd(v)),
        ));
    }
    fields.push((
        "savings",
        format!(
            "{} / month, {} / year (against all local)",
            format_usd(r.savings_monthly),
            format_usd(r.savings_yearly)
        ),
    ));
    fields.push((
        "period",
        format!("traffic of the last {} days", r.period_days),
    ));
    write_fields(out, &fields)?;
    groups(
        out,
        "By rule (cold and premigrated files; first matching rule)",
        &r.by_rule,
    )?;
    groups(out, "By top-level directory", &r.by_directory)?;
    if !r.top_recalls.is_empty() {
        writeln!(
            out,
            "\nMost expensive recalls (candidates for `tierctl pin`)"
        )?;
        let mut t = Table::new(&[
            ("FILE", Align::Left),
            ("GETS", Align::Right),
            ("BYTES", Align::Right),
            ("COST", Align::Right),
        ]);
        for c in &r.top_recalls {
            t.row(vec![
                c.path.clone(),
                human::count(c.requests),
                format_bytes(c.bytes),
                format_usd(c.cost),
            ]);
        }
        t.write(out)?;
    }
    if let Some(w) = &r.what_if {
        writeln!(
            out,
            "\nWhat if: {}",
            tierfs::escape::escape_str(&w.input.rule)
        )?;
        write_fields(
            out,
            &[
                (
                    "this rule",
                    format!(
                        "{} {} ({})",
                        human::count(w.input.files),
                        if w.input.files == 1 { "file" } else { "files" },
                        format_bytes(w.input.bytes)
                    ),
                ),
                (
                    "per month",
                    format!(
                        "{} now, {} with the rule (saves {})",
                        format_usd(w.monthly_now),
                        format_usd(w.monthly_after),
                        format_usd(w.monthly_change)
                    ),
                ),
                (
                    "savings",
                    format!(
                        "{} / month, {} / year (against all local)",
                        format_usd(w.savings_monthly),
                        format_usd(w.savings_yearly)
                    ),
                ),
            ],
        )?;
    }
    if let Some(s) = &r.scale {
        writeln!(out, "\nProjected to {}", format_bytes(s.bytes))?;
        let mut fields = vec![
            (
                "mix",
                format!(
                    "{} local, {} cloud",
                    format_bytes(s.local_bytes),
                    format_bytes(s.cloud_bytes)
                ),
            ),
            ("hybrid", format!("{} / month", format_usd(s.monthly))),
            (
                "all local",
                format!("{} / month", format_usd(s.all_local_monthly)),
            ),
        ];
        if let Some(v) = s.all_cloud_monthly {
            fields.push(("all cloud", format!("{} / month", format_usd(v))));
        }
        fields.push((
            "savings",
            format!(
                "{} / month, {} / year",
                format_usd(s.savings_monthly),
                format_usd(s.savings_yearly)
            ),
        ));
        write_fields(out, &fields)?;
    }
    let sources: Vec<(String, String)> = r
        .remotes
        .iter()
        .filter_map(|l| {
            let source = l.price_source.clone()?;
            Some((format!("{}:{}", l.remote, l.class), source))
        })
        .collect();
    if !sources.is_empty() {
        writeln!(out, "\nPrices")?;
        let fields: Vec<(&str, String)> = sources
            .iter()
            .map(|(line, source)| (line.as_str(), source.clone()))
            .collect();
        write_fields(out, &fields)?;
    }
    for w in &r.warnings {
        writeln!(out, "\nwarning: {w}")?;
    }
    writeln!(out, "\n{}", r.footer)
}
