//! `LOG_FORMAT=json`: every line any command writes on stderr is one JSON
//! object (the log's records, `wait`'s and `exec`'s final report, errors),
//! checked by parsing every stderr line of `check`, `wait`, `exec`, `serve`
//! and `health` runs against chrony 20 minutes ahead and a silent port.

use crate::support;

use std::thread;
use std::time::{Duration, Instant};

use support::{run, Chrony, Output, Port, Serve};

/// Every stderr line of `text`, parsed; panics naming the first that is not
/// one JSON object.
fn records(text: &str, what: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| match serde_json::from_str::<serde_json::Value>(l) {
            Ok(v) if v.is_object() && v["fields"]["message"].is_string() => v,
            _ => panic!("{what}: a stderr line that is no JSON record: {l:?}\n{text}"),
        })
        .collect()
}

fn stderr_records(out: &Output, what: &str) -> Vec<serde_json::Value> {
    records(&out.stderr, what)
}

#[test]
fn every_stderr_line_is_one_json_object() {
    let _room = support::Room::Timing.enter();
    let Some(chrony) = Chrony::start(Some("+1200")) else {
        return;
    };
    let silent = Port::free();
    let sources = format!("{},{}", chrony.uri(), silent.ntp_uri());
    let base = [
        ("SKEWGUARD_SOURCES", sources.as_str()),
        ("SKEWGUARD_TIMEOUT", "1s"),
        ("SKEWGUARD_HTTP_BUDGET", "0"),
        ("SKEWGUARD_INTERVAL", "1s"),
        ("SKEWGUARD_WAIT_TIMEOUT", "3s"),
        ("SKEWGUARD_LOG_FORMAT", "json"),
        // A misspelt variable: its warning is a record too.
        ("SKEWGUARD_SOURCE", "ntp://127.0.0.1:1"),
    ];

    let out = run(&["check", "--log", "info"], &base);
    out.assert_exit(1);
    let check = stderr_records(&out, "check");
    assert!(
        check
            .iter()
            .any(|r| r["fields"]["did_you_mean"] == "SKEWGUARD_SOURCES"),
        "{out}"
    );

    let out = run(&["wait"], &base);
    out.assert_exit(1);
    let wait = stderr_records(&out, "wait");
    let last = wait.last().expect("a final report");
    assert_eq!(last["level"], "WARN", "{out}");
    let fields = &last["fields"];
    assert_eq!(fields["verdict"], "fail", "{last}");
    let offset = fields["offset_seconds"].as_f64().expect("a number");
    assert!((offset - 1200.0).abs() < 1.0, "{last}");
    assert!(fields["max_skew_seconds"].is_f64(), "{last}");
    assert!(
        fields["sources"].as_array().is_some_and(|s| s.len() == 2),
        "{last}"
    );
    assert!(
        fields["message"]
            .as_str()
            .is_some_and(|m| m.contains("gave up after waiting 3s")),
        "{last}"
    );
    assert!(fields["fix"].is_string(), "{last}");

    let out = run(&["exec", "--", "/bin/true"], &base);
    out.assert_exit(1);
    let exec = stderr_records(&out, "exec");
    assert!(
        exec.iter().any(|r| r["level"] == "ERROR"
            && r["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("not started"))),
        "{out}"
    );
    // A workload that cannot be executed, past a bypassed guard.
    let mut bypassed = base.to_vec();
    bypassed.push(("SKEWGUARD_DISABLED", "true"));
    let out = run(&["exec", "--", "/nonexistent/workload"], &bypassed);
    out.assert_exit(127);
    let exec = stderr_records(&out, "exec of a missing workload");
    assert!(
        exec.iter()
            .any(|r| r["level"] == "ERROR" && r["fields"]["program"] == "/nonexistent/workload"),
        "{out}"
    );

    // Errors before and in the configuration.
    let out = run(&["check", "--max-skew", "5min"], &base);
    out.assert_exit(2);
    let error = stderr_records(&out, "a configuration error");
    assert_eq!(error.len(), 1, "{out}");
    assert_eq!(error[0]["level"], "ERROR", "{out}");
    assert_eq!(error[0]["fields"]["setting"], "--max-skew", "{out}");
    assert_eq!(error[0]["fields"]["value"], "5min", "{out}");
    let out = run(&["check", "--bogus", "1"], &base);
    out.assert_exit(2);
    stderr_records(&out, "a usage error");
    let out = run(&["health", "--log-format", "json", "not a url"], &[]);
    out.assert_exit(1);
    stderr_records(&out, "health");

    // serve: a failing round says its cause, hint and fix on the verdict line.
    let mut serve = Serve::start(&base);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !serve.log().contains("\"verdict\":\"fail\"") && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    let (code, _) = serve.stop(libc::SIGTERM);
    assert_eq!(code, Some(0), "{}", serve.log());
    let log = serve.log();
    let lines = records(&log, "serve");
    let verdict = lines
        .iter()
        .find(|r| r["fields"]["verdict"] == "fail" && r["fields"]["offset_seconds"].is_f64())
        .unwrap_or_else(|| panic!("no failing round logged\n{log}"));
    for field in ["cause", "hint", "fix"] {
        assert!(verdict["fields"][field].is_string(), "{field}: {verdict}");
    }
}
