//! Least privilege: `check` and `serve` do their whole job as an unprivileged
//! user (uid/gid 65534, no supplementary groups, no capabilities), and what
//! `serve` shows on its HTTP endpoints gives away neither the environment nor
//! any address but the configured sources.
//!
//! Switching users needs root and `setpriv` (util-linux); without root the tests
//! print `SKIPPED: …` and pass, since an ordinary user is already unprivileged.
//! Everything talks only to 127.0.0.1.

use crate::support;

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::{current_test, locate, prerequisite, Chrony, Output, Port, TempDir, RUN_BOUND};

/// The unprivileged user and group (`nobody`/`nogroup` on Debian).
const NOBODY: u32 = 65534;

/// How long `serve` may take to give its first verdict.
const FIRST_VERDICT_BOUND: Duration = Duration::from_secs(10);

/// `setpriv` and root, or `None` with the skip reason printed.
fn setpriv() -> Option<PathBuf> {
    if !prerequisite("setpriv", "install util-linux") {
        return None;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: {}: not root, so there is no other user to switch to (run as root to test least privilege)",
            current_test()
        );
        return None;
    }
    locate("setpriv")
}

/// The built binary, copied where the unprivileged user can reach it (the
/// checkout may sit under a directory only root can enter).
fn binary_for_nobody(dir: &TempDir) -> PathBuf {
    let copy = dir.path().join("skewguard");
    fs::copy(env!("CARGO_BIN_EXE_skewguard"), &copy).expect("copy the binary");
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).expect("chmod the binary");
    copy
}

/// `setpriv … BINARY ARGS` as uid/gid 65534 without groups, with a clean
/// `SKEWGUARD_*` environment plus `envs`.
fn as_nobody(setpriv: &Path, binary: &Path, args: &[&str], envs: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(setpriv);
    cmd.arg(format!("--reuid={NOBODY}"))
        .arg(format!("--regid={NOBODY}"))
        .arg("--clear-groups")
        .arg("--no-new-privs")
        .arg("--")
        .arg(binary)
        .args(args);
    support::clear_skewguard_env(&mut cmd);
    // A working directory the user may enter.
    cmd.current_dir("/").envs(envs.iter().copied());
    cmd
}

/// Runs `cmd` to its end (at most [`RUN_BOUND`]) and collects its output.
fn run_to_end(mut cmd: Command) -> Output {
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let pipes = (child.stdout.take(), child.stderr.take());
    let readers = [pipes.0.map(read_all), pipes.1.map(read_all)];
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if started.elapsed() > RUN_BOUND {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {RUN_BOUND:?}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    let [stdout, stderr] =
        readers.map(|r| r.map(|t| t.join().unwrap_or_default()).unwrap_or_default());
    Output {
        code: status.code(),
        json: serde_json::from_str(&stdout).ok(),
        stdout,
        stderr,
        elapsed: started.elapsed(),
    }
}

fn read_all(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// A value nobody else would print: `canary-<label>-<hex>`.
fn canary(label: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "canary-{label}-{:x}",
        nanos ^ u128::from(std::process::id()) << 64
    )
}

/// Secrets and paths a sidecar typically has in its environment.
struct Canaries {
    secret: String,
    key_id: String,
    ca_file: PathBuf,
    /// Keeps the CA file alive.
    _dir: TempDir,
}

impl Canaries {
    fn new() -> Canaries {
        let dir = TempDir::new("privilege-ca");
        let ca_file = dir.path().join(format!("{}.pem", canary("ca")));
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
            .expect("generate a certificate");
        fs::write(&ca_file, cert.cert.pem()).expect("write the CA file");
        fs::set_permissions(&ca_file, fs::Permissions::from_mode(0o644)).expect("chmod");
        Canaries {
            secret: canary("secret"),
            key_id: canary("keyid"),
            ca_file,
            _dir: dir,
        }
    }

    fn envs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_SECRET_ACCESS_KEY", self.secret.clone()),
            ("AWS_ACCESS_KEY_ID", self.key_id.clone()),
            ("SKEWGUARD_CA_FILE", self.ca_file.display().to_string()),
        ]
    }

    /// Panics if `text` (what `what` showed) holds any canary value.
    fn assert_absent(&self, what: &str, text: &str) {
        let ca_name = self
            .ca_file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for value in [&self.secret, &self.key_id, &ca_name] {
            assert!(
                !text.contains(value.as_str()),
                "{what} shows the environment value {value:?}:\n{text}"
            );
        }
        // The start of every canary, in case one is shown cut short.
        assert!(!text.contains("canary-"), "{what} shows a canary:\n{text}");
    }
}

/// Panics if `text` names an IPv4 address other than 127.0.0.1, or a
/// `127.0.0.1:PORT` whose port is not in `ports`.
fn assert_only_addresses(what: &str, text: &str, ports: &[u16]) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let starts_here = bytes[i].is_ascii_digit() && (i == 0 || !is_addr_char(bytes[i - 1]));
        if !starts_here {
            i += 1;
            continue;
        }
        let end = (i..bytes.len())
            .find(|&j| !is_addr_char(bytes[j]))
            .unwrap_or(bytes.len());
        let token = &text[i..end];
        i = end;
        let (host, port) = match token.split_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().ok()),
            None => (token, None),
        };
        if host.parse::<std::net::Ipv4Addr>().is_err() {
            continue;
        }
        assert_eq!(
            host, "127.0.0.1",
            "{what} names the address {token:?}, not a configured source:\n{text}"
        );
        if let Some(port) = port {
            assert!(
                ports.contains(&port),
                "{what} names {token:?}; the configured sources are on ports {ports:?}:\n{text}"
            );
        }
    }
}

fn is_addr_char(b: u8) -> bool {
    b.is_ascii_digit() || b == b'.' || b == b':'
}

// ---------------------------------------------------------------------------

#[test]
fn check_as_nobody_gives_the_right_verdict_and_shows_no_environment() {
    let _room = support::Room::Timing.enter();
    let Some(setpriv) = setpriv() else {
        return;
    };
    let Some(chrony) = Chrony::start(Some("+1200")) else {
        return;
    };
    let dir = TempDir::new("privilege-check");
    let binary = binary_for_nobody(&dir);

    // The switch itself works, or every other assertion here means nothing.
    let who = Command::new(&setpriv)
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            "id",
            "-u",
        ])
        .output()
        .expect("run setpriv");
    assert_eq!(
        String::from_utf8_lossy(&who.stdout).trim(),
        "65534",
        "{who:?}"
    );

    let canaries = Canaries::new();
    let uri = chrony.uri();
    let mut envs: Vec<(&str, String)> = vec![
        ("SKEWGUARD_SOURCES", uri.clone()),
        ("SKEWGUARD_OUTPUT", "json".into()),
        ("SKEWGUARD_TIMEOUT", "2s".into()),
    ];
    envs.extend(canaries.envs());
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let out = run_to_end(as_nobody(&setpriv, &binary, &["check"], &envs));
    assert_eq!(out.verdict(), "fail", "{out}");
    out.assert_exit(1);
    let offset = out.number("offset_seconds").unwrap_or(f64::NAN);
    // Within 5 ms, or within the stated bound when load widened it.
    let bound = out.number("uncertainty_seconds").unwrap_or(0.0).max(0.005);
    assert!((offset - 1200.0).abs() <= bound, "offset {offset}\n{out}");
    assert_eq!(out.source(&uri)["status"], "ok", "{out}");
    canaries.assert_absent("check's output", &format!("{}\n{}", out.stdout, out.stderr));
    assert_only_addresses("check's JSON report", &out.stdout, &[chrony.port()]);

    // The text report too.
    let text_envs: Vec<(&str, &str)> = envs
        .iter()
        .map(|&(k, v)| {
            if k == "SKEWGUARD_OUTPUT" {
                (k, "text")
            } else {
                (k, v)
            }
        })
        .collect();
    let text = run_to_end(as_nobody(&setpriv, &binary, &["check"], &text_envs));
    text.assert_exit(1);
    assert!(text.stdout.starts_with("FAIL"), "{text}");
    canaries.assert_absent(
        "check's text output",
        &format!("{}\n{}", text.stdout, text.stderr),
    );
}

/// `serve` started through setpriv, killed on drop.
struct Serve {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Serve {
    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET path` over a fresh connection: status and the whole response
    /// (headers and body).
    fn get(&self, path: &str) -> Result<(u16, String), String> {
        let mut s = TcpStream::connect_timeout(&self.addr, Duration::from_millis(500))
            .map_err(|e| format!("connect: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(3)))
            .map_err(|e| e.to_string())?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .map_err(|e| format!("send: {e}"))?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)
            .map_err(|e| format!("receive: {e}"))?;
        let raw = String::from_utf8_lossy(&raw).into_owned();
        let status = raw
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("no status line in {raw:?}"))?;
        Ok((status, raw))
    }

    /// Whose process this is: the `Uid`, `Gid`, `Groups` and `CapEff` lines of
    /// /proc/PID/status.
    fn credentials(&self) -> Vec<String> {
        let status =
            fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .filter(|l| {
                ["Uid:", "Gid:", "Groups:", "CapEff:", "CapPrm:"]
                    .iter()
                    .any(|k| l.starts_with(k))
            })
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn serve_as_nobody_answers_and_its_endpoints_leak_nothing() {
    let _room = support::Room::Timing.enter();
    let Some(setpriv) = setpriv() else {
        return;
    };
    let Some(chrony) = Chrony::start(None) else {
        return;
    };
    let dir = TempDir::new("privilege-serve");
    let binary = binary_for_nobody(&dir);
    let canaries = Canaries::new();
    let port = Port::free();
    let listen = format!("127.0.0.1:{}", port.number());
    let uri = chrony.uri();
    let mut envs: Vec<(&str, String)> = vec![
        ("SKEWGUARD_SOURCES", uri.clone()),
        ("SKEWGUARD_LISTEN", listen.clone()),
        ("SKEWGUARD_INTERVAL", "2s".into()),
        ("SKEWGUARD_TIMEOUT", "1s".into()),
        ("SKEWGUARD_LOG", "debug".into()),
    ];
    envs.extend(canaries.envs());
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let log = dir.path().join("serve.log");
    let log_file = File::create(&log).expect("create serve.log");
    let mut cmd = as_nobody(&setpriv, &binary, &["serve"], &envs);
    cmd.stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("duplicate the log"))
        .stderr(log_file);
    let child = cmd.spawn().expect("start serve through setpriv");
    let mut serve = Serve {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port.number())),
        log,
    };

    // Up, and with a verdict from the source.
    let deadline = Instant::now() + FIRST_VERDICT_BOUND;
    let health = loop {
        if let Ok(Some(status)) = serve.child.try_wait() {
            panic!("serve as uid {NOBODY} exited ({status}):\n{}", serve.log());
        }
        match serve.get("/healthz") {
            Ok((200, raw)) => break raw,
            Ok(_) | Err(_) if Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(100))
            }
            other => panic!(
                "/healthz did not turn 200 within {FIRST_VERDICT_BOUND:?}: {other:?}\nlog:\n{}",
                serve.log()
            ),
        }
    };
    assert!(health.contains("\"verdict\":\"ok\""), "{health}");

    // Really unprivileged: (real, effective, saved, fs) uid and gid 65534, no
    // groups, no capabilities.
    let creds = serve.credentials();
    for (key, want) in [
        ("Uid:", "Uid: 65534 65534 65534 65534"),
        ("Gid:", "Gid: 65534 65534 65534 65534"),
        ("Groups:", "Groups:"),
        ("CapEff:", "CapEff: 0000000000000000"),
        ("CapPrm:", "CapPrm: 0000000000000000"),
    ] {
        let line = creds.iter().find(|l| l.starts_with(key));
        assert_eq!(line.map(String::as_str), Some(want), "{creds:?}");
    }

    eprintln!("serve as {creds:?}: /healthz {health:?}");
    let ports = [chrony.port()];
    for path in ["/healthz", "/readyz", "/livez", "/metrics", "/no-such-path"] {
        let (status, raw) = serve
            .get(path)
            .unwrap_or_else(|e| panic!("GET {path}: {e}\nlog:\n{}", serve.log()));
        let what = format!("GET {path} ({status})");
        canaries.assert_absent(&what, &raw);
        assert_only_addresses(&what, &raw, &ports);
    }
    let log_text = serve.log();
    assert!(
        !log_text.contains(&canaries.secret) && !log_text.contains(&canaries.key_id),
        "serve's log shows a secret from the environment:\n{log_text}"
    );
    assert!(
        !log_text.to_lowercase().contains("permission denied"),
        "serve as uid {NOBODY} hit a permission error:\n{log_text}"
    );
}
