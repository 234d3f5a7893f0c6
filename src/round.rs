//! A measurement round: every configured source queried at once, through the
//! protocol module its scheme names, and the answers judged into a [`Report`].
//!
//! Above the protocols (`ntp`, `nts`, `http_date`) and the report; below the commands.

use crate::clock::Clock;
use crate::config::Config;
use crate::report::{HostFacts, Judging, Report};
use crate::source::{Outcome, QuerySettings, Source, SourceError};

/// Queries one source once, keeping no state.
pub async fn measure(source: &Source, settings: &QuerySettings, clock: &dyn Clock) -> Outcome {
    measure_with(source, settings, clock, &mut SourceState::default()).await
}

/// What a source keeps between rounds: the NTS key exchange's keys and cookies.
#[derive(Debug, Default)]
pub struct SourceState {
    nts: Option<crate::nts::client::NtsState>,
    /// NTS work counters.
    pub nts_stats: crate::nts::client::NtsStats,
}

/// Queries one source, using and updating its state from earlier rounds.
pub async fn measure_with(
    source: &Source,
    settings: &QuerySettings,
    clock: &dyn Clock,
    state: &mut SourceState,
) -> Outcome {
    match source {
        Source::Ntp { host, port } => crate::ntp::client::query(host, *port, settings, clock).await,
        Source::Http(target) => crate::http_date::query(target, settings, clock).await,
        Source::Nts { host, port } => {
            crate::nts::client::query(
                host,
                *port,
                settings,
                clock,
                &mut state.nts,
                &mut state.nts_stats,
            )
            .await
        }
    }
}

/// The judging part of a configuration.
pub fn judging(config: &Config) -> Judging {
    Judging {
        profile: config.profile,
        thresholds: config.thresholds,
        min_sources: config.min_sources,
        auth_select: config.auth_select,
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
        platform: Default::default(),
    }
}

/// Measures every source once and judges the result.
pub async fn assess(config: &Config, clock: &dyn Clock) -> Report {
    Rounds::new(config, clock).round().await
}

/// Measures round after round, remembering which sources asked (by a RATE
/// Kiss-o'-Death) not to be queried again before a given time, and which
/// refused service for good (DENY, RSTR: never queried again by this process).
pub struct Rounds<'a> {
    config: &'a Config,
    clock: &'a dyn Clock,
    /// Per source: monotonic time before which it must not be queried.
    not_before: Vec<Option<std::time::Duration>>,
    /// Per source: the refusal that stopped it for the life of the process.
    refused: Vec<Option<SourceError>>,
    /// Per source: what it keeps between rounds (NTS keys and cookies).
    states: Vec<SourceState>,
}

impl<'a> Rounds<'a> {
    /// Starts with every source free to be queried.
    pub fn new(config: &'a Config, clock: &'a dyn Clock) -> Self {
        Rounds {
            config,
            clock,
            not_before: vec![None; config.sources.len()],
            refused: vec![None; config.sources.len()],
            states: config
                .sources
                .iter()
                .map(|_| SourceState::default())
                .collect(),
        }
    }

    /// Key exchanges made so far, summed over the NTS sources.
    pub fn nts_key_exchanges(&self) -> u64 {
        self.states.iter().map(|s| s.nts_stats.key_exchanges).sum()
    }

    /// How long to hold off before the next round on account of Kiss-o'-Death
    /// pauses: zero while any source may be queried (the paused ones are skipped
    /// in the round), else until the first paused source is free again.
    /// Sources that refused service for good are left out (zero if no other).
    pub fn backoff(&self) -> std::time::Duration {
        let now = self.clock.monotonic();
        self.not_before
            .iter()
            .zip(&self.refused)
            .filter(|(_, r)| r.is_none())
            .map(|(t, _)| t.map(|t| t.saturating_sub(now)).unwrap_or_default())
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
        let futs = config
            .sources
            .iter()
            .zip(&self.not_before)
            .zip(&self.refused)
            .zip(self.states.iter_mut())
            .map(|(((s, nb), refused), state)| {
                let wait = nb.map(|t| t.saturating_sub(now)).unwrap_or_default();
                let query = &config.query;
                let clock = self.clock;
                async move {
                    if let Some(e) = refused {
                        return Outcome::from_result(Err(e.clone()));
                    }
                    if !wait.is_zero() {
                        return Outcome::from_result(Err(SourceError::KissOfDeath(format!(
                            "RATE (not queried again for {})",
                            crate::duration::human_duration(wait.as_secs_f64())
                        ))));
                    }
                    measure_with(s, query, clock, state).await
                }
            });
        // Where this runs (and AWS's word on the clock) is read while the sources answer.
        let (outcomes, platform) = tokio::join!(
            join_all(futs),
            crate::platform::observe(config.query.timeout, now)
        );
        let after = self.clock.monotonic();
        for (((s, o), nb), refused) in config
            .sources
            .iter()
            .zip(&outcomes)
            .zip(self.not_before.iter_mut())
            .zip(self.refused.iter_mut())
        {
            if let Err(e @ SourceError::Refused(_)) = &o.result {
                *refused = Some(e.clone());
            }
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
            &HostFacts {
                platform,
                ..host_facts(self.clock)
            },
        )
    }
}

/// Polls a set of futures concurrently on the current task (no spawning).
pub async fn join_all<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut futs: Vec<_> = futs.map(|f| Some(Box::pin(f))).collect();
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, fut) in out.iter_mut().zip(futs.iter_mut()) {
            if let Some(f) = fut {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        *slot = Some(v);
                        *fut = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}
