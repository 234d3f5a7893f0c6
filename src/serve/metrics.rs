//! The Prometheus metrics `serve` exposes on `/metrics`, kept in a
//! prometheus-client registry and updated after every round (and, for what
//! depends on the time of the scrape, on every scrape).
//!
//! # Two formats, one set of series
//!
//! `/metrics` answers OpenMetrics 1.0 when the `Accept` header asks for
//! `application/openmetrics-text` at least as strongly as for plain text (as
//! Prometheus does), and the classic text format 0.0.4 otherwise (curl,
//! `promtool check metrics`, older agents); see [`negotiate`].
//! prometheus-client's encoder writes OpenMetrics only (its issue #51 asks for
//! the classic format; 0.23 has none), and its OpenMetrics body is not a valid
//! classic body: a counter family `x` has samples `x_total`, while the classic
//! grammar wants the family named as its samples (promtool 2.42 rejects the
//! rest with "no help text"). [`classic_text`] is the classic encoder: it
//! writes the OpenMetrics body of this registry in the 0.0.4 grammar, which for
//! what the registry holds (gauges and counters, no timestamps, exemplars or
//! `_created` samples) differs in three places only: a counter's `# HELP` and
//! `# TYPE` name its samples (`x_total`), there is no `# UNIT` and no `# EOF`.
//! Label values are escaped alike in both ([`LabelValue`]); help texts hold
//! nothing either grammar would escape (a unit test sees to it). So a series has
//! one name — `skewguard_measurements_total` is a counter — whatever the
//! scraper negotiated, and one set of queries and alert rules fits both.
//!
//! Names follow the Prometheus conventions: base units (seconds, ratios rather
//! than ppm), the unit as a suffix (prometheus-client appends it from [`Unit`]).
//! A series that has no value yet (the last measurement before the first round,
//! the kernel's state where it is unreadable) is absent rather than 0 or NaN, so
//! `time() - x` never reads 56 years.
//!
//! # Adding a metric
//!
//! Add a row to the table (the `metrics!` invocation) — its name after
//! `skewguard_`, its type (a `Gauge` or `FloatGauge`, always present; an
//! `Optional`, absent until set; a `Family` of gauges over a label set; a
//! `Counter` or a `Family` of counters for a count that only rises; never an
//! info or a histogram, which [`classic_text`] does not translate), its unit and
//! its help text — and set it where its value is known: in [`Metrics::record`]
//! (per round), [`Metrics::scrape`] (per scrape) or [`Metrics::configure`] (the
//! settings). tests/it/metrics.rs lints every state with promtool; add a state
//! there if the metric has one of its own.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::encoding::{
    EncodeGaugeValue, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
    MetricEncoder,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::config::Config;
use crate::core::report::{Report, SourceStatus};
use crate::core::verdict::Verdict;
use crate::proto::source::Source;

/// `Content-Type` of the OpenMetrics text.
pub(crate) const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// `Content-Type` of the classic text format.
pub(crate) const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// An exposition format `/metrics` can answer in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// OpenMetrics 1.0 text.
    OpenMetrics,
    /// The classic Prometheus text format 0.0.4.
    Text,
}

impl Format {
    /// The `Content-Type` header of a body in this format.
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Format::Text => TEXT_CONTENT_TYPE,
        }
    }
}

/// Picks the format for an `Accept` header: OpenMetrics when some
/// `application/openmetrics-text` range has a quality above 0 and at least as
/// high as the best range that covers `text/plain` (`text/plain`, `text/*`,
/// `*/*`); the classic text otherwise, also without a header or with one that
/// cannot be read.
pub(crate) fn negotiate(accept: Option<&str>) -> Format {
    let Some(accept) = accept else {
        return Format::Text;
    };
    let mut openmetrics = 0.0_f64;
    let mut text = 0.0_f64;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| {
                let (k, v) = p.split_once('=')?;
                (k.trim().eq_ignore_ascii_case("q")).then(|| v.trim().parse::<f64>().ok())?
            })
            .next_back()
            .unwrap_or(1.0)
            .clamp(0.0, 1.0);
        match media.as_str() {
            "application/openmetrics-text" => openmetrics = openmetrics.max(q),
            "text/plain" | "text/*" | "*/*" => text = text.max(q),
            _ => {}
        }
    }
    if openmetrics > 0.0 && openmetrics >= text {
        Format::OpenMetrics
    } else {
        Format::Text
    }
}

/// A gauge holding seconds (or any other fractional quantity).
type FloatGauge = Gauge<f64, AtomicU64>;

/// A gauge with no sample until it is first set (and again once set to `None`).
#[derive(Clone, Debug, Default)]
struct Optional<T = f64>(Arc<Mutex<Option<T>>>);

impl<T> Optional<T> {
    /// Sets the value; `None` removes the sample.
    fn set(&self, value: Option<T>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = value;
    }
}

impl<T: EncodeGaugeValue + Copy + std::fmt::Debug> EncodeMetric for Optional<T> {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let value = *self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match value {
            Some(v) => encoder.encode_gauge(&v),
            None => Ok(()),
        }
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }
}

/// A label value from outside the program (a source as configured), escaped
/// as both exposition formats require: a backslash, `"` and a line feed become
/// `\\`, `\"` and `\n` (prometheus-client 0.23 writes label values raw, so one
/// `"` in a source's path would break the whole exposition).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct LabelValue(String);

impl EncodeLabelValue for LabelValue {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        escape_label_value(&self.0, encoder)
    }
}

/// Writes `value` with backslashes, `"` and line feeds escaped (text format 0.0.4 and
/// OpenMetrics 1.0 agree on these three and on nothing else being escaped).
fn escape_label_value(value: &str, out: &mut impl std::fmt::Write) -> std::fmt::Result {
    let mut rest = value;
    while let Some(i) = rest.find(['\\', '"', '\n']) {
        out.write_str(&rest[..i])?;
        out.write_str(match rest.as_bytes()[i] {
            b'\\' => "\\\\",
            b'"' => "\\\"",
            _ => "\\n",
        })?;
        rest = &rest[i + 1..];
    }
    out.write_str(rest)
}

/// `{source="…"}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: LabelValue,
}

/// `{state="ok|warn|fail|unknown"}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

/// `{threshold="warn|max"}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ThresholdLabels {
    threshold: &'static str,
}

/// `{source="…",result="ok|falseticker|error"}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MeasurementLabels {
    source: LabelValue,
    result: &'static str,
}

/// `{boot_id="…"}` of the kernel's series: the boot ID of the kernel whose
/// clock they describe (`/proc/sys/kernel/random/boot_id`), the same in every
/// container on one host and new at each boot, so alert rules can count
/// kernels rather than pods (see [`boot_id`]).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KernelLabels {
    boot_id: LabelValue,
}

/// Where Linux states the boot ID of the running kernel. It is not namespaced:
/// containers on one host read the host's, a VM-isolated pod (Kata,
/// Firecracker, Fargate) its own kernel's.
const BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";

/// The running kernel's boot ID (a UUID), or an empty string where it cannot be
/// read or is not a UUID: an empty label value is no label to Prometheus.
fn boot_id() -> String {
    let bytes = crate::os::file::read_regular(std::path::Path::new(BOOT_ID_PATH), 64)
        .ok()
        .flatten()
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    let id = text.trim();
    let uuid = id.len() == 36 && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
    if uuid {
        id.to_string()
    } else {
        String::new()
    }
}

/// `{version="…",arch="…",os="…",platform="…"}` of `skewguard_build_info`;
/// `platform` is the report's platform code (`docker-desktop`, `eks`, `linux`, …).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    arch: &'static str,
    os: &'static str,
    platform: &'static str,
}

/// Every metric `serve` exposes, one row each, in the order `/metrics` lists
/// them: `name: type, unit, "help";`. The name follows `skewguard_` and the
/// unit is appended to it (`offset` with seconds is `skewguard_offset_seconds`);
/// the type is a [`Gauge`] (always present), a [`FloatGauge`], an [`Optional`]
/// (absent until set) or a [`Family`] of gauges, whose label set is its
/// labels. [`Metrics`] gets a field of each name and type, and
/// `Metrics::registered` registers each row in order.
macro_rules! metrics {
    ($($name:ident: $type:ty, $unit:expr, $help:literal;)*) => {
        /// Every metric `serve` exposes (one field per row of the table), and
        /// the registry that encodes them.
        #[derive(Debug)]
        pub(crate) struct Metrics {
            registry: Registry,
            /// The label set of the kernel's series.
            kernel: KernelLabels,
            $($name: $type,)*
        }

        impl Metrics {
            /// Every metric of the table, unset and registered in its order;
            /// `kernel` labels the kernel's series.
            fn registered(kernel: KernelLabels) -> Metrics {
                let mut registry = Registry::with_prefix("skewguard");
                $(
                    let $name = <$type>::default();
                    add(&mut registry, stringify!($name), $help, $unit, $name.clone());
                )*
                Metrics { registry, kernel, $($name,)* }
            }
        }
    };
}

metrics! {
    build_info: Family<BuildLabels, Gauge>, None,
        "Always 1; the labels say which build of skewguard this is and where it runs";
    offset: FloatGauge, Some(Unit::Seconds),
        "Combined clock offset, reference minus local (positive: local clock behind); NaN when unknown";
    uncertainty: FloatGauge, Some(Unit::Seconds),
        "Half-width of the interval holding the true offset; NaN when unknown";
    max_skew: FloatGauge, Some(Unit::Seconds),
        "Skew bound (|offset| + uncertainty) at which the verdict is fail (SKEWGUARD_MAX_SKEW)";
    warn_skew: FloatGauge, Some(Unit::Seconds),
        "Skew bound at which the verdict is warn (SKEWGUARD_WARN_SKEW)";
    interval: FloatGauge, Some(Unit::Seconds),
        "Configured time between two rounds of measurement (SKEWGUARD_INTERVAL, before jitter of 10 percent)";
    stale_after: FloatGauge, Some(Unit::Seconds),
        "How long the measurement loop may go without finishing a round before /livez fails (SKEWGUARD_STALE_AFTER)";
    disabled: Gauge, None,
        "1 when the guard is bypassed (SKEWGUARD_DISABLED=true): the verdict says ok without measuring";
    verdict: Family<StateLabels, Gauge>, None,
        "The verdict served on /healthz: 1 for the current state, 0 for the others";
    source_offset: Family<SourceLabels, FloatGauge>, Some(Unit::Seconds),
        "Offset measured against one source, reference minus local; absent without a measurement";
    source_uncertainty: Family<SourceLabels, FloatGauge>, Some(Unit::Seconds),
        "Error bound of the offset measured against one source";
    source_rtt: Family<SourceLabels, FloatGauge>, Some(Unit::Seconds),
        "Round trip of the query kept for one source";
    source_up: Family<SourceLabels, Gauge>, None,
        "1 if the source gave a usable measurement in the latest round";
    source_authenticated: Family<SourceLabels, Gauge>, None,
        "1 if the source's latest measurement came over a verified channel (https with a verified certificate, nts)";
    auth_disagreement: Gauge, None,
        "1 if authenticated sources and a majority of unauthenticated ones disagreed in the latest round";
    measurements: Family<MeasurementLabels, Counter>, None,
        "Measurements per source by result (ok, falseticker, error) since start";
    last_measurement_timestamp: Optional, Some(Unit::Seconds),
        "Local Unix time of the latest round; absent before the first";
    last_measurement_age: Optional, Some(Unit::Seconds),
        "Age of the latest round at scrape time, on the boot-time clock (unaffected by the wall clock); absent before the first";
    kernel_synchronised: Family<KernelLabels, Gauge>, None,
        "1 if a time daemon has marked the kernel clock synchronised (adjtimex), 0 if not; boot_id names the kernel; absent where unreadable";
    kernel_max_error: Family<KernelLabels, FloatGauge>, Some(Unit::Seconds),
        "The kernel's own maximum error estimate (adjtimex maxerror), which grows by 500 ppm until a time daemon resets it and stops at 16 s; boot_id names the kernel; absent where unreadable";
    holdover: Gauge, None,
        "1 while the verdict is judged from the last good measurement with a bound growing at SKEWGUARD_MAX_DRIFT (no fresh one), 0 otherwise";
    holdover_age: Optional, Some(Unit::Seconds),
        "Age of the measurement held over; absent when not in holdover";
    frequency_error: Optional, Some(ratio()),
        "How fast the reference gains on the local clock, seconds per second (1e-06 is 1 ppm; positive: the local clock runs slow), from a weighted fit over the rounds since start or the last step or suspend; absent until there are enough";
    frequency_error_uncertainty: Optional, Some(ratio()),
        "Standard error of skewguard_frequency_error_ratio; absent likewise";
    seconds_until_breach: Family<ThresholdLabels, FloatGauge>, None,
        "When the skew bound reaches WARN_SKEW (threshold=warn) or MAX_SKEW (threshold=max) at the drift measured; 0 once reached; absent when no breach is forecast";
    holdover_bound: Optional, Some(Unit::Seconds),
        "Grown skew bound |offset| + uncertainty + MAX_DRIFT * age of the measurement held over; absent when not in holdover";
}

/// The unit of a dimensionless quantity (prometheus-client's `Unit::Ratios`
/// would append `_ratios`; the convention is `_ratio`).
fn ratio() -> Unit {
    Unit::Other("ratio".to_string())
}

/// The `result` label of a source's standing.
fn result_name(status: SourceStatus) -> &'static str {
    match status {
        SourceStatus::Ok => "ok",
        SourceStatus::Falseticker => "falseticker",
        SourceStatus::NoMajority => "no_majority",
        SourceStatus::Error => "error",
    }
}

/// Registers `metric` under `skewguard_<name>[_<unit>]`.
fn add(
    registry: &mut Registry,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    metric: impl prometheus_client::registry::Metric,
) {
    match unit {
        Some(unit) => registry.register_with_unit(name, help, unit, metric),
        None => registry.register(name, help, metric),
    }
}

impl Metrics {
    /// Registers every metric. Series for each configured source start at zero
    /// (and the verdict at `unknown`), so queries and alerts see them before the
    /// first round instead of an absent series; the settings other than
    /// `max_skew_seconds` start at 0 until [`Metrics::configure`] sets them.
    pub(crate) fn new(sources: &[Source], max_skew_seconds: f64) -> Metrics {
        Metrics::with_boot_id(sources, max_skew_seconds, boot_id())
    }

    /// [`Metrics::new`] for the kernel with boot ID `boot_id`.
    fn with_boot_id(sources: &[Source], max_skew_seconds: f64, boot_id: String) -> Metrics {
        let m = Metrics::registered(KernelLabels {
            boot_id: LabelValue(boot_id),
        });
        m.build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                arch: std::env::consts::ARCH,
                os: std::env::consts::OS,
                // Where this runs does not change while it runs: read once.
                platform: crate::core::platform::Platform::classify(&crate::platform::read())
                    .code(),
            })
            .set(1);
        m.offset.set(f64::NAN);
        m.uncertainty.set(f64::NAN);
        m.max_skew.set(max_skew_seconds);
        m.set_verdict(Verdict::Unknown);
        for s in sources {
            let name = s.label();
            m.source_up
                .get_or_create(&SourceLabels {
                    source: LabelValue(name.clone()),
                })
                .set(0);
            for result in [
                SourceStatus::Ok,
                SourceStatus::Falseticker,
                SourceStatus::NoMajority,
                SourceStatus::Error,
            ] {
                // Created at 0, so increase() sees the first error.
                let _ = m.measurements.get_or_create(&MeasurementLabels {
                    source: LabelValue(name.clone()),
                    result: result_name(result),
                });
            }
        }
        m
    }

    /// The metrics of `serve` with `config`: [`Metrics::new`] plus
    /// [`Metrics::configure`].
    pub(crate) fn for_config(config: &Config) -> Metrics {
        let m = Metrics::new(&config.sources, config.thresholds.max_skew);
        m.configure(config);
        m
    }

    /// Sets the series that state the configuration.
    fn configure(&self, config: &Config) {
        self.max_skew.set(config.thresholds.max_skew);
        self.warn_skew.set(config.thresholds.warn_skew);
        self.interval.set(config.interval.as_secs_f64());
        self.stale_after.set(config.stale_after.as_secs_f64());
        self.disabled.set(i64::from(config.disabled));
    }

    /// Takes in one round's report.
    pub(crate) fn record(&self, report: &Report) {
        self.offset.set(report.offset_seconds.unwrap_or(f64::NAN));
        self.uncertainty
            .set(report.uncertainty_seconds.unwrap_or(f64::NAN));
        self.max_skew.set(report.max_skew_seconds);
        self.warn_skew.set(report.warn_skew_seconds);
        self.set_verdict(report.verdict);
        // A bypassed guard measures nothing: no round to date.
        if self.disabled.get() == 0 {
            self.last_measurement_timestamp
                .set(Some(report.measured_at));
        }
        match report.kernel {
            Some(k) => {
                self.kernel_synchronised
                    .get_or_create(&self.kernel)
                    .set(i64::from(k.synchronised));
                self.kernel_max_error
                    .get_or_create(&self.kernel)
                    .set(k.max_error_seconds);
            }
            None => {
                self.kernel_synchronised.clear();
                self.kernel_max_error.clear();
            }
        }
        self.auth_disagreement
            .set(i64::from(report.disagreement.is_some()));
        // Other names of one server (aliases) carry its values, so no
        // configured name sits at "down" while its server answers.
        for s in &report.sources {
            for name in std::iter::once(&s.source).chain(&s.aliases) {
                let name = &s.label(name);
                let labels = SourceLabels {
                    source: LabelValue(name.clone()),
                };
                self.source_authenticated
                    .get_or_create(&labels)
                    .set(i64::from(s.authenticated));
                self.measurements
                    .get_or_create(&MeasurementLabels {
                        source: LabelValue(name.clone()),
                        result: result_name(s.status),
                    })
                    .inc();
                let up = s.offset_seconds.is_some();
                self.source_up.get_or_create(&labels).set(i64::from(up));
                // A value the round did not measure is dropped rather than kept
                // from the previous round, which would look current.
                for (family, value) in [
                    (&self.source_offset, s.offset_seconds),
                    (&self.source_uncertainty, s.uncertainty_seconds),
                    (&self.source_rtt, s.rtt_seconds),
                ] {
                    match value.filter(|_| up) {
                        Some(v) => {
                            family.get_or_create(&labels).set(v);
                        }
                        None => {
                            family.remove(&labels);
                        }
                    }
                }
            }
        }
    }

    /// Sets the verdict series: 1 for `verdict`, 0 for the other states.
    fn set_verdict(&self, verdict: Verdict) {
        for v in Verdict::ALL {
            self.verdict
                .get_or_create(&StateLabels { state: v.name() })
                .set(i64::from(v == verdict));
        }
    }

    /// Sets what depends on the time of the scrape: the verdict served now
    /// (unknown once the latest measurement is stale) and the age of the latest
    /// round (`None` before the first).
    pub(crate) fn scrape(&self, verdict: Verdict, age: Option<Duration>) {
        self.set_verdict(verdict);
        let measured = self.disabled.get() == 0;
        self.last_measurement_age
            .set(age.filter(|_| measured).map(|a| a.as_secs_f64()));
    }

    /// Sets the forecast series: the drift (in ppm and its error, exposed as
    /// ratios) and the seconds until the warn and max thresholds are reached;
    /// `None` removes a series.
    pub(crate) fn set_forecast(
        &self,
        drift_ppm: Option<(f64, f64)>,
        warn: Option<f64>,
        max: Option<f64>,
    ) {
        self.frequency_error.set(drift_ppm.map(|d| d.0 * 1e-6));
        self.frequency_error_uncertainty
            .set(drift_ppm.map(|d| d.1 * 1e-6));
        for (threshold, value) in [("warn", warn), ("max", max)] {
            let labels = ThresholdLabels { threshold };
            match value {
                Some(v) => {
                    self.seconds_until_breach.get_or_create(&labels).set(v);
                }
                None => {
                    self.seconds_until_breach.remove(&labels);
                }
            }
        }
    }

    /// Sets the holdover series from the answer served now: `(age, bound)` in
    /// seconds while in holdover, `None` otherwise.
    pub(crate) fn set_holdover(&self, holdover: Option<(f64, f64)>) {
        self.holdover.set(i64::from(holdover.is_some()));
        self.holdover_age.set(holdover.map(|h| h.0));
        self.holdover_bound.set(holdover.map(|h| h.1));
    }

    /// The text of every metric in `format`.
    pub(crate) fn encode(&self, format: Format) -> Result<String, std::fmt::Error> {
        use prometheus_client::encoding::text;
        let mut out = String::with_capacity(4096);
        text::encode_registry(&mut out, &self.registry)?;
        Ok(match format {
            Format::OpenMetrics => {
                text::encode_eof(&mut out)?;
                out
            }
            Format::Text => classic_text(&out),
        })
    }
}

/// The classic text format 0.0.4 of `openmetrics`, an OpenMetrics body as
/// prometheus-client writes this registry (without `# EOF`): the `# HELP` and
/// `# TYPE` lines of a counter family `x` name it `x_total`, as its samples
/// are named; `# UNIT` and `# EOF` lines are left out; every other line is the
/// same in both grammars (see the module docs).
fn classic_text(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 32 * counters.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let descriptor = ["# HELP ", "# TYPE "].into_iter().find_map(|keyword| {
            let (name, rest) = line.strip_prefix(keyword)?.split_once(' ')?;
            Some((keyword, name, rest))
        });
        match descriptor {
            Some((keyword, name, rest)) if counters.contains(&name) => {
                out.push_str(keyword);
                out.push_str(name);
                out.push_str("_total ");
                out.push_str(rest);
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::report::{HostFacts, Judging};
    use crate::core::sample::{Outcome, Sample, SourceError};
    use crate::os::sys::KernelClock;

    /// The value of the sample line that starts with `series` followed by a space.
    fn value(text: &str, series: &str) -> Option<String> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map(str::to_string)
    }

    const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

    #[test]
    fn negotiation_follows_the_accept_header() {
        assert_eq!(negotiate(Some(PROMETHEUS_ACCEPT)), Format::OpenMetrics);
        assert_eq!(
            negotiate(Some("application/openmetrics-text; version=1.0.0")),
            Format::OpenMetrics
        );
        assert_eq!(negotiate(None), Format::Text);
        assert_eq!(negotiate(Some("*/*")), Format::Text);
        assert_eq!(negotiate(Some("")), Format::Text);
        assert_eq!(
            negotiate(Some("text/plain;version=0.0.4")),
            Format::Text,
            "promtool's and curl's"
        );
        assert_eq!(
            negotiate(Some(
                "text/plain;version=0.0.4;q=1,application/openmetrics-text;q=0.5"
            )),
            Format::Text
        );
        assert_eq!(
            negotiate(Some("application/openmetrics-text;q=0")),
            Format::Text
        );
        assert_eq!(
            negotiate(Some("Application/OpenMetrics-Text ; Q=0.9, */*;q=0.9")),
            Format::OpenMetrics
        );
        assert_eq!(
            negotiate(Some(
                "application/openmetrics-text;q=bogus,text/plain;q=0.5"
            )),
            Format::OpenMetrics,
            "an unreadable q counts as 1"
        );
    }

    #[test]
    fn label_values_escape_backslash_quote_and_line_feed_only() {
        for (raw, escaped) in [
            ("", ""),
            ("ntp://a", "ntp://a"),
            (r#"a"}b\c{x="1"#, r#"a\"}b\\c{x=\"1"#),
            ("\n", r"\n"),
            (r"\\", r"\\\\"),
            ("é\t{}=,#", "é\t{}=,#"),
        ] {
            let mut out = String::new();
            escape_label_value(raw, &mut out).unwrap();
            assert_eq!(out, escaped, "{raw:?}");
        }
    }

    #[test]
    fn a_source_with_quotes_and_braces_stays_inside_its_label() {
        let uri = r#"http://127.0.0.1:9/a"}b\c{x="1"#;
        let sources = Source::parse_list(uri).unwrap();
        assert_eq!(sources[0].to_string(), uri, "the source keeps its path");
        let m = Metrics::new(&sources, 150.0);
        for format in [Format::Text, Format::OpenMetrics] {
            let text = m.encode(format).unwrap();
            let series = r#"skewguard_source_up{source="http://127.0.0.1:9/a\"}b\\c{x=\"1"}"#;
            assert_eq!(value(&text, series).as_deref(), Some("0"), "{text}");
            assert!(!text.contains("a\"}b"), "raw quote in {text}");
        }
    }

    /// Metrics with two sources after one round, a forecast and holdover: every
    /// kind of series present.
    fn populated() -> Metrics {
        let sources = Source::parse_list("ntp://a,ntp://b").unwrap();
        let m = Metrics::new(&sources, 150.0);
        let good = Outcome::from_result(Ok(Sample::plain(0.25, 0.001, 0.0005)));
        let dead = Outcome::from_result(Err(SourceError::Io("refused".into())));
        let report = Report::assess(
            &sources,
            &[good, dead],
            &Judging::default(),
            &HostFacts::default(),
        );
        m.record(&report);
        m.set_forecast(Some((500.0, 2.0)), Some(60.0), Some(3600.0));
        m.set_holdover(Some((10.0, 0.3)));
        m
    }

    /// The name of a sample line (before its labels or its value).
    fn sample_name(line: &str) -> &str {
        line.split(['{', ' ']).next().unwrap_or("")
    }

    #[test]
    fn the_classic_text_differs_only_in_counter_names_units_and_eof() {
        let m = populated();
        let om = m.encode(Format::OpenMetrics).unwrap();
        let text = m.encode(Format::Text).unwrap();
        assert!(om.ends_with("# EOF\n"), "{om}");
        assert!(
            om.contains("# UNIT skewguard_offset_seconds seconds\n"),
            "{om}"
        );
        let om_lines: Vec<&str> = om
            .lines()
            .filter(|l| !l.starts_with("# UNIT ") && *l != "# EOF")
            .collect();
        let text_lines: Vec<&str> = text.lines().collect();
        assert_eq!(om_lines.len(), text_lines.len(), "{om}\n{text}");
        for (o, t) in om_lines.iter().zip(&text_lines) {
            let counter = [
                "# HELP skewguard_measurements ",
                "# TYPE skewguard_measurements ",
            ]
            .iter()
            .any(|p| o.starts_with(p));
            if counter {
                assert_eq!(t.replacen("_total ", " ", 1), *o);
            } else {
                assert_eq!(o, t);
            }
        }
    }

    #[test]
    fn every_sample_is_named_as_its_family_requires_in_both_formats() {
        let m = populated();
        for format in [Format::Text, Format::OpenMetrics] {
            let text = m.encode(format).unwrap();
            let mut family: Option<(&str, &str)> = None;
            let mut counters = 0;
            for line in text.lines() {
                if let Some(rest) = line.strip_prefix("# TYPE ") {
                    let (name, kind) = rest.split_once(' ').unwrap();
                    assert!(
                        matches!(kind, "gauge" | "counter"),
                        "{line}: only gauges and counters are translated"
                    );
                    counters += usize::from(kind == "counter");
                    family = Some((name, kind));
                    continue;
                }
                if line.starts_with('#') {
                    continue;
                }
                let (name, kind) = family.unwrap_or_else(|| panic!("{line} before a TYPE"));
                let want = match (format, kind) {
                    (Format::OpenMetrics, "counter") => format!("{name}_total"),
                    _ => name.to_string(),
                };
                assert_eq!(sample_name(line), want, "{format:?}: {line}");
            }
            assert_eq!(counters, 1, "{text}");
        }
    }

    #[test]
    fn measurements_are_a_counter_named_measurements_total_in_both_formats() {
        let m = populated();
        let om = m.encode(Format::OpenMetrics).unwrap();
        let text = m.encode(Format::Text).unwrap();
        assert!(
            om.contains("# TYPE skewguard_measurements counter\n"),
            "{om}"
        );
        assert!(
            text.contains("# TYPE skewguard_measurements_total counter\n"),
            "{text}"
        );
        let series = r#"skewguard_measurements_total{source="ntp://b",result="error"}"#;
        for body in [&om, &text] {
            assert_eq!(value(body, series).as_deref(), Some("1"), "{body}");
        }
    }

    #[test]
    fn help_texts_hold_nothing_either_format_escapes() {
        let text = populated().encode(Format::OpenMetrics).unwrap();
        for help in text.lines().filter(|l| l.starts_with("# HELP ")) {
            assert!(!help.contains(['\\', '"']), "{help}");
        }
    }

    #[test]
    fn the_classic_encoder_renames_counter_descriptors_only() {
        let om = "# HELP a_seconds A.\n# TYPE a_seconds gauge\n# UNIT a_seconds seconds\n\
                  a_seconds 1.0\n# HELP n Counted.\n# TYPE n counter\nn_total{x=\"n \"} 2\n\
                  # HELP n_b Not n.\n# TYPE n_b gauge\nn_b 3\n# EOF\n";
        let want = "# HELP a_seconds A.\n# TYPE a_seconds gauge\na_seconds 1.0\n\
                    # HELP n_total Counted.\n# TYPE n_total counter\nn_total{x=\"n \"} 2\n\
                    # HELP n_b Not n.\n# TYPE n_b gauge\nn_b 3\n";
        assert_eq!(classic_text(om), want);
        assert_eq!(classic_text(""), "");
    }

    #[test]
    fn the_drift_is_a_ratio() {
        let text = populated().encode(Format::Text).unwrap();
        for (series, want) in [
            ("skewguard_frequency_error_ratio", 5e-4),
            ("skewguard_frequency_error_uncertainty_ratio", 2e-6),
        ] {
            let got: f64 = value(&text, series).unwrap().parse().unwrap();
            assert!((got - want).abs() < 1e-15, "{series} {got}");
        }
        for line in text.lines().filter(|l| !l.starts_with("# HELP ")) {
            assert!(!line.contains("ppm"), "{line}");
        }
    }

    #[test]
    fn before_any_round_the_offset_is_nan_the_verdict_unknown_and_no_timestamp() {
        let sources = Source::parse_list("ntp://a").unwrap();
        let m = Metrics::new(&sources, 150.0);
        m.scrape(Verdict::Unknown, None);
        let text = m.encode(Format::OpenMetrics).unwrap();
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
        let version = env!("CARGO_PKG_VERSION");
        assert!(
            text.contains(&format!("skewguard_build_info{{version=\"{version}\",")),
            "{text}"
        );
        for absent in [
            "skewguard_last_measurement_timestamp_seconds",
            "skewguard_last_measurement_age_seconds",
        ] {
            assert_eq!(value(&text, absent), None, "{absent} in {text}");
        }
        assert!(!text.contains("skewguard_kernel_synchronised{"), "{text}");
        assert_eq!(value(&text, "skewguard_disabled").as_deref(), Some("0"));
    }

    #[test]
    fn every_name_of_one_server_carries_its_values() {
        let configured = Source::parse_list("ntp://127.0.0.1,ntp://localhost").unwrap();
        let m = Metrics::new(&configured, 150.0);
        let good = Outcome::from_result(Ok(Sample::plain(0.25, 0.001, 0.0005)));
        let mut report = Report::assess(
            &configured[..1],
            &[good],
            &Judging::default(),
            &HostFacts::default(),
        );
        report.sources[0].aliases = vec!["ntp://localhost".into()];
        m.record(&report);
        let text = m.encode(Format::Text).unwrap();
        for name in ["ntp://127.0.0.1", "ntp://localhost"] {
            let up = format!("skewguard_source_up{{source=\"{name}\"}}");
            assert_eq!(value(&text, &up).as_deref(), Some("1"), "{up}");
        }
    }

    /// A boot ID as Linux writes it.
    const BOOT: &str = "0f3c1b9e-5d2a-4c07-9a61-7e2b8d4f6a10";

    #[test]
    fn the_boot_id_is_this_kernels_uuid_or_nothing() {
        let id = boot_id();
        if std::path::Path::new(BOOT_ID_PATH).exists() {
            assert_eq!(id.len(), 36, "{id:?}");
            assert_eq!(id, boot_id(), "one kernel, one ID");
        } else {
            assert_eq!(id, "");
        }
    }

    #[test]
    fn a_round_sets_offsets_counts_kernel_state_and_drops_silent_sources() {
        let sources = Source::parse_list("ntp://a,ntp://b").unwrap();
        let m = Metrics::with_boot_id(&sources, 150.0, BOOT.to_string());
        let good = Outcome::from_result(Ok(Sample::plain(1200.25, 0.001, 0.0005)));
        let report = Report::assess(
            &sources,
            &[good.clone(), good],
            &Judging::default(),
            &HostFacts {
                now: 1_700_000_000.5,
                kernel: Some(KernelClock {
                    synchronised: false,
                    max_error_seconds: 16.0,
                    est_error_seconds: 0.0,
                }),
                ..HostFacts::default()
            },
        );
        m.record(&report);
        m.scrape(report.verdict, Some(Duration::from_millis(2500)));
        let text = m.encode(Format::Text).unwrap();
        for (series, want) in [
            ("skewguard_offset_seconds", "1200.25"),
            ("skewguard_verdict{state=\"fail\"}", "1"),
            ("skewguard_source_rtt_seconds{source=\"ntp://b\"}", "0.0005"),
            (
                "skewguard_last_measurement_timestamp_seconds",
                "1700000000.5",
            ),
            ("skewguard_last_measurement_age_seconds", "2.5"),
            (
                &format!("skewguard_kernel_synchronised{{boot_id=\"{BOOT}\"}}"),
                "0",
            ),
            (
                &format!("skewguard_kernel_max_error_seconds{{boot_id=\"{BOOT}\"}}"),
                "16.0",
            ),
        ] {
            assert_eq!(value(&text, series).as_deref(), Some(want), "{series}");
        }

        let dead = Outcome::from_result(Err(SourceError::Io("refused".into())));
        let report = Report::assess(
            &sources,
            &[dead.clone(), dead],
            &Judging::default(),
            &HostFacts::default(),
        );
        m.record(&report);
        let text = m.encode(Format::Text).unwrap();
        assert_eq!(
            value(&text, "skewguard_offset_seconds").as_deref(),
            Some("NaN")
        );
        assert!(!text.contains("skewguard_source_offset_seconds{"), "{text}");
        assert_eq!(
            value(
                &text,
                &format!("skewguard_kernel_synchronised{{boot_id=\"{BOOT}\"}}")
            ),
            None,
            "{text}"
        );
        assert!(!text.contains("skewguard_kernel_synchronised{"), "{text}");
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
