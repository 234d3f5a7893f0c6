//! The Roughtime versions skewguard speaks and the requests that offer them.
//!
//! Two request families cover the servers in use (see
//! `docs/design/roughtime.md`): an IETF request (framed, `VER` = drafts 12+,
//! 11 and 08, `TYPE` 0, `ZZZZ` padding) that roughenough and Cloudflare's
//! server answer, and a draft-07 request (framed, `VER` = draft 07, `PAD\0`
//! padding) that pyroughtime answers; each server answers the one it
//! understands and drops the other. Google-Roughtime (64-byte nonce, no
//! version) is parsed and verified, and can be requested, but the client does
//! not send it: every public server listed speaks an IETF draft.

use super::message::{self, encode, frame};

/// Every request is padded to exactly this many bytes on the wire, the
/// minimum the drafts (and all three servers) require.
pub const REQUEST_LEN: usize = 1024;

/// A protocol version as a reply states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// Google-Roughtime: no `VER` tag, 64-byte nonce, microseconds.
    Google,
    /// draft-ietf-ntp-roughtime-07 (`0x80000007`): SHA-512/256 tree, MJD timestamps.
    Draft07,
    /// draft 08 (`0x80000008`): SHA-512 truncated to 32 bytes, seconds.
    Draft08,
    /// draft 11 (`0x8000000b`): as 08, plus `SRV`.
    Draft11,
    /// drafts 12 to 14 (`0x8000000c`): `VER`/`VERS` inside the signed part, `TYPE`.
    Draft12,
}

impl Version {
    /// The value in `VER`, `None` for Google-Roughtime (which has no tag).
    pub fn wire(self) -> Option<u32> {
        match self {
            Version::Google => None,
            Version::Draft07 => Some(0x8000_0007),
            Version::Draft08 => Some(0x8000_0008),
            Version::Draft11 => Some(0x8000_000b),
            Version::Draft12 => Some(0x8000_000c),
        }
    }

    /// The version with this `VER` value, if skewguard knows it.
    pub fn from_wire(v: u32) -> Option<Version> {
        [
            Version::Draft07,
            Version::Draft08,
            Version::Draft11,
            Version::Draft12,
        ]
        .into_iter()
        .find(|x| x.wire() == Some(v))
    }

    /// Its name, as reports say it.
    pub fn name(self) -> &'static str {
        match self {
            Version::Google => "Google-Roughtime",
            Version::Draft07 => "draft-ietf-ntp-roughtime-07",
            Version::Draft08 => "draft-ietf-ntp-roughtime-08",
            Version::Draft11 => "draft-ietf-ntp-roughtime-11",
            Version::Draft12 => "draft-ietf-ntp-roughtime-12..14",
        }
    }

    /// Nonce length in bytes.
    pub fn nonce_len(self) -> usize {
        match self {
            Version::Google => 64,
            _ => 32,
        }
    }
}

/// A kind of request: which versions it offers and how it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// Framed, `VER` = drafts 12+, 11, 08 (most preferred first), `TYPE` 0, `ZZZZ`.
    Ietf,
    /// Framed, `VER` = draft 07, `PAD\0` (the only tags pyroughtime accepts).
    Draft07,
    /// Unframed, `NONC` of 64 bytes and `PAD\xff`.
    Google,
}

impl Family {
    /// The families the client sends together in one exchange.
    pub const SENT: [Family; 2] = [Family::Ietf, Family::Draft07];

    /// The versions a request of this family offers, most preferred first.
    pub fn offered(self) -> &'static [Version] {
        match self {
            Family::Ietf => &[Version::Draft12, Version::Draft11, Version::Draft08],
            Family::Draft07 => &[Version::Draft07],
            Family::Google => &[Version::Google],
        }
    }

    /// Nonce length in bytes for requests of this family.
    pub fn nonce_len(self) -> usize {
        self.offered()[0].nonce_len()
    }
}

/// A request as sent: what its reply is verified against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The family it was written in.
    pub family: Family,
    /// Its nonce.
    pub nonce: Vec<u8>,
    /// The whole datagram (drafts 12+ hash it, not the nonce, into the tree).
    pub bytes: Vec<u8>,
}

impl Sent {
    /// Builds the request of `family` carrying `nonce` (see [`build`]).
    pub fn new(family: Family, nonce: &[u8]) -> Sent {
        Sent {
            family,
            nonce: nonce.to_vec(),
            bytes: build(family, nonce),
        }
    }
}

/// Builds a request of `family` carrying `nonce` (which must be
/// [`Family::nonce_len`] bytes), padded to [`REQUEST_LEN`] bytes.
///
/// # Panics
/// If the nonce has the wrong length (a programming error).
pub fn build(family: Family, nonce: &[u8]) -> Vec<u8> {
    assert_eq!(nonce.len(), family.nonce_len(), "nonce length");
    let versions: Vec<u8> = family
        .offered()
        .iter()
        .filter_map(|v| v.wire())
        .flat_map(u32::to_le_bytes)
        .collect();
    let request_type = 0u32.to_le_bytes();
    let (mut fields, pad_tag, framed): (Vec<(message::Tag, &[u8])>, _, _) = match family {
        Family::Ietf => (
            vec![
                (message::VER, &versions[..]),
                (message::NONC, nonce),
                (message::TYPE, &request_type[..]),
            ],
            message::ZZZZ,
            true,
        ),
        Family::Draft07 => (
            vec![(message::VER, &versions[..]), (message::NONC, nonce)],
            message::PAD_DRAFT07,
            true,
        ),
        Family::Google => (vec![(message::NONC, nonce)], message::PAD_GOOGLE, false),
    };
    let header = 8 * (fields.len() + 1);
    let values: usize = fields.iter().map(|(_, v)| v.len()).sum();
    let frame_len = if framed { 12 } else { 0 };
    let padding = vec![0u8; REQUEST_LEN - frame_len - header - values];
    fields.push((pad_tag, &padding));
    let body = encode(&fields);
    if framed {
        frame(&body)
    } else {
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::roughtime::message::{unframe, Message};

    #[test]
    fn requests_are_1024_bytes_with_the_offered_versions() {
        for family in [Family::Ietf, Family::Draft07, Family::Google] {
            let nonce = vec![7u8; family.nonce_len()];
            let r = build(family, &nonce);
            assert_eq!(r.len(), REQUEST_LEN, "{family:?}");
            let (body, framed) = unframe(&r).unwrap();
            assert_eq!(framed, family != Family::Google);
            let m = Message::parse(body).unwrap();
            assert_eq!(m.get(message::NONC), Some(&nonce[..]));
            let offered: Vec<u32> = m
                .get(message::VER)
                .unwrap_or(&[])
                .chunks(4)
                .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            let expect: Vec<u32> = family.offered().iter().filter_map(|v| v.wire()).collect();
            assert_eq!(offered, expect);
        }
        let ietf = build(Family::Ietf, &[0; 32]);
        let m = Message::parse(unframe(&ietf).unwrap().0).unwrap();
        assert_eq!(m.u32(message::TYPE).unwrap(), 0);
        assert!(m.get(message::ZZZZ).is_some());
        // pyroughtime refuses any tag it does not know: only VER, NONC, PAD\0.
        let d7 = build(Family::Draft07, &[0; 32]);
        let m = Message::parse(unframe(&d7).unwrap().0).unwrap();
        assert_eq!(
            m.tags().collect::<Vec<_>>(),
            vec![message::PAD_DRAFT07, message::VER, message::NONC]
        );
    }

    #[test]
    fn versions_round_trip() {
        for v in [
            Version::Draft07,
            Version::Draft08,
            Version::Draft11,
            Version::Draft12,
        ] {
            assert_eq!(Version::from_wire(v.wire().unwrap()), Some(v));
        }
        assert_eq!(Version::from_wire(0x8000_000d), None);
        assert_eq!(Version::from_wire(0), None);
    }
}
