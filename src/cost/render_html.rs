//! The HTML rendering: one self-contained page (inline CSS and SVG, no
//! script, no network reference) with a stacked-bar chart — hybrid now
//! (local + cloud), all local, all cloud — and the report's tables.

use std::fmt::Write as _;
use std::io::Write;

use super::model::{Group, Report};
use super::{format_bytes, format_usd};

/// Escapes text for HTML element content and attribute values (control
/// characters shown as escapes too): [`crate::escape::html`].
pub fn escape(text: &str) -> String {
    crate::escape::html(text)
}

const LOCAL_COLOR: &str = "#2f6fb0";
const CLOUD_COLOR: &str = "#e8912d";

/// One bar: label and (segment name, amount, colour) from the bottom up.
struct Bar {
    label: &'static str,
    segments: Vec<(&'static str, f64, &'static str)>,
}

/// The chart as an inline SVG element.
pub fn chart_svg(report: &Report) -> String {
    let cloud_now: f64 = report.remotes.iter().map(|l| l.monthly).sum();
    let mut bars = vec![
        Bar {
            label: "Hybrid now",
            segments: vec![
                ("Local", report.local.monthly, LOCAL_COLOR),
                ("Cloud", cloud_now, CLOUD_COLOR),
            ],
        },
        Bar {
            label: "All local",
            segments: vec![("Local", report.all_local_monthly, LOCAL_COLOR)],
        },
    ];
    if let Some(v) = report.all_cloud_monthly {
        bars.push(Bar {
            label: "All cloud",
            segments: vec![("Cloud", v, CLOUD_COLOR)],
        });
    }
    if let Some(w) = &report.what_if {
        bars.push(Bar {
            label: "With what-if rule",
            segments: vec![("Total", w.monthly_after, "#7a5cb8")],
        });
    }
    let max = bars
        .iter()
        .map(|b| b.segments.iter().map(|s| s.1.max(0.0)).sum::<f64>())
        .fold(0.0f64, f64::max);
    let (width, height, top, bottom, left) = (760.0, 380.0, 60.0, 60.0, 70.0);
    let plot_h = height - top - bottom;
    let slot = (width - left - 20.0) / bars.len() as f64;
    let bar_w = slot * 0.5;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg id="cost-chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="Monthly cost: hybrid now, all local, all cloud">"#
    );
    let _ = write!(
        svg,
        r##"<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/><text x="{left}" y="24" font-size="16" font-family="sans-serif" fill="#222">Monthly cost (USD)</text>"##
    );
    let _ = write!(
        svg,
        r##"<line x1="{left}" y1="{}" x2="{}" y2="{}" stroke="#444"/>"##,
        top + plot_h,
        width - 10.0,
        top + plot_h
    );
    for (i, bar) in bars.iter().enumerate() {
        let x = left + slot * i as f64 + (slot - bar_w) / 2.0;
        let mut y = top + plot_h;
        let mut total = 0.0;
        for (name, amount, color) in &bar.segments {
            let h = if max > 0.0 {
                amount.max(0.0) / max * plot_h
            } else {
                0.0
            };
            y -= h;
            total += amount;
            let _ = write!(
                svg,
                r#"<rect class="segment" data-segment="{name}" x="{x:.1}" y="{y:.1}" width="{bar_w:.1}" height="{h:.1}" fill="{color}"><title>{name}: {}</title></rect>"#,
                escape(&format_usd(*amount))
            );
        }
        let _ = write!(
            svg,
            r##"<text class="bar-total" x="{:.1}" y="{:.1}" text-anchor="middle" font-size="13" font-family="sans-serif" fill="#222">{}</text>"##,
            x + bar_w / 2.0,
            (y - 6.0).max(14.0),
            escape(&format_usd(total))
        );
        let _ = write!(
            svg,
            r##"<text class="bar-label" x="{:.1}" y="{:.1}" text-anchor="middle" font-size="13" font-family="sans-serif" fill="#222">{}</text>"##,
            x + bar_w / 2.0,
            top + plot_h + 20.0,
            bar.label
        );
    }
    // Legend.
    for (i, (name, color)) in [("Local", LOCAL_COLOR), ("Cloud", CLOUD_COLOR)]
        .iter()
        .enumerate()
    {
        let x = left + 120.0 * i as f64;
        let y = height - 22.0;
        let _ = write!(
            svg,
            r##"<rect x="{x}" y="{}" width="14" height="14" fill="{color}"/><text class="legend" x="{}" y="{y}" font-size="13" font-family="sans-serif" fill="#222">{name}</text>"##,
            y - 12.0,
            x + 20.0
        );
    }
    svg.push_str("</svg>");
    svg
}

fn group_table(html: &mut String, title: &str, groups: &[Group]) {
    if groups.is_empty() {
        return;
    }
    let _ = write!(
        html,
        "<h2>{}</h2><table><tr><th>name</th><th>files</th><th>bytes</th><th>cold</th><th>now / month</th><th>all local / month</th><th>savings / month</th></tr>",
        escape(title)
    );
    for g in groups {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&g.name),
            g.files,
            format_bytes(g.bytes),
            format_bytes(g.cold_bytes),
            format_usd(g.monthly),
            format_usd(g.all_local_monthly),
            format_usd(g.savings_monthly)
        );
    }
    html.push_str("</table>");
}

/// The whole page.
pub fn render(report: &Report) -> String {
    let mut h = String::new();
    h.push_str("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>tierfs cost report</title><style>body{font-family:sans-serif;margin:24px;color:#222}table{border-collapse:collapse;margin:8px 0 20px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child,th:first-child{text-align:left}.warn{color:#a00}footer{margin-top:24px;font-size:12px;color:#555}</style></head><body>");
    let _ = write!(
        h,
        "<h1>tierfs cost report</h1><p>Generated {} · traffic over the last {} days · {} files, {}</p>",
        escape(&report.generated_at),
        report.period_days,
        report.files,
        format_bytes(report.total_bytes)
    );
    h.push_str(&chart_svg(report));
    let _ = write!(
        h,
        "<h2>Summary</h2><table><tr><th>scenario</th><th>per month</th><th>per year</th></tr>\
         <tr><td>Hybrid now</td><td>{}</td><td>{}</td></tr>\
         <tr><td>All local</td><td>{}</td><td>{}</td></tr>",
        format_usd(report.monthly),
        format_usd(report.monthly * 12.0),
        format_usd(report.all_local_monthly),
        format_usd(report.all_local_monthly * 12.0)
    );
    if let Some(v) = report.all_cloud_monthly {
        let _ = write!(
            h,
            "<tr><td>All cloud ({})</td><td>{}</td><td>{}</td></tr>",
            escape(report.all_cloud_class.as_deref().unwrap_or("")),
            format_usd(v),
            format_usd(v * 12.0)
        );
    }
    let _ = write!(
        h,
        "<tr><td>Savings against all local</td><td>{}</td><td>{}</td></tr></table>",
        format_usd(report.savings_monthly),
        format_usd(report.savings_yearly)
    );
    let _ = write!(
        h,
        "<h2>Lines</h2><table><tr><th>where</th><th>class</th><th>stored</th><th>storage / month</th><th>requests</th><th>egress</th><th>retrieval</th><th>early deletion</th><th>total / month</th></tr>\
         <tr><td>local disk ({} / TB-month)</td><td></td><td>{}</td><td>{}</td><td></td><td></td><td></td><td></td><td>{}</td></tr>",
        format_usd(report.local.per_tb_month),
        format_bytes(report.local.bytes),
        format_usd(report.local.monthly),
        format_usd(report.local.monthly)
    );
    for l in &report.remotes {
        let requests = l.put_requests + l.get_requests + l.list_requests + l.delete_requests;
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} ({})</td><td>{} ({})</td><td>{}</td><td>{} ({})</td><td>{}</td></tr>",
            escape(&l.remote),
            escape(&l.class),
            format_bytes(l.bytes),
            format_usd(l.storage_monthly),
            requests,
            format_usd(l.requests_cost),
            format_bytes(l.egress_bytes),
            format_usd(l.egress_cost),
            format_usd(l.retrieval_cost),
            l.early_deletes,
            format_usd(l.early_deletion_cost),
            format_usd(l.monthly)
        );
    }
    h.push_str("</table>");
    group_table(&mut h, "By rule", &report.by_rule);
    group_table(&mut h, "By top-level directory", &report.by_directory);
    if !report.top_recalls.is_empty() {
        h.push_str("<h2>Most expensive recalls (candidates for pin)</h2><table><tr><th>file</th><th>requests</th><th>bytes</th><th>cost in period</th></tr>");
        for r in &report.top_recalls {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&r.path),
                r.requests,
                format_bytes(r.bytes),
                format_usd(r.cost)
            );
        }
        h.push_str("</table>");
    }
    if let Some(w) = &report.what_if {
        let _ = write!(
            h,
            "<h2>What if: {}</h2><p>{} {} ({}) decided by the rule; per month {} → {} (savings against all local {} / month, {} / year)</p>",
            escape(&w.input.rule),
            w.input.files,
            if w.input.files == 1 { "file" } else { "files" },
            format_bytes(w.input.bytes),
            format_usd(w.monthly_now),
            format_usd(w.monthly_after),
            format_usd(w.savings_monthly),
            format_usd(w.savings_yearly)
        );
    }
    if let Some(s) = &report.scale {
        let _ = write!(
            h,
            "<h2>Projected to {}</h2><p>hybrid {} / month, all local {} / month, savings {} / month ({} / year)</p>",
            format_bytes(s.bytes),
            format_usd(s.monthly),
            format_usd(s.all_local_monthly),
            format_usd(s.savings_monthly),
            format_usd(s.savings_yearly)
        );
    }
    let sources: Vec<String> = report
        .remotes
        .iter()
        .filter_map(|l| {
            let source = l.price_source.as_ref()?;
            Some(format!(
                "<li>{}:{} — {}</li>",
                escape(&l.remote),
                escape(&l.class),
                escape(source)
            ))
        })
        .collect();
    if !sources.is_empty() {
        let _ = write!(h, "<h2>Prices</h2><ul>{}</ul>", sources.concat());
    }
    for w in &report.warnings {
        let _ = write!(h, "<p class=\"warn\">warning: {}</p>", escape(w));
    }
    let _ = writeln!(
        h,
        "<footer>{}</footer></body></html>",
        escape(report.footer)
    );
    h
}

/// Writes the page to `out`.
pub fn write(report: &Report, mut out: impl Write) -> std::io::Result<()> {
    out.write_all(render(report).as_bytes())
}
