//! `skewguard check` over bad paths and against lying peers: chronyd at a known
//! libfaketime shift behind a user-space UDP relay ([`support::relay`]) that
//! delays, jitters, drops, duplicates and reorders datagrams, forges replies and
//! replays old ones; and three real peers of which one or two lie.
//!
//! The property under test is the one a verdict rests on: whenever a measurement
//! comes back, the true offset (the shift) lies inside
//! `[offset − uncertainty, offset + uncertainty]`, and the verdict follows from
//! it. When faults eat every reply the verdict must be `unknown`, never a wrong
//! `ok` or `fail`.
//!
//! Each case runs against two peers at once, in threads: `+1200` s (default
//! thresholds: `fail`) and `−3.5` s (`warn`). Shifts stay ≥ 1 s, because below
//! that chronyd's receive timestamp escapes libfaketime (see `support::Chrony`).
//! Run with `--nocapture` to see each case's measured offset and bound.

use crate::support;

use std::thread;
use std::time::Duration;

use support::relay::{Faults, Path, Relay};
use support::{run, Chrony, Output};

/// libfaketime's own imprecision, added to the bound a measurement must meet.
const FAKETIME_SLACK: f64 = 0.001;

/// How closely a direct (relay-free) measurement of a chronyd must match its shift.
const DIRECT_TOLERANCE: f64 = 0.005;

/// A peer shift, in libfaketime's form and in seconds, with the verdict and exit
/// code the default thresholds give for it.
#[derive(Clone, Copy)]
struct Shift {
    faketime: &'static str,
    seconds: f64,
    verdict: &'static str,
    code: i32,
}

const BEHIND_1200: Shift = Shift {
    faketime: "+1200",
    seconds: 1200.0,
    verdict: "fail",
    code: 1,
};

const AHEAD_3_5: Shift = Shift {
    faketime: "-3.5",
    seconds: -3.5,
    verdict: "warn",
    code: 0,
};

/// One fault case: what the relay does and how skewguard is set up for it.
struct Case {
    name: &'static str,
    faults: Faults,
    /// Extra `SKEWGUARD_*` settings.
    settings: &'static [(&'static str, &'static str)],
    /// The faults may eat every reply; `unknown` is then the right answer.
    may_lose_all: bool,
}

/// What one run through the relay measured.
struct Measured {
    out: Output,
    stats: String,
    requests: u64,
    forged: u64,
    replayed: u64,
}

/// Runs `case` against a `+1200` and a `−3.5` peer in parallel and checks the
/// interval and verdict of each; returns the runs that produced a measurement
/// (for case-specific checks), with their shift.
fn through_relay(case: &Case) -> Vec<(Shift, Measured)> {
    let shifts = [BEHIND_1200, AHEAD_3_5];
    let Some(peers) = Chrony::start_all(&shifts.map(|s| Some(s.faketime))) else {
        return Vec::new();
    };
    let results: Vec<(Shift, Measured)> = thread::scope(|scope| {
        let runs: Vec<_> = shifts
            .iter()
            .zip(&peers)
            .map(|(shift, peer)| {
                let target = std::net::SocketAddr::from(([127, 0, 0, 1], peer.port()));
                scope.spawn(move || (*shift, measure(case, target)))
            })
            .collect();
        runs.into_iter()
            .map(|r| r.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    results
        .into_iter()
        .filter(|(shift, m)| judge(case, shift, m))
        .collect()
}

/// One `check` through a fresh relay to `target`.
fn measure(case: &Case, target: std::net::SocketAddr) -> Measured {
    let relay = Relay::start(target, case.faults);
    let uri = relay.uri();
    let mut envs = vec![
        ("SKEWGUARD_SOURCES", uri.as_str()),
        ("SKEWGUARD_OUTPUT", "json"),
        ("SKEWGUARD_TIMEOUT", "2s"),
    ];
    envs.extend_from_slice(case.settings);
    let out = run(&["check"], &envs);
    // Let late copies and held datagrams drain before the counts are read.
    thread::sleep(Duration::from_millis(50));
    let s = relay.stats();
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    Measured {
        stats: format!("{s}; seed {}", relay.seed()),
        requests: load(&s.requests),
        forged: load(&s.forged),
        replayed: load(&s.replayed),
        out,
    }
}

/// Checks one run of `case`; `true` if it produced a measurement.
fn judge(case: &Case, shift: &Shift, m: &Measured) -> bool {
    let out = &m.out;
    let ctx = format!(
        "case {:?}, peer shift {}, relay: {}\n{out}",
        case.name, shift.faketime, m.stats
    );
    let report = out.report();
    let sources = report["sources"].as_array().map_or(0, Vec::len);
    assert_eq!(sources, 1, "one source in the report\n{ctx}");
    let source = &report["sources"][0];

    if out.verdict() == "unknown" {
        assert!(
            case.may_lose_all,
            "only a path that can lose every reply may give `unknown`\n{ctx}"
        );
        out.assert_exit(1);
        assert_eq!(source["status"], "error", "{ctx}");
        assert!(out.number("offset_seconds").is_none(), "{ctx}");
        eprintln!(
            "{:<28} {:>6}: unknown (every reply lost); relay: {}",
            case.name, shift.faketime, m.stats
        );
        return false;
    }

    let offset = out
        .number("offset_seconds")
        .unwrap_or_else(|| panic!("offset_seconds is null\n{ctx}"));
    let bound = out
        .number("uncertainty_seconds")
        .unwrap_or_else(|| panic!("uncertainty_seconds is null\n{ctx}"));
    assert!(bound >= 0.0, "a negative bound\n{ctx}");
    let miss = (offset - shift.seconds).abs();
    assert!(
        miss <= bound + FAKETIME_SLACK,
        "the true offset {:+} is outside {offset:+.6} ± {bound:.6} (missed by {:.6} s)\n{ctx}",
        shift.seconds,
        miss - bound,
    );
    assert_eq!(source["status"], "ok", "{ctx}");
    assert_eq!(out.verdict(), shift.verdict, "verdict\n{ctx}");
    out.assert_exit(shift.code);
    eprintln!(
        "{:<28} {:>6}: offset {offset:+.6} ± {bound:.6} (error {:+.6}), rtt {:.6}; relay: {}",
        case.name,
        shift.faketime,
        offset - shift.seconds,
        source["rtt_seconds"].as_f64().unwrap_or(f64::NAN),
        m.stats
    );
    true
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ---------------------------------------------------------------------------
// Asymmetric paths: the asymmetry is invisible to the client, so the bound must
// be at least half of it.

#[test]
fn asymmetric_path_300ms_out() {
    let _room = support::Room::Timing.enter();
    let case = Case {
        name: "300 ms out, 0 back",
        faults: Faults {
            out: Path::delay_ms(300),
            ..Faults::default()
        },
        settings: &[],
        may_lose_all: false,
    };
    for (shift, m) in through_relay(&case) {
        let offset = m.out.number("offset_seconds").unwrap_or(f64::NAN);
        let bound = m.out.number("uncertainty_seconds").unwrap_or(f64::NAN);
        // A slow request makes the server's clock look 150 ms further ahead
        // (give or take the relay's own delays on a loaded machine).
        assert!(
            (offset - shift.seconds - 0.150).abs() < 0.050,
            "offset {offset} for shift {}\n{}",
            shift.seconds,
            m.out
        );
        assert!(
            bound >= 0.150,
            "300 ms of asymmetry needs a bound ≥ 150 ms, got {bound}\n{}",
            m.out
        );
    }
}

#[test]
fn asymmetric_path_300ms_back() {
    let _room = support::Room::Timing.enter();
    let case = Case {
        name: "0 out, 300 ms back",
        faults: Faults {
            back: Path::delay_ms(300),
            ..Faults::default()
        },
        settings: &[],
        may_lose_all: false,
    };
    for (shift, m) in through_relay(&case) {
        let offset = m.out.number("offset_seconds").unwrap_or(f64::NAN);
        let bound = m.out.number("uncertainty_seconds").unwrap_or(f64::NAN);
        assert!(
            (offset - shift.seconds + 0.150).abs() < 0.050,
            "offset {offset} for shift {}\n{}",
            shift.seconds,
            m.out
        );
        assert!(bound >= 0.150, "bound {bound}\n{}", m.out);
    }
}

// ---------------------------------------------------------------------------
// Jitter, loss, duplication, reordering

#[test]
fn jitter_up_to_100ms_both_ways() {
    let _room = support::Room::Timing.enter();
    let jitter = Path {
        jitter: ms(100),
        ..Path::default()
    };
    through_relay(&Case {
        name: "jitter 0-100 ms",
        faults: Faults {
            out: jitter,
            back: jitter,
            ..Faults::default()
        },
        settings: &[
            ("SKEWGUARD_SAMPLES", "4"),
            ("SKEWGUARD_SAMPLE_INTERVAL", "100ms"),
        ],
        may_lose_all: false,
    });
}

#[test]
fn loss_30_percent_each_way() {
    let _room = support::Room::Timing.enter();
    let lossy = Path {
        loss: 0.3,
        ..Path::default()
    };
    through_relay(&Case {
        name: "30 % loss each way",
        faults: Faults {
            out: lossy,
            back: lossy,
            ..Faults::default()
        },
        // P(one exchange gets through) = 0.49; all four lost: 7 %.
        settings: &[
            ("SKEWGUARD_SAMPLES", "4"),
            ("SKEWGUARD_SAMPLE_INTERVAL", "100ms"),
            ("SKEWGUARD_TIMEOUT", "500ms"),
        ],
        may_lose_all: true,
    });
}

#[test]
fn loss_50_percent_each_way() {
    let _room = support::Room::Timing.enter();
    let lossy = Path {
        loss: 0.5,
        ..Path::default()
    };
    through_relay(&Case {
        name: "50 % loss each way",
        faults: Faults {
            out: lossy,
            back: lossy,
            ..Faults::default()
        },
        // P(one exchange gets through) = 0.25; all twelve lost: 3 %.
        settings: &[
            ("SKEWGUARD_SAMPLES", "12"),
            ("SKEWGUARD_SAMPLE_INTERVAL", "100ms"),
            ("SKEWGUARD_TIMEOUT", "400ms"),
        ],
        may_lose_all: true,
    });
}

#[test]
fn loss_with_asymmetry_and_jitter() {
    let _room = support::Room::Timing.enter();
    through_relay(&Case {
        name: "40 % loss, 200 ms out ±50",
        faults: Faults {
            out: Path {
                delay: ms(200),
                jitter: ms(50),
                loss: 0.4,
                ..Path::default()
            },
            back: Path {
                jitter: ms(20),
                loss: 0.4,
                ..Path::default()
            },
            ..Faults::default()
        },
        settings: &[
            ("SKEWGUARD_SAMPLES", "6"),
            ("SKEWGUARD_SAMPLE_INTERVAL", "100ms"),
            ("SKEWGUARD_TIMEOUT", "600ms"),
        ],
        may_lose_all: true,
    });
}

#[test]
fn every_datagram_duplicated() {
    let _room = support::Room::Timing.enter();
    let twice = Path {
        duplicate: 1.0,
        jitter: ms(20),
        ..Path::default()
    };
    through_relay(&Case {
        name: "duplicate everything",
        faults: Faults {
            out: twice,
            back: twice,
            ..Faults::default()
        },
        settings: &[
            ("SKEWGUARD_SAMPLES", "3"),
            ("SKEWGUARD_SAMPLE_INTERVAL", "100ms"),
        ],
        may_lose_all: false,
    });
}

#[test]
fn reordered_and_duplicated() {
    let _room = support::Room::Timing.enter();
    // Duplicates give the hold-and-swap something to swap with: the second
    // request (and reply) overtakes the first.
    let shuffled = Path {
        duplicate: 0.7,
        reorder: 0.5,
        hold: ms(60),
        jitter: ms(10),
        ..Path::default()
    };
    through_relay(&Case {
        name: "reorder (hold-and-swap)",
        faults: Faults {
            out: shuffled,
            back: shuffled,
            ..Faults::default()
        },
        settings: &[
            ("SKEWGUARD_SAMPLES", "4"),
            ("SKEWGUARD_SAMPLE_INTERVAL", "100ms"),
        ],
        may_lose_all: false,
    });
}

// ---------------------------------------------------------------------------
// An on-path attacker: forged replies and replays from the queried address

#[test]
fn forged_replies_before_the_genuine_one_are_ignored() {
    let _room = support::Room::Timing.enter();
    let measured = through_relay(&Case {
        name: "forged reply + forged RATE",
        faults: Faults {
            forge: true,
            ..Faults::default()
        },
        settings: &[
            ("SKEWGUARD_SAMPLES", "2"),
            ("SKEWGUARD_SAMPLE_INTERVAL", "100ms"),
        ],
        may_lose_all: false,
    });
    for (_, m) in measured {
        // Both samples were taken: no forgery ended the query early.
        assert_eq!(m.requests, 2, "{}\n{}", m.stats, m.out);
        assert_eq!(m.forged, 4, "{}\n{}", m.stats, m.out);
        assert!(
            m.out
                .number("uncertainty_seconds")
                .is_some_and(|u| u < 0.005),
            "the genuine loopback reply was used\n{}",
            m.out
        );
    }
}

#[test]
fn an_earlier_reply_replayed_to_a_later_query_is_ignored() {
    let _room = support::Room::Timing.enter();
    // Accepted, a replay 300 ms old would look like a sample with a tiny delay
    // and an offset 300 ms off, win the least-delay choice and miss the shift.
    let measured = through_relay(&Case {
        name: "replay to a later query",
        faults: Faults {
            replay: true,
            ..Faults::default()
        },
        settings: &[
            ("SKEWGUARD_SAMPLES", "4"),
            ("SKEWGUARD_SAMPLE_INTERVAL", "300ms"),
        ],
        may_lose_all: false,
    });
    for (_, m) in measured {
        assert_eq!(m.requests, 4, "{}\n{}", m.stats, m.out);
        assert_eq!(m.replayed, 3, "{}\n{}", m.stats, m.out);
    }
}

#[test]
fn everything_at_once() {
    let _room = support::Room::Timing.enter();
    let bad = Path {
        delay: ms(50),
        jitter: ms(50),
        loss: 0.2,
        duplicate: 0.3,
        reorder: 0.3,
        hold: ms(40),
    };
    through_relay(&Case {
        name: "all faults + forge + replay",
        faults: Faults {
            out: bad,
            back: Path {
                delay: ms(0),
                ..bad
            },
            forge: true,
            replay: true,
            seed: 0,
            flip: None,
        },
        settings: &[
            ("SKEWGUARD_SAMPLES", "6"),
            ("SKEWGUARD_SAMPLE_INTERVAL", "100ms"),
            ("SKEWGUARD_TIMEOUT", "600ms"),
        ],
        may_lose_all: true,
    });
}

// ---------------------------------------------------------------------------
// Falsetickers both ways. tests/it/check_peers.rs covers 0,0,+1200 (ok),
// +1200,+1200,0 (fail) and 0,+1200 (unknown); these add small lies, where the
// verdict itself depends on who is outvoted, and an honest peer on a bad path.

fn three_peers(shifts: [Option<&str>; 3]) -> Option<(Vec<Chrony>, Vec<String>)> {
    let peers = Chrony::start_all(&shifts)?;
    let uris = peers.iter().map(Chrony::uri).collect();
    Some((peers, uris))
}

fn check(uris: &[String]) -> Output {
    let sources = uris.join(",");
    run(
        &["check"],
        &[
            ("SKEWGUARD_SOURCES", sources.as_str()),
            ("SKEWGUARD_OUTPUT", "json"),
            ("SKEWGUARD_TIMEOUT", "2s"),
        ],
    )
}

fn assert_offset(out: &Output, want: f64, tolerance: f64) {
    let got = out
        .number("offset_seconds")
        .unwrap_or_else(|| panic!("offset_seconds is null\n{out}"));
    assert!(
        (got - want).abs() <= tolerance,
        "offset {got:+.6}, want {want:+} ± {tolerance}\n{out}"
    );
}

#[test]
fn a_2s_falseticker_among_two_good_peers_is_outvoted() {
    let _room = support::Room::Timing.enter();
    let Some((_peers, uris)) = three_peers([None, None, Some("+2")]) else {
        return;
    };
    let out = check(&uris);
    assert_eq!(out.verdict(), "ok", "{out}");
    out.assert_exit(0);
    assert_offset(&out, 0.0, DIRECT_TOLERANCE);
    assert_eq!(out.source(&uris[2])["status"], "falseticker", "{out}");
    for uri in &uris[..2] {
        assert_eq!(out.source(uri)["status"], "ok", "{out}");
    }
}

#[test]
fn one_good_peer_among_two_2s_behind_is_outvoted_and_warns() {
    let _room = support::Room::Timing.enter();
    let Some((_peers, uris)) = three_peers([Some("+2"), Some("+2"), None]) else {
        return;
    };
    let out = check(&uris);
    // 2 s ≥ WARN_SKEW (1 s) < MAX_SKEW (150 s).
    assert_eq!(out.verdict(), "warn", "{out}");
    out.assert_exit(0);
    assert_offset(&out, 2.0, DIRECT_TOLERANCE);
    assert_eq!(out.source(&uris[2])["status"], "falseticker", "{out}");
}

#[test]
fn one_good_peer_among_two_ahead_is_outvoted_and_fails() {
    let _room = support::Room::Timing.enter();
    let Some((_peers, uris)) = three_peers([Some("-1200"), None, Some("-1200")]) else {
        return;
    };
    let out = check(&uris);
    assert_eq!(out.verdict(), "fail", "{out}");
    out.assert_exit(1);
    assert_offset(&out, -1200.0, DIRECT_TOLERANCE);
    assert_eq!(out.source(&uris[1])["status"], "falseticker", "{out}");
}

#[test]
fn an_honest_peer_on_an_asymmetric_path_is_no_falseticker() {
    let _room = support::Room::Timing.enter();
    // Its interval is wide (±150 ms) and off-centre, but holds the truth, so it
    // agrees with the direct honest peer and the +2 s liar stays alone.
    let Some((peers, mut uris)) = three_peers([None, None, Some("+2")]) else {
        return;
    };
    let target = std::net::SocketAddr::from(([127, 0, 0, 1], peers[1].port()));
    let relay = Relay::start(
        target,
        Faults {
            out: Path::delay_ms(300),
            ..Faults::default()
        },
    );
    uris[1] = relay.uri();
    let out = check(&uris);
    assert_eq!(out.verdict(), "ok", "{out}");
    out.assert_exit(0);
    assert_eq!(out.source(&uris[1])["status"], "ok", "{out}");
    assert_eq!(out.source(&uris[2])["status"], "falseticker", "{out}");
    let bound = out.number("uncertainty_seconds").unwrap_or(f64::NAN);
    assert!(
        out.number("offset_seconds")
            .is_some_and(|o| o.abs() <= bound + FAKETIME_SLACK),
        "the combined interval holds 0\n{out}"
    );
}
