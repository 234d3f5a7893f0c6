//! Whole-program tests of the `roughtime://` source against two independent
//! real servers on loopback: roughenough 1.3.0-draft14 (Rust, IETF draft 14,
//! radius 5 s, whole-second midpoints) and pyroughtime 1.0.1 (Python, draft
//! 07, radius 0.1 s), each with its clock shifted by libfaketime. On-path
//! faults through the relay: one flipped byte, a replayed reply; and a wrong
//! pinned key. Every reply that does not verify is an error, never a vote.

use crate::support;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use support::relay::{Faults, Path, Relay};
use support::{run, Output, RoughtimeKind, RoughtimeServer};

const KINDS: [RoughtimeKind; 2] = [RoughtimeKind::Roughenough, RoughtimeKind::PyRoughtime];

fn check(sources: &str, extra: &[(&str, &str)]) -> Output {
    let mut envs = vec![("SKEWGUARD_SOURCES", sources), ("SKEWGUARD_TIMEOUT", "2s")];
    envs.extend_from_slice(extra);
    run(&["check", "--output", "json"], &envs)
}

/// `roughtime://127.0.0.1:PORT#KEY` of `server`'s key at another port (a relay's).
fn via(port: u16, server: &RoughtimeServer) -> String {
    format!("roughtime://127.0.0.1:{port}#{}", server.key())
}

/// The report's entry for `uri`, whatever form of the key `uri` uses.
fn entry<'a>(out: &'a Output, uri: &str) -> &'a serde_json::Value {
    let canonical = skewguard::proto::Source::parse(uri)
        .expect("a valid source")
        .to_string();
    out.source(&canonical)
}

#[test]
fn roughtime_measures_both_peers_shifted_within_their_radius() {
    let _room = support::Room::Timing.enter();
    for kind in KINDS {
        for (shift, want) in [("+1200", 1200.0), ("-400.5", -400.5)] {
            let Some(server) = RoughtimeServer::start(kind, Some(shift)) else {
                return;
            };
            let out = check(&server.uri(), &[]);
            let s = entry(&out, &server.uri());
            assert_eq!(
                s["status"],
                "ok",
                "{kind:?} {shift}\n{out}\n{}",
                server.log()
            );
            assert_eq!(s["authenticated"], true, "{out}");
            assert_eq!(s["trust"], "clock-independent", "{out}");
            // The only source, authenticated on its own: it decides (MAX_SKEW 150 s),
            // though its 5.5 s bound (roughenough) is above MAX_SOURCE_ERROR (3 s).
            assert_eq!(out.verdict(), "fail", "{out}");
            let offset = s["offset_seconds"].as_f64().unwrap_or(f64::NAN);
            let bound = s["uncertainty_seconds"].as_f64().unwrap_or(f64::NAN);
            assert!(
                (offset - want).abs() <= bound,
                "{kind:?} {shift}: {offset} ± {bound} misses {want}\n{out}"
            );
            // radius (5 s; 0.1 s) + half a whole-second step (roughenough) + rtt/2
            let most = match kind {
                RoughtimeKind::Roughenough => 5.5 + 0.5,
                RoughtimeKind::PyRoughtime => 0.1 + 0.5,
            };
            assert!(bound <= most, "{kind:?}: bound {bound}\n{out}");
            println!(
                "roughtime {kind:?} {shift}: measured {offset:+.6} s ± {bound:.6} (error {:+.6} s)",
                offset - want
            );
        }
    }
}

#[test]
fn roughtime_a_flipped_byte_is_a_verification_failure_not_a_vote() {
    let _room = support::Room::Timing.enter();
    for kind in KINDS {
        let Some(server) = RoughtimeServer::start(kind, Some("+1200")) else {
            return;
        };
        let target = SocketAddr::from(([127, 0, 0, 1], server.port()));
        // Byte 200 lies in the signed part or the certificate of both replies.
        let relay = Relay::start(
            target,
            Faults {
                flip: Some(200),
                ..Faults::default()
            },
        );
        let uri = via(relay.port(), &server);
        let out = check(&uri, &[("SKEWGUARD_TIMEOUT", "1s")]);
        let s = entry(&out, &uri);
        assert_eq!(s["status"], "error", "{kind:?}\n{out}");
        let e = s["error"].as_str().unwrap_or_default();
        assert!(e.starts_with("verification failed"), "{kind:?}: {e}\n{out}");
        assert_eq!(out.verdict(), "unknown", "{out}");
        assert!(
            relay.stats().replies.load(Ordering::Relaxed) >= 1,
            "{}",
            relay.stats()
        );
        println!("roughtime {kind:?} flipped byte: {e}");
    }
}

#[test]
fn roughtime_a_wrong_key_is_a_verification_failure() {
    let _room = support::Room::Timing.enter();
    let (Some(a), Some(b)) = (
        RoughtimeServer::start(RoughtimeKind::Roughenough, None),
        RoughtimeServer::start(RoughtimeKind::PyRoughtime, None),
    ) else {
        return;
    };
    // Each server queried with the other's key.
    for (server, other) in [(&a, &b), (&b, &a)] {
        let uri = format!("roughtime://127.0.0.1:{}#{}", server.port(), other.key());
        let out = check(&uri, &[]);
        let s = entry(&out, &uri);
        assert_eq!(s["status"], "error", "{out}");
        let e = s["error"].as_str().unwrap_or_default();
        assert!(
            e.contains("not signed by the pinned long-term key"),
            "{:?}: {e}\n{out}",
            server.kind()
        );
        assert_eq!(out.verdict(), "unknown", "{out}");
    }
}

#[test]
fn roughtime_a_replayed_reply_for_another_nonce_is_refused() {
    let _room = support::Room::Timing.enter();
    for kind in KINDS {
        let Some(server) = RoughtimeServer::start(kind, Some("-400.5")) else {
            return;
        };
        let target = SocketAddr::from(([127, 0, 0, 1], server.port()));
        // The genuine replies never arrive; each later query gets the reply
        // to the one before.
        let relay = Relay::start(
            target,
            Faults {
                replay: true,
                back: Path {
                    loss: 1.0,
                    ..Path::default()
                },
                ..Faults::default()
            },
        );
        let uri = via(relay.port(), &server);
        let first = check(&uri, &[("SKEWGUARD_TIMEOUT", "1s")]);
        assert_eq!(entry(&first, &uri)["status"], "error", "{first}");
        let out = check(&uri, &[("SKEWGUARD_TIMEOUT", "1s")]);
        let s = entry(&out, &uri);
        assert_eq!(s["status"], "error", "{kind:?}\n{out}");
        let e = s["error"].as_str().unwrap_or_default();
        assert!(
            e.starts_with("verification failed") && e.contains("nonces"),
            "{kind:?}: {e}\n{out}"
        );
        assert!(
            relay.stats().replayed.load(Ordering::Relaxed) >= 1,
            "{}",
            relay.stats()
        );

        // With the genuine reply let through after the replay, the replay is
        // ignored and the genuine one measured.
        let honest = Relay::start(
            target,
            Faults {
                replay: true,
                ..Faults::default()
            },
        );
        let uri = via(honest.port(), &server);
        let _prime = check(&uri, &[]);
        let out = check(&uri, &[]);
        let s = entry(&out, &uri);
        assert_eq!(s["status"], "ok", "{kind:?}\n{out}");
        let offset = s["offset_seconds"].as_f64().unwrap_or(f64::NAN);
        let bound = s["uncertainty_seconds"].as_f64().unwrap_or(f64::NAN);
        assert!((offset + 400.5).abs() <= bound, "{offset} ± {bound}\n{out}");
        assert!(
            honest.stats().replayed.load(Ordering::Relaxed) >= 1,
            "{}",
            honest.stats()
        );
    }
}

#[test]
fn roughtime_without_a_key_is_a_configuration_error() {
    let out = check("roughtime://127.0.0.1:2002", &[]);
    out.assert_exit(2);
    assert!(out.stderr.contains("public key"), "{out}");
}

/// The trust ladder with a real Roughtime peer: on a good clock, a Roughtime
/// server outranks two forged NTP servers (+600 s) and a date-exempted HTTPS
/// server holding the key of a certificate that expired a year ago (its
/// clock a year back): the verdict is Roughtime's, the others are left out.
#[test]
fn roughtime_outranks_date_exempted_and_unauthenticated_sources() {
    let _room = support::Room::Timing.enter();
    let Some(server) = RoughtimeServer::start(RoughtimeKind::PyRoughtime, None) else {
        return;
    };
    let dir = support::TempDir::new("roughtime-ladder");
    let authority = support::tls::TestCa::new();
    let ca = authority.write(dir.path()).display().to_string();
    let old = support::tls::HttpsDate::start(
        &authority.leaf_days(-400, -365),
        support::tls::DateHeader::Shifted(-380 * 86_400),
    );
    let ntp = [
        support::tls::ForgedNtp::start(600.0),
        support::tls::ForgedNtp::start(600.0),
    ];
    let sources = format!(
        "{},{},{},{}",
        ntp[0].uri(),
        ntp[1].uri(),
        old.url(),
        server.uri()
    );
    let out = check(
        &sources,
        &[("SKEWGUARD_CA_FILE", &ca), ("SKEWGUARD_HTTP_BUDGET", "0")],
    );
    assert_eq!(out.verdict(), "ok", "{out}");
    out.assert_exit(0);
    assert_eq!(entry(&out, &server.uri())["status"], "ok", "{out}");
    assert_eq!(out.source(&old.url())["trust"], "date-exempted", "{out}");
    assert_eq!(out.source(&old.url())["status"], "falseticker", "{out}");
    for n in &ntp {
        assert_eq!(out.source(&n.uri())["status"], "falseticker", "{out}");
    }
}
