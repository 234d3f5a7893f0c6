//! The measurement loop of `serve`: measures at start and then every
//! `SKEWGUARD_INTERVAL` (±10 % jitter, so a fleet does not query in lockstep),
//! measures again at once when the wall clock jumps, and publishes each round
//! into the [`State`] the server answers from.
//!
//! The loop runs as a task beside the server on one thread: every source
//! query is asynchronous and bounded, so a slow source never delays
//! `/healthz`.

use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::core::duration::human_duration;
use crate::core::node::Stamps;
use crate::core::report::Report;
use crate::core::verdict::Verdict;
use crate::os::clock::{Clock, UnixNanos};
use crate::round::Rounds;
use crate::serve::publish::Publisher;
use crate::serve::state::{self, Health, State};

/// A disagreement between the wall clock and the monotonic clock larger than
/// this, between two looks, means the wall clock was stepped or the host slept.
const JUMP_THRESHOLD: Duration = Duration::from_secs(1);

/// How often the loop looks for a clock jump while it waits for the next round.
const JUMP_CHECK_EVERY: Duration = Duration::from_secs(1);

/// Jitter applied to the interval, as a fraction either way.
const JITTER: f64 = 0.1;

/// Fewest time between the starts of two rounds when a clock jump asks for an
/// early one (ntpsec's rule: never query a server more often than every 2 s).
const MIN_EARLY_GAP: Duration = Duration::from_secs(2);

/// How long `/livez` tolerates no finished round: `STALE_AFTER` (three
/// intervals by default), stretched by the jitter, plus the longest a round
/// can take, twice over, so a slow round is not death.
///
/// `STALE_AFTER` is about a stuck measurement loop only; how long a verdict
/// outlives its measurement is the holdover rule's (`MAX_DRIFT`).
pub(crate) fn live_within(config: &Config) -> Duration {
    let q = &config.query;
    let round = q.timeout * (q.samples + 1)
        + q.sample_interval * q.samples.saturating_sub(1)
        + q.http_budget;
    config.stale_after.mul_f64(1.0 + JITTER) + round * 2 + Duration::from_secs(5)
}

/// Measures round after round, publishing each report into `state` and
/// logging it with `log`, which is given the answer served after the round
/// (holdover included), the round's report carrying the numbers served, and
/// the verdict served after the round before (`None` after the first). The
/// command supplies `log`, so that `serve` logs verdicts the way `wait` and
/// `exec` do.
pub(crate) async fn measure_loop(
    config: Arc<Config>,
    clock: &'static dyn Clock,
    state: Arc<State>,
    log: impl Fn(&Health, &Report, Option<Verdict>),
) {
    let mut rounds = Rounds::new(&config, clock).with_query_gap(crate::round::QUERY_GAP);
    let mut last = ClockReading::now(clock);
    let mut previous = None;
    let mut forecast_warned = None;
    let mut publisher = config.publish.clone().map(|path| {
        Publisher::new(
            path,
            config.max_drift,
            std::path::Path::new(crate::os::sys::BOOT_ID_PATH),
        )
    });
    // A rollout starts many of these at once: spread their first queries of
    // upstream servers (files and this machine's own servers need no
    // spreading, and with a node file the upstream ones are only its fallback).
    let upstream = config
        .sources
        .iter()
        .any(|s| !crate::round::exempt_from_gap(s));
    let node_file = config
        .sources
        .iter()
        .any(|s| matches!(s, crate::proto::Source::Node { .. }));
    if !config.disabled && upstream && !node_file {
        let delay = first_round_delay(config.interval, random());
        tracing::debug!(delay = ?delay, "first round delayed, so that a rollout does not query in step");
        tokio::time::sleep(delay).await;
    }
    loop {
        let started = clock.monotonic();
        let started_stamps = Stamps::read(clock);
        rounds.refine_fully(forecast_needs_refinement(
            &state.health(),
            &config.thresholds,
            config.max_drift.ppm(),
        ));
        let report = rounds.round().await;
        if let Some(p) = publisher.as_mut() {
            p.round(&report, started_stamps);
        }
        state.publish(report.clone());
        // What is served now, holdover included, is what gets logged.
        let served = state.health();
        // In holdover the round measured nothing: the numbers logged are the
        // ones served (the held offset, the grown uncertainty), as in the body.
        let logged = Report {
            offset_seconds: served.offset_seconds,
            uncertainty_seconds: served.uncertainty_seconds,
            ..report
        };
        log(&served, &logged, previous);
        previous = Some(served.verdict);
        forecast_warned = warn_forecast(served.forecast, forecast_warned, clock.monotonic());

        // A jump during the round shows up now; measure again (the round's
        // queries may straddle it).
        let reading = ClockReading::now(clock);
        let mut early = note_jump(detect_jump(&last, &reading), &state);
        last = reading;
        if early {
            rounds.forget();
        }
        if let Some(p) = publisher.as_mut() {
            if early {
                p.clock_jumped();
            }
            p.write(&state.health().headline, clock).await;
        }

        let mut due = clock.monotonic() + jittered(config.interval, random());
        loop {
            let now = clock.monotonic();
            if early {
                due = due.min((started + MIN_EARLY_GAP.min(config.interval)).max(now));
            }
            if now >= due {
                break;
            }
            tokio::time::sleep((due - now).min(JUMP_CHECK_EVERY)).await;
            let reading = ClockReading::now(clock);
            let jumped = note_jump(detect_jump(&last, &reading), &state);
            last = reading;
            if jumped {
                early = true;
                rounds.forget();
                // Readers refuse the old measurement by themselves (its
                // stamps show the jump); the file says why at once.
                if let Some(p) = publisher.as_mut() {
                    p.clock_jumped();
                    p.write(&state.health().headline, clock).await;
                }
            }
        }
    }
}

/// How far ahead the drift forecast looks for a breach, seconds (the horizon
/// of `state::Forecast::due`).
const FORECAST_HORIZON_SECONDS: f64 = 86_400.0;

/// Whether the next round should run the HTTP `Date` refinement to its end
/// for the drift forecast's sake, although the verdict may not need it.
///
/// The refinement narrows an HTTP `Date` source from about ±1.3 s to ±0.8 s
/// and makes its midpoint steady to milliseconds instead of wandering within
/// the `Date`'s whole second: it matters to the forecast only when HTTP `Date`
/// is what bounds the served measurement (uncertainty at or above its floor,
/// ±0.8 s: no finer source decided it), and only while a breach of
/// `WARN_SKEW` within the forecast's horizon cannot be ruled out at the
/// drift's plausible rate (the fitted one plus twice its error, at most
/// `MAX_DRIFT`, which is also the rate before there is a fit). Before the
/// first measurement: no.
fn forecast_needs_refinement(
    served: &Health,
    thresholds: &crate::core::verdict::Thresholds,
    max_drift_ppm: f64,
) -> bool {
    let (Some(offset), Some(uncertainty)) = (served.offset_seconds, served.uncertainty_seconds)
    else {
        return false;
    };
    use crate::proto::http_date::interval::{DATE_LAG_ALLOWANCE, DATE_LEAD_ALLOWANCE};
    let http_floor = (DATE_LAG_ALLOWANCE + DATE_LEAD_ALLOWANCE) as f64 / 2e9;
    if uncertainty < http_floor {
        return false;
    }
    // A young fit's error can exceed any real clock's drift: MAX_DRIFT caps it.
    let ppm = served.forecast.map_or(max_drift_ppm, |f| {
        (f.frequency_error_ppm.abs() + 2.0 * f.frequency_error_uncertainty_ppm).min(max_drift_ppm)
    });
    offset.abs() + uncertainty + ppm * 1e-6 * FORECAST_HORIZON_SECONDS >= thresholds.warn_skew
}

/// How often a breach that stays forecast is logged again.
const FORECAST_WARN_EVERY: Duration = Duration::from_secs(3600);

/// Logs at WARN a breach forecast within a day: when it first appears, then
/// at most every [`FORECAST_WARN_EVERY`]. Returns when it last warned (`None`
/// once no breach is due, so the next one is logged at once).
fn warn_forecast(
    forecast: Option<state::Forecast>,
    warned: Option<Duration>,
    now: Duration,
) -> Option<Duration> {
    let f = forecast.filter(state::Forecast::due)?;
    if warned.is_some_and(|t| now.saturating_sub(t) < FORECAST_WARN_EVERY) {
        return warned;
    }
    let when = |s: Option<f64>| s.map_or_else(|| "never".to_string(), human_duration);
    tracing::warn!(
        frequency_error_ppm = f.frequency_error_ppm,
        frequency_error_uncertainty_ppm = f.frequency_error_uncertainty_ppm,
        seconds_until_warn = f.seconds_until_warn,
        seconds_until_max = f.seconds_until_max,
        "drift forecast: the local clock drifts {:+.1} ppm (±{:.1}) against the references; the skew bound reaches WARN_SKEW in {} and MAX_SKEW in {}",
        f.frequency_error_ppm,
        f.frequency_error_uncertainty_ppm,
        when(f.seconds_until_warn),
        when(f.seconds_until_max),
    );
    Some(now)
}

/// Logs a jump and ends holdover (the measurements before it no longer
/// describe the clock); `true` if there was one.
fn note_jump(jump: Option<ClockJump>, state: &State) -> bool {
    let why = match jump {
        None => return false,
        Some(ClockJump::Stepped { seconds }) => {
            tracing::warn!(
                jump_seconds = seconds,
                "the wall clock was stepped by {}; measuring again now",
                human_duration(seconds)
            );
            format!("the wall clock was stepped by {}", human_duration(seconds))
        }
        Some(ClockJump::Slept { seconds, stepped }) => {
            tracing::warn!(
                slept_seconds = seconds,
                jump_seconds = stepped,
                "the host slept for {} (wall clock moved {} more than that); measuring again now",
                human_duration(seconds),
                human_duration(stepped)
            );
            format!("the host slept for {}", human_duration(seconds))
        }
    };
    state.clock_jumped(why);
    true
}

/// Eight random bytes for the jitter; without them (no entropy source) the
/// interval is used as is.
fn random() -> u64 {
    getrandom::u64().unwrap_or(u64::MAX / 2)
}

/// The most the first round of `serve` is delayed when it queries upstream
/// servers: a random delay in [0, this] (at most a tenth of `INTERVAL`), so
/// that the pods of a rollout do not query in step. Readiness waits for it.
const FIRST_ROUND_JITTER: Duration = Duration::from_secs(5);

/// The delay of the first round, chosen by `random`: up to
/// [`FIRST_ROUND_JITTER`] or a tenth of `interval`, whichever is less.
fn first_round_delay(interval: Duration, random: u64) -> Duration {
    let unit = random as f64 / u64::MAX as f64; // [0, 1]
    FIRST_ROUND_JITTER
        .min(interval.mul_f64(JITTER))
        .mul_f64(unit)
}

/// `interval` scaled by a factor in [1 − [`JITTER`], 1 + [`JITTER`]] chosen by `random`.
fn jittered(interval: Duration, random: u64) -> Duration {
    let unit = random as f64 / u64::MAX as f64; // [0, 1]
    interval.mul_f64(1.0 + JITTER * (2.0 * unit - 1.0))
}

/// The three clocks read together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ClockReading {
    /// CLOCK_REALTIME.
    real: UnixNanos,
    /// CLOCK_MONOTONIC.
    mono: Duration,
    /// CLOCK_BOOTTIME.
    boot: Duration,
}

impl ClockReading {
    /// Reads `clock`.
    fn now(clock: &dyn Clock) -> ClockReading {
        ClockReading {
            real: clock.realtime(),
            mono: clock.monotonic(),
            boot: clock.boottime(),
        }
    }
}

/// A discontinuity of the wall clock between two readings.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ClockJump {
    /// The wall clock moved this many seconds more (or, negative, less) than
    /// the monotonic clock: someone stepped it.
    Stepped {
        /// Realtime elapsed minus monotonic elapsed.
        seconds: f64,
    },
    /// The host was suspended this long (BOOTTIME ran ahead of MONOTONIC).
    Slept {
        /// Boottime elapsed minus monotonic elapsed.
        seconds: f64,
        /// Realtime elapsed minus boottime elapsed: a step on top of the sleep.
        stepped: f64,
    },
}

/// Compares how far the wall clock moved between two readings with how far the
/// monotonic clock moved; a difference over [`JUMP_THRESHOLD`] is a jump.
fn detect_jump(before: &ClockReading, after: &ClockReading) -> Option<ClockJump> {
    let secs = |d: Duration| d.as_secs_f64();
    let real = (after.real - before.real) as f64 / 1e9;
    let mono = secs(after.mono.saturating_sub(before.mono));
    let boot = secs(after.boot.saturating_sub(before.boot));
    let limit = secs(JUMP_THRESHOLD);
    if boot - mono > limit {
        Some(ClockJump::Slept {
            seconds: boot - mono,
            stepped: real - boot,
        })
    } else if (real - mono).abs() > limit {
        Some(ClockJump::Stepped {
            seconds: real - mono,
        })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::clock::NANOS_PER_SEC;

    fn reading(real_ms: i128, mono_ms: u64, boot_ms: u64) -> ClockReading {
        ClockReading {
            real: 1_700_000_000 * NANOS_PER_SEC + real_ms * 1_000_000,
            mono: Duration::from_millis(mono_ms),
            boot: Duration::from_millis(boot_ms),
        }
    }

    #[test]
    fn jumps_are_told_from_steps_sleeps_and_ordinary_drift() {
        let before = reading(0, 10_000, 10_000);
        // (real, mono, boot after) → expected
        type Case = ((i128, u64, u64), Option<ClockJump>);
        let cases: &[Case] = &[
            ((1_000, 11_000, 11_000), None),
            // a slew or a small step under a second is not a jump
            ((1_900, 11_000, 11_000), None),
            ((100, 11_000, 11_000), None),
            (
                (1_201_000, 11_000, 11_000),
                Some(ClockJump::Stepped { seconds: 1200.0 }),
            ),
            (
                (-599_000, 11_000, 11_000),
                Some(ClockJump::Stepped { seconds: -600.0 }),
            ),
            // an hour's suspend: boottime and realtime ran on, monotonic did not
            (
                (3_601_000, 11_000, 3_611_000),
                Some(ClockJump::Slept {
                    seconds: 3600.0,
                    stepped: 0.0,
                }),
            ),
            // a suspend and a step after resume
            (
                (3_661_000, 11_000, 3_611_000),
                Some(ClockJump::Slept {
                    seconds: 3600.0,
                    stepped: 60.0,
                }),
            ),
        ];
        for &((r, m, b), want) in cases {
            assert_eq!(detect_jump(&before, &reading(r, m, b)), want, "{r} {m} {b}");
        }
    }

    #[test]
    fn the_first_round_is_delayed_by_at_most_five_seconds_or_a_tenth_of_the_interval() {
        let m = Duration::from_secs(60);
        assert_eq!(first_round_delay(m, 0), Duration::ZERO);
        assert_eq!(first_round_delay(m, u64::MAX), Duration::from_secs(5));
        assert_eq!(
            first_round_delay(Duration::from_secs(10), u64::MAX),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        let i = Duration::from_secs(60);
        assert_eq!(jittered(i, 0), Duration::from_secs(54));
        assert_eq!(jittered(i, u64::MAX), Duration::from_secs(66));
        let mid = jittered(i, u64::MAX / 2).as_secs_f64();
        assert!((mid - 60.0).abs() < 1e-6, "{mid}");
        for _ in 0..100 {
            let j = jittered(i, random());
            assert!((54.0..=66.0).contains(&j.as_secs_f64()), "{j:?}");
        }
    }

    /// The system clocks, with a wall clock that a test can step.
    struct SteppedClock(std::sync::atomic::AtomicI64);

    impl Clock for SteppedClock {
        fn realtime(&self) -> UnixNanos {
            crate::os::clock::SystemClock.realtime()
                + i128::from(self.0.load(std::sync::atomic::Ordering::Relaxed))
        }
        fn monotonic(&self) -> Duration {
            crate::os::clock::SystemClock.monotonic()
        }
        fn boottime(&self) -> Duration {
            crate::os::clock::SystemClock.boottime()
        }
    }

    #[test]
    fn a_stepped_wall_clock_brings_the_next_round_forward() {
        let config = crate::config::Config::from_vars([
            ("SKEWGUARD_DISABLED".to_string(), "true".to_string()),
            ("SKEWGUARD_INTERVAL".to_string(), "1m".to_string()),
        ])
        .unwrap();
        let clock: &'static SteppedClock =
            Box::leak(Box::new(SteppedClock(std::sync::atomic::AtomicI64::new(0))));
        let state = Arc::new(State::new(
            &crate::round::judging(&config),
            crate::serve::metrics::Metrics::new(&config.sources, 150.0),
            config.max_drift,
            false,
            live_within(&config),
            clock,
        ));
        let rounds_after = |wait_ms: u64| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let state = state.clone();
            let config = Arc::new(config.clone());
            runtime.block_on(async move {
                let looping =
                    tokio::spawn(measure_loop(config, clock, state.clone(), |_, _, _| {}));
                tokio::time::sleep(Duration::from_millis(300)).await;
                let before = state.rounds();
                // Ten minutes forward, as a careless `date -s` would.
                clock
                    .0
                    .fetch_add(600_000_000_000, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(wait_ms)).await;
                looping.abort();
                (before, state.rounds())
            })
        };
        // One round at start; the jump is seen within a second and, two seconds
        // after the first round started (MIN_EARLY_GAP), measured again.
        assert_eq!(rounds_after(2_500), (1, 2));
    }

    #[test]
    fn liveness_allows_three_intervals_and_slow_rounds() {
        let config = crate::config::Config::from_vars([
            ("SKEWGUARD_INTERVAL".to_string(), "60s".to_string()),
            ("SKEWGUARD_TIMEOUT".to_string(), "2s".to_string()),
        ])
        .unwrap();
        let w = live_within(&config);
        assert!(
            w > Duration::from_secs(180) && w < Duration::from_secs(240),
            "{w:?}"
        );
    }

    #[test]
    fn the_forecast_asks_for_refined_http_answers_only_when_they_bound_it() {
        let t = crate::core::verdict::Thresholds {
            window: 300.0,
            max_skew: 150.0,
            warn_skew: 1.0,
        };
        let served = |offset: Option<f64>, u: f64, fit: Option<(f64, f64)>| Health {
            verdict: Verdict::Ok,
            status: 200,
            body: String::new(),
            headline: String::new(),
            offset_seconds: offset,
            uncertainty_seconds: offset.map(|_| u),
            holdover: None,
            forecast: fit.map(|(ppm, err)| state::Forecast {
                frequency_error_ppm: ppm,
                frequency_error_uncertainty_ppm: err,
                points: 10,
                span_seconds: 600.0,
                seconds_until_warn: None,
                seconds_until_max: None,
            }),
        };
        // Nothing measured yet: the verdict's own rule.
        assert!(!forecast_needs_refinement(
            &served(None, 0.0, None),
            &t,
            500.0
        ));
        // NTP (or anything finer than HTTP Date) bounds the measurement.
        assert!(!forecast_needs_refinement(
            &served(Some(0.0), 0.002, None),
            &t,
            500.0
        ));
        // HTTP Date alone, no fit yet: MAX_DRIFT for a day could reach WARN_SKEW.
        assert!(forecast_needs_refinement(
            &served(Some(0.1), 1.3, None),
            &t,
            500.0
        ));
        assert!(forecast_needs_refinement(
            &served(Some(0.0), 0.8, Some((3.0, 50.0))),
            &t,
            500.0
        ));
        // A young fit's error beyond MAX_DRIFT counts as MAX_DRIFT.
        let far = crate::core::verdict::Thresholds {
            warn_skew: 60.0,
            ..t
        };
        assert!(!forecast_needs_refinement(
            &served(Some(0.1), 1.3, Some((900.0, 9e4))),
            &far,
            500.0
        ));
        // A fit that rules a breach out within a day (under 1 ppm), far from WARN_SKEW.
        let wide = crate::core::verdict::Thresholds {
            warn_skew: 5.0,
            ..t
        };
        assert!(!forecast_needs_refinement(
            &served(Some(0.1), 0.9, Some((0.2, 0.3))),
            &wide,
            500.0
        ));
    }
}
