//! Command-line arguments: the command, flags that override `SKEWGUARD_*`
//! variables by name, and the workload of `exec`.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write as _;

use crate::config::{flag_name, setting_for_flag, SETTINGS};

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

const COMMANDS: &[(&str, &str)] = &[
    (
        "check",
        "measure once; print the verdict; exit 0 (ok/warn) or 1 (fail/unknown)",
    ),
    (
        "wait",
        "measure until the clock is fine (exit 0) or WAIT_TIMEOUT passes (exit 1)",
    ),
    (
        "exec",
        "`exec -- CMD [ARGS…]`: wait, then replace this process with CMD",
    ),
    (
        "serve",
        "sidecar: measure every INTERVAL; serve /healthz /readyz /livez /metrics on LISTEN",
    ),
    (
        "health",
        "`health [URL]`: GET URL (default http://127.0.0.1:<LISTEN port>/healthz); exit 0 on 2xx",
    ),
];

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
                let setting = setting_for_flag(&name)
                    .ok_or_else(|| UsageError(format!("unknown flag `--{name}`")))?;
                let value = parser
                    .value()
                    .map_err(|e| UsageError(e.to_string()))?
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
    let name = match command {
        None => {
            return Ok(Invocation {
                command: Command::Help(None),
                overrides,
            })
        }
        Some(c) => c,
    };
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
            let names: Vec<&str> = COMMANDS.iter().map(|c| c.0).collect();
            return Err(UsageError(format!(
                "unknown command `{other}`; commands: {}",
                names.join(", ")
            )));
        }
    };
    Ok(Invocation { command, overrides })
}

/// The help text: commands, then every setting with its flag and default.
pub fn help(command: Option<&str>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "skewguard {} — keep workloads off a clock that breaks signed requests\n",
        env!("CARGO_PKG_VERSION")
    );
    match command.and_then(|c| COMMANDS.iter().find(|(n, _)| *n == c)) {
        Some((name, what)) => {
            let _ = writeln!(
                out,
                "usage: skewguard {name} [FLAGS]{}\n\n  {what}\n",
                if *name == "exec" {
                    " -- CMD [ARGS…]"
                } else {
                    ""
                }
            );
        }
        None => {
            let _ = writeln!(out, "usage: skewguard <COMMAND> [FLAGS]\n\ncommands:");
            for (name, what) in COMMANDS {
                let _ = writeln!(out, "  {name:<7} {what}");
            }
            let _ = writeln!(out);
        }
    }
    let _ = writeln!(
        out,
        "settings (environment variable, or the flag beside it; the flag wins):"
    );
    for s in SETTINGS {
        let _ = writeln!(
            out,
            "  SKEWGUARD_{:<16} {:<19} {} [default: {}]",
            s.name,
            flag_name(s.name),
            s.help,
            s.default
        );
    }
    let _ = writeln!(out, "\nexit codes: 0 ok/warn (or unknown with ON_UNKNOWN=pass), 1 fail/unknown, 2 usage or configuration error;");
    let _ = writeln!(
        out,
        "exec: the workload's own status, 126 not executable, 127 not found"
    );
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
        assert_eq!(p(&[]).unwrap().command, Command::Help(None));
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
    fn help_lists_every_setting() {
        let h = help(Some("check"));
        for s in SETTINGS {
            assert!(h.contains(&format!("SKEWGUARD_{}", s.name)));
        }
    }
}
