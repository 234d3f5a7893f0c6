//! Roughtime messages: a tag → value map written as a count, offsets, tags
//! and values, all little-endian and 4-byte aligned, optionally framed by
//! `ROUGHTIM` and a length (the IETF drafts).
//!
//! Pure code. Parsing borrows the datagram and allocates at most one entry per
//! eight bytes of input, so a hostile reply cannot make it allocate more than
//! the datagram's size.

use std::fmt;

/// A tag: four bytes read as a little-endian `u32` (so that sorting the
/// numbers sorts the tags as the wire does).
pub type Tag = u32;

/// The tag whose wire bytes are `name`.
pub const fn tag(name: &[u8; 4]) -> Tag {
    u32::from_le_bytes(*name)
}

/// Signature (64 bytes of Ed25519).
pub const SIG: Tag = tag(b"SIG\0");
/// Version: one in replies, the offered list in requests.
pub const VER: Tag = tag(b"VER\0");
/// Hash of the long-term key the client expects (draft 11 and later).
pub const SRV: Tag = tag(b"SRV\0");
/// The client's nonce.
pub const NONC: Tag = tag(b"NONC");
/// The delegation: online key and its validity.
pub const DELE: Tag = tag(b"DELE");
/// Message type: 0 request, 1 response (draft 12 and later).
pub const TYPE: Tag = tag(b"TYPE");
/// Merkle path from the client's leaf to the signed root.
pub const PATH: Tag = tag(b"PATH");
/// Radius: the server's bound on its own error.
pub const RADI: Tag = tag(b"RADI");
/// The delegated (online) public key.
pub const PUBK: Tag = tag(b"PUBK");
/// Midpoint: the server's time.
pub const MIDP: Tag = tag(b"MIDP");
/// The signed part of a reply.
pub const SREP: Tag = tag(b"SREP");
/// The versions the server supports, signed (draft 12 and later).
pub const VERS: Tag = tag(b"VERS");
/// Start of the delegation's validity.
pub const MINT: Tag = tag(b"MINT");
/// Merkle root over the batch's nonces.
pub const ROOT: Tag = tag(b"ROOT");
/// The certificate: delegation plus the long-term key's signature.
pub const CERT: Tag = tag(b"CERT");
/// End of the delegation's validity.
pub const MAXT: Tag = tag(b"MAXT");
/// The client's leaf index in the Merkle tree.
pub const INDX: Tag = tag(b"INDX");
/// Padding in IETF requests (draft 08 and later).
pub const ZZZZ: Tag = tag(b"ZZZZ");
/// Padding in Google-Roughtime requests.
pub const PAD_GOOGLE: Tag = tag(b"PAD\xff");
/// Padding as draft 07 (and pyroughtime) writes it.
pub const PAD_DRAFT07: Tag = tag(b"PAD\0");

/// The 8 bytes that open an IETF-framed datagram.
pub const FRAME: &[u8; 8] = b"ROUGHTIM";

/// A tag's printable name (`SIG`, `NONC`, or hex when not printable).
pub fn tag_name(t: Tag) -> String {
    let b = t.to_le_bytes();
    let printable: Vec<u8> = b.iter().copied().filter(|c| *c != 0).collect();
    if printable.iter().all(|c| c.is_ascii_uppercase()) && !printable.is_empty() {
        String::from_utf8_lossy(&printable).into_owned()
    } else {
        format!("0x{t:08x}")
    }
}

/// Why bytes are not a Roughtime message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn bad<T>(why: impl Into<String>) -> Result<T, Malformed> {
    Err(Malformed(why.into()))
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A parsed message: its tags in increasing order, each with its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    entries: Vec<(Tag, &'a [u8])>,
}

impl<'a> Message<'a> {
    /// Parses one (unframed) message: a multiple of four bytes, offsets
    /// multiples of four and non-decreasing, tags strictly increasing.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Malformed> {
        if bytes.len() < 4 || bytes.len() % 4 != 0 {
            return bad(format!(
                "a message of {} bytes (not a positive multiple of 4)",
                bytes.len()
            ));
        }
        let n = le32(bytes, 0) as usize;
        if n == 0 {
            return Ok(Message {
                entries: Vec::new(),
            });
        }
        // Header: count, n-1 offsets, n tags = 8n bytes.
        if n > bytes.len() / 8 {
            return bad(format!("{n} tags do not fit in {} bytes", bytes.len()));
        }
        let header = 8 * n;
        let values = &bytes[header..];
        let mut entries = Vec::with_capacity(n);
        let mut start = 0usize;
        for i in 0..n {
            let t = le32(bytes, 4 * n + 4 * i);
            let end = if i + 1 < n {
                le32(bytes, 4 + 4 * i) as usize
            } else {
                values.len()
            };
            if end % 4 != 0 {
                return bad(format!("offset {end} is not a multiple of 4"));
            }
            if end < start || end > values.len() {
                return bad(format!("offset {end} out of order or past the end"));
            }
            if let Some((last, _)) = entries.last() {
                if t <= *last {
                    return bad(format!(
                        "tag {} after {} (tags must increase)",
                        tag_name(t),
                        tag_name(*last)
                    ));
                }
            }
            entries.push((t, &values[start..end]));
            start = end;
        }
        Ok(Message { entries })
    }

    /// The value of `t`, if present.
    pub fn get(&self, t: Tag) -> Option<&'a [u8]> {
        self.entries
            .binary_search_by_key(&t, |(k, _)| *k)
            .ok()
            .map(|i| self.entries[i].1)
    }

    /// The value of `t`, or an error naming it.
    pub fn require(&self, t: Tag) -> Result<&'a [u8], Malformed> {
        self.get(t)
            .ok_or_else(|| Malformed(format!("no {} tag", tag_name(t))))
    }

    /// The value of `t`, which must be exactly `N` bytes.
    pub fn fixed<const N: usize>(&self, t: Tag) -> Result<[u8; N], Malformed> {
        let v = self.require(t)?;
        v.try_into()
            .map_err(|_| Malformed(format!("{} is {} bytes, not {N}", tag_name(t), v.len())))
    }

    /// The value of `t` as a little-endian `u32`.
    pub fn u32(&self, t: Tag) -> Result<u32, Malformed> {
        self.fixed::<4>(t).map(u32::from_le_bytes)
    }

    /// The value of `t` as a little-endian `u64`.
    pub fn u64(&self, t: Tag) -> Result<u64, Malformed> {
        self.fixed::<8>(t).map(u64::from_le_bytes)
    }

    /// The value of `t`, parsed as a nested message.
    pub fn nested(&self, t: Tag) -> Result<Message<'a>, Malformed> {
        Message::parse(self.require(t)?).map_err(|e| Malformed(format!("in {}: {e}", tag_name(t))))
    }

    /// The tags present, in wire order.
    pub fn tags(&self) -> impl Iterator<Item = Tag> + '_ {
        self.entries.iter().map(|(t, _)| *t)
    }
}

/// Encodes `fields` (any order; each value a multiple of 4 bytes, tags
/// distinct) as one message.
///
/// # Panics
/// On a value whose length is not a multiple of 4 or a repeated tag: callers
/// pass constants and fixed-size values.
pub fn encode(fields: &[(Tag, &[u8])]) -> Vec<u8> {
    let mut sorted: Vec<(Tag, &[u8])> = fields.to_vec();
    sorted.sort_by_key(|(t, _)| *t);
    let n = sorted.len();
    let total: usize = sorted.iter().map(|(_, v)| v.len()).sum();
    let mut out = Vec::with_capacity(8 * n.max(1) + total);
    out.extend_from_slice(&(n as u32).to_le_bytes());
    let mut offset = 0usize;
    for (i, (t, v)) in sorted.iter().enumerate() {
        assert!(v.len() % 4 == 0, "value of {} not aligned", tag_name(*t));
        assert!(
            i == 0 || sorted[i - 1].0 != *t,
            "tag {} repeated",
            tag_name(*t)
        );
        if i > 0 {
            out.extend_from_slice(&(offset as u32).to_le_bytes());
        }
        offset += v.len();
    }
    for (t, _) in &sorted {
        out.extend_from_slice(&t.to_le_bytes());
    }
    for (_, v) in &sorted {
        out.extend_from_slice(v);
    }
    out
}

/// Wraps a message in the IETF frame: `ROUGHTIM`, its length, the message.
pub fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + message.len());
    out.extend_from_slice(FRAME);
    out.extend_from_slice(&(message.len() as u32).to_le_bytes());
    out.extend_from_slice(message);
    out
}

/// Splits a datagram into its message and whether it was framed; a framed
/// datagram's length field must match what follows it exactly.
pub fn unframe(datagram: &[u8]) -> Result<(&[u8], bool), Malformed> {
    match datagram.strip_prefix(&FRAME[..]) {
        None => Ok((datagram, false)),
        Some(rest) => {
            if rest.len() < 4 {
                return bad("a frame without its length");
            }
            let len = le32(rest, 0) as usize;
            let body = &rest[4..];
            if body.len() != len {
                return bad(format!("the frame says {len} bytes, {} follow", body.len()));
            }
            Ok((body, true))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_and_parses_back() {
        let a = [1u8, 2, 3, 4];
        let b = [0u8; 8];
        let m = encode(&[(NONC, &b), (SIG, &a), (PAD_GOOGLE, &[])]);
        // count, 2 offsets, 3 tags, 12 value bytes
        assert_eq!(m.len(), 4 + 8 + 12 + 12);
        let p = Message::parse(&m).unwrap();
        assert_eq!(p.tags().collect::<Vec<_>>(), vec![SIG, NONC, PAD_GOOGLE]);
        assert_eq!(p.get(SIG), Some(&a[..]));
        assert_eq!(p.u64(NONC).unwrap(), 0);
        assert_eq!(p.get(PAD_GOOGLE), Some(&[][..]));
        assert!(p.get(MIDP).is_none());
        assert!(p.u32(NONC).is_err());
        assert_eq!(Message::parse(&[0, 0, 0, 0]).unwrap().tags().count(), 0);
    }

    #[test]
    fn refuses_malformed_messages() {
        let good = encode(&[(SIG, &[1, 2, 3, 4]), (NONC, &[5, 6, 7, 8])]);
        let mut cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![1, 0, 0],
            vec![2, 0, 0, 0, 0, 0, 0, 0], // 2 tags need 16 header bytes
            vec![0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0], // absurd count
        ];
        let mut unaligned = good.clone();
        unaligned[4] = 3; // offset 3
        cases.push(unaligned);
        let mut past = good.clone();
        past[4] = 64; // offset past the end
        cases.push(past);
        let mut order = good.clone();
        order.swap(8, 12); // swap the tags' first bytes: NONC before SIG
        order.swap(9, 13);
        order.swap(10, 14);
        order.swap(11, 15);
        cases.push(order);
        let mut dup = good.clone();
        dup[12..16].copy_from_slice(&SIG.to_le_bytes());
        cases.push(dup);
        for c in cases {
            assert!(Message::parse(&c).is_err(), "{c:?}");
        }
    }

    #[test]
    fn frames_and_unframes() {
        let m = encode(&[(NONC, &[0; 32])]);
        let f = frame(&m);
        assert_eq!(unframe(&f).unwrap(), (&m[..], true));
        assert_eq!(unframe(&m).unwrap(), (&m[..], false));
        assert!(unframe(&f[..f.len() - 4]).is_err());
        assert!(unframe(b"ROUGHTIM").is_err());
        assert_eq!(tag_name(SIG), "SIG");
        assert_eq!(tag_name(PAD_GOOGLE), "0xff444150");
    }
}
