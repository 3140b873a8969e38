//! Staging files: where data written into `incoming/` waits to be chunked and sealed.
//!
//! They live outside the vault (plaintext must never be under VAULT/), in a 0700 directory
//! per vault, and are unlinked right after creation: the open descriptor is the only
//! reference, so a crash leaves nothing behind and the kernel frees the space.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The default parent of staging directories.
pub const DEFAULT_BASE: &str = "/var/tmp";

pub struct Staging {
    dir: PathBuf,
    next: AtomicU64,
}

/// One anonymous staging file.
pub struct Staged {
    pub file: File,
}

impl Staging {
    /// Prepare `BASE/vaultfs-<vault id>/` (mode 0700), removing leftovers of a crash.
    pub fn new(base: &Path, vault_id: &str) -> io::Result<Staging> {
        let dir = base.join(format!("vaultfs-{vault_id}"));
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
                for e in fs::read_dir(&dir)?.flatten() {
                    let _ = fs::remove_file(e.path());
                }
            }
            Err(e) => return Err(e),
        }
        Ok(Staging {
            dir,
            next: AtomicU64::new(0),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A new empty staging file, already unlinked.
    pub fn create(&self) -> io::Result<Staged> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("{}-{n}", std::process::id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        fs::remove_file(&path)?;
        Ok(Staged { file })
    }
}

/// Sequential reads of a file through `pread`, so several readers can share one descriptor.
pub struct ReadAt<'a> {
    pub file: &'a File,
    pub pos: u64,
}

impl io::Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}
