//! A source is its address: one server under two names is measured once and
//! votes once; a headline resting on fewer sources than configured names the
//! others; a lone source that is too few for `MIN_SOURCES` is not called
//! outvoted. Against real chronyd peers on loopback (one shifted 20 minutes
//! by libfaketime); skipped with a printed reason where chrony or libfaketime
//! is missing, failed under `CI=true`.

use crate::support;

use support::{run, Chrony, Output, Port};

fn check(sources: &str, extra: &[&str]) -> Output {
    let mut args = vec!["check", "--sources", sources, "--timeout", "1s"];
    args.extend_from_slice(extra);
    run(&args, &[])
}

#[test]
fn one_server_under_two_names_votes_once() {
    let _room = support::Room::Timing.enter();
    let Some(peers) = Chrony::start_all(&[Some("+1200"), None]) else {
        return;
    };
    let (off, good) = (peers[0].port(), peers[1].port());
    let sources = format!("ntp://127.0.0.1:{off},ntp://localhost:{off},ntp://127.0.0.1:{good}");

    let out = check(&sources, &["--output", "json"]);
    // Two servers that disagree: no majority, no verdict on the clock.
    assert_eq!(out.verdict(), "unknown", "{out}");
    let listed = out.report()["sources"].as_array().expect("sources");
    assert_eq!(listed.len(), 2, "one entry per server\n{out}");
    assert_eq!(listed[0]["status"], "no_majority", "{out}");
    assert_eq!(listed[0]["source"], format!("ntp://127.0.0.1:{off}"));
    assert_eq!(
        listed[0]["aliases"],
        serde_json::json!([format!("ntp://localhost:{off}")]),
        "{out}"
    );

    let text = check(&sources, &[]);
    text.assert_exit(1);
    assert!(
        text.stdout
            .contains(&format!("ntp://127.0.0.1:{off} (= ntp://localhost:{off})")),
        "shown once with all its names\n{text}"
    );
    assert!(
        !text.stdout.contains("FALSETICKER"),
        "nothing outvoted it\n{text}"
    );
    assert!(
        text.stdout.contains("measured (no majority agrees)"),
        "{text}"
    );
}

#[test]
fn a_headline_on_fewer_sources_names_the_others_and_a_lone_one_is_not_outvoted() {
    let _room = support::Room::Timing.enter();
    let Some(peer) = Chrony::start(None) else {
        return;
    };
    let silent = Port::free();
    let sources = format!("{},{}", peer.uri(), silent.ntp_uri());
    let out = check(&sources, &[]);
    out.assert_exit(0);
    let headline = out.headline();
    assert!(headline.starts_with("OK:"), "{out}");
    assert!(headline.contains("1 of 2 sources"), "{out}");
    assert!(
        headline.contains(&format!("no usable answer from {}", silent.ntp_uri())),
        "the failed source is named\n{out}"
    );

    let out = check(&peer.uri(), &["--min-sources", "2"]);
    out.assert_exit(1);
    assert!(
        out.headline()
            .contains("fewer than SKEWGUARD_MIN_SOURCES=2"),
        "{out}"
    );
    assert!(!out.stdout.contains("FALSETICKER"), "{out}");
    let json = check(&peer.uri(), &["--min-sources", "2", "--output", "json"]);
    assert_eq!(json.source(&peer.uri())["status"], "ok", "{json}");
}
