//! Whole-program tests of the `nts://` source against a real NTS server:
//! Debian's chrony 4.3 serving NTS-KE with a certificate from a test CA made
//! here, its clock shifted by libfaketime. Also a relay that flips one byte of
//! a genuine NTS reply, and in-process fakes for key-exchange failures.

use crate::support;

use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::tls::{server_config, TestCa};
use support::{run, Chrony, Output, TempDir};

fn check(sources: &str, ca: &std::path::Path, extra: &[(&str, &str)]) -> Output {
    let ca = ca.display().to_string();
    let mut envs = vec![
        ("SKEWGUARD_SOURCES", sources),
        ("SKEWGUARD_CA_FILE", ca.as_str()),
        ("SKEWGUARD_TIMEOUT", "2s"),
        ("SKEWGUARD_MAX_SKEW", "4m"),
    ];
    envs.extend_from_slice(extra);
    run(&["check", "--output", "json"], &envs)
}

/// A CA in a temp dir and a leaf for localhost signed by it.
fn authority() -> (TempDir, std::path::PathBuf, support::tls::Leaf) {
    let dir = TempDir::new("nts-ca");
    let ca = TestCa::new();
    let path = ca.write(dir.path());
    (dir, path, ca.leaf_days(-1, 30))
}

#[test]
fn nts_measures_chrony_shifts_and_is_authenticated() {
    let _room = support::Room::Timing.enter();
    let (_dir, ca, leaf) = authority();
    for (shift, want) in [("+1200", 1200.0), ("-400.5", -400.5), ("+2.25", 2.25)] {
        let Some(chrony) = Chrony::start_nts(Some(shift), &leaf.cert_pem, &leaf.key_pem) else {
            return;
        };
        let uri = chrony.nts_uri();
        let out = check(&uri, &ca, &[]);
        let s = out.source(&uri);
        let offset = s["offset_seconds"].as_f64().unwrap_or(f64::NAN);
        // The truth within 5 ms, or within the stated bound when a loaded
        // machine widened it (the bound is the promise; 5 ms is the goal).
        let bound = s["uncertainty_seconds"].as_f64().unwrap_or(0.0).max(0.005);
        assert!(
            (offset - want).abs() <= bound,
            "{shift}: offset {offset}\n{out}\nchrony log:\n{}",
            chrony.log()
        );
        assert_eq!(s["authenticated"], true, "{out}");
        assert_eq!(s["status"], "ok", "{out}");
        println!("nts {shift}: measured {offset:+.6} s");
    }
}

#[test]
fn nts_without_the_ca_is_a_verification_failure() {
    let _room = support::Room::Timing.enter();
    let (_dir, _ca, leaf) = authority();
    let Some(chrony) = Chrony::start_nts(None, &leaf.cert_pem, &leaf.key_pem) else {
        return;
    };
    let uri = chrony.nts_uri();
    let out = run(
        &["check", "--output", "json"],
        &[
            ("SKEWGUARD_SOURCES", &format!("{uri},{}", chrony.uri())),
            ("SKEWGUARD_TIMEOUT", "2s"),
        ],
    );
    assert_eq!(out.verdict(), "unknown", "{out}");
    let e = out.source(&uri)["error"].as_str().unwrap_or_default();
    assert!(
        e.contains("UnknownIssuer") && e.contains("SKEWGUARD_CA_FILE"),
        "{out}"
    );
}

/// chronyd names 127.0.0.2 as its NTP server in the key exchange; a relay
/// there forwards to chronyd on 127.0.0.1 and flips one byte of every reply:
/// the NTS source must error, not count.
#[test]
fn nts_a_flipped_byte_in_a_genuine_reply_is_refused() {
    let _room = support::Room::Timing.enter();
    let (_dir, ca, leaf) = authority();
    let Some(chrony) = Chrony::start_nts_with(
        Some("+1200"),
        &leaf.cert_pem,
        &leaf.key_pem,
        "ntsntpserver 127.0.0.2\n",
    ) else {
        return;
    };
    let flips = Arc::new(AtomicUsize::new(0));
    let _relay = flipping_relay(chrony.port(), 60, flips.clone());
    let uri = chrony.nts_uri();
    let out = check(&uri, &ca, &[("SKEWGUARD_TIMEOUT", "1s")]);
    let s = out.source(&uri);
    assert_eq!(s["status"], "error", "{out}");
    let e = s["error"].as_str().unwrap_or_default();
    assert!(e.contains("authenticator does not verify"), "{out}");
    assert!(
        flips.load(Ordering::SeqCst) >= 1,
        "the relay saw no reply\n{out}"
    );
}

/// Relays UDP from 127.0.0.2:`port` to 127.0.0.1:`port`, flipping the lowest
/// bit of byte `at` of each reply. Runs for 10 s.
fn flipping_relay(port: u16, at: usize, flips: Arc<AtomicUsize>) -> std::thread::JoinHandle<()> {
    let front = UdpSocket::bind(("127.0.0.2", port)).expect("bind relay front");
    let back = UdpSocket::bind("127.0.0.1:0").expect("bind relay back");
    front
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    back.set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    std::thread::spawn(move || {
        let until = std::time::Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 4096];
        while std::time::Instant::now() < until {
            let Ok((n, client)) = front.recv_from(&mut buf) else {
                continue;
            };
            if back.send_to(&buf[..n], ("127.0.0.1", port)).is_err() {
                continue;
            }
            let Ok((m, _)) = back.recv_from(&mut buf) else {
                continue;
            };
            if m > at {
                buf[at] ^= 1;
                flips.fetch_add(1, Ordering::SeqCst);
            }
            let _ = front.send_to(&buf[..m], client);
        }
    })
}

// ---- fakes for key-exchange failures ----

/// A TLS server on 127.0.0.1 that answers each connection with `reply`
/// (records), offering `alpn`.
fn fake_ke(leaf: &support::tls::Leaf, alpn: &[&[u8]], reply: Vec<u8>) -> u16 {
    fake_ke_with(server_config(leaf, alpn), reply)
}

/// A key-exchange connection of a fake server.
type KeStream = rustls::StreamOwned<rustls::ServerConnection, std::net::TcpStream>;

/// Accepts one key-exchange connection: TLS over `tcp` (3 s read timeout) and
/// the client's request records read; false when that read failed.
fn accept_ke(
    tcp: std::net::TcpStream,
    config: &Arc<rustls::ServerConfig>,
) -> Option<(KeStream, bool)> {
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(3)));
    let conn = rustls::ServerConnection::new(config.clone()).ok()?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    let mut buf = [0u8; 64];
    let read = s.read(&mut buf).is_ok();
    Some((s, read))
}

fn fake_ke_with(config: Arc<rustls::ServerConfig>, reply: Vec<u8>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for tcp in listener.incoming().take(4) {
            let Ok(tcp) = tcp else { continue };
            let Some((mut s, _)) = accept_ke(tcp, &config) else {
                continue;
            };
            let _ = s.write_all(&reply);
            let _ = s.flush();
        }
    });
    port
}

fn record(out: &mut Vec<u8>, critical: bool, kind: u16, body: &[u8]) {
    let head = kind | if critical { 0x8000 } else { 0 };
    out.extend_from_slice(&head.to_be_bytes());
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(body);
}

#[test]
fn nts_key_exchange_failures_are_clear_errors() {
    let _room = support::Room::Timing.enter();
    let (_dir, ca, leaf) = authority();
    let good_head = |out: &mut Vec<u8>| {
        record(out, true, 1, &[0, 0]);
        record(out, true, 4, &[0, 15]);
    };
    let mut error = Vec::new();
    record(&mut error, true, 2, &[0, 1]);
    record(&mut error, true, 0, &[]);
    let mut critical = Vec::new();
    good_head(&mut critical);
    record(&mut critical, true, 0x1234, &[1]);
    record(&mut critical, true, 0, &[]);
    let mut no_cookie = Vec::new();
    good_head(&mut no_cookie);
    record(&mut no_cookie, true, 0, &[]);
    type Case<'a> = (&'a [&'a [u8]], Vec<u8>, &'a str);
    let cases: Vec<Case> = vec![
        (&[b"ntske/1"], error, "sent Error 1 (bad request)"),
        (&[b"ntske/1"], critical, "unknown critical record"),
        (&[b"ntske/1"], no_cookie, "sent no cookie"),
        (&[b"http/1.1"], Vec::new(), "does not speak ALPN ntske/1"),
    ];
    for (alpn, reply, want) in cases {
        let port = fake_ke(&leaf, alpn, reply);
        let uri = format!("nts://localhost:{port}");
        let out = check(&uri, &ca, &[]);
        let e = out.source(&uri)["error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(e.contains(want), "{want}: {out}");
        assert_eq!(out.verdict(), "unknown", "{out}");
    }
    // A key exchange server that speaks only TLS 1.2.
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf.key_der.clone().into());
    let mut tls12 = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .expect("TLS 1.2")
    .with_no_client_auth()
    .with_single_cert(leaf.chain.clone(), key)
    .expect("certificate");
    tls12.alpn_protocols = vec![b"ntske/1".to_vec()];
    let port = fake_ke_with(Arc::new(tls12), Vec::new());
    let uri = format!("nts://localhost:{port}");
    let out = check(&uri, &ca, &[]);
    let e = out.source(&uri)["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(e.contains("TLS 1.3 only"), "{out}");
}

// ---- a fake NTS server: real key exchange and AEAD, scripted NTP replies ----

use skewguard::proto::nts::ext::{
    self as nts_ext, AUTHENTICATOR, COOKIE, COOKIE_PLACEHOLDER, UNIQUE_IDENTIFIER,
};
use skewguard::proto::nts::ke as nts_ke;

/// What the fake's NTP side answers.
#[derive(Clone, Copy, PartialEq)]
enum Script {
    /// Authenticated replies with fresh cookies.
    Genuine,
    /// An NTS NAK (kiss NTSN echoing the identifier).
    Nak,
    /// A plain reply echoing the identifier, without authenticator.
    Unauthenticated,
}

struct FakeNts {
    ke_port: u16,
    key_exchanges: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    /// Its clock's shift in milliseconds, changeable while it runs.
    shift_ms: Arc<std::sync::atomic::AtomicI64>,
}

fn ntp_now(shift: f64) -> [u8; 8] {
    support::tls::ntp_time(support::tls::now_secs() + shift).to_be_bytes()
}

impl FakeNts {
    fn start(leaf: &support::tls::Leaf, script: Script, shift: f64) -> FakeNts {
        let ntp = UdpSocket::bind("127.0.0.1:0").expect("bind NTP");
        ntp.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let ntp_port = ntp.local_addr().expect("addr").port();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind KE");
        let ke_port = listener.local_addr().expect("addr").port();
        let keys: Arc<std::sync::Mutex<Option<nts_ext::Keys>>> = Arc::default();
        let key_exchanges = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let config = server_config(leaf, &[nts_ke::ALPN]);
        let (k2, n2) = (keys.clone(), key_exchanges.clone());
        std::thread::spawn(move || {
            for tcp in listener.incoming().take(50) {
                let Ok(tcp) = tcp else { continue };
                let Some((mut s, true)) = accept_ke(tcp, &config) else {
                    continue;
                };
                let export = |s2c| {
                    s.conn
                        .export_keying_material(
                            [0u8; 32],
                            nts_ke::EXPORTER_LABEL,
                            Some(&nts_ke::key_context(s2c)),
                        )
                        .expect("export")
                };
                *k2.lock().expect("lock") = Some(nts_ext::Keys {
                    c2s: export(false),
                    s2c: export(true),
                });
                n2.fetch_add(1, Ordering::SeqCst);
                let mut reply = Vec::new();
                record(&mut reply, true, 1, &[0, 0]);
                record(&mut reply, true, 4, &[0, 15]);
                record(&mut reply, true, 7, &ntp_port.to_be_bytes());
                for i in 0..8u8 {
                    record(&mut reply, false, 5, &[i; 64]);
                }
                record(&mut reply, true, 0, &[]);
                let _ = s.write_all(&reply);
                let _ = s.flush();
            }
        });
        let r2 = requests.clone();
        let shift_ms = Arc::new(std::sync::atomic::AtomicI64::new((shift * 1000.0) as i64));
        let s2 = shift_ms.clone();
        std::thread::spawn(move || {
            let until = std::time::Instant::now() + Duration::from_secs(20);
            let mut buf = [0u8; 4096];
            while std::time::Instant::now() < until {
                let Ok((n, from)) = ntp.recv_from(&mut buf) else {
                    continue;
                };
                r2.fetch_add(1, Ordering::SeqCst);
                let shift = s2.load(Ordering::SeqCst) as f64 / 1000.0;
                let req = &buf[..n];
                let Ok(fields) = nts_ext::fields(req, 48) else {
                    continue;
                };
                let Some(uid) = fields.iter().find(|f| f.kind == UNIQUE_IDENTIFIER) else {
                    continue;
                };
                let wanted = fields
                    .iter()
                    .filter(|f| f.kind == COOKIE || f.kind == COOKIE_PLACEHOLDER)
                    .count();
                let mut out = vec![0u8; 48];
                out[0] = 4 << 3 | 4;
                out[1] = 2;
                out[24..32].copy_from_slice(&req[40..48]);
                out[16..24].copy_from_slice(&ntp_now(shift - 10.0));
                out[32..40].copy_from_slice(&ntp_now(shift));
                out[40..48].copy_from_slice(&ntp_now(shift));
                if script == Script::Nak {
                    out[0] = 3 << 6 | 4 << 3 | 4;
                    out[1] = 0;
                    out[12..16].copy_from_slice(b"NTSN");
                }
                nts_ext::push_field(&mut out, UNIQUE_IDENTIFIER, uid.body).expect("uid");
                if script == Script::Genuine {
                    let Some(keys) = keys.lock().expect("lock").clone() else {
                        continue;
                    };
                    let mut plain = Vec::new();
                    for i in 0..wanted {
                        nts_ext::push_field(&mut plain, COOKIE, &[0x40 + i as u8; 64])
                            .expect("cookie");
                    }
                    let nonce = [0x11u8; 16];
                    let ct = nts_ext::seal_reply(&keys.s2c, &out, &nonce, &plain).expect("seal");
                    let mut body = Vec::new();
                    body.extend_from_slice(&16u16.to_be_bytes());
                    body.extend_from_slice(&(ct.len() as u16).to_be_bytes());
                    body.extend_from_slice(&nonce);
                    body.extend_from_slice(&ct);
                    nts_ext::push_field(&mut out, AUTHENTICATOR, &body).expect("auth");
                }
                let _ = ntp.send_to(&out, from);
            }
        });
        FakeNts {
            ke_port,
            key_exchanges,
            requests,
            shift_ms,
        }
    }

    /// From now on, its clock is `shift` seconds off.
    fn shift_to(&self, shift: f64) {
        self.shift_ms
            .store((shift * 1000.0) as i64, Ordering::SeqCst);
    }

    fn uri(&self) -> String {
        format!("nts://localhost:{}", self.ke_port)
    }
}

#[test]
fn nts_fake_server_naks_and_unauthenticated_replies_are_errors() {
    let _room = support::Room::Timing.enter();
    let (_dir, ca, leaf) = authority();
    let good = FakeNts::start(&leaf, Script::Genuine, 42.0);
    let out = check(&good.uri(), &ca, &[]);
    let offset = out.source(&good.uri())["offset_seconds"]
        .as_f64()
        .unwrap_or(f64::NAN);
    assert!((offset - 42.0).abs() < 0.01, "{out}");
    let nak = FakeNts::start(&leaf, Script::Nak, 0.0);
    let out = check(&nak.uri(), &ca, &[("SKEWGUARD_TIMEOUT", "1s")]);
    let e = out.source(&nak.uri())["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(e.contains("NTS NAK"), "{out}");
    let plain = FakeNts::start(&leaf, Script::Unauthenticated, 0.0);
    let out = check(&plain.uri(), &ca, &[("SKEWGUARD_TIMEOUT", "1s")]);
    let e = out.source(&plain.uri())["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        e.contains("unauthenticated reply to an NTS request"),
        "{out}"
    );
    assert!(plain.requests.load(Ordering::SeqCst) >= 1);
}

#[test]
fn nts_serve_reuses_cookies_between_rounds() {
    let _room = support::Room::Timing.enter();
    let (_dir, ca, leaf) = authority();
    let fake = FakeNts::start(&leaf, Script::Genuine, 0.0);
    let ca = ca.display().to_string();
    let serve = support::Serve::start(&[
        ("SKEWGUARD_SOURCES", &fake.uri()),
        ("SKEWGUARD_CA_FILE", &ca),
        ("SKEWGUARD_INTERVAL", "200ms"),
    ]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while fake.requests.load(Ordering::SeqCst) < 12 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let rounds = fake.requests.load(Ordering::SeqCst);
    assert!(rounds >= 12, "only {rounds} rounds\n{}", serve.log());
    assert_eq!(
        fake.key_exchanges.load(Ordering::SeqCst),
        1,
        "{}",
        serve.log()
    );
}

#[test]
fn nts_on_a_server_clock_days_ahead_the_key_exchange_is_date_exempted() {
    let _room = support::Room::Timing.enter();
    // The certificate is valid by chronyd's clock (3 days ahead), not by ours.
    let dir = TempDir::new("nts-days");
    let ca = TestCa::new();
    let path = ca.write(dir.path());
    let leaf = ca.leaf_days(2, 30);
    let Some(chrony) = Chrony::start_nts(Some("+259200"), &leaf.cert_pem, &leaf.key_pem) else {
        return;
    };
    let uri = chrony.nts_uri();
    let out = check(&uri, &path, &[("SKEWGUARD_ON_UNKNOWN", "pass")]);
    assert_eq!(out.verdict(), "fail", "{out}");
    out.assert_exit(1);
    let s = out.source(&uri);
    let offset = s["offset_seconds"].as_f64().unwrap_or(f64::NAN);
    assert!((offset - 259_200.0).abs() < 0.01, "{out}");
    assert_eq!(s["authenticated"], true, "{out}");
    assert!(
        s["note"]
            .as_str()
            .unwrap_or_default()
            .contains("date-exempted"),
        "{out}"
    );
}

/// Eight years of seconds.
const EIGHT_YEARS: f64 = 8.0 * 365.0 * 86_400.0;

/// An NTS server holding the key of a certificate that expired eight years
/// ago, whose clock says it is eight years ago (issue 18 case 3).
fn old_key_server(script: Script) -> (TempDir, std::path::PathBuf, FakeNts) {
    let dir = TempDir::new("nts-old-key");
    let ca = TestCa::new();
    let path = ca.write(dir.path());
    let leaf = ca.leaf_days(-9 * 365, -8 * 365 + 30);
    (dir, path, FakeNts::start(&leaf, script, -EIGHT_YEARS))
}

/// Issue 18 case 3: the date-exempted measurement is contradicted by the two
/// honest NTP servers beside it, so it decides nothing: unknown, naming the
/// disagreement, and never the attacker's "8 years ahead".
#[test]
fn nts_an_old_key_cannot_outvote_honest_ntp() {
    let _room = support::Room::Timing.enter();
    let (_dir, ca, old) = old_key_server(Script::Genuine);
    let ntp = [
        support::tls::ForgedNtp::start(0.0),
        support::tls::ForgedNtp::start(0.0),
    ];
    let sources = format!("{},{},{}", ntp[0].uri(), ntp[1].uri(), old.uri());
    let out = check(&sources, &ca, &[]);
    assert_eq!(out.verdict(), "unknown", "{out}");
    let headline = out.headline();
    assert!(headline.contains("date-exempted"), "{out}");
    assert!(!headline.contains("years"), "{out}");
    assert_ne!(out.report()["cause"], "rtc-lost-power", "{out}");
    assert_eq!(out.source(&old.uri())["trust"], "date-exempted", "{out}");
}

/// The exemption describes one handshake: keys from a date-exempted key
/// exchange serve one round, so `serve` exchanges keys again every round
/// (with normal validation as soon as the clock allows), where a normally
/// validated exchange lasts for many rounds (`nts_serve_reuses_cookies_between_rounds`).
#[test]
fn nts_a_date_exempted_key_exchange_serves_one_round() {
    let _room = support::Room::Timing.enter();
    let (_dir, ca, old) = old_key_server(Script::Genuine);
    let ca = ca.display().to_string();
    let serve = support::Serve::start(&[
        ("SKEWGUARD_SOURCES", &old.uri()),
        ("SKEWGUARD_CA_FILE", &ca),
        ("SKEWGUARD_INTERVAL", "200ms"),
    ]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while old.requests.load(Ordering::SeqCst) < 4 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let rounds = old.requests.load(Ordering::SeqCst);
    assert!(rounds >= 4, "only {rounds} rounds\n{}", serve.log());
    assert!(
        old.key_exchanges.load(Ordering::SeqCst) >= rounds,
        "{} key exchanges for {rounds} rounds\n{}",
        old.key_exchanges.load(Ordering::SeqCst),
        serve.log()
    );
}

/// A clock really days behind (an RTC reset): the date-exempted NTS server and
/// an honest NTP server agree, and the verdict fails at once with the size.
#[test]
fn nts_date_exempted_and_honest_ntp_agreeing_fail_at_once() {
    let _room = support::Room::Timing.enter();
    let dir = TempDir::new("nts-rtc");
    let ca = TestCa::new();
    let path = ca.write(dir.path());
    let leaf = ca.leaf_days(2, 30);
    let Some(chrony) = Chrony::start_nts(Some("+259200"), &leaf.cert_pem, &leaf.key_pem) else {
        return;
    };
    let honest = support::tls::ForgedNtp::start(259_200.0);
    let sources = format!("{},{}", chrony.nts_uri(), honest.uri());
    let out = check(&sources, &path, &[]);
    assert_eq!(out.verdict(), "fail", "{out}");
    out.assert_exit(1);
    let offset = out.number("offset_seconds").unwrap_or(f64::NAN);
    assert!((offset - 259_200.0).abs() < 0.05, "{out}");
}

/// Issue 18 case 2, NTS: a NAK forged on the UDP path right after a fresh key
/// exchange is a failed verification, so two forged NTP servers (+600 s)
/// beside it do not decide: unknown, not their verdict.
#[test]
fn nts_a_nak_after_a_fresh_key_exchange_keeps_forged_ntp_from_deciding() {
    let _room = support::Room::Timing.enter();
    let (_dir, ca, leaf) = authority();
    let nak = FakeNts::start(&leaf, Script::Nak, 0.0);
    let ntp = [
        support::tls::ForgedNtp::start(600.0),
        support::tls::ForgedNtp::start(600.0),
    ];
    let sources = format!("{},{},{}", ntp[0].uri(), ntp[1].uri(), nak.uri());
    let out = check(&sources, &ca, &[("SKEWGUARD_TIMEOUT", "1s")]);
    assert_eq!(out.verdict(), "unknown", "{out}");
    assert!(out.headline().contains("failed verification"), "{out}");
}

/// Issue 18 case 3 in `serve` with a prior good round: the old-key server
/// first tells the true time (its certificate is then expired by its own
/// clock too: an error, no vote, and the two honest NTP servers decide ok);
/// then its clock says eight years ago. That date-exempted result is
/// contradicted by the NTP majority: the round is unknown and holdover keeps
/// the good verdict, never "8 years ahead".
#[test]
fn nts_in_serve_an_old_key_turning_up_never_ends_a_good_verdict() {
    let _room = support::Room::Timing.enter();
    let (_dir, ca, old) = old_key_server(Script::Genuine);
    old.shift_to(0.0);
    let ntp = [
        support::tls::ForgedNtp::start(0.0),
        support::tls::ForgedNtp::start(0.0),
    ];
    let sources = format!("{},{},{}", ntp[0].uri(), ntp[1].uri(), old.uri());
    let ca = ca.display().to_string();
    let serve = support::Serve::start(&[
        ("SKEWGUARD_SOURCES", &sources),
        ("SKEWGUARD_CA_FILE", &ca),
        ("SKEWGUARD_INTERVAL", "300ms"),
        ("SKEWGUARD_TIMEOUT", "1s"),
    ]);
    serve.wait_for("/readyz", Duration::from_secs(10), |r| {
        r.status == 200 && r.json()["verdict"] == "ok"
    });
    old.shift_to(-EIGHT_YEARS);
    let r = serve.wait_for("/readyz", Duration::from_secs(10), |r| {
        r.json().get("holdover").is_some()
    });
    let v = r.json();
    assert_eq!(r.status, 200, "{v}\n{}", serve.log());
    let headline = v["headline"].as_str().unwrap_or_default();
    assert!(headline.starts_with("OK (holdover)"), "{v}");
    assert!(headline.contains("date-exempted"), "{v}");
    assert!(!serve.log().contains("FAIL"), "{}", serve.log());
}
