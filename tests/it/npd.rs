//! `skewguard check --output npd` as node-problem-detector runs it: the args
//! of the rule in k8s/node-problem-detector/skewguard-monitor.json, one status
//! line of at most 80 characters on stdout, exit 0 OK / 1 NonOK / 2 Unknown, in
//! every state (ok, warn, fail, unknown, unknown with ON_UNKNOWN=pass, disabled,
//! a configuration error). Real peers: chronyd on loopback shifted by
//! libfaketime; missing → SKIPPED (a failure under `CI=true`).

use crate::support;

use std::fs;
use std::process::Command;

use support::{locate, run, Chrony, Output, Port, TempDir};

/// NPD's `max_output_length` in the shipped config.
const MAX_LINE: usize = 80;

/// The shipped custom plugin monitor configuration.
fn monitor() -> serde_json::Value {
    let path = support::repo().join("k8s/node-problem-detector/skewguard-monitor.json");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The args NPD passes to skewguard.
fn plugin_args() -> Vec<String> {
    let m = monitor();
    m["rules"][0]["args"]
        .as_array()
        .expect("rules[0].args")
        .iter()
        .map(|a| a.as_str().expect("string arg").to_string())
        .collect()
}

/// Runs the plugin as NPD would, with `envs`.
fn plugin(envs: &[(&str, &str)]) -> Output {
    let args = plugin_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&args, envs)
}

/// One line of at most [`MAX_LINE`] characters on stdout, starting with `prefix`,
/// and exit `code`.
fn assert_status(out: &Output, code: i32, prefix: &str) {
    out.assert_exit(code);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one status line\n{out}");
    let chars = lines[0].chars().count();
    assert!(chars <= MAX_LINE, "{chars} characters\n{out}");
    assert!(lines[0].starts_with(prefix), "{prefix}…\n{out}");
}

#[test]
fn the_monitor_config_sets_clock_skewed_with_a_reason() {
    let m = monitor();
    assert_eq!(m["plugin"], "custom");
    assert_eq!(m["pluginConfig"]["max_output_length"], MAX_LINE);
    assert_eq!(m["conditions"][0]["type"], "ClockSkewed");
    assert!(m["conditions"][0]["reason"].is_string());
    let rule = &m["rules"][0];
    assert_eq!(rule["type"], "permanent");
    assert_eq!(rule["condition"], "ClockSkewed");
    assert_eq!(rule["reason"], "ClockSkewBreaksSigning");
    assert_eq!(rule["path"], "/usr/local/bin/skewguard");
    assert_eq!(plugin_args(), ["check", "--output", "npd"]);

    // The kustomization renders exactly this file into its ConfigMap (where
    // kubectl is installed: it is not a Debian package).
    let Some(kubectl) = locate("kubectl") else {
        eprintln!("kubectl not installed: the NPD kustomization was not rendered");
        return;
    };
    let dir = support::repo().join("k8s/node-problem-detector");
    let out = Command::new(kubectl)
        .arg("kustomize")
        .arg(&dir)
        .output()
        .expect("run kubectl kustomize");
    assert!(out.status.success(), "kubectl kustomize: {out:?}");
    let rendered = String::from_utf8_lossy(&out.stdout);
    assert!(rendered.contains("kind: ConfigMap"), "{rendered}");
    assert!(rendered.contains("skewguard-monitor.json: |"), "{rendered}");
    assert!(
        rendered.contains("\"condition\": \"ClockSkewed\""),
        "{rendered}"
    );
}

#[test]
fn ok_warn_and_fail_give_one_short_line_and_npd_exit_codes() {
    let _room = support::Room::Timing.enter();
    let Some(peers) = Chrony::start_all(&[None, Some("+2"), Some("+1200")]) else {
        return;
    };
    let refused = Port::free();
    let good_and_dead = format!("{},{}", peers[0].uri(), refused.ntp_uri());

    let ok = plugin(&[("SKEWGUARD_SOURCES", &good_and_dead)]);
    assert_status(&ok, 0, "OK: clock off by up to ");
    assert!(ok.stdout.contains("1/2 sources agree"), "{ok}");

    let warn = plugin(&[("SKEWGUARD_SOURCES", &peers[1].uri())]);
    assert_status(&warn, 0, "WARN: clock off by up to 2");

    let fail = plugin(&[("SKEWGUARD_SOURCES", &peers[2].uri())]);
    assert_status(&fail, 1, "FAIL: clock off by up to 20m");

    // A result served from the cache file is one line too, and says so.
    let dir = TempDir::new("npd-cache");
    let cache = dir.path().join("cache.json").display().to_string();
    let cached = [
        ("SKEWGUARD_SOURCES", peers[0].uri()),
        ("SKEWGUARD_CACHE_FILE", cache),
    ];
    let cached: Vec<(&str, &str)> = cached.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_status(&plugin(&cached), 0, "OK: ");
    drop(peers);
    assert_status(&plugin(&cached), 0, "OK (cached): ");
}

#[test]
fn unknown_is_npd_unknown_unless_on_unknown_passes() {
    let _room = support::Room::Timing.enter();
    let a = Port::free();
    let b = Port::free();
    let c = Port::free();
    let sources = format!("{},{},{}", a.ntp_uri(), b.ntp_uri(), c.ntp_uri());
    let envs = [
        ("SKEWGUARD_SOURCES", sources.as_str()),
        ("SKEWGUARD_TIMEOUT", "300ms"),
    ];
    let unknown = plugin(&envs);
    assert_status(&unknown, 2, "UNKNOWN");
    let mut passing = envs.to_vec();
    passing.push(("SKEWGUARD_ON_UNKNOWN", "pass"));
    assert_status(&plugin(&passing), 0, "UNKNOWN");
}

#[test]
fn disabled_is_ok_and_says_so() {
    let out = plugin(&[("SKEWGUARD_DISABLED", "true")]);
    assert_status(&out, 0, "OK: skewguard is disabled");
}

#[test]
fn a_configuration_error_is_exit_2_which_npd_reads_as_unknown() {
    let out = plugin(&[("SKEWGUARD_MAX_SKEW", "soon")]);
    out.assert_exit(2);
    assert!(out.stdout.is_empty(), "{out}");
    assert!(out.stderr.contains("SKEWGUARD_MAX_SKEW"), "{out}");
}
