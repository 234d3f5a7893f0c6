//! `https://` sources through real HTTP proxies (Debian's tinyproxy and squid)
//! to nginx serving TLS, and the trust stores a corporate network uses:
//! `SSL_CERT_FILE`, `SSL_CERT_DIR` (hashed names), a pinned self-signed
//! certificate. Each case reads the proxy's own log for proof of the path: the
//! `CONNECT` it carried, or under `NO_PROXY` that it saw none.

use std::path::Path;
use std::time::Duration;

use crate::support::proxy::{MuteProxy, NginxTls, Pki, Squid, Tinyproxy};
use crate::support::{self, run, run_bounded, Output, Port};

/// `check` of `sources` (JSON unless `text`), with a 2 s timeout and the given
/// variables (proxies, stores, `SKEWGUARD_CA_FILE`).
fn check(sources: &[&str], envs: &[(&str, &str)], text: bool) -> Output {
    let sources = sources.join(",");
    let mut all = vec![
        ("SKEWGUARD_SOURCES", sources.as_str()),
        ("SKEWGUARD_TIMEOUT", "2s"),
        ("SKEWGUARD_HTTP_BUDGET", "500ms"),
        ("SKEWGUARD_LOG", "trace"),
    ];
    all.extend_from_slice(envs);
    let output = if text { "text" } else { "json" };
    run(&["check", "--output", output], &all)
}

/// Prints the lines of a proxy's log that prove a case's path (shown with
/// `--nocapture`, for the record).
fn show_proof(case: &str, log: &str, want: &str) {
    for line in log.lines().filter(|l| l.contains(want)) {
        println!("proof [{case}]: {line}");
    }
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// nginx with a leaf of a fresh openssl CA for 127.0.0.1.
fn server() -> Option<(Pki, NginxTls)> {
    let pki = Pki::new()?;
    let (cert, key) = pki.leaf("server", "DNS:localhost,IP:127.0.0.1");
    let nginx = NginxTls::start(&cert, &key)?;
    Some((pki, nginx))
}

/// The source's entry; asserts it measured within its own bound of the true
/// offset (nginx runs on this clock: 0) and went through `via`.
fn assert_measured_via(out: &Output, url: &str, via: &str) {
    let s = out.source(url);
    assert_eq!(s["status"], "ok", "{out}");
    assert_eq!(s["authenticated"], true, "{out}");
    assert_eq!(s["via"], via, "{out}");
    let offset = s["offset_seconds"].as_f64().expect("offset");
    let bound = s["uncertainty_seconds"].as_f64().expect("bound");
    assert!(offset.abs() <= bound, "0 outside {offset} ±{bound}\n{out}");
    assert!(bound < 1.5, "bound {bound}\n{out}");
}

#[test]
fn https_goes_through_tinyproxy_and_squid_in_a_connect_tunnel() {
    let _room = support::Room::Timing.enter();
    let Some((pki, nginx)) = server() else { return };
    let (Some(tiny), Some(squid)) = (Tinyproxy::start(None), Squid::start(None)) else {
        return;
    };
    let ca = path(&pki.ca());
    let target = format!("CONNECT 127.0.0.1:{}", nginx.port());
    for (name, url) in [("tinyproxy", tiny.url()), ("squid", squid.url())] {
        let out = check(
            &[&nginx.url()],
            &[("SKEWGUARD_CA_FILE", &ca), ("HTTPS_PROXY", &url)],
            false,
        );
        assert_eq!(out.verdict(), "ok", "{name}\n{out}");
        assert_measured_via(&out, &nginx.url(), &url);
        assert_eq!(out.source(&nginx.url())["verified_by"], "ca-file", "{out}");
        // The text line and the lower-case variable say the same.
        let text = check(
            &[&nginx.url()],
            &[("SKEWGUARD_CA_FILE", &ca), ("https_proxy", &url)],
            true,
        );
        let want = format!("{} via {url}  ok", nginx.url());
        assert!(text.stdout.contains(&want), "{name}: no `{want}`\n{text}");
        assert!(
            text.stdout.contains("authenticated (SKEWGUARD_CA_FILE)"),
            "{text}"
        );
    }
    let tiny_log = tiny.log();
    show_proof("tinyproxy tunnel", &tiny_log, &target);
    let proof = tiny_log.lines().find(|l| l.contains(&target));
    assert!(proof.is_some(), "tinyproxy saw no `{target}`:\n{tiny_log}");
    let squid_log = squid.log_with("TCP_TUNNEL/200");
    show_proof("squid tunnel", &squid_log, "TCP_TUNNEL/200");
    let proof = squid_log
        .lines()
        .find(|l| l.contains("TCP_TUNNEL/200") && l.contains(&target[8..]));
    assert!(
        proof.is_some(),
        "squid tunnelled nothing to nginx:\n{squid_log}"
    );
    // The requests reached nginx (through the tunnels).
    assert!(nginx.log().contains("HEAD / HTTP/1.1"), "{}", nginx.log());
}

#[test]
fn credentials_are_accepted_and_never_printed() {
    let Some((pki, nginx)) = server() else { return };
    let (user, password) = ("alice", "s3cr3t-pw");
    let (Some(tiny), Some(squid)) = (
        Tinyproxy::start(Some((user, password))),
        Squid::start(Some((user, password))),
    ) else {
        return;
    };
    let ca = path(&pki.ca());
    // base64("alice:s3cr3t-pw"), the Proxy-Authorization value.
    let basic = "YWxpY2U6czNjcjN0LXB3";
    for url in [tiny.url(), squid.url()] {
        let with_credentials = url.replace("http://", &format!("http://{user}:{password}@"));
        for text in [false, true] {
            let out = check(
                &[&nginx.url()],
                &[
                    ("SKEWGUARD_CA_FILE", &ca),
                    ("HTTPS_PROXY", &with_credentials),
                ],
                text,
            );
            out.assert_exit(0);
            for secret in [password, basic] {
                assert!(
                    !out.stdout.contains(secret) && !out.stderr.contains(secret),
                    "the credentials were printed\n{out}"
                );
            }
            if !text {
                assert_measured_via(&out, &nginx.url(), &url);
            }
        }
    }
    let target = format!("CONNECT 127.0.0.1:{}", nginx.port());
    let tiny_log = tiny.log();
    show_proof("tinyproxy with credentials", &tiny_log, &target);
    assert!(tiny_log.contains(&target), "{tiny_log}");
    let squid_log = squid.log_with("TCP_TUNNEL/200");
    show_proof("squid with credentials", &squid_log, "TCP_TUNNEL/200");
    let proof = squid_log
        .lines()
        .find(|l| l.contains("TCP_TUNNEL/200") && l.contains(&format!("{} {user}", &target[8..])));
    assert!(
        proof.is_some(),
        "squid did not tunnel for {user}:\n{squid_log}"
    );
}

#[test]
fn wrong_credentials_are_a_refusal_naming_the_proxy_and_the_status() {
    let Some((pki, nginx)) = server() else { return };
    let Some(squid) = Squid::start(Some(("alice", "right"))) else {
        return;
    };
    let wrong = squid.url().replace("http://", "http://alice:wrong@");
    let out = check(
        &[&nginx.url()],
        &[
            ("SKEWGUARD_CA_FILE", &path(&pki.ca())),
            ("HTTPS_PROXY", &wrong),
        ],
        false,
    );
    assert_eq!(out.verdict(), "unknown", "{out}");
    let error = out.source(&nginx.url())["error"]
        .as_str()
        .unwrap_or_default();
    let want = format!(
        "proxy {} refused 127.0.0.1:{}: 407",
        squid.url(),
        nginx.port()
    );
    assert!(error.contains(&want), "no `{want}`\n{out}");
    assert!(error.contains("refused the credentials"), "{out}");
    assert!(
        !out.stdout.contains("wrong") && !out.stderr.contains(":wrong@"),
        "{out}"
    );
    let log = squid.log_with("TCP_DENIED/407");
    show_proof("squid, wrong credentials", &log, "TCP_DENIED/407");
    assert!(log.contains("TCP_DENIED/407"), "{log}");
    assert!(
        !nginx.log().contains("HEAD"),
        "nginx was reached: {}",
        nginx.log()
    );
}

#[test]
fn a_proxy_that_never_answers_or_a_closed_one_is_bounded_and_named() {
    let Some((pki, nginx)) = server() else { return };
    let ca = path(&pki.ca());
    let mute = MuteProxy::start();
    let envs = [
        ("SKEWGUARD_SOURCES", nginx.url()),
        ("SKEWGUARD_TIMEOUT", "1s".to_string()),
        ("SKEWGUARD_CA_FILE", ca.clone()),
        ("HTTPS_PROXY", mute.url()),
    ];
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // Bounded by TIMEOUT: the run ends on its own, well within this.
    let out = run_bounded(
        &["check", "--output", "json"],
        &envs,
        Duration::from_secs(15),
    );
    assert_eq!(out.verdict(), "unknown", "{out}");
    let error = out.source(&nginx.url())["error"]
        .as_str()
        .unwrap_or_default();
    let want = format!(
        "proxy {} did not answer CONNECT to 127.0.0.1:{} within 1",
        mute.url(),
        nginx.port()
    );
    assert!(error.contains(&want), "no `{want}`\n{out}");
    let seen = mute.log();
    show_proof("mute proxy", &seen, "CONNECT");
    assert!(
        seen.starts_with(&format!("CONNECT 127.0.0.1:{} HTTP/1.1\r\n", nginx.port())),
        "{seen:?}"
    );
    // A closed port.
    let closed = Port::free();
    let url = format!("http://127.0.0.1:{}", closed.number());
    let out = check(
        &[&nginx.url()],
        &[("SKEWGUARD_CA_FILE", &ca), ("HTTPS_PROXY", &url)],
        false,
    );
    let error = out.source(&nginx.url())["error"]
        .as_str()
        .unwrap_or_default();
    assert!(
        error.contains(&format!("cannot connect to proxy {url}")),
        "{out}"
    );
}

#[test]
fn no_proxy_goes_direct_by_address_and_by_port() {
    let Some((pki, nginx)) = server() else { return };
    let Some(tiny) = Tinyproxy::start(None) else {
        return;
    };
    let ca = path(&pki.ca());
    let by_port = format!("127.0.0.1:{}", nginx.port());
    for no_proxy in ["127.0.0.1", "127.0.0.0/8", "*", by_port.as_str()] {
        let out = check(
            &[&nginx.url()],
            &[
                ("SKEWGUARD_CA_FILE", &ca),
                ("HTTPS_PROXY", &tiny.url()),
                ("NO_PROXY", no_proxy),
            ],
            false,
        );
        assert_eq!(out.verdict(), "ok", "NO_PROXY={no_proxy}\n{out}");
        assert!(out.source(&nginx.url())["via"].is_null(), "{out}");
    }
    // Another port of the same host is not exempt.
    let other = format!("127.0.0.1:{}", nginx.port() ^ 1);
    let out = check(
        &[&nginx.url()],
        &[
            ("SKEWGUARD_CA_FILE", &ca),
            ("HTTPS_PROXY", &tiny.url()),
            ("no_proxy", &other),
        ],
        false,
    );
    assert_eq!(out.source(&nginx.url())["via"], tiny.url(), "{out}");
    let log = tiny.log();
    show_proof(
        "NO_PROXY, only the non-exempt run",
        &log,
        "Request (file descriptor",
    );
    let connects = log.matches("Request (file descriptor").count();
    assert_eq!(
        connects, 1,
        "only the last run went through tinyproxy:\n{log}"
    );
}

#[test]
fn ssl_cert_file_and_a_hashed_ssl_cert_dir_verify_through_a_proxy() {
    let Some((pki, nginx)) = server() else { return };
    let Some(tiny) = Tinyproxy::start(None) else {
        return;
    };
    let ca = path(&pki.ca());
    let dir = path(&pki.hashed_dir());
    let proxy = ("HTTPS_PROXY", tiny.url());
    let proxy = (proxy.0, proxy.1.as_str());
    let out = check(&[&nginx.url()], &[proxy, ("SSL_CERT_FILE", &ca)], false);
    assert_measured_via(&out, &nginx.url(), &tiny.url());
    assert_eq!(
        out.source(&nginx.url())["verified_by"],
        "ssl-cert-file",
        "{out}"
    );
    let out = check(&[&nginx.url()], &[proxy, ("SSL_CERT_DIR", &dir)], false);
    assert_measured_via(&out, &nginx.url(), &tiny.url());
    assert_eq!(
        out.source(&nginx.url())["verified_by"],
        "ssl-cert-dir",
        "{out}"
    );
    // Without the CA: UnknownIssuer, and the fix names the client's settings first.
    let out = check(&[&nginx.url()], &[proxy], false);
    assert_eq!(out.verdict(), "unknown", "{out}");
    let error = out.source(&nginx.url())["error"]
        .as_str()
        .unwrap_or_default();
    assert!(
        error.contains("UnknownIssuer") && error.contains("SSL_CERT_FILE"),
        "{out}"
    );
    let fix = out.report()["fix"].as_str().unwrap_or_default();
    assert!(fix.starts_with("the client lacks the CA"), "{out}");
    let log = tiny.log();
    show_proof(
        "SSL_CERT_FILE, SSL_CERT_DIR, no CA",
        &log,
        "CONNECT 127.0.0.1",
    );
    assert_eq!(
        log.matches(&format!("CONNECT 127.0.0.1:{}", nginx.port()))
            .count(),
        3,
        "{log}"
    );
}

#[test]
fn a_pinned_self_signed_certificate_passes_and_another_does_not() {
    let Some(pki) = Pki::new() else { return };
    let (cert, key) = pki.self_signed("appliance");
    let (other, _) = pki.self_signed("stranger");
    let Some(nginx) = NginxTls::start(&cert, &key) else {
        return;
    };
    let Some(tiny) = Tinyproxy::start(None) else {
        return;
    };
    let proxy = tiny.url();
    let out = check(
        &[&nginx.url()],
        &[("SKEWGUARD_CA_FILE", &path(&cert)), ("HTTPS_PROXY", &proxy)],
        false,
    );
    assert_eq!(out.verdict(), "ok", "{out}");
    assert_measured_via(&out, &nginx.url(), &proxy);
    assert_eq!(out.source(&nginx.url())["verified_by"], "pinned", "{out}");
    let out = check(
        &[&nginx.url()],
        &[
            ("SKEWGUARD_CA_FILE", &path(&other)),
            ("HTTPS_PROXY", &proxy),
        ],
        false,
    );
    assert_eq!(out.verdict(), "unknown", "{out}");
    let error = out.source(&nginx.url())["error"]
        .as_str()
        .unwrap_or_default();
    assert!(error.starts_with("verification failed"), "{out}");
    // The pin holds for the name it was made for only (`localhost` is in it, not this).
    let log = tiny.log();
    show_proof(
        "pinned, then another self-signed",
        &log,
        "CONNECT 127.0.0.1",
    );
    assert_eq!(
        log.matches(&format!("CONNECT 127.0.0.1:{}", nginx.port()))
            .count(),
        2,
        "{log}"
    );
}

#[test]
fn a_wrong_name_certificate_is_refused_through_a_proxy_too() {
    let Some(pki) = Pki::new() else { return };
    let (cert, key) = pki.leaf("elsewhere", "DNS:elsewhere.example");
    let Some(nginx) = NginxTls::start(&cert, &key) else {
        return;
    };
    let Some(tiny) = Tinyproxy::start(None) else {
        return;
    };
    let out = check(
        &[&nginx.url()],
        &[
            ("SKEWGUARD_CA_FILE", &path(&pki.ca())),
            ("HTTPS_PROXY", &tiny.url()),
        ],
        false,
    );
    assert_eq!(out.verdict(), "unknown", "{out}");
    let error = out.source(&nginx.url())["error"]
        .as_str()
        .unwrap_or_default();
    assert!(error.contains("NotValidForName"), "{out}");
    show_proof("wrong name", &tiny.log(), "CONNECT 127.0.0.1");
    assert!(
        tiny.log()
            .contains(&format!("CONNECT 127.0.0.1:{}", nginx.port())),
        "{}",
        tiny.log()
    );
}

#[test]
fn behind_a_proxy_failing_udp_sources_get_the_proxy_hint() {
    let Some(tiny) = Tinyproxy::start(None) else {
        return;
    };
    let closed = Port::free();
    let out = check(&[&closed.ntp_uri()], &[("HTTPS_PROXY", &tiny.url())], false);
    assert_eq!(out.verdict(), "unknown", "{out}");
    let fix = out.report()["fix"].as_str().unwrap_or_default();
    assert!(fix.contains(&format!("the proxy {}", tiny.url())), "{out}");
    assert!(
        fix.contains("NTP, NTS and Roughtime cannot cross an HTTP proxy, https:// sources can"),
        "{out}"
    );
    assert!(!fix.contains("UDP 123"), "{out}");
}

#[test]
fn plain_http_goes_to_the_proxy_in_absolute_form() {
    let Some(nginx) = support::Nginx::start(None) else {
        return;
    };
    let Some(tiny) = Tinyproxy::start(None) else {
        return;
    };
    let out = check(&[&nginx.url()], &[("HTTP_PROXY", &tiny.url())], false);
    assert_eq!(out.verdict(), "ok", "{out}");
    let s = out.source(&nginx.url());
    assert_eq!(s["via"], tiny.url(), "{out}");
    assert_eq!(s["authenticated"], false, "{out}");
    // HTTPS_PROXY alone does not apply to http://.
    let out = check(&[&nginx.url()], &[("HTTPS_PROXY", &tiny.url())], false);
    assert!(out.source(&nginx.url())["via"].is_null(), "{out}");
    let log = tiny.log();
    show_proof("plain http://", &log, "HEAD ");
    let want = format!("HEAD {} HTTP/1.1", nginx.url());
    assert!(log.contains(&want), "tinyproxy saw no `{want}`:\n{log}");
}
