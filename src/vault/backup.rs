//! `backup`: ingest a local directory tree as a new point.
//!
//! The walk runs on rayon's pool (one thread per core): directory entries are handled in
//! parallel, each file is read and chunked by one thread, and batches of a file's chunks are
//! sealed in parallel, so one large file still uses every core. Memory is bounded: each file in
//! flight holds one chunker buffer (2 × max chunk) and one batch (≤ BATCH_BYTES). Files whose
//! size, mtime, ctime and inode match the item's previous point keep their chunk lists unread.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rayon::prelude::*;

use crate::format::{ChunkRef, Node, NodeKind, PointRecord, Tree};
use crate::store::BlobId;

use super::ingest::{self, FileError};
use super::select::Selection;
use super::{Result, Vault, VaultError, fsmeta, names, now_ns, tree};

/// Live counters for a progress display.
#[derive(Debug, Default)]
pub struct Progress {
    pub files: AtomicU64,
    pub bytes_read: AtomicU64,
    /// Bytes of files taken without reading them (unchanged, or a hard link already read):
    /// with `bytes_read`, how far a backup is through its source.
    pub bytes_skipped: AtomicU64,
}

#[derive(Debug, Clone)]
pub struct BackupSummary {
    pub point: PointRecord,
    pub files: u64,
    pub dirs: u64,
    pub bytes_total: u64,
    pub bytes_read: u64,
    pub files_unchanged: u64,
    pub bytes_added: u64,
    pub warnings: Vec<String>,
    pub seconds: f64,
}

struct Ctx<'a> {
    vault: &'a Vault,
    select: &'a Selection,
    progress: &'a Progress,
    files: AtomicU64,
    dirs: AtomicU64,
    bytes_total: AtomicU64,
    files_unchanged: AtomicU64,
    warnings: Mutex<Vec<String>>,
    /// Chunk lists of hard-linked inodes already read in this backup.
    links: Mutex<HashMap<u64, Vec<ChunkRef>>>,
}

/// Tests (`test-clock` builds only): wait, for up to two minutes, while the file named by
/// `VAULTFS_TEST_HOLD_BACKUP` exists, once the data is stored and before the point is
/// committed, so a test can run other commands beside a backup in progress.
#[cfg(feature = "test-clock")]
fn test_hold() {
    if let Some(p) = std::env::var_os("VAULTFS_TEST_HOLD_BACKUP") {
        let start = Instant::now();
        while Path::new(&p).exists() && start.elapsed() < std::time::Duration::from_secs(120) {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

/// Back up `src` as a new point of `item`.
pub fn backup(vault: &Vault, item: &str, src: &Path, progress: &Progress) -> Result<BackupSummary> {
    let sources = [src.to_path_buf()];
    backup_selected(vault, item, &sources, &Selection::default(), progress)
}

/// Back up `sources` as a new point of `item`, taking what `select` lets in. One source must
/// be a directory and is the point's root; several are entries of a root of their own, by
/// their last names (which must differ).
pub fn backup_selected(
    vault: &Vault,
    item: &str,
    sources: &[PathBuf],
    select: &Selection,
    progress: &Progress,
) -> Result<BackupSummary> {
    backup_tagged(vault, item, sources, select, &[], progress)
}

/// [`backup_selected`], the point tagged with `tags` (it records this host and the sources).
pub fn backup_tagged(
    vault: &Vault,
    item: &str,
    sources: &[PathBuf],
    select: &Selection,
    tags: &[String],
    progress: &Progress,
) -> Result<BackupSummary> {
    names::check_item(item)?;
    let origin = super::origin::origin(sources, tags)?;
    let start = Instant::now();
    let created_ns = now_ns();
    let src = sources
        .first()
        .ok_or(VaultError::BadSetting("no source to back up".into()))?;
    let md = fs::metadata(src).map_err(|e| VaultError::io("source", src, e))?;
    if sources.len() == 1 && !md.is_dir() {
        return Err(VaultError::NotADirectory(src.to_path_buf()));
    }
    let mut seen = std::collections::HashSet::new();
    for s in sources {
        let name = s
            .file_name()
            .map(|n| n.as_bytes().to_vec())
            .unwrap_or_default();
        if sources.len() > 1 && (name.is_empty() || !seen.insert(name)) {
            return Err(VaultError::BadSetting(format!(
                "sources must have different last names: {} is not one",
                s.display()
            )));
        }
    }
    let added_before = vault.store().stats().sealed_bytes_added;
    let failures_before = vault.store().failures();
    let prev_root = match vault.points(Some(item), false) {
        Ok(mut pts) => pts
            .pop()
            .and_then(|p| p.root_tree())
            .and_then(|id| vault.tree(&id).ok()),
        Err(VaultError::UnknownItem(_)) => None,
        Err(e) => return Err(e),
    };
    let ctx = Ctx {
        vault,
        select,
        progress,
        files: AtomicU64::new(0),
        dirs: AtomicU64::new(0),
        bytes_total: AtomicU64::new(0),
        files_unchanged: AtomicU64::new(0),
        warnings: Mutex::new(Vec::new()),
        links: Mutex::new(HashMap::new()),
    };
    // More threads than cores: on a cold cache the walk waits on the disk, and several reads
    // in flight finish sooner than one per core (measured in scripts/bench.sh).
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(io_threads())
        .thread_name(|i| format!("backup-{i}"))
        .build()
        .map_err(|source| VaultError::Pool {
            what: "backup threads",
            source,
        })?;
    let result = pool.install(|| {
        let root = if sources.len() == 1 {
            let mut root = fsmeta::node_from_metadata(Vec::new(), &md);
            root.xattrs = fsmeta::read_xattrs(src).unwrap_or_default();
            let (id, nlink) = backup_dir(&ctx, src, prev_root.as_ref(), md.dev())?;
            (root.subtree, root.nlink) = (Some(id), nlink);
            root
        } else {
            let owner = (md.uid(), md.gid());
            sources_root(&ctx, sources, prev_root.as_ref(), created_ns, owner)?
        };
        let counts = (
            ctx.files.load(Ordering::Relaxed),
            ctx.dirs.load(Ordering::Relaxed),
            ctx.bytes_total.load(Ordering::Relaxed),
        );
        #[cfg(feature = "test-clock")]
        test_hold();
        vault.commit_point_with(
            item,
            created_ns,
            root,
            counts,
            origin,
            None,
            failures_before,
        )
    });
    // On failure, blobs already written stay as garbage for gc: the open pack is shared with
    // other sessions of the daemon and must not be thrown away.
    let point = result?;
    Ok(BackupSummary {
        point,
        files: ctx.files.into_inner(),
        dirs: ctx.dirs.into_inner(),
        bytes_total: ctx.bytes_total.into_inner(),
        bytes_read: progress.bytes_read.load(Ordering::Relaxed),
        files_unchanged: ctx.files_unchanged.into_inner(),
        bytes_added: vault.store().stats().sealed_bytes_added - added_before,
        warnings: ctx.warnings.into_inner().expect("warnings lock"),
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Threads for the backup walk: twice the cores, at least 4, at most 16.
fn io_threads() -> usize {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    (cores * 2).clamp(4, 16)
}

fn warn(ctx: &Ctx, path: &Path, e: impl std::fmt::Display) {
    let msg = format!("{}: {e}", path.display());
    tracing::debug!("{msg}");
    ctx.warnings.lock().expect("warnings lock").push(msg);
}

/// The root of a point of several sources: a directory (mode 0755, owned by the backup's
/// first source's owner, dated by the point) holding each source by its last name.
fn sources_root(
    ctx: &Ctx,
    sources: &[PathBuf],
    prev: Option<&Tree>,
    created_ns: i64,
    owner: (u32, u32),
) -> Result<Node> {
    let mut nodes = Vec::new();
    for src in sources {
        let name = src
            .file_name()
            .map(|n| n.as_bytes().to_vec())
            .unwrap_or_default();
        let dev = fs::symlink_metadata(src)
            .map_err(|e| VaultError::io("source", src, e))?
            .dev();
        let prev_node = prev.and_then(|t| tree::lookup(t, &name));
        nodes.extend(backup_entry(ctx, name, src, prev_node, dev)?);
    }
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    let tree = Tree { nodes };
    let mut root = tree::root_node(tree::save(ctx.vault.store(), &tree)?);
    root.nlink = tree::dir_nlink(&tree);
    (root.uid, root.gid) = owner;
    (root.mtime_ns, root.ctime_ns) = (created_ns, created_ns);
    ctx.dirs.fetch_add(1, Ordering::Relaxed);
    Ok(root)
}

/// Store a directory's tree; returns its id and the directory's link count. `dev` is the
/// device of the source it is under.
fn backup_dir(ctx: &Ctx, dir: &Path, prev: Option<&Tree>, dev: u64) -> Result<(BlobId, u32)> {
    let mut entries: Vec<(Vec<u8>, std::path::PathBuf)> = Vec::new();
    let rd = fs::read_dir(dir).map_err(|e| VaultError::io("read directory", dir, e))?;
    for e in rd {
        match e {
            Ok(e) => {
                let (name, path) = (e.file_name().as_bytes().to_vec(), e.path());
                if !ctx.select.excluded(&path, &name) {
                    entries.push((name, path));
                }
            }
            Err(e) => warn(ctx, dir, e),
        }
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let nodes: Vec<Option<Node>> = entries
        .into_par_iter()
        .map(|(name, path)| {
            let prev_node = prev.and_then(|t| tree::lookup(t, &name));
            backup_entry(ctx, name, &path, prev_node, dev)
        })
        .collect::<Result<_>>()?;
    let tree = Tree {
        nodes: nodes.into_iter().flatten().collect(),
    };
    ctx.dirs.fetch_add(1, Ordering::Relaxed);
    Ok((
        tree::save(ctx.vault.store(), &tree)?,
        tree::dir_nlink(&tree),
    ))
}

/// One entry; `Ok(None)` when it vanished or could not be read (a warning is recorded).
fn backup_entry(
    ctx: &Ctx,
    name: Vec<u8>,
    path: &Path,
    prev: Option<&Node>,
    dev: u64,
) -> Result<Option<Node>> {
    let md = match fs::symlink_metadata(path) {
        Ok(md) => md,
        Err(e) => {
            warn(ctx, path, e);
            return Ok(None);
        }
    };
    let mut node = fsmeta::node_from_metadata(name, &md);
    node.xattrs = fsmeta::read_xattrs(path).unwrap_or_else(|e| {
        warn(ctx, path, format_args!("extended attributes: {e}"));
        Vec::new()
    });
    match node.kind {
        NodeKind::Dir if ctx.select.tagged(path) => return Ok(None),
        NodeKind::Dir if !ctx.select.enters(md.dev(), dev) => {
            // Another filesystem or a vaultfs mount: the directory, empty, like `rsync -x`.
            let empty = Tree { nodes: Vec::new() };
            (node.subtree, node.nlink) = (Some(tree::save(ctx.vault.store(), &empty)?), 2);
            ctx.dirs.fetch_add(1, Ordering::Relaxed);
            return Ok(Some(node));
        }
        NodeKind::Dir => {
            let prev_tree = prev
                .filter(|p| p.kind == NodeKind::Dir)
                .and_then(|p| p.subtree)
                .and_then(|id| ctx.vault.tree(&id).ok());
            match backup_dir(ctx, path, prev_tree.as_ref(), dev) {
                Ok((id, nlink)) => (node.subtree, node.nlink) = (Some(id), nlink),
                // An unreadable directory is skipped like an unreadable file.
                Err(VaultError::Io {
                    op: "read directory",
                    source,
                    ..
                }) => {
                    warn(ctx, path, source);
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
            return Ok(Some(node));
        }
        NodeKind::Symlink => match fs::read_link(path) {
            Ok(t) => node.target = t.as_os_str().as_bytes().to_vec(),
            Err(e) => {
                warn(ctx, path, e);
                return Ok(None);
            }
        },
        NodeKind::File => {
            let unchanged = prev.filter(|p| {
                p.kind == NodeKind::File
                    && p.size == node.size
                    && p.mtime_ns == node.mtime_ns
                    && p.ctime_ns == node.ctime_ns
                    && p.src_ino == node.src_ino
            });
            let linked = (node.link_group != 0)
                .then(|| {
                    ctx.links
                        .lock()
                        .expect("links lock")
                        .get(&node.link_group)
                        .cloned()
                })
                .flatten();
            if let Some(p) = unchanged {
                node.chunks = p.chunks.clone();
                ctx.files_unchanged.fetch_add(1, Ordering::Relaxed);
                skipped(ctx, node.size);
            } else if let Some(chunks) = linked {
                // The size must match the chunks read through the first link.
                node.size = chunks.iter().map(|c| c.len as u64).sum();
                node.chunks = chunks;
                skipped(ctx, node.size);
            } else {
                match store_file(ctx, path) {
                    Ok((chunks, len)) => {
                        node.chunks = chunks;
                        node.size = len;
                    }
                    Err(FileError::Source(e)) => {
                        warn(ctx, path, e);
                        return Ok(None);
                    }
                    Err(FileError::Vault(e)) => return Err(e),
                }
            }
            if node.link_group != 0 {
                ctx.links
                    .lock()
                    .expect("links lock")
                    .entry(node.link_group)
                    .or_insert_with(|| node.chunks.clone());
            }
            ctx.bytes_total.fetch_add(node.size, Ordering::Relaxed);
        }
        _ => {}
    }
    ctx.files.fetch_add(1, Ordering::Relaxed);
    ctx.progress.files.fetch_add(1, Ordering::Relaxed);
    Ok(Some(node))
}

fn skipped(ctx: &Ctx, bytes: u64) {
    ctx.progress
        .bytes_skipped
        .fetch_add(bytes, Ordering::Relaxed);
}

/// Read, chunk and store one file. Returns its chunk ids and the bytes actually read.
fn store_file(ctx: &Ctx, path: &Path) -> std::result::Result<(Vec<ChunkRef>, u64), FileError> {
    let file = open_source(path)?;
    ingest::store_stream(ctx.vault, &file, &ctx.progress.bytes_read)
}

/// Open a source file without updating its atime when we may.
fn open_source(path: &Path) -> io::Result<File> {
    match fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOATIME)
        .open(path)
    {
        Ok(f) => Ok(f),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => File::open(path),
        Err(e) => Err(e),
    }
}
