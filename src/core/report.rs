//! A round's result as a report: the verdict, the headline a person reads,
//! one entry per source, and its text and JSON renderings.

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

use crate::core::duration::{human_duration, human_setting, signed_seconds, spoken_duration};

use crate::core::hint::{self, Evidence};
use crate::core::sample::{Exemption, Outcome, SourceError};
use crate::core::select::{self, AuthSelect, Candidate, Interval, Refusal, Selection};

use crate::core::platform::{AwsClock, Observation, Platform};
use crate::core::verdict::{judge_measurement, Profile, Thresholds, Verdict};
use crate::os::sys::KernelClock;

/// The result of one round of measurement, as `check` prints it and `/healthz` serves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The verdict.
    pub verdict: Verdict,
    /// One line for people.
    pub headline: String,
    /// Combined offset, reference minus local, seconds (positive: local clock behind).
    pub offset_seconds: Option<f64>,
    /// Half-width of the interval holding the true offset, seconds.
    pub uncertainty_seconds: Option<f64>,
    /// The profile's signing window, seconds.
    pub window_seconds: f64,
    /// Fail threshold, seconds.
    pub max_skew_seconds: f64,
    /// Warn threshold, seconds.
    pub warn_skew_seconds: f64,
    /// Profile name.
    pub profile: String,
    /// One entry per configured source, in configured order.
    pub sources: Vec<SourceReport>,
    /// Likely cause: the evidence, in words.
    pub hint: Option<String>,
    /// The cause as a stable code (`vm-paused`, `time-zone`, …; see `hint::Cause`).
    #[serde(default)]
    pub cause: Option<String>,
    /// What to do about it, on the host or VM that owns the clock.
    #[serde(default)]
    pub fix: Option<String>,
    /// Where the clock is kept, as a stable code (`docker-desktop`, `eks`, `linux`, …).
    #[serde(default)]
    pub platform: Option<String>,
    /// What the platform was told by (`kernel 6.10.14-linuxkit`, `/.dockerenv`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platform_evidence: Vec<String>,
    /// AWS's own word on the host clock (ECS task metadata, ClockBound), where there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aws_clock: Vec<AwsClock>,
    /// The kernel's view of its own clock, where readable.
    pub kernel: Option<KernelReport>,
    /// Local realtime of the measurement, Unix seconds.
    pub measured_at: f64,
    /// Set when the guard is bypassed (`SKEWGUARD_DISABLED`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// One line, set when authenticated sources and a majority of the
    /// unauthenticated ones disagree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disagreement: Option<String>,
}

/// One source's part in a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceReport {
    /// The source URI.
    pub source: String,
    /// `ok`, `falseticker` or `error`.
    pub status: SourceStatus,
    /// The measurement came over a verified channel (https with a verified
    /// chain and name, nts); `false` for ntp, http and sources without one.
    #[serde(default)]
    pub authenticated: bool,
    /// Offset measured, seconds.
    pub offset_seconds: Option<f64>,
    /// Error bound, seconds.
    pub uncertainty_seconds: Option<f64>,
    /// Round trip, seconds.
    pub rtt_seconds: Option<f64>,
    /// HTTP `Date`: the bisection's narrow estimate of the offset, seconds:
    /// true only if the server stamps `Date` from its live clock, truncated,
    /// so it is shown but never voted with (`offset_seconds` is the honest one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate_seconds: Option<f64>,
    /// Half-width of that estimate, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate_uncertainty_seconds: Option<f64>,
    /// Why there is no measurement.
    pub error: Option<String>,
    /// How the measurement counted, where that needs saying (a date-exempted
    /// handshake, or not counted under the trust rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Other configured names of the same server (same protocol and address):
    /// measured once, one vote.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

/// A source's standing in the round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceStatus {
    /// Measured and in the agreeing majority.
    Ok,
    /// Measured, but outvoted.
    Falseticker,
    /// No usable measurement.
    Error,
}

/// The kernel's clock discipline (adjtimex).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KernelReport {
    /// A time daemon has marked the clock synchronised.
    pub synchronised: bool,
    /// The kernel's maximum error estimate, seconds.
    pub max_error_seconds: f64,
}

/// The judging side of the configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judging {
    /// Signing window.
    pub profile: Profile,
    /// Thresholds.
    pub thresholds: Thresholds,
    /// Fewest agreeing sources.
    pub min_sources: usize,
    /// How authenticated and unauthenticated sources share the vote.
    pub auth_select: AuthSelect,
}

impl Default for Judging {
    /// What an empty configuration judges by: the `aws` profile (300 s window),
    /// fail at half of it, warn at 1 s, one source enough.
    fn default() -> Self {
        let window = Profile::AWS.window_seconds();
        Judging {
            profile: Profile::AWS,
            thresholds: Thresholds {
                window,
                max_skew: window / 2.0,
                warn_skew: 1.0,
            },
            min_sources: 1,
            auth_select: AuthSelect::Mix,
        }
    }
}

/// Host facts gathered at measurement time.
#[derive(Debug, Clone, Default)]
pub struct HostFacts {
    /// Kernel clock state.
    pub kernel: Option<KernelClock>,
    /// CLOCK_BOOTTIME − CLOCK_MONOTONIC, seconds.
    pub suspended_seconds: f64,
    /// Local realtime, Unix seconds.
    pub now: f64,
    /// Where this runs, and AWS's word on the clock.
    pub platform: Observation,
}

/// Most error text kept per source, so a report fits Docker's 4 KiB health log.
const MAX_ERROR_CHARS: usize = 240;

impl Report {
    /// Combines one round's outcomes into a report; `sources` are shown by
    /// their names (a configured source's URI).
    pub fn assess<S: std::fmt::Display>(
        sources: &[S],
        outcomes: &[Outcome],
        judging: &Judging,
        host: &HostFacts,
    ) -> Report {
        let mut entries: Vec<SourceReport> = Vec::with_capacity(sources.len());
        let mut candidates = Vec::new();
        let mut index = Vec::new();
        let mut certificate_gap = None;
        let mut unverified: Vec<usize> = Vec::new();
        let mut reached_unusable = false;
        for (i, (source, outcome)) in sources.iter().zip(outcomes).enumerate() {
            let mut entry = SourceReport {
                source: source.to_string(),
                status: SourceStatus::Error,
                authenticated: false,
                offset_seconds: None,
                uncertainty_seconds: None,
                rtt_seconds: None,
                estimate_seconds: None,
                estimate_uncertainty_seconds: None,
                error: None,
                note: None,
                aliases: Vec::new(),
            };
            match &outcome.result {
                Ok(s) => {
                    entry.status = SourceStatus::Falseticker;
                    entry.authenticated = s.authenticated;
                    entry.offset_seconds = Some(s.offset);
                    entry.uncertainty_seconds = Some(s.uncertainty);
                    entry.rtt_seconds = Some(s.rtt);
                    entry.estimate_seconds = s.estimate.map(|e| e.offset);
                    entry.estimate_uncertainty_seconds = s.estimate.map(|e| e.uncertainty);
                    entry.note = s.exemption.map(|x| exemption_note(&x));
                    candidates.push(Candidate {
                        interval: Interval {
                            offset: s.offset,
                            uncertainty: s.uncertainty,
                        },
                        authenticated: s.authenticated,
                    });
                    index.push(i);
                }
                Err(e) => {
                    match e {
                        SourceError::OutsideCertificate {
                            at_least,
                            local_behind,
                        } => certificate_gap = Some((*at_least, *local_behind)),
                        SourceError::Verification(_) => unverified.push(i),
                        _ => {}
                    }
                    reached_unusable |= e.reached_server();
                    entry.error = Some(truncate(&e.to_string(), MAX_ERROR_CHARS));
                }
            }
            entries.push(entry);
        }

        let t = judging.thresholds;
        let trusted = select::select_trusted(
            &candidates,
            judging.min_sources,
            judging.auth_select,
            !unverified.is_empty(),
        );
        let selection = &trusted.selection;
        let (verdict, offset, uncertainty, headline) = match selection {
            Selection::Agreed {
                members,
                offset,
                uncertainty,
            } => {
                for &m in members {
                    entries[index[m]].status = SourceStatus::Ok;
                }
                let verdict = judge_measurement(*offset, *uncertainty, &t);
                let names: Vec<&str> = members
                    .iter()
                    .map(|&m| entries[index[m]].source.as_str())
                    .collect();
                let by = if names.len() == 1 && sources.len() == 1 {
                    names[0].to_string()
                } else {
                    format!(
                        "{} of {} sources ({}){}",
                        names.len(),
                        sources.len(),
                        names.join(", "),
                        left_out(&entries)
                    )
                };
                let headline = skew_headline(verdict, *offset, *uncertainty, &by, judging);
                (verdict, Some(*offset), Some(*uncertainty), headline)
            }
            Selection::NoMajority { largest, answered } => {
                // Too few, but agreeing: the largest set is not outvoted.
                if *largest * 2 > *answered {
                    let intervals: Vec<Interval> = candidates.iter().map(|c| c.interval).collect();
                    if let Selection::Agreed { members, .. } = select::select(&intervals, 1) {
                        for m in members {
                            entries[index[m]].status = SourceStatus::Ok;
                        }
                    }
                }
                let which = if trusted.authenticated_vote {
                    "authenticated sources"
                } else {
                    "sources"
                };
                let h = if *largest * 2 > *answered {
                    format!(
                        "UNKNOWN: only {largest} source(s) agree, fewer than SKEWGUARD_MIN_SOURCES={}",
                        judging.min_sources
                    )
                } else {
                    format!(
                        "UNKNOWN: the {which} disagree: no majority of the {answered} that answered agree on the offset (largest agreeing set: {largest})"
                    )
                };
                (Verdict::Unknown, None, None, h)
            }
            Selection::NoSources => {
                let h = match trusted.refused {
                    Some(Refusal::VerificationFailed) => {
                        let failed: Vec<&str> =
                            unverified.iter().map(|&i| entries[i].source.as_str()).collect();
                        format!(
                            "UNKNOWN: {} failed verification, so unauthenticated sources may not decide alone (SKEWGUARD_AUTH_SELECT=mix): a man-in-the-middle, or a private CA missing from SKEWGUARD_CA_FILE, is the likely cause",
                            failed.join(", ")
                        )
                    }
                    Some(Refusal::NoAuthenticated) => format!(
                        "UNKNOWN: no authenticated source (https://, nts://) gave a usable answer, and with SKEWGUARD_AUTH_SELECT=require the {} unauthenticated one(s) may not decide",
                        candidates.len()
                    ),
                    None if !unverified.is_empty() => format!(
                        "UNKNOWN: none of the {} source(s) gave a usable answer, and {} failed verification: a man-in-the-middle, or a private CA missing from SKEWGUARD_CA_FILE, is the likely cause",
                        sources.len(),
                        unverified.iter().map(|&i| entries[i].source.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                    None => format!(
                        "UNKNOWN: none of the {} source(s) gave a usable answer",
                        sources.len()
                    ),
                };
                (Verdict::Unknown, None, None, h)
            }
        };
        if trusted.authenticated_vote {
            for e in entries.iter_mut() {
                if e.status == SourceStatus::Falseticker && !e.authenticated && e.note.is_none() {
                    e.note = Some("outside the authenticated sources' result: an unauthenticated source may narrow it, never move it".into());
                }
            }
        }
        if trusted.refused.is_some() {
            for &i in &index {
                entries[i].note = Some(
                    "not counted: unauthenticated sources may not decide alone in this round"
                        .into(),
                );
            }
        }
        let disagreement = trusted.disagreement.then(|| {
            let decides = match judging.auth_select {
                AuthSelect::Ignore => "each source has one vote (SKEWGUARD_AUTH_SELECT=ignore)",
                _ => "the authenticated ones decide",
            };
            format!(
                "the authenticated source(s) and a majority of the unauthenticated ones disagree: a possible attack on the unauthenticated (NTP or HTTP) path, or a broken one; {decides}"
            )
        });

        let platform = Platform::classify(&host.platform.facts);
        let evidence = Evidence {
            platform,
            faketime: host.platform.facts.faketime.clone(),
            aws: host.platform.aws.clone(),
            verdict: Some(verdict),
            offset,
            uncertainty: uncertainty.unwrap_or(0.0),
            suspended_seconds: host.suspended_seconds,
            kernel: host.kernel,
            certificate_gap,
            disagreement: matches!(selection, Selection::NoMajority { largest, answered } if *largest * 2 <= *answered),
            no_answer: matches!(selection, Selection::NoSources),
            reached_unusable,
        };
        let hint = hint::hint(&evidence);
        Report {
            verdict,
            headline,
            offset_seconds: offset,
            uncertainty_seconds: uncertainty,
            window_seconds: t.window,
            max_skew_seconds: t.max_skew,
            warn_skew_seconds: t.warn_skew,
            profile: judging.profile.name().to_string(),
            sources: entries,
            cause: hint.as_ref().map(|h| h.cause.code().to_string()),
            fix: hint.as_ref().map(|h| h.fix.clone()),
            hint: hint.map(|h| h.text),
            platform: Some(platform.code().to_string()),
            platform_evidence: host.platform.facts.evidence(),
            aws_clock: host.platform.aws.clone(),
            kernel: host.kernel.map(|k| KernelReport {
                synchronised: k.synchronised,
                max_error_seconds: k.max_error_seconds,
            }),
            measured_at: host.now,
            note: None,
            disagreement,
        }
    }

    /// The report of a bypassed guard: ok, with a note saying so.
    pub fn disabled(judging: &Judging, now: f64) -> Report {
        let mut r = Report::unmeasured(
            judging,
            now,
            Verdict::Ok,
            "OK: skewguard is disabled (SKEWGUARD_DISABLED=true); the clock was not measured"
                .into(),
        );
        r.note = Some("disabled by SKEWGUARD_DISABLED".into());
        r
    }

    /// A report that carries no measurement: the thresholds, a verdict and why.
    pub fn unmeasured(judging: &Judging, now: f64, verdict: Verdict, headline: String) -> Report {
        let t = judging.thresholds;
        Report {
            verdict,
            headline,
            offset_seconds: None,
            uncertainty_seconds: None,
            window_seconds: t.window,
            max_skew_seconds: t.max_skew,
            warn_skew_seconds: t.warn_skew,
            profile: judging.profile.name().to_string(),
            sources: Vec::new(),
            hint: None,
            cause: None,
            fix: None,
            platform: None,
            platform_evidence: Vec::new(),
            aws_clock: Vec::new(),
            kernel: None,
            measured_at: now,
            note: None,
            disagreement: None,
        }
    }

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
                    if status == SourceStatus::Ok {
                        "ok"
                    } else if self.offset_seconds.is_none() {
                        // Nothing was agreed, so nothing outvoted it.
                        "measured (no majority agrees)"
                    } else {
                        "FALSETICKER (outvoted)"
                    },
                    signed_seconds(s.offset_seconds.unwrap_or(f64::NAN)),
                    human_duration(s.uncertainty_seconds.unwrap_or(f64::NAN)),
                    human_duration(s.rtt_seconds.unwrap_or(f64::NAN)),
                    if s.authenticated {
                        "authenticated"
                    } else {
                        "unauthenticated"
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

    /// The JSON rendering: one object on one line.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!("{{\"verdict\":\"unknown\",\"error\":{:?}}}", e.to_string())
        })
    }
}

fn skew_headline(verdict: Verdict, offset: f64, uncertainty: f64, by: &str, j: &Judging) -> String {
    let behind = offset > 0.0;
    let side = if offset == 0.0 {
        "0".to_string()
    } else {
        format!(
            "{} {}",
            spoken_duration(offset.abs()),
            if behind { "behind" } else { "ahead" }
        )
    };
    // An interval that holds zero says only how far off the clock may be: an
    // HTTP `Date` bound is about a second wide with its centre some 0.3 s from
    // the truth, so "304ms behind" would state a direction nobody measured.
    let size = if uncertainty >= offset.abs() {
        let verb = if verdict == Verdict::Fail {
            "may be up to"
        } else {
            "is at most"
        };
        format!(
            "local clock {verb} {} off ({side} ±{})",
            spoken_duration(offset.abs() + uncertainty),
            human_duration(uncertainty)
        )
    } else if crate::core::verdict::one_sided(offset, uncertainty) {
        // Far wider than its distance from zero (the certificate gap alone,
        // ~300 years wide): only the near end is a measurement.
        format!(
            "local clock is at least {} {} ({side} ±{})",
            spoken_duration(offset.abs() - uncertainty),
            if behind { "behind" } else { "ahead" },
            human_duration(uncertainty)
        )
    } else {
        format!("local clock is {side} (±{})", human_duration(uncertainty))
    };
    // The sources come last: `health` keeps 300 characters of the headline,
    // and the error the service answers matters more than the list of sources.
    format!(
        "{}: {size}; {}; according to {by}",
        verdict.name().to_ascii_uppercase(),
        tail(verdict, j, behind)
    )
}

/// What the verdict means for the profile's service: the error it answers, or
/// the threshold the clock stays within.
fn tail(verdict: Verdict, j: &Judging, behind: bool) -> String {
    let t = j.thresholds;
    let what = j.profile.what();
    let window = human_setting(t.window);
    let errors = j.profile.error_text(behind);
    match verdict {
        Verdict::Fail => format!(
            "{what} fail with {errors} (window {window}; fail threshold {})",
            human_setting(t.max_skew)
        ),
        Verdict::Warn => format!(
            "past the warn threshold {}, within the fail threshold {} for {what} (window {window}; beyond it: {errors})",
            human_setting(t.warn_skew),
            human_setting(t.max_skew)
        ),
        _ => format!(
            "within {} of {what} (window {window})",
            human_setting(t.max_skew)
        ),
    }
}

fn exemption_note(x: &Exemption) -> String {
    let gap = format!(
        "at least {} {}",
        human_duration(x.at_least),
        if x.local_behind { "behind" } else { "ahead" }
    );
    if x.server_time_read {
        format!("measured through a date-exempted handshake: the certificate is valid by the server's clock, not by the local one, which is {gap}")
    } else {
        format!("no server time after a date-exempted handshake: the certificate gap alone says the local clock is {gap}")
    }
}

impl SourceReport {
    /// The source with its other names: `ntp://127.0.0.1:123 (= ntp://localhost)`.
    pub fn shown(&self) -> String {
        if self.aliases.is_empty() {
            self.source.clone()
        } else {
            format!("{} (= {})", self.source, self.aliases.join(", "))
        }
    }
}

/// For a headline that rests on fewer sources than were configured: which
/// others failed, and which were outvoted (empty when every one agreed).
fn left_out(entries: &[SourceReport]) -> String {
    let names = |status: SourceStatus| -> Vec<&str> {
        entries
            .iter()
            .filter(|e| e.status == status)
            .map(|e| e.source.as_str())
            .collect()
    };
    let mut out = String::new();
    let failed = names(SourceStatus::Error);
    if !failed.is_empty() {
        let _ = write!(out, "; no usable answer from {}", failed.join(", "));
    }
    let outvoted = names(SourceStatus::Falseticker);
    if !outvoted.is_empty() {
        let _ = write!(out, "; not counted: {}", outvoted.join(", "));
    }
    out
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::sample::Sample;

    /// Source names as a configuration lists them (`aws` stands for the first three).
    fn names(list: &str) -> Vec<String> {
        let list = list.replace(
            "aws",
            "ntp://169.254.169.123,ntp://time.aws.com,https://sts.amazonaws.com/",
        );
        list.split(',').map(String::from).collect()
    }

    fn ok(offset: f64) -> Outcome {
        Outcome::from_result(Ok(Sample::plain(offset, 0.001, 0.0002)))
    }

    #[test]
    fn the_service_error_fits_in_what_health_prints() {
        let sources = names("aws");
        let r = Report::assess(
            &sources,
            &[ok(86_400.0), ok(86_400.0), ok(86_400.0)],
            &Judging::default(),
            &HostFacts::default(),
        );
        let shown: String = r.headline.chars().take(300).collect();
        assert!(shown.contains("Signature expired"), "{shown}");
        assert!(
            r.headline.ends_with("sts.amazonaws.com/)"),
            "{}",
            r.headline
        );
    }

    #[test]
    fn an_interval_that_holds_zero_states_a_reach_not_a_direction() {
        let sources = names("https://a");
        let wide = Outcome::from_result(Ok(Sample::plain(0.3042, 0.8049, 0.001)));
        let r = Report::assess(
            &sources,
            &[wide],
            &Judging::default(),
            &HostFacts::default(),
        );
        assert_eq!(r.verdict, Verdict::Ok, "{}", r.headline);
        assert!(
            r.headline
                .starts_with("OK: local clock is at most 1.1s off (304.2ms behind ±804.9ms)"),
            "{}",
            r.headline
        );
    }

    #[test]
    fn falseticker_is_marked_and_headline_says_direction() {
        let sources = names("ntp://a,ntp://b,ntp://c");
        let r = Report::assess(
            &sources,
            &[ok(1200.0), ok(1200.0005), ok(0.0)],
            &Judging::default(),
            &HostFacts::default(),
        );
        assert_eq!(r.verdict, Verdict::Fail);
        assert!(
            r.headline.starts_with("FAIL: local clock is 20m00s behind"),
            "{}",
            r.headline
        );
        assert!(r.headline.contains("2 of 3 sources"), "{}", r.headline);
        assert!(r.headline.contains("Signature expired"), "{}", r.headline);
        assert_eq!(r.sources[2].status, SourceStatus::Falseticker);
        assert!(r.hint.is_some());
        let text = r.to_text();
        assert!(text.contains("FALSETICKER"), "{text}");
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        for key in [
            "verdict",
            "offset_seconds",
            "uncertainty_seconds",
            "window_seconds",
            "max_skew_seconds",
            "warn_skew_seconds",
            "sources",
            "hint",
            "cause",
            "fix",
            "platform",
        ] {
            assert!(v.get(key).is_some(), "{key}");
        }
        assert_eq!(v["sources"][2]["status"], "falseticker");
    }

    #[test]
    fn disagreement_and_silence_are_unknown() {
        let sources = names("ntp://a,ntp://b");
        let r = Report::assess(
            &sources,
            &[ok(0.0), ok(1200.0)],
            &Judging::default(),
            &HostFacts::default(),
        );
        assert_eq!(r.verdict, Verdict::Unknown);
        assert!(r.headline.contains("disagree"), "{}", r.headline);
        let dead =
            Outcome::from_result(Err(SourceError::Timeout(std::time::Duration::from_secs(2))));
        let r = Report::assess(
            &sources,
            &[dead.clone(), dead],
            &Judging::default(),
            &HostFacts::default(),
        );
        assert_eq!(r.verdict, Verdict::Unknown);
        assert_eq!(r.sources[0].status, SourceStatus::Error);
        assert!(r.sources[0].error.as_deref().unwrap().contains("2.000s"));
    }

    #[test]
    fn text_stays_under_docker_limit() {
        let sources: Vec<String> = (0..200).map(|i| format!("ntp://host{i}.example")).collect();
        let outcomes: Vec<Outcome> = (0..200)
            .map(|_| Outcome::from_result(Err(SourceError::Io("x".repeat(1000)))))
            .collect();
        let r = Report::assess(
            &sources,
            &outcomes,
            &Judging::default(),
            &HostFacts::default(),
        );
        assert!(r.to_text().len() <= 4096);
    }
}
