//! `skewguard serve`: the sidecar.

use crate::config::Config;

/// Runs `serve` until SIGTERM/SIGINT; returns the exit code.
pub fn run(config: &Config) -> i32 {
    let _ = config;
    eprintln!("skewguard: serve is not implemented yet");
    super::EXIT_USAGE
}
