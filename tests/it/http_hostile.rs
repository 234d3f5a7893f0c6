//! The HTTP `Date` source against hostile and odd servers on loopback.
//!
//! Each fake is a plain std-thread server on 127.0.0.1:0 that answers every
//! request with bytes chosen per case, so the tests need no external peer and
//! do not depend on the runtime the code under test uses. Two layers:
//! `query()` directly (the source's own contract), and the built binary as a
//! user runs it (`skewguard check --output json`).

use crate::support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use skewguard::core::sample::{QuerySettings, Sample, SourceError};

use skewguard::os::clock::SystemClock;
use skewguard::proto::source::{HttpTarget, Source};

/// What a fake sends for the n-th request on a connection (n from 0);
/// `None` keeps the connection open and silent.
type Respond = dyn Fn(usize) -> Option<Vec<u8>> + Send + Sync;

struct Fake {
    addr: SocketAddr,
    /// Requests received, over all connections.
    hits: Arc<AtomicUsize>,
}

impl Fake {
    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

fn serve(respond: impl Fn(usize) -> Option<Vec<u8>> + Send + Sync + 'static) -> Fake {
    serve_with(respond, handle)
}

/// Listens on 127.0.0.1:0 and hands each connection, on its own thread, to `conn`.
fn serve_with(
    respond: impl Fn(usize) -> Option<Vec<u8>> + Send + Sync + 'static,
    conn: impl Fn(TcpStream, &Respond, &AtomicUsize) + Send + Sync + 'static,
) -> Fake {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let shared = Arc::new((respond, conn, hits.clone()));
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let shared = shared.clone();
            std::thread::spawn(move || {
                let (respond, conn, hits) = &*shared;
                conn(tcp, respond, hits)
            });
        }
    });
    Fake { addr, hits }
}

/// Serves requests on one connection until the peer goes or a reply closes it.
fn handle<S: Read + Write>(mut s: S, respond: &Respond, hits: &AtomicUsize) {
    for n in 0.. {
        if !support::read_request_head(&mut s) {
            return;
        }
        hits.fetch_add(1, Ordering::SeqCst);
        let Some(reply) = respond(n) else {
            // Hold the connection, answer nothing.
            std::thread::sleep(Duration::from_secs(30));
            return;
        };
        if s.write_all(&reply).and_then(|_| s.flush()).is_err() {
            return;
        }
        if contains(&reply, b"Connection: close") {
            return;
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn http_date(shift: Duration, ahead: bool) -> String {
    let now = SystemTime::now();
    let t = if ahead { now + shift } else { now - shift };
    httpdate::fmt_http_date(t)
}

fn reply(status: &str, headers: &str) -> Vec<u8> {
    format!("HTTP/1.1 {status}\r\n{headers}Content-Length: 0\r\n\r\n").into_bytes()
}

/// A server whose clock is `shift` ahead (or behind) of ours.
fn shifted(shift: Duration, ahead: bool) -> Fake {
    serve(move |_| {
        Some(reply(
            "204 No Content",
            &format!("Date: {}\r\n", http_date(shift, ahead)),
        ))
    })
}

/// A server whose clock started at `epoch_secs` (seconds since 1970) when the
/// fake did, and runs from there: a host without a real-time clock, or one set
/// far ahead.
fn far_clock(epoch_secs: u64) -> Fake {
    let start = Instant::now();
    serve(move |_| {
        let t = UNIX_EPOCH + Duration::from_secs(epoch_secs) + start.elapsed();
        Some(reply(
            "200 OK",
            &format!("Date: {}\r\n", httpdate::fmt_http_date(t)),
        ))
    })
}

fn target(url: &str) -> HttpTarget {
    match Source::parse(url) {
        Ok(Source::Http(t)) => t,
        other => panic!("{url}: {other:?}"),
    }
}

fn settings(ca_file: Option<PathBuf>) -> QuerySettings {
    QuerySettings {
        timeout: Duration::from_secs(1),
        http_budget: Duration::from_secs(1),
        ca_file,
        ..QuerySettings::default()
    }
}

/// Runs `query()` and returns its result and how long it took.
async fn query(url: &str, ca_file: Option<PathBuf>) -> (Result<Sample, SourceError>, Duration) {
    query_with(url, &settings(ca_file)).await
}

async fn query_with(
    url: &str,
    settings: &QuerySettings,
) -> (Result<Sample, SourceError>, Duration) {
    let start = Instant::now();
    let out = skewguard::proto::http_date::query(&target(url), settings, &SystemClock).await;
    (out.result, start.elapsed())
}

async fn query_err(url: &str) -> String {
    let (result, took) = query(url, None).await;
    assert!(took < Duration::from_secs(4), "{url} took {took:?}");
    match result {
        Err(e) => e.to_string(),
        Ok(s) => panic!("{url}: expected an error, got {s:?}"),
    }
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

// ---- fakes shared by both layers ----

fn no_date() -> Fake {
    serve(|_| Some(reply("200 OK", "Server: fake\r\n")))
}

fn garbage_date() -> Fake {
    serve(|_| Some(reply("200 OK", "Date: the day after tomorrow\r\n")))
}

fn cached() -> Fake {
    serve(|_| {
        Some(reply(
            "200 OK",
            &format!("Date: {}\r\nAge: 42\r\n", http_date(Duration::ZERO, true)),
        ))
    })
}

fn oversized() -> Fake {
    let filler = "a".repeat(64 * 1024);
    serve(move |_| {
        Some(reply(
            "200 OK",
            &format!(
                "Date: {}\r\nX-Filler: {filler}\r\n",
                http_date(Duration::ZERO, true)
            ),
        ))
    })
}

fn silent() -> Fake {
    serve(|_| None)
}

fn refused_url() -> String {
    // Bind, learn the port, close: nothing listens there any more.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}/")
}

/// A 301 with a valid Date; its Location points at a second fake that counts visits.
fn redirect() -> (Fake, Fake) {
    let target = shifted(Duration::from_secs(3600), true);
    let location = target.url();
    let source = serve(move |_| {
        Some(reply(
            "301 Moved Permanently",
            &format!(
                "Location: {location}\r\nDate: {}\r\n",
                http_date(Duration::ZERO, true)
            ),
        ))
    });
    (source, target)
}

/// Whether the sample's honest interval holds `truth` (seconds).
fn holds(s: &Sample, truth: f64) -> bool {
    (s.offset - truth).abs() <= s.uncertainty
}

/// The bisection's estimate of an HTTP sample.
fn estimate(s: &Sample) -> skewguard::core::sample::Estimate {
    s.estimate
        .unwrap_or_else(|| panic!("an HTTP sample has an estimate: {s:?}"))
}

/// 2200-01-01T00:00:00Z.
const SECS_2200: u64 = 7_258_118_400;

// ---- query() ----

#[tokio::test]
async fn measures_a_shifted_server_within_ten_milliseconds() {
    let _room = support::Room::Timing.enter();
    // The default two-second budget: the accuracy target is set for it.
    let settings = QuerySettings {
        timeout: Duration::from_secs(1),
        ..QuerySettings::default()
    };
    for (shift, ahead, want) in [(3_250, true, 3.25), (600_250, false, -600.25)] {
        let fake = shifted(Duration::from_millis(shift), ahead);
        let (result, took) = query_with(&fake.url(), &settings).await;
        let s = result.unwrap();
        // The interval must hold the truth; the bisection's estimate (true
        // for this live, truncating fake) should be close to it.
        assert!(holds(&s, want), "{s:?}");
        let e = estimate(&s);
        assert!((e.offset - want).abs() <= e.uncertainty, "{s:?}");
        assert!((e.offset - want).abs() < 0.010, "{s:?}");
        assert!(took < Duration::from_millis(2_500), "{took:?}");
        let hits = fake.hits.load(Ordering::SeqCst);
        assert!((2..=25).contains(&hits), "{hits} requests");
    }
}

#[tokio::test]
async fn reconnects_to_a_server_that_closes_after_each_answer() {
    let _room = support::Room::Timing.enter();
    let fake = serve(|_| {
        Some(reply(
            "204 No Content",
            &format!(
                "Date: {}\r\nConnection: close\r\n",
                http_date(Duration::ZERO, true)
            ),
        ))
    });
    let s = query(&fake.url(), None).await.0.unwrap();
    let e = estimate(&s);
    assert!(e.offset.abs() < 0.1 && e.uncertainty < 0.1, "{s:?}");
    assert!(holds(&s, 0.0), "{s:?}");
    assert!(fake.hits.load(Ordering::SeqCst) >= 2);
}

#[tokio::test]
async fn keeps_the_first_answer_when_the_server_stalls_later() {
    let _room = support::Room::Timing.enter();
    // One good answer, then silence: refinement ends at the timeout, the
    // coarse measurement stands.
    let fake = serve(|n| {
        (n == 0).then(|| {
            reply(
                "204 No Content",
                &format!("Date: {}\r\n", http_date(Duration::from_secs(90), true)),
            )
        })
    });
    let (result, took) = query(&fake.url(), None).await;
    let s = result.unwrap();
    assert!(holds(&s, 90.0) && s.uncertainty <= 1.4, "{s:?}");
    assert!(estimate(&s).uncertainty <= 0.6, "{s:?}");
    assert!(took < Duration::from_millis(2_600), "{took:?}");
}

#[tokio::test]
async fn refuses_heads_without_a_usable_date() {
    let _room = support::Room::Timing.enter();
    let e = query_err(&no_date().url()).await;
    assert!(e.contains("no Date header"), "{e}");
    let e = query_err(&garbage_date().url()).await;
    assert!(
        e.contains("invalid Date header (\"the day after tomorrow\")"),
        "{e}"
    );
}

#[tokio::test]
async fn refuses_cached_answers() {
    let _room = support::Room::Timing.enter();
    let e = query_err(&cached().url()).await;
    assert!(e.contains("Age header") && e.contains("cache"), "{e}");
}

#[tokio::test]
async fn refuses_an_oversized_header_block() {
    let _room = support::Room::Timing.enter();
    let e = query_err(&oversized().url()).await;
    assert!(e.contains("response head too large"), "{e}");
}

#[tokio::test]
async fn gives_up_on_a_silent_server_within_the_timeout() {
    let _room = support::Room::Timing.enter();
    let start = Instant::now();
    let e = query_err(&silent().url()).await;
    assert!(e.contains("no valid answer within"), "{e}");
    assert!(start.elapsed() < Duration::from_millis(1_500));
}

#[tokio::test]
async fn names_a_refused_connection() {
    let _room = support::Room::Timing.enter();
    let e = query_err(&refused_url()).await;
    assert!(
        e.contains("cannot connect to 127.0.0.1:") && e.contains("refused"),
        "{e}"
    );
}

#[tokio::test]
async fn refuses_a_server_whose_dates_contradict_each_other() {
    let _room = support::Room::Timing.enter();
    // Every other answer is five seconds ahead: no single offset fits both.
    let fake = serve(|n| {
        let shift = Duration::from_secs(if n % 2 == 1 { 5 } else { 0 });
        Some(reply(
            "204 No Content",
            &format!("Date: {}\r\n", http_date(shift, true)),
        ))
    });
    let e = query_err(&fake.url()).await;
    assert!(e.contains("inconsistent Date headers"), "{e}");
}

#[tokio::test]
async fn far_dates_are_measurements() {
    let _room = support::Room::Timing.enter();
    let (old, took) = query(&far_clock(0).url(), None).await;
    let old = old.unwrap();
    assert!((old.offset + now_secs()).abs() < 5.0, "{old:?}");
    assert!(took < Duration::from_secs(3));
    let future = query(&far_clock(SECS_2200).url(), None).await.0.unwrap();
    assert!(
        (future.offset - (SECS_2200 as f64 - now_secs())).abs() < 5.0,
        "{future:?}"
    );
}

#[tokio::test]
async fn a_redirect_counts_and_is_not_followed() {
    let _room = support::Room::Timing.enter();
    let (source, target) = redirect();
    let s = query(&source.url(), None).await.0.unwrap();
    assert!(
        s.offset.abs() < 1.5,
        "the redirect's own Date is used: {s:?}"
    );
    assert_eq!(
        target.hits.load(Ordering::SeqCst),
        0,
        "Location was followed"
    );
}

// ---- TLS ----

struct Tls {
    fake: Fake,
    /// PEM of the server certificate, to be trusted as a root.
    ca_pem: String,
    not_after: f64,
}

/// An HTTPS fake whose self-signed certificate (for 127.0.0.1) is valid from
/// `not_before` to `not_after` (year, month, day).
fn tls_server(not_before: (i32, u8, u8), not_after: (i32, u8, u8)) -> Tls {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    params.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, not_before.2);
    params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
    let not_after = params.not_after.unix_timestamp() as f64;
    let cert = params.self_signed(&key).unwrap();
    let chain = vec![cert.der().clone()];
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let config = Arc::new(config);
    let fake = serve_with(
        |_| {
            Some(reply(
                "204 No Content",
                &format!("Date: {}\r\n", http_date(Duration::ZERO, true)),
            ))
        },
        move |tcp, respond, hits| {
            // A failed handshake (the client refused the certificate) ends here.
            if let Ok(conn) = rustls::ServerConnection::new(config.clone()) {
                handle(rustls::StreamOwned::new(conn, tcp), respond, hits);
            }
        },
    );
    Tls {
        fake,
        ca_pem: cert.pem(),
        not_after,
    }
}

/// A PEM file of trusted roots, removed when dropped.
struct CaFile(PathBuf);

impl Drop for CaFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn write_ca(pem: &str, name: &str) -> CaFile {
    let path = std::env::temp_dir().join(format!("skewguard-{name}-{}.pem", std::process::id()));
    std::fs::write(&path, pem).unwrap();
    CaFile(path)
}

#[tokio::test]
async fn an_expired_certificate_on_a_right_server_clock_blames_the_server() {
    let _room = support::Room::Timing.enter();
    // The server's own Date is outside the validity too: no skew evidence
    // (trust-aware cases with shifted server clocks are in tests/it/trust.rs).
    let tls = tls_server((2000, 1, 1), (2001, 1, 1));
    let ca = write_ca(&tls.ca_pem, "expired");
    let url = format!("https://{}/", tls.fake.addr);
    let (result, took) = query(&url, Some(ca.0.clone())).await;
    assert!(took < Duration::from_secs(2));
    assert!(tls.not_after < now_secs());
    match result {
        Err(SourceError::Tls(m)) => {
            assert!(m.contains("expired by the server's own clock too"), "{m}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_not_yet_valid_certificate_on_a_right_server_clock_blames_the_server() {
    let _room = support::Room::Timing.enter();
    let tls = tls_server((2190, 1, 1), (2200, 1, 1));
    let ca = write_ca(&tls.ca_pem, "future");
    let url = format!("https://{}/", tls.fake.addr);
    let e = query(&url, Some(ca.0.clone())).await.0.unwrap_err();
    assert!(
        e.to_string()
            .contains("not yet valid by the server's own clock too"),
        "{e}"
    );
}

#[tokio::test]
async fn an_untrusted_expired_certificate_is_not_evidence() {
    let _room = support::Room::Timing.enter();
    let tls = tls_server((2000, 1, 1), (2001, 1, 1));
    let url = format!("https://{}/", tls.fake.addr);
    let e = query(&url, None).await.0.unwrap_err();
    match e {
        SourceError::Verification(m) => assert!(m.contains("UnknownIssuer"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn measures_over_https() {
    let _room = support::Room::Timing.enter();
    let tls = tls_server((2000, 1, 1), (4000, 1, 1));
    let ca = write_ca(&tls.ca_pem, "valid");
    let url = format!("https://{}/", tls.fake.addr);
    let s = query(&url, Some(ca.0.clone())).await.0.unwrap();
    let e = estimate(&s);
    assert!(e.offset.abs() < 0.1 && e.uncertainty < 0.1, "{s:?}");
    assert!(holds(&s, 0.0), "{s:?}");
}

// ---- the binary: `skewguard check --output json` ----

struct Check {
    code: Option<i32>,
    json: serde_json::Value,
    took: Duration,
}

fn check(url: &str, ca_file: Option<&PathBuf>) -> Check {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_skewguard"));
    cmd.args(["check", "--output", "json"])
        .env("SKEWGUARD_SOURCES", url)
        .env("SKEWGUARD_TIMEOUT", "1s")
        .env("SKEWGUARD_HTTP_BUDGET", "1s");
    if let Some(ca) = ca_file {
        cmd.env("SKEWGUARD_CA_FILE", ca);
    }
    let start = Instant::now();
    let out = cmd.output().unwrap();
    let took = start.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "{url}: stdout is not JSON ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    Check {
        code: out.status.code(),
        json,
        took,
    }
}

/// A hostile source: verdict unknown, exit 1, the source's error names `reason`.
fn assert_unknown(url: &str, ca_file: Option<&PathBuf>, reason: &str) {
    let c = check(url, ca_file);
    assert_eq!(c.json["verdict"], "unknown", "{url}: {}", c.json);
    assert_eq!(c.code, Some(1), "{url}: {}", c.json);
    let source = &c.json["sources"][0];
    assert_eq!(source["status"], "error", "{url}: {}", c.json);
    let error = source["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(reason),
        "{url}: error {error:?} lacks {reason:?}"
    );
    assert!(c.took < Duration::from_secs(5), "{url}: took {:?}", c.took);
}

#[test]
fn check_reports_hostile_servers_as_unknown() {
    let _room = support::Room::Timing.enter();
    assert_unknown(&no_date().url(), None, "no Date header");
    assert_unknown(&garbage_date().url(), None, "invalid Date header");
    assert_unknown(&cached().url(), None, "Age header");
    assert_unknown(&oversized().url(), None, "response head too large");
    assert_unknown(&silent().url(), None, "no valid answer within");
    assert_unknown(&refused_url(), None, "refused");
}

#[test]
fn check_fails_on_far_dates() {
    let _room = support::Room::Timing.enter();
    for (date, offset) in [(0, -now_secs()), (SECS_2200, SECS_2200 as f64 - now_secs())] {
        let fake = far_clock(date);
        let c = check(&fake.url(), None);
        assert_eq!(c.json["verdict"], "fail", "{date}: {}", c.json);
        assert_eq!(c.code, Some(1));
        let got = c.json["offset_seconds"].as_f64().unwrap_or(f64::NAN);
        assert!((got - offset).abs() < 5.0, "{date}: {}", c.json);
        assert!(c.took < Duration::from_secs(5));
    }
}

#[test]
fn check_takes_a_redirects_date_without_following_it() {
    let _room = support::Room::Timing.enter();
    let (source, target) = redirect();
    let c = check(&source.url(), None);
    assert_eq!(c.json["verdict"], "ok", "{}", c.json);
    assert_eq!(c.code, Some(0));
    assert_eq!(target.hits.load(Ordering::SeqCst), 0);
}

#[test]
fn check_names_an_expired_certificate() {
    let _room = support::Room::Timing.enter();
    let tls = tls_server((2000, 1, 1), (2001, 1, 1));
    let ca = write_ca(&tls.ca_pem, "check-expired");
    let url = format!("https://{}/", tls.fake.addr);
    assert_unknown(&url, Some(&ca.0), "by the server's own clock too");
}
