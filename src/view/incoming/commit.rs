//! Storing closed files: the commit workers chunk, seal and put a file's staged content, which
//! then keeps only its chunk list (its staging copy stays until `save` finds the chunks
//! durable).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use super::staging::Reader;
use super::{COMMIT_GATHER, Incoming, STAGING_FILE};
use crate::store::StoreError;
use crate::vault::ingest::{self, FileError};
use crate::vault::{Result as VResult, VaultError};

impl Incoming {
    /// Store a file's staged content on a commit worker.
    pub(super) fn commit_later(&self, ino: u64) {
        let _ = self.queue.send(ino);
    }

    /// Chunk and store the staged content of `ino` (no-op when already committed, or when it
    /// is gone or no file).
    pub(super) fn commit(&self, ino: u64) -> VResult<()> {
        let (staged, version) = {
            let st = self.lock();
            let Some(f) = st.nodes.get(&ino).and_then(|i| i.file().ok()) else {
                return Ok(());
            };
            match &f.staged {
                Some(s) if f.uncommitted() => (s.clone(), f.version),
                _ => return Ok(()),
            }
        };
        let counter = AtomicU64::new(0);
        let result = ingest::store_stream(
            &self.vault,
            Reader {
                staged: &staged,
                pos: 0,
            },
            &counter,
        );
        let (chunks, len) = match result {
            Ok(x) => x,
            Err(FileError::Source(e)) => return Err(VaultError::io("read", STAGING_FILE, e)),
            Err(FileError::Vault(e)) => {
                if matches!(e, VaultError::Store(StoreError::NoSpace(_))) {
                    self.full.store(true, Ordering::Relaxed);
                }
                return Err(e);
            }
        };
        let mut st = self.lock();
        let Some(f) = st.nodes.get_mut(&ino).and_then(|i| i.file_mut().ok()) else {
            return Ok(());
        };
        let same = f.staged.as_ref().is_some_and(|s| Arc::ptr_eq(s, &staged));
        if !same || f.version != version || !f.uncommitted() {
            return Ok(());
        }
        // The staging file stays until `settle` finds the chunks indexed: until then they may
        // sit in the open pack, where reads cannot reach them.
        f.chunks = Arc::new(chunks);
        f.committed_size = len;
        f.committed = version;
        f.committed_epoch = self.epoch.load(Ordering::SeqCst);
        let _ = self
            .waiting_bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| {
                Some(w.saturating_sub(len))
            });
        st.mark_dirty(ino);
        Ok(())
    }

    /// Commit every staged file (of `item`, or all), in parallel on rayon's pool.
    pub(super) fn commit_all(&self, item: Option<&str>) -> VResult<()> {
        let inos: Vec<u64> = {
            let st = self.lock();
            st.staged
                .iter()
                .copied()
                .filter(|i| item.is_none_or(|it| st.nodes.get(i).is_some_and(|n| &*n.item == it)))
                .collect()
        };
        use rayon::prelude::*;
        inos.par_iter().try_for_each(|ino| self.commit(*ino))
    }
}

/// Take closed files off the queue and store them, until the incoming trees are gone.
pub(super) fn commit_worker(inc: Weak<Incoming>, rx: Arc<Mutex<std::sync::mpsc::Receiver<u64>>>) {
    use std::sync::mpsc::TryRecvError;
    loop {
        let queued = rx.lock().try_recv();
        let next = match queued {
            Ok(ino) => Ok(ino),
            Err(TryRecvError::Disconnected) => return,
            Err(TryRecvError::Empty) => {
                // Let a few closed files gather: one wake-up per batch instead of per file
                // (context switches were most of the daemon's CPU during an rsync).
                std::thread::sleep(COMMIT_GATHER);
                rx.lock().recv()
            }
        };
        let Ok(ino) = next else { return };
        let Some(me) = inc.upgrade() else { return };
        // A panic (a bug; the hook logs it) loses this commit, not the worker: the file stays
        // staged and is stored at the next snapshot or unmount.
        let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| me.commit(ino)));
        if let Ok(Err(e)) = done {
            tracing::warn!("storing a closed incoming file failed: {}", e.for_log());
        }
    }
}
