//! The operating system: clocks, kernel calls and file I/O that does not trust
//! what another party may have placed. The bottom rung: imports nothing of the crate.

pub mod clock;
pub(crate) mod file;
pub(crate) mod sys;
