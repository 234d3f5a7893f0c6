//! The systemd units shipped in `contrib/systemd/` pass `systemd-analyze
//! verify` (from Debian's `systemd` package), with the built binary in place
//! of `/usr/local/bin/skewguard`, without a single warning; and docs/hosts.md
//! shows the example unit as it is shipped.

use crate::support;

use std::fs;
use std::process::Command;
use std::time::Duration;

use support::{run_command, TempDir};

const INSTALLED: &str = "/usr/local/bin/skewguard";

#[test]
fn the_shipped_units_pass_systemd_analyze_verify() {
    if !support::prerequisite("systemd-analyze", "install systemd") {
        return;
    }
    let dir = TempDir::new("units");
    let units = support::repo().join("contrib/systemd");
    let mut names = Vec::new();
    for entry in fs::read_dir(&units).expect("contrib/systemd") {
        let path = entry.expect("entry").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.ends_with(".service") || name.ends_with(".timer")) {
            continue;
        }
        let text = fs::read_to_string(&path).expect("a unit");
        assert!(
            text.contains(INSTALLED) || name.ends_with(".timer"),
            "{name} runs {INSTALLED}"
        );
        let text = text.replace(INSTALLED, env!("CARGO_BIN_EXE_skewguard"));
        fs::write(dir.path().join(&name), text).expect("write the unit");
        names.push(name);
    }
    names.sort();
    assert!(names.len() >= 4, "{names:?}");
    let mut cmd = Command::new("systemd-analyze");
    cmd.current_dir(dir.path())
        .args(["verify", "--man=no"])
        .args(names.iter().map(|n| format!("./{n}")));
    let out = run_command(cmd, "systemd-analyze verify", Duration::from_secs(60));
    out.assert_exit(0);
    assert!(
        out.stderr.trim().is_empty() && out.stdout.trim().is_empty(),
        "systemd-analyze verify has something to say about {names:?}\n{out}"
    );
}

#[test]
fn the_hosts_page_shows_the_example_unit_as_shipped() {
    let repo = support::repo();
    let page = fs::read_to_string(repo.join("docs/hosts.md")).expect("docs/hosts.md");
    let unit = fs::read_to_string(repo.join("contrib/systemd/example-app.service"))
        .expect("example-app.service");
    // The unit without its leading comment and Documentation= line.
    for line in unit
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("Documentation="))
        .filter(|l| !l.is_empty())
    {
        assert!(page.contains(line), "docs/hosts.md lacks {line:?}");
    }
    for link in ["README.md", "docs/README.md"] {
        let text = fs::read_to_string(repo.join(link)).expect(link);
        assert!(text.contains("hosts.md"), "{link} links docs/hosts.md");
    }
}
