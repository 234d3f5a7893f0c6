//! Whole-program tests of the NTP source against hostile and broken servers.
//!
//! Each test starts a fake NTP server on 127.0.0.1 (a thread with a UDP
//! socket), runs `skewguard check --output json` against it as a user would,
//! and reads the JSON report. Replies are encoded by hand here, not with the
//! crate's codec, so an encoder/parser bug that cancels out cannot hide.
//! Test names start with `ntp_` so that `cargo test ntp` runs them too.

use crate::support;

use std::net::UdpSocket;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// `SKEWGUARD_TIMEOUT` for every run.
const TIMEOUT: Duration = Duration::from_secs(1);

/// The datagrams a fake sends for one request: from its own socket (`false`)
/// or from a second socket on another port (`true`).
type Script = Box<dyn FnMut(&[u8]) -> Vec<(bool, Vec<u8>)> + Send>;

/// Starts a fake NTP server; returns its port. It exits after 5 s of silence.
fn fake(mut script: Script) -> u16 {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind fake server");
    let other = UdpSocket::bind("127.0.0.1:0").expect("bind second socket");
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    let port = sock.local_addr().expect("local addr").port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            for (from_other, d) in script(&buf[..n]) {
                let s = if from_other { &other } else { &sock };
                let _ = s.send_to(&d, from);
            }
        }
    });
    port
}

/// Now plus `shift` seconds as an NTP timestamp (32.32, seconds since 1900).
fn ntp_now(shift: f64) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    let t = now.as_secs_f64() + shift + 2_208_988_800.0;
    let secs = t.floor();
    let frac = ((t - secs) * 4_294_967_296.0) as u64;
    ((secs as u64) << 32) | frac.min(0xFFFF_FFFF)
}

/// The fields of a reply that tests change.
#[derive(Clone, Copy)]
struct Reply {
    leap: u8,
    version: u8,
    mode: u8,
    stratum: u8,
    poll: i8,
    refid: [u8; 4],
    /// `None`: echo the request's transmit timestamp.
    origin: Option<u64>,
    /// `None`: now + shift.
    transmit: Option<u64>,
    /// `None`: now + shift (the same clock as the transmit timestamp).
    receive: Option<u64>,
    /// Root dispersion in 16.16 seconds.
    dispersion: u32,
    shift: f64,
}

const GOOD: Reply = Reply {
    leap: 0,
    version: 4,
    mode: 4,
    stratum: 2,
    poll: 6,
    refid: [127, 0, 0, 1],
    origin: None,
    transmit: None,
    receive: None,
    dispersion: 0x80, // ~2 ms
    shift: 0.0,
};

fn encode(r: Reply, req: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 48];
    b[0] = (r.leap << 6) | (r.version << 3) | r.mode;
    b[1] = r.stratum;
    b[2] = r.poll as u8;
    b[3] = (-20i8) as u8;
    b[4..8].copy_from_slice(&0x0000_0040u32.to_be_bytes()); // root delay ~1 ms
    b[8..12].copy_from_slice(&r.dispersion.to_be_bytes());
    b[12..16].copy_from_slice(&r.refid);
    let now = ntp_now(r.shift);
    b[16..24].copy_from_slice(&(now - (16 << 32)).to_be_bytes());
    let echoed = req.get(40..48).unwrap_or(&[0; 8]);
    match r.origin {
        Some(o) => b[24..32].copy_from_slice(&o.to_be_bytes()),
        None => b[24..32].copy_from_slice(echoed),
    }
    b[32..40].copy_from_slice(&r.receive.unwrap_or(now).to_be_bytes());
    b[40..48].copy_from_slice(&r.transmit.unwrap_or(now).to_be_bytes());
    b
}

fn answer(r: Reply) -> Script {
    Box::new(move |req| vec![(false, encode(r, req))])
}

/// What one `skewguard check` run gave.
struct Run {
    report: Value,
    code: Option<i32>,
    took: Duration,
    stderr: String,
}

fn check(port: u16) -> Run {
    // Settings of the calling environment must not leak into the test.
    let mut cmd = support::skewguard(&["check", "--output", "json"]);
    cmd.env("SKEWGUARD_SOURCES", format!("ntp://127.0.0.1:{port}"))
        .env("SKEWGUARD_TIMEOUT", "1s")
        .env("SKEWGUARD_LOG", "warn");
    let start = Instant::now();
    let out = cmd.output().expect("run skewguard");
    let took = start.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {stdout}\nstderr: {stderr}"));
    Run {
        report,
        code: out.status.code(),
        took,
        stderr,
    }
}

/// Runs the check against `script` and asserts an `unknown` verdict whose only
/// source failed with an error containing `want`.
fn rejected(script: Script, want: &str) -> Run {
    let run = check(fake(script));
    let r = &run.report;
    let ctx = format!("{r}\nstderr: {}", run.stderr);
    assert_eq!(r["verdict"], "unknown", "{ctx}");
    assert_eq!(run.code, Some(1), "{ctx}");
    let src = &r["sources"][0];
    assert_eq!(src["status"], "error", "{ctx}");
    let err = src["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error: {ctx}"));
    assert!(err.contains(want), "want {want:?} in {err:?}");
    assert!(
        !err.chars().any(char::is_control),
        "control characters in {err:?}"
    );
    assert!(
        run.took < TIMEOUT + Duration::from_secs(1),
        "took {:?}",
        run.took
    );
    run
}

#[test]
fn ntp_wrong_origin_is_rejected() {
    let _room = support::Room::Timing.enter();
    rejected(
        answer(Reply {
            origin: Some(0x1234_5678_9abc_def0),
            ..GOOD
        }),
        "origin",
    );
}

#[test]
fn ntp_kiss_of_death_rate_ends_the_query_at_once() {
    let _room = support::Room::Timing.enter();
    let run = rejected(
        answer(Reply {
            leap: 3,
            stratum: 0,
            refid: *b"RATE",
            ..GOOD
        }),
        "Kiss-o'-Death RATE",
    );
    assert!(
        run.took < TIMEOUT,
        "a kiss must not wait for the timeout: {:?}",
        run.took
    );
}

#[test]
fn ntp_kiss_of_death_deny_ends_the_query_at_once() {
    let _room = support::Room::Timing.enter();
    let run = rejected(
        answer(Reply {
            stratum: 0,
            refid: *b"DENY",
            ..GOOD
        }),
        "Kiss-o'-Death DENY",
    );
    assert!(run.took < TIMEOUT, "{:?}", run.took);
}

#[test]
fn ntp_stratum_0_with_a_non_printable_code_is_rendered_safely() {
    let _room = support::Room::Timing.enter();
    rejected(
        answer(Reply {
            stratum: 0,
            refid: [0x1b, b'[', b'2', b'J'],
            ..GOOD
        }),
        "Kiss-o'-Death \\x1b[2J",
    );
}

#[test]
fn ntp_leap_alarm_is_rejected() {
    let _room = support::Room::Timing.enter();
    rejected(answer(Reply { leap: 3, ..GOOD }), "leap indicator 3");
}

#[test]
fn ntp_stratum_16_is_rejected() {
    let _room = support::Room::Timing.enter();
    rejected(
        answer(Reply {
            stratum: 16,
            ..GOOD
        }),
        "stratum 16",
    );
}

#[test]
fn ntp_client_mode_reply_is_rejected() {
    let _room = support::Room::Timing.enter();
    rejected(answer(Reply { mode: 3, ..GOOD }), "mode 3");
}

#[test]
fn ntp_zero_transmit_timestamp_is_rejected() {
    let _room = support::Room::Timing.enter();
    rejected(
        answer(Reply {
            transmit: Some(0),
            ..GOOD
        }),
        "zero transmit timestamp",
    );
}

#[test]
fn ntp_short_packets_are_rejected() {
    let _room = support::Room::Timing.enter();
    rejected(
        Box::new(|req| {
            let full = encode(GOOD, req);
            vec![(false, vec![]), (false, full[..47].to_vec())]
        }),
        "too short: 47 bytes",
    );
}

#[test]
fn ntp_random_bytes_are_rejected() {
    let _room = support::Room::Timing.enter();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ u64::from(std::process::id());
    rejected(
        Box::new(move |_| {
            (0..8)
                .map(|i| {
                    let len = [48, 60, 200, 13, 48, 48, 90, 48][i];
                    let bytes = (0..len)
                        .map(|_| {
                            // xorshift64: enough noise, no dependency.
                            x ^= x << 13;
                            x ^= x >> 7;
                            x ^= x << 17;
                            x as u8
                        })
                        .collect();
                    (false, bytes)
                })
                .collect()
        }),
        "invalid reply",
    );
}

#[test]
fn ntp_a_silent_server_times_out() {
    let _room = support::Room::Timing.enter();
    let run = rejected(Box::new(|_| vec![]), "no valid answer");
    assert!(run.took >= TIMEOUT, "{:?}", run.took);
}

#[test]
fn ntp_a_reply_from_another_port_is_not_taken() {
    let _room = support::Room::Timing.enter();
    // The connected socket never sees it: the wait runs to the timeout.
    rejected(
        Box::new(|req| vec![(true, encode(GOOD, req))]),
        "no valid answer",
    );
}

/// Asserts the rejection came well before the timeout: the server's answer was
/// definitive, waiting longer could not help.
fn rejected_at_once(script: Script, want: &str) {
    let run = rejected(script, want);
    assert!(
        run.took < TIMEOUT,
        "a definitive answer must not wait for the timeout: {:?}",
        run.took
    );
}

#[test]
fn ntp_zero_receive_timestamp_is_rejected() {
    let _room = support::Room::Timing.enter();
    rejected_at_once(
        answer(Reply {
            receive: Some(0),
            ..GOOD
        }),
        "zero receive timestamp",
    );
}

#[test]
fn ntp_transmit_before_receive_is_rejected() {
    let _room = support::Room::Timing.enter();
    rejected_at_once(
        answer(Reply {
            receive: Some(ntp_now(0.0) + (1 << 32)),
            ..GOOD
        }),
        "transmit timestamp before the receive timestamp",
    );
}

#[test]
fn ntp_stratum_16_ends_the_query_at_once() {
    let _room = support::Room::Timing.enter();
    rejected_at_once(
        answer(Reply {
            stratum: 16,
            ..GOOD
        }),
        "stratum 16",
    );
}

#[test]
fn ntp_an_unsynchronised_server_is_not_a_kiss() {
    let _room = support::Room::Timing.enter();
    // openntpd before its first sync: LI 3, stratum 0, empty reference id.
    let run = check(fake(answer(Reply {
        leap: 3,
        stratum: 0,
        refid: [0; 4],
        ..GOOD
    })));
    let err = run.report["sources"][0]["error"].as_str().unwrap_or("");
    assert!(err.contains("not synchronised"), "{}", run.report);
    assert!(!err.contains("Kiss"), "{}", run.report);
    assert!(run.took < TIMEOUT, "{:?}", run.took);
}

#[test]
fn ntp_a_too_wide_error_bound_is_an_error_not_a_vote() {
    let _room = support::Room::Timing.enter();
    // Root dispersion 3.5 s: ±3.5 s would overlap every other source.
    let wide = Reply {
        dispersion: 0x0003_8000,
        ..GOOD
    };
    rejected_at_once(answer(wide), "exceeds SKEWGUARD_MAX_SOURCE_ERROR=3.000s");
    // Allowed when the operator says so.
    let out = support::run(
        &["check", "--output", "json"],
        &[
            (
                "SKEWGUARD_SOURCES",
                &format!("ntp://127.0.0.1:{}", fake(answer(wide))),
            ),
            ("SKEWGUARD_TIMEOUT", "1s"),
            ("SKEWGUARD_MAX_SOURCE_ERROR", "5s"),
        ],
    );
    let u = out.number("uncertainty_seconds").unwrap_or(0.0);
    assert!(u > 3.5 && u < 3.6, "{out}");
}

#[test]
fn ntp_two_different_replies_to_one_request_are_both_refused() {
    let _room = support::Room::Timing.enter();
    let run = check(fake(Box::new(|req| {
        vec![
            (false, encode(GOOD, req)),
            (
                false,
                encode(
                    Reply {
                        shift: 600.0,
                        ..GOOD
                    },
                    req,
                ),
            ),
        ]
    })));
    let r = &run.report;
    // Both were sent before the client woke up on an idle machine; on a busy
    // one it may have taken the first alone, which is then the good one.
    match r["sources"][0]["error"].as_str() {
        Some(e) => assert!(e.contains("two different replies"), "{r}"),
        None => assert!(
            r["offset_seconds"].as_f64().is_some_and(|o| o.abs() < 0.01),
            "{r}"
        ),
    }
}

#[test]
fn ntp_kernel_receive_stamps_keep_the_truth_inside() {
    let _room = support::Room::Timing.enter();
    // ntpsec, or chrony under libfaketime with a sub-second shift: T2 from the
    // unshifted kernel clock, T3 from the server's clock, +0.25 s: δ < 0.
    // (A negative shift makes T3 < T2, which is refused.)
    for shift in [0.25, 2.25, 0.8] {
        let run = check(fake(Box::new(move |req| {
            let r = Reply {
                shift,
                receive: Some(ntp_now(0.0)),
                ..GOOD
            };
            vec![(false, encode(r, req))]
        })));
        let r = &run.report;
        let o = r["offset_seconds"].as_f64().unwrap_or(f64::NAN);
        let u = r["uncertainty_seconds"].as_f64().unwrap_or(f64::NAN);
        assert!(
            (o - shift).abs() <= u,
            "truth {shift} outside {o} ± {u}: {r}"
        );
        // The unshifted clock is inside too: either may be the server's.
        assert!(o.abs() <= u, "{r}");
    }
}

#[test]
fn ntp_init_is_not_ready_and_the_next_sample_is_taken() {
    let _room = support::Room::Timing.enter();
    let n = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let n2 = n.clone();
    let port = fake(Box::new(move |req| {
        let first = n2.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
        let r = if first {
            Reply {
                leap: 3,
                stratum: 0,
                refid: *b"INIT",
                ..GOOD
            }
        } else {
            Reply { shift: 1.5, ..GOOD }
        };
        vec![(false, encode(r, req))]
    }));
    let out = support::run(
        &["check", "--output", "json"],
        &[
            ("SKEWGUARD_SOURCES", &format!("ntp://127.0.0.1:{port}")),
            ("SKEWGUARD_TIMEOUT", "1s"),
            ("SKEWGUARD_SAMPLES", "3"),
            ("SKEWGUARD_SAMPLE_INTERVAL", "50ms"),
        ],
    );
    let o = out.number("offset_seconds").unwrap_or(f64::NAN);
    assert!((o - 1.5).abs() < 0.005, "{out}");
    assert_eq!(n.load(std::sync::atomic::Ordering::SeqCst), 3, "{out}");
}

#[test]
fn ntp_deny_stops_the_server_for_the_life_of_the_process() {
    let _room = support::Room::Timing.enter();
    for code in [*b"DENY", *b"RSTR"] {
        let n = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let n2 = n.clone();
        let port = fake(Box::new(move |req| {
            n2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let r = Reply {
                stratum: 0,
                refid: code,
                ..GOOD
            };
            vec![(false, encode(r, req))]
        }));
        // `wait` retries after 1 s, 2 s, …: without the stop it would query
        // the server again within the 2.5 s.
        let out = support::run(
            &["wait"],
            &[
                ("SKEWGUARD_SOURCES", &format!("ntp://127.0.0.1:{port}")),
                ("SKEWGUARD_TIMEOUT", "1s"),
                ("SKEWGUARD_WAIT_TIMEOUT", "2500ms"),
                ("SKEWGUARD_SAMPLES", "3"),
                ("SKEWGUARD_SAMPLE_INTERVAL", "50ms"),
            ],
        );
        out.assert_exit(1);
        assert_eq!(n.load(std::sync::atomic::Ordering::SeqCst), 1, "{out}");
        assert!(out.to_string().contains("not queried again"), "{out}");
    }
}

#[test]
fn ntp_a_closed_port_is_reported_at_once() {
    let _room = support::Room::Timing.enter();
    let port = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("free port")
        .port();
    let run = check(port);
    let err = run.report["sources"][0]["error"].as_str().unwrap_or("");
    assert!(err.contains("connection refused"), "{}", run.report);
    assert!(run.took < TIMEOUT, "{:?}", run.took);
}

fn measured(shift: f64) -> Run {
    let run = check(fake(answer(Reply { shift, ..GOOD })));
    let r = &run.report;
    let ctx = format!("{r}\nstderr: {}", run.stderr);
    let offset = r["offset_seconds"]
        .as_f64()
        .unwrap_or_else(|| panic!("no offset: {ctx}"));
    assert!(
        (offset - shift).abs() < 0.005,
        "offset {offset}, want {shift}: {ctx}"
    );
    assert_eq!(r["sources"][0]["status"], "ok", "{ctx}");
    assert!(r["sources"][0]["error"].is_null(), "{ctx}");
    run
}

#[test]
fn ntp_a_server_20_minutes_ahead_fails_the_check() {
    let _room = support::Room::Timing.enter();
    let run = measured(1200.5);
    assert_eq!(run.report["verdict"], "fail", "{}", run.report);
    assert_eq!(run.code, Some(1));
}

#[test]
fn ntp_a_server_within_the_window_passes() {
    let _room = support::Room::Timing.enter();
    let run = measured(0.2);
    assert_eq!(run.report["verdict"], "ok", "{}", run.report);
    assert_eq!(run.code, Some(0));
}

#[test]
fn ntp_a_spoofed_reply_does_not_end_the_wait() {
    let _room = support::Room::Timing.enter();
    let run = check(fake(Box::new(|req| {
        let spoof = Reply {
            origin: Some(0xdead_beef),
            shift: -5000.0,
            ..GOOD
        };
        let kiss = Reply {
            origin: Some(0xdead_beef),
            stratum: 0,
            refid: *b"DENY",
            ..GOOD
        };
        vec![
            (false, encode(spoof, req)),
            (false, encode(kiss, req)),
            (
                false,
                encode(
                    Reply {
                        shift: 1200.5,
                        ..GOOD
                    },
                    req,
                ),
            ),
        ]
    })));
    let r = &run.report;
    let offset = r["offset_seconds"].as_f64().unwrap_or(f64::NAN);
    assert!(
        (offset - 1200.5).abs() < 0.005,
        "{r}\nstderr: {}",
        run.stderr
    );
    assert_eq!(r["verdict"], "fail", "{r}");
    assert!(run.took < TIMEOUT, "{:?}", run.took);
}
