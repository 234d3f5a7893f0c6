//! Coverage runs: how many, and a record of each for `bench/coverage.sh`.

use std::fs;

/// Runs per case for the coverage tests (truth inside the interval every
/// time): `default`, or `SKEWGUARD_TEST_RUNS` when set (bench/run.sh asks for
/// more). Never fewer than one.
pub fn coverage_runs(default: usize) -> usize {
    std::env::var("SKEWGUARD_TEST_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
        .max(1)
}

/// `SKEWGUARD_HTTP_BUDGET` for the coverage tests: 600 ms (enough for a few
/// cuts, short enough for many runs), or `SKEWGUARD_TEST_HTTP_BUDGET` when set
/// (bench/run.sh gives the default 2 s, so its estimate figures are the real ones).
pub fn coverage_http_budget() -> String {
    std::env::var("SKEWGUARD_TEST_HTTP_BUDGET").unwrap_or_else(|_| "600ms".into())
}

/// Appends one run's numbers (seconds) as a JSON line to the file named by
/// `SKEWGUARD_COVERAGE_LOG`, if set: bench/run.sh summarises them. Tests
/// assert only that the truth is inside; the figures belong to the benchmark.
pub fn record_coverage(
    case: &str,
    truth: f64,
    offset: f64,
    uncertainty: f64,
    estimate: Option<f64>,
) {
    let Some(path) = std::env::var_os("SKEWGUARD_COVERAGE_LOG") else {
        return;
    };
    let line = serde_json::json!({
        "case": case,
        "truth": truth,
        "offset": offset,
        "uncertainty": uncertainty,
        "estimate": estimate,
        "inside": (offset - truth).abs() <= uncertainty,
    });
    if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(path) {
        use std::io::Write as _;
        let _ = writeln!(f, "{line}");
    }
}
