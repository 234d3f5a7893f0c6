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
    /// Per source: what it keeps between rounds (NTS keys and cookies; an HTTP `Date` source's connection and TLS sessions).
    states: Vec<SourceState>,
    /// Fewest time between two queries of one upstream server (zero: no
    /// floor); see [`Rounds::with_query_gap`].
    gap: std::time::Duration,
    /// Per source: monotonic time of its last query, and what that query gave
    /// (`None` once a step or suspend made it meaningless).
    held: Vec<Option<(std::time::Duration, Option<Outcome>)>>,
    /// Per source: when it was last queried early after a step or suspend.
    early: Vec<Option<std::time::Duration>>,
    /// The query settings with the HTTP `Date` refinement run to its end
    /// whatever the verdict (see [`Rounds::refine_fully`]), when asked for.
    refining: Option<crate::core::sample::QuerySettings>,
}

/// The fewest time between two queries of one upstream server by `serve`
/// after its first round: NTP pool etiquette (one query per 64 s per server).
pub const QUERY_GAP: std::time::Duration = std::time::Duration::from_secs(64);

/// Whether a source is exempt from the query gap: a file on this machine
/// (`node://`, `clockbound://`) or a server at `127.0.0.1`, `::1` or
/// `localhost` (this machine's own daemon), which is not an upstream server
/// anybody else shares. Other loopback addresses (`127.0.0.2`, …) count as
/// upstream, so the rule can be tested and benchmarked on one machine.
pub fn exempt_from_gap(source: &Source) -> bool {
    let host = source.host();
    source.is_local()
        || host == "localhost"
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| {
            ip == std::net::Ipv4Addr::LOCALHOST || ip == std::net::Ipv6Addr::LOCALHOST
        })
}

/// What to do with one source this round under the query gap.
#[derive(Debug, Clone, PartialEq)]
pub enum Due {
    /// Query it.
    Query,
    /// Query it, early: a step or suspend made the last result meaningless.
    Early,
    /// Reuse the last result, this many seconds old.
    Reuse(f64),
    /// Neither: its last result is gone (a step or suspend) and it was queried
    /// early already within the gap; query again in this many seconds.
    HeldBack(f64),
}

/// The query-gap rule for one source, pure: `last` is when it was last
/// queried and whether that result still stands, `early` when it was last
/// queried early after a step, `now` the monotonic time.
pub fn due(
    gap: std::time::Duration,
    last: Option<(std::time::Duration, bool)>,
    early: Option<std::time::Duration>,
    now: std::time::Duration,
) -> Due {
    let Some((at, standing)) = last else {
        return Due::Query;
    };
    let age = now.saturating_sub(at);
    if age >= gap {
        return Due::Query;
    }
    if standing {
        return Due::Reuse(age.as_secs_f64());
    }
    match early {
        Some(e) if now.saturating_sub(e) < gap => {
            Due::HeldBack((gap - now.saturating_sub(e)).as_secs_f64())
        }
        _ => Due::Early,
    }
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
            gap: std::time::Duration::ZERO,
            held: vec![None; config.sources.len()],
            early: vec![None; config.sources.len()],
            refining: None,
        }
    }

    /// Whether the next rounds run the HTTP `Date` refinement to its end
    /// even where the first answer already decides the verdict: `serve`
    /// asks for it when its drift forecast needs tighter points than the
    /// verdict does.
    pub fn refine_fully(&mut self, on: bool) {
        self.refining = on.then(|| crate::core::sample::QuerySettings {
            decide: None,
            ..self.config.query.clone()
        });
    }

    /// Never queries an upstream server (see [`exempt_from_gap`]) again within
    /// `gap` of its last query: a round within it reuses the last result, its
    /// bound grown at `MAX_DRIFT` for its age. `serve` sets [`QUERY_GAP`];
    /// `check`, `wait` and `exec` are start-up and set none.
    pub fn with_query_gap(mut self, gap: std::time::Duration) -> Self {
        self.gap = gap;
        self
    }

    /// Forgets the results held for reuse: the wall clock was stepped or the
    /// host slept. A source may then be queried once early (at most once per
    /// gap); the times of the last queries are kept.
    pub fn forget(&mut self) {
        for h in self.held.iter_mut().flatten() {
            h.1 = None;
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
        // node:// sources first: when one gives a measurement, the network
        // sources are the fallback and are not queried at all.
        let mut first: Vec<Option<Outcome>> = vec![None; config.sources.len()];
        let mut skip_network = false;
        let nodes: Vec<usize> = (0..config.sources.len())
            .filter(|&i| matches!(config.sources[i], Source::Node { .. }))
            .collect();
        if !nodes.is_empty() {
            let read = join_all(nodes.iter().map(|&i| {
                let (s, query, clock) = (&config.sources[i], &config.query, self.clock);
                async move { measure_with(s, query, clock, &mut SourceState::default()).await }
            }))
            .await;
            let answered = nodes
                .iter()
                .zip(&read)
                .find(|(_, o)| o.result.is_ok())
                .map(|(&i, _)| config.sources[i].to_string());
            for (&i, o) in nodes.iter().zip(read) {
                first[i] = Some(o);
            }
            skip_network = answered.is_some();
            if let Some(node) = answered {
                for (i, s) in config.sources.iter().enumerate() {
                    if !s.is_local() {
                        first[i] = Some(Outcome::from_result(Err(SourceError::Io(format!(
                            "not queried: {node} answered (network sources are its fallback)"
                        )))));
                    }
                }
            }
        }
        // One source per protocol and address: names of one server are
        // measured once and vote once (the first configured name leads);
        // nothing to resolve when the network sources are not queried.
        let (groups, unresolved) = if skip_network {
            let n = config.sources.len();
            ((0..n).map(|i| vec![i]).collect(), vec![None; n])
        } else {
            identities(&config.sources, config.query.timeout).await
        };
        let leaders: Vec<usize> = groups.iter().map(|g| g[0]).collect();
        let now = self.clock.monotonic();
        let dues: Vec<Due> = config
            .sources
            .iter()
            .enumerate()
            .map(|(i, s)| {
                if self.gap.is_zero() || exempt_from_gap(s) {
                    return Due::Query;
                }
                let last = self.held[i].as_ref().map(|(t, o)| (*t, o.is_some()));
                due(self.gap, last, self.early[i], now)
            })
            .collect();
        let dues: Vec<Due> = dues
            .into_iter()
            .zip(&first)
            .map(|(d, f)| if f.is_some() { Due::Reuse(0.0) } else { d })
            .collect();
        let drift = config.max_drift.rate();
        let futs = config
            .sources
            .iter()
            .zip(&self.not_before)
            .zip(&self.refused)
            .zip(&unresolved)
            .zip(self.states.iter_mut())
            .zip(&self.held)
            .zip(&dues)
            .zip(first)
            .enumerate()
            .filter(|(i, _)| leaders.contains(i))
            .map(|(_, (((((((s, nb), refused), unresolved), state), held), due), first))| {
                let wait = nb.map(|t| t.saturating_sub(now)).unwrap_or_default();
                let query = self.refining.as_ref().unwrap_or(&config.query);
                let clock = self.clock;
                async move {
                    if let Some(o) = first {
                        return o;
                    }
                    if let Some(e) = refused.as_ref().or(unresolved.as_ref()) {
                        return Outcome::from_result(Err(e.clone()));
                    }
                    if !wait.is_zero() {
                        return Outcome::from_result(Err(SourceError::KissOfDeath(format!(
                            "RATE (not queried again for {})",
                            crate::core::duration::human_duration(wait.as_secs_f64())
                        ))));
                    }
                    match (due, held) {
                        (Due::Reuse(age), Some((_, Some(o)))) => {
                            return reused(o, *age, drift);
                        }
                        (Due::HeldBack(wait), _) => {
                            return Outcome::from_result(Err(SourceError::Io(format!(
                                "held back after a step or suspend: one query per {} per server (next in {})",
                                crate::core::duration::human_duration(QUERY_GAP.as_secs_f64()),
                                crate::core::duration::human_duration(*wait)
                            ))));
                        }
                        _ => {}
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
            let lead = group[0];
            // Held for reuse: what a query of an upstream server gave.
            if matches!(dues[lead], Due::Query | Due::Early) && !config.sources[lead].is_local() {
                for &i in group {
                    self.held[i] = Some((now, Some(o.clone())));
                    if dues[lead] == Due::Early {
                        self.early[i] = Some(now);
                    }
                }
            }
        }
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

/// A result held from an earlier query, `age` seconds old: a sample's bound
/// grown at `drift` (seconds per second) for its age, an error as it was.
fn reused(o: &Outcome, age: f64, drift: f64) -> Outcome {
    Outcome {
        result: o.result.clone().map(|s| crate::core::sample::Sample {
            uncertainty: s.uncertainty + drift * age,
            ..s
        }),
        retry_after: None,
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
        // A file on this machine is its own identity: nothing to resolve.
        if s.is_local() || s.proxy().is_some() {
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
    fn an_upstream_server_is_queried_at_most_once_per_gap() {
        let s = std::time::Duration::from_secs;
        let gap = QUERY_GAP;
        // Start-up: never queried.
        assert_eq!(due(gap, None, None, s(10)), Due::Query);
        // A result 60 s old is reused; at 64 s it is queried again.
        assert_eq!(due(gap, Some((s(10), true)), None, s(70)), Due::Reuse(60.0));
        assert_eq!(due(gap, Some((s(10), true)), None, s(74)), Due::Query);
        // After a step: one early query, then held back for the rest of the gap.
        assert_eq!(due(gap, Some((s(10), false)), None, s(20)), Due::Early);
        assert_eq!(
            due(gap, Some((s(20), false)), Some(s(20)), s(30)),
            Due::HeldBack(54.0)
        );
        assert_eq!(
            due(gap, Some((s(20), false)), Some(s(20)), s(84)),
            Due::Query
        );
        // Files and this machine's own servers are not upstream.
        for (uri, exempt) in [
            ("ntp://127.0.0.1:1123", true),
            ("ntp://[::1]", true),
            ("ntp://localhost", true),
            ("ntp://127.0.0.2:1123", false),
            ("node:///run/n.json", true),
            ("clockbound://", true),
            ("ntp://169.254.169.123", false),
            ("https://sts.amazonaws.com", false),
        ] {
            assert_eq!(
                exempt_from_gap(&Source::parse(uri).unwrap()),
                exempt,
                "{uri}"
            );
        }
    }

    #[test]
    fn a_reused_sample_grows_at_the_drift_rate() {
        let o = Outcome::from_result(Ok(crate::core::sample::Sample::plain(0.5, 0.01, 0.002)));
        let r = reused(&o, 60.0, 500e-6).result.unwrap();
        assert_eq!(r.offset, 0.5);
        assert!((r.uncertainty - 0.04).abs() < 1e-12, "{r:?}");
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
