//! The 64 s rule in `serve`: an upstream server (here an SNTP responder on
//! 127.0.0.2, which skewguard treats as upstream; 127.0.0.1 would be this
//! machine's own daemon) is queried once per 64 s whatever `INTERVAL` says;
//! the rounds in between reuse its result.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::{http_get, Serve};

/// An SNTP server on `127.0.0.2`, answering from the system clock and
/// counting queries; `None` when that address cannot be bound.
fn counting_sntp() -> Option<(u16, Arc<AtomicUsize>)> {
    let sock = UdpSocket::bind("127.0.0.2:0").ok()?;
    let port = sock.local_addr().ok()?.port();
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            if n < 48 {
                continue;
            }
            counted.fetch_add(1, Ordering::SeqCst);
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
            let mut ts = [0u8; 8];
            ts[..4].copy_from_slice(&((now.as_secs() + 2_208_988_800) as u32).to_be_bytes());
            let frac = ((u64::from(now.subsec_nanos()) << 32) / 1_000_000_000) as u32;
            ts[4..].copy_from_slice(&frac.to_be_bytes());
            let mut reply = vec![0x24, 2, 6, 0xEC];
            reply.extend_from_slice(&66u32.to_be_bytes()); // root delay ≈ 1 ms
            reply.extend_from_slice(&66u32.to_be_bytes()); // root dispersion ≈ 1 ms
            reply.extend_from_slice(b"LOCL");
            reply.extend_from_slice(&ts); // reference
            reply.extend_from_slice(&buf[40..48]); // origin: their transmit
            reply.extend_from_slice(&ts); // receive
            reply.extend_from_slice(&ts); // transmit
            let _ = sock.send_to(&reply, from);
        }
    });
    Some((port, count))
}

#[test]
fn an_upstream_server_is_queried_once_per_64_seconds_whatever_the_interval() {
    let Some((port, queries)) = counting_sntp() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI needs 127.0.0.2 on loopback"
        );
        eprintln!("SKIPPED: cannot bind 127.0.0.2");
        return;
    };
    let uri = format!("ntp://127.0.0.2:{port}");
    let serve = Serve::start(&[
        ("SKEWGUARD_SOURCES", uri.as_str()),
        ("SKEWGUARD_INTERVAL", "500ms"),
        ("SKEWGUARD_TIMEOUT", "1s"),
    ]);
    std::thread::sleep(Duration::from_secs(5));
    let health = http_get(serve.addr(), "/healthz", &[]);
    let metrics = http_get(serve.addr(), "/metrics", &[]);
    let rounds: f64 = metrics
        .body
        .lines()
        .filter(|l| l.starts_with("skewguard_measurements") && l.contains("result="))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(rounds >= 4.0, "rounds {rounds}\n{}", metrics.body);
    assert_eq!(
        queries.load(Ordering::SeqCst),
        1,
        "one query in the first 64 s\n{}",
        serve.log()
    );
    assert_eq!(health.status, 200, "{health:?}");
    assert!(health.body.contains("\"verdict\":\"ok\""), "{health:?}");
}
