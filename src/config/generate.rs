//! The man page and the shell completions (bash, zsh, fish), generated from
//! the same tables as `--help`: the commands of [`super::cli`] and the
//! settings table. Pure: each returns the file's text. The files are kept in
//! the repository (`contrib/man/`, `contrib/completions/`), written by
//! `cargo run --example generate`; a test fails when they differ from what
//! these functions return. Nothing here is reachable from the binary's
//! `main`, so it adds nothing to the release binary.

use std::fmt::Write as _;

use super::cli::{setting_help, CommandHelp, COMMANDS};
use super::{flag_name, Setting, SETTINGS};
use crate::core::verdict::Profile;

/// Every generated file: its path in the repository and its text.
pub fn files() -> Vec<(&'static str, String)> {
    vec![
        ("contrib/man/skewguard.1", man()),
        ("contrib/completions/skewguard.bash", bash()),
        ("contrib/completions/_skewguard", zsh()),
        ("contrib/completions/skewguard.fish", fish()),
    ]
}

/// The command that writes [`files`] again.
pub const REFRESH: &str = "cargo run --example generate";

/// The line each generated file starts with (in its comment syntax).
const GENERATED: &str =
    "Generated from the settings table by `cargo run --example generate`; do not edit.";

/// What a setting's value may be, for completion.
#[derive(Debug, PartialEq, Eq)]
enum Values {
    /// One of these words.
    Choices(Vec<&'static str>),
    /// A file name.
    File,
    /// A switch: the flag alone is `true` (`--quiet`), or `true`/`false` after it.
    Switch,
    /// Anything (a duration, an address, a list): nothing to offer.
    Free,
}

/// The values of a setting, read from its row: the profiles for `PROFILE`,
/// the `a|b|c` its help starts with, a switch for a yes/no setting
/// ([`super::is_switch`]), a file for `*_FILE`.
fn values(s: &Setting) -> Values {
    if s.name == "PROFILE" {
        return Values::Choices(Profile::all().map(Profile::name).collect());
    }
    if s.name.ends_with("_FILE") {
        return Values::File;
    }
    let shown = s.help.split([':', ' ']).next().unwrap_or_default();
    if shown.contains('|') {
        return Values::Choices(shown.split('|').collect());
    }
    if super::is_switch(s) {
        return Values::Switch;
    }
    Values::Free
}

/// The settings a command reads.
fn read_by(command: &str) -> impl Iterator<Item = &'static Setting> + '_ {
    SETTINGS
        .iter()
        .filter(move |s| s.commands.contains(&command))
}

/// Every command but `help`, which takes no settings.
fn commands() -> impl Iterator<Item = &'static CommandHelp> {
    COMMANDS.iter()
}

// ---------------------------------------------------------------------------
// man page

/// Text for roff: backslashes escaped, hyphens as minus signs where they are
/// typed (flags, options), and a line that would start with `.` or `'` guarded.
/// Other characters than ASCII as groff's `\\[uXXXX]`.
fn roff(text: &str) -> String {
    let mut escaped = String::new();
    for c in text.chars() {
        match c {
            '\\' => escaped += "\\e",
            '-' => escaped += "\\-",
            c if c.is_ascii() => escaped.push(c),
            c => {
                let _ = write!(escaped, "\\[u{:04X}]", u32::from(c));
            }
        }
    }
    escaped
        .lines()
        .map(|l| {
            if l.starts_with('.') || l.starts_with('\'') {
                format!("\\&{l}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The man page, section 1.
pub fn man() -> String {
    let mut out = String::new();
    let version = env!("CARGO_PKG_VERSION");
    let _ = writeln!(out, ".\\\" {GENERATED}");
    let _ = writeln!(
        out,
        ".TH SKEWGUARD 1 \"\" \"skewguard {version}\" \"User Commands\""
    );
    out += ".SH NAME\nskewguard \\- keep workloads off a clock that breaks signed requests\n";
    out += ".SH SYNOPSIS\n";
    for c in commands() {
        let rest = c.synopsis.strip_prefix(c.name).unwrap_or(c.synopsis);
        let _ = writeln!(out, ".B skewguard\n\\fB{}\\fR{}\n.br", c.name, roff(rest));
    }
    out += ".B skewguard\n.RI [ COMMAND ] \" \\-\\-help\"\n.br\n.B skewguard \\-\\-version\n";
    out += ".SH DESCRIPTION\n";
    out += &roff("skewguard measures the local clock against NTP, NTS and HTTPS Date references, each with an honest error bound, combines them so that a lying minority is outvoted, and judges the result against the window of a signing scheme (AWS SigV4: 5 minutes). It keeps a workload from starting, or staying in service, on a clock that would break its signed requests, and says the likely cause and the fix.");
    out += "\n.PP\n";
    out += &roff("Every setting is an environment variable SKEWGUARD_NAME or the flag --name beside it; the flag wins. Durations are written 150ms, 90s, 2m30s, 1h or 1d; named values exactly as shown, in lowercase.");
    out += "\n.SH COMMANDS\n";
    for c in commands() {
        let _ = writeln!(out, ".TP\n.B {}\n{}", c.name, roff(c.what));
        let names: Vec<String> = read_by(c.name).map(|s| flag_name(s.name)).collect();
        let _ = writeln!(out, ".IP\nSettings: {}.", roff(&names.join(", ")));
    }
    out += ".SH SETTINGS\n";
    for s in SETTINGS {
        let value = if values(s) == Values::Switch {
            "\" [\" \\fItrue\\fR|\\fIfalse\\fR \"], \""
        } else {
            "\" \" \\fIVALUE\\fR \", \""
        };
        let _ = writeln!(
            out,
            ".TP\n.BR {} {value} SKEWGUARD_{}",
            roff(&flag_name(s.name)),
            roff(s.name)
        );
        let _ = writeln!(out, "{}", roff(s.help));
        let _ = writeln!(out, ".br\nDefault: {}.", roff(s.default.shown()));
        let _ = writeln!(out, "Read by: {}.", s.commands.join(", "));
        for c in s.commands {
            let here = setting_help(Some(c), s);
            if here != s.help {
                let _ = writeln!(out, ".br\n\\fI{c}\\fR: {}", roff(here));
            }
        }
    }
    out += ".SH EXIT STATUS\n";
    for c in commands() {
        let _ = writeln!(out, ".SS {}", c.name);
        for (code, why) in c.exits {
            let _ = writeln!(out, ".TP\n.B {}\n{}", roff(code), roff(why));
        }
    }
    out += ".SH EXAMPLES\n";
    for (what, line) in [
        ("Check the clock once:", "skewguard check"),
        (
            "Start a program only on a good clock (S3's window):",
            "skewguard exec \\-\\-profile aws\\-s3 \\-\\- perl app.pl",
        ),
        (
            "Gate a systemd service:",
            "ExecStartPre=/usr/local/bin/skewguard wait",
        ),
        (
            "A cron job that mails only on a failure:",
            "*/5 * * * * /usr/local/bin/skewguard check \\-\\-quiet",
        ),
        (
            "A sidecar with /healthz and /metrics:",
            "SKEWGUARD_LISTEN=0.0.0.0:8080 skewguard serve",
        ),
    ] {
        let _ = writeln!(out, ".PP\n{}\n.PP\n.RS\n.nf\n{line}\n.fi\n.RE", roff(what));
    }
    out += ".SH SEE ALSO\n.BR chronyc (1),\n.BR timedatectl (1),\n.BR systemd.service (5)\n.PP\n";
    out += &roff("The manual: docs/ in the source (commands.md, configuration.md, hosts.md, json.md, metrics.md).");
    out += "\n";
    out
}

// ---------------------------------------------------------------------------
// bash

/// bash's completion: commands, each command's flags, the values of named
/// settings, file names for files, and after `exec --` a command line.
pub fn bash() -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# bash completion for skewguard. {GENERATED}");
    out += "_skewguard() {\n";
    out += "    local cur=\"${COMP_WORDS[COMP_CWORD]}\" prev=\"${COMP_WORDS[COMP_CWORD-1]}\"\n";
    out += "    local command=\"\" i\n";
    out += "    for ((i = 1; i < COMP_CWORD; i++)); do\n";
    out += "        case \"${COMP_WORDS[i]}\" in\n";
    out += "        --)\n";
    out += "            # exec's workload: complete its command line\n";
    out += "            if ((i == COMP_CWORD - 1)); then\n";
    out += "                mapfile -t COMPREPLY < <(compgen -c -- \"$cur\")\n";
    out += "            else\n";
    out += "                mapfile -t COMPREPLY < <(compgen -f -- \"$cur\")\n";
    out += "            fi\n";
    out += "            return 0\n";
    out += "            ;;\n";
    let names: Vec<&str> = commands().map(|c| c.name).chain(["help"]).collect();
    let _ = writeln!(out, "        {})", names.join("|"));
    out += "            [[ -z $command ]] && command=${COMP_WORDS[i]}\n";
    out += "            ;;\n";
    out += "        esac\n";
    out += "    done\n";
    out += "    case \"$prev\" in\n";
    for s in SETTINGS {
        let flag = flag_name(s.name);
        match values(s) {
            Values::Choices(words) => {
                let _ = writeln!(
                    out,
                    "    {flag})\n        mapfile -t COMPREPLY < <(compgen -W \"{}\" -- \"$cur\")\n        return 0\n        ;;",
                    words.join(" ")
                );
            }
            Values::File => {
                let _ = writeln!(
                    out,
                    "    {flag})\n        mapfile -t COMPREPLY < <(compgen -f -- \"$cur\")\n        return 0\n        ;;"
                );
            }
            Values::Free => {
                let _ = writeln!(out, "    {flag})\n        return 0\n        ;;");
            }
            // The flag alone is enough: what follows completes as usual.
            Values::Switch => {}
        }
    }
    out += "    esac\n";
    out += "    local words\n";
    out += "    case \"$command\" in\n";
    let _ = writeln!(
        out,
        "    \"\") words=\"{} --help --version\" ;;",
        names.join(" ")
    );
    for c in commands() {
        let flags: Vec<String> = read_by(c.name).map(|s| flag_name(s.name)).collect();
        let extra = if c.name == "exec" { " --" } else { "" };
        let _ = writeln!(
            out,
            "    {}) words=\"{} --help{extra}\" ;;",
            c.name,
            flags.join(" ")
        );
    }
    let _ = writeln!(out, "    help) words=\"{}\" ;;", names.join(" "));
    out += "    esac\n";
    out += "    mapfile -t COMPREPLY < <(compgen -W \"$words\" -- \"$cur\")\n";
    out += "}\n";
    out += "complete -F _skewguard skewguard\n";
    out
}

// ---------------------------------------------------------------------------
// zsh

/// Text inside a zsh `_arguments` description `[...]`, in single quotes.
fn zsh_description(text: &str) -> String {
    text.replace('\'', "'\\''")
        .replace('[', "\\[")
        .replace(']', "\\]")
        .replace(':', "\\:")
}

/// zsh's completion (`#compdef`): commands with what they do, each
/// command's flags with their help, values and files, `exec`'s command line.
pub fn zsh() -> String {
    let mut out = String::new();
    out += "#compdef skewguard\n";
    let _ = writeln!(out, "# zsh completion for skewguard. {GENERATED}");
    out += "\n_skewguard() {\n";
    out += "    local curcontext=\"$curcontext\" state line\n";
    out += "    typeset -A opt_args\n";
    out += "    _arguments -C \\\n";
    out += "        '(- *)--help[print help]' \\\n";
    out += "        '(- *)--version[print the version]' \\\n";
    out += "        '1:command:->command' \\\n";
    out += "        '*::argument:->argument' && return\n";
    out += "    case $state in\n";
    out += "    command)\n";
    out += "        local -a commands\n";
    out += "        commands=(\n";
    for c in commands() {
        let _ = writeln!(
            out,
            "            '{}:{}'",
            c.name,
            c.what.replace('\'', "'\\''").replace(':', "\\:")
        );
    }
    out += "            'help:print help, for a command if named'\n";
    out += "        )\n";
    out += "        _describe -t commands 'skewguard command' commands\n";
    out += "        ;;\n";
    out += "    argument)\n";
    out += "        case $line[1] in\n";
    for c in commands() {
        let _ = writeln!(out, "        {})", c.name);
        out += "            _arguments -S \\\n";
        out += "                '(- *)--help[print help]' \\\n";
        for s in read_by(c.name) {
            let action = match values(s) {
                Values::Choices(words) => format!("=[{{}}]:value:({})", words.join(" ")),
                Values::File => "=[{}]:file:_files".to_string(),
                Values::Free => "=[{}]:value: ".to_string(),
                Values::Switch => "[{}]".to_string(),
            };
            let spec = action.replacen("{}", &zsh_description(setting_help(Some(c.name), s)), 1);
            let _ = writeln!(out, "                '{}{spec}' \\", flag_name(s.name));
        }
        let rest = match c.name {
            "exec" => "'*::command:_normal'",
            "health" => "'1::URL:_urls'",
            _ => "''",
        };
        if rest == "''" {
            // Drop the last line's continuation.
            out.truncate(out.len() - 3);
            out += "\n";
        } else {
            let _ = writeln!(out, "                {rest}");
        }
        out += "            ;;\n";
    }
    out += "        help)\n";
    let names: Vec<&str> = commands().map(|c| c.name).collect();
    let _ = writeln!(out, "            _values 'command' {}", names.join(" "));
    out += "            ;;\n";
    out += "        esac\n";
    out += "        ;;\n";
    out += "    esac\n";
    out += "}\n\n_skewguard \"$@\"\n";
    out
}

// ---------------------------------------------------------------------------
// fish

/// Text in fish single quotes.
fn fish_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// fish's completion: commands with what they do, each setting's flag under
/// the commands that read it, with values or files, and command names after
/// `exec --`.
pub fn fish() -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# fish completion for skewguard. {GENERATED}");
    out += "complete -c skewguard -f\n";
    let names: Vec<&str> = commands().map(|c| c.name).chain(["help"]).collect();
    let none = format!("not __fish_seen_subcommand_from {}", names.join(" "));
    for c in commands() {
        let _ = writeln!(
            out,
            "complete -c skewguard -n {} -a {} -d {}",
            fish_quoted(&none),
            c.name,
            fish_quoted(c.what)
        );
    }
    let _ = writeln!(
        out,
        "complete -c skewguard -n {} -a help -d 'print help, for a command if named'",
        fish_quoted(&none)
    );
    out += "complete -c skewguard -l help -d 'print help'\n";
    let _ = writeln!(
        out,
        "complete -c skewguard -n {} -l version -d 'print the version'",
        fish_quoted(&none)
    );
    for s in SETTINGS {
        for c in s.commands {
            let condition = fish_quoted(&format!(
                "__fish_seen_subcommand_from {c}; and not contains -- -- (commandline -opc)"
            ));
            let values = match values(s) {
                Values::Choices(words) => format!(" -x -a {}", fish_quoted(&words.join(" "))),
                Values::File => " -r -F".to_string(),
                Values::Free => " -x".to_string(),
                Values::Switch => String::new(),
            };
            let _ = writeln!(
                out,
                "complete -c skewguard -n {condition} -l {}{values} -d {}",
                &flag_name(s.name)[2..],
                fish_quoted(setting_help(Some(c), s))
            );
        }
    }
    out += "complete -c skewguard -n '__fish_seen_subcommand_from exec; and contains -- -- (commandline -opc)' -a '(__fish_complete_command)'\n";
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_read_from_the_rows() {
        let of = |name: &str| values(super::super::settings::setting(name).expect(name));
        assert_eq!(of("ON_UNKNOWN"), Values::Choices(vec!["fail", "pass"]));
        assert_eq!(of("QUIET"), Values::Switch);
        assert_eq!(of("DISABLED"), Values::Switch);
        assert_eq!(of("CA_FILE"), Values::File);
        assert_eq!(of("MAX_SKEW"), Values::Free);
        assert!(matches!(of("PROFILE"), Values::Choices(p) if p.contains(&"aws-s3")));
    }

    #[test]
    fn every_setting_is_in_every_file() {
        for (path, text) in files() {
            for s in SETTINGS {
                let flag = flag_name(s.name);
                let shown = if path.ends_with(".1") {
                    roff(&flag)
                } else if path.ends_with(".fish") {
                    format!("-l {}", &flag[2..])
                } else {
                    flag
                };
                assert!(text.contains(&shown), "{path} lacks {shown}");
            }
        }
    }
}
