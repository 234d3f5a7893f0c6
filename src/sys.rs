//! The few system calls the standard library does not wrap: the Linux clocks,
//! the kernel's clock-discipline state (adjtimex), signal dispositions and
//! masks for a clean hand-over, descriptor limits, and execvp.
//!
//! This is the only module with `unsafe`; each call is a plain libc call on
//! values owned by the caller.
#![allow(unsafe_code)]

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;

/// The Linux clocks skewguard reads.
#[derive(Debug, Clone, Copy)]
pub enum ClockId {
    /// CLOCK_REALTIME.
    Realtime,
    /// CLOCK_MONOTONIC.
    Monotonic,
    /// CLOCK_BOOTTIME.
    Boottime,
}

/// Reads a clock as signed nanoseconds.
pub fn clock_nanos(id: ClockId) -> i128 {
    let clk = match id {
        ClockId::Realtime => libc::CLOCK_REALTIME,
        ClockId::Monotonic => libc::CLOCK_MONOTONIC,
        ClockId::Boottime => libc::CLOCK_BOOTTIME,
    };
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock ids exist on Linux.
    let rc = unsafe { libc::clock_gettime(clk, &mut ts) };
    if rc != 0 {
        return 0;
    }
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

/// What the kernel says about the discipline of its clock (adjtimex, read-only).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KernelClock {
    /// `STA_UNSYNC` is clear: a time daemon has told the kernel the clock is synchronised.
    pub synchronised: bool,
    /// The kernel's maximum error estimate, in seconds.
    pub max_error_seconds: f64,
    /// The kernel's estimated error, in seconds.
    pub est_error_seconds: f64,
}

/// Reads the kernel clock state without changing it (adjtimex with modes = 0).
pub fn kernel_clock() -> Option<KernelClock> {
    // SAFETY: an all-zero timex is valid input; modes = 0 only reads.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    tx.modes = 0;
    // SAFETY: `tx` is a valid, writable timex.
    let state = unsafe { libc::adjtimex(&mut tx) };
    if state < 0 {
        return None;
    }
    Some(KernelClock {
        synchronised: state != libc::TIME_ERROR && (tx.status & libc::STA_UNSYNC) == 0,
        max_error_seconds: tx.maxerror as f64 / 1e6,
        est_error_seconds: tx.esterror as f64 / 1e6,
    })
}

/// Restores every signal to its default disposition and empties the signal
/// mask, so a workload started by [`exec`] begins as if started by a shell:
/// the Rust runtime ignores SIGPIPE, and handlers installed for the wait
/// would otherwise leave signals it never asked for ignored or blocked.
pub fn reset_signals() {
    // The kernel's struct sigaction (not libc's): the raw call reaches the
    // signals glibc reserves for itself (32, 33), which `signal()` refuses and
    // a parent may have left ignored; the new program's libc sets them up again.
    #[repr(C)]
    struct KernelSigaction {
        handler: libc::sighandler_t,
        flags: libc::c_ulong,
        restorer: usize,
        mask: u64,
    }
    let default = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for sig in 1..=libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: `default` is a valid kernel sigaction (SIG_DFL needs no
        // restorer) that outlives the call; the old action is not asked for.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &default as *const KernelSigaction,
                std::ptr::null_mut::<KernelSigaction>(),
                std::mem::size_of::<u64>(),
            )
        };
    }
    // SAFETY: an empty, initialised set; the old mask is not asked for.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Raises the soft limit on open descriptors to the hard limit (capped at
/// `cap`); returns the soft limit in force afterwards, if it could be read.
pub fn raise_nofile_limit(cap: u64) -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    let want = lim.rlim_max.min(cap).max(lim.rlim_cur);
    if want > lim.rlim_cur {
        let new = libc::rlimit {
            rlim_cur: want,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: `new` is a valid rlimit no larger than the hard limit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } == 0 {
            return Some(want);
        }
    }
    Some(lim.rlim_cur)
}

/// Replaces this process with `program` (searched in PATH), keeping the PID.
///
/// Returns only on failure, with the OS error.
pub fn exec(program: &OsString, args: &[OsString]) -> std::io::Error {
    let to_c = |s: &OsString| CString::new(s.as_bytes());
    let prog = match to_c(program) {
        Ok(p) => p,
        Err(_) => return std::io::Error::from(std::io::ErrorKind::InvalidInput),
    };
    let mut argv = Vec::with_capacity(args.len() + 1);
    argv.push(prog.clone());
    for a in args {
        match to_c(a) {
            Ok(c) => argv.push(c),
            Err(_) => return std::io::Error::from(std::io::ErrorKind::InvalidInput),
        }
    }
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|c| c.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    // SAFETY: `prog` and every pointer in `ptrs` point to NUL-terminated strings
    // that outlive the call; `ptrs` ends with a null pointer.
    unsafe { libc::execvp(prog.as_ptr(), ptrs.as_ptr()) };
    std::io::Error::last_os_error()
}

/// The effective user id (geteuid(2) cannot fail).
pub fn effective_uid() -> u32 {
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_descriptor_limit_only_goes_up() {
        let before = raise_nofile_limit(0).expect("getrlimit");
        let after = raise_nofile_limit(u64::MAX).expect("getrlimit");
        assert!(after >= before);
    }

    #[test]
    fn kernel_clock_is_readable() {
        // Reading never needs a capability.
        let k = kernel_clock().expect("adjtimex read");
        assert!(k.max_error_seconds >= 0.0);
    }
}
