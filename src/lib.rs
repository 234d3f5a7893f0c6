//! skewguard keeps containers from starting, or staying in service, with a
//! clock that breaks signed requests (AWS SigV4 and friends).
//!
//! The modules form a ladder, each importing only those below it:
//! - [`os`]: clocks, kernel calls, careful file I/O (imports nothing of the crate);
//! - [`core`]: the domain without I/O — sources and samples, selection,
//!   verdicts and profiles, holdover, forecast, hints, the report;
//! - [`config`]: the settings table, the environment and the command line;
//! - [`proto`]: one folder per time protocol over a shared TLS set-up;
//! - [`platform`]: where this runs, and the platform's own word on the clock;
//! - [`round`]: one measurement round over every source, judged into a report;
//! - [`output`]: renderings of a report;
//! - [`serve`]: the sidecar and node agent;
//! - [`cmd`]: the commands, called by `main.rs`.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod cmd;
pub mod config;
pub mod core;
pub mod os;
pub(crate) mod output;
pub mod platform;
pub mod proto;
pub mod round;
pub(crate) mod serve;
