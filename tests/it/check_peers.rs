//! `skewguard check` against real time servers on loopback: chronyd (NTP) and
//! nginx (HTTP `Date`), their clocks shifted by libfaketime.
//!
//! Offsets are reference minus local: a peer shifted by +1200 s reports +1200,
//! i.e. the local clock is *behind*. Without chrony, nginx or libfaketime the
//! tests print `SKIPPED: …` (and fail under `CI=true`).

use crate::support;

use support::{run, Chrony, Nginx, Output, Port};

/// How closely an NTP measurement of a loopback chronyd must match its shift.
const NTP_TOLERANCE: f64 = 0.005;
/// How closely the HTTP `Date` refinement must match a loopback nginx's shift.
const HTTP_TOLERANCE: f64 = 0.010;

/// `skewguard check` on `sources`, JSON report, plus `extra` settings.
fn check_json(sources: &[String], extra: &[(&str, &str)]) -> Output {
    check(sources, "json", extra)
}

/// `skewguard check` on `sources`, text report, plus `extra` settings.
fn check_text(sources: &[String], extra: &[(&str, &str)]) -> Output {
    check(sources, "text", extra)
}

fn check(sources: &[String], output: &str, extra: &[(&str, &str)]) -> Output {
    let sources = sources.join(",");
    let mut envs = vec![
        ("SKEWGUARD_SOURCES", sources.as_str()),
        ("SKEWGUARD_OUTPUT", output),
        ("SKEWGUARD_TIMEOUT", "2s"),
        // NTP's clock filter: of three queries keep the least delayed, so a
        // scheduling hiccup on a loaded machine does not land in the offset.
        ("SKEWGUARD_SAMPLES", "3"),
        ("SKEWGUARD_SAMPLE_INTERVAL", "20ms"),
    ];
    envs.extend_from_slice(extra);
    run(&["check"], &envs)
}

fn assert_near(what: &str, got: Option<f64>, want: f64, tolerance: f64, out: &Output) {
    let got = got.unwrap_or_else(|| panic!("{what} is null\n{out}"));
    assert!(
        (got - want).abs() <= tolerance,
        "{what} = {got:+.6}, want {want:+.6} ± {tolerance}\n{out}"
    );
}

/// The report's verdict and the exit code.
fn assert_verdict(out: &Output, verdict: &str, code: i32) {
    assert_eq!(out.verdict(), verdict, "verdict\n{out}");
    out.assert_exit(code);
}

/// The headline starts with the verdict in capitals (`FAIL: …`).
fn assert_headline(out: &Output, verdict: &str) {
    let prefix = verdict.to_uppercase();
    assert!(
        out.headline().starts_with(&prefix),
        "headline should start with {prefix:?}\n{out}"
    );
}

/// The JSON report of a single chrony source at `shift` (seconds): the combined
/// and the per-source offset match the shift, the error bounds are sane.
fn measures_shift(shift: Option<&str>, seconds: f64, verdict: &str, code: i32) {
    let Some(chrony) = Chrony::start(shift) else {
        return;
    };
    let out = check_json(&[chrony.uri()], &[]);
    assert_verdict(&out, verdict, code);
    assert_near(
        "offset_seconds",
        out.number("offset_seconds"),
        seconds,
        NTP_TOLERANCE,
        &out,
    );
    let uncertainty = out.number("uncertainty_seconds");
    assert!(
        uncertainty.is_some_and(|u| (0.0..NTP_TOLERANCE).contains(&u)),
        "uncertainty_seconds on loopback should be in [0, {NTP_TOLERANCE})\n{out}"
    );

    let source = out.source(&chrony.uri());
    assert_eq!(source["status"], "ok", "source status\n{out}");
    assert!(source["error"].is_null(), "source error\n{out}");
    assert_near(
        "sources[0].offset_seconds",
        source["offset_seconds"].as_f64(),
        seconds,
        NTP_TOLERANCE,
        &out,
    );
    for field in ["uncertainty_seconds", "rtt_seconds"] {
        assert!(
            source[field].as_f64().is_some_and(|v| v >= 0.0),
            "sources[0].{field} should be a number ≥ 0\n{out}"
        );
    }
}

// ---------------------------------------------------------------------------
// One NTP source: the offset is measured exactly, the verdict follows it

#[test]
fn ntp_unshifted_is_ok() {
    let _room = support::Room::Timing.enter();
    measures_shift(None, 0.0, "ok", 0);
}

#[test]
fn ntp_1200s_behind_fails() {
    let _room = support::Room::Timing.enter();
    measures_shift(Some("+1200"), 1200.0, "fail", 1);
}

#[test]
fn ntp_1200s_ahead_fails() {
    let _room = support::Room::Timing.enter();
    measures_shift(Some("-1200"), -1200.0, "fail", 1);
}

#[test]
fn ntp_fractional_shift_warns() {
    let _room = support::Room::Timing.enter();
    measures_shift(Some("+3.375"), 3.375, "warn", 0);
}

#[test]
fn ntp_1_5s_ahead_warns() {
    let _room = support::Room::Timing.enter();
    measures_shift(Some("-1.5"), -1.5, "warn", 0);
}

#[test]
fn ntp_2_5s_behind_warns() {
    let _room = support::Room::Timing.enter();
    measures_shift(Some("+2.5"), 2.5, "warn", 0);
}

#[test]
fn default_thresholds_come_from_the_aws_profile() {
    let _room = support::Room::Timing.enter();
    let Some(chrony) = Chrony::start(None) else {
        return;
    };
    let out = check_json(&[chrony.uri()], &[]);
    out.assert_exit(0);
    for (field, want) in [
        ("window_seconds", 300.0),
        ("max_skew_seconds", 150.0),
        ("warn_skew_seconds", 1.0),
    ] {
        assert_eq!(out.number(field), Some(want), "{field}\n{out}");
    }
}

// ---------------------------------------------------------------------------
// Threshold edges: 150 s of skew against limits just below and above it

fn threshold_edges(shift: &str, direction: &str) {
    let Some(chrony) = Chrony::start(Some(shift)) else {
        return;
    };
    let sources = [chrony.uri()];
    // (settings, verdict, exit code)
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, i32);
    let cases: &[Case] = &[
        (&[("SKEWGUARD_MAX_SKEW", "149s")], "fail", 1),
        (&[("SKEWGUARD_MAX_SKEW", "151s")], "warn", 0),
        (
            &[
                ("SKEWGUARD_WARN_SKEW", "151s"),
                ("SKEWGUARD_MAX_SKEW", "200s"),
            ],
            "ok",
            0,
        ),
    ];
    for (settings, verdict, code) in cases {
        let out = check_json(&sources, settings);
        assert_verdict(&out, verdict, *code);
        let max = settings
            .iter()
            .find(|(k, _)| *k == "SKEWGUARD_MAX_SKEW")
            .map(|(_, v)| {
                v.trim_end_matches('s')
                    .parse::<f64>()
                    .expect("whole seconds")
            });
        assert_eq!(
            out.number("max_skew_seconds"),
            max,
            "max_skew_seconds\n{out}"
        );

        let text = check_text(&sources, settings);
        text.assert_exit(*code);
        assert_headline(&text, verdict);
        if *verdict != "ok" {
            assert!(
                text.headline().contains(direction),
                "a {verdict} headline for a {shift} s peer should say {direction:?}\n{text}"
            );
        }
    }
}

#[test]
fn threshold_edges_local_clock_behind() {
    let _room = support::Room::Timing.enter();
    threshold_edges("+150", "behind");
}

#[test]
fn threshold_edges_local_clock_ahead() {
    let _room = support::Room::Timing.enter();
    threshold_edges("-150", "ahead");
}

#[test]
fn flags_override_the_environment() {
    let _room = support::Room::Timing.enter();
    let Some(chrony) = Chrony::start(Some("+150")) else {
        return;
    };
    let sources = chrony.uri();
    let out = run(
        &["check", "--max-skew", "149s", "--output", "json"],
        &[
            ("SKEWGUARD_SOURCES", sources.as_str()),
            ("SKEWGUARD_MAX_SKEW", "151s"),
            ("SKEWGUARD_OUTPUT", "text"),
        ],
    );
    assert_verdict(&out, "fail", 1);
}

// ---------------------------------------------------------------------------
// Several sources: majority, falsetickers, disagreement

#[test]
fn a_falseticker_is_outvoted() {
    let _room = support::Room::Timing.enter();
    let Some(peers) = Chrony::start_all(&[None, None, Some("+1200")]) else {
        return;
    };
    let uris: Vec<String> = peers.iter().map(Chrony::uri).collect();
    let out = check_json(&uris, &[]);
    assert_verdict(&out, "ok", 0);
    assert_near(
        "offset_seconds",
        out.number("offset_seconds"),
        0.0,
        NTP_TOLERANCE,
        &out,
    );
    assert_eq!(out.source(&uris[0])["status"], "ok", "{out}");
    assert_eq!(out.source(&uris[1])["status"], "ok", "{out}");
    assert_eq!(out.source(&uris[2])["status"], "falseticker", "{out}");
}

#[test]
fn a_majority_of_skewed_sources_wins() {
    let _room = support::Room::Timing.enter();
    let Some(peers) = Chrony::start_all(&[Some("+1200"), Some("+1200"), None]) else {
        return;
    };
    let uris: Vec<String> = peers.iter().map(Chrony::uri).collect();
    let out = check_json(&uris, &[]);
    assert_verdict(&out, "fail", 1);
    assert_near(
        "offset_seconds",
        out.number("offset_seconds"),
        1200.0,
        NTP_TOLERANCE,
        &out,
    );
    assert_eq!(out.source(&uris[2])["status"], "falseticker", "{out}");
}

#[test]
fn two_sources_that_disagree_give_unknown() {
    let _room = support::Room::Timing.enter();
    let Some(peers) = Chrony::start_all(&[None, Some("+1200")]) else {
        return;
    };
    let uris: Vec<String> = peers.iter().map(Chrony::uri).collect();
    let out = check_json(&uris, &[]);
    assert_verdict(&out, "unknown", 1);
    // Nothing is outvoted where no majority agrees.
    for uri in &uris {
        assert_eq!(out.source(uri)["status"], "no_majority", "{out}");
    }
    let text = check_text(&uris, &[]);
    text.assert_exit(1);
    assert_headline(&text, "unknown");
    assert!(
        text.stdout.to_lowercase().contains("disagree"),
        "the headline or hint should say that the sources disagree\n{text}"
    );
}

// ---------------------------------------------------------------------------
// No answer

#[test]
fn an_unreachable_source_gives_unknown() {
    let _room = support::Room::Timing.enter();
    // Reserved and never started: nothing listens on it.
    let silent = Port::free();
    let sources = [silent.ntp_uri()];
    let out = check_json(&sources, &[("SKEWGUARD_TIMEOUT", "1s")]);
    assert_verdict(&out, "unknown", 1);
    let source = out.source(&silent.ntp_uri());
    assert_eq!(source["status"], "error", "{out}");
    assert!(
        source["error"].as_str().is_some_and(|e| !e.is_empty()),
        "an error source says why\n{out}"
    );
    assert!(
        out.elapsed.as_secs_f64() < 10.0,
        "a 1 s timeout should bound the run\n{out}"
    );

    let text = check_text(&sources, &[("SKEWGUARD_TIMEOUT", "1s")]);
    text.assert_exit(1);
    assert_headline(&text, "unknown");

    let pass = check_json(
        &sources,
        &[
            ("SKEWGUARD_TIMEOUT", "1s"),
            ("SKEWGUARD_ON_UNKNOWN", "pass"),
        ],
    );
    assert_verdict(&pass, "unknown", 0);
}

// ---------------------------------------------------------------------------
// HTTP Date

#[test]
fn http_date_is_refined_below_a_second() {
    let _room = support::Room::Timing.enter();
    let Some(nginx) = Nginx::start(Some("-600.25")) else {
        return;
    };
    // `check` stops refining once the verdict is decided: ten minutes off is
    // certainly past MAX_SKEW after the first answer.
    let out = check_json(&[nginx.url()], &[]);
    assert_verdict(&out, "fail", 1);
    // The refinement itself (which `check` runs when more answers could
    // change the verdict), through the library with no verdict to stop it.
    let Ok(skewguard::proto::Source::Http(target)) = skewguard::proto::Source::parse(&nginx.url())
    else {
        panic!("{} is an http source", nginx.url());
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let outcome = runtime.block_on(skewguard::proto::http_date::query(
        &target,
        &skewguard::core::sample::QuerySettings::default(),
        &skewguard::os::clock::SystemClock,
    ));
    let sample = outcome.result.expect("nginx answers");
    // The bisection's estimate (nginx stamps Date from its live clock) holds
    // the truth within HTTP_TOLERANCE, or within its own stated half-width
    // when a loaded machine left it wider: a bound it states must hold.
    let estimate = sample.estimate.expect("an estimate");
    let shown = format!("{sample:?}");
    assert!(
        estimate.uncertainty < 0.1,
        "refined well below a second: {shown}"
    );
    assert!(
        (estimate.offset + 600.25).abs() <= HTTP_TOLERANCE.max(estimate.uncertainty),
        "{shown}"
    );
    // ... and the honest interval that votes, allowing for a cached or
    // rounded Date: it holds the truth.
    assert!(
        (sample.offset + 600.25).abs() <= sample.uncertainty && sample.uncertainty < 0.9,
        "{shown}"
    );
}

// ---------------------------------------------------------------------------
// Text report

#[test]
fn text_report_of_a_failure_names_direction_size_and_source() {
    let _room = support::Room::Timing.enter();
    let Some(chrony) = Chrony::start(Some("+1200")) else {
        return;
    };
    let out = check_text(&[chrony.uri()], &[]);
    out.assert_exit(1);
    assert_headline(&out, "fail");
    let headline = out.headline();
    assert!(headline.contains("behind"), "direction\n{out}");
    assert!(
        headline.contains("20m00s") || headline.contains("19m59s"),
        "size (20 minutes)\n{out}"
    );
    assert!(
        headline.contains("Signature expired"),
        "the error AWS answers\n{out}"
    );
    assert!(out.stdout.contains(&chrony.uri()), "source\n{out}");
}

// ---------------------------------------------------------------------------
// A source whose clock jumps between two checks

#[test]
fn a_restarted_peer_keeps_its_address() {
    let _room = support::Room::Timing.enter();
    let Some(mut chrony) = Chrony::start(None) else {
        return;
    };
    let uri = chrony.uri();
    assert_verdict(&check_json(std::slice::from_ref(&uri), &[]), "ok", 0);
    if !chrony.restart(Some("-1200")) {
        return;
    }
    assert_eq!(chrony.uri(), uri);
    let out = check_json(&[uri], &[]);
    assert_verdict(&out, "fail", 1);
    assert_near(
        "offset_seconds",
        out.number("offset_seconds"),
        -1200.0,
        NTP_TOLERANCE,
        &out,
    );
}

// ---------------------------------------------------------------------------
// The test peers themselves (independent of skewguard)

#[test]
fn peers_serve_their_shifted_clocks() {
    let _room = support::Room::Timing.enter();
    let Some(chrony) = Chrony::start(Some("+3.375")) else {
        return;
    };
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], chrony.port()));
    let reply = support::sntp_query(addr, std::time::Duration::from_secs(1))
        .unwrap_or_else(|e| panic!("chronyd does not answer: {e}\n{}", chrony.log()));
    assert!((reply.offset - 3.375).abs() < 0.001, "{reply:?}");
    assert_eq!((reply.leap, reply.stratum), (0, 3), "{reply:?}");

    let Some(nginx) = Nginx::start(Some("-600")) else {
        return;
    };
    let offset = support::http_date_offset(nginx.port()).expect("nginx answers");
    assert!((offset + 600.0).abs() < 1.5, "Date offset {offset}");
}

#[test]
fn ports_are_never_handed_out_twice() {
    let threads: Vec<_> = (0..8)
        .map(|_| std::thread::spawn(|| (0..16).map(|_| Port::free()).collect::<Vec<_>>()))
        .collect();
    let held: Vec<Port> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("thread"))
        .collect();
    let mut numbers: Vec<u16> = held.iter().map(Port::number).collect();
    numbers.sort_unstable();
    numbers.dedup();
    assert_eq!(numbers.len(), held.len());
}
