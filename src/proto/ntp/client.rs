//! Queries one NTP server over UDP.
//!
//! Thin I/O around [`crate::proto::ntp::packet`] and the shared timed UDP
//! exchange ([`crate::proto::udp`]: a connected socket, T1 just before the
//! send, T4 the kernel's receive stamp where it fits): resolve, send a request
//! carrying a random nonce, and wait for the genuine reply. Anything that
//! arrives from the server's address and is not an answer (stale or spoofed
//! replies, junk) is logged and ignored; a genuine answer that cannot be used
//! (unsynchronised, inconsistent timestamps, a kiss) ends the exchange at once
//! instead of waiting out the timeout.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, warn};

use crate::core::sample::{Outcome, QuerySettings, Sample, SourceError};
use crate::os::clock::Clock;
use crate::proto::ntp::packet::{self, KissAction, KissCode, NtpTimestamp, Packet, Rejection};
use crate::proto::udp::Exchange;

/// Receive buffer: the 48-byte header plus room for extension fields; a longer
/// datagram is truncated, which is harmless since only the header is read.
const RECV_BUF: usize = 1024;

/// Queries `host:port` and returns the best sample or the reason there is none.
///
/// Makes `settings.samples` exchanges (at least one), `settings.sample_interval`
/// apart, rotating through the resolved addresses, and keeps the sample with the
/// least delay. Each exchange waits at most `settings.timeout`. A DENY or RSTR
/// kiss ends the query with [`SourceError::Refused`] (the caller stops querying
/// the server), a RATE kiss with a back-off in `retry_after`; any other kiss
/// (e.g. `INIT`) only voids its own sample.
pub async fn query(host: &str, port: u16, settings: &QuerySettings, clock: &dyn Clock) -> Outcome {
    let addrs = match resolve(host, port, settings.timeout).await {
        Ok(a) => a,
        Err(e) => return Outcome::from_result(Err(e)),
    };
    let samples = settings.samples.max(1);
    let max_error = settings.max_source_error.as_secs_f64();
    let mut best: Option<Sample> = None;
    let mut last_err = None;
    for i in 0..samples {
        if i > 0 {
            tokio::time::sleep(settings.sample_interval).await;
        }
        let addr = addrs[i as usize % addrs.len()];
        match exchange(addr, settings.timeout, max_error, clock).await {
            Ok(s) => {
                debug!(%addr, offset = s.offset, uncertainty = s.uncertainty, rtt = s.rtt, "ntp sample");
                if best.is_none_or(|b| s.rtt < b.rtt) {
                    best = Some(s);
                }
            }
            Err(Failure::Kiss { code, poll }) => match code.action() {
                KissAction::Stop => {
                    warn!(%addr, %code, "ntp server refused service (Kiss-o'-Death); not querying it again");
                    return Outcome::from_result(Err(SourceError::Refused(format!(
                        "Kiss-o'-Death {code}: the server refuses to serve this client; \
                         it is not queried again by this process"
                    ))));
                }
                KissAction::SlowDown => {
                    let pause = packet::rate_backoff(poll);
                    warn!(%addr, %code, ?pause, "ntp server asked to slow down (Kiss-o'-Death)");
                    return Outcome {
                        result: best.ok_or_else(|| SourceError::KissOfDeath(code.to_string())),
                        retry_after: Some(pause),
                    };
                }
                KissAction::NotReady => {
                    debug!(%addr, %code, "ntp server not ready (Kiss-o'-Death)");
                    last_err = Some(SourceError::KissOfDeath(format!(
                        "{code} (the server is not ready to give time yet)"
                    )));
                }
            },
            Err(Failure::Other(e)) => {
                debug!(%addr, error = %e, "ntp exchange failed");
                last_err = Some(e);
            }
        }
    }
    Outcome::from_result(match (best, last_err) {
        (Some(s), _) => Ok(s),
        (None, Some(e)) => Err(e),
        (None, None) => Err(SourceError::Timeout(settings.timeout)),
    })
}

/// Resolves `host` ([`crate::proto::source::resolve`]) within `timeout`.
async fn resolve(host: &str, port: u16, timeout: Duration) -> Result<Vec<SocketAddr>, SourceError> {
    tokio::time::timeout(timeout, crate::proto::source::resolve(host, port))
        .await
        .map_err(|_| {
            SourceError::Resolve(format!(
                "{host}: no answer within {}",
                crate::core::duration::human_duration(timeout.as_secs_f64())
            ))
        })?
}

/// Why one exchange gave no sample.
enum Failure {
    /// A Kiss-o'-Death answering our request.
    Kiss {
        /// The kiss code.
        code: KissCode,
        /// The poll exponent the server asked for (RATE back-off).
        poll: i8,
    },
    /// Anything else; the next sample may still succeed.
    Other(SourceError),
}

impl From<SourceError> for Failure {
    fn from(e: SourceError) -> Self {
        Failure::Other(e)
    }
}

/// One request/reply exchange with `addr`, waiting at most `timeout`.
async fn exchange(
    addr: SocketAddr,
    timeout: Duration,
    max_error: f64,
    clock: &dyn Clock,
) -> Result<Sample, Failure> {
    let deadline = Instant::now() + timeout;
    let nonce = fresh_nonce()?;
    let request = packet::build_request(nonce);
    let mut udp = Exchange::open(addr, "NTP", clock)?;
    let t1 = NtpTimestamp::from_unix_nanos(udp.send(&[&request])?);

    let mut buf = [0u8; RECV_BUF];
    let mut last_invalid: Option<String> = None;
    loop {
        let Some((len, t4)) = udp.recv(&mut buf, deadline).await? else {
            return Err(match last_invalid {
                Some(reason) => SourceError::Invalid(reason),
                None => SourceError::Timeout(timeout),
            }
            .into());
        };
        let t4 = NtpTimestamp::from_unix_nanos(t4);
        let data = &buf[..len.min(RECV_BUF)];
        let reply: Packet = match packet::check_reply(data, nonce) {
            Ok(p) => p,
            Err(Rejection::KissOfDeath(code)) => {
                // check_reply has verified the origin, so the kiss answers our request.
                let poll = Packet::parse(data).map(|p| p.poll).unwrap_or(0);
                return Err(Failure::Kiss { code, poll });
            }
            Err(r) if r.is_answer() => {
                debug!(%addr, reason = %r, "unusable ntp reply");
                return Err(SourceError::Invalid(r.to_string()).into());
            }
            Err(r) => {
                debug!(%addr, reason = %r, "ignoring invalid ntp datagram");
                last_invalid = Some(r.to_string());
                continue;
            }
        };
        let accepted = reply.to_bytes();
        if let Some(other) = conflicting_reply(&udp, &mut buf, nonce, &accepted) {
            return Err(SourceError::Invalid(other).into());
        }
        return packet::bounded_sample(t1, &reply, t4, max_error)
            .map_err(|r| SourceError::Invalid(r.to_string()).into());
    }
}

/// Reads what is already queued behind an accepted reply: a second, different
/// answer to the same nonce means that at least one of the two is forged or
/// replayed by someone who saw the request, and neither can be trusted.
/// Identical copies (duplicated on the path) are harmless.
fn conflicting_reply(
    udp: &Exchange,
    buf: &mut [u8],
    nonce: NtpTimestamp,
    accepted: &[u8; packet::PACKET_LEN],
) -> Option<String> {
    while let Some(len) = udp.try_recv(buf) {
        let data = &buf[..len.min(buf.len())];
        let answers = match packet::check_reply(data, nonce) {
            Ok(_) => true,
            Err(r) => r.is_answer(),
        };
        if answers && data.get(..packet::PACKET_LEN) != Some(&accepted[..]) {
            warn!("two different NTP replies to one request; keeping neither");
            return Some(
                "two different replies to one request (one is forged or replayed): neither is used"
                    .into(),
            );
        }
    }
    None
}

/// A random, non-zero transmit timestamp for one request.
fn fresh_nonce() -> Result<NtpTimestamp, SourceError> {
    loop {
        let n = getrandom::u64().map_err(|e| SourceError::Io(format!("random nonce: {e}")))?;
        // Zero means "not set" in NTP; a server echoing zero must not match.
        if n != 0 {
            return Ok(NtpTimestamp(n));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::clock::{SystemClock, UnixNanos, NANOS_PER_SEC};
    use std::net::UdpSocket as StdUdpSocket;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    use std::time::Instant as StdInstant;

    /// What the fake server does with one request: the datagrams to send back,
    /// each from the server socket (`false`) or from a second socket (`true`).
    type Script = Box<dyn FnMut(&[u8]) -> Vec<(bool, Vec<u8>)> + Send>;

    /// Starts a fake NTP server on 127.0.0.1 in a thread; returns its port and a
    /// counter of requests it saw. It stops after 3 s without a request.
    fn fake(mut script: Script) -> (u16, Arc<AtomicU32>) {
        let sock = StdUdpSocket::bind("127.0.0.1:0").unwrap();
        let other = StdUdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let port = sock.local_addr().unwrap().port();
        let seen = Arc::new(AtomicU32::new(0));
        let seen2 = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = sock.recv_from(&mut buf) {
                seen2.fetch_add(1, Ordering::SeqCst);
                for (from_other, d) in script(&buf[..n]) {
                    let s = if from_other { &other } else { &sock };
                    let _ = s.send_to(&d, from);
                }
            }
        });
        (port, seen)
    }

    fn now_nanos() -> UnixNanos {
        SystemClock.realtime()
    }

    /// A well-formed reply to `req` from a server whose clock is `shift` seconds ahead.
    fn reply(req: &[u8], shift: f64) -> Packet {
        let req = Packet::parse(req).unwrap();
        let now = now_nanos() + (shift * 1e9).round() as i128;
        Packet {
            leap: 0,
            version: 4,
            mode: 4,
            stratum: 2,
            poll: 6,
            precision: -20,
            root_delay: 0.001,
            root_dispersion: 0.002,
            reference_id: [127, 0, 0, 1],
            reference: NtpTimestamp::from_unix_nanos(now - 10 * NANOS_PER_SEC),
            origin: req.transmit,
            receive: NtpTimestamp::from_unix_nanos(now),
            transmit: NtpTimestamp::from_unix_nanos(now),
        }
    }

    fn answer(shift: f64, edit: fn(&mut Packet)) -> Script {
        Box::new(move |req| {
            let mut p = reply(req, shift);
            edit(&mut p);
            vec![(false, p.to_bytes().to_vec())]
        })
    }

    fn settings(timeout_ms: u64) -> QuerySettings {
        QuerySettings {
            timeout: Duration::from_millis(timeout_ms),
            ..QuerySettings::default()
        }
    }

    /// The sample's bound holds `truth` (the fake server's shift). The fake
    /// reads its clock once between T1 and T4, so the truth is inside
    /// offset ± uncertainty however long the round trip took; a fixed
    /// tolerance around the offset fails on a loaded machine (an idle one
    /// already showed 8 ms, two cores under six busy loops 58 ms), and
    /// would test the scheduler rather than the client. 1 ns for the
    /// rounding of each timestamp to 2^-32 s.
    fn assert_holds(s: &Sample, truth: f64) {
        assert!(
            (s.offset - truth).abs() <= s.uncertainty + 1e-9,
            "{s:?} misses {truth}"
        );
    }

    async fn run(script: Script, s: &QuerySettings) -> (Outcome, Duration) {
        let (port, _) = fake(script);
        let start = StdInstant::now();
        let out = query("127.0.0.1", port, s, &SystemClock).await;
        (out, start.elapsed())
    }

    #[tokio::test]
    async fn measures_a_good_server() {
        let (out, _) = run(answer(1200.5, |_| {}), &settings(1000)).await;
        let s = out.result.unwrap();
        assert_holds(&s, 1200.5);
        // Within the timeout; how fast is the machine's business, not the test's.
        assert!(s.rtt >= 0.0 && s.rtt < 1.0, "{s:?}");
        assert!(s.uncertainty >= 0.001 / 2.0 + 0.002, "{s:?}");
        assert_eq!(out.retry_after, None);
    }

    #[tokio::test]
    async fn hostile_replies_are_rejected_with_the_reason() {
        type Edit = fn(&mut Packet);
        let cases: &[(&str, Edit, &str)] = &[
            (
                "wrong origin",
                |p| p.origin = NtpTimestamp(p.origin.0 ^ 1),
                "origin",
            ),
            ("LI 3", |p| p.leap = 3, "leap indicator 3"),
            ("stratum 16", |p| p.stratum = 16, "stratum 16"),
            ("client mode", |p| p.mode = 3, "mode 3"),
            (
                "zero transmit",
                |p| p.transmit = NtpTimestamp::ZERO,
                "zero transmit",
            ),
            ("version 1", |p| p.version = 1, "version 1"),
            (
                "root distance",
                |p| p.root_dispersion = 20.0,
                "root distance",
            ),
        ];
        for (name, edit, want) in cases {
            let (out, took) = run(answer(0.0, *edit), &settings(300)).await;
            match out.result {
                Err(SourceError::Invalid(r)) => assert!(r.contains(want), "{name}: {r}"),
                other => panic!("{name}: {other:?}"),
            }
            assert!(took < Duration::from_millis(800), "{name}: {took:?}");
        }
    }

    fn kiss(code: [u8; 4], poll: i8) -> Script {
        Box::new(move |req| {
            let mut p = reply(req, 0.0);
            p.stratum = 0;
            p.leap = 3;
            p.poll = poll;
            p.reference_id = code;
            vec![(false, p.to_bytes().to_vec())]
        })
    }

    #[tokio::test]
    async fn kiss_of_death_ends_the_query_at_once() {
        let (out, took) = run(kiss(*b"RATE", 10), &settings(2000)).await;
        assert_eq!(out.result, Err(SourceError::KissOfDeath("RATE".into())));
        assert_eq!(out.retry_after, Some(Duration::from_secs(1024)));
        assert!(took < Duration::from_millis(500), "{took:?}");
        // A poll of 2^17 s asks for 36 h: capped at 2^10 s.
        let (out, _) = run(kiss(*b"RATE", 17), &settings(2000)).await;
        assert_eq!(out.retry_after, Some(packet::MAX_RATE_BACKOFF));

        for code in [*b"DENY", *b"RSTR"] {
            let (port, seen) = fake(kiss(code, 10));
            let s = QuerySettings {
                samples: 3,
                sample_interval: Duration::from_millis(10),
                ..settings(2000)
            };
            let start = StdInstant::now();
            let out = query("127.0.0.1", port, &s, &SystemClock).await;
            match &out.result {
                Err(SourceError::Refused(m)) => {
                    assert!(
                        m.contains(&format!("Kiss-o'-Death {}", KissCode(code))),
                        "{m}"
                    );
                    assert!(m.contains("not queried again"), "{m}");
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(out.retry_after, None);
            assert_eq!(seen.load(Ordering::SeqCst), 1, "no query after the refusal");
            assert!(start.elapsed() < Duration::from_millis(500));
        }
    }

    #[tokio::test]
    async fn other_kiss_codes_only_void_their_sample() {
        // ntpsec answers INIT while it starts: the next sample is still taken.
        let n = Arc::new(AtomicU32::new(0));
        let n2 = n.clone();
        let mut init = kiss(*b"INIT", 6);
        let script: Script = Box::new(move |req| {
            if n2.fetch_add(1, Ordering::SeqCst) == 0 {
                init(req)
            } else {
                vec![(false, reply(req, 2.5).to_bytes().to_vec())]
            }
        });
        let (port, seen) = fake(script);
        let s = QuerySettings {
            samples: 3,
            sample_interval: Duration::from_millis(10),
            ..settings(1000)
        };
        let out = query("127.0.0.1", port, &s, &SystemClock).await;
        assert_holds(&out.result.unwrap(), 2.5);
        assert_eq!(seen.load(Ordering::SeqCst), 3);
        assert_eq!(out.retry_after, None);

        // Only INIT: an error that says so, quickly.
        let (out, took) = run(kiss(*b"INIT", 6), &settings(2000)).await;
        match out.result {
            Err(SourceError::KissOfDeath(m)) => {
                assert!(m.contains("INIT (the server is not ready"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        assert!(took < Duration::from_millis(500), "{took:?}");
    }

    #[tokio::test]
    async fn unusable_answers_end_the_exchange_at_once() {
        type Edit = fn(&mut Packet);
        let cases: &[(&str, Edit, &str)] = &[
            ("stratum 16", |p| p.stratum = 16, "stratum 16"),
            (
                "zero receive",
                |p| p.receive = NtpTimestamp::ZERO,
                "zero receive",
            ),
            (
                "T3 before T2",
                |p| p.transmit = NtpTimestamp(p.receive.0 - (1 << 30)),
                "transmit timestamp before",
            ),
            (
                "unsynchronised",
                |p| {
                    p.leap = 3;
                    p.stratum = 0;
                    p.reference_id = [0; 4];
                },
                "not synchronised",
            ),
            (
                "too wide",
                |p| p.root_dispersion = 3.5,
                "exceeds SKEWGUARD_MAX_SOURCE_ERROR",
            ),
        ];
        for (name, edit, want) in cases {
            let (out, took) = run(answer(0.0, *edit), &settings(2000)).await;
            match out.result {
                Err(SourceError::Invalid(r)) => assert!(r.contains(want), "{name}: {r}"),
                other => panic!("{name}: {other:?}"),
            }
            assert!(took < Duration::from_millis(500), "{name}: {took:?}");
        }
    }

    #[tokio::test]
    async fn two_different_replies_are_both_refused() {
        let script: Script = Box::new(|req| {
            let a = reply(req, 0.0);
            let b = reply(req, 1.0);
            vec![
                (false, a.to_bytes().to_vec()),
                (false, b.to_bytes().to_vec()),
            ]
        });
        let (port, _) = fake(script);
        // The fake sends both before the client reads: retry until the client
        // saw both queued (on a loaded machine it may read the first earlier).
        let mut refused = false;
        for _ in 0..20 {
            let out = query("127.0.0.1", port, &settings(1000), &SystemClock).await;
            match out.result {
                Err(SourceError::Invalid(r)) if r.contains("two different replies") => {
                    refused = true;
                    break;
                }
                // The first one, read before the second was queued.
                Ok(s) => assert_holds(&s, 0.0),
                other => panic!("{other:?}"),
            }
        }
        assert!(refused);

        // Identical copies are harmless.
        let script: Script = Box::new(|req| {
            let a = reply(req, 0.5).to_bytes().to_vec();
            vec![(false, a.clone()), (false, a)]
        });
        let (out, _) = run(script, &settings(1000)).await;
        assert_holds(&out.result.unwrap(), 0.5);
    }

    #[tokio::test]
    async fn a_closed_port_is_reported_at_once() {
        let port = {
            let s = StdUdpSocket::bind("127.0.0.1:0").unwrap();
            s.local_addr().unwrap().port()
        };
        let start = StdInstant::now();
        let out = query("127.0.0.1", port, &settings(2000), &SystemClock).await;
        match out.result {
            Err(SourceError::Io(m)) => assert!(m.contains("connection refused"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(start.elapsed() < Duration::from_millis(1000));
    }

    #[tokio::test]
    async fn rate_backoff_is_at_least_a_minute() {
        let (out, _) = run(
            answer(0.0, |p| {
                p.stratum = 0;
                p.poll = 0;
                p.reference_id = *b"RATE";
            }),
            &settings(1000),
        )
        .await;
        assert_eq!(out.retry_after, Some(Duration::from_secs(60)));
    }

    #[tokio::test]
    async fn junk_before_the_genuine_reply_is_ignored() {
        let script: Script = Box::new(|req| {
            let good = reply(req, 42.25);
            let mut spoof = good;
            spoof.origin = NtpTimestamp(good.origin.0.wrapping_add(1));
            spoof.transmit = NtpTimestamp::from_unix_nanos(0);
            let mut kod = spoof;
            kod.stratum = 0;
            kod.reference_id = *b"DENY";
            let mut from_other = good;
            from_other.transmit = NtpTimestamp::from_unix_nanos(0);
            vec![
                (false, spoof.to_bytes().to_vec()),
                (false, kod.to_bytes().to_vec()), // spoofed kiss: must not be obeyed
                (false, vec![1, 2, 3]),
                (false, vec![0xff; 48]),
                (true, from_other.to_bytes().to_vec()),
                (false, good.to_bytes().to_vec()),
                (false, good.to_bytes().to_vec()), // duplicate, after the fact
            ]
        });
        let (out, _) = run(script, &settings(1000)).await;
        let s = out.result.unwrap();
        assert_holds(&s, 42.25);
    }

    #[tokio::test]
    async fn silence_and_junk_time_out_with_the_right_error() {
        let (out, took) = run(Box::new(|_| vec![]), &settings(300)).await;
        assert_eq!(
            out.result,
            Err(SourceError::Timeout(Duration::from_millis(300)))
        );
        assert!(
            took >= Duration::from_millis(290) && took < Duration::from_millis(800),
            "{took:?}"
        );

        let (out, _) = run(Box::new(|_| vec![(false, vec![0x24; 20])]), &settings(300)).await;
        match out.result {
            Err(SourceError::Invalid(r)) => assert!(r.contains("too short: 20 bytes"), "{r}"),
            other => panic!("{other:?}"),
        }

        // Another sender's datagram never reaches the connected socket.
        let (out, _) = run(
            Box::new(|req| vec![(true, reply(req, 0.0).to_bytes().to_vec())]),
            &settings(300),
        )
        .await;
        assert_eq!(
            out.result,
            Err(SourceError::Timeout(Duration::from_millis(300)))
        );
    }

    #[tokio::test]
    async fn several_samples_keep_the_least_delay() {
        let n = Arc::new(AtomicU32::new(0));
        let n2 = n.clone();
        let script: Script = Box::new(move |req| {
            // The second reply comes back slowest; its offset must not win.
            let i = n2.fetch_add(1, Ordering::SeqCst);
            let shift = [5.0, 9.0, 5.0][i as usize % 3];
            if i == 1 {
                std::thread::sleep(Duration::from_millis(80));
            }
            vec![(false, reply(req, shift).to_bytes().to_vec())]
        });
        let (port, seen) = fake(script);
        let s = QuerySettings {
            timeout: Duration::from_millis(500),
            samples: 3,
            sample_interval: Duration::from_millis(20),
            ..QuerySettings::default()
        };
        let out = query("127.0.0.1", port, &s, &SystemClock).await;
        let sample = out.result.unwrap();
        assert_eq!(seen.load(Ordering::SeqCst), 3);
        assert_holds(&sample, 5.0);
    }

    #[tokio::test]
    async fn a_later_failure_does_not_discard_an_earlier_sample() {
        let n = Arc::new(AtomicU32::new(0));
        let n2 = n.clone();
        let script: Script = Box::new(move |req| {
            if n2.fetch_add(1, Ordering::SeqCst) == 0 {
                vec![(false, reply(req, 3.0).to_bytes().to_vec())]
            } else {
                vec![]
            }
        });
        let (port, _) = fake(script);
        let s = QuerySettings {
            timeout: Duration::from_millis(200),
            samples: 2,
            sample_interval: Duration::from_millis(10),
            ..QuerySettings::default()
        };
        let out = query("127.0.0.1", port, &s, &SystemClock).await;
        assert_holds(&out.result.unwrap(), 3.0);
    }

    /// 56 years of 365.25 days: a local clock in 1970 while the server is in 2026.
    const YEARS_56: i128 = 56 * 36_525 * 864 * NANOS_PER_SEC;

    /// A local clock 56 years behind that steps by a day after each realtime read.
    struct SteppingClock {
        reads: AtomicU32,
    }

    impl Clock for SteppingClock {
        fn realtime(&self) -> UnixNanos {
            let n = self.reads.fetch_add(1, Ordering::SeqCst);
            now_nanos() - YEARS_56 + i128::from(n) * 86_400 * NANOS_PER_SEC
        }
        fn monotonic(&self) -> Duration {
            SystemClock.monotonic()
        }
        fn boottime(&self) -> Duration {
            SystemClock.boottime()
        }
    }

    #[tokio::test]
    async fn a_clock_at_1970_is_measured_and_a_step_does_not_distort_the_rtt() {
        let clock = SteppingClock {
            reads: AtomicU32::new(0),
        };
        let (port, _) = fake(answer(0.0, |_| {}));
        let out = query("127.0.0.1", port, &settings(1000), &clock).await;
        let s = out.result.unwrap();
        let want = YEARS_56 as f64 / 1e9;
        // Whichever of the (rarely several) reads the anchor kept: whole days off.
        let days = (want - s.offset) / 86_400.0;
        assert!(
            (days - days.round()).abs() * 86_400.0 <= s.uncertainty + 1e-6,
            "{s:?} vs {want}"
        );
        assert!(days.round() >= 0.0 && days.round() < 8.0, "{s:?} vs {want}");
        // Within the 1 s timeout: a day's step counted into it would not be.
        assert!(s.rtt < 1.0, "{s:?}");
        // Realtime is read once, unless a preempted read was retried.
        let reads = clock.reads.load(Ordering::SeqCst);
        assert!((1..=crate::os::clock::STAMP_TRIES as u32).contains(&reads));
    }

    #[tokio::test]
    async fn resolution_failures_are_reported() {
        let out = query("nonexistent.invalid", 123, &settings(1000), &SystemClock).await;
        assert!(
            matches!(out.result, Err(SourceError::Resolve(_))),
            "{out:?}"
        );
    }

    #[test]
    fn the_query_future_is_send() {
        fn is_send<T: Send>(_: &T) {}
        let s = QuerySettings::default();
        let f = query("127.0.0.1", 1, &s, &SystemClock);
        is_send(&f);
    }
}
