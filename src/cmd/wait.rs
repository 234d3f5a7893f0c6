//! `skewguard wait` and `skewguard exec -- CMD`: hold a workload back until
//! the clock is fine.

use std::ffi::OsString;
use std::io::Write as _;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::{Config, LogFormat};
use crate::core::duration::human_setting;
use crate::core::report::Report;
use crate::os::clock::Clock;
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
    let mut previous = None;
    // The cause and fix last explained: the first failing attempt says the
    // cause, hint and fix, and so does any later one whose cause or fix
    // differs (a hint whose figures alone moved is not repeated: the
    // headline carries the figures on every attempt).
    let mut explained: Option<(Option<String>, Option<String>)> = None;
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
        let mut ctx = super::LogContext {
            attempt: Some(attempt),
            previous,
            ..Default::default()
        };
        if passed {
            super::log_verdict(report.verdict, &report.headline, &report, ctx);
            return (true, Some(report));
        }
        pause = next_pause(pause, config.interval, rounds.backoff());
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
        // The pause logged is the one kept (the deadline may shorten it); none
        // when no attempt fits before the deadline any more.
        let final_wait = deadline.is_some_and(|d| wake >= d);
        ctx.retry_in_seconds = (!final_wait).then(|| (wake - now).as_secs_f64());
        let now_explained = (report.cause.clone(), report.fix.clone());
        ctx.explain = explained.as_ref() != Some(&now_explained);
        explained = Some(now_explained);
        super::log_verdict(report.verdict, &report.headline, &report, ctx);
        previous = Some(report.verdict);
        last = Some(report);
        tokio::time::sleep_until(wake).await;
        // A round that ends at once (a refused or closed port) must not spin
        // at the deadline: timeout_at polls the round before the timer.
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
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
            crate::core::verdict::Verdict::Unknown,
            format!("UNKNOWN: no measurement completed within SKEWGUARD_WAIT_TIMEOUT={waited}"),
        ),
    }
}

/// Exit code after SIGTERM, as a shell reports a process it ended (128 + 15).
pub const EXIT_SIGTERM: i32 = 143;
/// Exit code after SIGINT (128 + 2).
pub const EXIT_SIGINT: i32 = 130;

/// How the wait ended. (Built once per wait: the size of the report variant does not matter.)
#[allow(clippy::large_enum_variant)]
enum Waited {
    /// The verdict passed (or the wait timed out); the last report, if any.
    Done(bool, Option<Report>),
    /// A signal asked to stop: its name and the exit code it maps to.
    Signalled(&'static str, i32),
}

/// Waits until the clock is fine, the wait times out, or SIGTERM/SIGINT arrive.
///
/// The handlers are what make the signals work for PID 1 too: the kernel drops
/// signals to a namespace's init that have no handler.
async fn wait_or_signal(config: &Config, clock: &dyn Clock) -> Waited {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(error = %e, "cannot handle SIGTERM/SIGINT; they end the wait only by default action");
            let (passed, last) = wait_until_fine(config, clock).await;
            return Waited::Done(passed, last);
        }
    };
    let waited = tokio::select! {
        biased;
        _ = term.recv() => return Waited::Signalled("SIGTERM", EXIT_SIGTERM),
        _ = int.recv() => return Waited::Signalled("SIGINT", EXIT_SIGINT),
        w = wait_until_fine(config, clock) => w,
    };
    // A signal that arrived as the wait ended still wins over starting the workload.
    tokio::select! {
        biased;
        _ = term.recv() => Waited::Signalled("SIGTERM", EXIT_SIGTERM),
        _ = int.recv() => Waited::Signalled("SIGINT", EXIT_SIGINT),
        () = std::future::ready(()) => Waited::Done(waited.0, waited.1),
    }
}

/// Writes the report to stderr in the configured format: stdout belongs to the
/// workload (`exec`) or to nobody (`wait`), and stderr is what `docker logs`
/// and `kubectl logs` show.
///
/// Under `LOG_FORMAT=json` it is one log record instead (whatever `OUTPUT`
/// says), so that every line on stderr is one JSON object.
fn report_to_stderr(config: &Config, report: &Report, passed: bool) {
    let text = match config.log_format {
        LogFormat::Json => {
            let level = if passed { "INFO" } else { "WARN" };
            crate::output::record(report, level, &super::timestamp())
        }
        LogFormat::Text => crate::output::render(config.output, report),
    };
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

/// Runs `wait`: exit 0 once the clock is fine, 1 at the timeout, 143/130 on
/// SIGTERM/SIGINT. Writes nothing to stdout, and with `QUIET` nothing at all
/// when the clock is fine.
pub fn run(config: &Config) -> i32 {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            let message = format!("cannot start the async runtime: {e}");
            super::say_error(config.log_format, &message, &[]);
            return EXIT_FAIL;
        }
    };
    let waited = rt.block_on(wait_or_signal(config, system_clock()));
    // Do not wait for a name lookup stuck in getaddrinfo (dead resolver).
    rt.shutdown_background();
    let (passed, last) = match waited {
        Waited::Done(passed, last) => (passed, last),
        Waited::Signalled(name, code) => {
            tracing::warn!(signal = name, "stopped waiting");
            return code;
        }
    };
    let report = if passed {
        last
    } else {
        Some(timed_out(config, last))
    };
    // QUIET: a wait that succeeds says nothing (its log lines below ERROR are
    // filtered out already); a failure still reports.
    if let Some(r) = report.as_ref().filter(|_| !(passed && config.quiet)) {
        report_to_stderr(config, r, passed);
    }
    if passed {
        EXIT_OK
    } else {
        EXIT_FAIL
    }
}

/// Runs `exec`: waits, then replaces this process with the workload, with
/// default signal dispositions and an empty signal mask.
///
/// Returns only if the wait failed (1), was interrupted (143/130) or the
/// workload could not be executed (126/127).
pub fn exec(config: &Config, program: &OsString, args: &[OsString]) -> i32 {
    let code = run(config);
    if code != EXIT_OK {
        if code == EXIT_FAIL {
            tracing::error!(program = ?program, "the clock is not fine: the workload was not started");
        }
        return code;
    }
    let _ = std::io::stdout().flush();
    crate::os::sys::reset_signals();
    let err = crate::os::sys::exec(program, args);
    let code = match err.kind() {
        std::io::ErrorKind::NotFound => EXIT_NOT_FOUND,
        _ => EXIT_NOT_EXECUTABLE,
    };
    let why = if crate::os::sys::is_not_executable_format(&err) {
        "not an executable format (a script needs a #! line: exec runs CMD with execve, without a shell)".to_string()
    } else {
        err.to_string()
    };
    let program = program.to_string_lossy();
    let message = format!("cannot execute {program}: {why}");
    super::say_error(config.log_format, &message, &[("program", &program)]);
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
