//! The settings table: one row per setting, the only place a setting is
//! declared. A row gives the name, the default, the help line, the commands
//! that read it and how its text becomes part of the [`Config`](crate::config::Config); from the
//! table come the help text, the flags, the unknown-variable warnings,
//! [`crate::config::cli::reads`] and [`Config::from_vars`](crate::config::Config::from_vars).
//!
//! Adding a setting: a row here (in help order) and, if it is new to the
//! rest of the crate, a field of [`Config`](crate::config::Config) and its starting value in
//! `Draft::new`. A default that depends on other settings (or a check
//! across settings) goes to `Draft::settle`.

use std::fmt;

use super::parse::{
    boolean, ca_file, choice, count, duration, log_filter, path, positive_duration,
};
use super::{Draft, LogFormat, Output};
use crate::core::holdover::MaxDrift;
use crate::core::select::AuthSelect;
use crate::core::verdict::Profile;
use crate::proto::source::Source;

/// One setting: a row of [`SETTINGS`].
pub struct Setting {
    /// Name without `SKEWGUARD_`, e.g. `MAX_SKEW` (flag `--max-skew`).
    pub name: &'static str,
    /// Default, as shown to people, and whether it is a value or a rule.
    pub default: Unset,
    /// One line of help.
    pub help: &'static str,
    /// The commands that read it (`check`, `wait`, `exec`, `serve`, `health`).
    pub commands: &'static [&'static str],
    /// Reads the value given (or the default, when that is a value) into
    /// the draft; an error says what is accepted, in words.
    pub(crate) parse: fn(&mut Draft, &str) -> Result<(), String>,
}

/// What a setting that is not given means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unset {
    /// Read exactly as if given: `2s`, `aws`, `false`.
    Value(&'static str),
    /// Said in words: the setting stays off (`none`), or `Draft::settle` (or
    /// the command) works it out from other settings.
    Rule(&'static str),
}

impl Unset {
    /// The default as help shows it.
    pub fn shown(self) -> &'static str {
        match self {
            Unset::Value(s) | Unset::Rule(s) => s,
        }
    }
}

impl fmt::Display for Unset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.shown())
    }
}

/// The commands that measure: most settings are read by exactly these.
const MEASURING: &[&str] = &["check", "wait", "exec", "serve"];
/// Every command (`health` as well).
const EVERY: &[&str] = &["check", "wait", "exec", "serve", "health"];

use Unset::{Rule, Value};

/// Every setting, in help order (which is also the order values are read and
/// refused in: the first bad one in this order is the one reported).
pub const SETTINGS: &[Setting] = &[
    Setting {
        name: "SOURCES",
        default: Value("aws"),
        help: "comma-separated references: ntp://HOST[:PORT], nts://HOST[:PORT], https://HOST[:PORT][/PATH], http://…, roughtime://HOST[:PORT]#KEY, node:///PATH (a node file serve --publish writes), clockbound://[/PATH] (AWS ClockBound's segment), presets `aws`, `nts`, `roughtime` (combine: aws,nts); https:// and http:// go through the proxy of HTTPS_PROXY/HTTP_PROXY/ALL_PROXY unless NO_PROXY exempts them (curl's rules)",
        commands: MEASURING,
        parse: |d, v| Source::parse_list(v).map(|s| d.config.sources = s),
    },
    Setting {
        name: "PROFILE",
        default: Value("aws"),
        help: "signing window: aws 300s, aws-s3 900s, azure 900s, kerberos 300s, vault-jwt 60s, totp 30s",
        commands: MEASURING,
        parse: |d, v| {
            let profiles: Vec<_> = Profile::all().map(|p| (p.name(), p)).collect();
            choice(v, &profiles).map(|p| d.config.profile = p)
        },
    },
    Setting {
        name: "MAX_SKEW",
        default: Rule("half the window"),
        help: "skew bound (|offset| + uncertainty) at which the verdict is fail",
        commands: MEASURING,
        parse: |d, v| positive_duration(v).map(|t| d.max_skew = Some(t)),
    },
    Setting {
        name: "WARN_SKEW",
        default: Rule("1s, at most MAX_SKEW"),
        help: "the verdict is warn when the skew is certainly at least this (|offset| - uncertainty); may not exceed MAX_SKEW",
        commands: MEASURING,
        parse: |d, v| duration(v).map(|t| d.warn_skew = Some(t)),
    },
    Setting {
        name: "ON_UNKNOWN",
        default: Value("fail"),
        help: "fail|pass: what an unknown verdict does to the exit code and /healthz",
        commands: MEASURING,
        parse: |d, v| {
            choice(v, &[("fail", false), ("pass", true)]).map(|p| d.config.unknown_passes = p)
        },
    },
    Setting {
        name: "MIN_SOURCES",
        default: Value("1"),
        help: "fewest agreeing sources that may give a verdict",
        commands: MEASURING,
        parse: |d, v| count(v, 64).map(|n| d.config.min_sources = n as usize),
    },
    Setting {
        name: "TIMEOUT",
        default: Value("2s"),
        help: "bound on one query of one source",
        commands: EVERY,
        parse: |d, v| positive_duration(v).map(|t| d.config.query.timeout = t),
    },
    Setting {
        name: "SAMPLES",
        default: Value("1"),
        help: "NTP queries per source (the least-delay one is kept)",
        commands: MEASURING,
        parse: |d, v| count(v, 16).map(|n| d.config.query.samples = n),
    },
    Setting {
        name: "SAMPLE_INTERVAL",
        default: Value("2s"),
        help: "pause between NTP queries of one server",
        commands: MEASURING,
        parse: |d, v| duration(v).map(|t| d.config.query.sample_interval = t),
    },
    Setting {
        name: "HTTP_BUDGET",
        default: Value("2s"),
        help: "time the HTTP Date refinement may take after the first answer (0 = one request); it runs only while more answers could change the verdict",
        commands: MEASURING,
        parse: |d, v| duration(v).map(|t| d.config.query.http_budget = t),
    },
    Setting {
        name: "AUTH_SELECT",
        default: Value("mix"),
        help: "mix|require|ignore: whether authenticated sources (https, nts) outrank unauthenticated ones (ntp, http)",
        commands: MEASURING,
        parse: |d, v| {
            let modes = [
                ("mix", AuthSelect::Mix),
                ("require", AuthSelect::Require),
                ("ignore", AuthSelect::Ignore),
            ];
            choice(v, &modes).map(|m| d.config.auth_select = m)
        },
    },
    Setting {
        name: "MAX_SOURCE_ERROR",
        default: Value("3s"),
        help: "a source whose error bound (±) is wider than this is an error, not a vote (like chrony's maxdistance)",
        commands: MEASURING,
        parse: |d, v| positive_duration(v).map(|t| d.config.query.max_source_error = t),
    },
    Setting {
        name: "CA_FILE",
        default: Rule("none"),
        help: "PEM file of extra root certificates for https and nts sources; a certificate in it that a server presents as its own is pinned (self-signed works). SSL_CERT_FILE and SSL_CERT_DIR are trusted too",
        commands: MEASURING,
        parse: |d, v| ca_file(v).map(|p| d.config.query.ca_file = p),
    },
    Setting {
        name: "OUTPUT",
        default: Value("text"),
        help: "text|json|npd (check, wait, exec; npd: node-problem-detector's one line, check exits 0 OK, 1 NonOK, 2 Unknown)",
        commands: &["check", "wait", "exec"],
        parse: |d, v| {
            let formats = [
                ("text", Output::Text),
                ("json", Output::Json),
                ("npd", Output::Npd),
            ];
            choice(v, &formats).map(|o| d.config.output = o)
        },
    },
    Setting {
        name: "LOG",
        default: Rule("warn (check, health), info (others)"),
        help: "log filter on stderr, e.g. `info` or `warn,skewguard=debug`",
        commands: EVERY,
        parse: |d, v| log_filter(v).map(|f| d.config.log = Some(f)),
    },
    Setting {
        name: "LOG_FORMAT",
        default: Value("text"),
        help: "text|json",
        commands: EVERY,
        parse: |d, v| {
            let formats = [("text", LogFormat::Text), ("json", LogFormat::Json)];
            choice(v, &formats).map(|f| d.config.log_format = f)
        },
    },
    Setting {
        name: "INTERVAL",
        default: Value("60s"),
        help: "serve: time between measurements (an upstream server is queried at most every 64s: shorter intervals reuse its last result); wait: longest pause between attempts",
        commands: &["wait", "exec", "serve"],
        parse: |d, v| positive_duration(v).map(|t| d.config.interval = t),
    },
    Setting {
        name: "WAIT_TIMEOUT",
        default: Value("5m"),
        help: "how long wait and exec try before they give up (0 = never)",
        commands: &["wait", "exec"],
        parse: |d, v| duration(v).map(|t| d.config.wait_timeout = (!t.is_zero()).then_some(t)),
    },
    Setting {
        name: "LISTEN",
        default: Value("0.0.0.0:8080"),
        help: "serve: address of /healthz, /readyz, /livez, /metrics; health: port to probe",
        commands: &["serve", "health"],
        parse: |d, v| {
            let form = "an address and port such as 0.0.0.0:8080 or [::]:8080";
            let address = v.trim().parse().map_err(|_| form.to_string())?;
            d.config.listen = address;
            Ok(())
        },
    },
    Setting {
        name: "MAX_DRIFT",
        default: Value("500ppm"),
        help: "serve, and check's cache: how fast the skew bound of the last good measurement grows while no source answers (holdover); `500ppm` or `500`, up to 100000ppm",
        commands: &["serve", "check"],
        parse: |d, v| {
            // Units in lowercase, as everywhere: `500PPM` is refused.
            let drift = (!v.contains(|c: char| c.is_ascii_uppercase()))
                .then(|| MaxDrift::parse(v))
                .flatten()
                .ok_or("a rate in parts per million such as 500ppm or 500 (lowercase), above 0 and at most 100000ppm")?;
            d.config.max_drift = drift;
            Ok(())
        },
    },
    Setting {
        name: "STALE_AFTER",
        default: Rule("3 intervals"),
        help: "serve: /livez fails when no round has finished for this long (plus jitter and two round times): a stuck loop; the verdict outlives a failed round by the MAX_DRIFT holdover rule instead",
        commands: &["serve"],
        parse: |d, v| positive_duration(v).map(|t| d.stale_after = Some(t)),
    },
    Setting {
        name: "PUBLISH",
        default: Rule("none"),
        help: "serve: after every round, write this node's latest measurement to this file (mode 0644, replaced atomically) for node:///PATH sources on the same kernel to read",
        commands: &["serve"],
        parse: |d, v| {
            d.config.publish = path(v);
            Ok(())
        },
    },
    Setting {
        name: "NODE_OWNER",
        default: Rule("root or this user"),
        help: "node:// sources: a further uid allowed to own the node file (the publisher's, when it runs as neither root nor this user)",
        commands: MEASURING,
        parse: |d, v| {
            let uid = v
                .trim()
                .parse::<u32>()
                .map_err(|_| "a numeric user id such as 65532".to_string())?;
            d.config.query.node_owner = Some(uid);
            Ok(())
        },
    },
    Setting {
        name: "CACHE_FILE",
        default: Rule("none"),
        help: "check: reuse a result written by an earlier run within CACHE_MAX_AGE (a private regular file of this user only)",
        commands: &["check"],
        parse: |d, v| {
            d.config.cache_file = path(v);
            Ok(())
        },
    },
    Setting {
        name: "CACHE_MAX_AGE",
        default: Value("60s"),
        help: "check: how old a cached result may be",
        commands: &["check"],
        parse: |d, v| duration(v).map(|t| d.config.cache_max_age = t),
    },
    Setting {
        name: "DISABLED",
        default: Value("false"),
        help: "true: bypass the guard (wait/exec proceed, check and /healthz report ok with a note)",
        commands: MEASURING,
        parse: |d, v| boolean(v).map(|b| d.config.disabled = b),
    },
    Setting {
        name: "QUIET",
        default: Value("false"),
        help: "true: print nothing at all (stdout or stderr) when the command succeeds (ok, warn, or unknown with ON_UNKNOWN=pass); a failure still prints its report; only error logs pass, whatever LOG says",
        commands: &["check", "wait", "exec"],
        parse: |d, v| boolean(v).map(|b| d.config.quiet = b),
    },
];

/// The row of a setting, by its name without the prefix.
pub(crate) fn setting(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, PREFIX};

    fn debug(vars: &[(&str, &str)]) -> String {
        let vars = vars
            .iter()
            .map(|(k, v)| (format!("{PREFIX}{k}"), v.to_string()));
        format!("{:?}", Config::from_vars(vars).expect("accepted"))
    }

    #[test]
    fn a_default_shown_as_a_value_is_the_default_applied() {
        let unset = debug(&[]);
        for s in SETTINGS {
            if let Unset::Value(v) = s.default {
                assert_eq!(debug(&[(s.name, v)]), unset, "{}={v}", s.name);
            }
        }
    }

    #[test]
    fn names_are_unique_and_flag_shaped() {
        for (i, s) in SETTINGS.iter().enumerate() {
            assert!(
                s.name.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
                "{}",
                s.name
            );
            let first = SETTINGS.iter().position(|r| r.name == s.name);
            assert_eq!(first, Some(i), "{} twice", s.name);
            let flag = crate::config::flag_name(s.name);
            assert_eq!(crate::config::setting_for_flag(&flag[2..]), Some(s.name));
            assert!(!s.commands.is_empty(), "{} is read by no command", s.name);
        }
    }

    #[test]
    fn choices_shown_in_help_are_the_choices_accepted() {
        let mut checked = 0;
        for s in SETTINGS {
            let shown = s.help.split([':', ' ']).next().unwrap_or_default();
            if !shown.contains('|') {
                continue;
            }
            let words: Vec<&str> = shown.split('|').collect();
            for w in &words {
                assert_eq!((s.parse)(&mut Draft::new(), w), Ok(()), "{}={w}", s.name);
            }
            let refused = (s.parse)(&mut Draft::new(), "bogus").expect_err(s.name);
            let listed = format!("one of {} (", words.join(", "));
            assert!(refused.starts_with(&listed), "{}: {refused}", s.name);
            checked += 1;
        }
        assert_eq!(checked, 4, "ON_UNKNOWN, AUTH_SELECT, OUTPUT, LOG_FORMAT");
    }

    #[test]
    fn the_profile_help_lists_every_profile_and_its_window() {
        let help = setting("PROFILE").expect("PROFILE").help;
        for p in Profile::all() {
            let shown = format!(" {} {}s", p.name(), p.window_seconds());
            assert!(help.contains(&shown), "{shown:?} missing from {help:?}");
        }
        assert_eq!(
            help.matches(", ").count() + 1,
            Profile::all().count(),
            "{help}"
        );
    }
}
