//! Holdover: judging the clock from the last good measurement while no fresh
//! one is to be had, with an error bound that grows at the most the clock can
//! drift (AWS ClockBound's rule, applied to a readiness gate).
//!
//! After a good round (offset θ, uncertainty u, taken at boottime t₀) the skew
//! bound at boottime t is `|θ| + u + MAX_DRIFT · (t − t₀)`. Boottime keeps
//! counting while the host sleeps, so a measurement from before a suspend is
//! as old as it really is. Pure: every function takes the readings it needs.

use std::time::Duration;

use crate::core::verdict::{judge, Thresholds, Verdict};

/// The most the local clock is assumed to drift from true time, as a rate.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct MaxDrift {
    ppm: f64,
}

impl MaxDrift {
    /// 500 ppm: the most the kernel slews a clock (and chrony's `maxdrift`).
    pub const DEFAULT: MaxDrift = MaxDrift { ppm: 500.0 };
    /// Largest rate accepted: 100 000 ppm (10 %), far beyond any working oscillator.
    pub const MAX_PPM: f64 = 100_000.0;

    /// A rate in parts per million; `None` unless finite, positive and at most [`Self::MAX_PPM`].
    pub fn from_ppm(ppm: f64) -> Option<MaxDrift> {
        (ppm.is_finite() && ppm > 0.0 && ppm <= Self::MAX_PPM).then_some(MaxDrift { ppm })
    }

    /// Parses `500ppm`, `500 ppm` or a plain `500` (parts per million).
    pub fn parse(s: &str) -> Option<MaxDrift> {
        let s = s.trim();
        let number = s
            .strip_suffix("ppm")
            .or_else(|| s.strip_suffix("PPM"))
            .unwrap_or(s)
            .trim();
        number.parse::<f64>().ok().and_then(MaxDrift::from_ppm)
    }

    /// Parts per million.
    pub fn ppm(self) -> f64 {
        self.ppm
    }

    /// Seconds of drift per second.
    pub fn rate(self) -> f64 {
        self.ppm * 1e-6
    }
}

impl Default for MaxDrift {
    fn default() -> Self {
        MaxDrift::DEFAULT
    }
}

/// The skew bound of a measurement `age_seconds` old: `|θ| + u + drift · age`.
///
/// A negative age (readings out of order) counts as zero.
pub fn grown_bound(offset: f64, uncertainty: f64, age_seconds: f64, drift: MaxDrift) -> f64 {
    offset.abs() + uncertainty.max(0.0) + drift.rate() * age_seconds.max(0.0)
}

/// Seconds from a measurement until its grown bound reaches `limit`
/// (zero if it already has, infinite if the bound is not finite).
pub fn seconds_until(offset: f64, uncertainty: f64, limit: f64, drift: MaxDrift) -> f64 {
    let start = grown_bound(offset, uncertainty, 0.0, drift);
    if !start.is_finite() || !limit.is_finite() {
        return f64::INFINITY;
    }
    ((limit - start) / drift.rate()).max(0.0)
}

/// The good measurement holdover judges from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Anchor {
    /// Combined offset, seconds (reference minus local).
    pub offset_seconds: f64,
    /// Its uncertainty, seconds.
    pub uncertainty_seconds: f64,
    /// CLOCK_BOOTTIME when it was taken.
    pub taken: Duration,
    /// Authenticated sources decided the round it comes from: unauthenticated
    /// ones alone may not move the verdict outside its grown bound
    /// ([`Anchor::refutes`]).
    pub authenticated: bool,
}

/// What holdover concludes at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Held {
    /// The verdict from the grown bound: ok or warn while it holds, unknown once
    /// the bound has reached `MAX_SKEW` (the clock may be fine; nobody knows).
    pub verdict: Verdict,
    /// Seconds since the anchor was taken.
    pub age_seconds: f64,
    /// The grown skew bound, seconds.
    pub bound_seconds: f64,
    /// Seconds left until the bound reaches `MAX_SKEW` (zero once it has).
    pub remaining_seconds: f64,
}

impl Held {
    /// Whether holdover still vouches for the clock.
    pub fn holds(&self) -> bool {
        self.verdict != Verdict::Unknown
    }
}

impl Anchor {
    /// An anchor from a round's combined result, if that round may be held over:
    /// only a passing (ok or warn) measurement with finite numbers.
    pub fn from_round(
        verdict: Verdict,
        offset: Option<f64>,
        uncertainty: Option<f64>,
        taken: Duration,
    ) -> Option<Anchor> {
        match (verdict, offset, uncertainty) {
            (Verdict::Ok | Verdict::Warn, Some(o), Some(u)) if o.is_finite() && u.is_finite() => {
                Some(Anchor {
                    offset_seconds: o,
                    uncertainty_seconds: u,
                    taken,
                    authenticated: false,
                })
            }
            _ => None,
        }
    }

    /// Seconds since the anchor, at boottime `now` (zero if `now` is earlier).
    pub fn age(&self, now: Duration) -> f64 {
        now.saturating_sub(self.taken).as_secs_f64()
    }

    /// The grown bound at boottime `now`.
    pub fn bound(&self, now: Duration, drift: MaxDrift) -> f64 {
        grown_bound(
            self.offset_seconds,
            self.uncertainty_seconds,
            self.age(now),
            drift,
        )
    }

    /// Whether a measurement `offset ± uncertainty` taken at boottime `now`
    /// lies wholly outside this anchor's interval grown by `drift` over its
    /// age: both cannot describe the same clock.
    pub fn refutes(&self, now: Duration, drift: MaxDrift, offset: f64, uncertainty: f64) -> bool {
        let grown = self.uncertainty_seconds.max(0.0) + drift.rate() * self.age(now);
        (offset - self.offset_seconds).abs() > grown + uncertainty.max(0.0)
    }

    /// Judges the clock at boottime `now` from this anchor.
    pub fn judge(&self, now: Duration, drift: MaxDrift, t: &Thresholds) -> Held {
        let age = self.age(now);
        let bound = self.bound(now, drift);
        let grown = bound - self.offset_seconds.abs();
        let verdict = match judge(self.offset_seconds, grown, t) {
            // Reaching MAX_SKEW by growth alone is not evidence of a bad clock.
            Verdict::Fail => Verdict::Unknown,
            v => v,
        };
        let total = seconds_until(
            self.offset_seconds,
            self.uncertainty_seconds,
            t.max_skew,
            drift,
        );
        Held {
            verdict,
            age_seconds: age,
            bound_seconds: bound,
            remaining_seconds: (total - age).max(0.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Thresholds = Thresholds {
        window: 300.0,
        max_skew: 1.0,
        warn_skew: 0.5,
    };

    fn drift(ppm: f64) -> MaxDrift {
        MaxDrift::from_ppm(ppm).unwrap()
    }

    #[test]
    fn drift_parses_ppm_with_or_without_the_unit() {
        for (s, want) in [
            ("500ppm", Some(500.0)),
            ("500 ppm", Some(500.0)),
            ("5000", Some(5000.0)),
            ("0.5ppm", Some(0.5)),
            ("100000ppm", Some(100_000.0)),
            ("0", None),
            ("-5ppm", None),
            ("100001", None),
            ("NaN", None),
            ("inf", None),
            ("5%", None),
            ("", None),
        ] {
            assert_eq!(MaxDrift::parse(s).map(MaxDrift::ppm), want, "{s:?}");
        }
        assert_eq!(MaxDrift::default().rate(), 500e-6);
    }

    #[test]
    fn the_bound_grows_at_the_drift_rate() {
        let d = drift(500.0);
        assert_eq!(grown_bound(-0.2, 0.1, 0.0, d), 0.30000000000000004);
        assert!((grown_bound(-0.2, 0.1, 1000.0, d) - 0.8).abs() < 1e-12);
        assert_eq!(
            grown_bound(0.2, 0.1, -5.0, d),
            grown_bound(0.2, 0.1, 0.0, d)
        );
        // 150 s MAX_SKEW from a perfect measurement at 500 ppm: 300 000 s (3.5 days).
        assert!((seconds_until(0.0, 0.0, 150.0, d) - 300_000.0).abs() < 1e-6);
        assert_eq!(seconds_until(2.0, 0.0, 1.0, d), 0.0);
        assert_eq!(seconds_until(f64::NAN, 0.0, 1.0, d), f64::INFINITY);
    }

    #[test]
    fn holdover_holds_warns_then_turns_unknown_at_max_skew() {
        // 5000 ppm, start bound 0.1 s: warn at 80 s, unknown at 180 s.
        let a = Anchor {
            authenticated: false,
            offset_seconds: 0.05,
            uncertainty_seconds: 0.05,
            taken: Duration::from_secs(100),
        };
        let d = drift(5000.0);
        // (seconds after the anchor, verdict, remaining)
        for (after, verdict, remaining) in [
            (0, Verdict::Ok, 180.0),
            (79, Verdict::Ok, 101.0),
            (80, Verdict::Warn, 100.0),
            (179, Verdict::Warn, 1.0),
            (180, Verdict::Unknown, 0.0),
            (10_000, Verdict::Unknown, 0.0),
        ] {
            let h = a.judge(Duration::from_secs(100 + after), d, &T);
            assert_eq!(h.verdict, verdict, "{after}");
            assert!(
                (h.remaining_seconds - remaining).abs() < 1e-9,
                "{after} {h:?}"
            );
            assert_eq!(h.age_seconds, after as f64);
            assert_eq!(h.holds(), verdict != Verdict::Unknown);
        }
        // A reading from before the anchor is age zero.
        assert_eq!(a.judge(Duration::from_secs(1), d, &T).age_seconds, 0.0);
    }

    #[test]
    fn only_passing_rounds_anchor() {
        let t = Duration::from_secs(1);
        assert!(Anchor::from_round(Verdict::Ok, Some(0.1), Some(0.01), t).is_some());
        assert!(Anchor::from_round(Verdict::Warn, Some(0.6), Some(0.01), t).is_some());
        assert!(Anchor::from_round(Verdict::Fail, Some(9.0), Some(0.01), t).is_none());
        assert!(Anchor::from_round(Verdict::Unknown, None, None, t).is_none());
        assert!(Anchor::from_round(Verdict::Ok, Some(f64::NAN), Some(0.01), t).is_none());
    }

    #[test]
    fn an_anchor_refutes_only_what_lies_outside_its_grown_interval() {
        let a = Anchor::from_round(Verdict::Ok, Some(0.0), Some(0.01), Duration::from_secs(100))
            .expect("an ok round");
        let drift = MaxDrift::DEFAULT;
        // 1000 s later the interval has grown by 0.5 s.
        let now = Duration::from_secs(1100);
        assert!(!a.refutes(now, drift, 0.4, 0.05));
        assert!(!a.refutes(now, drift, -0.55, 0.05));
        assert!(a.refutes(now, drift, 600.0, 0.01));
        assert!(a.refutes(now, drift, -0.7, 0.05));
    }
}
