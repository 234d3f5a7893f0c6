//! The processes a test starts: the built binary, run once with a time bound
//! ([`run`], [`run_command`]) or kept running as `skewguard serve` ([`Serve`]),
//! and the peers' daemons ([`Daemon`], for chrony, the web servers and
//! Prometheus).

use std::fmt;
use std::fs::{self, File};
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::{Port, TempDir};

/// How long a peer may take to start answering.
pub(super) const PEER_START_BOUND: Duration = Duration::from_secs(5);

/// How long one run of the binary may take before it is killed.
pub const RUN_BOUND: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// Daemons

/// A foreground daemon started by a test, killed on drop. Its stdout and stderr
/// go to `log` so a failure can show them.
pub(super) struct Daemon {
    pub(super) child: Child,
    log: PathBuf,
}

impl Daemon {
    pub(super) fn spawn(mut cmd: Command, log: PathBuf) -> Daemon {
        let out = File::create(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let err = out.try_clone().expect("duplicate a log file descriptor");
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        Daemon { child, log }
    }

    /// Panics with the log if the daemon has exited.
    pub(super) fn assert_alive(&mut self, what: &str) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{what} exited ({status}):\n{}", self.log_text());
        }
    }

    pub(super) fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub(super) fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
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
/// `cmd`, and the other variables skewguard honours (proxies, OpenSSL's trust
/// stores), so settings of whoever runs the tests cannot leak into them.
pub fn clear_skewguard_env(cmd: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SKEWGUARD_") {
            cmd.env_remove(name);
        }
    }
    for name in skewguard::config::FOREIGN {
        cmd.env_remove(name);
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
pub(super) fn collect(
    mut pipe: impl Read + Send + 'static,
    which: u8,
    tx: mpsc::Sender<(u8, String)>,
) {
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
