//! Whole-program tests of trust-aware selection: authenticated `https://`
//! sources against forged plain-NTP majorities, DNS-only attackers,
//! certificates outside their validity by the local clock, and each
//! `SKEWGUARD_AUTH_SELECT` mode. Every peer is an in-process fake on
//! 127.0.0.1 (tests/it/support/tls.rs); the binary runs as a user would run it.

use crate::support;

use support::tls::{DateHeader, ForgedNtp, HttpsDate, TestCa};
use support::{run, Output, TempDir};

const DAY: i64 = 86_400;

/// `skewguard check --output json` with a short timeout and no refinement.
fn check(sources: &[String], ca: Option<&std::path::Path>, extra: &[(&str, &str)]) -> Output {
    let sources = sources.join(",");
    let ca = ca.map(|p| p.display().to_string());
    let mut envs: Vec<(&str, &str)> = vec![
        ("SKEWGUARD_SOURCES", &sources),
        ("SKEWGUARD_TIMEOUT", "1s"),
        ("SKEWGUARD_HTTP_BUDGET", "0"),
    ];
    if let Some(ca) = &ca {
        envs.push(("SKEWGUARD_CA_FILE", ca));
    }
    envs.extend_from_slice(extra);
    run(&["check", "--output", "json"], &envs)
}

/// One honest HTTPS source (CA-trusted, clock `https_shift` off) and two forged
/// NTP sources (`ntp_shift` off).
struct Layout {
    _dir: TempDir,
    ca: std::path::PathBuf,
    https: HttpsDate,
    ntp: [ForgedNtp; 2],
}

impl Layout {
    fn new(https_shift: i64, ntp_shift: f64) -> Layout {
        let dir = TempDir::new("trust");
        let authority = TestCa::new();
        let ca = authority.write(dir.path());
        let https = HttpsDate::start(
            &authority.leaf_days(-30, 365),
            DateHeader::Shifted(https_shift),
        );
        Layout {
            _dir: dir,
            ca,
            https,
            ntp: [ForgedNtp::start(ntp_shift), ForgedNtp::start(ntp_shift)],
        }
    }

    fn sources(&self) -> Vec<String> {
        vec![self.ntp[0].uri(), self.ntp[1].uri(), self.https.url()]
    }

    fn check(&self, extra: &[(&str, &str)]) -> Output {
        check(&self.sources(), Some(&self.ca), extra)
    }
}

#[test]
fn a_forged_ntp_majority_cannot_fail_a_good_clock() {
    let _room = support::Room::Timing.enter();
    let l = Layout::new(0, 600.0);
    let out = l.check(&[]);
    assert_eq!(out.verdict(), "ok", "{out}");
    out.assert_exit(0);
    let https = out.source(&l.https.url());
    assert_eq!(https["authenticated"], true, "{out}");
    assert_eq!(https["status"], "ok", "{out}");
    for n in &l.ntp {
        let s = out.source(&n.uri());
        assert_eq!(s["authenticated"], false, "{out}");
        assert_eq!(s["status"], "falseticker", "{out}");
    }
    let note = out.report()["disagreement"].as_str().unwrap_or_default();
    assert!(note.contains("disagree"), "{out}");
    // The text report says so in one line and marks the trust classes.
    let text = run(
        &["check"],
        &[
            ("SKEWGUARD_SOURCES", &l.sources().join(",")),
            ("SKEWGUARD_CA_FILE", &l.ca.display().to_string()),
            ("SKEWGUARD_TIMEOUT", "1s"),
            ("SKEWGUARD_HTTP_BUDGET", "0"),
        ],
    );
    println!("{}", text.stdout);
    assert!(text.stdout.contains("  authenticated"), "{text}");
    assert!(text.stdout.contains("  unauthenticated"), "{text}");
    assert_eq!(
        text.stdout
            .lines()
            .filter(|l| l.contains("disagree"))
            .count(),
        1,
        "{text}"
    );
}

#[test]
fn a_forged_ntp_majority_cannot_pass_a_bad_clock() {
    let _room = support::Room::Timing.enter();
    // HTTPS shows the local clock 10 minutes behind; forged NTP says 0.
    let l = Layout::new(600, 0.0);
    let out = l.check(&[]);
    assert_eq!(out.verdict(), "fail", "{out}");
    out.assert_exit(1);
    let offset = out.number("offset_seconds").unwrap_or(f64::NAN);
    assert!((offset - 600.0).abs() < 1.5, "{out}");
}

#[test]
fn auth_select_modes() {
    let _room = support::Room::Timing.enter();
    let l = Layout::new(0, 600.0);
    // ignore: one source, one vote: the forged majority wins.
    let out = l.check(&[("SKEWGUARD_AUTH_SELECT", "ignore")]);
    assert_eq!(out.verdict(), "fail", "{out}");
    assert!(out.report()["disagreement"].is_string(), "{out}");
    // require: the authenticated source decides alone.
    let out = l.check(&[("SKEWGUARD_AUTH_SELECT", "require")]);
    assert_eq!(out.verdict(), "ok", "{out}");
    // require without an authenticated answer: unknown, saying why.
    let ntp = ForgedNtp::start(0.0);
    let out = check(&[ntp.uri()], None, &[("SKEWGUARD_AUTH_SELECT", "require")]);
    assert_eq!(out.verdict(), "unknown", "{out}");
    assert!(out.report()["headline"]
        .as_str()
        .unwrap_or_default()
        .contains("SKEWGUARD_AUTH_SELECT=require"));
    // mix without an authenticated source: NTP votes as before.
    let out = check(&[ntp.uri()], None, &[]);
    assert_eq!(out.verdict(), "ok", "{out}");
    // A bad value is a configuration error naming the variable.
    let out = check(
        &[ntp.uri()],
        None,
        &[("SKEWGUARD_AUTH_SELECT", "sometimes")],
    );
    out.assert_exit(2);
    assert!(out.stderr.contains("SKEWGUARD_AUTH_SELECT"), "{out}");
}

#[test]
fn a_dns_only_attacker_gets_unknown_not_the_forged_verdict() {
    let _room = support::Room::Timing.enter();
    // DNS points the HTTPS name at the attacker, whose certificate no trusted
    // CA signed; the forged NTP source says the clock is fine (or 10 min off).
    let dir = TempDir::new("dns-attacker");
    let rogue = TestCa::new();
    let https = HttpsDate::start(&rogue.leaf_days(-30, 365), DateHeader::Shifted(600));
    for shift in [0.0, 600.0] {
        let ntp = ForgedNtp::start(shift);
        let out = check(
            &[ntp.uri(), https.url()],
            None,
            &[("SKEWGUARD_ON_UNKNOWN", "pass")],
        );
        assert_eq!(out.verdict(), "unknown", "{out}");
        let headline = out.report()["headline"].as_str().unwrap_or_default();
        assert!(headline.contains("man-in-the-middle"), "{out}");
        assert!(headline.contains("SKEWGUARD_CA_FILE"), "{out}");
        let e = out.source(&https.url())["error"]
            .as_str()
            .unwrap_or_default();
        assert!(e.contains("not signed by a trusted authority"), "{out}");
        // ignore: the operator says the NTP path is safe.
        let out = check(
            &[ntp.uri(), https.url()],
            None,
            &[("SKEWGUARD_AUTH_SELECT", "ignore")],
        );
        assert_ne!(out.verdict(), "unknown", "{out}");
    }
    drop(dir);
}

#[test]
fn tls_errors_are_in_words_with_the_fix() {
    let _room = support::Room::Timing.enter();
    let dir = TempDir::new("tls-words");
    let authority = TestCa::new();
    // Trusted and reached by name: fine. Untrusted: the fix is named.
    let ca = authority.write(dir.path());
    let https = HttpsDate::start(&authority.leaf_days(-1, 30), DateHeader::Shifted(0));
    let out = check(&[https.url_localhost()], Some(&ca), &[]);
    assert_eq!(out.verdict(), "ok", "{out}");
    let unknown = check(&[https.url()], None, &[]);
    let e = unknown.source(&https.url())["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        e.contains("SKEWGUARD_CA_FILE") && e.contains("man-in-the-middle"),
        "{unknown}"
    );
    // A self-signed CA certificate as the server's own: pinned when it is
    // the one in SKEWGUARD_CA_FILE, refused with the fix when another is.
    let (leaf, pem) = TestCa::ca_as_leaf();
    let path = dir.path().join("self.pem");
    std::fs::write(&path, pem).expect("write");
    let https = HttpsDate::start(&leaf, DateHeader::Shifted(0));
    let out = check(&[https.url()], Some(&path), &[]);
    assert_eq!(out.verdict(), "ok", "{out}");
    assert_eq!(out.source(&https.url())["verified_by"], "pinned", "{out}");
    let (_, other) = TestCa::ca_as_leaf();
    std::fs::write(&path, other).expect("write");
    let out = check(&[https.url()], Some(&path), &[]);
    let e = out.source(&https.url())["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(e.contains("presents a CA certificate as its own"), "{out}");
    assert!(!e.contains("OtherError"), "{e}");
}

#[test]
fn a_server_clock_days_away_fails_with_the_servers_offset() {
    let _room = support::Room::Timing.enter();
    // The server's certificate is valid by its own clock, not by the local one.
    for (shift_days, from, to) in [(3, 2, 30), (-3, -60, -2)] {
        let dir = TempDir::new("shifted-server");
        let authority = TestCa::new();
        let ca = authority.write(dir.path());
        let https = HttpsDate::start(
            &authority.leaf_days(from, to),
            DateHeader::Shifted(shift_days * DAY),
        );
        for on_unknown in ["fail", "pass"] {
            let out = check(
                &[https.url()],
                Some(&ca),
                &[("SKEWGUARD_ON_UNKNOWN", on_unknown)],
            );
            assert_eq!(out.verdict(), "fail", "{shift_days}d: {out}");
            out.assert_exit(1);
            let offset = out.number("offset_seconds").unwrap_or(f64::NAN);
            assert!(
                (offset - (shift_days * DAY) as f64).abs() < 2.0,
                "{shift_days}d: {out}"
            );
            let s = out.source(&https.url());
            assert_eq!(s["authenticated"], true, "{out}");
            assert!(
                s["note"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("date-exempted"),
                "{out}"
            );
        }
    }
}

#[test]
fn a_server_clock_days_away_without_date_is_evidence_not_a_vote() {
    let _room = support::Room::Timing.enter();
    let dir = TempDir::new("shifted-no-date");
    let authority = TestCa::new();
    let ca = authority.write(dir.path());
    let https = HttpsDate::start(&authority.leaf_days(2, 30), DateHeader::Missing);
    let out = check(&[https.url()], Some(&ca), &[]);
    // Nothing vouched for the time: no verdict from the certificate gap alone.
    assert_eq!(out.verdict(), "unknown", "{out}");
    let s = out.source(&https.url());
    assert_eq!(s["status"], "error", "{out}");
    let e = s["error"].as_str().unwrap_or_default();
    assert!(
        e.contains("outside this server certificate's validity"),
        "{out}"
    );
    // The gap still informs the hint, and no cause is read from a size nobody measured.
    assert_ne!(out.report()["cause"], "rtc-lost-power", "{out}");
}

/// Issue 18 case 1: a certificate that lapsed a minute ago, on a server that
/// then gives no usable time (closes, hangs, no `Date`, `Age`), beside two
/// honest NTP servers: a per-source error, never a vote, so the good clock
/// passes and the NTP servers are not outvoted.
#[test]
fn a_lapsed_certificate_without_a_usable_date_never_fails_a_good_clock() {
    let _room = support::Room::Timing.enter();
    let dir = TempDir::new("lapsed");
    let authority = TestCa::new();
    let ca = authority.write(dir.path());
    let now = support::tls::now_secs() as i64;
    let lapsed = authority.leaf(now - 30 * DAY, now - 60);
    let ntp = [ForgedNtp::start(0.0), ForgedNtp::start(0.0)];
    for behaviour in [
        DateHeader::CloseAfterHandshake,
        DateHeader::Hang,
        DateHeader::Missing,
        DateHeader::WithAge,
    ] {
        let https = HttpsDate::start(&lapsed, behaviour);
        let out = check(&[ntp[0].uri(), ntp[1].uri(), https.url()], Some(&ca), &[]);
        assert_eq!(out.verdict(), "ok", "{behaviour:?}: {out}");
        out.assert_exit(0);
        assert_eq!(
            out.source(&https.url())["status"],
            "error",
            "{behaviour:?}: {out}"
        );
        for n in &ntp {
            assert_eq!(out.source(&n.uri())["status"], "ok", "{behaviour:?}: {out}");
        }
        // Alone it decides nothing: unknown, not an authenticated FAIL.
        let out = check(&[https.url()], Some(&ca), &[]);
        assert_eq!(out.verdict(), "unknown", "{behaviour:?}: {out}");
    }
}

#[test]
fn a_really_expired_certificate_blames_the_server() {
    let _room = support::Room::Timing.enter();
    let dir = TempDir::new("expired");
    let authority = TestCa::new();
    let ca = authority.write(dir.path());
    // Expired 370 days ago, served by a server whose clock is right.
    let https = HttpsDate::start(&authority.leaf_days(-740, -370), DateHeader::Shifted(0));
    let out = check(&[https.url()], Some(&ca), &[]);
    assert_eq!(out.verdict(), "unknown", "{out}");
    let e = out.source(&https.url())["error"]
        .as_str()
        .unwrap_or_default();
    assert!(e.contains("by the server's own clock too"), "{out}");
    let hint = out.report()["hint"].as_str().unwrap_or_default();
    assert!(!hint.contains("clock itself"), "{out}");
    // The server was reached: the fix is on its side, not this network's.
    let fix = out.report()["fix"].as_str().unwrap_or_default();
    assert!(fix.contains("on the server's side"), "{out}");
    // Beside an NTP source that says 0, the verdict is ok.
    let ntp = ForgedNtp::start(0.0);
    let out = check(&[ntp.uri(), https.url()], Some(&ca), &[]);
    assert_eq!(out.verdict(), "ok", "{out}");
    out.assert_exit(0);
}

#[test]
fn metrics_show_trust_classes_and_the_disagreement() {
    let _room = support::Room::Timing.enter();
    let l = Layout::new(0, 600.0);
    let sources = l.sources().join(",");
    let ca = l.ca.display().to_string();
    let serve = support::Serve::start(&[
        ("SKEWGUARD_SOURCES", &sources),
        ("SKEWGUARD_CA_FILE", &ca),
        ("SKEWGUARD_TIMEOUT", "1s"),
        ("SKEWGUARD_HTTP_BUDGET", "0"),
        ("SKEWGUARD_INTERVAL", "1s"),
    ]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let series = |text: &str, name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_string)
    };
    loop {
        let text = support::http_get(serve.addr(), "/metrics", &[]).body;
        let https = format!(
            "skewguard_source_authenticated{{source=\"{}\"}}",
            l.https.url()
        );
        let ntp = format!(
            "skewguard_source_authenticated{{source=\"{}\"}}",
            l.ntp[0].uri()
        );
        if series(&text, "skewguard_auth_disagreement ").as_deref() == Some("1") {
            assert_eq!(series(&text, &https).as_deref(), Some("1"), "{text}");
            assert_eq!(series(&text, &ntp).as_deref(), Some("0"), "{text}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{text}\n{}",
            serve.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Issue 18 case 2 in `serve`: after an authenticated round, the HTTPS source
/// goes away and the two NTP sources turn forged (+600 s). Unauthenticated
/// sources alone may not move the verdict outside the authenticated
/// measurement's grown bound: holdover keeps it (200, OK (holdover)), and the
/// forged round says why it was not counted.
#[test]
fn in_serve_a_forged_ntp_majority_with_https_blocked_cannot_move_the_verdict() {
    let _room = support::Room::Timing.enter();
    let l = Layout::new(0, 0.0);
    let sources = l.sources().join(",");
    let ca = l.ca.display().to_string();
    let serve = support::Serve::start(&[
        ("SKEWGUARD_SOURCES", &sources),
        ("SKEWGUARD_CA_FILE", &ca),
        ("SKEWGUARD_INTERVAL", "300ms"),
        ("SKEWGUARD_TIMEOUT", "500ms"),
        ("SKEWGUARD_HTTP_BUDGET", "0"),
    ]);
    serve.wait_for("/readyz", std::time::Duration::from_secs(10), |r| {
        r.status == 200 && r.json()["sources"][2]["status"] == "ok"
    });
    let Layout { https, ntp, .. } = l;
    drop(https);
    for n in &ntp {
        n.shift_to(600.0);
    }
    let r = serve.wait_for("/readyz", std::time::Duration::from_secs(10), |r| {
        r.json().get("holdover").is_some()
    });
    let v = r.json();
    assert_eq!(r.status, 200, "{v}\n{}", serve.log());
    let headline = v["headline"].as_str().unwrap_or_default();
    assert!(headline.starts_with("OK (holdover)"), "{v}");
    assert!(headline.contains("only unauthenticated sources"), "{v}");
    // It stays so for several rounds: the forged rounds never replace the anchor.
    std::thread::sleep(std::time::Duration::from_secs(1));
    let r = serve.get("/readyz");
    assert_eq!(r.status, 200, "{}", r.json());
    assert!(r.json().get("holdover").is_some(), "{}", r.json());
}

/// Without an earlier authenticated measurement (a one-shot `check`), the
/// same attacker decides under `mix`: the documented limit (docs/trust.md);
/// `SKEWGUARD_AUTH_SELECT=require` refuses instead.
#[test]
fn a_one_shot_check_with_https_blocked_is_decided_by_ntp_unless_required() {
    let _room = support::Room::Timing.enter();
    let l = Layout::new(0, 600.0);
    let gone = l.https.url();
    let Layout {
        ca,
        https,
        ntp,
        _dir,
    } = l;
    drop(https);
    let sources = [ntp[0].uri(), ntp[1].uri(), gone];
    let out = check(&sources, Some(&ca), &[]);
    assert_eq!(out.verdict(), "fail", "{out}");
    let out = check(&sources, Some(&ca), &[("SKEWGUARD_AUTH_SELECT", "require")]);
    assert_eq!(out.verdict(), "unknown", "{out}");
}

/// Issue 18 case 2 with a cache: `check` measured through the HTTPS source
/// and wrote the cache; later the HTTPS source is gone and both NTP sources
/// say +600 s. The authenticated measurement is held (its bound grown by
/// MAX_DRIFT) instead of the forged verdict, and stays in the file.
#[test]
fn with_a_cache_a_forged_ntp_majority_with_https_blocked_is_held_off() {
    let _room = support::Room::Timing.enter();
    let l = Layout::new(0, 0.0);
    let dir = TempDir::new("trust-cache");
    let cache = dir.path().join("check.json").display().to_string();
    // CACHE_MAX_AGE 0: never reused as a result, only held against forgeries.
    let extra = [
        ("SKEWGUARD_CACHE_FILE", cache.as_str()),
        ("SKEWGUARD_CACHE_MAX_AGE", "0"),
    ];
    let out = l.check(&extra);
    assert_eq!(out.verdict(), "ok", "{out}");
    assert_eq!(out.source(&l.https.url())["status"], "ok", "{out}");
    let sources = l.sources();
    let Layout { ca, https, ntp, .. } = l;
    drop(https);
    for n in &ntp {
        n.shift_to(600.0);
    }
    for _ in 0..2 {
        let out = check(&sources, Some(&ca), &extra);
        assert_eq!(out.verdict(), "ok", "{out}");
        out.assert_exit(0);
        let headline = out.report()["headline"].as_str().unwrap_or_default();
        assert!(headline.starts_with("OK (holdover)"), "{out}");
        assert!(headline.contains("only unauthenticated sources"), "{out}");
    }
    // Without the cache the same round is the forged verdict (one-shot, `mix`).
    let out = check(&sources, Some(&ca), &[]);
    assert_eq!(out.verdict(), "fail", "{out}");
}

/// Issue 18 case 1 in `serve`: beside two honest NTP servers, a lapsed
/// certificate on a server that closes after the handshake never ends the
/// good verdict, round after round.
#[test]
fn in_serve_a_lapsed_certificate_without_a_date_never_fails_a_good_clock() {
    let _room = support::Room::Timing.enter();
    let dir = TempDir::new("lapsed-serve");
    let authority = TestCa::new();
    let ca = authority.write(dir.path()).display().to_string();
    let now = support::tls::now_secs() as i64;
    let https = HttpsDate::start(
        &authority.leaf(now - 30 * DAY, now - 60),
        DateHeader::CloseAfterHandshake,
    );
    let ntp = [ForgedNtp::start(0.0), ForgedNtp::start(0.0)];
    let sources = format!("{},{},{}", ntp[0].uri(), ntp[1].uri(), https.url());
    let serve = support::Serve::start(&[
        ("SKEWGUARD_SOURCES", &sources),
        ("SKEWGUARD_CA_FILE", &ca),
        ("SKEWGUARD_INTERVAL", "300ms"),
        ("SKEWGUARD_TIMEOUT", "500ms"),
    ]);
    serve.wait_for("/readyz", std::time::Duration::from_secs(10), |r| {
        r.status == 200 && r.json()["verdict"] == "ok"
    });
    for _ in 0..5 {
        std::thread::sleep(std::time::Duration::from_millis(300));
        let r = serve.get("/readyz");
        let v = r.json();
        assert_eq!(r.status, 200, "{v}\n{}", serve.log());
        assert_eq!(v["verdict"], "ok", "{v}");
        assert_eq!(v["sources"][2]["status"], "error", "{v}");
    }
}
