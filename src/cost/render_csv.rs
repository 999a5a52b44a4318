//! The CSV rendering: one row per figure, for spreadsheets.
//!
//! Columns: `section, name, class, count, bytes, requests, egress_bytes,
//! usd_period, usd_monthly, usd_savings_monthly`. Empty cells mean "not
//! applicable". `usd_period` is for the report period; `usd_monthly` per month.

use std::io::Write;

use super::model::Report;

/// Column names.
pub const HEADER: [&str; 10] = [
    "section",
    "name",
    "class",
    "count",
    "bytes",
    "requests",
    "egress_bytes",
    "usd_period",
    "usd_monthly",
    "usd_savings_monthly",
];

fn money(v: f64) -> String {
    format!("{v:.6}")
}

/// Writes `report` as CSV.
pub fn write(report: &Report, out: impl Write) -> Result<(), csv::Error> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(HEADER)?;
    let e = String::new;
    // Columns 1 and 2 hold names (remote, class, rule, directory, file):
    // neutralised so a spreadsheet never runs them as formulas. The other
    // columns are numbers tierfs formats itself.
    let mut row = |mut cells: [String; 10]| {
        for cell in &mut cells[1..3] {
            if let std::borrow::Cow::Owned(safe) = crate::escape::csv_cell(cell) {
                *cell = safe;
            }
        }
        w.write_record(&cells)
    };
    let l = &report.local;
    row([
        "local".into(),
        "local disk".into(),
        e(),
        l.files.to_string(),
        l.bytes.to_string(),
        e(),
        e(),
        e(),
        money(l.monthly),
        e(),
    ])?;
    for r in &report.remotes {
        let requests = r.put_requests + r.get_requests + r.list_requests + r.delete_requests;
        row([
            "remote".into(),
            r.remote.clone(),
            r.class.clone(),
            r.objects.to_string(),
            r.bytes.to_string(),
            requests.to_string(),
            r.egress_bytes.to_string(),
            money(r.traffic_cost),
            money(r.monthly),
            e(),
        ])?;
        for (part, count, usd) in [
            ("storage", r.objects, None),
            ("requests", requests, Some(r.requests_cost)),
            ("egress", 0, Some(r.egress_cost)),
            ("retrieval", 0, Some(r.retrieval_cost)),
            (
                "early deletion",
                r.early_deletes,
                Some(r.early_deletion_cost),
            ),
        ] {
            row([
                format!("remote {part}"),
                r.remote.clone(),
                r.class.clone(),
                count.to_string(),
                if part == "storage" {
                    r.bytes.to_string()
                } else {
                    e()
                },
                e(),
                if part == "egress" {
                    r.egress_bytes.to_string()
                } else {
                    e()
                },
                usd.map(money).unwrap_or_default(),
                if part == "storage" {
                    money(r.storage_monthly)
                } else {
                    e()
                },
                e(),
            ])?;
        }
    }
    let total = |name: &str, usd: Option<f64>| {
        [
            "total".to_string(),
            name.to_string(),
            String::new(),
            report.files.to_string(),
            report.total_bytes.to_string(),
            String::new(),
            String::new(),
            String::new(),
            usd.map(money).unwrap_or_default(),
            String::new(),
        ]
    };
    row(total("now", Some(report.monthly)))?;
    row(total("all local", Some(report.all_local_monthly)))?;
    let mut all_cloud = total("all cloud", report.all_cloud_monthly);
    all_cloud[2] = report.all_cloud_class.clone().unwrap_or_default();
    row(all_cloud)?;
    let mut savings = total("savings", None);
    savings[9] = money(report.savings_monthly);
    row(savings)?;
    for (section, groups) in [
        ("rule", &report.by_rule),
        ("directory", &report.by_directory),
    ] {
        for g in groups {
            row([
                section.into(),
                g.name.clone(),
                e(),
                g.files.to_string(),
                g.bytes.to_string(),
                e(),
                e(),
                e(),
                money(g.monthly),
                money(g.savings_monthly),
            ])?;
        }
    }
    for r in &report.top_recalls {
        row([
            "recall".into(),
            r.path.clone(),
            e(),
            e(),
            r.bytes.to_string(),
            r.requests.to_string(),
            r.bytes.to_string(),
            money(r.cost),
            e(),
            e(),
        ])?;
    }
    if let Some(w) = &report.what_if {
        row([
            "what-if".into(),
            w.input.rule.clone(),
            e(),
            w.input.files.to_string(),
            w.input.bytes.to_string(),
            e(),
            e(),
            e(),
            money(w.monthly_after),
            money(w.savings_monthly),
        ])?;
    }
    if let Some(s) = &report.scale {
        row([
            "scale".into(),
            "projected".into(),
            e(),
            e(),
            s.bytes.to_string(),
            e(),
            e(),
            e(),
            money(s.monthly),
            money(s.savings_monthly),
        ])?;
    }
    w.flush()?;
    Ok(())
}
