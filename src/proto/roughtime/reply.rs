//! Verifying a Roughtime reply and turning it into a [`Sample`].
//!
//! Pure code. [`verify`] checks, for the request it answers: the version
//! (one the request offered; signed where the draft signs it), the nonce (echoed
//! in `NONC` where the version has it, and always through the Merkle path
//! `INDX`/`PATH` to the signed `ROOT`; drafts 12+ hash the whole request there), the delegation certificate (`DELE`
//! signed by the pinned long-term key), the signed response (`SREP` signed by
//! the delegated key) and the delegation's validity `MINT..MAXT` against the
//! server's own signed `MIDP` — never against the local clock, which is what
//! is being checked. Every failure, malformed input included, is a
//! [`SourceError::Verification`]: an authenticated source whose reply does not
//! verify. Ed25519 and SHA-512 come from `ring`.

use ring::digest;
use ring::signature::{UnparsedPublicKey, ED25519};

use super::message::{self, unframe, Message};
use super::request::{Family, Sent, Version};
use crate::core::sample::{Sample, SourceError};
use crate::os::clock::{UnixNanos, NANOS_PER_SEC};

/// Prefix of the delegation signature (Google-Roughtime, drafts 08 and 11).
pub const DELEGATION_CONTEXT_DASHES: &[u8] = b"RoughTime v1 delegation signature--\0";
/// Prefix of the delegation signature (drafts 07 and 12 to 14).
pub const DELEGATION_CONTEXT: &[u8] = b"RoughTime v1 delegation signature\0";
/// Prefix of the response signature (every version).
pub const RESPONSE_CONTEXT: &[u8] = b"RoughTime v1 response signature\0";

/// Deepest Merkle path accepted (a batch of 2^32 requests).
pub const MAX_PATH_DEPTH: usize = 32;

/// Largest radius a server may claim and still be voted with, in seconds,
/// unless `MAX_SOURCE_ERROR` is larger (see [`sample`]).
pub const MAX_RADIUS_SECS: f64 = 10.0;

/// What a verified reply says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verified {
    /// The version the server answered with.
    pub version: Version,
    /// The server's time, Unix nanoseconds: the start of `MIDP`'s resolution step.
    pub midpoint: UnixNanos,
    /// The width of one `MIDP` step, seconds (1 where the draft sends whole
    /// seconds, else 1 µs).
    pub resolution: f64,
    /// `RADI`, seconds.
    pub radius: f64,
}

fn fail<T>(why: impl Into<String>) -> Result<T, SourceError> {
    Err(SourceError::Verification(why.into()))
}

fn malformed(e: message::Malformed) -> SourceError {
    SourceError::Verification(format!("malformed reply: {e}"))
}

/// The `NONC` a datagram carries at its top level, if it parses that far;
/// used to tell which request a reply claims to answer.
pub fn claimed_nonce(datagram: &[u8]) -> Option<&[u8]> {
    let (body, _) = unframe(datagram).ok()?;
    Message::parse(body).ok()?.get(message::NONC)
}

/// Verifies `datagram` as the answer to the request `sent`, with the
/// server's long-term public key `key`.
pub fn verify(datagram: &[u8], key: &[u8; 32], sent: &Sent) -> Result<Verified, SourceError> {
    let (nonce, family) = (&sent.nonce[..], sent.family);
    let (body, framed) = unframe(datagram).map_err(malformed)?;
    let reply = Message::parse(body).map_err(malformed)?;
    let srep_bytes = reply.require(message::SREP).map_err(malformed)?;
    let srep = reply.nested(message::SREP).map_err(malformed)?;
    let version = reply_version(&reply, &srep, family)?;

    match (version, framed) {
        (Version::Google, true) => return fail("a Google-Roughtime reply in an IETF frame"),
        (Version::Draft08 | Version::Draft11 | Version::Draft12, false) => {
            return fail(format!("a {} reply without its frame", version.name()))
        }
        _ => {}
    }
    // Drafts 12+ mark a response with TYPE 1; older versions have no TYPE.
    match reply.get(message::TYPE) {
        Some(t) if t != 1u32.to_le_bytes() => return fail("TYPE is not 1 (response)"),
        None if version == Version::Draft12 => return fail("a draft 12+ reply without TYPE"),
        _ => {}
    }
    match reply.get(message::NONC) {
        Some(n) if n != nonce => {
            return fail("the reply answers another nonce (replayed or forged)")
        }
        None if version != Version::Google => return fail("the reply does not echo the nonce"),
        _ => {}
    }

    // The certificate: the long-term key vouches for the online key.
    let cert = reply.nested(message::CERT).map_err(malformed)?;
    let dele_bytes = cert.require(message::DELE).map_err(malformed)?;
    let dele_sig = cert.fixed::<64>(message::SIG).map_err(malformed)?;
    let contexts: &[&[u8]] = if version == Version::Google {
        &[DELEGATION_CONTEXT_DASHES]
    } else {
        &[DELEGATION_CONTEXT, DELEGATION_CONTEXT_DASHES]
    };
    if !contexts
        .iter()
        .any(|ctx| ed25519_ok(key, &[ctx, dele_bytes].concat(), &dele_sig))
    {
        return fail("the delegation (DELE) is not signed by the pinned long-term key");
    }
    let dele = cert.nested(message::DELE).map_err(malformed)?;
    let online = dele.fixed::<32>(message::PUBK).map_err(malformed)?;
    let mint = dele.u64(message::MINT).map_err(malformed)?;
    let maxt = dele.u64(message::MAXT).map_err(malformed)?;

    // The signed response: the online key vouches for time and root.
    let sig = reply.fixed::<64>(message::SIG).map_err(malformed)?;
    if !ed25519_ok(&online, &[RESPONSE_CONTEXT, srep_bytes].concat(), &sig) {
        return fail("the signed response (SREP) is not signed by the delegated key");
    }
    let midp = srep.u64(message::MIDP).map_err(malformed)?;
    let radi = srep.u32(message::RADI).map_err(malformed)?;
    let root = srep.require(message::ROOT).map_err(malformed)?;

    // The delegation's validity, in the server's own signed time.
    if mint > maxt {
        return fail("the delegation's MINT is after its MAXT");
    }
    if midp < mint || midp > maxt {
        return fail(
            "the server's signed time lies outside its delegation's validity (MINT..MAXT)",
        );
    }

    // The nonce is in the signed tree.
    let index = reply.u32(message::INDX).map_err(malformed)?;
    let path = reply.require(message::PATH).map_err(malformed)?;
    // Drafts 12+ hash the whole request into the tree, the others the nonce.
    let leaf = if version == Version::Draft12 {
        &sent.bytes[..]
    } else {
        nonce
    };
    if !in_tree(version, leaf, index, path, root) {
        return fail("the nonce is not in the signed Merkle tree (PATH, INDX, ROOT)");
    }

    let (midpoint, resolution, radius) = match version {
        Version::Google => (i128::from(midp) * 1000, 1e-6, f64::from(radi) / 1e6),
        Version::Draft07 => (mjd_to_unix_nanos(midp)?, 1e-6, f64::from(radi) / 1e6),
        _ => (i128::from(midp) * NANOS_PER_SEC, 1.0, f64::from(radi)),
    };
    Ok(Verified {
        version,
        midpoint,
        resolution,
        radius,
    })
}

/// The version the reply is in: for drafts 12+, `VER` inside `SREP` (signed);
/// otherwise the top-level `VER`, or none (Google-Roughtime). It must be one
/// `family` offered; a signed `VERS` must not list a version both sides
/// prefer (a downgrade).
fn reply_version(reply: &Message, srep: &Message, family: Family) -> Result<Version, SourceError> {
    let read = |m: &Message| -> Result<Option<u32>, SourceError> {
        match m.get(message::VER) {
            None => Ok(None),
            Some(_) => m.u32(message::VER).map(Some).map_err(malformed),
        }
    };
    let signed = read(srep)?;
    let top = read(reply)?;
    let wire = match (signed, top) {
        (Some(s), Some(t)) if s != t => {
            return fail(format!("VER {t:#x} differs from the signed VER {s:#x}"))
        }
        (Some(s), _) => Some(s),
        (None, t) => t,
    };
    let version = match wire {
        None => Version::Google,
        Some(w) => Version::from_wire(w)
            .ok_or_else(|| SourceError::Verification(format!("unknown version {w:#x}")))?,
    };
    if version == Version::Draft12 && signed.is_none() {
        return fail("a draft 12+ reply without VER in its signed part");
    }
    let offered = family.offered();
    let Some(rank) = offered.iter().position(|v| *v == version) else {
        return fail(format!(
            "the server answered in {}, which was not offered",
            version.name()
        ));
    };
    if let Some(vers) = srep.get(message::VERS) {
        if vers.len() % 4 != 0 {
            return fail("VERS is not a list of versions");
        }
        let listed: Vec<u32> = vers
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if let Some(better) = offered[..rank]
            .iter()
            .find(|v| v.wire().is_some_and(|w| listed.contains(&w)))
        {
            return fail(format!(
                "downgrade: the server supports {} but answered in {}",
                better.name(),
                version.name()
            ));
        }
    }
    Ok(version)
}

fn ed25519_ok(key: &[u8], signed: &[u8], sig: &[u8; 64]) -> bool {
    UnparsedPublicKey::new(&ED25519, key)
        .verify(signed, sig)
        .is_ok()
}

/// Whether `leaf` (the nonce; for drafts 12+ the whole request) at `index`
/// hashes up `path` to `root`.
///
/// The leaf is H(0x00 ‖ leaf), a node H(0x01 ‖ left ‖ right). H is SHA-512
/// (Google-Roughtime: 64 bytes throughout), SHA-512/256 (draft 07), or
/// SHA-512 truncated to 32 bytes at every node (drafts 08 to 14). For drafts
/// 12+ a path of 64-byte elements is also accepted, hashed at full width and
/// truncated only at the root, as roughenough 1.3.0-draft14 writes it; either
/// way the chain ends in the signed root, so it proves the nonce was signed.
fn in_tree(version: Version, leaf: &[u8], index: u32, path: &[u8], root: &[u8]) -> bool {
    let narrow = |width: usize| -> Option<Vec<u8>> {
        let alg = match version {
            Version::Draft07 => &digest::SHA512_256,
            _ => &digest::SHA512,
        };
        let keep = |d: digest::Digest| d.as_ref()[..width.min(d.as_ref().len())].to_vec();
        if path.len() % width != 0 || path.len() / width > MAX_PATH_DEPTH {
            return None;
        }
        let mut hash = keep(digest::digest(alg, &[&[0u8][..], leaf].concat()));
        let mut idx = index;
        for sibling in path.chunks_exact(width) {
            let mut ctx = digest::Context::new(alg);
            ctx.update(&[1]);
            if idx & 1 == 0 {
                ctx.update(&hash);
                ctx.update(sibling);
            } else {
                ctx.update(sibling);
                ctx.update(&hash);
            }
            hash = keep(ctx.finish());
            idx >>= 1;
        }
        // Index bits beyond the path would name another leaf with the same path.
        if idx != 0 {
            return None;
        }
        Some(hash)
    };
    let (width, full_width_too) = match version {
        Version::Google => (64, false),
        Version::Draft12 => (32, true),
        _ => (32, false),
    };
    if root.len() != width {
        return false;
    }
    if narrow(width).is_some_and(|h| h == root) {
        return true;
    }
    full_width_too && narrow(64).is_some_and(|h| h[..32] == *root)
}

/// Modified Julian Date of the Unix epoch.
const MJD_UNIX_EPOCH: i128 = 40_587;

/// Draft 07's timestamp (MJD in the top 24 bits, microseconds of the day in
/// the low 40) as Unix nanoseconds.
fn mjd_to_unix_nanos(t: u64) -> Result<UnixNanos, SourceError> {
    let mjd = i128::from(t >> 40);
    let micros = i128::from(t & ((1 << 40) - 1));
    // A leap second makes a day 86,401 s long.
    if micros > 86_401_000_000 {
        return fail("MIDP's microseconds exceed a day");
    }
    Ok(((mjd - MJD_UNIX_EPOCH) * 86_400_000_000 + micros) * 1000)
}

/// The sample a verified reply gives for a request sent at `t1` and answered
/// at `t4` (local realtime, Unix nanoseconds; `t1` never late, `t4` never early).
///
/// The server's time lies within `RADI` of a point in `[MIDP, MIDP + one
/// step)` (the servers in use truncate to their resolution), at an instant
/// between `t1` and `t4`: offset = centre of that step − (t1 + t4)/2,
/// uncertainty = RADI + step/2 + rtt/2.
///
/// `MAX_SOURCE_ERROR` bounds what the measurement adds: a round trip whose
/// half exceeds it is refused, as for NTP. The server's signed radius is its
/// own statement and is accepted up to [`MAX_RADIUS_SECS`] (or
/// `max_source_error`, if larger) — roughenough's fixed 5 s radius votes,
/// with its full width; a server claiming more is refused.
pub fn sample(
    v: &Verified,
    t1: UnixNanos,
    t4: UnixNanos,
    max_source_error: f64,
) -> Result<Sample, SourceError> {
    let rtt = ((t4 - t1).max(0)) as f64 / 1e9;
    if rtt / 2.0 > max_source_error {
        return Err(SourceError::Invalid(format!(
            "round trip {rtt:.3} s: half of it exceeds MAX_SOURCE_ERROR ({max_source_error} s)"
        )));
    }
    let radius_cap = MAX_RADIUS_SECS.max(max_source_error);
    if v.radius > radius_cap {
        return Err(SourceError::Invalid(format!(
            "the server's radius {} s exceeds {radius_cap} s",
            v.radius
        )));
    }
    let centre = v.midpoint + (v.resolution * 0.5e9) as i128;
    let local_mid = t1 + (t4 - t1) / 2;
    let offset = (centre - local_mid) as f64 / 1e9;
    Ok(Sample::clock_independent(
        offset,
        v.radius + v.resolution / 2.0 + rtt / 2.0,
        rtt,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::roughtime::message::{encode, frame};
    use crate::proto::roughtime::request;
    use ring::signature::{Ed25519KeyPair, KeyPair};

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn public_of_seed(seed: &[u8]) -> [u8; 32] {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed).unwrap();
        pair.public_key().as_ref().try_into().unwrap()
    }

    fn nonce_of_request(req: &[u8]) -> Vec<u8> {
        let (body, _) = unframe(req).unwrap();
        Message::parse(body)
            .unwrap()
            .get(message::NONC)
            .unwrap()
            .to_vec()
    }

    /// Cloudflare's published vectors (tests/fixtures/roughtime/cloudflare):
    /// every reply verifies for its own request and no other, with MIDP 50 s
    /// and RADI 5 s, and a single altered byte anywhere makes it fail.
    #[test]
    fn cloudflare_test_vectors_verify() {
        let files: &[(&str, Family, Version)] = &[
            (
                include_str!(
                    "../../../tests/fixtures/roughtime/cloudflare/roughtime_google_001.json"
                ),
                Family::Google,
                Version::Google,
            ),
            (
                include_str!(
                    "../../../tests/fixtures/roughtime/cloudflare/roughtime_google_010.json"
                ),
                Family::Google,
                Version::Google,
            ),
            (
                include_str!(
                    "../../../tests/fixtures/roughtime/cloudflare/roughtime_ietf_draft08_001.json"
                ),
                Family::Ietf,
                Version::Draft08,
            ),
            (
                include_str!(
                    "../../../tests/fixtures/roughtime/cloudflare/roughtime_ietf_draft08_010.json"
                ),
                Family::Ietf,
                Version::Draft08,
            ),
            (
                include_str!(
                    "../../../tests/fixtures/roughtime/cloudflare/roughtime_ietf_draft11_001.json"
                ),
                Family::Ietf,
                Version::Draft11,
            ),
            (
                include_str!(
                    "../../../tests/fixtures/roughtime/cloudflare/roughtime_ietf_draft11_010.json"
                ),
                Family::Ietf,
                Version::Draft11,
            ),
        ];
        for (text, family, version) in files {
            let v: serde_json::Value = serde_json::from_str(text).unwrap();
            let key = public_of_seed(&hex(v["root_key"].as_str().unwrap()));
            let requests: Vec<Vec<u8>> = v["request"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| hex(r.as_str().unwrap()))
                .collect();
            let replies: Vec<Vec<u8>> = v["replies"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| hex(r.as_str().unwrap()))
                .collect();
            assert_eq!(requests.len(), replies.len());
            let sent_for = |n: &[u8], i: usize| Sent {
                family: *family,
                nonce: n.to_vec(),
                bytes: requests[i].clone(),
            };
            for (i, reply) in replies.iter().enumerate() {
                let nonce = nonce_of_request(&requests[i]);
                let got = verify(reply, &key, &sent_for(&nonce, i))
                    .unwrap_or_else(|e| panic!("{} #{i}: {e}", v["info"]));
                assert_eq!(got.version, *version);
                assert_eq!(got.midpoint, 50 * NANOS_PER_SEC);
                assert_eq!(got.radius, 5.0);
                // Another request's nonce: refused.
                let other = nonce_of_request(&requests[(i + 1) % requests.len()]);
                if other != nonce {
                    assert!(verify(reply, &key, &sent_for(&other, i)).is_err());
                }
                // A wrong key: refused.
                let mut wrong = key;
                wrong[0] ^= 1;
                assert!(verify(reply, &wrong, &sent_for(&nonce, i)).is_err());
            }
            // Every single-byte change of the first reply fails.
            {
                let reply = &replies[0];
                let nonce = nonce_of_request(&requests[0]);
                for at in 0..reply.len() {
                    let mut r = reply.clone();
                    r[at] ^= 0x01;
                    match verify(&r, &key, &sent_for(&nonce, 0)) {
                        Err(_) => {}
                        // Google-Roughtime does not need NONC: renaming that
                        // unsigned, unused tag changes nothing that counts.
                        Ok(x) if *version == Version::Google && r[..48] != reply[..48] => {
                            assert_eq!(x, verify(reply, &key, &sent_for(&nonce, 0)).unwrap())
                        }
                        Ok(x) => panic!("{} byte {at} altered still verifies: {x:?}", v["info"]),
                    }
                }
            }
        }
    }

    /// Replies captured on loopback from the two peers the integration tests
    /// run (tests/fixtures/roughtime/peers): each verifies for its own request
    /// only, and altering any single byte makes it fail.
    #[test]
    fn captured_peer_replies_verify() {
        let files: &[(&str, Family, Version, f64)] = &[
            (
                include_str!(
                    "../../../tests/fixtures/roughtime/peers/roughenough_1.3.0-draft14.json"
                ),
                Family::Ietf,
                Version::Draft12,
                5.0,
            ),
            (
                include_str!("../../../tests/fixtures/roughtime/peers/pyroughtime_1.0.1.json"),
                Family::Draft07,
                Version::Draft07,
                0.1,
            ),
        ];
        for (text, family, version, radius) in files {
            let v: serde_json::Value = serde_json::from_str(text).unwrap();
            let key: [u8; 32] = hex(v["public_key"].as_str().unwrap()).try_into().unwrap();
            let requests: Vec<Vec<u8>> = v["request"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| hex(r.as_str().unwrap()))
                .collect();
            let replies: Vec<Vec<u8>> = v["replies"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| hex(r.as_str().unwrap()))
                .collect();
            let sent = |i: usize| Sent {
                family: *family,
                nonce: nonce_of_request(&requests[i]),
                bytes: requests[i].clone(),
            };
            for (i, reply) in replies.iter().enumerate() {
                let got = verify(reply, &key, &sent(i))
                    .unwrap_or_else(|e| panic!("{} #{i}: {e}", v["info"]));
                assert_eq!((got.version, got.radius), (*version, *radius));
                assert!(
                    verify(reply, &key, &sent((i + 1) % replies.len())).is_err(),
                    "another request's reply"
                );
            }
            for at in 0..replies[0].len() {
                let mut r = replies[0].clone();
                r[at] ^= 0x01;
                assert!(
                    verify(&r, &key, &sent(0)).is_err(),
                    "{} byte {at} altered still verifies",
                    v["info"]
                );
            }
        }
    }

    /// A test server: signs replies as a server of `version` would.
    struct Fake {
        root: Ed25519KeyPair,
        online: Ed25519KeyPair,
    }

    impl Fake {
        fn new() -> Fake {
            Fake {
                root: Ed25519KeyPair::from_seed_unchecked(&[1; 32]).unwrap(),
                online: Ed25519KeyPair::from_seed_unchecked(&[2; 32]).unwrap(),
            }
        }
        fn key(&self) -> [u8; 32] {
            self.root.public_key().as_ref().try_into().unwrap()
        }
        /// A single-request reply (empty path) in `version`.
        #[allow(clippy::too_many_arguments)]
        fn reply(
            &self,
            version: Version,
            nonce: &[u8],
            midp: u64,
            radi: u32,
            mint: u64,
            maxt: u64,
            edit: impl Fn(&mut Vec<(message::Tag, Vec<u8>)>),
        ) -> Vec<u8> {
            let alg = if version == Version::Draft07 {
                &digest::SHA512_256
            } else {
                &digest::SHA512
            };
            let width = if version == Version::Google { 64 } else { 32 };
            let request = request::build(Family::Ietf, nonce);
            let leaf = if version == Version::Draft12 {
                &request[..]
            } else {
                nonce
            };
            let root = digest::digest(alg, &[&[0u8][..], leaf].concat()).as_ref()[..width].to_vec();
            let ver = version.wire().map(|w| w.to_le_bytes().to_vec());
            let mut srep: Vec<(message::Tag, Vec<u8>)> = vec![
                (message::MIDP, midp.to_le_bytes().to_vec()),
                (message::RADI, radi.to_le_bytes().to_vec()),
                (message::ROOT, root),
            ];
            if version == Version::Draft12 {
                srep.push((message::VER, ver.clone().unwrap()));
                srep.push((message::VERS, ver.clone().unwrap()));
            }
            edit(&mut srep);
            let srep_b = enc(&srep);
            let dele_b = encode(&[
                (message::PUBK, self.online.public_key().as_ref()),
                (message::MINT, &mint.to_le_bytes()),
                (message::MAXT, &maxt.to_le_bytes()),
            ]);
            let ctx = if matches!(
                version,
                Version::Google | Version::Draft08 | Version::Draft11
            ) {
                DELEGATION_CONTEXT_DASHES
            } else {
                DELEGATION_CONTEXT
            };
            let dele_sig = self.root.sign(&[ctx, &dele_b].concat());
            let cert = encode(&[(message::DELE, &dele_b), (message::SIG, dele_sig.as_ref())]);
            let sig = self.online.sign(&[RESPONSE_CONTEXT, &srep_b].concat());
            let mut top: Vec<(message::Tag, Vec<u8>)> = vec![
                (message::SREP, srep_b),
                (message::SIG, sig.as_ref().to_vec()),
                (message::CERT, cert),
                (message::INDX, 0u32.to_le_bytes().to_vec()),
                (message::PATH, vec![]),
                (message::NONC, nonce.to_vec()),
            ];
            match version {
                Version::Draft12 => top.push((message::TYPE, 1u32.to_le_bytes().to_vec())),
                Version::Google => {}
                _ => top.push((message::VER, ver.unwrap())),
            }
            let body = enc(&top);
            if matches!(version, Version::Google | Version::Draft07) {
                body
            } else {
                frame(&body)
            }
        }
    }

    fn enc(fields: &[(message::Tag, Vec<u8>)]) -> Vec<u8> {
        let f: Vec<(message::Tag, &[u8])> = fields.iter().map(|(t, v)| (*t, &v[..])).collect();
        encode(&f)
    }

    const MJD_2026_12_07: u64 = 61_381;

    #[test]
    fn draft07_midpoint_is_mjd_and_microseconds() {
        let f = Fake::new();
        let n = [9u8; 32];
        let midp = (MJD_2026_12_07 << 40) | 3_600_000_250; // 01:00:00.00025
        let r = f.reply(
            Version::Draft07,
            &n,
            midp,
            100_000,
            midp - 1,
            midp + 1,
            |_| {},
        );
        let v = verify(&r, &f.key(), &Sent::new(Family::Draft07, &n)).unwrap();
        assert_eq!(v.version, Version::Draft07);
        // 2026-12-07T01:00:00.00025Z
        assert_eq!(v.midpoint, 1_796_605_200_000_250_i128 * 1000);
        assert_eq!(v.radius, 0.1);
        // Offered only by the IETF family? No: draft 07 is answered to the draft-07 request only.
        assert!(verify(&r, &f.key(), &Sent::new(Family::Ietf, &n)).is_err());
    }

    #[test]
    fn draft12_reply_verifies_and_its_checks_bite() {
        let f = Fake::new();
        let n = [3u8; 32];
        let ok = f.reply(Version::Draft12, &n, 1_796_605_200, 5, 0, u64::MAX, |_| {});
        let v = verify(&ok, &f.key(), &Sent::new(Family::Ietf, &n)).unwrap();
        assert_eq!(
            (v.version, v.midpoint, v.radius, v.resolution),
            (Version::Draft12, 1_796_605_200 * NANOS_PER_SEC, 5.0, 1.0)
        );
        // Outside the delegation, in the server's own time (the local clock plays no part).
        let late = f.reply(
            Version::Draft12,
            &n,
            1_796_605_200,
            5,
            0,
            1_796_605_199,
            |_| {},
        );
        assert!(
            matches!(verify(&late, &f.key(), &Sent::new(Family::Ietf, &n)), Err(SourceError::Verification(e)) if e.contains("MINT..MAXT"))
        );
        let early = f.reply(
            Version::Draft12,
            &n,
            1_796_605_200,
            5,
            1_796_605_201,
            u64::MAX,
            |_| {},
        );
        assert!(verify(&early, &f.key(), &Sent::new(Family::Ietf, &n)).is_err());
        // A signed VERS listing a better offered version than the one used: downgrade.
        let down = f.reply(Version::Draft11, &n, 100, 5, 0, 200, |srep| {
            srep.push((
                message::VERS,
                [0x8000_000cu32.to_le_bytes(), 0x8000_000bu32.to_le_bytes()].concat(),
            ))
        });
        assert!(
            matches!(verify(&down, &f.key(), &Sent::new(Family::Ietf, &n)), Err(SourceError::Verification(e)) if e.contains("downgrade"))
        );
        // Draft 12 without its signed VER.
        let unsigned = f.reply(Version::Draft12, &n, 100, 5, 0, 200, |srep| {
            srep.retain(|(t, _)| *t != message::VER)
        });
        assert!(verify(&unsigned, &f.key(), &Sent::new(Family::Ietf, &n)).is_err());
        // Another nonce, the wrong key, and the unframed body: refused.
        assert!(verify(&ok, &f.key(), &Sent::new(Family::Ietf, &[4u8; 32])).is_err());
        assert!(verify(&ok, &[7u8; 32], &Sent::new(Family::Ietf, &n)).is_err());
        assert!(verify(&ok[12..], &f.key(), &Sent::new(Family::Ietf, &n)).is_err());
        assert!(verify(&ok, &f.key(), &Sent::new(Family::Draft07, &n)).is_err());
    }

    #[test]
    fn roughenough_full_width_path_is_accepted_for_draft12() {
        // Two leaves, hashed at full SHA-512 width, root truncated to 32 bytes.
        let f = Fake::new();
        let n = [5u8; 32];
        let sibling = digest::digest(&digest::SHA512, b"\0other")
            .as_ref()
            .to_vec();
        let leaf = digest::digest(&digest::SHA512, &[&[0u8][..], &n].concat());
        let root = digest::digest(
            &digest::SHA512,
            &[&[1u8][..], leaf.as_ref(), &sibling].concat(),
        )
        .as_ref()[..32]
            .to_vec();
        assert!(in_tree(Version::Draft12, &n, 0, &sibling, &root));
        assert!(!in_tree(Version::Draft12, &n, 1, &sibling, &root));
        assert!(!in_tree(Version::Draft11, &n, 0, &sibling, &root));
        assert!(
            !in_tree(Version::Draft12, &n, 2, &[], &root),
            "index bits past the path"
        );
        let _ = f;
    }

    #[test]
    fn sample_interval_and_caps() {
        let v = Verified {
            version: Version::Draft12,
            midpoint: 1_000 * NANOS_PER_SEC,
            resolution: 1.0,
            radius: 5.0,
        };
        // Sent at 999.9 s, answered at 1000.1 s local: the server said [1000, 1001) ± 5.
        let s = sample(&v, 999_900_000_000, 1_000_100_000_000, 3.0).unwrap();
        assert!((s.offset - 0.5).abs() < 1e-9, "{s:?}");
        assert!((s.uncertainty - (5.0 + 0.5 + 0.1)).abs() < 1e-9);
        assert!((s.rtt - 0.2).abs() < 1e-9);
        assert_eq!(s.trust, crate::core::sample::Trust::ClockIndependent);
        assert!(s.exemption.is_none() && s.estimate.is_none());
        // roughenough's 5 s radius is above MAX_SOURCE_ERROR (3 s) and still votes...
        assert!(s.uncertainty > 3.0);
        // ...but a round trip whose half exceeds it does not.
        assert!(matches!(
            sample(&v, 0, 7 * NANOS_PER_SEC, 3.0),
            Err(SourceError::Invalid(_))
        ));
        // A radius above MAX_RADIUS_SECS is refused, unless MAX_SOURCE_ERROR is larger.
        let wide = Verified { radius: 11.0, ..v };
        assert!(sample(&wide, 0, 1, 3.0).is_err());
        assert!(sample(&wide, 0, 1, 12.0).is_ok());
        let _ = request::REQUEST_LEN;
    }
}
