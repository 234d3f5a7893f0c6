//! A real Prometheus (Debian's 2.42) on loopback scrapes the built `serve`
//! every second and evaluates skewguard's own alert rules (with every `for:`
//! cut to 1 s), and the test reads the series, the metadata and the firing
//! alerts through Prometheus's HTTP API: the sidecar measuring chronyd shifted
//! by +1200 s fires SkewguardClockBreaksSigning; once `serve` is gone,
//! SkewguardWatcherDown fires; once the target is gone from the configuration
//! too (as when discovery drops it), SkewguardWatcherAbsent fires. Missing prometheus, chronyd or libfaketime →
//! SKIPPED (a failure under `CI=true`). Bounded to well under a minute.

use crate::support;

use std::fs;
use std::thread;
use std::time::{Duration, Instant};

use support::{Chrony, Prometheus, Serve};

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
        sample["value"][1].as_str()?.parse::<f64>().ok()
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
