//! The cost model reproduces Backblaze's published hybrid-cloud comparison
//! to the dollar, from the same unit prices: 100 TB / 1 PB / 2 PB kept all
//! on-premises at $12 or $20 per TB-month, against 20 % on-premises plus
//! 80 % in the cloud at $5 (B2 at the time) or $20 per TB-month. The prices
//! come from a test pricing file (tests/data/cost-comparison.toml), not the
//! shipped catalog.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use tierfs::catalog::tiering::TierFile;
use tierfs::cost::model::{self, Binding, Report};
use tierfs::cost::usage::ObjectUsage;
use tierfs::cost::{PriceCatalog, Settings, Usage, format_usd};
use tierfs::rules::RuleSet;

const TB: u64 = 1_000_000_000_000;

fn prices() -> PriceCatalog {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/cost-comparison.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut catalog = PriceCatalog::default();
    catalog
        .merge_toml(&text, &path.display().to_string())
        .unwrap();
    catalog
}

fn file(id: i64, path: &str, size: u64, state: &str, hash: Option<&str>) -> TierFile {
    TierFile {
        id,
        path: PathBuf::from(path),
        size,
        mtime_ns: 0,
        last_access_ns: None,
        state: state.parse().unwrap(),
        pinned: false,
        generation: 0,
        blake3: hash.map(str::to_string),
        ino: id as u64,
    }
}

/// 100 TB: 20 TB on-premises (hot), 80 TB in the cloud (cold, one object).
fn usage_100tb() -> Usage {
    let hash = "ab".repeat(32);
    Usage {
        now_ns: 1_700_000_000_000_000_000,
        period: Duration::from_secs(30 * 86_400),
        files: vec![
            file(1, "projects/current.dat", 20 * TB, "hot", None),
            file(2, "accounting/archive.dat", 80 * TB, "cold", Some(&hash)),
        ],
        objects: vec![ObjectUsage {
            remote: "cloud".into(),
            storage_class: None,
            size: 80 * TB,
            blake3: hash,
        }],
        ledger: vec![],
    }
}

fn report(local: f64, provider: &str, scale_to: Option<u64>) -> Report {
    let settings = Settings {
        local_per_tb_month: local,
        remotes: BTreeMap::from([(
            "cloud".to_string(),
            Binding {
                provider: Some(provider.into()),
                class: None,
            },
        )]),
        scale_to,
        what_if: None,
    };
    model::compute(&usage_100tb(), &prices(), &settings, &RuleSet::new(vec![]))
}

/// Asserts `got` equals `want` dollars to the dollar (and prints the same).
fn dollars(what: &str, got: f64, want: u64) {
    assert!(
        (got - want as f64).abs() < 0.5,
        "{what}: got {got}, want ${want}"
    );
    assert_eq!(
        format_usd(got),
        format_usd(want as f64),
        "{what} as printed"
    );
}

#[test]
fn low_prices_reproduce_the_comparison() {
    // $12 local, $5 cloud.
    let r = report(12.0, "comparison-low", None);
    dollars("100 TB all on-premises", r.all_local_monthly, 1_200);
    dollars("100 TB: 20 % on-premises part", r.local.monthly, 240);
    assert_eq!(r.remotes.len(), 1);
    dollars("100 TB: 80 % cloud part", r.remotes[0].storage_monthly, 400);
    dollars("100 TB hybrid", r.monthly, 640);
    dollars("100 TB savings", r.savings_monthly, 560);
    dollars("100 TB savings per year", r.savings_yearly, 6_720);
    dollars("100 TB all in the cloud", r.all_cloud_monthly.unwrap(), 500);

    for (size, all_local, local_part, cloud_part, hybrid) in [
        (1_000 * TB, 12_000, 2_400, 4_000, 6_400),
        (2_000 * TB, 24_000, 4_800, 8_000, 12_800),
    ] {
        let r = report(12.0, "comparison-low", Some(size));
        let s = r.scale.unwrap();
        let tb = size / TB;
        assert_eq!((s.local_bytes, s.cloud_bytes), (size / 5, size / 5 * 4));
        dollars(
            &format!("{tb} TB all on-premises"),
            s.all_local_monthly,
            all_local,
        );
        dollars(&format!("{tb} TB hybrid"), s.monthly, hybrid);
        dollars(
            &format!("{tb} TB: 20 % on-premises part"),
            s.local_monthly,
            local_part,
        );
        dollars(
            &format!("{tb} TB: 80 % cloud part"),
            s.cloud_monthly,
            cloud_part,
        );
    }
}

#[test]
fn high_prices_make_hybrid_equal_all_local() {
    // $20 local, $20 cloud: hybrid costs what all-local costs.
    let r = report(20.0, "comparison-high", None);
    dollars("100 TB all on-premises, high", r.all_local_monthly, 2_000);
    dollars("100 TB: 20 % on-premises part, high", r.local.monthly, 400);
    dollars(
        "100 TB: 80 % cloud part, high",
        r.remotes[0].storage_monthly,
        1_600,
    );
    dollars("100 TB hybrid, high", r.monthly, 2_000);
    dollars("100 TB savings, high", r.savings_monthly, 0);
    for (size, all_local, local_part, cloud_part, hybrid) in [
        (1_000 * TB, 20_000, 4_000, 16_000, 20_000),
        (2_000 * TB, 40_000, 8_000, 32_000, 40_000),
    ] {
        let s = report(20.0, "comparison-high", Some(size)).scale.unwrap();
        let tb = size / TB;
        dollars(
            &format!("{tb} TB all on-premises, high"),
            s.all_local_monthly,
            all_local,
        );
        dollars(&format!("{tb} TB hybrid, high"), s.monthly, hybrid);
        dollars(
            &format!("{tb} TB: 20 % on-premises part, high"),
            s.local_monthly,
            local_part,
        );
        dollars(
            &format!("{tb} TB: 80 % cloud part, high"),
            s.cloud_monthly,
            cloud_part,
        );
    }
}
