//! Reading files of points: through the chunk cache, with the next chunks fetched ahead of a
//! sequential reader, the next files of the directory fetched ahead of tar, cp and rsync, and
//! small files pushed whole into the door's page cache (FUSE_NOTIFY_STORE) at open.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::Points;
use super::inodes::{self, Entry, PointCtx, Push};
use super::trees::NodeRef;
use crate::format::{ChunkRef, Node, NodeKind};
use crate::vault::Vault;
use crate::view::chunks::{ChunkCache, load_chunk};
use crate::view::error::{ViewError, ViewResult};
use crate::view::kernel::KernelCache;

/// Chunks fetched ahead of a sequential reader.
const READAHEAD_CHUNKS: usize = 2;

/// Files after an opened one that are fetched ahead (their first chunk, or all of a small one).
const READAHEAD_FILES: usize = 8;

/// Files up to this size are pushed whole into the kernel's page cache (see [`push`]).
const PUSH_MAX_BYTES: u64 = 256 * 1024;

/// How long an open waits for a push of its file by another thread.
const PUSH_WAIT: Duration = Duration::from_secs(5);

/// An open file inside a point.
pub(super) struct OpenFile {
    pub(super) point: Arc<PointCtx>,
    pub(super) chunks: Vec<ChunkRef>,
    /// Offset of each chunk in the file.
    pub(super) starts: Vec<u64>,
    pub(super) size: u64,
    /// Where the previous read ended, to recognise sequential reading.
    pub(super) next_offset: AtomicU64,
}

impl Points {
    pub fn release(&self, fh: u64) {
        self.files.lock().remove(&fh);
    }

    /// Open a file for reading; any write access is refused.
    pub fn open(&self, ino: u64, write: bool) -> ViewResult<u64> {
        let entry = self.entry(ino)?;
        if write {
            return Err(ViewError::ReadOnly);
        }
        let (file, node) = self.open_file(&entry)?;
        // Unless read-ahead pushed it already; if someone is pushing it now, wait for that, so
        // no READ of this file is ever in flight during a push (the push would wait on the
        // pages the READ holds, in a thread the READ may need).
        if pushable(&node, file.size) && self.kernel.get().keeps_pages() {
            if self
                .inodes
                .advance_push(ino, &[Push::No, Push::Queued], Push::Pushing)
            {
                push(
                    self.kernel.get(),
                    &self.chunks,
                    &self.vault,
                    ino,
                    node.size,
                    &node.chunks,
                );
                self.inodes.finish_push(ino);
            } else {
                self.inodes.wait_push(ino, PUSH_WAIT);
            }
        }
        let fh = self.next_handle.fetch_add(1, Ordering::Relaxed);
        self.files.lock().insert(fh, file);
        Ok(fh)
    }

    /// The file `ino` names, as read needs it, and its node; fetches the files after it in
    /// its directory ahead of the reader.
    fn open_file(&self, entry: &Entry) -> ViewResult<(Arc<OpenFile>, Node)> {
        let Entry::Node { point, parent, .. } = entry else {
            return Err(ViewError::IsDir);
        };
        let Some(NodeRef::InTree(tree, idx)) = self.node(entry)? else {
            return Err(ViewError::Invalid);
        };
        let node = &tree.nodes[idx];
        if node.kind != NodeKind::File {
            return Err(ViewError::Invalid);
        }
        let mut starts = Vec::with_capacity(node.chunks.len());
        let mut pos = 0u64;
        for c in &node.chunks {
            starts.push(pos);
            pos += c.len as u64;
        }
        self.fetch_next_files(point, *parent, &tree.nodes[idx + 1..]);
        let file = OpenFile {
            point: point.clone(),
            chunks: node.chunks.clone(),
            starts,
            size: pos,
            next_offset: AtomicU64::new(0),
        };
        Ok((Arc::new(file), node.clone()))
    }

    /// The file read as `ino` without a handle (the FUSE door opens files without asking):
    /// kept for the next reads while the kernel knows the inode, a few hundred at most.
    fn file_of(&self, ino: u64) -> ViewResult<Arc<OpenFile>> {
        if let Some(f) = self.unopened.lock().get(&ino) {
            return Ok(f.clone());
        }
        let entry = self.entry(ino)?;
        let (file, _) = self.open_file(&entry)?;
        self.unopened.lock().put(ino, file.clone());
        Ok(file)
    }

    /// A file's reader went away with its inode.
    pub(super) fn forget_file(&self, ino: u64) {
        self.unopened.lock().pop(&ino);
    }

    /// Read file `ino`, through handle `fh` if it has one.
    pub fn read(&self, ino: u64, fh: Option<u64>, offset: u64, size: u32) -> ViewResult<Vec<u8>> {
        let opened = fh.and_then(|fh| self.files.lock().get(&fh).cloned());
        let file = match opened {
            Some(f) => f,
            None => self.file_of(ino)?,
        };
        if offset >= file.size || size == 0 {
            return Ok(Vec::new());
        }
        let end = file.size.min(offset + size as u64);
        let mut out = Vec::with_capacity((end - offset) as usize);
        let mut i = file.starts.partition_point(|s| *s <= offset) - 1;
        let mut pos = offset;
        while pos < end {
            let data = load_chunk(&self.chunks, &self.vault, file.chunks[i])
                .inspect_err(|e| super::trees::damaged(&self.vault, &file.point, e))?;
            let from = (pos - file.starts[i]) as usize;
            let to = ((end - file.starts[i]) as usize).min(data.len());
            out.extend_from_slice(&data[from..to]);
            pos = file.starts[i] + to as u64;
            i += 1;
        }
        if file.next_offset.swap(end, Ordering::Relaxed) == offset {
            self.read_ahead(&file, i);
        }
        Ok(out)
    }

    /// Whoever reads files one after another (tar, cp -r, rsync) reads them in listing order:
    /// fetch the next few files of the directory while this one is read. Small ones the
    /// kernel knows are pushed whole; of the others, the first chunk is loaded into the cache.
    pub(super) fn fetch_next_files(&self, point: &PointCtx, parent: u64, after: &[Node]) {
        let next = after
            .iter()
            .filter(|n| n.kind == NodeKind::File && !n.chunks.is_empty())
            .take(READAHEAD_FILES);
        for n in next {
            let ino = inodes::node_ino(point.ino, parent, n);
            if pushable(n, n.size)
                && let Some(kernel) = self.kernel.shared().filter(|k| k.keeps_pages())
                && self.inodes.advance_push(ino, &[Push::No], Push::Queued)
            {
                let (cache, vault) = (self.chunks.clone(), self.vault.clone());
                let (inodes, chunks) = (self.inodes.clone(), n.chunks.clone());
                let size = n.size;
                self.prefetcher.spawn(move || {
                    // Unless the file was opened meanwhile: then the opener pushed it.
                    if inodes.advance_push(ino, &[Push::Queued], Push::Pushing) {
                        push(kernel.as_ref(), &cache, &vault, ino, size, &chunks);
                        inodes.finish_push(ino);
                    }
                });
            } else {
                self.prefetch(n.chunks.first().into_iter());
            }
        }
    }

    /// Fetch the chunks after `next` in the background.
    pub(super) fn read_ahead(&self, file: &OpenFile, next: usize) {
        self.prefetch(file.chunks.iter().skip(next).take(READAHEAD_CHUNKS));
    }

    /// Load chunks into the cache in the background (the read-ahead pool), skipping cached ones.
    pub(super) fn prefetch<'a>(&self, chunks: impl Iterator<Item = &'a ChunkRef>) {
        for c in chunks {
            if self.chunks.contains(&c.id) {
                continue;
            }
            let (cache, vault, c) = (self.chunks.clone(), self.vault.clone(), *c);
            self.prefetcher.spawn(move || {
                let _ = load_chunk(&cache, &vault, c);
            });
        }
    }
}

/// A file whose content is pushed: non-empty, small, and not hard-linked (links share one
/// inode, whose size the kernel took from whichever link it met first).
fn pushable(node: &Node, size: u64) -> bool {
    size > 0 && size <= PUSH_MAX_BYTES && node.link_group == 0
}

/// Push a small file's content into the kernel's page cache (FUSE_NOTIFY_STORE), so that
/// reading it costs no READ request, and no GETATTR after it either: the kernel marks a file's
/// atime stale after every READ it sends, and `tar` stats each file it has read. Only
/// authenticated data whose length is the file's size is pushed (a push past the size would
/// grow the file in the kernel's eyes); a damaged file is left to `read`, which answers EIO.
fn push(
    kernel: &dyn KernelCache,
    cache: &ChunkCache,
    vault: &Vault,
    ino: u64,
    size: u64,
    chunks: &[ChunkRef],
) {
    let mut data = Vec::with_capacity(chunks.iter().map(|c| c.len as usize).sum());
    for c in chunks {
        match load_chunk(cache, vault, *c) {
            Ok(d) => data.extend_from_slice(&d),
            Err(_) => return,
        }
    }
    if data.len() as u64 == size {
        kernel.store(ino, &data);
    }
}
