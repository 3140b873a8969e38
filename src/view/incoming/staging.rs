//! Staging: where data written into `incoming/` waits to be chunked and sealed.
//!
//! Small files wait in memory (bounded in total); larger ones in files outside the vault, in a
//! 0700 directory per vault (`scratch`). Staging files have no name (a crash leaves nothing
//! behind) and are reused once emptied: creating and deleting an inode per written file costs
//! ext4 more than the copy.
//!
//! Nothing staged reaches a disk in the clear: every byte written to a staging file is
//! encrypted with AES-256-CTR under a key that exists only in this process's memory
//! (`keys::ephemeral`), one stream per staged content. After a crash the blocks the files held
//! are ciphertext under a key that is gone. Staged files are never sparse: a hole (a write past
//! the end, a truncate that grows) is written as encrypted zeros, since zeros read back from a
//! hole would decrypt to garbage.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};

use super::scratch::ScratchDir;
use crate::keys::ephemeral::{EphemeralKey, StreamId};

/// Files up to this size wait in memory...
const MEM_FILE_MAX: u64 = 1 << 20;
/// ...while all of them together stay under this.
const MEM_TOTAL_MAX: u64 = 16 << 20;
/// Emptied staging files kept for reuse.
const SPARE_FILES_MAX: usize = 32;
/// Encrypted zeros are written in pieces of this size.
const ZEROS_PIECE: usize = 1 << 20;

pub struct Staging {
    base: PathBuf,
    name: String,
    dir: RwLock<ScratchDir>,
    key: EphemeralKey,
    mem_used: AtomicU64,
    spare: Mutex<Vec<File>>,
}

enum Data {
    Mem(Vec<u8>),
    /// A staging file, the content's length, and its stream under the ephemeral key.
    File(File, u64, StreamId),
}

/// The staged content of one file.
pub struct Staged {
    staging: Arc<Staging>,
    data: RwLock<Data>,
}

impl Staging {
    /// Prepare `BASE/vaultfs-<vault id>/` (mode 0700, ours, removing leftovers of a crash)
    /// and a key for what is staged there.
    pub fn new(base: &Path, vault_id: &str) -> io::Result<Arc<Staging>> {
        let name = format!("vaultfs-{vault_id}");
        let dir = ScratchDir::open(base, &name)?;
        Ok(Arc::new(Staging {
            base: base.to_path_buf(),
            name,
            dir: RwLock::new(dir),
            key: EphemeralKey::generate().map_err(io::Error::other)?,
            mem_used: AtomicU64::new(0),
            spare: Mutex::new(Vec::new()),
        }))
    }

    pub fn dir(&self) -> PathBuf {
        self.base.join(&self.name)
    }

    /// A new, empty staged content.
    pub fn create(self: &Arc<Self>) -> Staged {
        Staged {
            staging: self.clone(),
            data: RwLock::new(Data::Mem(Vec::new())),
        }
    }

    /// An empty staging file (a spare one, or a new one) and a fresh stream for it.
    fn file(&self) -> io::Result<(File, StreamId)> {
        let stream = self.key.new_stream();
        if let Some(f) = self.spare.lock().pop() {
            return Ok((f, stream));
        }
        let file = match self.dir.read().file() {
            // A /var/tmp cleaner may remove the (empty) directory while mounted.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut dir = self.dir.write();
                *dir = ScratchDir::open(&self.base, &self.name)?;
                dir.file()?
            }
            other => other?,
        };
        Ok((file, stream))
    }

    /// Encrypt `buf` as bytes `off..` of `stream` and write it there.
    fn write_sealed(&self, f: &File, stream: StreamId, buf: &[u8], off: u64) -> io::Result<()> {
        let mut sealed = buf.to_vec();
        self.key.apply(stream, off, &mut sealed);
        f.write_all_at(&sealed, off)
    }

    /// Write encrypted zeros over `from..to` of `stream`.
    fn write_zeros(&self, f: &File, stream: StreamId, from: u64, to: u64) -> io::Result<()> {
        let mut pos = from;
        while pos < to {
            let n = ZEROS_PIECE.min((to - pos) as usize);
            self.write_sealed(f, stream, &vec![0u8; n], pos)?;
            pos += n as u64;
        }
        Ok(())
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
        let Data::File(f, len, stream) = &mut *data else {
            unreachable!("moved to a file above")
        };
        if off > *len {
            self.staging.write_zeros(f, *stream, *len, off)?;
        }
        self.staging.write_sealed(f, *stream, buf, off)?;
        *len = (*len).max(end);
        Ok(())
    }

    fn to_file(&self, data: &mut Data) -> io::Result<()> {
        if let Data::Mem(v) = data {
            let (f, stream) = self.staging.file()?;
            self.staging.write_sealed(&f, stream, v, 0)?;
            let len = v.len() as u64;
            self.staging.unreserve(len);
            *data = Data::File(f, len, stream);
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
            Data::File(f, len, stream) => {
                let n = buf.len().min(len.saturating_sub(off) as usize);
                f.read_exact_at(&mut buf[..n], off)?;
                self.staging.key.apply(*stream, off, &mut buf[..n]);
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
        if let Data::File(f, len, stream) = &mut *data {
            if size < *len {
                f.set_len(size)?;
            } else {
                self.staging.write_zeros(f, *stream, *len, size)?;
            }
            *len = size;
        }
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        match std::mem::replace(&mut *self.data.write(), Data::Mem(Vec::new())) {
            Data::Mem(v) => self.staging.unreserve(v.len() as u64),
            Data::File(f, _, _) => {
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
