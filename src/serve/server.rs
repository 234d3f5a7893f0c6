//! The HTTP side of `serve`: `/healthz`, `/readyz`, `/livez` and `/metrics`,
//! answered from the latest measurement, which the measurement loop publishes
//! into a [`State`].
//!
//! What each endpoint answers is decided by pure functions ([`health`],
//! [`liveness`], [`respond`]); [`serve`] only accepts connections and hands them
//! to hyper. One task per connection, a cap on how many are open, and hyper's
//! header read timeout keep slow or idle clients from delaying a probe.

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};

use crate::core::duration::{human_setting, spoken_duration};
use crate::core::holdover::{Anchor, MaxDrift};
use crate::core::report::Report;
use crate::core::verdict::{Thresholds, Verdict};
use crate::os::clock::Clock;
use crate::serve::metrics::Metrics;

/// Most connections open at once (fewer under a low descriptor limit, see
/// [`connection_cap`]); beyond it the oldest idle one is reclaimed.
pub const MAX_CONNECTIONS: usize = 1024;
/// How long a connection may take to send a request head, and may sit idle between requests.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest life of one connection; a probe needs milliseconds, a scraper reconnects.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);
/// Read buffer per connection, which bounds a request head (hyper's minimum is 8 KiB).
pub const MAX_BUF_SIZE: usize = 8192;
/// How long in-flight requests may take to finish after SIGTERM.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// The latest round's report and when it was taken.
#[derive(Debug, Clone)]
pub struct Latest {
    /// The report.
    pub report: Report,
    /// CLOCK_BOOTTIME at the end of the round: it keeps counting while the host
    /// sleeps, so a measurement from before a suspend is as old as it really is.
    pub taken: Duration,
}

/// What the measurement loop shares with the server.
pub struct State {
    latest: Mutex<Option<Latest>>,
    /// The last good measurement, judged with a growing bound while rounds fail.
    anchor: Mutex<Option<Anchor>>,
    /// Set when a step or suspend of the wall clock made every earlier
    /// measurement meaningless; cleared by the next round.
    jumped: Mutex<Option<String>>,
    /// What is served before the first round: an unmeasured report.
    pending: Report,
    /// How fast a held-over bound grows.
    pub max_drift: MaxDrift,
    /// Offsets since start or the last step or suspend, for the drift forecast.
    history: Mutex<crate::core::forecast::History>,
    /// CLOCK_MONOTONIC when the loop last finished a round (or started): the
    /// liveness signal. Monotonic, not boottime: a sleeping host is not a hung loop.
    progress: Mutex<Duration>,
    /// Rounds finished since start.
    rounds: AtomicU64,
    /// The metrics.
    pub metrics: Metrics,
    /// `ON_UNKNOWN=pass`: unknown answers 200.
    pub unknown_passes: bool,
    /// `/livez` fails when no round has finished for this long.
    pub live_within: Duration,
    clock: &'static dyn Clock,
}

impl State {
    /// A state with no measurement yet; `judging` gives the thresholds and
    /// profile its unmeasured body shows until the first round.
    pub fn new(
        judging: &crate::core::report::Judging,
        metrics: Metrics,
        max_drift: MaxDrift,
        unknown_passes: bool,
        live_within: Duration,
        clock: &'static dyn Clock,
    ) -> State {
        State {
            latest: Mutex::new(None),
            anchor: Mutex::new(None),
            jumped: Mutex::new(None),
            pending: Report::unmeasured(
                judging,
                clock.realtime() as f64 / 1e9,
                Verdict::Unknown,
                "UNKNOWN: no measurement yet (the first round is under way)".into(),
            ),
            max_drift,
            history: Mutex::new(crate::core::forecast::History::new()),
            progress: Mutex::new(clock.monotonic()),
            rounds: AtomicU64::new(0),
            metrics,
            unknown_passes,
            live_within,
            clock,
        }
    }

    /// Publishes a round's report: served from now on, and counted in the metrics.
    ///
    /// A passing measurement becomes the holdover anchor; a failing one (the
    /// clock is measured to be off) replaces it with nothing; a round without a
    /// measurement leaves it in place.
    pub fn publish(&self, report: Report) {
        self.metrics.record(&report);
        let taken = self.clock.boottime();
        {
            let mut anchor = lock(&self.anchor);
            match Anchor::from_round(
                report.verdict,
                report.offset_seconds,
                report.uncertainty_seconds,
                taken,
            ) {
                Some(a) => *anchor = Some(a),
                None if report.verdict != Verdict::Unknown => *anchor = None,
                None => {}
            }
        }
        if let (Some(offset), Some(uncertainty)) =
            (report.offset_seconds, report.uncertainty_seconds)
        {
            lock(&self.history).push(crate::core::forecast::Point {
                at: taken.as_secs_f64(),
                offset,
                uncertainty,
            });
        }
        *lock(&self.jumped) = None;
        *lock(&self.latest) = Some(Latest { report, taken });
        *lock(&self.progress) = self.clock.monotonic();
        self.rounds.fetch_add(1, Ordering::Relaxed);
    }

    /// Rounds finished since start.
    pub fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::Relaxed)
    }

    /// Ends holdover at once: the wall clock was stepped or the host slept
    /// (`why` says which), so no earlier measurement describes the clock.
    pub fn clock_jumped(&self, why: String) {
        *lock(&self.anchor) = None;
        lock(&self.history).reset();
        *lock(&self.jumped) = Some(why);
    }

    /// The answer of `/healthz` and `/readyz` now.
    pub fn health(&self) -> Health {
        let latest = lock(&self.latest).clone();
        let anchor = *lock(&self.anchor);
        let jumped = lock(&self.jumped).clone();
        let drift = lock(&self.history).drift();
        health(
            &Held {
                latest: latest.as_ref(),
                anchor,
                jumped: jumped.as_deref(),
                pending: &self.pending,
                max_drift: self.max_drift,
                drift,
            },
            self.clock.boottime(),
            self.unknown_passes,
        )
    }

    /// How old the latest measurement is on the boot-time clock; `None` before the first.
    pub fn age(&self) -> Option<Duration> {
        let taken = lock(&self.latest).as_ref()?.taken;
        Some(self.clock.boottime().saturating_sub(taken))
    }

    /// Whether the measurement loop has finished a round recently enough.
    pub fn alive(&self) -> Liveness {
        liveness(
            *lock(&self.progress),
            self.clock.monotonic(),
            self.live_within,
        )
    }
}

/// A poisoned lock only means another task panicked mid-update of plain data;
/// serving the value is better than taking the sidecar down with it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The answer to a health probe.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    /// The verdict served (unknown when not measured yet or past holdover).
    pub verdict: Verdict,
    /// 200 or 503.
    pub status: u16,
    /// The JSON body.
    pub body: String,
    /// The headline served (in the body too).
    pub headline: String,
    /// The offset served (in the body too): in holdover, the held measurement's.
    pub offset_seconds: Option<f64>,
    /// The uncertainty served (in the body too): in holdover, the grown one.
    pub uncertainty_seconds: Option<f64>,
    /// Holdover in force, if the verdict comes from an earlier measurement.
    pub holdover: Option<Holdover>,
    /// The drift forecast, when there is an estimate.
    pub forecast: Option<Forecast>,
}

/// What the health decision looks at.
#[derive(Debug, Clone, Copy)]
pub struct Held<'a> {
    /// The latest round.
    pub latest: Option<&'a Latest>,
    /// The last good measurement.
    pub anchor: Option<Anchor>,
    /// Why earlier measurements no longer count (a step or suspend), if they do not.
    pub jumped: Option<&'a str>,
    /// What to serve before the first round (an unmeasured report).
    pub pending: &'a Report,
    /// How fast the anchor's bound grows.
    pub max_drift: MaxDrift,
    /// The drift fitted over the recent rounds, if there are enough.
    pub drift: Option<crate::core::forecast::Drift>,
}

/// The drift forecast as the body and `/metrics` show it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Forecast {
    /// How fast the reference gains on the local clock, ppm (positive: the local clock runs slow).
    pub frequency_error_ppm: f64,
    /// Its standard error, ppm.
    pub frequency_error_uncertainty_ppm: f64,
    /// Rounds fitted.
    pub points: usize,
    /// Seconds they span.
    pub span_seconds: f64,
    /// Seconds until the skew bound reaches `WARN_SKEW`; `None`: no breach forecast.
    pub seconds_until_warn: Option<f64>,
    /// Seconds until it reaches `MAX_SKEW`; `None`: no breach forecast.
    pub seconds_until_max: Option<f64>,
}

impl Forecast {
    /// The body carries a forecast (and serve logs one at WARN) when a breach is due within this.
    pub const HORIZON_SECONDS: f64 = 86_400.0;

    /// Whether a threshold will be reached within [`Forecast::HORIZON_SECONDS`].
    pub fn due(&self) -> bool {
        [self.seconds_until_warn, self.seconds_until_max]
            .into_iter()
            .flatten()
            .any(|s| s < Self::HORIZON_SECONDS)
    }
}

/// Holdover as the body and `/metrics` show it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Holdover {
    /// Seconds since the good measurement held over.
    pub age_seconds: f64,
    /// Its offset, seconds.
    pub offset_seconds: f64,
    /// Its uncertainty when measured, seconds.
    pub measured_uncertainty_seconds: f64,
    /// The grown skew bound `|offset| + uncertainty + MAX_DRIFT · age`, seconds.
    pub bound_seconds: f64,
    /// Seconds until the bound reaches `MAX_SKEW` (0 once it has).
    pub remaining_seconds: f64,
    /// `SKEWGUARD_MAX_DRIFT`, parts per million.
    pub max_drift_ppm: f64,
}

/// Decides `/healthz`: the latest report plus `age_seconds`, 200 when the
/// verdict passes.
///
/// When the latest round measured nothing (no source answered, or they
/// disagree), the last good measurement is held over: judged with the bound
/// `|θ| + u + MAX_DRIFT · age`, it keeps the status while that bound stays
/// under `MAX_SKEW`, and the body says `holdover`. A fresh good round ages the
/// same way if no round follows it (a stuck loop). A step or suspend of the
/// wall clock since the last round makes the answer unknown until the next.
///
/// `now` and the `taken` times are readings of the same (boottime) clock.
pub fn health(held: &Held<'_>, now: Duration, unknown_passes: bool) -> Health {
    let Some(latest) = held.latest else {
        // Not ready before the first round even with ON_UNKNOWN=pass: the first
        // round ends within a timeout, and until then nothing has been judged.
        // The body has every field a later one has (no age: nothing measured).
        let body = Served {
            report: held.pending,
            age_seconds: None,
            holdover: None,
            forecast: None,
        };
        return Health {
            verdict: Verdict::Unknown,
            status: 503,
            body: to_json(&body),
            headline: held.pending.headline.clone(),
            offset_seconds: None,
            uncertainty_seconds: None,
            holdover: None,
            forecast: None,
        };
    };
    let age = now.saturating_sub(latest.taken);
    let mut report = std::borrow::Cow::Borrowed(&latest.report);
    let mut holdover = None;
    if let Some(why) = held.jumped {
        let r = report.to_mut();
        r.headline = format!(
            "UNKNOWN: {why}; the last measurement no longer describes the clock (measuring again; it said: {})",
            latest.report.headline
        );
        r.verdict = Verdict::Unknown;
        r.offset_seconds = None;
        r.uncertainty_seconds = None;
    } else if let Some(anchor) = held.anchor {
        let t = Thresholds {
            window: latest.report.window_seconds,
            max_skew: latest.report.max_skew_seconds,
            warn_skew: latest.report.warn_skew_seconds,
        };
        let judged = anchor.judge(now, held.max_drift, &t);
        let from_this_round = anchor.taken == latest.taken;
        if !from_this_round || judged.verdict != latest.report.verdict {
            let h = Holdover {
                age_seconds: judged.age_seconds,
                offset_seconds: anchor.offset_seconds,
                measured_uncertainty_seconds: anchor.uncertainty_seconds,
                bound_seconds: judged.bound_seconds,
                remaining_seconds: judged.remaining_seconds,
                max_drift_ppm: held.max_drift.ppm(),
            };
            let r = report.to_mut();
            r.headline = holdover_headline(&judged, &h, from_this_round, &latest.report);
            r.verdict = judged.verdict;
            if judged.holds() {
                r.offset_seconds = Some(anchor.offset_seconds);
                r.uncertainty_seconds = Some(judged.bound_seconds - anchor.offset_seconds.abs());
            }
            holdover = Some(h);
        }
    }
    let forecast = held.drift.filter(|_| held.jumped.is_none()).map(|d| {
        let now = now.as_secs_f64();
        Forecast {
            frequency_error_ppm: d.ppm,
            frequency_error_uncertainty_ppm: d.uncertainty_ppm,
            points: d.points,
            span_seconds: d.span_seconds,
            seconds_until_warn: d.seconds_until(latest.report.warn_skew_seconds, now),
            seconds_until_max: d.seconds_until(latest.report.max_skew_seconds, now),
        }
    });
    let verdict = report.verdict;
    Health {
        verdict,
        status: if verdict.passes(unknown_passes) {
            200
        } else {
            503
        },
        body: to_json(&Served {
            report: &report,
            age_seconds: Some(age.as_secs_f64()),
            holdover,
            forecast: forecast.filter(Forecast::due),
        }),
        headline: report.headline.clone(),
        offset_seconds: report.offset_seconds,
        uncertainty_seconds: report.uncertainty_seconds,
        holdover,
        forecast,
    }
}

/// The headline of a held-over verdict: why, how old, how wide, how long left.
fn holdover_headline(
    judged: &crate::core::holdover::Held,
    h: &Holdover,
    from_this_round: bool,
    latest: &Report,
) -> String {
    let why = if from_this_round {
        "no round has finished since the last measurement".to_string()
    } else {
        format!("the latest round measured nothing ({})", latest.headline)
    };
    // Sizes as the rest of the headline says them, thresholds as they are set.
    let age = spoken_duration(h.age_seconds);
    let bound = spoken_duration(h.bound_seconds);
    let drift = format!("SKEWGUARD_MAX_DRIFT={}ppm", h.max_drift_ppm);
    if judged.holds() {
        format!(
            "{} (holdover): {why}; the last good measurement, {age} old, bounds the skew by {bound} at {drift}, within SKEWGUARD_MAX_SKEW={} for {} more",
            judged.verdict.name().to_ascii_uppercase(),
            human_setting(latest.max_skew_seconds),
            spoken_duration(h.remaining_seconds),
        )
    } else {
        format!(
            "UNKNOWN: holdover ended: {why}; the last good measurement is {age} old and its bound has grown to {bound} at {drift}, past SKEWGUARD_MAX_SKEW={}",
            human_setting(latest.max_skew_seconds),
        )
    }
}

/// The report as `check --output json` prints it, plus its age and any
/// holdover (fields in the same order). Before the first round `age_seconds`
/// is null.
#[derive(Serialize)]
struct Served<'a> {
    #[serde(flatten)]
    report: &'a Report,
    age_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    holdover: Option<Holdover>,
    #[serde(skip_serializing_if = "Option::is_none")]
    forecast: Option<Forecast>,
}

// Small bodies as structs rather than `serde_json::json!` values (whose
// `to_value` serialiser costs binary size); fields in alphabetical order, the
// order the `json!` maps had.

/// The body of a failed render.
#[derive(Serialize)]
struct Fallback {
    headline: String,
    verdict: Verdict,
}

/// The body of a 404 or 405.
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

/// The body of `/livez`.
#[derive(Serialize)]
struct Live {
    alive: bool,
    limit_seconds: f64,
    rounds: u64,
    seconds_since_last_round: f64,
}

/// Serialises a body; the types above cannot fail to serialise, but a probe
/// must get JSON whatever happens.
fn to_json(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| {
        let fallback = Fallback {
            headline: format!("UNKNOWN: cannot render the report: {e}"),
            verdict: Verdict::Unknown,
        };
        serde_json::to_string(&fallback).unwrap_or_else(|_| r#"{"verdict":"unknown"}"#.into())
    })
}

/// The answer to a liveness probe.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Liveness {
    /// A round finished within the allowed time.
    pub alive: bool,
    /// Seconds since a round last finished (or the loop started).
    pub since_progress: f64,
}

/// Decides `/livez` from when the loop last made progress (monotonic). It never
/// looks at the verdict: a skewed clock must not get the sidecar restarted.
pub fn liveness(progress: Duration, now: Duration, within: Duration) -> Liveness {
    let since = now.saturating_sub(progress);
    Liveness {
        alive: since <= within,
        since_progress: since.as_secs_f64(),
    }
}

/// The response body type.
pub type Body = Full<Bytes>;

fn response(status: u16, content_type: &'static str, body: String) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Probes and scrapers must see the current answer, never a cached one.
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn json_error(status: u16, message: &str) -> Response<Body> {
    response(
        status,
        "application/json",
        to_json(&ErrorBody { error: message }),
    )
}

/// Routes one request. Only the method and path matter; bodies are never read.
///
/// `accept` is the request's `Accept` header, which picks the format of `/metrics`.
pub fn respond(method: &Method, path: &str, accept: Option<&str>, state: &State) -> Response<Body> {
    const PATHS: [&str; 4] = ["/healthz", "/readyz", "/livez", "/metrics"];
    if !PATHS.contains(&path) {
        return json_error(404, "not found: try /healthz, /readyz, /livez or /metrics");
    }
    if method != Method::GET && method != Method::HEAD {
        let mut r = json_error(405, "method not allowed: use GET or HEAD");
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match path {
        "/healthz" | "/readyz" => {
            let h = state.health();
            response(h.status, "application/json", h.body)
        }
        "/livez" => {
            let l = state.alive();
            let body = to_json(&Live {
                alive: l.alive,
                limit_seconds: state.live_within.as_secs_f64(),
                rounds: state.rounds(),
                seconds_since_last_round: l.since_progress,
            });
            response(if l.alive { 200 } else { 503 }, "application/json", body)
        }
        _ => {
            let format = crate::serve::metrics::negotiate(accept);
            let h = state.health();
            state.metrics.scrape(h.verdict, state.age());
            state
                .metrics
                .set_holdover(h.holdover.map(|h| (h.age_seconds, h.bound_seconds)));
            let f = h.forecast;
            state.metrics.set_forecast(
                f.map(|f| (f.frequency_error_ppm, f.frequency_error_uncertainty_ppm)),
                f.and_then(|f| f.seconds_until_warn),
                f.and_then(|f| f.seconds_until_max),
            );
            match state.metrics.encode(format) {
                Ok(text) => response(200, format.content_type(), text),
                Err(_) => json_error(500, "cannot encode the metrics"),
            }
        }
    }
}

/// Which connections are open, from where, and since when each has been idle:
/// the budget that keeps a flood from starving a probe. Pure bookkeeping (the
/// I/O layer passes the times in); `H` is how to tell a connection to close.
///
/// A new connection is admitted if its client address holds less than its
/// share and the total is under the cap. Otherwise the oldest idle connection
/// (of that address when it is over its share, of any address when the cap is
/// reached) is reclaimed to make room, so a new probe always gets in while
/// anything idle is open; only when every connection is in use is the new one
/// refused. "Idle" is any connection not inside a request: a kept-alive one
/// between requests, or one that has not completed a request head.
#[derive(Debug)]
pub struct ConnTable<H> {
    cap: usize,
    share: usize,
    next: u64,
    /// id → (client address, idle since, handle).
    open: HashMap<u64, (IpAddr, tokio::time::Instant, H)>,
    /// Per client address: (idle since, id) in order, oldest first.
    idle: HashMap<IpAddr, BTreeSet<(tokio::time::Instant, u64)>>,
}

/// The decision on a new connection.
#[derive(Debug, PartialEq)]
pub enum Admit<H> {
    /// Serve it under this id; close the reclaimed connection, if any, first.
    Accept {
        /// The new connection's id.
        id: u64,
        /// The handle of the connection reclaimed to make room.
        reclaimed: Option<H>,
    },
    /// Every connection that could make room is in use: close the new one.
    Refuse,
}

impl<H: Clone> ConnTable<H> {
    /// A table for at most `cap` connections, `share` of them per client address.
    pub fn new(cap: usize, share: usize) -> Self {
        ConnTable {
            cap: cap.max(1),
            share: share.clamp(1, cap.max(1)),
            next: 0,
            open: HashMap::new(),
            idle: HashMap::new(),
        }
    }

    /// Connections open.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// Whether no connection is open.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    fn count(&self, ip: IpAddr) -> usize {
        self.idle.get(&ip).map_or(0, BTreeSet::len)
    }

    /// Decides on a connection from `ip` accepted at `now`.
    pub fn admit(&mut self, ip: IpAddr, now: tokio::time::Instant, handle: H) -> Admit<H> {
        // Every open connection is in `idle` (see `request`), so counts come from there.
        let victim = if self.count(ip) >= self.share {
            self.oldest(Some(ip))
        } else if self.open.len() >= self.cap {
            self.oldest(None)
        } else {
            None
        };
        let over = self.count(ip) >= self.share || self.open.len() >= self.cap;
        if over && victim.is_none() {
            return Admit::Refuse;
        }
        let reclaimed = victim.and_then(|v| self.close(v));
        let id = self.next;
        self.next += 1;
        self.open.insert(id, (ip, now, handle));
        self.idle.entry(ip).or_default().insert((now, id));
        Admit::Accept { id, reclaimed }
    }

    /// The oldest idle connection of `ip`, or of anyone.
    fn oldest(&self, ip: Option<IpAddr>) -> Option<u64> {
        match ip {
            Some(ip) => self.idle.get(&ip)?.first().map(|&(_, id)| id),
            None => self
                .idle
                .values()
                .filter_map(|set| set.first())
                .min()
                .map(|&(_, id)| id),
        }
    }

    /// A request arrived on `id` at `now`: it is answered at once, so the
    /// connection counts as idle from now (the newest, last to be reclaimed).
    pub fn request(&mut self, id: u64, now: tokio::time::Instant) {
        if let Some((ip, since, _)) = self.open.get_mut(&id) {
            if let Some(set) = self.idle.get_mut(ip) {
                set.remove(&(*since, id));
                set.insert((now, id));
            }
            *since = now;
        }
    }

    /// Forgets `id` (closed, or reclaimed); its handle if it was open.
    pub fn close(&mut self, id: u64) -> Option<H> {
        let (ip, since, handle) = self.open.remove(&id)?;
        if let Some(set) = self.idle.get_mut(&ip) {
            set.remove(&(since, id));
            if set.is_empty() {
                self.idle.remove(&ip);
            }
        }
        Some(handle)
    }
}

/// Descriptors kept free for everything but the listener's connections: the
/// measurement's sockets (one per source, DNS, TLS), the runtime, stdio.
pub const FD_RESERVE: u64 = 128;

/// The connection cap for a descriptor limit: [`MAX_CONNECTIONS`], or the
/// limit less [`FD_RESERVE`] if that is smaller (at least 16).
pub fn connection_cap(nofile: Option<u64>) -> usize {
    let fit = nofile.map_or(MAX_CONNECTIONS as u64, |n| n.saturating_sub(FD_RESERVE));
    (fit.min(MAX_CONNECTIONS as u64) as usize).max(16)
}

/// How long a new connection may take to complete its first request head; a
/// probe sends it at once. Slow or silent clients are closed after this.
pub const FIRST_HEAD_TIMEOUT: Duration = Duration::from_secs(2);

/// Fewest seconds between two warnings about failed `accept`s.
pub const ACCEPT_WARN_EVERY: Duration = Duration::from_secs(10);

/// Accepts connections on `listener` and answers them until `shutdown`
/// resolves; then stops accepting, lets requests in flight finish (at most
/// [`DRAIN_TIMEOUT`]) and returns.
///
/// At most `cap` connections are served (see [`connection_cap`]), half of
/// them per client address, with the oldest idle one reclaimed for a new
/// one (see [`ConnTable`]).
pub async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    cap: usize,
    shutdown: impl Future<Output = ()>,
) {
    let table = Arc::new(Mutex::new(ConnTable::<Arc<Notify>>::new(cap, cap / 2)));
    let tasks = Arc::new(());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_BUF_SIZE)
        .keep_alive(true);
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    let mut refused: u64 = 0;
    let mut accept_errors: u64 = 0;
    let mut accept_warned: Option<tokio::time::Instant> = None;
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors, mostly: pause rather than spin, and
                    // say so at most every ACCEPT_WARN_EVERY.
                    accept_errors += 1;
                    let now = tokio::time::Instant::now();
                    if accept_warned.is_none_or(|t| now - t >= ACCEPT_WARN_EVERY) {
                        tracing::warn!(error = %e, failures = accept_errors, "accept failed");
                        accept_warned = Some(now);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let close = Arc::new(Notify::new());
        let now = tokio::time::Instant::now();
        let admitted = lock(&table).admit(peer.ip(), now, close.clone());
        let id = match admitted {
            Admit::Accept { id, reclaimed } => {
                if let Some(victim) = reclaimed {
                    victim.notify_one();
                    // Let it close before the next accept: on this one thread a
                    // burst of accepts would otherwise hold reclaimed descriptors
                    // open and eat into the reserve.
                    tokio::task::yield_now().await;
                }
                id
            }
            Admit::Refuse => {
                refused += 1;
                // One warning per 1024 refusals keeps a flood from flooding the log too.
                if refused % 1024 == 1 {
                    tracing::warn!(%peer, refused, limit = cap, "every connection is in use; closing new ones");
                }
                drop(stream);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let builder = builder.clone();
        let mut stop = stop_rx.clone();
        let table = table.clone();
        let alive = tasks.clone();
        tokio::spawn(async move {
            let _alive = alive;
            let slot = Slot { id, table, close };
            connection(stream, peer, state, &builder, &mut stop, &slot).await;
            lock(&slot.table).close(id);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection task holds a clone of `tasks`: the last one means all are done.
    let drained = async {
        while Arc::strong_count(&tasks) > 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    if tokio::time::timeout(DRAIN_TIMEOUT, drained).await.is_err() {
        tracing::warn!("connections still open after {DRAIN_TIMEOUT:?}; closing them");
    }
}

/// A connection's place in the table.
struct Slot {
    id: u64,
    table: Arc<Mutex<ConnTable<Arc<Notify>>>>,
    /// Notified when the connection is reclaimed for a new one.
    close: Arc<Notify>,
}

/// Serves one connection until the client closes it, it idles out, it does
/// not complete a first request head within [`FIRST_HEAD_TIMEOUT`], it is
/// reclaimed, it reaches [`CONNECTION_LIFETIME`], or shutdown begins.
async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    state: Arc<State>,
    builder: &hyper::server::conn::http1::Builder,
    stop: &mut watch::Receiver<bool>,
    slot: &Slot,
) {
    let born = tokio::time::Instant::now();
    let started = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let service = {
        let started = started.clone();
        let table = slot.table.clone();
        let id = slot.id;
        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
            started.store(true, Ordering::Relaxed);
            lock(&table).request(id, tokio::time::Instant::now());
            let accept = req.headers().get(hyper::header::ACCEPT);
            let accept = accept.and_then(|v| v.to_str().ok());
            let mut r = respond(req.method(), req.uri().path(), accept, &state);
            if born.elapsed() >= CONNECTION_LIFETIME {
                // Past its lifetime a busy connection is closed after this answer,
                // cleanly: dropping it between requests would race the client's next one.
                r.headers_mut().insert(
                    hyper::header::CONNECTION,
                    hyper::header::HeaderValue::from_static("close"),
                );
            }
            async move { Ok::<_, Infallible>(r) }
        })
    };
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    // Backstop for a connection that never completes a request after its lifetime;
    // an idle one is closed sooner by the header read timeout.
    let lifetime = tokio::time::sleep(CONNECTION_LIFETIME + HEADER_READ_TIMEOUT);
    tokio::pin!(lifetime);
    let first_head = async {
        tokio::time::sleep(FIRST_HEAD_TIMEOUT).await;
        if started.load(Ordering::Relaxed) {
            std::future::pending::<()>().await;
        }
    };
    tokio::pin!(first_head);
    let ended = tokio::select! {
        r = conn.as_mut() => Some(r),
        // Reclaimed or silent: nothing is in flight (an answer is written as
        // soon as its request is read), so close at once.
        () = slot.close.notified() => return,
        () = &mut first_head => return,
        _ = stop.wait_for(|s| *s) => None,
        () = &mut lifetime => None,
    };
    let result = match ended {
        Some(r) => r,
        None => {
            // Answer the request in flight (if any), then close; an idle
            // connection closes at once.
            conn.as_mut().graceful_shutdown();
            tokio::time::timeout(DRAIN_TIMEOUT, conn.as_mut())
                .await
                .unwrap_or(Ok(()))
        }
    };
    if let Err(e) = result {
        // Timeouts and resets by clients are routine; nothing to act on.
        tracing::debug!(%peer, error = %e, "connection ended");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::report::{HostFacts, Judging};
    use crate::core::sample::{Outcome, Sample};

    use crate::proto::source::Source;

    fn report(offset: f64) -> Report {
        let sources = Source::parse_list("ntp://a").unwrap();
        let judging = Judging::default();
        Report::assess(
            &sources,
            &[Outcome::from_result(Ok(Sample::plain(
                offset, 0.001, 0.0002,
            )))],
            &judging,
            &HostFacts::default(),
        )
    }

    fn at(secs: u64, offset: f64) -> Latest {
        Latest {
            report: report(offset),
            taken: Duration::from_secs(secs),
        }
    }

    fn json(h: &Health) -> serde_json::Value {
        serde_json::from_str(&h.body).unwrap()
    }

    fn pending() -> &'static Report {
        static PENDING: std::sync::OnceLock<Report> = std::sync::OnceLock::new();
        PENDING.get_or_init(|| {
            Report::unmeasured(
                &Judging::default(),
                0.0,
                Verdict::Unknown,
                "UNKNOWN: no measurement yet (the first round is under way)".into(),
            )
        })
    }

    fn fresh(latest: &Latest) -> Held<'_> {
        Held {
            latest: Some(latest),
            anchor: Anchor::from_round(
                latest.report.verdict,
                latest.report.offset_seconds,
                latest.report.uncertainty_seconds,
                latest.taken,
            ),
            jumped: None,
            pending: pending(),
            max_drift: MaxDrift::DEFAULT,
            drift: None,
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn health_follows_the_verdict_and_reports_age() {
        // (offset, status, verdict) for a fresh measurement
        for (offset, status, verdict) in [
            (0.0, 200, "ok"),
            (5.0, 200, "warn"),
            (1200.0, 503, "fail"),
            (-1200.0, 503, "fail"),
        ] {
            let latest = at(100, offset);
            let h = health(&fresh(&latest), secs(110), false);
            assert_eq!(h.status, status, "{offset}");
            assert!(h.holdover.is_none());
            let v = json(&h);
            assert_eq!(v["verdict"], verdict);
            assert_eq!(v["age_seconds"], 10.0);
            assert_eq!(v["offset_seconds"], offset);
            assert!(v.get("holdover").is_none(), "{v}");
        }
    }

    #[test]
    fn nothing_measured_yet_is_503_even_when_unknown_passes() {
        for passes in [false, true] {
            let held = Held {
                latest: None,
                anchor: None,
                jumped: None,
                pending: pending(),
                max_drift: MaxDrift::DEFAULT,
                drift: None,
            };
            let h = health(&held, secs(1), passes);
            assert_eq!(h.status, 503);
            let v = json(&h);
            assert_eq!(v["verdict"], "unknown");
            assert!(v["headline"]
                .as_str()
                .unwrap()
                .starts_with("UNKNOWN: no measurement yet"));
            // The same shape as every later body: numbers nobody measured are null.
            for null in ["offset_seconds", "uncertainty_seconds", "age_seconds"] {
                assert!(v[null].is_null() && v.get(null).is_some(), "{null}: {v}");
            }
            assert_eq!(v["max_skew_seconds"], 150.0, "{v}");
            assert_eq!(v["profile"], "aws", "{v}");
            assert!(v["sources"].is_array(), "{v}");
        }
    }

    fn silent() -> Report {
        let sources = Source::parse_list("ntp://a").unwrap();
        Report::assess(
            &sources,
            &[Outcome::from_result(Err(
                crate::core::sample::SourceError::Timeout(Duration::from_secs(1)),
            ))],
            &Judging::default(),
            &HostFacts::default(),
        )
    }

    #[test]
    fn a_failed_round_holds_the_last_good_one_over_until_the_bound_reaches_max_skew() {
        // Offset 0.5 ± 0.001 at t=100; MAX_SKEW 150 s; 5000 ppm: the bound
        // reaches 150 s after (150 − 0.501) / 0.005 = 29 899.8 s.
        let good = at(100, 0.5);
        let anchor = fresh(&good).anchor;
        let failed = Latest {
            report: silent(),
            taken: secs(160),
        };
        let held = Held {
            latest: Some(&failed),
            anchor,
            jumped: None,
            pending: pending(),
            max_drift: MaxDrift::from_ppm(5000.0).unwrap(),
            drift: None,
        };
        let h = health(&held, secs(170), false);
        assert_eq!((h.status, h.verdict), (200, Verdict::Ok), "{}", h.body);
        let v = json(&h);
        let hold = &v["holdover"];
        assert_eq!(hold["age_seconds"], 70.0);
        assert!(
            (hold["bound_seconds"].as_f64().unwrap() - 0.851).abs() < 1e-9,
            "{v}"
        );
        assert!((hold["remaining_seconds"].as_f64().unwrap() - 29_829.8).abs() < 1e-6);
        assert_eq!(hold["max_drift_ppm"], 5000.0);
        assert_eq!(v["offset_seconds"], 0.5);
        assert_eq!(h.offset_seconds, Some(0.5), "what serve logs");
        let grown = h.uncertainty_seconds.unwrap();
        assert_eq!(v["uncertainty_seconds"], grown);
        assert!((grown - 0.351).abs() < 1e-9, "{grown}");
        assert_eq!(v["age_seconds"], 10.0, "age of the latest round");
        let headline = v["headline"].as_str().unwrap();
        assert!(headline.starts_with("OK (holdover)"), "{headline}");
        assert!(headline.contains("none of the 1 source(s)"), "{headline}");
        // Sizes spoken, the threshold as it is set.
        assert!(
            headline.ends_with("the last good measurement, 1m10s old, bounds the skew by 851.0ms at SKEWGUARD_MAX_DRIFT=5000ppm, within SKEWGUARD_MAX_SKEW=2m30s for 8h17m more"),
            "{headline}"
        );
        // Past warn (1 s) it warns, still 200.
        let h = health(&held, secs(300), false);
        assert_eq!((h.status, h.verdict), (200, Verdict::Warn), "{}", h.body);
        // At MAX_SKEW: unknown, 503 (200 with ON_UNKNOWN=pass).
        let h = health(&held, secs(100 + 29_900), false);
        assert_eq!((h.status, h.verdict), (503, Verdict::Unknown), "{}", h.body);
        assert!(
            h.headline.starts_with("UNKNOWN: holdover ended"),
            "{}",
            h.headline
        );
        assert!(
            h.headline.ends_with("past SKEWGUARD_MAX_SKEW=2m30s"),
            "{}",
            h.headline
        );
        assert_eq!(health(&held, secs(100 + 29_900), true).status, 200);
    }

    #[test]
    fn a_fresh_round_ages_like_holdover_when_no_round_follows() {
        let good = at(100, 0.0);
        let mut held = fresh(&good);
        held.max_drift = MaxDrift::from_ppm(100_000.0).unwrap();
        // 0.001 s + 10 % of the age: warn at 10 s, unknown at 1500 s.
        assert_eq!(health(&held, secs(105), false).verdict, Verdict::Ok);
        let h = health(&held, secs(120), false);
        assert_eq!(h.verdict, Verdict::Warn);
        assert!(
            h.headline.contains("no round has finished"),
            "{}",
            h.headline
        );
        assert_eq!(health(&held, secs(1700), false).status, 503);
    }

    #[test]
    fn a_clock_jump_ends_holdover_until_the_next_round() {
        let good = at(100, 0.0);
        let mut held = fresh(&good);
        held.jumped = Some("the wall clock was stepped by 10m0.000s");
        let h = health(&held, secs(101), false);
        assert_eq!((h.status, h.verdict), (503, Verdict::Unknown));
        assert!(h.headline.contains("stepped by 10m"), "{}", h.headline);
        assert!(json(&h)["offset_seconds"].is_null());
    }

    #[test]
    fn state_keeps_the_anchor_through_failed_rounds_and_drops_it_on_fail_or_jump() {
        static CLOCK: crate::os::clock::SystemClock = crate::os::clock::SystemClock;
        let sources = Source::parse_list("ntp://a").unwrap();
        let state = State::new(
            &Judging::default(),
            Metrics::new(&sources, 150.0),
            MaxDrift::DEFAULT,
            false,
            secs(60),
            &CLOCK,
        );
        state.publish(report(0.0));
        state.publish(silent());
        let h = state.health();
        assert_eq!(h.status, 200, "{}", h.body);
        assert!(h.holdover.is_some());
        state.publish(report(1200.0));
        state.publish(silent());
        assert_eq!(state.health().status, 503, "a fail is not held over");
        state.publish(report(0.0));
        state.clock_jumped("the host slept for 1h".into());
        state.publish(silent());
        assert_eq!(state.health().status, 503, "a jump ends holdover");
    }

    #[test]
    fn a_clock_reading_from_before_taken_is_age_zero() {
        let latest = at(100, 0.0);
        let h = health(&fresh(&latest), secs(50), false);
        assert_eq!(json(&h)["age_seconds"], 0.0);
    }

    #[test]
    fn the_table_reclaims_the_oldest_idle_connection_and_shares_by_address() {
        let t0 = tokio::time::Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let a: IpAddr = [127, 0, 0, 2].into();
        let b: IpAddr = [127, 0, 0, 3].into();
        // cap 4, share 2 per address
        let mut t = ConnTable::new(4, 2);
        fn id(admit: Admit<&'static str>) -> (u64, Option<&'static str>) {
            match admit {
                Admit::Accept { id, reclaimed } => (id, reclaimed),
                Admit::Refuse => panic!("refused"),
            }
        }
        assert_eq!(id(t.admit(a, at(0), "a0")), (0, None));
        assert_eq!(id(t.admit(a, at(1), "a1")), (1, None));
        // `a` is at its share: its oldest idle one makes room.
        assert_eq!(id(t.admit(a, at(2), "a2")), (2, Some("a0")));
        // A request makes a0's successor the newest; a2 is now the oldest of `a`.
        t.request(1, at(3));
        assert_eq!(id(t.admit(a, at(4), "a3")), (3, Some("a2")));
        assert_eq!(id(t.admit(b, at(5), "b0")), (4, None));
        assert_eq!(id(t.admit(b, at(6), "b1")), (5, None));
        assert_eq!(t.len(), 4);
        // At the cap, a third address takes the oldest idle of anyone (a1 at 3 ms).
        assert_eq!(
            id(t.admit([127, 0, 0, 4].into(), at(7), "c0")),
            (6, Some("a1"))
        );
        assert_eq!(t.len(), 4);
        assert_eq!(t.close(6), Some("c0"));
        assert_eq!(t.close(6), None);
        assert_eq!(t.len(), 3);
        for i in [3, 4, 5] {
            t.close(i);
        }
        assert!(t.is_empty() && t.idle.is_empty());
    }

    #[test]
    fn the_cap_keeps_a_descriptor_reserve() {
        assert_eq!(connection_cap(None), MAX_CONNECTIONS);
        assert_eq!(connection_cap(Some(20_000)), MAX_CONNECTIONS);
        assert_eq!(connection_cap(Some(1024)), 1024 - FD_RESERVE as usize);
        assert_eq!(connection_cap(Some(100)), 16);
    }

    #[test]
    fn liveness_depends_only_on_progress() {
        let within = Duration::from_secs(10);
        assert!(liveness(Duration::from_secs(5), Duration::from_secs(15), within).alive);
        assert!(!liveness(Duration::from_secs(5), Duration::from_secs(16), within).alive);
        assert!(liveness(Duration::from_secs(5), Duration::from_secs(1), within).alive);
    }

    #[test]
    fn routes_methods_and_paths() {
        static CLOCK: crate::os::clock::SystemClock = crate::os::clock::SystemClock;
        let sources = Source::parse_list("ntp://a").unwrap();
        let state = State::new(
            &Judging::default(),
            Metrics::new(&sources, 150.0),
            MaxDrift::DEFAULT,
            false,
            Duration::from_secs(60),
            &CLOCK,
        );
        let status = |m: Method, p: &str| respond(&m, p, None, &state).status().as_u16();
        assert_eq!(status(Method::GET, "/healthz"), 503);
        assert_eq!(status(Method::GET, "/livez"), 200);
        assert_eq!(status(Method::GET, "/nope"), 404);
        assert_eq!(status(Method::POST, "/healthz"), 405);
        assert_eq!(status(Method::POST, "/nope"), 404);
        state.publish(report(0.0));
        assert_eq!(status(Method::HEAD, "/readyz"), 200);
        let r = respond(&Method::GET, "/metrics", None, &state);
        assert_eq!(
            r.headers()[CONTENT_TYPE],
            crate::serve::metrics::TEXT_CONTENT_TYPE
        );
        let om = Some("application/openmetrics-text;version=1.0.0,*/*;q=0.1");
        let r = respond(&Method::GET, "/metrics", om, &state);
        assert_eq!(
            r.headers()[CONTENT_TYPE],
            crate::serve::metrics::OPENMETRICS_CONTENT_TYPE
        );
        let r = respond(&Method::PUT, "/metrics", None, &state);
        assert_eq!(r.headers()[ALLOW], "GET, HEAD");
    }
}
