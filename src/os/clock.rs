//! The local clocks skewguard reads, behind a trait so tests can step or slew them.
//!
//! A measurement anchors its send time on the realtime clock once and times
//! everything after that on the monotonic clock, so a step of the wall clock in
//! the middle of a query cannot produce a negative or absurd round trip.
//!
//! The anchor itself has a reading error: the realtime read happens at some
//! monotonic instant between the two monotonic reads around it, and a busy
//! machine can preempt the reader in between. [`Stamp`] keeps that bracket,
//! and converts a monotonic instant to the *earliest* or *latest* realtime it
//! can stand for, so a send time (T1) is never late and a receive time (T4)
//! never early, however long the preemption was.
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

    /// Whether [`Clock::realtime`] is the kernel's CLOCK_REALTIME, so that a
    /// stamp the kernel made (a datagram's receive time) is on its scale.
    fn is_kernel_realtime(&self) -> bool {
        false
    }

    /// Reads realtime between two monotonic reads, as the anchor of one query.
    ///
    /// Tries up to [`STAMP_TRIES`] times and keeps the tightest bracket,
    /// stopping early at one of [`TIGHT_STAMP`] or less (the usual case).
    fn stamp(&self) -> Stamp {
        let mut best: Option<Stamp> = None;
        for _ in 0..STAMP_TRIES {
            let before = self.monotonic();
            let real = self.realtime();
            let after = self.monotonic();
            let s = Stamp {
                real,
                mono: before,
                spread: after.saturating_sub(before),
            };
            if best.is_none_or(|b| s.spread < b.spread) {
                best = Some(s);
            }
            if s.spread <= TIGHT_STAMP {
                break;
            }
        }
        // STAMP_TRIES > 0, so `best` is set; the fallback is unreachable.
        best.unwrap_or_else(|| Stamp {
            real: self.realtime(),
            mono: self.monotonic(),
            spread: Duration::ZERO,
        })
    }
}

/// The fastest the kernel slews realtime against monotonic (adjtimex's
/// 500 ppm frequency plus 500 ppm offset slew), in ppm.
pub const MAX_SLEW_PPM: i128 = 1_000;

/// Bracketed reads [`Clock::stamp`] makes at most.
pub const STAMP_TRIES: usize = 8;

/// A bracket this narrow ends [`Clock::stamp`]'s retries: a few hundred
/// nanoseconds is what two vDSO clock reads cost when nothing preempts them.
pub const TIGHT_STAMP: Duration = Duration::from_micros(2);

/// A realtime reading with the monotonic bracket it was taken in: `real` was
/// read at some monotonic instant in `[mono, mono + spread]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Realtime at the anchor.
    pub real: UnixNanos,
    /// Monotonic time just before the realtime read.
    pub mono: Duration,
    /// Monotonic time from just before to just after the realtime read.
    pub spread: Duration,
}

impl Stamp {
    /// The realtime at monotonic instant `mono`, extrapolated from this anchor
    /// (from the middle of its bracket): an estimate, for scheduling.
    pub fn real_at(&self, mono: Duration) -> UnixNanos {
        self.real + (nanos(mono) - nanos(self.mono) - nanos(self.spread) / 2)
    }

    /// The earliest realtime monotonic instant `mono` can be: for a send time
    /// (T1), which must not be later than the send.
    pub fn earliest_real_at(&self, mono: Duration) -> UnixNanos {
        self.real + (nanos(mono) - nanos(self.mono) - nanos(self.spread))
    }

    /// The latest realtime monotonic instant `mono` can be: for a receive time
    /// (T4), which must not be earlier than the arrival.
    pub fn latest_real_at(&self, mono: Duration) -> UnixNanos {
        self.real + (nanos(mono) - nanos(self.mono))
    }

    /// The monotonic instant of an event that the kernel stamped `kernel` on
    /// its realtime clock, given `later`, a stamp taken after the event. The
    /// latest it can be: `later`'s bracket end minus the realtime that passed
    /// since the event. `None` when the two do not fit together: the event
    /// would lie after `later` or before `not_before`, or realtime moved
    /// against monotonic between this anchor and `later` by more than
    /// [`MAX_SLEW_PPM`] allows (a step), so that realtime differences are not
    /// elapsed time.
    pub fn kernel_event_at(
        &self,
        kernel: UnixNanos,
        later: &Stamp,
        not_before: Duration,
    ) -> Option<Duration> {
        let elapsed_mono = nanos(later.mono) - nanos(self.mono);
        let elapsed_real = later.real - self.real;
        let allowance = nanos(self.spread)
            + nanos(later.spread)
            + elapsed_mono.abs() * MAX_SLEW_PPM / 1_000_000
            + 1_000;
        if elapsed_mono < 0 || (elapsed_real - elapsed_mono).abs() > allowance {
            return None;
        }
        let age = later.real - kernel;
        let at = nanos(later.mono) + nanos(later.spread) - age;
        (age >= 0 && at >= nanos(not_before)).then(|| Duration::from_nanos(at as u64))
    }
}

fn nanos(d: Duration) -> i128 {
    d.as_nanos() as i128
}

/// The host's clocks, read with `clock_gettime`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn is_kernel_realtime(&self) -> bool {
        true
    }
    fn realtime(&self) -> UnixNanos {
        crate::os::sys::clock_nanos(crate::os::sys::ClockId::Realtime)
    }
    fn monotonic(&self) -> Duration {
        nanos_to_duration(crate::os::sys::clock_nanos(
            crate::os::sys::ClockId::Monotonic,
        ))
    }
    fn boottime(&self) -> Duration {
        nanos_to_duration(crate::os::sys::clock_nanos(
            crate::os::sys::ClockId::Boottime,
        ))
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
    fn real_at_extrapolates_from_the_anchor_within_its_bracket() {
        let s = Stamp {
            real: 1_000 * NANOS_PER_SEC,
            mono: Duration::from_secs(5),
            spread: Duration::from_millis(2),
        };
        let later = Duration::from_millis(5_250);
        let base = 1_000 * NANOS_PER_SEC + 250_000_000;
        assert_eq!(s.latest_real_at(later), base);
        assert_eq!(s.earliest_real_at(later), base - 2_000_000);
        assert_eq!(s.real_at(later), base - 1_000_000);
    }

    /// A clock whose realtime read is preempted for 5 ms on the first tries.
    struct Preempted {
        reads: std::sync::atomic::AtomicU32,
        slow: u32,
    }

    impl Clock for Preempted {
        fn realtime(&self) -> UnixNanos {
            let n = self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if n < self.slow {
                std::thread::sleep(Duration::from_millis(5));
            }
            SystemClock.realtime()
        }
        fn monotonic(&self) -> Duration {
            SystemClock.monotonic()
        }
        fn boottime(&self) -> Duration {
            SystemClock.boottime()
        }
    }

    #[test]
    fn a_preempted_read_is_retried_and_its_bracket_kept() {
        let c = Preempted {
            reads: Default::default(),
            slow: 2,
        };
        let s = c.stamp();
        assert!(s.spread < Duration::from_millis(5), "{s:?}");
        assert!(c.reads.load(std::sync::atomic::Ordering::SeqCst) >= 3);

        // Preempted every time: the widest bracket still covers the truth.
        let c = Preempted {
            reads: Default::default(),
            slow: u32::MAX,
        };
        let before = SystemClock.realtime();
        let s = c.stamp();
        let after = SystemClock.realtime();
        assert!(s.spread >= Duration::from_millis(5), "{s:?}");
        let now = SystemClock.monotonic();
        let (lo, hi) = (s.earliest_real_at(now), s.latest_real_at(now));
        assert!(lo <= hi);
        assert!(lo <= SystemClock.realtime() && after >= before);
        assert_eq!(
            c.reads.load(std::sync::atomic::Ordering::SeqCst),
            STAMP_TRIES as u32
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

    #[test]
    fn a_kernel_stamp_is_carried_onto_the_monotonic_scale_only_when_it_fits() {
        let anchor = Stamp {
            real: 1_000 * NANOS_PER_SEC,
            mono: Duration::from_secs(50),
            spread: Duration::from_nanos(100),
        };
        // 1 ms later on both scales; the event 300 µs before that read.
        let later = Stamp {
            real: anchor.real + 1_000_000,
            mono: Duration::from_secs(50) + Duration::from_millis(1),
            spread: Duration::from_nanos(100),
        };
        let sent = Duration::from_secs(50) + Duration::from_micros(100);
        let at = anchor.kernel_event_at(later.real - 300_000, &later, sent);
        assert_eq!(
            at,
            Some(Duration::from_secs(50) + Duration::from_micros(700) + Duration::from_nanos(100))
        );
        // After the read, or before the send: refused.
        assert_eq!(anchor.kernel_event_at(later.real + 1, &later, sent), None);
        assert_eq!(
            anchor.kernel_event_at(later.real - 950_000, &later, sent),
            None
        );
        // Realtime stepped by 50 µs between the two reads: refused.
        let stepped = Stamp {
            real: later.real + 50_000,
            ..later
        };
        assert_eq!(
            anchor.kernel_event_at(stepped.real - 300_000, &stepped, sent),
            None
        );
        // A slew within 1000 ppm is not a step.
        let slewed = Stamp {
            real: later.real + 900,
            ..later
        };
        assert!(anchor
            .kernel_event_at(slewed.real - 300_000, &slewed, sent)
            .is_some());
    }
}
