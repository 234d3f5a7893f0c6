//! Renderings of a report for the places people and programs read it.

pub mod log;
pub mod npd;
pub mod text;

use crate::config::Output;
use crate::core::report::Report;

/// A report in the given format, ending with a newline.
pub fn render(format: Output, report: &Report) -> String {
    match format {
        Output::Text => report.to_text(),
        Output::Json => format!("{}\n", report.to_json()),
        Output::Npd => npd::line(report),
    }
}

/// A report as one log record, for stderr under `LOG_FORMAT=json`: the shape
/// of the log's own lines (`timestamp`, `level`, `fields`), with the report's
/// fields (numbers as numbers, the names of the JSON report) under `fields`
/// and the headline as its `message`. Spliced from the report's own JSON
/// rather than built as a `serde_json::Value` (whose serialiser costs ~50 KB
/// of binary).
pub fn record(report: &Report, level: &str, timestamp: &str) -> String {
    let body = report.to_json();
    let fields = body
        .strip_prefix('{')
        .and_then(|b| b.strip_suffix('}'))
        .unwrap_or_default();
    let comma = if fields.is_empty() { "" } else { "," };
    format!(
        "{{\"timestamp\":{},\"level\":{},\"fields\":{{{fields}{comma}\"message\":{}}}}}\n",
        quoted(timestamp),
        quoted(level),
        quoted(&report.headline)
    )
}

/// A message as one log record (see [`record`]), with string `fields` beside it.
pub fn message_record(
    level: &str,
    timestamp: &str,
    message: &str,
    fields: &[(&str, &str)],
) -> String {
    let mut out = format!(
        "{{\"timestamp\":{},\"level\":{},\"fields\":{{\"message\":{}",
        quoted(timestamp),
        quoted(level),
        quoted(message)
    );
    for (k, v) in fields {
        out += &format!(",{}:{}", quoted(k), quoted(v));
    }
    out += "}}\n";
    out
}

/// A string as a JSON string.
fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::report::Judging;
    use crate::core::verdict::Verdict;

    #[test]
    fn a_record_is_one_line_of_json_with_numbers() {
        let mut r = Report::unmeasured(
            &Judging::default(),
            1.5e9,
            Verdict::Fail,
            "FAIL: x\ny".into(),
        );
        r.offset_seconds = Some(1200.25);
        let line = record(&r, "WARN", "2026-12-07T16:00:00.000000Z");
        assert_eq!(line.matches('\n').count(), 1, "{line}");
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["fields"]["message"], "FAIL: x\ny");
        assert_eq!(v["fields"]["offset_seconds"], 1200.25);
        assert_eq!(v["fields"]["max_skew_seconds"], 150.0);
        let line = message_record("ERROR", "t", "bad \"x\"", &[("value", "5min")]);
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        assert_eq!(v["fields"]["value"], "5min");
    }
}
