//! The cache file of `check`: what a record holds, when a cached result may be
//! served (fresh, same configuration, its grown bound still within the
//! thresholds), and reading and writing it through the careful file I/O of
//! [`crate::os::file`].

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::{Config, Output};
use crate::core::duration::human_duration;
use crate::core::holdover::Anchor;
use crate::core::report::Report;
use crate::os::file as cache;

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

/// A cached result that may be served: the report as served and its age.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Hit {
    /// The report as served (grown uncertainty, cached headline).
    pub(super) report: Report,
    /// How old the measurement is, seconds.
    age_seconds: f64,
}

/// Whether a cached result may stand for a measurement at boottime `now`
/// (seconds): same configuration, not older than `CACHE_MAX_AGE`, and an ok or
/// warn result whose skew bound, grown by `MAX_DRIFT` over its age (the
/// holdover rule, [`crate::core::holdover`]), still gives the same verdict. The
/// report served carries the grown uncertainty and a note saying it is cached
/// and how old. `Err`: why not, for the debug log.
fn servable(cached: Cached, config: &Config, now: f64) -> Result<Hit, String> {
    if cached.key != cache_key(config) {
        return Err("measured with other settings".into());
    }
    let age = now - cached.boottime_seconds;
    if age.is_nan() || age < 0.0 {
        return Err("written after this boot time (another boot, or forged)".into());
    }
    if age > config.cache_max_age.as_secs_f64() {
        return Err("older than SKEWGUARD_CACHE_MAX_AGE".into());
    }
    let r = cached.report;
    let taken = std::time::Duration::try_from_secs_f64(cached.boottime_seconds)
        .map_err(|_| "no usable boot time".to_string())?;
    let anchor = Anchor::from_round(r.verdict, r.offset_seconds, r.uncertainty_seconds, taken)
        .ok_or_else(|| {
            format!(
                "a {} result is measured again, never served",
                r.verdict.name()
            )
        })?;
    let now = std::time::Duration::try_from_secs_f64(now)
        .map_err(|_| "no usable boot time".to_string())?;
    let held = anchor.judge(now, config.max_drift, &config.thresholds);
    if held.verdict != r.verdict {
        return Err(format!(
            "its bound grown by SKEWGUARD_MAX_DRIFT over {} is {}, past the {} threshold",
            human_duration(held.age_seconds),
            human_duration(held.bound_seconds),
            r.verdict.name()
        ));
    }
    let grown = held.bound_seconds - anchor.offset_seconds.abs();
    let mut report = r;
    report.uncertainty_seconds = Some(grown);
    // The headline is the first (often the only) line a reader sees, e.g. in
    // `docker inspect`: it says the result is not measured now, as the
    // holdover headline of `serve` does.
    report.headline = cached_headline(&report.headline, held.age_seconds);
    report.note = Some(format!(
        "cached result from {} ago (SKEWGUARD_CACHE_FILE), not measured now; uncertainty grown by SKEWGUARD_MAX_DRIFT ({}ppm) to ±{}",
        human_duration(held.age_seconds),
        config.max_drift.ppm(),
        human_duration(grown)
    ));
    Ok(Hit {
        report,
        age_seconds: held.age_seconds,
    })
}

/// `OK: …` as `OK (cached, 12.0s old): …`; the rest of the headline is the
/// measurement as it was then (the note gives the grown uncertainty).
fn cached_headline(headline: &str, age_seconds: f64) -> String {
    let age = human_duration(age_seconds);
    match headline.split_once(": ") {
        Some((verdict, rest)) => format!("{verdict} (cached, {age} old): {rest}"),
        None => format!("{headline} (cached, {age} old)"),
    }
}

/// What reading the cache gave.
#[derive(Debug, PartialEq)]
pub(super) enum Read {
    /// A result to serve.
    Hit(Box<Hit>),
    /// Nothing usable; measure and write the file.
    Miss,
    /// The path is not trustworthy: measure, and do not write it either.
    Refused,
}

/// Reads the cache file; every refusal is logged at WARN with its reason.
pub(super) fn read_cache(path: &Path, config: &Config, boottime: f64, euid: u32) -> Read {
    let bytes = match cache::read(path, euid) {
        Ok(Some(b)) => b,
        Ok(None) => return Read::Miss,
        Err(why) => {
            tracing::warn!(path = %path.display(), reason = %why, "not using the cache file: measuring instead, and not writing it");
            return Read::Refused;
        }
    };
    let cached: Cached = match serde_json::from_slice(&bytes) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(path = %path.display(), reason = %format!("not a skewguard cache file: {e}"), "not using the cache file: measuring instead");
            return Read::Miss;
        }
    };
    match servable(cached, config, boottime) {
        Ok(hit) => {
            tracing::debug!(age_seconds = hit.age_seconds, "serving the cached result");
            Read::Hit(Box::new(hit))
        }
        Err(why) => {
            tracing::debug!(reason = %why, "cached result not served");
            Read::Miss
        }
    }
}

/// For a fresh result that only unauthenticated sources decided: the cached
/// measurement, when authenticated sources decided it, it was made with the
/// same settings, its bound grown by `MAX_DRIFT` still holds (whatever
/// `CACHE_MAX_AGE` says: this is holdover, not reuse) and the fresh result lies
/// wholly outside that bound. Unauthenticated sources alone may not move the
/// verdict there; the held report says so. `None`: the fresh result stands.
pub(super) fn held_against(
    path: &Path,
    config: &Config,
    boottime: f64,
    euid: u32,
    fresh: &Report,
) -> Option<Report> {
    let (Some(offset), Some(uncertainty)) = (fresh.offset_seconds, fresh.uncertainty_seconds)
    else {
        return None;
    };
    if fresh.decided_by_authenticated() {
        return None;
    }
    let bytes = cache::read(path, euid).ok()??;
    let cached: Cached = serde_json::from_slice(&bytes).ok()?;
    let r = cached.report;
    if cached.key != cache_key(config) || !r.decided_by_authenticated() {
        return None;
    }
    let taken = std::time::Duration::try_from_secs_f64(cached.boottime_seconds).ok()?;
    let now = std::time::Duration::try_from_secs_f64(boottime).ok()?;
    if now < taken {
        return None;
    }
    let anchor = Anchor::from_round(r.verdict, r.offset_seconds, r.uncertainty_seconds, taken)?;
    let held = anchor.judge(now, config.max_drift, &config.thresholds);
    if !held.holds() || !anchor.refutes(now, config.max_drift, offset, uncertainty) {
        return None;
    }
    let grown = held.bound_seconds - anchor.offset_seconds.abs();
    let mut report = r;
    report.verdict = held.verdict;
    report.uncertainty_seconds = Some(grown);
    let verdict = held.verdict.name().to_ascii_uppercase();
    report.headline = format!(
        "{verdict} (holdover): only unauthenticated sources answered now, and they put the offset at {offset:+.6}s ±{}, outside the cached authenticated measurement ({:+.6}s ±{} after {}); a forged or broken unauthenticated path while the authenticated sources are blocked or failing, so it is not counted (they said: {})",
        human_duration(uncertainty),
        anchor.offset_seconds,
        human_duration(grown),
        human_duration(held.age_seconds),
        fresh.headline
    );
    report.note = Some(format!(
        "held over from SKEWGUARD_CACHE_FILE ({} old), not measured now; uncertainty grown by SKEWGUARD_MAX_DRIFT ({}ppm)",
        human_duration(held.age_seconds),
        config.max_drift.ppm()
    ));
    Some(report)
}

/// Replaces the cache file (see [`cache::write`]).
pub(super) fn write_cache(
    path: &Path,
    config: &Config,
    boottime: f64,
    report: &Report,
    euid: u32,
) -> Result<(), cache::Refused> {
    let cached = Cached {
        key: cache_key(config),
        boottime_seconds: boottime,
        report: report.clone(),
    };
    let text = serde_json::to_string(&cached)
        .map_err(|e| cache::Refused(format!("cannot encode the result: {e}")))?;
    cache::write(path, text.as_bytes(), euid)
}

/// A cached result as JSON: the report's fields in their usual order, then
/// `cached` and `age_seconds` (after the report, as `/healthz` puts its age).
#[derive(Serialize)]
struct CachedJson<'a> {
    #[serde(flatten)]
    report: &'a Report,
    cached: bool,
    age_seconds: f64,
}

/// A cached result in the configured format; JSON adds `"cached": true` and
/// `age_seconds`.
pub(super) fn render_hit(config: &Config, hit: &Hit) -> String {
    match config.output {
        Output::Text => hit.report.to_text(),
        Output::Npd => crate::output::npd::marked_line(&hit.report, " (cached)"),
        Output::Json => {
            let json = CachedJson {
                report: &hit.report,
                cached: true,
                age_seconds: hit.age_seconds,
            };
            match serde_json::to_string(&json) {
                Ok(text) => format!("{text}\n"),
                Err(_) => format!("{}\n", hit.report.to_json()),
            }
        }
    }
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

    fn measured(c: &Config, offset: f64, uncertainty: f64) -> Report {
        let mut r = Report::disabled(&crate::round::judging(c), 0.0);
        r.note = None;
        r.offset_seconds = Some(offset);
        r.uncertainty_seconds = Some(uncertainty);
        r.verdict = crate::core::verdict::judge(offset, uncertainty, &c.thresholds);
        r
    }

    fn entry(c: &Config, boottime: f64, report: &Report) -> Cached {
        Cached {
            key: cache_key(c),
            boottime_seconds: boottime,
            report: report.clone(),
        }
    }

    #[test]
    fn a_cached_result_is_served_only_while_fresh_and_its_grown_bound_holds() {
        let c = config(&[]);
        let ok = measured(&c, 0.01, 0.001);
        let hit = servable(entry(&c, 100.0, &ok), &c, 130.0).expect("30 s old");
        assert_eq!(hit.age_seconds, 30.0);
        // 500 ppm over 30 s: 15 ms more.
        let grown = hit.report.uncertainty_seconds.unwrap();
        assert!((grown - 0.016).abs() < 1e-9, "{grown}");
        assert!(hit
            .report
            .note
            .as_deref()
            .unwrap()
            .contains("cached result from 30.000s ago"));
        assert!(
            hit.report
                .headline
                .starts_with("OK (cached, 30.000s old): "),
            "{}",
            hit.report.headline
        );
        // JSON: the report's fields in their usual order, then cached and age.
        let json = render_hit(&config(&[("OUTPUT", "json")]), &hit);
        assert!(
            json.starts_with("{\"verdict\":\"ok\",\"headline\":"),
            "{json}"
        );
        assert!(
            json.ends_with(",\"cached\":true,\"age_seconds\":30.0}\n"),
            "{json}"
        );
        let npd = render_hit(&config(&[("OUTPUT", "npd")]), &hit);
        assert!(npd.starts_with("OK (cached): clock off by up to "), "{npd}");
        assert!(
            servable(entry(&c, 100.0, &ok), &c, 161.0).is_err(),
            "older than 60 s"
        );
        assert!(
            servable(entry(&c, 100.0, &ok), &c, 99.0).is_err(),
            "from the future"
        );
        assert!(servable(
            entry(&c, 100.0, &ok),
            &config(&[("MAX_SKEW", "10s")]),
            130.0
        )
        .is_err());
        // 0.99 s: ok now, but 500 ppm × 30 s pushes the bound past WARN_SKEW (1 s).
        let near = measured(&c, 0.99, 0.001);
        let why = servable(entry(&c, 100.0, &near), &c, 130.0).unwrap_err();
        assert!(why.contains("past the ok threshold"), "{why}");
        // A fail or unknown is measured again.
        let fail = measured(&c, 1200.0, 0.001);
        assert!(servable(entry(&c, 100.0, &fail), &c, 101.0).is_err());
        let disabled = Report::disabled(&crate::round::judging(&c), 0.0);
        assert!(servable(entry(&c, 100.0, &disabled), &c, 101.0).is_err());
    }

    #[test]
    fn the_cache_file_round_trips_and_garbage_is_a_miss() {
        let dir = std::env::temp_dir().join(format!("skewguard-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cache.json");
        let c = config(&[]);
        let euid = crate::os::sys::effective_uid();
        let ok = measured(&c, 0.01, 0.001);
        write_cache(&path, &c, 100.0, &ok, euid).unwrap();
        match read_cache(&path, &c, 110.0, euid) {
            Read::Hit(h) => assert_eq!(h.report.offset_seconds, Some(0.01)),
            other => panic!("{other:?}"),
        }
        assert_eq!(read_cache(&path, &c, 110.0, euid + 1), Read::Refused);
        std::fs::write(&path, "garbage").unwrap();
        assert_eq!(read_cache(&path, &c, 110.0, euid), Read::Miss);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
