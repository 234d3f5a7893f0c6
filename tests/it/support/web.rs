//! Web servers whose HTTP `Date` header skewguard reads: nginx ([`Nginx`]), the
//! other Debian servers ([`WebServer`]), each optionally under libfaketime,
//! and what the tests' own fake HTTP servers share.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use super::faketime::{faketime_env, shift_seconds};
use super::process::{Daemon, PEER_START_BOUND};
use super::sntp::unix_secs;
use super::{locate, prerequisite, Port, TempDir};

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
// What both start with

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

/// A web server's captured output followed by the `error.log` in its directory.
fn server_log(daemon: Option<&Daemon>, dir: &TempDir) -> String {
    let mut log = daemon.map(Daemon::log_text).unwrap_or_default();
    log += &fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
    log
}

// ---------------------------------------------------------------------------
// The tests' own fake HTTP servers

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
