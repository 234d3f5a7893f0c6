//! Command-line arguments: the command, flags that override `SKEWGUARD_*`
//! variables by name, and the workload of `exec`.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write as _;

use crate::config::{flag_name, is_switch, is_switch_value, setting_for_flag, SETTINGS};

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Measure once, print a verdict, exit 0/1.
    Check,
    /// Measure until the clock is fine or the wait times out.
    Wait,
    /// Wait, then replace this process with the workload.
    Exec {
        /// Program to run.
        program: OsString,
        /// Its arguments.
        args: Vec<OsString>,
    },
    /// Sidecar: measure on a timer, serve /healthz, /readyz, /livez, /metrics.
    Serve,
    /// Probe a running `serve` (or any URL) and exit 0 on 2xx.
    Health {
        /// URL to GET; default from `SKEWGUARD_LISTEN`.
        url: Option<String>,
    },
    /// Print help, for a command if named.
    Help(Option<String>),
    /// Print the version.
    Version,
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The command.
    pub command: Command,
    /// Settings given as flags, by setting name (`MAX_SKEW` → value).
    pub overrides: BTreeMap<String, String>,
}

/// A command line that cannot be followed; the message says why and what is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (see `skewguard --help`)", self.0)
    }
}

/// One command: its name, its synopsis, what it does, and its exit codes.
pub(crate) struct CommandHelp {
    pub(crate) name: &'static str,
    pub(crate) synopsis: &'static str,
    pub(crate) what: &'static str,
    pub(crate) exits: &'static [(&'static str, &'static str)],
}

const USAGE_EXIT: (&str, &str) = ("2", "usage or configuration error (the message names the flag or variable, the value and the accepted form)");

pub(crate) const COMMANDS: &[CommandHelp] = &[
    CommandHelp {
        name: "check",
        synopsis: "check [FLAGS]",
        what: "measure once; print the verdict on stdout (text, JSON or node-problem-detector's one line)",
        exits: &[
            ("0", "ok or warn (or unknown with ON_UNKNOWN=pass)"),
            ("1", "fail or unknown (OUTPUT=npd: fail only, NPD's NonOK)"),
            USAGE_EXIT,
            ("2 (npd)", "OUTPUT=npd: unknown, NPD's Unknown (a configuration error is Unknown to NPD too)"),
        ],
    },
    CommandHelp {
        name: "wait",
        synopsis: "wait [FLAGS]",
        what: "measure until the clock is fine or WAIT_TIMEOUT passes; logs and the final report on stderr",
        exits: &[
            ("0", "ok or warn (or unknown with ON_UNKNOWN=pass)"),
            ("1", "still fail or unknown at WAIT_TIMEOUT"),
            USAGE_EXIT,
            ("130, 143", "stopped by SIGINT, SIGTERM"),
        ],
    },
    CommandHelp {
        name: "exec",
        synopsis: "exec [FLAGS] -- CMD [ARGS…]",
        what: "wait, then replace this process with CMD (same PID; signals and status are CMD's)",
        exits: &[
            ("CMD's", "CMD's own status once it started"),
            ("1", "the wait failed: CMD never started"),
            USAGE_EXIT,
            ("126", "CMD is not executable"),
            ("127", "CMD was not found"),
            ("130, 143", "stopped by SIGINT, SIGTERM before CMD started"),
        ],
    },
    CommandHelp {
        name: "serve",
        synopsis: "serve [FLAGS]",
        what: "sidecar: measure every INTERVAL; serve /healthz /readyz /livez /metrics on LISTEN",
        exits: &[
            ("0", "stopped by SIGTERM or SIGINT"),
            ("1", "cannot start (runtime, signal handlers)"),
            ("2", "usage or configuration error, or LISTEN cannot be bound"),
        ],
    },
    CommandHelp {
        name: "health",
        synopsis: "health [FLAGS] [URL]",
        what: "GET URL (default http://127.0.0.1:<port serve listens on>/healthz); no measurement",
        exits: &[
            ("0", "a 2xx answer"),
            ("1", "anything else: another status, no answer within TIMEOUT, a bad URL, a usage or configuration error (said on stderr; Docker reserves 2 for health checks)"),
        ],
    },
];

/// Whether `command` reads the setting `name` (the `commands` of its row in
/// [`SETTINGS`]).
pub fn reads(command: &str, name: &str) -> bool {
    SETTINGS
        .iter()
        .any(|s| s.name == name && s.commands.contains(&command))
}

/// The usage error of a bare `skewguard`: main prints the general help after it.
pub const NO_COMMAND: &str = "no command given";

/// The command word of a command line, if any: the first argument that is not
/// a flag or a flag's value. For reporting errors the way that command
/// reports them (`health` exits 1, never 2) even when the line does not parse.
pub fn command_word(args: &[OsString]) -> Option<String> {
    let mut args = args.iter().map(|a| a.to_string_lossy()).peekable();
    while let Some(a) = args.next() {
        if a == "--" {
            return None;
        }
        if let Some(long) = a.strip_prefix("--") {
            let switch = setting_for_flag(long)
                .and_then(super::settings::setting)
                .is_some_and(is_switch);
            if switch {
                // `--quiet health`: the word after a switch is its value only when yes/no.
                args.next_if(|w| is_switch_value(w));
            } else if !long.contains('=') && !["help", "version"].contains(&long) {
                args.next();
            }
        } else if !a.starts_with('-') || a == "-" {
            return Some(a.into_owned());
        }
    }
    None
}

/// Parses the arguments after the program name.
pub fn parse<I>(args: I) -> Result<Invocation, UsageError>
where
    I: IntoIterator<Item = OsString>,
{
    let mut args: Vec<OsString> = args.into_iter().collect();
    let workload = match args.iter().position(|a| a == "--") {
        Some(i) => {
            let rest = args.split_off(i + 1);
            args.pop();
            Some(rest)
        }
        None => None,
    };
    let mut parser = lexopt::Parser::from_args(args);
    let mut command: Option<String> = None;
    let mut positional: Vec<String> = Vec::new();
    let mut overrides = BTreeMap::new();
    let mut help = false;
    loop {
        let arg = match parser.next() {
            Ok(Some(a)) => a,
            Ok(None) => break,
            Err(e) => return Err(UsageError(e.to_string())),
        };
        match arg {
            lexopt::Arg::Long("help") | lexopt::Arg::Short('h') => help = true,
            lexopt::Arg::Long("version") | lexopt::Arg::Short('V') => {
                return Ok(Invocation {
                    command: Command::Version,
                    overrides,
                })
            }
            lexopt::Arg::Long(name) => {
                let name = name.to_string();
                let setting = setting_for_flag(&name).ok_or_else(|| {
                    let meant = crate::config::nearest_flag(&name)
                        .map(|f| format!("; did you mean `{f}`?"))
                        .unwrap_or_default();
                    UsageError(format!("unknown flag `--{name}`{meant}"))
                })?;
                // A switch alone (`--quiet`) is `true`; it takes a yes/no
                // word after it (`--quiet false`), and `=` for anything else.
                let switch = super::settings::setting(setting).is_some_and(is_switch);
                let value = match parser.optional_value() {
                    Some(v) => Some(v),
                    None if switch => parser
                        .raw_args()
                        .map_err(|e| UsageError(e.to_string()))?
                        .next_if(|w| w.to_str().is_some_and(is_switch_value))
                        .or_else(|| Some("true".into())),
                    None => None,
                };
                let value = match value {
                    Some(v) => v,
                    None => parser.value().map_err(|e| UsageError(e.to_string()))?,
                }
                .into_string()
                .map_err(|v| UsageError(format!("`--{name}` {v:?}: not valid UTF-8")))?;
                overrides.insert(setting.to_string(), value);
            }
            lexopt::Arg::Short(c) => return Err(UsageError(format!("unknown flag `-{c}`"))),
            lexopt::Arg::Value(v) => {
                let v = v
                    .into_string()
                    .map_err(|v| UsageError(format!("argument {v:?} is not valid UTF-8")))?;
                if command.is_none() {
                    command = Some(v);
                } else if command.as_deref() == Some("exec") && workload.is_none() {
                    // `exec /bin/true`: the workload needs `--` before it.
                    let mut words = vec![v];
                    words.extend(
                        parser
                            .raw_args()
                            .map_err(|e| UsageError(e.to_string()))?
                            .map(|a| a.to_string_lossy().into_owned()),
                    );
                    return Err(UsageError(format!(
                        "`exec` takes its command after `--`: `skewguard exec -- {}`",
                        shell_words(&words)
                    )));
                } else {
                    positional.push(v);
                }
            }
        }
    }
    if help {
        return Ok(Invocation {
            command: Command::Help(command),
            overrides,
        });
    }
    let name = command.ok_or_else(|| UsageError(NO_COMMAND.into()))?;
    let extra = |positional: &[String]| -> Result<(), UsageError> {
        match positional.first() {
            Some(p) => Err(UsageError(format!(
                "unexpected argument `{p}` for `{name}`"
            ))),
            None => Ok(()),
        }
    };
    if workload.is_some() && name != "exec" {
        return Err(UsageError(format!(
            "`--` and a command only go with `exec`, not `{name}`"
        )));
    }
    let command = match name.as_str() {
        "check" => extra(&positional).map(|_| Command::Check)?,
        "wait" => extra(&positional).map(|_| Command::Wait)?,
        "serve" => extra(&positional).map(|_| Command::Serve)?,
        "help" => Command::Help(positional.into_iter().next()),
        "health" => {
            if positional.len() > 1 {
                return Err(UsageError("`health` takes at most one URL".into()));
            }
            Command::Health {
                url: positional.into_iter().next(),
            }
        }
        "exec" => {
            extra(&positional)?;
            let mut w = workload.unwrap_or_default().into_iter();
            let program = w.next().ok_or_else(|| {
                UsageError("`exec` needs a command: `skewguard exec -- CMD [ARGS…]`".into())
            })?;
            Command::Exec {
                program,
                args: w.collect(),
            }
        }
        other => {
            let names: Vec<&str> = COMMANDS.iter().map(|c| c.name).collect();
            let meant = crate::config::suggest::nearest(other, names.iter().copied())
                .map(|n| format!("did you mean `{n}`? "))
                .unwrap_or_default();
            return Err(UsageError(format!(
                "unknown command `{other}`; {meant}commands: {}",
                names.join(", ")
            )));
        }
    };
    Ok(Invocation { command, overrides })
}

/// Words as a shell line: a word with characters the shell reads otherwise
/// is put in single quotes.
fn shell_words(words: &[String]) -> String {
    let plain = |w: &str| {
        !w.is_empty()
            && w.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    };
    let quoted: Vec<String> = words
        .iter()
        .map(|w| {
            if plain(w) {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', "'\\''"))
            }
        })
        .collect();
    quoted.join(" ")
}

/// Where a setting means something else to one command than its row's
/// help says: (command, setting, the help there).
const COMMAND_SPECIFIC_HELP: &[(&str, &str, &str)] = &[
    (
        "health",
        "TIMEOUT",
        "bound on the whole probe: resolving, connecting, sending and reading the answer",
    ),
    (
        "health",
        "LISTEN",
        "the address whose port is probed when no URL is given (a wildcard address on loopback)",
    ),
    (
        "check",
        "ON_UNKNOWN",
        "fail|pass: whether an unknown verdict exits 1 (fail) or 0 (pass)",
    ),
    (
        "wait",
        "ON_UNKNOWN",
        "fail|pass: whether an unknown verdict keeps the wait going (fail) or ends it with 0 (pass)",
    ),
    (
        "exec",
        "ON_UNKNOWN",
        "fail|pass: whether an unknown verdict holds CMD back (fail) or starts it (pass)",
    ),
    (
        "serve",
        "ON_UNKNOWN",
        "fail|pass: whether a round's unknown verdict makes /healthz and /readyz answer 503 (fail) or 200 (pass); before the first round they answer 503 either way",
    ),
    (
        "serve",
        "LISTEN",
        "address of /healthz, /readyz, /livez, /metrics",
    ),
    (
        "serve",
        "INTERVAL",
        "time between measurements (±10 % jitter)",
    ),
    (
        "wait",
        "INTERVAL",
        "longest pause between attempts (pauses start at 1s and double)",
    ),
    (
        "exec",
        "INTERVAL",
        "longest pause between attempts before CMD starts (pauses start at 1s and double)",
    ),
    (
        "wait",
        "OUTPUT",
        "text|json|npd: the format of the final report, written on stderr",
    ),
    (
        "exec",
        "OUTPUT",
        "text|json|npd: the format of the final report, written on stderr when the wait fails",
    ),
];

/// The help of `setting` as `command` reads it (the row's own without a command).
pub(crate) fn setting_help(
    command: Option<&str>,
    setting: &crate::config::Setting,
) -> &'static str {
    command
        .and_then(|c| {
            COMMAND_SPECIFIC_HELP
                .iter()
                .find(|(cmd, name, _)| *cmd == c && *name == setting.name)
        })
        .map_or(setting.help, |(_, _, help)| help)
}

/// The help text. For a command: its synopsis, what it does, the settings it
/// reads (with flag and default) and its exit codes. Otherwise: the commands,
/// every setting and the exit codes in short.
pub fn help(command: Option<&str>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "skewguard {} — keep workloads off a clock that breaks signed requests\n",
        env!("CARGO_PKG_VERSION")
    );
    let chosen = command.and_then(|c| COMMANDS.iter().find(|h| h.name == c));
    match chosen {
        Some(h) => {
            let _ = writeln!(out, "usage: skewguard {}\n\n  {}\n", h.synopsis, h.what);
            if h.name == "health" {
                let _ = writeln!(
                    out,
                    "  Without URL it probes the port `serve` listens on: its own --listen, else the\n  --listen of a `skewguard serve` running as PID 1 (an image's HEALTHCHECK), else\n  SKEWGUARD_LISTEN, else 8080; a wildcard address is probed on loopback.\n"
                );
            }
        }
        None => {
            let _ = writeln!(out, "usage: skewguard <COMMAND> [FLAGS]\n\ncommands:");
            for h in COMMANDS {
                let _ = writeln!(out, "  {:<7} {}", h.name, h.what);
            }
            let _ = writeln!(
                out,
                "\n`skewguard <COMMAND> --help` shows one command's settings and exit codes.\n"
            );
        }
    }
    let _ = writeln!(
        out,
        "settings (environment variable, or the flag beside it; the flag wins):"
    );
    for s in SETTINGS
        .iter()
        .filter(|s| chosen.is_none_or(|h| reads(h.name, s.name)))
    {
        let _ = writeln!(
            out,
            "  SKEWGUARD_{:<16} {:<19} {} [default: {}]",
            s.name,
            flag_name(s.name),
            setting_help(chosen.map(|h| h.name), s),
            s.default
        );
    }
    let _ = writeln!(
        out,
        "  (durations: 150ms, 90s, 2m30s, 1h, 1d; named values exactly as shown, in lowercase;\n   a yes/no flag alone means true: --quiet, --disabled)"
    );
    match chosen {
        Some(h) => {
            let _ = writeln!(out, "\nexit codes:");
            for (code, why) in h.exits {
                let _ = writeln!(out, "  {code:<8} {why}");
            }
        }
        None => {
            let _ = writeln!(out, "\nexit codes: 0 ok/warn (or unknown with ON_UNKNOWN=pass), 1 fail/unknown, 2 usage or configuration error;");
            let _ = writeln!(
                out,
                "exec: the workload's own status, 126 not executable, 127 not found; health: only 0 or 1"
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Invocation, UsageError> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn commands_and_flags() {
        let i = p(&["check", "--max-skew", "90s", "--output=json"]).unwrap();
        assert_eq!(i.command, Command::Check);
        assert_eq!(i.overrides["MAX_SKEW"], "90s");
        assert_eq!(i.overrides["OUTPUT"], "json");
        let i = p(&["--timeout", "1s", "exec", "--", "sh", "-c", "exit 3"]).unwrap();
        assert_eq!(
            i.command,
            Command::Exec {
                program: "sh".into(),
                args: vec!["-c".into(), "exit 3".into()]
            }
        );
        assert_eq!(
            p(&["health", "http://x/healthz"]).unwrap().command,
            Command::Health {
                url: Some("http://x/healthz".into())
            }
        );
        assert_eq!(
            p(&["check", "--help"]).unwrap().command,
            Command::Help(Some("check".into()))
        );
        assert_eq!(p(&[]), Err(UsageError(NO_COMMAND.into())));
        assert_eq!(p(&["--help"]).unwrap().command, Command::Help(None));
    }

    #[test]
    fn usage_errors() {
        for bad in [
            &["check", "--bogus", "1"][..],
            &["frobnicate"],
            &["exec"],
            &["exec", "--"],
            &["check", "--", "ls"],
            &["check", "extra"],
            &["check", "--max-skew"],
            &["check", "-x"],
        ] {
            assert!(p(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn help_is_per_command() {
        let all = help(None);
        for s in SETTINGS {
            assert!(all.contains(&format!("SKEWGUARD_{}", s.name)), "{}", s.name);
        }
        let check = help(Some("check"));
        assert!(check.contains("SKEWGUARD_CACHE_FILE") && !check.contains("SKEWGUARD_LISTEN"));
        assert!(check.contains("1        fail or unknown"), "{check}");
        let health = help(Some("health"));
        assert!(health.contains("SKEWGUARD_LISTEN") && health.contains("SKEWGUARD_TIMEOUT"));
        assert!(
            !health.contains("SKEWGUARD_SOURCES") && !health.contains("\n  2 "),
            "{health}"
        );
        let serve = help(Some("serve"));
        assert!(serve.contains("SKEWGUARD_STALE_AFTER") && !serve.contains("SKEWGUARD_OUTPUT"));
        assert!(help(Some("exec")).contains("127"));
    }

    #[test]
    fn a_command_help_speaks_of_that_command_only() {
        for h in COMMANDS {
            let text = help(Some(h.name));
            let settings = text
                .lines()
                .filter(|l| l.trim_start().starts_with("SKEWGUARD_"));
            for line in settings {
                for other in COMMANDS.iter().filter(|o| o.name != h.name) {
                    assert!(
                        !line.contains(&format!("{}: ", other.name)),
                        "`{} --help` speaks of {}: {line}",
                        h.name,
                        other.name
                    );
                }
            }
        }
        let health = help(Some("health"));
        assert!(!health.contains("one query of one source"), "{health}");
        assert!(health.contains("bound on the whole probe"), "{health}");
    }

    #[test]
    fn exec_without_the_double_dash_shows_it() {
        let e = p(&["exec", "/bin/true"]).expect_err("no --");
        assert!(e.0.contains("`skewguard exec -- /bin/true`"), "{e}");
        let e = p(&["--timeout", "1s", "exec", "perl", "app.pl", "-w", "it's"]).expect_err("no --");
        assert!(
            e.0.contains("`skewguard exec -- perl app.pl -w 'it'\\''s'`"),
            "{e}"
        );
    }

    #[test]
    fn a_switch_alone_is_true() {
        let quiet = |args: &[&str]| {
            let i = p(args).expect("parsed");
            (i.command, i.overrides.get("QUIET").cloned())
        };
        assert_eq!(
            quiet(&["check", "--quiet"]),
            (Command::Check, Some("true".into()))
        );
        assert_eq!(
            quiet(&["--quiet", "check"]),
            (Command::Check, Some("true".into()))
        );
        assert_eq!(
            quiet(&["check", "--quiet", "false"]),
            (Command::Check, Some("false".into()))
        );
        assert_eq!(
            quiet(&["check", "--quiet=no"]),
            (Command::Check, Some("no".into()))
        );
        let (command, q) = quiet(&["exec", "--quiet", "--", "true"]);
        assert_eq!(q.as_deref(), Some("true"));
        assert!(matches!(command, Command::Exec { .. }));
        // A non-switch flag still needs its value.
        assert!(p(&["check", "--max-skew"]).is_err());
        let w = |args: &[&str]| command_word(&args.iter().map(OsString::from).collect::<Vec<_>>());
        assert_eq!(w(&["--quiet", "health"]).as_deref(), Some("health"));
        assert_eq!(w(&["--quiet", "yes", "health"]).as_deref(), Some("health"));
    }

    #[test]
    fn near_misses_are_named() {
        let e = p(&["check", "--max-skwe", "1s"]).expect_err("typo");
        assert!(e.0.contains("did you mean `--max-skew`?"), "{e}");
        let e = p(&["chek"]).expect_err("typo");
        assert!(e.0.contains("did you mean `check`?"), "{e}");
    }

    #[test]
    fn settings_name_only_commands_there_are() {
        for s in SETTINGS {
            for c in s.commands {
                assert!(COMMANDS.iter().any(|h| h.name == *c), "{}: {c}", s.name);
            }
        }
        assert!(reads("health", "LISTEN") && !reads("health", "SOURCES"));
        assert!(reads("check", "CACHE_FILE") && !reads("serve", "CACHE_FILE"));
        assert!(!reads("check", "NO_SUCH_SETTING"));
    }

    #[test]
    fn the_command_word_is_found_past_flags() {
        let w = |args: &[&str]| command_word(&args.iter().map(OsString::from).collect::<Vec<_>>());
        assert_eq!(
            w(&["--listen", "x", "health", "y"]).as_deref(),
            Some("health")
        );
        assert_eq!(w(&["--timeout=1s", "health"]).as_deref(), Some("health"));
        assert_eq!(w(&["--help", "check"]).as_deref(), Some("check"));
        assert_eq!(w(&["--", "health"]), None);
        assert_eq!(w(&[]), None);
    }
}
