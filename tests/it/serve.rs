//! `skewguard serve` as a sidecar: the built binary on a loopback port, probed
//! over plain TCP as kubelet, Docker or Prometheus would.
//!
//! Tests that need a real NTP server use chronyd shifted by libfaketime (see
//! `support`) and skip with a printed reason where it is missing (fail under
//! `CI=true`); the others need nothing but the binary. Every test is bounded
//! well under 30 s and talks only to 127.0.0.1.

use crate::support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use support::{Chrony, Port, Serve};

/// How closely `/metrics` must carry the shift of a loopback chronyd.
const NTP_TOLERANCE: f64 = 0.005;

impl Serve {
    /// `GET path`.
    pub(crate) fn get(&self, path: &str) -> Reply {
        self.request("GET", path)
    }

    /// One request on a fresh connection (`Connection: close`), answered within 2 s.
    fn request(&self, method: &str, path: &str) -> Reply {
        let mut s = TcpStream::connect_timeout(&self.addr(), Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("connect: {e}\n{}", self.log()));
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.log()));
        Reply::parse(&raw).unwrap_or_else(|| panic!("{method} {path}: bad response {raw:?}"))
    }

    /// Polls `path` until `want` holds for the reply, within `bound`; while
    /// waiting, `/livez` must answer 200 every time.
    pub(crate) fn wait_for(
        &self,
        path: &str,
        bound: Duration,
        want: impl Fn(&Reply) -> bool,
    ) -> Reply {
        let deadline = Instant::now() + bound;
        loop {
            let reply = self.get(path);
            let live = self.get("/livez");
            assert_eq!(
                live.status,
                200,
                "/livez while waiting: {live:?}\n{}",
                self.log()
            );
            if want(&reply) {
                return reply;
            }
            assert!(
                Instant::now() < deadline,
                "{path} did not reach the expected state within {bound:?}; last: {reply:?}\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A response: status, header lines, body.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn parse(raw: &[u8]) -> Option<Reply> {
        let text = String::from_utf8_lossy(raw);
        let (head, body) = text.split_once("\r\n\r\n")?;
        let mut lines = head.lines();
        let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Some(Reply {
            status,
            headers,
            body: body.to_string(),
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    fn verdict(&self) -> String {
        self.json()["verdict"].as_str().unwrap_or("").to_string()
    }

    /// The value of the metric sample line starting with `series` and a space.
    fn sample(&self, series: &str) -> Option<f64> {
        self.body.lines().find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
    }
}

#[test]
fn healthz_follows_a_reference_that_jumps_and_livez_stays_up() {
    let _room = support::Room::Timing.enter();
    let Some(mut chrony) = Chrony::start(None) else {
        return;
    };
    let uri = chrony.uri();
    let serve = Serve::start(&[
        ("SKEWGUARD_SOURCES", &uri),
        ("SKEWGUARD_INTERVAL", "1s"),
        ("SKEWGUARD_TIMEOUT", "1s"),
    ]);
    let bound = Duration::from_secs(6);
    let ok = serve.wait_for("/healthz", bound, |r| r.status == 200);
    assert_eq!(ok.verdict(), "ok", "{ok:?}");
    assert_eq!(ok.header("content-type"), Some("application/json"));
    assert!(ok.json()["age_seconds"].as_f64().is_some(), "{ok:?}");

    if !chrony.restart(Some("+1200")) {
        return;
    }
    let fail = serve.wait_for("/healthz", bound, |r| r.verdict() == "fail");
    assert_eq!(fail.status, 503, "{fail:?}");
    let offset = fail.json()["offset_seconds"].as_f64();
    assert!(
        offset.is_some_and(|o| (o - 1200.0).abs() < NTP_TOLERANCE),
        "{fail:?}"
    );

    let metrics = serve.get("/metrics");
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/plain; version=0.0.4")),
        "without an Accept header, the classic text format: {metrics:?}"
    );
    let offset = metrics.sample("skewguard_offset_seconds");
    assert!(
        offset.is_some_and(|o| (o - 1200.0).abs() < NTP_TOLERANCE),
        "skewguard_offset_seconds = {offset:?}\n{}",
        metrics.body
    );
    let source = format!("{{source=\"{uri}\"}}");
    for (series, want) in [
        ("skewguard_verdict{state=\"fail\"}".to_string(), 1.0),
        ("skewguard_verdict{state=\"ok\"}".to_string(), 0.0),
        (format!("skewguard_source_up{source}"), 1.0),
        ("skewguard_max_skew_seconds".to_string(), 150.0),
    ] {
        assert_eq!(
            metrics.sample(&series),
            Some(want),
            "{series}\n{}",
            metrics.body
        );
    }
    let source_offset = metrics.sample(&format!("skewguard_source_offset_seconds{source}"));
    assert!(
        source_offset.is_some_and(|o| (o - 1200.0).abs() < NTP_TOLERANCE),
        "{}",
        metrics.body
    );
    let ok_rounds = metrics.sample(&format!(
        "skewguard_measurements_total{{source=\"{uri}\",result=\"ok\"}}"
    ));
    assert!(ok_rounds.is_some_and(|n| n >= 2.0), "{}", metrics.body);
    assert!(metrics
        .sample("skewguard_last_measurement_timestamp_seconds")
        .is_some_and(|t| t > 1.6e9));

    if !chrony.restart(None) {
        return;
    }
    let back = serve.wait_for("/healthz", bound, |r| r.status == 200);
    assert_eq!(back.verdict(), "ok", "{back:?}");
    let log = serve.log();
    assert!(
        log.contains("FAIL: local clock is 20m00s") || log.contains("FAIL: local clock is 19m59s"),
        "each round's verdict is logged:\n{log}"
    );
}

#[test]
fn before_the_first_measurement_healthz_is_503_and_says_so() {
    let _room = support::Room::Timing.enter();
    // A source that never answers (a bound socket that reads nothing, so no
    // ICMP refusal ends the query early): the first round takes the whole timeout.
    let silent = Port::free();
    let _socket = std::net::UdpSocket::bind(("127.0.0.1", silent.number())).expect("bind");
    let serve = Serve::start(&[
        ("SKEWGUARD_SOURCES", &silent.ntp_uri()),
        ("SKEWGUARD_TIMEOUT", "2s"),
    ]);
    let r = serve.get("/healthz");
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    assert_eq!(v["verdict"], "unknown", "{r:?}");
    assert!(
        v["headline"]
            .as_str()
            .is_some_and(|h| h.starts_with("UNKNOWN: no measurement yet")),
        "{r:?}"
    );
    // The shape of every other body: unmeasured numbers null, settings as set.
    for null in ["offset_seconds", "uncertainty_seconds", "age_seconds"] {
        assert!(v.get(null).is_some_and(|n| n.is_null()), "{null}: {v}");
    }
    assert_eq!(v["max_skew_seconds"], 150.0, "{v}");
    assert!(v["sources"].is_array() && v["measured_at"].is_f64(), "{v}");
    assert_eq!(serve.get("/readyz").status, 503);
    assert_eq!(serve.get("/livez").status, 200, "alive while measuring");
}

#[test]
fn routes_methods_and_content_types() {
    let _room = support::Room::Timing.enter();
    // Disabled: every round is an instant ok with a note; no time source needed.
    let serve = Serve::start(&[("SKEWGUARD_DISABLED", "true")]);
    let r = serve.wait_for("/healthz", Duration::from_secs(3), |r| r.status == 200);
    assert_eq!(r.verdict(), "ok");
    assert_eq!(r.json()["note"], "disabled by SKEWGUARD_DISABLED", "{r:?}");
    assert_eq!(serve.get("/readyz").status, 200);
    assert_eq!(serve.get("/healthz?verbose=1").status, 200);

    let r = serve.get("/nope");
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(serve.get("/").status, 404);
    assert_eq!(serve.get("/healthz/extra").status, 404);

    for method in ["POST", "PUT", "DELETE"] {
        let r = serve.request(method, "/healthz");
        assert_eq!(r.status, 405, "{method}: {r:?}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"), "{r:?}");
    }

    let r = serve.request("HEAD", "/healthz");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.is_empty(), "HEAD has no body: {r:?}");

    let m = serve.get("/metrics");
    assert_eq!(
        m.sample("skewguard_verdict{state=\"ok\"}"),
        Some(1.0),
        "{}",
        m.body
    );
    assert!(!m.body.contains("# EOF"), "{}", m.body);
}

/// Holdover against a real chronyd: the source stops, `/readyz` stays 200 while
/// the grown bound `|θ| + u + MAX_DRIFT · age` stays under MAX_SKEW, turns
/// 503 unknown when it passes it (at the time the body announced), and a
/// restarted source ends holdover.
#[test]
fn holdover_keeps_readiness_until_the_grown_bound_reaches_max_skew() {
    let _room = support::Room::Timing.enter();
    let Some(mut chrony) = Chrony::start(None) else {
        return;
    };
    // 5000 ppm and a 30 ms MAX_SKEW: from a bound of ~1 ms, unknown after ~6 s.
    let serve = Serve::start(&[
        ("SKEWGUARD_SOURCES", &chrony.uri()),
        ("SKEWGUARD_INTERVAL", "1s"),
        ("SKEWGUARD_TIMEOUT", "500ms"),
        ("SKEWGUARD_MAX_SKEW", "30ms"),
        ("SKEWGUARD_WARN_SKEW", "15ms"),
        ("SKEWGUARD_MAX_DRIFT", "5000ppm"),
        ("SKEWGUARD_LOG_FORMAT", "json"),
    ]);
    serve.wait_for("/readyz", Duration::from_secs(5), |r| {
        r.status == 200 && r.json().get("holdover").is_none()
    });
    chrony.stop();
    let stopped = Instant::now();

    // Holdover begins with the first round that gets no answer.
    let first = serve.wait_for("/readyz", Duration::from_secs(5), |r| {
        r.json().get("holdover").is_some()
    });
    let seen = Instant::now();
    let v = first.json();
    assert_eq!(first.status, 200, "{first:?}");
    let hold = &v["holdover"];
    let remaining = hold["remaining_seconds"].as_f64().expect("remaining");
    let predicted = seen + Duration::from_secs_f64(remaining);
    assert!(
        v["headline"]
            .as_str()
            .is_some_and(|h| h.contains("(holdover)")),
        "{v}"
    );
    assert_eq!(hold["max_drift_ppm"], 5000.0, "{v}");
    let m = serve.get("/metrics");
    assert_eq!(m.sample("skewguard_holdover"), Some(1.0), "{}", m.body);

    // While it holds: 200, and the bound grows at 5000 ppm of the age.
    let mut last_bound = 0.0;
    let mut last_200 = seen;
    let ended = loop {
        let r = serve.get("/readyz");
        let v = r.json();
        if r.status != 200 {
            break (r, Instant::now());
        }
        last_200 = Instant::now();
        let hold = &v["holdover"];
        let age = hold["age_seconds"].as_f64().expect("age");
        let bound = hold["bound_seconds"].as_f64().expect("bound");
        let measured = hold["offset_seconds"].as_f64().unwrap_or(0.0).abs()
            + hold["measured_uncertainty_seconds"].as_f64().unwrap_or(0.0);
        assert!((bound - (measured + 0.005 * age)).abs() < 1e-9, "{v}");
        assert!(bound >= last_bound && bound < 0.030, "{v}");
        last_bound = bound;
        assert!(
            stopped.elapsed() < Duration::from_secs(15),
            "still 200 long after the bound should have passed MAX_SKEW: {v}\n{}",
            serve.log()
        );
        thread::sleep(Duration::from_millis(100));
    };
    let (r, at) = ended;
    let v = r.json();
    // The round lines logged in holdover carry the numbers served: the held
    // offset and the grown uncertainty, beside the holdover age and bound.
    let log = serve.log();
    let held_line = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["fields"]["holdover_bound_seconds"].is_f64())
        .unwrap_or_else(|| panic!("no holdover log line:\n{log}"));
    let f = &held_line["fields"];
    let (offset, uncertainty, bound) = (
        f["offset_seconds"].as_f64(),
        f["uncertainty_seconds"].as_f64(),
        f["holdover_bound_seconds"].as_f64(),
    );
    assert!(
        matches!((offset, uncertainty, bound), (Some(o), Some(u), Some(b)) if (o.abs() + u - b).abs() < 1e-9),
        "{held_line}"
    );
    assert_eq!(
        (r.status, v["verdict"].as_str()),
        (503, Some("unknown")),
        "{r:?}"
    );
    assert!(
        v["headline"]
            .as_str()
            .is_some_and(|h| h.starts_with("UNKNOWN: holdover ended")),
        "{v}"
    );
    // The switch comes when the body said it would (polled every 100 ms).
    let early = predicted.saturating_duration_since(at);
    let late = at.saturating_duration_since(predicted);
    assert!(
        early < Duration::from_millis(50) && late < Duration::from_millis(600),
        "predicted vs seen: early {early:?}, late {late:?}"
    );
    let off = at.saturating_duration_since(predicted).as_secs_f64()
        - predicted.saturating_duration_since(at).as_secs_f64();
    eprintln!(
        "holdover: /readyz 200 for {:.2?} after the source stopped ({:.2?} of it in holdover), then 503 unknown {off:+.2}s from the announced time",
        last_200 - stopped,
        last_200 - seen,
    );

    // A source that answers again ends holdover with a fresh measurement.
    assert!(chrony.restart(None), "{}", chrony.log());
    let back = serve.wait_for("/readyz", Duration::from_secs(5), |r| r.status == 200);
    assert!(back.json().get("holdover").is_none(), "{back:?}");
    let m = serve.get("/metrics");
    assert_eq!(m.sample("skewguard_holdover"), Some(0.0), "{}", m.body);
}

#[test]
fn slow_and_idle_clients_do_not_delay_healthz() {
    let _room = support::Room::Timing.enter();
    let serve = Serve::start(&[("SKEWGUARD_DISABLED", "true")]);
    serve.wait_for("/healthz", Duration::from_secs(3), |r| r.status == 200);
    let mut held = Vec::new();
    for i in 0..200 {
        let mut s = TcpStream::connect(serve.addr()).expect("connect");
        // Half of them never send a byte, half stop in the middle of the head.
        if i % 2 == 1 {
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                .expect("write");
        }
        held.push(s);
    }
    for _ in 0..5 {
        let started = Instant::now();
        let r = serve.get("/healthz");
        let took = started.elapsed();
        assert_eq!(r.status, 200, "{r:?}");
        assert!(took < Duration::from_secs(1), "/healthz took {took:?}");
    }
    drop(held);
}

#[test]
fn sigterm_ends_serve_with_exit_0_within_2_seconds() {
    let _room = support::Room::Timing.enter();
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let mut serve = Serve::start(&[("SKEWGUARD_DISABLED", "true")]);
        serve.wait_for("/healthz", Duration::from_secs(3), |r| r.status == 200);
        // An idle keep-alive connection and a half-sent request must not hold it up.
        let idle = TcpStream::connect(serve.addr()).expect("connect");
        let mut half = TcpStream::connect(serve.addr()).expect("connect");
        half.write_all(b"GET /healthz HTTP/1.1\r\n").expect("write");
        thread::sleep(Duration::from_millis(100));
        let (code, took) = serve.stop(signal);
        assert_eq!(code, Some(0), "signal {signal}:\n{}", serve.log());
        assert!(
            took < Duration::from_secs(2),
            "signal {signal}: took {took:?}"
        );
        assert!(
            TcpStream::connect(serve.addr()).is_err(),
            "no longer accepting"
        );
        drop((idle, half));
    }
}

/// Raises this test process's soft descriptor limit to its hard limit; the new soft limit.
/// The whole process keeps it, so every module's later children inherit it;
/// none depends on the lower limit (`serve` raises its own to the hard limit
/// anyway, and the 1024-descriptor case sets its limit with `prlimit`).
fn raise_own_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain get/setrlimit on a valid, owned struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    lim.rlim_cur
}

/// One flooding socket: `slow` ones trickle a request head that never ends;
/// the others sent one request and sit idle on the kept-alive connection.
struct Flooder {
    stream: Option<TcpStream>,
    slow: bool,
}

impl Flooder {
    fn open(addr: std::net::SocketAddr, slow: bool) -> Option<TcpStream> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
        let head: &[u8] = if slow {
            b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        } else {
            b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        };
        s.write_all(head).ok()?;
        s.set_nonblocking(true).ok()?;
        Some(s)
    }
}

/// Most connections the flood re-opens per second once it is built up: a
/// persistent client that reconnects what the server closes, at a rate the
/// kernel's accept queue can absorb (a closed-loop reconnect at any speed keeps
/// that queue full, and then no SYN gets in, whatever the server does).
const REOPEN_PER_SECOND: u64 = 500;

/// Holds `idle` + `slow` connections to `addr` until `stop`, reopening those
/// the server closes (at most [`REOPEN_PER_SECOND`] after the first pass);
/// counts the (re)connections made.
fn flood(
    addr: std::net::SocketAddr,
    idle: usize,
    slow: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> thread::JoinHandle<u64> {
    use std::sync::atomic::Ordering;
    thread::spawn(move || {
        let mut all: Vec<Flooder> = (0..idle + slow)
            .map(|i| Flooder {
                stream: None,
                slow: i >= idle,
            })
            .collect();
        let mut opened = 0u64;
        let mut buf = [0u8; 4096];
        let mut trickle = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let mut budget = if opened < (idle + slow) as u64 {
                u64::MAX
            } else {
                REOPEN_PER_SECOND / 10
            };
            let drip = trickle.elapsed() >= Duration::from_secs(1);
            if drip {
                trickle = Instant::now();
            }
            for f in &mut all {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let alive = match f.stream.as_mut() {
                    None => false,
                    Some(s) => {
                        let mut alive = match s.read(&mut buf) {
                            Ok(0) => false,
                            Ok(_) => true,
                            Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
                        };
                        if alive && f.slow && drip {
                            alive = s.write_all(b"X-Slow: 1\r\n").is_ok();
                        }
                        alive
                    }
                };
                if !alive {
                    f.stream = None;
                    if budget > 0 {
                        budget -= 1;
                        f.stream = Flooder::open(addr, f.slow);
                        opened += u64::from(f.stream.is_some());
                    }
                }
            }
            // Ten passes a second keep the flood's own CPU use small.
            thread::sleep(Duration::from_millis(100));
        }
        opened
    })
}

/// One probe as a kubelet makes it: a new connection, `GET path`, the status
/// if a complete answer came within 1 s.
fn probe(addr: std::net::SocketAddr, path: &str) -> (Result<u16, String>, Duration) {
    let started = Instant::now();
    let bound = Duration::from_secs(1);
    let status = (|| {
        let mut s =
            TcpStream::connect_timeout(&addr, bound).map_err(|e| format!("connect: {e}"))?;
        let left = bound
            .checked_sub(started.elapsed())
            .ok_or("connect took 1 s")?;
        s.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .map_err(|e| format!("write: {e}"))?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)
            .map_err(|e| format!("read after {:?}: {e}", started.elapsed()))?;
        Reply::parse(&raw)
            .map(|r| r.status)
            .ok_or_else(|| format!("bad answer {raw:?}"))
    })();
    let took = started.elapsed();
    let status = status.and_then(|s| {
        if took <= bound {
            Ok(s)
        } else {
            Err(format!("{s} after {took:?}"))
        }
    });
    (status, took)
}

/// The flood of the issue against `serve` started under `wrapper`: at least
/// 99 % of the probes answer 200 within 1 s, and every round still measures.
fn probes_survive_a_flood(wrapper: &[&str], what: &str) {
    const IDLE: usize = 5000;
    const SLOW: usize = 1000;
    // The flood loads every core, and its probes measure under that load:
    // nothing else runs meanwhile (it would measure this machine more than
    // `serve`), not even the other flood or the drift forecast.
    let _room = support::Room::Alone.enter();
    let have = raise_own_nofile();
    if have < (IDLE + SLOW + 200) as u64 {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI requires a descriptor limit of 6200 for the flood test, have {have}"
        );
        eprintln!(
            "SKIPPED: {}: the hard descriptor limit ({have}) is too low for {} sockets",
            support::current_test(),
            IDLE + SLOW
        );
        return;
    }
    let Some(chrony) = Chrony::start(None) else {
        return;
    };
    let serve = Serve::start_wrapped(
        wrapper,
        &[
            ("SKEWGUARD_SOURCES", &chrony.uri()),
            ("SKEWGUARD_INTERVAL", "1s"),
            ("SKEWGUARD_TIMEOUT", "1s"),
        ],
    );
    serve.wait_for("/readyz", Duration::from_secs(5), |r| r.status == 200);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flooding = flood(serve.addr(), IDLE, SLOW, stop.clone());
    // Let the flood build up before probing.
    thread::sleep(Duration::from_secs(3));
    let rounds_before = rounds(&serve);
    let mut took = Vec::new();
    let mut failed = Vec::new();
    let probing = Instant::now();
    while probing.elapsed() < Duration::from_secs(12) {
        let tick = Instant::now();
        for path in ["/livez", "/readyz"] {
            let (status, t) = probe(serve.addr(), path);
            took.push(t);
            if status != Ok(200) {
                failed.push(format!("{path}: {status:?} after {t:?}"));
            }
        }
        thread::sleep(Duration::from_millis(200).saturating_sub(tick.elapsed()));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let opened = flooding.join().expect("flood thread");
    let rounds_after = rounds(&serve);
    took.sort();
    let n = took.len();
    let ok = n - failed.len();
    let p99 = took[(n * 99).div_ceil(100) - 1];
    eprintln!(
        "flood ({what}): {ok}/{n} probes answered 200 within 1 s ({:.1} %), p50 {:.1?}, p99 {p99:.1?}, max {:.1?}; {opened} flood connections opened; rounds during the flood: {} ok, {} failed",
        100.0 * ok as f64 / n as f64,
        took[n / 2],
        took[n - 1],
        rounds_after.0 - rounds_before.0,
        rounds_after.1 - rounds_before.1,
    );
    assert!(
        ok * 100 >= n * 99,
        "{what}: failed probes: {failed:?}\n{}",
        serve.log()
    );
    assert!(
        rounds_after.0 > rounds_before.0,
        "{what}: no round measured during the flood\n{}",
        serve.log()
    );
    assert_eq!(
        rounds_after.1,
        rounds_before.1,
        "{what}: rounds failed during the flood\n{}",
        serve.log()
    );
    assert!(
        !serve.log().contains("Too many open files"),
        "{}",
        serve.log()
    );
}

/// (ok, error) measurements of the one source so far, from `/metrics`.
fn rounds(serve: &Serve) -> (f64, f64) {
    let m = serve.get("/metrics");
    let get = |result: &str| {
        m.body
            .lines()
            .filter(|l| {
                l.starts_with("skewguard_measurements_total{")
                    && l.contains(&format!("result=\"{result}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    (get("ok"), get("error"))
}

#[test]
fn probes_survive_a_flood_of_idle_and_slowloris_connections() {
    probes_survive_a_flood(&[], "no descriptor limit");
}

#[test]
fn probes_and_rounds_survive_a_flood_under_a_1024_descriptor_limit() {
    if !support::prerequisite("prlimit", "install util-linux") {
        return;
    }
    probes_survive_a_flood(&["prlimit", "--nofile=1024", "--"], "prlimit --nofile=1024");
}

/// The drift forecast against a reference whose clock runs 500 ppm fast
/// (chronyd under libfaketime's speed factor, shifted 2 s so that chronyd
/// stamps its receive time from its own clock too): after ~30 s of 1 s rounds
/// the estimate is within 25 ppm of 500, and the verdict turns warn when the
/// forecast said it would.
#[test]
fn the_drift_forecast_finds_a_500_ppm_reference_and_predicts_the_warn_crossing() {
    let _room = support::Room::Timing.enter();
    const TRUE_PPM: f64 = 500.0;
    const TOLERANCE_PPM: f64 = 25.0;
    let Some(chrony) = Chrony::start(Some("+2 x1.0005")) else {
        return;
    };
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], chrony.port()));
    let o0 = support::sntp_query(addr, Duration::from_secs(1))
        .expect("chronyd answers")
        .offset;
    assert!((1.5..3.0).contains(&o0), "libfaketime shift not seen: {o0}");
    // Warn ~45 s from now at 500 ppm; fail far away.
    let warn = format!("{}ms", ((o0 + 45.0 * TRUE_PPM * 1e-6) * 1000.0).round());
    let serve = Serve::start(&[
        ("SKEWGUARD_SOURCES", &chrony.uri()),
        ("SKEWGUARD_INTERVAL", "1s"),
        ("SKEWGUARD_TIMEOUT", "500ms"),
        ("SKEWGUARD_WARN_SKEW", &warn),
        ("SKEWGUARD_MAX_SKEW", "60s"),
        ("SKEWGUARD_PROFILE", "aws-s3"),
    ]);
    let started = Instant::now();
    // ~30 rounds, then the estimate and the forecast.
    let (ppm, predicted, until) = loop {
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "no forecast after 40 s\n{}",
            serve.log()
        );
        thread::sleep(Duration::from_secs(1));
        if started.elapsed() < Duration::from_secs(30) {
            continue;
        }
        let h = serve.get("/healthz");
        let v = h.json();
        let Some(until) = v["forecast"]["seconds_until_warn"].as_f64() else {
            continue;
        };
        let m = serve.get("/metrics");
        let ppm = m
            .sample("skewguard_frequency_error_ratio")
            .expect("frequency error metric")
            * 1e6;
        let until_metric = m
            .sample("skewguard_seconds_until_breach{threshold=\"warn\"}")
            .expect("until_breach metric");
        assert!(
            (until_metric - until).abs() < 2.0,
            "{until_metric} vs {until}"
        );
        assert!(until > 0.0, "the forecast came after the crossing: {v}");
        break (ppm, Instant::now() + Duration::from_secs_f64(until), until);
    };
    let estimated_at = started.elapsed();
    assert!(
        (ppm - TRUE_PPM).abs() < TOLERANCE_PPM,
        "estimated {ppm} ppm, true {TRUE_PPM}\n{}",
        serve.log()
    );
    // The verdict follows rounds (about one a second, ±10 %): within 2 s of the forecast.
    let (warned, u_warn) = loop {
        let h = serve.get("/healthz");
        if h.verdict() == "warn" {
            let u = h.json()["uncertainty_seconds"].as_f64().unwrap_or(0.0);
            break (Instant::now(), u);
        }
        assert!(
            started.elapsed() < Duration::from_secs(75),
            "still {} after 75 s\n{}",
            h.verdict(),
            serve.log()
        );
        thread::sleep(Duration::from_millis(100));
    };
    let off = warned.saturating_duration_since(predicted).as_secs_f64()
        - predicted.saturating_duration_since(warned).as_secs_f64();
    eprintln!(
        "drift forecast: estimated {ppm:.1} ppm after {estimated_at:.0?} of 1 s rounds (true {TRUE_PPM} ppm, {:+.1} %); warn came {off:+.2}s from the forecast",
        100.0 * (ppm - TRUE_PPM) / TRUE_PPM
    );
    // Rounds come about every second (±10 %, plus the round itself, plus this
    // poll): 3 s; the bound includes the warning round's own uncertainty, which
    // a loaded machine's round trip can widen beyond the forecast's (at
    // 500 ppm, each extra millisecond is 2 s early); and the estimate's own
    // error shifts the predicted crossing by that fraction of the time left
    // (CI saw 504.9 ppm and a warn 3.30 s off with 3.09 s allowed before this
    // term). The forecast's accuracy is a benchmark figure, not this test's.
    let allowed = 3.0 + u_warn / (TRUE_PPM * 1e-6) + until * ((ppm - TRUE_PPM) / TRUE_PPM).abs();
    assert!(
        off.abs() < allowed,
        "warn {off:+.2}s from the forecast (allowed ±{allowed:.2}s)\n{}",
        serve.log()
    );
    assert!(serve.log().contains("drift forecast"), "{}", serve.log());
}
