//! Judging a round: the sources' samples combined under the trust rules
//! into a verdict, with the headline that says it and the hint that explains it.

use std::fmt::Write as _;

use crate::core::duration::{human_duration, human_setting, spoken_duration};
use crate::core::hint::{self, Evidence};
use crate::core::platform::Platform;
use crate::core::report::{
    truncate, HostFacts, Judging, KernelReport, Report, SourceReport, SourceStatus, MAX_ERROR_CHARS,
};
use crate::core::sample::{Exemption, Outcome, SourceError};
use crate::core::select::{self, AuthSelect, Candidate, Interval, Refusal, Selection};
use crate::core::verdict::{judge_measurement, Verdict};

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
        let mut unknown_issuer = false;
        for (i, (source, outcome)) in sources.iter().zip(outcomes).enumerate() {
            let mut entry = SourceReport {
                source: source.to_string(),
                status: SourceStatus::Error,
                authenticated: false,
                trust: String::new(),
                verified_by: None,
                via: None,
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
                    entry.authenticated = s.authenticated();
                    entry.trust = s.trust.name().to_string();
                    entry.verified_by = s.verified_by.map(|v| v.code().to_string());
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
                        trust: s.trust,
                    });
                    index.push(i);
                }
                Err(e) => {
                    match e {
                        SourceError::OutsideCertificate {
                            at_least,
                            local_behind,
                        } => certificate_gap = Some((*at_least, *local_behind)),
                        SourceError::Verification(m) => {
                            unknown_issuer |= m.contains("(UnknownIssuer)");
                            unverified.push(i)
                        }
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
                } else {
                    // No majority to outvote anyone: measured, not falsetickers.
                    for &i in &index {
                        if entries[i].status == SourceStatus::Falseticker {
                            entries[i].status = SourceStatus::NoMajority;
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
                            "UNKNOWN: {} failed verification, so unauthenticated sources may not decide alone (SKEWGUARD_AUTH_SELECT=mix): a man-in-the-middle, or a private CA missing from SKEWGUARD_CA_FILE, SSL_CERT_FILE or SSL_CERT_DIR, is the likely cause",
                            failed.join(", ")
                        )
                    }
                    Some(Refusal::ExemptedContradicted) => {
                        let names = |trust: &str| -> String {
                            entries
                                .iter()
                                .filter(|e| e.trust == trust)
                                .map(|e| e.source.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        };
                        format!(
                            "UNKNOWN: the date-exempted source(s) ({}) and a majority of the unauthenticated ones ({}) disagree: an old or stolen server key, a server with a wrong clock, or a forged unauthenticated path; neither decides (a date exemption never outvotes the other sources)",
                            names("date-exempted"),
                            names("unauthenticated")
                        )
                    }
                    Some(Refusal::NoAuthenticated) => format!(
                        "UNKNOWN: no authenticated source (https://, nts://) gave a usable answer, and with SKEWGUARD_AUTH_SELECT=require the {} unauthenticated one(s) may not decide",
                        candidates.len()
                    ),
                    None if !unverified.is_empty() => format!(
                        "UNKNOWN: none of the {} source(s) gave a usable answer, and {} failed verification: a man-in-the-middle, or a private CA missing from SKEWGUARD_CA_FILE, SSL_CERT_FILE or SSL_CERT_DIR, is the likely cause",
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
        match trusted.refused {
            Some(Refusal::ExemptedContradicted) => {
                for &i in &index {
                    entries[i].status = SourceStatus::Falseticker;
                    entries[i].note = Some(
                        "not counted: the date-exempted and the unauthenticated sources contradict each other in this round"
                            .into(),
                    );
                }
            }
            Some(_) => {
                for &i in &index {
                    entries[i].note = Some(
                        "not counted: unauthenticated sources may not decide alone in this round"
                            .into(),
                    );
                }
            }
            None => {}
        }
        let contradicted = trusted.refused == Some(Refusal::ExemptedContradicted);
        let disagreement = (trusted.disagreement && !contradicted).then(|| {
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
            contained: host.platform.facts.in_container(),
            faketime: host.platform.facts.faketime.clone(),
            aws: host.platform.aws.clone(),
            verdict: Some(verdict),
            offset,
            uncertainty: uncertainty.unwrap_or(0.0),
            suspended_seconds: host.suspended_seconds,
            kernel: host.kernel,
            certificate_gap,
            disagreement: matches!(selection, Selection::NoMajority { largest, answered } if *largest * 2 <= *answered)
                || contradicted,
            no_answer: matches!(selection, Selection::NoSources) && !contradicted,
            reached_unusable,
            proxy: host.proxy.clone(),
            unknown_issuer,
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
        tail(verdict, j, behind, offset.abs() - uncertainty.max(0.0))
    )
}

/// What the verdict means for the profile's service: the error it answers, or
/// the threshold the clock stays within.
fn tail(verdict: Verdict, j: &Judging, behind: bool, certain: f64) -> String {
    let t = j.thresholds;
    let what = j.profile.what();
    let window = human_setting(t.window);
    let errors = j.profile.errors_at(certain, behind);
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
    format!(
        "measured through a date-exempted handshake: the certificate is valid by the server's clock, not by the local one, which is at least {} {}",
        human_duration(x.at_least),
        if x.local_behind { "behind" } else { "ahead" }
    )
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
    fn fifteen_minutes_ahead_names_s3s_error_under_the_aws_profile() {
        let r = Report::assess(
            &names("ntp://a"),
            &[ok(-902.0)],
            &Judging::default(),
            &HostFacts::default(),
        );
        assert!(
            r.headline.contains("Signature not yet current"),
            "{}",
            r.headline
        );
        assert!(
            r.headline.contains("also `RequestTimeTooSkewed`"),
            "{}",
            r.headline
        );
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
