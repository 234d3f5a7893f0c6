//! HTTP proxies and what stands behind them, for the proxy and corporate-CA
//! tests: Debian's [`Tinyproxy`] and [`Squid`] on 127.0.0.1 with their own
//! configuration, log and pid files in the test's temp dir; [`NginxTls`],
//! nginx serving HTTPS with a certificate of [`Pki`] (made by `openssl`, as an
//! operator would: a CA and its leaves, self-signed `openssl req -x509` ones);
//! and [`MuteProxy`], an in-process proxy that accepts a `CONNECT` and never
//! answers. Each stops when dropped.

use std::fs;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::process::{Daemon, PEER_START_BOUND};
use super::{locate, prerequisite, Port, TempDir};

/// Waits until something accepts TCP connections on `port`; panics with `log`
/// after [`PEER_START_BOUND`].
fn wait_listening(port: u16, what: &str, daemon: &mut Daemon) {
    let until = Instant::now() + PEER_START_BOUND;
    while Instant::now() < until {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        daemon.assert_alive(what);
        thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "{what} did not listen within {PEER_START_BOUND:?}:\n{}",
        daemon.log_text()
    );
}

/// A directory others may write to: squid started as root works as user
/// `proxy` and must write its logs there.
fn shared_dir(parent: &Path, name: &str) -> PathBuf {
    let dir = parent.join(name);
    fs::create_dir_all(&dir).expect("create a log directory");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o1777)).expect("chmod a log directory");
    dir
}

// ---------------------------------------------------------------------------
// tinyproxy

/// tinyproxy on 127.0.0.1, logging every connection and request (`LogLevel Connect`).
pub struct Tinyproxy {
    dir: TempDir,
    port: Port,
    daemon: Daemon,
}

impl Tinyproxy {
    /// Starts tinyproxy, with Basic credentials if given. `None`: tinyproxy is
    /// missing and the test should return (see [`prerequisite`]).
    pub fn start(credentials: Option<(&str, &str)>) -> Option<Tinyproxy> {
        if !prerequisite("tinyproxy", "install tinyproxy") {
            return None;
        }
        let dir = TempDir::new("tinyproxy");
        let logs = shared_dir(dir.path(), "logs");
        let port = Port::free();
        let auth = credentials.map_or(String::new(), |(u, p)| format!("BasicAuth {u} {p}\n"));
        let conf = dir.path().join("tinyproxy.conf");
        fs::write(
            &conf,
            format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 30\nMaxClients 32\n\
                 LogFile \"{log}\"\nLogLevel Connect\nPidFile \"{pid}\"\n{auth}",
                port = port.number(),
                log = logs.join("tinyproxy.log").display(),
                pid = logs.join("tinyproxy.pid").display(),
            ),
        )
        .expect("write tinyproxy.conf");
        let mut cmd = Command::new(locate("tinyproxy").expect("checked"));
        cmd.arg("-d").arg("-c").arg(&conf);
        let mut daemon = Daemon::spawn(cmd, dir.path().join("stdout.log"));
        wait_listening(port.number(), "tinyproxy", &mut daemon);
        Some(Tinyproxy { dir, port, daemon })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port.number())
    }

    /// tinyproxy's own log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("logs/tinyproxy.log")).unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------
// squid

/// squid on 127.0.0.1, no cache, its access log in the temp dir; with Basic
/// credentials (checked by squid's `basic_ncsa_auth` against an htpasswd
/// file written with `openssl passwd -apr1`) if given.
pub struct Squid {
    dir: TempDir,
    port: Port,
    daemon: Daemon,
}

impl Squid {
    /// Starts squid. `None`: squid (or openssl) is missing and the test should return.
    pub fn start(credentials: Option<(&str, &str)>) -> Option<Squid> {
        if !prerequisite("squid", "install squid") || !prerequisite("openssl", "install openssl") {
            return None;
        }
        let dir = TempDir::new("squid");
        let logs = shared_dir(dir.path(), "logs");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let port = Port::free();
        let access = match credentials {
            Some((user, password)) => {
                let hash = Command::new("openssl")
                    .args(["passwd", "-apr1", password])
                    .output()
                    .expect("openssl passwd");
                let passwd = dir.path().join("passwd");
                fs::write(
                    &passwd,
                    format!("{user}:{}", String::from_utf8_lossy(&hash.stdout)),
                )
                .expect("write passwd");
                fs::set_permissions(&passwd, fs::Permissions::from_mode(0o644)).expect("chmod");
                format!(
                    "auth_param basic program /usr/lib/squid/basic_ncsa_auth {}\n\
                     auth_param basic realm skewguard-test\n\
                     acl users proxy_auth REQUIRED\n\
                     http_access allow localhost users\n",
                    passwd.display()
                )
            }
            None => "http_access allow localhost\n".to_string(),
        };
        let conf = dir.path().join("squid.conf");
        fs::write(
            &conf,
            format!(
                "http_port 127.0.0.1:{port}\n\
                 pid_filename {logs}/squid.pid\n\
                 access_log stdio:{logs}/access.log\n\
                 cache_log {logs}/cache.log\n\
                 cache_store_log none\n\
                 cache deny all\n\
                 coredump_dir {logs}\n\
                 shutdown_lifetime 0 seconds\n\
                 {access}\
                 http_access deny all\n",
                port = port.number(),
                logs = logs.display(),
            ),
        )
        .expect("write squid.conf");
        let mut cmd = Command::new(locate("squid").expect("checked"));
        // -N: foreground, no daemon; as root squid works as user `proxy`.
        cmd.arg("-N").arg("-f").arg(&conf);
        let mut daemon = Daemon::spawn(cmd, dir.path().join("stdout.log"));
        wait_listening(port.number(), "squid", &mut daemon);
        Some(Squid { dir, port, daemon })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port.number())
    }

    /// squid's access log so far (one line per request, written when it ends).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("logs/access.log")).unwrap_or_default()
    }

    /// The access log once a line containing `want` is there (squid writes a
    /// tunnel's line when it closes), or what there is after a few seconds.
    pub fn log_with(&self, want: &str) -> String {
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            let log = self.log();
            if log.contains(want) || Instant::now() > until {
                return log;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

// ---------------------------------------------------------------------------
// Certificates made with openssl

/// Certificates made with `openssl`, in a directory of their own: a CA
/// (`ca.pem`), leaves it signs, and self-signed `openssl req -x509` ones
/// (which Debian's openssl marks `CA:TRUE`).
pub struct Pki {
    dir: TempDir,
}

impl Pki {
    /// A fresh CA. `None`: openssl is missing and the test should return.
    pub fn new() -> Option<Pki> {
        if !prerequisite("openssl", "install openssl") {
            return None;
        }
        let pki = Pki {
            dir: TempDir::new("pki"),
        };
        pki.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "30",
            "-subj",
            "/CN=skewguard proxy test CA",
        ]);
        Some(pki)
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A path in the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The CA certificate.
    pub fn ca(&self) -> PathBuf {
        self.path("ca.pem")
    }

    /// A leaf (`CA:FALSE`) signed by the CA for the names in `san`
    /// (`DNS:localhost,IP:127.0.0.1`): `NAME.pem` and `NAME.key`.
    pub fn leaf(&self, name: &str, san: &str) -> (PathBuf, PathBuf) {
        let (key, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        self.openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={name}"),
        ]);
        let ext = format!("{name}.ext");
        fs::write(
            self.path(&ext),
            format!("basicConstraints=critical,CA:FALSE\nsubjectAltName={san}\n"),
        )
        .expect("write extensions");
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            &ext,
            "-out",
            &pem,
        ]);
        (self.path(&pem), self.path(&key))
    }

    /// A self-signed certificate for `localhost` and `127.0.0.1`, made the
    /// usual way (`openssl req -x509`, so `CA:TRUE`): `NAME.pem`, `NAME.key`.
    pub fn self_signed(&self, name: &str) -> (PathBuf, PathBuf) {
        let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &pem,
            "-days",
            "30",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ]);
        (self.path(&pem), self.path(&key))
    }

    /// A directory holding the CA under its hashed name (`openssl rehash`),
    /// as `SSL_CERT_DIR` expects.
    pub fn hashed_dir(&self) -> PathBuf {
        let dir = self.path("certs");
        fs::create_dir_all(&dir).expect("create certs/");
        fs::copy(self.ca(), dir.join("corporate-ca.pem")).expect("copy the CA");
        self.openssl(&["rehash", "certs"]);
        dir
    }
}

// ---------------------------------------------------------------------------
// nginx with TLS

/// nginx serving HTTPS (`204`, with `Date`) on 127.0.0.1 with a given
/// certificate and key, logging each request.
pub struct NginxTls {
    dir: TempDir,
    port: Port,
    daemon: Daemon,
}

impl NginxTls {
    /// Starts nginx. `None`: nginx is missing and the test should return.
    pub fn start(cert: &Path, key: &Path) -> Option<NginxTls> {
        if !prerequisite("nginx", "install nginx-light") {
            return None;
        }
        let dir = TempDir::new("nginx-tls");
        let port = Port::free();
        let conf = dir.path().join("nginx.conf");
        fs::write(
            &conf,
            format!(
                "daemon off;\nmaster_process off;\npid nginx.pid;\nerror_log error.log;\n\
                 events {{ worker_connections 64; }}\n\
                 http {{\n\
                 access_log access.log;\n\
                 client_body_temp_path tmp; proxy_temp_path tmp; fastcgi_temp_path tmp;\n\
                 uwsgi_temp_path tmp; scgi_temp_path tmp;\n\
                 server {{ listen 127.0.0.1:{port} ssl; ssl_certificate {cert}; ssl_certificate_key {key};\n\
                 location / {{ return 204; }} }}\n}}\n",
                port = port.number(),
                cert = cert.display(),
                key = key.display(),
            ),
        )
        .expect("write nginx.conf");
        let mut cmd = Command::new(locate("nginx").expect("checked"));
        cmd.arg("-p")
            .arg(format!("{}/", dir.path().display()))
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(&conf);
        let mut daemon = Daemon::spawn(cmd, dir.path().join("stdout.log"));
        wait_listening(port.number(), "nginx (TLS)", &mut daemon);
        Some(NginxTls { dir, port, daemon })
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port.number()
    }

    /// `https://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}/", self.port.number())
    }

    /// nginx's access log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------
// A proxy that never answers

/// Accepts connections on 127.0.0.1, reads what comes, and never answers:
/// a proxy that takes a `CONNECT` and then hangs. Records what it read.
pub struct MuteProxy {
    port: u16,
    seen: Arc<Mutex<String>>,
    stop: Arc<AtomicBool>,
}

impl Drop for MuteProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accepting thread so it sees the flag and closes the listener.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

impl MuteProxy {
    /// Starts the listener and its thread (each connection is held until the
    /// peer closes it; the listener closes when this is dropped).
    pub fn start() -> MuteProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a mute proxy");
        let port = listener.local_addr().expect("local address").port();
        let seen = Arc::new(Mutex::new(String::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let log = seen.clone();
        let stopping = stop.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { break };
                let log = log.clone();
                thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = conn.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        if let Ok(mut l) = log.lock() {
                            l.push_str(&String::from_utf8_lossy(&buf[..n]));
                        }
                    }
                });
            }
        });
        MuteProxy { port, seen, stop }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Everything clients sent.
    pub fn log(&self) -> String {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}
