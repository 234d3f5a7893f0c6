//! Bad configuration: exit code 2, and one message on stderr that names the
//! variable (or flag), repeats the value given and shows the accepted form.
//!
//! Every run points its sources at a loopback port where nothing listens, so a
//! binary that wrongly accepted the setting still stays off the network.

use crate::support;

use support::{run, Output, Port};

/// Exit code for a configuration error.
const EX_CONFIG: i32 = 2;

/// Runs `skewguard check` with `envs` on top of a silent loopback source.
fn check_with(silent: &Port, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let sources = silent.ntp_uri();
    let mut all = vec![
        ("SKEWGUARD_SOURCES", sources.as_str()),
        ("SKEWGUARD_TIMEOUT", "1s"),
    ];
    // Later entries win, so a case may replace the sources.
    all.extend_from_slice(envs);
    let mut argv = vec!["check"];
    argv.extend_from_slice(args);
    run(&argv, &all)
}

/// Asserts exit 2 and that stderr holds every string of `names` and at least
/// one of `accepted` (different wordings of the accepted form).
fn assert_config_error(out: &Output, names: &[&str], accepted: &[&str]) {
    out.assert_exit(EX_CONFIG);
    for name in names {
        assert!(
            out.stderr.contains(name),
            "stderr should name {name:?}\n{out}"
        );
    }
    let lower = out.stderr.to_lowercase();
    assert!(
        accepted.iter().any(|a| lower.contains(&a.to_lowercase())),
        "stderr should show the accepted form (one of {accepted:?})\n{out}"
    );
}

/// One bad variable: (name, value, wordings of the accepted form).
const BAD_SETTINGS: &[(&str, &str, &[&str])] = &[
    (
        "SKEWGUARD_MAX_SKEW",
        "abc",
        &["duration", "90s", "2m30s", "150ms", "e.g."],
    ),
    ("SKEWGUARD_SOURCES", "ftp://x", &["ntp://", "https://"]),
    ("SKEWGUARD_PROFILE", "nope", &["aws-s3", "kerberos", "totp"]),
    ("SKEWGUARD_ON_UNKNOWN", "maybe", &["fail", "pass"]),
    ("SKEWGUARD_OUTPUT", "xml", &["json"]),
    (
        "SKEWGUARD_SAMPLES",
        "0",
        // "at least 1", "1 or more", "a positive integer", "greater than zero", …
        &["1", "positive", "zero"],
    ),
];

#[test]
fn bad_variables_exit_2_naming_variable_and_value() {
    let silent = Port::free();
    for (name, value, accepted) in BAD_SETTINGS {
        let out = check_with(&silent, &[], &[(name, value)]);
        assert_config_error(&out, &[name, value], accepted);
    }
}

#[test]
fn bad_values_given_as_flags_exit_2() {
    let silent = Port::free();
    let out = check_with(&silent, &["--max-skew", "abc"], &[]);
    out.assert_exit(EX_CONFIG);
    assert!(out.stderr.contains("abc"), "stderr names the value\n{out}");
    assert!(
        out.stderr.contains("--max-skew") || out.stderr.contains("SKEWGUARD_MAX_SKEW"),
        "stderr names the setting\n{out}"
    );
}

#[test]
fn an_unknown_flag_exits_2() {
    let silent = Port::free();
    let out = check_with(&silent, &["--bogus"], &[]);
    out.assert_exit(EX_CONFIG);
    assert!(
        out.stderr.contains("--bogus"),
        "stderr names the flag\n{out}"
    );
}

#[test]
fn an_unknown_variable_only_warns() {
    let silent = Port::free();
    let pass = [("SKEWGUARD_ON_UNKNOWN", "pass")];
    let baseline = check_with(&silent, &[], &pass);
    baseline.assert_exit(0);

    let out = check_with(
        &silent,
        &[],
        &[
            ("SKEWGUARD_ON_UNKNOWN", "pass"),
            ("SKEWGUARD_MAX_SKWE", "1s"),
        ],
    );
    out.assert_exit(0);
    assert!(
        out.stderr.contains("SKEWGUARD_MAX_SKWE"),
        "stderr should warn about the unknown variable by name\n{out}"
    );
    assert!(
        !baseline.stderr.contains("SKEWGUARD_MAX_SKWE"),
        "the warning belongs to the variable\n{baseline}"
    );
}

#[test]
fn a_non_utf8_environment_is_no_panic() {
    use std::os::unix::ffi::OsStrExt;
    let bad = std::ffi::OsStr::from_bytes(b"\xff\xfe");
    let run = |name: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_skewguard"))
            .args([
                "check",
                "--sources",
                "ntp://127.0.0.1:9",
                "--timeout",
                "100ms",
            ])
            .env(name, bad)
            .env("SKEWGUARD_ON_UNKNOWN", "pass")
            .output()
            .expect("run skewguard")
    };
    // Someone else's variable: ignored.
    let out = run("UNRELATED_BYTES");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // One of ours: a configuration error naming it.
    let out = run("SKEWGUARD_PROFILE");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("SKEWGUARD_PROFILE"),
        "{out:?}"
    );
}

/// Settings that used to switch the guard off without a word: each is refused
/// before anything is measured, naming the variable, the value and the form.
const DISARMING_SETTINGS: &[(&str, &str, &[&str])] = &[
    // humantime read `5M` as five months.
    (
        "SKEWGUARD_MAX_SKEW",
        "5M",
        &["ms, s, m, h or d", "lowercase"],
    ),
    ("SKEWGUARD_MAX_SKEW", "1y", &["ms, s, m, h or d"]),
    ("SKEWGUARD_WAIT_TIMEOUT", "5min", &["ms, s, m, h or d"]),
    // A threshold the signatures break before.
    (
        "SKEWGUARD_MAX_SKEW",
        "25m",
        &["below the 5m window", "no profile"],
    ),
    (
        "SKEWGUARD_MAX_SKEW",
        "5m",
        &["SKEWGUARD_PROFILE=aws-s3 or azure"],
    ),
    ("SKEWGUARD_WARN_SKEW", "10m", &["below the 5m window"]),
    // `tracing` would take `verbose` as a target name and log nothing.
    ("SKEWGUARD_LOG", "verbose", &["log level"]),
    ("SKEWGUARD_LOG", "INFO", &["lowercase"]),
    // One rule for every named value: exact, lowercase.
    (
        "SKEWGUARD_ON_UNKNOWN",
        "PASS",
        &["fail, pass (exactly as written here, in lowercase)"],
    ),
    ("SKEWGUARD_PROFILE", "AWS", &["aws, aws-s3", "lowercase"]),
    ("SKEWGUARD_DISABLED", "TRUE", &["lowercase"]),
    // Read at start whatever the sources (these point at one NTP port).
    (
        "SKEWGUARD_CA_FILE",
        "/nonexistent.pem",
        &["cannot open it", "PEM file"],
    ),
];

#[test]
fn disarming_settings_are_refused_before_anything_runs() {
    let silent = Port::free();
    for (name, value, accepted) in DISARMING_SETTINGS {
        let out = check_with(&silent, &[], &[(name, value)]);
        assert_config_error(&out, &[name, &format!("{value:?}")], accepted);
        assert!(out.stdout.is_empty(), "no report on stdout\n{out}");
    }
    // The same as a flag, and from `exec`, whose workload never starts.
    let dir = support::TempDir::new("config-exec");
    let marker = dir.path().join("started");
    let script = format!("touch {}", marker.display());
    let sources = silent.ntp_uri();
    let out = run(
        &["exec", "--max-skew", "25m", "--", "sh", "-c", &script],
        &[("SKEWGUARD_SOURCES", &sources)],
    );
    // Given as a flag, it is named as the flag.
    assert_config_error(&out, &["--max-skew", "25m"], &["window"]);
    assert!(!marker.exists(), "the workload must not start\n{out}");
}

#[test]
fn an_unusable_ca_file_is_a_configuration_error_for_every_command() {
    let silent = Port::free();
    let dir = support::TempDir::new("config-ca");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").expect("write");
    let garbage = garbage.display().to_string();
    let sources = silent.ntp_uri();
    for command in ["check", "wait"] {
        let out = run(
            &[command],
            &[
                ("SKEWGUARD_SOURCES", &sources),
                ("SKEWGUARD_CA_FILE", &garbage),
                ("SKEWGUARD_WAIT_TIMEOUT", "20s"),
            ],
        );
        assert_config_error(
            &out,
            &["SKEWGUARD_CA_FILE", &garbage],
            &["no PEM certificate"],
        );
        assert!(
            out.elapsed < std::time::Duration::from_secs(10),
            "refused at once, not retried\n{out}"
        );
    }
}

#[test]
fn a_bare_skewguard_prints_usage_on_stderr_and_exits_2() {
    let out = run(&[], &[]);
    out.assert_exit(EX_CONFIG);
    assert!(out.stdout.is_empty(), "{out}");
    assert!(out.stderr.contains("no command given"), "{out}");
    assert!(out.stderr.contains("usage: skewguard <COMMAND>"), "{out}");
    // Asked for, help goes to stdout and exits 0.
    let out = run(&["--help"], &[]);
    out.assert_exit(0);
    assert!(out.stdout.contains("usage: skewguard <COMMAND>"), "{out}");
}

#[test]
fn each_command_help_shows_its_own_settings_and_exit_codes() {
    let help = |command: &str| {
        let out = run(&[command, "--help"], &[]);
        out.assert_exit(0);
        out.stdout
    };
    let check = help("check");
    assert!(check.contains("usage: skewguard check"), "{check}");
    for s in ["SKEWGUARD_CACHE_FILE", "SKEWGUARD_MAX_SKEW", "--output"] {
        assert!(check.contains(s), "check --help shows {s}\n{check}");
    }
    assert!(!check.contains("SKEWGUARD_LISTEN"), "{check}");
    let health = help("health");
    assert!(
        health.contains("SKEWGUARD_LISTEN") && health.contains("--timeout"),
        "{health}"
    );
    assert!(!health.contains("SKEWGUARD_SOURCES"), "{health}");
    assert!(health.contains("Docker reserves 2"), "{health}");
    assert!(
        !health.lines().any(|l| l.trim_start().starts_with("2 ")),
        "health lists no exit code 2\n{health}"
    );
    let exec = help("exec");
    assert!(
        exec.contains("-- CMD [ARGS…]") && exec.contains("127"),
        "{exec}"
    );
    assert!(exec.contains("SKEWGUARD_WAIT_TIMEOUT"), "{exec}");
    let serve = help("serve");
    assert!(serve.contains("SKEWGUARD_STALE_AFTER") && !serve.contains("SKEWGUARD_CACHE_FILE"));
    assert_ne!(check, serve);
}

/// Errors name what the user typed, with the nearest form that is accepted:
/// the flag for a value given as a flag, `--` for `exec`, brackets for an
/// IPv6 source, the setting a misspelt variable was meant as.
#[test]
fn errors_name_what_was_typed_and_the_form_meant() {
    let silent = Port::free();
    let out = check_with(&silent, &["--max-skew", "5min"], &[]);
    assert_config_error(&out, &["--max-skew", "5min"], &["did you mean 5m?"]);
    assert!(!out.stderr.contains("SKEWGUARD_MAX_SKEW"), "{out}");
    // The same value from the environment is named as the variable.
    let out = check_with(&silent, &[], &[("SKEWGUARD_MAX_SKEW", "5min")]);
    assert_config_error(&out, &["SKEWGUARD_MAX_SKEW", "5min"], &["5m?"]);
    let out = check_with(&silent, &["--profile", "aws_s3"], &[]);
    assert_config_error(&out, &["--profile"], &["did you mean aws-s3?"]);

    let out = run(&["exec", "/bin/true"], &[]);
    assert_config_error(&out, &["exec"], &["`skewguard exec -- /bin/true`"]);

    let out = check_with(&silent, &[], &[("SKEWGUARD_SOURCES", "ntp://::1:123")]);
    assert_config_error(&out, &["ntp://::1:123"], &["`ntp://[::1]:123`"]);
    let out = check_with(&silent, &[], &[("SKEWGUARD_SOURCES", "https://::1:8443/x")]);
    assert_config_error(&out, &["https://::1:8443/x"], &["`https://[::1]:8443/x`"]);

    let out = check_with(&silent, &["--max-skwe", "1s"], &[]);
    assert_config_error(&out, &["--max-skwe"], &["did you mean `--max-skew`?"]);

    let out = check_with(
        &silent,
        &[],
        &[
            ("SKEWGUARD_ON_UNKNOWN", "pass"),
            ("SKEWGUARD_SOURCE", "ntp://127.0.0.1:1"),
        ],
    );
    out.assert_exit(0);
    assert!(
        out.stderr.contains("did you mean SKEWGUARD_SOURCES?"),
        "{out}"
    );
}

/// `health --help` speaks of what `health` does with each setting.
#[test]
fn health_help_describes_the_probe() {
    let out = run(&["health", "--help"], &[]);
    out.assert_exit(0);
    let timeout = out
        .stdout
        .lines()
        .find(|l| l.contains("SKEWGUARD_TIMEOUT"))
        .unwrap_or_else(|| panic!("no TIMEOUT line\n{out}"));
    assert!(!timeout.contains("one query of one source"), "{timeout}");
    assert!(timeout.contains("whole probe"), "{timeout}");
}
