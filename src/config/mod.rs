//! Configuration: `SKEWGUARD_*` environment variables (flags override them by
//! name) turned into a validated [`Config`]. Every error names the variable,
//! the value given and the form that is accepted.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub mod cli;
mod parse;

pub use parse::{
    check_ca_file, check_log_filter, parse_duration, ENUM_RULE, LOG_LEVELS, MAX_CA_FILE,
    MAX_DURATION,
};

use crate::core::sample::QuerySettings;
use crate::core::select::AuthSelect;

use crate::core::verdict::{Profile, Thresholds};
use crate::proto::source::Source;

/// Prefix of every variable.
pub const PREFIX: &str = "SKEWGUARD_";

/// One setting: its name without the prefix, its default as shown in help, and what it does.
pub struct Setting {
    /// Name without `SKEWGUARD_`, e.g. `MAX_SKEW` (flag `--max-skew`).
    pub name: &'static str,
    /// Default, as shown to people.
    pub default: &'static str,
    /// One line of help.
    pub help: &'static str,
}

/// Every setting, in help order.
pub const SETTINGS: &[Setting] = &[
    Setting { name: "SOURCES", default: "aws", help: "comma-separated references: ntp://HOST[:PORT], nts://HOST[:PORT], https://HOST[:PORT][/PATH], http://…, presets `aws`, `nts` (combine: aws,nts)" },
    Setting { name: "PROFILE", default: "aws", help: "signing window: aws 300s, aws-s3 900s, azure 900s, kerberos 300s, vault-jwt 60s, totp 30s" },
    Setting { name: "MAX_SKEW", default: "half the window", help: "skew bound (|offset| + uncertainty) at which the verdict is fail" },
    Setting { name: "WARN_SKEW", default: "1s, at most MAX_SKEW", help: "the verdict is warn when the skew is certainly at least this (|offset| - uncertainty); may not exceed MAX_SKEW" },
    Setting { name: "ON_UNKNOWN", default: "fail", help: "fail|pass: what an unknown verdict does to the exit code and /healthz" },
    Setting { name: "MIN_SOURCES", default: "1", help: "fewest agreeing sources that may give a verdict" },
    Setting { name: "TIMEOUT", default: "2s", help: "bound on one query of one source" },
    Setting { name: "SAMPLES", default: "1", help: "NTP queries per source (the least-delay one is kept)" },
    Setting { name: "SAMPLE_INTERVAL", default: "2s", help: "pause between NTP queries of one server" },
    Setting { name: "HTTP_BUDGET", default: "2s", help: "time the HTTP Date refinement may take after the first answer (0 = one request)" },
    Setting { name: "AUTH_SELECT", default: "mix", help: "mix|require|ignore: whether authenticated sources (https, nts) outrank unauthenticated ones (ntp, http)" },
    Setting { name: "MAX_SOURCE_ERROR", default: "3s", help: "a source whose error bound (±) is wider than this is an error, not a vote (like chrony's maxdistance)" },
    Setting { name: "CA_FILE", default: "none", help: "PEM file of extra root certificates for https and nts sources" },
    Setting { name: "OUTPUT", default: "text", help: "text|json|npd (check, wait, exec; npd: node-problem-detector's one line, check exits 0 OK, 1 NonOK, 2 Unknown)" },
    Setting { name: "LOG", default: "warn (check, health), info (others)", help: "log filter on stderr, e.g. `info` or `warn,skewguard=debug`" },
    Setting { name: "LOG_FORMAT", default: "text", help: "text|json" },
    Setting { name: "INTERVAL", default: "60s", help: "serve: time between measurements; wait: longest pause between attempts" },
    Setting { name: "WAIT_TIMEOUT", default: "5m", help: "wait/exec: give up after this long (0 = never)" },
    Setting { name: "LISTEN", default: "0.0.0.0:8080", help: "serve: address of /healthz, /readyz, /livez, /metrics; health: port to probe" },
    Setting { name: "MAX_DRIFT", default: "500ppm", help: "serve, and check's cache: how fast the skew bound of the last good measurement grows while no source answers (holdover); `500ppm` or `500`, up to 100000ppm" },
    Setting { name: "STALE_AFTER", default: "3 intervals", help: "serve: /livez fails when no round has finished for this long (plus jitter and two round times): a stuck loop; the verdict outlives a failed round by the MAX_DRIFT holdover rule instead" },
    Setting { name: "CACHE_FILE", default: "none", help: "check: reuse a result written by an earlier run within CACHE_MAX_AGE (a private regular file of this user only)" },
    Setting { name: "CACHE_MAX_AGE", default: "60s", help: "check: how old a cached result may be" },
    Setting { name: "DISABLED", default: "false", help: "true: bypass the guard (wait/exec proceed, check and /healthz report ok with a note)" },
];

/// Output format of `check`, `wait` and `exec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// A headline and one line per source.
    Text,
    /// One JSON object.
    Json,
    /// node-problem-detector's custom plugin protocol: one status line of at
    /// most 80 characters; `check` exits 0 OK, 1 NonOK, 2 Unknown (see [`crate::output::npd`]).
    Npd,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// References to measure against.
    pub sources: Vec<Source>,
    /// How each source is queried.
    pub query: QuerySettings,
    /// Fewest agreeing sources that may give a verdict.
    pub min_sources: usize,
    /// How authenticated and unauthenticated sources share the vote.
    pub auth_select: AuthSelect,
    /// The signing window.
    pub profile: Profile,
    /// Window, fail and warn thresholds in seconds.
    pub thresholds: Thresholds,
    /// `ON_UNKNOWN=pass`.
    pub unknown_passes: bool,
    /// Output format.
    pub output: Output,
    /// Log filter, if set.
    pub log: Option<String>,
    /// Log format.
    pub log_format: LogFormat,
    /// Time between measurements (serve) and the longest back-off (wait).
    pub interval: Duration,
    /// Give up waiting after this long; `None` waits forever.
    pub wait_timeout: Option<Duration>,
    /// Where `serve` listens.
    pub listen: SocketAddr,
    /// `/livez`: how long the measurement loop may go without finishing a round.
    pub stale_after: Duration,
    /// How fast the bound of a held-over measurement grows.
    pub max_drift: crate::core::holdover::MaxDrift,
    /// Where `check` keeps its cached result.
    pub cache_file: Option<PathBuf>,
    /// How old a cached result may be.
    pub cache_max_age: Duration,
    /// The guard is bypassed.
    pub disabled: bool,
}

/// A setting that could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The variable, e.g. `SKEWGUARD_MAX_SKEW`.
    pub name: String,
    /// The value given.
    pub value: String,
    /// What is accepted.
    pub expected: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={:?} is not accepted: {}",
            self.name, self.value, self.expected
        )
    }
}

impl std::error::Error for ConfigError {}

// Every field is read as a string and validated below, so errors can name the variable.
#[derive(Default)]
struct Raw {
    sources: Option<String>,
    profile: Option<String>,
    max_skew: Option<String>,
    warn_skew: Option<String>,
    on_unknown: Option<String>,
    min_sources: Option<String>,
    timeout: Option<String>,
    samples: Option<String>,
    sample_interval: Option<String>,
    http_budget: Option<String>,
    auth_select: Option<String>,
    max_source_error: Option<String>,
    ca_file: Option<String>,
    output: Option<String>,
    log: Option<String>,
    log_format: Option<String>,
    interval: Option<String>,
    wait_timeout: Option<String>,
    listen: Option<String>,
    stale_after: Option<String>,
    max_drift: Option<String>,
    cache_file: Option<String>,
    cache_max_age: Option<String>,
    disabled: Option<String>,
}

const DURATION_FORM: &str =
    "a duration: numbers with the units ms, s, m, h or d (lowercase, largest first), e.g. 90s, 2m30s, 150ms or 0";

fn err(name: &str, value: &str, expected: impl Into<String>) -> ConfigError {
    ConfigError {
        name: format!("{PREFIX}{name}"),
        value: value.to_string(),
        expected: expected.into(),
    }
}

fn duration(name: &str, v: &Option<String>, default: Duration) -> Result<Duration, ConfigError> {
    match v {
        None => Ok(default),
        Some(s) => {
            parse_duration(s).ok_or_else(|| err(name, s, format!("{DURATION_FORM}; at most 365d")))
        }
    }
}

fn positive_duration(
    name: &str,
    v: &Option<String>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let d = duration(name, v, default)?;
    if d.is_zero() {
        return Err(err(
            name,
            v.as_deref().unwrap_or(""),
            format!("{DURATION_FORM}, greater than zero"),
        ));
    }
    Ok(d)
}

fn choice<T: Copy>(
    name: &str,
    v: &Option<String>,
    default: T,
    options: &[(&str, T)],
) -> Result<T, ConfigError> {
    match v {
        None => Ok(default),
        Some(s) => options
            .iter()
            .find(|(k, _)| *k == s.trim())
            .map(|(_, t)| *t)
            .ok_or_else(|| {
                let names: Vec<&str> = options.iter().map(|(k, _)| *k).collect();
                err(
                    name,
                    s,
                    format!("one of {} ({ENUM_RULE})", names.join(", ")),
                )
            }),
    }
}

fn count(name: &str, v: &Option<String>, default: u32, max: u32) -> Result<u32, ConfigError> {
    match v {
        None => Ok(default),
        Some(s) => match s.trim().parse::<u32>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(err(name, s, format!("a whole number from 1 to {max}"))),
        },
    }
}

/// Refuses a threshold at or beyond the profile's window (a guard that can
/// never fail before the signatures do), naming the profiles it would fit.
fn within_window(
    name: &str,
    v: &Option<String>,
    value: Duration,
    profile: Profile,
) -> Result<(), ConfigError> {
    let Some(given) = v else { return Ok(()) };
    let secs = value.as_secs_f64();
    let window = profile.window_seconds();
    if secs < window {
        return Ok(());
    }
    let wider = Profile::all()
        .map(|p| p.window_seconds())
        .filter(|w| *w > secs)
        .fold(f64::INFINITY, f64::min);
    let fits: Vec<&str> = Profile::all()
        .filter(|p| p.window_seconds() == wider)
        .map(|p| p.name())
        .collect();
    let human = crate::core::duration::human_setting;
    let advice = if fits.is_empty() {
        format!("no profile has a window wider than {}", human(secs))
    } else {
        format!(
            "{} fits SKEWGUARD_PROFILE={} (window {})",
            human(secs),
            fits.join(" or "),
            human(wider)
        )
    };
    Err(err(
        name,
        given,
        format!(
            "a duration below the {} window of SKEWGUARD_PROFILE={} ({}), which breaks first; {advice}",
            human(window),
            profile.name(),
            profile.what()
        ),
    ))
}

fn path(v: &Option<String>) -> Option<PathBuf> {
    v.as_deref().filter(|s| !s.is_empty()).map(PathBuf::from)
}

impl Config {
    /// Builds the configuration from `SKEWGUARD_*` variables (name → value).
    ///
    /// Variables without the prefix are ignored; unknown prefixed ones are
    /// not errors here (see [`unknown_variables`]).
    pub fn from_vars<I>(vars: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        // Exact names only (`SKEWGUARD_max_skew` is no setting; it is
        // reported unknown); the map keeps the last of repeated names. Read
        // by hand, not through a serde deserializer, which cost ~30 KB of
        // binary for two dozen optional strings.
        let vars: BTreeMap<String, String> = vars.into_iter().collect();
        let get = |name: &str| vars.get(&format!("{PREFIX}{name}")).cloned();
        let raw = Raw {
            sources: get("SOURCES"),
            profile: get("PROFILE"),
            max_skew: get("MAX_SKEW"),
            warn_skew: get("WARN_SKEW"),
            on_unknown: get("ON_UNKNOWN"),
            min_sources: get("MIN_SOURCES"),
            timeout: get("TIMEOUT"),
            samples: get("SAMPLES"),
            sample_interval: get("SAMPLE_INTERVAL"),
            http_budget: get("HTTP_BUDGET"),
            auth_select: get("AUTH_SELECT"),
            max_source_error: get("MAX_SOURCE_ERROR"),
            ca_file: get("CA_FILE"),
            output: get("OUTPUT"),
            log: get("LOG"),
            log_format: get("LOG_FORMAT"),
            interval: get("INTERVAL"),
            wait_timeout: get("WAIT_TIMEOUT"),
            listen: get("LISTEN"),
            stale_after: get("STALE_AFTER"),
            max_drift: get("MAX_DRIFT"),
            cache_file: get("CACHE_FILE"),
            cache_max_age: get("CACHE_MAX_AGE"),
            disabled: get("DISABLED"),
        };

        let sources = Source::parse_list(raw.sources.as_deref().unwrap_or("aws"))
            .map_err(|e| err("SOURCES", raw.sources.as_deref().unwrap_or(""), e))?;

        let profile = match &raw.profile {
            None => Profile::AWS,
            Some(s) => Profile::parse(s.trim()).ok_or_else(|| {
                let names: Vec<&str> = Profile::all().map(|p| p.name()).collect();
                err(
                    "PROFILE",
                    s,
                    format!("one of {} ({ENUM_RULE})", names.join(", ")),
                )
            })?,
        };
        let window = profile.window_seconds();
        let max_skew = positive_duration(
            "MAX_SKEW",
            &raw.max_skew,
            Duration::from_secs_f64(window / 2.0),
        )?;
        within_window("MAX_SKEW", &raw.max_skew, max_skew, profile)?;
        // The default warn threshold never exceeds a small MAX_SKEW; an explicit one may not.
        let warn_skew = duration(
            "WARN_SKEW",
            &raw.warn_skew,
            Duration::from_secs(1).min(max_skew),
        )?;
        within_window("WARN_SKEW", &raw.warn_skew, warn_skew, profile)?;
        if warn_skew > max_skew {
            return Err(err(
                "WARN_SKEW",
                raw.warn_skew.as_deref().unwrap_or_default(),
                format!(
                    "a duration no larger than SKEWGUARD_MAX_SKEW ({})",
                    crate::core::duration::human_setting(max_skew.as_secs_f64())
                ),
            ));
        }
        let thresholds = Thresholds {
            window,
            max_skew: max_skew.as_secs_f64(),
            warn_skew: warn_skew.as_secs_f64(),
        };

        let unknown_passes = choice(
            "ON_UNKNOWN",
            &raw.on_unknown,
            false,
            &[("fail", false), ("pass", true)],
        )?;
        let min_sources = count("MIN_SOURCES", &raw.min_sources, 1, 64)? as usize;
        let auth_select = choice(
            "AUTH_SELECT",
            &raw.auth_select,
            AuthSelect::Mix,
            &[
                ("mix", AuthSelect::Mix),
                ("require", AuthSelect::Require),
                ("ignore", AuthSelect::Ignore),
            ],
        )?;
        let query = QuerySettings {
            timeout: positive_duration("TIMEOUT", &raw.timeout, Duration::from_secs(2))?,
            samples: count("SAMPLES", &raw.samples, 1, 16)?,
            sample_interval: duration(
                "SAMPLE_INTERVAL",
                &raw.sample_interval,
                Duration::from_secs(2),
            )?,
            http_budget: duration("HTTP_BUDGET", &raw.http_budget, Duration::from_secs(2))?,
            ca_file: path(&raw.ca_file),
            max_source_error: positive_duration(
                "MAX_SOURCE_ERROR",
                &raw.max_source_error,
                Duration::from_secs(3),
            )?,
        };
        let output = choice(
            "OUTPUT",
            &raw.output,
            Output::Text,
            &[
                ("text", Output::Text),
                ("json", Output::Json),
                ("npd", Output::Npd),
            ],
        )?;
        let log_format = choice(
            "LOG_FORMAT",
            &raw.log_format,
            LogFormat::Text,
            &[("text", LogFormat::Text), ("json", LogFormat::Json)],
        )?;
        if let Some(filter) = &raw.log {
            check_log_filter(filter).map_err(|why| {
                err(
                    "LOG",
                    filter,
                    format!(
                        "{why}; expected comma-separated LEVEL or TARGET=LEVEL, LEVEL one of {} ({ENUM_RULE}), e.g. `info` or `warn,skewguard=debug`",
                        LOG_LEVELS.join(", ")
                    ),
                )
            })?;
        }
        if let Some(ca) = &query.ca_file {
            check_ca_file(ca).map_err(|why| {
                err(
                    "CA_FILE",
                    raw.ca_file.as_deref().unwrap_or_default(),
                    format!("{why}; expected a readable PEM file of one or more CA certificates (-----BEGIN CERTIFICATE-----), at most {} KiB", MAX_CA_FILE / 1024),
                )
            })?;
        }
        let interval = positive_duration("INTERVAL", &raw.interval, Duration::from_secs(60))?;
        let wait_timeout = duration("WAIT_TIMEOUT", &raw.wait_timeout, Duration::from_secs(300))?;
        let listen = match &raw.listen {
            None => SocketAddr::from(([0, 0, 0, 0], 8080)),
            Some(s) => s.trim().parse().map_err(|_| {
                err(
                    "LISTEN",
                    s,
                    "an address and port such as 0.0.0.0:8080 or [::]:8080",
                )
            })?,
        };
        let stale_after = positive_duration("STALE_AFTER", &raw.stale_after, interval * 3)?;
        let max_drift = match &raw.max_drift {
            None => crate::core::holdover::MaxDrift::DEFAULT,
            // Units in lowercase, as everywhere: `500PPM` is refused.
            Some(s) => (!s.contains(|c: char| c.is_ascii_uppercase()))
                .then(|| crate::core::holdover::MaxDrift::parse(s))
                .flatten()
                .ok_or_else(|| {
                    err(
                        "MAX_DRIFT",
                        s,
                        "a rate in parts per million such as 500ppm or 500 (lowercase), above 0 and at most 100000ppm",
                    )
                })?,
        };
        let cache_max_age = duration("CACHE_MAX_AGE", &raw.cache_max_age, Duration::from_secs(60))?;
        let disabled = choice(
            "DISABLED",
            &raw.disabled,
            false,
            &[
                ("true", true),
                ("false", false),
                ("1", true),
                ("0", false),
                ("yes", true),
                ("no", false),
            ],
        )?;

        Ok(Config {
            sources,
            query,
            min_sources,
            auth_select,
            profile,
            thresholds,
            unknown_passes,
            output,
            log: raw.log.clone(),
            log_format,
            interval,
            wait_timeout: (!wait_timeout.is_zero()).then_some(wait_timeout),
            listen,
            stale_after,
            max_drift,
            cache_file: path(&raw.cache_file),
            cache_max_age,
            disabled,
        })
    }
}

/// The `SKEWGUARD_*` names among `vars` that no setting has (likely typos).
pub fn unknown_variables<'a>(vars: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    vars.into_iter()
        .filter_map(|k| k.strip_prefix(PREFIX).map(|rest| (k, rest)))
        .filter(|(_, rest)| !SETTINGS.iter().any(|s| s.name == *rest))
        .map(|(k, _)| k.to_string())
        .collect()
}

/// The flag for a setting: `MAX_SKEW` → `--max-skew`.
pub fn flag_name(setting: &str) -> String {
    format!("--{}", setting.to_ascii_lowercase().replace('_', "-"))
}

/// The setting for a flag: `max-skew` → `MAX_SKEW`, if there is one.
pub fn setting_for_flag(flag: &str) -> Option<&'static str> {
    let want = flag.to_ascii_uppercase().replace('-', "_");
    SETTINGS.iter().find(|s| s.name == want).map(|s| s.name)
}

/// Collects the `SKEWGUARD_*` variables of this process, overridden by flags.
pub fn gather(
    env: impl IntoIterator<Item = (String, String)>,
    overrides: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut vars: BTreeMap<String, String> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(PREFIX))
        .collect();
    for (k, v) in overrides {
        vars.insert(format!("{PREFIX}{k}"), v.clone());
    }
    vars
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_vars(
            pairs
                .iter()
                .map(|(k, v)| (format!("{PREFIX}{k}"), v.to_string())),
        )
    }

    #[test]
    fn defaults() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.sources.len(), 3);
        assert_eq!(c.profile, Profile::AWS);
        assert_eq!(c.thresholds.max_skew, 150.0);
        assert_eq!(c.thresholds.warn_skew, 1.0);
        assert_eq!(c.query.timeout, Duration::from_secs(2));
        assert_eq!(c.wait_timeout, Some(Duration::from_secs(300)));
        assert_eq!(c.stale_after, Duration::from_secs(180));
        assert!(!c.unknown_passes && !c.disabled);
        assert_eq!(c.max_drift.ppm(), 500.0);
        let c = cfg(&[("MAX_DRIFT", "5000ppm")]).unwrap();
        assert_eq!(c.max_drift.ppm(), 5000.0);
        assert_eq!(
            crate::round::judging(&c),
            crate::core::report::Judging::default()
        );
    }

    #[test]
    fn profile_sets_the_default_max_skew() {
        let c = cfg(&[("PROFILE", "aws-s3")]).unwrap();
        assert_eq!(c.thresholds.max_skew, 450.0);
        let c = cfg(&[("MAX_SKEW", "10ms")]).unwrap();
        assert_eq!(
            c.thresholds.warn_skew, 0.01,
            "the default warn follows a small MAX_SKEW"
        );
        let c = cfg(&[("PROFILE", "totp"), ("MAX_SKEW", "20s")]).unwrap();
        assert_eq!(c.thresholds.max_skew, 20.0);
        assert_eq!(c.thresholds.window, 30.0);
    }

    #[test]
    fn errors_name_the_variable_value_and_form() {
        for (k, v) in [
            ("MAX_SKEW", "abc"),
            ("MAX_SKEW", "0"),
            ("SOURCES", "ftp://x"),
            ("PROFILE", "nope"),
            ("ON_UNKNOWN", "maybe"),
            ("OUTPUT", "xml"),
            ("SAMPLES", "0"),
            ("LISTEN", "8080"),
            ("DISABLED", "perhaps"),
            ("TIMEOUT", "-1s"),
            ("WARN_SKEW", "200s"),
            ("MAX_DRIFT", "0"),
            ("MAX_DRIFT", "fast"),
        ] {
            let e = cfg(&[(k, v)]).expect_err(k);
            let msg = e.to_string();
            assert!(msg.contains(&format!("SKEWGUARD_{k}")), "{msg}");
            assert!(msg.contains(v), "{msg}");
        }
    }

    #[test]
    fn huge_durations_and_miscased_names_are_refused() {
        // Found by fuzzing: `interval * 3` and `Instant + d` overflowed.
        let e = cfg(&[("INTERVAL", "200000000000d")]).expect_err("huge");
        assert!(e.to_string().contains("at most 365d"), "{e}");
        // envy folds case; only exact names count, so this stays the default.
        let c = Config::from_vars([("SKEWGUARD_max_skew".to_string(), "1s".to_string())]).unwrap();
        assert_eq!(c.thresholds.max_skew, 150.0);
    }

    #[test]
    fn thresholds_at_or_beyond_the_window_name_a_profile_that_fits() {
        let e = cfg(&[("MAX_SKEW", "25m")]).expect_err("25m on aws");
        let msg = e.to_string();
        assert!(
            msg.contains("SKEWGUARD_MAX_SKEW") && msg.contains("25m"),
            "{msg}"
        );
        assert!(
            msg.contains("no profile has a window wider than 25m"),
            "{msg}"
        );
        let msg = cfg(&[("MAX_SKEW", "5m")])
            .expect_err("5m on aws")
            .to_string();
        assert!(msg.contains("aws-s3 or azure (window 15m)"), "{msg}");
        let msg = cfg(&[("PROFILE", "totp"), ("WARN_SKEW", "30s")])
            .expect_err("30s on totp")
            .to_string();
        assert!(
            msg.contains("SKEWGUARD_WARN_SKEW") && msg.contains("vault-jwt"),
            "{msg}"
        );
        assert!(cfg(&[("PROFILE", "aws-s3"), ("MAX_SKEW", "10m")]).is_ok());
    }

    #[test]
    fn named_values_match_exactly_in_lowercase_everywhere() {
        for (k, v) in [
            ("ON_UNKNOWN", "PASS"),
            ("PROFILE", "AWS"),
            ("OUTPUT", "Json"),
            ("LOG_FORMAT", "JSON"),
            ("DISABLED", "TRUE"),
            ("LOG", "INFO"),
            ("MAX_DRIFT", "500PPM"),
        ] {
            let msg = cfg(&[(k, v)]).expect_err(v).to_string();
            assert!(msg.contains("lowercase"), "{msg}");
        }
        assert!(cfg(&[("ON_UNKNOWN", "pass"), ("PROFILE", "aws-s3")]).is_ok());
    }

    #[test]
    fn unknown_variables_are_found() {
        let got = unknown_variables(["SKEWGUARD_MAX_SKWE", "SKEWGUARD_MAX_SKEW", "PATH"]);
        assert_eq!(got, vec!["SKEWGUARD_MAX_SKWE".to_string()]);
    }

    #[test]
    fn flags_map_to_settings() {
        assert_eq!(setting_for_flag("max-skew"), Some("MAX_SKEW"));
        assert_eq!(setting_for_flag("bogus"), None);
        assert_eq!(flag_name("ON_UNKNOWN"), "--on-unknown");
    }
}
