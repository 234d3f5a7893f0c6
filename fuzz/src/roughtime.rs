//! `roughtime`: a Roughtime reply from a hostile server or path.
//!
//! Input layout: byte 0 picks the peer whose key and request the datagram is
//! checked against (even: roughenough's, odd: pyroughtime's, both captured on
//! loopback in `tests/fixtures/roughtime/peers/`) and a byte position; the rest
//! is a datagram. Properties: parsing and verification never panic and their
//! error texts are printable; a parsed message re-encodes byte for byte; a
//! datagram that verifies says exactly what the peer's genuine signed reply
//! says (version, midpoint, radius); the genuine reply with the chosen byte
//! flipped never verifies.

use skewguard::proto::roughtime::message::{encode, unframe, Message};
use skewguard::proto::roughtime::reply::{claimed_nonce, verify, Verified};
use skewguard::proto::roughtime::request::{Family, Sent};

use crate::assert_printable;

struct Peer {
    key: [u8; 32],
    sent: Sent,
    reply: Vec<u8>,
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

fn peer(fixture: &str, family: Family) -> Peer {
    let v: serde_json::Value = serde_json::from_str(fixture).unwrap();
    let request = hex(v["request"][0].as_str().unwrap());
    let (body, _) = unframe(&request).unwrap();
    let nonce = Message::parse(body)
        .unwrap()
        .get(skewguard::proto::roughtime::message::NONC)
        .unwrap()
        .to_vec();
    Peer {
        key: hex(v["public_key"].as_str().unwrap()).try_into().unwrap(),
        sent: Sent {
            family,
            nonce,
            bytes: request,
        },
        reply: hex(v["replies"][0].as_str().unwrap()),
    }
}

fn peers() -> &'static [Peer; 2] {
    static PEERS: std::sync::OnceLock<[Peer; 2]> = std::sync::OnceLock::new();
    PEERS.get_or_init(|| {
        [
            peer(
                include_str!("../../tests/fixtures/roughtime/peers/roughenough_1.3.0-draft14.json"),
                Family::Ietf,
            ),
            peer(
                include_str!("../../tests/fixtures/roughtime/peers/pyroughtime_1.0.1.json"),
                Family::Draft07,
            ),
        ]
    })
}

fn genuine(p: &Peer) -> Verified {
    verify(&p.reply, &p.key, &p.sent).expect("the captured reply verifies")
}

/// Checks every property for one input.
pub fn check(data: &[u8]) {
    let (choice, datagram) = data.split_first().map_or((0, &[][..]), |(c, d)| (*c, d));
    let p = &peers()[usize::from(choice & 1)];

    if let Ok((body, _)) = unframe(datagram) {
        if let Ok(m) = Message::parse(body) {
            let fields: Vec<(u32, &[u8])> = m.tags().map(|t| (t, m.get(t).unwrap())).collect();
            if !fields.is_empty() {
                assert_eq!(encode(&fields), body, "re-encoding differs");
            }
        }
    }
    let _ = claimed_nonce(datagram);
    for family in [Family::Ietf, Family::Draft07, Family::Google] {
        let sent = Sent {
            family,
            ..p.sent.clone()
        };
        match verify(datagram, &p.key, &sent) {
            Err(e) => assert_printable(&e.to_string()),
            Ok(v) => {
                assert_eq!(family, p.sent.family, "verified under a family not sent");
                assert_eq!(v, genuine(p), "a verified reply says something else");
            }
        }
    }
    let at = usize::from(choice >> 1) * p.reply.len() / 128;
    let mut bad = p.reply.clone();
    bad[at] ^= 0x01;
    assert!(
        verify(&bad, &p.key, &p.sent).is_err(),
        "flipped byte {at} still verifies"
    );
}
