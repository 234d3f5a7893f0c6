//! The cache file of `check`: a file only this user could have written, read
//! and replaced without following links, blocking or reading without bound.
//!
//! A cache file that another user can plant or aim would be an off-switch for
//! the guard (a forged `OK`) or a way to overwrite files (a symlink, a device).
//! So a path is used only when it is a regular file (not a symlink, FIFO,
//! socket or device), owned by the effective uid and not writable by group or
//! others; it is opened with `O_NOFOLLOW | O_NONBLOCK` and checked again on the
//! open descriptor, and read up to [`MAX_BYTES`]. A new result is written to a
//! private temporary file (`O_CREAT | O_EXCL`, mode 0600, a random name from
//! getrandom) in the same directory and renamed over the path only when the
//! path is a regular file of this user, or nothing.
//!
//! Every refusal is a [`Refused`] that says why; the caller measures instead.

use std::fmt;
use std::fs::{File, Metadata, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Most bytes read from a cache file (a report of many sources is a few tens of KiB).
pub const MAX_BYTES: u64 = 256 * 1024;

/// Why a cache path is not used.
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

/// Refuses anything but a regular file of `euid` without group/other write.
pub fn trustworthy(m: &Metadata, euid: u32) -> Result<(), Refused> {
    if !m.file_type().is_file() {
        return Err(Refused(format!("it is {}, not a regular file", kind(m))));
    }
    if m.uid() != euid {
        return Err(Refused(format!(
            "it is owned by uid {}, not by this user (uid {euid})",
            m.uid()
        )));
    }
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

/// The cache file's bytes; `Ok(None)` when there is no file at `path`.
pub fn read(path: &Path, euid: u32) -> Result<Option<Vec<u8>>, Refused> {
    // Look before opening: opening a device or a FIFO can have effects of its own.
    match std::fs::symlink_metadata(path) {
        Ok(m) => trustworthy(&m, euid)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Refused(format!("cannot inspect it: {e}"))),
    }
    // …and check the descriptor again: the path may have changed in between.
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
    trustworthy(&m, euid)?;
    let mut bytes = Vec::new();
    file.take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Refused(format!("cannot read it: {e}")))?;
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

    #[test]
    fn temporary_names_differ() {
        let p = Path::new("/x/cache.json");
        let (a, b) = (temporary_name(p).unwrap(), temporary_name(p).unwrap());
        assert_ne!(a, b);
        assert!(a.to_string_lossy().starts_with("/x/.cache.json."));
    }
}
