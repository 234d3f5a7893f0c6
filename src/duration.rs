//! Durations as people read them: configured settings (`5m`, `150ms`), signed
//! offsets (`+1200.000042s`) and measured sizes (`20m0.000s`, `52µs`).
//!
//! At the bottom of the import ladder, so the report, the hints and the
//! sources can all format a duration without importing each other.

use std::fmt::Write as _;

/// Formats a configured duration compactly: `5m`, `2m30s`, `1s`, `150ms`.
pub fn human_setting(secs: f64) -> String {
    if !(secs.is_finite() && secs >= 0.0) {
        return "?".into();
    }
    humantime::format_duration(std::time::Duration::from_millis(
        (secs * 1000.0).round() as u64
    ))
    .to_string()
    .replace(' ', "")
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
        ] {
            assert_eq!(human_setting(s), want);
        }
    }
}
