//! The man page and the shell completions in `contrib/` are what the settings
//! table generates today (`cargo run --example generate` refreshes them), and
//! each works in its own program: groff reads the page without a warning, and
//! bash, zsh and fish load their completion and (bash, fish) complete flags,
//! values and commands.

use crate::support;

use std::fs;
use std::process::Command;
use std::time::Duration;

use skewguard::config::generate;
use support::{run_command, Output};

fn committed(path: &str) -> String {
    fs::read_to_string(support::repo().join(path)).unwrap_or_default()
}

#[test]
fn the_man_page_and_completions_are_up_to_date() {
    let mut stale = Vec::new();
    for (path, text) in generate::files() {
        if committed(path) != text {
            stale.push(path);
        }
    }
    assert!(
        stale.is_empty(),
        "{stale:?} differ from what the settings table generates: run `{}` and commit them",
        generate::REFRESH
    );
}

fn shell(program: &str, script: &str) -> Output {
    let mut cmd = Command::new(program);
    cmd.current_dir(support::repo()).args(["-c", script]);
    let out = run_command(cmd, program, Duration::from_secs(30));
    out.assert_exit(0);
    out
}

#[test]
fn groff_reads_the_man_page_without_a_warning() {
    if !support::prerequisite("groff", "install groff-base") {
        return;
    }
    let page = generate::man();
    let out = shell(
        "sh",
        "groff -man -Tutf8 -ww -z contrib/man/skewguard.1 && groff -man -Tutf8 -P-cbou contrib/man/skewguard.1",
    );
    assert!(out.stderr.trim().is_empty(), "groff warns\n{out}");
    for s in skewguard::config::SETTINGS {
        assert!(
            out.stdout.contains(&format!("SKEWGUARD_{}", s.name)),
            "the rendered page lacks {}",
            s.name
        );
    }
    assert!(page.contains(".SH EXIT STATUS"));
}

#[test]
fn bash_completes_commands_flags_and_values() {
    if !support::prerequisite("bash", "install bash") {
        return;
    }
    let complete = |words: &[&str]| {
        let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
        let script = format!(
            "source contrib/completions/skewguard.bash\n\
             COMP_WORDS=({}); COMP_CWORD={}\n\
             _skewguard; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            quoted.join(" "),
            words.len() - 1
        );
        shell("bash", &script).stdout
    };
    let all = complete(&["skewguard", ""]);
    for c in ["check", "wait", "exec", "serve", "health"] {
        assert!(all.lines().any(|l| l == c), "{c} missing:\n{all}");
    }
    let workload = complete(&["skewguard", "exec", "--", "per"]);
    assert!(workload.lines().any(|l| l == "perl"), "{workload}");
    let flags = complete(&["skewguard", "check", "--qu"]);
    assert_eq!(flags.trim(), "--quiet", "{flags}");
    let profiles = complete(&["skewguard", "wait", "--profile", "aws"]);
    assert!(profiles.lines().any(|l| l == "aws-s3"), "{profiles}");
    let health = complete(&["skewguard", "health", "--"]);
    assert!(
        health.lines().any(|l| l == "--timeout") && !health.lines().any(|l| l == "--sources"),
        "{health}"
    );
}

#[test]
fn zsh_loads_its_completion() {
    if !support::prerequisite("zsh", "install zsh") {
        return;
    }
    shell("zsh", "zsh -n contrib/completions/_skewguard");
    // compinit finds it on fpath by its #compdef line.
    let out = shell(
        "zsh",
        "fpath=($PWD/contrib/completions $fpath); autoload -Uz compinit && compinit -u -D && print -r -- $_comps[skewguard]",
    );
    assert_eq!(out.stdout.trim(), "_skewguard", "{out}");
}

#[test]
fn fish_completes_commands_flags_and_values() {
    if !support::prerequisite("fish", "install fish") {
        return;
    }
    shell("fish", "fish -n contrib/completions/skewguard.fish");
    let complete = |line: &str| {
        let script = format!("source contrib/completions/skewguard.fish; complete -C {line:?}");
        shell("fish", &script).stdout
    };
    let all = complete("skewguard ");
    for c in ["check", "wait", "exec", "serve", "health"] {
        assert!(
            all.lines().any(|l| l.starts_with(&format!("{c}\t"))),
            "{c} missing:\n{all}"
        );
    }
    let flags = complete("skewguard check --qu");
    assert!(flags.starts_with("--quiet"), "{flags}");
    let profiles = complete("skewguard wait --profile=aws");
    assert!(profiles.contains("--profile=aws-s3"), "{profiles}");
    let serve = complete("skewguard serve --");
    assert!(
        serve.contains("--listen") && !serve.contains("--cache-file"),
        "{serve}"
    );
}
