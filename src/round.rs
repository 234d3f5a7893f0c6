//! A measurement round: every configured source queried at once, through the
//! protocol module its scheme names, and the answers judged into a [`Report`].
//!
//! Above the protocols (`ntp`, `nts`, `http_date`) and the report; below the commands.

use crate::config::Config;
use crate::core::report::{HostFacts, Judging, Report};
use crate::core::sample::{Outcome, SourceError};
use crate::os::clock::Clock;
use crate::proto::{measure_with, Source, SourceState};

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
        kernel: crate::os::sys::kernel_clock(),
        suspended_seconds: (boot - mono).max(0.0),
        now: clock.realtime() as f64 / 1e9,
        platform: Default::default(),
        proxy: None,
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
        self.states.iter().map(SourceState::key_exchanges).sum()
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
        // One source per protocol and address: names of one server are
        // measured once and vote once (the first configured name leads).
        let (groups, unresolved) = identities(&config.sources, config.query.timeout).await;
        let leaders: Vec<usize> = groups.iter().map(|g| g[0]).collect();
        let now = self.clock.monotonic();
        let futs = config
            .sources
            .iter()
            .zip(&self.not_before)
            .zip(&self.refused)
            .zip(&unresolved)
            .zip(self.states.iter_mut())
            .enumerate()
            .filter(|(i, _)| leaders.contains(i))
            .map(|(_, ((((s, nb), refused), unresolved), state))| {
                let wait = nb.map(|t| t.saturating_sub(now)).unwrap_or_default();
                let query = &config.query;
                let clock = self.clock;
                async move {
                    if let Some(e) = refused.as_ref().or(unresolved.as_ref()) {
                        return Outcome::from_result(Err(e.clone()));
                    }
                    if !wait.is_zero() {
                        return Outcome::from_result(Err(SourceError::KissOfDeath(format!(
                            "RATE (not queried again for {})",
                            crate::core::duration::human_duration(wait.as_secs_f64())
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
        for (group, o) in groups.iter().zip(&outcomes) {
            let s = &config.sources[group[0]];
            for &i in group {
                let (nb, refused) = (&mut self.not_before[i], &mut self.refused[i]);
                if let Err(e @ SourceError::Refused(_)) = &o.result {
                    *refused = Some(e.clone());
                }
                if let Some(pause) = o.retry_after {
                    *nb = Some(after + pause);
                } else if nb.is_some_and(|t| t <= after) {
                    *nb = None;
                }
            }
            if let Some(pause) = o.retry_after {
                tracing::warn!(source = %s, pause = ?pause, "server asked to slow down (Kiss-o'-Death RATE)");
            }
            match &o.result {
                Ok(sample) => {
                    tracing::debug!(source = %s, offset_seconds = sample.offset, uncertainty_seconds = sample.uncertainty, rtt_seconds = sample.rtt, "measured")
                }
                Err(e) => tracing::debug!(source = %s, error = %e, "no measurement"),
            }
        }
        let led: Vec<Source> = leaders.iter().map(|&i| config.sources[i].clone()).collect();
        let mut report = Report::assess(
            &led,
            &outcomes,
            &judging(config),
            &HostFacts {
                platform,
                proxy: config.proxy.clone(),
                ..host_facts(self.clock)
            },
        );
        for (entry, group) in report.sources.iter_mut().zip(&groups) {
            entry.aliases = group[1..]
                .iter()
                .map(|&i| config.sources[i].to_string())
                .collect();
            entry.via = config.sources[group[0]].proxy().map(|p| p.to_string());
        }
        report
    }
}

/// What identifies a server: the protocol and a socket address it answers on.
type Endpoint = (&'static str, std::net::SocketAddr);

/// Resolves every source (all at once, each bounded by `timeout`) and groups
/// those that reach one server: see [`group_by_endpoint`]. A source whose name
/// does not resolve stands alone, with the error it will be reported with
/// (second vector, by configured index) instead of being queried.
pub async fn identities(
    sources: &[Source],
    timeout: std::time::Duration,
) -> (Vec<Vec<usize>>, Vec<Option<SourceError>>) {
    let lookups = sources.iter().map(|s| async move {
        // `http://` and `https://` on one address are different services;
        // paths do not matter (one server has one clock). A source reached
        // through a proxy stands alone: its name is the proxy's to resolve.
        let (proto, host, port) = (s.scheme(), s.host(), s.port());
        if s.proxy().is_some() {
            return Ok(Vec::new());
        }
        match tokio::time::timeout(timeout, crate::proto::source::resolve(host, port)).await {
            Ok(Ok(addrs)) => Ok(addrs.into_iter().map(|a| (proto, a)).collect()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(SourceError::Resolve(format!(
                "{host}: no answer from the resolver within {}",
                crate::core::duration::human_duration(timeout.as_secs_f64())
            ))),
        }
    });
    let resolved: Vec<Result<Vec<Endpoint>, SourceError>> = join_all(lookups).await;
    let endpoints: Vec<Vec<Endpoint>> = resolved
        .iter()
        .map(|r| r.clone().unwrap_or_default())
        .collect();
    let errors = resolved.into_iter().map(Result::err).collect();
    (group_by_endpoint(&endpoints), errors)
}

/// Groups sources that share an endpoint (protocol and socket address):
/// `ntp://127.0.0.1:P` and `ntp://localhost:P` are one server and get one
/// vote. A name with several addresses is one source (its client asks one of
/// them); two names that share any address are one source, so a vote can
/// only be lost, never doubled. Groups keep the configured order (by first
/// member); a source without endpoints stands alone.
pub fn group_by_endpoint(endpoints: &[Vec<Endpoint>]) -> Vec<Vec<usize>> {
    // Union-find over the sources, joined through shared endpoints.
    let mut parent: Vec<usize> = (0..endpoints.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut owner: std::collections::HashMap<Endpoint, usize> = std::collections::HashMap::new();
    for (i, list) in endpoints.iter().enumerate() {
        for e in list {
            match owner.get(e) {
                Some(&j) => {
                    let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                    // The earlier source stays the root, so it leads the group.
                    parent[a.max(b)] = a.min(b);
                }
                None => {
                    owner.insert(*e, i);
                }
            }
        }
    }
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut slot: std::collections::HashMap<usize, usize> = std::collections::HashMap::new();
    for i in 0..endpoints.len() {
        let r = root(&mut parent, i);
        match slot.get(&r) {
            Some(&g) => groups[g].push(i),
            None => {
                slot.insert(r, groups.len());
                groups.push(vec![i]);
            }
        }
    }
    groups
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(proto: &'static str, addr: &str) -> Endpoint {
        (proto, addr.parse().unwrap())
    }

    #[test]
    fn sources_that_share_an_endpoint_are_one() {
        let a = ep("ntp", "127.0.0.1:1123");
        let b = ep("ntp", "127.0.0.1:1124");
        let groups = group_by_endpoint(&[vec![a], vec![a], vec![b]]);
        assert_eq!(groups, vec![vec![0, 1], vec![2]]);
        // Another protocol on the same address is another service.
        let groups = group_by_endpoint(&[vec![a], vec![ep("http", "127.0.0.1:1123")]]);
        assert_eq!(groups.len(), 2);
        // Names with several addresses join through any shared one, transitively.
        let c = ep("ntp", "[::1]:1123");
        let groups = group_by_endpoint(&[vec![b], vec![a, c], vec![b, c], vec![], vec![]]);
        assert_eq!(groups, vec![vec![0, 1, 2], vec![3], vec![4]]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_name_and_its_address_are_one_source() {
        let sources = Source::parse_list(
            "ntp://127.0.0.1:1123,ntp://localhost:1123,ntp://127.0.0.1:1124,https://127.0.0.1:1123/,http://127.0.0.1:1123/a,http://127.0.0.1:1123/b",
        )
        .unwrap();
        let (groups, errors) = identities(&sources, std::time::Duration::from_secs(2)).await;
        assert!(errors.iter().all(Option::is_none), "{errors:?}");
        assert_eq!(groups, vec![vec![0, 1], vec![2], vec![3], vec![4, 5]]);
    }
}
