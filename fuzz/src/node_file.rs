//! `node_file`: a node file another party placed (`node:///PATH`), judged
//! against a few readings of this machine's clocks.
//!
//! Properties: parsing and judging never panic; a refusal says why in
//! printable text; an accepted file gives a finite vote whose bound is at
//! least the published one, and only for the boot id it names.

use skewguard::core::node::{NodeFile, Stamps};

use crate::assert_printable;

/// Clock readings a reader may be at: the file's own, later, earlier, extreme.
fn readings(file: &NodeFile) -> Vec<Stamps> {
    let w = file.written;
    let later = |s: u64| Stamps {
        boottime_ns: w.boottime_ns.saturating_add(s),
        monotonic_ns: w.monotonic_ns.saturating_add(s),
        realtime_ns: w.realtime_ns.saturating_add(s as i64),
    };
    vec![
        w,
        later(1_000_000_000),
        later(3_600_000_000_000),
        Stamps {
            boottime_ns: 0,
            monotonic_ns: 0,
            realtime_ns: 0,
        },
        Stamps {
            boottime_ns: u64::MAX,
            monotonic_ns: u64::MAX,
            realtime_ns: i64::MAX,
        },
    ]
}

/// Runs the properties on one input.
pub fn check(data: &[u8]) {
    let file = match NodeFile::parse(data) {
        Ok(f) => f,
        Err(e) => {
            assert_printable(&e);
            return;
        }
    };
    for now in readings(&file) {
        match file.judge(&file.boot_id, &now) {
            Ok(vote) => {
                let m = file
                    .measurement
                    .as_ref()
                    .expect("a vote needs a measurement");
                assert!(vote.offset.is_finite() && vote.uncertainty.is_finite());
                assert!(vote.uncertainty >= m.uncertainty_seconds, "{vote:?}");
                assert!(vote.age_seconds >= 0.0);
            }
            Err(e) => assert_printable(&e),
        }
        let other = "00000000-0000-0000-0000-000000000000";
        if file.boot_id.trim() != other {
            assert!(
                file.judge(other, &now).is_err(),
                "another kernel's file voted"
            );
        }
    }
}
