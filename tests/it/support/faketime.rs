//! libfaketime: the clock of a peer (chronyd, a web server) shifted by a
//! relative amount, while the system clock stays as it is.

use std::path::PathBuf;
use std::process::Command;

use super::prerequisite;

/// The shared library of libfaketime, if installed.
pub fn libfaketime() -> Option<PathBuf> {
    const CANDIDATES: &[&str] = &[
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",
        "/usr/local/lib/faketime/libfaketime.so.1",
    ];
    if let Some(p) = CANDIDATES.iter().map(PathBuf::from).find(|p| p.exists()) {
        return Some(p);
    }
    // Other multiarch layouts: ask dpkg where the package put it.
    let listing = Command::new("dpkg")
        .args(["-L", "libfaketime"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&listing.stdout)
        .lines()
        .find(|l| l.ends_with("/libfaketime.so.1"))
        .map(PathBuf::from)
}

/// [`prerequisite`] for libfaketime; returns its path.
fn require_libfaketime() -> Option<PathBuf> {
    match libfaketime() {
        Some(p) => Some(p),
        None => {
            prerequisite("libfaketime.so.1", "install libfaketime");
            None
        }
    }
}

/// Environment that shifts a child's clock by `shift` (libfaketime's relative
/// form, e.g. `"+1200"`, `"-600.25"`), or `None` when libfaketime is missing
/// (the test is then skipped or, under CI, failed).
pub(super) fn faketime_env(shift: &str) -> Option<Vec<(&'static str, String)>> {
    let lib = require_libfaketime()?;
    Some(vec![
        ("FAKETIME", shift.to_string()),
        ("LD_PRELOAD", lib.display().to_string()),
    ])
}

/// The shift in seconds if it is a plain signed number of seconds.
pub(super) fn shift_seconds(shift: Option<&str>) -> Option<f64> {
    match shift {
        None => Some(0.0),
        Some(s) => s.parse::<f64>().ok(),
    }
}
