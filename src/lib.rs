//! skewguard keeps containers from starting, or staying in service, with a
//! clock that breaks signed requests (AWS SigV4 and friends).
//!
//! The crate splits like ntpd-rs: pure modules take values and return values
//! ([`select`], [`verdict`], [`hint`], [`report`], [`ntp::packet`], the
//! interval math in [`http_date`], [`duration`], the classification in
//! [`platform`]); thin I/O modules ([`ntp::client`], [`http_date::query`],
//! [`platform::read`], [`server`], [`cmd`]) call into them.
//!
//! The imports form a ladder: shared types at the bottom ([`source`],
//! [`duration`], [`clock`]), the protocols above them ([`ntp`], [`nts`], [`http_date`]),
//! where this runs ([`platform`]) beside them, the measurement round above those
//! ([`round`]), the commands on top ([`cmd`]).
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod cache;
pub mod cli;
pub mod clock;
pub mod cmd;
pub mod config;
pub mod duration;
pub mod forecast;
pub mod hint;
pub mod holdover;
pub mod http_date;
pub mod metrics;
pub mod npd;
pub mod ntp;
pub mod nts;
pub mod platform;
pub mod report;
pub mod round;
pub mod select;
pub mod server;
pub mod source;
pub mod sys;
pub mod verdict;
