//! NTS Key Establishment records (RFC 8915 §4): the request a client sends and
//! the parse of a server's response. Pure: bytes in, values or a reason out.
//!
//! A record is `C|type` (1 critical bit, 15-bit type), a 16-bit body length
//! and the body. A message ends with an End of Message record.

use std::fmt;

/// Default NTS-KE port (TCP).
pub const KE_PORT: u16 = 4460;
/// The ALPN protocol id of NTS-KE.
pub const ALPN: &[u8] = b"ntske/1";
/// Next Protocol id of NTPv4.
pub const NEXT_PROTOCOL_NTPV4: u16 = 0;
/// AEAD_AES_SIV_CMAC_256 (IANA AEAD registry), the one algorithm offered.
pub const AEAD_AES_SIV_CMAC_256: u16 = 15;
/// Key length of AEAD_AES_SIV_CMAC_256, bytes.
pub const KEY_LEN: usize = 32;
/// TLS exporter label for the C2S and S2C keys (RFC 8915 §5.1).
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-network-time-security";
/// Largest response accepted, bytes (real servers send 1-2 KiB).
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024;
/// Most cookies kept from one response (RFC 8915 suggests 8).
pub const MAX_COOKIES: usize = 8;

const CRITICAL: u16 = 0x8000;

/// Record types (RFC 8915 §4.1).
pub mod kind {
    /// End of Message.
    pub const END_OF_MESSAGE: u16 = 0;
    /// NTS Next Protocol Negotiation.
    pub const NEXT_PROTOCOL: u16 = 1;
    /// Error.
    pub const ERROR: u16 = 2;
    /// Warning.
    pub const WARNING: u16 = 3;
    /// AEAD Algorithm Negotiation.
    pub const AEAD_ALGORITHM: u16 = 4;
    /// New Cookie for NTPv4.
    pub const NEW_COOKIE: u16 = 5;
    /// NTPv4 Server Negotiation.
    pub const SERVER: u16 = 6;
    /// NTPv4 Port Negotiation.
    pub const PORT: u16 = 7;
}

/// The exporter context for one direction: Protocol ID (NTPv4), AEAD id, and
/// 0x00 for client-to-server or 0x01 for server-to-client (RFC 8915 §5.1).
pub fn key_context(server_to_client: bool) -> [u8; 5] {
    let p = NEXT_PROTOCOL_NTPV4.to_be_bytes();
    let a = AEAD_AES_SIV_CMAC_256.to_be_bytes();
    [p[0], p[1], a[0], a[1], u8::from(server_to_client)]
}

/// Appends one record.
pub fn push_record(out: &mut Vec<u8>, critical: bool, kind: u16, body: &[u8]) {
    let head = (kind & !CRITICAL) | if critical { CRITICAL } else { 0 };
    out.extend_from_slice(&head.to_be_bytes());
    out.extend_from_slice(&(body.len().min(usize::from(u16::MAX)) as u16).to_be_bytes());
    out.extend_from_slice(&body[..body.len().min(usize::from(u16::MAX))]);
}

/// The client's request: NTPv4 as next protocol, AES-SIV-CMAC-256, end.
pub fn request() -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    push_record(
        &mut out,
        true,
        kind::NEXT_PROTOCOL,
        &NEXT_PROTOCOL_NTPV4.to_be_bytes(),
    );
    push_record(
        &mut out,
        true,
        kind::AEAD_ALGORITHM,
        &AEAD_AES_SIV_CMAC_256.to_be_bytes(),
    );
    push_record(&mut out, true, kind::END_OF_MESSAGE, &[]);
    out
}

/// One record as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// The critical bit.
    pub critical: bool,
    /// The type, without the critical bit.
    pub kind: u16,
    /// The body.
    pub body: &'a [u8],
}

/// Splits the first record off `bytes`: `Ok(None)` if more bytes are needed.
pub fn next_record(bytes: &[u8]) -> Option<(Record<'_>, &[u8])> {
    if bytes.len() < 4 {
        return None;
    }
    let head = u16::from_be_bytes([bytes[0], bytes[1]]);
    let len = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
    let rest = &bytes[4..];
    if rest.len() < len {
        return None;
    }
    Some((
        Record {
            critical: head & CRITICAL != 0,
            kind: head & !CRITICAL,
            body: &rest[..len],
        },
        &rest[len..],
    ))
}

/// What a successful key exchange gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeResponse {
    /// Cookies for NTP requests (at most [`MAX_COOKIES`]).
    pub cookies: Vec<Vec<u8>>,
    /// The NTP server to ask, if the KE server named one.
    pub server: Option<String>,
    /// The NTP port to ask, if the KE server named one.
    pub port: Option<u16>,
}

/// Why a key exchange response is not usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeError {
    /// The server sent an Error record with this code.
    ServerError(u16),
    /// The server sent a Warning record with this code.
    ServerWarning(u16),
    /// A critical record of a type this client does not know.
    UnknownCritical(u16),
    /// The Next Protocol record is missing or is not exactly NTPv4.
    NextProtocol(Option<Vec<u16>>),
    /// The AEAD record is missing or is not AES-SIV-CMAC-256.
    Aead(Option<Vec<u16>>),
    /// No cookie was given.
    NoCookies,
    /// A record's body is malformed (which record).
    Malformed(&'static str),
    /// Bytes after End of Message, or a response over [`MAX_RESPONSE_BYTES`].
    Framing(&'static str),
}

impl fmt::Display for KeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |v: &Option<Vec<u16>>| match v {
            None => "none".to_string(),
            Some(v) => format!("{v:?}"),
        };
        match self {
            KeError::ServerError(code) => write!(
                f,
                "the NTS-KE server sent Error {code} ({})",
                match code {
                    0 => "unrecognized critical record",
                    1 => "bad request",
                    2 => "internal server error",
                    _ => "unknown code",
                }
            ),
            KeError::ServerWarning(code) => {
                write!(
                    f,
                    "the NTS-KE server sent Warning {code}, which this client does not know"
                )
            }
            KeError::UnknownCritical(t) => {
                write!(
                    f,
                    "the NTS-KE response holds an unknown critical record (type {t})"
                )
            }
            KeError::NextProtocol(v) => write!(
                f,
                "the NTS-KE server did not agree on NTPv4 as next protocol (it sent {})",
                list(v)
            ),
            KeError::Aead(v) => write!(
                f,
                "the NTS-KE server did not agree on AEAD_AES_SIV_CMAC_256 (15) (it sent {})",
                list(v)
            ),
            KeError::NoCookies => f.write_str("the NTS-KE server sent no cookie"),
            KeError::Malformed(what) => write!(f, "malformed NTS-KE {what} record"),
            KeError::Framing(what) => write!(f, "NTS-KE response: {what}"),
        }
    }
}

impl std::error::Error for KeError {}

fn u16_list(body: &[u8]) -> Option<Vec<u16>> {
    if body.len() % 2 != 0 {
        return None;
    }
    Some(
        body.chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect(),
    )
}

/// Parses a response: `Ok(None)` while End of Message has not arrived yet.
pub fn parse_response(bytes: &[u8]) -> Result<Option<KeResponse>, KeError> {
    if bytes.len() > MAX_RESPONSE_BYTES {
        return Err(KeError::Framing("longer than 16 KiB"));
    }
    let mut rest = bytes;
    let mut next_protocol = None;
    let mut aead = None;
    let mut out = KeResponse {
        cookies: Vec::new(),
        server: None,
        port: None,
    };
    loop {
        let Some((record, after)) = next_record(rest) else {
            return Ok(None);
        };
        rest = after;
        match record.kind {
            kind::END_OF_MESSAGE => break,
            kind::NEXT_PROTOCOL => {
                next_protocol =
                    Some(u16_list(record.body).ok_or(KeError::Malformed("Next Protocol"))?)
            }
            kind::ERROR => {
                let code = u16_list(record.body)
                    .filter(|v| v.len() == 1)
                    .ok_or(KeError::Malformed("Error"))?;
                return Err(KeError::ServerError(code[0]));
            }
            kind::WARNING => {
                let code = u16_list(record.body)
                    .filter(|v| v.len() == 1)
                    .ok_or(KeError::Malformed("Warning"))?;
                return Err(KeError::ServerWarning(code[0]));
            }
            kind::AEAD_ALGORITHM => {
                aead = Some(u16_list(record.body).ok_or(KeError::Malformed("AEAD Algorithm"))?)
            }
            kind::NEW_COOKIE => {
                if record.body.is_empty() {
                    return Err(KeError::Malformed("New Cookie"));
                }
                if out.cookies.len() < MAX_COOKIES {
                    out.cookies.push(record.body.to_vec());
                }
            }
            kind::SERVER => {
                let name = std::str::from_utf8(record.body)
                    .ok()
                    .filter(|s| {
                        !s.is_empty()
                            && s.len() <= 253
                            && s.bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b".-:".contains(&b))
                    })
                    .ok_or(KeError::Malformed("NTPv4 Server Negotiation"))?;
                out.server = Some(name.to_string());
            }
            kind::PORT => {
                let port = u16_list(record.body)
                    .filter(|v| v.len() == 1 && v[0] != 0)
                    .ok_or(KeError::Malformed("NTPv4 Port Negotiation"))?;
                out.port = Some(port[0]);
            }
            other if record.critical => return Err(KeError::UnknownCritical(other)),
            _ => {}
        }
    }
    if !rest.is_empty() {
        return Err(KeError::Framing("bytes after End of Message"));
    }
    if next_protocol.as_deref() != Some(&[NEXT_PROTOCOL_NTPV4][..]) {
        return Err(KeError::NextProtocol(next_protocol));
    }
    if aead.as_deref() != Some(&[AEAD_AES_SIV_CMAC_256][..]) {
        return Err(KeError::Aead(aead));
    }
    if out.cookies.is_empty() {
        return Err(KeError::NoCookies);
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn response(extra: &[(bool, u16, Vec<u8>)]) -> Vec<u8> {
        let mut out = Vec::new();
        push_record(&mut out, true, kind::NEXT_PROTOCOL, &[0, 0]);
        push_record(&mut out, false, kind::AEAD_ALGORITHM, &[0, 15]);
        for (c, k, b) in extra {
            push_record(&mut out, *c, *k, b);
        }
        push_record(&mut out, false, kind::NEW_COOKIE, &[7; 100]);
        push_record(&mut out, true, kind::END_OF_MESSAGE, &[]);
        out
    }

    #[test]
    fn the_request_is_next_protocol_aead_end() {
        assert_eq!(
            request(),
            [0x80, 1, 0, 2, 0, 0, 0x80, 4, 0, 2, 0, 15, 0x80, 0, 0, 0]
        );
        assert_eq!(key_context(false), [0, 0, 0, 15, 0]);
        assert_eq!(key_context(true), [0, 0, 0, 15, 1]);
    }

    #[test]
    fn parses_cookies_server_and_port() {
        let r = response(&[
            (true, kind::SERVER, b"ntp.example".to_vec()),
            (true, kind::PORT, vec![0x2b, 0x67]),
            (false, 0x4321, vec![1, 2, 3]),
        ]);
        let got = parse_response(&r).unwrap().unwrap();
        assert_eq!(got.cookies, vec![vec![7; 100]]);
        assert_eq!(got.server.as_deref(), Some("ntp.example"));
        assert_eq!(got.port, Some(11111));
        // Every proper prefix asks for more.
        for n in 0..r.len() {
            assert_eq!(parse_response(&r[..n]), Ok(None), "{n}");
        }
    }

    #[test]
    fn refuses_what_the_rfc_refuses() {
        let cases: Vec<(Vec<u8>, KeError)> = vec![
            (
                response(&[(true, kind::ERROR, vec![0, 1])]),
                KeError::ServerError(1),
            ),
            (
                response(&[(false, kind::WARNING, vec![0, 9])]),
                KeError::ServerWarning(9),
            ),
            (
                response(&[(true, 0x1234, vec![])]),
                KeError::UnknownCritical(0x1234),
            ),
            (
                response(&[(true, kind::PORT, vec![0, 0])]),
                KeError::Malformed("NTPv4 Port Negotiation"),
            ),
            (
                response(&[(true, kind::SERVER, b"a b".to_vec())]),
                KeError::Malformed("NTPv4 Server Negotiation"),
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(parse_response(&bytes), Err(want.clone()), "{want}");
        }
        let mut no_cookie = Vec::new();
        push_record(&mut no_cookie, true, kind::NEXT_PROTOCOL, &[0, 0]);
        push_record(&mut no_cookie, true, kind::AEAD_ALGORITHM, &[0, 15]);
        push_record(&mut no_cookie, true, kind::END_OF_MESSAGE, &[]);
        assert_eq!(parse_response(&no_cookie), Err(KeError::NoCookies));
        let mut other_aead = Vec::new();
        push_record(&mut other_aead, true, kind::NEXT_PROTOCOL, &[0, 0]);
        push_record(&mut other_aead, true, kind::AEAD_ALGORITHM, &[0, 17]);
        push_record(&mut other_aead, true, kind::END_OF_MESSAGE, &[]);
        assert_eq!(
            parse_response(&other_aead),
            Err(KeError::Aead(Some(vec![17])))
        );
        let mut trailing = response(&[]);
        trailing.push(0);
        assert!(matches!(
            parse_response(&trailing),
            Err(KeError::Framing(_))
        ));
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse_response(&bytes);
        }
    }
}
