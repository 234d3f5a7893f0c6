//! Whole-program tests of the diagnosis: the platform facts skewguard reads
//! (kernel release, DMI, markers, the ClockBound segment) substituted with
//! mounts in a private mount namespace (`unshare --mount`), a fake ECS task
//! metadata endpoint on loopback, and a real chrony whose clock libfaketime
//! shifts. One chrony per shift; every case on that shift runs against it.
//!
//! Inside the namespace: `/proc/sys/kernel/osrelease` is bind-mounted over,
//! `/sys/class` and `/run` get a fresh tmpfs (so the machine's own DMI and
//! markers are hidden) holding only the case's files. Nothing outside the
//! namespace changes. `/.dockerenv` cannot be hidden this way and stays as the
//! machine has it. Where `unshare` is missing or not permitted the tests print
//! `SKIPPED:` and pass, except under `CI=true`, where they fail.

use crate::support;
use crate::support::namespace;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use support::{http_get, run_command, Chrony, Output, Serve, TempDir, RUN_BOUND};

/// Where a case runs: the files and variables skewguard reads.
#[derive(Default)]
struct Place {
    kernel: &'static str,
    /// sys_vendor, product_name, bios_vendor.
    dmi: Option<[&'static str; 3]>,
    /// The ClockBound segment at /run/clockbound/shm0.
    clockbound: Option<Vec<u8>>,
    env: Vec<(&'static str, String)>,
}

const BARE_LINUX: &str = "6.1.0-28-amd64";
const AMAZON_EC2: [&str; 3] = ["Amazon EC2", "m5.large", "Amazon EC2"];

/// A command running `skewguard ARGS` at `place` (in a mount namespace of its
/// own), with the platform variables of the test's environment removed; the
/// directory holds the case's files and must live as long as the command runs.
fn command_at(place: &Place, args: &[&str]) -> (TempDir, Command) {
    let dir = TempDir::new("place");
    let d = dir.path();
    fs::write(d.join("osrelease"), format!("{}\n", place.kernel)).unwrap();
    if let Some([vendor, product, bios]) = place.dmi {
        fs::create_dir(d.join("dmi")).unwrap();
        for (name, value) in [
            ("sys_vendor", vendor),
            ("product_name", product),
            ("bios_vendor", bios),
        ] {
            fs::write(d.join("dmi").join(name), format!("{value}\n")).unwrap();
        }
    }
    fs::create_dir(d.join("run")).unwrap();
    if let Some(segment) = &place.clockbound {
        fs::create_dir(d.join("run/clockbound")).unwrap();
        fs::write(d.join("run/clockbound/shm0"), segment).unwrap();
    }
    let mut cmd = namespace::skewguard_at(d, args);
    cmd.envs(place.env.iter().map(|(k, v)| (k, v)));
    (dir, cmd)
}

/// Runs `skewguard check` at `place` against `chrony` with `output` text or json.
fn check_at(place: &Place, chrony: &Chrony, profile: &str, output: &str) -> Output {
    let (_dir, mut cmd) = command_at(place, &["check"]);
    cmd.env("SKEWGUARD_SOURCES", chrony.uri())
        .env("SKEWGUARD_PROFILE", profile)
        .env("SKEWGUARD_OUTPUT", output);
    let out = run_command(cmd, "unshare … skewguard check", RUN_BOUND);
    assert!(
        !out.stderr.contains("mount:") && !out.stderr.contains("unshare:"),
        "the namespace was not set up\n{out}"
    );
    out
}

/// What a case must show.
struct Expect {
    platform: &'static str,
    /// One of these.
    cause: &'static [&'static str],
    /// In the headline.
    headline: &'static [&'static str],
    /// Anywhere in the text report.
    text: &'static [&'static str],
    /// Nowhere in the text report (lower-cased).
    never: &'static [&'static str],
}

/// Runs a case in text and JSON, checks both, and prints the text (the README
/// shows these outputs).
fn case(name: &str, place: &Place, chrony: &Chrony, profile: &str, want: &Expect) -> Output {
    let text = check_at(place, chrony, profile, "text");
    text.assert_exit(1);
    eprintln!("--- {name} ---\n{}", text.stdout);
    let headline = text.headline();
    assert!(
        headline.starts_with("FAIL: local clock is "),
        "{name}\n{text}"
    );
    for w in want.headline {
        assert!(
            headline.contains(w),
            "{name}: the headline should say {w:?}\n{text}"
        );
    }
    for w in want.text {
        assert!(
            text.stdout.contains(w),
            "{name}: the report should say {w:?}\n{text}"
        );
    }
    let lower = text.stdout.to_lowercase();
    for w in want.never {
        assert!(
            !lower.contains(w),
            "{name}: the report must not say {w:?}\n{text}"
        );
    }
    let json = check_at(place, chrony, profile, "json");
    json.assert_exit(1);
    let v = json.report();
    assert_eq!(v["platform"], want.platform, "{name}\n{json}");
    assert!(
        want.cause.iter().any(|c| v["cause"] == *c),
        "{name}: the cause should be one of {:?}\n{json}",
        want.cause
    );
    assert!(
        v["fix"].as_str().is_some_and(|f| !f.is_empty()),
        "{name}\n{json}"
    );
    assert!(
        v["hint"].as_str().is_some_and(|h| !h.is_empty()),
        "{name}\n{json}"
    );
    json
}

/// CLOCK_MONOTONIC, which the ClockBound segment's void-after time is on.
fn monotonic() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    assert_eq!(
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) },
        0
    );
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// A one-endpoint stand-in for ECS task metadata v4 on loopback: answers
/// `GET /v4/test-task/task` with `body` and records the paths asked for.
struct FakeMetadata {
    uri: String,
    paths: Arc<Mutex<Vec<String>>>,
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl FakeMetadata {
    fn start(body: &'static str) -> FakeMetadata {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().unwrap();
        let uri = format!("http://{addr}/v4/test-task");
        let paths = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&paths);
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let mut stream = stream;
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16384 {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                let (status, body) = if path == "/v4/test-task/task" {
                    ("200 OK", body)
                } else {
                    ("404 Not Found", "")
                };
                seen.lock().unwrap().push(path);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        FakeMetadata {
            uri,
            paths,
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FakeMetadata {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which then sees the flag.
        let _ = std::net::TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `serve` at `place`: `/healthz` carries the platform, cause and fix, and
/// `/metrics` the platform as a label of `skewguard_build_info`.
fn serve_names_the_platform(place: &Place, chrony: &Chrony) {
    let (_dir, cmd) = command_at(place, &["serve"]);
    let serve = Serve::start_command(cmd, &[("SKEWGUARD_SOURCES", &chrony.uri())]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let health = loop {
        let r = http_get(serve.addr(), "/healthz", &[]);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
        if v["verdict"] == "fail" || Instant::now() >= deadline {
            break v;
        }
        thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(health["verdict"], "fail", "{health}\n{}", serve.log());
    assert_eq!(health["platform"], "docker-desktop", "{health}");
    assert_eq!(health["cause"], "vm-paused", "{health}");
    assert!(
        health["fix"]
            .as_str()
            .is_some_and(|f| f.contains("hwclock -s")),
        "{health}"
    );
    let metrics = http_get(serve.addr(), "/metrics", &[]).body;
    let info = metrics
        .lines()
        .find(|l| l.starts_with("skewguard_build_info{"))
        .unwrap_or_else(|| panic!("no skewguard_build_info in\n{metrics}"));
    assert!(info.contains("platform=\"docker-desktop\""), "{info}");
    eprintln!("--- serve on Docker Desktop: /metrics ---\n{info}\n");
}

// ---------------------------------------------------------------------------

/// The first seed: a Docker Desktop VM a day behind after the Mac slept, and
/// the same day on the other platforms where a day tells something else.
#[test]
fn one_day_behind_on_laptop_vms_and_bare_linux() {
    let _room = support::Room::Timing.enter();
    if !namespace::namespaces_work(&[]) {
        return;
    }
    let Some(chrony) = Chrony::start(Some("+86400")) else {
        return;
    };
    let docker_desktop = Place {
        kernel: "6.10.14-linuxkit",
        ..Place::default()
    };
    case(
        "Docker Desktop, one day behind",
        &docker_desktop,
        &chrony,
        "aws",
        &Expect {
            platform: "docker-desktop",
            cause: &["vm-paused"],
            headline: &[
                "1 day 0h00m behind",
                "SignatureDoesNotMatch … Signature expired",
            ],
            text: &["Docker Desktop", "restart Docker Desktop", "hwclock -s"],
            never: &["time zone", "local time", "tz "],
        },
    );
    let wsl2 = Place {
        kernel: "5.15.153.1-microsoft-standard-WSL2",
        ..Place::default()
    };
    let json = case(
        "WSL2, one day behind",
        &wsl2,
        &chrony,
        "aws",
        &Expect {
            platform: if Path::new("/.dockerenv").exists() {
                "docker-desktop-wsl2"
            } else {
                "wsl2"
            },
            cause: &["vm-paused"],
            headline: &["1 day 0h00m behind", "Signature expired"],
            text: &["wsl --shutdown", "wsl --update"],
            never: &["time zone"],
        },
    );
    assert!(
        json.report()["platform_evidence"][0]
            .as_str()
            .is_some_and(|e| e.contains("microsoft-standard-WSL2")),
        "{json}"
    );
    let apple_vz = Place {
        kernel: "6.8.0-45-generic",
        dmi: Some([
            "Apple Inc.",
            "Apple Virtualization Generic Platform",
            "Apple Inc.",
        ]),
        ..Place::default()
    };
    case(
        "Apple Virtualization (colima, lima, podman machine), one day behind",
        &apple_vz,
        &chrony,
        "aws",
        &Expect {
            platform: "apple-vz",
            cause: &["vm-paused"],
            headline: &["1 day 0h00m behind"],
            text: &["colima ssh -- sudo hwclock -s", "limactl", "podman machine"],
            never: &["time zone"],
        },
    );
    serve_names_the_platform(&docker_desktop, &chrony);
    let bare = Place {
        kernel: BARE_LINUX,
        ..Place::default()
    };
    case(
        "bare Linux, 24 h behind",
        &bare,
        &chrony,
        "azure",
        &Expect {
            platform: "linux",
            cause: &["whole-days"],
            headline: &["1 day 0h00m behind", "Request date header too old"],
            text: &["no time zone is that far", "chrony"],
            never: &["local time", "set-local-rtc"],
        },
    );
}

/// The second seed and AWS's own word: a clock 20 minutes off on EC2, on ECS
/// with task metadata saying NOT_SYNCHRONIZED, with ClockBound saying
/// FreeRunning, and with libfaketime in the environment.
#[test]
fn twenty_minutes_behind_on_aws_and_under_libfaketime() {
    let _room = support::Room::Timing.enter();
    if !namespace::namespaces_work(&[]) {
        return;
    }
    let Some(chrony) = Chrony::start(Some("+1200")) else {
        return;
    };
    let ec2 = Place {
        kernel: "6.1.115-126.197.amzn2023.x86_64",
        dmi: Some(AMAZON_EC2),
        ..Place::default()
    };
    case(
        "Amazon EC2, 20 minutes behind",
        &ec2,
        &chrony,
        "aws-s3",
        &Expect {
            platform: "ec2",
            cause: &["no-time-daemon", "daemon-bad-sources"],
            headline: &["20m00s behind", "RequestTimeTooSkewed"],
            text: &["169.254.169.123", "chrony", "linklocal_allowance_exceeded"],
            never: &["time zone"],
        },
    );

    let metadata = FakeMetadata::start(
        r#"{"Cluster":"test","TaskARN":"arn:aws:ecs:eu-west-1:1:task/test","ClockDrift":{"ClockErrorBound":2500.5,"ReferenceTimestamp":"2026-12-01T08:00:00Z","ClockSynchronizationStatus":"NOT_SYNCHRONIZED"},"Containers":[]}"#,
    );
    let ecs = Place {
        env: vec![("ECS_CONTAINER_METADATA_URI_V4", metadata.uri.clone())],
        ..Place {
            kernel: "5.10.228-219.884.amzn2.x86_64",
            dmi: Some(AMAZON_EC2),
            ..Place::default()
        }
    };
    let json = case(
        "Amazon ECS, task metadata says NOT_SYNCHRONIZED",
        &ecs,
        &chrony,
        "aws",
        &Expect {
            platform: "ecs",
            cause: &["aws-unsynchronised"],
            headline: &["20m00s behind", "Signature expired"],
            text: &[
                "aws: ECS task metadata ClockDrift: NOT_SYNCHRONIZED (error bound 2.501s",
                "container instance",
                "169.254.169.123",
            ],
            never: &[],
        },
    );
    let aws = &json.report()["aws_clock"][0];
    assert_eq!(aws["source"], "ecs-task-metadata", "{json}");
    assert_eq!(aws["status"], "NOT_SYNCHRONIZED", "{json}");
    assert_eq!(aws["synchronised"], false, "{json}");
    assert!(
        (aws["error_bound_seconds"].as_f64().unwrap() - 2.5005).abs() < 1e-9,
        "{json}"
    );
    assert!(
        metadata
            .paths
            .lock()
            .unwrap()
            .iter()
            .all(|p| p == "/v4/test-task/task"),
        "asked for {:?}",
        metadata.paths.lock().unwrap()
    );

    let clockbound = Place {
        kernel: "6.1.115-126.197.amzn2023.x86_64",
        dmi: Some(AMAZON_EC2),
        clockbound: Some(skewguard::platform::clockbound::encode_v2(
            6,
            monotonic() + Duration::from_secs(3600),
            1_250_000_000,
            2,
        )),
        ..Place::default()
    };
    let json = case(
        "Amazon EC2, ClockBound says FreeRunning",
        &clockbound,
        &chrony,
        "aws",
        &Expect {
            platform: "ec2",
            cause: &["aws-unsynchronised"],
            headline: &["20m00s behind"],
            text: &[
                "aws: ClockBound: FreeRunning (error bound 1.250s)",
                "169.254.169.123",
            ],
            never: &[],
        },
    );
    let aws = &json.report()["aws_clock"][0];
    assert_eq!(aws["source"], "clockbound", "{json}");
    assert_eq!(aws["status"], "FreeRunning", "{json}");

    let faked = Place {
        kernel: "6.10.14-linuxkit",
        env: vec![("FAKETIME", "-1200".into())],
        ..Place::default()
    };
    case(
        "FAKETIME in the environment, on Docker Desktop",
        &faked,
        &chrony,
        "aws",
        &Expect {
            platform: "docker-desktop",
            cause: &["faked-clock"],
            headline: &["20m00s behind"],
            text: &[
                "hint: the clock is faked in this environment (FAKETIME=-1200)",
                "unset FAKETIME",
            ],
            never: &[],
        },
    );
}

/// A clock 5h30m ahead: the hardware clock kept in India's local time.
#[test]
fn five_and_a_half_hours_ahead_is_a_time_zone() {
    let _room = support::Room::Timing.enter();
    if !namespace::namespaces_work(&[]) {
        return;
    }
    let Some(chrony) = Chrony::start(Some("-19800")) else {
        return;
    };
    case(
        "bare Linux, 5h30m ahead",
        &Place {
            kernel: BARE_LINUX,
            ..Place::default()
        },
        &chrony,
        "aws",
        &Expect {
            platform: "linux",
            cause: &["time-zone"],
            headline: &["5h30m ahead", "Signature not yet current"],
            text: &["UTC+05:30", "timedatectl set-local-rtc 0"],
            never: &[],
        },
    );
}

/// A clock three years behind: a hardware clock that lost power.
#[test]
fn three_years_behind_is_a_dead_rtc() {
    let _room = support::Room::Timing.enter();
    if !namespace::namespaces_work(&[]) {
        return;
    }
    let Some(chrony) = Chrony::start(Some("+94608000")) else {
        return;
    };
    let json = case(
        "bare Linux, 3 years behind",
        &Place {
            kernel: BARE_LINUX,
            ..Place::default()
        },
        &chrony,
        "aws-s3",
        &Expect {
            platform: "linux",
            cause: &["rtc-lost-power"],
            headline: &["3.0 years (1095 days) behind", "RequestTimeTooSkewed"],
            text: &["lost power"],
            never: &["time zone"],
        },
    );
    // The exact figure is in the JSON (and on the source line).
    assert!(
        json.number("offset_seconds")
            .is_some_and(|o| (o - 94_608_000.0).abs() < 0.5),
        "{json}"
    );
}
