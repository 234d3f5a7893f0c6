//! Text and JSON reports.

/// Formats a number of seconds for people: `20m0.000s`, `1.250s`, `150.0ms`.
pub fn human_duration(secs: f64) -> String {
    format!("{secs:.3}s")
}
