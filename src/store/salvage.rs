//! Salvage: what a pack still holds when its header cannot be read.
//!
//! Every blob authenticates on its own (AAD = kind ‖ id), so a pack's header is only a map: a
//! blob that authenticates where something says it is, is that blob. Salvage collects such
//! places from everything that may know them (DESIGN.md §11.2):
//! - the header itself, opened as another pack's (a renamed, copied or swapped file);
//! - the frames of a format-3 pack, walked from the start ([`Codec::frame`]); a blob found that
//!   way is named by [`Codec::identify`]. After a damaged frame the walk looks for the next one
//!   byte by byte (one keyed hash per offset);
//! - entries the index had for the pack (`hints`), tried at their places: packs of formats 1-2
//!   have no frames, so this is what is left of them when their header is gone.
//!
//! Nothing here writes. Everything returned as found has been authenticated.

use std::collections::HashSet;

use super::backend::{Backend, Key};
use super::codec::{Codec, FRAME_BYTES};
use super::pack::{self, HEADER_FRAME, MAGIC, PackEntry, TRAILER_BYTES};
use super::{BlobId, BlobKind, PackId, Result};

/// Bytes read at a time while looking for the next frame after a damaged one.
const SCAN_WINDOW_BYTES: u64 = 1 << 20;

/// What a damaged pack still holds.
#[derive(Debug, Default)]
pub struct Salvaged {
    /// Blobs that authenticate, where they lie in this file, in offset order.
    pub found: Vec<PackEntry>,
    /// Entries (from a header or the index) whose blob does not authenticate where they say.
    pub damaged: Vec<PackEntry>,
    /// Framed stretches whose blob does not authenticate (its id is unknown): (offset, length).
    pub damaged_stretches: Vec<(u64, u32)>,
    /// The pack the content was sealed for, when it is not the file's own name.
    pub sealed_for: Option<PackId>,
    /// A header was found (under another pack's id, or by its frame).
    pub header_found: bool,
}

/// Read one blob at its place and authenticate it. `Ok(false)`: damaged or cut off there.
pub fn authentic_at(
    codec: &Codec,
    backend: &dyn Backend,
    pack: &PackId,
    e: &PackEntry,
) -> Result<bool> {
    match pack::read_sealed(backend, pack, e.offset, e.len) {
        Ok(bytes) => Ok(codec.authentic(e.kind, &e.id, bytes)),
        Err(err) if err.is_damage() => Ok(false),
        Err(err) => Err(err),
    }
}

/// Whether the frame before blob `e` of a framed pack (file `file`, sealed for `sealed_for`)
/// says what the header says.
pub fn frame_intact(
    codec: &Codec,
    backend: &dyn Backend,
    file: &PackId,
    sealed_for: &PackId,
    e: &PackEntry,
) -> Result<bool> {
    let Some(at) = (e.offset as u64).checked_sub(FRAME_BYTES) else {
        return Ok(false);
    };
    match backend.get_range(Key::Pack(*file), at, FRAME_BYTES) {
        Ok(b) => Ok(codec.unframe(sealed_for, at, &b) == Some((e.kind as u8, e.len))),
        Err(err) if err.is_damage() => Ok(false),
        Err(err) => Err(err),
    }
}

/// Whether the frame before the header of framed pack `file` (whose trailer reads) is intact.
pub fn header_frame_intact(codec: &Codec, backend: &dyn Backend, file: &PackId) -> Result<bool> {
    let key = Key::Pack(*file);
    let size = backend.size(key)?;
    let Some(trailer) = size
        .checked_sub(TRAILER_BYTES)
        .map(|at| read(backend, key, at, TRAILER_BYTES))
        .transpose()?
        .flatten()
    else {
        return Ok(false);
    };
    let hlen = u32::from_le_bytes(trailer[..4].try_into().expect("4 bytes"));
    let Some(at) = size.checked_sub(TRAILER_BYTES + hlen as u64 + FRAME_BYTES) else {
        return Ok(false);
    };
    Ok(read(backend, key, at, FRAME_BYTES)?
        .is_some_and(|f| codec.unframe(file, at, &f) == Some((HEADER_FRAME, hlen))))
}

/// Everything pack file `file` (whose own header does not read) still holds. `others`: ids of
/// other packs its content may have been sealed for; `hints`: entries the index had for it.
pub fn salvage(
    codec: &Codec,
    backend: &dyn Backend,
    file: PackId,
    others: &[PackId],
    hints: &[PackEntry],
) -> Result<Salvaged> {
    let size = backend.size(Key::Pack(file))?;
    let ids: Vec<PackId> = std::iter::once(file)
        .chain(others.iter().copied().filter(|p| *p != file))
        .collect();
    let mut out = Salvaged::default();
    let mut listed: Vec<PackEntry> = Vec::new();
    // Whose frames the file holds costs one keyed hash per id; an unframed pack (formats 1-2)
    // can only be tried by opening its header under each other id.
    let mut framed_for = frames_sealed_for(codec, backend, &file, &ids, size)?;
    let header_ids: Vec<PackId> = match framed_for {
        Some(id) if id == file => Vec::new(),
        Some(id) => vec![id],
        None => ids[1..].to_vec(),
    };
    for id in &header_ids {
        match pack::read_header_as(codec, backend, &file, id) {
            Ok((entries, framed)) => {
                listed = entries;
                out.header_found = true;
                out.sealed_for = Some(*id);
                framed_for = framed.then_some(*id);
                break;
            }
            Err(e) if e.is_damage() => {}
            Err(e) => return Err(e),
        }
    }
    if let Some(id) = framed_for {
        if id != file {
            out.sealed_for = Some(id);
        }
        if let Some(entries) = walk(codec, backend, &file, &id, size, &mut out)? {
            out.header_found = true;
            listed.extend(entries);
        }
    }
    let mut known: HashSet<(BlobId, u32)> = out.found.iter().map(|e| (e.id, e.offset)).collect();
    for e in listed.iter().chain(hints) {
        if !known.insert((e.id, e.offset)) {
            continue;
        }
        if authentic_at(codec, backend, &file, e)? {
            out.found.push(*e);
        } else {
            out.damaged.push(*e);
        }
    }
    out.found.sort_by_key(|e| e.offset);
    Ok(out)
}

/// The pack id whose frames the file holds: the first of `ids` under which the first frame
/// decodes; the file's own if that frame is damaged but the trailer says the pack is framed.
fn frames_sealed_for(
    codec: &Codec,
    backend: &dyn Backend,
    file: &PackId,
    ids: &[PackId],
    size: u64,
) -> Result<Option<PackId>> {
    let key = Key::Pack(*file);
    if size >= FRAME_BYTES {
        let first = read(backend, key, 0, FRAME_BYTES)?;
        if let Some(first) = first
            && let Some(id) = ids.iter().find(|id| {
                codec
                    .unframe(id, 0, &first)
                    .is_some_and(|(k, _)| k != HEADER_FRAME)
            })
        {
            return Ok(Some(*id));
        }
    }
    if size >= TRAILER_BYTES
        && let Some(trailer) = read(backend, key, size - TRAILER_BYTES, TRAILER_BYTES)?
        && &trailer[4..] == MAGIC
    {
        return Ok(Some(*file));
    }
    Ok(None)
}

/// Walk the frames of `file` (masked for pack `id`) from the start, adding what authenticates
/// to `out`. Returns the header's entries if its frame was reached and it opens.
fn walk(
    codec: &Codec,
    backend: &dyn Backend,
    file: &PackId,
    id: &PackId,
    size: u64,
    out: &mut Salvaged,
) -> Result<Option<Vec<PackEntry>>> {
    let key = Key::Pack(*file);
    let mut at = 0u64;
    // The frame at `at` follows a frame that decoded: a frame that decodes there is genuine,
    // even if its blob does not authenticate. After a search, only an authentic blob proves it.
    let mut chained = true;
    while at + FRAME_BYTES <= size {
        let Some(bytes) = read(backend, key, at, FRAME_BYTES)? else {
            break;
        };
        let Some((kind, len)) = codec.unframe(id, at, &bytes) else {
            chained = false;
            match next_frame(codec, backend, file, id, at + 1, size)? {
                Some(next) => {
                    at = next;
                    continue;
                }
                None => break,
            }
        };
        let start = at + FRAME_BYTES;
        if start + len as u64 > size {
            if chained && kind != HEADER_FRAME {
                // A blob cut off by the end of the file.
                out.damaged_stretches.push((start, len));
                break;
            }
            chained = false;
            at += 1;
            continue;
        }
        let Some(sealed) = read(backend, key, start, len as u64)? else {
            break;
        };
        if kind == HEADER_FRAME {
            if let Ok(entries) = pack::open_header(codec, id, &sealed, at) {
                return Ok(Some(entries));
            }
            if chained {
                // The genuine header, damaged: only it and the trailer follow.
                break;
            }
            at += 1;
            continue;
        }
        let kind = BlobKind::from_u8(kind).expect("unframe checks the kind");
        match codec.identify(kind, &sealed) {
            Some(blob) => {
                out.found.push(PackEntry {
                    kind,
                    id: blob,
                    offset: start as u32,
                    len,
                });
                at = start + len as u64;
                chained = true;
            }
            None if chained => {
                out.damaged_stretches.push((start, len));
                at = start + len as u64;
            }
            None => at += 1,
        }
    }
    Ok(None)
}

/// The offset of the next place from `from` where a frame decodes and fits in the file.
fn next_frame(
    codec: &Codec,
    backend: &dyn Backend,
    file: &PackId,
    id: &PackId,
    from: u64,
    size: u64,
) -> Result<Option<u64>> {
    let key = Key::Pack(*file);
    let mut pos = from;
    while pos + FRAME_BYTES <= size {
        let len = (SCAN_WINDOW_BYTES + FRAME_BYTES - 1).min(size - pos);
        let Some(buf) = read(backend, key, pos, len)? else {
            return Ok(None);
        };
        for i in 0..=(buf.len() - FRAME_BYTES as usize) {
            let at = pos + i as u64;
            if let Some((_, blob_len)) = codec.unframe(id, at, &buf[i..])
                && at + FRAME_BYTES + blob_len as u64 <= size
            {
                return Ok(Some(at));
            }
        }
        pos += SCAN_WINDOW_BYTES;
    }
    Ok(None)
}

/// `len` bytes at `at`, or `None` if the file ends before (it may have been cut meanwhile).
fn read(backend: &dyn Backend, key: Key, at: u64, len: u64) -> Result<Option<Vec<u8>>> {
    match backend.get_range(key, at, len) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.is_damage() => Ok(None),
        Err(e) => Err(e),
    }
}
