//! `gc`: purge soft-deleted points past their purge time and reclaim the space of blobs that
//! nothing refers to any more.
//!
//! Order (each step durable before the next, so a crash at any point leaves a vault that
//! `check` passes and every live point restorable):
//! 1. the store starts recording puts that deduplicate against an existing blob, then the
//!    daemon's incoming trees are saved, so their records name everything they use;
//! 2. expired points leave the catalog (index database flush);
//! 3. mark: meta blobs of current records, and every tree and chunk reachable from live points,
//!    soft-deleted points and incoming records;
//! 4. plan: packs with no live blob are deleted; packs whose live share is below
//!    [`REWRITE_BELOW`] are rewritten (their live blobs copied, sealed as they are, into new
//!    packs); other packs stay as they are, garbage included;
//! 5. with puts held off, the dead blobs of those packs leave the index, minus any a put
//!    deduplicated against since step 3 (index database flush);
//! 6. live blobs of rewritten packs are copied into new packs, made durable, indexed (flush);
//! 7. only then are the old packs deleted, those holding meta records first (so a purged
//!    point's record cannot come back through `repair` without its data still being there).
//!
//! A reader that looked a blob up before step 6 and opens its old pack after step 7 looks it up
//! again (`Store::get`).

use std::collections::{HashMap, HashSet};

use crate::format::{self, MetaRecord, Node, NodeKind, PointRecord};
use crate::store::pack::PackEntry;
use crate::store::{BlobId, BlobKind, PackId};

use super::{Result, Vault, VaultError, now_ns};

/// A pack is rewritten when less than this share of its bytes is live.
const REWRITE_BELOW: f64 = 0.5;

#[derive(Debug, Default)]
pub struct GcReport {
    /// Points purged (or, dry run, that would be), as ITEM/POINT.
    pub purged: Vec<String>,
    pub packs_deleted: u64,
    pub packs_rewritten: u64,
    pub blobs_dropped: u64,
    /// Pack bytes before and after (dry run: estimated after).
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// What gc should purge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purge {
    /// Soft-deleted points past their purge time.
    Expired,
    /// Every soft-deleted point now (refused when soft delete is always-on).
    AllDeleted,
}

pub fn gc(vault: &Vault, dry_run: bool, purge: Purge) -> Result<GcReport> {
    gc_with_progress(vault, dry_run, purge, &|_, _, _| {})
}

/// How far a gc is: its phase (`mark`, `plan`, `copy`, `delete`), then done and total of
/// that phase's steps (points marked, packs planned, blobs copied, packs deleted).
pub type Progress<'a> = &'a (dyn Fn(&str, u64, u64) + Sync);

/// [`gc`], telling `progress` how far it is.
pub fn gc_with_progress(
    vault: &Vault,
    dry_run: bool,
    purge: Purge,
    progress: Progress<'_>,
) -> Result<GcReport> {
    let params = vault.params();
    if purge == Purge::AllDeleted && !dry_run {
        vault.may_weaken_soft_delete("deleted points are kept until their purge time")?;
    }
    if purge == Purge::AllDeleted && params.soft_delete_always_on {
        return Err(VaultError::BadSetting(
            "soft delete is always-on for this vault: deleted points are kept until their purge time"
                .into(),
        ));
    }
    let store = vault.store();
    if !dry_run {
        // Before anything is marked: a put that deduplicates against a blob from here on
        // (an incoming file stored after the save below, say) keeps that blob.
        store.gc_begin();
    }
    let result = purge_and_sweep(vault, dry_run, purge, progress);
    store.gc_end();
    result
}

fn purge_and_sweep(
    vault: &Vault,
    dry_run: bool,
    purge: Purge,
    progress: Progress<'_>,
) -> Result<GcReport> {
    if let Some(live) = vault.live_incoming() {
        live.save()?;
    }
    let store = vault.store();
    let codec = store.codec();
    let mut report = GcReport::default();

    // 2. Purge.
    let now = now_ns();
    let mut keep_points: Vec<PointRecord> = Vec::new();
    for p in vault.points(None, false)? {
        keep_points.push(p);
    }
    for p in vault.points(None, true)? {
        let due = purge == Purge::AllDeleted
            || p.deleted_at_ns.is_some_and(|d| vault.purge_time(d) <= now);
        if due {
            report.purged.push(format!("{}/{}", p.item, p.name));
            if !dry_run {
                let _commit = vault.commit_lock.lock().expect("commit lock");
                vault.catalog.remove_point(codec, &p.item, &p.name)?;
            }
        } else {
            keep_points.push(p);
        }
    }
    if !dry_run {
        store.db().flush()?;
    }
    sweep(vault, dry_run, &keep_points, &mut report, progress)?;
    Ok(report)
}

fn sweep(
    vault: &Vault,
    dry_run: bool,
    points: &[PointRecord],
    report: &mut GcReport,
    progress: Progress<'_>,
) -> Result<()> {
    let store = vault.store();
    let codec = store.codec();

    // 3. Mark.
    let mut live: HashSet<BlobId> = HashSet::new();
    let meta = |m: MetaRecord| store.blob_id(BlobKind::Meta, &format::encode(&m));
    for it in vault.items()? {
        if let Some(p) = vault.catalog.policy(codec, &it.name)? {
            live.insert(meta(MetaRecord::Policy(p)));
        }
        live.insert(meta(MetaRecord::Item(it)));
    }
    // The config in use stays in the packs (repair brings it back from there).
    live.insert(meta(MetaRecord::Config(vault.config_record())));
    let mut roots: Vec<Node> = Vec::new();
    for p in points {
        live.insert(meta(MetaRecord::Point(Box::new(p.clone()))));
        roots.push(p.root.clone());
    }
    for r in vault.catalog.incoming_all(codec)? {
        roots.push(r.root.clone());
        live.insert(meta(MetaRecord::Incoming(Box::new(r))));
    }
    let mut seen_trees = HashSet::new();
    for (i, root) in roots.iter().enumerate() {
        progress("mark", i as u64, roots.len() as u64);
        mark_node(vault, root, &mut live, &mut seen_trees)?;
    }

    // 4. Plan.
    let mut delete: Vec<(PackId, bool)> = Vec::new();
    let mut copy: Vec<(PackId, PackEntry)> = Vec::new();
    let mut dead: HashSet<BlobId> = HashSet::new();
    let packs = store.list_packs_sized()?;
    let packs_total = packs.len() as u64;
    for (i, (pack, file_bytes)) in packs.into_iter().enumerate() {
        progress("plan", i as u64, packs_total);
        let entries = store.read_pack_header(&pack)?;
        let size: u64 = entries.iter().map(|e| e.len as u64).sum();
        // A live blob counts here only if the index points here (or nowhere): a copy whose
        // index entry names another pack (left by a gc killed while copying) is a duplicate.
        let mut here: HashSet<BlobId> = HashSet::new();
        for e in entries.iter().filter(|e| live.contains(&e.id)) {
            match store.index().get(&e.id)? {
                Some(loc) if loc.pack != pack => {}
                _ => {
                    here.insert(e.id);
                }
            }
        }
        let live_bytes: u64 = entries
            .iter()
            .filter(|e| here.contains(&e.id))
            .map(|e| e.len as u64)
            .sum();
        report.bytes_before += file_bytes;
        let has_meta = entries.iter().any(|e| e.kind == BlobKind::Meta);
        if live_bytes == size {
            report.bytes_after += file_bytes;
            continue;
        }
        if live_bytes == 0 || (live_bytes as f64) < REWRITE_BELOW * size as f64 {
            for e in &entries {
                if here.contains(&e.id) {
                    copy.push((pack, *e));
                } else {
                    if !live.contains(&e.id) {
                        dead.insert(e.id);
                    }
                    report.blobs_dropped += 1;
                }
            }
            report.bytes_after += live_bytes;
            if live_bytes == 0 {
                report.packs_deleted += 1;
            } else {
                report.packs_rewritten += 1;
            }
            delete.push((pack, has_meta));
        } else {
            report.bytes_after += file_bytes;
        }
    }
    if dry_run {
        return Ok(());
    }
    // A live blob may also sit (as a duplicate) in a pack being deleted: never forget it.
    dead.retain(|id| !live.contains(id));

    // 5. Forget the dead blobs (minus those deduplicated against meanwhile).
    let dead = store.gc_forget(dead)?;
    // Blobs a put revived must survive their pack: copy them too.
    let mut revived: HashMap<PackId, Vec<PackEntry>> = HashMap::new();
    for (pack, _) in &delete {
        for e in store.read_pack_header(pack)? {
            if !live.contains(&e.id) && !dead.contains(&e.id) {
                revived.entry(*pack).or_default().push(e);
            }
        }
    }
    copy.extend(
        revived
            .into_iter()
            .flat_map(|(p, es)| es.into_iter().map(move |e| (p, e))),
    );

    // 6. Copy live blobs into new packs (durable and indexed before any delete).
    if !copy.is_empty() {
        progress("copy", 0, copy.len() as u64);
        store.gc_copy(&copy)?;
    }

    // 7. Delete old packs, meta-holding ones first.
    delete.sort_by_key(|(_, has_meta)| !*has_meta);
    for (i, (pack, _)) in delete.iter().enumerate() {
        progress("delete", i as u64, delete.len() as u64);
        store.gc_delete_pack(pack)?;
    }
    Ok(())
}

fn mark_node(
    vault: &Vault,
    node: &Node,
    live: &mut HashSet<BlobId>,
    seen: &mut HashSet<BlobId>,
) -> Result<()> {
    for c in &node.chunks {
        live.insert(c.id);
    }
    if node.kind == NodeKind::Dir
        && let Some(id) = node.subtree
    {
        if !seen.insert(id) {
            return Ok(());
        }
        live.insert(id);
        let tree = vault.tree(&id)?;
        for n in &tree.nodes {
            mark_node(vault, n, live, seen)?;
        }
    }
    Ok(())
}
