//! Durations as people read them: configured settings (`5m`, `150ms`), signed
//! offsets (`+1200.000042s`), measured sizes (`20m0.000s`, `52µs`) and sizes
//! as a person says them in a headline (`15m02s`, `1 day 0h00m`, `3.0 years (1095 days)`).
//!
//! At the bottom of the import ladder, so the report, the hints and the
//! sources can all format a duration without importing each other.

use std::fmt::Write as _;

/// Formats a configured duration compactly, to the millisecond, in the units
/// the settings accept (largest first, zero parts left out): `5m`, `2m30s`,
/// `1s`, `150ms`, `1d2h`, `0s`.
pub fn human_setting(secs: f64) -> String {
    if !(secs.is_finite() && secs >= 0.0) {
        return "?".into();
    }
    let mut ms = (secs * 1000.0).round() as u128;
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, len) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ] {
        if ms >= len {
            let _ = write!(out, "{}{unit}", ms / len);
            ms %= len;
        }
    }
    out
}

/// Formats a signed offset: `+1200.000042s`, `-0.250000s`.
pub fn signed_seconds(secs: f64) -> String {
    if !secs.is_finite() {
        return "?".into();
    }
    format!("{secs:+.6}s")
}

/// Formats a number of seconds for people: `20m0.000s`, `1.250s`, `150.0ms`, `52µs`.
pub fn human_duration(secs: f64) -> String {
    if !secs.is_finite() {
        return "?".into();
    }
    let neg = secs < 0.0;
    let a = secs.abs();
    let body = if a < 1e-3 {
        format!("{:.0}µs", a * 1e6)
    } else if a < 1.0 {
        format!("{:.1}ms", a * 1e3)
    } else if a < 60.0 {
        format!("{a:.3}s")
    } else {
        let total_ms = (a * 1000.0).round() as u128;
        let ms = total_ms % 1000;
        let s = (total_ms / 1000) % 60;
        let m = (total_ms / 60_000) % 60;
        let h = (total_ms / 3_600_000) % 24;
        let d = total_ms / 86_400_000;
        let mut out = String::new();
        if d > 0 {
            let _ = write!(out, "{d}d");
        }
        if d > 0 || h > 0 {
            let _ = write!(out, "{h}h");
        }
        let _ = write!(out, "{m}m{s}.{ms:03}s");
        out
    };
    if neg {
        format!("-{body}")
    } else {
        body
    }
}

/// Seconds in a day.
const DAY: f64 = 86_400.0;
/// Seconds in a Julian year, the unit people mean by "years" of drift.
const YEAR: f64 = 365.25 * DAY;

/// Formats a size as a person says it, rounded to what matters at that scale:
/// `250.0ms`, `2.5s`, `15m02s`, `5h30m`, `1 day 0h00m`, `3.0 years (1095 days)`.
/// The exact figure belongs next to it (per-source lines, JSON).
pub fn spoken_duration(secs: f64) -> String {
    if !secs.is_finite() {
        return "?".into();
    }
    let a = secs.abs();
    let sign = if secs < 0.0 { "-" } else { "" };
    let body = if a < 1.0 {
        return human_duration(secs);
    } else if a < 59.95 {
        format!("{a:.1}s")
    } else if a < 3599.5 {
        let s = a.round() as u64;
        format!("{}m{:02}s", s / 60, s % 60)
    } else if a < DAY - 30.0 {
        let m = (a / 60.0).round() as u64;
        format!("{}h{:02}m", m / 60, m % 60)
    } else if a < 365.0 * DAY {
        let m = (a / 60.0).round() as u64;
        let days = m / 1440;
        let unit = if days == 1 { "day" } else { "days" };
        format!("{days} {unit} {}h{:02}m", m % 1440 / 60, m % 60)
    } else {
        format!("{:.1} years ({} days)", a / YEAR, (a / DAY).round() as u64)
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations() {
        for (s, want) in [
            (1200.0, "20m0.000s"),
            (1.25, "1.250s"),
            (0.15, "150.0ms"),
            (0.000052, "52µs"),
            (3600.5, "1h0m0.500s"),
            (90000.0, "1d1h0m0.000s"),
            (-2.5, "-2.500s"),
        ] {
            assert_eq!(human_duration(s), want);
        }
        for (s, want) in [
            (300.0, "5m"),
            (150.0, "2m30s"),
            (1.0, "1s"),
            (0.15, "150ms"),
            (0.0, "0s"),
            (93_784.005, "1d2h3m4s5ms"),
            (86_400.0, "1d"),
        ] {
            assert_eq!(human_setting(s), want);
        }
    }

    #[test]
    fn spoken_durations() {
        for (s, want) in [
            (0.25, "250.0ms"),
            (2.5, "2.5s"),
            (59.97, "1m00s"),
            (902.4, "15m02s"),
            (1199.9996, "20m00s"),
            (3599.7, "1h00m"),
            (19_800.0, "5h30m"),
            (19_799.0, "5h30m"),
            (86_399.0, "1 day 0h00m"),
            (86_400.0, "1 day 0h00m"),
            (2.0 * 86_400.0 + 3_900.0, "2 days 1h05m"),
            (3.0 * 365.0 * 86_400.0, "3.0 years (1095 days)"),
            (-19_800.0, "-5h30m"),
            (f64::NAN, "?"),
        ] {
            assert_eq!(spoken_duration(s), want, "{s}");
        }
    }
}
