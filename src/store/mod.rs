//! The store: content-addressed, sealed blobs in packs, found through the index.
//!
//! `put` names a plaintext by its keyed hash, skips it if already stored, otherwise seals it
//! (compress + encrypt, in the caller's thread) and appends it to the open pack of its lane:
//! file data in one, trees and other metadata in another, so that listing a point reads a few
//! packs of trees nearly in order instead of one blob in every data pack. A full pack is
//! finished (made durable and moved into `packs/`) and only then indexed. `flush` waits for
//! every put and pack in flight, finishes the open packs, then fsyncs the index: after it
//! returns, every blob `put` so far is durable and indexed. Several sessions (backups through
//! the daemon, deletes) share one store: a failed pack write is counted, never cleaned up behind
//! another session's back, and a session whose start saw a lower count refuses to commit. This
//! is the one place that owns the write order "packs durable → index". Packs are objects of a
//! [`backend::Backend`]; the index is the one local database ([`index`]).

pub mod backend;
pub mod chunker;
pub mod codec;
mod error;
mod ids;
pub mod index;
pub mod pack;
pub mod salvage;
pub mod survey;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

pub use error::{Damaged, IndexProblem, Result, StoreError};
pub use ids::{BlobId, BlobKind, PackId};

use backend::{Backend, Key, Kind};
use codec::Codec;
use index::{Db, Index, Location};
use pack::{PackEntry, PackWriter};

/// The pack lane of a blob kind: file data apart from trees and other metadata.
fn lane(kind: BlobKind) -> usize {
    match kind {
        BlobKind::Data => 0,
        BlobKind::Tree | BlobKind::Meta => 1,
    }
}

/// Where packs are, under the vault's root.
pub const PACKS_DIR: &str = backend::PACKS_PREFIX;
/// Read-ahead windows remembered, one per pack being read.
const READ_AHEAD_PACKS_MAX: usize = 64;
/// After reading a small blob, the bytes of the pack that follow it to fetch ahead.
const READ_AHEAD_BYTES: u32 = 1 << 20;

/// Counters of what a session added.
#[derive(Debug, Default, Clone, Copy)]
pub struct PutStats {
    pub blobs_added: u64,
    pub sealed_bytes_added: u64,
}

pub struct Store {
    backend: Arc<dyn Backend>,
    codec: Codec,
    db: Db,
    index: Index,
    pack_target_bytes: u64,
    /// The open pack of each lane (see [`lane`]).
    writers: [Mutex<Option<PackWriter>>; 2],
    /// Blobs written to a pack that is not yet indexed: dedup must see them too.
    pending: Mutex<HashSet<BlobId>>,
    /// Held shared by each put from claiming an id until its blob is in a pack; `flush` takes
    /// it exclusively to wait for them.
    inflight: RwLock<()>,
    /// Serialises `flush`: a second flusher must not return while the first still finishes
    /// the pack that may hold the second's records.
    flush_lock: Mutex<()>,
    /// Pack writes that failed (their blobs are lost); see [`Store::failures`].
    failures: AtomicU64,
    /// Packs known to hold no file data (their header says so), for read-ahead after trees.
    metadata_packs: Mutex<HashMap<PackId, bool>>,
    /// The range of each pack last asked to be read ahead (see [`Store::read_ahead`]).
    read_ahead: Mutex<HashMap<PackId, (u64, u64)>>,
    blobs_added: AtomicU64,
    sealed_bytes_added: AtomicU64,
    /// While gc runs: ids that puts deduplicated against (they are referenced again).
    gc_touched: Mutex<Option<HashSet<BlobId>>>,
}

impl Store {
    /// Open the store of a vault whose lock the caller holds. Leftovers of unfinished packs
    /// (from a crash) are removed: nothing refers to them.
    pub fn open(
        backend: Arc<dyn Backend>,
        codec: Codec,
        db: Db,
        pack_target_bytes: u64,
    ) -> Result<Store> {
        backend.clean_leftovers()?;
        let index = Index::open(&db)?;
        Ok(Store {
            backend,
            codec,
            db,
            index,
            pack_target_bytes,
            writers: [Mutex::new(None), Mutex::new(None)],
            pending: Mutex::new(HashSet::new()),
            inflight: RwLock::new(()),
            flush_lock: Mutex::new(()),
            failures: AtomicU64::new(0),
            metadata_packs: Mutex::new(HashMap::new()),
            read_ahead: Mutex::new(HashMap::new()),
            blobs_added: AtomicU64::new(0),
            sealed_bytes_added: AtomicU64::new(0),
            gc_touched: Mutex::new(None),
        })
    }

    pub fn codec(&self) -> &Codec {
        &self.codec
    }

    /// Close the store (its database handle with it) and keep the codec (`repair`, which
    /// builds a database, closes it, and opens the vault on it).
    pub fn into_codec(self) -> Codec {
        self.codec
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn index(&self) -> &Index {
        &self.index
    }

    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    pub fn stats(&self) -> PutStats {
        PutStats {
            blobs_added: self.blobs_added.load(Ordering::Relaxed),
            sealed_bytes_added: self.sealed_bytes_added.load(Ordering::Relaxed),
        }
    }

    pub fn blob_id(&self, kind: BlobKind, plain: &[u8]) -> BlobId {
        self.codec.blob_id(kind, plain)
    }

    /// Store `plain` unless a blob with its id exists; returns the id.
    pub fn put(&self, kind: BlobKind, plain: &[u8]) -> Result<BlobId> {
        let id = self.codec.blob_id(kind, plain);
        self.put_with_id(kind, id, plain)?;
        Ok(id)
    }

    /// Store `plain` under `id` (which must be its blob id) unless present. Returns true if added.
    ///
    /// The put holds `inflight` (shared) from claiming the id until the blob is in the open
    /// pack (or a finished one): a `flush` in any session waits for it, so a session that
    /// deduplicated against a blob another thread is still sealing never commits before that
    /// blob is durable.
    pub fn put_with_id(&self, kind: BlobKind, id: BlobId, plain: &[u8]) -> Result<bool> {
        let _inflight = self.inflight.read().expect("inflight lock");
        if self.index.contains(&id)? {
            if let Some(t) = self.gc_touched.lock().expect("gc lock").as_mut() {
                t.insert(id);
            }
            return Ok(false);
        }
        if !self.pending.lock().expect("pending lock").insert(id) {
            return Ok(false);
        }
        // A pack holding `id` may have been finished (indexed, then removed from `pending`)
        // between the index check above and the insert: then it is stored already.
        if self.index.contains(&id)? {
            self.pending.lock().expect("pending lock").remove(&id);
            return Ok(false);
        }
        let full = match self.seal_and_append(kind, id, plain) {
            Ok(full) => full,
            Err(e) => {
                // Another session may already have deduplicated against this id.
                self.failures.fetch_add(1, Ordering::SeqCst);
                self.pending.lock().expect("pending lock").remove(&id);
                return Err(e);
            }
        };
        if let Some(w) = full {
            self.finish_pack(w)?;
        }
        Ok(true)
    }

    /// Seal and append to the open pack; returns the pack if it is now full.
    fn seal_and_append(
        &self,
        kind: BlobKind,
        id: BlobId,
        plain: &[u8],
    ) -> Result<Option<PackWriter>> {
        if plain.len() > codec::MAX_BLOB_BYTES {
            return Err(StoreError::TooLarge {
                what: "blob",
                bytes: plain.len() as u64,
                limit: codec::MAX_BLOB_BYTES as u64,
            });
        }
        let sealed = self.codec.seal(kind, &id, plain)?;
        let mut guard = self.writers[lane(kind)].lock().expect("writer lock");
        if guard.is_none() {
            *guard = Some(PackWriter::create(self.backend())?);
        }
        let w = guard.as_mut().expect("writer present");
        w.append(&self.codec, kind, id, &sealed)?;
        self.blobs_added.fetch_add(1, Ordering::Relaxed);
        self.sealed_bytes_added
            .fetch_add(sealed.len() as u64, Ordering::Relaxed);
        Ok(if w.size() >= self.pack_target_bytes {
            guard.take()
        } else {
            None
        })
    }

    /// Make a pack durable, then index its blobs. The caller holds `inflight`.
    fn finish_pack(&self, w: PackWriter) -> Result<()> {
        let ids: Vec<BlobId> = w.ids().collect();
        let result = w
            .finish(&self.codec)
            .and_then(|(pack, entries)| self.index.insert_pack(pack, &entries));
        let mut pending = self.pending.lock().expect("pending lock");
        for id in &ids {
            pending.remove(id);
        }
        if result.is_err() {
            // Its blobs are lost; sessions that used them see the failure count move.
            self.failures.fetch_add(1, Ordering::SeqCst);
        }
        result
    }

    /// How many pack writes have failed since the store was opened. A session notes it when it
    /// starts and must not commit if it moved: some blob it relies on may be lost.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::SeqCst)
    }

    /// Wait for every put and pack in flight, finish the open packs, fsync the index. After
    /// `Ok`, every blob put so far (by any thread) is durable and indexed, unless
    /// [`Store::failures`] moved.
    pub fn flush(&self) -> Result<()> {
        let _serial = self.flush_lock.lock().expect("flush lock");
        let _all = self.inflight.write().expect("inflight lock");
        for writer in &self.writers {
            let open = writer.lock().expect("writer lock").take();
            if let Some(w) = open {
                if w.is_empty() {
                    w.abandon();
                } else {
                    self.finish_pack(w)?;
                }
            }
        }
        self.db.flush()
    }

    /// Look up, read, authenticate and decompress a blob.
    pub fn get(&self, kind: BlobKind, id: &BlobId) -> Result<Vec<u8>> {
        let loc = self.index.get(id)?.ok_or(StoreError::MissingBlob(*id))?;
        if loc.kind != kind {
            return Err(StoreError::corrupt(
                Damaged::IndexEntry(*id),
                format!("says a {:?} where a {kind:?} is referred to", loc.kind),
            ));
        }
        match self.get_at(id, &loc) {
            // gc may have moved the blob and deleted its old pack since the lookup.
            Err(StoreError::Missing(Key::Pack(_))) => match self.index.get(id)? {
                Some(now) if now.pack != loc.pack => self.get_at(id, &now),
                _ => Err(StoreError::Missing(Key::Pack(loc.pack))),
            },
            other => other,
        }
    }

    /// Read a blob at a known location.
    pub fn get_at(&self, id: &BlobId, loc: &Location) -> Result<Vec<u8>> {
        let sealed = pack::read_sealed(self.backend(), &loc.pack, loc.offset, loc.len)?;
        if loc.len < READ_AHEAD_BYTES
            && (loc.kind == BlobKind::Data || self.holds_no_data(&loc.pack))
        {
            // Blobs of neighbouring files sit next to each other in a pack (written in walk
            // order), and so do the trees of neighbouring directories: ask the kernel for what
            // follows, so the next small read is not a disk wait. Not after a tree in a pack
            // that also holds data (written before trees had their own lane): a `find` reading
            // 5k trees had the kernel read the whole vault ahead of it.
            self.read_ahead(&loc.pack, loc.offset as u64 + loc.len as u64);
        }
        self.codec.open_owned(loc.kind, id, sealed).map_err(|e| {
            e.into_store(Damaged::Blob {
                id: *id,
                pack: loc.pack,
            })
        })
    }

    // ---------------------------------------------------------------------------------------
    // Garbage collection (the plan and its order are in `vault::gc`)

    /// Start recording the blobs puts deduplicate against.
    pub fn gc_begin(&self) {
        *self.gc_touched.lock().expect("gc lock") = Some(HashSet::new());
    }

    pub fn gc_end(&self) {
        *self.gc_touched.lock().expect("gc lock") = None;
    }

    /// With every put held off: keep out of `dead` what a put deduplicated against since
    /// [`Store::gc_begin`], forget the rest in the index, fsync it, and return it. Afterwards a
    /// put of such content writes a new copy.
    pub fn gc_forget(&self, mut dead: HashSet<BlobId>) -> Result<HashSet<BlobId>> {
        let _all = self.inflight.write().expect("inflight lock");
        if let Some(t) = self.gc_touched.lock().expect("gc lock").as_ref() {
            dead.retain(|id| !t.contains(id));
        }
        for id in &dead {
            self.index.remove(id)?;
        }
        self.db.flush()?;
        Ok(dead)
    }

    /// Copy blobs, sealed as they are, from their packs into new packs, durable and indexed.
    /// Returns the bytes written.
    pub fn gc_copy(&self, blobs: &[(PackId, PackEntry)]) -> Result<u64> {
        let mut writers: [Option<PackWriter>; 2] = [None, None];
        let mut written = 0;
        for (pack, e) in blobs {
            let sealed = pack::read_sealed(self.backend(), pack, e.offset, e.len)?;
            let writer = &mut writers[lane(e.kind)];
            let w = match writer {
                Some(w) => w,
                None => writer.insert(PackWriter::create(self.backend())?),
            };
            w.append(&self.codec, e.kind, e.id, &sealed)?;
            written += sealed.len() as u64;
            if w.size() >= self.pack_target_bytes
                && let Some(w) = writer.take()
            {
                let (id, entries) = w.finish(&self.codec)?;
                self.index.insert_pack(id, &entries)?;
            }
        }
        for w in writers.into_iter().flatten() {
            let (id, entries) = w.finish(&self.codec)?;
            self.index.insert_pack(id, &entries)?;
        }
        self.db.flush()?;
        Ok(written)
    }

    /// Delete a pack nothing indexed refers to any more. Returns its size.
    pub fn gc_delete_pack(&self, pack: &PackId) -> Result<u64> {
        let key = Key::Pack(*pack);
        let size = match self.backend.size(key) {
            Ok(n) => n,
            Err(StoreError::Missing(_)) => return Ok(0),
            Err(e) => return Err(e),
        };
        self.metadata_packs.lock().expect("kinds lock").remove(pack);
        self.read_ahead
            .lock()
            .expect("read-ahead lock")
            .remove(pack);
        Ok(if self.backend.delete(key)? { size } else { 0 })
    }

    /// Ask the backend to fetch the [`READ_AHEAD_BYTES`] of `pack` after `next`, unless the
    /// last request for that pack covers most of them: locally each request walks the page
    /// cache over the whole range, and a `tar` reads tens of blobs per window.
    fn read_ahead(&self, pack: &PackId, next: u64) {
        let ahead = READ_AHEAD_BYTES as u64;
        {
            let mut windows = self.read_ahead.lock().expect("read-ahead lock");
            if let Some((from, to)) = windows.get(pack)
                && (*from..to.saturating_sub(ahead / 2)).contains(&next)
            {
                return;
            }
            if windows.len() >= READ_AHEAD_PACKS_MAX {
                windows.clear();
            }
            windows.insert(*pack, (next, next + ahead));
        }
        self.backend.will_need(Key::Pack(*pack), next, ahead);
    }

    /// True if `pack` holds no file data, by its header (read once per pack and remembered).
    fn holds_no_data(&self, pack: &PackId) -> bool {
        if let Some(known) = self.metadata_packs.lock().expect("kinds lock").get(pack) {
            return *known;
        }
        let no_data = pack::read_header(&self.codec, self.backend(), pack)
            .is_ok_and(|entries| entries.iter().all(|e| e.kind != BlobKind::Data));
        self.metadata_packs
            .lock()
            .expect("kinds lock")
            .insert(*pack, no_data);
        no_data
    }

    /// Every pack, sorted by id.
    pub fn list_packs(&self) -> Result<Vec<PackId>> {
        Ok(self
            .list_packs_sized()?
            .into_iter()
            .map(|(p, _)| p)
            .collect())
    }

    /// Every pack with its size in bytes, sorted by id.
    pub fn list_packs_sized(&self) -> Result<Vec<(PackId, u64)>> {
        packs_sized(self.backend.as_ref())
    }

    pub fn read_pack_header(&self, pack: &PackId) -> Result<Vec<PackEntry>> {
        pack::read_header(&self.codec, self.backend(), pack)
    }
}

/// Every pack of `backend` with its size in bytes, sorted by id.
pub(crate) fn packs_sized(backend: &dyn Backend) -> Result<Vec<(PackId, u64)>> {
    let mut out: Vec<(PackId, u64)> = backend
        .list(Kind::Pack)?
        .into_iter()
        .filter_map(|o| match o.key {
            Key::Pack(id) => Some((id, o.size)),
            _ => None,
        })
        .collect();
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::MasterKey;

    fn store(dir: &std::path::Path) -> Store {
        backend::local::LocalBackend::new(dir).init().unwrap();
        store_at(dir)
    }

    /// The store of `dir`, its index reopened (a fresh key: only for reads that fail before
    /// authentication).
    fn store_at(dir: &std::path::Path) -> Store {
        let index = dir.join("index");
        let db = match Db::open(&index, b"test", None) {
            Ok(db) => db,
            Err(_) => Db::create(&index, b"test").unwrap(),
        };
        let codec = Codec::new(MasterKey::generate().unwrap().derive(), 3);
        Store::open(
            Arc::new(backend::local::LocalBackend::new(dir)),
            codec,
            db,
            64 << 10,
        )
        .unwrap()
    }

    #[test]
    fn trees_and_data_go_to_packs_of_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let mut ids = Vec::new();
        // Interleaved, as a backup writes them; enough of both to fill several packs.
        for i in 0..200u32 {
            let mut data = vec![0u8; 4096];
            blake3::Hasher::new()
                .update(&i.to_le_bytes())
                .finalize_xof()
                .fill(&mut data);
            ids.push((BlobKind::Data, s.put(BlobKind::Data, &data).unwrap()));
            let tree = format!("tree {i} {}", "x".repeat(600 + i as usize));
            ids.push((
                BlobKind::Tree,
                s.put(BlobKind::Tree, tree.as_bytes()).unwrap(),
            ));
        }
        s.flush().unwrap();
        let packs = s.list_packs().unwrap();
        let (mut data_packs, mut tree_packs) = (0, 0);
        for p in &packs {
            let kinds: HashSet<BlobKind> = s
                .read_pack_header(p)
                .unwrap()
                .iter()
                .map(|e| e.kind)
                .collect();
            assert_eq!(kinds.len(), 1, "pack {p} mixes kinds: {kinds:?}");
            if kinds.contains(&BlobKind::Data) {
                data_packs += 1;
                assert!(!s.holds_no_data(p));
            } else {
                tree_packs += 1;
                assert!(s.holds_no_data(p));
            }
        }
        assert!(
            data_packs >= 2 && tree_packs >= 1,
            "{data_packs} data, {tree_packs} tree packs"
        );
        for (kind, id) in ids {
            assert!(!s.get(kind, &id).unwrap().is_empty());
        }
    }

    /// Damaged stored bytes are `Corrupt`, gone ones `Missing`; a local failure keeps its errno.
    #[test]
    fn damage_and_local_failures_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let id = s.put(BlobKind::Data, &[7u8; 5000]).unwrap();
        s.flush().unwrap();
        let loc = s.index().get(&id).unwrap().unwrap();
        let path = dir.path().join(Key::Pack(loc.pack).name());
        let pristine = std::fs::read(&path).unwrap();

        let mut flipped = pristine.clone();
        flipped[loc.offset as usize + 20] ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        let e = s.get(BlobKind::Data, &id).unwrap_err();
        assert!(
            matches!(&e, StoreError::Corrupt { what: Damaged::Blob { id: i, .. }, .. } if *i == id),
            "{e:?}"
        );
        assert!(e.is_damage());
        assert!(s.get(BlobKind::Tree, &id).unwrap_err().is_damage());

        std::fs::write(&path, &pristine[..loc.offset as usize + 3]).unwrap();
        let e = s.get(BlobKind::Data, &id).unwrap_err();
        assert!(
            matches!(
                &e,
                StoreError::Corrupt {
                    what: Damaged::Object(_),
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(s.read_pack_header(&loc.pack).unwrap_err().is_damage());

        std::fs::remove_file(&path).unwrap();
        drop(s);
        let fresh = store_at(dir.path());
        let e = fresh.get(BlobKind::Data, &id).unwrap_err();
        assert!(
            matches!(e, StoreError::Missing(Key::Pack(p)) if p == loc.pack),
            "{e:?}"
        );

        // A pack path that is a directory: EISDIR, kept as such, not damage.
        std::fs::create_dir(&path).unwrap();
        let e = fresh.get(BlobKind::Data, &id).unwrap_err();
        match &e {
            StoreError::Io { source, .. } => assert_eq!(source.raw_os_error(), Some(libc::EISDIR)),
            other => panic!("{other:?}"),
        }
        assert!(!e.is_damage());
        let e = StoreError::io("open", "x", std::io::Error::from_raw_os_error(libc::EMFILE));
        assert!(
            matches!(&e, StoreError::Io { source, .. } if source.raw_os_error() == Some(libc::EMFILE))
        );
        let e = StoreError::io(
            "write",
            "x",
            std::io::Error::from_raw_os_error(libc::ENOSPC),
        );
        assert!(matches!(e, StoreError::NoSpace(_)));
    }
}
