//! The state `serve` shares between its measurement loop and its server, and
//! the health policy that turns it into answers: what `/healthz`, `/readyz`
//! and `/livez` say, holdover of the last good measurement, the drift forecast
//! and the headlines that word them.
//!
//! What each probe answers is decided by pure functions ([`health`],
//! [`liveness`]) over what [`State`] holds; the loop publishes each round into
//! it with [`State::publish`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

use crate::core::duration::{human_duration, human_setting, spoken_duration};
use crate::core::holdover::{Anchor, MaxDrift};
use crate::core::report::{Report, SourceStatus};
use crate::core::verdict::{Thresholds, Verdict};
use crate::os::clock::Clock;
use crate::serve::lock;
use crate::serve::metrics::Metrics;

/// The latest round's report and when it was taken.
#[derive(Debug, Clone)]
struct Latest {
    /// The report.
    report: Report,
    /// CLOCK_BOOTTIME at the end of the round: it keeps counting while the host
    /// sleeps, so a measurement from before a suspend is as old as it really is.
    taken: Duration,
}

/// What the measurement loop shares with the server.
pub(crate) struct State {
    /// The latest round, served until the next.
    latest: Mutex<Option<Latest>>,
    /// The last good measurement, judged with a growing bound while rounds fail.
    anchor: Mutex<Option<Anchor>>,
    /// Set when a step or suspend of the wall clock made every earlier
    /// measurement meaningless; cleared by the next round.
    jumped: Mutex<Option<String>>,
    /// What is served before the first round: an unmeasured report.
    pending: Report,
    /// How fast a held-over bound grows.
    max_drift: MaxDrift,
    /// Offsets since start or the last step or suspend, for the drift forecast.
    history: Mutex<crate::core::forecast::History>,
    /// CLOCK_MONOTONIC when the loop last finished a round (or started): the
    /// liveness signal. Monotonic, not boottime: a sleeping host is not a hung loop.
    progress: Mutex<Duration>,
    /// Rounds finished since start.
    rounds: AtomicU64,
    /// The metrics.
    pub(crate) metrics: Metrics,
    /// `ON_UNKNOWN=pass`: unknown answers 200.
    unknown_passes: bool,
    /// `/livez` fails when no round has finished for this long.
    pub(crate) live_within: Duration,
    /// Where times are read.
    clock: &'static dyn Clock,
}

impl State {
    /// A state with no measurement yet; `judging` gives the thresholds and
    /// profile its unmeasured body shows until the first round.
    pub(crate) fn new(
        judging: &crate::core::report::Judging,
        metrics: Metrics,
        max_drift: MaxDrift,
        unknown_passes: bool,
        live_within: Duration,
        clock: &'static dyn Clock,
    ) -> State {
        State {
            latest: Mutex::new(None),
            anchor: Mutex::new(None),
            jumped: Mutex::new(None),
            pending: Report::unmeasured(
                judging,
                clock.realtime() as f64 / 1e9,
                Verdict::Unknown,
                "UNKNOWN: no measurement yet (the first round is under way)".into(),
            ),
            max_drift,
            history: Mutex::new(crate::core::forecast::History::new()),
            progress: Mutex::new(clock.monotonic()),
            rounds: AtomicU64::new(0),
            metrics,
            unknown_passes,
            live_within,
            clock,
        }
    }

    /// Publishes a round's report: served from now on, and counted in the metrics.
    ///
    /// A passing measurement becomes the holdover anchor; a failing one (the
    /// clock is measured to be off) replaces it with nothing; a round without a
    /// measurement leaves it in place.
    ///
    /// Unauthenticated sources alone may not move the verdict outside an
    /// authenticated anchor's grown bound: such a round is served as unknown,
    /// so holdover keeps the authenticated verdict, and it never replaces that
    /// anchor while it holds.
    pub(crate) fn publish(&self, mut report: Report) {
        let taken = self.clock.boottime();
        {
            let mut anchor = lock(&self.anchor);
            let authenticated = report.decided_by_authenticated();
            let guard = anchor.filter(|a| {
                a.authenticated
                    && !authenticated
                    && a.judge(taken, self.max_drift, &thresholds(&report)).holds()
            });
            if let (Some(a), Some(o), Some(u)) =
                (guard, report.offset_seconds, report.uncertainty_seconds)
            {
                if a.refutes(taken, self.max_drift, o, u) {
                    overrule(&mut report, &a, taken, self.max_drift);
                }
            }
            match Anchor::from_round(
                report.verdict,
                report.offset_seconds,
                report.uncertainty_seconds,
                taken,
            ) {
                Some(_) if guard.is_some() => {}
                Some(mut a) => {
                    a.authenticated = authenticated;
                    *anchor = Some(a);
                }
                None if report.verdict != Verdict::Unknown => *anchor = None,
                None => {}
            }
        }
        self.metrics.record(&report);
        if let (Some(offset), Some(uncertainty)) =
            (report.offset_seconds, report.uncertainty_seconds)
        {
            lock(&self.history).push(crate::core::forecast::Point {
                at: taken.as_secs_f64(),
                offset,
                uncertainty,
            });
        }
        *lock(&self.jumped) = None;
        *lock(&self.latest) = Some(Latest { report, taken });
        *lock(&self.progress) = self.clock.monotonic();
        self.rounds.fetch_add(1, Ordering::Relaxed);
    }

    /// Rounds finished since start.
    pub(crate) fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::Relaxed)
    }

    /// Ends holdover at once: the wall clock was stepped or the host slept
    /// (`why` says which), so no earlier measurement describes the clock.
    pub(crate) fn clock_jumped(&self, why: String) {
        *lock(&self.anchor) = None;
        lock(&self.history).reset();
        *lock(&self.jumped) = Some(why);
    }

    /// The answer of `/healthz` and `/readyz` now.
    pub(crate) fn health(&self) -> Health {
        let latest = lock(&self.latest).clone();
        let anchor = *lock(&self.anchor);
        let jumped = lock(&self.jumped).clone();
        let drift = lock(&self.history).drift();
        health(
            &Held {
                latest: latest.as_ref(),
                anchor,
                jumped: jumped.as_deref(),
                pending: &self.pending,
                max_drift: self.max_drift,
                drift,
            },
            self.clock.boottime(),
            self.unknown_passes,
        )
    }

    /// How old the latest measurement is on the boot-time clock; `None` before the first.
    pub(crate) fn age(&self) -> Option<Duration> {
        let taken = lock(&self.latest).as_ref()?.taken;
        Some(self.clock.boottime().saturating_sub(taken))
    }

    /// Whether the measurement loop has finished a round recently enough.
    pub(crate) fn alive(&self) -> Liveness {
        liveness(
            *lock(&self.progress),
            self.clock.monotonic(),
            self.live_within,
        )
    }
}

/// The answer to a health probe.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Health {
    /// The verdict served (unknown when not measured yet or past holdover).
    pub(crate) verdict: Verdict,
    /// 200 or 503.
    pub(crate) status: u16,
    /// The JSON body.
    pub(crate) body: String,
    /// The headline served (in the body too).
    pub(crate) headline: String,
    /// The offset served (in the body too): in holdover, the held measurement's.
    pub(crate) offset_seconds: Option<f64>,
    /// The uncertainty served (in the body too): in holdover, the grown one.
    pub(crate) uncertainty_seconds: Option<f64>,
    /// Holdover in force, if the verdict comes from an earlier measurement.
    pub(crate) holdover: Option<Holdover>,
    /// The drift forecast, when there is an estimate.
    pub(crate) forecast: Option<Forecast>,
}

/// What the health decision looks at.
#[derive(Debug, Clone, Copy)]
struct Held<'a> {
    /// The latest round.
    latest: Option<&'a Latest>,
    /// The last good measurement.
    anchor: Option<Anchor>,
    /// Why earlier measurements no longer count (a step or suspend), if they do not.
    jumped: Option<&'a str>,
    /// What to serve before the first round (an unmeasured report).
    pending: &'a Report,
    /// How fast the anchor's bound grows.
    max_drift: MaxDrift,
    /// The drift fitted over the recent rounds, if there are enough.
    drift: Option<crate::core::forecast::Drift>,
}

/// The drift forecast as the body and `/metrics` show it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct Forecast {
    /// How fast the reference gains on the local clock, ppm (positive: the local clock runs slow).
    pub(crate) frequency_error_ppm: f64,
    /// Its standard error, ppm.
    pub(crate) frequency_error_uncertainty_ppm: f64,
    /// Rounds fitted.
    pub(crate) points: usize,
    /// Seconds they span.
    pub(crate) span_seconds: f64,
    /// Seconds until the skew bound reaches `WARN_SKEW`; `None`: no breach forecast.
    pub(crate) seconds_until_warn: Option<f64>,
    /// Seconds until it reaches `MAX_SKEW`; `None`: no breach forecast.
    pub(crate) seconds_until_max: Option<f64>,
}

impl Forecast {
    /// The body carries a forecast (and serve logs one at WARN) when a breach is due within this.
    const HORIZON_SECONDS: f64 = 86_400.0;

    /// Whether a threshold will be reached within [`Forecast::HORIZON_SECONDS`].
    pub(crate) fn due(&self) -> bool {
        [self.seconds_until_warn, self.seconds_until_max]
            .into_iter()
            .flatten()
            .any(|s| s < Self::HORIZON_SECONDS)
    }
}

/// Holdover as the body and `/metrics` show it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct Holdover {
    /// Seconds since the good measurement held over.
    pub(crate) age_seconds: f64,
    /// Its offset, seconds.
    pub(crate) offset_seconds: f64,
    /// Its uncertainty when measured, seconds.
    pub(crate) measured_uncertainty_seconds: f64,
    /// The grown skew bound `|offset| + uncertainty + MAX_DRIFT · age`, seconds.
    pub(crate) bound_seconds: f64,
    /// Seconds until the bound reaches `MAX_SKEW` (0 once it has).
    pub(crate) remaining_seconds: f64,
    /// `SKEWGUARD_MAX_DRIFT`, parts per million.
    pub(crate) max_drift_ppm: f64,
}

/// The thresholds a report was judged with.
fn thresholds(report: &Report) -> Thresholds {
    Thresholds {
        window: report.window_seconds,
        max_skew: report.max_skew_seconds,
        warn_skew: report.warn_skew_seconds,
    }
}

/// Turns a round that only unauthenticated sources decided, and that the
/// authenticated anchor refutes, into an unknown one saying why; holdover then
/// serves the anchor.
fn overrule(report: &mut Report, anchor: &Anchor, now: Duration, drift: MaxDrift) {
    let (Some(o), Some(u)) = (report.offset_seconds, report.uncertainty_seconds) else {
        return;
    };
    let grown = anchor.bound(now, drift) - anchor.offset_seconds.abs();
    report.headline = format!(
        "UNKNOWN: only unauthenticated sources decided this round, and they put the offset at {:+.6}s ±{}, outside the last authenticated measurement ({:+.6}s ±{} after {}): a forged or broken unauthenticated path while the authenticated sources are blocked or failing; not counted (they said: {})",
        o,
        human_duration(u),
        anchor.offset_seconds,
        human_duration(grown),
        human_duration(anchor.age(now)),
        report.headline
    );
    report.verdict = Verdict::Unknown;
    report.offset_seconds = None;
    report.uncertainty_seconds = None;
    for s in report
        .sources
        .iter_mut()
        .filter(|s| s.status == SourceStatus::Ok)
    {
        s.status = SourceStatus::Falseticker;
        s.note = Some("not counted: outside the last authenticated measurement's bound, with no authenticated source answering".into());
    }
}

/// Decides `/healthz`: the latest report plus `age_seconds`, 200 when the
/// verdict passes.
///
/// When the latest round measured nothing (no source answered, or they
/// disagree), the last good measurement is held over: judged with the bound
/// `|θ| + u + MAX_DRIFT · age`, it keeps the status while that bound stays
/// under `MAX_SKEW`, and the body says `holdover`. A fresh good round ages the
/// same way if no round follows it (a stuck loop). A step or suspend of the
/// wall clock since the last round makes the answer unknown until the next.
///
/// `now` and the `taken` times are readings of the same (boottime) clock.
fn health(held: &Held<'_>, now: Duration, unknown_passes: bool) -> Health {
    let Some(latest) = held.latest else {
        // Not ready before the first round even with ON_UNKNOWN=pass: the first
        // round ends within a timeout, and until then nothing has been judged.
        // The body has every field a later one has (no age: nothing measured).
        let body = Served {
            report: held.pending,
            age_seconds: None,
            holdover: None,
            forecast: None,
        };
        return Health {
            verdict: Verdict::Unknown,
            status: 503,
            body: to_json(&body),
            headline: held.pending.headline.clone(),
            offset_seconds: None,
            uncertainty_seconds: None,
            holdover: None,
            forecast: None,
        };
    };
    let age = now.saturating_sub(latest.taken);
    let mut report = std::borrow::Cow::Borrowed(&latest.report);
    let mut holdover = None;
    if let Some(why) = held.jumped {
        let r = report.to_mut();
        r.headline = format!(
            "UNKNOWN: {why}; the last measurement no longer describes the clock (measuring again; it said: {})",
            latest.report.headline
        );
        r.verdict = Verdict::Unknown;
        r.offset_seconds = None;
        r.uncertainty_seconds = None;
    } else if let Some(anchor) = held.anchor {
        let t = Thresholds {
            window: latest.report.window_seconds,
            max_skew: latest.report.max_skew_seconds,
            warn_skew: latest.report.warn_skew_seconds,
        };
        let judged = anchor.judge(now, held.max_drift, &t);
        let from_this_round = anchor.taken == latest.taken;
        if !from_this_round || judged.verdict != latest.report.verdict {
            let h = Holdover {
                age_seconds: judged.age_seconds,
                offset_seconds: anchor.offset_seconds,
                measured_uncertainty_seconds: anchor.uncertainty_seconds,
                bound_seconds: judged.bound_seconds,
                remaining_seconds: judged.remaining_seconds,
                max_drift_ppm: held.max_drift.ppm(),
            };
            let r = report.to_mut();
            r.headline = holdover_headline(&judged, &h, from_this_round, &latest.report);
            r.verdict = judged.verdict;
            if judged.holds() {
                r.offset_seconds = Some(anchor.offset_seconds);
                r.uncertainty_seconds = Some(judged.bound_seconds - anchor.offset_seconds.abs());
            }
            holdover = Some(h);
        }
    }
    let forecast = held.drift.filter(|_| held.jumped.is_none()).map(|d| {
        let now = now.as_secs_f64();
        Forecast {
            frequency_error_ppm: d.ppm,
            frequency_error_uncertainty_ppm: d.uncertainty_ppm,
            points: d.points,
            span_seconds: d.span_seconds,
            seconds_until_warn: d.seconds_until(latest.report.warn_skew_seconds, now),
            seconds_until_max: d.seconds_until(latest.report.max_skew_seconds, now),
        }
    });
    let verdict = report.verdict;
    Health {
        verdict,
        status: if verdict.passes(unknown_passes) {
            200
        } else {
            503
        },
        body: to_json(&Served {
            report: &report,
            age_seconds: Some(age.as_secs_f64()),
            holdover,
            forecast: forecast.filter(Forecast::due),
        }),
        headline: report.headline.clone(),
        offset_seconds: report.offset_seconds,
        uncertainty_seconds: report.uncertainty_seconds,
        holdover,
        forecast,
    }
}

/// The headline of a held-over verdict: why, how old, how wide, how long left.
fn holdover_headline(
    judged: &crate::core::holdover::Held,
    h: &Holdover,
    from_this_round: bool,
    latest: &Report,
) -> String {
    let why = if from_this_round {
        "no round has finished since the last measurement".to_string()
    } else {
        format!("the latest round measured nothing ({})", latest.headline)
    };
    // Sizes as the rest of the headline says them, thresholds as they are set.
    let age = spoken_duration(h.age_seconds);
    let bound = spoken_duration(h.bound_seconds);
    let drift = format!("SKEWGUARD_MAX_DRIFT={}ppm", h.max_drift_ppm);
    if judged.holds() {
        format!(
            "{} (holdover): {why}; the last good measurement, {age} old, bounds the skew by {bound} at {drift}, within SKEWGUARD_MAX_SKEW={} for {} more",
            judged.verdict.name().to_ascii_uppercase(),
            human_setting(latest.max_skew_seconds),
            spoken_duration(h.remaining_seconds),
        )
    } else {
        format!(
            "UNKNOWN: holdover ended: {why}; the last good measurement is {age} old and its bound has grown to {bound} at {drift}, past SKEWGUARD_MAX_SKEW={}",
            human_setting(latest.max_skew_seconds),
        )
    }
}

/// The report as `check --output json` prints it, plus its age and any
/// holdover (fields in the same order). Before the first round `age_seconds`
/// is null.
#[derive(Serialize)]
struct Served<'a> {
    #[serde(flatten)]
    report: &'a Report,
    age_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    holdover: Option<Holdover>,
    #[serde(skip_serializing_if = "Option::is_none")]
    forecast: Option<Forecast>,
}

// Small bodies as structs rather than `serde_json::json!` values (whose
// `to_value` serialiser costs binary size); fields in alphabetical order, the
// order the `json!` maps had.

/// The body of a failed render.
#[derive(Serialize)]
struct Fallback {
    headline: String,
    verdict: Verdict,
}

/// Serialises a body; the bodies served cannot fail to serialise, but a probe
/// must get JSON whatever happens.
pub(crate) fn to_json(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| {
        let fallback = Fallback {
            headline: format!("UNKNOWN: cannot render the report: {e}"),
            verdict: Verdict::Unknown,
        };
        serde_json::to_string(&fallback).unwrap_or_else(|_| r#"{"verdict":"unknown"}"#.into())
    })
}

/// The answer to a liveness probe.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Liveness {
    /// A round finished within the allowed time.
    pub(crate) alive: bool,
    /// Seconds since a round last finished (or the loop started).
    pub(crate) since_progress: f64,
}

/// Decides `/livez` from when the loop last made progress (monotonic). It never
/// looks at the verdict: a skewed clock must not get the sidecar restarted.
fn liveness(progress: Duration, now: Duration, within: Duration) -> Liveness {
    let since = now.saturating_sub(progress);
    Liveness {
        alive: since <= within,
        since_progress: since.as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::report::{HostFacts, Judging};
    use crate::core::sample::{Outcome, Sample};

    use crate::proto::source::Source;

    fn report(offset: f64) -> Report {
        let sources = Source::parse_list("ntp://a").unwrap();
        let judging = Judging::default();
        Report::assess(
            &sources,
            &[Outcome::from_result(Ok(Sample::plain(
                offset, 0.001, 0.0002,
            )))],
            &judging,
            &HostFacts::default(),
        )
    }

    fn at(secs: u64, offset: f64) -> Latest {
        Latest {
            report: report(offset),
            taken: Duration::from_secs(secs),
        }
    }

    fn json(h: &Health) -> serde_json::Value {
        serde_json::from_str(&h.body).unwrap()
    }

    fn pending() -> &'static Report {
        static PENDING: std::sync::OnceLock<Report> = std::sync::OnceLock::new();
        PENDING.get_or_init(|| {
            Report::unmeasured(
                &Judging::default(),
                0.0,
                Verdict::Unknown,
                "UNKNOWN: no measurement yet (the first round is under way)".into(),
            )
        })
    }

    fn fresh(latest: &Latest) -> Held<'_> {
        Held {
            latest: Some(latest),
            anchor: Anchor::from_round(
                latest.report.verdict,
                latest.report.offset_seconds,
                latest.report.uncertainty_seconds,
                latest.taken,
            ),
            jumped: None,
            pending: pending(),
            max_drift: MaxDrift::DEFAULT,
            drift: None,
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn health_follows_the_verdict_and_reports_age() {
        // (offset, status, verdict) for a fresh measurement
        for (offset, status, verdict) in [
            (0.0, 200, "ok"),
            (5.0, 200, "warn"),
            (1200.0, 503, "fail"),
            (-1200.0, 503, "fail"),
        ] {
            let latest = at(100, offset);
            let h = health(&fresh(&latest), secs(110), false);
            assert_eq!(h.status, status, "{offset}");
            assert!(h.holdover.is_none());
            let v = json(&h);
            assert_eq!(v["verdict"], verdict);
            assert_eq!(v["age_seconds"], 10.0);
            assert_eq!(v["offset_seconds"], offset);
            assert!(v.get("holdover").is_none(), "{v}");
        }
    }

    #[test]
    fn nothing_measured_yet_is_503_even_when_unknown_passes() {
        for passes in [false, true] {
            let held = Held {
                latest: None,
                anchor: None,
                jumped: None,
                pending: pending(),
                max_drift: MaxDrift::DEFAULT,
                drift: None,
            };
            let h = health(&held, secs(1), passes);
            assert_eq!(h.status, 503);
            let v = json(&h);
            assert_eq!(v["verdict"], "unknown");
            assert!(v["headline"]
                .as_str()
                .unwrap()
                .starts_with("UNKNOWN: no measurement yet"));
            // The same shape as every later body: numbers nobody measured are null.
            for null in ["offset_seconds", "uncertainty_seconds", "age_seconds"] {
                assert!(v[null].is_null() && v.get(null).is_some(), "{null}: {v}");
            }
            assert_eq!(v["max_skew_seconds"], 150.0, "{v}");
            assert_eq!(v["profile"], "aws", "{v}");
            assert!(v["sources"].is_array(), "{v}");
        }
    }

    fn silent() -> Report {
        let sources = Source::parse_list("ntp://a").unwrap();
        Report::assess(
            &sources,
            &[Outcome::from_result(Err(
                crate::core::sample::SourceError::Timeout(Duration::from_secs(1)),
            ))],
            &Judging::default(),
            &HostFacts::default(),
        )
    }

    #[test]
    fn a_failed_round_holds_the_last_good_one_over_until_the_bound_reaches_max_skew() {
        // Offset 0.5 ± 0.001 at t=100; MAX_SKEW 150 s; 5000 ppm: the bound
        // reaches 150 s after (150 − 0.501) / 0.005 = 29 899.8 s.
        let good = at(100, 0.5);
        let anchor = fresh(&good).anchor;
        let failed = Latest {
            report: silent(),
            taken: secs(160),
        };
        let held = Held {
            latest: Some(&failed),
            anchor,
            jumped: None,
            pending: pending(),
            max_drift: MaxDrift::from_ppm(5000.0).unwrap(),
            drift: None,
        };
        let h = health(&held, secs(170), false);
        assert_eq!((h.status, h.verdict), (200, Verdict::Ok), "{}", h.body);
        let v = json(&h);
        let hold = &v["holdover"];
        assert_eq!(hold["age_seconds"], 70.0);
        assert!(
            (hold["bound_seconds"].as_f64().unwrap() - 0.851).abs() < 1e-9,
            "{v}"
        );
        assert!((hold["remaining_seconds"].as_f64().unwrap() - 29_829.8).abs() < 1e-6);
        assert_eq!(hold["max_drift_ppm"], 5000.0);
        assert_eq!(v["offset_seconds"], 0.5);
        assert_eq!(h.offset_seconds, Some(0.5), "what serve logs");
        let grown = h.uncertainty_seconds.unwrap();
        assert_eq!(v["uncertainty_seconds"], grown);
        assert!((grown - 0.351).abs() < 1e-9, "{grown}");
        assert_eq!(v["age_seconds"], 10.0, "age of the latest round");
        let headline = v["headline"].as_str().unwrap();
        assert!(headline.starts_with("OK (holdover)"), "{headline}");
        assert!(headline.contains("none of the 1 source(s)"), "{headline}");
        // Sizes spoken, the threshold as it is set.
        assert!(
            headline.ends_with("the last good measurement, 1m10s old, bounds the skew by 851.0ms at SKEWGUARD_MAX_DRIFT=5000ppm, within SKEWGUARD_MAX_SKEW=2m30s for 8h17m more"),
            "{headline}"
        );
        // Past warn (1 s) it warns, still 200.
        let h = health(&held, secs(300), false);
        assert_eq!((h.status, h.verdict), (200, Verdict::Warn), "{}", h.body);
        // At MAX_SKEW: unknown, 503 (200 with ON_UNKNOWN=pass).
        let h = health(&held, secs(100 + 29_900), false);
        assert_eq!((h.status, h.verdict), (503, Verdict::Unknown), "{}", h.body);
        assert!(
            h.headline.starts_with("UNKNOWN: holdover ended"),
            "{}",
            h.headline
        );
        assert!(
            h.headline.ends_with("past SKEWGUARD_MAX_SKEW=2m30s"),
            "{}",
            h.headline
        );
        assert_eq!(health(&held, secs(100 + 29_900), true).status, 200);
    }

    #[test]
    fn a_fresh_round_ages_like_holdover_when_no_round_follows() {
        let good = at(100, 0.0);
        let mut held = fresh(&good);
        held.max_drift = MaxDrift::from_ppm(100_000.0).unwrap();
        // 0.001 s + 10 % of the age: warn at 10 s, unknown at 1500 s.
        assert_eq!(health(&held, secs(105), false).verdict, Verdict::Ok);
        let h = health(&held, secs(120), false);
        assert_eq!(h.verdict, Verdict::Warn);
        assert!(
            h.headline.contains("no round has finished"),
            "{}",
            h.headline
        );
        assert_eq!(health(&held, secs(1700), false).status, 503);
    }

    #[test]
    fn a_clock_jump_ends_holdover_until_the_next_round() {
        let good = at(100, 0.0);
        let mut held = fresh(&good);
        held.jumped = Some("the wall clock was stepped by 10m0.000s");
        let h = health(&held, secs(101), false);
        assert_eq!((h.status, h.verdict), (503, Verdict::Unknown));
        assert!(h.headline.contains("stepped by 10m"), "{}", h.headline);
        assert!(json(&h)["offset_seconds"].is_null());
    }

    #[test]
    fn state_keeps_the_anchor_through_failed_rounds_and_drops_it_on_fail_or_jump() {
        static CLOCK: crate::os::clock::SystemClock = crate::os::clock::SystemClock;
        let sources = Source::parse_list("ntp://a").unwrap();
        let state = State::new(
            &Judging::default(),
            Metrics::new(&sources, 150.0),
            MaxDrift::DEFAULT,
            false,
            secs(60),
            &CLOCK,
        );
        state.publish(report(0.0));
        state.publish(silent());
        let h = state.health();
        assert_eq!(h.status, 200, "{}", h.body);
        assert!(h.holdover.is_some());
        state.publish(report(1200.0));
        state.publish(silent());
        assert_eq!(state.health().status, 503, "a fail is not held over");
        state.publish(report(0.0));
        state.clock_jumped("the host slept for 1h".into());
        state.publish(silent());
        assert_eq!(state.health().status, 503, "a jump ends holdover");
    }

    #[test]
    fn a_clock_reading_from_before_taken_is_age_zero() {
        let latest = at(100, 0.0);
        let h = health(&fresh(&latest), secs(50), false);
        assert_eq!(json(&h)["age_seconds"], 0.0);
    }

    #[test]
    fn liveness_depends_only_on_progress() {
        let within = Duration::from_secs(10);
        assert!(liveness(Duration::from_secs(5), Duration::from_secs(15), within).alive);
        assert!(!liveness(Duration::from_secs(5), Duration::from_secs(16), within).alive);
        assert!(liveness(Duration::from_secs(5), Duration::from_secs(1), within).alive);
    }
}
