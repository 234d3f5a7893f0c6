//! A round's result as data: the verdict, the headline a person reads, one
//! entry per source, the hint; its JSON rendering. Judged in [`super::assess`],
//! rendered as text in `crate::output::text`.

use serde::{Deserialize, Serialize};

use crate::core::platform::{AwsClock, Observation};
use crate::core::select::AuthSelect;
use crate::core::verdict::{Profile, Thresholds, Verdict};
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

impl Report {
    /// Authenticated sources decided this result: an authenticated source is
    /// among those that agreed (lower rungs only ever join a higher one).
    pub fn decided_by_authenticated(&self) -> bool {
        self.sources
            .iter()
            .any(|s| s.status == SourceStatus::Ok && s.authenticated)
    }
}

/// One source's part in a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceReport {
    /// The source URI.
    pub source: String,
    /// `ok`, `falseticker`, `no_majority` or `error`.
    pub status: SourceStatus,
    /// The measurement came over a verified channel (https with a verified
    /// chain and name, nts); `false` for ntp, http and sources without one.
    #[serde(default)]
    pub authenticated: bool,
    /// The rung of the trust ladder the measurement stands on:
    /// `unauthenticated`, `date-exempted`, `authenticated` or
    /// `clock-independent` (absent without a measurement).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub trust: String,
    /// The trust store that vouched for an `https://` source's certificate
    /// (`built-in`, `ca-file`, `pinned`, `ssl-cert-file`, `ssl-cert-dir`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_by: Option<String>,
    /// The HTTP proxy the source was reached through (`http://proxy:3128`,
    /// never with credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
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
    /// Measured, but outvoted by a majority.
    Falseticker,
    /// Measured, but no majority of the sources agree, so none is outvoted
    /// (the text's "measured (no majority agrees)").
    #[serde(rename = "no_majority")]
    NoMajority,
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
    /// The HTTP proxy the environment names (no credentials), if any.
    pub proxy: Option<String>,
}

/// Most error text kept per source, so a report fits Docker's 4 KiB health log.
pub(crate) const MAX_ERROR_CHARS: usize = 240;

impl Report {
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

    /// The JSON rendering: one object on one line.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!("{{\"verdict\":\"unknown\",\"error\":{:?}}}", e.to_string())
        })
    }
}

impl SourceReport {
    /// The source with its other names and its proxy:
    /// `https://a/ (= https://b/) via http://proxy:3128`.
    pub fn shown(&self) -> String {
        let mut shown = self.source.clone();
        if !self.aliases.is_empty() {
            shown = format!("{shown} (= {})", self.aliases.join(", "));
        }
        if let Some(via) = &self.via {
            shown = format!("{shown} via {via}");
        }
        shown
    }

    /// `name` (the source or one of its aliases) as a metric label: with the
    /// proxy it goes through, as in [`crate::proto::Source::label`].
    pub fn label(&self, name: &str) -> String {
        match &self.via {
            Some(via) => format!("{name} via {via}"),
            None => name.to_string(),
        }
    }
}

/// `text` (another party's: a node file, an HTTP body) with every control
/// character turned into a space and cut at `max` characters with `…`: it
/// reaches reports, terminals and logs.
pub(crate) fn printable(text: &str, max: usize) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    if text.chars().count() > max {
        format!("{clean}…")
    } else {
        clean
    }
}

pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
