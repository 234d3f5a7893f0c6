//! `skewguard health [URL]`, the probe client, against a real `serve`, a closed
//! port, and in-process fake servers (silent, plain-text, chunked).
//!
//! Only the test that needs a failing clock uses chronyd (skipped with a
//! printed reason where missing, failed under `CI=true`). Everything talks
//! only to 127.0.0.1 and is bounded by `support::run`.

use crate::support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::thread;
use std::time::{Duration, Instant};

use support::{run_bounded, Chrony, Output, Port, Serve};

/// Bound on one `health` run: its own timeout is at most 2 s here.
const HEALTH_BOUND: Duration = Duration::from_secs(10);

fn health(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut all = vec!["health"];
    all.extend_from_slice(args);
    run_bounded(&all, envs, HEALTH_BOUND)
}

/// Runs `health` until it exits with `code` (a serve needs a round or two to
/// reach a verdict), at most `bound`; returns the last run.
fn health_until(code: i32, args: &[&str], envs: &[(&str, &str)], bound: Duration) -> Output {
    let deadline = Instant::now() + bound;
    loop {
        let out = health(args, envs);
        if out.code == Some(code) || Instant::now() >= deadline {
            return out;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// A one-connection-at-a-time fake HTTP server: reads a request head, then
/// writes `response` (or nothing, holding the connection for 5 s, if `None`).
fn fake(response: Option<&'static [u8]>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake");
    let addr = listener.local_addr().expect("local addr");
    thread::spawn(move || {
        for stream in listener.incoming().take(4) {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                head.push(byte[0]);
            }
            match response {
                Some(r) => {
                    let _ = stream.write_all(r);
                }
                None => thread::sleep(Duration::from_secs(5)),
            }
        }
    });
    addr
}

#[test]
fn health_passes_against_a_healthy_serve() {
    let _room = support::Room::Timing.enter();
    let serve = Serve::start(&[("SKEWGUARD_DISABLED", "true")]);
    // No URL: the default is /healthz on the port of SKEWGUARD_LISTEN.
    let out = health_until(
        0,
        &[],
        &[("SKEWGUARD_LISTEN", &serve.listen())],
        Duration::from_secs(3),
    );
    out.assert_exit(0);
    assert!(
        out.stdout.starts_with("OK: skewguard is disabled"),
        "headline printed\n{out}"
    );
    assert_eq!(out.stdout.lines().count(), 1, "{out}");
    let out = health(&[&serve.url("/livez")], &[]);
    out.assert_exit(0);
}

#[test]
fn health_fails_before_the_first_measurement() {
    let _room = support::Room::Timing.enter();
    // A socket that never answers (a closed port is refused at once, which
    // would complete the first round before the probe).
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind silent");
    let uri = format!("ntp://{}", silent.local_addr().expect("addr"));
    let serve = Serve::start(&[("SKEWGUARD_SOURCES", &uri), ("SKEWGUARD_TIMEOUT", "2s")]);
    let out = health(&[&serve.url("/healthz")], &[]);
    out.assert_exit(1);
    assert!(
        out.stdout.starts_with("UNKNOWN: no measurement yet"),
        "{out}"
    );
}

#[test]
fn health_fails_against_a_serve_whose_clock_is_off() {
    let _room = support::Room::Timing.enter();
    let Some(chrony) = Chrony::start(Some("+1200")) else {
        return;
    };
    let serve = Serve::start(&[
        ("SKEWGUARD_SOURCES", &chrony.uri()),
        ("SKEWGUARD_INTERVAL", "1s"),
        ("SKEWGUARD_TIMEOUT", "1s"),
    ]);
    let url = serve.url("/healthz");
    let deadline = Instant::now() + Duration::from_secs(5);
    let out = loop {
        let out = health(&[&url], &[]);
        if out.stdout.starts_with("FAIL") || Instant::now() >= deadline {
            break out;
        }
        thread::sleep(Duration::from_millis(100));
    };
    out.assert_exit(1);
    assert!(
        out.stdout.starts_with("FAIL: local clock is 20m00s")
            || out.stdout.starts_with("FAIL: local clock is 19m59s"),
        "{out}"
    );
    // Docker's health log carries the fix too, well inside its 4 KiB.
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[1].starts_with("hint: ") && lines[2].starts_with("fix: "),
        "{out}"
    );
    assert!(out.stdout.len() < 4096, "{out}");
}

#[test]
fn health_fails_fast_on_a_closed_port() {
    let _room = support::Room::Timing.enter();
    let closed = Port::free();
    let url = format!("http://127.0.0.1:{}/healthz", closed.number());
    let out = health(&[&url], &[]);
    out.assert_exit(1);
    assert!(out.elapsed < Duration::from_secs(1), "{out}");
    assert!(out.stdout.contains("refused"), "{out}");
}

#[test]
fn health_gives_up_on_a_server_that_never_answers() {
    let _room = support::Room::Timing.enter();
    for (timeout, envs) in [
        (1.0, vec![("SKEWGUARD_TIMEOUT", "1s")]),
        // The default: SKEWGUARD_TIMEOUT's 2 s.
        (2.0, vec![]),
    ] {
        let addr = fake(None);
        let out = health(&[&format!("http://{addr}/healthz")], &envs);
        out.assert_exit(1);
        let took = out.elapsed.as_secs_f64();
        assert!(
            took >= timeout - 0.05 && took < timeout + 0.5,
            "gave up after {took:.3} s, want ~{timeout} s\n{out}"
        );
        assert!(out.stdout.contains("no answer within"), "{out}");
    }
}

/// Docker reserves exit code 2 for health checks: usage and configuration
/// errors of `health` exit 1, and say why on stderr.
#[test]
fn health_exits_only_0_or_1_even_on_usage_errors() {
    let _room = support::Room::Timing.enter();
    let out = health(&["https://127.0.0.1:8443/healthz"], &[]);
    out.assert_exit(1);
    assert!(out.stderr.contains("https is not supported"), "{out}");
    for (args, envs, said) in [
        (&["ftp://127.0.0.1/"][..], &[][..], "not an http:// URL"),
        (&["http://a/", "http://b/"], &[], "at most one URL"),
        (&["--bogus", "1"], &[], "--bogus"),
        (&["--timeout", "5M"], &[], "--timeout \"5M\""),
        (&[], &[("SKEWGUARD_LISTEN", "8080")], "SKEWGUARD_LISTEN"),
    ] {
        let out = health(args, envs);
        out.assert_exit(1);
        assert!(out.stderr.contains(said), "stderr says {said:?}\n{out}");
    }
    // Flags before the command word count too.
    let out = run_bounded(&["--bogus", "1", "health"], &[], HEALTH_BOUND);
    out.assert_exit(1);
}

/// `health` probes the port `serve` was given by flag, not only by variable.
#[test]
fn health_takes_its_port_from_the_listen_flag() {
    let _room = support::Room::Timing.enter();
    let serve = Serve::start(&[("SKEWGUARD_DISABLED", "true")]);
    let out = health_until(
        0,
        &["--listen", &serve.listen()],
        &[("SKEWGUARD_LISTEN", "127.0.0.1:9")],
        Duration::from_secs(3),
    );
    out.assert_exit(0);
}

#[test]
fn health_reads_plain_and_chunked_answers_from_other_servers() {
    let _room = support::Room::Timing.enter();
    let addr = fake(Some(
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\n\nboom: the thing broke\nsecond line\n",
    ));
    let out = health(&[&format!("http://{addr}/")], &[]);
    out.assert_exit(1);
    assert_eq!(out.stdout.trim_end(), "boom: the thing broke", "{out}");

    let addr = fake(Some(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nf\r\n{\"headline\":\"OK\r\n6\r\n: fine\r\n2\r\n\"}\r\n0\r\n\r\n",
    ));
    let out = health(&[&format!("http://{addr}/healthz")], &[]);
    out.assert_exit(0);
    assert_eq!(out.stdout.trim_end(), "OK: fine", "{out}");

    let addr = fake(Some(b"HTTP/1.1 204 No Content\r\n\r\n"));
    let out = health(&[&format!("http://{addr}/")], &[]);
    out.assert_exit(0);
    assert_eq!(out.stdout.trim_end(), "HTTP 204 No Content", "{out}");

    let addr = fake(Some(b"SSH-2.0-OpenSSH_9.2\r\n\r\n"));
    health(&[&format!("http://{addr}/")], &[]).assert_exit(1);
}
