//! Value parsers shared by the rows of the settings table: durations in the
//! one unit grammar, counts, named values, paths, log filters and CA files.
//! Each takes the text given and returns the value or, in words, the form
//! that is accepted; the caller names the variable and repeats the value.

use std::path::PathBuf;
use std::time::Duration;

const DURATION_FORM: &str =
    "a duration: numbers with the units ms, s, m, h or d (lowercase, largest first), e.g. 90s, 2m30s, 150ms or 0";

/// Units a duration may use, largest first, with their length in nanoseconds.
/// Only these, only in lowercase: `5M` (humantime's months) or `1y` must not
/// be mistaken for minutes, and `m` is minutes whatever the case elsewhere.
const UNITS: &[(&str, u128)] = &[
    ("d", 86_400_000_000_000),
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
];

/// Parses a duration: `0`, or one or more `NUMBER UNIT` parts without spaces
/// (`90s`, `2m30s`, `1.5s`, `150ms`, `1d`), units `d`, `h`, `m`, `s`, `ms` in lowercase,
/// each at most once and largest first. Exact to the nanosecond (integer
/// arithmetic; fraction digits below a nanosecond are dropped).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s == "0" {
        return Some(Duration::ZERO);
    }
    if s.is_empty() {
        return None;
    }
    let mut rest = s;
    let mut total: u128 = 0;
    let mut last_unit = None;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(digits);
        // Digits with at most one inner point: `1.5`, not `.5`, `1.` or `1.2.3`.
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty()
            || fraction.contains('.')
            || (number.contains('.') && fraction.is_empty())
            || whole.len() > 12
        {
            return None;
        }
        let unit_len = tail
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(tail.len());
        let (unit, after) = tail.split_at(unit_len);
        let position = UNITS.iter().position(|(u, _)| *u == unit)?;
        if last_unit.is_some_and(|l| position <= l) {
            return None;
        }
        last_unit = Some(position);
        let unit_ns = UNITS[position].1;
        total += whole.parse::<u128>().ok()? * unit_ns;
        let mut scale = unit_ns;
        for digit in fraction.bytes() {
            scale /= 10;
            total += u128::from(digit - b'0') * scale;
        }
        rest = after;
    }
    let max = MAX_DURATION.as_nanos();
    (total <= max).then(|| Duration::from_nanos(total as u64))
}

/// Longest duration any setting accepts (365 days): the I/O layer adds
/// durations to `Instant`s and multiplies them, which must not overflow.
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(365 * 86_400);

/// A duration of at most [`MAX_DURATION`].
pub(crate) fn duration(v: &str) -> Result<Duration, String> {
    parse_duration(v).ok_or_else(|| {
        let meant = nearest_duration(v)
            .map(|d| format!("; did you mean {d}?"))
            .unwrap_or_default();
        format!("{DURATION_FORM}; at most 365d{meant}")
    })
}

/// Unit words people write, and the unit they mean.
const UNIT_WORDS: &[(&str, &str)] = &[
    ("milliseconds", "ms"),
    ("millisecond", "ms"),
    ("millis", "ms"),
    ("msecs", "ms"),
    ("msec", "ms"),
    ("seconds", "s"),
    ("second", "s"),
    ("secs", "s"),
    ("sec", "s"),
    ("minutes", "m"),
    ("minute", "m"),
    ("mins", "m"),
    ("min", "m"),
    ("hours", "h"),
    ("hour", "h"),
    ("hrs", "h"),
    ("hr", "h"),
    ("days", "d"),
    ("day", "d"),
];

/// The duration a refused one was probably meant as, in the accepted form:
/// `5min` → `5m`, `90 seconds` → `90s`, `2M` → `2m`, `30` → `30s`.
pub(crate) fn nearest_duration(v: &str) -> Option<String> {
    let text: String = v
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_lowercase();
    if text.is_empty() || text.starts_with('-') {
        return None;
    }
    let mut out = String::new();
    let mut rest = text.as_str();
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(digits);
        let letters = tail
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(tail.len());
        let (unit, after) = tail.split_at(letters);
        let unit = match unit {
            "" if after.is_empty() && out.is_empty() => "s",
            "d" | "h" | "m" | "s" | "ms" => unit,
            word => UNIT_WORDS.iter().find(|(w, _)| *w == word)?.1,
        };
        out += number;
        out += unit;
        rest = after;
    }
    parse_duration(&out).filter(|_| out != v).map(|_| out)
}

/// A duration above zero and of at most [`MAX_DURATION`].
pub(crate) fn positive_duration(v: &str) -> Result<Duration, String> {
    let d = duration(v)?;
    if d.is_zero() {
        return Err(format!("{DURATION_FORM}, greater than zero"));
    }
    Ok(d)
}

/// One of the named `options`, matched by [`ENUM_RULE`].
pub(crate) fn choice<T: Copy>(v: &str, options: &[(&str, T)]) -> Result<T, String> {
    options
        .iter()
        .find(|(k, _)| *k == v.trim())
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            let names: Vec<&str> = options.iter().map(|(k, _)| *k).collect();
            let meant = super::suggest::nearest(v.trim(), names.iter().copied())
                .map(|n| format!("; did you mean {n}?"))
                .unwrap_or_default();
            format!("one of {} ({ENUM_RULE}){meant}", names.join(", "))
        })
}

/// How every named value (profile, output, log level, …) is matched.
pub(crate) const ENUM_RULE: &str = "exactly as written here, in lowercase";

/// A yes/no setting: `true`/`false`, `1`/`0`, `yes`/`no`.
pub(crate) fn boolean(v: &str) -> Result<bool, String> {
    choice(v, &BOOLEAN_WORDS)
}

/// The words a yes/no setting takes, and what each means.
pub(crate) const BOOLEAN_WORDS: [(&str, bool); 6] = [
    ("true", true),
    ("false", false),
    ("1", true),
    ("0", false),
    ("yes", true),
    ("no", false),
];

/// A whole number from 1 to `max`.
pub(crate) fn count(v: &str, max: u32) -> Result<u32, String> {
    match v.trim().parse::<u32>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!("a whole number from 1 to {max}")),
    }
}

/// A path; empty is none.
pub(crate) fn path(v: &str) -> Option<PathBuf> {
    (!v.is_empty()).then(|| PathBuf::from(v))
}

/// Log levels a filter may name.
pub(crate) const LOG_LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];

/// Checks a log filter: comma-separated `LEVEL` or `TARGET=LEVEL` directives,
/// a target being a lowercase Rust module path (`skewguard`, `skewguard::proto::ntp`).
/// `tracing`'s own parser takes any word as a target, so `verbose` would
/// silence every log line instead of being refused.
pub(crate) fn check_log_filter(filter: &str) -> Result<(), String> {
    for directive in filter.split(',') {
        let directive = directive.trim();
        let (target, level) = match directive.split_once('=') {
            Some((t, l)) => (Some(t), l),
            None => (None, directive),
        };
        if !LOG_LEVELS.contains(&level) {
            return Err(format!("`{level}` is not a log level"));
        }
        if let Some(t) = target {
            let module = t.split("::").all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            });
            if !module {
                return Err(format!("`{t}` is not a module path"));
            }
        }
    }
    Ok(())
}

/// A log filter that passes [`check_log_filter`].
pub(crate) fn log_filter(v: &str) -> Result<String, String> {
    check_log_filter(v).map_err(|why| {
        format!(
            "{why}; expected comma-separated LEVEL or TARGET=LEVEL, LEVEL one of {} ({ENUM_RULE}), e.g. `info` or `warn,skewguard=debug`",
            LOG_LEVELS.join(", ")
        )
    })?;
    Ok(v.to_string())
}

/// Largest CA file read.
pub(crate) const MAX_CA_FILE: u64 = 1024 * 1024;

/// Reads and parses a CA file as the `https://` sources will: PEM, at least one
/// certificate, each usable as a trust anchor.
pub(crate) fn check_ca_file(path: &std::path::Path) -> Result<(), String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open it: {e}"))?;
    let mut pem = Vec::new();
    file.take(MAX_CA_FILE + 1)
        .read_to_end(&mut pem)
        .map_err(|e| format!("cannot read it: {e}"))?;
    if pem.len() as u64 > MAX_CA_FILE {
        return Err(format!("it is larger than {} KiB", MAX_CA_FILE / 1024));
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("it is not valid PEM: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("it holds a certificate that cannot be a CA: {e}"))?;
    }
    if roots.is_empty() {
        return Err("it holds no PEM certificate".into());
    }
    Ok(())
}

/// A CA file that passes [`check_ca_file`]; empty is none.
pub(crate) fn ca_file(v: &str) -> Result<Option<PathBuf>, String> {
    let ca = path(v);
    if let Some(ca) = &ca {
        check_ca_file(ca).map_err(|why| {
            format!("{why}; expected a readable PEM file of one or more CA certificates (-----BEGIN CERTIFICATE-----), at most {} KiB", MAX_CA_FILE / 1024)
        })?;
    }
    Ok(ca)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_only_unambiguous_units() {
        let secs = |s: &str| parse_duration(s).map(|d| d.as_secs_f64());
        for (text, want) in [
            ("0", 0.0),
            ("90s", 90.0),
            ("2m30s", 150.0),
            ("150ms", 0.15),
            ("1.5s", 1.5),
            ("1d2h", 93_600.0),
            ("1m0.5s", 60.5),
            ("365d", 31_536_000.0),
        ] {
            assert_eq!(secs(text), Some(want), "{text}");
        }
        for bad in [
            "5M", "1y", "1month", "5min", "5S", "2h1d", "1s1s", "s", "1", ".5s", "1.s", "1 s",
            "1.2.3s", "-1s", "366d", "1us", "",
        ] {
            assert_eq!(secs(bad), None, "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_text_parses_to_a_bounded_duration_or_nothing(text in "[0-9a-zA-Z. ]{0,12}") {
            if let Some(d) = parse_duration(&text) {
                proptest::prop_assert!(d <= MAX_DURATION);
                proptest::prop_assert!(!text.chars().any(|c| c.is_ascii_uppercase()));
            }
        }

        #[test]
        fn composed_durations_parse_to_their_sum(
            d in 0u64..300, h in 0u64..24, m in 0u64..60, s in 0u64..60, ms in 0u64..1000,
        ) {
            let mut text = String::new();
            for (n, unit) in [(d, "d"), (h, "h"), (m, "m"), (s, "s"), (ms, "ms")] {
                if n > 0 {
                    text += &format!("{n}{unit}");
                }
            }
            let want = (((d * 24 + h) * 60 + m) * 60 + s) * 1000 + ms;
            let got = parse_duration(if text.is_empty() { "0" } else { &text });
            proptest::prop_assert_eq!(got.map(|g| g.as_millis()), Some(u128::from(want)), "{}", text);
        }
    }

    #[test]
    fn refused_durations_name_the_form_meant() {
        for (given, meant) in [
            ("5min", Some("5m")),
            ("90 seconds", Some("90s")),
            ("2M", Some("2m")),
            ("30", Some("30s")),
            ("1hr30min", Some("1h30m")),
            ("1.5 Secs", Some("1.5s")),
            ("500MS", Some("500ms")),
            ("5 fortnights", None),
            ("-1s", None),
            ("soon", None),
            ("5m", None),
        ] {
            assert_eq!(nearest_duration(given).as_deref(), meant, "{given}");
        }
        let refused = duration("5min").expect_err("5min");
        assert!(refused.ends_with("did you mean 5m?"), "{refused}");
    }

    #[test]
    fn log_filters_are_levels_or_target_levels() {
        for good in [
            "info",
            "warn,skewguard=debug",
            "off",
            "skewguard::proto::ntp=trace,hyper=warn",
        ] {
            assert_eq!(check_log_filter(good), Ok(()), "{good}");
        }
        for bad in [
            "verbose",
            "",
            "info,",
            "skewguard",
            "=info",
            "Skew=info",
            "a=loud",
        ] {
            assert!(check_log_filter(bad).is_err(), "{bad}");
        }
    }
}
