//! The Prometheus metrics `serve` exposes on `/metrics`, kept in a
//! prometheus-client registry and updated after every round.
//!
//! Names follow the Prometheus conventions: base units (seconds), the unit as a
//! suffix (prometheus-client appends it from [`Unit`]), and counters named
//! without `_total`, which the encoder appends itself. The text is OpenMetrics
//! (see [`CONTENT_TYPE`]), which Prometheus negotiates and parses.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use crate::report::{Report, SourceStatus};
use crate::source::Source;
use crate::verdict::Verdict;

/// `Content-Type` of the encoded text (prometheus-client writes OpenMetrics 1.0).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A gauge holding seconds (or any other fractional quantity).
type FloatGauge = Gauge<f64, AtomicU64>;

/// `{source="…"}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

/// `{state="ok|warn|fail|unknown"}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

/// `{source="…",result="ok|falseticker|error"}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MeasurementLabels {
    source: String,
    result: &'static str,
}

/// Every metric `serve` exposes, and the registry that encodes them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    offset: FloatGauge,
    uncertainty: FloatGauge,
    max_skew: FloatGauge,
    verdict: Family<StateLabels, Gauge>,
    source_offset: Family<SourceLabels, FloatGauge>,
    source_rtt: Family<SourceLabels, FloatGauge>,
    source_up: Family<SourceLabels, Gauge>,
    measurements: Family<MeasurementLabels, Counter>,
    last_measurement: FloatGauge,
}

/// The `result` label of a source's standing.
fn result_name(status: SourceStatus) -> &'static str {
    match status {
        SourceStatus::Ok => "ok",
        SourceStatus::Falseticker => "falseticker",
        SourceStatus::Error => "error",
    }
}

impl Metrics {
    /// Registers every metric. Series for each configured source start at zero
    /// (and the verdict at `unknown`), so queries and alerts see them before the
    /// first round instead of an absent series.
    pub fn new(sources: &[Source], max_skew_seconds: f64) -> Metrics {
        let mut registry = Registry::with_prefix("skewguard");
        let m = Metrics {
            offset: FloatGauge::default(),
            uncertainty: FloatGauge::default(),
            max_skew: FloatGauge::default(),
            verdict: Family::default(),
            source_offset: Family::default(),
            source_rtt: Family::default(),
            source_up: Family::default(),
            measurements: Family::default(),
            last_measurement: FloatGauge::default(),
            registry: Registry::default(),
        };
        registry.register_with_unit(
            "offset",
            "Combined clock offset, reference minus local (positive: local clock behind); NaN when unknown",
            Unit::Seconds,
            m.offset.clone(),
        );
        registry.register_with_unit(
            "uncertainty",
            "Half-width of the interval holding the true offset; NaN when unknown",
            Unit::Seconds,
            m.uncertainty.clone(),
        );
        registry.register_with_unit(
            "max_skew",
            "Skew bound (|offset| + uncertainty) at which the verdict is fail",
            Unit::Seconds,
            m.max_skew.clone(),
        );
        registry.register(
            "verdict",
            "The verdict served on /healthz: 1 for the current state, 0 for the others",
            m.verdict.clone(),
        );
        registry.register_with_unit(
            "source_offset",
            "Offset measured against one source, reference minus local",
            Unit::Seconds,
            m.source_offset.clone(),
        );
        registry.register_with_unit(
            "source_rtt",
            "Round trip of the query kept for one source",
            Unit::Seconds,
            m.source_rtt.clone(),
        );
        registry.register(
            "source_up",
            "1 if the source gave a usable measurement in the latest round",
            m.source_up.clone(),
        );
        registry.register(
            "measurements",
            "Measurements per source by result (ok, falseticker, error)",
            m.measurements.clone(),
        );
        registry.register_with_unit(
            "last_measurement_timestamp",
            "Local Unix time of the latest measurement",
            Unit::Seconds,
            m.last_measurement.clone(),
        );
        m.offset.set(f64::NAN);
        m.uncertainty.set(f64::NAN);
        m.max_skew.set(max_skew_seconds);
        m.set_verdict(Verdict::Unknown);
        for s in sources {
            let name = s.to_string();
            m.source_up
                .get_or_create(&SourceLabels {
                    source: name.clone(),
                })
                .set(0);
            for result in [
                SourceStatus::Ok,
                SourceStatus::Falseticker,
                SourceStatus::Error,
            ] {
                m.measurements
                    .get_or_create(&MeasurementLabels {
                        source: name.clone(),
                        result: result_name(result),
                    })
                    .inc_by(0);
            }
        }
        Metrics { registry, ..m }
    }

    /// Takes in one round's report.
    pub fn record(&self, report: &Report) {
        self.offset.set(report.offset_seconds.unwrap_or(f64::NAN));
        self.uncertainty
            .set(report.uncertainty_seconds.unwrap_or(f64::NAN));
        self.max_skew.set(report.max_skew_seconds);
        self.last_measurement.set(report.measured_at);
        self.set_verdict(report.verdict);
        for s in &report.sources {
            let labels = SourceLabels {
                source: s.source.clone(),
            };
            self.measurements
                .get_or_create(&MeasurementLabels {
                    source: s.source.clone(),
                    result: result_name(s.status),
                })
                .inc();
            let up = s.offset_seconds.is_some();
            self.source_up.get_or_create(&labels).set(i64::from(up));
            // A source without a measurement has no offset: drop the series rather
            // than keep the previous round's value, which would look current.
            match (s.offset_seconds, s.rtt_seconds) {
                (Some(offset), rtt) => {
                    self.source_offset.get_or_create(&labels).set(offset);
                    match rtt {
                        Some(rtt) => {
                            self.source_rtt.get_or_create(&labels).set(rtt);
                        }
                        None => {
                            self.source_rtt.remove(&labels);
                        }
                    }
                }
                (None, _) => {
                    self.source_offset.remove(&labels);
                    self.source_rtt.remove(&labels);
                }
            }
        }
    }

    /// Sets the verdict series: 1 for `verdict`, 0 for the other states.
    ///
    /// `serve` calls this on every scrape with the verdict it serves, which turns
    /// `unknown` when the latest measurement is stale.
    pub fn set_verdict(&self, verdict: Verdict) {
        for v in Verdict::ALL {
            self.verdict
                .get_or_create(&StateLabels { state: v.name() })
                .set(i64::from(v == verdict));
        }
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(4096);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{HostFacts, Judging};
    use crate::source::{Outcome, Sample, SourceError};

    /// The value of the sample line that starts with `series` followed by a space.
    fn value(text: &str, series: &str) -> Option<String> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map(str::to_string)
    }

    #[test]
    fn before_any_round_the_offset_is_nan_and_the_verdict_unknown() {
        let sources = Source::parse_list("ntp://a").unwrap();
        let text = Metrics::new(&sources, 150.0).encode().unwrap();
        assert_eq!(
            value(&text, "skewguard_offset_seconds").as_deref(),
            Some("NaN")
        );
        assert_eq!(
            value(&text, "skewguard_verdict{state=\"unknown\"}").as_deref(),
            Some("1")
        );
        assert_eq!(
            value(&text, "skewguard_verdict{state=\"ok\"}").as_deref(),
            Some("0")
        );
        assert_eq!(
            value(&text, "skewguard_source_up{source=\"ntp://a\"}").as_deref(),
            Some("0")
        );
        assert_eq!(
            value(
                &text,
                "skewguard_measurements_total{source=\"ntp://a\",result=\"error\"}"
            )
            .as_deref(),
            Some("0")
        );
        assert!(
            text.contains("# TYPE skewguard_measurements counter"),
            "{text}"
        );
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
    }

    #[test]
    fn a_round_sets_offsets_counts_and_drops_silent_sources() {
        let sources = Source::parse_list("ntp://a,ntp://b").unwrap();
        let m = Metrics::new(&sources, 150.0);
        let good = Outcome::from_result(Ok(Sample {
            offset: 1200.25,
            uncertainty: 0.001,
            rtt: 0.0005,
        }));
        let report = Report::assess(
            &sources,
            &[good.clone(), good],
            &Judging::default(),
            &HostFacts {
                now: 1_700_000_000.5,
                ..HostFacts::default()
            },
        );
        m.record(&report);
        let text = m.encode().unwrap();
        assert_eq!(
            value(&text, "skewguard_offset_seconds").as_deref(),
            Some("1200.25")
        );
        assert_eq!(
            value(&text, "skewguard_verdict{state=\"fail\"}").as_deref(),
            Some("1")
        );
        assert_eq!(
            value(&text, "skewguard_source_rtt_seconds{source=\"ntp://b\"}").as_deref(),
            Some("0.0005")
        );
        assert_eq!(
            value(&text, "skewguard_last_measurement_timestamp_seconds").as_deref(),
            Some("1700000000.5")
        );

        let dead = Outcome::from_result(Err(SourceError::Io("refused".into())));
        let report = Report::assess(
            &sources,
            &[dead.clone(), dead],
            &Judging::default(),
            &HostFacts::default(),
        );
        m.record(&report);
        let text = m.encode().unwrap();
        assert_eq!(
            value(&text, "skewguard_offset_seconds").as_deref(),
            Some("NaN")
        );
        assert!(!text.contains("skewguard_source_offset_seconds{"), "{text}");
        assert_eq!(
            value(&text, "skewguard_source_up{source=\"ntp://a\"}").as_deref(),
            Some("0")
        );
        for result in ["ok", "error"] {
            assert_eq!(
                value(
                    &text,
                    &format!(
                        "skewguard_measurements_total{{source=\"ntp://a\",result=\"{result}\"}}"
                    )
                )
                .as_deref(),
                Some("1"),
                "{text}"
            );
        }
    }
}
