//! A real Prometheus (Debian's 2.42) on loopback scrapes the built `serve`
//! every second and evaluates skewguard's own alert rules (with every `for:`
//! cut to 1 s), and the test reads the series, the metadata and the firing
//! alerts through Prometheus's HTTP API: the sidecar measuring chronyd shifted
//! by +1200 s fires SkewguardClockBreaksSigning; once `serve` is gone,
//! SkewguardWatcherDown fires; once the target is gone from the configuration
//! too (as when discovery drops it), SkewguardWatcherAbsent fires. A source
//! whose path holds `"`, `}` and a backslash keeps every series in both
//! exposition formats (OpenMetrics, which Prometheus negotiates, and the text
//! format 0.0.4 through a front that asks for it). Missing prometheus, chronyd or libfaketime →
//! SKIPPED (a failure under `CI=true`). Bounded to well under a minute.

use crate::support;

use std::fs;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use support::{http_get, Chrony, Prometheus, Serve};

/// How long a series or an alert may take to show up in Prometheus.
const BOUND: Duration = Duration::from_secs(30);

/// The repository's rules with every `for:` cut to 1 s.
fn quick_rules() -> String {
    let path = support::repo().join("k8s/prometheus/skewguard.rules.yml");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|l| match l.split_once("for: ") {
            Some((indent, _)) if indent.trim().is_empty() => format!("{indent}for: 1s"),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Polls `probe` every 200 ms until it returns `Some`, within [`BOUND`].
fn wait_for<T>(what: &str, prometheus: &Prometheus, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + BOUND;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {BOUND:?}\n{}",
            prometheus.log()
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// Names of the alerts firing now.
fn firing(prometheus: &Prometheus) -> Vec<String> {
    let data = prometheus.api("alerts");
    data["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["state"] == "firing")
        .filter_map(|a| a["labels"]["alertname"].as_str().map(str::to_string))
        .collect()
}

/// Waits until alert `name` fires.
fn wait_firing(prometheus: &Prometheus, name: &str) {
    wait_for(&format!("{name} firing"), prometheus, || {
        firing(prometheus).iter().any(|a| a == name).then_some(())
    });
}

#[test]
fn prometheus_scrapes_serve_and_fires_the_alerts() {
    let _room = support::Room::Timing.enter();
    let Some(chrony) = Chrony::start(Some("+1200")) else {
        return;
    };
    let mut serve = Some(Serve::start(&[
        ("SKEWGUARD_SOURCES", &chrony.uri()),
        ("SKEWGUARD_INTERVAL", "1s"),
    ]));
    let target = serve.as_ref().map(Serve::addr).expect("serve");
    let Some(mut prometheus) = Prometheus::start(&[target], &quick_rules()) else {
        return;
    };

    let offset = wait_for("skewguard_offset_seconds", &prometheus, || {
        let data = prometheus.api("query?query=skewguard_offset_seconds");
        let sample = data["result"].as_array()?.first()?.clone();
        assert_eq!(sample["metric"]["job"], "skewguard", "{sample}");
        // NaN until the first round: a scrape may come before it.
        sample["value"][1]
            .as_str()?
            .parse::<f64>()
            .ok()
            .filter(|v| !v.is_nan())
    });
    assert!((offset - 1200.0).abs() < 0.05, "offset {offset}");

    // The unit comes only with OpenMetrics: Prometheus negotiated it.
    let meta = prometheus.api("metadata?metric=skewguard_offset_seconds");
    let entry = &meta["skewguard_offset_seconds"][0];
    assert_eq!(entry["type"], "gauge", "{meta}");
    assert_eq!(entry["unit"], "seconds", "{meta}");

    let up = prometheus.api("query?query=up");
    assert_eq!(up["result"][0]["value"][1], "1", "{up}");

    wait_firing(&prometheus, "SkewguardClockBreaksSigning");
    let now = firing(&prometheus);
    for quiet in [
        "SkewguardWatcherDown",
        "SkewguardWatcherAbsent",
        "SkewguardClockUnmeasured",
    ] {
        assert!(!now.iter().any(|a| a == quiet), "{quiet} fires: {now:?}");
    }

    // The watcher goes away: its target stops answering.
    drop(serve.take());
    wait_firing(&prometheus, "SkewguardWatcherDown");

    // The target disappears: no up series at all.
    prometheus.set_targets(&[]);
    wait_firing(&prometheus, "SkewguardWatcherAbsent");
}

/// Serves `GET /metrics` of `serve` as the classic text format 0.0.4, whatever
/// the scraper asks for: Prometheus 2.42 always prefers OpenMetrics, so this is
/// how it parses the other format. Stops (and joins) on drop.
struct ClassicFront {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl ClassicFront {
    fn start(serve: SocketAddr) -> ClassicFront {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                let Ok((mut conn, _)) = listener.accept() else {
                    thread::sleep(Duration::from_millis(20));
                    continue;
                };
                let _ = conn.set_nonblocking(false);
                let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                if !support::read_request_head(&mut conn) {
                    continue;
                }
                let r = http_get(serve, "/metrics", &[("Accept", "text/plain;version=0.0.4")]);
                let head = format!(
                    "HTTP/1.1 {} X\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    r.status,
                    r.header("content-type").unwrap_or(""),
                    r.body.len()
                );
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(r.body.as_bytes());
            }
        });
        ClassicFront {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for ClassicFront {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `s` percent-encoded for a URL query.
fn query_encoded(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The single value of an instant `query` per `instance` label.
fn per_instance(prometheus: &Prometheus, query: &str) -> Vec<(String, f64)> {
    let data = prometheus.api(&format!("query?query={}", query_encoded(query)));
    data["result"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| {
            let instance = s["metric"]["instance"].as_str()?.to_string();
            Some((instance, s["value"][1].as_str()?.parse().ok()?))
        })
        .collect()
}

#[test]
fn a_source_with_quotes_and_a_backslash_keeps_every_series_in_both_formats() {
    let _room = support::Room::Timing.enter();
    let refused = support::Port::free();
    let uri = format!(r#"http://127.0.0.1:{}/a"}}b\c{{x="1"#, refused.number());
    let serve = Serve::start(&[
        ("SKEWGUARD_SOURCES", &uri),
        ("SKEWGUARD_INTERVAL", "1s"),
        ("SKEWGUARD_TIMEOUT", "300ms"),
    ]);
    let classic = ClassicFront::start(serve.addr());
    let targets = [serve.addr(), classic.addr];
    let Some(prometheus) = Prometheus::start(&targets, "groups: []\n") else {
        return;
    };
    // Every sample a scrape read is stored, in both formats: a broken line
    // would fail the whole scrape (up 0) or drop what follows it.
    let stored = wait_for("every series of both targets", &prometheus, || {
        let body = http_get(serve.addr(), "/metrics", &[]).body;
        let samples = body.lines().filter(|l| !l.starts_with('#')).count() as f64;
        let up = per_instance(&prometheus, "up");
        let scraped = per_instance(&prometheus, "scrape_samples_scraped");
        let stored = per_instance(
            &prometheus,
            r#"count by (instance) ({job="skewguard",__name__=~"skewguard_.+"})"#,
        );
        let all_up = up.len() == 2 && up.iter().all(|(_, v)| *v == 1.0);
        let complete = stored.len() == 2
            && stored.iter().all(|(i, n)| {
                scraped
                    .iter()
                    .any(|(j, m)| i == j && *n == samples && *m == samples)
            });
        (all_up && complete).then_some(stored)
    });
    // The counter keeps one name through either format.
    let counters = per_instance(
        &prometheus,
        "count by (instance) (skewguard_measurements_total)",
    );
    assert_eq!(counters.len(), 2, "{counters:?}");
    // The source label arrives as configured, through either format.
    let query = r#"skewguard_source_up{job="skewguard"}"#;
    let data = prometheus.api(&format!("query?query={}", query_encoded(query)));
    let sources: Vec<&str> = data["result"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["metric"]["source"].as_str())
        .collect();
    assert_eq!(sources, [uri.as_str(), uri.as_str()], "{data}\n{stored:?}");
    // Both targets read this machine's kernel: one boot_id, so the kernel
    // alert's `max by (boot_id, node)` counts them once (where adjtimex and
    // the boot ID are readable, as on any Linux).
    let boot_id = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let kernels = prometheus.api(&format!(
        "query?query={}",
        query_encoded("count by (boot_id) (skewguard_kernel_synchronised)")
    ));
    if !boot_id.trim().is_empty() && kernels["result"].as_array().is_some_and(|r| !r.is_empty()) {
        assert_eq!(
            kernels["result"][0]["metric"]["boot_id"],
            boot_id.trim(),
            "{kernels}"
        );
        assert_eq!(kernels["result"][0]["value"][1], "2", "{kernels}");
        assert_eq!(
            kernels["result"].as_array().map(Vec::len),
            Some(1),
            "{kernels}"
        );
    }
}
