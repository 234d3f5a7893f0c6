//! `serve --publish PATH`: after every round, the node's latest measurement
//! is written to PATH (the format is [`crate::core::node`]'s, described in
//! `docs/node-file.md`) for every other process on this kernel to read as a
//! `node://PATH` source instead of measuring again.
//!
//! The file is replaced atomically (a temporary file in the same directory,
//! renamed over PATH), mode 0644, owned by this process's user, never through
//! a symlink and only over a regular file of this user
//! ([`crate::os::file::write_public`]). The write is blocking, so it runs on a
//! blocking thread after the round, never while a round trip is timed.

use std::path::PathBuf;

use crate::core::holdover::MaxDrift;
use crate::core::node::{NodeFile, NodeMeasurement, Stamps, FORMAT, VERSION};
use crate::core::report::Report;
use crate::os::clock::Clock;

/// What the publisher keeps between rounds.
pub(crate) struct Publisher {
    /// Where the file goes.
    path: PathBuf,
    /// This kernel's boot id (read once: it does not change while the process runs).
    boot_id: Result<String, String>,
    /// `MAX_DRIFT`, written into the file.
    max_drift: MaxDrift,
    /// The latest measurement, kept through rounds that measured nothing.
    latest: Option<NodeMeasurement>,
    /// The last failure logged, so one failing write is logged once, not every round.
    failing: Option<String>,
}

impl Publisher {
    /// A publisher writing to `path`; reads the boot id from `boot_id_path`.
    pub(crate) fn new(
        path: PathBuf,
        max_drift: MaxDrift,
        boot_id_path: &std::path::Path,
    ) -> Publisher {
        let boot_id = crate::os::sys::boot_id(boot_id_path).map_err(|e| e.0);
        if let Err(e) = &boot_id {
            tracing::error!(error = %e, path = %path.display(), "cannot publish the node file: no boot id");
        }
        Publisher {
            path,
            boot_id,
            max_drift,
            latest: None,
            failing: None,
        }
    }

    /// Takes a round's report, measured from the clocks `started`: a
    /// measurement replaces the one kept; a round without one keeps it.
    pub(crate) fn round(&mut self, report: &Report, started: Stamps) {
        if let Some(m) = NodeMeasurement::from_report(report, started) {
            self.latest = Some(m);
        }
    }

    /// Forgets the measurement kept: the wall clock stepped or the host slept.
    pub(crate) fn clock_jumped(&mut self) {
        self.latest = None;
    }

    /// The file as it would be written now, with `headline` (what `serve` answers).
    fn file(&self, boot_id: &str, headline: &str, clock: &dyn Clock) -> NodeFile {
        NodeFile {
            format: FORMAT.into(),
            version: VERSION,
            boot_id: boot_id.to_string(),
            written: Stamps::read(clock),
            max_drift_ppm: self.max_drift.ppm(),
            headline: headline.to_string(),
            measurement: self.latest.clone(),
        }
    }

    /// Writes the file (on a blocking thread); a failure is logged (once
    /// until it changes) and the next round tries again.
    pub(crate) async fn write(&mut self, headline: &str, clock: &dyn Clock) {
        let Ok(boot_id) = &self.boot_id else {
            return;
        };
        let bytes = self.file(boot_id, headline, clock).to_bytes();
        let path = self.path.clone();
        let euid = crate::os::sys::effective_uid();
        let done = tokio::task::spawn_blocking(move || {
            crate::os::file::write_public(&path, &bytes, euid).map_err(|e| e.0)
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        match done {
            Ok(()) => {
                if self.failing.take().is_some() {
                    tracing::info!(path = %self.path.display(), "node file written again");
                }
            }
            Err(e) => {
                if self.failing.as_deref() != Some(e.as_str()) {
                    tracing::error!(path = %self.path.display(), error = %e, "cannot write the node file");
                }
                self.failing = Some(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::report::Judging;
    use crate::core::verdict::Verdict;
    use crate::os::clock::SystemClock;

    fn report(verdict: Verdict, offset: Option<f64>) -> Report {
        let mut r = Report::unmeasured(&Judging::default(), 0.0, verdict, "x".into());
        r.offset_seconds = offset;
        r.uncertainty_seconds = offset.map(|_| 0.001);
        r
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_file_keeps_the_last_measurement_until_a_jump_and_is_world_readable() {
        use std::os::unix::fs::MetadataExt;
        let dir =
            std::env::temp_dir().join(format!("skewguard-publish-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let boot_id = dir.join("boot_id");
        std::fs::write(&boot_id, "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\n").unwrap();
        let path = dir.join("node.json");
        let mut p = Publisher::new(path.clone(), MaxDrift::DEFAULT, &boot_id);
        let read = || NodeFile::parse(&std::fs::read(&path).unwrap()).unwrap();
        let at = Stamps::read(&SystemClock);
        p.round(&report(Verdict::Ok, Some(0.25)), at);
        p.write("OK", &SystemClock).await;
        let f = read();
        assert_eq!(f.boot_id, "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0");
        assert_eq!(f.measurement.as_ref().unwrap().offset_seconds, 0.25);
        assert_eq!(f.measurement.as_ref().unwrap().taken, at);
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o644);
        // A round without a measurement keeps the last one (readers grow it).
        p.round(&report(Verdict::Unknown, None), Stamps::read(&SystemClock));
        p.write("UNKNOWN: no source answered", &SystemClock).await;
        let f = read();
        assert_eq!(f.measurement.unwrap().taken, at);
        assert_eq!(f.headline, "UNKNOWN: no source answered");
        // A step or suspend drops it.
        p.clock_jumped();
        p.write("UNKNOWN: the wall clock was stepped", &SystemClock)
            .await;
        assert_eq!(read().measurement, None);
        // Never through a symlink.
        std::fs::remove_file(&path).unwrap();
        let target = dir.join("target");
        std::fs::write(&target, "keep").unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        p.write("OK", &SystemClock).await;
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
