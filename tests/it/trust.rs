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
    let (leaf, pem) = TestCa::ca_as_leaf();
    let path = dir.path().join("self.pem");
    std::fs::write(&path, pem).expect("write");
    let https = HttpsDate::start(&leaf, DateHeader::Shifted(0));
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
fn a_server_clock_days_away_without_date_still_fails() {
    let _room = support::Room::Timing.enter();
    let dir = TempDir::new("shifted-no-date");
    let authority = TestCa::new();
    let ca = authority.write(dir.path());
    let https = HttpsDate::start(&authority.leaf_days(2, 30), DateHeader::Missing);
    let out = check(
        &[https.url()],
        Some(&ca),
        &[("SKEWGUARD_ON_UNKNOWN", "pass")],
    );
    assert_eq!(out.verdict(), "fail", "{out}");
    out.assert_exit(1);
    let s = out.source(&https.url());
    assert!(
        s["note"].as_str().unwrap_or_default().contains("gap alone"),
        "{out}"
    );
    // Local clock behind: the offset is at least the two-day gap.
    let lo = out.number("offset_seconds").unwrap_or(f64::NAN)
        - out.number("uncertainty_seconds").unwrap_or(f64::NAN);
    assert!(lo >= 2.0 * DAY as f64 - 5.0, "{out}");
    // Said as "at least" the gap, not as the ~300-year centre, and no cause
    // read from a size nobody measured (a dead RTC).
    let headline = out.report()["headline"].as_str().unwrap_or_default();
    assert!(headline.contains("local clock is at least 2 days"), "{out}");
    assert_ne!(out.report()["cause"], "rtc-lost-power", "{out}");
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
