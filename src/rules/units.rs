//! Durations and sizes: parsing the rule spellings, printing the canonical
//! ones, and describing ages and sizes in explanations.

use std::time::Duration;

const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;

/// The units a duration may use, with their length in seconds.
const DURATION_UNITS: [(char, u64); 5] = [
    ('h', HOUR),
    ('d', DAY),
    ('w', 7 * DAY),
    ('m', 30 * DAY),
    ('y', 365 * DAY),
];

/// Why a duration token was rejected. The parser turns it into a message
/// that names the keyword and the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DurationError {
    /// Not shaped like a duration at all, with an optional hint.
    Malformed(Option<String>),
    /// A negative duration such as `-30d`.
    Negative,
    /// `0d`, `0h`, ...
    Zero,
    /// More seconds than fit in a `u64`.
    TooLarge,
}

const UNITS_HELP: &str =
    "units are h (hours), d (days), w (weeks), m (months = 30d) and y (years = 365d)";

/// Parses `30d`, `12w`, `6m` (30 days), `1y` (365 days) or `36h`.
pub(crate) fn parse_duration(token: &str) -> Result<Duration, DurationError> {
    if let Some(rest) = token.strip_prefix('-')
        && rest.starts_with(|c: char| c.is_ascii_digit())
    {
        return Err(DurationError::Negative);
    }
    let digits = token
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(token.len());
    let (number, unit) = token.split_at(digits);
    if number.is_empty() {
        return Err(DurationError::Malformed(None));
    }
    let n: u64 = number.parse().map_err(|_| DurationError::TooLarge)?;
    let seconds_per_unit = match unit {
        "" => return Err(DurationError::Malformed(None)),
        "h" => HOUR,
        "d" => DAY,
        "w" => 7 * DAY,
        "m" => 30 * DAY,
        "y" => 365 * DAY,
        _ => return Err(DurationError::Malformed(Some(unit_hint(number, unit)))),
    };
    if n == 0 {
        return Err(DurationError::Zero);
    }
    let secs = n
        .checked_mul(seconds_per_unit)
        .ok_or(DurationError::TooLarge)?;
    Ok(Duration::from_secs(secs))
}

/// Why `unit` (after the digits `number`) is not a duration unit, and what to
/// write instead.
fn unit_hint(number: &str, unit: &str) -> String {
    if unit.starts_with(['.', ',']) {
        return "durations are whole numbers; use a smaller unit, e.g. 36h instead of 1.5d".into();
    }
    if unit.contains(|c: char| c.is_ascii_digit()) {
        // `1y6m`: say what the total is in days, if it is well formed.
        return match compound_seconds(&format!("{number}{unit}")) {
            Some(secs) if secs.is_multiple_of(DAY) => {
                format!("a duration has one unit; write {}d instead", secs / DAY)
            }
            Some(secs) => format!("a duration has one unit; write {}h instead", secs / HOUR),
            None => format!("a duration has one unit; {UNITS_HELP}"),
        };
    }
    let lower = unit.to_ascii_lowercase();
    let word = match lower.as_str() {
        "hr" | "hrs" | "hour" | "hours" => Some('h'),
        "day" | "days" => Some('d'),
        "wk" | "wks" | "week" | "weeks" => Some('w'),
        "mo" | "mon" | "month" | "months" => Some('m'),
        "yr" | "yrs" | "year" | "years" => Some('y'),
        _ => None,
    };
    if let Some(u) = word {
        return format!("write {number}{u}");
    }
    if matches!(
        lower.as_str(),
        "s" | "sec" | "secs" | "min" | "mins" | "minute" | "minutes"
    ) || unit == "M"
    {
        return "there are no seconds or minutes (m means months); the smallest unit is h (hours)"
            .into();
    }
    if matches!(unit, "H" | "D" | "W" | "Y") {
        return "units are lower-case: h, d, w, m (months = 30d) or y (years = 365d)".into();
    }
    UNITS_HELP.into()
}

/// `1y6m` as seconds, if it is a run of number-unit pairs.
fn compound_seconds(s: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let n: u64 = rest[..digits].parse().ok()?;
        let unit = rest[digits..].chars().next()?;
        let (_, per) = DURATION_UNITS.iter().find(|(c, _)| *c == unit)?;
        total = total.checked_add(n.checked_mul(*per)?)?;
        rest = &rest[digits + unit.len_utf8()..];
    }
    Some(total)
}

/// The canonical spelling of a duration: whole days as `Nd`, anything else as
/// `Nh`. Weeks, months and years are shown in days so that the text says
/// exactly what is meant (`6m` is `180d`, `1y` is `365d`).
pub(crate) fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs.is_multiple_of(DAY) {
        format!("{}d", secs / DAY)
    } else if secs.is_multiple_of(HOUR) {
        format!("{}h", secs / HOUR)
    } else {
        // Not produced by the parser; kept exact for hand-built conditions.
        format!("{secs}s")
    }
}

const DECIMAL_UNITS: [(&str, u64); 5] = [
    ("PB", 1_000_000_000_000_000),
    ("TB", 1_000_000_000_000),
    ("GB", 1_000_000_000),
    ("MB", 1_000_000),
    ("KB", 1_000),
];
const BINARY_UNITS: [(&str, u64); 5] = [
    ("PiB", 1 << 50),
    ("TiB", 1 << 40),
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
];

/// The canonical spelling of a size: the unit that divides it exactly and
/// gives the smallest whole number: `1GiB`, `100MB`, `1000KiB`; 1536 bytes
/// stays `1536B` because `1.5KiB` is not whole. `parse_size` reads every
/// spelling back to the same byte count.
pub(crate) fn format_size(n: u64) -> String {
    if n == 0 {
        return "0B".into();
    }
    let mut best = (n, "B");
    for (name, mult) in DECIMAL_UNITS.iter().chain(BINARY_UNITS.iter()) {
        if n.is_multiple_of(*mult) && n / mult < best.0 {
            best = (n / mult, name);
        }
    }
    format!("{}{}", best.0, best.1)
}

/// True if the canonical spelling of `n` uses a binary unit (KiB, MiB, ...).
pub(crate) fn is_binary_spelling(n: u64) -> bool {
    format_size(n).ends_with("iB")
}

/// A size for people, in the same family of units as the threshold it is
/// compared with, with the exact byte count when that adds anything:
/// `3.2 GB (3200000000 bytes)`, `512 bytes`.
pub(crate) fn describe_size(n: u64, binary: bool) -> String {
    let units: &[(&str, u64)] = if binary {
        &BINARY_UNITS
    } else {
        &DECIMAL_UNITS
    };
    for (name, mult) in units {
        if n >= *mult {
            let value = n as f64 / *mult as f64;
            let shown = if n.is_multiple_of(*mult) {
                format!("{} {name}", n / mult)
            } else {
                format!("{value:.1} {name}")
            };
            return format!("{shown} ({n} bytes)");
        }
    }
    if n == 1 {
        "1 byte".into()
    } else {
        format!("{n} bytes")
    }
}

/// How long ago something happened, for explanations: `412 days`, `5 hours`.
///
/// When the age is within a day of the threshold it is compared with, days
/// alone could not show which side of the threshold it is on, so the hours,
/// minutes and seconds are added (`365 days 2h 5m 0s`), and an exact tie
/// says `exactly 365 days`.
pub(crate) fn describe_age(age: Duration, threshold: Duration) -> String {
    let secs = age.as_secs();
    if age == threshold {
        return format!("exactly {}", coarse_age(secs, true));
    }
    if age.abs_diff(threshold) < Duration::from_secs(DAY) && secs >= DAY {
        let (d, rest) = (secs / DAY, secs % DAY);
        return format!(
            "{} {}h {}m {}s",
            plural(d, "day"),
            rest / HOUR,
            rest % HOUR / 60,
            rest % 60
        );
    }
    coarse_age(secs, false)
}

fn coarse_age(secs: u64, exact: bool) -> String {
    if secs >= 2 * DAY || (exact && secs.is_multiple_of(DAY) && secs >= DAY) {
        plural(secs / DAY, "day")
    } else if secs >= 2 * HOUR || (exact && secs.is_multiple_of(HOUR) && secs >= HOUR) {
        plural(secs / HOUR, "hour")
    } else if secs >= 120 {
        plural(secs / 60, "minute")
    } else {
        plural(secs, "second")
    }
}

fn plural(n: u64, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * DAY)));
        assert_eq!(parse_duration("12w"), Ok(Duration::from_secs(84 * DAY)));
        assert_eq!(parse_duration("6m"), Ok(Duration::from_secs(180 * DAY)));
        assert_eq!(parse_duration("1y"), Ok(Duration::from_secs(365 * DAY)));
        assert_eq!(parse_duration("36h"), Ok(Duration::from_secs(36 * HOUR)));
        assert_eq!(parse_duration("007d"), Ok(Duration::from_secs(7 * DAY)));
        assert_eq!(parse_duration("0d"), Err(DurationError::Zero));
        assert_eq!(parse_duration("-3d"), Err(DurationError::Negative));
        assert_eq!(parse_duration("365"), Err(DurationError::Malformed(None)));
        assert_eq!(parse_duration("d"), Err(DurationError::Malformed(None)));
        let hint = |t: &str| match parse_duration(t) {
            Err(DurationError::Malformed(Some(h))) => h,
            other => panic!("{t}: {other:?}"),
        };
        assert!(hint("1.5d").contains("whole numbers"));
        assert!(hint("3D").contains("lower-case"));
        assert!(hint("3dd").starts_with("units are"));
        assert_eq!(hint("1y6m"), "a duration has one unit; write 545d instead");
        assert_eq!(hint("1d12h"), "a duration has one unit; write 36h instead");
        assert_eq!(hint("30days"), "write 30d");
        assert_eq!(hint("2Years"), "write 2y");
        assert!(hint("30min").contains("smallest unit is h"));
        assert!(hint("30M").contains("m means months"));
        assert_eq!(
            parse_duration("99999999999999999999d"),
            Err(DurationError::TooLarge)
        );
        assert_eq!(
            parse_duration("999999999999999999y"),
            Err(DurationError::TooLarge)
        );
    }

    #[test]
    fn canonical_durations() {
        assert_eq!(format_duration(parse_duration("1y").unwrap()), "365d");
        assert_eq!(format_duration(parse_duration("48h").unwrap()), "2d");
        assert_eq!(format_duration(parse_duration("36h").unwrap()), "36h");
        assert_eq!(format_duration(Duration::from_secs(5)), "5s");
    }

    #[test]
    fn canonical_sizes() {
        assert_eq!(format_size(0), "0B");
        assert_eq!(format_size(1), "1B");
        assert_eq!(format_size(1536), "1536B");
        assert_eq!(format_size(1024), "1KiB");
        assert_eq!(format_size(1000), "1KB");
        assert_eq!(format_size(100_000_000), "100MB");
        assert_eq!(format_size(1 << 30), "1GiB");
        assert_eq!(format_size(1_024_000), "1000KiB");
        assert_eq!(format_size(u64::MAX), format!("{}B", u64::MAX));
        for n in [0, 7, 1000, 1024, 1 << 40, 3 * 1_000_000_000_000_000] {
            assert_eq!(
                crate::config::parse_size(&format_size(n)),
                Ok(n),
                "{}",
                format_size(n)
            );
        }
    }

    #[test]
    fn ages_and_sizes_for_people() {
        let d = |n| Duration::from_secs(n * DAY);
        assert_eq!(describe_age(d(412), d(365)), "412 days");
        assert_eq!(describe_age(d(365), d(365)), "exactly 365 days");
        assert_eq!(
            describe_age(d(365) + Duration::from_secs(125), d(365)),
            "365 days 0h 2m 5s"
        );
        assert_eq!(
            describe_age(Duration::from_secs(5 * HOUR), d(30)),
            "5 hours"
        );
        assert_eq!(describe_age(Duration::from_secs(59), d(30)), "59 seconds");
        assert_eq!(describe_size(512, true), "512 bytes");
        assert_eq!(describe_size(1 << 30, true), "1 GiB (1073741824 bytes)");
        assert_eq!(
            describe_size(3_200_000_000, false),
            "3.2 GB (3200000000 bytes)"
        );
    }
}
