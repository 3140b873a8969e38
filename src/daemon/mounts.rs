//! The mount table as the commands see it: which vault is mounted where, stale mounts left by
//! a killed daemon, and detaching a mount point.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// True if `path` is a mount point whose FUSE daemon is gone ("Transport endpoint is not
/// connected"). Over io_uring a request the kernel had queued when the daemon died ends with
/// ECANCELED (ECONNABORTED when the abort catches it in flight): gone as well.
pub fn is_stale_mount(path: &Path) -> bool {
    // statfs always reaches the filesystem; stat may be answered from the kernel's cache.
    matches!(
        crate::view::space::statvfs(path),
        Err(e) if matches!(
            e.raw_os_error(),
            Some(libc::ENOTCONN | libc::ECONNABORTED | libc::ECANCELED)
        )
    )
}

/// Mount points listed in /proc/self/mounts: (source, mount point, fstype).
pub fn mounts() -> Vec<(String, PathBuf, String)> {
    let text = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            let (src, dst, ty) = (f.next()?, f.next()?, f.next()?);
            Some((unescape(src), PathBuf::from(unescape(dst)), ty.to_string()))
        })
        .collect()
}

/// The vault directory mounted on `path`, if `path` is a vaultfs mount point.
pub fn vault_of_mount(path: &Path) -> Option<PathBuf> {
    let mnt = path.canonicalize().ok()?;
    mounts()
        .into_iter()
        .find(|(src, p, ty)| {
            // A vault directory, or an S3 vault's cache directory.
            let src = Path::new(src);
            *p == mnt
                && ty.starts_with("fuse")
                && (src.join("config").is_file()
                    || src.join(crate::vault::location::LOCATION_FILE).is_file())
        })
        .map(|(src, _, _)| PathBuf::from(src))
}

/// Device numbers of every vaultfs mount, read from /proc/self/mountinfo alone: a mount point
/// is never stat'ed, so a hung daemon anywhere on the machine cannot hang the caller.
pub fn vaultfs_devices() -> Vec<u64> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines().filter_map(vaultfs_device).collect()
}

/// `ID PARENT MAJOR:MINOR ROOT MNT OPTS [TAGS...] - FSTYPE SOURCE SUPEROPTS`
fn vaultfs_device(line: &str) -> Option<u64> {
    let (head, tail) = line.split_once(" - ")?;
    let mut t = tail.split(' ');
    let (ty, src) = (t.next()?, unescape(t.next()?));
    let src = Path::new(&src);
    let is_vault = ty.starts_with("fuse")
        && (src.join("config").is_file()
            || src.join(crate::vault::location::LOCATION_FILE).is_file());
    if !is_vault {
        return None;
    }
    let (major, minor) = head.split(' ').nth(2)?.split_once(':')?;
    Some(libc::makedev(major.parse().ok()?, minor.parse().ok()?))
}

/// /proc/mounts escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() + 1 && b[i + 1..].len() >= 3 {
            if let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("x"), 8)
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Detach a mount point (used for stale mounts and as the fallback of `umount`).
pub fn force_unmount(path: &Path, lazy: bool) -> std::io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let flags = if lazy { libc::MNT_DETACH } else { 0 };
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), flags) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vaultfs_mounts_device_comes_from_mountinfo_without_touching_the_mount_point() {
        let dir = tempfile::tempdir().unwrap();
        let vault = dir.path().join("my vault");
        std::fs::create_dir(&vault).unwrap();
        std::fs::write(vault.join("config"), b"x").unwrap();
        let src = vault.to_str().unwrap().replace(' ', "\\040");
        // The mount point does not exist: reading it would fail, so only mountinfo is used.
        let line = format!("88 29 0:63 / /no/such/mnt rw,nosuid - fuse.vaultfs {src} rw,user_id=0");
        assert_eq!(vaultfs_device(&line), Some(libc::makedev(0, 63)));
        let other = line.replace("fuse.vaultfs", "ext4");
        assert_eq!(vaultfs_device(&other), None);
        let not_a_vault = "88 29 0:63 / /m rw - fuse.sshfs host:/x rw";
        assert_eq!(vaultfs_device(not_a_vault), None);
    }
}
