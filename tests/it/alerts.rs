//! The alert rules of k8s/prometheus/skewguard.rules.yml: valid for Debian's
//! `promtool check rules`, passing the `promtool test rules` suite of
//! tests/alerts/ (where every alert has a case that fires it and one that keeps
//! it silent), rendered up to date into k8s/alert-rules.yaml and
//! k8s/prometheus-rule.yaml, prefixed, with `for:` durations their text states
//! and runbooks that exist in docs/alerts.md. promtool missing → SKIPPED (a failure
//! under `CI=true`).

use crate::support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::{promtool, repo, TempDir};

fn rules_path() -> PathBuf {
    repo().join("k8s/prometheus/skewguard.rules.yml")
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One alerting rule as the rules file spells it: its name and its lines.
struct Rule {
    name: String,
    text: String,
}

impl Rule {
    /// The value of `key:` in the rule (the first occurrence).
    fn field(&self, key: &str) -> Option<&str> {
        self.text
            .lines()
            .find_map(|l| l.trim().strip_prefix(key)?.strip_prefix(':'))
            .map(str::trim)
    }
}

/// The alerting rules, each from its `- alert:` line to the next.
fn rules() -> Vec<Rule> {
    let text = read(&rules_path());
    let mut rules: Vec<Rule> = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.trim().strip_prefix("- alert:") {
            rules.push(Rule {
                name: name.trim().to_string(),
                text: String::new(),
            });
        }
        if let Some(r) = rules.last_mut() {
            r.text.push_str(line);
            r.text.push('\n');
        }
    }
    rules
}

/// `10m` → "10 minutes", `1m` → "1 minute", `6h` → "6 hours".
fn spoken(duration: &str) -> String {
    let (n, unit) = duration.split_at(duration.len() - 1);
    let word = match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        _ => panic!("unexpected duration {duration}"),
    };
    let plural = if n == "1" { "" } else { "s" };
    format!("{n} {word}{plural}")
}

/// GitHub's anchor for a Markdown heading.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[test]
fn the_manifests_are_the_rendered_rules_file() {
    let dir = TempDir::new("render");
    let ran = Command::new("bash")
        .arg(repo().join("k8s/prometheus/render.sh"))
        .arg(dir.path())
        .output()
        .expect("run bash");
    assert!(ran.status.success(), "render.sh: {ran:?}");
    for name in ["alert-rules.yaml", "prometheus-rule.yaml"] {
        let fresh = read(&dir.path().join(name));
        let committed = read(&repo().join("k8s").join(name));
        assert!(
            fresh == committed,
            "k8s/{name} is out of date: run `bash k8s/prometheus/render.sh`"
        );
    }
}

#[test]
fn every_alert_is_prefixed_timed_as_it_says_and_has_a_runbook() {
    let runbooks = read(&repo().join("docs/alerts.md"));
    let anchors: Vec<String> = runbooks
        .lines()
        .filter_map(|l| l.strip_prefix("### ").or_else(|| l.strip_prefix("## ")))
        .map(anchor)
        .collect();
    let rules = rules();
    assert!(rules.len() >= 10, "{} rules", rules.len());
    for r in &rules {
        assert!(r.name.starts_with("Skewguard"), "{}: no prefix", r.name);
        let duration = r
            .field("for")
            .unwrap_or_else(|| panic!("{}: no `for:`", r.name));
        let words = spoken(duration);
        assert!(
            r.text.to_lowercase().contains(&words),
            "{}: for {duration}, but its text never says \"{words}\"",
            r.name
        );
        assert!(
            r.field("severity").is_some(),
            "{}: no severity label",
            r.name
        );
        let url = r
            .field("runbook_url")
            .unwrap_or_else(|| panic!("{}: no runbook_url", r.name));
        let (_, fragment) = url
            .split_once("docs/alerts.md#")
            .unwrap_or_else(|| panic!("{}: runbook {url} is not in docs/alerts.md", r.name));
        assert_eq!(
            fragment,
            anchor(&r.name),
            "{}: runbook names another section",
            r.name
        );
        assert!(
            anchors.iter().any(|a| a == fragment),
            "{}: docs/alerts.md has no section #{fragment}",
            r.name
        );
        assert_eq!(
            r.text.matches("$labels.node").count(),
            r.text.matches("with $labels.node").count(),
            "{}: `node` exists only with relabelling: use it only inside `{{{{ with $labels.node }}}}`",
            r.name
        );
    }
}

#[test]
fn every_alert_has_a_case_that_fires_it_and_one_that_does_not() {
    let tests = read(&repo().join("tests/alerts/skewguard.rules.test.yml"));
    let lines: Vec<&str> = tests.lines().collect();
    for r in rules() {
        let mut fires = 0;
        let mut silent = 0;
        for (i, l) in lines.iter().enumerate() {
            if l.trim() != format!("alertname: {}", r.name) {
                continue;
            }
            match lines.get(i + 1).map(|n| n.trim()) {
                Some("exp_alerts: []") => silent += 1,
                Some("exp_alerts:") => fires += 1,
                other => panic!("{}: unexpected line after alertname: {other:?}", r.name),
            }
        }
        assert!(
            fires >= 1 && silent >= 1,
            "{}: {fires} firing and {silent} silent cases",
            r.name
        );
    }
}

#[test]
fn promtool_checks_the_rules_and_passes_their_unit_tests() {
    let rules = rules_path();
    let Some((code, out)) = promtool(
        &["check", "rules", &rules.display().to_string()],
        "",
        Duration::from_secs(20),
    ) else {
        return;
    };
    assert_eq!(code, Some(0), "promtool check rules:\n{out}");
    let suite = repo().join("tests/alerts/skewguard.rules.test.yml");
    let Some((code, out)) = promtool(
        &["test", "rules", &suite.display().to_string()],
        "",
        Duration::from_secs(60),
    ) else {
        return;
    };
    assert_eq!(code, Some(0), "promtool test rules:\n{out}");
    assert!(out.contains("SUCCESS"), "{out}");
}
