//! Drift forecast: from `serve`'s history of rounds, how fast the reference
//! gains on the local clock (a weighted straight-line fit of offset against
//! boottime) and when, at that rate, the skew bound reaches `WARN_SKEW` and
//! `MAX_SKEW`. Pure: the caller passes every point and time in.
//!
//! Each point is weighted by 1/u² (its uncertainty u, floored at 1 µs), so a
//! wide HTTP `Date` interval moves the fit less than a tight NTP sample. The
//! slope's standard error comes from the same weights; a forecast is made only
//! when the slope is at least twice its error. A step or suspend of the wall
//! clock makes the history meaningless: the caller resets it.

use std::collections::VecDeque;

/// Most points kept (the oldest go first): at a 60 s interval, about 17 hours.
pub const MAX_POINTS: usize = 1024;

/// Fewest points for an estimate.
pub const MIN_POINTS: usize = 5;

/// Shortest span of time the points must cover for an estimate, seconds.
pub const MIN_SPAN_SECONDS: f64 = 10.0;

/// Smallest uncertainty a point is weighted by, seconds.
const UNCERTAINTY_FLOOR: f64 = 1e-6;

/// One measured offset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// CLOCK_BOOTTIME of the measurement, seconds.
    pub at: f64,
    /// Offset, reference minus local, seconds.
    pub offset: f64,
    /// Its uncertainty, seconds.
    pub uncertainty: f64,
}

/// The rounds since the last reset.
#[derive(Debug, Clone, Default)]
pub struct History {
    points: VecDeque<Point>,
}

/// The fitted drift.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Drift {
    /// How fast the offset grows, parts per million: positive when the
    /// reference gains on the local clock (the local clock runs slow).
    pub ppm: f64,
    /// Standard error of `ppm`.
    pub uncertainty_ppm: f64,
    /// The fitted offset at the newest point, seconds.
    pub offset_now: f64,
    /// The newest point's uncertainty, seconds.
    pub uncertainty_now: f64,
    /// Boottime of the newest point, seconds.
    pub at: f64,
    /// Points fitted.
    pub points: usize,
    /// Seconds between the oldest and newest point.
    pub span_seconds: f64,
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        History::default()
    }

    /// Adds a point (non-finite ones are ignored); the oldest go beyond [`MAX_POINTS`].
    pub fn push(&mut self, p: Point) {
        if !(p.at.is_finite() && p.offset.is_finite() && p.uncertainty.is_finite()) {
            return;
        }
        if self.points.len() == MAX_POINTS {
            self.points.pop_front();
        }
        self.points.push_back(p);
    }

    /// Forgets every point (after a step or suspend of the wall clock).
    pub fn reset(&mut self) {
        self.points.clear();
    }

    /// Points kept.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether no point is kept.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The weighted fit, once there are [`MIN_POINTS`] over [`MIN_SPAN_SECONDS`].
    pub fn drift(&self) -> Option<Drift> {
        let newest = *self.points.back()?;
        let oldest = *self.points.front()?;
        let span = newest.at - oldest.at;
        if self.points.len() < MIN_POINTS || span < MIN_SPAN_SECONDS {
            return None;
        }
        let weight = |p: &Point| 1.0 / p.uncertainty.max(UNCERTAINTY_FLOOR).powi(2);
        // Times relative to the newest point keep the sums well conditioned.
        let (mut sw, mut st, mut so) = (0.0, 0.0, 0.0);
        for p in &self.points {
            let w = weight(p);
            sw += w;
            st += w * (p.at - newest.at);
            so += w * p.offset;
        }
        let (tm, om) = (st / sw, so / sw);
        let (mut stt, mut sto) = (0.0, 0.0);
        for p in &self.points {
            let w = weight(p);
            let dt = p.at - newest.at - tm;
            stt += w * dt * dt;
            sto += w * dt * (p.offset - om);
        }
        if stt <= 0.0 {
            return None;
        }
        let slope = sto / stt;
        let slope_error = (1.0 / stt).sqrt();
        let offset_now = om + slope * (0.0 - tm);
        Some(Drift {
            ppm: slope * 1e6,
            uncertainty_ppm: slope_error * 1e6,
            offset_now,
            uncertainty_now: newest.uncertainty,
            at: newest.at,
            points: self.points.len(),
            span_seconds: span,
        })
    }
}

impl Drift {
    /// Whether the drift is told from zero: at least twice its standard error.
    pub fn significant(&self) -> bool {
        self.ppm.abs() >= 2.0 * self.uncertainty_ppm && self.ppm != 0.0
    }

    /// Seconds after boottime `now` until the bound `|offset| + uncertainty`
    /// reaches `limit` at this drift: `Some(0)` if it already has, `None` if
    /// the drift is not significant (no breach is forecast).
    pub fn seconds_until(&self, limit: f64, now: f64) -> Option<f64> {
        let rate = self.ppm * 1e-6;
        let offset = self.offset_now + rate * (now - self.at).max(0.0);
        let room = limit - self.uncertainty_now;
        if offset.abs() >= room {
            return Some(0.0);
        }
        if !self.significant() {
            return None;
        }
        // The offset moves at `rate` and meets +room or −room, whichever is ahead.
        let target = if rate > 0.0 { room } else { -room };
        Some(((target - offset) / rate).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(ppm: f64, start: f64, n: usize, every: f64, u: f64) -> History {
        let mut h = History::new();
        for i in 0..n {
            let at = 1000.0 + i as f64 * every;
            h.push(Point {
                at,
                offset: start + ppm * 1e-6 * (at - 1000.0),
                uncertainty: u,
            });
        }
        h
    }

    #[test]
    fn a_straight_drift_is_found_with_its_breach_times() {
        // 500 ppm from 2 s: the bound 2 s + 0.1 ms reaches 2.03 s after 60 s.
        let h = line(500.0, 2.0, 31, 1.0, 1e-4);
        let d = h.drift().expect("enough points");
        assert!((d.ppm - 500.0).abs() < 1e-6, "{d:?}");
        assert!(d.significant());
        assert!((d.offset_now - 2.015).abs() < 1e-9, "{d:?}");
        let until = d.seconds_until(2.0301, d.at).unwrap();
        assert!((until - 30.0).abs() < 1e-6, "{until}");
        // Ten seconds later, ten seconds less.
        let until = d.seconds_until(2.0301, d.at + 10.0).unwrap();
        assert!((until - 20.0).abs() < 1e-6, "{until}");
        assert_eq!(d.seconds_until(1.0, d.at), Some(0.0), "already past");
    }

    #[test]
    fn a_slow_local_clock_or_a_fast_one_crosses_on_its_own_side() {
        // Offset −1 s growing more negative by 100 ppm: |−1 − 1e-4 t| + 0 = 2 at t = 10 000 s.
        let h = line(-100.0, -1.0, 20, 1.0, 0.0);
        let d = h.drift().unwrap();
        // Asked at the newest point, 19 s in.
        let until = d.seconds_until(2.0, d.at).unwrap();
        assert!((until - 9_981.0).abs() < 1e-3, "{until}");
        // Offset +1 s shrinking at 100 ppm: it passes zero and meets −2 s after 30 000 s.
        let h = line(-100.0, 1.0, 20, 1.0, 0.0);
        let d = h.drift().unwrap();
        let until = d.seconds_until(2.0, d.at).unwrap();
        assert!((until - 29_981.0).abs() < 1e-3, "{until}");
    }

    #[test]
    fn no_forecast_without_enough_points_span_or_a_significant_drift() {
        assert!(line(500.0, 0.0, 4, 5.0, 1e-4).drift().is_none(), "4 points");
        assert!(line(500.0, 0.0, 10, 1.0, 1e-4).drift().is_none(), "9 s");
        // A flat line: no breach forecast.
        let d = line(0.0, 0.001, 20, 1.0, 1e-4).drift().unwrap();
        assert_eq!(d.ppm, 0.0);
        assert_eq!(d.seconds_until(1.0, d.at), None);
        // 1 ppm measured with ±10 ms points over 20 s is noise.
        let d = line(1.0, 0.0, 20, 1.0, 0.01).drift().unwrap();
        assert!(!d.significant(), "{d:?}");
        assert_eq!(d.seconds_until(1.0, d.at), None);
        let mut h = History::new();
        h.push(Point {
            at: f64::NAN,
            offset: 0.0,
            uncertainty: 0.0,
        });
        assert!(h.is_empty());
    }

    #[test]
    fn tight_points_outweigh_wide_ones_and_reset_forgets() {
        let mut h = line(200.0, 0.0, 20, 1.0, 1e-4);
        // A wide HTTP Date point far off the line barely moves the fit.
        h.push(Point {
            at: 1020.0,
            offset: 0.5,
            uncertainty: 0.5,
        });
        let d = h.drift().unwrap();
        assert!((d.ppm - 200.0).abs() < 1.0, "{d:?}");
        h.reset();
        assert!(h.drift().is_none() && h.is_empty());
        let mut h = History::new();
        for i in 0..(MAX_POINTS + 10) {
            h.push(Point {
                at: i as f64,
                offset: 0.0,
                uncertainty: 1e-3,
            });
        }
        assert_eq!(h.len(), MAX_POINTS);
    }
}
