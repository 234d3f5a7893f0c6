//! Whole-program tests of the `nts://` source against a real NTS server:
//! Debian's chrony 4.3 serving NTS-KE with a certificate from a test CA made
//! here, its clock shifted by libfaketime. Also a relay that flips one byte of
//! a genuine NTS reply, and in-process fakes for key-exchange failures.

mod support;

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
    let (_dir, ca, leaf) = authority();
    for (shift, want) in [("+1200", 1200.0), ("-400.5", -400.5), ("+2.25", 2.25)] {
        let Some(chrony) = Chrony::start_nts(Some(shift), &leaf.cert_pem, &leaf.key_pem) else {
            return;
        };
        let uri = chrony.nts_uri();
        let out = check(&uri, &ca, &[]);
        let s = out.source(&uri);
        let offset = s["offset_seconds"].as_f64().unwrap_or(f64::NAN);
        assert!(
            (offset - want).abs() < 0.005,
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
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let config: Arc<rustls::ServerConfig> = server_config(leaf, alpn);
    std::thread::spawn(move || {
        for tcp in listener.incoming().take(4) {
            let Ok(tcp) = tcp else { continue };
            let _ = tcp.set_read_timeout(Some(Duration::from_secs(3)));
            let Ok(conn) = rustls::ServerConnection::new(config.clone()) else {
                continue;
            };
            let mut s = rustls::StreamOwned::new(conn, tcp);
            let mut buf = [0u8; 64];
            let _ = s.read(&mut buf);
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
}
