//! `skewguard serve` as a sidecar: the built binary on a loopback port, probed
//! over plain TCP as kubelet, Docker or Prometheus would.
//!
//! Tests that need a real NTP server use chronyd shifted by libfaketime (see
//! `support`) and skip with a printed reason where it is missing (fail under
//! `CI=true`); the others need nothing but the binary. Every test is bounded
//! well under 30 s and talks only to 127.0.0.1.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use support::{Chrony, Port, Serve};

/// How closely `/metrics` must carry the shift of a loopback chronyd.
const NTP_TOLERANCE: f64 = 0.005;

impl Serve {
    /// `GET path`.
    fn get(&self, path: &str) -> Reply {
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
    fn wait_for(&self, path: &str, bound: Duration, want: impl Fn(&Reply) -> bool) -> Reply {
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
struct Reply {
    status: u16,
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

    fn json(&self) -> serde_json::Value {
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
        "skewguard_measurements{{source=\"{uri}\",result=\"ok\"}}"
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
    // A source that never answers: the first round takes the whole timeout.
    let silent = Port::free();
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
    assert_eq!(serve.get("/readyz").status, 503);
    assert_eq!(serve.get("/livez").status, 200, "alive while measuring");
}

#[test]
fn routes_methods_and_content_types() {
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

#[test]
fn a_stale_measurement_is_served_as_unknown() {
    let serve = Serve::start(&[
        ("SKEWGUARD_DISABLED", "true"),
        ("SKEWGUARD_INTERVAL", "20s"),
        ("SKEWGUARD_STALE_AFTER", "1s"),
    ]);
    let r = serve.wait_for("/healthz", Duration::from_secs(4), |r| r.status == 503);
    let v = r.json();
    assert_eq!(v["verdict"], "unknown", "{r:?}");
    assert!(
        v["headline"]
            .as_str()
            .is_some_and(|h| h.contains("stale") && h.contains("SKEWGUARD_STALE_AFTER=1.000s")),
        "{r:?}"
    );
    assert!(v["age_seconds"].as_f64().is_some_and(|a| a > 1.0), "{r:?}");
    let m = serve.get("/metrics");
    assert_eq!(
        m.sample("skewguard_verdict{state=\"unknown\"}"),
        Some(1.0),
        "{}",
        m.body
    );
}

#[test]
fn slow_and_idle_clients_do_not_delay_healthz() {
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
