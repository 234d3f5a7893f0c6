//! The documentation's own links: every relative Markdown link `[x](path)` or
//! `[x](path#anchor)` in README.md and docs/**/*.md names a file or directory
//! that exists, and an anchor into a Markdown file names one of its headings
//! as GitHub spells it (lowercase; punctuation other than `-` and `_`
//! dropped; spaces to `-`; a repeated heading gets `-1`, `-2`, …). Links with a
//! scheme (`https://…`) are not followed. Plain std: no tools, no network.

use crate::support::repo;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

/// README.md and every Markdown file under docs/.
fn documents() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .flatten()
            .map(|e| e.path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    let mut out = vec![repo().join("README.md")];
    walk(&repo().join("docs"), &mut out);
    out
}

/// The text outside fenced code blocks, as paragraphs (a code span cannot
/// cross a blank line), each with the line number it starts on.
fn paragraphs(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fence: Option<String> = None;
    let mut current = String::new();
    let mut start = 0;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let marker: String = trimmed
            .chars()
            .take_while(|c| *c == '`' || *c == '~')
            .collect();
        if let Some(open) = &fence {
            if marker.len() >= open.len() && marker.starts_with(&open[..1]) {
                fence = None;
            }
            continue;
        }
        if marker.len() >= 3 && marker.chars().all(|c| c == marker.as_bytes()[0] as char) {
            fence = Some(marker);
            continue;
        }
        if line.trim().is_empty() {
            if !current.is_empty() {
                out.push((start, std::mem::take(&mut current)));
            }
            continue;
        }
        if current.is_empty() {
            start = i + 1;
        }
        current.push_str(line);
        current.push('\n');
    }
    if !current.is_empty() {
        out.push((start, current));
    }
    out
}

/// The paragraph without its code spans (a run of n backticks up to the next
/// run of exactly n; an unmatched run is literal).
fn without_code_spans(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let run_at = |i: usize| chars[i..].iter().take_while(|c| **c == '`').count();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '`' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let n = run_at(i);
        let mut j = i + n;
        let mut close = None;
        while j < chars.len() {
            if chars[j] == '`' {
                let m = run_at(j);
                if m == n {
                    close = Some(j + m);
                    break;
                }
                j += m;
            } else {
                j += 1;
            }
        }
        match close {
            Some(end) => {
                out.push(' ');
                i = end;
            }
            None => {
                out.extend(&chars[i..i + n]);
                i += n;
            }
        }
    }
    out
}

/// The targets of the inline links `[text](target)` in a paragraph.
fn link_targets(paragraph: &str) -> Vec<String> {
    let text = without_code_spans(paragraph);
    let mut out = Vec::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        let Some(end) = after.find(')') else { break };
        let target = after[..end].split_whitespace().next().unwrap_or("");
        let target = target.trim_start_matches('<').trim_end_matches('>');
        out.push(target.to_string());
        rest = &after[end..];
    }
    out
}

/// GitHub's anchor for a heading's text (a code span keeps its text; the
/// backticks are punctuation).
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Every anchor a Markdown file's ATX headings give, duplicates numbered.
fn anchors(text: &str) -> Vec<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    let mut fence: Option<char> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            let c = trimmed.as_bytes()[0] as char;
            fence = match fence {
                Some(open) if open == c => None,
                Some(open) => Some(open),
                None => Some(c),
            };
            continue;
        }
        if fence.is_some() || line.starts_with("    ") {
            continue;
        }
        let hashes = trimmed.chars().take_while(|c| *c == '#').count();
        if !(1..=6).contains(&hashes) || !trimmed[hashes..].starts_with(' ') {
            continue;
        }
        let title = trimmed[hashes..].trim().trim_end_matches('#').trim_end();
        let base = slug(title);
        let n = seen.entry(base.clone()).or_insert(0);
        out.push(if *n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        });
        *n += 1;
    }
    out
}

#[test]
fn slugs_follow_github() {
    for (heading, anchor) in [
        (
            "Logs of `wait`, `exec` and `serve`",
            "logs-of-wait-exec-and-serve",
        ),
        (
            "Holdover: a source outage does not take the fleet out of service",
            "holdover-a-source-outage-does-not-take-the-fleet-out-of-service",
        ),
        (
            "`WARN_SKEW` means \"certainly off by at least this\"",
            "warn_skew-means-certainly-off-by-at-least-this",
        ),
        ("SkewguardClockBreaksSigning", "skewguardclockbreakssigning"),
        (
            "Kubernetes, Grafana and node-problem-detector",
            "kubernetes-grafana-and-node-problem-detector",
        ),
    ] {
        assert_eq!(anchors(&format!("## {heading}\n")), [anchor], "{heading}");
    }
    assert_eq!(
        anchors("# A\n```\n# not a heading\n```\n## A\n### A #\n"),
        ["a", "a-1", "a-2"]
    );
}

#[test]
fn every_relative_link_resolves() {
    let root = repo();
    let mut broken = Vec::new();
    let mut checked = 0;
    for doc in documents() {
        let text = fs::read_to_string(&doc).unwrap_or_else(|e| panic!("{}: {e}", doc.display()));
        let name = doc
            .strip_prefix(&root)
            .unwrap_or(&doc)
            .display()
            .to_string();
        for (line, paragraph) in paragraphs(&text) {
            for target in link_targets(&paragraph) {
                if target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                checked += 1;
                let (path, anchor) = target.split_once('#').unwrap_or((&target, ""));
                let file = if path.is_empty() {
                    doc.clone()
                } else {
                    doc.parent().expect("a document's directory").join(path)
                };
                if !file.exists() {
                    broken.push(format!("{name}:{line}: {target}: no such file"));
                    continue;
                }
                if anchor.is_empty() {
                    continue;
                }
                if file.is_dir() || file.extension().is_some_and(|e| e != "md") {
                    broken.push(format!(
                        "{name}:{line}: {target}: an anchor into a non-Markdown target"
                    ));
                    continue;
                }
                let target_text = fs::read_to_string(&file).expect("read the link's target");
                if !anchors(&target_text).iter().any(|a| a == anchor) {
                    broken.push(format!(
                        "{name}:{line}: {target}: no heading #{anchor} there"
                    ));
                }
            }
        }
    }
    assert!(
        checked > 50,
        "only {checked} relative links found: is the parser blind?"
    );
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// The README is the front door; the manual is docs/.
#[test]
fn the_readme_stays_short() {
    let lines = fs::read_to_string(repo().join("README.md"))
        .expect("README.md")
        .lines()
        .count();
    assert!(
        lines < 250,
        "README.md has {lines} lines; move detail into docs/"
    );
}
