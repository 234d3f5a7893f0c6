//! The cache file of `check` against a hostile local user: another user's
//! file, a loose mode, a symlink, a FIFO, a device node and concurrent writers
//! in separate PID namespaces. The cache is never trusted when forged, `check`
//! measures instead and says why at WARN, and no file outside the cache path
//! changes.
//!
//! The genuine cached result comes from a real chronyd on loopback (skipped
//! with a printed reason where chrony is missing, failed under `CI=true`);
//! the attacks that need no genuine result run without it. Tests run as root
//! here, so "another user" is uid 65534 (nobody).

use crate::support;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use support::{run, Chrony, Output, Port, TempDir};

/// The settings of every run: one source, quick to give up when it is gone.
fn settings(source: &str, cache: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("SKEWGUARD_SOURCES", source.to_string()),
        ("SKEWGUARD_TIMEOUT", "500ms".into()),
        ("SKEWGUARD_OUTPUT", "json".into()),
        ("SKEWGUARD_CACHE_FILE", cache.display().to_string()),
    ]
}

fn check(settings: &[(&'static str, String)]) -> Output {
    let envs: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    run(&["check"], &envs)
}

/// What can be seen of a file without following links: kind, owner, mode,
/// size, mtime and content (for regular files).
#[derive(Debug, PartialEq)]
struct Seen {
    kind: &'static str,
    uid: u32,
    mode: u32,
    rdev: u64,
    mtime: Option<SystemTime>,
    content: Option<Vec<u8>>,
}

fn seen(path: &Path) -> Seen {
    let m = fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let t = m.file_type();
    let kind = if t.is_symlink() {
        "symlink"
    } else if t.is_fifo() {
        "fifo"
    } else if t.is_char_device() {
        "char device"
    } else if t.is_file() {
        "file"
    } else {
        "other"
    };
    Seen {
        kind,
        uid: m.uid(),
        mode: m.mode(),
        rdev: m.rdev(),
        mtime: m.modified().ok(),
        content: t.is_file().then(|| fs::read(path).expect("read")),
    }
}

/// Every name in `dir` with what it is, so a test can show nothing else changed.
fn listing(dir: &Path) -> Vec<(String, Seen)> {
    let mut all: Vec<(String, Seen)> = fs::read_dir(dir)
        .expect("read_dir")
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                seen(&e.path()),
            )
        })
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

/// Asserts `check` did not use the cache: it measured (the source is gone, so
/// `unknown`, exit 1) and warned with `reason`.
fn assert_refused(out: &Output, reason: &str) {
    out.assert_exit(1);
    assert_eq!(out.verdict(), "unknown", "measured, not served\n{out}");
    assert!(out.report().get("cached").is_none(), "{out}");
    assert!(
        out.stderr.contains("WARN") && out.stderr.contains("not using the cache file"),
        "a warning says the cache is not used\n{out}"
    );
    assert!(
        out.stderr.contains(reason),
        "the warning says {reason:?}\n{out}"
    );
}

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
}

/// A genuine cached ok from a real peer; the cache path and the peer's URI,
/// with the peer stopped (so a fresh measurement can only say `unknown`).
fn genuine(dir: &TempDir) -> Option<(PathBuf, String, Vec<u8>)> {
    let chrony = Chrony::start(None)?;
    let cache = dir.path().join("skewguard.json");
    let out = check(&settings(&chrony.uri(), &cache));
    out.assert_exit(0);
    let m = fs::symlink_metadata(&cache).unwrap_or_else(|e| panic!("cache written: {e}\n{out}"));
    assert!(m.file_type().is_file(), "{out}");
    assert_eq!(m.mode() & 0o777, 0o600, "written private\n{out}");
    let uri = chrony.uri();
    drop(chrony);
    let bytes = fs::read(&cache).expect("read cache");
    Some((cache, uri, bytes))
}

#[test]
fn a_genuine_result_is_served_with_its_age_and_a_forged_one_never() {
    let _room = support::Room::Timing.enter();
    let dir = TempDir::new("cache-forged");
    let Some((cache, uri, bytes)) = genuine(&dir) else {
        return;
    };
    let s = settings(&uri, &cache);

    // The control: the genuine file is served, saying it is cached and how old.
    let out = check(&s);
    out.assert_exit(0);
    assert_eq!(out.report()["cached"], true, "{out}");
    let age = out.number("age_seconds").expect("age_seconds");
    assert!((0.0..60.0).contains(&age), "{out}");
    let note = out.report()["note"].as_str().unwrap_or_default();
    assert!(note.contains("cached result from"), "{out}");
    let text = {
        let mut t = s.clone();
        t.retain(|(k, _)| *k != "SKEWGUARD_OUTPUT");
        check(&t)
    };
    assert!(text.stdout.contains("note: cached result from"), "{text}");
    // A maximum age of zero forces a new measurement (which rewrites the file).
    let mut zero = s.clone();
    zero.push(("SKEWGUARD_CACHE_MAX_AGE", "0".into()));
    let out = check(&zero);
    assert_eq!(out.verdict(), "unknown", "{out}");
    // That unknown now stands in the file: a later run measures again rather
    // than serving the older ok.
    assert_eq!(check(&s).verdict(), "unknown");
    fs::write(&cache, &bytes).expect("restore the genuine result");

    // The same bytes owned by another user: never trusted, never replaced.
    chown(&cache, 65534);
    let before = listing(dir.path());
    let out = check(&s);
    assert_refused(&out, "owned by uid 65534");
    assert_eq!(
        listing(dir.path()),
        before,
        "nothing in the directory changed"
    );

    // Ours, but writable by others.
    chown(&cache, 0);
    fs::set_permissions(&cache, fs::Permissions::from_mode(0o666)).expect("chmod");
    let before = listing(dir.path());
    assert_refused(&check(&s), "writable by other users");
    assert_eq!(listing(dir.path()), before);

    // A symlink to a root-owned 0600 file holding the genuine result: not
    // followed for reading, not written through.
    let victim = dir.path().join("victim");
    fs::write(&victim, &bytes).expect("write victim");
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o600)).expect("chmod");
    fs::remove_file(&cache).expect("rm");
    std::os::unix::fs::symlink(&victim, &cache).expect("symlink");
    let before = listing(dir.path());
    assert_refused(&check(&s), "symbolic link");
    assert_eq!(
        listing(dir.path()),
        before,
        "the victim and the link are untouched"
    );
}

#[test]
fn a_fifo_at_the_cache_path_neither_hangs_nor_is_replaced() {
    let _room = support::Room::Timing.enter();
    let dir = TempDir::new("cache-fifo");
    let silent = Port::free();
    let cache = dir.path().join("skewguard.json");
    let made = Command::new("mkfifo")
        .arg(&cache)
        .status()
        .expect("run mkfifo");
    assert!(made.success(), "mkfifo");
    let before = listing(dir.path());
    let out = check(&settings(&silent.ntp_uri(), &cache));
    assert_refused(&out, "a FIFO");
    assert!(out.elapsed < Duration::from_secs(10), "{out}");
    assert_eq!(listing(dir.path()), before);
}

/// A device node at the cache path is neither read nor replaced. A private
/// node (`mknod`, as root) stands for `/dev/zero` and `/dev/null`, so a
/// regression could only ever replace a file inside the test's directory.
#[test]
fn a_device_at_the_cache_path_is_neither_read_nor_replaced() {
    let _room = support::Room::Timing.enter();
    let dir = TempDir::new("cache-device");
    let silent = Port::free();
    for (name, minor) in [("zero", "5"), ("null", "3")] {
        let node = dir.path().join(name);
        let made = Command::new("mknod")
            .arg(&node)
            .args(["c", "1", minor])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !made {
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                format!(
                    "SKIPPED: {}: mknod not permitted here\n",
                    support::current_test()
                )
                .as_bytes(),
            );
            return;
        }
        let before = listing(dir.path());
        let out = check(&settings(&silent.ntp_uri(), &node));
        assert_refused(&out, "a character device");
        assert_eq!(listing(dir.path()), before, "{name} is still the device");
        assert_eq!(seen(&node).kind, "char device");
    }
    // The real /dev/null by path: refused the same way, before any open.
    let before = seen(Path::new("/dev/null"));
    let out = check(&settings(&silent.ntp_uri(), Path::new("/dev/null")));
    assert_refused(&out, "a character device");
    let after = seen(Path::new("/dev/null"));
    assert_eq!((after.kind, after.rdev), (before.kind, before.rdev));
}

/// Writers in separate PID namespaces (each is PID 1 there, so a name built
/// from the PID would collide) never share a temporary file: every run ends,
/// the file left is one complete private result, and no temporary remains.
#[test]
fn concurrent_writers_in_separate_pid_namespaces_leave_one_complete_file() {
    let _room = support::Room::Timing.enter();
    let permitted = Command::new("unshare")
        .args(["--fork", "--pid", "true"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !permitted {
        let why = "unshare --fork --pid is not permitted here";
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("CI requires {why}");
        }
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            format!("SKIPPED: {}: {why}\n", support::current_test()).as_bytes(),
        );
        return;
    }
    let dir = TempDir::new("cache-pidns");
    let silent = Port::free();
    let cache = dir.path().join("skewguard.json");
    let children: Vec<_> = (0..6)
        .map(|_| {
            let mut cmd = Command::new("unshare");
            support::clear_skewguard_env(&mut cmd);
            cmd.args(["--fork", "--pid", env!("CARGO_BIN_EXE_skewguard"), "check"])
                .envs(
                    settings(&silent.ntp_uri(), &cache)
                        .iter()
                        .map(|(k, v)| (*k, v.as_str())),
                )
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn unshare")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().expect("wait");
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("not writing"), "{stderr}");
    }
    let names: Vec<String> = listing(dir.path()).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["skewguard.json"], "no temporary file left");
    let m = fs::symlink_metadata(&cache).expect("cache");
    assert_eq!(m.mode() & 0o777, 0o600);
    let text = fs::read_to_string(&cache).expect("read");
    let v: serde_json::Value = serde_json::from_str(&text).expect("one complete JSON result");
    assert_eq!(v["report"]["verdict"], "unknown");
}
