//! The repository builds for any Linux: no file pins an architecture. An
//! aarch64 build cannot run on the x86_64 test machines, so this checks the
//! sources of such a pin instead: a cargo `build.target`, a target triple or a
//! multiarch library path for one architecture only, a fixed `--platform`.
//! A file may name architectures in a table that covers both x86_64 and
//! aarch64 (the Dockerfile's cross-compiling map, a list of candidate paths);
//! in Rust sources only target triples count (library paths there are data).

use std::fs;
use std::path::{Path, PathBuf};

use crate::support::repo;

/// Every text file of the repository outside build outputs and VCS data.
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if !matches!(name.as_str(), "target" | ".git" | "corpus" | "artifacts") {
                files(&path, out);
            }
        } else {
            out.push(path);
        }
    }
}

/// Architecture-specific spellings, by architecture.
const SPELLINGS: &[(&str, &[&str])] = &[
    (
        "x86_64",
        &[
            "x86_64-unknown-linux",
            "/usr/lib/x86_64-linux-gnu",
            "linux/amd64",
        ],
    ),
    (
        "aarch64",
        &[
            "aarch64-unknown-linux",
            "/usr/lib/aarch64-linux-gnu",
            "linux/arm64",
        ],
    ),
];

#[test]
fn no_file_pins_an_architecture() {
    let root = repo();
    let mut all = Vec::new();
    files(&root, &mut all);
    let this = root.join("tests/it/build.rs");
    let mut pins = Vec::new();
    for path in all.iter().filter(|p| **p != this) {
        let Ok(text) = fs::read_to_string(path) else {
            continue; // binary (fuzz seeds, …)
        };
        // In Rust sources a library path is data (a candidate list, a test's
        // example of LD_PRELOAD); a target triple there would be a build pin.
        let rust = path.extension().is_some_and(|e| e == "rs");
        let counts = |s: &&&str| !rust || s.contains("-unknown-");
        let named: Vec<&str> = SPELLINGS
            .iter()
            .filter(|(_, spellings)| spellings.iter().filter(counts).any(|s| text.contains(s)))
            .map(|(arch, _)| *arch)
            .collect();
        if named.len() == 1 {
            let line = text
                .lines()
                .position(|l| {
                    SPELLINGS
                        .iter()
                        .any(|(_, s)| s.iter().any(|s| l.contains(s)))
                })
                .map_or(0, |i| i + 1);
            pins.push(format!(
                "{}:{line}: names {} only",
                path.strip_prefix(&root).unwrap_or(path).display(),
                named[0]
            ));
        }
    }
    // A cargo configuration may not choose the target for every build.
    for config in [".cargo/config.toml", ".cargo/config"] {
        if let Ok(text) = fs::read_to_string(root.join(config)) {
            let mut section = String::new();
            for line in text.lines().map(str::trim) {
                if line.starts_with('[') {
                    section = line.to_string();
                } else if section == "[build]" && line.starts_with("target") {
                    pins.push(format!("{config}: [build] {line}"));
                }
            }
        }
    }
    let manifest = fs::read_to_string(root.join("Cargo.toml")).expect("Cargo.toml");
    if manifest.contains("forced-target") {
        pins.push("Cargo.toml: forced-target".into());
    }
    assert!(pins.is_empty(), "architecture pins:\n{}", pins.join("\n"));
}

/// The documented build route exists and names no architecture: the script
/// asks rustc for the host triple, and everything that uses the binary
/// (Dockerfile, tests/it/docker.rs, bench/) goes through its output path.
#[test]
fn the_static_build_picks_the_host_triple() {
    let root = repo();
    let script = fs::read_to_string(root.join("scripts/static-build.sh")).expect("script");
    assert!(
        script.contains("rustc -vV"),
        "the host triple comes from rustc"
    );
    assert!(script.contains("static/skewguard"));
    for user in [
        "Dockerfile",
        "bench/run.sh",
        "bench/soak.sh",
        "README.md",
        ".ci/run",
    ] {
        let text = fs::read_to_string(root.join(user)).expect(user);
        assert!(
            text.contains("static-build.sh") || text.contains("target/static/skewguard"),
            "{user} uses the documented build"
        );
    }
    let docker = fs::read_to_string(root.join("tests/it/docker.rs")).expect("tests/it/docker.rs");
    assert!(docker.contains("\"static\"") && docker.contains("local-image.sh"));
    for license in ["LICENSE-MIT", "LICENSE-APACHE"] {
        let text = fs::read_to_string(root.join(license)).unwrap_or_default();
        assert!(text.len() > 500, "{license} is present");
    }
}
