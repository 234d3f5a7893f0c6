//! The commands: each takes a validated configuration and returns an exit code.

pub mod check;
pub mod health;
pub mod serve;
pub mod wait;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::report::{HostFacts, Judging, Report};
use crate::source::{measure, Outcome, SourceError};

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
    Rounds::new(config, clock).round().await
}

/// Measures round after round, remembering which sources asked (by a RATE
/// Kiss-o'-Death) not to be queried again before a given time.
pub struct Rounds<'a> {
    config: &'a Config,
    clock: &'a dyn Clock,
    /// Per source: monotonic time before which it must not be queried.
    not_before: Vec<Option<std::time::Duration>>,
}

impl<'a> Rounds<'a> {
    /// Starts with every source free to be queried.
    pub fn new(config: &'a Config, clock: &'a dyn Clock) -> Self {
        Rounds {
            config,
            clock,
            not_before: vec![None; config.sources.len()],
        }
    }

    /// How long to hold off before the next round on account of Kiss-o'-Death
    /// pauses: zero while any source may be queried (the paused ones are skipped
    /// in the round), else until the first paused source is free again.
    pub fn backoff(&self) -> std::time::Duration {
        let now = self.clock.monotonic();
        self.not_before
            .iter()
            .map(|t| t.map(|t| t.saturating_sub(now)).unwrap_or_default())
            .min()
            .unwrap_or_default()
    }

    /// Measures every source that may be queried now and judges the result.
    pub async fn round(&mut self) -> Report {
        let config = self.config;
        if config.disabled {
            return Report::disabled(&judging(config), self.clock.realtime() as f64 / 1e9);
        }
        let now = self.clock.monotonic();
        let futs = config.sources.iter().zip(&self.not_before).map(|(s, nb)| {
            let wait = nb.map(|t| t.saturating_sub(now)).unwrap_or_default();
            let query = &config.query;
            let clock = self.clock;
            async move {
                if !wait.is_zero() {
                    return Outcome::from_result(Err(SourceError::KissOfDeath(format!(
                        "RATE (not queried again for {})",
                        crate::report::human_duration(wait.as_secs_f64())
                    ))));
                }
                measure(s, query, clock).await
            }
        });
        let outcomes = crate::source::join_all(futs).await;
        let after = self.clock.monotonic();
        for ((s, o), nb) in config
            .sources
            .iter()
            .zip(&outcomes)
            .zip(self.not_before.iter_mut())
        {
            if let Some(pause) = o.retry_after {
                tracing::warn!(source = %s, pause = ?pause, "server asked to slow down (Kiss-o'-Death RATE)");
                *nb = Some(after + pause);
            } else if nb.is_some_and(|t| t <= after) {
                *nb = None;
            }
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
            &host_facts(self.clock),
        )
    }
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
