//! `/metrics` of the built `serve` in every state it can be in, read in both
//! formats it negotiates and checked with the Prometheus project's own tools:
//! Debian's `promtool check metrics` for the text format 0.0.4 and Debian's
//! python3-prometheus-client OpenMetrics parser for OpenMetrics (missing →
//! SKIPPED, under `CI=true` a failure). States: before the first round, ok, warn, fail, unknown (every
//! source refused), one source erroring beside a good one, disabled, a source
//! whose path holds `"`, braces and a backslash (label values escaped).
//!
//! Real NTP peers are chronyd on loopback shifted by libfaketime (see `support`).

use crate::support;

use std::thread;
use std::time::{Duration, Instant};

use support::{http_get, openmetrics_parse, promtool, Chrony, HttpReply, Port, Serve};

/// Prometheus's own `Accept` header (scrape manager, 2.x).
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// How long a round against loopback peers may take to show in `/metrics`.
const ROUND_BOUND: Duration = Duration::from_secs(10);

/// `/metrics` with `accept` (none: no header).
fn scrape(serve: &Serve, accept: Option<&str>) -> HttpReply {
    let headers: Vec<(&str, &str)> = accept.map(|a| ("Accept", a)).into_iter().collect();
    let r = http_get(serve.addr(), "/metrics", &headers);
    assert_eq!(r.status, 200, "{r:?}\n{}", serve.log());
    r
}

/// The value of the sample `series` (name plus labels, exactly as encoded).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let v = l.strip_prefix(series)?.strip_prefix(' ')?;
        v.parse().ok()
    })
}

/// Waits until the verdict `state` is 1 in the classic text.
fn wait_for_verdict(serve: &Serve, state: &str) -> String {
    let series = format!("skewguard_verdict{{state=\"{state}\"}}");
    let deadline = Instant::now() + ROUND_BOUND;
    loop {
        let body = scrape(serve, None).body;
        if sample(&body, &series) == Some(1.0) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "no {state} verdict within {ROUND_BOUND:?}:\n{body}\n{}",
            serve.log()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Both formats of the current `/metrics` carry their content types, pass their
/// linters (`promtool check metrics` for the text 0.0.4, which it reads;
/// the Prometheus project's Python OpenMetrics parser for OpenMetrics).
/// `false`: a linter is missing.
fn check_both_formats(serve: &Serve, what: &str) -> bool {
    let text = scrape(serve, Some("text/plain;version=0.0.4"));
    let open = scrape(serve, Some(PROMETHEUS_ACCEPT));
    let plain = scrape(serve, None);
    assert_eq!(
        text.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert_eq!(plain.header("content-type"), text.header("content-type"));
    assert_eq!(
        open.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(open.body.ends_with("# EOF\n"), "{what}: {}", open.body);
    assert!(!text.body.contains("# EOF"), "{what}: {}", text.body);
    let Some((code, out)) = promtool(&["check", "metrics"], &text.body, Duration::from_secs(10))
    else {
        return false;
    };
    assert_eq!(
        code,
        Some(0),
        "{what}, text 0.0.4: promtool check metrics says:\n{out}\n{}",
        text.body
    );
    let Some((code, out)) = openmetrics_parse(&open.body, Duration::from_secs(10)) else {
        return false;
    };
    assert_eq!(
        code,
        Some(0),
        "{what}, OpenMetrics: the OpenMetrics parser says:\n{out}\n{}",
        open.body
    );
    true
}

#[test]
fn before_the_first_round_there_is_no_timestamp_and_both_formats_lint_clean() {
    let _room = support::Room::Timing.enter();
    // A source that never answers (a bound socket that reads nothing, so no
    // ICMP refusal ends the query early), with a timeout longer than the test.
    let port = Port::free();
    let _silent = std::net::UdpSocket::bind(("127.0.0.1", port.number())).expect("bind");
    let serve = Serve::start(&[
        ("SKEWGUARD_SOURCES", &port.ntp_uri()),
        ("SKEWGUARD_TIMEOUT", "20s"),
    ]);
    let body = scrape(&serve, None).body;
    assert_eq!(
        sample(&body, "skewguard_verdict{state=\"unknown\"}"),
        Some(1.0)
    );
    for absent in [
        "skewguard_last_measurement_timestamp_seconds",
        "skewguard_last_measurement_age_seconds",
    ] {
        assert_eq!(sample(&body, absent), None, "{absent}:\n{body}");
    }
    assert_eq!(sample(&body, "skewguard_interval_seconds"), Some(60.0));
    assert_eq!(sample(&body, "skewguard_stale_after_seconds"), Some(180.0));
    check_both_formats(&serve, "before the first round");
}

/// What a case is, the environment of `serve`, and the verdict it must reach.
type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);

#[test]
fn ok_warn_fail_and_an_erroring_source_lint_clean() {
    let _room = support::Room::Timing.enter();
    let Some(peers) = Chrony::start_all(&[None, Some("+120")]) else {
        return;
    };
    let refused = Port::free();
    let good = peers[0].uri();
    let shifted = peers[1].uri();
    let both = format!("{good},{}", refused.ntp_uri());
    let cases: [Case; 4] = [
        ("ok", &[("SKEWGUARD_SOURCES", &good)], "ok"),
        (
            "one source erroring beside a good one",
            &[("SKEWGUARD_SOURCES", &both), ("SKEWGUARD_TIMEOUT", "300ms")],
            "ok",
        ),
        (
            "warn",
            &[
                ("SKEWGUARD_SOURCES", &shifted),
                ("SKEWGUARD_WARN_SKEW", "60s"),
            ],
            "warn",
        ),
        (
            "fail",
            &[
                ("SKEWGUARD_SOURCES", &shifted),
                ("SKEWGUARD_MAX_SKEW", "90s"),
            ],
            "fail",
        ),
    ];
    for (what, envs, verdict) in cases {
        let serve = Serve::start(envs);
        let body = wait_for_verdict(&serve, verdict);
        let stamp = sample(&body, "skewguard_last_measurement_timestamp_seconds");
        assert!(stamp.is_some_and(|t| t > 1.7e9), "{what}:\n{body}");
        let age = sample(&body, "skewguard_last_measurement_age_seconds");
        assert!(
            age.is_some_and(|a| (0.0..30.0).contains(&a)),
            "{what}:\n{body}"
        );
        assert_eq!(sample(&body, "skewguard_disabled"), Some(0.0), "{what}");
        if !check_both_formats(&serve, what) {
            return;
        }
    }
}

#[test]
fn unknown_when_every_source_is_refused_lints_clean() {
    let _room = support::Room::Timing.enter();
    let refused = Port::free();
    let serve = Serve::start(&[
        ("SKEWGUARD_SOURCES", &refused.ntp_uri()),
        ("SKEWGUARD_TIMEOUT", "300ms"),
    ]);
    let deadline = Instant::now() + ROUND_BOUND;
    let series = format!(
        "skewguard_measurements_total{{source=\"{}\",result=\"error\"}}",
        refused.ntp_uri()
    );
    let body = loop {
        let body = scrape(&serve, None).body;
        if sample(&body, &series).is_some_and(|n| n >= 1.0) {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "no round:\n{body}\n{}",
            serve.log()
        );
        thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        sample(&body, "skewguard_verdict{state=\"unknown\"}"),
        Some(1.0)
    );
    assert!(
        sample(&body, "skewguard_offset_seconds").is_some_and(f64::is_nan),
        "{body}"
    );
    check_both_formats(&serve, "unknown");
}

#[test]
fn disabled_is_visible_and_lints_clean() {
    let _room = support::Room::Timing.enter();
    let refused = Port::free();
    let serve = Serve::start(&[
        ("SKEWGUARD_SOURCES", &refused.ntp_uri()),
        ("SKEWGUARD_DISABLED", "true"),
    ]);
    let body = wait_for_verdict(&serve, "ok");
    assert_eq!(sample(&body, "skewguard_disabled"), Some(1.0), "{body}");
    // Nothing was measured: no timestamp, no age.
    assert_eq!(
        sample(&body, "skewguard_last_measurement_timestamp_seconds"),
        None,
        "{body}"
    );
    check_both_formats(&serve, "disabled");
}

#[test]
fn holdover_after_the_source_goes_away_lints_clean() {
    let _room = support::Room::Timing.enter();
    let Some(chrony) = Chrony::start(None) else {
        return;
    };
    let serve = Serve::start(&[
        ("SKEWGUARD_SOURCES", &chrony.uri()),
        ("SKEWGUARD_INTERVAL", "1s"),
        ("SKEWGUARD_TIMEOUT", "300ms"),
    ]);
    wait_for_verdict(&serve, "ok");
    drop(chrony);
    let deadline = Instant::now() + ROUND_BOUND;
    let body = loop {
        let body = scrape(&serve, None).body;
        if sample(&body, "skewguard_holdover") == Some(1.0) {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "no holdover within {ROUND_BOUND:?}:\n{body}\n{}",
            serve.log()
        );
        thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        sample(&body, "skewguard_verdict{state=\"ok\"}"),
        Some(1.0),
        "{body}"
    );
    assert!(
        sample(&body, "skewguard_holdover_bound_seconds").is_some(),
        "{body}"
    );
    check_both_formats(&serve, "holdover");
}

#[test]
fn a_source_with_quotes_braces_and_a_backslash_lints_clean() {
    let _room = support::Room::Timing.enter();
    let refused = Port::free();
    let uri = format!(r#"http://127.0.0.1:{}/a"}}b\c{{x="1"#, refused.number());
    let serve = Serve::start(&[("SKEWGUARD_SOURCES", &uri), ("SKEWGUARD_TIMEOUT", "300ms")]);
    let escaped = uri.replace('\\', r"\\").replace('"', r#"\""#);
    let series = format!("skewguard_source_up{{source=\"{escaped}\"}}");
    let body = wait_for_verdict(&serve, "unknown");
    assert_eq!(sample(&body, &series), Some(0.0), "{series}:\n{body}");
    check_both_formats(&serve, "a source with quotes, braces and a backslash");
}
