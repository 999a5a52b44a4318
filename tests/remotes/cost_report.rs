//! `tierctl cost-report` end to end: files migrate through a live mount to
//! the S3 test server (SeaweedFS on 127.0.0.1), one is recalled, one is
//! deleted long before its class's minimum storage duration; the JSON
//! report's storage, request, egress and early-deletion figures must equal a
//! hand computation from the test's own pricing file. The HTML report is
//! opened in headless Chromium and must render its chart.

use crate::common;
use crate::servers;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::tiering::{Pause, add_rule, content, migrate, remount_with_env, write_old};
use common::{MountOptions, TestMount, wait_until};
use serde_json::Value;
use servers::SeaweedFs;

/// The test's prices: round, distinct numbers so that each figure can only
/// come from its own formula. GB = 10^9 bytes.
const STORAGE_PER_GB_MONTH: f64 = 1000.0;
const PUT_PER_1000: f64 = 11.0;
const GET_PER_1000: f64 = 7.0;
const LIST_PER_1000: f64 = 13.0;
const DELETE_PER_1000: f64 = 0.0;
const EGRESS_PER_GB: f64 = 500.0;
const RETRIEVAL_PER_GB: f64 = 30.0;
const MIN_STORAGE_DAYS: f64 = 30.0;
const GB: f64 = 1e9;
/// Local storage, USD per TB-month (TB = 10^12 bytes).
const LOCAL_PER_TB: f64 = 20.0;

fn price_file(dir: &Path) -> PathBuf {
    write_prices(
        dir,
        "prices.toml",
        [
            STORAGE_PER_GB_MONTH,
            PUT_PER_1000,
            GET_PER_1000,
            LIST_PER_1000,
            DELETE_PER_1000,
            EGRESS_PER_GB,
            RETRIEVAL_PER_GB,
        ],
    )
}

/// Writes a price file for provider `e2e` with [storage, put, get, list,
/// delete, egress, retrieval] prices.
fn write_prices(dir: &Path, name: &str, p: [f64; 7]) -> PathBuf {
    let text = format!(
        "[e2e]\nname = \"test provider\"\ndefault_class = \"STANDARD\"\n\n\
         [e2e.classes.STANDARD]\nunit = \"USD; GB = 10^9 bytes\"\n\
         storage_per_gb_month = {:?}\nput_per_1000 = {:?}\n\
         get_per_1000 = {:?}\nlist_per_1000 = {:?}\n\
         delete_per_1000 = {:?}\negress_per_gb = {:?}\n\
         retrieval_per_gb = {:?}\nfree_egress_multiple = 0.0\n\
         min_storage_days = {}\ngb_bytes = 1_000_000_000\nas_of = \"2026-11-22\"\n\
         source = \"tests/cost_report.rs\"\n",
        p[0], p[1], p[2], p[3], p[4], p[5], p[6], MIN_STORAGE_DAYS as u32
    );
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    path
}

/// A mount with remote `cloud` on the S3 test server (kept running as long
/// as the returned handle lives).
fn mount(prefix: &str) -> (std::sync::Arc<SeaweedFs>, TestMount) {
    let server = SeaweedFs::shared();
    let m = TestMount::with_options(MountOptions {
        allow_other: true,
        extra_top: "migrate_interval = \"off\"\ngc_grace = \"0s\"\n".into(),
        extra_sections: format!(
            "[remote.cloud]\n{}\n[cost]\nlocal_per_tb_month = {LOCAL_PER_TB:?}\n\n[cost.providers]\ncloud = \"e2e\"\n",
            server.remote_toml(prefix, "")
        ),
        ..Default::default()
    });
    (server, m)
}

/// Runs tierctl and parses its JSON output; fails the test on a non-zero exit.
fn json(m: &TestMount, args: &[&str]) -> Value {
    let out = m.tierctl(args);
    assert!(
        out.status.success(),
        "tierctl {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        m.log_banner()
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "tierctl {args:?}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn f(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("`{key}` missing in {v}"))
}

fn u(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("`{key}` missing in {v}"))
}

fn close(what: &str, got: f64, want: f64) {
    assert!(
        (got - want).abs() <= 1e-9 * want.abs().max(1.0),
        "{what}: report says {got}, hand computation {want}"
    );
}

/// (requests, bytes) of every GET the ledger holds for file `path`.
fn gets_for(m: &TestMount, path: &str) -> Vec<(u64, u64)> {
    let conn = rusqlite::Connection::open_with_flags(
        m.catalog(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut stmt = conn
        .prepare("SELECT requests, bytes FROM ledger WHERE op = 'get' AND path = CAST(?1 AS BLOB) ORDER BY id")
        .unwrap();
    stmt.query_map([path], |r| {
        Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// Ages (ns) of the objects the daemon deleted, from the catalog's ledger.
fn deleted_object_ages(m: &TestMount) -> Vec<i64> {
    let conn = rusqlite::Connection::open_with_flags(
        m.catalog(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut stmt = conn
        .prepare("SELECT object_age_ns FROM ledger WHERE op = 'delete' ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn json_report_matches_a_hand_computation() {
    let prefix = format!("cost-{}", std::process::id());
    let (_server, m) = mount(&prefix);
    let prices = price_file(m.root());

    // Known files: one multipart upload (12 MiB, 8 MiB parts), two single PUTs,
    // one file that stays local.
    let big = content(11, 12 << 20);
    let small = content(12, 300_000);
    let doomed = content(13, 200_000);
    let local = content(14, 100_000);
    write_old(&m.m("archive/big.bin"), &big, 400);
    write_old(&m.m("archive/small.bin"), &small, 400);
    write_old(&m.m("scratch/doomed.bin"), &doomed, 400);
    write_old(&m.m("keep/local.bin"), &local, 400);
    add_rule(&m, "archive/** older 30d -> cloud");
    add_rule(&m, "scratch/** older 30d -> cloud");
    let s = migrate(&m);
    assert_eq!((s.released, s.failures.len()), (3, 0), "{s:?}");

    // Recall one file; delete another long before 30 days have passed.
    let r = json(&m, &["recall", "--json", "archive/small.bin"]);
    assert_eq!(r["recalled"], 1, "{r}");
    fs::remove_file(m.m("scratch/doomed.bin")).unwrap();
    let mut gc = Value::Null;
    let deleted = wait_until(Duration::from_secs(30), || {
        gc = json(&m, &["gc", "--json"]);
        gc["deleted"] == 1
    });
    assert!(deleted.is_some(), "gc never deleted the object: {gc}");
    let ages = deleted_object_ages(&m);
    assert_eq!(ages.len(), 1, "{ages:?}");
    assert!(
        (0..300_000_000_000).contains(&ages[0]),
        "object age {} ns",
        ages[0]
    );

    let report = json(
        &m,
        &[
            "cost-report",
            "--format",
            "json",
            "--prices",
            prices.to_str().unwrap(),
            "--period",
            "30d",
        ],
    );

    // Hand computation.
    let (big_n, small_n, doomed_n, local_n) = (
        big.len() as f64,
        small.len() as f64,
        doomed.len() as f64,
        local.len() as f64,
    );
    // Local: the file that never left and the recalled one.
    let local_bytes = local_n + small_n;
    // Stored: big and small (small's copy stays after its recall); doomed's
    // object was deleted by gc.
    let stored = big_n + small_n;
    // PUT class: big = create + 2 parts + complete; small and doomed: 1 each.
    let puts = 4.0 + 1.0 + 1.0;
    // GET class: one verification read per upload (3), one recall download
    // (1). No HEAD before the uploads: the catalog had never seen any of
    // these contents, so each is uploaded without asking first.
    let gets = 3.0 + 1.0;
    let deletes = 1.0;
    // Egress: three verification reads and one recall.
    let egress = big_n + small_n + doomed_n + small_n;
    let age_days = ages[0] as f64 / 86_400e9;

    let want_local = local_bytes / 1e12 * LOCAL_PER_TB;
    let want_storage = stored / GB * STORAGE_PER_GB_MONTH;
    let want_requests =
        (puts * PUT_PER_1000 + gets * GET_PER_1000 + deletes * DELETE_PER_1000) / 1000.0;
    let want_egress = egress / GB * EGRESS_PER_GB;
    let want_retrieval = egress / GB * RETRIEVAL_PER_GB;
    let want_early = doomed_n / GB * STORAGE_PER_GB_MONTH * (MIN_STORAGE_DAYS - age_days) / 30.0;
    let want_monthly =
        want_local + want_storage + want_requests + want_egress + want_retrieval + want_early;
    let total_bytes = big_n + small_n + local_n;

    assert_eq!(report["currency"], "USD");
    close("period_days", f(&report, "period_days"), 30.0);
    let l = &report["local"];
    assert_eq!(u(l, "bytes") as f64, local_bytes, "{l}");
    close("local.monthly", f(l, "monthly"), want_local);
    let lines = report["remotes"].as_array().unwrap();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let c = &lines[0];
    assert_eq!(c["remote"], "cloud");
    assert_eq!(c["class"], "STANDARD");
    assert_eq!(c["priced"], true);
    assert_eq!(u(c, "objects"), 2, "{c}");
    assert_eq!(u(c, "bytes") as f64, stored, "{c}");
    assert_eq!(u(c, "put_requests") as f64, puts, "{c}");
    assert_eq!(u(c, "get_requests") as f64, gets, "{c}");
    assert_eq!(u(c, "delete_requests") as f64, deletes, "{c}");
    assert_eq!(u(c, "list_requests"), 0, "{c}");
    assert_eq!(u(c, "egress_bytes") as f64, egress, "{c}");
    assert_eq!(u(c, "recall_bytes") as f64, small_n, "{c}");
    assert_eq!(u(c, "early_deletes"), 1, "{c}");
    close("storage_monthly", f(c, "storage_monthly"), want_storage);
    close("requests_cost", f(c, "requests_cost"), want_requests);
    close("egress_cost", f(c, "egress_cost"), want_egress);
    close("retrieval_cost", f(c, "retrieval_cost"), want_retrieval);
    close(
        "early_deletion_cost",
        f(c, "early_deletion_cost"),
        want_early,
    );
    close("monthly", f(&report, "monthly"), want_monthly);
    close(
        "all_local_monthly",
        f(&report, "all_local_monthly"),
        total_bytes / 1e12 * LOCAL_PER_TB,
    );
    close(
        "all_cloud_monthly",
        f(&report, "all_cloud_monthly"),
        total_bytes / GB * STORAGE_PER_GB_MONTH,
    );
    close(
        "savings_monthly",
        f(&report, "savings_monthly"),
        total_bytes / 1e12 * LOCAL_PER_TB - want_monthly,
    );
    close(
        "savings_yearly",
        f(&report, "savings_yearly"),
        12.0 * (total_bytes / 1e12 * LOCAL_PER_TB - want_monthly),
    );

    // The recalled file tops the recall costs.
    let top = &report["top_recalls"][0];
    assert_eq!(top["path"], "archive/small.bin", "{report}");
    assert_eq!(u(top, "requests"), 1);
    close(
        "top recall cost",
        f(top, "cost"),
        GET_PER_1000 / 1000.0 + small_n / GB * (EGRESS_PER_GB + RETRIEVAL_PER_GB),
    );
    // By rule: big (cold) and small (premigrated) under the archive rule.
    let by_rule = report["by_rule"].as_array().unwrap();
    assert_eq!(by_rule.len(), 1, "{by_rule:?}");
    assert_eq!(by_rule[0]["name"], "archive/** older 30d -> cloud");
    assert_eq!(
        (u(&by_rule[0], "files"), u(&by_rule[0], "cold_bytes")),
        (2, big.len() as u64)
    );
    // By top-level directory.
    let dirs: Vec<(String, u64)> = report["by_directory"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["name"].as_str().unwrap().to_string(), u(g, "files")))
        .collect();
    assert_eq!(
        dirs,
        [("archive/".to_string(), 2), ("keep/".to_string(), 1)]
    );
    assert!(
        report["footer"]
            .as_str()
            .unwrap()
            .contains("GB = 10^9 bytes")
    );

    // --what-if counts what `rule add --dry-run` counts, and prices it.
    let rule = "keep/** older 30d -> cloud";
    let dry = json(&m, &["rule", "add", "--dry-run", "--json", rule]);
    let what = json(
        &m,
        &[
            "cost-report",
            "--format",
            "json",
            "--prices",
            prices.to_str().unwrap(),
            "--what-if",
            rule,
        ],
    );
    let w = &what["what_if"];
    assert_eq!(w["files"], dry["decided_by_rule"]["files"], "{w}\n{dry}");
    assert_eq!(w["bytes"], dry["decided_by_rule"]["bytes"], "{w}\n{dry}");
    assert_eq!((u(w, "files"), u(w, "bytes") as f64), (1, local_n));
    close(
        "what-if monthly_after",
        f(w, "monthly_after"),
        f(&what, "monthly") - local_n / 1e12 * LOCAL_PER_TB + local_n / GB * STORAGE_PER_GB_MONTH,
    );

    // CSV and table carry the same totals.
    let out = m.tierctl(&[
        "cost-report",
        "--format",
        "csv",
        "--prices",
        prices.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let csv = String::from_utf8(out.stdout).unwrap();
    assert!(csv.starts_with("section,name,class,count,bytes,"), "{csv}");
    let now_row = csv
        .lines()
        .find(|l| l.starts_with("total,now,"))
        .unwrap_or_else(|| panic!("{csv}"));
    let monthly: f64 = now_row.split(',').nth(8).unwrap().parse().unwrap();
    assert!((monthly - want_monthly).abs() < 1e-5, "{now_row}");
    let out = m.tierctl(&["cost-report", "--prices", prices.to_str().unwrap()]);
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "local disk",
        "cloud",
        "STANDARD",
        "all local",
        "savings",
        "archive/small.bin",
    ] {
        assert!(table.contains(needle), "`{needle}` missing:\n{table}");
    }
}

/// Decodes a PNG: (width, height, RGB pixels).
fn decode_png(png_path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(fs::File::open(png_path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.bit_depth, png::BitDepth::Eight, "unexpected PNG depth");
    let samples = info.color_type.samples();
    assert!(
        samples >= 3,
        "unexpected PNG colour type {:?}",
        info.color_type
    );
    let pixels = buf[..info.buffer_size()]
        .chunks(samples)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    (info.width, info.height, pixels)
}

/// Pixels within a small distance of `rgb` (the chart's bar colours).
fn pixels_near(pixels: &[[u8; 3]], rgb: [u8; 3]) -> usize {
    pixels
        .iter()
        .filter(|p| (0..3).all(|i| p[i].abs_diff(rgb[i]) <= 6))
        .count()
}

/// The chromium binary; the test fails (not skips) without it:
/// scripts/setup installs it.
fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in std::env::var("PATH").unwrap_or_default().split(':') {
            let p = Path::new(dir).join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!("chromium is not installed (scripts/setup installs the apt package `chromium`)");
}

#[test]
fn html_report_renders_its_chart_in_headless_chromium() {
    let browser = chromium();
    let prefix = format!("cost-html-{}", std::process::id());
    let (_server, m) = mount(&prefix);
    // Storage only, at the local price per byte ($20/TB = $0.02/GB), so
    // that the local and cloud parts of the bars are both visible.
    let prices = write_prices(
        m.root(),
        "html-prices.toml",
        [0.02, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    );
    write_old(&m.m("archive/a.bin"), &content(21, 400_000), 400);
    write_old(&m.m("work/b.bin"), &content(22, 100_000), 1);
    add_rule(&m, "archive/** older 30d -> cloud");
    assert_eq!(migrate(&m).released, 1);

    let out = m.tierctl(&[
        "cost-report",
        "--format",
        "html",
        "--prices",
        prices.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = String::from_utf8(out.stdout).unwrap();
    for forbidden in ["src=", "href=", "url(", "<script", "@import"] {
        assert!(
            !html.contains(forbidden),
            "the page must not reference anything outside itself: found `{forbidden}`"
        );
    }
    let page = m.root().join("cost.html");
    fs::write(&page, &html).unwrap();
    let profile = m.root().join("chromium-profile");
    let common_args = |cmd: &mut Command| {
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .env("HOME", m.root());
    };

    // The DOM after rendering: the chart and its labels are there.
    let mut dump = Command::new(&browser);
    common_args(&mut dump);
    let out = dump.arg("--dump-dom").arg(&page).output().unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("id=\"cost-chart\""),
        "no chart in the DOM (status {}):\n{dom}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    for label in [
        "Hybrid now",
        "All local",
        "All cloud",
        "Local",
        "Cloud",
        "Monthly cost (USD)",
    ] {
        assert!(dom.contains(label), "label `{label}` missing from the DOM");
    }
    assert!(dom.contains("class=\"segment\""), "no bar segments");

    // A screenshot: not blank (white page) but many colours (bars, text).
    let shot = m.root().join("cost.png");
    let mut capture = Command::new(&browser);
    common_args(&mut capture);
    let out = capture
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=900,700")
        .arg(&page)
        .output()
        .unwrap();
    assert!(
        shot.exists(),
        "no screenshot (status {}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let (w, h, pixels) = decode_png(&shot);
    assert_eq!((w, h), (900, 700));
    let colours: std::collections::HashSet<[u8; 3]> = pixels.iter().copied().collect();
    assert!(
        colours.len() > 2,
        "the screenshot is blank ({} colours)",
        colours.len()
    );
    // The bars are drawn: many pixels of the local (#2f6fb0) and cloud
    // (#e8912d) colours.
    let local = pixels_near(&pixels, [0x2f, 0x6f, 0xb0]);
    let cloud = pixels_near(&pixels, [0xe8, 0x91, 0x2d]);
    assert!(
        local > 500 && cloud > 500,
        "bars not rendered: {local} local-coloured and {cloud} cloud-coloured pixels"
    );
}

#[test]
fn mistakes_are_reported_with_their_cause() {
    // No daemon and no catalog yet: an empty report, not an error.
    let m = TestMount::unmounted(MountOptions::default());
    let r = json(&m, &["cost-report", "--format", "json"]);
    assert_eq!(
        (r["files"].as_u64(), r["monthly"].as_f64()),
        (Some(0), Some(0.0))
    );

    let run = |args: &[&str]| {
        let out = m.tierctl(args);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["cost-report", "--scale", "lots"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--scale") && err.contains("lots"), "{err}");
    let (code, err) = run(&["cost-report", "--what-if", "archive/** ->"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("invalid rule"), "{err}");
    let (code, err) = run(&["cost-report", "--what-if", "a/** -> nowhere"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("nowhere"), "{err}");
    let missing = m.root().join("no-such-prices.toml");
    let (code, err) = run(&["cost-report", "--prices", missing.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("no-such-prices.toml"), "{err}");
    let bad = m.root().join("bad.toml");
    fs::write(
        &bad,
        "[b2.classes.standard]\nstorage_per_gb_month = \"cheap\"\n",
    )
    .unwrap();
    let (code, err) = run(&["cost-report", "--prices", bad.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("bad.toml") && err.contains("storage_per_gb_month"),
        "{err}"
    );
}

/// Reading a cold file before its recall finishes fetches 4 MiB chunks with
/// ranged GETs: each is billed to the file, and the report's recall costs
/// include them besides the full recall.
#[test]
fn chunk_reads_of_cold_files_are_billed_to_the_file() {
    let pause = Pause::at("downloaded");
    let prefix = format!("cost-chunks-{}", std::process::id());
    let (_server, mut m) = mount(&prefix);
    let prices = price_file(m.root());
    let chunk = 4u64 << 20;
    let data = content(31, 2 * chunk as usize + 1000); // three chunks
    write_old(&m.m("media/film.bin"), &data, 400);
    add_rule(&m, "media/** -> cloud");
    assert_eq!(migrate(&m).released, 1);
    remount_with_env(&mut m, pause.env());

    // Read it all while the background recall is held before its end.
    let read = fs::read(m.m("media/film.bin")).unwrap();
    assert!(read == data, "wrong bytes read");
    pause.wait(&m);

    // The reader and the recall share one chunk-by-chunk fill: every chunk
    // is one ranged GET, fetched once, billed to the file. (Ledger rows are
    // written behind the reads; wait for them.)
    let size = data.len() as u64;
    let fetched = |gets: &[(u64, u64)]| gets.iter().map(|(_, b)| b).sum::<u64>();
    wait_until(Duration::from_secs(10), || {
        fetched(&gets_for(&m, "media/film.bin")) >= size
    });
    let gets = gets_for(&m, "media/film.bin");
    assert!(
        gets.iter()
            .all(|(n, b)| *n == 1 && (*b == chunk || *b == 1000)),
        "ranged GETs of whole chunks: {gets:?}"
    );
    assert_eq!(
        fetched(&gets),
        size,
        "every chunk fetched exactly once: {gets:?}"
    );

    let report = json(
        &m,
        &[
            "cost-report",
            "--format",
            "json",
            "--prices",
            prices.to_str().unwrap(),
        ],
    );
    let top = &report["top_recalls"][0];
    assert_eq!(top["path"], "media/film.bin", "{report}");
    let requests: u64 = gets.iter().map(|(n, _)| n).sum();
    let bytes: u64 = gets.iter().map(|(_, b)| b).sum();
    assert_eq!((u(top, "requests"), u(top, "bytes")), (requests, bytes));
    close(
        "recall cost",
        f(top, "cost"),
        requests as f64 * GET_PER_1000 / 1000.0
            + bytes as f64 / GB * (EGRESS_PER_GB + RETRIEVAL_PER_GB),
    );
    m.kill9();
}
