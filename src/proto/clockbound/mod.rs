//! `clockbound://` (ClockBound's default paths) or `clockbound:///PATH`: the
//! host's own clock error bound, as AWS ClockBound's daemon publishes it in
//! its shared-memory segment ([`segment`]), taken as a vote: the local clock
//! is within ± the bound of true time, the bound being the written one grown
//! at the written max drift since as-of, as ClockBound's client computes it.
//!
//! The vote is unauthenticated: the segment says what the host's chrony
//! believes, from sources skewguard cannot verify. It counts only while the
//! status (as ClockBound's client reads it at this moment) is Synchronized or
//! FreeRunning and before void-after; Unknown, Disrupted, a void or unreadable
//! segment is this source's error. The file is opened the hardened way (no
//! symlink, no hang on a FIFO) on a blocking thread.

pub mod segment;

use std::path::PathBuf;
use std::time::Duration;

use crate::core::sample::{Outcome, QuerySettings, Sample, SourceError};
use crate::os::clock::Clock;
use segment::{Segment, Status};

/// The vote a segment gives at CLOCK_MONOTONIC `now`, or why none.
pub fn vote(seg: &Segment, now: Duration) -> Result<f64, String> {
    if now >= seg.void_after {
        return Err(format!(
            "the bound is void since {:.0}s (the daemon stopped updating it)",
            (now - seg.void_after).as_secs_f64()
        ));
    }
    match seg.status_at(now) {
        Status::Synchronized | Status::FreeRunning => {}
        s => return Err(format!("ClockBound's status is {}", s.name())),
    }
    let bound = seg.bound_at(now).ok_or_else(|| {
        format!(
            "as-of lies {:.0}s ahead of this machine's monotonic clock: not a segment of this boot",
            (seg.as_of.saturating_sub(now)).as_secs_f64()
        )
    })?;
    Ok(bound.as_secs_f64())
}

/// Reads the segment at the first of `paths` where there is anything (blocking).
fn read(paths: &[PathBuf]) -> Result<Segment, SourceError> {
    for path in paths {
        let at = |why: String| SourceError::Invalid(format!("{}: {why}", path.display()));
        match crate::os::file::open_regular(path) {
            Ok(None) => continue,
            Ok(Some(f)) => {
                return match segment::snapshot(&f) {
                    Ok(Ok(seg)) => Ok(seg),
                    Ok(Err(why)) => Err(at(why)),
                    Err(e) => Err(at(e.0)),
                }
            }
            Err(e) => return Err(at(e.0)),
        }
    }
    let listed: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    Err(SourceError::Io(format!(
        "no ClockBound segment at {}",
        listed.join(" or ")
    )))
}

/// Reads the segment at `path` (or ClockBound's default paths) and gives its vote.
pub async fn query(path: Option<&str>, settings: &QuerySettings, clock: &dyn Clock) -> Outcome {
    let paths: Vec<PathBuf> = match path {
        Some(p) => vec![PathBuf::from(p)],
        None => segment::PATHS.iter().map(PathBuf::from).collect(),
    };
    let started = clock.monotonic();
    let read = tokio::task::spawn_blocking(move || read(&paths));
    let seg = match tokio::time::timeout(settings.timeout, read).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(SourceError::Io(format!("reading the segment failed: {e}"))),
        Err(_) => Err(SourceError::Timeout(settings.timeout)),
    };
    let now = clock.monotonic();
    let rtt = now.saturating_sub(started).as_secs_f64();
    Outcome::from_result(seg.and_then(|seg| {
        vote(&seg, now)
            .map(|bound| Sample::plain(0.0, bound, rtt))
            .map_err(|why| {
                SourceError::Invalid(format!(
                    "ClockBound segment{}: {why}",
                    path.map(|p| format!(" {p}")).unwrap_or_default()
                ))
            })
    }))
}
