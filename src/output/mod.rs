//! Renderings of a report for the places people and programs read it.

pub mod npd;
pub mod text;
