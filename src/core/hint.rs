//! Likely causes of a skewed clock and their fixes, told apart by evidence in
//! a fixed order (see [`ORDER`]), each with a stable code for tools.

use crate::core::duration::{human_duration, spoken_duration};
use crate::core::platform::{AwsClock, Platform};
use crate::core::verdict::Verdict;
use crate::os::sys::KernelClock;

/// What a hint is inferred from.
#[derive(Debug, Clone)]
pub struct Evidence {
    /// The verdict reached.
    pub verdict: Option<Verdict>,
    /// Combined offset (reference minus local), if any.
    pub offset: Option<f64>,
    /// Its uncertainty (half-width), seconds; 0 when unknown.
    pub uncertainty: f64,
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
    /// Some source was reached but its answer was refused (a certificate the
    /// server's own clock calls invalid, a TLS, HTTP or NTP protocol error),
    /// rather than every source being unreachable (DNS, no route, timeout).
    pub reached_unusable: bool,
    /// Where the clock is kept.
    pub platform: Platform,
    /// A container marker is present ([`crate::core::platform::PlatformFacts::in_container`]):
    /// the wording says "container" only then.
    pub contained: bool,
    /// The variable that fakes this process's clock (`FAKETIME=…`), if any.
    pub faketime: Option<String>,
    /// AWS's word on the host clock.
    pub aws: Vec<AwsClock>,
    /// The HTTP proxy the environment names (`HTTPS_PROXY`, …), without
    /// credentials: where egress goes through one, UDP references cannot.
    pub proxy: Option<String>,
    /// Some `https://` source's certificate came from an issuer no trust
    /// store here knows (UnknownIssuer).
    pub unknown_issuer: bool,
}

impl Default for Evidence {
    fn default() -> Self {
        Evidence {
            verdict: None,
            offset: None,
            uncertainty: 0.0,
            suspended_seconds: 0.0,
            kernel: None,
            certificate_gap: None,
            disagreement: false,
            no_answer: false,
            reached_unusable: false,
            platform: Platform::LINUX,
            contained: true,
            faketime: None,
            aws: Vec::new(),
            proxy: None,
            unknown_issuer: false,
        }
    }
}

/// A likely cause, as a stable code (`"cause"` in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// libfaketime fakes this process's clock.
    FakedClock,
    /// Years off: a hardware clock that lost power or was never set.
    RtcLostPower,
    /// A laptop VM that was paused while its host slept.
    VmPaused,
    /// This host was suspended and has not caught up.
    HostSlept,
    /// The size of a real UTC offset: RTC in local time, or a zone applied to the clock.
    TimeZone,
    /// A whole number of days, where no time zone explains it.
    WholeDays,
    /// AWS (ECS metadata, ClockBound) says the host clock is not synchronised.
    AwsUnsynchronised,
    /// The kernel is marked synchronised, yet the clock is off.
    DaemonBadSources,
    /// No time daemon keeps the clock.
    NoTimeDaemon,
    /// A TLS certificate is outside its validity by the local clock.
    CertificateGap,
    /// The sources disagree and none has a majority.
    SourcesDisagree,
    /// No source answered.
    NoAnswer,
}

impl Cause {
    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            Cause::FakedClock => "faked-clock",
            Cause::RtcLostPower => "rtc-lost-power",
            Cause::VmPaused => "vm-paused",
            Cause::HostSlept => "host-slept",
            Cause::TimeZone => "time-zone",
            Cause::WholeDays => "whole-days",
            Cause::AwsUnsynchronised => "aws-unsynchronised",
            Cause::DaemonBadSources => "daemon-bad-sources",
            Cause::NoTimeDaemon => "no-time-daemon",
            Cause::CertificateGap => "certificate-gap",
            Cause::SourcesDisagree => "sources-disagree",
            Cause::NoAnswer => "no-answer",
        }
    }
}

/// The order in which causes of a skewed clock are tried, with the reason for
/// each place: the first whose evidence is present wins.
pub const ORDER: &[(Cause, &str)] = &[
    (Cause::FakedClock, "every other reading is of the faked clock, so nothing else can be judged"),
    (Cause::RtcLostPower, "nothing but a reset hardware clock moves a clock by months or years"),
    (Cause::VmPaused, "on a laptop VM a clock behind is the VM's own pause while the host slept; it shows no suspend inside"),
    (Cause::HostSlept, "CLOCK_BOOTTIME ahead of CLOCK_MONOTONIC is a suspend this kernel saw"),
    (Cause::TimeZone, "only the size of a real UTC offset (−12 h … +14 h, in quarter hours, within a minute) points at local time"),
    (Cause::WholeDays, "whole days are no time zone: a date set a day off, a pause, a snapshot"),
    (Cause::AwsUnsynchronised, "AWS's own word on the host clock beats the kernel flag, which a container may not see right"),
    (Cause::DaemonBadSources, "a synchronised kernel clock that is off follows bad sources"),
    (Cause::NoTimeDaemon, "what is left: nothing keeps the clock"),
];

/// A cause, why it is likely, and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    /// The cause.
    pub cause: Cause,
    /// Why: the evidence, in words.
    pub text: String,
    /// What to do, naming the host or VM that owns the clock.
    pub fix: String,
}

/// Seconds in a day.
const DAY: f64 = 86_400.0;

/// UTC offsets in use (standard and daylight-saving), in minutes.
const UTC_OFFSETS_MINUTES: &[i32] = &[
    -720, -660, -600, -570, -540, -480, -420, -360, -300, -240, -210, -180, -150, -120, -60, 60,
    120, 180, 210, 240, 270, 300, 330, 345, 360, 390, 420, 480, 525, 540, 570, 600, 630, 660, 720,
    765, 780, 825, 840,
];

/// The UTC offset, in minutes, a clock off by `offset` seconds (reference minus
/// local) could have been shifted by: the zone whose local time it shows
/// (local ahead: east of UTC), else the zone it was wrongly corrected for.
pub fn utc_offset_of(offset: f64) -> Option<i32> {
    [-offset, offset].into_iter().find_map(|shown| {
        UTC_OFFSETS_MINUTES
            .iter()
            .copied()
            .find(|&m| (shown - f64::from(m) * 60.0).abs() <= 60.0)
    })
}

/// `UTC+05:30`, `UTC−03:30`.
fn zone_name(minutes: i32) -> String {
    let sign = if minutes < 0 { '−' } else { '+' };
    let m = minutes.unsigned_abs();
    format!("UTC{sign}{:02}:{:02}", m / 60, m % 60)
}

/// The most likely cause and fix, or `None` when the clock is fine.
pub fn hint(e: &Evidence) -> Option<Hint> {
    match e.verdict? {
        Verdict::Ok => None,
        Verdict::Unknown => unknown_hint(e),
        Verdict::Warn | Verdict::Fail => skew_hint(e),
    }
}

fn faked(e: &Evidence) -> Option<Hint> {
    let var = e.faketime.as_ref()?;
    Some(Hint {
        cause: Cause::FakedClock,
        text: format!("the clock is faked in this environment ({var}): libfaketime shifts every clock reading of the processes it is preloaded into, so what they see is not the host's clock"),
        fix: "unset FAKETIME and remove libfaketime from LD_PRELOAD for the workload (and for skewguard); if the fake is meant (a test), so is this verdict".into(),
    })
}

fn unknown_hint(e: &Evidence) -> Option<Hint> {
    if let Some(h) = faked(e) {
        return Some(h);
    }
    if let Some((gap, behind)) = e.certificate_gap {
        return Some(certificate_hint(gap, behind, e.platform, e.contained));
    }
    if e.disagreement {
        return Some(Hint {
            cause: Cause::SourcesDisagree,
            text: "the sources disagree and none has a majority".into(),
            fix: "configure at least three independent sources so one that is wrong is outvoted"
                .into(),
        });
    }
    if e.no_answer {
        // A server that answered with an expired certificate or a broken
        // reply is not a network problem of this container.
        let here = if e.contained { "container" } else { "host" };
        let fix = if e.unknown_issuer {
            "the client lacks the CA: add it to SKEWGUARD_CA_FILE, or set SSL_CERT_FILE or SSL_CERT_DIR to the store that has it (a corporate CA, or one a TLS-inspecting proxy signs with), or pin a self-signed server certificate by putting it in SKEWGUARD_CA_FILE; only if the CA is meant to be public, fix the server's chain".into()
        } else if e.reached_unusable {
            "fix what the source lines name on the server's side (its certificate, TLS or HTTP set-up, its NTP service), or set SKEWGUARD_SOURCES to references that answer usably".into()
        } else if let Some(proxy) = &e.proxy {
            // Egress through an HTTP proxy: only https:// (and http://) can follow it.
            format!("this environment sends HTTP through the proxy {proxy}: NTP, NTS and Roughtime cannot cross an HTTP proxy, https:// sources can (through a CONNECT tunnel, TLS end to end); set SKEWGUARD_SOURCES to https:// servers the proxy lets through, and if an https:// line names a refusal (403, 407), fix that with the proxy's operator or in the proxy URL")
        } else {
            format!("check that this {here} may reach them (UDP 123 for ntp:// and nts://, TCP 443 for https://, TCP 4460 for the NTS key exchange; where only an HTTP proxy reaches out, set HTTPS_PROXY and use https:// sources) or set SKEWGUARD_SOURCES to references it can reach")
        };
        return Some(Hint {
            cause: Cause::NoAnswer,
            text: "no source gave a usable answer (each source line says why)".into(),
            fix,
        });
    }
    None
}

/// The hint for a certificate that is not valid by the local clock, which is
/// at least `gap` seconds off in the direction given. Kept on its own so the
/// rules for when certificate evidence may blame the clock can change here.
pub fn certificate_hint(gap: f64, behind: bool, platform: Platform, contained: bool) -> Hint {
    Hint {
        cause: Cause::CertificateGap,
        text: format!(
            "an HTTPS server's certificate is not valid by the local clock, which is at least {} {}: the clock itself is the likely fault",
            human_duration(gap),
            if behind { "behind" } else { "ahead" }
        ),
        fix: platform.fix_for(contained),
    }
}

fn skew_hint(e: &Evidence) -> Option<Hint> {
    if let Some(h) = faked(e) {
        return Some(h);
    }
    let offset = e.offset?;
    let behind = offset > 0.0;
    let direction = if behind { "behind" } else { "ahead" };
    // A one-sided bound (the certificate gap alone) says only "at least": the
    // causes read from the size use that near end, and the ones that need the
    // size within a minute (time zone, whole days) cannot be told.
    let one_sided = crate::core::verdict::one_sided(offset, e.uncertainty);
    let (size, spoken) = if one_sided {
        let near = offset.abs() - e.uncertainty;
        (near, format!("at least {}", spoken_duration(near)))
    } else {
        (offset.abs(), spoken_duration(offset.abs()))
    };
    let sized = !one_sided && e.uncertainty <= 60.0;
    let p = e.platform;
    let fix = p.fix_for(e.contained);
    let mut h = if size >= 180.0 * DAY {
        Hint {
            cause: Cause::RtcLostPower,
            text: format!("the clock is {direction} by {spoken}: the host's hardware clock probably lost power or was never set, and nothing stepped the clock since"),
            fix: format!("{fix}; with NTP running the next boot steps it too"),
        }
    } else if p.pauses_with_its_host() && behind && size > 60.0 {
        Hint {
            cause: Cause::VmPaused,
            text: format!("the clock is behind by {spoken} on {}: the VM stops while the computer sleeps and wakes with the time it stopped at, seeing no suspend of its own (CLOCK_BOOTTIME does not run ahead inside){}", p.name(), if e.contained { "; a container cannot set the VM's clock" } else { "" }),
            fix: fix.clone(),
        }
    } else if e.suspended_seconds > 60.0 {
        Hint {
            cause: Cause::HostSlept,
            text: format!("this host has been suspended for {} since boot (CLOCK_BOOTTIME is ahead of CLOCK_MONOTONIC) and its clock has not caught up since it woke", spoken_duration(e.suspended_seconds)),
            fix: fix.clone(),
        }
    } else if let Some(zone) = utc_offset_of(offset).filter(|_| sized) {
        let also = if p == Platform::LINUX {
            String::new()
        } else {
            format!("; {fix}")
        };
        Hint {
            cause: Cause::TimeZone,
            text: format!("the clock is {direction} by {spoken}, within a minute of the UTC offset {}: the host's hardware clock is probably kept in local time, or a time zone was applied to the clock itself", zone_name(zone)),
            fix: format!("on the host, keep the hardware clock in UTC (`timedatectl set-local-rtc 0`) and let chrony or systemd-timesyncd step the clock; {} does not matter, signatures use UTC{also}", if e.contained { "TZ inside a container" } else { "the TZ variable" }),
        }
    } else if sized && size >= DAY - 60.0 && (size - (size / DAY).round() * DAY).abs() <= 60.0 {
        Hint {
            cause: Cause::WholeDays,
            text: format!("the clock is {direction} by {spoken}, a whole number of days: no time zone is that far from UTC; a date set by hand a day off, or a VM paused or restored from a snapshot, leaves a clock like this"),
            fix: fix.clone(),
        }
    } else if let Some(a) = e.aws.iter().find(|a| a.synchronised == Some(false)) {
        Hint {
            cause: Cause::AwsUnsynchronised,
            text: format!("the clock is {direction} by {spoken}, and AWS says the host clock is not synchronised: {}", a.describe()),
            fix: fix.clone(),
        }
    } else if e.kernel.is_some_and(|k| k.synchronised) {
        Hint {
            cause: Cause::DaemonBadSources,
            text: format!("the kernel says a time daemon disciplines this clock, yet it is {direction} by {spoken}: that daemon follows bad sources"),
            fix: format!("check the daemon's sources (`chronyc sources`, `timedatectl timesync-status`); {fix}"),
        }
    } else {
        Hint {
            cause: Cause::NoTimeDaemon,
            text: format!("the clock is {direction} by {spoken} and no time synchronisation daemon appears to keep it (the kernel reports it unsynchronised){}", if e.contained { "; containers share the host's clock and cannot fix it themselves" } else { "" }),
            fix: fix.clone(),
        }
    };
    if h.cause != Cause::AwsUnsynchronised && !e.aws.is_empty() {
        let words: Vec<String> = e.aws.iter().map(AwsClock::describe).collect();
        h.text = format!("{}; AWS's word: {}", h.text, words.join("; "));
    }
    Some(h)
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

    fn on(platform: Platform, offset: f64) -> Evidence {
        Evidence {
            platform,
            ..skewed(offset)
        }
    }

    fn aws_says(synchronised: bool) -> AwsClock {
        AwsClock {
            source: "ecs-task-metadata".into(),
            status: Some(
                if synchronised {
                    "SYNCHRONIZED"
                } else {
                    "NOT_SYNCHRONIZED"
                }
                .into(),
            ),
            synchronised: Some(synchronised),
            error_bound_seconds: None,
            as_of: None,
            error: None,
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
    fn causes_are_told_apart_in_order() {
        const YEAR: f64 = 365.25 * DAY;
        let synced = Some(KernelClock {
            synchronised: true,
            max_error_seconds: 0.1,
            est_error_seconds: 0.0,
        });
        let cases: Vec<(Evidence, Cause, &str)> = vec![
            // libfaketime first, whatever else is true.
            (
                Evidence {
                    faketime: Some("FAKETIME=+1d".into()),
                    ..on(Platform::from_code("docker-desktop").unwrap(), DAY)
                },
                Cause::FakedClock,
                "FAKETIME=+1d",
            ),
            (
                Evidence {
                    faketime: Some("FAKETIME=+1d".into()),
                    verdict: Some(Verdict::Unknown),
                    no_answer: true,
                    ..skewed(0.0)
                },
                Cause::FakedClock,
                "libfaketime",
            ),
            // Years: an RTC, on any platform, before a paused VM.
            (skewed(-1.7e9), Cause::RtcLostPower, "lost power"),
            (
                on(Platform::from_code("docker-desktop").unwrap(), 3.0 * YEAR),
                Cause::RtcLostPower,
                "years",
            ),
            // A laptop VM behind: paused, whatever the size, never a time zone.
            (
                on(Platform::from_code("docker-desktop").unwrap(), DAY),
                Cause::VmPaused,
                "Docker Desktop",
            ),
            (
                on(Platform::from_code("wsl2").unwrap(), 19_800.0),
                Cause::VmPaused,
                "WSL2",
            ),
            (
                on(Platform::from_code("apple-vz").unwrap(), 1200.0),
                Cause::VmPaused,
                "colima",
            ),
            // Ahead on a laptop VM is not a pause.
            (
                on(Platform::from_code("docker-desktop").unwrap(), -19_800.0),
                Cause::TimeZone,
                "UTC+05:30",
            ),
            (
                Evidence {
                    suspended_seconds: 4000.0,
                    ..skewed(1200.0)
                },
                Cause::HostSlept,
                "suspended",
            ),
            // Real UTC offsets, within a minute.
            (skewed(-3600.2), Cause::TimeZone, "UTC+01:00"),
            (skewed(-19_800.0 - 30.0), Cause::TimeZone, "UTC+05:30"),
            (skewed(-20_700.0), Cause::TimeZone, "UTC+05:45"),
            (skewed(50_400.0), Cause::TimeZone, "UTC+14:00"),
            (skewed(-50_400.0), Cause::TimeZone, "UTC+14:00"),
            (skewed(-46_800.0 + 50.0), Cause::TimeZone, "local time"),
            // Not a real offset: 15 min (S3's window), 45 min, 2 min past an hour, 24 h.
            (
                skewed(900.0),
                Cause::NoTimeDaemon,
                "no time synchronisation daemon",
            ),
            (skewed(2700.0), Cause::NoTimeDaemon, "behind by 45m00s"),
            (skewed(3720.0), Cause::NoTimeDaemon, "1h02m"),
            (skewed(DAY), Cause::WholeDays, "no time zone"),
            (skewed(-3.0 * DAY - 20.0), Cause::WholeDays, "3 days 0h00m"),
            (
                on(Platform::from_code("ec2").unwrap(), DAY),
                Cause::WholeDays,
                "169.254.169.123",
            ),
            // AWS's word beats the kernel flag.
            (
                Evidence {
                    aws: vec![aws_says(false)],
                    kernel: synced,
                    ..on(Platform::from_code("ecs").unwrap(), 1200.0)
                },
                Cause::AwsUnsynchronised,
                "NOT_SYNCHRONIZED",
            ),
            (
                Evidence {
                    aws: vec![aws_says(true)],
                    kernel: synced,
                    ..on(Platform::from_code("ecs").unwrap(), 1200.0)
                },
                Cause::DaemonBadSources,
                "SYNCHRONIZED",
            ),
            (
                Evidence {
                    kernel: synced,
                    ..on(Platform::from_code("eks").unwrap(), 1200.0)
                },
                Cause::DaemonBadSources,
                "linklocal_allowance_exceeded",
            ),
            (
                skewed(1200.0),
                Cause::NoTimeDaemon,
                "chrony or systemd-timesyncd",
            ),
            (
                Evidence {
                    verdict: Some(Verdict::Unknown),
                    disagreement: true,
                    ..Evidence::default()
                },
                Cause::SourcesDisagree,
                "three independent sources",
            ),
            (
                Evidence {
                    verdict: Some(Verdict::Unknown),
                    certificate_gap: Some((1e6, true)),
                    ..Evidence::default()
                },
                Cause::CertificateGap,
                "certificate",
            ),
            (
                Evidence {
                    verdict: Some(Verdict::Unknown),
                    no_answer: true,
                    ..Evidence::default()
                },
                Cause::NoAnswer,
                "UDP 123",
            ),
            // The certificate gap alone (~300 years wide, at least 2 days
            // behind): neither a dead RTC nor whole days can be read from it.
            (
                Evidence {
                    uncertainty: 1e10 - 2.0 * DAY,
                    ..skewed(1e10)
                },
                Cause::NoTimeDaemon,
                "behind by at least 2 days 0h00m",
            ),
            // A server reached with a bad certificate: not the network.
            (
                Evidence {
                    verdict: Some(Verdict::Unknown),
                    no_answer: true,
                    reached_unusable: true,
                    ..Evidence::default()
                },
                Cause::NoAnswer,
                "on the server's side",
            ),
            // Only an HTTP proxy reaches out: UDP references cannot follow it.
            (
                Evidence {
                    verdict: Some(Verdict::Unknown),
                    no_answer: true,
                    proxy: Some("http://proxy:3128".into()),
                    ..Evidence::default()
                },
                Cause::NoAnswer,
                "the proxy http://proxy:3128: NTP, NTS and Roughtime cannot cross an HTTP proxy, https:// sources can",
            ),
            // A private CA this client lacks: the client's settings first.
            (
                Evidence {
                    verdict: Some(Verdict::Unknown),
                    no_answer: true,
                    reached_unusable: true,
                    unknown_issuer: true,
                    proxy: Some("http://proxy:3128".into()),
                    ..Evidence::default()
                },
                Cause::NoAnswer,
                "the client lacks the CA: add it to SKEWGUARD_CA_FILE, or set SSL_CERT_FILE",
            ),
        ];
        for (e, cause, want) in cases {
            let h = hint(&e).unwrap_or_else(|| panic!("no hint for {e:?}"));
            assert_eq!(h.cause, cause, "{e:?}: {h:?}");
            let all = format!("{} {}", h.text, h.fix);
            assert!(all.contains(want), "{e:?}: {all}");
        }
    }

    #[test]
    fn a_paused_vm_hint_says_nothing_of_time_zones() {
        let h = hint(&on(Platform::from_code("docker-desktop").unwrap(), DAY)).unwrap();
        let all = format!("{} {}", h.text, h.fix).to_lowercase();
        assert!(
            !all.contains("time zone") && !all.contains("tz") && !all.contains("local time"),
            "{all}"
        );
        assert!(all.contains("hwclock -s"), "{all}");
    }

    #[test]
    fn off_a_container_the_wording_never_says_container() {
        let unsynced = KernelClock {
            synchronised: false,
            max_error_seconds: 16.0,
            est_error_seconds: 16.0,
        };
        let cases = |contained: bool| {
            let mut out = Vec::new();
            for p in Platform::all() {
                for offset in [-5.5 * 3600.0, 1200.0, DAY, 3.0 * 365.0 * DAY] {
                    out.push(Evidence {
                        contained,
                        kernel: Some(unsynced),
                        ..on(p, offset)
                    });
                }
                out.push(Evidence {
                    contained,
                    platform: p,
                    verdict: Some(Verdict::Unknown),
                    no_answer: true,
                    ..Evidence::default()
                });
                out.push(Evidence {
                    contained,
                    platform: p,
                    verdict: Some(Verdict::Unknown),
                    certificate_gap: Some((DAY, true)),
                    ..Evidence::default()
                });
            }
            out
        };
        // Platforms that exist only as containers (a pod, a task) keep their words.
        let container_only = ["ecs-fargate", "ecs", "eks", "aks", "gke"];
        for e in cases(false) {
            let h = hint(&e).unwrap_or_else(|| panic!("no hint for {e:?}"));
            if container_only.contains(&e.platform.code()) {
                continue;
            }
            let all = format!("{} {}", h.text, h.fix);
            assert!(!all.contains("container"), "{e:?}: {all}");
        }
        let mut said = 0;
        for e in cases(true) {
            let h = hint(&e).unwrap_or_else(|| panic!("no hint for {e:?}"));
            said += usize::from(format!("{} {}", h.text, h.fix).contains("container"));
        }
        assert!(said > Platform::all().count(), "{said}");
        let linux = hint(&Evidence {
            contained: false,
            kernel: Some(unsynced),
            ..skewed(1200.0)
        })
        .expect("a hint");
        assert!(
            linux.fix.starts_with("on the host: run chrony"),
            "{linux:?}"
        );
    }

    #[test]
    fn order_lists_every_skew_cause_once() {
        let codes: std::collections::BTreeSet<&str> = ORDER.iter().map(|(c, _)| c.code()).collect();
        assert_eq!(codes.len(), ORDER.len());
    }
}
