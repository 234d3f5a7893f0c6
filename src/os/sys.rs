//! The few system calls the standard library does not wrap: the Linux clocks,
//! the kernel's clock-discipline state (adjtimex), signal dispositions and
//! masks for a clean hand-over, descriptor limits, execve with a shell's
//! PATH search (no shell itself), and datagrams with the kernel's receive
//! stamp (`SO_TIMESTAMPNS`).
//!
//! This is the only module with `unsafe`; each call is a plain libc call on
//! values owned by the caller.
#![allow(unsafe_code)]

use std::ffi::{CString, OsString};
use std::os::fd::RawFd;
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

/// Where a shell looks when `PATH` is unset (glibc's `execvp` default).
pub const DEFAULT_PATH: &[u8] = b"/bin:/usr/bin";

/// The files to try for `program`, in order, as a shell finds a command: a
/// name with a `/` is used as it is; any other is looked up in each directory
/// of `path` (`PATH`, or [`DEFAULT_PATH`] if unset), an empty entry meaning
/// the current directory. An empty name has none.
pub fn exec_candidates(program: &[u8], path: Option<&[u8]>) -> Vec<Vec<u8>> {
    if program.is_empty() {
        return Vec::new();
    }
    if program.contains(&b'/') {
        return vec![program.to_vec()];
    }
    path.unwrap_or(DEFAULT_PATH)
        .split(|&b| b == b':')
        .map(|dir| {
            let dir = if dir.is_empty() { b".".as_slice() } else { dir };
            let mut file = dir.to_vec();
            if !file.ends_with(b"/") {
                file.push(b'/');
            }
            file.extend_from_slice(program);
            file
        })
        .collect()
}

/// Replaces this process with `program` (found as [`exec_candidates`] says),
/// keeping the PID, with execve(2) and this process's environment. No shell
/// is involved: a file the kernel cannot execute (a script without `#!`)
/// fails with `ENOEXEC` instead of being handed to `/bin/sh`.
///
/// Returns only on failure, with the OS error: of the first candidate that
/// exists but cannot be executed, else `ENOENT` (or the last error).
pub fn exec(program: &OsString, args: &[OsString]) -> std::io::Error {
    let invalid = || std::io::Error::from(std::io::ErrorKind::InvalidInput);
    let Ok(argv0) = CString::new(program.as_bytes()) else {
        return invalid();
    };
    let mut argv = Vec::with_capacity(args.len() + 1);
    argv.push(argv0);
    for a in args {
        match CString::new(a.as_bytes()) {
            Ok(c) => argv.push(c),
            Err(_) => return invalid(),
        }
    }
    let mut envp = Vec::new();
    for (k, v) in std::env::vars_os() {
        let mut kv = k.as_bytes().to_vec();
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        match CString::new(kv) {
            Ok(c) => envp.push(c),
            Err(_) => return invalid(),
        }
    }
    let nul_ended = |v: &[CString]| {
        let mut p: Vec<*const libc::c_char> = v.iter().map(|c| c.as_ptr()).collect();
        p.push(std::ptr::null());
        p
    };
    let (argv_p, envp_p) = (nul_ended(&argv), nul_ended(&envp));
    let path = std::env::var_os("PATH");
    let mut denied = None;
    let mut last = std::io::Error::from_raw_os_error(libc::ENOENT);
    for file in exec_candidates(program.as_bytes(), path.as_ref().map(|p| p.as_bytes())) {
        let Ok(file) = CString::new(file) else {
            continue;
        };
        // SAFETY: `file`, every pointer in `argv_p` and `envp_p` point to
        // NUL-terminated strings that outlive the call; both arrays end with null.
        unsafe { libc::execve(file.as_ptr(), argv_p.as_ptr(), envp_p.as_ptr()) };
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            // Not in this directory: try the next, as a shell does.
            Some(libc::ENOENT | libc::ENOTDIR) => last = err,
            // There but not executable by us: remembered, the search goes on.
            Some(libc::EACCES) => {
                denied.get_or_insert(err);
            }
            _ => return err,
        }
    }
    denied.unwrap_or(last)
}

/// Whether an exec error means the file is not in a format the kernel runs
/// (`ENOEXEC`: no `#!` line and not a binary for this machine).
pub fn is_not_executable_format(err: &std::io::Error) -> bool {
    err.raw_os_error() == Some(libc::ENOEXEC)
}

/// Where the kernel says which boot this is: a random UUID per boot.
pub const BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";

/// The kernel's boot id, read from `path` (normally [`BOOT_ID_PATH`]) with
/// [`super::file::read_regular`]; an error says why there is none.
pub fn boot_id(path: &std::path::Path) -> Result<String, super::file::Refused> {
    let refused = |why: String| super::file::Refused(format!("{}: {why}", path.display()));
    let bytes = super::file::read_regular(path, 128)
        .map_err(|e| refused(e.0))?
        .ok_or_else(|| refused("not there".into()))?;
    let id = String::from_utf8_lossy(&bytes).trim().to_string();
    if id.is_empty() || id.contains(|c: char| !(c.is_ascii_hexdigit() || c == '-')) {
        return Err(refused(format!("not a boot id: {id:?}")));
    }
    Ok(id)
}

/// The effective user id (geteuid(2) cannot fail).
pub fn effective_uid() -> u32 {
    unsafe { libc::geteuid() }
}

/// Asks the kernel to stamp every datagram that socket `fd` receives with
/// CLOCK_REALTIME as it arrives (`SO_TIMESTAMPNS`, software stamps; Linux
/// since 2.6.22).
pub fn enable_receive_stamps(fd: RawFd) -> std::io::Result<()> {
    let on: libc::c_int = 1;
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Receives one datagram from connected socket `fd` without blocking, with
/// the kernel's receive stamp in realtime nanoseconds when one came with it
/// (see [`enable_receive_stamps`]). A datagram longer than `buf` is cut to
/// it, as `recv` does; `WouldBlock` when none is queued.
pub fn recv_stamped(fd: RawFd, buf: &mut [u8]) -> std::io::Result<(usize, Option<i128>)> {
    // Room for one control message holding a timespec, aligned for cmsghdr.
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut stamp = None;
    if msg.msg_flags & libc::MSG_CTRUNC == 0 {
        // SAFETY: msg_control points into `control`, which the kernel filled
        // up to msg_controllen; the CMSG macros stay within that length.
        let mut c = unsafe { libc::CMSG_FIRSTHDR(&msg) };
        while !c.is_null() {
            let h = unsafe { &*c };
            if h.cmsg_level == libc::SOL_SOCKET && h.cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec =
                    unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(c).cast()) };
                stamp = Some(ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128);
            }
            c = unsafe { libc::CMSG_NXTHDR(&msg, c) };
        }
    }
    Ok((n as usize, stamp))
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
    fn programs_are_found_as_a_shell_finds_them() {
        let c = |p: &str, path: Option<&str>| -> Vec<String> {
            exec_candidates(p.as_bytes(), path.map(str::as_bytes))
                .into_iter()
                .map(|f| String::from_utf8(f).unwrap())
                .collect()
        };
        assert_eq!(c("/etc/hostname", Some("/bin")), ["/etc/hostname"]);
        assert_eq!(c("./run", Some("/bin")), ["./run"]);
        assert_eq!(c("a/b", None), ["a/b"]);
        assert_eq!(
            c("app", Some("/usr/local/bin/::/bin")),
            ["/usr/local/bin/app", "./app", "/bin/app"]
        );
        assert_eq!(c("app", None), ["/bin/app", "/usr/bin/app"]);
        assert_eq!(c("app", Some("")), ["./app"]);
        assert!(c("", Some("/bin")).is_empty());
    }

    #[test]
    fn kernel_clock_is_readable() {
        // Reading never needs a capability.
        let k = kernel_clock().expect("adjtimex read");
        assert!(k.max_error_seconds >= 0.0);
    }

    #[test]
    fn a_datagram_comes_with_the_kernels_receive_stamp_between_send_and_read() {
        use std::os::fd::AsRawFd;
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.connect(tx.local_addr().unwrap()).unwrap();
        tx.connect(rx.local_addr().unwrap()).unwrap();
        let mut buf = [0u8; 4];
        let empty = recv_stamped(rx.as_raw_fd(), &mut buf).unwrap_err();
        assert_eq!(empty.kind(), std::io::ErrorKind::WouldBlock);
        enable_receive_stamps(rx.as_raw_fd()).unwrap();
        let before = clock_nanos(ClockId::Realtime);
        tx.send(b"hello").unwrap();
        let (n, stamp) = loop {
            match recv_stamped(rx.as_raw_fd(), &mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::yield_now(),
                r => break r.unwrap(),
            }
        };
        let after = clock_nanos(ClockId::Realtime);
        assert_eq!((n, &buf), (4, b"hell"), "cut to the buffer, as recv does");
        let stamp = stamp.expect("a stamp");
        assert!(
            before <= stamp && stamp <= after,
            "{before} <= {stamp} <= {after}"
        );
    }
}
