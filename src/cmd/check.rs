//! `skewguard check`: one verdict, exit 0/1.

use crate::config::{Config, Output};
use crate::report::Report;

use super::{assess, runtime, system_clock, EXIT_FAIL, EXIT_OK};

/// Prints a report in the configured format.
pub fn print(config: &Config, report: &Report) {
    match config.output {
        Output::Text => print!("{}", report.to_text()),
        Output::Json => println!("{}", report.to_json()),
    }
}

/// The exit code a report maps to.
pub fn exit_code(config: &Config, report: &Report) -> i32 {
    if report.verdict.passes(config.unknown_passes) {
        EXIT_OK
    } else {
        EXIT_FAIL
    }
}

/// Runs `check`.
pub fn run(config: &Config) -> i32 {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("skewguard: cannot start the async runtime: {e}");
            return EXIT_FAIL;
        }
    };
    let report = rt.block_on(assess(config, system_clock()));
    print(config, &report);
    exit_code(config, &report)
}
