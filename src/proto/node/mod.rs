//! `node:///PATH`: the measurement another process on this kernel published
//! (`serve --publish PATH`), read instead of asking any server. No network:
//! one hardened read of a small file and of the kernel's boot id, judged by
//! [`crate::core::node`] (same kernel, no step or sleep since, fresh enough,
//! a known format version) into a sample whose interval is the published one
//! grown at `MAX_DRIFT` since it was measured.
//!
//! The file must be a regular file (no symlink, FIFO or device: see
//! [`crate::os::file`]), not writable by group or others, and owned by root,
//! by the reading user or by the uid `SKEWGUARD_NODE_OWNER` names: anyone
//! else could forge a verdict. Every refusal is this source's error; the
//! other configured sources then decide.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::core::node::{NodeFile, Stamps, MAX_BYTES};
use crate::core::sample::{Outcome, QuerySettings, Sample, SourceError};
use crate::os::clock::Clock;

/// The uids allowed to own a node file: root, this user, and `extra`.
pub fn owners(euid: u32, extra: Option<u32>) -> Vec<u32> {
    let mut v = vec![0, euid];
    v.extend(extra);
    v.dedup();
    v
}

/// Reads the node file at `path` and the boot id at `boot_id_path`
/// (blocking, bounded): the file's bytes, or why there are none.
fn read(
    path: &Path,
    boot_id_path: &Path,
    owners: &[u32],
) -> Result<(Vec<u8>, String), SourceError> {
    let bytes = crate::os::file::read_published(path, owners, MAX_BYTES + 1)
        .map_err(|e| SourceError::Invalid(format!("node file {}: {e}", path.display())))?
        .ok_or_else(|| SourceError::Io(format!("no node file at {}", path.display())))?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(SourceError::Invalid(format!(
            "node file {}: larger than {} KiB",
            path.display(),
            MAX_BYTES / 1024
        )));
    }
    let boot_id = crate::os::sys::boot_id(boot_id_path)
        .map_err(|e| SourceError::Io(format!("cannot tell which boot this is: {e}")))?;
    Ok((bytes, boot_id))
}

/// Judges bytes read from the node file at `path` for this kernel's
/// `boot_id` with its clocks at `now`; `elapsed` is how long reading took
/// (the sample's round trip).
pub fn sample(
    path: &Path,
    bytes: &[u8],
    boot_id: &str,
    now: &Stamps,
    elapsed: Duration,
) -> Result<Sample, SourceError> {
    let refused =
        |why: String| SourceError::Invalid(format!("node file {}: {why}", path.display()));
    let file = NodeFile::parse(bytes).map_err(refused)?;
    let vote = file.judge(boot_id, now).map_err(refused)?;
    Ok(Sample {
        // The rung the sample stands on is the measurement's, never higher:
        // the lowest rung among the sources that decided it on the node.
        trust: vote.trust,
        ..Sample::plain(vote.offset, vote.uncertainty, elapsed.as_secs_f64())
    })
}

/// Reads and judges the node file at `path` with the boot id at `boot_id_path`.
pub async fn query_at(
    path: &str,
    boot_id_path: &Path,
    settings: &QuerySettings,
    clock: &dyn Clock,
) -> Outcome {
    let started = clock.monotonic();
    let file = PathBuf::from(path);
    let owners = owners(crate::os::sys::effective_uid(), settings.node_owner);
    let (f, b) = (file.clone(), boot_id_path.to_path_buf());
    // Off the runtime's thread: a file system that hangs cannot hold up the
    // round trips other sources are timing on it.
    let read = tokio::task::spawn_blocking(move || read(&f, &b, &owners));
    let read = match tokio::time::timeout(settings.timeout, read).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(SourceError::Io(format!(
            "reading the node file failed: {e}"
        ))),
        Err(_) => Err(SourceError::Timeout(settings.timeout)),
    };
    let now = Stamps::read(clock);
    let elapsed = clock.monotonic().saturating_sub(started);
    Outcome::from_result(
        read.and_then(|(bytes, boot_id)| sample(&file, &bytes, &boot_id, &now, elapsed)),
    )
}

/// Reads and judges the node file at `path` (this kernel's boot id from its usual place).
pub async fn query(path: &str, settings: &QuerySettings, clock: &dyn Clock) -> Outcome {
    query_at(
        path,
        Path::new(crate::os::sys::BOOT_ID_PATH),
        settings,
        clock,
    )
    .await
}
