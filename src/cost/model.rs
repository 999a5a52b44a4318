//! The report model: every figure of the cost report, computed from a
//! [`Usage`] snapshot and a [`PriceCatalog`]. Formulas: `docs/cost.md`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::prices::{ClassPrice, PriceCatalog};
use super::usage::Usage;
use crate::catalog::FileState;
use crate::catalog::tiering::TierFile;
use crate::rules::{Decision, FileFacts, RuleSet};

/// Bytes in a TB (local storage is priced per TB-month, TB = 10^12 bytes).
pub const TB: f64 = 1e12;
/// Days in a billing month.
pub const MONTH_DAYS: f64 = 30.0;
const NS_PER_DAY: f64 = 86_400e9;
/// How many files the "most expensive recalls" list shows.
pub const TOP_RECALLS: usize = 10;

/// How a remote is billed: its provider in the price catalog and its
/// default storage class.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Binding {
    /// Provider id in the price catalog; `None` = unknown (not priced).
    pub provider: Option<String>,
    /// The remote's configured storage class (`None`: the provider's default).
    pub class: Option<String>,
}

/// Everything besides usage and prices that the report depends on.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Local storage cost, USD per TB-month.
    pub local_per_tb_month: f64,
    /// Each configured remote's billing.
    pub remotes: BTreeMap<String, Binding>,
    /// Project today's mix to this many bytes (`--scale`).
    pub scale_to: Option<u64>,
    /// A rule to evaluate (`--what-if`).
    pub what_if: Option<WhatIfInput>,
}

/// What adding a rule would change, as measured by `rule add --dry-run`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WhatIfInput {
    /// The rule, in canonical form.
    pub rule: String,
    /// Whether it is a pin rule.
    pub pin: bool,
    /// Files the rule decides (migrates, or keeps local for a pin).
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Bytes that would be uploaded per target (hot files; premigrated
    /// files already have their copy): (remote, class, bytes).
    pub uploads: Vec<(String, Option<String>, u64)>,
}

/// The local disk line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LocalLine {
    /// Files whose data is on the local disk (every state but `cold`).
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// USD per TB-month.
    pub per_tb_month: f64,
    /// USD per month.
    pub monthly: f64,
}

/// One remote and storage class.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RemoteLine {
    /// Remote name.
    pub remote: String,
    /// Provider id (`None`: unknown, not priced).
    pub provider: Option<String>,
    /// Storage class.
    pub class: String,
    /// Whether prices were found for this provider and class.
    pub priced: bool,
    /// Objects stored now.
    pub objects: u64,
    /// Bytes stored now.
    pub bytes: u64,
    /// Storage, USD per month.
    pub storage_monthly: f64,
    /// PUT-class requests in the period (single PUTs and multipart steps).
    pub put_requests: u64,
    /// GET-class requests in the period (GET, ranged GET, HEAD).
    pub get_requests: u64,
    /// LIST requests in the period.
    pub list_requests: u64,
    /// DELETE requests in the period.
    pub delete_requests: u64,
    /// Requests, USD in the period.
    pub requests_cost: f64,
    /// Bytes downloaded in the period (recalls, chunk reads, verification).
    pub egress_bytes: u64,
    /// Of those, by recalls and chunk reads of files.
    pub recall_bytes: u64,
    /// Egress free in the period (B2: 3 × stored, pro rata).
    pub free_egress_bytes: u64,
    /// Egress, USD in the period.
    pub egress_cost: f64,
    /// Retrieval fees, USD in the period.
    pub retrieval_cost: f64,
    /// Objects deleted before the class's minimum duration, in the period.
    pub early_deletes: u64,
    /// Early-deletion charges, USD in the period.
    pub early_deletion_cost: f64,
    /// requests + egress + retrieval + early deletion, USD in the period.
    pub traffic_cost: f64,
    /// storage + traffic scaled to a month, USD.
    pub monthly: f64,
    /// Price source and date, e.g. "https://… (as of 2023-10-03)".
    pub price_source: Option<String>,
}

/// A group of files (by rule or by top-level directory).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Group {
    /// The rule text or directory.
    pub name: String,
    /// Files.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Of those, bytes in the cloud only (cold).
    pub cold_bytes: u64,
    /// What they cost now per month (local part + cloud copies' storage).
    pub monthly: f64,
    /// What they would cost kept all local.
    pub all_local_monthly: f64,
    /// all_local_monthly − monthly.
    pub savings_monthly: f64,
}

/// A file whose recalls cost money in the period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecallCost {
    /// Path relative to the mount root.
    pub path: String,
    /// GET requests (full recalls and chunk reads).
    pub requests: u64,
    /// Bytes downloaded.
    pub bytes: u64,
    /// USD in the period (requests + egress + retrieval, before any free
    /// egress allowance).
    pub cost: f64,
}

/// Monthly totals under a what-if rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WhatIf {
    /// The measured impact (same counts as `rule add --dry-run`).
    #[serde(flatten)]
    pub input: WhatIfInput,
    /// Total per month now.
    pub monthly_now: f64,
    /// Total per month once the rule's files have migrated.
    pub monthly_after: f64,
    /// monthly_now − monthly_after.
    pub monthly_change: f64,
    /// Savings against all-local per month, with the rule.
    pub savings_monthly: f64,
    /// The same per year.
    pub savings_yearly: f64,
}

/// Today's mix projected to another size.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scaled {
    /// The target size in bytes.
    pub bytes: u64,
    /// target / today's total bytes.
    pub factor: f64,
    /// Local bytes at that size.
    pub local_bytes: u64,
    /// Cloud bytes at that size.
    pub cloud_bytes: u64,
    /// Local part per month.
    pub local_monthly: f64,
    /// Cloud part (every remote line) per month.
    pub cloud_monthly: f64,
    /// Total per month.
    pub monthly: f64,
    /// All local per month.
    pub all_local_monthly: f64,
    /// All in the cloud per month.
    pub all_cloud_monthly: Option<f64>,
    /// Savings per month against all local.
    pub savings_monthly: f64,
    /// Savings per year.
    pub savings_yearly: f64,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// When it was computed (RFC 3339).
    pub generated_at: String,
    /// Days of ledger traffic included.
    pub period_days: f64,
    /// Always "USD".
    pub currency: &'static str,
    /// Files in the catalog.
    pub files: u64,
    /// Their bytes (what all-local and all-cloud store).
    pub total_bytes: u64,
    /// Local storage.
    pub local: LocalLine,
    /// Each remote and class.
    pub remotes: Vec<RemoteLine>,
    /// Total per month now: local + every remote line.
    pub monthly: f64,
    /// The same data kept all local, per month.
    pub all_local_monthly: f64,
    /// The same data all in the cloud (storage only), per month; `None`
    /// when no remote is priced.
    pub all_cloud_monthly: Option<f64>,
    /// The remote and class all-cloud is priced at.
    pub all_cloud_class: Option<String>,
    /// all_local_monthly − monthly.
    pub savings_monthly: f64,
    /// 12 × savings_monthly.
    pub savings_yearly: f64,
    /// Cold and premigrated files by the current rule that selects them
    /// (first match).
    pub by_rule: Vec<Group>,
    /// Every file by top-level directory.
    pub by_directory: Vec<Group>,
    /// The files whose recalls cost the most (candidates for `pin`).
    pub top_recalls: Vec<RecallCost>,
    /// `--what-if`.
    pub what_if: Option<WhatIf>,
    /// `--scale`.
    pub scale: Option<Scaled>,
    /// Things that make the figures incomplete (e.g. an unpriced remote).
    pub warnings: Vec<String>,
    /// Units and caveats.
    pub footer: &'static str,
}

fn gb(bytes: u64, price: &ClassPrice) -> f64 {
    bytes as f64 / price.gb_bytes as f64
}

/// Resolves (remote, class) to (class name, prices).
struct Pricer<'a> {
    catalog: &'a PriceCatalog,
    remotes: &'a BTreeMap<String, Binding>,
}

impl<'a> Pricer<'a> {
    fn provider_of(&self, remote: &str) -> Option<&'a str> {
        self.remotes.get(remote)?.provider.as_deref()
    }

    /// (class label, provider, prices if known).
    fn resolve(
        &self,
        remote: &str,
        class: Option<&str>,
    ) -> (String, Option<String>, Option<&'a ClassPrice>) {
        let binding = self.remotes.get(remote);
        let wanted = class.or(binding.and_then(|b| b.class.as_deref()));
        let provider_id = self.provider_of(remote);
        match provider_id.and_then(|id| self.catalog.providers.get(id)) {
            Some(p) => match p.class(wanted) {
                Some((name, price)) => (
                    name.to_string(),
                    provider_id.map(str::to_string),
                    Some(price),
                ),
                None => (
                    wanted.unwrap_or(&p.default_class).to_string(),
                    provider_id.map(str::to_string),
                    None,
                ),
            },
            None => (
                wanted.unwrap_or("default").to_string(),
                provider_id.map(str::to_string),
                None,
            ),
        }
    }
}

/// The line of (remote, class), created on first use, and its prices.
fn line_for<'m, 'a>(
    lines: &'m mut BTreeMap<(String, String), RemoteLine>,
    pricer: &Pricer<'a>,
    remote: &str,
    class: Option<&str>,
) -> (&'m mut RemoteLine, Option<&'a ClassPrice>) {
    let (class, provider, price) = pricer.resolve(remote, class);
    let line = lines
        .entry((remote.to_string(), class.clone()))
        .or_insert_with(|| RemoteLine {
            remote: remote.to_string(),
            provider,
            class,
            priced: price.is_some(),
            price_source: price.map(|p| format!("{} (as of {})", p.source, p.as_of)),
            ..Default::default()
        });
    (line, price)
}

/// Per-file monthly costs (local part, cloud part) under the current layout.
fn file_costs(
    f: &TierFile,
    copies: &HashMap<&str, Vec<(String, Option<String>)>>,
    pricer: &Pricer<'_>,
    local_per_tb: f64,
) -> (f64, f64) {
    let local = if f.state == FileState::Cold {
        0.0
    } else {
        f.size as f64 / TB * local_per_tb
    };
    let cloud = f
        .blake3
        .as_deref()
        .and_then(|h| copies.get(h))
        .map(|list| {
            list.iter()
                .filter_map(|(remote, class)| pricer.resolve(remote, class.as_deref()).2)
                .map(|p| gb(f.size, p) * p.storage_per_gb_month)
                .sum()
        })
        .unwrap_or(0.0);
    (local, cloud)
}

fn add_to_group(
    groups: &mut BTreeMap<String, Group>,
    name: String,
    f: &TierFile,
    c: (f64, f64),
    all_local: f64,
) {
    let g = groups.entry(name.clone()).or_insert_with(|| Group {
        name,
        ..Default::default()
    });
    g.files += 1;
    g.bytes += f.size;
    if f.state == FileState::Cold {
        g.cold_bytes += f.size;
    }
    g.monthly += c.0 + c.1;
    g.all_local_monthly += all_local;
    g.savings_monthly = g.all_local_monthly - g.monthly;
}

fn top_dir(path: &Path) -> String {
    let mut parts = path
        .components()
        .filter(|c| matches!(c, Component::Normal(_)));
    match (parts.next(), parts.next()) {
        (Some(first), Some(_)) => format!("{}/", first.as_os_str().to_string_lossy()),
        _ => "(files at the top)".to_string(),
    }
}

fn time_from_ns(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

/// Computes the report.
pub fn compute(
    usage: &Usage,
    prices: &PriceCatalog,
    settings: &Settings,
    rules: &RuleSet,
) -> Report {
    let pricer = Pricer {
        catalog: prices,
        remotes: &settings.remotes,
    };
    let local_per_tb = settings.local_per_tb_month;
    let period_days = (usage.period.as_secs_f64() / 86_400.0).max(f64::MIN_POSITIVE);
    let to_month = MONTH_DAYS / period_days;
    let mut warnings = Vec::new();

    // Local.
    let total_bytes: u64 = usage.files.iter().map(|f| f.size).sum();
    let local_files: Vec<&TierFile> = usage
        .files
        .iter()
        .filter(|f| f.state != FileState::Cold)
        .collect();
    let local_bytes: u64 = local_files.iter().map(|f| f.size).sum();
    let local = LocalLine {
        files: local_files.len() as u64,
        bytes: local_bytes,
        per_tb_month: local_per_tb,
        monthly: local_bytes as f64 / TB * local_per_tb,
    };

    // Remote lines: storage from the objects table, traffic from the ledger.
    let mut lines: BTreeMap<(String, String), RemoteLine> = BTreeMap::new();
    let mut copies: HashMap<&str, Vec<(String, Option<String>)>> = HashMap::new();
    for o in &usage.objects {
        let (line, price) = line_for(&mut lines, &pricer, &o.remote, o.storage_class.as_deref());
        line.objects += 1;
        line.bytes += o.size;
        if let Some(p) = price {
            line.storage_monthly += gb(o.size, p) * p.storage_per_gb_month;
        }
        copies
            .entry(o.blake3.as_str())
            .or_default()
            .push((o.remote.clone(), o.storage_class.clone()));
    }
    let mut recalls: BTreeMap<String, RecallCost> = BTreeMap::new();
    for row in &usage.ledger {
        let (line, price) = line_for(
            &mut lines,
            &pricer,
            &row.remote,
            row.storage_class.as_deref(),
        );
        match row.op.as_str() {
            "put" => line.put_requests += row.requests,
            "get" | "head" => line.get_requests += row.requests,
            "list" => line.list_requests += row.requests,
            "delete" => line.delete_requests += row.requests,
            _ => {}
        }
        if row.op == "get" {
            line.egress_bytes += row.bytes;
            if let Some(path) = &row.path {
                line.recall_bytes += row.bytes;
                let key = path.to_string_lossy().into_owned();
                let r = recalls.entry(key.clone()).or_insert(RecallCost {
                    path: key,
                    requests: 0,
                    bytes: 0,
                    cost: 0.0,
                });
                r.requests += row.requests;
                r.bytes += row.bytes;
                if let Some(p) = price {
                    r.cost += row.requests as f64 / 1000.0 * p.get_per_1000
                        + gb(row.bytes, p) * (p.egress_per_gb + p.retrieval_per_gb);
                }
            }
        }
        if row.op == "delete"
            && let (Some(p), Some(age_ns)) = (price, row.object_age_ns)
        {
            let age_days = age_ns.max(0) as f64 / NS_PER_DAY;
            let min = f64::from(p.min_storage_days);
            if age_days < min {
                line.early_deletes += 1;
                line.early_deletion_cost +=
                    gb(row.bytes, p) * p.storage_per_gb_month * (min - age_days) / MONTH_DAYS;
            }
        }
    }
    let mut remotes: Vec<RemoteLine> = Vec::new();
    for (_, mut line) in lines {
        let (_, _, price) = pricer.resolve(&line.remote, Some(&line.class));
        match price {
            Some(p) => {
                line.requests_cost = (line.put_requests as f64 * p.put_per_1000
                    + line.get_requests as f64 * p.get_per_1000
                    + line.list_requests as f64 * p.list_per_1000
                    + line.delete_requests as f64 * p.delete_per_1000)
                    / 1000.0;
                let free = p.free_egress_multiple * line.bytes as f64 * period_days / MONTH_DAYS;
                line.free_egress_bytes = free.round() as u64;
                let billable = line.egress_bytes.saturating_sub(line.free_egress_bytes);
                line.egress_cost = gb(billable, p) * p.egress_per_gb;
                line.retrieval_cost = gb(line.egress_bytes, p) * p.retrieval_per_gb;
            }
            None => warnings.push(format!(
                "remote `{}` class `{}` has no prices ({}): its {} stored bytes and traffic count as $0; set [cost.providers] {} = \"PROVIDER\" in the config or add the class with --prices",
                line.remote,
                line.class,
                match &line.provider {
                    Some(p) => format!("provider `{p}` has no such class"),
                    None => "its provider is unknown".to_string(),
                },
                line.bytes,
                line.remote
            )),
        }
        line.traffic_cost =
            line.requests_cost + line.egress_cost + line.retrieval_cost + line.early_deletion_cost;
        line.monthly = line.storage_monthly + line.traffic_cost * to_month;
        remotes.push(line);
    }
    let monthly = local.monthly + remotes.iter().map(|l| l.monthly).sum::<f64>();
    let all_local_monthly = total_bytes as f64 / TB * local_per_tb;

    // All-cloud: every byte at the storage price of the class holding the
    // most bytes (or the first priced remote's default class).
    let reference = remotes
        .iter()
        .filter(|l| l.priced)
        .max_by_key(|l| l.bytes)
        .map(|l| (l.remote.clone(), Some(l.class.clone())))
        .or_else(|| {
            settings
                .remotes
                .iter()
                .find(|(name, _)| pricer.resolve(name, None).2.is_some())
                .map(|(name, _)| (name.clone(), None))
        });
    let (all_cloud_monthly, all_cloud_class, all_cloud_price) = match &reference {
        Some((remote, class)) => {
            let (class, _, price) = pricer.resolve(remote, class.as_deref());
            let price = price.map(|p| p.storage_per_gb_month / p.gb_bytes as f64);
            (
                price.map(|per_byte| total_bytes as f64 * per_byte),
                Some(format!("{remote}:{class}")),
                price,
            )
        }
        None => (None, None, None),
    };

    // Breakdowns.
    let now = time_from_ns(usage.now_ns);
    let rule_text: HashMap<i64, String> = rules
        .rules()
        .iter()
        .map(|(id, r)| (*id, r.text.clone()))
        .collect();
    let mut by_rule = BTreeMap::new();
    let mut by_dir = BTreeMap::new();
    for f in &usage.files {
        let c = file_costs(f, &copies, &pricer, local_per_tb);
        let all_local = f.size as f64 / TB * local_per_tb;
        add_to_group(&mut by_dir, top_dir(&f.path), f, c, all_local);
        if f.blake3.is_some() && f.state != FileState::Hot {
            let facts = FileFacts {
                path: &f.path,
                size: f.size,
                mtime: time_from_ns(f.mtime_ns),
                last_access: f.last_access_ns.map(time_from_ns),
            };
            let name = match rules.decide(&facts, now) {
                Decision::Migrate { rule_id, .. } => rule_text
                    .get(&rule_id)
                    .cloned()
                    .unwrap_or_else(|| format!("rule {rule_id}")),
                Decision::Pin { rule_id } => format!(
                    "{} (pinned since it migrated)",
                    rule_text.get(&rule_id).cloned().unwrap_or_default()
                ),
                Decision::None => "(no current rule selects it)".to_string(),
            };
            add_to_group(&mut by_rule, name, f, c, all_local);
        }
    }
    let mut by_rule: Vec<Group> = by_rule.into_values().collect();
    by_rule.sort_by(|a, b| b.savings_monthly.total_cmp(&a.savings_monthly));
    let by_directory: Vec<Group> = by_dir.into_values().collect();
    let mut top_recalls: Vec<RecallCost> = recalls.into_values().collect();
    top_recalls.sort_by(|a, b| b.cost.total_cmp(&a.cost).then(b.bytes.cmp(&a.bytes)));
    top_recalls.truncate(TOP_RECALLS);

    let savings_monthly = all_local_monthly - monthly;
    let what_if = settings.what_if.as_ref().map(|w| {
        let mut after = monthly;
        if !w.pin {
            after -= w.bytes as f64 / TB * local_per_tb;
            for (remote, class, bytes) in &w.uploads {
                match pricer.resolve(remote, class.as_deref()).2 {
                    Some(p) => after += gb(*bytes, p) * p.storage_per_gb_month,
                    None => warnings.push(format!(
                        "--what-if: remote `{remote}` has no prices; its uploads count as $0"
                    )),
                }
            }
        }
        WhatIf {
            input: w.clone(),
            monthly_now: monthly,
            monthly_after: after,
            monthly_change: monthly - after,
            savings_monthly: all_local_monthly - after,
            savings_yearly: (all_local_monthly - after) * 12.0,
        }
    });
    let scale = settings.scale_to.map(|target| {
        let factor = if total_bytes == 0 {
            0.0
        } else {
            target as f64 / total_bytes as f64
        };
        let cloud_bytes: u64 = remotes.iter().map(|l| l.bytes).sum();
        let scaled_monthly = monthly * factor;
        let all_local = target as f64 / TB * local_per_tb;
        Scaled {
            bytes: target,
            factor,
            local_bytes: (local_bytes as f64 * factor).round() as u64,
            cloud_bytes: (cloud_bytes as f64 * factor).round() as u64,
            local_monthly: local.monthly * factor,
            cloud_monthly: (monthly - local.monthly) * factor,
            monthly: scaled_monthly,
            all_local_monthly: all_local,
            all_cloud_monthly: all_cloud_price.map(|per_byte| target as f64 * per_byte),
            savings_monthly: all_local - scaled_monthly,
            savings_yearly: (all_local - scaled_monthly) * 12.0,
        }
    });
    if total_bytes == 0 && settings.scale_to.is_some() {
        warnings.push("--scale: the catalog holds no bytes, so there is no mix to project".into());
    }

    Report {
        generated_at: humantime::format_rfc3339_seconds(now).to_string(),
        period_days,
        currency: "USD",
        files: usage.files.len() as u64,
        total_bytes,
        local,
        remotes,
        monthly,
        all_local_monthly,
        all_cloud_monthly,
        all_cloud_class,
        savings_monthly,
        savings_yearly: savings_monthly * 12.0,
        by_rule,
        by_directory,
        top_recalls,
        what_if,
        scale,
        warnings,
        footer: super::FOOTER,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::usage::{LedgerRow, ObjectUsage};
    use std::path::PathBuf;

    const TB_BYTES: u64 = 1_000_000_000_000;
    const DAY_NS: i64 = 86_400_000_000_000;

    fn file(path: &str, size: u64, state: &str, hash: Option<&str>) -> TierFile {
        TierFile {
            id: 0,
            path: PathBuf::from(path),
            size,
            mtime_ns: 0,
            last_access_ns: None,
            state: state.parse().unwrap(),
            pinned: false,
            generation: 0,
            blake3: hash.map(str::to_string),
            ino: 0,
        }
    }

    fn row(remote: &str, op: &str, requests: u64, bytes: u64) -> LedgerRow {
        LedgerRow {
            ts_ns: 0,
            remote: remote.into(),
            op: op.into(),
            requests,
            bytes,
            storage_class: None,
            object_age_ns: None,
            path: None,
        }
    }

    fn settings(remote: &str, provider: Option<&str>, class: Option<&str>) -> Settings {
        Settings {
            local_per_tb_month: 12.0,
            remotes: BTreeMap::from([(
                remote.to_string(),
                Binding {
                    provider: provider.map(str::to_string),
                    class: class.map(str::to_string),
                },
            )]),
            scale_to: None,
            what_if: None,
        }
    }

    /// The worked example of docs/cost.md, with the shipped B2 prices.
    #[test]
    fn worked_example_in_the_docs() {
        let hash = "cd".repeat(32);
        let usage = Usage {
            now_ns: 30 * DAY_NS,
            period: Duration::from_secs(30 * 86_400),
            files: vec![
                file("projects/a", 2 * TB_BYTES, "hot", None),
                file("archive/b", 8 * TB_BYTES, "cold", Some(&hash)),
            ],
            objects: vec![ObjectUsage {
                remote: "b2".into(),
                storage_class: None,
                size: 8 * TB_BYTES,
                blake3: hash,
            }],
            ledger: vec![
                row("b2", "put", 100, 0),
                row("b2", "get", 500, 25 * TB_BYTES),
            ],
        };
        let prices = PriceCatalog::shipped().unwrap();
        let r = compute(
            &usage,
            &prices,
            &settings("b2", Some("b2"), None),
            &RuleSet::new(vec![]),
        );
        let l = &r.remotes[0];
        let near = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(near(r.local.monthly, 24.0), "{}", r.local.monthly);
        assert!(near(l.storage_monthly, 48.0), "{}", l.storage_monthly);
        assert!(near(l.requests_cost, 0.0002), "{}", l.requests_cost);
        assert_eq!(l.free_egress_bytes, 24 * TB_BYTES);
        assert!(near(l.egress_cost, 10.0), "{}", l.egress_cost);
        assert!(near(r.monthly, 82.0002), "{}", r.monthly);
        assert!(near(r.all_local_monthly, 120.0));
        assert!(near(r.all_cloud_monthly.unwrap(), 60.0));
        assert!(near(r.savings_monthly, 37.9998), "{}", r.savings_monthly);
        assert_eq!(crate::cost::format_usd(r.savings_yearly), "$456.00");
        assert_eq!(r.all_cloud_class.as_deref(), Some("b2:standard"));
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        // By directory: the cold archive saves, the hot project does not.
        let names: Vec<(&str, f64)> = r
            .by_directory
            .iter()
            .map(|g| (g.name.as_str(), g.savings_monthly))
            .collect();
        assert_eq!(names[0].0, "archive/");
        assert!(near(names[0].1, 96.0 - 48.0), "{names:?}");
        assert_eq!(names[1], ("projects/", 0.0));
    }

    /// Names are data: CSV cells that look like formulas are neutralised,
    /// HTML escapes markup and control characters.
    #[test]
    fn hostile_names_are_neutralised_in_csv_and_escaped_in_html() {
        let hash = "cd".repeat(32);
        let usage = Usage {
            now_ns: 30 * DAY_NS,
            period: Duration::from_secs(30 * 86_400),
            files: vec![
                file("=HYPERLINK(\"http://x\")/a", 1 << 30, "cold", Some(&hash)),
                file("-2+3/b", 1 << 20, "hot", None),
                file("<script>\x1b[2J/c", 1 << 20, "hot", None),
            ],
            objects: vec![ObjectUsage {
                remote: "b2".into(),
                storage_class: None,
                size: 1 << 30,
                blake3: hash,
            }],
            ledger: vec![],
        };
        let prices = PriceCatalog::shipped().unwrap();
        let r = compute(
            &usage,
            &prices,
            &settings("b2", Some("b2"), None),
            &RuleSet::new(vec![]),
        );
        let mut csv = Vec::new();
        crate::cost::render_csv::write(&r, &mut csv).unwrap();
        let csv = String::from_utf8(csv).unwrap();
        assert!(
            csv.contains("directory,\"'=HYPERLINK(\"\"http:/\","),
            "{csv}"
        );
        assert!(csv.contains("directory,'-2+3/,"), "{csv}");
        assert!(!csv.contains(",=") && !csv.contains(",-2"), "{csv}");
        let mut html = Vec::new();
        crate::cost::render_html::write(&r, &mut html).unwrap();
        let html = String::from_utf8(html).unwrap();
        assert!(html.contains("&lt;script&gt;\\x1b[2J/"), "{html}");
        assert!(!html.contains("<script") && !html.contains('\x1b'));
    }

    /// docs/cost.md: 100 GiB in S3 Standard-IA deleted at 10 days.
    #[test]
    fn early_deletion_bills_the_remaining_days() {
        let mut deleted = row("s3", "delete", 1, 100 << 30);
        deleted.object_age_ns = Some(10 * DAY_NS);
        let mut old = row("s3", "delete", 1, 100 << 30);
        old.object_age_ns = Some(31 * DAY_NS);
        let usage = Usage {
            now_ns: 40 * DAY_NS,
            period: Duration::from_secs(30 * 86_400),
            ledger: vec![deleted, old],
            ..Default::default()
        };
        let prices = PriceCatalog::shipped().unwrap();
        let r = compute(
            &usage,
            &prices,
            &settings("s3", Some("aws-s3"), Some("standard_ia")),
            &RuleSet::new(vec![]),
        );
        let l = &r.remotes[0];
        assert_eq!((l.class.as_str(), l.early_deletes), ("STANDARD_IA", 1));
        assert!(
            (l.early_deletion_cost - 100.0 * 0.0125 * 20.0 / 30.0).abs() < 1e-9,
            "{}",
            l.early_deletion_cost
        );
        assert_eq!(l.delete_requests, 2);
    }

    #[test]
    fn unknown_providers_are_reported_not_guessed() {
        let usage = Usage {
            now_ns: DAY_NS,
            period: Duration::from_secs(86_400),
            objects: vec![ObjectUsage {
                remote: "minio".into(),
                storage_class: None,
                size: 1000,
                blake3: "00".repeat(32),
            }],
            ..Default::default()
        };
        let prices = PriceCatalog::shipped().unwrap();
        let r = compute(
            &usage,
            &prices,
            &settings("minio", None, None),
            &RuleSet::new(vec![]),
        );
        assert!(!r.remotes[0].priced);
        assert_eq!(r.remotes[0].monthly, 0.0);
        assert_eq!(r.all_cloud_monthly, None);
        assert_eq!(r.warnings.len(), 1);
        assert!(r.warnings[0].contains("cost.providers"), "{:?}", r.warnings);
    }

    #[test]
    fn traffic_of_a_shorter_period_is_scaled_to_a_month() {
        let usage = Usage {
            now_ns: DAY_NS,
            period: Duration::from_secs(3 * 86_400),
            ledger: vec![row("s3", "put", 1000, 0)],
            ..Default::default()
        };
        let prices = PriceCatalog::shipped().unwrap();
        let r = compute(
            &usage,
            &prices,
            &settings("s3", Some("aws-s3"), None),
            &RuleSet::new(vec![]),
        );
        let l = &r.remotes[0];
        assert!((l.traffic_cost - 0.005).abs() < 1e-12, "{}", l.traffic_cost);
        assert!((l.monthly - 0.05).abs() < 1e-12, "{}", l.monthly);
    }
}
