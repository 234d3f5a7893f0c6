//! `ntp_packet`: a datagram from a hostile server, and the local T1/T4.
//!
//! Input layout (so that seeds are real packets behind a short header):
//!
//! ```text
//! byte 0       flags: bit 0 set = the nonce is the datagram's own origin field
//!              (an honest echo, so validation gets past the origin check);
//!              clear = bytes 1..9 are the nonce (a stale or spoofed reply)
//! bytes 1..9   nonce (big-endian), when bit 0 is clear
//! bytes 9..17  T1, local transmit time (NTP timestamp, big-endian)
//! bytes 17..25 T4, local receive time
//! bytes 25..   the datagram
//! ```
//!
//! Inputs shorter than 25 bytes are zero-padded.

use skewguard::proto::ntp::packet::{
    bounded_sample, check_reply, rate_backoff, sample, Exchange, KissCode, NtpTimestamp, Packet,
    Rejection, MAX_RATE_BACKOFF, MAX_ROOT_DISTANCE_SECS, MIN_RATE_BACKOFF, MODE_SERVER, PACKET_LEN,
    UNSYNCHRONISED_STRATUM,
};

use crate::assert_printable;

/// Length of the header in front of the datagram.
pub const HEADER_LEN: usize = 25;

fn u64_at(h: &[u8; HEADER_LEN], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[at..at + 8]);
    u64::from_be_bytes(b)
}

/// Checks every property for one input.
pub fn check(data: &[u8]) {
    let mut header = [0u8; HEADER_LEN];
    let n = data.len().min(HEADER_LEN);
    header[..n].copy_from_slice(&data[..n]);
    let datagram = &data[n..];
    let t1 = NtpTimestamp(u64_at(&header, 9));
    let t4 = NtpTimestamp(u64_at(&header, 17));

    let parsed = Packet::parse(datagram);
    let nonce = match (&parsed, header[0] & 1) {
        (Ok(p), 1) => p.origin,
        _ => NtpTimestamp(u64_at(&header, 1)),
    };

    match parsed {
        Err(e) => {
            assert!(
                datagram.len() < PACKET_LEN,
                "{e} for {} bytes",
                datagram.len()
            );
            assert_eq!(e, Rejection::TooShort(datagram.len()));
        }
        Ok(p) => {
            assert!(datagram.len() >= PACKET_LEN);
            // Byte-exact: every field of the header survives parse → encode.
            assert_eq!(p.to_bytes()[..], datagram[..PACKET_LEN], "{p:?}");
            assert_eq!(Packet::parse(&p.to_bytes()), Ok(p));
            assert!(p.leap <= 3 && p.version <= 7 && p.mode <= 7, "{p:?}");
            for v in [p.root_delay, p.root_dispersion, p.root_distance()] {
                assert!(v.is_finite() && v >= 0.0, "{p:?}");
            }
            let backoff = rate_backoff(p.poll);
            assert!(backoff >= MIN_RATE_BACKOFF && backoff <= MAX_RATE_BACKOFF);
            assert_printable(&KissCode(p.reference_id).to_string());
        }
    }

    let verdict = check_reply(datagram, nonce);
    if let Err(e) = &verdict {
        assert_printable(&e.to_string());
    }
    let Ok(p) = parsed else {
        assert!(verdict.is_err());
        return;
    };
    match verdict {
        Ok(accepted) => {
            assert_eq!(accepted, p);
            assert_eq!(
                p.origin, nonce,
                "accepted a reply to someone else's request"
            );
            assert_eq!(p.mode, MODE_SERVER);
            assert!(matches!(p.version, 3 | 4), "{p:?}");
            assert!(
                p.stratum != 0 && p.stratum < UNSYNCHRONISED_STRATUM,
                "{p:?}"
            );
            assert_ne!(p.leap, 3, "accepted an unsynchronised (LI=3) server");
            assert!(!p.transmit.is_zero() && !p.receive.is_zero(), "{p:?}");
            assert!((p.transmit - p.receive).0 >= 0, "accepted T3 < T2: {p:?}");
            assert!(p.root_distance() <= MAX_ROOT_DISTANCE_SECS);
            check_sample(t1, &p, t4);
        }
        Err(Rejection::KissOfDeath(code)) => {
            // A KoD is obeyed, so only one that answers our request may say so.
            assert_eq!(
                p.origin, nonce,
                "a spoofed Kiss-o'-Death was reported as genuine"
            );
            assert_eq!(p.stratum, 0);
            assert_eq!(code, KissCode(p.reference_id));
            assert_ne!(p.reference_id, [0; 4], "an empty code is no kiss");
        }
        Err(Rejection::Unsynchronised) => {
            assert_eq!((p.stratum, p.reference_id), (0, [0; 4]), "{p:?}");
            assert_eq!(p.origin, nonce);
        }
        Err(e) => {
            if p.origin != nonce {
                assert!(
                    matches!(
                        e,
                        Rejection::WrongOrigin
                            | Rejection::NotServerMode(_)
                            | Rejection::BadVersion(_)
                    ),
                    "foreign reply rejected for {e:?}"
                );
            }
        }
    }

    // The on-wire math on the server's timestamps and arbitrary local ones,
    // accepted or not: finite, and blind to the era (shifting all four
    // timestamps by the same amount changes nothing).
    let x = Exchange::new(t1, p.receive, p.transmit, t4);
    assert!(x.offset.is_finite() && x.delay.is_finite(), "{x:?}");
    let shift = u64_at(&header, 1);
    let moved = |t: NtpTimestamp| NtpTimestamp(t.0.wrapping_add(shift));
    let y = Exchange::new(moved(t1), moved(p.receive), moved(p.transmit), moved(t4));
    assert_eq!(x, y, "shifted by {shift:#x}");
    check_sample(t1, &p, t4);
}

/// The sample of a reply: an error bound that is a real, non-negative number
/// and covers at least half the round trip and the root distance.
fn check_sample(t1: NtpTimestamp, p: &Packet, t4: NtpTimestamp) {
    let s = sample(t1, p, t4);
    assert!(s.offset.is_finite(), "{s:?}");
    assert!(s.rtt.is_finite() && s.rtt >= 0.0, "{s:?}");
    assert!(s.uncertainty.is_finite() && s.uncertainty >= 0.0, "{s:?}");
    assert!(s.uncertainty >= s.rtt / 2.0, "{s:?}");
    assert!(s.uncertainty >= p.root_distance(), "{s:?} for {p:?}");
    let x = Exchange::new(t1, p.receive, p.transmit, t4);
    // Two server clocks (δ < 0): the bound holds what T2 alone and T3 alone allow.
    // T2 − T4 and T3 − T1 are read along the exchange, as `Exchange::new`
    // does: (T2 − T1) − (T4 − T1) and (T2 − T1) + (T3 − T2). Each difference
    // is only known modulo an era; when the four timestamps span more than
    // half of one (a hostile 54-year hold time, or arbitrary T1/T4), the
    // direct nearest differences contradict each other, and the rule
    // promises nothing about a reading it does not use.
    if x.delay < 0.0 && (p.transmit - p.receive).0 >= 0 {
        let diff = |a: NtpTimestamp, b: NtpTimestamp| i128::from((a - b).0);
        let (out, hold, local) = (
            diff(p.receive, t1),
            diff(p.transmit, p.receive),
            diff(t4, t1),
        );
        let secs = |v: i128| v as f64 / 4_294_967_296.0;
        let slack = 1e-6 * (1.0 + s.offset.abs());
        let t2_alone = secs(out - local);
        let t3_alone = secs(out + hold);
        assert!(s.offset - s.uncertainty <= t2_alone + slack, "{s:?} {p:?}");
        assert!(s.offset + s.uncertainty >= t3_alone - slack, "{s:?} {p:?}");
    }
    // The maximum error refuses exactly the wider samples.
    for max in [0.0, 0.5, 3.0, 1e9] {
        match bounded_sample(t1, p, t4, max) {
            Ok(b) => assert!(b == s && s.uncertainty <= max),
            Err(Rejection::ErrorBound { bound, max: m }) => {
                assert!(bound > max && m == max, "{bound} {max}")
            }
            Err(e) => panic!("{e:?}"),
        }
    }
}
