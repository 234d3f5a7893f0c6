//! AWS ClockBound's shared memory segment, where its daemon publishes the
//! host clock's error bound and status.
//!
//! The layout is that of ClockBound's own code, the `clock-bound-shm` crate
//! (2.0.3: `src/shm_header.rs`, `src/lib.rs`, `src/writer.rs`; 1.0.0 for
//! layout 1), `#[repr(C)]` structs in native byte order, 64-bit Linux:
//!
//! | at | field | |
//! |---:|---|---|
//! | 0 | magic, `[u32; 2] = [0x414D5A4E, 0x43420200]` | two u32: on little-endian the file begins `4E 5A 4D 41 00 02 42 43` |
//! | 8 | segment size, u32 | 80 (layout 2), 72 (layout 1) |
//! | 12 | layout version, u16 | 0 while the daemon (re)initialises |
//! | 14 | generation, u16 | 0 before the first write, odd while the daemon writes |
//! | 16 | as-of, timespec (i64 s, i64 ns) | CLOCK_MONOTONIC_COARSE when the bound was computed |
//! | 32 | void-after, timespec | beyond it the bound is not to be trusted |
//! | 48 | bound, i64 ns | at as-of |
//! | 56 | layout 2: disruption marker, u64 | layout 1: max drift u32, reserved u32 |
//! | 64 | layout 2: max drift, u32 ppb | layout 1: status, i32 |
//! | 68 | layout 2: status, i32 | 0 Unknown, 1 Synchronized, 2 FreeRunning, 3 Disrupted |
//! | 72 | layout 2: disruption support, bool | then 7 bytes of padding |
//!
//! [`decode`] is pure and [`Segment`] says what ClockBound's client library
//! would make of it at a given moment; [`read`] opens the file the hardened
//! way ([`crate::os::file::open_regular`]) and reads at most [`MAX_SEGMENT`]
//! bytes. Tests read segments written by ClockBound's own writer
//! (`tests/it/clockbound_producer.rs`, and vectors it wrote, below).

use std::fs::File;
use std::path::Path;
use std::time::Duration;

use crate::core::platform::AwsClock;
use crate::os::file;

/// Where ClockBound 2.x maps its segment, then where 1.x did.
pub const PATHS: [&str; 2] = ["/var/run/clockbound/shm0", "/var/run/clockbound/shm"];

/// `source` of the evidence.
pub const SOURCE: &str = "clockbound";

/// The segment's signature: ClockBound's `SHM_MAGIC`, two native-endian u32.
pub const MAGIC: [u32; 2] = [0x414D5A4E, 0x43420200];

/// Most bytes read: the segment is 80 bytes.
pub const MAX_SEGMENT: u64 = 4096;

/// The header: magic, segment size, version, generation.
const HEADER_LEN: usize = 16;

/// Bytes of a layout-2 segment (clock-bound-shm 2.x).
pub const LAYOUT_2_LEN: usize = 80;

/// Bytes of a layout-1 segment (clock-bound-shm 1.x).
pub const LAYOUT_1_LEN: usize = 72;

/// How long after as-of ClockBound's client takes a Synchronized or
/// FreeRunning status at its word (its `CLOCKBOUND_RESTART_GRACE_PERIOD`).
pub const RESTART_GRACE: Duration = Duration::from_secs(5);

/// How far as-of may lie ahead of now before ClockBound's client calls it a
/// causality breach (coarse and fine monotonic clocks differ by a tick).
const CAUSALITY_BLUR: Duration = Duration::from_micros(1);

/// How often a segment caught mid-write is read again.
const RETRIES: usize = 3;

/// The clock status, as ClockBound's `ClockStatus` has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Timestamps should not be trusted.
    Unknown,
    /// chrony keeps the clock accurate.
    Synchronized,
    /// Nothing disciplines the clock; the bound grows at the max drift.
    FreeRunning,
    /// The clock was disrupted (a VM migration, a snapshot restore).
    Disrupted,
}

impl Status {
    fn from_i32(v: i32) -> Option<Status> {
        Some(match v {
            0 => Status::Unknown,
            1 => Status::Synchronized,
            2 => Status::FreeRunning,
            3 => Status::Disrupted,
            _ => return None,
        })
    }

    /// The name as ClockBound spells it.
    pub fn name(self) -> &'static str {
        match self {
            Status::Unknown => "Unknown",
            Status::Synchronized => "Synchronized",
            Status::FreeRunning => "FreeRunning",
            Status::Disrupted => "Disrupted",
        }
    }

    /// Whether the status says the host clock is synchronised (`None`: it does not say).
    pub fn synchronised(self) -> Option<bool> {
        match self {
            Status::Unknown => None,
            Status::Synchronized => Some(true),
            Status::FreeRunning | Status::Disrupted => Some(false),
        }
    }
}

/// One consistent snapshot of the segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Layout version: 1 or 2.
    pub version: u16,
    /// The writer's generation (even: the snapshot is complete).
    pub generation: u16,
    /// CLOCK_MONOTONIC_COARSE when the bound was computed.
    pub as_of: Duration,
    /// CLOCK_MONOTONIC_COARSE beyond which the bound is not to be trusted.
    pub void_after: Duration,
    /// The bound on the clock's error at `as_of`.
    pub bound: Duration,
    /// Counts clock disruptions (layout 2 only).
    pub disruption_marker: Option<u64>,
    /// How fast the bound grows after `as_of`, parts per billion.
    pub max_drift_ppb: u32,
    /// The status as written.
    pub status: Status,
    /// Whether the daemon watches for disruptions (layout 2 only).
    pub disruption_support: Option<bool>,
}

/// Why bytes are not a usable [`Segment`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    /// Caught mid-write (odd generation): worth reading again.
    Writing,
    /// Not (yet) a valid segment, and why.
    Bad(String),
}

fn field<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at + N)?.try_into().ok()
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    field(b, at).map(u16::from_ne_bytes)
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    field(b, at).map(u32::from_ne_bytes)
}

fn i64_at(b: &[u8], at: usize) -> Option<i64> {
    field(b, at).map(i64::from_ne_bytes)
}

/// A timespec at `at`; `None` if negative or not normalised.
fn timespec_at(b: &[u8], at: usize) -> Option<Duration> {
    let (s, ns) = (i64_at(b, at)?, i64_at(b, at + 8)?);
    let s = u64::try_from(s).ok()?;
    let ns = u32::try_from(ns).ok().filter(|&ns| ns < 1_000_000_000)?;
    Some(Duration::new(s, ns))
}

fn bad(why: impl Into<String>) -> Unusable {
    Unusable::Bad(why.into())
}

/// Decodes one snapshot of the segment, with the checks ClockBound's own
/// reader makes (magic, version, generation, segment size, max drift).
pub fn decode(b: &[u8]) -> Result<Segment, Unusable> {
    let short = || bad(format!("segment too short ({} bytes)", b.len()));
    if b.len() < HEADER_LEN {
        return Err(short());
    }
    if [u32_at(b, 0), u32_at(b, 4)] != MAGIC.map(Some) {
        return Err(bad("not a ClockBound segment (bad magic)"));
    }
    let (Some(segsize), Some(version), Some(generation)) =
        (u32_at(b, 8), u16_at(b, 12), u16_at(b, 14))
    else {
        return Err(short());
    };
    if version == 0 || generation == 0 {
        return Err(bad("segment not initialised yet (the daemon is starting)"));
    }
    if generation % 2 == 1 {
        return Err(Unusable::Writing);
    }
    let (len, drift_at, status_at) = match version {
        1 => (LAYOUT_1_LEN, 56, 64),
        2 => (LAYOUT_2_LEN, 64, 68),
        v => return Err(bad(format!("unknown segment version {v}"))),
    };
    if (segsize as usize) < len {
        return Err(bad(format!(
            "malformed segment: size {segsize} is under the {len} bytes of version {version}"
        )));
    }
    if b.len() < len {
        return Err(short());
    }
    let (Some(as_of), Some(void_after)) = (timespec_at(b, 16), timespec_at(b, 32)) else {
        return Err(bad("malformed segment: bad as-of or void-after time"));
    };
    let bound = i64_at(b, 48)
        .and_then(|ns| u64::try_from(ns).ok())
        .map(Duration::from_nanos)
        .ok_or_else(|| bad("malformed segment: negative bound"))?;
    let max_drift_ppb = u32_at(b, drift_at).ok_or_else(short)?;
    if max_drift_ppb >= 1_000_000_000 {
        return Err(bad(format!(
            "malformed segment: max drift {max_drift_ppb} ppb"
        )));
    }
    let raw = field::<4>(b, status_at)
        .map(i32::from_ne_bytes)
        .ok_or_else(short)?;
    let status = Status::from_i32(raw).ok_or_else(|| bad(format!("unknown clock status {raw}")))?;
    let v2 = version == 2;
    Ok(Segment {
        version,
        generation,
        as_of,
        void_after,
        bound,
        disruption_marker: if v2 {
            field::<8>(b, 56).map(u64::from_ne_bytes)
        } else {
            None
        },
        max_drift_ppb,
        status,
        disruption_support: if v2 { b.get(72).map(|&x| x != 0) } else { None },
    })
}

impl Segment {
    /// The status ClockBound's client reports at CLOCK_MONOTONIC `now`
    /// (`ClockErrorBound::compute_bound_at`): Synchronized or FreeRunning as
    /// written within [`RESTART_GRACE`] of as-of, FreeRunning after (the daemon
    /// stopped updating), Unknown from void-after on; Unknown and Disrupted as written.
    pub fn status_at(&self, now: Duration) -> Status {
        match self.status {
            Status::Unknown | Status::Disrupted => self.status,
            Status::Synchronized | Status::FreeRunning => {
                if now < self.as_of + RESTART_GRACE {
                    self.status
                } else if now < self.void_after {
                    Status::FreeRunning
                } else {
                    Status::Unknown
                }
            }
        }
    }

    /// The bound at CLOCK_MONOTONIC `now` as ClockBound's client computes it:
    /// the written bound grown at the max drift since as-of. `None` when as-of
    /// lies ahead of `now` (its causality breach: not this boot's clock).
    pub fn bound_at(&self, now: Duration) -> Option<Duration> {
        let elapsed = if now >= self.as_of {
            now - self.as_of
        } else if self.as_of - now < CAUSALITY_BLUR {
            Duration::ZERO
        } else {
            return None;
        };
        let growth = elapsed.as_secs_f64() * f64::from(self.max_drift_ppb);
        Some(self.bound + Duration::from_nanos(growth as u64))
    }
}

fn failed(error: String) -> AwsClock {
    AwsClock::unreadable(SOURCE, error)
}

/// What the segment says about the host clock at CLOCK_MONOTONIC `now`.
pub fn evidence(seg: &Segment, now: Duration) -> AwsClock {
    let Some(bound) = seg.bound_at(now) else {
        return failed(format!(
            "as-of lies {:.0}s ahead of this machine's monotonic clock: not a segment of this boot",
            (seg.as_of - now).as_secs_f64()
        ));
    };
    let written = seg.status.name();
    // A bound past its void-after time is not AWS's word any more.
    if now >= seg.void_after {
        return AwsClock {
            source: SOURCE.into(),
            status: Some(format!(
                "{written}, void since {:.0}s",
                (now - seg.void_after).as_secs_f64()
            )),
            synchronised: Some(false),
            error_bound_seconds: None,
            as_of: None,
            error: None,
        };
    }
    let status = seg.status_at(now);
    AwsClock {
        source: SOURCE.into(),
        status: Some(if status == seg.status {
            written.into()
        } else {
            format!(
                "{} (written {written}, not updated for {:.0}s)",
                status.name(),
                (now - seg.as_of).as_secs_f64()
            )
        }),
        synchronised: status.synchronised(),
        error_bound_seconds: Some(bound.as_secs_f64()),
        as_of: None,
        error: None,
    }
}

/// Reads a consistent snapshot from the open segment: like ClockBound's
/// reader, the generation must be even and the same before and after. The
/// inner error says why the bytes are no usable segment.
pub fn snapshot(f: &File) -> Result<Result<Segment, String>, file::Refused> {
    for attempt in 0..RETRIES {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let bytes = file::read_start(f, MAX_SEGMENT)?;
        match decode(&bytes) {
            Err(Unusable::Writing) => continue,
            Err(Unusable::Bad(why)) => return Ok(Err(why)),
            Ok(seg) => {
                // The body was read after the generation: if the generation is
                // still the same, no write began in between.
                let again = file::read_start(f, HEADER_LEN as u64)?;
                if again.get(14..16) == bytes.get(14..16) {
                    return Ok(Ok(seg));
                }
            }
        }
    }
    Ok(Err(
        "segment is being written (generation odd or changing)".into()
    ))
}

/// Reads the segment if one is there; `None` when there is none. Blocking
/// (short, bounded reads): call it off the async runtime's thread.
pub fn read(now: Duration) -> Option<AwsClock> {
    read_at(&PATHS.map(Path::new), now)
}

/// [`read`] from the first of `paths` where there is anything at all.
pub fn read_at(paths: &[&Path], now: Duration) -> Option<AwsClock> {
    for path in paths {
        let at = |e: file::Refused| failed(format!("{}: {e}", path.display()));
        match file::open_regular(path) {
            Ok(None) => continue,
            Ok(Some(f)) => {
                return Some(match snapshot(&f) {
                    Ok(Ok(seg)) => evidence(&seg, now),
                    Ok(Err(why)) => failed(why),
                    Err(e) => at(e),
                })
            }
            Err(e) => return Some(at(e)),
        }
    }
    None
}

/// A layout-2 segment with as-of 0 and max drift 0 (so the bound does not
/// grow), no disruption marker or support, for the whole-program tests that
/// mount a segment where `check` looks. A fixture, not evidence of the
/// layout: `tests/it/clockbound_producer.rs` checks that its bytes are those
/// ClockBound's own writer produces for the same values.
#[doc(hidden)]
pub fn encode_v2(generation: u16, void_after: Duration, bound_ns: i64, status: i32) -> Vec<u8> {
    let mut b = Vec::with_capacity(LAYOUT_2_LEN);
    for m in MAGIC {
        b.extend_from_slice(&m.to_ne_bytes());
    }
    b.extend_from_slice(&(LAYOUT_2_LEN as u32).to_ne_bytes());
    b.extend_from_slice(&2u16.to_ne_bytes());
    b.extend_from_slice(&generation.to_ne_bytes());
    for t in [Duration::ZERO, void_after] {
        b.extend_from_slice(&(t.as_secs() as i64).to_ne_bytes());
        b.extend_from_slice(&i64::from(t.subsec_nanos()).to_ne_bytes());
    }
    b.extend_from_slice(&bound_ns.to_ne_bytes());
    b.extend_from_slice(&0u64.to_ne_bytes()); // disruption marker
    b.extend_from_slice(&0u32.to_ne_bytes()); // max drift, ppb
    b.extend_from_slice(&status.to_ne_bytes());
    b.resize(LAYOUT_2_LEN, 0); // disruption support (false), padding
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by clock-bound-shm 2.0.3's `ShmWriter` on x86_64 (one `write`
    /// into a fresh file) for `ClockErrorBound::new(as_of 1000 s + 5 ns,
    /// void_after 2000.25 s, bound 7000 ns, disruption marker
    /// 0x0102030405060708, max drift 15000 ppb, FreeRunning, support true)`.
    #[cfg(target_endian = "little")]
    const BY_CLOCKBOUND_2_0_3: [u8; 80] = [
        0x4e, 0x5a, 0x4d, 0x41, 0x00, 0x02, 0x42, 0x43, //
        0x50, 0x00, 0x00, 0x00, 0x02, 0x00, 0x02, 0x00, //
        0xe8, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
        0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
        0xd0, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
        0x80, 0xb2, 0xe6, 0x0e, 0x00, 0x00, 0x00, 0x00, //
        0x58, 0x1b, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
        0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, //
        0x98, 0x3a, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, //
        0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
    ];

    /// Written by clock-bound-shm 1.0.0's `ShmWriter` on x86_64 for
    /// `ClockErrorBound::new(as_of 1000 s + 5 ns, void_after 2000.25 s, bound
    /// 7000 ns, max drift 15000 ppb, reserved 0, Synchronized)`; the last four
    /// bytes are the struct's padding, as the writer left it.
    #[cfg(target_endian = "little")]
    const BY_CLOCKBOUND_1_0_0: [u8; 72] = [
        0x4e, 0x5a, 0x4d, 0x41, 0x00, 0x02, 0x42, 0x43, //
        0x48, 0x00, 0x00, 0x00, 0x01, 0x00, 0x02, 0x00, //
        0xe8, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
        0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
        0xd0, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
        0x80, 0xb2, 0xe6, 0x0e, 0x00, 0x00, 0x00, 0x00, //
        0x58, 0x1b, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
        0x98, 0x3a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
        0x01, 0x00, 0x00, 0x00, 0xfc, 0x7f, 0x00, 0x00, //
    ];

    const fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn segments_written_by_clockbound_decode_field_by_field() {
        let v2 = decode(&BY_CLOCKBOUND_2_0_3).unwrap();
        assert_eq!(
            v2,
            Segment {
                version: 2,
                generation: 2,
                as_of: Duration::new(1000, 5),
                void_after: Duration::new(2000, 250_000_000),
                bound: Duration::from_nanos(7000),
                disruption_marker: Some(0x0102_0304_0506_0708),
                max_drift_ppb: 15_000,
                status: Status::FreeRunning,
                disruption_support: Some(true),
            }
        );
        let v1 = decode(&BY_CLOCKBOUND_1_0_0).unwrap();
        assert_eq!(
            v1,
            Segment {
                version: 1,
                generation: 2,
                as_of: Duration::new(1000, 5),
                void_after: Duration::new(2000, 250_000_000),
                bound: Duration::from_nanos(7000),
                disruption_marker: None,
                max_drift_ppb: 15_000,
                status: Status::Synchronized,
                disruption_support: None,
            }
        );
        // The magic as the issue quotes it, and the old misreading refused.
        assert_eq!(
            BY_CLOCKBOUND_2_0_3[..8],
            [0x4e, 0x5a, 0x4d, 0x41, 0x00, 0x02, 0x42, 0x43]
        );
        let mut misread = BY_CLOCKBOUND_2_0_3;
        misread[..8].copy_from_slice(b"AMZNCB\x02\x00");
        assert_eq!(
            decode(&misread),
            Err(bad("not a ClockBound segment (bad magic)"))
        );
        // The fixture for whole-program tests lays out the same fields the same way.
        let mut fixture = encode_v2(2, Duration::new(2000, 250_000_000), 7000, 2);
        fixture[16..32].copy_from_slice(&BY_CLOCKBOUND_2_0_3[16..32]);
        fixture[56..68].copy_from_slice(&BY_CLOCKBOUND_2_0_3[56..68]);
        fixture[72] = 1;
        assert_eq!(fixture, BY_CLOCKBOUND_2_0_3);
    }

    /// A segment at as-of 100 s, void after 200 s, bound 1 ms, drift 50 µs/s.
    fn segment(status: Status) -> Segment {
        Segment {
            version: 2,
            generation: 4,
            as_of: secs(100),
            void_after: secs(200),
            bound: Duration::from_millis(1),
            disruption_marker: Some(0),
            max_drift_ppb: 50_000,
            status,
            disruption_support: Some(false),
        }
    }

    #[test]
    fn status_and_bound_follow_clockbounds_client() {
        let s = segment(Status::Synchronized);
        // Within the grace after as-of, the status as written; the bound grows at the drift.
        assert_eq!(s.status_at(secs(104)), Status::Synchronized);
        assert_eq!(s.bound_at(secs(104)), Some(Duration::from_micros(1200)));
        // The daemon stopped updating: free running, then unknown at void-after.
        assert_eq!(s.status_at(secs(150)), Status::FreeRunning);
        assert_eq!(s.status_at(secs(200)), Status::Unknown);
        assert_eq!(
            segment(Status::Disrupted).status_at(secs(101)),
            Status::Disrupted
        );
        // As-of ahead of now: ClockBound's causality breach, unless within its blur.
        assert_eq!(s.bound_at(secs(99)), None);
        assert_eq!(
            s.bound_at(secs(100) - Duration::from_nanos(500)),
            Some(Duration::from_millis(1))
        );
    }

    #[test]
    fn evidence_says_what_the_segment_says_now() {
        let c = evidence(&segment(Status::Synchronized), secs(102));
        assert_eq!(
            (c.status.as_deref(), c.synchronised, c.error.as_deref()),
            (Some("Synchronized"), Some(true), None)
        );
        assert!((c.error_bound_seconds.unwrap() - 0.0011).abs() < 1e-12);
        let c = evidence(&segment(Status::FreeRunning), secs(102));
        assert_eq!(
            (c.status.as_deref(), c.synchronised),
            (Some("FreeRunning"), Some(false))
        );
        let c = evidence(&segment(Status::Synchronized), secs(160));
        assert_eq!(
            c.status.as_deref(),
            Some("FreeRunning (written Synchronized, not updated for 60s)")
        );
        assert_eq!(c.synchronised, Some(false));
        let c = evidence(&segment(Status::Unknown), secs(102));
        assert_eq!(
            (c.status.as_deref(), c.synchronised),
            (Some("Unknown"), None)
        );
        let void = evidence(&segment(Status::Synchronized), secs(260));
        assert_eq!(void.status.as_deref(), Some("Synchronized, void since 60s"));
        assert_eq!(
            (void.synchronised, void.error_bound_seconds),
            (Some(false), None)
        );
        let ahead = evidence(&segment(Status::Synchronized), secs(40));
        assert!(ahead.error.unwrap().contains("60s ahead"));
    }

    #[test]
    fn bad_segments_are_refused_and_half_written_ones_retried() {
        let good = encode_v2(4, secs(2000), 1_500_000, 2);
        assert!(decode(&good).is_ok());
        let with = |at: usize, bytes: &[u8]| {
            let mut b = good.clone();
            b[at..at + bytes.len()].copy_from_slice(bytes);
            decode(&b)
        };
        assert_eq!(with(14, &5u16.to_ne_bytes()), Err(Unusable::Writing));
        let refused = |r: Result<Segment, Unusable>, what: &str| match r {
            Err(Unusable::Bad(why)) => assert!(why.contains(what), "{why:?} should say {what:?}"),
            other => panic!("{other:?} should be refused for {what:?}"),
        };
        refused(with(0, b"X"), "bad magic");
        // The second word in the other byte order: a segment of another architecture.
        refused(with(4, &MAGIC[1].swap_bytes().to_ne_bytes()), "bad magic");
        refused(with(14, &0u16.to_ne_bytes()), "not initialised");
        refused(with(12, &0u16.to_ne_bytes()), "not initialised");
        refused(with(12, &3u16.to_ne_bytes()), "unknown segment version 3");
        refused(with(8, &72u32.to_ne_bytes()), "size 72");
        refused(with(24, &(-1i64).to_ne_bytes()), "bad as-of");
        refused(with(32, &(-1i64).to_ne_bytes()), "void-after");
        refused(with(48, &(-1i64).to_ne_bytes()), "negative bound");
        refused(with(64, &1_000_000_000u32.to_ne_bytes()), "max drift");
        refused(with(68, &9i32.to_ne_bytes()), "unknown clock status 9");
        refused(decode(&good[..40]), "too short (40 bytes)");
        refused(decode(&good[..8]), "too short (8 bytes)");
        refused(decode(&[]), "too short");
        assert_eq!(decode(&with_generation(&good, 7)), Err(Unusable::Writing));
    }

    fn with_generation(b: &[u8], generation: u16) -> Vec<u8> {
        let mut b = b.to_vec();
        b[14..16].copy_from_slice(&generation.to_ne_bytes());
        b
    }

    #[test]
    fn the_first_path_with_anything_is_read_and_hardened() {
        let d =
            std::env::temp_dir().join(format!("skewguard-clockbound-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let (first, second) = (d.join("shm0"), d.join("shm"));
        let paths = [first.as_path(), second.as_path()];
        assert_eq!(read_at(&paths, secs(10)), None);
        std::fs::write(&second, encode_v2(2, secs(2000), 20_000, 1)).unwrap();
        let c = read_at(&paths, secs(10)).unwrap();
        assert_eq!(
            (c.status.as_deref(), c.synchronised),
            (
                Some("FreeRunning (written Synchronized, not updated for 10s)"),
                Some(false)
            )
        );
        std::os::unix::fs::symlink(&second, &first).unwrap();
        let c = read_at(&paths, secs(10)).unwrap();
        assert!(c
            .error
            .unwrap()
            .ends_with("shm0: it is a symbolic link, not a regular file"));
        std::fs::remove_file(&first).unwrap();
        std::fs::write(&first, with_generation(&encode_v2(2, secs(2000), 0, 1), 3)).unwrap();
        let c = read_at(&paths, secs(10)).unwrap();
        assert!(c.error.unwrap().contains("being written"));
        let _ = std::fs::remove_dir_all(&d);
    }
}
