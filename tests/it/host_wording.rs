//! Off a container the hint and fix speak of the host, never of a container;
//! with a container marker they say "container" as before. skewguard runs in
//! a private mount namespace, chrooted into a root of its own where the only
//! marker is the one a case places (`/run/.containerenv`), against a real
//! chrony whose clock libfaketime puts 20 minutes ahead.

use crate::support;
use crate::support::namespace;

use std::fs;

use support::{run_command, Chrony, Output, TempDir, RUN_BOUND};

/// `skewguard check --output FORMAT` at bare Linux against `chrony`, with
/// podman's container marker or none.
fn check(chrony: &Chrony, marker: bool, output: &str) -> Output {
    let dir = TempDir::new("host");
    let d = dir.path();
    fs::write(d.join("osrelease"), "6.1.0-28-amd64\n").unwrap();
    fs::create_dir(d.join("run")).unwrap();
    if marker {
        fs::write(d.join("run/.containerenv"), "").unwrap();
    }
    let mut cmd = namespace::skewguard_off_container(d, &["check"]);
    cmd.env("SKEWGUARD_SOURCES", chrony.uri())
        .env("SKEWGUARD_OUTPUT", output);
    let out = run_command(cmd, "unshare … chroot … skewguard check", RUN_BOUND);
    assert!(
        !out.stderr.contains("mount:")
            && !out.stderr.contains("unshare:")
            && !out.stderr.contains("chroot:"),
        "the namespace was not set up\n{out}"
    );
    out.assert_exit(1);
    out
}

#[test]
fn the_hint_speaks_of_the_host_off_a_container() {
    let _room = support::Room::Timing.enter();
    if !namespace::namespaces_work(&[("chroot", "install coreutils")]) {
        return;
    }
    let Some(chrony) = Chrony::start(Some("+1200")) else {
        return;
    };
    let host = check(&chrony, false, "json");
    let v = host.report();
    assert_eq!(v["platform"], "linux", "{host}");
    let evidence = v["platform_evidence"].to_string();
    assert!(!evidence.contains("dockerenv"), "{host}");
    let fix = v["fix"].as_str().expect("a fix");
    let hint = v["hint"].as_str().expect("a hint");
    assert!(fix.contains("on the host"), "{host}");
    for said in [fix, hint] {
        assert!(!said.to_lowercase().contains("container"), "{said}\n{host}");
    }
    let text = check(&chrony, false, "text");
    eprintln!(
        "--- bare Linux host, 20 minutes behind ---\n{}",
        text.stdout
    );
    assert!(!text.stdout.to_lowercase().contains("container"), "{text}");

    let contained = check(&chrony, true, "json");
    let v = contained.report();
    let evidence = v["platform_evidence"].to_string();
    assert!(evidence.contains("/run/.containerenv"), "{contained}");
    let fix = v["fix"].as_str().expect("a fix");
    assert!(
        fix.contains("on the host (not in the container)"),
        "{contained}"
    );
}
