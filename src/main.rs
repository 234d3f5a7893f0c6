//! skewguard: parse arguments, build the configuration, run the command, exit.

use std::process::ExitCode;

use skewguard::cmd::{self, EXIT_FAIL, EXIT_USAGE};
use skewguard::config::cli::{self, Command};
use skewguard::config::{self, Config, LogFormat};

fn main() -> ExitCode {
    ExitCode::from(run().clamp(0, 255) as u8)
}

fn run() -> i32 {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    // Docker reads a health check's 2 as "reserved": `health` fails with 1.
    let usage_exit = if cli::command_word(&args).as_deref() == Some("health") {
        EXIT_FAIL
    } else {
        EXIT_USAGE
    };
    // Errors before the configuration is read follow LOG_FORMAT as given.
    let early_format = log_format_given(&args);
    let invocation = match cli::parse(args) {
        Ok(i) => i,
        Err(e) if e.0 == cli::NO_COMMAND && early_format == LogFormat::Text => {
            eprint!("skewguard: {}\n\n{}", e.0, cli::help(None));
            return EXIT_USAGE;
        }
        Err(e) => {
            cmd::say_error(early_format, &e.to_string(), &[]);
            return usage_exit;
        }
    };
    match &invocation.command {
        Command::Help(c) => {
            print!("{}", cli::help(c.as_deref()));
            return 0;
        }
        Command::Version => {
            println!("skewguard {}", env!("CARGO_PKG_VERSION"));
            return 0;
        }
        _ => {}
    }
    // vars_os: an unrelated variable that is not UTF-8 must not matter; a
    // SKEWGUARD_* one that is not UTF-8 is a configuration error.
    let mut env = Vec::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str().filter(|n| config::honoured(n)) else {
            continue;
        };
        match value.into_string() {
            Ok(v) => env.push((name.to_string(), v)),
            Err(v) => {
                let message = format!("{name}={v:?} is not accepted: the value is not valid UTF-8");
                cmd::say_error(early_format, &message, &[("setting", name)]);
                return usage_exit;
            }
        }
    }
    let vars = config::gather(env, &invocation.overrides);
    let config = match Config::from_vars(vars.clone()) {
        Ok(c) => c,
        Err(e) => {
            let e = e.as_given(&invocation.overrides);
            let format = match vars.get("SKEWGUARD_LOG_FORMAT").map(String::as_str) {
                Some("json") => LogFormat::Json,
                _ => LogFormat::Text,
            };
            let fields = [
                ("setting", e.name.as_str()),
                ("value", e.value.as_str()),
                ("expected", e.expected.as_str()),
            ];
            cmd::say_error(format, &e.to_string(), &fields);
            return usage_exit;
        }
    };
    let default_log = match invocation.command {
        Command::Check | Command::Health { .. } => "warn",
        _ => "info",
    };
    // QUIET (check, wait, exec): only errors are logged, whatever LOG says;
    // a failure's report is printed by the command itself.
    let quiet = config.quiet
        && matches!(
            invocation.command,
            Command::Check | Command::Wait | Command::Exec { .. }
        );
    let filter = if quiet {
        "error"
    } else {
        config.log.as_deref().unwrap_or(default_log)
    };
    cmd::init_logging(filter, config.log_format);
    for name in config::unknown_variables(vars.keys().map(String::as_str)) {
        match config::nearest_variable(&name) {
            Some(meant) => tracing::warn!(
                variable = %name,
                did_you_mean = %meant,
                "unknown setting {name} ignored; did you mean {meant}?"
            ),
            None => tracing::warn!(
                variable = %name,
                "unknown setting {name} ignored (a typo?); `skewguard --help` lists them"
            ),
        }
    }
    let measures = matches!(
        invocation.command,
        Command::Check | Command::Wait | Command::Exec { .. } | Command::Serve
    );
    for advice in config.advice().into_iter().filter(|_| measures) {
        tracing::warn!("{advice}");
    }
    match invocation.command {
        Command::Check => cmd::check::run(&config),
        Command::Wait => cmd::wait::run(&config),
        Command::Exec { program, args } => cmd::wait::exec(&config, &program, &args),
        Command::Serve => cmd::serve::run(&config),
        Command::Health { url } => cmd::health::run(
            &config,
            url.as_deref(),
            invocation.overrides.contains_key("LISTEN"),
        ),
        Command::Help(_) | Command::Version => 0,
    }
}

/// `json` when `--log-format json` (or `=json`) is among `args`, or else
/// `SKEWGUARD_LOG_FORMAT=json` is set: how to report an error met before the
/// configuration is read.
fn log_format_given(args: &[std::ffi::OsString]) -> LogFormat {
    let mut flag = None;
    let mut args = args.iter().map(|a| a.to_string_lossy());
    while let Some(a) = args.next() {
        if a == "--" {
            break;
        }
        if a == "--log-format" {
            flag = args.next().map(|v| v.into_owned());
        } else if let Some(v) = a.strip_prefix("--log-format=") {
            flag = Some(v.to_string());
        }
    }
    let given = flag.or_else(|| std::env::var("SKEWGUARD_LOG_FORMAT").ok());
    if given.as_deref() == Some("json") {
        LogFormat::Json
    } else {
        LogFormat::Text
    }
}
