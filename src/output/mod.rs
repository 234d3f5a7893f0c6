//! Renderings of a report for the places people and programs read it.

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
/// and the headline as its `message`.
pub fn record(report: &Report, level: &str, timestamp: &str) -> String {
    let fields = match serde_json::to_value(report) {
        Ok(serde_json::Value::Object(mut fields)) => {
            fields.insert("message".into(), report.headline.clone().into());
            fields
        }
        _ => serde_json::Map::from_iter([("message".to_string(), report.headline.clone().into())]),
    };
    line(level, timestamp, fields)
}

/// A message as one log record (see [`record`]), with string `fields` beside it.
pub fn message_record(
    level: &str,
    timestamp: &str,
    message: &str,
    fields: &[(&str, &str)],
) -> String {
    let mut map = serde_json::Map::new();
    map.insert("message".into(), message.into());
    for (k, v) in fields {
        map.insert((*k).into(), (*v).into());
    }
    line(level, timestamp, map)
}

fn line(
    level: &str,
    timestamp: &str,
    fields: serde_json::Map<String, serde_json::Value>,
) -> String {
    let record = serde_json::json!({
        "timestamp": timestamp,
        "level": level,
        "fields": fields,
    });
    format!("{record}\n")
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
