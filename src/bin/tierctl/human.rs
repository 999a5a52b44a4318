//! Formatting numbers, sizes, durations and times for people.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `1234567` → `"1,234,567"`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// A byte count in binary units: `512 B`, `1.5 KiB`, `1.5 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    // Move up while the value would print as 1024.0 or more.
    while value >= 1023.95 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A duration in its two largest units: `3d 4h`, `4h 12m`, `12m 5s`, `5s`.
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs();
    let parts = [
        (secs / 86_400, "d"),
        (secs / 3_600 % 24, "h"),
        (secs / 60 % 60, "m"),
        (secs % 60, "s"),
    ];
    let Some(first) = parts.iter().position(|&(v, _)| v > 0) else {
        return "0s".into();
    };
    parts[first..]
        .iter()
        .take(2)
        .filter(|&&(v, _)| v > 0)
        .map(|&(v, unit)| format!("{v}{unit}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A Unix timestamp in nanoseconds as RFC 3339 in UTC, to the second:
/// `2024-05-01T10:00:00Z`. Any `i64` works, including times before 1970.
pub fn timestamp_ns(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let (days, secs_of_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs_of_day / 3600,
        secs_of_day / 60 % 60,
        secs_of_day % 60
    )
}

/// A timestamp with its age relative to `now`:
/// `2024-05-01T10:00:00Z (3d 4h ago)`.
pub fn timestamp_with_age(ns: i64, now: SystemTime) -> String {
    let now_ns = match now.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(_) => 0,
    };
    let age = i128::from(now_ns) - i128::from(ns);
    let span = Duration::from_nanos(u64::try_from(age.unsigned_abs()).unwrap_or(u64::MAX));
    if age >= 0 {
        format!("{} ({} ago)", timestamp_ns(ns), duration(span))
    } else {
        format!("{} (in {})", timestamp_ns(ns), duration(span))
    }
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian
/// calendar (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_get_thousands_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(u64::MAX), "18,446,744,073,709,551,615");
    }

    #[test]
    fn byte_sizes_use_binary_units() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1024), "1.0 KiB");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 29), "1.5 GiB");
        assert_eq!(bytes((1 << 20) - 1), "1.0 MiB");
        assert_eq!(bytes(u64::MAX), "16.0 EiB");
    }

    #[test]
    fn durations_show_two_units() {
        assert_eq!(duration(Duration::ZERO), "0s");
        assert_eq!(duration(Duration::from_secs(5)), "5s");
        assert_eq!(duration(Duration::from_secs(125)), "2m 5s");
        assert_eq!(duration(Duration::from_secs(3 * 3600 + 7)), "3h");
        assert_eq!(duration(Duration::from_secs(3 * 3600 + 720)), "3h 12m");
        assert_eq!(duration(Duration::from_secs(2 * 86_400 + 3600)), "2d 1h");
    }

    #[test]
    fn timestamps_are_utc_rfc3339() {
        assert_eq!(timestamp_ns(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            timestamp_ns(1_700_000_000_123_456_789),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(
            timestamp_ns(951_782_400_000_000_000),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(timestamp_ns(-1), "1969-12-31T23:59:59Z");
        assert_eq!(
            timestamp_ns(-86_400_000_000_000 * 365),
            "1969-01-01T00:00:00Z"
        );
        assert_eq!(timestamp_ns(i64::MAX), "2262-04-11T23:47:16Z");
        assert_eq!(timestamp_ns(i64::MIN), "1677-09-21T00:12:43Z");
    }

    #[test]
    fn timestamps_show_their_age() {
        let ns = 1_700_000_000_000_000_000;
        let now = UNIX_EPOCH + Duration::from_nanos(ns as u64) + Duration::from_secs(90);
        assert_eq!(
            timestamp_with_age(ns, now),
            "2023-11-14T22:13:20Z (1m 30s ago)"
        );
        let before = UNIX_EPOCH + Duration::from_nanos(ns as u64) - Duration::from_secs(5);
        assert_eq!(
            timestamp_with_age(ns, before),
            "2023-11-14T22:13:20Z (in 5s)"
        );
    }
}
