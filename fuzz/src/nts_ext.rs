//! `nts_ext`: NTP extension fields of an NTS reply from a hostile server.
//!
//! Input layout: byte 0 picks a byte to flip (below), the rest is a datagram.
//! Properties: checking never panics and its error texts are printable; a
//! genuine reply built around the input's cookies verifies and gives them back;
//! the same reply with any one byte flipped never verifies.

use skewguard::proto::nts::ext::{check_reply, fields, push_field, seal_reply, AUTHENTICATOR, COOKIE, UID_LEN, UNIQUE_IDENTIFIER};

use crate::assert_printable;

const S2C: [u8; 32] = [0x5a; 32];

/// Checks every property for one input.
pub fn check(data: &[u8]) {
    let (flip, datagram) = data.split_first().map_or((0, &[][..]), |(f, d)| (*f, d));
    let uid = [7u8; UID_LEN];
    if let Err(e) = check_reply(datagram, &uid, &S2C) {
        assert_printable(&e.to_string());
    }
    if let Ok(f) = fields(datagram, 0) {
        let total: usize = f.iter().map(|f| f.body.len() + 4).sum();
        assert_eq!(total, datagram.len());
    }
    // A genuine reply carrying cookies cut from the input.
    let cookies: Vec<&[u8]> = datagram.chunks(100).filter(|c| !c.is_empty()).take(8).collect();
    let mut reply = vec![0x24; 48];
    push_field(&mut reply, UNIQUE_IDENTIFIER, &uid).unwrap();
    let mut plain = Vec::new();
    for c in &cookies {
        push_field(&mut plain, COOKIE, c).unwrap();
    }
    let nonce = [3u8; 16];
    let ct = seal_reply(&S2C, &reply, &nonce, &plain).unwrap();
    let mut body = Vec::new();
    body.extend_from_slice(&16u16.to_be_bytes());
    body.extend_from_slice(&(ct.len() as u16).to_be_bytes());
    body.extend_from_slice(&nonce);
    body.extend_from_slice(&ct);
    push_field(&mut reply, AUTHENTICATOR, &body).unwrap();
    let got = check_reply(&reply, &uid, &S2C).expect("a genuine reply verifies");
    // Padding is part of a cookie's field body: compare the padded prefixes.
    assert_eq!(got.len(), cookies.len());
    for (g, c) in got.iter().zip(&cookies) {
        assert_eq!(&g[..c.len()], *c);
    }
    let at = usize::from(flip) * reply.len() / 256;
    let mut bad = reply.clone();
    bad[at] ^= 0x80;
    assert!(check_reply(&bad, &uid, &S2C).is_err(), "flipped byte {at} still verifies");
}
