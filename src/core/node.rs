//! The node file: one node's latest measurement of its kernel's clock, as
//! `serve --publish PATH` writes it and a `node://PATH` source reads it
//! (format described in `docs/node-file.md`, version [`VERSION`]).
//!
//! Containers on one kernel share one `CLOCK_REALTIME`, so a measurement made
//! by one process describes the clock every other process on that kernel
//! reads, as long as it is this kernel's (the `boot_id`), the wall clock has
//! not been stepped since (`CLOCK_REALTIME − CLOCK_BOOTTIME` unchanged), the
//! host did not sleep (`CLOCK_BOOTTIME − CLOCK_MONOTONIC` unchanged) and the
//! bound is grown by the most the clock can have drifted since (`MAX_DRIFT` ×
//! age, the holdover rule). Pure: [`NodeFile::parse`] and [`NodeFile::judge`]
//! take bytes and clock readings; the publisher (`serve::publish`) and the
//! reader (`proto::node`) do the I/O.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::core::holdover::MaxDrift;
use crate::core::report::{printable, Report, SourceReport, SourceStatus};
pub use crate::core::sample::Trust;
use crate::core::verdict::Verdict;
use crate::os::clock::Clock;

/// The `format` field: what kind of file this is.
pub const FORMAT: &str = "skewguard-node";

/// The format version written and the only one read.
pub const VERSION: u32 = 1;

/// A file written longer ago than this (by `CLOCK_BOOTTIME`) is refused: its
/// publisher has stopped. The publisher writes after every round.
pub const MAX_FILE_AGE_SECONDS: f64 = 600.0;

/// `CLOCK_REALTIME − CLOCK_BOOTTIME` may differ from the published one by this
/// much (reading noise) before the wall clock counts as stepped since the
/// measurement; what it differs by below this widens the bound.
pub const STEP_TOLERANCE_SECONDS: f64 = 0.010;

/// `CLOCK_BOOTTIME − CLOCK_MONOTONIC` may grow by this much before the host
/// counts as having slept since the measurement.
pub const SUSPEND_TOLERANCE_SECONDS: f64 = 1.0;

/// Most bytes of a node file read: a report of many sources is a few KiB.
pub const MAX_BYTES: u64 = 64 * 1024;

/// The three clocks read together, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamps {
    /// `CLOCK_BOOTTIME`.
    pub boottime_ns: u64,
    /// `CLOCK_MONOTONIC`.
    pub monotonic_ns: u64,
    /// `CLOCK_REALTIME`, nanoseconds since the Unix epoch.
    pub realtime_ns: i64,
}

impl Stamps {
    /// Reads the three clocks: `CLOCK_REALTIME` between two `CLOCK_BOOTTIME`
    /// reads, the tightest of a few tries (the two differences the reader
    /// checks then carry no more than that bracket's error).
    pub fn read(clock: &dyn Clock) -> Stamps {
        let mut best: Option<(Duration, Stamps)> = None;
        for _ in 0..4 {
            let mono = clock.monotonic();
            let before = clock.boottime();
            let real = clock.realtime();
            let after = clock.boottime();
            let spread = after.saturating_sub(before);
            let s = Stamps {
                boottime_ns: (before + spread / 2).as_nanos() as u64,
                monotonic_ns: mono.as_nanos() as u64,
                realtime_ns: real as i64,
            };
            if best.is_none_or(|(b, _)| spread < b) {
                best = Some((spread, s));
            }
            if spread <= Duration::from_micros(2) {
                break;
            }
        }
        best.map(|(_, s)| s).unwrap_or(Stamps {
            boottime_ns: 0,
            monotonic_ns: 0,
            realtime_ns: 0,
        })
    }

    /// `CLOCK_REALTIME − CLOCK_BOOTTIME`, seconds: changes only when the wall clock is stepped.
    fn real_minus_boot(&self) -> f64 {
        (i128::from(self.realtime_ns) - i128::from(self.boottime_ns)) as f64 / 1e9
    }

    /// `CLOCK_BOOTTIME − CLOCK_MONOTONIC`, seconds: the time the host has slept.
    fn slept(&self) -> f64 {
        (i128::from(self.boottime_ns) - i128::from(self.monotonic_ns)) as f64 / 1e9
    }

    /// Seconds of `CLOCK_BOOTTIME` from `earlier` to `self` (negative if `earlier` is later).
    fn boot_since(&self, earlier: &Stamps) -> f64 {
        (i128::from(self.boottime_ns) - i128::from(earlier.boottime_ns)) as f64 / 1e9
    }
}

/// The trust ladder's rung, in the file by its name (`Trust::name`).
mod trust_name {
    use super::Trust;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Trust, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(t.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Trust, D::Error> {
        let name = String::deserialize(d)?;
        super::trust_named(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown trust class {name:?}")))
    }
}

/// The rung named `name` (as `Trust::name` spells it).
pub fn trust_named(name: &str) -> Option<Trust> {
    [
        Trust::Unauthenticated,
        Trust::DateExempted,
        Trust::Authenticated,
        Trust::ClockIndependent,
    ]
    .into_iter()
    .find(|t| t.name() == name)
}

/// The rung of one source's part in a report (unauthenticated without one).
pub fn trust_of(source: &SourceReport) -> Trust {
    trust_named(&source.trust).unwrap_or(Trust::Unauthenticated)
}

/// One source of the published measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSource {
    /// The source URI, as the publisher was configured.
    pub source: String,
    /// Its standing in the publisher's round.
    pub status: SourceStatus,
    /// Its rung of the trust ladder.
    #[serde(with = "trust_name")]
    pub trust: Trust,
    /// Offset it measured, seconds.
    pub offset_seconds: Option<f64>,
    /// Its error bound, seconds.
    pub uncertainty_seconds: Option<f64>,
}

/// The published measurement: the holdover rule's anchor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeMeasurement {
    /// The clocks at the start of the round that measured it (the start, so
    /// the age a reader computes is never too small).
    pub taken: Stamps,
    /// Combined offset, reference minus local, seconds.
    pub offset_seconds: f64,
    /// Its uncertainty when measured, seconds.
    pub uncertainty_seconds: f64,
    /// The publisher's verdict on it.
    pub verdict: Verdict,
    /// The rung of the measurement: the lowest of the sources that decided it
    /// (those in the agreeing majority); unauthenticated when none.
    #[serde(with = "trust_name")]
    pub trust: Trust,
    /// Every source of the round.
    pub sources: Vec<NodeSource>,
}

/// The node file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeFile {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`VERSION`].
    pub version: u32,
    /// The kernel's `/proc/sys/kernel/random/boot_id`.
    pub boot_id: String,
    /// The clocks when the file was written.
    pub written: Stamps,
    /// The publisher's `MAX_DRIFT`, parts per million.
    pub max_drift_ppm: f64,
    /// The publisher's headline after the round (why there is no measurement, if none).
    pub headline: String,
    /// The latest measurement (kept through rounds that measured nothing;
    /// dropped when the wall clock stepped or the host slept); `None` before
    /// the first.
    pub measurement: Option<NodeMeasurement>,
}

/// What a reader makes of a node file: a vote like any source's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NodeVote {
    /// Offset, seconds (reference minus local).
    pub offset: f64,
    /// Half-width: the published uncertainty, grown by `MAX_DRIFT` × age and
    /// by what `CLOCK_REALTIME − CLOCK_BOOTTIME` moved within the tolerance.
    pub uncertainty: f64,
    /// Seconds since the measurement.
    pub age_seconds: f64,
    /// The measurement's rung of the trust ladder.
    pub trust: Trust,
}

impl NodeMeasurement {
    /// The measurement of a round's report whose clocks at the round's start
    /// were `taken`; `None` when the round measured nothing.
    pub fn from_report(report: &Report, taken: Stamps) -> Option<NodeMeasurement> {
        let (offset, uncertainty) = (report.offset_seconds?, report.uncertainty_seconds?);
        if !(offset.is_finite() && uncertainty.is_finite()) || report.verdict == Verdict::Unknown {
            return None;
        }
        let deciding: Vec<Trust> = report
            .sources
            .iter()
            .filter(|s| s.status == SourceStatus::Ok)
            .map(trust_of)
            .collect();
        Some(NodeMeasurement {
            taken,
            offset_seconds: offset,
            uncertainty_seconds: uncertainty,
            verdict: report.verdict,
            trust: deciding.into_iter().min().unwrap_or(Trust::Unauthenticated),
            sources: report
                .sources
                .iter()
                .map(|s| NodeSource {
                    source: s.source.clone(),
                    status: s.status,
                    trust: trust_of(s),
                    offset_seconds: s.offset_seconds,
                    uncertainty_seconds: s.uncertainty_seconds,
                })
                .collect(),
        })
    }
}

fn secs(s: f64) -> String {
    crate::core::duration::human_duration(s.abs())
}

impl NodeFile {
    /// The JSON the publisher writes: one object, one line, a newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = serde_json::to_vec(self).unwrap_or_default();
        b.push(b'\n');
        b
    }

    /// Parses and checks a node file: its format and version, and that its
    /// numbers are finite and in range.
    pub fn parse(bytes: &[u8]) -> Result<NodeFile, String> {
        // The version first, so a newer format says so rather than failing on a field.
        let head: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| format!("not a node file (JSON: {})", printable(&e.to_string(), 300)))?;
        if head.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
            return Err(format!("not a node file (no \"format\":\"{FORMAT}\")"));
        }
        match head.get("version").and_then(|v| v.as_u64()) {
            Some(v) if v == u64::from(VERSION) => {}
            Some(v) => {
                return Err(format!(
                    "node file format version {v}; this skewguard reads version {VERSION}"
                ))
            }
            None => return Err("node file without a format version".into()),
        }
        let file: NodeFile = serde_json::from_value(head).map_err(|e| {
            // serde quotes what it did not expect: another party's text.
            format!("malformed node file: {}", printable(&e.to_string(), 300))
        })?;
        let id = file.boot_id.trim();
        if id.is_empty()
            || id.len() > 64
            || id.contains(|c: char| !(c.is_ascii_hexdigit() || c == '-'))
        {
            return Err(
                "malformed node file: boot_id is not a boot id (hex digits and dashes)".into(),
            );
        }
        if MaxDrift::from_ppm(file.max_drift_ppm).is_none() {
            return Err(format!(
                "malformed node file: max_drift_ppm {} (above 0, at most {})",
                file.max_drift_ppm,
                MaxDrift::MAX_PPM
            ));
        }
        if let Some(m) = &file.measurement {
            if !(m.offset_seconds.is_finite()
                && m.uncertainty_seconds.is_finite()
                && m.uncertainty_seconds >= 0.0)
            {
                return Err(
                    "malformed node file: offset or uncertainty not a finite number".into(),
                );
            }
        }
        Ok(file)
    }

    /// Judges the file for a reader on the kernel with `boot_id` whose clocks
    /// read `now`, growing the bound at the published `MAX_DRIFT`. An error
    /// says why the file does not describe this clock now.
    pub fn judge(&self, boot_id: &str, now: &Stamps) -> Result<NodeVote, String> {
        if self.boot_id.trim() != boot_id.trim() {
            return Err(format!(
                "written on another kernel (boot_id {} here, {} in the file): a different host or a reboot",
                boot_id.trim(),
                self.boot_id.trim()
            ));
        }
        let written_age = now.boot_since(&self.written);
        if written_age < -STEP_TOLERANCE_SECONDS {
            return Err(format!(
                "written {} ahead of this kernel's boot-time clock",
                secs(written_age)
            ));
        }
        if written_age > MAX_FILE_AGE_SECONDS {
            return Err(format!(
                "written {} ago, more than the {} limit: its publisher has stopped",
                secs(written_age),
                secs(MAX_FILE_AGE_SECONDS)
            ));
        }
        let Some(m) = &self.measurement else {
            return Err(format!(
                "the node has no measurement: {}",
                printable(&self.headline, 200)
            ));
        };
        let age = now.boot_since(&m.taken);
        if age < -STEP_TOLERANCE_SECONDS {
            return Err(format!(
                "measured {} ahead of this kernel's boot-time clock",
                secs(age)
            ));
        }
        let slept = now.slept() - m.taken.slept();
        if slept > SUSPEND_TOLERANCE_SECONDS {
            return Err(format!(
                "the host slept for {} since the measurement",
                secs(slept)
            ));
        }
        let stepped = now.real_minus_boot() - m.taken.real_minus_boot();
        if stepped.abs() > STEP_TOLERANCE_SECONDS {
            return Err(format!(
                "the wall clock was stepped {} {} since the measurement",
                if stepped > 0.0 {
                    "forward by"
                } else {
                    "back by"
                },
                secs(stepped)
            ));
        }
        let rate = MaxDrift::from_ppm(self.max_drift_ppm)
            .unwrap_or_default()
            .rate();
        let age = age.max(0.0);
        Ok(NodeVote {
            offset: m.offset_seconds,
            uncertainty: m.uncertainty_seconds + rate * age + stepped.abs(),
            age_seconds: age,
            trust: m.trust,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn stamps(boot_s: f64, slept_s: f64, real_minus_boot_s: f64) -> Stamps {
        let boot = (boot_s * 1e9) as u64;
        Stamps {
            boottime_ns: boot,
            monotonic_ns: boot - (slept_s * 1e9) as u64,
            realtime_ns: 1_700_000_000 * S as i64 + boot as i64 + (real_minus_boot_s * 1e9) as i64,
        }
    }

    fn file(trust: Trust) -> NodeFile {
        NodeFile {
            format: FORMAT.into(),
            version: VERSION,
            boot_id: "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0".into(),
            written: stamps(1000.0, 0.0, 0.0),
            max_drift_ppm: 500.0,
            headline: "OK".into(),
            measurement: Some(NodeMeasurement {
                taken: stamps(999.0, 0.0, 0.0),
                offset_seconds: 0.002,
                uncertainty_seconds: 0.010,
                verdict: Verdict::Ok,
                trust,
                sources: vec![],
            }),
        }
    }

    fn judge(f: &NodeFile, now: Stamps) -> Result<NodeVote, String> {
        f.judge(&f.boot_id.clone(), &now)
    }

    #[test]
    fn a_file_round_trips_and_grows_by_the_drift_times_the_age() {
        let f = file(Trust::Authenticated);
        let back = NodeFile::parse(&f.to_bytes()).unwrap();
        assert_eq!(back, f);
        let v = judge(&f, stamps(1099.0, 0.0, 0.0)).unwrap();
        assert_eq!(v.offset, 0.002);
        assert!((v.age_seconds - 100.0).abs() < 1e-9);
        assert!(
            (v.uncertainty - (0.010 + 500e-6 * 100.0)).abs() < 1e-9,
            "{v:?}"
        );
        assert_eq!(v.trust, Trust::Authenticated);
        // The published MAX_DRIFT is the rate.
        let mut fast = f.clone();
        fast.max_drift_ppm = 1000.0;
        let v = judge(&fast, stamps(1099.0, 0.0, 0.0)).unwrap();
        assert!((v.uncertainty - 0.110).abs() < 1e-9, "{v:?}");
        // A small movement of REALTIME − BOOTTIME widens the bound.
        let v = judge(&f, stamps(1099.0, 0.0, 0.004)).unwrap();
        assert!((v.uncertainty - 0.064).abs() < 1e-6, "{v:?}");
    }

    #[test]
    fn files_that_do_not_describe_this_clock_now_are_refused() {
        let f = file(Trust::Authenticated);
        let now = stamps(1099.0, 0.0, 0.0);
        let refused = |f: &NodeFile, now: Stamps, boot_id: &str, words: &str| {
            let e = f.judge(boot_id, &now).unwrap_err();
            assert!(e.contains(words), "{words:?} not in {e:?}");
        };
        refused(&f, now, "another", "another kernel");
        refused(
            &f,
            stamps(1099.0, 0.0, 0.5),
            &f.boot_id,
            "stepped forward by 500",
        );
        refused(
            &f,
            stamps(1099.0, 0.0, -2.0),
            &f.boot_id,
            "stepped back by 2",
        );
        refused(&f, stamps(1099.0, 30.0, 0.0), &f.boot_id, "slept for 30");
        refused(
            &f,
            stamps(1700.0, 0.0, 0.0),
            &f.boot_id,
            "publisher has stopped",
        );
        refused(
            &f,
            stamps(900.0, 0.0, 0.0),
            &f.boot_id,
            "ahead of this kernel",
        );
        let mut none = f.clone();
        none.measurement = None;
        none.headline = "UNKNOWN: no source answered".into();
        refused(&none, now, &f.boot_id, "no measurement: UNKNOWN: no source");
        none.headline = "forged\nline\u{1b}[2J".into();
        let e = none.judge(&f.boot_id, &now).unwrap_err();
        assert!(!e.chars().any(char::is_control), "{e:?}");
    }

    #[test]
    fn a_malformed_field_is_refused_in_printable_text() {
        // Found by the node_file fuzz target: serde quoted a DEL character.
        let text = r#"{"format":"skewguard-node","version":1,"boot_id":"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0","measurement":{"verdict":"\u007fk"}}"#;
        let e = NodeFile::parse(text.as_bytes()).unwrap_err();
        assert!(e.starts_with("malformed node file"), "{e}");
        assert!(e.contains("unknown variant"), "{e}");
        assert!(!e.chars().any(char::is_control), "{e:?}");
    }

    #[test]
    fn unknown_versions_and_malformed_files_are_refused() {
        let f = file(Trust::Unauthenticated);
        let text = String::from_utf8(f.to_bytes()).unwrap();
        let with = |from: &str, to: &str| NodeFile::parse(text.replace(from, to).as_bytes());
        let e = with("\"version\":1", "\"version\":2").unwrap_err();
        assert!(e.contains("version 2"), "{e}");
        assert!(with("\"version\":1,", "").unwrap_err().contains("version"));
        assert!(with(FORMAT, "other")
            .unwrap_err()
            .contains("not a node file"));
        assert!(with("\"max_drift_ppm\":500.0", "\"max_drift_ppm\":0.0").is_err());
        assert!(with("\"uncertainty_seconds\":0.01", "\"uncertainty_seconds\":-1").is_err());
        assert!(with("0f1e2d3c-4b5a", "\\u001b[31m")
            .unwrap_err()
            .contains("boot_id"));
        assert!(NodeFile::parse(b"").is_err());
        assert!(NodeFile::parse(b"\x00\xff{").is_err());
        assert!(NodeFile::parse(&f.to_bytes()[..40]).is_err());
    }

    #[test]
    fn the_measurement_is_as_trusted_as_its_least_trusted_deciding_source() {
        let entry = |auth: bool, note: Option<&str>, status| SourceReport {
            source: "x".into(),
            status,
            authenticated: auth,
            trust: match (auth, note.is_some()) {
                (false, _) => "unauthenticated",
                (true, true) => "date-exempted",
                (true, false) => "authenticated",
            }
            .into(),
            offset_seconds: Some(0.0),
            uncertainty_seconds: Some(0.1),
            rtt_seconds: None,
            estimate_seconds: None,
            estimate_uncertainty_seconds: None,
            error: None,
            note: note.map(str::to_string),
            aliases: vec![],
            verified_by: None,
            via: None,
        };
        let judging = crate::core::report::Judging::default();
        let mut r = Report::unmeasured(&judging, 0.0, Verdict::Ok, "OK".into());
        r.offset_seconds = Some(0.0);
        r.uncertainty_seconds = Some(0.1);
        let at = stamps(1.0, 0.0, 0.0);
        r.sources = vec![
            entry(true, None, SourceStatus::Ok),
            entry(false, None, SourceStatus::Falseticker),
        ];
        let m = NodeMeasurement::from_report(&r, at).unwrap();
        assert_eq!(m.trust, Trust::Authenticated);
        assert_eq!(m.sources[1].trust, Trust::Unauthenticated);
        r.sources[1].status = SourceStatus::Ok;
        assert_eq!(
            NodeMeasurement::from_report(&r, at).unwrap().trust,
            Trust::Unauthenticated
        );
        r.sources = vec![entry(
            true,
            Some("measured through a date-exempted handshake"),
            SourceStatus::Ok,
        )];
        assert_eq!(
            NodeMeasurement::from_report(&r, at).unwrap().trust,
            Trust::DateExempted
        );
        r.verdict = Verdict::Unknown;
        assert_eq!(NodeMeasurement::from_report(&r, at), None);
    }
}
