//! The writable `incoming/ITEM/` trees: a POSIX directory tree per item, held by the daemon,
//! whose file data goes into the vault as it is closed and which `snapshot` freezes into a
//! point.
//!
//! - Inodes are allocated (`1 << 63 | n`), so they never meet the derived numbers of points.
//!   A directory's entries are loaded from its saved tree the first time it is used.
//! - A file being written lives in an anonymous staging file outside the vault; when the last
//!   handle closes (or on fsync or snapshot) it is chunked, sealed and packed by the commit
//!   workers, and keeps only its chunk list. Reads of committed files go through the chunk cache.
//! - A directory keeps the id of its saved tree until something in it changes, so saving (every
//!   few seconds while dirty, on fsync, on snapshot) writes only the changed directories.
//! - A staging file stays referenced after its commit until the chunks are known durable (the
//!   next save checks the index), so a failed pack write never loses written data silently.
//!
//! Locks: `freeze` (read by every change, write by save and snapshot, so they see a still tree),
//! then `state` (all metadata). File data is read and written outside `state`. None of them is
//! poisoned by a panicking request: the next one finds the state as the panic left it, which
//! every change keeps consistent step by step.
//!
//! Modules: `state` (the live inodes and directories), `tree` (loading them from saved trees),
//! `names` (lookups and every change to the namespace), `attrs` (attributes and xattrs),
//! `data` (handles, reads, writes, truncation, staging and space checks), `commit` (storing
//! closed files), `save` (settling, saving the trees, snapshots), `staging` (where written
//! data waits).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard, RwLock};

use super::chunks::ChunkCache;
use super::error::{ViewError, ViewResult};
use super::kernel::Kernel;
use crate::format::{PointOrigin, PointRecord};
use crate::store::BlobId;
use crate::vault::incoming::{LiveIncoming, Totals};
use crate::vault::{Result as VResult, Vault};
use commit::commit_worker;
use save::saver_loop;
use staging::Staging;
use state::State;

mod attrs;
mod commit;
mod data;
mod names;
mod save;
mod scratch;
mod staging;
mod state;
mod tree;

/// How often a changed incoming tree is saved.
const SAVE_EVERY: Duration = Duration::from_secs(5);

/// How often the saver thread looks for files to store (see `commit::QUIET`).
const QUIET_TICK: Duration = Duration::from_millis(100);

/// [`SAVE_EVERY`]; a test-hooks build takes it from `VAULTFS_TEST_SAVE_EVERY_MS` when set, so a
/// test can tell what a save made durable from what a `sync` did.
fn save_every() -> Duration {
    #[cfg(feature = "test-hooks")]
    if let Some(ms) = std::env::var("VAULTFS_TEST_SAVE_EVERY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return Duration::from_millis(ms);
    }
    SAVE_EVERY
}

/// Writes fail with ENOSPC when the vault's filesystem would keep less free space than this
/// after taking the data still waiting in staging files.
const RESERVE_BYTES: u64 = 16 << 20;

/// Threads chunking and sealing closed files.
const COMMIT_THREADS: usize = 2;

/// How long an idle commit worker lets closed files gather before it waits for the next.
const COMMIT_GATHER: Duration = Duration::from_millis(5);

struct Handle {
    ino: u64,
}

pub struct Incoming {
    vault: Arc<Vault>,
    chunks: Arc<ChunkCache>,
    staging: Arc<Staging>,
    freeze: RwLock<()>,
    /// One save or snapshot at a time: each writes the next record revision.
    save_lock: Mutex<()>,
    state: Mutex<State>,
    handles: Mutex<HashMap<u64, Handle>>,
    next_handle: AtomicU64,
    /// Files written and not yet queued for storing, with the time of their last write (see
    /// `commit::QUIET`).
    written: Mutex<HashMap<u64, Instant>>,
    /// Closed files waiting to be stored, taken by the commit workers.
    queue: std::sync::mpsc::Sender<u64>,
    /// Bumped by each `settle`; a commit records the value it finished under.
    epoch: AtomicU64,
    /// Bytes written to staging files and not yet committed.
    waiting_bytes: AtomicU64,
    /// (when, free bytes) of the vault's filesystem, refreshed at most every 250 ms.
    space: Mutex<Option<(Instant, u64)>>,
    /// Set when a commit ran out of space; writes fail until space is back.
    full: AtomicBool,
    totals: Mutex<HashMap<BlobId, Totals>>,
    stop: (Mutex<bool>, Condvar),
    /// Tells the kernel about changes it cannot see (a mode set through an ACL).
    kernel: Kernel,
}

fn io_err(op: &'static str, e: std::io::Error) -> ViewError {
    ViewError::io(op, STAGING_FILE, e)
}

const STAGING_FILE: &str = "staging file";

/// A name a new entry may take (its length is checked by the view, for every side).
fn check_name(name: &[u8]) -> ViewResult<()> {
    if name.is_empty() || name.contains(&b'/') || name == b"." || name == b".." {
        return Err(ViewError::Invalid);
    }
    Ok(())
}

impl Incoming {
    pub fn new(
        vault: Arc<Vault>,
        chunks: Arc<ChunkCache>,
        staging_base: &std::path::Path,
        kernel: Kernel,
    ) -> ViewResult<Arc<Incoming>> {
        let vault_id = vault.vault_id().to_string();
        let staging = Staging::new(staging_base, &vault_id)
            .map_err(|e| ViewError::io("create staging directory in", staging_base, e))?;
        let (queue, rx) = std::sync::mpsc::channel::<u64>();
        let rx = Arc::new(Mutex::new(rx));
        let inc = Arc::new(Incoming {
            vault,
            chunks,
            staging,
            freeze: RwLock::new(()),
            save_lock: Mutex::new(()),
            state: Mutex::new(State::default()),
            handles: Mutex::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
            written: Mutex::new(HashMap::new()),
            queue,
            epoch: AtomicU64::new(0),
            waiting_bytes: AtomicU64::new(0),
            space: Mutex::new(None),
            full: AtomicBool::new(false),
            totals: Mutex::new(HashMap::new()),
            stop: (Mutex::new(false), Condvar::new()),
            kernel,
        });
        let weak: Weak<dyn LiveIncoming> = Arc::downgrade(&inc) as Weak<dyn LiveIncoming>;
        inc.vault.set_live_incoming(weak);
        // Plain threads on a channel: an idle rayon pool spins (sched_yield) between files,
        // which cost as much CPU as compressing them.
        for i in 0..COMMIT_THREADS {
            let (me, rx) = (Arc::downgrade(&inc), rx.clone());
            std::thread::Builder::new()
                .name(format!("commit-{i}"))
                .spawn(move || commit_worker(me, rx))
                .map_err(|e| ViewError::io("start", "commit threads", e))?;
        }
        let saver = Arc::downgrade(&inc);
        std::thread::Builder::new()
            .name("incoming-saver".into())
            .spawn(move || saver_loop(saver))
            .map_err(|e| ViewError::io("start", "the saver thread", e))?;
        Ok(inc)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// The item inode `ino` belongs to.
    pub fn item_of(&self, ino: u64) -> ViewResult<Arc<str>> {
        Ok(self.lock().get(ino)?.item.clone())
    }
}

impl LiveIncoming for Incoming {
    fn snapshot(&self, item: &str, origin: PointOrigin) -> VResult<PointRecord> {
        let p = self.snapshot_item(item, origin)?;
        tracing::info!("snapshot of an incoming item: point {}", p.name);
        Ok(p)
    }

    fn save(&self) -> VResult<()> {
        Incoming::save(self)
    }
}
