//! AWS ClockBound's shared memory segment, where its daemon publishes the
//! host clock's error bound and status (aws/clock-bound `docs/PROTOCOL.md`).
//!
//! Layout, native endian: magic `AMZNCB\x02\0` (8 bytes), segment size (u32),
//! version (u16), generation (u16, odd while the daemon writes), as-of and
//! void-after (CLOCK_MONOTONIC_COARSE timespecs, i64 + i64 each), bound (i64 ns),
//! then in version 2 a disruption marker (u64), max drift (u32 ppb) and the
//! status (i32: 0 Unknown, 1 Synchronized, 2 FreeRunning, 3 Disrupted); in
//! version 1 max drift (u32), a reserved u32 and the status.
//!
//! [`parse`] is pure; [`read`] reads at most [`MAX_SEGMENT`] bytes of the file.

use std::io::Read as _;
use std::path::Path;
use std::time::Duration;

use crate::core::platform::AwsClock;

/// Where ClockBound 2.x maps its segment, then where 1.x did.
pub const PATHS: [&str; 2] = ["/var/run/clockbound/shm0", "/var/run/clockbound/shm"];

/// `source` of the evidence.
pub const SOURCE: &str = "clockbound";

/// The segment's signature.
pub const MAGIC: [u8; 8] = *b"AMZNCB\x02\x00";

/// Most bytes read: the segment is under 100 bytes.
pub const MAX_SEGMENT: u64 = 4096;

/// How often a segment caught mid-write (odd generation) is read again.
const RETRIES: usize = 3;

fn failed(error: String) -> AwsClock {
    AwsClock::unreadable(SOURCE, error)
}

fn field<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at + N)?.try_into().ok()
}

/// Interprets one snapshot of the segment, judged at CLOCK_MONOTONIC `now`.
/// `Err` only for a segment caught mid-write, which is worth reading again.
pub fn parse(b: &[u8], now: Duration) -> Result<AwsClock, AwsClock> {
    if b.get(..8) != Some(&MAGIC[..]) {
        return Ok(failed("not a ClockBound segment (bad magic)".into()));
    }
    let (Some(version), Some(generation)) = (field::<2>(b, 12), field::<2>(b, 14)) else {
        return Ok(failed("segment too short".into()));
    };
    let (version, generation) = (u16::from_ne_bytes(version), u16::from_ne_bytes(generation));
    if generation % 2 == 1 {
        return Err(failed("segment is being written (odd generation)".into()));
    }
    let status_at = match version {
        1 => 64,
        2 => 68,
        v => return Ok(failed(format!("unknown segment version {v}"))),
    };
    let i64_at = |at| field::<8>(b, at).map(i64::from_ne_bytes);
    let (Some(void_s), Some(void_ns), Some(bound_ns), Some(status)) = (
        i64_at(32),
        i64_at(40),
        i64_at(48),
        field::<4>(b, status_at).map(i32::from_ne_bytes),
    ) else {
        return Ok(failed("segment too short".into()));
    };
    let (name, synchronised) = match status {
        0 => ("Unknown", None),
        1 => ("Synchronized", Some(true)),
        2 => ("FreeRunning", Some(false)),
        3 => ("Disrupted", Some(false)),
        _ => return Ok(failed(format!("unknown clock status {status}"))),
    };
    let void_after = void_s as f64 + void_ns as f64 / 1e9;
    let stale = now.as_secs_f64() > void_after;
    Ok(AwsClock {
        source: SOURCE.into(),
        status: Some(if stale {
            format!("{name}, void since {:.0}s", now.as_secs_f64() - void_after)
        } else {
            name.into()
        }),
        // A bound past its void-after time is not AWS's word any more.
        synchronised: if stale { Some(false) } else { synchronised },
        error_bound_seconds: (bound_ns >= 0 && !stale).then(|| bound_ns as f64 / 1e9),
        as_of: None,
        error: None,
    })
}

/// Reads the segment if one is mounted; `None` when there is none.
pub fn read(now: Duration) -> Option<AwsClock> {
    let path = PATHS.iter().map(Path::new).find(|p| p.exists())?;
    let mut last = failed("segment is being written".into());
    for _ in 0..RETRIES {
        let mut bytes = Vec::new();
        let read =
            std::fs::File::open(path).and_then(|f| f.take(MAX_SEGMENT).read_to_end(&mut bytes));
        if let Err(e) = read {
            return Some(failed(format!("{}: {e}", path.display())));
        }
        match parse(&bytes, now) {
            Ok(c) => return Some(c),
            Err(c) => last = c,
        }
    }
    Some(last)
}

/// A version-2 segment, for tests (here and in tests/): what the daemon would write.
pub fn encode_v2(generation: u16, void_after: Duration, bound_ns: i64, status: i32) -> Vec<u8> {
    let mut b = Vec::with_capacity(80);
    b.extend_from_slice(&MAGIC);
    b.extend_from_slice(&80u32.to_ne_bytes());
    b.extend_from_slice(&2u16.to_ne_bytes());
    b.extend_from_slice(&generation.to_ne_bytes());
    let as_of = void_after.saturating_sub(Duration::from_secs(10));
    for t in [as_of, void_after] {
        b.extend_from_slice(&(t.as_secs() as i64).to_ne_bytes());
        b.extend_from_slice(&i64::from(t.subsec_nanos()).to_ne_bytes());
    }
    b.extend_from_slice(&bound_ns.to_ne_bytes());
    b.extend_from_slice(&0u64.to_ne_bytes()); // disruption marker
    b.extend_from_slice(&50_000u32.to_ne_bytes()); // max drift, ppb
    b.extend_from_slice(&status.to_ne_bytes());
    b.push(0); // clock disruption support
    b.resize(80, 0);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_read_and_checked() {
        let now = Duration::from_secs(1000);
        let later = Duration::from_secs(2000);
        let c = parse(&encode_v2(4, later, 1_500_000, 2), now).unwrap();
        assert_eq!(c.status.as_deref(), Some("FreeRunning"));
        assert_eq!(c.synchronised, Some(false));
        assert_eq!(c.error_bound_seconds, Some(0.0015));
        let c = parse(&encode_v2(4, later, 20_000, 1), now).unwrap();
        assert_eq!(c.synchronised, Some(true));
        assert!(parse(&encode_v2(5, later, 0, 1), now).is_err(), "mid-write");
        let stale = parse(&encode_v2(4, Duration::from_secs(10), 0, 1), now).unwrap();
        assert_eq!(stale.synchronised, Some(false));
        assert!(stale.status.unwrap().contains("void since"));
        let mut bad = encode_v2(4, later, 0, 1);
        bad[0] = b'X';
        assert!(parse(&bad, now).unwrap().error.is_some());
        assert!(parse(&encode_v2(4, later, 0, 1)[..40], now)
            .unwrap()
            .error
            .is_some());
        assert!(parse(&encode_v2(4, later, 0, 9), now)
            .unwrap()
            .error
            .is_some());
        // Version 1 (ClockBound 1.x): the status sits after max drift and a reserved word.
        let mut v1 = encode_v2(4, later, 7_000, 0);
        v1[12..14].copy_from_slice(&1u16.to_ne_bytes());
        v1[64..68].copy_from_slice(&1i32.to_ne_bytes());
        v1.truncate(72);
        let c = parse(&v1, now).unwrap();
        assert_eq!(
            (c.status.as_deref(), c.synchronised),
            (Some("Synchronized"), Some(true))
        );
    }
}
