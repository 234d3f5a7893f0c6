//! Prometheus' tools: `promtool` ([`promtool`]) and a real server
//! ([`Prometheus`]) scraping `skewguard serve`.

use std::fs;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::http::http_get;
use super::process::{collect, Daemon};
use super::{locate, prerequisite, Port, TempDir};

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
    Some(run(Command::new(locate("promtool")?), args, stdin, bound))
}

/// Where Debian's python3-prometheus-client keeps its OpenMetrics parser.
const OPENMETRICS_PARSER: &str =
    "/usr/lib/python3/dist-packages/prometheus_client/openmetrics/parser.py";

/// Parses `body` with the Prometheus project's Python OpenMetrics parser
/// (Debian's python3-prometheus-client, strict about the OpenMetrics grammar,
/// which `promtool check metrics` does not read: it rejects an OpenMetrics
/// counter); returns the exit code (0: valid) and what it printed. `None` when
/// the parser is missing (see [`prerequisite`]).
pub fn openmetrics_parse(body: &str, bound: Duration) -> Option<(Option<i32>, String)> {
    if !prerequisite(OPENMETRICS_PARSER, "install python3-prometheus-client") {
        return None;
    }
    let script = "import sys\n\
                  from prometheus_client.openmetrics.parser import text_string_to_metric_families\n\
                  families = list(text_string_to_metric_families(sys.stdin.read()))\n\
                  print(len(families), 'families')\n";
    Some(run(
        Command::new("/usr/bin/python3"),
        &["-c", script],
        body,
        bound,
    ))
}

/// Runs `cmd ARGS` with `stdin` as its input, within `bound` (killed and a
/// panic past it): the exit code and its stdout plus stderr.
fn run(mut cmd: Command, args: &[&str], stdin: &str, bound: Duration) -> (Option<i32>, String) {
    let mut child = cmd
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
    let mut input = child.stdin.take().expect("stdin");
    let stdin = stdin.to_string();
    let writer = thread::spawn(move || {
        let _ = input.write_all(stdin.as_bytes());
    });
    let (tx, rx) = mpsc::channel();
    collect(child.stdout.take().expect("stdout"), 1, tx.clone());
    collect(child.stderr.take().expect("stderr"), 2, tx);
    let deadline = Instant::now() + bound;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} {args:?} took longer than {bound:?}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    let _ = writer.join();
    let mut out = String::new();
    while let Ok((_, text)) = rx.recv_timeout(Duration::from_secs(1)) {
        out.push_str(&text);
    }
    (status.code(), out)
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
