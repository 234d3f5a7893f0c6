//! The commands: each takes a validated configuration and returns an exit code.

mod cache;
pub mod check;
pub mod health;
pub mod serve;
pub mod wait;

use std::io::Write as _;

use crate::config::LogFormat;
use crate::os::clock::SystemClock;

/// Exit code: the clock is fine (or the command succeeded).
pub const EXIT_OK: i32 = 0;
/// Exit code: the clock is not fine, or the probe failed.
pub const EXIT_FAIL: i32 = 1;
/// Exit code: a usage or configuration error.
pub const EXIT_USAGE: i32 = 2;
/// Exit code (`exec`): the workload exists but cannot be executed, as a shell reports it.
pub const EXIT_NOT_EXECUTABLE: i32 = 126;
/// Exit code (`exec`): the workload was not found, as a shell reports it.
pub const EXIT_NOT_FOUND: i32 = 127;

/// Now, as the log lines stamp their time (RFC 3339, UTC, microseconds).
pub fn timestamp() -> String {
    crate::output::log::timestamp()
}

/// Installs the log: events `filter` enables, one line each on stderr, as
/// text or JSON.
pub fn init_logging(filter: &str, format: LogFormat) {
    crate::output::log::init(filter, format)
}

/// Says an error on stderr whatever the log filter: `skewguard: MESSAGE`, or
/// under `LOG_FORMAT=json` one ERROR record shaped like the log's lines, with
/// `fields` beside the message.
pub fn say_error(format: LogFormat, message: &str, fields: &[(&str, &str)]) {
    let line = match format {
        LogFormat::Text => format!("skewguard: {message}\n"),
        LogFormat::Json => crate::output::message_record("ERROR", &timestamp(), message, fields),
    };
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(line.as_bytes());
    let _ = err.flush();
}

/// The system clock, for commands.
pub fn system_clock() -> &'static SystemClock {
    static CLOCK: SystemClock = SystemClock;
    &CLOCK
}

/// A current-thread runtime: one-shot commands need no thread pool.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// What a verdict log line carries besides the verdict itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogContext {
    /// `wait`/`exec`: which attempt this was.
    pub attempt: Option<u64>,
    /// `wait`/`exec`: seconds until the next attempt, as it will be kept.
    pub retry_in_seconds: Option<f64>,
    /// `serve`: age of the measurement held over, seconds.
    pub holdover_age_seconds: Option<f64>,
    /// `serve`: its grown skew bound, seconds.
    pub holdover_bound_seconds: Option<f64>,
    /// The previous verdict served, to tell a recovery.
    pub previous: Option<crate::core::verdict::Verdict>,
    /// Carry the report's cause, hint and fix (when the verdict is not ok):
    /// `serve` on every such line, `wait` on the first failing attempt and
    /// whenever they change.
    pub explain: bool,
}

/// Logs a verdict the same way in `wait`, `exec` and `serve`: ok and warn at
/// INFO (a recovery from fail or unknown says so), fail and unknown at WARN
/// with one more WARN line per source that gave no measurement, saying why.
/// Numbers are numbers, under the names the JSON report uses; with
/// [`LogContext::explain`] a verdict other than ok carries `cause`, `hint` and
/// `fix` as well.
pub fn log_verdict(
    verdict: crate::core::verdict::Verdict,
    headline: &str,
    report: &crate::core::report::Report,
    ctx: LogContext,
) {
    let v = verdict.name();
    let offset_seconds = report.offset_seconds;
    let uncertainty_seconds = report.uncertainty_seconds;
    let LogContext {
        attempt,
        retry_in_seconds,
        holdover_age_seconds,
        holdover_bound_seconds,
        previous,
        explain,
    } = ctx;
    let explained = explain && verdict != crate::core::verdict::Verdict::Ok;
    let cause = report.cause.as_deref().filter(|_| explained);
    let hint = report.hint.as_deref().filter(|_| explained);
    let fix = report.fix.as_deref().filter(|_| explained);
    if verdict.passes(false) {
        let recovered = previous.is_some_and(|p| !p.passes(false)).then_some(true);
        tracing::info!(
            verdict = v,
            offset_seconds,
            uncertainty_seconds,
            attempt,
            retry_in_seconds,
            holdover_age_seconds,
            holdover_bound_seconds,
            recovered,
            cause,
            hint,
            fix,
            "{headline}"
        );
        return;
    }
    tracing::warn!(
        verdict = v,
        offset_seconds,
        uncertainty_seconds,
        attempt,
        retry_in_seconds,
        holdover_age_seconds,
        holdover_bound_seconds,
        cause,
        hint,
        fix,
        "{headline}"
    );
    for s in &report.sources {
        if let Some(error) = &s.error {
            tracing::warn!(verdict = v, source = %s.source, error = %error, "no measurement from {}", s.source);
        }
    }
}
