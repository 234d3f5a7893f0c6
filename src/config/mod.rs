//! Configuration: `SKEWGUARD_*` environment variables (flags override them by
//! name) turned into a validated [`Config`]. Every error names the variable,
//! the value given and the form that is accepted.
//!
//! The settings are one table, [`SETTINGS`] (in `settings.rs`): each row reads
//! its value into a `Draft`; `Draft::settle` then works out the defaults
//! that depend on other settings and checks settings against each other.
//! Value parsers shared by the rows live in `parse.rs`, the command line and
//! help in [`cli`].

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub mod cli;
pub mod generate;
mod parse;
mod settings;
mod suggest;

pub use parse::parse_duration;
pub use settings::{Setting, Unset, SETTINGS};

use crate::core::holdover::MaxDrift;
use crate::core::sample::QuerySettings;
use crate::core::select::AuthSelect;

use crate::core::verdict::{Profile, Thresholds};
use crate::proto::source::Source;

/// Prefix of every variable.
pub const PREFIX: &str = "SKEWGUARD_";

/// Other tools' variables that skewguard honours as they do: OpenSSL's trust
/// stores and curl's proxies (see `docs/configuration.md`, "Proxies and
/// corporate CAs").
pub const FOREIGN: &[&str] = &[
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "https_proxy",
    "HTTPS_PROXY",
    "http_proxy",
    "HTTP_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
];

/// Whether the variable `name` is read: a `SKEWGUARD_*` one or one of [`FOREIGN`].
pub fn honoured(name: &str) -> bool {
    name.starts_with(PREFIX) || FOREIGN.contains(&name)
}

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
    pub max_drift: MaxDrift,
    /// Where `serve` publishes the node's measurement (`SKEWGUARD_PUBLISH`).
    pub publish: Option<PathBuf>,
    /// Where `check` keeps its cached result.
    pub cache_file: Option<PathBuf>,
    /// How old a cached result may be.
    pub cache_max_age: Duration,
    /// The guard is bypassed.
    pub disabled: bool,
    /// The HTTP proxy the environment names (`HTTPS_PROXY`, else `ALL_PROXY`,
    /// else `HTTP_PROXY`), without credentials: named in hints. Which source
    /// goes through which proxy is in the sources themselves.
    pub proxy: Option<String>,
    /// `check`, `wait`, `exec`: print nothing when the command succeeds.
    pub quiet: bool,
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
        // A flag as it is typed (`--max-skew "5min"`), a variable as it is set.
        let joint = if self.name.starts_with("--") {
            " "
        } else {
            "="
        };
        write!(
            f,
            "{}{joint}{:?} is not accepted: {}",
            self.name, self.value, self.expected
        )
    }
}

impl ConfigError {
    /// The same refusal in the words the user typed: the flag instead of the
    /// variable where the value came from a flag (`flags`: by setting name),
    /// and so for every setting the accepted form mentions.
    pub fn as_given(mut self, flags: &BTreeMap<String, String>) -> ConfigError {
        for setting in flags.keys() {
            let variable = format!("{PREFIX}{setting}");
            if self.name == variable {
                self.name = flag_name(setting);
            }
            self.expected = self.expected.replace(&variable, &flag_name(setting));
        }
        self
    }
}

impl std::error::Error for ConfigError {}

fn err(name: &str, value: &str, expected: impl Into<String>) -> ConfigError {
    ConfigError {
        name: format!("{PREFIX}{name}"),
        value: value.to_string(),
        expected: expected.into(),
    }
}

/// A configuration being read. Each row of [`SETTINGS`] writes its value
/// here: into `config`, or, for a setting whose default depends on other
/// settings, into its own field, which [`Draft::settle`] resolves.
pub(crate) struct Draft {
    config: Config,
    /// `MAX_SKEW`, if given (else half the profile's window).
    max_skew: Option<Duration>,
    /// `WARN_SKEW`, if given (else 1s, at most `MAX_SKEW`).
    warn_skew: Option<Duration>,
    /// `STALE_AFTER`, if given (else three intervals).
    stale_after: Option<Duration>,
}

impl Draft {
    /// Before any row is read. Every field with a value as its default is
    /// written by its row (so these starting values never survive); the
    /// fields of settings whose default is a rule start as that rule's
    /// "off" (`None`) or are filled in by [`Draft::settle`].
    fn new() -> Draft {
        Draft {
            config: Config {
                sources: Vec::new(),
                query: QuerySettings::default(),
                min_sources: 0,
                auth_select: AuthSelect::default(),
                profile: Profile::AWS,
                thresholds: Thresholds {
                    window: 0.0,
                    max_skew: 0.0,
                    warn_skew: 0.0,
                },
                unknown_passes: false,
                output: Output::Text,
                log: None,
                log_format: LogFormat::Text,
                interval: Duration::ZERO,
                wait_timeout: None,
                listen: SocketAddr::from(([0, 0, 0, 0], 0)),
                stale_after: Duration::ZERO,
                max_drift: MaxDrift::DEFAULT,
                publish: None,
                cache_file: None,
                cache_max_age: Duration::ZERO,
                disabled: false,
                proxy: None,
                quiet: false,
            },
            max_skew: None,
            warn_skew: None,
            stale_after: None,
        }
    }

    /// The defaults that depend on other settings, and the checks across
    /// settings: the thresholds against the profile's window and each other.
    /// `given` is the text of a variable, by name without the prefix.
    fn settle<'a>(self, given: impl Fn(&str) -> Option<&'a str>) -> Result<Config, ConfigError> {
        let Draft {
            mut config,
            max_skew,
            warn_skew,
            stale_after,
        } = self;
        let profile = config.profile;
        let window = profile.window_seconds();
        let given = |name| given(name).unwrap_or_default();
        let max_skew = match max_skew {
            Some(d) => {
                within_window("MAX_SKEW", given("MAX_SKEW"), d, profile)?;
                d
            }
            None => Duration::from_secs_f64(window / 2.0),
        };
        // The default warn threshold never exceeds a small MAX_SKEW; an explicit one may not.
        let warn_skew = match warn_skew {
            Some(d) => {
                within_window("WARN_SKEW", given("WARN_SKEW"), d, profile)?;
                if d > max_skew {
                    return Err(err(
                        "WARN_SKEW",
                        given("WARN_SKEW"),
                        format!(
                            "a duration no larger than SKEWGUARD_MAX_SKEW ({})",
                            crate::core::duration::human_setting(max_skew.as_secs_f64())
                        ),
                    ));
                }
                d
            }
            None => Duration::from_secs(1).min(max_skew),
        };
        config.thresholds = Thresholds {
            window,
            max_skew: max_skew.as_secs_f64(),
            warn_skew: warn_skew.as_secs_f64(),
        };
        config.stale_after = stale_after.unwrap_or(config.interval * 3);
        // The HTTP Date refinement stops once the verdict is decided.
        config.query.decide = Some(config.thresholds);
        Ok(config)
    }
}

/// Refuses a threshold at or beyond the profile's window (a guard that can
/// never fail before the signatures do), naming the profiles it would fit.
fn within_window(
    name: &str,
    given: &str,
    value: Duration,
    profile: Profile,
) -> Result<(), ConfigError> {
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

impl Config {
    /// Builds the configuration from `SKEWGUARD_*` variables (name → value).
    ///
    /// Variables without the prefix are ignored; unknown prefixed ones are
    /// not errors here (see [`unknown_variables`]). Each setting is read in
    /// the order of [`SETTINGS`], the checks across settings come after:
    /// the first refusal is the one returned.
    pub fn from_vars<I>(vars: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        // Exact names only (`SKEWGUARD_max_skew` is no setting; it is
        // reported unknown); the map keeps the last of repeated names. Read
        // by hand, not through a serde deserializer, which cost ~30 KB of
        // binary for two dozen optional strings.
        let vars: BTreeMap<String, String> = vars.into_iter().collect();
        let given = |name: &str| vars.get(&format!("{PREFIX}{name}")).map(String::as_str);
        let mut draft = Draft::new();
        for setting in SETTINGS {
            let value = match (given(setting.name), setting.default) {
                (Some(value), _) | (None, Unset::Value(value)) => value,
                (None, Unset::Rule(_)) => continue,
            };
            (setting.parse)(&mut draft, value).map_err(|why| err(setting.name, value, why))?;
        }
        let mut config = draft.settle(given)?;
        let foreign = |name: &str| vars.get(name).map(String::as_str).filter(|v| !v.is_empty());
        config.query.ssl_cert_file = foreign("SSL_CERT_FILE").map(PathBuf::from);
        config.query.ssl_cert_dir = foreign("SSL_CERT_DIR").map(str::to_string);
        let proxies =
            crate::proto::proxy::Proxies::from_vars(foreign).map_err(|(name, value, why)| {
                ConfigError {
                    name,
                    value,
                    expected: why,
                }
            })?;
        for source in &mut config.sources {
            if let Source::Http(target) = source {
                target.proxy = proxies.route(target.tls, &target.host, target.port);
            }
        }
        config.proxy = proxies.shown().map(str::to_string);
        Ok(config)
    }
}

/// The `SKEWGUARD_*` names among `vars` that no setting has (likely typos).
pub fn unknown_variables<'a>(vars: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    vars.into_iter()
        .filter(|k| {
            k.strip_prefix(PREFIX)
                .is_some_and(|rest| settings::setting(rest).is_none())
        })
        .map(str::to_string)
        .collect()
}

/// The setting a misspelt `SKEWGUARD_*` name was probably meant as, with
/// its prefix: `SKEWGUARD_SOURCE` → `SKEWGUARD_SOURCES`.
pub fn nearest_variable(name: &str) -> Option<String> {
    let rest = name.strip_prefix(PREFIX)?;
    suggest::nearest(rest, SETTINGS.iter().map(|s| s.name)).map(|s| format!("{PREFIX}{s}"))
}

/// The flag a misspelt one was probably meant as: `max-skwe` → `--max-skew`.
pub fn nearest_flag(flag: &str) -> Option<String> {
    let flags: Vec<String> = SETTINGS.iter().map(|s| flag_name(s.name)).collect();
    let given = format!("--{flag}");
    suggest::nearest(&given, flags.iter().map(String::as_str)).map(str::to_string)
}

/// Whether a setting is a switch (yes/no: `QUIET`, `DISABLED`), whose flag
/// alone means `true`: its row takes `true` and `false` and no other word.
pub fn is_switch(setting: &Setting) -> bool {
    let accepts = |word: &str| (setting.parse)(&mut Draft::new(), word).is_ok();
    accepts("true") && accepts("false") && !accepts("perhaps")
}

/// Whether `word` is a value a switch takes (`true`, `no`, …).
pub fn is_switch_value(word: &str) -> bool {
    parse::BOOLEAN_WORDS.iter().any(|(w, _)| *w == word)
}

/// The flag for a setting: `MAX_SKEW` → `--max-skew`.
pub fn flag_name(setting: &str) -> String {
    format!("--{}", setting.to_ascii_lowercase().replace('_', "-"))
}

/// The setting for a flag: `max-skew` → `MAX_SKEW`, if there is one.
pub fn setting_for_flag(flag: &str) -> Option<&'static str> {
    let want = flag.to_ascii_uppercase().replace('-', "_");
    settings::setting(&want).map(|s| s.name)
}

/// The smallest `MAX_SKEW` that HTTP `Date` sources alone can confirm for a
/// correct clock: their honest interval is about ±0.8 s after refinement
/// (±1.3 s from one answer) around a centre up to half a second off, so below
/// this a correct clock's bound often reaches `MAX_SKEW` and fails.
pub const HTTP_DATE_ONLY_MIN_SKEW: f64 = 2.0;

impl Config {
    /// Settings that are valid but cannot work as meant, in words, for a
    /// warning at start: a `MAX_SKEW` finer than the sources can resolve.
    pub fn advice(&self) -> Vec<String> {
        let mut advice = Vec::new();
        let date_only =
            !self.sources.is_empty() && self.sources.iter().all(|s| matches!(s, Source::Http(_)));
        if date_only && self.thresholds.max_skew < HTTP_DATE_ONLY_MIN_SKEW {
            advice.push(format!(
                "MAX_SKEW {} is finer than HTTP Date sources alone can confirm (about ±0.8s around a centre up to 0.5s off): a correct clock may fail; add an ntp://, nts:// or roughtime:// source, or set MAX_SKEW to {} or more",
                crate::core::duration::human_setting(self.thresholds.max_skew),
                crate::core::duration::human_setting(HTTP_DATE_ONLY_MIN_SKEW),
            ));
        }
        advice
    }
}

/// Collects the `SKEWGUARD_*` variables of this process, overridden by flags.
pub fn gather(
    env: impl IntoIterator<Item = (String, String)>,
    overrides: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut vars: BTreeMap<String, String> = env.into_iter().filter(|(k, _)| honoured(k)).collect();
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
    fn proxies_and_openssl_stores_come_from_their_own_variables() {
        let vars = [
            (
                "SKEWGUARD_SOURCES",
                "https://a.example/,http://b.example/,https://c.corp/,ntp://d",
            ),
            ("HTTPS_PROXY", "http://u:pw@proxy:3128"),
            ("NO_PROXY", ".corp"),
            ("SSL_CERT_FILE", "/etc/ssl/corp.pem"),
            ("SSL_CERT_DIR", ""),
        ];
        let c =
            Config::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap();
        let via: Vec<Option<String>> = c
            .sources
            .iter()
            .map(|s| s.proxy().map(|p| p.to_string()))
            .collect();
        assert_eq!(
            via,
            [Some("http://proxy:3128".to_string()), None, None, None]
        );
        assert_eq!(
            c.sources[0].label(),
            "https://a.example/ via http://proxy:3128"
        );
        assert_eq!(c.proxy.as_deref(), Some("http://proxy:3128"));
        assert!(!format!("{c:?}").contains("pw"), "credentials in Debug");
        assert_eq!(
            c.query.ssl_cert_file,
            Some(PathBuf::from("/etc/ssl/corp.pem"))
        );
        assert_eq!(c.query.ssl_cert_dir, None, "empty is unset");
        let bad =
            Config::from_vars([("ALL_PROXY".to_string(), "http://u:pw@".to_string())]).unwrap_err();
        assert_eq!(bad.name, "ALL_PROXY");
        assert!(!bad.to_string().contains("pw"), "{bad}");
        assert!(honoured("no_proxy") && honoured("SKEWGUARD_X") && !honoured("PATH"));
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
    fn the_first_refusal_in_help_order_is_reported_cross_checks_last() {
        let name = |pairs: &[(&str, &str)]| cfg(pairs).expect_err("refused").name;
        assert_eq!(
            name(&[("AUTH_SELECT", "all"), ("TIMEOUT", "0")]),
            "SKEWGUARD_TIMEOUT"
        );
        assert_eq!(
            name(&[("MAX_SKEW", "25m"), ("ON_UNKNOWN", "maybe")]),
            "SKEWGUARD_ON_UNKNOWN"
        );
        assert_eq!(
            name(&[("MAX_SKEW", "25m"), ("WARN_SKEW", "30m")]),
            "SKEWGUARD_MAX_SKEW"
        );
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
    fn a_max_skew_finer_than_http_date_alone_is_advised_against() {
        let with = |sources: &str, max: &str| {
            Config::from_vars([
                ("SKEWGUARD_SOURCES".to_string(), sources.to_string()),
                ("SKEWGUARD_MAX_SKEW".to_string(), max.to_string()),
                ("SKEWGUARD_WARN_SKEW".to_string(), "500ms".to_string()),
            ])
            .unwrap()
            .advice()
        };
        let date = "https://a.example/,http://b.example/";
        assert_eq!(with(date, "1s").len(), 1, "{:?}", with(date, "1s"));
        assert!(with(date, "1s")[0].contains("MAX_SKEW 1s"));
        assert!(with(date, "2s").is_empty());
        assert!(with("ntp://a.example,https://b.example/", "1s").is_empty());
    }

    #[test]
    fn unknown_variables_are_found() {
        let got = unknown_variables(["SKEWGUARD_MAX_SKWE", "SKEWGUARD_MAX_SKEW", "PATH"]);
        assert_eq!(got, vec!["SKEWGUARD_MAX_SKWE".to_string()]);
    }

    #[test]
    fn near_names_are_suggested() {
        assert_eq!(
            nearest_variable("SKEWGUARD_SOURCE").as_deref(),
            Some("SKEWGUARD_SOURCES")
        );
        assert_eq!(
            nearest_variable("SKEWGUARD_MAX_SKWE").as_deref(),
            Some("SKEWGUARD_MAX_SKEW")
        );
        assert_eq!(nearest_variable("SKEWGUARD_COLOUR"), None);
        assert_eq!(nearest_flag("max-skwe").as_deref(), Some("--max-skew"));
        assert_eq!(nearest_flag("quite").as_deref(), Some("--quiet"));
    }

    #[test]
    fn a_value_given_as_a_flag_is_refused_as_that_flag() {
        let flags: BTreeMap<String, String> = [("MAX_SKEW".to_string(), "5min".to_string())].into();
        let e = Config::from_vars(gather([], &flags))
            .expect_err("5min")
            .as_given(&flags);
        let msg = e.to_string();
        assert!(
            msg.starts_with("--max-skew \"5min\" is not accepted: "),
            "{msg}"
        );
        assert!(msg.ends_with("did you mean 5m?"), "{msg}");
        assert!(!msg.contains("SKEWGUARD_MAX_SKEW"), "{msg}");
        let flags: BTreeMap<String, String> = [
            ("WARN_SKEW".to_string(), "2m".to_string()),
            ("MAX_SKEW".to_string(), "1m".to_string()),
        ]
        .into();
        let msg = Config::from_vars(gather([], &flags))
            .expect_err("warn above max")
            .as_given(&flags)
            .to_string();
        assert!(msg.starts_with("--warn-skew \"2m\""), "{msg}");
        assert!(msg.contains("no larger than --max-skew"), "{msg}");
    }

    #[test]
    fn flags_map_to_settings() {
        assert_eq!(setting_for_flag("max-skew"), Some("MAX_SKEW"));
        assert_eq!(setting_for_flag("bogus"), None);
        assert_eq!(flag_name("ON_UNKNOWN"), "--on-unknown");
    }
}
