//! `skewguard check`: one verdict, exit 0/1; optionally reusing a recent
//! result from a cache file, so a frequent Docker `HEALTHCHECK` does not
//! hammer time servers.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::config::{Config, Output};
use crate::report::Report;

use super::{runtime, system_clock, EXIT_FAIL, EXIT_OK};
use crate::round::assess;

/// Prints a report in the configured format.
pub fn print(config: &Config, report: &Report) {
    print!("{}", render(config, report));
}

/// A report in the configured format, ending with a newline.
pub fn render(config: &Config, report: &Report) -> String {
    match config.output {
        Output::Text => report.to_text(),
        Output::Json => format!("{}\n", report.to_json()),
    }
}

/// The exit code a report maps to.
pub fn exit_code(config: &Config, report: &Report) -> i32 {
    if report.verdict.passes(config.unknown_passes) {
        EXIT_OK
    } else {
        EXIT_FAIL
    }
}

/// What the cache file holds.
#[derive(Debug, Serialize, Deserialize)]
struct Cached {
    /// What the result was measured against; a different configuration misses.
    key: String,
    /// CLOCK_BOOTTIME at measurement: shared by every process on the host and
    /// immune to steps of the wall clock that is being judged.
    boottime_seconds: f64,
    report: Report,
}

/// What a cached result must match to be reused.
fn cache_key(config: &Config) -> String {
    let sources: Vec<String> = config.sources.iter().map(|s| s.to_string()).collect();
    format!(
        "{}|{}|{}|{}|{}|{}",
        sources.join(","),
        config.profile.name(),
        config.thresholds.max_skew,
        config.thresholds.warn_skew,
        config.min_sources,
        config.disabled
    )
}

/// A cached report, if the file holds one for this configuration younger than the maximum age.
fn read_cache(path: &Path, config: &Config, boottime: f64) -> Option<Report> {
    let text = std::fs::read_to_string(path).ok()?;
    let cached: Cached = match serde_json::from_str(&text) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable cache file");
            return None;
        }
    };
    let age = boottime - cached.boottime_seconds;
    let fresh = cached.key == cache_key(config)
        && (0.0..=config.cache_max_age.as_secs_f64()).contains(&age);
    tracing::debug!(age, fresh, "cache file found");
    fresh.then_some(cached.report)
}

/// Writes the cache atomically (temporary file, then rename).
fn write_cache(
    path: &Path,
    config: &Config,
    boottime: f64,
    report: &Report,
) -> std::io::Result<()> {
    let cached = Cached {
        key: cache_key(config),
        boottime_seconds: boottime,
        report: report.clone(),
    };
    let text = serde_json::to_string(&cached).map_err(std::io::Error::other)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// Runs `check`.
pub fn run(config: &Config) -> i32 {
    let clock = system_clock();
    let boottime = clock.boottime().as_secs_f64();
    if let Some(path) = &config.cache_file {
        if let Some(report) = read_cache(path, config, boottime) {
            print(config, &report);
            return exit_code(config, &report);
        }
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("skewguard: cannot start the async runtime: {e}");
            return EXIT_FAIL;
        }
    };
    let report = rt.block_on(assess(config, clock));
    // A name lookup stuck in getaddrinfo (dead resolver) must not hold the
    // process past its timeout: do not wait for blocking threads.
    rt.shutdown_background();
    if let Some(path) = &config.cache_file {
        if let Err(e) = write_cache(path, config, boottime, &report) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the cache file");
        }
    }
    print(config, &report);
    exit_code(config, &report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PREFIX;

    fn config(extra: &[(&str, &str)]) -> Config {
        let mut vars = vec![(format!("{PREFIX}SOURCES"), "ntp://127.0.0.1:9".to_string())];
        vars.extend(
            extra
                .iter()
                .map(|(k, v)| (format!("{PREFIX}{k}"), v.to_string())),
        );
        Config::from_vars(vars).unwrap()
    }

    #[test]
    fn cache_hits_only_when_fresh_and_for_the_same_configuration() {
        let dir = std::env::temp_dir().join(format!("skewguard-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cache.json");
        let c = config(&[]);
        let report = Report::disabled(&crate::round::judging(&c), 0.0);
        write_cache(&path, &c, 100.0, &report).unwrap();
        assert_eq!(read_cache(&path, &c, 130.0), Some(report.clone()));
        assert_eq!(read_cache(&path, &c, 161.0), None, "older than 60 s");
        assert_eq!(read_cache(&path, &c, 99.0), None, "from the future");
        assert_eq!(
            read_cache(&path, &config(&[("MAX_SKEW", "10s")]), 130.0),
            None
        );
        std::fs::write(&path, "garbage").unwrap();
        assert_eq!(read_cache(&path, &c, 130.0), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
