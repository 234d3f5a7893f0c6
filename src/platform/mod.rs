//! Where the container runs, read from the files and variables that tell:
//! the kernel release, the DMI strings of the (virtual) machine, the markers
//! container runtimes leave, the orchestrators' variables, and AWS's own word
//! on the host clock where it is there ([`ecs`] task metadata, [`clockbound`]).
//!
//! This module only reads; the classification is the table in
//! [`crate::core::platform`], which takes a [`PlatformFacts`] value, so it is
//! unit-tested with plain values and whole-program tests substitute the files
//! with bind mounts in a private mount namespace.

pub mod clockbound;
pub mod ecs;

use std::io::Read as _;
use std::path::Path;
use std::time::Duration;

use crate::core::platform::{
    faked_clock, Observation, PlatformFacts, CONTAINERENV_PATH, DOCKERENV_PATH,
};

/// The kernel release, which Docker Desktop, WSL2 and OrbStack stamp.
pub const OSRELEASE_PATH: &str = "/proc/sys/kernel/osrelease";
/// The directory of the machine's DMI strings (absent in many VMs and on Fargate).
pub const DMI_DIR: &str = "/sys/class/dmi/id";
/// The node's host name, which minikube names `minikube` (`minikube-m02`, … for
/// more nodes); a pod sees it only with `hostNetwork: true` (own UTS namespace otherwise).
pub const HOSTNAME_PATH: &str = "/proc/sys/kernel/hostname";

/// Most bytes read of one marker file: they hold one short line.
const MAX_FACT_BYTES: u64 = 256;

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
