//! Offset from an HTTP server's `Date` response header.
//!
//! The pure half lives in [`interval`]: what one answer says about the offset,
//! how answers combine, and when to send the next request. This module is the
//! thin I/O around it: resolve, connect (TLS for `https://`, see `tls/`), and
//! send `HEAD` requests on one kept-alive HTTP/1.1 connection at the instants
//! the [`Refiner`] asks for, until the interval is narrow or the budget is spent.
//!
//! Timing: realtime is read once, at the start of the measurement, between two
//! monotonic reads; every send (T1) and receive (T4) instant is the monotonic
//! clock carried forward from that anchor (T1 the earliest, T4 the latest
//! realtime the anchor's bracket allows), so neither a preempted read nor a
//! step of the wall clock mid-query can bend the numbers.
//! T1 is read just before the request is handed to hyper and T4 just after its
//! response head is parsed: both err on the wide side, which keeps the interval
//! true.

pub mod interval;
mod session;

pub use interval::{Answer, Inconsistent, OffsetInterval, Refiner};
pub use session::{ConnectionStats, Kept};

use session::Session;

use std::time::{Duration, UNIX_EPOCH};

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper::header::{
    HeaderMap, HeaderValue, AGE, CACHE_CONTROL, CONNECTION, DATE, HOST, USER_AGENT,
};
use hyper::{Method, Request, Response, Version};

use crate::core::sample::{Outcome, QuerySettings, Sample, SourceError, Trust};

use crate::os::clock::Clock;
use crate::proto::source::HttpTarget;
use crate::proto::tls;

/// Largest response head accepted (status line and headers, bytes). Real `Date`
/// sources send a few hundred bytes; the bound keeps a hostile server from
/// making us buffer without end.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// `User-Agent` of every request, so server operators can tell who is asking.
pub use crate::proto::proxy::USER_AGENT_VALUE;

/// Lead time given to the timer when asking for the next send instant: a
/// request planned for "now" would already be late when the task wakes.
const SEND_LEAD: Duration = Duration::from_millis(2);

/// Measures the offset of `target` from its `Date` header, on a connection
/// of its own (`check`).
///
/// Connection set-up and the first answer are bounded by `settings.timeout`;
/// refinement then spends at most `settings.http_budget` and at most
/// [`interval::MAX_ANSWERS`] requests. A refinement request that fails in
/// transport ends refinement and keeps what was measured; one whose answer is
/// unacceptable (no `Date`, an `Age` header, inconsistent dates) voids the
/// measurement.
pub async fn query(target: &HttpTarget, settings: &QuerySettings, clock: &dyn Clock) -> Outcome {
    query_with(target, settings, clock, &mut Kept::default()).await
}

/// [`query`], on the connection (and TLS session) `kept` from the source's
/// earlier measurements where the server kept it, and keeping it for the
/// next one (`serve`).
pub async fn query_with(
    target: &HttpTarget,
    settings: &QuerySettings,
    clock: &dyn Clock,
    kept: &mut Kept,
) -> Outcome {
    let result = measure(target, settings, clock, kept).await;
    if let Err(e) = &result {
        tracing::debug!(host = %target.host, port = target.port, error = %e, "HTTP Date source failed");
    }
    Outcome::from_result(result)
}

async fn measure(
    target: &HttpTarget,
    settings: &QuerySettings,
    clock: &dyn Clock,
    kept: &mut Kept,
) -> Result<Sample, SourceError> {
    // The one realtime read of this measurement; also the time certificates are checked at.
    let anchor = clock.stamp();
    let Kept {
        client,
        link,
        stats,
    } = kept;
    let tls = match target.tls {
        true => Some(tls::Client::renew(client, settings, anchor.real)?),
        false => None,
    };
    let mut session = Session {
        target,
        clock,
        anchor,
        tls,
        addrs: Vec::new(),
        link: link.take(),
        stats,
        waiting_on: Default::default(),
    };

    let timeout = |_| SourceError::Timeout(settings.timeout);
    // A kept connection first: one the server closed (or that hangs) gives
    // way to a new one at once, within a bound of its own.
    let kept_answer = if session.has_kept() {
        match session.ask_kept(settings.timeout / 2).await {
            Ok(answer) => Some(Ok(answer)),
            Err(Some(e)) => Some(Err(e)),
            Err(None) => None,
        }
    } else {
        None
    };
    let first = match kept_answer {
        Some(first) => first,
        // Through a proxy, the set-up (and a CONNECT that is never answered) is
        // bounded like the rest, and the error names the proxy.
        None => tokio::time::timeout(settings.timeout, session.start())
            .await
            .map_err(|_| session.timed_out(settings.timeout))
            .and_then(|r| r),
    };
    let exemption = tls.and_then(tls::Client::take_exemption);
    let first = match (first, &exemption) {
        (Ok(first), None) => first,
        (Err(e), None) => return Err(e),
        // Handshake done on the date-exempted basis, but no server time:
        // nothing vouches for the time (a server whose certificate lapsed and
        // which then fails says nothing about this clock), so no vote. The gap
        // stays as evidence for the hint, as for a refused handshake.
        (Err(e), Some(x)) => {
            tracing::debug!(host = %target.host, error = %e, "no Date after a date-exempted handshake: not counted");
            return Err(SourceError::OutsideCertificate {
                at_least: x.at_least,
                local_behind: x.local_behind,
            });
        }
        (Ok(first), Some(x)) => {
            if !x.valid_at(first.date) {
                return Err(SourceError::Tls(format!(
                    "the server's certificate is {} by the server's own clock too (its Date is {}): the server serves a bad certificate; this says nothing about the local clock",
                    if x.local_behind { "not yet valid" } else { "expired" },
                    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(first.date.max(0) as u64)),
                )));
            }
            first
        }
    };
    let verified_by = tls.and_then(tls::Client::verified_by);
    let mut refiner = Refiner::new(first);
    let deadline = first.received + settings.http_budget.as_nanos() as i128;

    // Refine only while more answers could still change the verdict: a
    // good clock's first answer usually decides it (one request in all).
    let decided = |r: &Refiner| {
        settings
            .decide
            .as_ref()
            .is_some_and(|t| r.honest().is_ok_and(|h| interval::decided(h, t)))
    };
    while let Some(at) = refiner.next_send(session.now() + SEND_LEAD.as_nanos() as i128) {
        if !refiner.fits(at, deadline) || decided(&refiner) {
            break;
        }
        // Set-up and the request are bounded; the wait for the instant is not
        // (it is at most a second, and the budget already covers it).
        let step = async {
            // Reconnect (if the server closed) before waiting, so the set-up
            // time does not push the request past its instant.
            tokio::time::timeout(settings.timeout, session.prepare())
                .await
                .map_err(timeout)??;
            session.sleep_until(at).await;
            tokio::time::timeout(settings.timeout, session.ask())
                .await
                .map_err(timeout)?
        };
        match step.await {
            Ok(answer) => refiner
                .add(answer)
                .map_err(|e| SourceError::Http(e.to_string()))?,
            // The server answered, but not with something we can trust.
            Err(e @ SourceError::Http(_)) => return Err(e),
            // Transport trouble: keep what was measured so far.
            Err(e) => {
                tracing::debug!(host = %target.host, error = %e, "refinement stopped early");
                break;
            }
        }
    }
    let mut sample = refiner
        .sample()
        .map_err(|e| SourceError::Http(e.to_string()))?;
    if target.tls {
        sample.trust = Trust::Authenticated;
    }
    sample.verified_by = verified_by;
    if let Some(x) = exemption {
        sample = sample.with_certificate_gap(x.at_least, x.local_behind);
    }
    tracing::debug!(
        host = %target.host,
        offset = sample.offset,
        uncertainty = sample.uncertainty,
        estimate = refiner.interval().midpoint_secs(),
        estimate_uncertainty = refiner.interval().half_width_secs(),
        rtt = sample.rtt,
        answers = refiner.answers(),
        connections = session.stats.connections,
        full_handshakes = session.stats.full_handshakes,
        resumed_handshakes = session.stats.resumed_handshakes,
        reused = session.stats.reused,
        stale = session.stats.stale,
        "HTTP Date measurement"
    );
    // Kept for the next measurement if the server keeps it open.
    *link = session.link.take().filter(session::Link::alive);
    Ok(sample)
}

/// The `HEAD` request for `target`: no body to read, and `no-cache` asks any
/// cache on the way to pass it to the origin, whose clock we want.
fn build_request(target: &HttpTarget) -> Result<Request<Empty<Bytes>>, SourceError> {
    Request::builder()
        .method(Method::HEAD)
        .uri(target.path.as_str())
        .header(HOST, host_header(target))
        .header(USER_AGENT, USER_AGENT_VALUE)
        .header(CACHE_CONTROL, "no-cache")
        .body(Empty::new())
        .map_err(|e| {
            SourceError::Http(format!("cannot build a request for `{}`: {e}", target.path))
        })
}

fn host_header(target: &HttpTarget) -> String {
    let host = if target.host.contains(':') {
        format!("[{}]", target.host)
    } else {
        target.host.clone()
    };
    let default_port = if target.tls { 443 } else { 80 };
    if target.port == default_port {
        host
    } else {
        format!("{host}:{}", target.port)
    }
}

/// Whether the server will take another request on this connection.
fn keeps_alive<B>(response: &Response<B>) -> bool {
    let token = |t: &str| {
        response
            .headers()
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|v| v.trim().eq_ignore_ascii_case(t))
    };
    match response.version() {
        Version::HTTP_10 => token("keep-alive"),
        _ => !token("close"),
    }
}

/// Reads the `Date` of a response head as whole seconds since the Unix epoch.
///
/// Refuses heads that cannot stand for the server's clock at the time of the
/// request: an `Age` header (served from a cache), no `Date`, several different
/// `Date`s, or one that is not an HTTP date. Far dates (1970, 2200) are fine:
/// they are measurements, judged later.
pub fn read_date(headers: &HeaderMap) -> Result<i64, SourceError> {
    // `Age: 0` is a cache miss (Varnish, Fastly): the origin's Date is fresh.
    // Every `Age` counts, not only the first: `Age: 0` then `Age: 412` still
    // says some hop served it from a cache 412 s old, and a guard must not
    // pick the more flattering of two.
    let fresh = |a: &HeaderValue| a.to_str().is_ok_and(|t| t.trim().parse() == Ok(0u64));
    if let Some(age) = headers.get_all(AGE).iter().find(|a| !fresh(a)) {
        return Err(SourceError::Http(format!(
            "response has an Age header ({}): it came from a cache, so its Date is not the server's current time",
            shown(age)
        )));
    }
    let mut dates = headers.get_all(DATE).iter();
    let Some(date) = dates.next() else {
        return Err(SourceError::Http("response has no Date header".into()));
    };
    if dates.any(|other| other != date) {
        return Err(SourceError::Http(
            "response has several different Date headers".into(),
        ));
    }
    let bad = || {
        SourceError::Http(format!(
            "response has an invalid Date header ({})",
            shown(date)
        ))
    };
    let text = date.to_str().map_err(|_| bad())?;
    let time = httpdate::parse_http_date(text.trim()).map_err(|_| bad())?;
    // httpdate yields no time before 1970, so the subtraction cannot fail.
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map_err(|_| bad())?
        .as_secs();
    i64::try_from(secs).map_err(|_| bad())
}

/// A header value fit for an error message: quoted, escaped, cut short.
fn shown(value: &HeaderValue) -> String {
    const MAX: usize = 64;
    let text = String::from_utf8_lossy(value.as_bytes());
    let mut out: String = text
        .chars()
        .take(MAX)
        .collect::<String>()
        .escape_debug()
        .to_string();
    if text.chars().count() > MAX {
        out.push('…');
    }
    format!("\"{out}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static [u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    #[test]
    fn reads_dates_and_refuses_untrustworthy_heads() {
        let ok = headers(&[("date", b"Sun, 06 Nov 1994 08:49:37 GMT")]);
        assert_eq!(read_date(&ok), Ok(784_111_777));
        let epoch = headers(&[("date", b"Thu, 01 Jan 1970 00:00:00 GMT")]);
        assert_eq!(read_date(&epoch), Ok(0));
        let future = headers(&[("date", b"Wed, 01 Jan 2200 00:00:00 GMT")]);
        assert_eq!(read_date(&future), Ok(7_258_118_400));
        let twice = headers(&[
            ("date", b"Sun, 06 Nov 1994 08:49:37 GMT"),
            ("date", b"Sun, 06 Nov 1994 08:49:37 GMT"),
        ]);
        assert_eq!(read_date(&twice), Ok(784_111_777));
        let fresh = headers(&[("date", b"Sun, 06 Nov 1994 08:49:37 GMT"), ("age", b"0")]);
        assert_eq!(read_date(&fresh), Ok(784_111_777), "Age: 0 is a cache miss");

        type Pairs<'a> = &'a [(&'a str, &'a [u8])];
        let cases: &[(Pairs, &str)] = &[
            (&[], "no Date"),
            (
                &[("date", b"yesterday")],
                "invalid Date header (\"yesterday\")",
            ),
            (&[("date", b"\xff\xfe")], "invalid Date"),
            (
                &[("date", b"Sun, 06 Nov 1994 08:49:37 GMT"), ("age", b"12")],
                "Age header (\"12\")",
            ),
            (
                &[("date", b"Sun, 06 Nov 1994 08:49:37 GMT"), ("age", b"-0")],
                "Age header (\"-0\")",
            ),
            // Found by fuzzing: only the first Age was looked at.
            (
                &[
                    ("date", b"Sun, 06 Nov 1994 08:49:37 GMT"),
                    ("age", b"0"),
                    ("age", b"412"),
                ],
                "Age header (\"412\")",
            ),
            (
                &[
                    ("date", b"Sun, 06 Nov 1994 08:49:37 GMT"),
                    ("date", b"Sun, 06 Nov 1994 08:49:38 GMT"),
                ],
                "several different Date",
            ),
        ];
        for (pairs, want) in cases {
            let err = read_date(&headers(pairs)).unwrap_err().to_string();
            assert!(err.contains(want), "{pairs:?}: {err}");
        }
    }

    #[test]
    fn the_query_future_is_send() {
        fn assert_send<T: Send>(_: &T) {}
        let target = HttpTarget {
            tls: true,
            host: "localhost".into(),
            port: 443,
            path: "/".into(),
            proxy: None,
        };
        let settings = QuerySettings::default();
        let clock = crate::os::clock::SystemClock;
        assert_send(&query(&target, &settings, &clock));
    }

    #[test]
    fn long_header_values_are_cut_in_messages() {
        let v = HeaderValue::from_bytes(&[b'x'; 500]).unwrap();
        assert!(shown(&v).chars().count() < 80);
    }

    #[test]
    fn host_header_brackets_ipv6_and_drops_default_ports() {
        let t = |tls, host: &str, port| HttpTarget {
            tls,
            host: host.into(),
            port,
            path: "/".into(),
            proxy: None,
        };
        assert_eq!(
            host_header(&t(true, "sts.amazonaws.com", 443)),
            "sts.amazonaws.com"
        );
        assert_eq!(host_header(&t(false, "127.0.0.1", 8080)), "127.0.0.1:8080");
        assert_eq!(host_header(&t(false, "::1", 80)), "[::1]");
        assert_eq!(host_header(&t(true, "::1", 80)), "[::1]:80");
    }

    #[test]
    fn connection_reuse_follows_the_version_and_header() {
        let r = |v, c: Option<&'static str>| {
            let mut b = Response::builder().version(v);
            if let Some(c) = c {
                b = b.header(CONNECTION, c);
            }
            b.body(()).unwrap()
        };
        assert!(keeps_alive(&r(Version::HTTP_11, None)));
        assert!(!keeps_alive(&r(Version::HTTP_11, Some("Close"))));
        assert!(!keeps_alive(&r(Version::HTTP_10, None)));
        assert!(keeps_alive(&r(Version::HTTP_10, Some("keep-alive"))));
    }
}
