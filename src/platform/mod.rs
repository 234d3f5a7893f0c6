//! Where the container runs, read from the files and variables that tell:
//! the kernel release, the DMI strings of the (virtual) machine, the markers
//! container runtimes leave, the orchestrators' variables, and AWS's own word
//! on the host clock where it is there ([`ecs`] task metadata, [`clockbound`]).
//!
//! This module only reads; the classification is the table in
//! [`crate::core::platform`], which takes a [`PlatformFacts`] value, so it is
//! unit-tested with plain values and whole-program tests substitute the files
//! with bind mounts in a private mount namespace.
//!
//! Any of these files can be something another party placed (a FIFO, a
//! symlink, a huge file in a container image or a mounted volume), so each is
//! read with [`crate::os::file::read_regular`]: no link followed, no blocking
//! open, regular files only, a bounded read. [`observe`] does the reading on
//! a blocking thread, so a slow file system holds up neither the runtime nor
//! the round trips being timed on it.

pub mod ecs;
/// ClockBound's segment: the reader lives with the `clockbound://` source.
pub use crate::proto::clockbound::segment as clockbound;

use std::path::Path;
use std::time::Duration;

use crate::core::platform::{
    faked_clock, Observation, PlatformFacts, CONTAINERENV_PATH, DOCKERENV_PATH,
};
use crate::os::file;

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
/// Blocking (short, bounded reads): [`observe`] calls it off the runtime thread.
pub fn read() -> PlatformFacts {
    let mut facts = from_environment();
    read_files(&mut facts);
    facts
}

/// The facts this process's environment gives; no file is read.
fn from_environment() -> PlatformFacts {
    let var = |name: &str| {
        std::env::var_os(name)
            .map(|v| v.to_string_lossy().into_owned())
            .filter(|v| !v.is_empty())
    };
    PlatformFacts {
        kubernetes: var("KUBERNETES_SERVICE_HOST").is_some(),
        ecs_metadata_uri: var("ECS_CONTAINER_METADATA_URI_V4"),
        aws_execution_env: var("AWS_EXECUTION_ENV"),
        faketime: faked_clock(var("FAKETIME"), var("LD_PRELOAD")),
        ..PlatformFacts::default()
    }
}

/// Adds the facts the files give.
fn read_files(facts: &mut PlatformFacts) {
    let dmi = |name: &str| read_fact(&Path::new(DMI_DIR).join(name));
    facts.kernel_release = read_fact(Path::new(OSRELEASE_PATH));
    facts.sys_vendor = dmi("sys_vendor");
    facts.product_name = dmi("product_name");
    facts.bios_vendor = dmi("bios_vendor");
    facts.hostname = read_fact(Path::new(HOSTNAME_PATH));
    // Markers: only whether they are there (stat, nothing opened).
    facts.dockerenv = Path::new(DOCKERENV_PATH).exists();
    facts.containerenv = Path::new(CONTAINERENV_PATH).exists();
}

/// The first line of a small regular file, trimmed; `None` if absent,
/// refused (not a regular file, a symlink), unreadable or empty.
fn read_fact(path: &Path) -> Option<String> {
    let bytes = match file::read_regular(path, MAX_FACT_BYTES) {
        Ok(bytes) => bytes?,
        Err(e) => {
            tracing::debug!(path = %path.display(), reason = %e, "platform fact not read");
            return None;
        }
    };
    let text = String::from_utf8_lossy(&bytes);
    let line = text.lines().next()?.trim();
    (!line.is_empty()).then(|| line.to_string())
}

/// How long the ECS metadata endpoint may take: it is on the host, so a slow
/// answer means it is not there.
pub const ECS_TIMEOUT: Duration = Duration::from_millis(1000);

/// Reads the facts, the ClockBound segment (if mounted) and the ECS task
/// metadata (if the variable names it), all within `timeout`. The files are
/// read on a blocking thread; if that does not finish in time, the facts
/// are those of the environment alone and there is no ClockBound evidence.
pub async fn observe(timeout: Duration, monotonic_now: Duration) -> Observation {
    let env = from_environment();
    let ecs_uri = env.ecs_metadata_uri.clone();
    let files = tokio::task::spawn_blocking(move || {
        let mut facts = env;
        read_files(&mut facts);
        (facts, clockbound::read(monotonic_now))
    });
    let ecs = async {
        match &ecs_uri {
            Some(uri) => Some(ecs::fetch(uri, timeout.min(ECS_TIMEOUT)).await),
            None => None,
        }
    };
    let (files, ecs) = tokio::join!(tokio::time::timeout(timeout, files), ecs);
    let (facts, cb) = match files {
        Ok(Ok(read)) => read,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "reading the platform files failed");
            (from_environment(), None)
        }
        Err(_) => {
            tracing::warn!(?timeout, "the platform files were not read in time");
            (from_environment(), None)
        }
    };
    Observation {
        facts,
        aws: ecs.into_iter().chain(cb).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fact_is_the_first_line_of_a_regular_file_within_the_bound() {
        let d = std::env::temp_dir().join(format!("skewguard-facts-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let write = |name: &str, bytes: &[u8]| {
            let p = d.join(name);
            std::fs::write(&p, bytes).unwrap();
            p
        };
        let p = write("osrelease", b"  6.10.14-linuxkit \nsecond line\n");
        assert_eq!(read_fact(&p).as_deref(), Some("6.10.14-linuxkit"));
        assert_eq!(read_fact(&write("empty", b"")), None);
        assert_eq!(read_fact(&write("blank", b" \n")), None);
        assert_eq!(read_fact(&d.join("missing")), None);
        // One long line: only the bound is read.
        let long = read_fact(&write("long", &[b'x'; 1 << 20])).unwrap();
        assert_eq!(long.len() as u64, MAX_FACT_BYTES);
        let link = d.join("link");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        assert_eq!(read_fact(&link), None);
        let fifo = d.join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()));
        assert_eq!(read_fact(&fifo), None);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn observe_reads_the_same_facts_as_read() {
        let now = crate::os::clock::Clock::monotonic(&crate::os::clock::SystemClock);
        let seen = observe(Duration::from_secs(5), now).await;
        assert_eq!(seen.facts, read());
        // This machine's kernel release, read through the hardened reader.
        if let Ok(release) = std::fs::read_to_string(OSRELEASE_PATH) {
            assert_eq!(seen.facts.kernel_release.as_deref(), Some(release.trim()));
        }
    }
}
