//! Signing windows (profiles), thresholds and the verdict.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A kind of signed request: the clock skew it tolerates and the errors its
/// service answers outside that window. One row of [`PROFILES`] each.
#[derive(Debug)]
pub struct ProfileSpec {
    /// The name used in configuration.
    pub name: &'static str,
    /// What breaks when the clock is outside the window.
    pub what: &'static str,
    /// The skew the signature scheme tolerates, in seconds.
    pub window_seconds: f64,
    /// The service's error when the local clock is behind (requests look expired).
    pub error_behind: &'static str,
    /// The service's error when the local clock is ahead (requests not yet valid).
    pub error_ahead: &'static str,
    /// Profiles of one family (`aws`) describe services one client talks to
    /// at once: a skew past a wider sibling's window breaks that one too, and
    /// the headline names its error whatever the profile.
    pub family: &'static str,
}

/// Every profile, in help order; the first is the default.
pub const PROFILES: &[ProfileSpec] = &[
    ProfileSpec {
        name: "aws",
        what: "AWS SigV4 requests",
        window_seconds: 300.0,
        error_behind: "`SignatureDoesNotMatch … Signature expired` / `InvalidSignatureException` (EC2: `AuthFailure`, `RequestExpired`)",
        error_ahead: "`SignatureDoesNotMatch … Signature not yet current` / `InvalidSignatureException` (EC2: `AuthFailure`, `RequestInTheFuture`)",
        family: "aws",
    },
    ProfileSpec {
        name: "aws-s3",
        what: "Amazon S3 requests",
        window_seconds: 900.0,
        error_behind: "`RequestTimeTooSkewed` (MaxAllowedSkewMilliseconds 900000)",
        error_ahead: "`RequestTimeTooSkewed` (MaxAllowedSkewMilliseconds 900000)",
        family: "aws",
    },
    ProfileSpec {
        name: "azure",
        what: "Azure Storage shared-key requests",
        window_seconds: 900.0,
        error_behind: "`AuthenticationFailed … Request date header too old`",
        error_ahead: "`AuthenticationFailed` (the request date is in the future)",
        family: "",
    },
    ProfileSpec {
        name: "kerberos",
        what: "Kerberos tickets",
        window_seconds: 300.0,
        error_behind: "`KRB_AP_ERR_SKEW` (Clock skew too great)",
        error_ahead: "`KRB_AP_ERR_SKEW` (Clock skew too great)",
        family: "",
    },
    ProfileSpec {
        name: "vault-jwt",
        what: "Vault JWT logins",
        window_seconds: 60.0,
        error_behind: "`token is expired (exp)`",
        error_ahead: "`token not valid yet (nbf)` / `token issued in the future (iat)`",
        family: "",
    },
    ProfileSpec {
        name: "totp",
        what: "TOTP codes",
        window_seconds: 30.0,
        error_behind: "an invalid-code error",
        error_ahead: "an invalid-code error",
        family: "",
    },
];

/// A profile: a row of [`PROFILES`].
#[derive(Debug, Clone, Copy)]
pub struct Profile(&'static ProfileSpec);

impl PartialEq for Profile {
    fn eq(&self, other: &Profile) -> bool {
        self.0.name == other.0.name
    }
}

impl Eq for Profile {}

impl Profile {
    /// AWS Signature Version 4 (5 minutes): the default.
    pub const AWS: Profile = Profile(&PROFILES[0]);
    /// Amazon S3 (`RequestTimeTooSkewed`, 15 minutes).
    pub const AWS_S3: Profile = Profile(&PROFILES[1]);

    /// Every profile, in help order.
    pub fn all() -> impl Iterator<Item = Profile> {
        PROFILES.iter().map(Profile)
    }

    /// Parses a profile name.
    pub fn parse(s: &str) -> Option<Profile> {
        Profile::all().find(|p| p.name() == s)
    }

    /// The name used in configuration.
    pub fn name(self) -> &'static str {
        self.0.name
    }

    /// What breaks when the clock is outside the window.
    pub fn what(self) -> &'static str {
        self.0.what
    }

    /// The error the service answers when the local clock is outside the
    /// window, as people see it and search for it. The direction matters: a
    /// clock behind makes requests look expired, one ahead not yet valid.
    pub fn error_text(self, local_behind: bool) -> &'static str {
        if local_behind {
            self.0.error_behind
        } else {
            self.0.error_ahead
        }
    }

    /// The skew the signature scheme tolerates, in seconds.
    pub fn window_seconds(self) -> f64 {
        self.0.window_seconds
    }

    /// The errors a skew of at least `certain` seconds brings: this profile's,
    /// then those of every sibling of its family whose window it also exceeds
    /// (an `aws` clock 15 minutes off breaks S3 with `RequestTimeTooSkewed` too).
    pub fn errors_at(self, certain: f64, local_behind: bool) -> String {
        let mut out = vec![self.error_text(local_behind)];
        if !self.0.family.is_empty() {
            for p in Profile::all() {
                let text = p.error_text(local_behind);
                if p.0.family == self.0.family
                    && p != self
                    && certain >= p.window_seconds()
                    && !out.contains(&text)
                {
                    out.push(text);
                }
            }
        }
        out.join("; also ")
    }
}

/// The skew limits a verdict is judged against, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// The signing window of the profile.
    pub window: f64,
    /// Skew bound at which the verdict is `fail`.
    pub max_skew: f64,
    /// Skew bound at which the verdict is `warn`.
    pub warn_skew: f64,
}

/// What skewguard concludes about the local clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Well within the thresholds.
    Ok,
    /// Past the warning threshold, still usable.
    Warn,
    /// Past the maximum skew: signed requests are at risk.
    Fail,
    /// No trustworthy measurement.
    Unknown,
}

impl Verdict {
    /// Every verdict, for metrics that carry one series per state.
    pub const ALL: [Verdict; 4] = [Verdict::Ok, Verdict::Warn, Verdict::Fail, Verdict::Unknown];

    /// Lower-case name, as in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Warn => "warn",
            Verdict::Fail => "fail",
            Verdict::Unknown => "unknown",
        }
    }

    /// Whether a runtime should let the workload run (`unknown` depends on policy).
    pub fn passes(self, unknown_passes: bool) -> bool {
        match self {
            Verdict::Ok | Verdict::Warn => true,
            Verdict::Fail => false,
            Verdict::Unknown => unknown_passes,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Judges a skew bound: |offset| + uncertainty against both thresholds, so
/// `warn` when the skew *may* have reached `warn_skew` (used by holdover,
/// whose growing bound is what may have happened since the last measurement).
pub fn judge(offset: f64, uncertainty: f64, t: &Thresholds) -> Verdict {
    let bound = offset.abs() + uncertainty.max(0.0);
    if !bound.is_finite() {
        Verdict::Unknown
    } else if bound >= t.max_skew {
        Verdict::Fail
    } else if bound >= t.warn_skew {
        Verdict::Warn
    } else {
        Verdict::Ok
    }
}

/// Judges a fresh measurement: `fail` when the skew *may* reach `max_skew`
/// (the far end of the interval, |offset| + uncertainty: a workload is held
/// back on any doubt), `warn` only when the skew *certainly* reaches
/// `warn_skew` (the near end, |offset| − uncertainty). An HTTP `Date` source
/// alone is honest to about ±0.8 s, so judging warnings by the far end would
/// warn on every correct clock it measures; with NTP (± milliseconds) the two
/// ends differ by nothing that matters.
pub fn judge_measurement(offset: f64, uncertainty: f64, t: &Thresholds) -> Verdict {
    let u = uncertainty.max(0.0);
    match judge(offset, u, t) {
        Verdict::Warn if offset.abs() - u < t.warn_skew => Verdict::Ok,
        v => v,
    }
}

/// Whether an interval that excludes zero is so wide that its centre means
/// nothing (it spans more than a factor of three): then only its near end,
/// "at least |offset| − uncertainty", is worth saying.
pub fn one_sided(offset: f64, uncertainty: f64) -> bool {
    uncertainty < offset.abs() && uncertainty * 2.0 > offset.abs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sided_means_far_wider_than_its_distance_from_zero() {
        assert!(one_sided(1e10, 1e10 - 172_800.0));
        assert!(one_sided(-1.2, 0.8));
        assert!(!one_sided(1200.0, 0.001));
        assert!(!one_sided(0.3, 0.8), "holds zero: a case of its own");
    }

    #[test]
    fn thresholds_are_inclusive_and_use_the_bound() {
        let t = Thresholds {
            window: 300.0,
            max_skew: 150.0,
            warn_skew: 1.0,
        };
        let cases = [
            (0.0, 0.0, Verdict::Ok),
            (0.5, 0.49, Verdict::Ok),
            (0.5, 0.5, Verdict::Warn),
            (-1.0, 0.0, Verdict::Warn),
            (149.0, 0.9, Verdict::Warn),
            (149.0, 1.0, Verdict::Fail),
            (-150.0, 0.0, Verdict::Fail),
            (1e9, 0.0, Verdict::Fail),
            (f64::NAN, 0.0, Verdict::Unknown),
        ];
        for (o, u, want) in cases {
            assert_eq!(judge(o, u, &t), want, "{o} ± {u}");
        }
    }

    #[test]
    fn a_measurement_warns_only_when_certainly_past_warn_skew() {
        let t = Thresholds {
            window: 300.0,
            max_skew: 150.0,
            warn_skew: 1.0,
        };
        let cases = [
            (0.0, 0.0, Verdict::Ok),
            (0.5, 0.5, Verdict::Ok),
            (-1.0, 0.0, Verdict::Warn),
            (1.5, 0.5, Verdict::Warn),
            (1.5, 0.51, Verdict::Ok),
            // An HTTP Date source alone on a correct clock: ok, not warn.
            (0.3, 0.8, Verdict::Ok),
            (-2.5, 0.8, Verdict::Warn),
            (149.0, 0.9, Verdict::Warn),
            (149.5, 0.5, Verdict::Fail),
            (0.0, 150.0, Verdict::Fail),
            (f64::NAN, 0.0, Verdict::Unknown),
        ];
        for (o, u, want) in cases {
            assert_eq!(judge_measurement(o, u, &t), want, "{o} ± {u}");
        }
    }

    #[test]
    fn profiles_round_trip() {
        for p in Profile::all() {
            assert_eq!(Profile::parse(p.name()), Some(p));
        }
        assert_eq!(Profile::parse("nope"), None);
    }

    #[test]
    fn a_skew_past_s3s_window_names_s3s_error_whatever_the_aws_profile() {
        let fifteen = 902.0;
        let aws = Profile::AWS.errors_at(fifteen, false);
        assert!(
            aws.starts_with("`SignatureDoesNotMatch … Signature not yet current`"),
            "{aws}"
        );
        assert!(aws.contains("also `RequestTimeTooSkewed`"), "{aws}");
        assert!(!Profile::AWS
            .errors_at(400.0, false)
            .contains("RequestTimeTooSkewed"));
        let s3 = Profile::AWS_S3.errors_at(fifteen, true);
        assert!(
            s3.starts_with("`RequestTimeTooSkewed`") && s3.contains("Signature expired"),
            "{s3}"
        );
        let kerberos = Profile::parse("kerberos").unwrap();
        assert_eq!(kerberos.errors_at(1e6, true), kerberos.error_text(true));
    }

    #[test]
    fn error_texts_follow_the_direction() {
        assert!(Profile::AWS.error_text(true).contains("Signature expired"));
        assert!(Profile::AWS.error_text(false).contains("not yet current"));
        assert!(Profile::AWS_S3
            .error_text(true)
            .contains("RequestTimeTooSkewed"));
        for p in Profile::all() {
            assert!(!p.error_text(true).is_empty() && !p.error_text(false).is_empty());
        }
    }
}
