//! Shared helpers for the whole-program tests: real time peers on loopback and
//! a bounded way to run the built binary.
//!
//! - [`prerequisite`]: a missing tool skips a test loudly, or fails it under `CI=true`.
//! - [`Port`]: a loopback port no other test (thread or process) holds.
//! - [`Chrony`] and [`Nginx`]: chronyd (NTP) and nginx (HTTP `Date`) on 127.0.0.1,
//!   optionally with a clock shifted by libfaketime (`"+1200"`, `"-1.5"`, `"+3.375"`).
//! - [`run`]: runs `skewguard` with a clean `SKEWGUARD_*` environment and a hard time bound.
//! - [`Room`]: which tests may run side by side (timing-sensitive ones, containers, core hogs).
//!
//! Test modules use it as `crate::support`. Everything here talks only to 127.0.0.1.
#![allow(dead_code)]

mod machine;
pub mod relay;
pub mod tls;

pub use machine::Room;

use std::fmt;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a peer may take to start answering.
const PEER_START_BOUND: Duration = Duration::from_secs(5);

/// How long one run of the binary may take before it is killed.
pub const RUN_BOUND: Duration = Duration::from_secs(30);

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

/// The shared library of libfaketime, if installed.
pub fn libfaketime() -> Option<PathBuf> {
    const CANDIDATES: &[&str] = &[
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",
        "/usr/local/lib/faketime/libfaketime.so.1",
    ];
    if let Some(p) = CANDIDATES.iter().map(PathBuf::from).find(|p| p.exists()) {
        return Some(p);
    }
    // Other multiarch layouts: ask dpkg where the package put it.
    let listing = Command::new("dpkg")
        .args(["-L", "libfaketime"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&listing.stdout)
        .lines()
        .find(|l| l.ends_with("/libfaketime.so.1"))
        .map(PathBuf::from)
}

/// [`prerequisite`] for libfaketime; returns its path.
fn require_libfaketime() -> Option<PathBuf> {
    match libfaketime() {
        Some(p) => Some(p),
        None => {
            prerequisite("libfaketime.so.1", "install libfaketime");
            None
        }
    }
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

// ---------------------------------------------------------------------------
// Daemons

/// A foreground daemon started by a test, killed on drop. Its stdout and stderr
/// go to `log` so a failure can show them.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn spawn(mut cmd: Command, log: PathBuf) -> Daemon {
        let out = File::create(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let err = out.try_clone().expect("duplicate a log file descriptor");
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        Daemon { child, log }
    }

    /// Panics with the log if the daemon has exited.
    fn assert_alive(&mut self, what: &str) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{what} exited ({status}):\n{}", self.log_text());
        }
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Environment that shifts a child's clock by `shift` (libfaketime's relative
/// form, e.g. `"+1200"`, `"-600.25"`), or `None` when libfaketime is missing
/// (the test is then skipped or, under CI, failed).
fn faketime_env(shift: &str) -> Option<Vec<(&'static str, String)>> {
    let lib = require_libfaketime()?;
    Some(vec![
        ("FAKETIME", shift.to_string()),
        ("LD_PRELOAD", lib.display().to_string()),
    ])
}

/// The shift in seconds if it is a plain signed number of seconds.
fn shift_seconds(shift: Option<&str>) -> Option<f64> {
    match shift {
        None => Some(0.0),
        Some(s) => s.parse::<f64>().ok(),
    }
}

fn is_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

// ---------------------------------------------------------------------------
// chronyd

/// chronyd serving NTP on `127.0.0.1:PORT` from its own clock, which libfaketime
/// may shift. It never touches the system clock (`-x`).
///
/// Keep shifts at 1 s or more: chronyd takes its receive timestamp from the
/// kernel, which libfaketime cannot shift, and only falls back to its own clock
/// when the two differ by more than about a second.
pub struct Chrony {
    dir: TempDir,
    port: Port,
    shift: Option<String>,
    daemon: Option<Daemon>,
    /// Extra configuration lines (the NTS server's).
    extra: String,
    /// The NTS-KE port, for an NTS server.
    ke_port: Option<Port>,
}

impl Chrony {
    /// Starts chronyd (with its clock shifted by `shift` if given) and waits until
    /// it answers as a synchronised stratum-3 server. `None`: chronyd or libfaketime
    /// is missing and the test should return (see [`prerequisite`]).
    ///
    /// Panics if chronyd starts but does not answer, or answers with an offset
    /// that does not match `shift`.
    pub fn start(shift: Option<&str>) -> Option<Chrony> {
        if !prerequisite("chronyd", "install chrony") {
            return None;
        }
        let mut chrony = Chrony {
            dir: TempDir::new("chrony"),
            port: Port::free(),
            shift: None,
            daemon: None,
            extra: String::new(),
            ke_port: None,
        };
        chrony.restart(shift).then_some(chrony)
    }

    /// Starts chronyd as an NTS server too: NTS-KE on its own port with the
    /// leaf certificate and key given (PEM), NTP on the usual port.
    pub fn start_nts(shift: Option<&str>, cert_pem: &str, key_pem: &str) -> Option<Chrony> {
        Chrony::start_nts_with(shift, cert_pem, key_pem, "")
    }

    /// [`Chrony::start_nts`] with more configuration lines.
    pub fn start_nts_with(
        shift: Option<&str>,
        cert_pem: &str,
        key_pem: &str,
        more: &str,
    ) -> Option<Chrony> {
        if !prerequisite("chronyd", "install chrony") {
            return None;
        }
        let dir = TempDir::new("chrony-nts");
        let ke_port = Port::free();
        let (cert, key, dump) = (
            dir.path().join("cert.pem"),
            dir.path().join("key.pem"),
            dir.path().join("dump"),
        );
        fs::write(&cert, cert_pem).expect("write certificate");
        fs::write(&key, key_pem).expect("write key");
        // chronyd reads the key after dropping to its own user when started as root.
        let _ = fs::set_permissions(&key, fs::Permissions::from_mode(0o644));
        let _ = fs::create_dir(&dump);
        let _ = fs::set_permissions(&dump, fs::Permissions::from_mode(0o777));
        let extra = format!(
            "ntsserverkey {}\nntsservercert {}\nntsport {}\nntsdumpdir {}\n{more}",
            key.display(),
            cert.display(),
            ke_port.number(),
            dump.display()
        );
        let mut chrony = Chrony {
            dir,
            port: Port::free(),
            shift: None,
            daemon: None,
            extra,
            ke_port: Some(ke_port),
        };
        chrony.restart(shift).then_some(chrony)
    }

    /// `nts://localhost:KEPORT` for an NTS server (panics otherwise).
    pub fn nts_uri(&self) -> String {
        let port = self.ke_port.as_ref().expect("an NTS chronyd").number();
        format!("nts://localhost:{port}")
    }

    /// The NTS-KE port of an NTS server (panics otherwise).
    pub fn ke_port(&self) -> u16 {
        self.ke_port.as_ref().expect("an NTS chronyd").number()
    }

    /// Starts one chronyd per shift.
    pub fn start_all(shifts: &[Option<&str>]) -> Option<Vec<Chrony>> {
        shifts.iter().map(|s| Chrony::start(*s)).collect()
    }

    /// Stops chronyd and starts it again on the same port with a new shift.
    /// `false`: libfaketime is missing and the test should return.
    #[must_use]
    pub fn restart(&mut self, shift: Option<&str>) -> bool {
        if let Some(mut d) = self.daemon.take() {
            d.stop();
        }
        let dir = self.dir.path();
        let conf = dir.join("chrony.conf");
        let text = format!(
            "port {port}\n\
             bindaddress 127.0.0.1\n\
             allow 127.0.0.1\n\
             local stratum 3\n\
             cmdport 0\n\
             bindcmdaddress /\n\
             pidfile {dir}/chronyd.pid\n\
             driftfile {dir}/chrony.drift\n\
             {extra}",
            port = self.port.number(),
            dir = dir.display(),
            extra = self.extra,
        );
        fs::write(&conf, text).expect("write chrony.conf");

        let mut cmd = Command::new(locate("chronyd").expect("checked by start"));
        // -d: foreground, -x: leave the system clock alone.
        cmd.arg("-d").arg("-x");
        if !is_root() {
            // chrony ≥ 4.1 runs as an ordinary user when asked to.
            cmd.arg("-U");
        }
        cmd.arg("-f").arg(&conf);
        if let Some(shift) = shift {
            let Some(env) = faketime_env(shift) else {
                return false;
            };
            cmd.envs(env);
        }
        self.shift = shift.map(str::to_string);
        self.daemon = Some(Daemon::spawn(cmd, dir.join("chronyd.log")));
        self.wait_until_serving();
        true
    }

    fn wait_until_serving(&mut self) {
        let what = format!("chronyd on port {} (shift {:?})", self.port(), self.shift);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port()));
        let deadline = Instant::now() + PEER_START_BOUND;
        let mut last = String::from("no attempt");
        while Instant::now() < deadline {
            if let Some(d) = self.daemon.as_mut() {
                d.assert_alive(&what);
            }
            match sntp_query(addr, Duration::from_millis(200)) {
                Ok(reply) if reply.leap != 3 && (1..16).contains(&reply.stratum) => {
                    self.check_shift(&what, reply.offset);
                    return;
                }
                Ok(reply) => last = format!("not synchronised yet: {reply:?}"),
                Err(e) => last = e,
            }
            thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{what} did not answer within {PEER_START_BOUND:?} ({last}); log:\n{}",
            self.log()
        );
    }

    /// A peer that does not show its shift would make every test on it fail for
    /// a reason far from the assertion; say so here.
    fn check_shift(&self, what: &str, offset: f64) {
        let Some(expected) = shift_seconds(self.shift.as_deref()) else {
            return;
        };
        // Below ~1 s chronyd's receive timestamp stays unshifted (see the type's docs).
        if expected != 0.0 && expected.abs() < 1.1 {
            return;
        }
        assert!(
            // Generous: this only tells a shifted peer from an unshifted one, and
            // the probe's own timing suffers on a loaded CI machine.
            (offset - expected).abs() < 0.5,
            "{what} answers with offset {offset:+.6} s; libfaketime did not take effect. Log:\n{}",
            self.log()
        );
    }

    /// Stops chronyd (the port stays reserved); [`Chrony::restart`] brings it back.
    pub fn stop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.stop();
        }
    }

    /// The UDP port.
    pub fn port(&self) -> u16 {
        self.port.number()
    }

    /// `ntp://127.0.0.1:PORT`, as skewguard spells the source.
    pub fn uri(&self) -> String {
        self.port.ntp_uri()
    }

    /// The shift chronyd runs with.
    pub fn shift(&self) -> Option<&str> {
        self.shift.as_deref()
    }

    /// chronyd's output so far.
    pub fn log(&self) -> String {
        self.daemon
            .as_ref()
            .map(Daemon::log_text)
            .unwrap_or_default()
    }
}

/// Waits until a web server on `port` answers with a `Date`, panicking with
/// its log if it exits or does not answer within [`PEER_START_BOUND`], or if
/// its `Date` shows that a libfaketime `shift` did not take effect.
fn wait_for_date(port: u16, what: &str, shift: Option<&str>, mut daemon: Option<&mut Daemon>) {
    let deadline = Instant::now() + PEER_START_BOUND;
    let mut last = String::from("no attempt");
    let log = |d: &Option<&mut Daemon>| d.as_ref().map(|d| d.log_text()).unwrap_or_default();
    while Instant::now() < deadline {
        if let Some(d) = daemon.as_mut() {
            d.assert_alive(what);
        }
        match http_date_offset(port) {
            Ok(offset) => {
                // The Date header has whole seconds; a shift that did not take
                // effect still shows.
                if let Some(expected) = shift_seconds(shift) {
                    assert!(
                        (offset - expected).abs() < 1.5,
                        "{what} serves a Date {offset:+.3} s off; libfaketime did not take effect. Log:\n{}",
                        log(&daemon)
                    );
                }
                return;
            }
            Err(e) => last = e,
        }
        thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "{what} did not answer within {PEER_START_BOUND:?} ({last}); log:\n{}",
        log(&daemon)
    );
}

/// The `*_temp_path` lines an nginx config needs so that every path nginx
/// would otherwise take from its build (/var/lib/nginx/…) lives in the temp
/// dir and it runs as any user: only for the modules this build has.
fn nginx_temp_paths(nginx: &Path) -> String {
    let build = Command::new(nginx)
        .arg("-V")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        .unwrap_or_default();
    let mut temp_paths = String::from("client_body_temp_path body;\n");
    for module in ["proxy", "fastcgi", "uwsgi", "scgi"] {
        if !build.contains(&format!("--without-http_{module}_module")) {
            temp_paths += &format!("{module}_temp_path {module};\n");
        }
    }
    temp_paths
}

// ---------------------------------------------------------------------------
// Other web servers for the Date header

/// A Debian web server whose `Date` header skewguard reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WebKind {
    /// apache2 (event MPM, one process: `-X`): a live clock.
    Apache,
    /// lighttpd: a second refreshed when its *monotonic* second ticks.
    Lighttpd,
    /// `python3 -m http.server`: a live clock.
    PythonHttp,
    /// nginx with `timer_resolution` of this many milliseconds: a clock
    /// refreshed that often.
    NginxTimer(u32),
}

impl WebKind {
    /// The program and the Debian package that has it.
    fn program(self) -> (&'static str, &'static str) {
        match self {
            WebKind::Apache => ("apache2", "install apache2"),
            WebKind::Lighttpd => ("lighttpd", "install lighttpd"),
            WebKind::PythonHttp => ("python3", "install python3"),
            WebKind::NginxTimer(_) => ("nginx", "install nginx-light"),
        }
    }

    /// A short name for messages and benchmark lines.
    pub fn name(self) -> String {
        match self {
            WebKind::Apache => "apache2".into(),
            WebKind::Lighttpd => "lighttpd".into(),
            WebKind::PythonHttp => "python3 -m http.server".into(),
            WebKind::NginxTimer(ms) => format!("nginx timer_resolution {ms}ms"),
        }
    }
}

/// One of [`WebKind`] on `http://127.0.0.1:PORT/`, its realtime clock shifted
/// by libfaketime while its monotonic clock is left alone
/// (`FAKETIME_DONT_FAKE_MONOTONIC=1`), as on a real host whose clock is off:
/// shifting both would hide lighttpd's lag. Killed on drop.
pub struct WebServer {
    dir: TempDir,
    port: Port,
    kind: WebKind,
    daemon: Option<Daemon>,
}

impl WebServer {
    /// Starts the server and waits until it answers. `None`: the program or
    /// libfaketime is missing and the test should return (see [`prerequisite`]).
    pub fn start(kind: WebKind, shift: Option<&str>) -> Option<WebServer> {
        let (program, remedy) = kind.program();
        if !prerequisite(program, remedy) {
            return None;
        }
        let program = locate(program)?;
        let dir = TempDir::new("web");
        let port = Port::free();
        let www = dir.path().join("www");
        fs::create_dir_all(&www).expect("create the document root");
        fs::write(www.join("index.html"), "ok\n").expect("write index.html");
        // Servers that drop root privileges must still read their files.
        let _ = fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755));
        let _ = fs::set_permissions(&www, fs::Permissions::from_mode(0o755));
        let d = dir.path().display();
        let n = port.number();
        let mut cmd = Command::new(&program);
        match kind {
            WebKind::Apache => {
                let modules = "/usr/lib/apache2/modules";
                let conf = dir.path().join("apache2.conf");
                fs::write(
                    &conf,
                    format!(
                        "ServerRoot {d}\nListen 127.0.0.1:{n}\nServerName localhost\n\
                         PidFile {d}/apache2.pid\nErrorLog {d}/error.log\nMutex file:{d} default\n\
                         LoadModule mpm_event_module {modules}/mod_mpm_event.so\n\
                         LoadModule authz_core_module {modules}/mod_authz_core.so\n\
                         DocumentRoot {d}/www\n"
                    ),
                )
                .expect("write apache2.conf");
                // -X: one process in the foreground. With -DFOREGROUND the event
                // MPM forks children that outlive a killed parent.
                cmd.arg("-f").arg(&conf).arg("-X");
            }
            WebKind::Lighttpd => {
                let conf = dir.path().join("lighttpd.conf");
                fs::write(
                    &conf,
                    format!(
                        "server.document-root = \"{d}/www\"\nserver.bind = \"127.0.0.1\"\nserver.port = {n}\n"
                    ),
                )
                .expect("write lighttpd.conf");
                cmd.arg("-D").arg("-f").arg(&conf);
            }
            WebKind::PythonHttp => {
                cmd.args(["-m", "http.server", "--bind", "127.0.0.1"])
                    .arg(n.to_string())
                    .arg("--directory")
                    .arg(&www);
            }
            WebKind::NginxTimer(ms) => {
                let conf = dir.path().join("nginx.conf");
                fs::write(
                    &conf,
                    format!(
                        "daemon off;\nmaster_process off;\nenv FAKETIME;\nenv LD_PRELOAD;\n\
                         env FAKETIME_DONT_FAKE_MONOTONIC;\ntimer_resolution {ms}ms;\n\
                         pid nginx.pid;\nerror_log error.log;\nevents {{ worker_connections 64; }}\n\
                         http {{\naccess_log off;\n{}server {{ listen 127.0.0.1:{n}; location / {{ return 204; }} }}\n}}\n",
                        nginx_temp_paths(&program)
                    ),
                )
                .expect("write nginx.conf");
                cmd.arg("-p")
                    .arg(format!("{d}/"))
                    .arg("-e")
                    .arg(dir.path().join("error.log"))
                    .arg("-c")
                    .arg(&conf);
            }
        }
        if let Some(shift) = shift {
            cmd.envs(faketime_env(shift)?);
            cmd.env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        }
        let mut daemon = Daemon::spawn(cmd, dir.path().join("server.log"));
        let what = format!("{} on port {n} (shift {shift:?})", kind.name());
        wait_for_date(n, &what, shift, Some(&mut daemon));
        Some(WebServer {
            dir,
            port,
            kind,
            daemon: Some(daemon),
        })
    }

    /// `http://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port.number())
    }

    /// Which server this is.
    pub fn kind(&self) -> WebKind {
        self.kind
    }

    /// The server's output and error log so far.
    pub fn log(&self) -> String {
        server_log(self.daemon.as_ref(), &self.dir)
    }
}

// ---------------------------------------------------------------------------
// A minimal SNTP client, to know when a peer is up and what it serves

/// What an NTP server answered to one client query.
#[derive(Debug, Clone, Copy)]
pub struct SntpReply {
    /// Leap indicator (3: unsynchronised).
    pub leap: u8,
    /// Stratum (0: kiss-o'-death or unspecified).
    pub stratum: u8,
    /// Reference minus local, in seconds (RFC 5905 on-wire offset).
    pub offset: f64,
    /// Round-trip delay, in seconds.
    pub delay: f64,
}

/// Sends one SNTPv4 client request to `addr` and waits at most `timeout` for the
/// reply to it.
pub fn sntp_query(addr: SocketAddr, timeout: Duration) -> Result<SntpReply, String> {
    let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    socket.connect(addr).map_err(|e| format!("connect: {e}"))?;
    let mut request = [0u8; 48];
    request[0] = 0x23; // LI 0, version 4, mode 3 (client)
    let t1 = SystemTime::now();
    let t1_ntp = to_ntp(t1);
    request[40..48].copy_from_slice(&t1_ntp.to_be_bytes());
    socket.send(&request).map_err(|e| format!("send: {e}"))?;

    let deadline = Instant::now() + timeout;
    let mut reply = [0u8; 512];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("no reply within {timeout:?}"));
        }
        socket
            .set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        let n = socket.recv(&mut reply).map_err(|e| format!("recv: {e}"))?;
        let t4 = SystemTime::now();
        // Mode 4 (server) answering our transmit timestamp; anything else is stray.
        if n < 48 || reply[0] & 0x7 != 4 || reply[24..32] != t1_ntp.to_be_bytes() {
            continue;
        }
        let stamp = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&reply[i..i + 8]);
            from_ntp(u64::from_be_bytes(b))
        };
        let (t1, t2, t3, t4) = (unix_secs(t1), stamp(32), stamp(40), unix_secs(t4));
        return Ok(SntpReply {
            leap: reply[0] >> 6,
            stratum: reply[1],
            offset: ((t2 - t1) + (t3 - t4)) / 2.0,
            delay: (t4 - t1) - (t3 - t2),
        });
    }
}

const NTP_UNIX_DELTA: u64 = 2_208_988_800;

fn unix_secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn to_ntp(t: SystemTime) -> u64 {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() + NTP_UNIX_DELTA;
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

fn from_ntp(stamp: u64) -> f64 {
    let secs = (stamp >> 32) as f64 - NTP_UNIX_DELTA as f64;
    secs + (stamp & 0xffff_ffff) as f64 / 4_294_967_296.0
}

// ---------------------------------------------------------------------------
// nginx

/// nginx answering `204 No Content` (with a `Date` header) on
/// `http://127.0.0.1:PORT/`, its clock optionally shifted by libfaketime.
pub struct Nginx {
    dir: TempDir,
    port: Port,
    shift: Option<String>,
    daemon: Option<Daemon>,
}

impl Nginx {
    /// Starts nginx and waits until it answers. `None`: nginx or libfaketime is
    /// missing and the test should return (see [`prerequisite`]).
    pub fn start(shift: Option<&str>) -> Option<Nginx> {
        if !prerequisite("nginx", "install nginx-light") {
            return None;
        }
        let mut nginx = Nginx {
            dir: TempDir::new("nginx"),
            port: Port::free(),
            shift: None,
            daemon: None,
        };
        nginx.restart(shift).then_some(nginx)
    }

    /// Stops nginx and starts it again on the same port with a new shift.
    /// `false`: libfaketime is missing and the test should return.
    #[must_use]
    pub fn restart(&mut self, shift: Option<&str>) -> bool {
        if let Some(mut d) = self.daemon.take() {
            d.stop();
        }
        let dir = self.dir.path();
        let nginx = locate("nginx").expect("checked by start");
        let temp_paths = nginx_temp_paths(&nginx);
        let conf = dir.join("nginx.conf");
        let text = format!(
            "daemon off;\n\
             # One process, so that killing it on drop leaves no worker behind.\n\
             master_process off;\n\
             env FAKETIME;\n\
             env LD_PRELOAD;\n\
             pid nginx.pid;\n\
             error_log error.log;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n\
             access_log off;\n\
             {temp_paths}\
             server {{ listen 127.0.0.1:{port}; location / {{ return 204; }} }}\n\
             }}\n",
            port = self.port.number(),
        );
        fs::write(&conf, text).expect("write nginx.conf");

        let mut cmd = Command::new(nginx);
        // -p: relative paths in the config resolve here; -e: the error log before the
        // config is read (the built-in default may not be writable).
        cmd.arg("-p")
            .arg(format!("{}/", dir.display()))
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&conf);
        if let Some(shift) = shift {
            let Some(env) = faketime_env(shift) else {
                return false;
            };
            cmd.envs(env);
        }
        self.shift = shift.map(str::to_string);
        self.daemon = Some(Daemon::spawn(cmd, dir.join("nginx.log")));
        self.wait_until_serving();
        true
    }

    fn wait_until_serving(&mut self) {
        let what = format!("nginx on port {} (shift {:?})", self.port(), self.shift);
        wait_for_date(
            self.port(),
            &what,
            self.shift.as_deref(),
            self.daemon.as_mut(),
        );
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port.number()
    }

    /// `http://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port.number())
    }

    /// The shift nginx runs with.
    pub fn shift(&self) -> Option<&str> {
        self.shift.as_deref()
    }

    /// nginx's output and error log so far.
    pub fn log(&self) -> String {
        server_log(self.daemon.as_ref(), &self.dir)
    }
}

/// One `HEAD /` to `127.0.0.1:port`: the server's `Date` minus the local clock at
/// the midpoint of the exchange, in seconds (±1 s: the header has whole seconds).
pub fn http_date_offset(port: u16) -> Result<f64, String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200))
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .map_err(|e| e.to_string())?;
    let sent = SystemTime::now();
    stream
        .write_all(b"HEAD / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|e| format!("receive: {e}"))?;
    let received = SystemTime::now();
    let response = String::from_utf8_lossy(&response);
    let date = response
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("date").then(|| value.trim())
        })
        .ok_or_else(|| format!("no Date header in {response:?}"))?;
    let date = httpdate::parse_http_date(date).map_err(|e| format!("Date {date:?}: {e}"))?;
    let local = (unix_secs(sent) + unix_secs(received)) / 2.0;
    Ok(unix_secs(date) - local)
}

// ---------------------------------------------------------------------------
// Running the binary

/// What one run of `skewguard` produced.
#[derive(Debug)]
pub struct Output {
    /// Exit code; `None` if a signal ended the process.
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Standard output parsed as JSON, if it is exactly one JSON value.
    pub json: Option<serde_json::Value>,
    /// Wall time of the run.
    pub elapsed: Duration,
}

/// Removes every `SKEWGUARD_*` variable of the test's own environment from
/// `cmd`, so settings of whoever runs the tests cannot leak into them.
pub fn clear_skewguard_env(cmd: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SKEWGUARD_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// The built binary with `args` and a clean `SKEWGUARD_*` environment.
pub fn skewguard(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_skewguard"));
    cmd.args(args);
    clear_skewguard_env(&mut cmd);
    cmd
}

/// A running `skewguard serve` on `127.0.0.1:PORT` logging at info level to a
/// file of its own; killed on drop.
pub struct Serve {
    child: Child,
    port: Port,
    dir: TempDir,
}

/// How long `serve` may take to start listening.
pub const SERVE_START_BOUND: Duration = Duration::from_secs(5);

impl Serve {
    /// Starts `serve` with a clean `SKEWGUARD_*` environment plus `envs`, and
    /// waits until it accepts connections.
    pub fn start(envs: &[(&str, &str)]) -> Serve {
        Serve::start_command(skewguard(&["serve"]), envs)
    }

    /// [`Serve::start`] under a wrapper command, e.g. `["prlimit", "--nofile=1024", "--"]`.
    pub fn start_wrapped(wrapper: &[&str], envs: &[(&str, &str)]) -> Serve {
        let Some((program, args)) = wrapper.split_first() else {
            return Serve::start(envs);
        };
        let mut c = Command::new(program);
        c.args(args)
            .arg(env!("CARGO_BIN_EXE_skewguard"))
            .arg("serve");
        clear_skewguard_env(&mut c);
        Serve::start_command(c, envs)
    }

    /// [`Serve::start`] for a command that ends up running `skewguard serve`
    /// (through `unshare`, say); the caller cleans its environment.
    pub fn start_command(mut cmd: Command, envs: &[(&str, &str)]) -> Serve {
        let port = Port::free();
        let dir = TempDir::new("serve");
        let log = File::create(dir.path().join("serve.log")).expect("create serve.log");
        cmd.env("SKEWGUARD_LISTEN", format!("127.0.0.1:{}", port.number()))
            .env("SKEWGUARD_LOG", "info")
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let child = cmd.spawn().expect("start skewguard serve");
        let mut serve = Serve { child, port, dir };
        let deadline = Instant::now() + SERVE_START_BOUND;
        while TcpStream::connect(serve.addr()).is_err() {
            if let Ok(Some(status)) = serve.child.try_wait() {
                panic!("serve exited early ({status}):\n{}", serve.log());
            }
            assert!(
                Instant::now() < deadline,
                "serve did not listen within {SERVE_START_BOUND:?}:\n{}",
                serve.log()
            );
            thread::sleep(Duration::from_millis(10));
        }
        serve
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port.number()))
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr())
    }

    /// `SKEWGUARD_LISTEN` as `serve` has it.
    pub fn listen(&self) -> String {
        self.addr().to_string()
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    /// Sends `signal` and waits (at most 5 s) for the exit; returns the exit code
    /// and how long it took.
    pub fn stop(&mut self, signal: libc::c_int) -> (Option<i32>, Duration) {
        let pid = self.child.id() as libc::pid_t;
        let sent = Instant::now();
        // SAFETY: kill(2) with our own child's pid; no memory is involved.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill");
        while sent.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(status)) = self.child.try_wait() {
                return (status.code(), sent.elapsed());
            }
            thread::sleep(Duration::from_millis(5));
        }
        panic!(
            "serve still running 5 s after signal {signal}:\n{}",
            self.log()
        );
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the built binary with `args`, the test's environment minus every
/// `SKEWGUARD_*` variable, plus `envs`; stdin is empty. Panics (with the output so
/// far) if the run takes longer than [`RUN_BOUND`].
pub fn run(args: &[&str], envs: &[(&str, &str)]) -> Output {
    run_bounded(args, envs, RUN_BOUND)
}

/// [`run`] with another bound.
pub fn run_bounded(args: &[&str], envs: &[(&str, &str)], bound: Duration) -> Output {
    let mut cmd = skewguard(args);
    cmd.envs(envs.iter().copied());
    run_command(cmd, &format!("skewguard {args:?}"), bound)
}

/// Runs `cmd` (stdin empty, stdout and stderr collected) like [`run_bounded`]:
/// for the binary started through a wrapper (`unshare`, `sh -c`); `what` names
/// it in the panic when it outlives `bound`.
pub fn run_command(mut cmd: Command, what: &str, bound: Duration) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));

    let (tx, rx) = mpsc::channel();
    if let Some(pipe) = child.stdout.take() {
        collect(pipe, 1, tx.clone());
    }
    if let Some(pipe) = child.stderr.take() {
        collect(pipe, 2, tx);
    }

    let deadline = started + bound;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("waiting for skewguard: {e}"),
        }
    };
    let elapsed = started.elapsed();

    // Grandchildren may hold the pipes open; wait for them only briefly.
    let (mut stdout, mut stderr) = (String::new(), String::new());
    let drain_until = Instant::now() + Duration::from_secs(2);
    for _ in 0..2 {
        let left = drain_until.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((1, text)) => stdout = text,
            Ok((_, text)) => stderr = text,
            Err(_) => break,
        }
    }
    let json = serde_json::from_str(&stdout).ok();
    let output = Output {
        code: status.and_then(|s| s.code()),
        stdout,
        stderr,
        json,
        elapsed,
    };
    if status.is_none() {
        panic!("{what} did not finish within {bound:?} and was killed\n{output}");
    }
    output
}

/// Reads a pipe to its end on a thread of its own and sends `(which, text)`.
fn collect(mut pipe: impl Read + Send + 'static, which: u8, tx: mpsc::Sender<(u8, String)>) {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        let _ = tx.send((which, String::from_utf8_lossy(&bytes).into_owned()));
    });
}

impl Output {
    /// The JSON report; panics (showing the whole output) if stdout is not one JSON object.
    pub fn report(&self) -> &serde_json::Value {
        match &self.json {
            Some(v) if v.is_object() => v,
            _ => panic!("stdout is not one JSON object\n{self}"),
        }
    }

    /// `verdict` of the JSON report.
    pub fn verdict(&self) -> &str {
        self.report()["verdict"]
            .as_str()
            .unwrap_or_else(|| panic!("no string `verdict`\n{self}"))
    }

    /// A number field of the JSON report (`offset_seconds`, …); `None` if null.
    pub fn number(&self, field: &str) -> Option<f64> {
        let v = &self.report()[field];
        if v.is_null() {
            return None;
        }
        Some(
            v.as_f64()
                .unwrap_or_else(|| panic!("`{field}` is neither a number nor null\n{self}")),
        )
    }

    /// The entry of the report's `sources` whose `source` is `uri`.
    pub fn source(&self, uri: &str) -> &serde_json::Value {
        self.report()["sources"]
            .as_array()
            .and_then(|all| all.iter().find(|s| s["source"] == uri))
            .unwrap_or_else(|| panic!("no entry for {uri} in `sources`\n{self}"))
    }

    /// The first line of stdout (the text report's headline).
    pub fn headline(&self) -> &str {
        self.stdout.lines().next().unwrap_or("")
    }

    /// Panics, showing the whole output, unless the process exited with `code`.
    pub fn assert_exit(&self, code: i32) {
        assert_eq!(self.code, Some(code), "unexpected exit code\n{self}");
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = self
            .code
            .map_or_else(|| "killed by a signal".to_string(), |c| format!("exit {c}"));
        write!(
            f,
            "--- {code} after {:.3?}\n--- stdout:\n{}\n--- stderr:\n{}\n---",
            self.elapsed, self.stdout, self.stderr
        )
    }
}

// ---------------------------------------------------------------------------
// HTTP and Prometheus tools

/// One HTTP response as [`http_get`] read it.
#[derive(Debug, Clone)]
pub struct HttpReply {
    /// Status code.
    pub status: u16,
    /// The head's header lines, as sent.
    pub head: String,
    /// The body.
    pub body: String,
}

impl HttpReply {
    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// `GET path` on a fresh connection to `addr` with extra request `headers`,
/// `Connection: close`, answered within 5 s. Panics on a transport error.
pub fn http_get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> HttpReply {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("GET {path} from {addr}: {e}"));
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("GET {path}: no end of head in {raw:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("GET {path}: bad status line in {head:?}"));
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    HttpReply {
        status,
        head: head.to_string(),
        body,
    }
}

/// The payload of a chunked body.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Runs `promtool ARGS` with `stdin` as its input, within `bound`; returns the
/// exit code and its stdout plus stderr. `None` when promtool is missing (the
/// test then returns, see [`prerequisite`]).
pub fn promtool(args: &[&str], stdin: &str, bound: Duration) -> Option<(Option<i32>, String)> {
    if !prerequisite(
        "promtool",
        "install prometheus (Debian ships promtool with it)",
    ) {
        return None;
    }
    let mut child = Command::new(locate("promtool")?)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promtool");
    let mut input = child.stdin.take().expect("promtool stdin");
    let stdin = stdin.to_string();
    let writer = thread::spawn(move || {
        let _ = input.write_all(stdin.as_bytes());
    });
    let (tx, rx) = mpsc::channel();
    collect(child.stdout.take().expect("stdout"), 1, tx.clone());
    collect(child.stderr.take().expect("stderr"), 2, tx);
    let deadline = Instant::now() + bound;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for promtool") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("promtool {args:?} took longer than {bound:?}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    let _ = writer.join();
    let mut out = String::new();
    while let Ok((_, text)) = rx.recv_timeout(Duration::from_secs(1)) {
        out.push_str(&text);
    }
    Some((status.code(), out))
}

/// A real Prometheus server (Debian's `prometheus`) on `127.0.0.1:PORT` with its
/// storage in a temp dir of its own, scraping `targets` as job `skewguard`
/// every second and evaluating `rules` (a rules file's text) every second.
/// Killed on drop.
pub struct Prometheus {
    dir: TempDir,
    port: Port,
    daemon: Daemon,
}

/// Writes `prometheus.yml` into `dir`: scrape and evaluate every second, the
/// rules of `rules.yml`, job `skewguard` with `targets`.
fn write_prometheus_config(dir: &Path, targets: &[SocketAddr]) {
    let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n  - rules.yml\n\
         scrape_configs:\n  - job_name: skewguard\n    static_configs:\n      - targets: [{}]\n",
        targets.join(", ")
    );
    fs::write(dir.join("prometheus.yml"), config).expect("write prometheus.yml");
}

/// How long Prometheus may take to answer its readiness endpoint.
const PROMETHEUS_START_BOUND: Duration = Duration::from_secs(20);

impl Prometheus {
    /// Starts Prometheus and waits until it is ready. `None`: prometheus is
    /// missing and the test should return (see [`prerequisite`]).
    pub fn start(targets: &[SocketAddr], rules: &str) -> Option<Prometheus> {
        if !prerequisite("prometheus", "install prometheus") {
            return None;
        }
        let dir = TempDir::new("prometheus");
        let port = Port::free();
        write_prometheus_config(dir.path(), targets);
        fs::write(dir.path().join("rules.yml"), rules).expect("write rules.yml");
        let mut cmd = Command::new(locate("prometheus")?);
        cmd.current_dir(dir.path())
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{}", port.number()))
            .arg("--log.level=warn");
        let daemon = Daemon::spawn(cmd, dir.path().join("prometheus.log"));
        let mut p = Prometheus { dir, port, daemon };
        let deadline = Instant::now() + PROMETHEUS_START_BOUND;
        loop {
            p.daemon.assert_alive("prometheus");
            if TcpStream::connect(p.addr()).is_ok()
                && http_get(p.addr(), "/-/ready", &[]).status == 200
            {
                return Some(p);
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready within {PROMETHEUS_START_BOUND:?}:\n{}",
                p.log()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Where its HTTP API listens.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port.number()))
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        self.daemon.log_text()
    }

    /// Replaces the scrape targets and reloads the configuration (SIGHUP), as
    /// service discovery does when targets come and go.
    pub fn set_targets(&mut self, targets: &[SocketAddr]) {
        write_prometheus_config(self.dir.path(), targets);
        self.daemon.assert_alive("prometheus");
        let pid = self.daemon.child.id() as libc::pid_t;
        // SAFETY: kill(2) with our own child's pid; no memory is involved.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0, "SIGHUP");
    }

    /// `GET /api/v1/<path>` (path and query already URL-encoded): the `data`
    /// of a successful answer. Panics on an error answer.
    pub fn api(&self, path: &str) -> serde_json::Value {
        let r = http_get(self.addr(), &format!("/api/v1/{path}"), &[]);
        let v: serde_json::Value = serde_json::from_str(&r.body)
            .unwrap_or_else(|e| panic!("/api/v1/{path}: {e}: {}", r.body));
        assert_eq!(v["status"], "success", "/api/v1/{path}: {v}");
        v["data"].clone()
    }
}

// ---------------------------------------------------------------------------
// Coverage runs: how many, and a record of each for bench/run.sh

/// Runs per case for the coverage tests (truth inside the interval every
/// time): `default`, or `SKEWGUARD_TEST_RUNS` when set (bench/run.sh asks for
/// more). Never fewer than one.
pub fn coverage_runs(default: usize) -> usize {
    std::env::var("SKEWGUARD_TEST_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
        .max(1)
}

/// `SKEWGUARD_HTTP_BUDGET` for the coverage tests: 600 ms (enough for a few
/// cuts, short enough for many runs), or `SKEWGUARD_TEST_HTTP_BUDGET` when set
/// (bench/run.sh gives the default 2 s, so its estimate figures are the real ones).
pub fn coverage_http_budget() -> String {
    std::env::var("SKEWGUARD_TEST_HTTP_BUDGET").unwrap_or_else(|_| "600ms".into())
}

/// Appends one run's numbers (seconds) as a JSON line to the file named by
/// `SKEWGUARD_COVERAGE_LOG`, if set: bench/run.sh summarises them. Tests
/// assert only that the truth is inside; the figures belong to the benchmark.
pub fn record_coverage(
    case: &str,
    truth: f64,
    offset: f64,
    uncertainty: f64,
    estimate: Option<f64>,
) {
    let Some(path) = std::env::var_os("SKEWGUARD_COVERAGE_LOG") else {
        return;
    };
    let line = serde_json::json!({
        "case": case,
        "truth": truth,
        "offset": offset,
        "uncertainty": uncertainty,
        "estimate": estimate,
        "inside": (offset - truth).abs() <= uncertainty,
    });
    if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(path) {
        use std::io::Write as _;
        let _ = writeln!(f, "{line}");
    }
}

/// A web server's captured output followed by the `error.log` in its directory.
fn server_log(daemon: Option<&Daemon>, dir: &TempDir) -> String {
    let mut log = daemon.map(Daemon::log_text).unwrap_or_default();
    log += &fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
    log
}

/// Reads one HTTP request head (up to the blank line) byte by byte, for the
/// in-process fake servers; `false` when the peer closed or failed first.
pub fn read_request_head(s: &mut impl std::io::Read) -> bool {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return false,
        }
    }
    true
}
