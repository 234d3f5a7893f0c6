//! `skewguard check`: one verdict, exit 0/1; optionally reusing a recent
//! result from a cache file, so a frequent Docker `HEALTHCHECK` does not
//! hammer time servers.

use crate::config::{Config, Output};
use crate::core::report::Report;
use crate::os::clock::Clock;
use crate::output::render;

use super::cache::{held_against, read_cache, render_hit, write_cache, Read};
use super::{runtime, system_clock, EXIT_FAIL, EXIT_OK};
use crate::round::assess;

/// The exit code a report maps to.
pub fn exit_code(config: &Config, report: &Report) -> i32 {
    if config.output == Output::Npd {
        return crate::output::npd::exit_code(report.verdict, config.unknown_passes);
    }
    if report.verdict.passes(config.unknown_passes) {
        EXIT_OK
    } else {
        EXIT_FAIL
    }
}

/// Runs `check`.
pub fn run(config: &Config) -> i32 {
    let clock = system_clock();
    let boottime = clock.boottime().as_secs_f64();
    let euid = crate::os::sys::effective_uid();
    let mut writable = true;
    if let Some(path) = &config.cache_file {
        match read_cache(path, config, boottime, euid) {
            Read::Hit(hit) => {
                let code = exit_code(config, &hit.report);
                if !silenced(config, code) {
                    print!("{}", render_hit(config, &hit));
                }
                return code;
            }
            Read::Miss => {}
            Read::Refused => writable = false,
        }
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            let message = format!("cannot start the async runtime: {e}");
            super::say_error(config.log_format, &message, &[]);
            return EXIT_FAIL;
        }
    };
    let report = rt.block_on(assess(config, clock));
    // A name lookup stuck in getaddrinfo (dead resolver) must not hold the
    // process past its timeout: do not wait for blocking threads.
    rt.shutdown_background();
    // Unauthenticated sources alone may not move the verdict outside a held
    // authenticated measurement: serve that one, and keep it in the file.
    let held = config
        .cache_file
        .as_ref()
        .filter(|_| writable)
        .and_then(|path| held_against(path, config, boottime, euid, &report));
    if let Some(held) = held {
        tracing::warn!(headline = %report.headline, "not counted: only unauthenticated sources decided, outside the cached authenticated measurement");
        print!("{}", render(config.output, &held));
        return exit_code(config, &held);
    }
    if let Some(path) = config.cache_file.as_ref().filter(|_| writable) {
        // The newest result replaces the file whatever its verdict, so an
        // older ok can never be served after a fail.
        if let Err(why) = write_cache(path, config, boottime, &report, euid) {
            tracing::warn!(path = %path.display(), reason = %why, "not writing the cache file");
        }
    }
    let code = exit_code(config, &report);
    if !silenced(config, code) {
        print!("{}", render(config.output, &report));
    }
    code
}

/// `QUIET`: a check that succeeds prints nothing.
fn silenced(config: &Config, code: i32) -> bool {
    config.quiet && code == EXIT_OK
}
