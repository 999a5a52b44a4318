//! The cost report: what the data costs kept local vs in the cloud, and what
//! each rule saves.
//!
//! * [`prices`]: the price catalog (shipped TOML + overrides).
//! * [`usage`]: a snapshot of the catalog: files, objects and the ledger of
//!   billable requests the daemon recorded.
//! * [`model`]: turns usage and prices into a [`Report`].
//! * [`render_csv`], [`render_html`]: output formats (JSON is the
//!   `Serialize` of [`Report`]; the table lives in `tierctl`).
//!
//! `cost` reads the catalog only. Formulas: `docs/cost.md`.

pub mod model;
pub mod prices;
pub mod render_csv;
pub mod render_html;
pub mod usage;

use std::path::PathBuf;

pub use model::{Report, Settings};
pub use prices::PriceCatalog;
pub use usage::Usage;

use crate::config::RemoteConfig;

/// What can go wrong building a cost report.
#[derive(Debug, thiserror::Error)]
pub enum CostError {
    /// A price file does not parse or lacks a field.
    #[error("price catalog {origin}: {message}")]
    Prices {
        /// The file (or "the shipped price catalog").
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// A price file cannot be read.
    #[error("cannot read price file {path}: {source}")]
    ReadPrices {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The catalog cannot be read.
    #[error("cannot read catalog {path} ({what}): {source}")]
    Catalog {
        /// The catalog file.
        path: PathBuf,
        /// What was being read.
        what: &'static str,
        /// Why.
        source: rusqlite::Error,
    },
}

/// The price-catalog provider id a remote most likely bills under, from its
/// URL and endpoint: `s3://` → `aws-s3` (or `b2` when the endpoint is
/// Backblaze's), `gs://` → `gcs`, `az://` → `azure`. `None` when it cannot
/// tell (e.g. an S3-compatible server elsewhere, or `file://`): set
/// `[cost.providers]` in the config then.
pub fn infer_provider(remote: &RemoteConfig) -> Option<&'static str> {
    let scheme = remote.url.split("://").next().unwrap_or("");
    let endpoint = remote.endpoint.as_deref().unwrap_or("");
    match scheme {
        "s3" if endpoint.contains("backblazeb2.com") => Some("b2"),
        "s3" if endpoint.is_empty() || endpoint.contains("amazonaws.com") => Some("aws-s3"),
        "gs" if endpoint.is_empty() => Some("gcs"),
        "az" | "azure" if endpoint.is_empty() => Some("azure"),
        _ => None,
    }
}

/// The report footer: currency, units and the prices' status.
pub const FOOTER: &str = "Amounts in US dollars. GB = 10^9 bytes and TB = 10^12 bytes, \
except where a provider bills otherwise: Amazon S3, Google Cloud Storage and Azure bill per \
2^30 bytes (gb_bytes in the price catalog). A month is 30 days; a year is 12 months. Prices \
are list prices as of the dates shown; check them against the provider's page.";

/// Dollars with thousands separators and cents: `$12,800.00`, `-$3.50`;
/// amounts under a cent show two significant digits (`$0.0042`,
/// `$0.0000084`), down to `$0.0000000001`.
pub fn format_usd(v: f64) -> String {
    let sign = if v < 0.0 { "-" } else { "" };
    let a = v.abs();
    if a < 0.01 {
        if a < 1e-10 {
            return "$0.00".to_string();
        }
        let decimals = ((-a.log10()).ceil() as usize + 1).clamp(4, 11);
        return format!("{sign}${a:.decimals$}");
    }
    let cents = (a * 100.0).round() as u128;
    let whole = (cents / 100).to_string();
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{sign}${grouped}.{:02}", cents % 100)
}

/// Bytes in decimal units (what providers bill): `1.50 TB`, `999 B`.
pub fn format_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["kB", "MB", "GB", "TB", "PB", "EB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut unit = "B";
    for u in UNITS {
        if v < 1000.0 {
            break;
        }
        v /= 1000.0;
        unit = u;
    }
    format!("{v:.2} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_and_bytes_format() {
        assert_eq!(format_usd(12_800.0), "$12,800.00");
        assert_eq!(format_usd(640.0), "$640.00");
        assert_eq!(format_usd(-1_234_567.891), "-$1,234,567.89");
        assert_eq!(format_usd(0.0042), "$0.0042");
        assert_eq!(format_usd(0.0000084), "$0.0000084");
        assert_eq!(format_usd(-0.0002), "-$0.00020");
        assert_eq!(format_usd(1e-13), "$0.00");
        assert_eq!(format_usd(0.00001), "$0.000010");
        assert_eq!(format_usd(0.0), "$0.00");
        assert_eq!(format_bytes(999), "999 B");
        assert_eq!(format_bytes(1_500_000_000_000), "1.50 TB");
    }
}
