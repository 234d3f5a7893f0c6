//! Where the container runs, read from the files and variables that tell:
//! the kernel release, the DMI strings of the (virtual) machine, the markers
//! container runtimes leave, the orchestrators' variables, and AWS's own word
//! on the host clock where it is there ([`ecs`] task metadata, [`clockbound`]).
//!
//! [`read`] is the only part that touches the system; [`Platform::classify`]
//! and everything else take a [`PlatformFacts`] value, so the classification is
//! unit-tested with plain values and whole-program tests substitute the files
//! with bind mounts in a private mount namespace.

pub mod clockbound;
pub mod ecs;

use std::io::Read as _;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The kernel release, which Docker Desktop, WSL2 and OrbStack stamp.
pub const OSRELEASE_PATH: &str = "/proc/sys/kernel/osrelease";
/// The directory of the machine's DMI strings (absent in many VMs and on Fargate).
pub const DMI_DIR: &str = "/sys/class/dmi/id";
/// Docker's marker in every container it starts.
pub const DOCKERENV_PATH: &str = "/.dockerenv";
/// podman's marker in every container it starts.
pub const CONTAINERENV_PATH: &str = "/run/.containerenv";
/// The node's host name, which minikube names `minikube` (`minikube-m02`, … for
/// more nodes); a pod sees it only with `hostNetwork: true` (own UTS namespace otherwise).
pub const HOSTNAME_PATH: &str = "/proc/sys/kernel/hostname";

/// Most bytes read of one marker file: they hold one short line.
const MAX_FACT_BYTES: u64 = 256;

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

/// Reads the facts from their real files and this process's environment.
pub fn read() -> PlatformFacts {
    let dmi = |name: &str| read_fact(&Path::new(DMI_DIR).join(name));
    let var = |name: &str| {
        std::env::var_os(name)
            .map(|v| v.to_string_lossy().into_owned())
            .filter(|v| !v.is_empty())
    };
    PlatformFacts {
        kernel_release: read_fact(Path::new(OSRELEASE_PATH)),
        sys_vendor: dmi("sys_vendor"),
        product_name: dmi("product_name"),
        bios_vendor: dmi("bios_vendor"),
        hostname: read_fact(Path::new(HOSTNAME_PATH)),
        dockerenv: Path::new(DOCKERENV_PATH).exists(),
        containerenv: Path::new(CONTAINERENV_PATH).exists(),
        kubernetes: var("KUBERNETES_SERVICE_HOST").is_some(),
        ecs_metadata_uri: var("ECS_CONTAINER_METADATA_URI_V4"),
        aws_execution_env: var("AWS_EXECUTION_ENV"),
        faketime: faked_clock(var("FAKETIME"), var("LD_PRELOAD")),
    }
}

/// The first line of a small file, trimmed; `None` if unreadable or empty.
fn read_fact(path: &Path) -> Option<String> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(MAX_FACT_BYTES)
        .read_to_end(&mut bytes)
        .ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let line = text.lines().next()?.trim();
    (!line.is_empty()).then(|| line.to_string())
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

/// Where the clock this process reads is kept, as far as the facts tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// Docker Desktop's linuxkit VM (macOS, or Windows with Hyper-V).
    DockerDesktop,
    /// Docker Desktop on Windows, in its WSL2 VM.
    DockerDesktopWsl2,
    /// A WSL2 distribution on Windows.
    Wsl2,
    /// OrbStack's VM on macOS.
    OrbStack,
    /// A Linux VM on Apple's Virtualization framework: colima, lima or podman machine.
    AppleVz,
    /// podman machine on Apple's Virtualization framework.
    PodmanMachine,
    /// A minikube node.
    Minikube,
    /// Amazon ECS on Fargate.
    EcsFargate,
    /// Amazon ECS on an EC2 container instance.
    Ecs,
    /// Kubernetes on an Amazon EC2 node (EKS).
    Eks,
    /// An Amazon EC2 instance.
    Ec2,
    /// Kubernetes on a Google Compute Engine node (GKE).
    Gke,
    /// A Google Compute Engine VM.
    Gce,
    /// Kubernetes on an Azure VM (AKS).
    Aks,
    /// A Microsoft Azure (or Hyper-V) VM.
    Azure,
    /// A QEMU/KVM VM.
    Qemu,
    /// Linux with none of the markers above: bare metal or an unnamed VM.
    Linux,
}

impl Platform {
    /// Every platform.
    pub const ALL: [Platform; 17] = [
        Platform::DockerDesktop,
        Platform::DockerDesktopWsl2,
        Platform::Wsl2,
        Platform::OrbStack,
        Platform::AppleVz,
        Platform::PodmanMachine,
        Platform::Minikube,
        Platform::EcsFargate,
        Platform::Ecs,
        Platform::Eks,
        Platform::Ec2,
        Platform::Gke,
        Platform::Gce,
        Platform::Aks,
        Platform::Azure,
        Platform::Qemu,
        Platform::Linux,
    ];

    /// The platform a [`code`](Platform::code) names.
    pub fn from_code(code: &str) -> Option<Platform> {
        Platform::ALL.into_iter().find(|p| p.code() == code)
    }

    /// Classifies the facts. The order matters: a kernel stamped by a desktop VM
    /// beats DMI (Docker Desktop's VM has QEMU-like DMI), Fargate has no DMI at
    /// all, and ECS on EC2 is more exact than the EC2 DMI underneath it.
    pub fn classify(f: &PlatformFacts) -> Platform {
        let kernel = f
            .kernel_release
            .as_deref()
            .unwrap_or("")
            .to_ascii_lowercase();
        let has = |field: &Option<String>, needle: &str| {
            field
                .as_deref()
                .is_some_and(|v| v.to_ascii_lowercase().contains(needle))
        };
        let dmi = |needle: &str| {
            has(&f.sys_vendor, needle)
                || has(&f.product_name, needle)
                || has(&f.bios_vendor, needle)
        };
        if f.aws_execution_env.as_deref() == Some("AWS_ECS_FARGATE") {
            Platform::EcsFargate
        } else if kernel.ends_with("-linuxkit") {
            Platform::DockerDesktop
        } else if kernel.contains("-microsoft-standard-wsl2") {
            if f.dockerenv {
                Platform::DockerDesktopWsl2
            } else {
                Platform::Wsl2
            }
        } else if kernel.contains("-orbstack") {
            Platform::OrbStack
        } else if has(&f.product_name, "apple virtualization") {
            if f.containerenv {
                Platform::PodmanMachine
            } else {
                Platform::AppleVz
            }
        } else if f.hostname.as_deref().is_some_and(is_minikube_node) {
            Platform::Minikube
        } else if f.ecs_metadata_uri.is_some() {
            Platform::Ecs
        } else if dmi("amazon") {
            if f.kubernetes {
                Platform::Eks
            } else {
                Platform::Ec2
            }
        } else if dmi("google") {
            if f.kubernetes {
                Platform::Gke
            } else {
                Platform::Gce
            }
        } else if has(&f.sys_vendor, "microsoft corporation") {
            if f.kubernetes {
                Platform::Aks
            } else {
                Platform::Azure
            }
        } else if dmi("qemu") || has(&f.product_name, "standard pc (") {
            Platform::Qemu
        } else {
            Platform::Linux
        }
    }

    /// Stable code, as in JSON and the metric label.
    pub fn code(self) -> &'static str {
        match self {
            Platform::DockerDesktop => "docker-desktop",
            Platform::DockerDesktopWsl2 => "docker-desktop-wsl2",
            Platform::Wsl2 => "wsl2",
            Platform::OrbStack => "orbstack",
            Platform::AppleVz => "apple-vz",
            Platform::PodmanMachine => "podman-machine",
            Platform::Minikube => "minikube",
            Platform::EcsFargate => "ecs-fargate",
            Platform::Ecs => "ecs",
            Platform::Eks => "eks",
            Platform::Ec2 => "ec2",
            Platform::Gke => "gke",
            Platform::Gce => "gce",
            Platform::Aks => "aks",
            Platform::Azure => "azure",
            Platform::Qemu => "qemu",
            Platform::Linux => "linux",
        }
    }

    /// The name a person knows it by.
    pub fn name(self) -> &'static str {
        match self {
            Platform::DockerDesktop => "Docker Desktop",
            Platform::DockerDesktopWsl2 => "Docker Desktop on WSL2",
            Platform::Wsl2 => "WSL2",
            Platform::OrbStack => "OrbStack",
            Platform::AppleVz => {
                "a Linux VM on Apple's Virtualization framework (colima, lima or podman machine)"
            }
            Platform::PodmanMachine => "podman machine",
            Platform::Minikube => "minikube",
            Platform::EcsFargate => "Amazon ECS on Fargate",
            Platform::Ecs => "Amazon ECS on an EC2 container instance",
            Platform::Eks => "Kubernetes on an Amazon EC2 node (EKS)",
            Platform::Ec2 => "Amazon EC2",
            Platform::Gke => "Kubernetes on a Google Compute Engine node (GKE)",
            Platform::Gce => "Google Compute Engine",
            Platform::Aks => "Kubernetes on an Azure VM (AKS)",
            Platform::Azure => "a Microsoft Azure (or Hyper-V) VM",
            Platform::Qemu => "a QEMU/KVM VM",
            Platform::Linux => "Linux with no VM or cloud marker",
        }
    }

    /// A VM on a laptop or desktop that stops while its host sleeps and keeps
    /// the time it stopped at: it sees no suspend of its own (CLOCK_BOOTTIME does
    /// not run ahead inside), so only the platform tells.
    pub fn pauses_with_its_host(self) -> bool {
        matches!(
            self,
            Platform::DockerDesktop
                | Platform::DockerDesktopWsl2
                | Platform::Wsl2
                | Platform::OrbStack
                | Platform::AppleVz
                | Platform::PodmanMachine
                | Platform::Minikube
        )
    }

    /// How to set the clock right on this platform: on the host or VM that owns
    /// the clock, since a container cannot set it (time namespaces do not cover
    /// CLOCK_REALTIME). Commands the platform does not document are kept to ones
    /// that only restart or step a clock.
    pub fn fix(self) -> &'static str {
        match self {
            Platform::DockerDesktop => "restart Docker Desktop, or resync its VM from the hardware clock: `docker run --rm --privileged alpine hwclock -s` (on the Mac or Windows host)",
            Platform::DockerDesktopWsl2 => "on the Windows host run `wsl --shutdown` and start Docker Desktop again; `wsl --update` brings WSL's fixes for the clock after sleep",
            Platform::Wsl2 => "on the Windows host run `wsl --shutdown` and open the distribution again; `wsl --update` brings WSL's fixes for the clock after sleep",
            Platform::OrbStack => "restart OrbStack on the Mac, so its VM takes the Mac's time again",
            Platform::AppleVz => "restart the VM or step its clock from the Mac: colima: `colima ssh -- sudo hwclock -s`, or `colima restart`; lima: `limactl stop NAME` and `limactl start NAME`; podman machine: `podman machine ssh sudo chronyc makestep`, or `podman machine stop` and `podman machine start`",
            Platform::PodmanMachine => "from the host: `podman machine ssh sudo chronyc makestep` (steps the machine's clock if chrony runs in it), or `podman machine stop` and `podman machine start`",
            Platform::Minikube => "from the host: `minikube ssh -- docker run -i --rm --privileged --pid=host debian nsenter -t 1 -m -u -n -i hwclock -s`, or `minikube stop` and `minikube start`",
            Platform::EcsFargate => "the task cannot set Fargate's clock, which AWS keeps: stop the task so that a new one starts on another host, and tell AWS Support if the task metadata's ClockDrift says NOT_SYNCHRONIZED",
            Platform::Ecs => concat!("on the container instance (not in the task): ", aws_time_sync!()),
            Platform::Eks => concat!("on the node (not in the pod): ", aws_time_sync!()),
            Platform::Ec2 => concat!("on the instance: ", aws_time_sync!()),
            Platform::Gke => "on the node (not in the pod): check that chrony syncs from the metadata server (`server metadata.google.internal iburst`; `chronyc sources`), or replace the node (`kubectl drain NODE`, then delete its VM so the node pool recreates it)",
            Platform::Gce => "on the VM: check that chrony syncs from the metadata server (`server metadata.google.internal iburst`; `chronyc sources`)",
            Platform::Aks => "on the node (not in the pod): let chrony follow the Hyper-V host clock (`refclock PHC /dev/ptp_hyperv poll 3 dpoll -2 offset 0` in /etc/chrony.conf; `chronyc sources`)",
            Platform::Azure => "on the VM: let chrony follow the Hyper-V host clock (`refclock PHC /dev/ptp_hyperv poll 3 dpoll -2 offset 0` in /etc/chrony.conf; `chronyc sources`)",
            Platform::Qemu => "in the VM (not in the container): step the clock from the VM's hardware clock (`hwclock -s`) and run chrony or systemd-timesyncd there",
            Platform::Linux => "on the host (not in the container): run chrony or systemd-timesyncd (`timedatectl set-ntp true`); `chronyc makestep` steps a large offset at once",
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

/// How long the ECS metadata endpoint may take: it is on the host, so a slow
/// answer means it is not there.
pub const ECS_TIMEOUT: Duration = Duration::from_millis(1000);

/// Reads the facts, the ClockBound segment (if mounted) and the ECS task
/// metadata (if the variable names it), the latter within `timeout`.
pub async fn observe(timeout: Duration, monotonic_now: Duration) -> Observation {
    let facts = read();
    let mut aws = Vec::new();
    if let Some(uri) = &facts.ecs_metadata_uri {
        aws.push(ecs::fetch(uri, timeout.min(ECS_TIMEOUT)).await);
    }
    if let Some(cb) = clockbound::read(monotonic_now) {
        aws.push(cb);
    }
    Observation { facts, aws }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            (facts("6.10.14-linuxkit", "", ""), Platform::DockerDesktop),
            (
                docker(facts("5.15.153.1-microsoft-standard-WSL2", "", "")),
                Platform::DockerDesktopWsl2,
            ),
            (
                facts("5.15.153.1-microsoft-standard-WSL2", "", ""),
                Platform::Wsl2,
            ),
            (
                facts("6.9.8-orbstack-00170-g7b4100b7ced4", "", ""),
                Platform::OrbStack,
            ),
            (
                facts(
                    "6.8.0-45-generic",
                    "Apple Inc.",
                    "Apple Virtualization Generic Platform",
                ),
                Platform::AppleVz,
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
                Platform::PodmanMachine,
            ),
            (
                PlatformFacts {
                    hostname: Some("minikube-m02".into()),
                    ..facts("5.10.207", "QEMU", "Standard PC (i440FX + PIIX, 1996)")
                },
                Platform::Minikube,
            ),
            (facts("6.1.0", "Amazon EC2", "m5.large"), Platform::Ec2),
            (k8s(facts("6.1.0", "Amazon EC2", "m5.large")), Platform::Eks),
            (
                PlatformFacts {
                    ecs_metadata_uri: Some("http://169.254.170.2/v4/x".into()),
                    ..facts("6.1.0", "Amazon EC2", "m5.large")
                },
                Platform::Ecs,
            ),
            (
                PlatformFacts {
                    aws_execution_env: Some("AWS_ECS_FARGATE".into()),
                    ..facts("5.10.0", "", "")
                },
                Platform::EcsFargate,
            ),
            (
                facts("6.1.0", "Google", "Google Compute Engine"),
                Platform::Gce,
            ),
            (
                k8s(facts("6.1.0", "Google", "Google Compute Engine")),
                Platform::Gke,
            ),
            (
                facts("6.5.0-azure", "Microsoft Corporation", "Virtual Machine"),
                Platform::Azure,
            ),
            (
                k8s(facts(
                    "6.5.0-azure",
                    "Microsoft Corporation",
                    "Virtual Machine",
                )),
                Platform::Aks,
            ),
            (
                facts("6.1.0", "QEMU", "Standard PC (Q35 + ICH9, 2009)"),
                Platform::Qemu,
            ),
            (docker(facts("6.1.0-18-amd64", "", "")), Platform::Linux),
            (PlatformFacts::default(), Platform::Linux),
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
        for p in Platform::ALL {
            assert!(!p.fix().is_empty() && !p.name().is_empty(), "{p:?}");
            assert_eq!(Platform::from_code(p.code()), Some(p));
        }
        assert!(Platform::Ec2.fix().contains("169.254.169.123"));
        assert!(Platform::Eks.fix().contains("linklocal_allowance_exceeded"));
        assert!(Platform::Wsl2.fix().contains("wsl --shutdown"));
    }
}
