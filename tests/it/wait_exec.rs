//! `wait`, `exec`, the cache file and the emergency bypass, run as a user
//! would run them, against chrony under libfaketime on loopback.

use crate::support;

use std::thread;
use std::time::Duration;

use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};
use std::time::Instant;

use support::{run, Chrony, Port, TempDir};

/// Settings that keep every attempt short.
fn quick(sources: &str) -> Vec<(&'static str, String)> {
    vec![
        ("SKEWGUARD_SOURCES", sources.to_string()),
        ("SKEWGUARD_TIMEOUT", "1s".into()),
        ("SKEWGUARD_HTTP_BUDGET", "0".into()),
        ("SKEWGUARD_INTERVAL", "1s".into()),
    ]
}

fn envs<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(k, s)| (*k, s.as_str())).collect()
}

#[test]
fn wait_returns_0_soon_after_the_reference_is_repaired() {
    let _room = support::Room::Timing.enter();
    let Some(mut chrony) = Chrony::start(Some("+1200")) else {
        return;
    };
    let mut settings = quick(&chrony.uri());
    settings.push(("SKEWGUARD_WAIT_TIMEOUT", "25s".into()));
    let waiter = thread::spawn(move || run(&["wait"], &envs(&settings)));
    thread::sleep(Duration::from_millis(2500));
    assert!(chrony.restart(None), "chrony restart\n{}", chrony.log());
    let out = waiter.join().expect("wait thread");
    out.assert_exit(0);
    // The report goes to stderr with the logs; stdout is nobody's.
    assert!(out.stdout.is_empty(), "{out}");
    assert!(out.stderr.lines().any(|l| l.starts_with("OK")), "{out}");
    // Pauses are capped at INTERVAL=1s, so the repair is seen within a second or two.
    assert!(out.elapsed < Duration::from_secs(8), "{out}");
    // Each attempt is logged with the offset, so a stuck init container says why.
    assert!(out.stderr.contains("FAIL: local clock is"), "{out}");
    assert!(out.stderr.contains("attempt=1"), "{out}");
}

#[test]
fn wait_gives_up_at_its_timeout_with_the_explanation() {
    let _room = support::Room::Timing.enter();
    let Some(chrony) = Chrony::start(Some("+1200")) else {
        return;
    };
    let mut settings = quick(&chrony.uri());
    settings.push(("SKEWGUARD_WAIT_TIMEOUT", "3s".into()));
    let out = run(&["wait"], &envs(&settings));
    out.assert_exit(1);
    assert!(out.elapsed >= Duration::from_millis(2900), "{out}");
    assert!(out.elapsed < Duration::from_secs(6), "{out}");
    assert!(out.stdout.is_empty(), "{out}");
    assert!(
        out.stderr.lines().any(
            |l| l.starts_with("FAIL: local clock is") && l.contains("gave up after waiting 3s")
        ),
        "{out}"
    );
    assert!(out.stderr.contains("hint:"), "{out}");
}

#[test]
fn exec_never_starts_the_workload_on_a_bad_clock() {
    let _room = support::Room::Timing.enter();
    let Some(chrony) = Chrony::start(Some("-1200")) else {
        return;
    };
    let dir = TempDir::new("exec-marker");
    let marker = dir.path().join("started");
    let script = format!("touch {}", marker.display());
    let mut settings = quick(&chrony.uri());
    settings.push(("SKEWGUARD_WAIT_TIMEOUT", "2s".into()));
    let out = run(&["exec", "--", "sh", "-c", &script], &envs(&settings));
    out.assert_exit(1);
    assert!(
        !marker.exists(),
        "the workload ran on a clock 20 min ahead\n{out}"
    );
    assert!(out.stdout.is_empty(), "{out}");
    assert!(out.stderr.contains("ahead"), "{out}");
}

#[test]
fn exec_hands_over_pid_and_exit_status() {
    let _room = support::Room::Timing.enter();
    let Some(chrony) = Chrony::start(None) else {
        return;
    };
    let settings = quick(&chrony.uri());
    let out = run(&["exec", "--", "sh", "-c", "exit 7"], &envs(&settings));
    out.assert_exit(7);
    // execve: the workload is the same process, so its parent is our test.
    let out = run(
        &["exec", "--", "sh", "-c", "echo pid=$$ ppid=$PPID"],
        &envs(&settings),
    );
    out.assert_exit(0);
    let ppid = format!("ppid={}", std::process::id());
    assert!(out.stdout.contains(&ppid), "{out}");
    // The workload's stdout is its own: nothing of skewguard's before its first line.
    let mut json = settings.clone();
    json.push(("SKEWGUARD_OUTPUT", "json".into()));
    let out = run(&["exec", "--", "echo", r#"{"app":"log"}"#], &envs(&json));
    out.assert_exit(0);
    assert_eq!(out.stdout, "{\"app\":\"log\"}\n", "{out}");
    assert!(out.stderr.contains(r#""verdict":"ok""#), "{out}");
}

/// Runs `cmd` (stdout and stderr captured) for at most `bound`; `None` if it had to be killed.
fn output_within(cmd: &mut Command, bound: Duration) -> Option<std::process::Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + bound;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return child.wait_with_output().ok();
        }
        thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[test]
fn exec_hands_the_workload_default_signals_and_an_empty_mask() {
    let _room = support::Room::Timing.enter();
    let Some(chrony) = Chrony::start(None) else {
        return;
    };
    let settings = quick(&chrony.uri());
    // skewguard itself starts with SIGHUP ignored and SIGUSR1 blocked (as a
    // careless parent might leave them); the Rust runtime then ignores SIGPIPE.
    // Two workloads: grep reads its own status (a shell's own would show the
    // mask it holds while it spawns), and sh runs `yes` into a closed pipe.
    for workload in [
        &["grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"][..],
        &["sh", "-c", "yes | head -n 1"][..],
    ] {
        check_signals_of(&settings, workload);
    }
}

fn check_signals_of(settings: &[(&'static str, String)], workload: &[&str]) {
    let mut cmd = support::skewguard(&[&["exec", "--"][..], workload].concat());
    cmd.envs(envs(settings));
    // SAFETY: only async-signal-safe libc calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGUSR1);
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            Ok(())
        });
    }
    let out = output_within(&mut cmd, Duration::from_secs(20)).expect("exec finished");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    if workload[0] == "sh" {
        // With SIGPIPE at its default, `yes` dies quietly when `head` leaves.
        assert!(!stderr.contains("Broken pipe"), "{stderr}");
        assert_eq!(stdout, "y\n");
        return;
    }
    assert!(
        stdout.contains("SigBlk:\t0000000000000000"),
        "the workload inherited a signal mask\n{stdout}"
    );
    assert!(
        stdout.contains("SigIgn:\t0000000000000000"),
        "the workload inherited ignored signals (SIGPIPE is bit 0x1000)\n{stdout}"
    );
}

/// Sends `signal` to `pid`.
fn kill(pid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) on a process this test started; no memory is involved.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, signal) }, 0, "kill");
}

/// Waits for `child` for at most `bound`; its exit code, or `None` if it was still running (then killed).
fn exit_within(child: &mut std::process::Child, bound: Duration) -> Option<Option<i32>> {
    let deadline = Instant::now() + bound;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status.code());
        }
        thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// A `wait` on a source that never answers, with a long timeout: only a signal ends it soon.
fn endless_wait(silent: &Port, prefix: &[&str]) -> std::process::Child {
    let settings = quick(&silent.ntp_uri());
    let mut cmd = if prefix.is_empty() {
        support::skewguard(&["exec", "--", "true"])
    } else {
        let mut c = Command::new(prefix[0]);
        c.args(&prefix[1..])
            .arg(env!("CARGO_BIN_EXE_skewguard"))
            .args(["exec", "--", "true"]);
        support::clear_skewguard_env(&mut c);
        c
    };
    cmd.envs(envs(&settings))
        .env("SKEWGUARD_WAIT_TIMEOUT", "5m")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn")
}

#[test]
fn sigterm_and_sigint_end_the_wait_at_once() {
    let _room = support::Room::Timing.enter();
    let silent = Port::free();
    for (signal, code) in [(libc::SIGTERM, 143), (libc::SIGINT, 130)] {
        let mut child = endless_wait(&silent, &[]);
        thread::sleep(Duration::from_millis(800));
        kill(child.id(), signal);
        let got = exit_within(&mut child, Duration::from_secs(5));
        assert_eq!(got, Some(Some(code)), "signal {signal}");
    }
}

#[test]
fn sigterm_ends_the_wait_of_pid_1_in_a_pid_namespace() {
    let _room = support::Room::Timing.enter();
    if !support::prerequisite("unshare", "install util-linux") {
        return;
    }
    // Creating a PID namespace needs root (or a user namespace); say so where it is refused.
    let probe = Command::new("unshare")
        .args(["--fork", "--pid", "true"])
        .stderr(Stdio::piped())
        .output()
        .expect("run unshare");
    if !probe.status.success() {
        let why = String::from_utf8_lossy(&probe.stderr);
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI requires PID namespaces: {why}"
        );
        eprintln!(
            "SKIPPED: {}: unshare --pid refused: {why}",
            support::current_test()
        );
        return;
    }
    let silent = Port::free();
    for (signal, code) in [(libc::SIGTERM, 143), (libc::SIGINT, 130)] {
        let mut unshare = endless_wait(&silent, &["unshare", "--fork", "--pid", "--kill-child"]);
        // skewguard is unshare's only child, PID 1 of the new namespace.
        let children = format!("/proc/{0}/task/{0}/children", unshare.id());
        let deadline = Instant::now() + Duration::from_secs(5);
        let pid1 = loop {
            let text = std::fs::read_to_string(&children).unwrap_or_default();
            if let Some(pid) = text.split_whitespace().next().and_then(|p| p.parse().ok()) {
                break pid;
            }
            assert!(Instant::now() < deadline, "no child of unshare");
            thread::sleep(Duration::from_millis(10));
        };
        let status = std::fs::read_to_string(format!("/proc/{pid1}/status")).unwrap_or_default();
        let nspid = status.lines().find(|l| l.starts_with("NSpid:"));
        assert!(nspid.is_some_and(|l| l.ends_with("\t1")), "{status}");
        thread::sleep(Duration::from_millis(800));
        kill(pid1, signal);
        let got = exit_within(&mut unshare, Duration::from_secs(5));
        assert_eq!(got, Some(Some(code)), "PID 1, signal {signal}");
    }
}

#[test]
fn exec_of_a_missing_or_unexecutable_command_exits_like_a_shell() {
    let _room = support::Room::Timing.enter();
    let Some(chrony) = Chrony::start(None) else {
        return;
    };
    let settings = quick(&chrony.uri());
    let out = run(&["exec", "--", "/nonexistent/workload"], &envs(&settings));
    out.assert_exit(127);
    assert!(out.stderr.contains("/nonexistent/workload"), "{out}");
    let dir = TempDir::new("exec-noexec");
    let file = dir.path().join("not-executable");
    std::fs::write(&file, "#!/bin/sh\n").expect("write");
    let out = run(
        &["exec", "--", file.to_str().expect("utf-8")],
        &envs(&settings),
    );
    out.assert_exit(126);

    // An executable text file without `#!`: execve says ENOEXEC and no shell
    // steps in (a scratch image has none): 126 and a message that says why.
    use std::os::unix::fs::PermissionsExt;
    let script = dir.path().join("no-shebang");
    std::fs::write(&script, "exit 3\n").expect("write");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = run(
        &["exec", "--", script.to_str().expect("utf-8")],
        &envs(&settings),
    );
    out.assert_exit(126);
    assert!(out.stderr.contains("not an executable format"), "{out}");

    // A name without `/` is looked up in PATH, as a shell does.
    let named = dir.path().join("named-workload");
    std::fs::write(&named, "#!/bin/sh\nexit 7\n").expect("write");
    std::fs::set_permissions(&named, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut in_path = settings.clone();
    let path = format!("/nonexistent:{}", dir.path().display());
    in_path.push(("PATH", path));
    run(&["exec", "--", "named-workload"], &envs(&in_path)).assert_exit(7);
    run(&["exec", "--", "no-such-workload"], &envs(&in_path)).assert_exit(127);
}

#[test]
fn disabled_bypasses_the_guard_and_says_so() {
    let _room = support::Room::Timing.enter();
    // A source that never answers: only the bypass can make these pass at once.
    let silent = Port::free();
    let mut settings = quick(&silent.ntp_uri());
    settings.push(("SKEWGUARD_DISABLED", "true".into()));
    let out = run(&["wait"], &envs(&settings));
    out.assert_exit(0);
    assert!(out.elapsed < Duration::from_secs(1), "{out}");
    let out = run(&["check", "--output", "json"], &envs(&settings));
    out.assert_exit(0);
    assert_eq!(out.verdict(), "ok", "{out}");
    assert!(
        out.report()["note"]
            .as_str()
            .is_some_and(|n| n.contains("DISABLED")),
        "{out}"
    );
}

/// The log of `wait` as JSON lines: a failing attempt at WARN with numbers
/// under the report's names, one WARN line per source saying why, and the
/// retry pause it announces is the one it keeps.
#[test]
fn wait_logs_failures_at_warn_with_numbers_and_the_pause_it_keeps() {
    let _room = support::Room::Timing.enter();
    let Some(chrony) = Chrony::start(Some("+1200")) else {
        return;
    };
    let silent = Port::free();
    let mut settings = quick(&format!("{},{}", chrony.uri(), silent.ntp_uri()));
    settings.push(("SKEWGUARD_WAIT_TIMEOUT", "6s".into()));
    settings.push(("SKEWGUARD_INTERVAL", "2s".into()));
    settings.push(("SKEWGUARD_LOG_FORMAT", "json".into()));
    let out = run(&["wait"], &envs(&settings));
    out.assert_exit(1);
    let lines: Vec<serde_json::Value> = out
        .stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let attempts: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["fields"]["attempt"].is_u64())
        .collect();
    assert!(attempts.len() >= 2, "{out}");
    for a in &attempts {
        assert_eq!(a["level"], "WARN", "{a}");
        assert_eq!(a["fields"]["verdict"], "fail", "{a}");
        let offset = a["fields"]["offset_seconds"].as_f64().expect("a number");
        assert!((offset - 1200.0).abs() < 1.0, "{a}");
        assert!(a["fields"]["uncertainty_seconds"].is_f64(), "{a}");
    }
    // The first failing attempt says the cause, hint and fix at once; later
    // ones with the same cause and fix do not repeat them.
    for field in ["cause", "hint", "fix"] {
        assert!(
            attempts[0]["fields"][field]
                .as_str()
                .is_some_and(|t| !t.is_empty()),
            "the first attempt should carry {field}\n{out}"
        );
    }
    assert!(
        attempts[1..].iter().all(|a| a["fields"]["fix"].is_null()),
        "the same cause and fix are said once\n{out}"
    );
    // Each source without a measurement gets a WARN line with its reason.
    assert!(
        lines.iter().any(|l| l["level"] == "WARN"
            && l["fields"]["source"] == silent.ntp_uri().as_str()
            && l["fields"]["error"].is_string()),
        "{out}"
    );
    // The announced pause is the gap to the next attempt (rounds take milliseconds here).
    let time = |l: &serde_json::Value| {
        let t = l["timestamp"].as_str().expect("timestamp");
        // 2026-12-01T09:13:00.995962Z → seconds of the day
        let hms = &t[11..t.len() - 1];
        let mut parts = hms.split(':').map(|p| p.parse::<f64>().expect("number"));
        let (h, m, s) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        h * 3600.0 + m * 60.0 + s
    };
    // The last attempt announces no retry: none fits before the deadline.
    let final_attempt = attempts.last().expect("attempts");
    assert!(
        final_attempt["fields"]["retry_in_seconds"].is_null(),
        "{final_attempt}"
    );
    for pair in attempts.windows(2) {
        let said = pair[0]["fields"]["retry_in_seconds"]
            .as_f64()
            .expect("retry_in_seconds");
        let gap = time(pair[1]) - time(pair[0]);
        assert!(
            gap >= said - 0.05 && gap < said + 0.5,
            "said {said}, retried after {gap}\n{out}"
        );
    }
}

/// `--quiet` (and `SKEWGUARD_QUIET`): `check`, `wait` and `exec` print nothing
/// at all when the clock is fine or only warned about; a failure still prints.
#[test]
fn quiet_prints_nothing_on_ok_or_warn_and_still_reports_a_failure() {
    let _room = support::Room::Timing.enter();
    // 3 s off: past the default WARN_SKEW of 1 s, far below MAX_SKEW.
    let Some(chrony) = Chrony::start(Some("+3")) else {
        return;
    };
    let settings = quick(&chrony.uri());
    // A misspelt variable, whose warning QUIET silences too.
    let mut noisy = envs(&settings);
    noisy.push(("SKEWGUARD_SOURCE", "ntp://example.invalid"));
    for args in [
        &["check", "--quiet"][..],
        &["check", "--quiet", "true"],
        &["wait", "--quiet", "yes"],
        &["exec", "--quiet", "1", "--", "/bin/true"],
        &["exec", "--quiet", "--", "/bin/true"],
    ] {
        let out = run(args, &noisy);
        out.assert_exit(0);
        assert!(
            out.stdout.is_empty() && out.stderr.is_empty(),
            "{args:?}\n{out}"
        );
    }
    let mut by_env = noisy.clone();
    by_env.push(("SKEWGUARD_QUIET", "true"));
    let out = run(&["check"], &by_env);
    out.assert_exit(0);
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out}");
    // Without it the same warn is reported.
    let out = run(&["check"], &envs(&settings));
    out.assert_exit(0);
    assert!(out.stdout.starts_with("WARN"), "{out}");

    // Failures print: nothing answers.
    let silent = Port::free();
    let mut failing = quick(&silent.ntp_uri());
    failing.push(("SKEWGUARD_WAIT_TIMEOUT", "2s".into()));
    failing.push(("SKEWGUARD_QUIET", "true".into()));
    let out = run(&["check"], &envs(&failing));
    out.assert_exit(1);
    assert!(out.stdout.starts_with("UNKNOWN"), "{out}");
    let out = run(&["wait"], &envs(&failing));
    out.assert_exit(1);
    assert!(out.stderr.contains("UNKNOWN"), "{out}");
    let out = run(&["exec", "--", "/bin/true"], &envs(&failing));
    out.assert_exit(1);
    assert!(out.stderr.contains("not started"), "{out}");
}
