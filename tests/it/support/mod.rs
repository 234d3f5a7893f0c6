//! Shared helpers for the whole-program tests: real time peers on loopback and
//! a bounded way to run the built binary, one file per kind of thing they start.
//!
//! - here: [`prerequisite`] (a missing tool skips a test loudly, or fails it
//!   under `CI=true`), [`TempDir`], [`Port`] (a loopback port no other test,
//!   thread or process, holds), [`SilentNtp`], [`repo`] (the repository's root).
//! - [`Room`] (`machine.rs`): which tests may run side by side (timing-sensitive
//!   ones, containers, core hogs).
//! - `process.rs`: [`run`] runs `skewguard` with a clean `SKEWGUARD_*`
//!   environment and a hard time bound, [`Serve`] keeps `skewguard serve`
//!   running, and `Daemon` a peer's daemon (chronyd, a web server, Prometheus).
//! - `faketime.rs`: libfaketime, which shifts a peer's clock (`"+1200"`,
//!   `"-1.5"`, `"+3.375"`).
//! - `chrony.rs`: [`Chrony`], chronyd (NTP, NTS) on 127.0.0.1.
//! - `web.rs`: [`Nginx`] and [`WebServer`] (apache2, lighttpd, python3,
//!   nginx with `timer_resolution`) serving an HTTP `Date`, and
//!   [`read_request_head`] for the tests' own fake HTTP servers.
//! - `sntp.rs`: [`sntp_query`], a minimal SNTP client.
//! - `http.rs`: [`http_get`], a minimal HTTP client.
//! - `prometheus.rs`: [`promtool`] and a [`Prometheus`] server.
//! - `coverage.rs`: runs per case and records for `bench/coverage.sh`.
//! - [`tls`]: a test CA, an HTTPS `Date` server and a forging NTP server.
//! - [`relay`]: a UDP relay with faults and on-path attacks.
//! - [`proxy`]: tinyproxy and squid, nginx with TLS, certificates made with
//!   openssl, a proxy that never answers.
//! - `roughtime.rs`: [`RoughtimeServer`], roughenough or pyroughtime on
//!   127.0.0.1, shifted by libfaketime.
//!
//! Test modules use it as `crate::support`. Everything here talks only to 127.0.0.1.
// A few accessors are there for debugging a failure (`Nginx::log`, `Chrony::shift`, …)
// and no test calls them today.
#![allow(dead_code)]

mod chrony;
mod coverage;
mod faketime;
mod http;
mod machine;
pub mod namespace;
mod process;
mod prometheus;
pub mod proxy;
pub mod relay;
mod roughtime;
mod sntp;
pub mod tls;
mod web;

pub use chrony::Chrony;
pub use coverage::{coverage_http_budget, coverage_runs, record_coverage};
pub use http::{http_get, HttpReply};
pub use machine::Room;
pub use process::{
    clear_skewguard_env, run, run_bounded, run_command, skewguard, Output, Serve, RUN_BOUND,
};
pub use prometheus::{openmetrics_parse, promtool, Prometheus};
pub use roughtime::{RoughtimeKind, RoughtimeServer};
pub use sntp::sntp_query;
pub use web::{http_date_offset, read_request_head, Nginx, WebKind, WebServer};

use std::fs::{self, File};
use std::io::Write;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;

/// The repository's root (where `Cargo.toml` is), whose files some tests read.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------------------
// Prerequisites

/// Reports whether `tool_or_path` (a program looked up in `PATH` and the sbin
/// directories, or a path if it contains `/`) is present.
///
/// When it is absent: under `CI=true` this panics (`CI requires chronyd: install
/// chrony`), because CI must run every test; elsewhere it prints `SKIPPED: <test>:
/// …` to stderr and returns `false`, and the caller returns early.
/// `remedy` says how to get it, e.g. `"install chrony"`.
pub fn prerequisite(tool_or_path: &str, remedy: &str) -> bool {
    if locate(tool_or_path).is_some() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI requires {tool_or_path}: {remedy}");
    }
    // Straight to the process's stderr: libtest would capture `eprintln!` and
    // hide it for a passing test, and a skip must not pass unnoticed.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {}: {tool_or_path} not found ({remedy})",
        current_test()
    );
    false
}

/// Full path of a program (searched in `PATH`, then `/usr/sbin` and `/sbin`,
/// which non-root `PATH`s often lack) or of an existing path.
pub fn locate(tool_or_path: &str) -> Option<PathBuf> {
    if tool_or_path.contains('/') {
        let p = PathBuf::from(tool_or_path);
        return p.exists().then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(tool_or_path))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The name of the running test (libtest names each test's thread after it).
pub fn current_test() -> String {
    thread::current()
        .name()
        .unwrap_or("<unnamed test>")
        .to_string()
}

// ---------------------------------------------------------------------------
// Temporary directories

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `<tmp>/skewguard-test-<label>-<pid>-<n>`.
    pub fn new(label: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir()
                .join(format!("skewguard-test-{label}-{}-{n}", std::process::id()));
            match fs::create_dir(&path) {
                Ok(()) => {
                    // Daemons started as root drop to their own user (chronyd: _chrony) and
                    // still want to write their drift and pid files here.
                    let _ = fs::set_permissions(&path, fs::Permissions::from_mode(0o777));
                    return TempDir(path);
                }
                // A leftover of an earlier process with the same pid: take the next name.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => panic!("cannot create {}: {e}", path.display()),
            }
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------
// Ports

/// Ports handed out lie below Linux's default ephemeral range (32768–60999), so
/// the kernel never gives them to a client socket (of skewguard, say) between a
/// peer's stop and its restart on the same port.
const PORT_RANGE: std::ops::Range<u16> = 20000..32768;

/// A loopback port, free for both UDP and TCP when handed out, and reserved for
/// the holder until dropped.
///
/// The reservation is an advisory lock (`flock`) on `<tmp>/skewguard-test-ports/<port>`:
/// it excludes other threads of this process and other test binaries alike, and
/// the kernel releases it if the process dies. The (empty) lock files stay: deleting
/// one while another process has it open would let two holders lock different files
/// of the same name.
pub struct Port {
    number: u16,
    _lock: File,
}

impl Port {
    /// Reserves a port that nothing listens on (yet).
    pub fn free() -> Port {
        let dir = std::env::temp_dir().join("skewguard-test-ports");
        if fs::create_dir_all(&dir).is_ok() {
            // Shared by all users who run the tests on this machine.
            let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o1777));
        }
        static CALLS: AtomicU32 = AtomicU32::new(0);
        let span = u32::from(PORT_RANGE.end - PORT_RANGE.start);
        // Start each process (and each call) somewhere else to keep contention low.
        let start = std::process::id()
            .wrapping_mul(7919)
            .wrapping_add(CALLS.fetch_add(1, Ordering::Relaxed).wrapping_mul(13))
            % span;
        for i in 0..span {
            let number = PORT_RANGE.start + ((start + i) % span) as u16;
            let path = dir.join(number.to_string());
            // flock works on a read-only descriptor too: another user's lock file will do.
            let opened = fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .or_else(|_| File::open(&path));
            let Ok(file) = opened else {
                continue;
            };
            if !try_lock(&file) {
                continue;
            }
            // Held by nobody among the tests; is it free on the machine too?
            let addr = SocketAddr::from(([127, 0, 0, 1], number));
            if UdpSocket::bind(addr).is_ok() && TcpListener::bind(addr).is_ok() {
                return Port {
                    number,
                    _lock: file,
                };
            }
        }
        panic!("no free loopback port in {PORT_RANGE:?}");
    }

    /// The port number.
    pub fn number(&self) -> u16 {
        self.number
    }

    /// `ntp://127.0.0.1:PORT`: as a source, a closed port (as long as the holder
    /// starts nothing on it): skewguard's connected UDP socket sees the ICMP port
    /// unreachable and reports `connection refused` at once. For a server that
    /// stays silent until the timeout, use [`SilentNtp`].
    pub fn ntp_uri(&self) -> String {
        format!("ntp://127.0.0.1:{}", self.number)
    }
}

/// A UDP socket on 127.0.0.1 that takes requests and never answers: an NTP
/// source whose every query runs to the timeout. Closed when dropped.
pub struct SilentNtp {
    socket: UdpSocket,
}

impl SilentNtp {
    /// Binds an ephemeral loopback port.
    pub fn start() -> SilentNtp {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a silent UDP socket");
        SilentNtp { socket }
    }

    /// `ntp://127.0.0.1:PORT` of the socket.
    pub fn uri(&self) -> String {
        let port = self.socket.local_addr().map(|a| a.port()).unwrap_or(0);
        format!("ntp://127.0.0.1:{port}")
    }
}

/// Takes an exclusive `flock` without waiting. Each open file description has its
/// own lock, so two `Port`s in one process exclude each other as well.
fn try_lock(file: &File) -> bool {
    // SAFETY: flock only reads the descriptor, which `file` keeps open for the call.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}
