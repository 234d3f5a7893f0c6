//! The commands: each takes a validated configuration and returns an exit code.

pub mod check;
pub mod health;
pub mod serve;
pub mod wait;

use crate::clock::SystemClock;

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
