//! Roughtime servers on loopback, their clocks optionally shifted by
//! libfaketime: roughenough 1.3.0-draft14 (crates.io; IETF draft 14 and
//! Google-Roughtime, radius a fixed 5 s, MIDP in whole seconds) and
//! pyroughtime 1.0.1 (PyPI; draft 07, radius 0.1 s, MIDP in microseconds)
//! behind a few lines of Python, since it ships no server command.

use std::io::Write;
use std::net::UdpSocket;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use skewguard::proto::roughtime::request::{self, Family};

use super::faketime::faketime_env;
use super::process::{Daemon, PEER_START_BOUND};
use super::{current_test, locate, prerequisite, Port, TempDir};

/// The roughenough server binary.
const ROUGHENOUGH: &str = "roughenough-server";
/// How to get it (also what `.ci/run` does).
const ROUGHENOUGH_REMEDY: &str = "cargo install roughenough --version 1.3.0-draft14 --locked";
/// How to get pyroughtime (also what `.ci/run` does).
const PYROUGHTIME_REMEDY: &str =
    "python3 -m pip install pyroughtime==1.0.1 --no-deps ed25519==1.5 pycryptodome==4.5.0";

/// The pyroughtime wrapper: a fresh long-term key and delegation (30 days
/// from the server's own, possibly shifted, clock), the public key printed,
/// then the server on 127.0.0.1:PORT. Run with `TZ=UTC`: the server stamps
/// `datetime.now()`, local time.
const PYROUGHTIME_SERVER: &str = r#"
import sys
from pyroughtime.pyroughtime import RoughtimeServer
priv, publ = RoughtimeServer.create_key()
cert, dpriv = RoughtimeServer.create_delegate_key(priv)
print("PUBLIC-KEY", publ.decode(), flush=True)
RoughtimeServer(cert, dpriv).start("127.0.0.1", int(sys.argv[1]))
"#;

/// Which implementation a [`RoughtimeServer`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoughtimeKind {
    /// roughenough-server (Rust).
    Roughenough,
    /// pyroughtime's `RoughtimeServer` (Python).
    PyRoughtime,
}

/// A Roughtime server on `127.0.0.1:PORT`. Killed on drop.
pub struct RoughtimeServer {
    dir: TempDir,
    port: Port,
    kind: RoughtimeKind,
    key: String,
    daemon: Daemon,
}

impl RoughtimeServer {
    /// Starts the server (its clock shifted by `shift` if given) and waits
    /// until it answers a request. `None`: the server or libfaketime is
    /// missing and the test should return (a skip, or a failure under `CI=true`).
    pub fn start(kind: RoughtimeKind, shift: Option<&str>) -> Option<RoughtimeServer> {
        let dir = TempDir::new("roughtime");
        let port = Port::free();
        let n = port.number();
        let mut cmd = match kind {
            RoughtimeKind::Roughenough => {
                if !prerequisite(ROUGHENOUGH, ROUGHENOUGH_REMEDY) {
                    return None;
                }
                let mut cmd = Command::new(locate(ROUGHENOUGH)?);
                cmd.arg("ENV")
                    .env("ROUGHENOUGH_INTERFACE", "127.0.0.1")
                    .env("ROUGHENOUGH_PORT", n.to_string())
                    .env("ROUGHENOUGH_SEED", seed_hex());
                cmd
            }
            RoughtimeKind::PyRoughtime => {
                if !python_module("pyroughtime.pyroughtime", PYROUGHTIME_REMEDY) {
                    return None;
                }
                let script = dir.path().join("server.py");
                std::fs::write(&script, PYROUGHTIME_SERVER).expect("write server.py");
                let mut cmd = Command::new("python3");
                cmd.arg(&script).arg(n.to_string()).env("TZ", "UTC");
                cmd
            }
        };
        if let Some(shift) = shift {
            cmd.envs(faketime_env(shift)?);
            // The server's sleeps and socket timeouts keep real time.
            cmd.env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        }
        let mut daemon = Daemon::spawn(cmd, dir.path().join("server.log"));
        let what = format!("{kind:?} on port {n} (shift {shift:?})");
        let key = wait_for_key(kind, &mut daemon, &what);
        let family = match kind {
            RoughtimeKind::Roughenough => Family::Ietf,
            RoughtimeKind::PyRoughtime => Family::Draft07,
        };
        wait_for_answer(n, family, &mut daemon, &what);
        Some(RoughtimeServer {
            dir,
            port,
            kind,
            key,
            daemon,
        })
    }

    /// `roughtime://127.0.0.1:PORT#KEY` with the key as the server printed it
    /// (hex for roughenough, base64 for pyroughtime).
    pub fn uri(&self) -> String {
        format!("roughtime://127.0.0.1:{}#{}", self.port.number(), self.key)
    }

    /// The same, as skewguard prints it back (key in base64).
    pub fn canonical_uri(&self) -> String {
        let key = skewguard::proto::roughtime::key::parse(&self.key).expect("the server's key");
        format!(
            "roughtime://127.0.0.1:{}#{}",
            self.port.number(),
            skewguard::proto::roughtime::key::to_base64(&key)
        )
    }

    /// The UDP port.
    pub fn port(&self) -> u16 {
        self.port.number()
    }

    /// The long-term public key as printed by the server.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Which implementation this is.
    pub fn kind(&self) -> RoughtimeKind {
        self.kind
    }

    /// The server's output so far.
    pub fn log(&self) -> String {
        self.daemon.log_text()
    }

    /// The temp dir it runs in.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

/// 32 random bytes in hex: a fresh long-term key seed per server.
fn seed_hex() -> String {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("random seed");
    seed.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether python3 can import `module`; if not, a skip (or a failure under CI).
fn python_module(module: &str, remedy: &str) -> bool {
    if !prerequisite("python3", "install python3") {
        return false;
    }
    let ok = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI requires the Python module {module}: {remedy}");
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {}: Python module {module} not found ({remedy})",
        current_test()
    );
    false
}

/// Reads the long-term public key the server prints at start.
fn wait_for_key(kind: RoughtimeKind, daemon: &mut Daemon, what: &str) -> String {
    let until = Instant::now() + PEER_START_BOUND * 2;
    loop {
        let log = daemon.log_text();
        let found = match kind {
            // "Long-term public key    : <64 hex>"
            RoughtimeKind::Roughenough => log
                .lines()
                .filter(|l| l.to_ascii_lowercase().contains("public key"))
                .flat_map(|l| l.split(|c: char| !c.is_ascii_hexdigit()))
                .find(|w| w.len() == 64)
                .map(str::to_string),
            RoughtimeKind::PyRoughtime => log
                .lines()
                .find_map(|l| l.strip_prefix("PUBLIC-KEY "))
                .map(|k| k.trim().to_string()),
        };
        if let Some(k) = found {
            return k;
        }
        daemon.assert_alive(what);
        assert!(
            Instant::now() < until,
            "{what} printed no public key:\n{log}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Sends requests of `family` until any datagram comes back.
fn wait_for_answer(port: u16, family: Family, daemon: &mut Daemon, what: &str) {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind a probe socket");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let until = Instant::now() + PEER_START_BOUND * 2;
    let mut buf = [0u8; 2048];
    loop {
        let nonce = vec![0x55u8; family.nonce_len()];
        let _ = sock.send_to(&request::build(family, &nonce), ("127.0.0.1", port));
        if sock.recv_from(&mut buf).is_ok() {
            return;
        }
        daemon.assert_alive(what);
        assert!(
            Instant::now() < until,
            "{what} does not answer:\n{}",
            daemon.log_text()
        );
    }
}
