//! Files another party may have placed: opened without following a link,
//! blocking or reading without bound, and used only when they are what they
//! should be.
//!
//! A file at a path that someone else controls can be a symlink aimed at a
//! file of ours, a FIFO that makes `open` wait for ever, a device with effects
//! of its own on open, or gigabytes. So every such file is looked at with
//! `lstat` first, opened with `O_NOFOLLOW | O_NONBLOCK | O_NOCTTY`, checked
//! again on the open descriptor (the path may have changed in between), and
//! read up to a bound. [`open_regular`] and [`read_regular`] do this for any
//! regular file (the platform facts under `/proc` and `/sys`, which `fstat`
//! reports as regular files of size 0 or 4096, and ClockBound's segment);
//! `O_NOFOLLOW` concerns the last component only, so `/var/run → /run` is fine.
//!
//! The cache file of `check` must also be this user's own: a cache file that
//! another user can plant or aim would be an off-switch for the guard (a
//! forged `OK`) or a way to overwrite files (a symlink, a device). So
//! [`read`] also requires the file to be owned by the effective uid and not
//! writable by group or others, and refuses one over [`MAX_BYTES`]. A new
//! result is written to a private temporary file (`O_CREAT | O_EXCL`, mode
//! 0600, a random name from getrandom) in the same directory and renamed over
//! the path only when the path is a regular file of this user, or nothing.
//!
//! Every refusal is a [`Refused`] that says why; the caller does without.

use std::fmt;
use std::fs::{File, Metadata, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Most bytes read from a cache file (a report of many sources is a few tens of KiB).
pub const MAX_BYTES: u64 = 256 * 1024;

/// Why a file is not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// What kind of file a path names, in words, for refusals.
fn kind(m: &Metadata) -> &'static str {
    let t = m.file_type();
    if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}

/// Refuses anything but a regular file.
pub fn regular(m: &Metadata) -> Result<(), Refused> {
    if m.file_type().is_file() {
        Ok(())
    } else {
        Err(Refused(format!("it is {}, not a regular file", kind(m))))
    }
}

/// Refuses anything but a regular file of `euid` without group/other write.
pub fn trustworthy(m: &Metadata, euid: u32) -> Result<(), Refused> {
    regular(m)?;
    if m.uid() != euid {
        return Err(Refused(format!(
            "it is owned by uid {}, not by this user (uid {euid})",
            m.uid()
        )));
    }
    not_writable_by_others(m)
}

/// Refuses a file that its group or other users may write.
fn not_writable_by_others(m: &Metadata) -> Result<(), Refused> {
    if m.mode() & 0o022 != 0 {
        return Err(Refused(format!(
            "it is writable by {} (mode {:04o})",
            if m.mode() & 0o002 != 0 {
                "other users"
            } else {
                "its group"
            },
            m.mode() & 0o7777
        )));
    }
    Ok(())
}

/// Refuses anything but a regular file owned by one of `owners` and not
/// writable by group or others (a file other parties publish for this one).
pub fn published_by(m: &Metadata, owners: &[u32]) -> Result<(), Refused> {
    regular(m)?;
    if !owners.contains(&m.uid()) {
        let listed: Vec<String> = owners.iter().map(u32::to_string).collect();
        return Err(Refused(format!(
            "it is owned by uid {}, not by one of the uids allowed ({})",
            m.uid(),
            listed.join(", ")
        )));
    }
    not_writable_by_others(m)
}

/// The first `limit` bytes of the file at `path` if [`published_by`] one of
/// `owners`, opened the hardened way; `Ok(None)` when there is nothing there.
pub fn read_published(path: &Path, owners: &[u32], limit: u64) -> Result<Option<Vec<u8>>, Refused> {
    match open_checked(path, |m| published_by(m, owners))? {
        Some(file) => read_start(&file, limit).map(Some),
        None => Ok(None),
    }
}

/// Opens `path` for reading when `allow` accepts what is there, both before
/// opening and on the open descriptor; `Ok(None)` when there is nothing.
fn open_checked(
    path: &Path,
    allow: impl Fn(&Metadata) -> Result<(), Refused>,
) -> Result<Option<File>, Refused> {
    // Look before opening: opening a device or a FIFO can have effects of its own.
    match std::fs::symlink_metadata(path) {
        Ok(m) => allow(&m)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Refused(format!("cannot inspect it: {e}"))),
    }
    // O_NONBLOCK: a FIFO swapped in after the look cannot hold `open` up.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => Refused("it is a symbolic link".into()),
            _ => Refused(format!("cannot open it: {e}")),
        })?;
    let m = file
        .metadata()
        .map_err(|e| Refused(format!("cannot inspect it: {e}")))?;
    allow(&m)?;
    Ok(Some(file))
}

/// Opens the regular file at `path` (whoever owns it) the hardened way;
/// `Ok(None)` when there is nothing at `path`.
pub fn open_regular(path: &Path) -> Result<Option<File>, Refused> {
    open_checked(path, regular)
}

/// The first `limit` bytes of `file` (fewer at its end), read from offset 0
/// whatever was read before, so a caller can read a changing file again.
/// The size `fstat` reports is not trusted: `/proc` says 0, `/sys` 4096.
pub fn read_start(file: &File, limit: u64) -> Result<Vec<u8>, Refused> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut bytes = vec![0u8; limit.min(8 * 1024)];
    let mut len = 0;
    while len < limit {
        if len == bytes.len() {
            bytes.resize(limit.min(len.saturating_mul(2)), 0);
        }
        match file.read_at(&mut bytes[len..], len as u64) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Refused(format!("cannot read it: {e}"))),
        }
    }
    bytes.truncate(len);
    Ok(bytes)
}

/// The first `limit` bytes of the regular file at `path` (whoever owns it),
/// opened with [`open_regular`]; `Ok(None)` when there is nothing at `path`.
pub fn read_regular(path: &Path, limit: u64) -> Result<Option<Vec<u8>>, Refused> {
    match open_regular(path)? {
        Some(file) => read_start(&file, limit).map(Some),
        None => Ok(None),
    }
}

/// The cache file's bytes; `Ok(None)` when there is no file at `path`.
pub fn read(path: &Path, euid: u32) -> Result<Option<Vec<u8>>, Refused> {
    let Some(file) = open_checked(path, |m| trustworthy(m, euid))? else {
        return Ok(None);
    };
    let bytes = read_start(&file, MAX_BYTES + 1)?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(Refused(format!(
            "it is larger than {} KiB",
            MAX_BYTES / 1024
        )));
    }
    Ok(Some(bytes))
}

/// Whether `path` may be replaced: nothing there, or a file [`trustworthy`] allows.
fn replaceable(path: &Path, euid: u32) -> Result<(), Refused> {
    match std::fs::symlink_metadata(path) {
        Ok(m) => trustworthy(&m, euid),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Refused(format!("cannot inspect it: {e}"))),
    }
}

/// A fresh, unpredictable name beside `path`: `.NAME.<16 hex digits>.tmp`.
fn temporary_name(path: &Path) -> Result<PathBuf, Refused> {
    let name = path
        .file_name()
        .ok_or_else(|| Refused("the path names no file".into()))?;
    let random = getrandom::u64().map_err(|e| Refused(format!("no randomness for a name: {e}")))?;
    let mut tmp = std::ffi::OsString::from(".");
    tmp.push(name);
    tmp.push(format!(".{random:016x}.tmp"));
    Ok(path.with_file_name(tmp))
}

/// Replaces the cache file with `bytes`, atomically, never through a link.
pub fn write(path: &Path, bytes: &[u8], euid: u32) -> Result<(), Refused> {
    write_mode(path, bytes, euid, 0o600)
}

/// Like [`write`], but the file is left readable by everyone (mode 0644,
/// whatever the umask): a file this process publishes for others to read.
pub fn write_public(path: &Path, bytes: &[u8], euid: u32) -> Result<(), Refused> {
    write_mode(path, bytes, euid, 0o644)
}

fn write_mode(path: &Path, bytes: &[u8], euid: u32, mode: u32) -> Result<(), Refused> {
    use std::os::unix::fs::PermissionsExt;
    replaceable(path, euid)?;
    let tmp = temporary_name(path)?;
    // create_new is O_CREAT|O_EXCL: it never follows a symlink, never opens
    // an existing file; 0600 before any byte is in it.
    let result = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .map_err(|e| {
            Refused(format!(
                "cannot create a temporary file beside it ({}): {e}",
                tmp.display()
            ))
        })
        .and_then(|mut f: File| {
            // The umask may have taken bits away: set the mode meant, on the descriptor.
            f.set_permissions(std::fs::Permissions::from_mode(mode))
                .map_err(|e| Refused(format!("cannot set the mode of {}: {e}", tmp.display())))?;
            f.write_all(bytes)
                .map_err(|e| Refused(format!("cannot write {}: {e}", tmp.display())))?;
            // Checked again just before the rename; rename(2) replaces a
            // symlink put there meanwhile rather than following it.
            replaceable(path, euid)?;
            std::fs::rename(&tmp, path)
                .map_err(|e| Refused(format!("cannot rename the temporary file over it: {e}")))
        });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(label: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "skewguard-cache-unit-{label}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_written_file_is_private_and_reads_back() {
        let d = dir("roundtrip");
        let path = d.join("c.json");
        let euid = crate::os::sys::effective_uid();
        assert_eq!(read(&path, euid), Ok(None));
        write(&path, b"{}", euid).unwrap();
        assert_eq!(read(&path, euid), Ok(Some(b"{}".to_vec())));
        let m = std::fs::symlink_metadata(&path).unwrap();
        assert_eq!(m.mode() & 0o777, 0o600);
        // Another user's file is refused, for reading and for replacing.
        assert!(read(&path, euid + 1)
            .unwrap_err()
            .0
            .contains("owned by uid"));
        assert!(write(&path, b"x", euid + 1).is_err());
        // Nothing else is left in the directory.
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn links_devices_and_loose_modes_are_refused() {
        let d = dir("refused");
        let euid = crate::os::sys::effective_uid();
        let target = d.join("target");
        std::fs::write(&target, "keep").unwrap();
        let link = d.join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(read(&link, euid).unwrap_err().0.contains("symbolic link"));
        assert!(write(&link, b"x", euid)
            .unwrap_err()
            .0
            .contains("symbolic link"));
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        let null = Path::new("/dev/null");
        assert!(read(null, 0).unwrap_err().0.contains("character device"));
        assert!(write(null, b"x", 0).is_err());
        let loose = d.join("loose");
        std::fs::write(&loose, "{}").unwrap();
        std::fs::set_permissions(&loose, std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .unwrap();
        assert!(read(&loose, euid).unwrap_err().0.contains("other users"));
        assert!(read(&d, euid).unwrap_err().0.contains("directory"));
        let _ = std::fs::remove_dir_all(&d);
    }

    fn fifo(path: &Path) {
        let made = std::process::Command::new("mkfifo").arg(path).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo {}", path.display());
    }

    #[test]
    fn foreign_files_are_read_only_when_regular() {
        let d = dir("foreign");
        assert_eq!(read_regular(&d.join("missing"), 64), Ok(None));
        let plain = d.join("plain");
        std::fs::write(&plain, "6.1.0\n").unwrap();
        // Anyone's file will do here: the owner is not checked.
        assert_eq!(read_regular(&plain, 64), Ok(Some(b"6.1.0\n".to_vec())));
        let pipe = d.join("pipe");
        fifo(&pipe);
        assert!(read_regular(&pipe, 64).unwrap_err().0.contains("a FIFO"));
        let link = d.join("link");
        std::os::unix::fs::symlink(&plain, &link).unwrap();
        assert!(read_regular(&link, 64)
            .unwrap_err()
            .0
            .contains("symbolic link"));
        assert!(read_regular(&d, 64).unwrap_err().0.contains("directory"));
        assert!(read_regular(Path::new("/dev/null"), 64)
            .unwrap_err()
            .0
            .contains("character device"));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn what_is_swapped_in_after_the_look_neither_blocks_nor_is_followed() {
        // The look before opening is skipped (everything allowed), as if the
        // path had been replaced in between: the flags alone must hold.
        let d = dir("swapped");
        let pipe = d.join("pipe");
        fifo(&pipe);
        let started = std::time::Instant::now();
        let opened = open_checked(&pipe, |_| Ok(()));
        assert!(
            opened.is_ok_and(|f| f.is_some()),
            "O_NONBLOCK opens a FIFO without a writer"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        let link = d.join("link");
        std::os::unix::fs::symlink(&pipe, &link).unwrap();
        assert_eq!(
            open_checked(&link, |_| Ok(())).unwrap_err().0,
            "it is a symbolic link"
        );
        // …and the check on the descriptor still refuses the FIFO.
        assert!(open_regular(&pipe).unwrap_err().0.contains("a FIFO"));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_large_file_is_read_only_up_to_the_bound() {
        let d = dir("large");
        let big = d.join("big");
        let content: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
        std::fs::write(&big, &content).unwrap();
        for limit in [0, 1, 256, 8 * 1024, 8 * 1024 + 1, 100_000, MAX_BYTES + 1] {
            let got = read_regular(&big, limit).unwrap().unwrap();
            assert_eq!(got, content[..limit as usize], "limit {limit}");
        }
        // The whole file when it is under the bound; a second read starts again at 0.
        let file = open_regular(&big).unwrap().unwrap();
        assert_eq!(read_start(&file, u64::MAX).unwrap(), content);
        assert_eq!(read_start(&file, 10).unwrap(), content[..10]);
        // The cache refuses what the bound would cut.
        let euid = crate::os::sys::effective_uid();
        assert!(read(&big, euid).unwrap_err().0.contains("larger than"));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn proc_and_sys_files_are_regular_and_read_to_their_end() {
        // fstat says size 0 (procfs) or 4096 (sysfs): the size is not trusted.
        for path in [
            "/proc/sys/kernel/osrelease",
            "/sys/devices/system/cpu/online",
        ] {
            let path = Path::new(path);
            let Ok(expected) = std::fs::read(path) else {
                continue; // not on this machine
            };
            assert!(!expected.is_empty());
            assert_eq!(
                read_regular(path, 4096),
                Ok(Some(expected)),
                "{}",
                path.display()
            );
        }
    }

    #[test]
    fn temporary_names_differ() {
        let p = Path::new("/x/cache.json");
        let (a, b) = (temporary_name(p).unwrap(), temporary_name(p).unwrap());
        assert_ne!(a, b);
        assert!(a.to_string_lossy().starts_with("/x/.cache.json."));
    }
}
