//! The log: one line on stderr per `tracing` event, as plain text or as one
//! JSON object, behind a filter of `LEVEL` and `TARGET=LEVEL` directives.
//!
//! Written here rather than taken from tracing-subscriber (whose `fmt`,
//! `json` and registry machinery cost 58 KB of the static binary): the lines
//! are those its `fmt::layer().with_target(false).with_ansi(false)` wrote, and
//! the filter is its `filter::Targets`, so nothing a reader sees changed.
//! There are no spans in skewguard (nor in the crates it logs through), so
//! the subscriber keeps none.

use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::str::FromStr as _;

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};

use crate::config::LogFormat;

/// Installs the log for this process: events `filter` enables, written to
/// stderr in `format`. A filter that does not parse logs nothing (the
/// configuration checks the filter before this is called).
pub fn init(filter: &str, format: LogFormat) {
    let filter = Filter::parse(filter).unwrap_or_default();
    let _ = tracing::subscriber::set_global_default(Log { filter, format });
}

/// Now as the log lines stamp their time: RFC 3339, UTC, microseconds
/// (`2026-12-07T19:33:38.123456Z`).
pub fn timestamp() -> String {
    let mut out = String::new();
    let _ = write_time(&mut out, std::time::SystemTime::now());
    out
}

/// `LEVEL` and `TARGET=LEVEL` directives, as `tracing_subscriber::filter::Targets`
/// reads them: an event takes the directive with the longest target that
/// starts its own target (a bare level is the shortest), the last of equal
/// targets winning; with none, it is not logged.
#[derive(Debug, Default, PartialEq)]
struct Filter(Vec<(Option<String>, LevelFilter)>);

impl Filter {
    fn parse(s: &str) -> Result<Filter, ()> {
        let mut directives: Vec<(Option<String>, LevelFilter)> = Vec::new();
        for d in s.split(',') {
            let mut parts = d.split('=');
            let first = parts.next().unwrap_or_default();
            let directive = match (parts.next(), parts.next()) {
                (Some(_), Some(_)) => return Err(()),
                (Some(level), None) => {
                    if first.contains("[{") {
                        return Err(()); // field filters: never in skewguard's filters
                    }
                    let level = LevelFilter::from_str(level).map_err(|_| ())?;
                    (Some(first.to_string()), level)
                }
                (None, _) => match LevelFilter::from_str(first) {
                    Ok(level) => (None, level),
                    Err(_) => (Some(first.to_string()), LevelFilter::TRACE),
                },
            };
            directives.retain(|(t, _)| *t != directive.0);
            directives.push(directive);
        }
        Ok(Filter(directives))
    }

    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        let mut best: Option<(usize, LevelFilter)> = None;
        for (target, level) in &self.0 {
            let len = match target {
                Some(t) if meta.target().starts_with(t.as_str()) => t.len() + 1,
                Some(_) => continue,
                None => 0,
            };
            if best.is_none_or(|(l, _)| len > l) {
                best = Some((len, *level));
            }
        }
        best.is_some_and(|(_, level)| level >= *meta.level())
    }

    fn max_level(&self) -> LevelFilter {
        self.0
            .iter()
            .map(|(_, l)| *l)
            .max()
            .unwrap_or(LevelFilter::OFF)
    }
}

struct Log {
    filter: Filter,
    format: LogFormat,
}

impl Subscriber for Log {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if self.filter.enabled(meta) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.filter.max_level())
    }

    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        self.filter.enabled(meta)
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let line = match self.format {
            LogFormat::Text => text_line(event),
            LogFormat::Json => json_line(event),
        };
        // Unbuffered, one write per line, errors ignored: as tracing-subscriber did.
        if let Some(line) = line {
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// `TIMESTAMP LEVEL message key=value …`, the level right-aligned in five.
fn text_line(event: &Event<'_>) -> Option<String> {
    let mut out = String::new();
    write_time(&mut out, std::time::SystemTime::now()).ok()?;
    let level = match *event.metadata().level() {
        Level::TRACE => "TRACE",
        Level::DEBUG => "DEBUG",
        Level::INFO => " INFO",
        Level::WARN => " WARN",
        _ => "ERROR",
    };
    out.push(' ');
    out.push_str(level);
    out.push(' ');
    let mut fields = TextFields {
        out,
        first: true,
        result: Ok(()),
    };
    event.record(&mut fields);
    fields.result.ok()?;
    let mut out = fields.out;
    out.push('\n');
    Some(out)
}

struct TextFields {
    out: String,
    first: bool,
    result: fmt::Result,
}

impl Visit for TextFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"))
        } else {
            self.record_debug(field, &value)
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        match value.source() {
            Some(source) => self.record_debug(
                field,
                &format_args!(
                    "{} {}.sources={}",
                    Escaped(format_args!("{value}")),
                    field.name(),
                    Sources(source)
                ),
            ),
            None => self.record_debug(field, &format_args!("{}", Escaped(format_args!("{value}")))),
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_err() {
            return;
        }
        if self.first {
            self.first = false;
        } else {
            self.result = self.out.write_char(' ');
        }
        let name = field.name();
        self.result = match name {
            "message" => write!(self.out, "{:?}", Escaped(value)),
            _ => write!(
                self.out,
                "{}={value:?}",
                name.strip_prefix("r#").unwrap_or(name)
            ),
        };
    }
}

/// A value with the control characters a terminal acts on written as escapes
/// (tracing-subscriber's ANSI sanitising of messages and error texts).
struct Escaped<T>(T);

impl<T: fmt::Debug> fmt::Debug for Escaped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(Escaper(f), "{:?}", self.0)
    }
}

impl<T: fmt::Display> fmt::Display for Escaped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(Escaper(f), "{}", self.0)
    }
}

struct Escaper<'a, 'b>(&'a mut fmt::Formatter<'b>);

impl fmt::Write for Escaper<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            match c {
                '\x1b' => self.0.write_str("\\x1b")?,
                '\x07' => self.0.write_str("\\x07")?,
                '\x08' => self.0.write_str("\\x08")?,
                '\x0c' => self.0.write_str("\\x0c")?,
                '\x7f' => self.0.write_str("\\x7f")?,
                '\u{80}'..='\u{9f}' => write!(self.0, "\\u{{{:x}}}", c as u32)?,
                c => self.0.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// An error's sources: `[first, second]`, each escaped.
struct Sources<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for Sources<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        let mut next = Some(self.0);
        while let Some(e) = next {
            list.entry(&Escaped(format_args!("{e}")));
            next = e.source();
        }
        list.finish()
    }
}

/// `{"timestamp":…,"level":…,"fields":{…}}`, the fields in the event's order.
fn json_line(event: &Event<'_>) -> Option<String> {
    let level = match *event.metadata().level() {
        Level::TRACE => "TRACE",
        Level::DEBUG => "DEBUG",
        Level::INFO => "INFO",
        Level::WARN => "WARN",
        _ => "ERROR",
    };
    let mut fields = JsonFields {
        out: format!(
            "{{\"timestamp\":{},\"level\":\"{level}\",\"fields\":{{",
            json_str(&timestamp())
        ),
        first: true,
    };
    event.record(&mut fields);
    let mut out = fields.out;
    out.push_str("}}\n");
    Some(out)
}

struct JsonFields {
    out: String,
    first: bool,
}

impl JsonFields {
    fn entry(&mut self, field: &Field, value: &str) {
        if !std::mem::take(&mut self.first) {
            self.out.push(',');
        }
        self.out.push_str(&json_str(field.name()));
        self.out.push(':');
        self.out.push_str(value);
    }
}

impl Visit for JsonFields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.entry(field, &serde_json::to_string(&value).unwrap_or_default())
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.entry(field, &value.to_string())
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.entry(field, &value.to_string())
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.entry(field, if value { "true" } else { "false" })
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.entry(field, &json_str(value))
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.entry(field, &json_str(&format!("{value:?}")))
    }
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// `t` as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (a year past 9999 as `+YYYYY`, one
/// before year 0 as `-YYYY`), the proleptic Gregorian calendar in UTC.
fn write_time(out: &mut String, t: std::time::SystemTime) -> fmt::Result {
    let (secs, nanos) = match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
        Err(e) => {
            let d = e.duration();
            match d.subsec_nanos() {
                0 => (-(d.as_secs() as i64), 0),
                n => (-(d.as_secs() as i64) - 1, 1_000_000_000 - n),
            }
        }
    };
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days to a civil date (Howard Hinnant's `civil_from_days`).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if year > 9999 {
        write!(out, "+{year}")?;
    } else if year < 0 {
        write!(out, "{year:05}")?;
    } else {
        write!(out, "{year:04}")?;
    }
    write!(
        out,
        "-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        nanos / 1_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn filters_read_as_tracing_subscriber_targets_reads_them() {
        use tracing_subscriber::filter::Targets;
        let filters = [
            "info",
            "warn",
            "error",
            "off",
            "trace",
            "debug",
            "warn,skewguard=debug",
            "skewguard=debug,warn",
            "info,warn",
            "skewguard::proto=trace,skewguard=error,info",
            "skewguard::proto::ntp=trace,hyper=warn",
            "warn, skewguard=debug",
            "warn, info",
            "skewguard=off,info",
            "skewguard=debug,skewguard=warn",
            "skew=debug,error",
            "INFO",
            "3",
            "skewguard",
            "",
        ];
        let targets = [
            "skewguard",
            "skewguard::proto::ntp::client",
            "skewguard::proto::http_date",
            "skewguard_x",
            "skew",
            "hyper::proto",
            "rustls",
            " info",
        ];
        for f in filters {
            let ours = Filter::parse(f).unwrap_or_default();
            let theirs: Targets = f.parse().unwrap_or_default();
            let mut max = LevelFilter::OFF;
            for target in targets {
                for level in [
                    Level::TRACE,
                    Level::DEBUG,
                    Level::INFO,
                    Level::WARN,
                    Level::ERROR,
                ] {
                    let meta = Metadata::new(
                        "event",
                        target,
                        level,
                        None,
                        None,
                        None,
                        tracing::field::FieldSet::new(&[], tracing::callsite::Identifier(&SITE)),
                        tracing::metadata::Kind::EVENT,
                    );
                    let theirs = theirs.would_enable(target, &level);
                    assert_eq!(ours.enabled(&meta), theirs, "{f:?} {target:?} {level}");
                    if theirs {
                        max = max.max(LevelFilter::from_level(level));
                    }
                }
            }
            assert!(ours.max_level() >= max, "{f:?}");
        }
        for bad in ["a=b=c", "a=loud"] {
            assert_eq!(Filter::parse(bad), Err(()), "{bad}");
            assert!(bad.parse::<Targets>().is_err(), "{bad}");
        }
        // Field filters, which config::check_log_filter refuses before this.
        assert_eq!(Filter::parse("x[{y}]=info"), Err(()));
    }

    struct Site;
    static SITE: Site = Site;
    impl tracing::callsite::Callsite for Site {
        fn set_interest(&self, _: Interest) {}
        fn metadata(&self) -> &Metadata<'_> {
            unreachable!("not registered")
        }
    }

    /// Our lines, into a list instead of stderr.
    struct Capture(LogFormat, Arc<Mutex<Vec<String>>>);

    impl Subscriber for Capture {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let line = match self.0 {
                LogFormat::Text => text_line(event),
                LogFormat::Json => json_line(event),
            };
            self.1.lock().unwrap().extend(line);
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("outer \x1b[31mred\x1b[0m")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    fn events() {
        let name = "SKEWGUARD_SOURCE";
        let meant = "SKEWGUARD_SOURCES";
        tracing::warn!(variable = %name, did_you_mean = %meant, "unknown setting {name} ignored; did you mean {meant}?");
        tracing::info!("plain");
        tracing::error!(
            offset = 1.5,
            tiny = 1e-9,
            huge = 3.0e21,
            nan = f64::NAN,
            inf = f64::INFINITY,
            n = -3i64,
            u = 7u64,
            big = 1u128 << 100,
            yes = true,
            text = "a \"quoted\"\nline\twith \u{7f} and \u{1b}[1m é",
            dbg = ?Some("x"),
            r#type = "raw",
            "message with \u{1b}[31mescape\u{1b}[0m, bell \u{7}, C1 \u{9b} and \"quotes\""
        );
        let e = Outer(std::io::Error::other("inner \u{7} cause"));
        tracing::warn!(error = &e as &(dyn std::error::Error + 'static), "failed");
        let plain = std::io::Error::other("no source");
        tracing::debug!(error = &plain as &(dyn std::error::Error + 'static));
        tracing::trace!(message = "message as a str field \u{1b}", extra = "x");
        tracing::info!(count = 3, "no \u{80} C1 {}", "args");
        tracing::warn!(empty = "", "");
    }

    fn ours(format: LogFormat) -> Vec<String> {
        let lines = Arc::new(Mutex::new(Vec::new()));
        tracing::subscriber::with_default(Capture(format, lines.clone()), events);
        let lines = lines.lock().unwrap().clone();
        lines
    }

    fn theirs(format: LogFormat) -> Vec<String> {
        #[derive(Clone)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = Sink(buf.clone());
        let builder = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_max_level(Level::TRACE)
            .with_target(false)
            .with_ansi(false);
        match format {
            LogFormat::Text => tracing::subscriber::with_default(builder.finish(), events),
            LogFormat::Json => tracing::subscriber::with_default(builder.json().finish(), events),
        }
        let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        text.split_inclusive('\n').map(String::from).collect()
    }

    /// The lines without their time stamps, which differ by when they were written.
    fn untimed(lines: Vec<String>) -> Vec<String> {
        let stamp = "2026-12-07T19:33:38.123456Z".len();
        lines
            .into_iter()
            .map(|l| match l.strip_prefix("{\"timestamp\":\"") {
                Some(rest) => format!("{{\"timestamp\":\"{}", &rest[stamp..]),
                None => l[stamp..].to_string(),
            })
            .collect()
    }

    #[test]
    fn text_lines_are_tracing_subscribers_byte_for_byte() {
        let (ours, theirs) = (ours(LogFormat::Text), theirs(LogFormat::Text));
        assert_eq!(ours.len(), 8);
        assert_eq!(untimed(ours), untimed(theirs));
    }

    #[test]
    fn json_lines_are_tracing_subscribers_byte_for_byte() {
        let (ours, theirs) = (ours(LogFormat::Json), theirs(LogFormat::Json));
        assert_eq!(ours.len(), 8);
        for line in &ours {
            let v: serde_json::Value = serde_json::from_str(line).expect(line);
            assert!(v["fields"].is_object(), "{line}");
        }
        assert_eq!(untimed(ours), untimed(theirs));
    }

    #[test]
    fn times_are_utc_calendar_dates_with_microseconds() {
        let at = |secs: i64, nanos: u32| {
            let t = if secs >= 0 {
                UNIX_EPOCH + Duration::new(secs as u64, nanos)
            } else {
                UNIX_EPOCH - Duration::new(secs.unsigned_abs(), 0) + Duration::new(0, nanos)
            };
            let mut s = String::new();
            write_time(&mut s, t).unwrap();
            s
        };
        for (secs, nanos, want) in [
            (0, 0, "1970-01-01T00:00:00.000000Z"),
            (1_796_672_018, 123_456_789, "2026-12-07T19:33:38.123456Z"),
            (951_782_400, 999, "2000-02-29T00:00:00.000000Z"),
            (4_102_444_799, 999_999_999, "2099-12-31T23:59:59.999999Z"),
            (253_402_300_800, 0, "+10000-01-01T00:00:00.000000Z"),
            (-1, 999_999_999, "1969-12-31T23:59:59.999999Z"),
            (-2_208_988_800, 0, "1900-01-01T00:00:00.000000Z"),
            (-2_203_891_200, 0, "1900-03-01T00:00:00.000000Z"),
            (-62_167_219_200, 0, "0000-01-01T00:00:00.000000Z"),
            (-62_167_219_201, 500_000, "-0001-12-31T23:59:59.000500Z"),
        ] {
            assert_eq!(at(secs, nanos), want, "{secs} {nanos}");
        }
        // Against httpdate's calendar (1970 to 9999) at pseudo-random times.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..5000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let secs = x % 253_402_300_800;
            let ours = at(secs as i64, 0);
            let http = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs));
            // "Sun, 06 Nov 1994 08:49:37 GMT"
            let p: Vec<&str> = http.split(' ').collect();
            let months = "JanFebMarAprMayJunJulAugSepOctNovDec";
            let month = months.find(p[2]).unwrap() / 3 + 1;
            let want = format!("{}-{month:02}-{}T{}.000000Z", p[3], p[1], p[4]);
            assert_eq!(ours, want, "{secs}");
        }
        let now = timestamp();
        assert_eq!(now.len(), "2026-12-07T19:33:38.123456Z".len(), "{now}");
    }
}
