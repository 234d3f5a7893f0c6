//! `OUTPUT=npd`: node-problem-detector's custom plugin protocol. The plugin
//! prints one status line (NPD keeps at most `max_output_length`, 80 by
//! default, as the condition's message) and exits 0 OK, 1 NonOK or 2 Unknown.
//!
//! Exit 2 means Unknown here and "usage or configuration error" elsewhere in
//! skewguard. They coexist: a plugin whose flags or environment are wrong
//! cannot know the clock either, so NPD shows the condition Unknown for both;
//! the configuration error is said on stderr, which NPD logs.

use crate::core::duration::{human_duration, human_setting};
use crate::core::report::{Report, SourceStatus};
use crate::core::verdict::Verdict;

/// NPD's default `max_output_length`: longer lines are cut by NPD.
pub const MAX_LINE: usize = 80;

/// NPD: the condition is not present.
pub const EXIT_OK: i32 = 0;
/// NPD: the condition is present (the clock breaks signing).
pub const EXIT_NON_OK: i32 = 1;
/// NPD: the plugin cannot tell.
pub const EXIT_UNKNOWN: i32 = 2;

/// The exit code for NPD: ok and warn are OK (signing works), fail is NonOK,
/// unknown is Unknown — or OK with `ON_UNKNOWN=pass`.
pub fn exit_code(verdict: Verdict, unknown_passes: bool) -> i32 {
    match verdict {
        Verdict::Ok | Verdict::Warn => EXIT_OK,
        Verdict::Fail => EXIT_NON_OK,
        Verdict::Unknown if unknown_passes => EXIT_OK,
        Verdict::Unknown => EXIT_UNKNOWN,
    }
}

/// The one status line (with its newline), at most [`MAX_LINE`] characters
/// before the newline: the verdict, the skew bound against the threshold and
/// how many sources agreed; without a measurement, the headline (which says
/// why), shortened to fit.
pub fn line(report: &Report) -> String {
    marked_line(report, "")
}

/// [`line`] with `mark` after the verdict (`OK (cached): …`), still at most
/// [`MAX_LINE`] characters.
pub fn marked_line(report: &Report, mark: &str) -> String {
    let text = match (report.offset_seconds, report.uncertainty_seconds) {
        (Some(offset), Some(uncertainty)) => {
            let agreeing = report
                .sources
                .iter()
                .filter(|s| s.status == SourceStatus::Ok)
                .count();
            let limit = match report.verdict {
                Verdict::Warn => report.warn_skew_seconds,
                _ => report.max_skew_seconds,
            };
            let relation = if offset.abs() + uncertainty >= limit {
                "over"
            } else {
                "under"
            };
            format!(
                "{}{mark}: clock off by up to {} ({relation} {}), {agreeing}/{} sources agree",
                report.verdict.name().to_uppercase(),
                human_duration(offset.abs() + uncertainty),
                human_setting(limit),
                report.sources.len()
            )
        }
        _ => report.headline.clone(),
    };
    format!("{}\n", shorten(text.lines().next().unwrap_or(""), MAX_LINE))
}

/// `text` cut to at most `max` characters, ending in `…` when cut.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::report::{HostFacts, Judging};
    use crate::core::sample::{Outcome, Sample, SourceError};

    use crate::proto::source::Source;

    fn assessed(offsets: &[Option<f64>]) -> Report {
        let uris: Vec<String> = (0..offsets.len())
            .map(|i| format!("ntp://very-long-host-name-number-{i}.example.internal:123"))
            .collect();
        let sources = Source::parse_list(&uris.join(",")).unwrap();
        let outcomes: Vec<Outcome> = offsets
            .iter()
            .map(|o| {
                Outcome::from_result(match o {
                    Some(offset) => Ok(Sample::plain(*offset, 0.002, 0.001)),
                    None => Err(SourceError::Io(
                        "connection refused by a server whose error message is long".into(),
                    )),
                })
            })
            .collect();
        Report::assess(
            &sources,
            &outcomes,
            &Judging::default(),
            &HostFacts::default(),
        )
    }

    fn checked(report: &Report) -> String {
        let l = line(report);
        assert!(l.ends_with('\n') && l.matches('\n').count() == 1, "{l:?}");
        let chars = l.trim_end_matches('\n').chars().count();
        assert!(chars <= MAX_LINE, "{chars} characters: {l:?}");
        l
    }

    #[test]
    fn every_state_gives_one_short_line_and_its_exit_code() {
        let ok = assessed(&[Some(0.01), Some(0.011), None]);
        let l = checked(&ok);
        assert!(l.starts_with("OK: clock off by up to "), "{l}");
        assert!(l.contains("(under 2m30"), "{l}");
        assert!(l.contains("2/3 sources agree"), "{l}");
        assert_eq!(exit_code(ok.verdict, false), EXIT_OK);

        let warn = assessed(&[Some(2.5)]);
        let l = checked(&warn);
        assert!(l.starts_with("WARN: ") && l.contains("(over 1"), "{l}");
        assert_eq!(exit_code(warn.verdict, false), EXIT_OK);

        let fail = assessed(&[Some(-1200.0)]);
        let l = checked(&fail);
        assert!(l.starts_with("FAIL: clock off by up to 20m"), "{l}");
        assert_eq!(exit_code(fail.verdict, false), EXIT_NON_OK);

        let unknown = assessed(&[None, None, None, None, None]);
        let l = checked(&unknown);
        assert!(l.starts_with("UNKNOWN"), "{l}");
        assert_eq!(exit_code(unknown.verdict, false), EXIT_UNKNOWN);
        assert_eq!(exit_code(unknown.verdict, true), EXIT_OK);

        let disabled = Report::disabled(&Judging::default(), 0.0);
        let l = checked(&disabled);
        assert!(l.starts_with("OK: skewguard is disabled"), "{l}");
    }

    #[test]
    fn shortening_counts_characters_not_bytes() {
        let long = "µ".repeat(100);
        let s = shorten(&long, MAX_LINE);
        assert_eq!(s.chars().count(), MAX_LINE);
        assert!(s.ends_with('…'));
        assert_eq!(shorten("short", MAX_LINE), "short");
    }
}
