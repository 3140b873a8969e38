//! Saving the incoming trees (every few seconds while changed, on fsync, at unmount) and
//! freezing an item's tree into a point: settle what was stored, write the trees of changed
//! directories bottom-up, then the records, in the vault's write order.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Instant;

use super::state::{Data, State};
use super::{Incoming, QUIET_TICK, save_every};
use crate::format::{IncomingRecord, Node, PointOrigin, PointRecord, Tree};
use crate::vault::incoming::Totals;
use crate::vault::{Result as VResult, VaultError, now_ns, tree};
use crate::view::error::ViewResult;

impl Incoming {
    /// Make file `ino`'s content durable (with `None`: the trees only), then save.
    pub fn fsync(&self, ino: Option<u64>) -> ViewResult<()> {
        if let Some(ino) = ino {
            self.commit(ino)?;
        }
        Ok(self.save()?)
    }

    /// Make everything put so far durable, then drop the staging files of closed, committed
    /// files whose chunks are indexed. A committed file with a chunk missing from the index
    /// (lost in a failed pack write, or a commit racing this flush) is committed again.
    pub(super) fn settle(&self) -> VResult<()> {
        // Commits that finish from here on may have put after the flush: not checked now.
        let epoch = self.epoch.fetch_add(1, Ordering::SeqCst);
        self.vault.store().flush()?;
        let index = self.vault.store().index();
        let mut st = self.lock();
        let candidates: Vec<u64> = st.staged.iter().copied().collect();
        let mut again = Vec::new();
        for ino in candidates {
            let Some(i) = st.nodes.get_mut(&ino) else {
                st.staged.remove(&ino);
                continue;
            };
            if i.open > 0 {
                continue;
            }
            let Data::File(f) = &mut i.data else { continue };
            if f.uncommitted() || f.committed_epoch > epoch {
                continue;
            }
            let mut durable = true;
            for c in f.chunks.iter() {
                if !index.contains(&c.id)? {
                    durable = false;
                    break;
                }
            }
            if durable {
                f.staged = None;
                st.staged.remove(&ino);
            } else {
                tracing::warn!("a stored incoming file is not in the index yet; storing it again");
                f.committed = f.version.wrapping_add(1);
                again.push(ino);
            }
        }
        drop(st);
        for ino in again {
            self.commit_later(ino);
        }
        Ok(())
    }

    /// Save every changed item's incoming tree and record.
    pub fn save(&self) -> VResult<()> {
        let _one = self.save_lock.lock();
        self.settle()?;
        let failures_before = self.vault.store().failures();
        let mut saved_dirs = Vec::new();
        let mut recs = Vec::new();
        let mut gens = Vec::new();
        let built = (|| -> VResult<()> {
            let mut st = self.lock();
            let items: Vec<(Arc<str>, u64)> =
                st.dirty.iter().map(|(k, v)| (k.clone(), *v)).collect();
            for (item, generation) in items {
                gens.push((item.clone(), generation));
                let Some(root) = st.roots.get(&*item).copied() else {
                    continue;
                };
                let (node, _) = self.save_node(&mut st, root, Vec::new(), &mut saved_dirs)?;
                let revision = st.revisions.get(&item).copied().unwrap_or(0) + 1;
                recs.push(IncomingRecord {
                    item: item.to_string(),
                    root: node,
                    saved_ns: now_ns(),
                    revision,
                });
            }
            Ok(())
        })();
        let result = built.and_then(|_| {
            if recs.is_empty() {
                return Ok(());
            }
            self.vault.save_incoming(recs.clone(), failures_before)
        });
        let mut st = self.lock();
        match result {
            Ok(()) => {
                for r in recs {
                    st.revisions.insert(r.item.as_str().into(), r.revision);
                }
                for (item, generation) in gens {
                    if st.dirty.get(&item) == Some(&generation) {
                        st.dirty.remove(&item);
                    }
                }
                Ok(())
            }
            Err(e) => {
                unsave(&mut st, &saved_dirs);
                Err(e)
            }
        }
    }

    /// The tree node of `ino` named `name`, saving its directory trees where they changed.
    pub(super) fn save_node(
        &self,
        st: &mut State,
        ino: u64,
        name: Vec<u8>,
        saved_dirs: &mut Vec<u64>,
    ) -> VResult<(Node, Totals)> {
        let i = st
            .get(ino)
            .map_err(|_| VaultError::Internal("incoming inode vanished"))?;
        let mut node = Node {
            name,
            kind: i.kind,
            mode: i.mode,
            uid: i.uid,
            gid: i.gid,
            mtime_ns: i.mtime_ns,
            size: 0,
            chunks: Vec::new(),
            subtree: None,
            target: i.target.clone(),
            xattrs: i
                .xattrs
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            link_group: if i.nlink > 1 { i.link_group } else { 0 },
            nlink: match &i.data {
                Data::Dir(d) => d.subdirs.map_or(1, |n| 2 + n),
                _ => i.nlink,
            },
            rdev: i.rdev,
            src_ino: 0,
            ctime_ns: i.ctime_ns,
        };
        let mut totals = Totals::default();
        match &i.data {
            Data::File(f) => {
                node.chunks = f.chunks.to_vec();
                node.size = f.committed_size;
                if f.uncommitted() {
                    // Still being written: the saved state has the last committed content, and
                    // a zero mtime so rsync's quick check sends the file again after a crash.
                    node.mtime_ns = 0;
                }
                totals.files = 1;
                totals.bytes = node.size;
            }
            Data::Other => totals.files = 1,
            Data::Dir(d) => {
                if let Some(id) = d.saved {
                    node.subtree = Some(id);
                    let mut cache = self.totals.lock();
                    totals = self.vault.totals(&Some(id), &mut cache)?;
                } else {
                    let children: Vec<(Vec<u8>, u64)> = d
                        .children
                        .as_ref()
                        .map(|c| c.iter().map(|(k, v)| (k.clone(), *v)).collect())
                        .unwrap_or_default();
                    let mut nodes = Vec::with_capacity(children.len());
                    totals.dirs = 1;
                    for (n, c) in children {
                        let (child, t) = self.save_node(st, c, n, saved_dirs)?;
                        nodes.push(child);
                        totals.add(t);
                    }
                    let id = tree::save(self.vault.store(), &Tree { nodes })?;
                    self.totals.lock().insert(id, totals);
                    if let Ok(i) = st.get_mut(ino)
                        && let Data::Dir(d) = &mut i.data
                    {
                        d.saved = Some(id);
                    }
                    saved_dirs.push(ino);
                    node.subtree = Some(id);
                }
            }
        }
        Ok((node, totals))
    }

    /// Stop the saver thread, store every staged file and save (unmount).
    pub fn shutdown(&self) -> VResult<()> {
        {
            let (lock, cv) = &self.stop;
            *lock.lock() = true;
            cv.notify_all();
        }
        self.commit_all(None)?;
        self.save()?;
        // Everything is stored: the staging directory is not needed until the next mount.
        let _ = std::fs::remove_dir(self.staging.dir());
        Ok(())
    }

    pub(super) fn snapshot_item(&self, item: &str, origin: PointOrigin) -> VResult<PointRecord> {
        let _one = self.save_lock.lock();
        // No change may land between storing the staged files and building the trees.
        let freeze = self.freeze.write();
        let failures_before = self.vault.store().failures();
        self.commit_all(Some(item))?;
        self.settle()?;
        // A file whose chunks were lost in a failed pack write is stored again.
        self.commit_all(Some(item))?;
        let created_ns = now_ns();
        let mut saved_dirs = Vec::new();
        let (root, totals, revision, generation) = {
            let mut st = self.lock();
            let root = self
                .root_of(&mut st, item)
                .map_err(|_| VaultError::UnknownItem(item.into()))?;
            match self.save_node(&mut st, root, Vec::new(), &mut saved_dirs) {
                Ok((node, totals)) => {
                    let item: Arc<str> = item.into();
                    let rev = st.revisions.get(&item).copied().unwrap_or(0) + 1;
                    (node, totals, rev, st.dirty.get(&item).copied())
                }
                Err(e) => {
                    unsave(&mut st, &saved_dirs);
                    return Err(e);
                }
            }
        };
        drop(freeze);
        let rec = IncomingRecord {
            item: item.into(),
            root: root.clone(),
            saved_ns: created_ns,
            revision,
        };
        let result = self.vault.commit_point_with(
            item,
            created_ns,
            root,
            totals.as_tuple(),
            origin,
            Some(rec),
            failures_before,
        );
        let mut st = self.lock();
        match &result {
            Ok(_) => {
                let item: Arc<str> = item.into();
                st.revisions.insert(item.clone(), revision);
                if st.dirty.get(&item).copied() == generation {
                    st.dirty.remove(&item);
                }
            }
            Err(_) => unsave(&mut st, &saved_dirs),
        }
        result
    }
}

/// Trees saved by a save or snapshot that failed are not durable: forget their ids.
fn unsave(st: &mut State, dirs: &[u64]) {
    for ino in dirs {
        if let Ok(i) = st.get_mut(*ino)
            && let Data::Dir(d) = &mut i.data
        {
            d.saved = None;
        }
    }
}

/// Queue files that went quiet for storing, and save changed incoming trees every few
/// seconds, until shut down.
pub(super) fn saver_loop(inc: Weak<Incoming>) {
    let mut saved_at = Instant::now();
    loop {
        let Some(me) = inc.upgrade() else { return };
        {
            let (lock, cv) = &me.stop;
            let mut stopped = lock.lock();
            cv.wait_while_for(&mut stopped, |s| !*s, QUIET_TICK.min(save_every()));
            if *stopped {
                return;
            }
        }
        me.commit_quiet();
        if saved_at.elapsed() >= save_every() {
            saved_at = Instant::now();
            let dirty = !me.lock().dirty.is_empty();
            if dirty && let Err(e) = me.save() {
                tracing::warn!("saving incoming failed (will retry): {}", e.for_log());
            }
        }
        drop(me);
    }
}
