//! Where the clock this process reads is kept, as far as the facts tell: one
//! row of [`PLATFORMS`] per platform, in the order they are tried. Pure: the
//! facts are read by `crate::platform` and given here as values.

use serde::{Deserialize, Serialize};

/// Docker's marker in every container it starts.
pub const DOCKERENV_PATH: &str = "/.dockerenv";
/// podman's marker in every container it starts.
pub const CONTAINERENV_PATH: &str = "/run/.containerenv";

/// What was read about the place this process runs, before any interpretation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlatformFacts {
    /// `/proc/sys/kernel/osrelease`.
    pub kernel_release: Option<String>,
    /// `/sys/class/dmi/id/sys_vendor`.
    pub sys_vendor: Option<String>,
    /// `/sys/class/dmi/id/product_name`.
    pub product_name: Option<String>,
    /// `/sys/class/dmi/id/bios_vendor`.
    pub bios_vendor: Option<String>,
    /// `/proc/sys/kernel/hostname`.
    pub hostname: Option<String>,
    /// `/.dockerenv` exists.
    pub dockerenv: bool,
    /// `/run/.containerenv` exists.
    pub containerenv: bool,
    /// `KUBERNETES_SERVICE_HOST` is set.
    pub kubernetes: bool,
    /// `ECS_CONTAINER_METADATA_URI_V4`.
    pub ecs_metadata_uri: Option<String>,
    /// `AWS_EXECUTION_ENV` (`AWS_ECS_FARGATE` on Fargate).
    pub aws_execution_env: Option<String>,
    /// The variable that fakes this process's clock, as `NAME=value`
    /// (`FAKETIME`, or an `LD_PRELOAD` naming libfaketime).
    pub faketime: Option<String>,
}

/// Which variable fakes the clock, if one does: libfaketime reads `FAKETIME`
/// once it is preloaded, and a preload of it alone fakes from its config files.
pub fn faked_clock(faketime: Option<String>, ld_preload: Option<String>) -> Option<String> {
    if let Some(v) = faketime {
        return Some(format!("FAKETIME={v}"));
    }
    ld_preload
        .filter(|p| p.to_ascii_lowercase().contains("libfaketime"))
        .map(|p| format!("LD_PRELOAD={p}"))
}

/// The fix for an EC2 clock, shared by EC2, ECS on EC2 and EKS.
macro_rules! aws_time_sync {
    () => {
        "point chrony at the Amazon Time Sync Service (`server 169.254.169.123 prefer iburst` in /etc/chrony.conf, then `chronyc makestep`); if it is configured but silent, `ethtool -S eth0 | grep linklocal_allowance_exceeded` counts link-local packets the ENA limit dropped"
    };
}

/// One platform: how it is told, named, and how its clock is set right.
pub struct PlatformSpec {
    /// Stable code, as in JSON and the metric label.
    pub code: &'static str,
    /// The name a person knows it by.
    pub name: &'static str,
    /// A VM on a laptop or desktop that stops while its host sleeps and keeps
    /// the time it stopped at: it sees no suspend of its own (CLOCK_BOOTTIME does
    /// not run ahead inside), so only the platform tells.
    pub pauses_with_its_host: bool,
    /// How to set the clock right: on the host or VM that owns the clock, since
    /// a container cannot set it (time namespaces do not cover CLOCK_REALTIME).
    /// Commands the platform does not document are kept to ones that only
    /// restart or step a clock. Written for a container; an aside `(not in
    /// the container)` is dropped where there is none (see [`Platform::fix_for`]).
    pub fix: &'static str,
    /// Whether the facts name this platform (rows are tried in order).
    applies: fn(&Markers) -> bool,
}

/// The facts as the classification reads them.
struct Markers<'a> {
    facts: &'a PlatformFacts,
    /// The kernel release, lowercase.
    kernel: String,
}

impl Markers<'_> {
    fn has(field: &Option<String>, needle: &str) -> bool {
        field
            .as_deref()
            .is_some_and(|v| v.to_ascii_lowercase().contains(needle))
    }
    fn vendor(&self, needle: &str) -> bool {
        Self::has(&self.facts.sys_vendor, needle)
    }
    fn product(&self, needle: &str) -> bool {
        Self::has(&self.facts.product_name, needle)
    }
    fn dmi(&self, needle: &str) -> bool {
        self.vendor(needle) || self.product(needle) || Self::has(&self.facts.bios_vendor, needle)
    }
}

/// Every platform, in the order the facts are tried. The order matters: a
/// kernel stamped by a desktop VM beats DMI (Docker Desktop's VM has QEMU-like
/// DMI), Fargate has no DMI at all, ECS on EC2 is more exact than the EC2 DMI
/// underneath it, and the last row takes whatever is left.
pub const PLATFORMS: &[PlatformSpec] = &[
    PlatformSpec {
        code: "ecs-fargate",
        name: "Amazon ECS on Fargate",
        pauses_with_its_host: false,
        fix: "the task cannot set Fargate's clock, which AWS keeps: stop the task so that a new one starts on another host, and tell AWS Support if the task metadata's ClockDrift says NOT_SYNCHRONIZED",
        applies: |m| m.facts.aws_execution_env.as_deref() == Some("AWS_ECS_FARGATE"),
    },
    PlatformSpec {
        code: "docker-desktop",
        name: "Docker Desktop",
        pauses_with_its_host: true,
        fix: "restart Docker Desktop, or resync its VM from the hardware clock: `docker run --rm --privileged alpine hwclock -s` (on the Mac or Windows host)",
        applies: |m| m.kernel.ends_with("-linuxkit"),
    },
    PlatformSpec {
        code: "docker-desktop-wsl2",
        name: "Docker Desktop on WSL2",
        pauses_with_its_host: true,
        fix: "on the Windows host run `wsl --shutdown` and start Docker Desktop again; `wsl --update` brings WSL's fixes for the clock after sleep",
        applies: |m| m.kernel.contains("-microsoft-standard-wsl2") && m.facts.dockerenv,
    },
    PlatformSpec {
        code: "wsl2",
        name: "WSL2",
        pauses_with_its_host: true,
        fix: "on the Windows host run `wsl --shutdown` and open the distribution again; `wsl --update` brings WSL's fixes for the clock after sleep",
        applies: |m| m.kernel.contains("-microsoft-standard-wsl2"),
    },
    PlatformSpec {
        code: "orbstack",
        name: "OrbStack",
        pauses_with_its_host: true,
        fix: "restart OrbStack on the Mac, so its VM takes the Mac's time again",
        applies: |m| m.kernel.contains("-orbstack"),
    },
    PlatformSpec {
        code: "podman-machine",
        name: "podman machine",
        pauses_with_its_host: true,
        fix: "from the host: `podman machine ssh sudo chronyc makestep` (steps the machine's clock if chrony runs in it), or `podman machine stop` and `podman machine start`",
        applies: |m| m.product("apple virtualization") && m.facts.containerenv,
    },
    PlatformSpec {
        code: "apple-vz",
        name: "a Linux VM on Apple's Virtualization framework (colima, lima or podman machine)",
        pauses_with_its_host: true,
        fix: "restart the VM or step its clock from the Mac: colima: `colima ssh -- sudo hwclock -s`, or `colima restart`; lima: `limactl stop NAME` and `limactl start NAME`; podman machine: `podman machine ssh sudo chronyc makestep`, or `podman machine stop` and `podman machine start`",
        applies: |m| m.product("apple virtualization"),
    },
    PlatformSpec {
        code: "minikube",
        name: "minikube",
        pauses_with_its_host: true,
        fix: "from the host: `minikube ssh -- docker run -i --rm --privileged --pid=host debian nsenter -t 1 -m -u -n -i hwclock -s`, or `minikube stop` and `minikube start`",
        applies: |m| m.facts.hostname.as_deref().is_some_and(is_minikube_node),
    },
    PlatformSpec {
        code: "ecs",
        name: "Amazon ECS on an EC2 container instance",
        pauses_with_its_host: false,
        fix: concat!("on the container instance (not in the task): ", aws_time_sync!()),
        applies: |m| m.facts.ecs_metadata_uri.is_some(),
    },
    PlatformSpec {
        code: "eks",
        name: "Kubernetes on an Amazon EC2 node (EKS)",
        pauses_with_its_host: false,
        fix: concat!("on the node (not in the pod): ", aws_time_sync!()),
        applies: |m| m.dmi("amazon") && m.facts.kubernetes,
    },
    PlatformSpec {
        code: "ec2",
        name: "Amazon EC2",
        pauses_with_its_host: false,
        fix: concat!("on the instance: ", aws_time_sync!()),
        applies: |m| m.dmi("amazon"),
    },
    PlatformSpec {
        code: "gke",
        name: "Kubernetes on a Google Compute Engine node (GKE)",
        pauses_with_its_host: false,
        fix: "on the node (not in the pod): check that chrony syncs from the metadata server (`server metadata.google.internal iburst`; `chronyc sources`), or replace the node (`kubectl drain NODE`, then delete its VM so the node pool recreates it)",
        applies: |m| m.dmi("google") && m.facts.kubernetes,
    },
    PlatformSpec {
        code: "gce",
        name: "Google Compute Engine",
        pauses_with_its_host: false,
        fix: "on the VM: check that chrony syncs from the metadata server (`server metadata.google.internal iburst`; `chronyc sources`)",
        applies: |m| m.dmi("google"),
    },
    PlatformSpec {
        code: "aks",
        name: "Kubernetes on an Azure VM (AKS)",
        pauses_with_its_host: false,
        fix: "on the node (not in the pod): let chrony follow the Hyper-V host clock (`refclock PHC /dev/ptp_hyperv poll 3 dpoll -2 offset 0` in /etc/chrony.conf; `chronyc sources`)",
        applies: |m| m.vendor("microsoft corporation") && m.facts.kubernetes,
    },
    PlatformSpec {
        code: "azure",
        name: "a Microsoft Azure (or Hyper-V) VM",
        pauses_with_its_host: false,
        fix: "on the VM: let chrony follow the Hyper-V host clock (`refclock PHC /dev/ptp_hyperv poll 3 dpoll -2 offset 0` in /etc/chrony.conf; `chronyc sources`)",
        applies: |m| m.vendor("microsoft corporation"),
    },
    PlatformSpec {
        code: "qemu",
        name: "a QEMU/KVM VM",
        pauses_with_its_host: false,
        fix: "in the VM (not in the container): step the clock from the VM's hardware clock (`hwclock -s`) and run chrony or systemd-timesyncd there",
        applies: |m| m.dmi("qemu") || m.product("standard pc ("),
    },
    PlatformSpec {
        code: "linux",
        name: "Linux with no VM or cloud marker",
        pauses_with_its_host: false,
        fix: "on the host (not in the container): run chrony or systemd-timesyncd (`timedatectl set-ntp true`); `chronyc makestep` steps a large offset at once",
        applies: |_| true,
    },
];

/// A platform: a row of [`PLATFORMS`].
#[derive(Clone, Copy)]
pub struct Platform(&'static PlatformSpec);

impl PartialEq for Platform {
    fn eq(&self, other: &Platform) -> bool {
        self.0.code == other.0.code
    }
}

impl Eq for Platform {}

impl std::fmt::Debug for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.code)
    }
}

impl Default for Platform {
    fn default() -> Self {
        Platform::LINUX
    }
}

impl Platform {
    /// Linux with no VM or cloud marker: the last row, what is left.
    pub const LINUX: Platform = Platform(&PLATFORMS[PLATFORMS.len() - 1]);

    /// Every platform, in classification order.
    pub fn all() -> impl Iterator<Item = Platform> {
        PLATFORMS.iter().map(Platform)
    }

    /// The platform a [`code`](Platform::code) names.
    pub fn from_code(code: &str) -> Option<Platform> {
        Platform::all().find(|p| p.code() == code)
    }

    /// Classifies the facts: the first row that applies.
    pub fn classify(f: &PlatformFacts) -> Platform {
        let m = Markers {
            facts: f,
            kernel: f
                .kernel_release
                .as_deref()
                .unwrap_or("")
                .to_ascii_lowercase(),
        };
        Platform::all()
            .find(|p| (p.0.applies)(&m))
            .unwrap_or(Platform::LINUX)
    }

    /// Stable code, as in JSON and the metric label.
    pub fn code(self) -> &'static str {
        self.0.code
    }

    /// The name a person knows it by.
    pub fn name(self) -> &'static str {
        self.0.name
    }

    /// See [`PlatformSpec::pauses_with_its_host`].
    pub fn pauses_with_its_host(self) -> bool {
        self.0.pauses_with_its_host
    }

    /// See [`PlatformSpec::fix`].
    pub fn fix(self) -> &'static str {
        self.0.fix
    }

    /// The fix as said to a process in a container (`contained`) or on the
    /// host or VM itself, where "(not in the container)" would be untrue.
    pub fn fix_for(self, contained: bool) -> String {
        if contained {
            self.0.fix.to_string()
        } else {
            self.0.fix.replace(" (not in the container)", "")
        }
    }
}

/// Whether a host name is one minikube gives its nodes.
fn is_minikube_node(hostname: &str) -> bool {
    hostname == "minikube"
        || hostname
            .strip_prefix("minikube-m")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

impl PlatformFacts {
    /// Whether a container marker is present: Docker's or podman's file, a
    /// Kubernetes pod's or an ECS task's variables. Without one, skewguard runs
    /// on the host (or VM) that owns the clock, and is told so.
    pub fn in_container(&self) -> bool {
        self.dockerenv
            || self.containerenv
            || self.kubernetes
            || self.ecs_metadata_uri.is_some()
            || self.aws_execution_env.is_some()
    }

    /// What was seen, for people: `kernel 6.10.14-linuxkit`, `/.dockerenv`, ….
    pub fn evidence(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(k) = &self.kernel_release {
            out.push(format!("kernel {k}"));
        }
        let dmi: Vec<&str> = [&self.sys_vendor, &self.product_name, &self.bios_vendor]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        if !dmi.is_empty() {
            out.push(format!("DMI {}", dmi.join(" / ")));
        }
        if self.hostname.as_deref().is_some_and(is_minikube_node) {
            out.push(format!(
                "host name {}",
                self.hostname.as_deref().unwrap_or("")
            ));
        }
        for (seen, what) in [
            (self.dockerenv, DOCKERENV_PATH),
            (self.containerenv, CONTAINERENV_PATH),
            (self.kubernetes, "KUBERNETES_SERVICE_HOST"),
            (
                self.ecs_metadata_uri.is_some(),
                "ECS_CONTAINER_METADATA_URI_V4",
            ),
        ] {
            if seen {
                out.push(what.to_string());
            }
        }
        if let Some(env) = &self.aws_execution_env {
            out.push(format!("AWS_EXECUTION_ENV={env}"));
        }
        out
    }
}

/// AWS's own word on the host clock: ECS task metadata's `ClockDrift` or the
/// ClockBound daemon's shared memory. Evidence for the report and the hint,
/// never a vote on the offset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AwsClock {
    /// `ecs-task-metadata` or `clockbound`.
    pub source: String,
    /// The status as AWS spells it (`SYNCHRONIZED`, `NOT_SYNCHRONIZED`; `Synchronized`, `FreeRunning`, …).
    pub status: Option<String>,
    /// Whether that status says the host clock is synchronised.
    pub synchronised: Option<bool>,
    /// AWS's bound on the host clock's error, seconds.
    pub error_bound_seconds: Option<f64>,
    /// When the bound was computed, as AWS gives it.
    pub as_of: Option<String>,
    /// Why there is no reading (unreachable, malformed, stale).
    pub error: Option<String>,
}

impl AwsClock {
    /// Evidence from `source` that could not be read, and why.
    pub fn unreadable(source: &str, error: String) -> AwsClock {
        AwsClock {
            source: source.into(),
            status: None,
            synchronised: None,
            error_bound_seconds: None,
            as_of: None,
            error: Some(error),
        }
    }

    /// One line for people: `ECS task metadata: NOT_SYNCHRONIZED (error bound 0.4ms, as of …)`.
    pub fn describe(&self) -> String {
        let what = match self.source.as_str() {
            "ecs-task-metadata" => "ECS task metadata ClockDrift",
            "clockbound" => "ClockBound",
            other => other,
        };
        if let Some(e) = &self.error {
            return format!("{what}: unreadable ({e})");
        }
        let mut details = Vec::new();
        if let Some(b) = self.error_bound_seconds {
            details.push(format!(
                "error bound {}",
                crate::core::duration::human_duration(b)
            ));
        }
        if let Some(t) = &self.as_of {
            details.push(format!("as of {t}"));
        }
        let status = self.status.as_deref().unwrap_or("no status");
        if details.is_empty() {
            format!("{what}: {status}")
        } else {
            format!("{what}: {status} ({})", details.join(", "))
        }
    }
}

/// Everything known about the platform at one measurement.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observation {
    /// The facts read.
    pub facts: PlatformFacts,
    /// AWS's word on the host clock, where available.
    pub aws: Vec<AwsClock>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The platform of a code.
    fn p(code: &str) -> Platform {
        Platform::from_code(code).unwrap()
    }

    fn facts(kernel: &str, vendor: &str, product: &str) -> PlatformFacts {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
        PlatformFacts {
            kernel_release: some(kernel),
            sys_vendor: some(vendor),
            product_name: some(product),
            ..PlatformFacts::default()
        }
    }

    #[test]
    fn platforms_are_classified_from_their_markers() {
        let k8s = |f: PlatformFacts| PlatformFacts {
            kubernetes: true,
            ..f
        };
        let docker = |f: PlatformFacts| PlatformFacts {
            dockerenv: true,
            ..f
        };
        let cases: Vec<(PlatformFacts, Platform)> = vec![
            (facts("6.10.14-linuxkit", "", ""), p("docker-desktop")),
            (
                docker(facts("5.15.153.1-microsoft-standard-WSL2", "", "")),
                p("docker-desktop-wsl2"),
            ),
            (
                facts("5.15.153.1-microsoft-standard-WSL2", "", ""),
                p("wsl2"),
            ),
            (
                facts("6.9.8-orbstack-00170-g7b4100b7ced4", "", ""),
                p("orbstack"),
            ),
            (
                facts(
                    "6.8.0-45-generic",
                    "Apple Inc.",
                    "Apple Virtualization Generic Platform",
                ),
                p("apple-vz"),
            ),
            (
                PlatformFacts {
                    containerenv: true,
                    ..facts(
                        "6.8.0",
                        "Apple Inc.",
                        "Apple Virtualization Generic Platform",
                    )
                },
                p("podman-machine"),
            ),
            (
                PlatformFacts {
                    hostname: Some("minikube-m02".into()),
                    ..facts("5.10.207", "QEMU", "Standard PC (i440FX + PIIX, 1996)")
                },
                p("minikube"),
            ),
            (facts("6.1.0", "Amazon EC2", "m5.large"), p("ec2")),
            (k8s(facts("6.1.0", "Amazon EC2", "m5.large")), p("eks")),
            (
                PlatformFacts {
                    ecs_metadata_uri: Some("http://169.254.170.2/v4/x".into()),
                    ..facts("6.1.0", "Amazon EC2", "m5.large")
                },
                p("ecs"),
            ),
            (
                PlatformFacts {
                    aws_execution_env: Some("AWS_ECS_FARGATE".into()),
                    ..facts("5.10.0", "", "")
                },
                p("ecs-fargate"),
            ),
            (facts("6.1.0", "Google", "Google Compute Engine"), p("gce")),
            (
                k8s(facts("6.1.0", "Google", "Google Compute Engine")),
                p("gke"),
            ),
            (
                facts("6.5.0-azure", "Microsoft Corporation", "Virtual Machine"),
                p("azure"),
            ),
            (
                k8s(facts(
                    "6.5.0-azure",
                    "Microsoft Corporation",
                    "Virtual Machine",
                )),
                p("aks"),
            ),
            (
                facts("6.1.0", "QEMU", "Standard PC (Q35 + ICH9, 2009)"),
                p("qemu"),
            ),
            (docker(facts("6.1.0-18-amd64", "", "")), Platform::LINUX),
            (PlatformFacts::default(), Platform::LINUX),
        ];
        for (f, want) in cases {
            assert_eq!(Platform::classify(&f), want, "{f:?}");
        }
    }

    #[test]
    fn libfaketime_is_named_by_either_variable() {
        assert_eq!(
            faked_clock(Some("+1d".into()), None).as_deref(),
            Some("FAKETIME=+1d")
        );
        assert_eq!(
            faked_clock(
                None,
                Some("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1".into())
            )
            .as_deref(),
            Some("LD_PRELOAD=/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
        );
        assert_eq!(
            faked_clock(None, Some("/usr/lib/libjemalloc.so".into())),
            None
        );
    }

    #[test]
    fn every_platform_fix_names_where_to_act() {
        for one in Platform::all() {
            assert!(!one.fix().is_empty() && !one.name().is_empty(), "{one:?}");
            assert_eq!(Platform::from_code(one.code()), Some(one));
        }
        assert!(p("ec2").fix().contains("169.254.169.123"));
        assert!(p("eks").fix().contains("linklocal_allowance_exceeded"));
        assert!(p("wsl2").fix().contains("wsl --shutdown"));
    }
}
