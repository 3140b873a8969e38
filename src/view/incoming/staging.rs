//! Staging: where data written into `incoming/` waits to be chunked and sealed.
//!
//! Small files wait in memory (bounded in total); larger ones in files outside the vault
//! (plaintext must never be under VAULT/), in a 0700 directory per vault. Staging files are
//! unlinked right after creation, so a crash leaves nothing behind, and are reused once
//! emptied: creating and deleting an inode per written file costs ext4 more than the copy.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};

/// Files up to this size wait in memory...
const MEM_FILE_MAX: u64 = 1 << 20;
/// ...while all of them together stay under this.
const MEM_TOTAL_MAX: u64 = 64 << 20;
/// Emptied staging files kept for reuse.
const SPARE_FILES_MAX: usize = 32;

pub struct Staging {
    dir: PathBuf,
    next: AtomicU64,
    mem_used: AtomicU64,
    spare: Mutex<Vec<File>>,
}

enum Data {
    Mem(Vec<u8>),
    File(File, u64),
}

/// The staged content of one file.
pub struct Staged {
    staging: Arc<Staging>,
    data: RwLock<Data>,
}

impl Staging {
    /// Prepare `BASE/vaultfs-<vault id>/` (mode 0700), removing leftovers of a crash.
    pub fn new(base: &Path, vault_id: &str) -> io::Result<Arc<Staging>> {
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
        Ok(Arc::new(Staging {
            dir,
            next: AtomicU64::new(0),
            mem_used: AtomicU64::new(0),
            spare: Mutex::new(Vec::new()),
        }))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A new, empty staged content.
    pub fn create(self: &Arc<Self>) -> Staged {
        Staged {
            staging: self.clone(),
            data: RwLock::new(Data::Mem(Vec::new())),
        }
    }

    /// An empty staging file: a spare one, or a new one, already unlinked.
    fn file(&self) -> io::Result<File> {
        if let Some(f) = self.spare.lock().pop() {
            return Ok(f);
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("{}-{n}", std::process::id()));
        let open = || {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
        };
        let file = match open() {
            // A /var/tmp cleaner may remove the (empty) directory while mounted.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::DirBuilder::new().mode(0o700).create(&self.dir)?;
                open()?
            }
            other => other?,
        };
        fs::remove_file(&path)?;
        Ok(file)
    }

    /// Reserve memory for `n` more staged bytes, if within the budget.
    fn reserve(&self, n: u64) -> bool {
        self.mem_used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                (used + n <= MEM_TOTAL_MAX).then_some(used + n)
            })
            .is_ok()
    }

    fn unreserve(&self, n: u64) {
        self.mem_used.fetch_sub(n, Ordering::Relaxed);
    }
}

impl Staged {
    /// Write `buf` at `off`, moving the content to a file when it outgrows memory.
    pub fn write_at(&self, buf: &[u8], off: u64) -> io::Result<()> {
        let end = off + buf.len() as u64;
        let mut data = self.data.write();
        if let Data::Mem(v) = &mut *data {
            let grow = end.saturating_sub(v.len() as u64);
            if end <= MEM_FILE_MAX && (grow == 0 || self.staging.reserve(grow)) {
                if grow > 0 {
                    v.resize(end as usize, 0);
                }
                v[off as usize..end as usize].copy_from_slice(buf);
                return Ok(());
            }
            self.to_file(&mut data)?;
        }
        let Data::File(f, len) = &mut *data else {
            unreachable!("moved to a file above")
        };
        f.write_all_at(buf, off)?;
        *len = (*len).max(end);
        Ok(())
    }

    fn to_file(&self, data: &mut Data) -> io::Result<()> {
        if let Data::Mem(v) = data {
            let f = self.staging.file()?;
            f.write_all_at(v, 0)?;
            let len = v.len() as u64;
            self.staging.unreserve(len);
            *data = Data::File(f, len);
        }
        Ok(())
    }

    pub fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize> {
        match &*self.data.read() {
            Data::Mem(v) => {
                let start = (off as usize).min(v.len());
                let n = buf.len().min(v.len() - start);
                buf[..n].copy_from_slice(&v[start..start + n]);
                Ok(n)
            }
            Data::File(f, len) => {
                let n = buf.len().min(len.saturating_sub(off) as usize);
                let mut done = 0;
                while done < n {
                    let r = f.read_at(&mut buf[done..n], off + done as u64)?;
                    if r == 0 {
                        // A hole at the end (set_len grew the file): zeros.
                        buf[done..n].fill(0);
                        break;
                    }
                    done += r;
                }
                Ok(n)
            }
        }
    }

    pub fn set_len(&self, size: u64) -> io::Result<()> {
        let mut data = self.data.write();
        if let Data::Mem(v) = &mut *data {
            let old = v.len() as u64;
            if size <= old {
                v.truncate(size as usize);
                self.staging.unreserve(old - size);
                return Ok(());
            }
            if size <= MEM_FILE_MAX && self.staging.reserve(size - old) {
                v.resize(size as usize, 0);
                return Ok(());
            }
            self.to_file(&mut data)?;
        }
        if let Data::File(f, len) = &mut *data {
            f.set_len(size)?;
            *len = size;
        }
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        match std::mem::replace(&mut *self.data.write(), Data::Mem(Vec::new())) {
            Data::Mem(v) => self.staging.unreserve(v.len() as u64),
            Data::File(f, _) => {
                let mut spare = self.staging.spare.lock();
                if spare.len() < SPARE_FILES_MAX && f.set_len(0).is_ok() {
                    spare.push(f);
                }
            }
        }
    }
}

/// Sequential reads of staged content, for the chunker.
pub struct Reader<'a> {
    pub staged: &'a Staged,
    pub pos: u64,
}

impl io::Read for Reader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.staged.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}
