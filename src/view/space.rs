//! Space on the vault's filesystem: what `statfs` reports and what incoming writes check.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `statvfs(dir)`.
pub fn statvfs(dir: &Path) -> std::io::Result<libc::statvfs> {
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: statvfs writes into a zeroed struct we own; the path is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st)
}

/// Free bytes on the filesystem holding `dir` (for unprivileged users).
pub fn free_bytes(dir: &Path) -> Option<u64> {
    statvfs(dir).ok().map(|st| st.f_bavail * st.f_frsize)
}

/// Bytes in the files under `dir`.
pub fn dir_size(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
