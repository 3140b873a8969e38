//! `restore`: write a point (or a path inside it) back to a local directory.
//!
//! Entries are restored in parallel; a file whose data is damaged is reported, removed (never
//! left with wrong bytes) and the rest continues. Hard links are made after all files exist,
//! and directory metadata last (deepest first), so nothing later moves a restored mtime.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use crate::format::{Node, NodeKind, PointRecord};
use crate::store::{BlobKind, Damaged, Store};

use super::backup::Progress;
use super::{Result, Vault, VaultError, fsmeta, tree};

#[derive(Debug, Default)]
pub struct RestoreSummary {
    pub files: u64,
    pub bytes: u64,
    /// One line per entry that could not be restored.
    pub errors: Vec<String>,
}

struct Ctx<'a> {
    store: &'a Store,
    point: &'a PointRecord,
    files: AtomicU64,
    bytes: AtomicU64,
    /// The same counts as they grow, for a progress display (bytes as they are written).
    progress: &'a Progress,
    errors: Mutex<Vec<String>>,
    /// link group → path of the first restored link.
    leaders: Mutex<HashMap<u64, PathBuf>>,
    followers: Mutex<Vec<(u64, PathBuf, String)>>,
    dirs: Mutex<Vec<(PathBuf, Node)>>,
}

/// Refuse what a restore would refuse before writing anything (a path not in the point, a
/// file where a directory goes): `restore` starts its job only after this (DESIGN §15).
pub fn check_target(
    vault: &Vault,
    point: &PointRecord,
    dest: &Path,
    sub: Option<&Path>,
) -> Result<()> {
    target_of(vault, point, dest, sub).map(|_| ())
}

/// The node to restore and where it goes.
fn target_of(
    vault: &Vault,
    point: &PointRecord,
    dest: &Path,
    sub: Option<&Path>,
) -> Result<(Node, PathBuf)> {
    let root_id = point
        .root_tree()
        .ok_or_else(|| VaultError::corrupt(Damaged::Record("point record"), "has no root tree"))?;
    let (node, target) = match sub {
        None => (point.root.clone(), dest.to_path_buf()),
        Some(sub) => {
            let node =
                tree::find(vault.store(), root_id, sub)?.ok_or_else(|| VaultError::NotInPoint {
                    path: sub.to_path_buf(),
                    item: point.item.clone(),
                    point: point.name.clone(),
                })?;
            let target = if node.kind == NodeKind::Dir {
                dest.to_path_buf()
            } else {
                dest.join(sub.file_name().unwrap_or(sub.as_os_str()))
            };
            (node, target)
        }
    };
    if target.exists() && !target.is_dir() && node.kind == NodeKind::Dir {
        return Err(VaultError::NotADirectory(target));
    }
    Ok((node, target))
}

/// Restore `point` (or `sub` inside it) into `dest`.
pub fn restore(
    vault: &Vault,
    point: &PointRecord,
    dest: &Path,
    sub: Option<&Path>,
    progress: &Progress,
) -> Result<RestoreSummary> {
    let (node, target) = target_of(vault, point, dest, sub)?;
    let ctx = Ctx {
        store: vault.store(),
        point,
        files: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        progress,
        errors: Mutex::new(Vec::new()),
        leaders: Mutex::new(HashMap::new()),
        followers: Mutex::new(Vec::new()),
        dirs: Mutex::new(Vec::new()),
    };
    if node.kind == NodeKind::Dir {
        fs::create_dir_all(&target).map_err(|e| VaultError::io("create", &target, e))?;
        restore_dir(&ctx, &node, &target, "")?;
    } else {
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(|e| VaultError::io("create", parent, e))?;
        }
        restore_entry(
            &ctx,
            &node,
            &target,
            &sub.map(|s| s.display().to_string()).unwrap_or_default(),
        );
    }
    for (group, path, shown) in ctx.followers.into_inner().expect("followers lock") {
        let leader = ctx
            .leaders
            .lock()
            .expect("leaders lock")
            .get(&group)
            .cloned();
        let r = match leader {
            Some(l) => {
                remove_existing(&path);
                fs::hard_link(&l, &path).map_err(|e| e.to_string())
            }
            None => Err("its first link was not restored".into()),
        };
        if let Err(e) = r {
            ctx.errors
                .lock()
                .expect("errors lock")
                .push(format!("{shown}: hard link: {e}"));
        }
    }
    let mut dirs = ctx.dirs.into_inner().expect("dirs lock");
    dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.as_os_str().len()));
    for (path, node) in dirs {
        if let Err(e) = fsmeta::apply(&path, &node) {
            ctx.errors
                .lock()
                .expect("errors lock")
                .push(format!("{}: metadata: {e}", path.display()));
        }
    }
    Ok(RestoreSummary {
        files: ctx.files.into_inner(),
        bytes: ctx.bytes.into_inner(),
        errors: ctx.errors.into_inner().expect("errors lock"),
    })
}

fn join_shown(parent: &str, name: &[u8]) -> String {
    let n = String::from_utf8_lossy(name);
    if parent.is_empty() {
        n.into_owned()
    } else {
        format!("{parent}/{n}")
    }
}

fn restore_dir(ctx: &Ctx, node: &Node, path: &Path, shown: &str) -> Result<()> {
    let subtree = node.subtree.ok_or_else(|| {
        VaultError::corrupt(
            Damaged::Record("tree listing"),
            format!("names directory {shown} without a tree"),
        )
    })?;
    let listing = match tree::load(ctx.store, &subtree) {
        Ok(t) => t,
        Err(e) => {
            let msg = format!("{}/{}:{shown}: {e}", ctx.point.item, ctx.point.name);
            ctx.errors.lock().expect("errors lock").push(msg);
            return Ok(());
        }
    };
    // A tree is only authentic, not harmless: a crafted one (through the library, or by
    // whoever held the key) could name `..`, `a/b` or one name twice to write outside DEST or
    // race a symlink against a directory. Such a listing is refused whole.
    if let Some(why) = unsafe_listing(&listing) {
        let msg = format!(
            "{}/{}:{shown}: refused: the directory's listing {why}",
            ctx.point.item, ctx.point.name
        );
        ctx.errors.lock().expect("errors lock").push(msg);
        return Ok(());
    }
    listing.nodes.par_iter().for_each(|child| {
        let child_path = path.join(std::ffi::OsStr::from_bytes(&child.name));
        restore_entry(ctx, child, &child_path, &join_shown(shown, &child.name));
    });
    ctx.dirs
        .lock()
        .expect("dirs lock")
        .push((path.to_path_buf(), node.clone()));
    Ok(())
}

/// Why a listing must not be restored: an entry name that is empty, `.`, `..`, or holds `/`
/// or NUL, or a name listed twice.
fn unsafe_listing(listing: &crate::format::Tree) -> Option<String> {
    let mut seen = std::collections::HashSet::new();
    for node in &listing.nodes {
        let name = &node.name;
        if name.is_empty()
            || name == b"."
            || name == b".."
            || name.contains(&b'/')
            || name.contains(&0)
        {
            return Some(format!(
                "has an entry named {:?}",
                String::from_utf8_lossy(name)
            ));
        }
        if !seen.insert(name) {
            return Some(format!("names {:?} twice", String::from_utf8_lossy(name)));
        }
    }
    None
}

fn restore_entry(ctx: &Ctx, node: &Node, path: &Path, shown: &str) {
    if let Err(e) = restore_entry_inner(ctx, node, path, shown) {
        let msg = format!("{}/{}:{shown}: {e}", ctx.point.item, ctx.point.name);
        tracing::debug!("{msg}");
        ctx.errors.lock().expect("errors lock").push(msg);
    }
}

fn restore_entry_inner(ctx: &Ctx, node: &Node, path: &Path, shown: &str) -> Result<()> {
    match node.kind {
        NodeKind::Dir => {
            // Never follow a symlink already in DEST: replace anything that is not a real
            // directory, so a restored tree cannot be redirected outside DEST.
            match fs::symlink_metadata(path) {
                Ok(md) if md.is_dir() => {}
                Ok(_) => {
                    fs::remove_file(path).map_err(|e| VaultError::io("replace", path, e))?;
                    fs::create_dir(path).map_err(|e| VaultError::io("mkdir", path, e))?;
                }
                Err(_) => fs::create_dir(path).map_err(|e| VaultError::io("mkdir", path, e))?,
            }
            return restore_dir(ctx, node, path, shown);
        }
        NodeKind::File => {
            if node.link_group != 0 {
                let mut leaders = ctx.leaders.lock().expect("leaders lock");
                if leaders.contains_key(&node.link_group) {
                    drop(leaders);
                    ctx.followers.lock().expect("followers lock").push((
                        node.link_group,
                        path.to_path_buf(),
                        shown.into(),
                    ));
                    return Ok(());
                }
                leaders.insert(node.link_group, path.to_path_buf());
            }
            if let Err(e) = write_file(ctx, node, path) {
                let _ = fs::remove_file(path);
                if node.link_group != 0 {
                    ctx.leaders
                        .lock()
                        .expect("leaders lock")
                        .remove(&node.link_group);
                }
                return Err(e);
            }
        }
        NodeKind::Symlink => {
            remove_existing(path);
            std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&node.target), path)
                .map_err(|e| VaultError::io("symlink", path, e))?;
        }
        _ => {
            remove_existing(path);
            fsmeta::make_special(path, node).map_err(|e| VaultError::io("mknod", path, e))?;
        }
    }
    fsmeta::apply(path, node).map_err(|e| VaultError::io("set metadata of", path, e))?;
    ctx.files.fetch_add(1, Ordering::Relaxed);
    ctx.progress.files.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

fn remove_existing(path: &Path) {
    if fs::symlink_metadata(path)
        .map(|m| !m.is_dir())
        .unwrap_or(false)
    {
        let _ = fs::remove_file(path);
    }
}

/// Zero runs of this size (aligned within a chunk) are skipped rather than written.
const HOLE_GRANULE_BYTES: usize = 64 << 10;

/// Write a file's chunks; all-zero granules become holes so sparse files stay sparse.
fn write_file(ctx: &Ctx, node: &Node, path: &Path) -> Result<()> {
    remove_existing(path);
    let io = |op| move |e| VaultError::io(op, path, e);
    let mut file: File = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io("create"))?;
    let mut written = 0u64;
    for chunk in &node.chunks {
        let data = ctx.store.get(BlobKind::Data, &chunk.id)?;
        if data.len() != chunk.len as usize {
            return Err(VaultError::corrupt(
                Damaged::Content(chunk.id),
                format!("has {} bytes, the tree says {}", data.len(), chunk.len),
            ));
        }
        for piece in data.chunks(HOLE_GRANULE_BYTES) {
            if piece.iter().all(|b| *b == 0) {
                file.seek(SeekFrom::Current(piece.len() as i64))
                    .map_err(io("seek"))?;
            } else {
                file.write_all(piece).map_err(io("write"))?;
            }
        }
        written += data.len() as u64;
        ctx.progress
            .bytes_read
            .fetch_add(data.len() as u64, Ordering::Relaxed);
    }
    if written != node.size {
        return Err(VaultError::corrupt(
            Damaged::Record("tree listing"),
            format!(
                "says {shown} has {} bytes, its chunks hold {written}",
                node.size,
                shown = path.display()
            ),
        ));
    }
    file.set_len(written).map_err(io("truncate"))?;
    ctx.bytes.fetch_add(written, Ordering::Relaxed);
    Ok(())
}
