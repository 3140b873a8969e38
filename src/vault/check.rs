//! `check`: verify the index against the packs, every record against its copies, every point's
//! trees and chunk references, and (with `--read-data`) every blob of every pack, indexed or
//! not. What it finds is one of two kinds (DESIGN.md §11.4):
//! - damaged container, data intact: a pack whose header, trailer or frames are damaged while
//!   its blobs authenticate, a missing or damaged pack whose blobs have intact copies elsewhere,
//!   an index entry that points wrong, a record that lost its copy in the packs or in the
//!   catalog, a damaged duplicate. `repair` fixes each without losing anything.
//! - data lost: a path of a point (or of an incoming tree) whose chunks or listing have no
//!   intact copy anywhere, named `ITEM/POINT:PATH`.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::format::{self, Tree};
use crate::store::index::Location;
use crate::store::pack::PackEntry;
use crate::store::survey::{Status, Survey};
use crate::store::{BlobId, BlobKind, PackId, Store};

use super::catalog::ValueKey;
use super::damage::{Blobs, Walk};
use super::records::{self, Records, describe};
use super::{Result, Vault};

#[derive(Debug, Default)]
pub struct CheckReport {
    pub packs: u64,
    /// Blobs in the index.
    pub blobs: u64,
    pub points: u64,
    pub trees: u64,
    pub data_bytes_verified: u64,
    /// Damage whose data is intact somewhere (`repair` fixes it), one line each.
    pub intact: Vec<String>,
    /// Lost data: `ITEM/POINT:PATH: what is damaged: why`, and records lost everywhere.
    pub lost: Vec<String>,
    /// `ITEM/POINT` (or `ITEM/incoming`) of every tree with lost data.
    pub damaged_points: BTreeSet<String>,
    pub warnings: Vec<String>,
}

impl CheckReport {
    /// Every error line: damage with the data intact first, then lost data.
    pub fn errors(&self) -> impl Iterator<Item = &String> {
        self.intact.iter().chain(&self.lost)
    }

    pub fn error_count(&self) -> usize {
        self.intact.len() + self.lost.len()
    }
}

pub fn check(vault: &Vault, read_data: bool, on_pack: impl FnMut(u64, u64)) -> Result<CheckReport> {
    let store = vault.store();
    let codec = store.codec();
    let mut report = CheckReport::default();

    // 1. The index, and what it says each pack holds.
    let mut index: HashMap<BlobId, Location> = HashMap::new();
    let mut hints: HashMap<PackId, Vec<PackEntry>> = HashMap::new();
    for entry in store.index().iter() {
        match entry {
            Ok((id, loc)) => {
                hints.entry(loc.pack).or_default().push(PackEntry {
                    kind: loc.kind,
                    id,
                    offset: loc.offset,
                    len: loc.len,
                });
                index.insert(id, loc);
            }
            Err(e) => report.intact.push(format!("{e}")),
        }
    }
    report.blobs = index.len() as u64;

    // 2. Every pack, indexed or not.
    let survey = Survey::take(codec, store.backend(), &hints, read_data, on_pack)?;
    report.packs = survey.packs.len() as u64;
    report.data_bytes_verified = survey.bytes_verified;

    // 3. Records: the catalog's against the packs'.
    let scan = vault.catalog.scan(codec);
    let (packed, errors) = records::from_packs(codec, store.backend(), &survey);
    report.intact.extend(errors);
    let mut catalog = Records::default();
    for rec in scan.records {
        catalog.add(rec);
    }
    for bad in &scan.damaged {
        let copy = match &bad.key {
            ValueKey::Unknown => None,
            key => packed.all().into_iter().find(|r| key.holds(codec, r)),
        };
        match copy {
            Some(rec) => report.intact.push(format!(
                "{}; an intact copy of {} is in the packs: `vaultfs repair` restores it",
                bad.line,
                describe(&rec)
            )),
            None => report
                .lost
                .push(format!("{}; no copy of it is in the packs", bad.line)),
        }
    }
    for rec in catalog.all() {
        let id = records::blob_id(codec, &rec);
        if let Status::Lost(why) = survey.status(&id, index.get(&id)) {
            report.intact.push(format!(
                "the record of {} has no intact copy in the packs ({why}); the catalog's copy is \
                 intact: `vaultfs repair` writes it again",
                describe(&rec)
            ));
        }
    }
    for p in packed.points.values().filter(|p| p.deleted_at_ns.is_none()) {
        let listed = catalog.points.get(&(p.item.clone(), p.name.clone()));
        if listed.is_none_or(|c| c.revision < p.revision) {
            let how = match listed {
                None => "but not in the catalog",
                Some(_) => "in a newer revision than the catalog's",
            };
            report.warnings.push(format!(
                "point {}/{} is in the packs {how} (left by an interrupted command, or lost from \
                 the catalog); `vaultfs repair` brings it back",
                p.item, p.name
            ));
        }
    }

    // 4. Every point's and incoming tree's paths.
    let found = Found {
        store,
        survey: &survey,
        index: &index,
        lost: RefCell::new(HashSet::new()),
    };
    let mut walk = Walk::default();
    let mut roots: Vec<(String, format::Node)> = Vec::new();
    for p in catalog.points.values() {
        report.points += 1;
        roots.push((format!("{}/{}", p.item, p.name), p.root.clone()));
    }
    for i in catalog.incoming.values() {
        roots.push((format!("{}/incoming", i.item), i.root.clone()));
    }
    for (label, root) in &roots {
        let losses = walk.losses(&found, root);
        if !losses.is_empty() {
            report.damaged_points.insert(label.clone());
        }
        report.lost.extend(losses.iter().map(|l| l.line(label)));
    }
    report.trees = walk.trees;

    // 5. The packs and index entries behind it all (reported before the paths).
    let lost = found.lost.into_inner();
    let mut containers = pack_lines(&survey, &index, &lost);
    containers.append(&mut report.intact);
    report.intact = containers;
    report.warnings.extend(unindexed(&survey, &index));
    Ok(report)
}

/// One line per damaged or missing pack, and per index entry that disagrees with an intact pack.
fn pack_lines(
    survey: &Survey,
    index: &HashMap<BlobId, Location>,
    lost: &HashSet<BlobId>,
) -> Vec<String> {
    let mut out = Vec::new();
    // Packs where a blob some path needed was, or should have been.
    let mut lost_in: HashSet<PackId> = HashSet::new();
    for id in lost {
        lost_in.extend(index.get(id).map(|loc| loc.pack));
        lost_in.extend(survey.copies.get(id).into_iter().flatten().map(|c| c.pack));
    }
    let verdict = |lost_here: bool| {
        if lost_here {
            "data lost: the paths are listed below"
        } else {
            "damaged container, data intact: `vaultfs repair` copies its blobs out"
        }
    };
    for (pack, health) in &survey.packs {
        if health.is_clean() {
            continue;
        }
        let mut what = health.problems.clone();
        if what.is_empty() {
            what.push(format!("pack {pack} holds damaged blobs"));
        }
        let mut counts = vec![format!("{} blobs authenticate", health.blobs)];
        if !health.damaged.is_empty() {
            let mut ids: Vec<String> = health.damaged.iter().map(|e| e.id.to_string()).collect();
            if ids.len() > 5 {
                ids.truncate(5);
                ids.push("...".into());
            }
            counts.push(format!(
                "{} do not ({})",
                health.damaged.len(),
                ids.join(", ")
            ));
        }
        if health.damaged_stretches > 0 {
            counts.push(format!(
                "{} more, unnamed, do not",
                health.damaged_stretches
            ));
        }
        out.push(format!(
            "{}: {} ({})",
            what.join("; "),
            counts.join(", "),
            verdict(lost_in.contains(pack))
        ));
    }
    // Packs the index names that are gone.
    let mut missing: BTreeMap<PackId, (u64, u64)> = BTreeMap::new();
    for (id, loc) in index {
        if survey.packs.contains_key(&loc.pack) {
            if survey.is_clean(&loc.pack) && survey.status(id, Some(loc)) != Status::Ok {
                let why = match survey.status(id, Some(loc)) {
                    Status::Elsewhere(w) => format!("{w}; data intact"),
                    Status::Lost(w) => w,
                    Status::Ok => unreachable!("filtered above"),
                };
                out.push(format!(
                    "index entry of blob {id} disagrees with pack {} ({why})",
                    loc.pack
                ));
            }
            continue;
        }
        let m = missing.entry(loc.pack).or_default();
        m.0 += 1;
        if matches!(survey.status(id, Some(loc)), Status::Lost(_)) {
            m.1 += 1;
        }
    }
    for (pack, (blobs, gone)) in missing {
        let lost_here = lost_in.contains(&pack);
        out.push(format!(
            "pack {pack} is missing: the index names {blobs} blobs in it, {} have intact copies \
             elsewhere ({})",
            blobs - gone,
            if lost_here {
                "data lost: the paths are listed below"
            } else {
                "no path of any point lost data: `vaultfs repair` indexes the copies and writes \
                 again the records it held"
            }
        ));
    }
    out
}

/// Warnings for blobs in intact packs that the index does not point at.
fn unindexed(survey: &Survey, index: &HashMap<BlobId, Location>) -> Vec<String> {
    let mut count: BTreeMap<PackId, u64> = BTreeMap::new();
    for (id, copies) in &survey.copies {
        for c in copies.iter().filter(|c| survey.is_clean(&c.pack)) {
            if index.get(id) != Some(&c.location()) {
                *count.entry(c.pack).or_default() += 1;
            }
        }
    }
    count
        .into_iter()
        .map(|(pack, n)| {
            format!(
                "pack {pack}: {n} blobs not in the index (left by an interrupted write; `repair` \
                 indexes them, gc will drop them)"
            )
        })
        .collect()
}

/// Blobs as the survey found them, the index's copy first.
struct Found<'a> {
    store: &'a Store,
    survey: &'a Survey,
    index: &'a HashMap<BlobId, Location>,
    /// Blobs a path needed and found lost.
    lost: RefCell<HashSet<BlobId>>,
}

impl Found<'_> {
    fn problem(&self, id: &BlobId, kind: BlobKind) -> Option<String> {
        match self.survey.status(id, self.index.get(id)) {
            Status::Lost(why) => {
                self.lost.borrow_mut().insert(*id);
                Some(why)
            }
            _ => {
                let copies = self.survey.readable(id, self.index.get(id));
                match copies.iter().find(|c| c.entry.kind != kind) {
                    Some(c) if copies.iter().all(|c| c.entry.kind != kind) => {
                        self.lost.borrow_mut().insert(*id);
                        Some(format!("blob {id} is a {:?}, not a {kind:?}", c.entry.kind))
                    }
                    _ => None,
                }
            }
        }
    }
}

impl Blobs for Found<'_> {
    fn tree(&self, id: &BlobId) -> std::result::Result<Tree, String> {
        if let Some(why) = self.problem(id, BlobKind::Tree) {
            return Err(why);
        }
        let mut why = format!("blob {id} has no readable copy");
        for copy in self.survey.readable(id, self.index.get(id)) {
            match self.store.get_at(id, &copy.location()) {
                Ok(plain) => {
                    return format::decode(&plain, "tree").map_err(|e| format!("blob {id} {e}"));
                }
                Err(e) => why = e.to_string(),
            }
        }
        self.lost.borrow_mut().insert(*id);
        Err(why)
    }

    fn data_problem(&self, id: &BlobId) -> Option<String> {
        self.problem(id, BlobKind::Data)
    }
}
