//! `repair`: rebuild the index database (blob index, catalog, damage marks) from everything
//! that still authenticates, discarding nothing (DESIGN.md §11.3).
//!
//! 1. Read what the old database still holds: its blob locations (tried in damaged packs, and
//!    each blob's preferred copy) and its records. One that does not open is left as it is.
//! 2. Survey every pack, reading and authenticating every blob; damaged packs are salvaged.
//! 3. Choose one intact copy of every blob: the old index's if intact and its pack is clean,
//!    else one in a clean pack, else a salvaged one (in a damaged pack).
//! 4. Merge the records of the old catalog and of every meta blob: the highest revision wins.
//! 5. Walk every point over the chosen copies: paths whose data is lost are marked, the point
//!    is kept. `--dry-run` reports steps 1-5 and stops.
//! 6. Build the new database in `index.new/`: salvaged blobs are copied out of damaged packs
//!    into new packs, records without an intact copy in the packs are written again, then
//!    everything is indexed, cataloged and marked, flushed, and read back.
//! 7. Swap: the old database becomes `index.prev/` (replacing the one kept before), the new
//!    one `index/`, in one atomic exchange.
//! 8. Damaged packs, whose intact blobs are all elsewhere now, move to `damaged/`.
//!
//! A crash before 7 leaves the old database in place, after it the new one; either way running
//! repair again gives the same result as one uninterrupted run.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::format::{self, DamageRecord, ItemRecord, MetaRecord, Tree};
use crate::keys::Credential;
use crate::store::backend::{Backend, Key, Observer};
use crate::store::codec::Codec;
use crate::store::index::{self, Db, Index, Location};
use crate::store::pack::PackEntry;
use crate::store::survey::{Copy, Status, Survey};
use crate::store::{BlobId, BlobKind, PackId, Store};

use super::Location as Place;
use super::catalog::Catalog;
use super::config::vault_id_bytes;
use super::damage::{Blobs, Loss, Walk};
use super::records::{self, Records, describe};
use super::{INDEX_DIR, Result, Secret, Unlocked, Vault, VaultError, now_ns};

/// Where `repair` builds the new database.
pub const INDEX_NEW_DIR: &str = "index.new";
/// Where `repair` keeps the database it replaced.
pub const INDEX_PREV_DIR: &str = "index.prev";

#[derive(Debug, Default)]
pub struct RepairReport {
    pub packs: u64,
    pub blobs: u64,
    pub items: u64,
    pub points: u64,
    /// What changed (dry run: would change), one line each.
    pub changes: Vec<String>,
    /// Points and incoming trees with lost data, each with its lost paths' lines.
    pub damaged: Vec<(String, Vec<String>)>,
    /// What could not be read and was rebuilt from elsewhere (an old database that does not
    /// open, damaged catalog values).
    pub notes: Vec<String>,
    /// Where the database it replaced was kept.
    pub previous: Option<PathBuf>,
    /// The generation of a newer config found in the packs and written back (rollback).
    pub config_restored: Option<u64>,
}

/// Repair the vault at `dir`. Returns the opened vault, or `None` on a dry run.
pub fn repair(
    dir: &Path,
    credential: &Credential,
    dry_run: bool,
) -> Result<(Option<Vault>, RepairReport)> {
    repair_at(&Place::Local(dir.to_path_buf()), credential, dry_run)
}

/// [`repair`] of a vault anywhere: an S3 vault's index is rebuilt in its cache directory from
/// the bucket alone.
pub fn repair_at(
    place: &Place,
    credential: &Credential,
    dry_run: bool,
) -> Result<(Option<Vault>, RepairReport)> {
    run(place, Secret::Credential(credential), None, dry_run)
}

/// [`repair`] with `observer` seeing every change and durability call (fault injection).
#[cfg(feature = "test-hooks")]
pub fn repair_observed(
    dir: &Path,
    credential: &Credential,
    observer: Arc<dyn Observer>,
) -> Result<(Option<Vault>, RepairReport)> {
    let place = Place::Local(dir.to_path_buf());
    run(
        &place,
        Secret::Credential(credential),
        Some(observer),
        false,
    )
}

/// What the old database still holds.
#[derive(Default)]
struct Old {
    entries: HashMap<BlobId, Location>,
    records: Records,
}

fn run(
    place: &Place,
    secret: Secret,
    observer: Option<Arc<dyn Observer>>,
    dry_run: bool,
) -> Result<(Option<Vault>, RepairReport)> {
    #[cfg(feature = "test-hooks")]
    let observer = observer.or_else(crate::store::backend::fault::KillAt::from_env);
    rebuild(Vault::unlock(place, secret, observer)?, dry_run, false)
}

/// Steps 1-8 on an unlocked vault, in its local directory (also how an S3 vault's index is
/// built on a machine that has none). `read_only` (a secondary copy): nothing is written to
/// the store, so damaged packs stay where they are and the config is left as it is.
pub(crate) fn rebuild(
    u: Unlocked,
    dry_run: bool,
    read_only: bool,
) -> Result<(Option<Vault>, RepairReport)> {
    let dir = u.local_dir.clone();
    let dir = dir.as_path();
    let vault_id = vault_id_bytes(&u.config)?;
    let mut report = RepairReport::default();
    let old = read_old(dir, &vault_id, &u, &mut report);

    // 2-3. Survey and choose.
    let backend = u.backend.as_ref();
    let mut hints: HashMap<PackId, Vec<PackEntry>> = HashMap::new();
    for (id, loc) in &old.entries {
        hints.entry(loc.pack).or_default().push(PackEntry {
            kind: loc.kind,
            id: *id,
            offset: loc.offset,
            len: loc.len,
        });
    }
    let survey = Survey::take(&u.codec, backend, &hints, true, |_, _| {})?;
    let mut chosen: BTreeMap<BlobId, Copy> = BTreeMap::new();
    for id in survey.copies.keys() {
        if let Some(c) = survey.readable(id, old.entries.get(id)).first() {
            chosen.insert(*id, *c);
        }
    }
    let damaged_packs: Vec<PackId> = survey
        .packs
        .iter()
        .filter(|(_, h)| !h.is_clean())
        .map(|(p, _)| *p)
        .collect();

    // 4. Records.
    let mut recs = old.records.clone();
    let (packed, errors) = records::from_packs(&u.codec, backend, &survey);
    report.notes.extend(errors);
    for r in packed.all() {
        recs.add(r);
    }
    if let Some(c) = packed.config {
        recs.add(MetaRecord::Config(c));
    }
    add_missing_items(&mut recs);
    let unpacked: Vec<MetaRecord> = recs
        .all()
        .into_iter()
        .filter(|r| !chosen.contains_key(&records::blob_id(&u.codec, r)))
        .collect();

    // 5. Lost paths.
    let blobs = Chosen {
        codec: &u.codec,
        backend,
        survey: &survey,
        old: &old.entries,
        chosen: &chosen,
    };
    let mut walk = Walk::default();
    let now = now_ns();
    let mut marks = Vec::new();
    for p in recs.points.values() {
        let losses = walk.losses(&blobs, &p.root);
        if !losses.is_empty() {
            marks.push(mark(&p.item, &p.name, &losses, now));
            let label = format!("{}/{}", p.item, p.name);
            report.damaged.push((label.clone(), lines(&label, &losses)));
        }
    }
    for i in recs.incoming.values() {
        let losses = walk.losses(&blobs, &i.root);
        if !losses.is_empty() {
            let label = format!("{}/incoming", i.item);
            report.damaged.push((label.clone(), lines(&label, &losses)));
        }
    }
    describe_changes(
        &mut report,
        &old,
        &survey,
        &chosen,
        &recs,
        &unpacked,
        &damaged_packs,
    );
    report.packs = survey.packs.len() as u64;
    report.items = recs.items.len() as u64;
    report.points = recs.points.len() as u64;
    if dry_run {
        report.blobs = chosen.len() as u64;
        return Ok((None, report));
    }

    // 6. Build.
    let new_dir = dir.join(INDEX_NEW_DIR);
    index::remove_dir(&new_dir, &u.observer)?;
    let Unlocked {
        location,
        local_dir,
        index_stale,
        config,
        config_bytes,
        master,
        notes,
        lock,
        codec,
        params,
        backend,
        observer,
    } = u;
    // Whatever fails from here to the swap leaves the old database in place and removes the
    // new one (a full disk must not leave a half-built database behind).
    let abandon = |e: VaultError| {
        let _ = index::remove_dir(&new_dir, &observer);
        e
    };
    let db = Db::create_observed(&new_dir, &vault_id, observer.clone())
        .map_err(|e| abandon(e.into()))?;
    let store = match Store::open(backend.clone(), codec, db.clone(), params.pack_target_bytes) {
        Ok(store) => store,
        Err(e) => {
            drop(db);
            return Err(abandon(e.into()));
        }
    };
    let built = build(&store, &db, &survey, &chosen, &recs, &unpacked, &marks);
    let codec = store.into_codec();
    drop(db);
    report.blobs = built.map_err(abandon)?;

    // 7. Swap, 8. set damaged packs aside.
    let index_dir = dir.join(INDEX_DIR);
    report.previous = index::replace(&index_dir, &new_dir, &dir.join(INDEX_PREV_DIR), &observer)?;
    for pack in damaged_packs.iter().filter(|_| !read_only) {
        backend.set_aside(Key::Pack(*pack))?;
    }
    let db = Db::open(&index_dir, &vault_id, observer.clone())?;
    let u = Unlocked {
        location,
        local_dir,
        index_stale,
        config,
        config_bytes,
        master,
        notes,
        lock,
        codec,
        params,
        backend,
        observer,
    };
    let vault = Vault::assemble(u, db)?;
    if !read_only {
        report.config_restored = vault.restore_config(recs.config.clone())?;
    }
    Ok((Some(vault), report))
}

/// Step 1: the old database's blob locations and records, as far as they read. A database the
/// engine cannot read (or panics on) is noted and left alone.
fn read_old(dir: &Path, vault_id: &[u8], u: &Unlocked, report: &mut RepairReport) -> Old {
    let index_dir = dir.join(INDEX_DIR);
    if !index_dir.exists() {
        report
            .notes
            .push("the index database is missing: rebuilding it from the packs".into());
        return Old::default();
    }
    let read = || -> Result<(Old, Vec<String>)> {
        let db = Db::open(&index_dir, vault_id, u.observer.clone())?;
        let mut old = Old::default();
        let mut notes = Vec::new();
        for e in Index::open(&db)?.iter() {
            match e {
                Ok((id, loc)) => {
                    old.entries.insert(id, loc);
                }
                Err(e) => notes.push(format!("{e} (left out)")),
            }
        }
        let scan = Catalog::open(&db)?.scan(&u.codec);
        for r in scan.records {
            old.records.add(r);
        }
        notes.extend(scan.damaged.into_iter().map(|d| d.line));
        Ok((old, notes))
    };
    match index::quietly(read) {
        Ok(Ok((old, notes))) => {
            report.notes.extend(notes);
            old
        }
        Ok(Err(e)) => {
            report.notes.push(format!(
                "the index database cannot be read ({e}): rebuilding it from the packs alone"
            ));
            Old::default()
        }
        Err(_) => {
            report.notes.push(
                "the index database cannot be read (the database engine failed on it): \
                 rebuilding it from the packs alone"
                    .into(),
            );
            Old::default()
        }
    }
}

/// Items that points or incoming trees name but whose record is lost everywhere.
fn add_missing_items(recs: &mut Records) {
    let named: Vec<(String, i64)> = recs
        .points
        .values()
        .map(|p| (p.item.clone(), p.created_ns))
        .chain(recs.incoming.values().map(|i| (i.item.clone(), i.saved_ns)))
        .collect();
    for (name, created_ns) in named {
        recs.items.entry(name.clone()).or_insert(ItemRecord {
            name,
            created_ns,
            revision: 0,
        });
    }
    let items = recs.items.clone();
    recs.policies.retain(|item, _| items.contains_key(item));
}

fn mark(item: &str, point: &str, losses: &[Loss], now: i64) -> DamageRecord {
    DamageRecord {
        item: item.into(),
        point: point.into(),
        paths: losses.iter().map(|l| l.path.clone()).collect(),
        found_ns: now,
    }
}

fn lines(label: &str, losses: &[Loss]) -> Vec<String> {
    losses.iter().map(|l| l.line(label)).collect()
}

/// Step 6: write the new database (and the packs it needs). Returns the blobs indexed.
fn build(
    store: &Store,
    db: &Db,
    survey: &Survey,
    chosen: &BTreeMap<BlobId, Copy>,
    recs: &Records,
    unpacked: &[MetaRecord],
    marks: &[DamageRecord],
) -> Result<u64> {
    // Salvaged blobs out of damaged packs first: records written below may name them.
    let salvaged: Vec<(PackId, PackEntry)> = chosen
        .values()
        .filter(|c| !survey.is_clean(&c.pack))
        .map(|c| (c.pack, c.entry))
        .collect();
    if !salvaged.is_empty() {
        store.gc_copy(&salvaged)?;
    }
    for r in unpacked {
        store.put(BlobKind::Meta, &format::encode(r))?;
    }
    store.flush()?;
    let idx = store.index();
    for (id, c) in chosen {
        if !idx.contains(id)? {
            idx.insert_pack(c.pack, &[c.entry])?;
        }
    }
    let catalog = Catalog::open(db)?;
    let codec = store.codec();
    for r in recs.all() {
        match &r {
            MetaRecord::Item(it) => catalog.put_item(codec, it)?,
            MetaRecord::Point(p) => catalog.put_point(codec, p)?,
            MetaRecord::Incoming(i) => catalog.put_incoming(codec, i)?,
            MetaRecord::Policy(p) => catalog.put_policy(codec, p)?,
            MetaRecord::Config(_) => {}
        }
    }
    for m in marks {
        catalog.put_damage(codec, m)?;
    }
    db.flush()?;
    // Read it all back before it replaces anything.
    let indexed = idx.iter().filter(|e| e.is_ok()).count() as u64;
    let scan = catalog.scan(codec);
    let mut back = Records::default();
    for r in scan.records {
        back.add(r);
    }
    let complete = scan.damaged.is_empty()
        && indexed >= chosen.len() as u64
        && back.all() == recs.all()
        && marks.iter().all(|m| {
            catalog
                .damage(codec, &m.item, &m.point)
                .is_ok_and(|d| d.as_ref() == Some(m))
        });
    if !complete {
        return Err(VaultError::Internal(
            "the rebuilt index database does not read back as written",
        ));
    }
    Ok(indexed)
}

/// The report's lines of what changes (or would).
fn describe_changes(
    report: &mut RepairReport,
    old: &Old,
    survey: &Survey,
    chosen: &BTreeMap<BlobId, Copy>,
    recs: &Records,
    unpacked: &[MetaRecord],
    damaged_packs: &[PackId],
) {
    let (mut added, mut moved) = (0u64, 0u64);
    for (id, c) in chosen {
        match old.entries.get(id) {
            None => added += 1,
            Some(loc) if *loc != c.location() || !survey.is_clean(&loc.pack) => moved += 1,
            Some(_) => {}
        }
    }
    let dropped = old
        .entries
        .keys()
        .filter(|id| !chosen.contains_key(id))
        .count();
    if added + moved + dropped as u64 > 0 {
        report.changes.push(format!(
            "index: {added} blobs added (in packs the index did not know), {moved} pointed at \
             intact copies, {dropped} dropped (no intact copy in any pack)"
        ));
    }
    for r in recs.all() {
        match old.records.get(&r) {
            None => report
                .changes
                .push(format!("catalog: {} restored from the packs", describe(&r))),
            Some(o) if o != r => report.changes.push(format!(
                "catalog: {} updated to the newer revision in the packs",
                describe(&r)
            )),
            Some(_) => {}
        }
    }
    for r in unpacked {
        report.changes.push(format!(
            "packs: {} written again (its copy there is lost)",
            describe(r)
        ));
    }
    let mut copied: BTreeMap<PackId, u64> = BTreeMap::new();
    for c in chosen.values().filter(|c| !survey.is_clean(&c.pack)) {
        *copied.entry(c.pack).or_default() += 1;
    }
    for pack in damaged_packs {
        let problems = &survey.packs[pack].problems;
        let why = if problems.is_empty() {
            "it holds damaged blobs".to_string()
        } else {
            problems.join("; ")
        };
        report.changes.push(format!(
            "packs: {} intact blobs of damaged pack {pack} copied to new packs, the pack moved to \
             damaged/ ({why})",
            copied.get(pack).copied().unwrap_or(0)
        ));
    }
    let damaged: BTreeSet<&str> = report.damaged.iter().map(|(l, _)| l.as_str()).collect();
    for l in damaged {
        report.changes.push(format!(
            "catalog: {l} kept and marked damaged (its lost paths are listed)"
        ));
    }
}

/// Blobs as repair chose them.
struct Chosen<'a> {
    codec: &'a Codec,
    backend: &'a dyn Backend,
    survey: &'a Survey,
    old: &'a HashMap<BlobId, Location>,
    chosen: &'a BTreeMap<BlobId, Copy>,
}

impl Chosen<'_> {
    fn why_lost(&self, id: &BlobId) -> String {
        match self.survey.status(id, self.old.get(id)) {
            Status::Lost(why) => why,
            _ => format!("blob {id} has no intact copy"),
        }
    }

    fn copy(&self, id: &BlobId, kind: BlobKind) -> std::result::Result<&Copy, String> {
        match self.chosen.get(id) {
            Some(c) if c.entry.kind == kind => Ok(c),
            Some(c) => Err(format!("blob {id} is a {:?}, not a {kind:?}", c.entry.kind)),
            None => Err(self.why_lost(id)),
        }
    }
}

impl Blobs for Chosen<'_> {
    fn tree(&self, id: &BlobId) -> std::result::Result<Tree, String> {
        let copy = self.copy(id, BlobKind::Tree)?;
        let plain =
            records::read_copy(self.codec, self.backend, id, copy).map_err(|e| e.to_string())?;
        format::decode(&plain, "tree").map_err(|e| format!("blob {id} {e}"))
    }

    fn data_problem(&self, id: &BlobId) -> Option<String> {
        self.copy(id, BlobKind::Data).err()
    }
}
