//! skewguard's integration tests: one test binary (`cargo test --test it`),
//! one module per area, and the helpers they share in [`support`].
//!
//! Every module's tests run in this one process, side by side: a test that
//! measures time, runs containers or loads every core says so by entering a
//! [`support::Room`] first, so that it never runs beside a test that would
//! spoil it. One module: `cargo test --test it serve::`; one test: its full
//! name, e.g. `cargo test --test it saturation::the_bound_holds_with_every_core_saturated`.

mod support;

mod alerts;
mod build;
mod cache;
mod check_peers;
mod clockbound_producer;
mod config_errors;
mod dashboard;
mod diagnosis;
mod docker;
mod docs;
mod etiquette;
mod faults;
mod generated;
mod health;
mod helm;
mod host_wording;
mod hostile_files;
mod http_behaviours;
mod http_hostile;
mod http_keepalive;
mod identity;
mod json_logs;
mod metrics;
mod node;
mod npd;
mod ntp_hostile;
mod nts;
mod privilege;
mod prometheus;
mod proxy;
mod roughtime;
mod saturation;
mod serve;
mod systemd_units;
mod trust;
mod wait_exec;
mod web_servers;
