//! The commands: each takes a validated configuration and returns an exit code.

pub mod check;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::report::{HostFacts, Judging, Report};
use crate::source::measure_all;

/// Exit code: the clock is fine (or the command succeeded).
pub const EXIT_OK: i32 = 0;
/// Exit code: the clock is not fine, or the probe failed.
pub const EXIT_FAIL: i32 = 1;
/// Exit code: a usage or configuration error.
pub const EXIT_USAGE: i32 = 2;
/// Exit code (`exec`): the workload exists but cannot be executed, as a shell reports it.
pub const EXIT_NOT_EXECUTABLE: i32 = 126;
/// Exit code (`exec`): the workload was not found, as a shell reports it.
pub const EXIT_NOT_FOUND: i32 = 127;

/// The judging part of a configuration.
pub fn judging(config: &Config) -> Judging {
    Judging {
        profile: config.profile,
        thresholds: config.thresholds,
        min_sources: config.min_sources,
    }
}

/// Facts about the host clock at this moment.
pub fn host_facts(clock: &dyn Clock) -> HostFacts {
    let boot = clock.boottime().as_secs_f64();
    let mono = clock.monotonic().as_secs_f64();
    HostFacts {
        kernel: crate::sys::kernel_clock(),
        suspended_seconds: (boot - mono).max(0.0),
        now: clock.realtime() as f64 / 1e9,
    }
}

/// Measures every source once and judges the result.
pub async fn assess(config: &Config, clock: &dyn Clock) -> Report {
    if config.disabled {
        return Report::disabled(&judging(config), clock.realtime() as f64 / 1e9);
    }
    let outcomes = measure_all(&config.sources, &config.query, clock).await;
    for (s, o) in config.sources.iter().zip(&outcomes) {
        match &o.result {
            Ok(sample) => {
                tracing::debug!(source = %s, offset = sample.offset, uncertainty = sample.uncertainty, rtt = sample.rtt, "measured")
            }
            Err(e) => tracing::debug!(source = %s, error = %e, "no measurement"),
        }
    }
    Report::assess(
        &config.sources,
        &outcomes,
        &judging(config),
        &host_facts(clock),
    )
}

/// The system clock, for commands.
pub fn system_clock() -> &'static SystemClock {
    static CLOCK: SystemClock = SystemClock;
    &CLOCK
}

/// A current-thread runtime: one-shot commands need no thread pool.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}
