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
