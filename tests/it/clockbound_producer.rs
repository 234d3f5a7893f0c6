//! ClockBound segments written by ClockBound's own code (`clock-bound-shm`
//! 2.0.3, its `ShmWriter`, the writer `clockbound` the daemon uses), read by
//! skewguard's reader. A segment written from our own reading of the format
//! would share our misreading; this one cannot.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clock_bound_shm::{ClockErrorBound, ClockStatus, ShmWrite, ShmWriter};
use skewguard::platform::clockbound::{self, Segment, Status};

/// A fresh directory under the system's temporary directory, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(label: &str) -> Dir {
        let d = std::env::temp_dir().join(format!(
            "skewguard-clockbound-producer-{label}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn bound(
    as_of: Duration,
    void_after: Duration,
    bound_ns: i64,
    marker: u64,
    drift_ppb: u32,
    status: ClockStatus,
    support: bool,
) -> ClockErrorBound {
    ClockErrorBound::new(
        as_of.into(),
        void_after.into(),
        bound_ns,
        marker,
        drift_ppb,
        status,
        support,
    )
}

/// Writes `ceb` with ClockBound's writer `times` times into a new segment at `path`.
fn produce(path: &Path, ceb: &ClockErrorBound, times: usize) {
    let mut writer = ShmWriter::new(path).expect("ClockBound's writer creates the segment");
    for _ in 0..times {
        writer.write(ceb);
    }
}

#[test]
fn a_segment_written_by_clockbound_is_read_field_by_field() {
    let dir = Dir::new("fields");
    let path = dir.0.join("shm0");
    let as_of = Duration::new(86_400, 123_456_789);
    let void_after = as_of + Duration::from_secs(10);
    let ceb = bound(
        as_of,
        void_after,
        1_500_000,
        42,
        15_000,
        ClockStatus::Synchronized,
        true,
    );
    produce(&path, &ceb, 3);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(
        bytes.len(),
        clockbound::LAYOUT_2_LEN,
        "ClockBound's segment size"
    );
    let seg = clockbound::decode(&bytes).expect("skewguard decodes ClockBound's segment");
    assert_eq!(
        seg,
        Segment {
            version: 2,
            generation: 6,
            as_of,
            void_after,
            bound: Duration::from_nanos(1_500_000),
            disruption_marker: Some(42),
            max_drift_ppb: 15_000,
            status: Status::Synchronized,
            disruption_support: Some(true),
        }
    );
    // Through the file reader, two seconds after as-of: the bound grown by
    // 2 s × 15,000 ppb = 30 µs, as ClockBound's client computes it.
    let c = clockbound::read_at(&[path.as_path()], as_of + Duration::from_secs(2)).unwrap();
    assert_eq!(c.error, None, "{c:?}");
    assert_eq!(c.status.as_deref(), Some("Synchronized"));
    assert_eq!(c.synchronised, Some(true));
    let b = c.error_bound_seconds.unwrap();
    assert!((b - 0.00153).abs() < 1e-9, "bound {b}");
}

#[test]
fn every_status_clockbound_writes_is_named_as_clockbound_names_it() {
    let dir = Dir::new("statuses");
    let as_of = Duration::from_secs(1_000);
    for (status, name, synchronised) in [
        (ClockStatus::Unknown, "Unknown", None),
        (ClockStatus::Synchronized, "Synchronized", Some(true)),
        (ClockStatus::FreeRunning, "FreeRunning", Some(false)),
        (ClockStatus::Disrupted, "Disrupted", Some(false)),
    ] {
        let path = dir.0.join(name);
        let ceb = bound(
            as_of,
            as_of + Duration::from_secs(60),
            20_000,
            0,
            0,
            status,
            false,
        );
        produce(&path, &ceb, 1);
        let c = clockbound::read_at(&[path.as_path()], as_of + Duration::from_secs(1)).unwrap();
        assert_eq!(
            (c.status.as_deref(), c.synchronised, c.error.as_deref()),
            (Some(name), synchronised, None),
            "{name}"
        );
        assert_eq!(c.error_bound_seconds, Some(0.00002), "{name}");
    }
}

#[cfg(target_endian = "little")]
#[test]
fn on_little_endian_the_segment_begins_with_the_bytes_the_issue_quotes() {
    let dir = Dir::new("magic");
    let path = dir.0.join("shm0");
    let ceb = bound(
        Duration::ZERO,
        Duration::from_secs(1),
        0,
        0,
        0,
        ClockStatus::Unknown,
        false,
    );
    produce(&path, &ceb, 1);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes[..8], [0x4E, 0x5A, 0x4D, 0x41, 0x00, 0x02, 0x42, 0x43]);
    assert_ne!(&bytes[..8], b"AMZNCB\x02\x00", "the old misreading");
}

#[test]
fn the_fixture_of_whole_program_tests_is_byte_for_byte_what_clockbound_writes() {
    let dir = Dir::new("fixture");
    for (writes, status, bound_ns) in [
        (1, ClockStatus::FreeRunning, 1_250_000_000),
        (3, ClockStatus::Synchronized, 7_000),
        (2, ClockStatus::Disrupted, 0),
    ] {
        let path = dir.0.join(format!("shm-{writes}"));
        let void_after = Duration::new(7_200, 999_999_999);
        let ceb = bound(Duration::ZERO, void_after, bound_ns, 0, 0, status, false);
        produce(&path, &ceb, writes);
        let generation = 2 * writes as u16;
        assert_eq!(
            std::fs::read(&path).unwrap(),
            clockbound::encode_v2(generation, void_after, bound_ns, status as i32),
            "{status:?}"
        );
    }
}

#[test]
fn a_segment_clockbound_rewrites_while_it_is_read_is_never_read_torn() {
    let _room = crate::support::Room::Timing.enter();
    let dir = Dir::new("live");
    let path = dir.0.join("shm0");
    let as_of = Duration::from_secs(5_000);
    let void_after = as_of + Duration::from_secs(60);
    let a = bound(
        as_of,
        void_after,
        1_000_000,
        1,
        0,
        ClockStatus::Synchronized,
        true,
    );
    let b = bound(
        as_of,
        void_after,
        2_000_000,
        2,
        0,
        ClockStatus::FreeRunning,
        true,
    );
    // The writer holds raw pointers (not Send): it lives on its own thread.
    let stop = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(AtomicBool::new(false));
    let writer = {
        let (path, stop, ready) = (path.clone(), stop.clone(), ready.clone());
        std::thread::spawn(move || {
            let mut w = ShmWriter::new(&path).unwrap();
            w.write(&a);
            ready.store(true, Ordering::SeqCst);
            // Bursts of back-to-back writes (far faster than the daemon's one
            // a second) with pauses between, so reads meet both.
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let burst = Instant::now() + Duration::from_millis(1);
                while Instant::now() < burst {
                    w.write(if n % 2 == 0 { &b } else { &a });
                    n += 1;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            n
        })
    };
    while !ready.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    let now = as_of + Duration::from_secs(1);
    let (mut whole, mut busy) = (0, 0);
    let until = Instant::now() + Duration::from_millis(300);
    while Instant::now() < until {
        let c = clockbound::read_at(&[path.as_path()], now).unwrap();
        match (
            c.status.as_deref(),
            c.error_bound_seconds,
            c.error.as_deref(),
        ) {
            (Some("Synchronized"), Some(0.001), None) => whole += 1,
            (Some("FreeRunning"), Some(0.002), None) => whole += 1,
            (None, None, Some(e)) if e.contains("being written") => busy += 1,
            other => panic!("a torn or wrong reading: {other:?}"),
        }
    }
    stop.store(true, Ordering::SeqCst);
    let writes = writer.join().unwrap();
    eprintln!("{whole} whole readings, {busy} refused as mid-write, during {writes} writes");
    assert!(whole > 0);
}

/// `clockbound:///PATH` as a source of `check`: the segment ClockBound's
/// writer wrote is a vote of ± its grown bound while Synchronized or
/// FreeRunning and before void-after, and an error otherwise; a FIFO there
/// does not hold `check` up.
#[test]
fn a_segment_clockbound_writes_is_a_vote_of_check() {
    use skewguard::os::clock::{Clock, SystemClock};
    let dir = Dir::new("source");
    let path = dir.0.join("shm0");
    let uri = format!("clockbound://{}", path.display());
    let check = |uri: &str| {
        crate::support::run(
            &["check"],
            &[("SKEWGUARD_SOURCES", uri), ("SKEWGUARD_OUTPUT", "json")],
        )
    };
    let write = |status: ClockStatus, void_in: i64| {
        let _ = std::fs::remove_file(&path);
        let now = SystemClock.monotonic();
        let void_after = if void_in >= 0 {
            now + Duration::from_secs(void_in as u64)
        } else {
            now - Duration::from_secs((-void_in) as u64)
        };
        let as_of = now.min(void_after);
        produce(
            &path,
            &bound(as_of, void_after, 2_000_000, 0, 15_000, status, true),
            1,
        );
    };

    write(ClockStatus::Synchronized, 60);
    let out = check(&uri);
    out.assert_exit(0);
    let entry = out.source(&uri);
    assert_eq!(entry["status"], "ok", "{out}");
    assert_eq!(entry["authenticated"], false, "{out}");
    assert_eq!(entry["offset_seconds"].as_f64(), Some(0.0), "{out}");
    let u = entry["uncertainty_seconds"].as_f64().unwrap();
    assert!((0.002..0.0021).contains(&u), "{out}");

    write(ClockStatus::FreeRunning, 60);
    check(&uri).assert_exit(0);

    for (status, void_in, words) in [
        (ClockStatus::Disrupted, 60, "Disrupted"),
        (ClockStatus::Unknown, 60, "Unknown"),
        (ClockStatus::Synchronized, -1, "void since"),
    ] {
        write(status, void_in);
        let out = check(&uri);
        out.assert_exit(1);
        let e = out.source(&uri)["error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(e.contains(words), "{words}: {out}");
    }

    let _ = std::fs::remove_file(&path);
    let made = std::process::Command::new("mkfifo").arg(&path).status();
    assert!(made.is_ok_and(|s| s.success()));
    let out = check(&uri);
    out.assert_exit(1);
    assert!(out.elapsed < Duration::from_secs(5), "{out}");
    assert!(
        out.source(&uri)["error"].as_str().unwrap().contains("FIFO"),
        "{out}"
    );
}
