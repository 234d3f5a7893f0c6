//! The HTTP side of `serve`: `/healthz`, `/readyz`, `/livez` and `/metrics`,
//! answered from the latest measurement, which the measurement loop publishes
//! into a [`State`].
//!
//! What each endpoint answers is decided by pure functions ([`health`],
//! [`liveness`], [`respond`]); [`serve`] only accepts connections and hands them
//! to hyper. One task per connection, a cap on how many are open, and hyper's
//! header read timeout keep slow or idle clients from delaying a probe.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
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
use tokio::sync::{watch, Semaphore};

use crate::clock::Clock;
use crate::duration::human_duration;
use crate::metrics::Metrics;
use crate::report::Report;
use crate::verdict::Verdict;

/// Most connections open at once; more are closed as soon as they are accepted.
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
    /// CLOCK_MONOTONIC when the loop last finished a round (or started): the
    /// liveness signal. Monotonic, not boottime: a sleeping host is not a hung loop.
    progress: Mutex<Duration>,
    /// Rounds finished since start.
    rounds: AtomicU64,
    /// The metrics.
    pub metrics: Metrics,
    /// A measurement older than this is served as unknown.
    pub stale_after: Duration,
    /// `ON_UNKNOWN=pass`: unknown answers 200.
    pub unknown_passes: bool,
    /// `/livez` fails when no round has finished for this long.
    pub live_within: Duration,
    clock: &'static dyn Clock,
}

impl State {
    /// A state with no measurement yet.
    pub fn new(
        metrics: Metrics,
        stale_after: Duration,
        unknown_passes: bool,
        live_within: Duration,
        clock: &'static dyn Clock,
    ) -> State {
        State {
            latest: Mutex::new(None),
            progress: Mutex::new(clock.monotonic()),
            rounds: AtomicU64::new(0),
            metrics,
            stale_after,
            unknown_passes,
            live_within,
            clock,
        }
    }

    /// Publishes a round's report: served from now on, and counted in the metrics.
    pub fn publish(&self, report: Report) {
        self.metrics.record(&report);
        let taken = self.clock.boottime();
        *lock(&self.latest) = Some(Latest { report, taken });
        *lock(&self.progress) = self.clock.monotonic();
        self.rounds.fetch_add(1, Ordering::Relaxed);
    }

    /// Rounds finished since start.
    pub fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::Relaxed)
    }

    /// The answer of `/healthz` and `/readyz` now.
    pub fn health(&self) -> Health {
        let latest = lock(&self.latest).clone();
        health(
            latest.as_ref(),
            self.clock.boottime(),
            self.stale_after,
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
    /// The verdict served (unknown when stale or not measured yet).
    pub verdict: Verdict,
    /// 200 or 503.
    pub status: u16,
    /// The JSON body.
    pub body: String,
}

/// Decides `/healthz`: the latest report plus `age_seconds`; unknown when there is
/// none yet or it is older than `stale_after`; 200 when the verdict passes.
///
/// `now` and `latest.taken` are readings of the same (boottime) clock.
pub fn health(
    latest: Option<&Latest>,
    now: Duration,
    stale_after: Duration,
    unknown_passes: bool,
) -> Health {
    let Some(latest) = latest else {
        // Not ready before the first round even with ON_UNKNOWN=pass: the first
        // round ends within a timeout, and until then nothing has been judged.
        let body = Pending {
            verdict: Verdict::Unknown,
            headline: "UNKNOWN: no measurement yet (the first round is under way)",
        };
        return Health {
            verdict: Verdict::Unknown,
            status: 503,
            body: to_json(&body),
        };
    };
    let age = now.saturating_sub(latest.taken);
    let mut report = std::borrow::Cow::Borrowed(&latest.report);
    if age > stale_after {
        let r = report.to_mut();
        r.headline = format!(
            "UNKNOWN: the last measurement is stale: taken {} ago, more than SKEWGUARD_STALE_AFTER={} (it said: {})",
            human_duration(age.as_secs_f64()),
            human_duration(stale_after.as_secs_f64()),
            latest.report.headline
        );
        r.verdict = Verdict::Unknown;
    }
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
            age_seconds: age.as_secs_f64(),
        }),
    }
}

/// The body before the first measurement.
#[derive(Serialize)]
struct Pending {
    verdict: Verdict,
    headline: &'static str,
}

/// The report as `check --output json` prints it, plus its age (fields in the same order).
#[derive(Serialize)]
struct Served<'a> {
    #[serde(flatten)]
    report: &'a Report,
    age_seconds: f64,
}

/// Serialises a body; the types above cannot fail to serialise, but a probe
/// must get JSON whatever happens.
fn to_json(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| {
        serde_json::json!({ "verdict": Verdict::Unknown, "headline": format!("UNKNOWN: cannot render the report: {e}") }).to_string()
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
        serde_json::json!({ "error": message }).to_string(),
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
            let body = serde_json::json!({
                "alive": l.alive,
                "rounds": state.rounds(),
                "seconds_since_last_round": l.since_progress,
                "limit_seconds": state.live_within.as_secs_f64(),
            });
            response(
                if l.alive { 200 } else { 503 },
                "application/json",
                body.to_string(),
            )
        }
        _ => {
            let format = crate::metrics::negotiate(accept);
            state.metrics.scrape(state.health().verdict, state.age());
            match state.metrics.encode(format) {
                Ok(text) => response(200, format.content_type(), text),
                Err(_) => json_error(500, "cannot encode the metrics"),
            }
        }
    }
}

/// Accepts connections on `listener` and answers them until `shutdown`
/// resolves; then stops accepting, lets requests in flight finish (at most
/// [`DRAIN_TIMEOUT`]) and returns.
pub async fn serve(listener: TcpListener, state: Arc<State>, shutdown: impl Future<Output = ()>) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
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
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors, mostly: pause rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            refused += 1;
            // One warning per 1024 refusals keeps a flood from flooding the log too.
            if refused % 1024 == 1 {
                tracing::warn!(%peer, refused, limit = MAX_CONNECTIONS, "too many connections; closing new ones");
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let builder = builder.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            connection(stream, peer, state, &builder, &mut stop).await;
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection task holds a permit: having them all back means all are done.
    let all = MAX_CONNECTIONS as u32;
    if tokio::time::timeout(DRAIN_TIMEOUT, permits.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {DRAIN_TIMEOUT:?}; closing them");
    }
}

/// Serves one connection until the client closes it, it idles out, it reaches
/// [`CONNECTION_LIFETIME`], or shutdown begins.
async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    state: Arc<State>,
    builder: &hyper::server::conn::http1::Builder,
    stop: &mut watch::Receiver<bool>,
) {
    let born = tokio::time::Instant::now();
    let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
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
    });
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    // Backstop for a connection that never completes a request after its lifetime;
    // an idle one is closed sooner by the header read timeout.
    let lifetime = tokio::time::sleep(CONNECTION_LIFETIME + HEADER_READ_TIMEOUT);
    tokio::pin!(lifetime);
    let ended = tokio::select! {
        r = conn.as_mut() => Some(r),
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
    use crate::report::{HostFacts, Judging};
    use crate::source::{Outcome, Sample, Source};

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

    const STALE: Duration = Duration::from_secs(180);

    #[test]
    fn health_follows_the_verdict_and_reports_age() {
        // (offset, status, verdict) for a fresh measurement
        for (offset, status, verdict) in [
            (0.0, 200, "ok"),
            (5.0, 200, "warn"),
            (1200.0, 503, "fail"),
            (-1200.0, 503, "fail"),
        ] {
            let h = health(
                Some(&at(100, offset)),
                Duration::from_secs(110),
                STALE,
                false,
            );
            assert_eq!(h.status, status, "{offset}");
            let v = json(&h);
            assert_eq!(v["verdict"], verdict);
            assert_eq!(v["age_seconds"], 10.0);
            assert_eq!(v["offset_seconds"], offset);
        }
    }

    #[test]
    fn nothing_measured_yet_is_503_even_when_unknown_passes() {
        for passes in [false, true] {
            let h = health(None, Duration::from_secs(1), STALE, passes);
            assert_eq!(h.status, 503);
            let v = json(&h);
            assert_eq!(v["verdict"], "unknown");
            assert!(v["headline"]
                .as_str()
                .unwrap()
                .starts_with("UNKNOWN: no measurement yet"));
        }
    }

    #[test]
    fn a_stale_measurement_is_unknown_and_says_how_old() {
        let latest = at(100, 0.0);
        let fresh = health(Some(&latest), Duration::from_secs(280), STALE, false);
        assert_eq!(fresh.status, 200, "exactly stale_after is still fresh");
        let h = health(Some(&latest), Duration::from_secs(400), STALE, false);
        assert_eq!((h.status, h.verdict), (503, Verdict::Unknown));
        let v = json(&h);
        let headline = v["headline"].as_str().unwrap();
        assert!(
            headline.starts_with("UNKNOWN: the last measurement is stale"),
            "{headline}"
        );
        assert!(headline.contains("5m0.000s ago"), "{headline}");
        assert_eq!(v["age_seconds"], 300.0);
        let h = health(Some(&latest), Duration::from_secs(400), STALE, true);
        assert_eq!(h.status, 200, "ON_UNKNOWN=pass");
    }

    #[test]
    fn a_clock_reading_from_before_taken_is_age_zero() {
        let h = health(Some(&at(100, 0.0)), Duration::from_secs(50), STALE, false);
        assert_eq!(json(&h)["age_seconds"], 0.0);
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
        static CLOCK: crate::clock::SystemClock = crate::clock::SystemClock;
        let sources = Source::parse_list("ntp://a").unwrap();
        let state = State::new(
            Metrics::new(&sources, 150.0),
            STALE,
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
        assert_eq!(r.headers()[CONTENT_TYPE], crate::metrics::TEXT_CONTENT_TYPE);
        let om = Some("application/openmetrics-text;version=1.0.0,*/*;q=0.1");
        let r = respond(&Method::GET, "/metrics", om, &state);
        assert_eq!(
            r.headers()[CONTENT_TYPE],
            crate::metrics::OPENMETRICS_CONTENT_TYPE
        );
        let r = respond(&Method::PUT, "/metrics", None, &state);
        assert_eq!(r.headers()[ALLOW], "GET, HEAD");
    }
}
