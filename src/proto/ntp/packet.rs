//! The 48-byte NTP packet: encoding, parsing, validation and offset math.
//!
//! Pure code, no I/O: every decision about a reply (is it ours? is the server
//! fit to be trusted? what offset does it give?) is a function of bytes and
//! timestamps, so it can be tested without a network. The client in
//! [`crate::proto::ntp::client`] only moves datagrams and reads clocks.

use std::fmt;
use std::ops::Sub;
use std::time::Duration;

use crate::core::sample::Sample;
use crate::os::clock::{UnixNanos, NANOS_PER_SEC};

/// Length of the NTP header; anything after it (extension fields, MAC) is ignored.
pub const PACKET_LEN: usize = 48;

/// Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01).
pub const NTP_UNIX_OFFSET_SECS: i128 = 2_208_988_800;

/// Largest root distance (root delay / 2 + root dispersion) accepted, in seconds.
///
/// RFC 5905's MAXDIST is 1.5 s and chrony's `maxdistance` 3 s; skewguard only
/// needs to tell a 5-minute skew from a good clock, so it accepts what beevik/ntp
/// accepts and reports the distance in the error bound instead of discarding it.
pub const MAX_ROOT_DISTANCE_SECS: f64 = 16.0;

/// Stratum from which a server is unsynchronised (RFC 5905: 16).
pub const UNSYNCHRONISED_STRATUM: u8 = 16;

/// Leap indicator 3: the server's clock is not synchronised (alarm).
pub const LEAP_ALARM: u8 = 3;

/// Mode of a client request.
pub const MODE_CLIENT: u8 = 3;

/// Mode of a server reply.
pub const MODE_SERVER: u8 = 4;

/// Version written into requests.
pub const VERSION: u8 = 4;

/// Poll exponents a RATE back-off is computed from: 2^4 s .. 2^10 s.
///
/// RFC 5905 allows polls up to 2^17 s (36 h), but a guard that obeys a single
/// packet by going blind for a day and a half is worse than useless; 2^10 s
/// (17 min) is the default `maxpoll` of both chrony and ntpd, so no server
/// expects a client to stay away longer.
const RATE_POLL_RANGE: (i8, i8) = (4, 10);

/// The shortest back-off after a RATE kiss.
pub const MIN_RATE_BACKOFF: Duration = Duration::from_secs(60);

/// The longest back-off after a RATE kiss: 2^10 s, see `RATE_POLL_RANGE`.
pub const MAX_RATE_BACKOFF: Duration = Duration::from_secs(1 << 10);

const FRAC_PER_SEC: f64 = 4_294_967_296.0; // 2^32

/// An NTP timestamp: 32.32 fixed point, seconds since 1900 modulo 2^32 (one era).
///
/// Only differences of timestamps are meaningful; see [`NtpTimestamp::sub`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NtpTimestamp(pub u64);

impl NtpTimestamp {
    /// The all-zero timestamp, which NTP uses for "not set".
    pub const ZERO: NtpTimestamp = NtpTimestamp(0);

    /// Converts Unix nanoseconds to an NTP timestamp, rounding to the nearest 2^-32 s.
    ///
    /// Times outside era 0 (before 1900 or from 2036-02-07T06:28:16Z) wrap into
    /// their era, as on the wire.
    pub fn from_unix_nanos(nanos: UnixNanos) -> Self {
        let secs = nanos.div_euclid(NANOS_PER_SEC) + NTP_UNIX_OFFSET_SECS;
        let sub = nanos.rem_euclid(NANOS_PER_SEC);
        let frac = ((sub << 32) + NANOS_PER_SEC / 2) / NANOS_PER_SEC;
        // `as u64` keeps the low 64 bits: seconds modulo 2^32 (the era). `frac`
        // stays below 2^32: 1 ns is 4.29 units, so rounding never carries.
        NtpTimestamp(((secs << 32) + frac) as u64)
    }

    /// Reads a timestamp from its 8 big-endian wire bytes.
    pub fn from_be_bytes(bytes: [u8; 8]) -> Self {
        NtpTimestamp(u64::from_be_bytes(bytes))
    }

    /// The 8 big-endian wire bytes.
    pub fn to_be_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }

    /// `true` for the all-zero timestamp.
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl Sub for NtpTimestamp {
    type Output = NtpDuration;

    /// The signed difference `self − rhs`, correct across the era rollover for
    /// any true difference under 2^31 s (68 years): wrapping subtraction read as
    /// two's complement picks the nearest representative.
    fn sub(self, rhs: NtpTimestamp) -> NtpDuration {
        NtpDuration(self.0.wrapping_sub(rhs.0) as i64)
    }
}

/// A signed difference of two [`NtpTimestamp`]s: 32.32 fixed point seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NtpDuration(pub i64);

impl NtpDuration {
    /// The duration in seconds.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / FRAC_PER_SEC
    }
}

/// Reads an NTP short-format value (unsigned 16.16 fixed point) as seconds.
fn short_to_secs(bytes: [u8; 4]) -> f64 {
    f64::from(u32::from_be_bytes(bytes)) / 65_536.0
}

/// Encodes seconds as NTP short format, saturating at the format's limits.
fn secs_to_short(secs: f64) -> [u8; 4] {
    // `as` saturates, and maps NaN to 0.
    ((secs * 65_536.0).round() as u32).to_be_bytes()
}

/// The request a client sends: mode 3, version 4, the nonce as transmit timestamp.
///
/// The nonce is random so that only a server that saw this request can echo it
/// back as the origin timestamp; the real send time never leaves the host.
pub fn build_request(nonce: NtpTimestamp) -> [u8; PACKET_LEN] {
    let mut buf = [0u8; PACKET_LEN];
    buf[0] = (VERSION << 3) | MODE_CLIENT;
    buf[40..48].copy_from_slice(&nonce.to_be_bytes());
    buf
}

/// The four-character code a Kiss-o'-Death packet carries in its reference id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KissCode(pub [u8; 4]);

impl KissCode {
    /// RATE: the client queries too often and must back off.
    pub const RATE: KissCode = KissCode(*b"RATE");
    /// DENY: access denied; stop querying this server.
    pub const DENY: KissCode = KissCode(*b"DENY");
    /// RSTR: access restricted; stop querying this server.
    pub const RSTR: KissCode = KissCode(*b"RSTR");

    /// What a client must do on this kiss (RFC 5905 §7.4 names only DENY,
    /// RSTR and RATE; every other code, such as ntpsec's start-up `INIT`,
    /// only says this reply carries no time).
    pub fn action(self) -> KissAction {
        match self {
            KissCode::DENY | KissCode::RSTR => KissAction::Stop,
            KissCode::RATE => KissAction::SlowDown,
            _ => KissAction::NotReady,
        }
    }
}

/// What a Kiss-o'-Death asks of the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KissAction {
    /// DENY, RSTR: stop querying this server.
    Stop,
    /// RATE: query less often.
    SlowDown,
    /// Any other code: no time in this reply; a later one may carry it.
    NotReady,
}

impl fmt::Display for KissCode {
    /// Printable ASCII as is (trailing NULs dropped), anything else as `\xNN`,
    /// so a hostile code cannot inject control characters into logs or reports.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let len = self.0.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        if len == 0 {
            return f.write_str("(empty)");
        }
        for &b in &self.0[..len] {
            if b.is_ascii_graphic() || b == b' ' {
                write!(f, "{}", b as char)?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

/// A parsed NTP header.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Packet {
    /// Leap indicator (0-3); 3 means the server clock is unsynchronised.
    pub leap: u8,
    /// Protocol version (1-7).
    pub version: u8,
    /// Association mode (3 client, 4 server).
    pub mode: u8,
    /// Stratum: 0 Kiss-o'-Death, 1 primary, 2-15 secondary, 16+ unsynchronised.
    pub stratum: u8,
    /// Poll interval exponent (log2 seconds).
    pub poll: i8,
    /// Precision exponent (log2 seconds).
    pub precision: i8,
    /// Round-trip delay to the reference clock, in seconds.
    pub root_delay: f64,
    /// Dispersion relative to the reference clock, in seconds.
    pub root_dispersion: f64,
    /// Reference id (a Kiss-o'-Death code when the stratum is 0).
    pub reference_id: [u8; 4],
    /// When the server's clock was last set (T_ref).
    pub reference: NtpTimestamp,
    /// The client's transmit timestamp echoed back (T1, here the nonce).
    pub origin: NtpTimestamp,
    /// When the request reached the server (T2).
    pub receive: NtpTimestamp,
    /// When the reply left the server (T3).
    pub transmit: NtpTimestamp,
}

fn array<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

impl Packet {
    /// Parses the first 48 bytes; extension fields and MACs after them are ignored.
    pub fn parse(bytes: &[u8]) -> Result<Packet, Rejection> {
        if bytes.len() < PACKET_LEN {
            return Err(Rejection::TooShort(bytes.len()));
        }
        let ts = |at| NtpTimestamp::from_be_bytes(array(bytes, at));
        Ok(Packet {
            leap: bytes[0] >> 6,
            version: (bytes[0] >> 3) & 0x07,
            mode: bytes[0] & 0x07,
            stratum: bytes[1],
            poll: bytes[2] as i8,
            precision: bytes[3] as i8,
            root_delay: short_to_secs(array(bytes, 4)),
            root_dispersion: short_to_secs(array(bytes, 8)),
            reference_id: array(bytes, 12),
            reference: ts(16),
            origin: ts(24),
            receive: ts(32),
            transmit: ts(40),
        })
    }

    /// Encodes the header (used by tests and fake servers).
    pub fn to_bytes(&self) -> [u8; PACKET_LEN] {
        let mut buf = [0u8; PACKET_LEN];
        buf[0] = (self.leap & 0x03) << 6 | (self.version & 0x07) << 3 | (self.mode & 0x07);
        buf[1] = self.stratum;
        buf[2] = self.poll as u8;
        buf[3] = self.precision as u8;
        buf[4..8].copy_from_slice(&secs_to_short(self.root_delay));
        buf[8..12].copy_from_slice(&secs_to_short(self.root_dispersion));
        buf[12..16].copy_from_slice(&self.reference_id);
        buf[16..24].copy_from_slice(&self.reference.to_be_bytes());
        buf[24..32].copy_from_slice(&self.origin.to_be_bytes());
        buf[32..40].copy_from_slice(&self.receive.to_be_bytes());
        buf[40..48].copy_from_slice(&self.transmit.to_be_bytes());
        buf
    }

    /// Root distance as the validation sees it: root delay / 2 + root dispersion.
    pub fn root_distance(&self) -> f64 {
        self.root_delay / 2.0 + self.root_dispersion
    }

    /// Checks that this is a usable server reply to the request carrying `nonce`.
    ///
    /// The order matters: whether the reply answers our request (mode, version,
    /// origin) is settled first, so a spoofed Kiss-o'-Death is reported as a
    /// wrong origin and can be ignored rather than obeyed.
    pub fn validate(&self, nonce: NtpTimestamp) -> Result<(), Rejection> {
        if self.mode != MODE_SERVER {
            return Err(Rejection::NotServerMode(self.mode));
        }
        if !(3..=4).contains(&self.version) {
            return Err(Rejection::BadVersion(self.version));
        }
        if self.origin != nonce {
            return Err(Rejection::WrongOrigin);
        }
        if self.stratum == 0 {
            // openntpd before its first sync: LI 3, stratum 0, no code at all.
            // That is a server without time, not a request to back off.
            if self.reference_id == [0; 4] {
                return Err(Rejection::Unsynchronised);
            }
            return Err(Rejection::KissOfDeath(KissCode(self.reference_id)));
        }
        if self.transmit.is_zero() {
            return Err(Rejection::ZeroTransmit);
        }
        if self.receive.is_zero() {
            return Err(Rejection::ZeroReceive);
        }
        // Era-safe: T3 − T2 is the server's hold time, never negative.
        if (self.transmit - self.receive).0 < 0 {
            return Err(Rejection::TransmitBeforeReceive);
        }
        if self.stratum >= UNSYNCHRONISED_STRATUM {
            return Err(Rejection::UnsynchronisedStratum(self.stratum));
        }
        if self.leap == LEAP_ALARM {
            return Err(Rejection::LeapAlarm);
        }
        let distance = self.root_distance();
        if distance > MAX_ROOT_DISTANCE_SECS {
            return Err(Rejection::RootDistance(distance));
        }
        Ok(())
    }
}

/// Parses and validates a reply to the request carrying `nonce`.
pub fn check_reply(bytes: &[u8], nonce: NtpTimestamp) -> Result<Packet, Rejection> {
    let packet = Packet::parse(bytes)?;
    packet.validate(nonce)?;
    Ok(packet)
}

/// Why a datagram is not a usable reply.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rejection {
    /// Fewer than 48 bytes (the length received).
    TooShort(usize),
    /// The mode is not 4 (server).
    NotServerMode(u8),
    /// The version is not 3 or 4.
    BadVersion(u8),
    /// The origin timestamp is not the nonce we sent: stale, duplicated or spoofed.
    WrongOrigin,
    /// The transmit timestamp is zero: the server did not fill it in.
    ZeroTransmit,
    /// The receive timestamp (T2) is zero: the server did not fill it in.
    ZeroReceive,
    /// The transmit timestamp (T3) is before the receive timestamp (T2).
    TransmitBeforeReceive,
    /// Stratum 0 without a kiss code: the server has no time yet (openntpd
    /// before its first synchronisation).
    Unsynchronised,
    /// Stratum 0: the server sent a Kiss-o'-Death with this code.
    KissOfDeath(KissCode),
    /// Stratum 16 or more: the server is unsynchronised.
    UnsynchronisedStratum(u8),
    /// Leap indicator 3: the server clock is unsynchronised.
    LeapAlarm,
    /// Root distance (seconds) above [`MAX_ROOT_DISTANCE_SECS`].
    RootDistance(f64),
    /// The whole error bound of the exchange (seconds) is above the allowed
    /// maximum (seconds): too wide to be a vote.
    ErrorBound {
        /// The exchange's error bound.
        bound: f64,
        /// The configured maximum.
        max: f64,
    },
}

impl Rejection {
    /// Whether the datagram is the server's answer to our request (mode,
    /// version and origin check out) that it cannot be used: waiting longer
    /// for another answer is pointless, the exchange ends at once. The
    /// others may be junk, strays or forgeries and are ignored.
    pub fn is_answer(&self) -> bool {
        !matches!(
            self,
            Rejection::TooShort(_)
                | Rejection::NotServerMode(_)
                | Rejection::BadVersion(_)
                | Rejection::WrongOrigin
        )
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::TooShort(n) => write!(
                f,
                "too short: {n} bytes, an NTP reply has at least {PACKET_LEN}"
            ),
            Rejection::NotServerMode(m) => write!(f, "mode {m} is not server mode ({MODE_SERVER})"),
            Rejection::BadVersion(v) => write!(f, "version {v} is not NTP version 3 or 4"),
            Rejection::WrongOrigin => f.write_str(
                "origin timestamp does not match the request's nonce (stale, duplicated or spoofed)",
            ),
            Rejection::ZeroTransmit => f.write_str("zero transmit timestamp"),
            Rejection::ZeroReceive => f.write_str("zero receive timestamp"),
            Rejection::TransmitBeforeReceive => {
                f.write_str("transmit timestamp before the receive timestamp")
            }
            Rejection::Unsynchronised => f.write_str(
                "the server is not synchronised (stratum 0 without a kiss code): it has no time to give yet",
            ),
            Rejection::KissOfDeath(code) => write!(f, "Kiss-o'-Death {code}"),
            Rejection::UnsynchronisedStratum(s) => {
                write!(f, "stratum {s}: the server is unsynchronised")
            }
            Rejection::LeapAlarm => {
                f.write_str("leap indicator 3 (alarm): the server is unsynchronised")
            }
            Rejection::RootDistance(d) => write!(
                f,
                "root distance {d:.3}s exceeds {MAX_ROOT_DISTANCE_SECS}s"
            ),
            Rejection::ErrorBound { bound, max } => write!(
                f,
                "error bound ±{bound:.3}s exceeds SKEWGUARD_MAX_SOURCE_ERROR={max:.3}s"
            ),
        }
    }
}

impl std::error::Error for Rejection {}

/// Offset and delay of one client/server exchange (RFC 5905 on-wire math).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exchange {
    /// θ = ((T2−T1)+(T3−T4))/2: server minus local, in seconds.
    pub offset: f64,
    /// δ = (T4−T1)−(T3−T2), in seconds; may be negative when the server's
    /// timestamps are inconsistent (seen with chrony under libfaketime).
    pub delay: f64,
    /// (T4−T1)+(T3−T2), in seconds: the local round trip plus the server's
    /// hold time, the width of the interval T2 and T3 allow *each on its own*.
    pub span: f64,
}

impl Exchange {
    /// Computes θ, δ and the span from the four timestamps with era-safe differences.
    ///
    /// The timestamps are read as one chain along the exchange: T2 from T1
    /// (the outbound leg, nearest representative), T3 from T2 (the hold time
    /// that validation checked is ≥ 0) and T4 from T1 (the local round trip);
    /// T3 − T4 is derived from those, never taken on its own. Each
    /// difference is only known modulo an era (2^32 s), and four timestamps
    /// that span more than half an era have no reading in which every
    /// pairwise nearest difference agrees: a hostile hold time of 54 years
    /// made the direct T3 − T4 wrap while T3 − T2 did not, which moved θ by
    /// 68 years and left both server clocks outside the bound.
    pub fn new(t1: NtpTimestamp, t2: NtpTimestamp, t3: NtpTimestamp, t4: NtpTimestamp) -> Self {
        // Sums in i128: each difference may be close to ±2^63.
        let (out, hold) = (i128::from((t2 - t1).0), i128::from((t3 - t2).0));
        let local = i128::from((t4 - t1).0);
        let back = out + hold - local;
        Exchange {
            offset: (out + back) as f64 / FRAC_PER_SEC / 2.0,
            delay: (local - hold) as f64 / FRAC_PER_SEC,
            span: (local + hold) as f64 / FRAC_PER_SEC,
        }
    }

    /// Round-trip time as reported: δ, never below zero.
    pub fn rtt(&self) -> f64 {
        self.delay.max(0.0)
    }

    /// Error bound ε around θ: δ/2 + root_delay/2 + root_dispersion (AWS
    /// ClockBound's bound) for δ ≥ 0.
    ///
    /// A server whose T2 and T3 come from one clock gives T3 − T4 ≤ θ ≤ T2 − T1,
    /// an interval of width δ around θ. A negative δ means they come from two
    /// clocks (chrony and ntpsec take T2 from the kernel; under libfaketime a
    /// +0.25 s shift reads as θ = +0.125 s, δ = −0.25 s), and that interval is
    /// empty. Then either clock may be the server's: T2 alone gives
    /// [T2 − T4, T2 − T1], T3 alone [T3 − T4, T3 − T1], and their hull
    /// [T2 − T4, T3 − T1] is centred on θ with half-width span/2, which holds
    /// the truth whichever clock is right (|δ|/2 would miss it by rtt/2).
    pub fn error_bound(&self, root_delay: f64, root_dispersion: f64) -> f64 {
        let own = if self.delay >= 0.0 {
            self.delay
        } else {
            self.span.max(-self.delay)
        };
        own / 2.0 + root_delay / 2.0 + root_dispersion
    }
}

/// The sample a validated reply gives, with T1 and T4 read locally.
///
/// T1 must be no later than the request left and T4 no earlier than the
/// reply arrived (on the local realtime scale), or the bound is not honest.
pub fn sample(t1: NtpTimestamp, reply: &Packet, t4: NtpTimestamp) -> Sample {
    let x = Exchange::new(t1, reply.receive, reply.transmit, t4);
    Sample::plain(
        x.offset,
        x.error_bound(reply.root_delay, reply.root_dispersion),
        x.rtt(),
    )
}

/// [`sample`], refused when its error bound exceeds `max_error` seconds: an
/// interval that wide would overlap every other source and join any majority.
pub fn bounded_sample(
    t1: NtpTimestamp,
    reply: &Packet,
    t4: NtpTimestamp,
    max_error: f64,
) -> Result<Sample, Rejection> {
    let s = sample(t1, reply, t4);
    // A NaN bound is refused too.
    if s.uncertainty.is_nan() || s.uncertainty > max_error {
        return Err(Rejection::ErrorBound {
            bound: s.uncertainty,
            max: max_error,
        });
    }
    Ok(s)
}

/// How long to stay away after a RATE kiss: 2^poll seconds, from a minute to
/// [`MAX_RATE_BACKOFF`].
///
/// The poll exponent comes from the server, so it is clamped to a sane range.
pub fn rate_backoff(poll: i8) -> Duration {
    let exp = poll.clamp(RATE_POLL_RANGE.0, RATE_POLL_RANGE.1) as u32;
    Duration::from_secs(1u64 << exp).max(MIN_RATE_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// 2036-02-07T06:28:16Z, where NTP era 0 ends.
    const ERA1_UNIX_SECS: i128 = (1i128 << 32) - NTP_UNIX_OFFSET_SECS;
    /// 56 years of 365.25 days.
    const YEARS_56: i128 = 56 * 36_525 * 864;

    fn unix(secs: i128) -> NtpTimestamp {
        NtpTimestamp::from_unix_nanos(secs * NANOS_PER_SEC)
    }

    fn unix_f(secs: f64) -> NtpTimestamp {
        NtpTimestamp::from_unix_nanos((secs * 1e9).round() as i128)
    }

    const NONCE: NtpTimestamp = NtpTimestamp(0x0123_4567_89ab_cdef);

    fn good_reply() -> Packet {
        Packet {
            leap: 0,
            version: 4,
            mode: MODE_SERVER,
            stratum: 2,
            poll: 6,
            precision: -20,
            root_delay: 0.015625,
            root_dispersion: 0.03125,
            reference_id: [10, 0, 0, 1],
            reference: unix(1_700_000_000),
            origin: NONCE,
            receive: unix_f(1_700_000_100.25),
            transmit: unix_f(1_700_000_100.5),
        }
    }

    #[test]
    fn converts_unix_time() {
        assert_eq!(
            NtpTimestamp::from_unix_nanos(0),
            NtpTimestamp(2_208_988_800 << 32)
        );
        assert_eq!(
            NtpTimestamp::from_unix_nanos(500_000_000),
            NtpTimestamp((2_208_988_800 << 32) | 0x8000_0000)
        );
        // Before 1970: one second before the Unix epoch.
        assert_eq!(
            NtpTimestamp::from_unix_nanos(-NANOS_PER_SEC),
            NtpTimestamp(2_208_988_799 << 32)
        );
        // Era 1 starts again at zero seconds.
        assert_eq!(unix(ERA1_UNIX_SECS), NtpTimestamp(0));
        assert_eq!(unix(ERA1_UNIX_SECS + 5), NtpTimestamp(5 << 32));
        // The last nanosecond of a second stays in that second (2^32 − 4.29 → 0xFFFF_FFFC).
        assert_eq!(
            NtpTimestamp::from_unix_nanos(NANOS_PER_SEC - 1),
            NtpTimestamp((2_208_988_800 << 32) | 0xFFFF_FFFC)
        );
    }

    #[test]
    fn request_is_client_mode_v4_with_the_nonce() {
        let req = build_request(NONCE);
        assert_eq!(req[0], 0x23, "LI 0, version 4, mode 3");
        assert!(req[1..40].iter().all(|&b| b == 0));
        assert_eq!(&req[40..48], &NONCE.to_be_bytes());
        let p = Packet::parse(&req).unwrap();
        assert_eq!((p.version, p.mode, p.transmit), (4, MODE_CLIENT, NONCE));
    }

    #[test]
    fn encode_parse_round_trip() {
        let p = good_reply();
        let bytes = p.to_bytes();
        assert_eq!(Packet::parse(&bytes), Ok(p));
        // Extension fields / MAC after the header are ignored.
        let mut long = bytes.to_vec();
        long.extend_from_slice(&[0xAA; 68]);
        assert_eq!(Packet::parse(&long), Ok(p));
        assert_eq!(check_reply(&long, NONCE), Ok(p));
    }

    #[test]
    fn parses_fields_at_their_offsets() {
        let mut b = [0u8; PACKET_LEN];
        b[0] = 0b11_100_100; // LI 3, v4, mode 4
        b[1] = 7;
        b[2] = 0xFA; // poll -6
        b[3] = 0xEC; // precision -20
        b[4..8].copy_from_slice(&[0, 1, 0x80, 0]); // 1.5 s
        b[8..12].copy_from_slice(&[0, 0, 0x40, 0]); // 0.25 s
        b[12..16].copy_from_slice(b"GPS\0");
        let p = Packet::parse(&b).unwrap();
        assert_eq!((p.leap, p.version, p.mode, p.stratum), (3, 4, 4, 7));
        assert_eq!((p.poll, p.precision), (-6, -20));
        assert_eq!((p.root_delay, p.root_dispersion), (1.5, 0.25));
        assert_eq!(&p.reference_id, b"GPS\0");
    }

    #[test]
    fn validation_names_each_failure() {
        type Edit = fn(&mut Packet);
        let cases: &[(&str, Edit, Rejection)] = &[
            (
                "client mode",
                |p| p.mode = MODE_CLIENT,
                Rejection::NotServerMode(3),
            ),
            (
                "broadcast mode",
                |p| p.mode = 5,
                Rejection::NotServerMode(5),
            ),
            ("version 2", |p| p.version = 2, Rejection::BadVersion(2)),
            ("version 5", |p| p.version = 5, Rejection::BadVersion(5)),
            (
                "wrong origin",
                |p| p.origin = NtpTimestamp(1),
                Rejection::WrongOrigin,
            ),
            (
                "zero origin",
                |p| p.origin = NtpTimestamp::ZERO,
                Rejection::WrongOrigin,
            ),
            (
                "zero transmit",
                |p| p.transmit = NtpTimestamp::ZERO,
                Rejection::ZeroTransmit,
            ),
            (
                "KoD RATE",
                |p| {
                    p.stratum = 0;
                    p.leap = 3;
                    p.reference_id = *b"RATE";
                },
                Rejection::KissOfDeath(KissCode::RATE),
            ),
            (
                "KoD DENY",
                |p| {
                    p.stratum = 0;
                    p.reference_id = *b"DENY";
                },
                Rejection::KissOfDeath(KissCode::DENY),
            ),
            (
                "KoD RSTR",
                |p| {
                    p.stratum = 0;
                    p.reference_id = *b"RSTR";
                },
                Rejection::KissOfDeath(KissCode::RSTR),
            ),
            (
                "stratum 16",
                |p| p.stratum = 16,
                Rejection::UnsynchronisedStratum(16),
            ),
            (
                "stratum 255",
                |p| p.stratum = 255,
                Rejection::UnsynchronisedStratum(255),
            ),
            ("LI 3", |p| p.leap = 3, Rejection::LeapAlarm),
            (
                "root distance",
                |p| {
                    p.root_delay = 10.0;
                    p.root_dispersion = 12.0;
                },
                Rejection::RootDistance(17.0),
            ),
            (
                "zero receive",
                |p| p.receive = NtpTimestamp::ZERO,
                Rejection::ZeroReceive,
            ),
            (
                "T3 before T2",
                |p| p.transmit = NtpTimestamp(p.receive.0 - 1),
                Rejection::TransmitBeforeReceive,
            ),
            (
                "openntpd unsynchronised",
                |p| {
                    p.leap = 3;
                    p.stratum = 0;
                    p.reference_id = [0; 4];
                },
                Rejection::Unsynchronised,
            ),
            (
                "spoofed KoD",
                |p| {
                    p.stratum = 0;
                    p.reference_id = *b"DENY";
                    p.origin = NtpTimestamp(7);
                },
                Rejection::WrongOrigin,
            ),
        ];
        for (name, edit, want) in cases {
            let mut p = good_reply();
            edit(&mut p);
            assert_eq!(p.validate(NONCE), Err(*want), "{name}");
            assert_eq!(
                check_reply(&p.to_bytes(), NONCE),
                Err(*want),
                "{name} from bytes"
            );
        }
        for n in [0, 1, 47] {
            assert_eq!(
                check_reply(&vec![0x24; n], NONCE),
                Err(Rejection::TooShort(n))
            );
        }
        // Accepted: version 3, LI 1/2 (leap second pending), distance at the limit.
        for edit in [
            (|p: &mut Packet| p.version = 3) as fn(&mut Packet),
            |p| p.leap = 1,
            |p| p.leap = 2,
            |p| p.stratum = 15,
            |p| {
                p.root_delay = 8.0;
                p.root_dispersion = 12.0;
            },
        ] {
            let mut p = good_reply();
            edit(&mut p);
            assert_eq!(p.validate(NONCE), Ok(()), "{p:?}");
        }
    }

    #[test]
    fn reasons_read_well() {
        let cases = [
            (Rejection::TooShort(12), "too short: 12 bytes"),
            (Rejection::NotServerMode(3), "mode 3 is not server mode"),
            (Rejection::BadVersion(7), "version 7"),
            (Rejection::WrongOrigin, "origin timestamp"),
            (Rejection::ZeroTransmit, "zero transmit timestamp"),
            (Rejection::KissOfDeath(KissCode::RATE), "Kiss-o'-Death RATE"),
            (Rejection::UnsynchronisedStratum(16), "stratum 16"),
            (Rejection::LeapAlarm, "leap indicator 3"),
            (
                Rejection::RootDistance(17.0),
                "root distance 17.000s exceeds 16s",
            ),
            (Rejection::ZeroReceive, "zero receive timestamp"),
            (
                Rejection::TransmitBeforeReceive,
                "transmit timestamp before",
            ),
            (Rejection::Unsynchronised, "not synchronised"),
            (
                Rejection::ErrorBound {
                    bound: 4.5,
                    max: 3.0,
                },
                "±4.500s exceeds SKEWGUARD_MAX_SOURCE_ERROR=3.000s",
            ),
        ];
        for (r, want) in cases {
            assert!(r.to_string().contains(want), "{r}");
        }
    }

    #[test]
    fn only_deny_rstr_and_rate_are_acted_on() {
        assert_eq!(KissCode::DENY.action(), KissAction::Stop);
        assert_eq!(KissCode::RSTR.action(), KissAction::Stop);
        assert_eq!(KissCode::RATE.action(), KissAction::SlowDown);
        for code in [*b"INIT", *b"STEP", *b"ACST", [0, 1, 2, 3]] {
            assert_eq!(KissCode(code).action(), KissAction::NotReady);
        }
    }

    #[test]
    fn answers_end_the_exchange_and_strays_do_not() {
        for r in [
            Rejection::TooShort(3),
            Rejection::NotServerMode(3),
            Rejection::BadVersion(1),
            Rejection::WrongOrigin,
        ] {
            assert!(!r.is_answer(), "{r}");
        }
        for r in [
            Rejection::ZeroTransmit,
            Rejection::ZeroReceive,
            Rejection::TransmitBeforeReceive,
            Rejection::Unsynchronised,
            Rejection::KissOfDeath(KissCode::RATE),
            Rejection::UnsynchronisedStratum(16),
            Rejection::LeapAlarm,
            Rejection::RootDistance(20.0),
        ] {
            assert!(r.is_answer(), "{r}");
        }
    }

    #[test]
    fn a_wide_exchange_is_refused_not_voted() {
        let t1 = unix_f(1_780_000_000.0);
        let mut p = good_reply();
        p.receive = unix_f(1_780_000_001.0);
        p.transmit = unix_f(1_780_000_001.0);
        p.root_delay = 2.0;
        p.root_dispersion = 2.5;
        let t4 = unix_f(1_780_000_000.5);
        match bounded_sample(t1, &p, t4, 3.0) {
            Err(Rejection::ErrorBound { bound, max }) => {
                assert!((bound - 3.75).abs() < 1e-6, "{bound}");
                assert_eq!(max, 3.0);
            }
            other => panic!("{other:?}"),
        }
        let s = bounded_sample(t1, &p, t4, 4.0).unwrap();
        assert!((s.uncertainty - 3.75).abs() < 1e-6, "{s:?}");
    }

    #[test]
    fn kiss_codes_render_safely() {
        let cases: &[([u8; 4], &str)] = &[
            (*b"RATE", "RATE"),
            (*b"ACST", "ACST"),
            (*b"GP\0\0", "GP"),
            ([0; 4], "(empty)"),
            ([b'A', 0x1b, b'[', 0xff], "A\\x1b[\\xff"),
            ([b'\n', 0, b'X', 0], "\\x0a\\x00X"),
        ];
        for (code, want) in cases {
            assert_eq!(KissCode(*code).to_string(), *want);
        }
    }

    #[test]
    fn differences_cross_the_2036_era_rollover() {
        let before = unix(ERA1_UNIX_SECS - 3);
        let after = unix(ERA1_UNIX_SECS + 2);
        assert!(after.0 < before.0, "the raw value wraps");
        assert_eq!((after - before).as_secs_f64(), 5.0);
        assert_eq!((before - after).as_secs_f64(), -5.0);

        // Client just before the rollover, server just after: offset +1.5 s.
        let t1 = unix_f(ERA1_UNIX_SECS as f64 - 1.0);
        let t2 = unix_f(ERA1_UNIX_SECS as f64 + 0.51);
        let t3 = unix_f(ERA1_UNIX_SECS as f64 + 0.52);
        let t4 = unix_f(ERA1_UNIX_SECS as f64 - 0.97);
        let x = Exchange::new(t1, t2, t3, t4);
        assert!((x.offset - 1.5).abs() < 1e-6, "{x:?}");
        assert!((x.delay - 0.02).abs() < 1e-6, "{x:?}");
    }

    #[test]
    fn offsets_of_56_years_both_ways() {
        let now = 1_780_000_000i128; // 2026
        for (local, server, want) in [
            (now - YEARS_56, now, YEARS_56 as f64),
            (now, now - YEARS_56, -(YEARS_56 as f64)),
            (0, now, now as f64), // a clock at 1970 against 2026: not clipped
            (now + 20 * 31_557_600, now, -20.0 * 31_557_600.0), // local past 2036
        ] {
            let x = Exchange::new(unix(local), unix(server), unix(server), unix(local));
            assert!((x.offset - want).abs() < 1e-6, "{local} vs {server}: {x:?}");
            assert_eq!(x.delay, 0.0);
        }
    }

    #[test]
    fn fractional_offset_is_exact() {
        // Integer nanoseconds, so the test itself adds no float rounding.
        let ns = |n: i128| NtpTimestamp::from_unix_nanos(n);
        let t1: i128 = 1_780_000_000_123_456_789;
        let rtt: i128 = 4_200_000;
        let server = t1 + rtt / 2 + 3_375_000_000;
        let x = Exchange::new(ns(t1), ns(server), ns(server), ns(t1 + rtt));
        assert!((x.offset - 3.375).abs() < 1e-6, "{x:?}");
        assert!((x.delay - 0.0042).abs() < 1e-6, "{x:?}");
    }

    #[test]
    fn a_hold_time_past_half_an_era_keeps_both_clocks_inside_the_bound() {
        // Found by fuzzing: T2 1.5e9 s after T1 and a hold of 1e9 s put T3
        // 2.5e9 s after T1/T4, past half an era (2^31 s), so the direct
        // T3 − T4 wrapped to −1.79e9 s and θ came out at −0.147e9 s ± 0.5e9 s,
        // which holds neither T2's offset (+1.5e9 s) nor T3's (+2.5e9 s).
        let t1 = unix(1_780_000_000);
        let mut p = good_reply();
        p.root_delay = 0.0;
        p.root_dispersion = 0.0;
        p.receive = unix(1_780_000_000 + 1_500_000_000);
        p.transmit = unix(1_780_000_000 + 2_500_000_000);
        assert_eq!((p.transmit - p.receive).as_secs_f64(), 1e9);
        let s = sample(t1, &p, t1);
        assert!((s.offset - 2e9).abs() < 1e-3, "{s:?}");
        assert!((s.uncertainty - 0.5e9).abs() < 1e-3, "{s:?}");
        assert!(s.offset - s.uncertainty <= 1.5e9 + 1e-3, "{s:?}");
        assert!(s.offset + s.uncertainty >= 2.5e9 - 1e-3, "{s:?}");
    }

    #[test]
    fn sample_bound_follows_clockbound_and_covers_a_negative_delay() {
        let t1 = unix_f(1_780_000_000.0);
        let mut p = good_reply();
        p.root_delay = 0.5;
        p.root_dispersion = 0.25;
        p.receive = unix_f(1_780_000_001.05);
        p.transmit = unix_f(1_780_000_001.06);
        let s = sample(t1, &p, unix_f(1_780_000_000.1));
        assert!((s.offset - 1.005).abs() < 1e-6, "{s:?}");
        assert!((s.rtt - 0.09).abs() < 1e-6, "{s:?}");
        assert!(
            (s.uncertainty - (0.045 + 0.25 + 0.25)).abs() < 1e-6,
            "{s:?}"
        );

        // chrony under libfaketime +0.25: T2 unshifted, T3 shifted → δ = −0.25.
        p.receive = unix_f(1_780_000_000.0);
        p.transmit = unix_f(1_780_000_000.25);
        let t4 = unix_f(1_780_000_000.0);
        let x = Exchange::new(t1, p.receive, p.transmit, t4);
        assert!((x.delay + 0.25).abs() < 1e-6, "{x:?}");
        let s = sample(t1, &p, t4);
        assert_eq!(s.rtt, 0.0, "the reported round trip is never negative");
        assert!((s.offset - 0.125).abs() < 1e-6, "{s:?}");
        // ε = |δ|/2 + root_delay/2 + root_dispersion = 0.125 + 0.25 + 0.25, and
        // θ + ε reaches the true +0.25 s.
        assert!(
            (s.uncertainty - (0.125 + 0.25 + 0.25)).abs() < 1e-6,
            "{s:?}"
        );
        assert!(s.offset + s.uncertainty >= 0.25, "{s:?}");
    }

    #[test]
    fn rate_backoff_is_clamped() {
        for (poll, secs) in [
            (-128, 60),
            (0, 60),
            (4, 60),
            (6, 64),
            (10, 1024),
            (10, 1024),
            (17, 1024),
            (127, 1024),
        ] {
            assert_eq!(rate_backoff(poll), Duration::from_secs(secs), "poll {poll}");
        }
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_bytes_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..120),
            nonce in any::<u64>(),
        ) {
            let nonce = NtpTimestamp(nonce);
            if let Ok(p) = Packet::parse(&bytes) {
                prop_assert!(bytes.len() >= PACKET_LEN);
                prop_assert_eq!(Packet::parse(&p.to_bytes()[..]), Ok(p));
                if p.origin != nonce {
                    prop_assert!(p.validate(nonce).is_err());
                }
            }
            // Rendering what came from the network must not panic either.
            let _ = check_reply(&bytes, nonce)
                .map(|p| format!("{} {p:?}", KissCode(p.reference_id)))
                .map_err(|e| e.to_string());
        }

        #[test]
        fn never_accepts_a_foreign_origin(
            mut header in proptest::array::uniform32(any::<u8>()),
            tail in proptest::array::uniform16(any::<u8>()),
            nonce in any::<u64>(),
        ) {
            // Make most of the header plausible so validation reaches the origin check.
            header[0] = (header[0] & 0xC0) | (4 << 3) | MODE_SERVER;
            let mut bytes = header.to_vec();
            bytes.extend_from_slice(&tail);
            let p = Packet::parse(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assume!(p.origin.0 != nonce);
            prop_assert!(check_reply(&bytes, NtpTimestamp(nonce)).is_err());
            prop_assert_eq!(p.validate(NtpTimestamp(nonce)), Err(Rejection::WrongOrigin));
        }

        /// A server whose T2 comes from one clock and T3 from another (kernel
        /// receive stamps under libfaketime, ntpsec), seen as a negative δ:
        /// whichever of the two is the server's clock, its offset is inside
        /// the bound. (Two clocks closer than the round trip give δ ≥ 0 and
        /// cannot be told from one.)
        #[test]
        fn two_server_clocks_stay_inside_the_bound(
            t1 in 1_600_000_000_000_000_000i128..1_900_000_000_000_000_000,
            rtt in 0i128..500_000_000,
            at in 0.0f64..=1.0,
            hold in 0i128..5_000_000,
            rx_shift in -3_000_000_000i128..3_000_000_000,
            tx_shift in -3_000_000_000i128..3_000_000_000,
        ) {
            let ns = NtpTimestamp::from_unix_nanos;
            let arrive = t1 + (rtt as f64 * at) as i128;
            let leave = (arrive + hold).min(t1 + rtt);
            let (t2, t3) = (arrive + rx_shift, leave + tx_shift);
            prop_assume!(t3 >= t2);
            let mut p = good_reply();
            p.root_delay = 0.0;
            p.root_dispersion = 0.0;
            p.receive = ns(t2);
            p.transmit = ns(t3);
            prop_assume!(Exchange::new(ns(t1), p.receive, p.transmit, ns(t1 + rtt)).delay < 0.0);
            let s = sample(ns(t1), &p, ns(t1 + rtt));
            // 2 ns of slack: each timestamp rounds to 2^-32 s.
            for truth in [rx_shift, tx_shift] {
                let truth = truth as f64 / 1e9;
                prop_assert!(
                    (s.offset - truth).abs() <= s.uncertainty + 2e-9,
                    "{s:?} misses {truth}"
                );
            }
            prop_assert!(s.uncertainty >= 0.0);
        }

        /// Any T2 and hold time a server sends, at any point of any era, with
        /// an honest local round trip: the bound holds what the server's
        /// timestamps allow, read along the exchange (T2 from T1, T3 from T2).
        #[test]
        fn the_bound_holds_for_any_server_timestamps(
            t1 in any::<u64>(),
            local in 0u64..(10u64 << 32),
            out in any::<i64>(),
            hold in 0..i64::MAX,
        ) {
            let t2 = t1.wrapping_add(out as u64);
            let (t3, t4) = (t2.wrapping_add(hold as u64), t1.wrapping_add(local));
            let mut p = good_reply();
            p.root_delay = 0.0;
            p.root_dispersion = 0.0;
            p.receive = NtpTimestamp(t2);
            p.transmit = NtpTimestamp(t3);
            let s = sample(NtpTimestamp(t1), &p, NtpTimestamp(t4));
            let secs = |v: i128| v as f64 / FRAC_PER_SEC;
            let (out, hold, local) = (i128::from(out), i128::from(hold), i128::from(local));
            // One clock (δ ≥ 0): [T3 − T4, T2 − T1]; two (δ < 0): [T2 − T4, T3 − T1].
            let (lo, hi) = if hold <= local {
                (out + hold - local, out)
            } else {
                (out - local, out + hold)
            };
            let slack = 1e-6 * (1.0 + s.offset.abs());
            prop_assert!(s.offset - s.uncertainty <= secs(lo) + slack, "{s:?} lo {}", secs(lo));
            prop_assert!(s.offset + s.uncertainty >= secs(hi) - slack, "{s:?} hi {}", secs(hi));
        }

        #[test]
        fn differences_are_era_safe(a in any::<u64>(), d in any::<i64>()) {
            let t = NtpTimestamp(a);
            let u = NtpTimestamp(a.wrapping_add(d as u64));
            prop_assert_eq!((u - t).0, d);
        }
    }
}
