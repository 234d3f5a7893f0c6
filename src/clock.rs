//! The local clocks skewguard reads, behind a trait so tests can step or slew them.
//!
//! A measurement anchors its send time on the realtime clock once and times
//! everything after that on the monotonic clock, so a step of the wall clock in
//! the middle of a query cannot produce a negative or absurd round trip.

use std::time::Duration;

/// Nanoseconds since the Unix epoch, negative before 1970.
pub type UnixNanos = i128;

/// Nanoseconds in one second.
pub const NANOS_PER_SEC: i128 = 1_000_000_000;

/// The clocks a measurement needs.
pub trait Clock: Send + Sync {
    /// CLOCK_REALTIME: the wall clock that signatures are made with.
    fn realtime(&self) -> UnixNanos;
    /// CLOCK_MONOTONIC: never steps; does not count time the host was suspended.
    fn monotonic(&self) -> Duration;
    /// CLOCK_BOOTTIME: like monotonic, but keeps counting while suspended.
    fn boottime(&self) -> Duration;

    /// Reads realtime and monotonic together, as the anchor of one query.
    fn stamp(&self) -> Stamp {
        Stamp {
            real: self.realtime(),
            mono: self.monotonic(),
        }
    }
}

/// A realtime reading paired with the monotonic reading taken with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Realtime at the anchor.
    pub real: UnixNanos,
    /// Monotonic time at the anchor.
    pub mono: Duration,
}

impl Stamp {
    /// The realtime at monotonic instant `mono`, extrapolated from this anchor.
    ///
    /// Used for T4: the receive time is the anchor's realtime plus the elapsed
    /// monotonic time, never a second realtime read.
    pub fn real_at(&self, mono: Duration) -> UnixNanos {
        self.real + (mono.as_nanos() as i128 - self.mono.as_nanos() as i128)
    }
}

/// The host's clocks, read with `clock_gettime`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn realtime(&self) -> UnixNanos {
        crate::sys::clock_nanos(crate::sys::ClockId::Realtime)
    }
    fn monotonic(&self) -> Duration {
        nanos_to_duration(crate::sys::clock_nanos(crate::sys::ClockId::Monotonic))
    }
    fn boottime(&self) -> Duration {
        nanos_to_duration(crate::sys::clock_nanos(crate::sys::ClockId::Boottime))
    }
}

fn nanos_to_duration(n: i128) -> Duration {
    let n = n.max(0);
    Duration::new((n / NANOS_PER_SEC) as u64, (n % NANOS_PER_SEC) as u32)
}

/// Converts a signed nanosecond difference to seconds.
pub fn nanos_to_secs(n: i128) -> f64 {
    n as f64 / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_at_extrapolates_from_the_anchor() {
        let s = Stamp {
            real: 1_000 * NANOS_PER_SEC,
            mono: Duration::from_secs(5),
        };
        assert_eq!(
            s.real_at(Duration::from_millis(5_250)),
            1_000 * NANOS_PER_SEC + 250_000_000
        );
    }

    #[test]
    fn system_clocks_are_readable_and_ordered() {
        let c = SystemClock;
        assert!(c.realtime() > 0);
        let a = c.monotonic();
        let b = c.monotonic();
        assert!(b >= a);
        assert!(c.boottime() >= Duration::ZERO);
    }
}
