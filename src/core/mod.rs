//! The domain without I/O: sources and their samples, selection, verdicts and
//! profiles, holdover, forecast, hints and the report. Every hard decision is a
//! function of values that a unit test can call.

pub(crate) mod assess;
pub(crate) mod duration;
pub mod forecast;
pub mod hint;
pub(crate) mod holdover;
pub mod node;
pub mod platform;
pub mod report;
pub mod sample;
pub(crate) mod select;
pub mod verdict;
