//! Whole-program tests of the files another party can place where skewguard
//! looks (issue 18, case 4): a FIFO, a symlink or a huge file at the ClockBound
//! segment's path and at the platform facts' paths must neither hang nor crash
//! `check` or `serve`, and what is not a regular file is not read.
//!
//! The files are substituted like `tests/diagnosis.rs` does, in a private
//! mount namespace (`unshare --mount`): `/proc/sys/kernel/osrelease` and
//! `/proc/sys/kernel/hostname` bind-mounted over, fresh tmpfs on `/sys/class`
//! and `/run` (`/var/run` is `/run`) holding only the case's files, copied
//! with `cp -a` so a FIFO stays a FIFO and is never opened by the set-up.
//! Where `unshare` is missing or not permitted the tests print `SKIPPED:` and
//! pass, except under `CI=true`, where they fail.

use crate::support;
use crate::support::namespace;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use clock_bound_shm::{ClockErrorBound, ClockStatus, ShmWrite, ShmWriter};
use support::{http_get, run_command, Chrony, Output, Serve, TempDir};

/// How long one `check` may take here: it measures one chrony on loopback, so
/// a second is plenty; a blocked `open` would take for ever.
const CHECK_BOUND: Duration = Duration::from_secs(10);

/// What one file of a case is.
#[derive(Clone)]
enum Node {
    /// A regular file with these bytes.
    File(Vec<u8>),
    /// A FIFO with no writer.
    Fifo,
    /// A symbolic link to this target (as seen inside the namespace).
    Link(&'static str),
}

fn text(s: &str) -> Node {
    Node::File(format!("{s}\n").into_bytes())
}

/// The files of a case; `None` leaves the file out (for DMI and ClockBound).
struct Place {
    osrelease: Node,
    hostname: Node,
    /// sys_vendor, product_name, bios_vendor.
    dmi: Option<[Node; 3]>,
    /// At /run/clockbound/shm0.
    clockbound: Option<Node>,
    /// More files under /run: (path below /run, contents).
    run_files: Vec<(&'static str, Vec<u8>)>,
}

impl Default for Place {
    fn default() -> Place {
        Place {
            osrelease: text("6.1.0-28-amd64"),
            hostname: text("node-1"),
            dmi: None,
            clockbound: None,
            run_files: Vec::new(),
        }
    }
}

fn make(path: &Path, node: &Node) {
    match node {
        Node::File(bytes) => fs::write(path, bytes).unwrap(),
        Node::Fifo => {
            let made = Command::new("mkfifo").arg(path).status();
            assert!(made.is_ok_and(|s| s.success()), "mkfifo {}", path.display());
        }
        Node::Link(target) => std::os::unix::fs::symlink(target, path).unwrap(),
    }
}

/// A command running `skewguard ARGS` at `place`; the directory holds the
/// case's files and must live as long as the command runs.
fn command_at(place: &Place, args: &[&str]) -> (TempDir, Command) {
    let dir = TempDir::new("hostile");
    let d = dir.path();
    make(&d.join("osrelease"), &place.osrelease);
    make(&d.join("hostname"), &place.hostname);
    if let Some(dmi) = &place.dmi {
        fs::create_dir(d.join("dmi")).unwrap();
        for (name, node) in ["sys_vendor", "product_name", "bios_vendor"]
            .iter()
            .zip(dmi)
        {
            make(&d.join("dmi").join(name), node);
        }
    }
    fs::create_dir(d.join("run")).unwrap();
    if let Some(node) = &place.clockbound {
        fs::create_dir(d.join("run/clockbound")).unwrap();
        make(&d.join("run/clockbound/shm0"), node);
    }
    for (name, bytes) in &place.run_files {
        fs::write(d.join("run").join(name), bytes).unwrap();
    }
    let cmd = namespace::skewguard_at(d, args);
    (dir, cmd)
}

/// `skewguard check` (JSON) at `place` against `chrony`: it must finish
/// within [`CHECK_BOUND`] with a report.
fn check_at(name: &str, place: &Place, chrony: &Chrony) -> Output {
    let (_dir, mut cmd) = command_at(place, &["check"]);
    cmd.env("SKEWGUARD_SOURCES", chrony.uri())
        .env("SKEWGUARD_OUTPUT", "json");
    let started = Instant::now();
    let out = run_command(
        cmd,
        &format!("{name}: unshare … skewguard check"),
        CHECK_BOUND,
    );
    assert!(
        !out.stderr.contains("mount:") && !out.stderr.contains("unshare:"),
        "{name}: the namespace was not set up\n{out}"
    );
    assert_eq!(out.report()["verdict"], "ok", "{name}\n{out}");
    eprintln!("{name}: check took {:?}", started.elapsed());
    out
}

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

/// A FreeRunning segment with a 250 ms bound valid for an hour, written by
/// ClockBound's own writer.
fn clockbound_segment() -> Vec<u8> {
    let dir = TempDir::new("segment");
    let path = dir.path().join("shm0");
    let now = monotonic();
    let ceb = ClockErrorBound::new(
        now.into(),
        (now + Duration::from_secs(3600)).into(),
        250_000_000,
        0,
        0,
        ClockStatus::FreeRunning,
        false,
    );
    ShmWriter::new(&path).unwrap().write(&ceb);
    fs::read(&path).unwrap()
}

fn clockbound_evidence(out: &Output) -> &serde_json::Value {
    let v = out.report()["aws_clock"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["source"] == "clockbound"));
    v.unwrap_or_else(|| panic!("no ClockBound evidence\n{out}"))
}

#[test]
fn a_fifo_or_a_symlink_at_the_clockbound_path_is_refused_not_waited_on() {
    let _room = support::Room::Timing.enter();
    if !namespace::namespaces_work(&[("mkfifo", "install coreutils")]) {
        return;
    }
    let Some(chrony) = Chrony::start(None) else {
        return;
    };
    let amazon = || Some([text("Amazon EC2"), text("m5.large"), text("Amazon EC2")]);
    // The control: a regular segment there is read (so the cases below reach the reader).
    let out = check_at(
        "a regular segment",
        &Place {
            dmi: amazon(),
            clockbound: Some(Node::File(clockbound_segment())),
            ..Place::default()
        },
        &chrony,
    );
    let cb = clockbound_evidence(&out);
    assert_eq!(cb["status"], "FreeRunning", "{out}");
    assert_eq!(cb["error_bound_seconds"], 0.25, "{out}");

    let out = check_at(
        "a FIFO at the ClockBound path",
        &Place {
            dmi: amazon(),
            clockbound: Some(Node::Fifo),
            ..Place::default()
        },
        &chrony,
    );
    let error = clockbound_evidence(&out)["error"]
        .as_str()
        .unwrap_or_default();
    assert!(
        error.contains("/var/run/clockbound/shm0: it is a FIFO, not a regular file"),
        "{out}"
    );
    assert_eq!(out.report()["platform"], "ec2", "{out}");

    let out = check_at(
        "a symlink at the ClockBound path",
        &Place {
            dmi: amazon(),
            clockbound: Some(Node::Link("/run/elsewhere")),
            run_files: vec![("elsewhere", clockbound_segment())],
            ..Place::default()
        },
        &chrony,
    );
    let error = clockbound_evidence(&out)["error"]
        .as_str()
        .unwrap_or_default();
    assert!(error.contains("it is a symbolic link"), "{out}");
}

#[test]
fn fifos_and_huge_files_at_the_platform_facts_neither_hang_nor_count() {
    let _room = support::Room::Timing.enter();
    if !namespace::namespaces_work(&[("mkfifo", "install coreutils")]) {
        return;
    }
    let Some(chrony) = Chrony::start(None) else {
        return;
    };
    // The control: these files decide the platform when they are regular.
    let out = check_at(
        "regular facts",
        &Place {
            osrelease: text("6.10.14-linuxkit"),
            ..Place::default()
        },
        &chrony,
    );
    assert_eq!(out.report()["platform"], "docker-desktop", "{out}");
    let out = check_at(
        "regular DMI",
        &Place {
            dmi: Some([text("Amazon EC2"), text("m5.large"), text("Amazon EC2")]),
            ..Place::default()
        },
        &chrony,
    );
    assert_eq!(out.report()["platform"], "ec2", "{out}");

    // FIFOs at facts: nothing is read from them, and the other facts still
    // are (a read stuck on one would lose them all).
    let out = check_at(
        "FIFOs at osrelease and hostname",
        &Place {
            osrelease: Node::Fifo,
            hostname: Node::Fifo,
            dmi: Some([text("Amazon EC2"), text("m5.large"), text("Amazon EC2")]),
            ..Place::default()
        },
        &chrony,
    );
    assert_eq!(out.report()["platform"], "ec2", "{out}");
    let out = check_at(
        "FIFOs at the DMI files",
        &Place {
            osrelease: text("6.10.14-linuxkit"),
            dmi: Some([Node::Fifo, Node::Fifo, Node::Fifo]),
            ..Place::default()
        },
        &chrony,
    );
    assert_eq!(out.report()["platform"], "docker-desktop", "{out}");
    // A symlink to a file that would make it EC2 is not followed.
    let out = check_at(
        "a symlink at a DMI file",
        &Place {
            dmi: Some([
                Node::Link("/run/vendor"),
                text("Standard PC"),
                text("SeaBIOS"),
            ]),
            run_files: vec![("vendor", b"Amazon EC2\n".to_vec())],
            ..Place::default()
        },
        &chrony,
    );
    assert_ne!(out.report()["platform"], "ec2", "{out}");

    // 64 MiB behind the first line: only the first bytes are read.
    let mut huge = b"6.10.14-linuxkit\n".to_vec();
    huge.resize(64 * 1024 * 1024, b'x');
    let out = check_at(
        "a 64 MiB osrelease",
        &Place {
            osrelease: Node::File(huge),
            ..Place::default()
        },
        &chrony,
    );
    assert_eq!(out.report()["platform"], "docker-desktop", "{out}");
}

#[test]
fn serve_with_a_fifo_at_the_clockbound_path_answers_and_stops_on_sigterm() {
    let _room = support::Room::Timing.enter();
    if !namespace::namespaces_work(&[("mkfifo", "install coreutils")]) {
        return;
    }
    let Some(chrony) = Chrony::start(None) else {
        return;
    };
    let place = Place {
        clockbound: Some(Node::Fifo),
        ..Place::default()
    };
    let (_dir, cmd) = command_at(&place, &["serve"]);
    let mut serve = Serve::start_command(cmd, &[("SKEWGUARD_SOURCES", &chrony.uri())]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let health = loop {
        let r = http_get(serve.addr(), "/healthz", &[]);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
        if v["verdict"] == "ok" || Instant::now() >= deadline {
            break v;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(health["verdict"], "ok", "{health}\n{}", serve.log());
    let (code, took) = serve.stop(libc::SIGTERM);
    assert_eq!(code, Some(0), "{}", serve.log());
    assert!(took < Duration::from_secs(5), "{took:?}");
}
