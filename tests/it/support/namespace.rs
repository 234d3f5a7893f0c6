//! Platform facts substituted in a private mount namespace: the case's files
//! (osrelease, hostname, DMI strings, a /run tree) bind-mounted or copied over
//! what skewguard reads, for the one command run inside.

use std::io::Write as _;
use std::path::Path;
use std::process::Command;

use super::{clear_skewguard_env, current_test, prerequisite};

/// Variables that name a platform or fake the clock: removed, so the case's
/// files alone decide.
pub const PLATFORM_VARS: &[&str] = &[
    "KUBERNETES_SERVICE_HOST",
    "ECS_CONTAINER_METADATA_URI_V4",
    "AWS_EXECUTION_ENV",
    "FAKETIME",
    "LD_PRELOAD",
];

/// Mounts the case's files found in the directory given first (`osrelease`;
/// `hostname`, `dmi/`, where present; `run/`), then runs the command after it.
/// `cp -a` copies FIFOs and links as they are instead of opening them.
const SCRIPT: &str = r#"set -e
d=$1; shift
mount --bind "$d/osrelease" /proc/sys/kernel/osrelease
if [ -e "$d/hostname" ] || [ -L "$d/hostname" ]; then mount --bind "$d/hostname" /proc/sys/kernel/hostname; fi
mount -t tmpfs skewguard-test /sys/class
if [ -d "$d/dmi" ]; then mkdir -p /sys/class/dmi/id; cp -a "$d/dmi/." /sys/class/dmi/id/; fi
mount -t tmpfs skewguard-test /run
cp -a "$d/run/." /run/
"#;

/// After [`SCRIPT`]: a new root on a tmpfs (`$d/root`) holding only what a
/// program needs (the system directories bound, their links copied, the
/// directory of the binary run), so that the machine's own `/.dockerenv`
/// is gone too; the command runs chrooted there.
const NEW_ROOT: &str = r#"r="$d/root"
mkdir -p "$r"
mount -t tmpfs skewguard-root "$r"
for p in /usr /bin /sbin /lib /lib32 /lib64 /libx32 /etc /proc /sys /dev /run; do
    if [ -L "$p" ]; then cp -a "$p" "$r$p"
    elif [ -d "$p" ]; then mkdir -p "$r$p"; mount --rbind "$p" "$r$p"
    fi
done
b=$(dirname "$1")
mkdir -p "$r$b"
mount --bind "$b" "$r$b"
exec chroot "$r" "$@"
"#;

/// Whether this machine can make a private mount namespace (and has `tools`);
/// `false` with a printed reason where not, a panic under CI=true, which must
/// run every test.
pub fn namespaces_work(tools: &[(&str, &str)]) -> bool {
    if !prerequisite("unshare", "install util-linux")
        || !tools.iter().all(|(tool, how)| prerequisite(tool, how))
    {
        return false;
    }
    let probe = Command::new("unshare")
        .args(["--mount", "--", "true"])
        .output();
    let why = match probe {
        Ok(o) if o.status.success() => return true,
        Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
        Err(e) => e.to_string(),
    };
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI requires a private mount namespace (unshare --mount): {why}");
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {}: unshare --mount is not permitted here ({why})",
        current_test()
    );
    false
}

/// `skewguard ARGS` in a mount namespace of its own with the files of `dir`
/// in place, the SKEWGUARD_* and platform variables of the test removed.
pub fn skewguard_at(dir: &Path, args: &[&str]) -> Command {
    in_namespace(&format!("{SCRIPT}exec \"$@\"\n"), dir, args)
}

/// [`skewguard_at`], chrooted into a root of its own where no file marks a
/// container, whatever the machine has (`/.dockerenv` of the test's own
/// container included): the case's `run/` then decides alone (an empty one
/// is a host; `run/.containerenv` is podman's marker).
pub fn skewguard_off_container(dir: &Path, args: &[&str]) -> Command {
    in_namespace(&format!("{SCRIPT}{NEW_ROOT}"), dir, args)
}

fn in_namespace(script: &str, dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--", "sh", "-c", script, "sh"])
        .arg(dir)
        .arg(env!("CARGO_BIN_EXE_skewguard"))
        .args(args);
    clear_skewguard_env(&mut cmd);
    for v in PLATFORM_VARS {
        cmd.env_remove(v);
    }
    cmd
}
