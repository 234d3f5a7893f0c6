//! Likely causes of a skewed clock, and their fixes.

use crate::duration::human_duration;
use crate::sys::KernelClock;
use crate::verdict::Verdict;

/// What a hint is inferred from.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    /// The verdict reached.
    pub verdict: Option<Verdict>,
    /// Combined offset (reference minus local), if any.
    pub offset: Option<f64>,
    /// How long the host has spent suspended since boot (CLOCK_BOOTTIME − CLOCK_MONOTONIC), seconds.
    pub suspended_seconds: f64,
    /// The kernel's view of its clock discipline.
    pub kernel: Option<KernelClock>,
    /// A TLS certificate outside its validity by the local clock: (at least, local behind).
    pub certificate_gap: Option<(f64, bool)>,
    /// Sources answered but no majority agreed.
    pub disagreement: bool,
    /// Nothing answered.
    pub no_answer: bool,
}

const QUARTER_HOUR: f64 = 900.0;
const DAY: f64 = 86_400.0;

/// The most likely cause and fix, or `None` when the clock is fine.
pub fn hint(e: &Evidence) -> Option<String> {
    match e.verdict? {
        Verdict::Ok => None,
        Verdict::Unknown => unknown_hint(e),
        Verdict::Warn | Verdict::Fail => skew_hint(e),
    }
}

fn unknown_hint(e: &Evidence) -> Option<String> {
    if let Some((gap, behind)) = e.certificate_gap {
        return Some(format!(
            "an HTTPS server's certificate is not valid by the local clock, which is at least {} {}: the clock itself is the likely fault",
            human_duration(gap),
            if behind { "behind" } else { "ahead" }
        ));
    }
    if e.disagreement {
        return Some("the sources disagree and none has a majority: configure at least three independent sources so one that is wrong is outvoted".into());
    }
    if e.no_answer {
        return Some("no source gave a usable answer (each source line says why): check that this container may reach them (UDP 123 for ntp://, TCP 443 for https://) or set SKEWGUARD_SOURCES to references it can reach".into());
    }
    None
}

fn skew_hint(e: &Evidence) -> Option<String> {
    let offset = e.offset?;
    let size = offset.abs();
    let direction = if offset > 0.0 { "behind" } else { "ahead" };
    let quarters = (size / QUARTER_HOUR).round();
    if (1740.0..2.0 * DAY).contains(&size) && (size - quarters * QUARTER_HOUR).abs() <= 60.0 {
        return Some(format!(
            "the clock is {direction} by about {} (a whole number of quarter hours): the host's hardware clock is probably kept in local time, or a time zone was applied to the clock itself; keep the RTC in UTC (`timedatectl set-local-rtc 0`) and let NTP step it. TZ inside a container does not matter: signatures use UTC",
            human_duration(quarters * QUARTER_HOUR)
        ));
    }
    if size >= 180.0 * DAY {
        return Some(format!(
            "the clock is {direction} by {:.1} years: the host's hardware clock probably lost power or was never set; enable NTP on the host (chrony or systemd-timesyncd), which containers cannot do for themselves",
            size / (365.25 * DAY)
        ));
    }
    if e.suspended_seconds > 60.0 {
        return Some(format!(
            "this host has been suspended for {} since boot (CLOCK_BOOTTIME is ahead of CLOCK_MONOTONIC): a laptop VM that slept (Docker Desktop, WSL2) keeps a stale clock until it resyncs; restart Docker Desktop, or run `wsl --shutdown` (WSL2), or `hwclock -s` in the VM",
            human_duration(e.suspended_seconds)
        ));
    }
    match e.kernel {
        Some(k) if k.synchronised => Some("the kernel says a time daemon disciplines this clock, yet it is off: check that daemon's sources (`chronyc sources`, `timedatectl timesync-status`) on the host".into()),
        _ => Some("no time synchronisation daemon appears to keep the host clock (the kernel reports it unsynchronised): run chrony or systemd-timesyncd on the host or node; containers share the host's clock and cannot fix it themselves".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skewed(offset: f64) -> Evidence {
        Evidence {
            verdict: Some(Verdict::Fail),
            offset: Some(offset),
            ..Evidence::default()
        }
    }

    #[test]
    fn ok_has_no_hint() {
        let e = Evidence {
            verdict: Some(Verdict::Ok),
            offset: Some(0.0),
            ..Evidence::default()
        };
        assert_eq!(hint(&e), None);
    }

    #[test]
    fn causes_are_told_apart() {
        let cases: &[(Evidence, &str)] = &[
            (skewed(3600.2), "local time"),
            (skewed(-19800.0 - 30.0), "local time"), // UTC+5:30
            (skewed(2700.0), "quarter hours"),
            (skewed(1200.0), "no time synchronisation daemon"),
            (skewed(-1.7e9), "lost power"),
            (
                Evidence {
                    suspended_seconds: 4000.0,
                    ..skewed(1200.0)
                },
                "suspended",
            ),
            (
                Evidence {
                    verdict: Some(Verdict::Unknown),
                    disagreement: true,
                    ..Evidence::default()
                },
                "disagree",
            ),
            (
                Evidence {
                    verdict: Some(Verdict::Unknown),
                    certificate_gap: Some((1e6, true)),
                    ..Evidence::default()
                },
                "certificate",
            ),
        ];
        for (e, want) in cases {
            let h = hint(e).unwrap_or_default();
            assert!(h.contains(want), "{e:?}: {h}");
        }
    }
}
