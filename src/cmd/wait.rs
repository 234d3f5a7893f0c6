//! `skewguard wait` and `skewguard exec -- CMD`: hold a workload back until
//! the clock is fine.

use std::ffi::OsString;
use std::io::Write as _;
use std::time::Duration;

use tokio::time::Instant;

use crate::clock::Clock;
use crate::config::Config;
use crate::duration::{human_duration, human_setting};
use crate::report::Report;
use crate::round::Rounds;

use super::{runtime, system_clock, EXIT_FAIL, EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND, EXIT_OK};

/// First pause between attempts; it doubles up to `SKEWGUARD_INTERVAL`.
const FIRST_PAUSE: Duration = Duration::from_secs(1);

/// The next pause: doubled, capped at `interval`, never shorter than a source's back-off.
pub fn next_pause(previous: Duration, interval: Duration, backoff: Duration) -> Duration {
    (previous * 2).min(interval).max(backoff)
}

/// Measures until the verdict passes or the wait times out.
///
/// Returns whether it passed, and the last report (`None` if no round
/// completed before the deadline).
pub async fn wait_until_fine(config: &Config, clock: &dyn Clock) -> (bool, Option<Report>) {
    let start = Instant::now();
    let deadline = config.wait_timeout.map(|t| start + t);
    let mut rounds = Rounds::new(config, clock);
    let mut pause = FIRST_PAUSE / 2;
    let mut last: Option<Report> = None;
    for attempt in 1u64.. {
        let round = rounds.round();
        let report = match deadline {
            Some(d) => match tokio::time::timeout_at(d, round).await {
                Ok(r) => r,
                Err(_) => break,
            },
            None => round.await,
        };
        let passed = report.verdict.passes(config.unknown_passes);
        pause = next_pause(pause, config.interval, rounds.backoff());
        if passed {
            tracing::info!(attempt, verdict = %report.verdict, offset = ?report.offset_seconds, "{}", report.headline);
            return (true, Some(report));
        }
        tracing::info!(
            attempt,
            verdict = %report.verdict,
            offset = ?report.offset_seconds,
            retry_in = %human_duration(pause.as_secs_f64()),
            "{}",
            report.headline
        );
        last = Some(report);
        let now = Instant::now();
        let mut wake = now + pause;
        if let Some(d) = deadline {
            // Keep room for one last attempt that can finish before the deadline;
            // past that point, sleep out the wait and give up at the deadline.
            let round_time = config.query.timeout + config.query.http_budget;
            let last_chance = d.checked_sub(round_time).unwrap_or(start);
            if wake > last_chance {
                wake = if now < last_chance { last_chance } else { d };
            }
        }
        tokio::time::sleep_until(wake).await;
    }
    (false, last)
}

fn timed_out(config: &Config, last: Option<Report>) -> Report {
    let waited = config
        .wait_timeout
        .map(|d| human_setting(d.as_secs_f64()))
        .unwrap_or_default();
    match last {
        Some(mut r) => {
            r.headline = format!("{} (gave up after waiting {waited})", r.headline);
            r
        }
        None => Report::unmeasured(
            &crate::round::judging(config),
            system_clock().realtime() as f64 / 1e9,
            crate::verdict::Verdict::Unknown,
            format!("UNKNOWN: no measurement completed within SKEWGUARD_WAIT_TIMEOUT={waited}"),
        ),
    }
}

/// Runs `wait`: exit 0 once the clock is fine, 1 at the timeout.
pub fn run(config: &Config) -> i32 {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("skewguard: cannot start the async runtime: {e}");
            return EXIT_FAIL;
        }
    };
    let (passed, last) = rt.block_on(wait_until_fine(config, system_clock()));
    // Do not wait for a name lookup stuck in getaddrinfo (dead resolver).
    rt.shutdown_background();
    let report = if passed {
        last
    } else {
        Some(timed_out(config, last))
    };
    if let Some(r) = &report {
        super::check::print(config, r);
    }
    if passed {
        EXIT_OK
    } else {
        EXIT_FAIL
    }
}

/// Runs `exec`: waits, then replaces this process with the workload.
///
/// Returns only if the wait failed (1) or the workload could not be executed (126/127).
pub fn exec(config: &Config, program: &OsString, args: &[OsString]) -> i32 {
    let code = run(config);
    if code != EXIT_OK {
        tracing::error!(program = ?program, "the clock is not fine: the workload was not started");
        return code;
    }
    let _ = std::io::stdout().flush();
    let err = crate::sys::exec(program, args);
    let code = match err.kind() {
        std::io::ErrorKind::NotFound => EXIT_NOT_FOUND,
        _ => EXIT_NOT_EXECUTABLE,
    };
    eprintln!(
        "skewguard: cannot execute {}: {err}",
        program.to_string_lossy()
    );
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_interval_and_respect_backoff() {
        let i = Duration::from_secs(10);
        let mut p = FIRST_PAUSE / 2;
        let mut seen = Vec::new();
        for _ in 0..6 {
            p = next_pause(p, i, Duration::ZERO);
            seen.push(p.as_secs());
        }
        assert_eq!(seen, [1, 2, 4, 8, 10, 10]);
        assert_eq!(
            next_pause(FIRST_PAUSE, i, Duration::from_secs(64)),
            Duration::from_secs(64)
        );
    }
}
