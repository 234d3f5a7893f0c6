//! `config`: `SKEWGUARD_*` variables, source lists and command lines as a
//! user (or a templating mistake) might write them.
//!
//! Two input forms reach the same checks:
//!
//! - text, `NAME=value` per line (blank lines allowed): the committed seeds are
//!   env files like this;
//! - anything else drives `arbitrary`, which builds a small map whose names are
//!   mostly real settings (in any letter case) and whose values are mostly
//!   durations, numbers and choices.
//!
//! Every value is also tried as a source list, and the variables become a
//! command line (`--max-skew 90s …`) for `cli::parse`; the raw input, split on
//! NUL and newline, is a second command line.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::time::Instant;

use arbitrary::{Arbitrary, Unstructured};
use skewguard::config::cli::{self, Command};
use skewguard::config::{
    gather, setting_for_flag, unknown_variables, Config, FOREIGN, PREFIX, SETTINGS,
};
use skewguard::proto::source::Source;

const UNITS: &[&str] = &[
    "", "ns", "us", "ms", "s", "m", "min", "h", "d", "w", "M", "y", "years", "sec",
];
#[rustfmt::skip]
const WORDS: &[&str] = &[
    "aws", "aws-s3", "azure", "kerberos", "vault-jwt", "totp", "fail", "pass", "text", "json",
    "true", "false", "yes", "no", "0", "1", "info", "warn,skewguard=debug", "0.0.0.0:8080",
    "[::]:8080", "ntp://127.0.0.1:11123", "https://sts.amazonaws.com/", "http://[::1]:8080/x",
];

#[derive(Arbitrary, Debug)]
enum Name {
    /// A real setting, in upper case or with its case scrambled by the mask.
    Setting(u8, u32),
    /// Anything after the prefix.
    Prefixed(String),
    /// A variable of someone else.
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Value {
    Duration(u64, u8),
    Duration2(u64, u8, u64, u8),
    Word(u8),
    Text(String),
}

fn pick<'a>(list: &[&'a str], i: u8) -> &'a str {
    list[usize::from(i) % list.len()]
}

impl Name {
    fn render(&self) -> String {
        match self {
            Name::Setting(i, mask) => {
                let name = SETTINGS[usize::from(*i) % SETTINGS.len()].name;
                let scrambled: String = name
                    .chars()
                    .enumerate()
                    .map(|(k, c)| match mask >> (k % 32) & 1 {
                        1 => c.to_ascii_lowercase(),
                        _ => c,
                    })
                    .collect();
                format!("{PREFIX}{scrambled}")
            }
            Name::Prefixed(s) => format!("{PREFIX}{s}"),
            Name::Other(s) => s.clone(),
        }
    }
}

impl Value {
    fn render(&self) -> String {
        match self {
            Value::Duration(n, u) => format!("{n}{}", pick(UNITS, *u)),
            Value::Duration2(n, u, m, v) => {
                format!("{n}{} {m}{}", pick(UNITS, *u), pick(UNITS, *v))
            }
            Value::Word(w) => pick(WORDS, *w).to_string(),
            Value::Text(s) => s.clone(),
        }
    }
}

/// `NAME=value` lines, if the input is such text.
fn env_file(data: &[u8]) -> Option<BTreeMap<String, String>> {
    let text = std::str::from_utf8(data).ok()?;
    let mut vars = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (k, v) = line.split_once('=')?;
        vars.insert(k.to_string(), v.to_string());
    }
    Some(vars)
}

fn arbitrary_vars(data: &[u8]) -> BTreeMap<String, String> {
    let mut u = Unstructured::new(data);
    let pairs: Vec<(Name, Value)> = u.arbitrary().unwrap_or_default();
    pairs
        .iter()
        .take(32)
        .map(|(n, v)| (n.render(), v.render()))
        .collect()
}

/// Checks every property for one input.
pub fn check(data: &[u8]) {
    let vars = env_file(data).unwrap_or_else(|| arbitrary_vars(data));
    check_config(&vars);
    for value in vars.values() {
        check_source_list(value);
    }

    // The same settings as flags: parsed back to the same overrides.
    let mut args: Vec<OsString> = vec!["check".into()];
    let mut flags = BTreeMap::new();
    for (k, v) in &vars {
        let Some(setting) = k.strip_prefix(PREFIX).and_then(setting_for_flag) else {
            continue;
        };
        args.push(format!("--{}={v}", setting.to_ascii_lowercase().replace('_', "-")).into());
        flags.insert(setting.to_string(), v.clone());
    }
    if let Ok(inv) = check_cli(args) {
        assert_eq!(inv.command, Command::Check);
        assert_eq!(inv.overrides, flags);
        check_config(&gather(Vec::new(), &inv.overrides));
    }

    let raw: Vec<OsString> = data
        .split(|&b| b == 0 || b == b'\n')
        .map(|a| OsString::from_vec(a.to_vec()))
        .collect();
    let _ = check_cli(raw);
    if let Ok(text) = std::str::from_utf8(data) {
        check_source_list(text);
    }
}

fn check_config(vars: &BTreeMap<String, String>) {
    let unknown = unknown_variables(vars.keys().map(String::as_str));
    for k in &unknown {
        assert!(vars.contains_key(k) && k.starts_with(PREFIX), "{k}");
    }
    match Config::from_vars(vars.clone()) {
        Ok(c) => {
            assert!(!c.sources.is_empty());
            let t = c.thresholds;
            assert!(t.window.is_finite() && t.window > 0.0, "{t:?}");
            assert!(t.max_skew.is_finite() && t.max_skew > 0.0, "{t:?}");
            assert!(t.warn_skew.is_finite() && t.warn_skew >= 0.0, "{t:?}");
            assert!(!c.query.timeout.is_zero());
            assert!((1..=16).contains(&c.query.samples));
            assert!((1..=64).contains(&c.min_sources));
            assert!(!c.interval.is_zero() && !c.stale_after.is_zero());
            // The I/O layer turns these into deadlines (`Instant::now() + d`)
            // and multiplies them (`sample_interval * (samples - 1)`, at most
            // 15): an accepted value must survive both.
            let now = Instant::now();
            let q = &c.query;
            for d in [
                q.timeout,
                q.sample_interval,
                q.http_budget,
                c.interval,
                c.stale_after,
                c.cache_max_age,
            ]
            .into_iter()
            .chain(c.wait_timeout)
            {
                assert!(
                    now.checked_add(d).is_some() && d.checked_mul(16).is_some(),
                    "{d:?} accepted (from {vars:?})"
                );
            }
        }
        Err(e) => {
            // The error names a real variable, one that was set (every default
            // is valid), and repeats its value: a setting, or another tool's
            // variable that skewguard honours (a proxy's, a trust store's).
            let setting = e.name.strip_prefix(PREFIX);
            assert!(
                setting.is_some_and(|s| SETTINGS.iter().any(|x| x.name == s))
                    || FOREIGN.contains(&e.name.as_str()),
                "error names no setting: {e} (from {vars:?})"
            );
            assert_eq!(vars.get(&e.name), Some(&e.value), "{e} (from {vars:?})");
            assert!(e.to_string().starts_with(&e.name));
        }
    }
}

fn check_source_list(list: &str) {
    match Source::parse_list(list) {
        Ok(sources) => {
            assert!(!sources.is_empty());
            for (i, s) in sources.iter().enumerate() {
                assert!(!sources[..i].contains(s), "duplicate {s}");
                // What is shown reads back as the same source.
                let shown = s.to_string();
                assert_eq!(
                    Source::parse(&shown).as_ref(),
                    Ok(s),
                    "{list:?} → {shown:?}"
                );
            }
        }
        Err(e) => assert!(e.contains("expected"), "{list:?}: {e}"),
    }
}

fn check_cli(args: Vec<OsString>) -> Result<cli::Invocation, cli::UsageError> {
    let dashdash = args.iter().position(|a| a == "--");
    let result = cli::parse(args.clone());
    match &result {
        Ok(inv) => {
            for k in inv.overrides.keys() {
                assert!(SETTINGS.iter().any(|s| s.name == k), "override {k}");
            }
            if let Command::Exec {
                program,
                args: rest,
            } = &inv.command
            {
                let i = dashdash.expect("exec without `--`");
                assert_eq!(&args[i + 1], program);
                assert_eq!(&args[i + 2..], &rest[..]);
            }
        }
        Err(e) => assert!(!e.0.is_empty()),
    }
    result
}
