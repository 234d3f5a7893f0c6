//! NTP extension fields for NTS (RFC 8915 §5) and their AEAD protection:
//! building a request (Unique Identifier, NTS Cookie, placeholders, NTS
//! Authenticator) and checking a reply. Pure: bytes and keys in, bytes or a
//! reason out. The 48-byte header itself is `crate::proto::ntp::packet`'s business.

use std::fmt;

use aes_siv::siv::Aes128Siv;
use aes_siv::KeyInit;

use crate::proto::ntp::packet::PACKET_LEN;

/// Unique Identifier.
pub const UNIQUE_IDENTIFIER: u16 = 0x0104;
/// NTS Cookie.
pub const COOKIE: u16 = 0x0204;
/// NTS Cookie Placeholder.
pub const COOKIE_PLACEHOLDER: u16 = 0x0304;
/// NTS Authenticator and Encrypted Extension Fields.
pub const AUTHENTICATOR: u16 = 0x0404;
/// Length of the Unique Identifier this client sends, bytes.
pub const UID_LEN: usize = 32;
/// Length of the AEAD nonce this client sends, bytes.
pub const NONCE_LEN: usize = 16;
/// Most cookies taken from one reply.
pub const MAX_COOKIES: usize = 8;

/// C2S and S2C keys (AEAD_AES_SIV_CMAC_256: 32 bytes each).
#[derive(Clone, PartialEq, Eq)]
pub struct Keys {
    /// Client to server.
    pub c2s: [u8; 32],
    /// Server to client.
    pub s2c: [u8; 32],
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Keys(…)")
    }
}

/// One extension field as read: its type, body and where it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    /// Field type.
    pub kind: u16,
    /// Body (after the 4-byte type/length header, padding included).
    pub body: &'a [u8],
    /// Offset of the field's first byte in the buffer it was read from.
    pub start: usize,
}

/// Why an NTS reply is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtError {
    /// An extension field's length is impossible (offset of the field).
    BadLength(usize),
    /// The reply does not echo our Unique Identifier.
    NoUniqueIdentifier,
    /// The reply carries no NTS Authenticator: unauthenticated reply to an NTS request.
    NoAuthenticator,
    /// The authenticator's body is malformed.
    BadAuthenticator,
    /// The authenticator does not verify under the S2C key.
    AuthenticationFailed,
    /// A cookie or placeholder too large for one field.
    CookieTooLarge,
}

impl fmt::Display for ExtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExtError::BadLength(at) => {
                write!(f, "extension field at byte {at} has an impossible length")
            }
            ExtError::NoUniqueIdentifier => {
                f.write_str("the reply does not echo the request's NTS Unique Identifier")
            }
            ExtError::NoAuthenticator => {
                f.write_str("unauthenticated reply to an NTS request (no NTS Authenticator)")
            }
            ExtError::BadAuthenticator => f.write_str("malformed NTS Authenticator"),
            ExtError::AuthenticationFailed => {
                f.write_str("the reply's NTS authenticator does not verify")
            }
            ExtError::CookieTooLarge => f.write_str("cookie too large for an NTP extension field"),
        }
    }
}

impl std::error::Error for ExtError {}

fn padded(n: usize) -> usize {
    n.div_ceil(4) * 4
}

/// Appends one extension field, padding the body to a multiple of 4 bytes.
pub fn push_field(out: &mut Vec<u8>, kind: u16, body: &[u8]) -> Result<(), ExtError> {
    let len = 4 + padded(body.len());
    let len16 = u16::try_from(len).map_err(|_| ExtError::CookieTooLarge)?;
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&len16.to_be_bytes());
    out.extend_from_slice(body);
    out.resize(out.len() + padded(body.len()) - body.len(), 0);
    Ok(())
}

/// Splits `bytes[from..]` into extension fields (lengths ≥ 4, multiples of 4,
/// inside the buffer).
pub fn fields(bytes: &[u8], from: usize) -> Result<Vec<Field<'_>>, ExtError> {
    let mut out = Vec::new();
    let mut at = from;
    while at < bytes.len() {
        if bytes.len() - at < 4 {
            return Err(ExtError::BadLength(at));
        }
        let kind = u16::from_be_bytes([bytes[at], bytes[at + 1]]);
        let len = usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]));
        if len < 4 || len % 4 != 0 || len > bytes.len() - at {
            return Err(ExtError::BadLength(at));
        }
        out.push(Field {
            kind,
            body: &bytes[at + 4..at + len],
            start: at,
        });
        at += len;
    }
    Ok(out)
}

/// Builds an NTS request: `header`, the Unique Identifier, one cookie,
/// `placeholders` placeholders of the cookie's size, and the authenticator
/// over all of it (empty plaintext) with `nonce` under the C2S key.
pub fn build_request(
    header: &[u8; PACKET_LEN],
    uid: &[u8; UID_LEN],
    cookie: &[u8],
    placeholders: usize,
    nonce: &[u8; NONCE_LEN],
    c2s: &[u8; 32],
) -> Result<Vec<u8>, ExtError> {
    let mut out =
        Vec::with_capacity(PACKET_LEN + 40 + (placeholders + 1) * (cookie.len() + 4) + 40);
    out.extend_from_slice(header);
    push_field(&mut out, UNIQUE_IDENTIFIER, uid)?;
    push_field(&mut out, COOKIE, cookie)?;
    let zeros = vec![0u8; cookie.len()];
    for _ in 0..placeholders {
        push_field(&mut out, COOKIE_PLACEHOLDER, &zeros)?;
    }
    let tag = seal(c2s, &out, nonce, &[])?;
    let mut body = Vec::with_capacity(4 + NONCE_LEN + tag.len());
    body.extend_from_slice(&(NONCE_LEN as u16).to_be_bytes());
    body.extend_from_slice(&(tag.len() as u16).to_be_bytes());
    body.extend_from_slice(nonce);
    body.extend_from_slice(&tag);
    push_field(&mut out, AUTHENTICATOR, &body)?;
    Ok(out)
}

fn seal(key: &[u8; 32], ad: &[u8], nonce: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, ExtError> {
    let mut siv = Aes128Siv::new(key.into());
    siv.encrypt([ad, nonce], plaintext)
        .map_err(|_| ExtError::AuthenticationFailed)
}

/// Encrypts `plaintext` (extension fields) for a reply: used by fake servers in tests.
pub fn seal_reply(
    s2c: &[u8; 32],
    ad: &[u8],
    nonce: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, ExtError> {
    seal(s2c, ad, nonce, plaintext)
}

/// The authenticator body: (nonce, ciphertext).
fn authenticator_parts(body: &[u8]) -> Result<(&[u8], &[u8]), ExtError> {
    if body.len() < 4 {
        return Err(ExtError::BadAuthenticator);
    }
    let nonce_len = usize::from(u16::from_be_bytes([body[0], body[1]]));
    let ct_len = usize::from(u16::from_be_bytes([body[2], body[3]]));
    let nonce_end = 4 + padded(nonce_len);
    if nonce_len == 0 || ct_len < 16 || nonce_end + padded(ct_len) > body.len() {
        return Err(ExtError::BadAuthenticator);
    }
    Ok((
        &body[4..4 + nonce_len],
        &body[nonce_end..nonce_end + ct_len],
    ))
}

/// Whether `bytes` (a reply) echoes `uid` in an extension field.
pub fn echoes_uid(bytes: &[u8], uid: &[u8; UID_LEN]) -> bool {
    fields(bytes, PACKET_LEN)
        .map(|f| {
            f.iter()
                .any(|f| f.kind == UNIQUE_IDENTIFIER && f.body.get(..UID_LEN) == Some(&uid[..]))
        })
        .unwrap_or(false)
}

/// Checks an NTS reply's extension fields: our Unique Identifier echoed
/// inside the authenticated part, the authenticator verifying under `s2c`.
/// Returns the fresh cookies from the encrypted fields (at most [`MAX_COOKIES`]).
/// Fields after the authenticator are unauthenticated and ignored.
pub fn check_reply(
    bytes: &[u8],
    uid: &[u8; UID_LEN],
    s2c: &[u8; 32],
) -> Result<Vec<Vec<u8>>, ExtError> {
    if bytes.len() < PACKET_LEN {
        return Err(ExtError::BadLength(bytes.len()));
    }
    let all = fields(bytes, PACKET_LEN)?;
    let auth = all
        .iter()
        .find(|f| f.kind == AUTHENTICATOR)
        .ok_or(ExtError::NoAuthenticator)?;
    let (nonce, ciphertext) = authenticator_parts(auth.body)?;
    let ad = &bytes[..auth.start];
    let mut siv = Aes128Siv::new(s2c.into());
    let plaintext = siv
        .decrypt([ad, nonce], ciphertext)
        .map_err(|_| ExtError::AuthenticationFailed)?;
    let echoed = all.iter().any(|f| {
        f.start < auth.start
            && f.kind == UNIQUE_IDENTIFIER
            && f.body.get(..UID_LEN) == Some(&uid[..])
    });
    if !echoed {
        return Err(ExtError::NoUniqueIdentifier);
    }
    let inner = fields(&plaintext, 0)?;
    Ok(inner
        .iter()
        .filter(|f| f.kind == COOKIE && !f.body.is_empty())
        .take(MAX_COOKIES)
        .map(|f| f.body.to_vec())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const C2S: [u8; 32] = [1; 32];
    const S2C: [u8; 32] = [2; 32];

    /// A server's reply to `uid`, carrying `cookies` encrypted, as a real one would.
    fn reply(uid: &[u8; UID_LEN], cookies: &[&[u8]]) -> Vec<u8> {
        let mut out = vec![0x24; PACKET_LEN];
        push_field(&mut out, UNIQUE_IDENTIFIER, uid).unwrap();
        let mut plain = Vec::new();
        for c in cookies {
            push_field(&mut plain, COOKIE, c).unwrap();
        }
        let nonce = [9u8; 16];
        let ct = seal_reply(&S2C, &out, &nonce, &plain).unwrap();
        let mut body = Vec::new();
        body.extend_from_slice(&16u16.to_be_bytes());
        body.extend_from_slice(&(ct.len() as u16).to_be_bytes());
        body.extend_from_slice(&nonce);
        body.extend_from_slice(&ct);
        push_field(&mut out, AUTHENTICATOR, &body).unwrap();
        out
    }

    #[test]
    fn a_request_has_uid_cookie_placeholders_and_a_verifying_authenticator() {
        let uid = [5u8; UID_LEN];
        let req = build_request(&[0x23; 48], &uid, &[7; 100], 2, &[3; 16], &C2S).unwrap();
        let f = fields(&req, PACKET_LEN).unwrap();
        let kinds: Vec<u16> = f.iter().map(|f| f.kind).collect();
        assert_eq!(
            kinds,
            [
                UNIQUE_IDENTIFIER,
                COOKIE,
                COOKIE_PLACEHOLDER,
                COOKIE_PLACEHOLDER,
                AUTHENTICATOR
            ]
        );
        assert_eq!(f[2].body.len(), 100);
        // The server side of the check: the tag verifies under C2S over everything before it.
        let (nonce, ct) = authenticator_parts(f[4].body).unwrap();
        let mut siv = Aes128Siv::new((&C2S).into());
        assert_eq!(
            siv.decrypt([&req[..f[4].start], nonce], ct).unwrap(),
            Vec::<u8>::new()
        );
    }

    #[test]
    fn a_genuine_reply_gives_its_cookies() {
        let uid = [5u8; UID_LEN];
        let r = reply(&uid, &[&[1; 100], &[2; 100]]);
        assert_eq!(
            check_reply(&r, &uid, &S2C).unwrap(),
            vec![vec![1; 100], vec![2; 100]]
        );
        assert!(echoes_uid(&r, &uid));
    }

    #[test]
    fn any_flipped_byte_is_refused() {
        let uid = [5u8; UID_LEN];
        let r = reply(&uid, &[&[1; 40]]);
        for i in 0..r.len() {
            let mut bad = r.clone();
            bad[i] ^= 0x01;
            assert!(check_reply(&bad, &uid, &S2C).is_err(), "byte {i}");
        }
    }

    #[test]
    fn refusals_name_their_reason() {
        let uid = [5u8; UID_LEN];
        let r = reply(&uid, &[&[1; 40]]);
        assert_eq!(
            check_reply(&r, &[6; UID_LEN], &S2C),
            Err(ExtError::NoUniqueIdentifier)
        );
        assert_eq!(
            check_reply(&r, &uid, &C2S),
            Err(ExtError::AuthenticationFailed)
        );
        let mut plain = vec![0x24; PACKET_LEN];
        push_field(&mut plain, UNIQUE_IDENTIFIER, &uid).unwrap();
        assert_eq!(
            check_reply(&plain, &uid, &S2C),
            Err(ExtError::NoAuthenticator)
        );
        assert_eq!(
            check_reply(&[0x24; 48 + 3], &uid, &S2C),
            Err(ExtError::BadLength(48))
        );
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = check_reply(&bytes, &[0; UID_LEN], &S2C);
            let _ = fields(&bytes, 0);
        }
    }
}
