//! A survey of every pack: where copies of which blobs lie, which of them authenticate, and
//! what is wrong with each pack as a container. `check` reports from it and `repair` rebuilds
//! the index from it, so both see the same vault: indexed or not, header intact or not.
//!
//! A pack whose header reads lists its blobs; with `read_data` each is read and authenticated
//! (and, in a framed pack, its frame checked). A pack whose header does not read is salvaged
//! (`store::salvage`): everything found there is authenticated.

use std::collections::{BTreeMap, HashMap};

use super::backend::Backend;
use super::codec::Codec;
use super::index::Location;
use super::pack::{self, PackEntry};
use super::salvage;
use super::{BlobId, PackId, Result, StoreError};

/// Read, authenticate and decompress blob `e` of `pack` and hash it: its plaintext length if
/// it is what its id says, `None` if it is damaged (a local failure is an error).
fn content_at(
    codec: &Codec,
    backend: &dyn Backend,
    pack: &PackId,
    e: &PackEntry,
) -> Result<Option<u64>> {
    let sealed = match pack::read_sealed(backend, pack, e.offset, e.len) {
        Ok(b) => b,
        Err(err) if err.is_damage() => return Ok(None),
        Err(err) => return Err(err),
    };
    match codec.open_owned(e.kind, &e.id, sealed) {
        Ok(plain) => Ok((codec.blob_id(e.kind, &plain) == e.id).then_some(plain.len() as u64)),
        Err(super::codec::OpenError::Context(io)) => {
            Err(StoreError::io("decompress", "zstd context", io))
        }
        Err(_) => Ok(None),
    }
}

/// What is known of one copy's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// Listed by an intact header, not read.
    Unread,
    Authentic,
    Damaged,
}

/// One copy of a blob.
#[derive(Debug, Clone, Copy)]
pub struct Copy {
    pub pack: PackId,
    pub entry: PackEntry,
    pub verified: Verified,
}

impl Copy {
    pub fn location(&self) -> Location {
        Location {
            pack: self.pack,
            offset: self.entry.offset,
            len: self.entry.len,
            kind: self.entry.kind,
        }
    }

    fn is_at(&self, loc: &Location) -> bool {
        self.location() == *loc
    }
}

/// What is wrong with one pack file.
#[derive(Debug, Default)]
pub struct PackHealth {
    pub size: u64,
    /// What is wrong with it as a container (header, trailer, frames, name); empty if nothing.
    pub problems: Vec<String>,
    /// Copies found in it that authenticate or were not read.
    pub blobs: u64,
    /// Copies in it that do not authenticate.
    pub damaged: Vec<PackEntry>,
    /// Framed blobs in it that do not authenticate and whose ids are unknown.
    pub damaged_stretches: u64,
}

impl PackHealth {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty() && self.damaged.is_empty() && self.damaged_stretches == 0
    }
}

/// Where a blob can be read, as far as the survey knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Where the index says.
    Ok,
    /// Not where the index says (or not indexed), but an intact copy exists: `repair` points
    /// the index at it. The string says where.
    Elsewhere(String),
    /// No copy is known to be intact: why.
    Lost(String),
}

#[derive(Debug, Default)]
pub struct Survey {
    /// Every pack file listed, by id.
    pub packs: BTreeMap<PackId, PackHealth>,
    /// Every copy of every blob found, by id.
    pub copies: HashMap<BlobId, Vec<Copy>>,
    /// Plaintext bytes read and found to hash to their ids (`read_data`).
    pub bytes_verified: u64,
}

impl Survey {
    /// Survey every pack. `hints`: what the index says each pack holds (tried in packs whose
    /// header is damaged); `read_data`: read and authenticate every blob of intact packs too.
    /// `progress(n, total)` is called before each pack.
    pub fn take(
        codec: &Codec,
        backend: &dyn Backend,
        hints: &HashMap<PackId, Vec<PackEntry>>,
        read_data: bool,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<Survey> {
        let listed = super::packs_sized(backend)?;
        let mut ids: Vec<PackId> = listed
            .iter()
            .map(|(p, _)| *p)
            .chain(hints.keys().copied())
            .collect();
        ids.sort();
        ids.dedup();
        let mut survey = Survey::default();
        let total = listed.len() as u64;
        for (n, (pack, size)) in listed.into_iter().enumerate() {
            progress(n as u64, total);
            let mut health = PackHealth {
                size,
                ..PackHealth::default()
            };
            let hinted = hints.get(&pack).map(Vec::as_slice).unwrap_or(&[]);
            match survey.read_intact(codec, backend, pack, read_data, &mut health) {
                Ok(()) => {}
                // Removed since it was listed (gc of a daemon, say): not there.
                Err(StoreError::Missing(_)) => continue,
                Err(e) if e.is_damage() => {
                    health.problems.push(e.to_string());
                    survey.salvage(codec, backend, pack, &ids, hinted, &mut health)?;
                }
                Err(e) => return Err(e),
            }
            survey.packs.insert(pack, health);
        }
        progress(total, total);
        Ok(survey)
    }

    /// Record the blobs of a pack whose header reads (an error: it does not).
    fn read_intact(
        &mut self,
        codec: &Codec,
        backend: &dyn Backend,
        pack: PackId,
        read_data: bool,
        health: &mut PackHealth,
    ) -> Result<()> {
        let (entries, framed) = pack::read_header_as(codec, backend, &pack, &pack)?;
        let mut bad_frames = 0u64;
        if read_data && framed && !salvage::header_frame_intact(codec, backend, &pack)? {
            health.problems.push(format!(
                "pack {pack}: the frame before its header is damaged"
            ));
        }
        for e in entries {
            let verified = if !read_data {
                Verified::Unread
            } else {
                if framed && !salvage::frame_intact(codec, backend, &pack, &pack, &e)? {
                    bad_frames += 1;
                }
                match content_at(codec, backend, &pack, &e)? {
                    Some(bytes) => {
                        self.bytes_verified += bytes;
                        Verified::Authentic
                    }
                    None => Verified::Damaged,
                }
            };
            self.add(pack, e, verified, health);
        }
        if bad_frames > 0 {
            health
                .problems
                .push(format!("pack {pack}: {bad_frames} blob frames are damaged"));
        }
        Ok(())
    }

    fn salvage(
        &mut self,
        codec: &Codec,
        backend: &dyn Backend,
        pack: PackId,
        ids: &[PackId],
        hints: &[PackEntry],
        health: &mut PackHealth,
    ) -> Result<()> {
        let found = match salvage::salvage(codec, backend, pack, ids, hints) {
            Ok(found) => found,
            Err(StoreError::Missing(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        if let Some(other) = found.sealed_for {
            health.problems.push(format!(
                "pack {pack} holds the content of pack {other} (a renamed, copied or swapped file)"
            ));
        }
        for e in found.found {
            self.add(pack, e, Verified::Authentic, health);
        }
        for e in found.damaged {
            self.add(pack, e, Verified::Damaged, health);
        }
        health.damaged_stretches = found.damaged_stretches.len() as u64;
        Ok(())
    }

    fn add(&mut self, pack: PackId, entry: PackEntry, verified: Verified, health: &mut PackHealth) {
        if verified == Verified::Damaged {
            health.damaged.push(entry);
        } else {
            health.blobs += 1;
        }
        self.copies.entry(entry.id).or_default().push(Copy {
            pack,
            entry,
            verified,
        });
    }

    /// True if the pack is listed and nothing was found wrong with it.
    pub fn is_clean(&self, pack: &PackId) -> bool {
        self.packs.get(pack).is_some_and(PackHealth::is_clean)
    }

    /// Copies of `id` that may be read, best first: the one at `prefer` (the index's), then
    /// those in clean packs, then those in damaged packs (salvaged), each by pack and offset.
    /// Copies known to be damaged are left out.
    pub fn readable(&self, id: &BlobId, prefer: Option<&Location>) -> Vec<Copy> {
        let mut out: Vec<Copy> = self
            .copies
            .get(id)
            .map(|v| {
                v.iter()
                    .filter(|c| c.verified != Verified::Damaged)
                    .copied()
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by_key(|c| {
            (
                !prefer.is_some_and(|loc| c.is_at(loc) && self.is_clean(&c.pack)),
                !self.is_clean(&c.pack),
                c.pack,
                c.entry.offset,
            )
        });
        out
    }

    /// Where blob `id` can be read, given where the index says it is (`indexed`).
    pub fn status(&self, id: &BlobId, indexed: Option<&Location>) -> Status {
        let copies = self.copies.get(id).map(Vec::as_slice).unwrap_or(&[]);
        let here = indexed.and_then(|loc| copies.iter().find(|c| c.is_at(loc)));
        if here.is_some_and(|c| c.verified != Verified::Damaged) {
            return Status::Ok;
        }
        if let Some(good) = self.readable(id, None).first() {
            let how = if self.is_clean(&good.pack) {
                "an intact copy"
            } else {
                "an intact copy, salvaged,"
            };
            return Status::Elsewhere(format!("{how} is in pack {}", good.pack));
        }
        Status::Lost(match (indexed, here) {
            (_, Some(c)) => format!("blob {id} in pack {} fails authentication", c.pack),
            (Some(loc), None) if !self.packs.contains_key(&loc.pack) => {
                format!("pack {} is missing", loc.pack)
            }
            (Some(loc), None) => {
                format!("blob {id} is not where the index says (pack {})", loc.pack)
            }
            (None, None) if !copies.is_empty() => format!("every copy of blob {id} is damaged"),
            (None, None) => format!("blob {id} is in no pack and not in the index"),
        })
    }
}
