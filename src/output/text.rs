//! The text rendering of a report: headline, one line per source, kernel,
//! platform, hint and fix; kept under Docker's 4 KiB health log.

use std::fmt::Write as _;

use crate::core::duration::{human_duration, signed_seconds};
use crate::core::platform::Platform;
use crate::core::report::{truncate, Report, SourceStatus};
use crate::core::sample::TrustStore;

impl Report {
    /// The text rendering: headline, one line per source, kernel state, hint.
    /// Kept under 4 KiB (Docker keeps only that much of a health check's output).
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}", self.headline);
        for s in &self.sources {
            let line = match s.status {
                SourceStatus::Error => format!(
                    "  {}  error: {}",
                    s.shown(),
                    s.error.as_deref().unwrap_or("unknown error")
                ),
                status => format!(
                    "  {}  {}  {} ±{}  rtt {}  {}",
                    s.shown(),
                    match status {
                        SourceStatus::Ok => "ok",
                        // Nothing was agreed, so nothing outvoted it.
                        SourceStatus::NoMajority => "measured (no majority agrees)",
                        _ => "FALSETICKER (outvoted)",
                    },
                    signed_seconds(s.offset_seconds.unwrap_or(f64::NAN)),
                    human_duration(s.uncertainty_seconds.unwrap_or(f64::NAN)),
                    human_duration(s.rtt_seconds.unwrap_or(f64::NAN)),
                    match (s.authenticated, s.verified_by.as_deref()) {
                        (true, Some(code)) => format!(
                            "authenticated ({})",
                            TrustStore::from_code(code).map_or(code, |t| t.name())
                        ),
                        (true, None) => "authenticated".into(),
                        (false, _) => "unauthenticated".into(),
                    },
                ),
            };
            let line = match (s.estimate_seconds, s.estimate_uncertainty_seconds) {
                (Some(e), Some(u)) => format!(
                    "{line}  (estimate {} ±{} if its Date is a live clock)",
                    signed_seconds(e),
                    human_duration(u)
                ),
                _ => line,
            };
            let line = match &s.note {
                Some(n) => format!("{line}\n    note: {n}"),
                None => line,
            };
            if out.len() + line.len() > 3000 {
                let _ = writeln!(out, "  … more sources omitted");
                break;
            }
            let _ = writeln!(out, "{line}");
        }
        if let Some(k) = &self.kernel {
            let _ = writeln!(
                out,
                "kernel: {} (max error {})",
                if k.synchronised {
                    "clock marked synchronised by a time daemon"
                } else {
                    "clock not marked synchronised (no time daemon disciplining it)"
                },
                human_duration(k.max_error_seconds)
            );
        }
        if let Some(code) = &self.platform {
            let name = Platform::from_code(code).map_or(code.as_str(), |p| p.name());
            if self.platform_evidence.is_empty() {
                let _ = writeln!(out, "platform: {name}");
            } else {
                let _ = writeln!(
                    out,
                    "platform: {name} ({})",
                    self.platform_evidence.join(", ")
                );
            }
        }
        for a in &self.aws_clock {
            let _ = writeln!(out, "aws: {}", a.describe());
        }
        if let Some(n) = &self.note {
            let _ = writeln!(out, "note: {n}");
        }
        if let Some(d) = &self.disagreement {
            let _ = writeln!(out, "note: {d}");
        }
        if let Some(h) = &self.hint {
            let _ = writeln!(out, "hint: {h}");
        }
        if let Some(f) = &self.fix {
            let _ = writeln!(out, "fix: {f}");
        }
        truncate(&out, 4000)
    }
}
