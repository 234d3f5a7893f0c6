//! `nts_ke`: an NTS-KE response from a hostile server (RFC 8915 §4 records).
//!
//! Properties: parsing never panics; an accepted response has 1..=8 cookies,
//! and encoding it again parses to the same value; error texts are printable.

use skewguard::proto::nts::ke::{
    kind, parse_response, push_record, KeResponse, AEAD_AES_SIV_CMAC_256, MAX_COOKIES,
    NEXT_PROTOCOL_NTPV4,
};

use crate::assert_printable;

fn encode(r: &KeResponse) -> Vec<u8> {
    let mut out = Vec::new();
    push_record(&mut out, true, kind::NEXT_PROTOCOL, &NEXT_PROTOCOL_NTPV4.to_be_bytes());
    push_record(&mut out, true, kind::AEAD_ALGORITHM, &AEAD_AES_SIV_CMAC_256.to_be_bytes());
    for c in &r.cookies {
        push_record(&mut out, false, kind::NEW_COOKIE, c);
    }
    if let Some(s) = &r.server {
        push_record(&mut out, true, kind::SERVER, s.as_bytes());
    }
    if let Some(p) = r.port {
        push_record(&mut out, true, kind::PORT, &p.to_be_bytes());
    }
    push_record(&mut out, true, kind::END_OF_MESSAGE, &[]);
    out
}

/// Checks every property for one input.
pub fn check(data: &[u8]) {
    match parse_response(data) {
        Ok(Some(r)) => {
            assert!(!r.cookies.is_empty() && r.cookies.len() <= MAX_COOKIES);
            assert!(r.port != Some(0));
            assert_eq!(parse_response(&encode(&r)), Ok(Some(r)));
        }
        Ok(None) => {}
        Err(e) => assert_printable(&e.to_string()),
    }
}
