//! `wait`, `exec`, the cache file and the emergency bypass, run as a user
//! would run them, against chrony under libfaketime on loopback.

mod support;

use std::thread;
use std::time::Duration;

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
    assert!(out.stdout.starts_with("OK"), "{out}");
    // Pauses are capped at INTERVAL=1s, so the repair is seen within a second or two.
    assert!(out.elapsed < Duration::from_secs(8), "{out}");
    // Each attempt is logged with the offset, so a stuck init container says why.
    assert!(out.stderr.contains("FAIL: local clock is"), "{out}");
    assert!(out.stderr.contains("attempt=1"), "{out}");
}

#[test]
fn wait_gives_up_at_its_timeout_with_the_explanation() {
    let Some(chrony) = Chrony::start(Some("+1200")) else {
        return;
    };
    let mut settings = quick(&chrony.uri());
    settings.push(("SKEWGUARD_WAIT_TIMEOUT", "3s".into()));
    let out = run(&["wait"], &envs(&settings));
    out.assert_exit(1);
    assert!(out.elapsed >= Duration::from_millis(2900), "{out}");
    assert!(out.elapsed < Duration::from_secs(6), "{out}");
    assert!(out.stdout.starts_with("FAIL: local clock is"), "{out}");
    assert!(out.stdout.contains("gave up after waiting 3s"), "{out}");
    assert!(out.stdout.contains("hint:"), "{out}");
}

#[test]
fn exec_never_starts_the_workload_on_a_bad_clock() {
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
    assert!(out.stdout.contains("ahead"), "{out}");
}

#[test]
fn exec_hands_over_pid_and_exit_status() {
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
}

#[test]
fn exec_of_a_missing_or_unexecutable_command_exits_like_a_shell() {
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
}

#[test]
fn disabled_bypasses_the_guard_and_says_so() {
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

#[test]
fn check_reuses_a_fresh_cached_result_instead_of_measuring() {
    let Some(chrony) = Chrony::start(Some("+1200")) else {
        return;
    };
    let dir = TempDir::new("cache");
    let cache = dir.path().join("skewguard.json");
    let mut settings = quick(&chrony.uri());
    settings.push(("SKEWGUARD_CACHE_FILE", cache.display().to_string()));
    settings.push(("SKEWGUARD_OUTPUT", "json".into()));
    let first = run(&["check"], &envs(&settings));
    first.assert_exit(1);
    assert!(cache.exists(), "{first}");
    // With the peer gone, a fresh measurement could only say unknown; the
    // cached fail comes back, with the same offset.
    drop(chrony);
    let second = run(&["check"], &envs(&settings));
    second.assert_exit(1);
    assert_eq!(second.verdict(), "fail", "{second}");
    assert_eq!(
        second.number("offset_seconds"),
        first.number("offset_seconds")
    );
    // A maximum age of zero forces a new measurement.
    settings.push(("SKEWGUARD_CACHE_MAX_AGE", "0".into()));
    let third = run(&["check"], &envs(&settings));
    assert_eq!(third.verdict(), "unknown", "{third}");
}
