//! Pack files: sealed blobs appended one after another, then the pack's sealed header.
//!
//! Layout (format 3): (frame ‖ sealed blob)* ‖ frame ‖ sealed header ‖ header length (u32 LE) ‖
//! magic `VFPACK02`. Formats 1-2 wrote the same without frames, magic `VFPACK01`; both read.
//! The header is the list of (kind, id, offset, length) of every blob, sealed with aad =
//! "vaultfs pack header" ‖ pack id, so `repair` can rebuild the index from packs alone and a
//! header cannot be moved to another pack. The 8-byte frame before each blob (and before the
//! header) gives its kind and length ([`Codec::frame`]), so the blobs of a pack whose header or
//! trailer is damaged, or which was cut short, can still be found (`store::salvage`). A pack is
//! one backend object, written in one stream and visible only once complete (locally: under
//! `tmp/`, fsynced, renamed into `packs/XX/`, directory fsynced).

use super::backend::{Backend, Key, ObjectWriter};
use super::codec::{Codec, FRAME_BYTES};
use super::{BlobId, BlobKind, Damaged, PackId, Result, StoreError};
use crate::keys::random_bytes;

/// Trailer magic of packs written by format 3 (framed).
pub const MAGIC: &[u8; 8] = b"VFPACK02";
/// Trailer magic of packs written by formats 1 and 2 (no frames).
pub const MAGIC_UNFRAMED: &[u8; 8] = b"VFPACK01";
pub const TRAILER_BYTES: u64 = 12;
/// The frame kind that announces the header.
pub const HEADER_FRAME: u8 = 0;
pub const ENTRY_BYTES: usize = 41;
/// A header can list at most this many entries (bounds what a damaged length field can make us read).
const MAX_HEADER_BYTES: u64 = 64 << 20;

/// Where a blob lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackEntry {
    pub kind: BlobKind,
    pub id: BlobId,
    pub offset: u32,
    pub len: u32,
}

/// A pack being written.
pub struct PackWriter {
    id: PackId,
    out: Box<dyn ObjectWriter>,
    entries: Vec<PackEntry>,
}

impl PackWriter {
    pub fn create(backend: &dyn Backend) -> Result<PackWriter> {
        let mut raw = [0u8; 16];
        random_bytes(&mut raw)?;
        Self::with_id(backend, PackId(raw))
    }

    /// A pack with a chosen id: golden vectors only (ids must be unique).
    #[cfg(feature = "test-hooks")]
    pub fn create_with_id(backend: &dyn Backend, id: PackId) -> Result<PackWriter> {
        Self::with_id(backend, id)
    }

    fn with_id(backend: &dyn Backend, id: PackId) -> Result<PackWriter> {
        Ok(PackWriter {
            id,
            out: backend.create(Key::Pack(id))?,
            entries: Vec::new(),
        })
    }

    pub fn id(&self) -> PackId {
        self.id
    }

    pub fn size(&self) -> u64 {
        self.out.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Ids of the blobs appended so far.
    pub fn ids(&self) -> impl Iterator<Item = BlobId> + '_ {
        self.entries.iter().map(|e| e.id)
    }

    /// Append one sealed blob after its frame; returns where the blob went.
    pub fn append(
        &mut self,
        codec: &Codec,
        kind: BlobKind,
        id: BlobId,
        sealed: &[u8],
    ) -> Result<PackEntry> {
        // Offsets and lengths are u32: a pack (target at most 1 GiB) stays below 4 GiB.
        let end = self.size() + FRAME_BYTES + sealed.len() as u64;
        if end > u32::MAX as u64 {
            return Err(StoreError::TooLarge {
                what: "pack",
                bytes: end,
                limit: u32::MAX as u64,
            });
        }
        let len = sealed.len() as u32;
        let frame = codec.frame(&self.id, self.size(), kind as u8, len);
        self.out.append(&frame)?;
        let offset = self.size() as u32;
        self.out.append(sealed)?;
        let entry = PackEntry {
            kind,
            id,
            offset,
            len,
        };
        self.entries.push(entry);
        Ok(entry)
    }

    /// Write the header and trailer, make the pack durable and visible. Returns its entries;
    /// only after this may the index point at them.
    pub fn finish(mut self, codec: &Codec) -> Result<(PackId, Vec<PackEntry>)> {
        let header = codec.seal_raw(&encode_header(&self.entries), &header_aad(&self.id))?;
        let frame = codec.frame(&self.id, self.size(), HEADER_FRAME, header.len() as u32);
        self.out.append(&frame)?;
        self.out.append(&header)?;
        self.out.append(&(header.len() as u32).to_le_bytes())?;
        self.out.append(MAGIC)?;
        self.out.commit()?;
        Ok((self.id, self.entries))
    }

    /// Throw away an unfinished pack.
    pub fn abandon(self) {
        self.out.abort();
    }
}

/// The header's plaintext: one [`ENTRY_BYTES`] entry per blob, in pack order.
pub fn encode_header(entries: &[PackEntry]) -> Vec<u8> {
    let mut plain = Vec::with_capacity(entries.len() * ENTRY_BYTES);
    for e in entries {
        plain.push(e.kind as u8);
        plain.extend_from_slice(&e.id.0);
        plain.extend_from_slice(&e.offset.to_le_bytes());
        plain.extend_from_slice(&e.len.to_le_bytes());
    }
    plain
}

pub fn header_aad(id: &PackId) -> Vec<u8> {
    let mut aad = b"vaultfs pack header".to_vec();
    aad.extend_from_slice(&id.0);
    aad
}

/// Read and authenticate a pack's header.
pub fn read_header(codec: &Codec, backend: &dyn Backend, id: &PackId) -> Result<Vec<PackEntry>> {
    read_header_as(codec, backend, id, id).map(|(entries, _)| entries)
}

/// Read the header of pack file `file`, authenticated as the header of pack `sealed_for`
/// (the same, unless salvage looks for a renamed or swapped file). Returns the entries and
/// whether the pack is framed (format 3).
pub fn read_header_as(
    codec: &Codec,
    backend: &dyn Backend,
    file: &PackId,
    sealed_for: &PackId,
) -> Result<(Vec<PackEntry>, bool)> {
    let key = Key::Pack(*file);
    let size = backend.size(key)?;
    let truncated = |why: String| StoreError::corrupt(Damaged::Object(key), why);
    if size < TRAILER_BYTES {
        return Err(truncated(format!("is truncated ({size} bytes)")));
    }
    let trailer = backend.get_range(key, size - TRAILER_BYTES, TRAILER_BYTES)?;
    let framed = match &trailer[4..] {
        m if m == MAGIC => true,
        m if m == MAGIC_UNFRAMED => false,
        _ => {
            return Err(truncated(
                "is truncated or damaged (no pack trailer at the end)".into(),
            ));
        }
    };
    let hlen = u32::from_le_bytes(trailer[..4].try_into().expect("4 bytes")) as u64;
    let bad = |why: String| StoreError::corrupt(Damaged::PackHeader(*file), why);
    if hlen > MAX_HEADER_BYTES || hlen + TRAILER_BYTES > size {
        return Err(bad(format!("is damaged: header length {hlen}")));
    }
    let hstart = size - TRAILER_BYTES - hlen;
    let sealed = backend.get_range(key, hstart, hlen)?;
    let entries = open_header(codec, sealed_for, &sealed, hstart)
        .map_err(|why| bad(format!("is damaged: {why}")))?;
    Ok((entries, framed))
}

/// Authenticate and decode a sealed header that starts at `hstart` (every blob lies before it).
pub fn open_header(
    codec: &Codec,
    sealed_for: &PackId,
    sealed: &[u8],
    hstart: u64,
) -> std::result::Result<Vec<PackEntry>, String> {
    let plain = codec
        .open_raw(sealed, &header_aad(sealed_for))
        .map_err(|e| e.to_string())?;
    let entries = decode_header(&plain).map_err(str::to_string)?;
    if let Some(e) = entries
        .iter()
        .find(|e| e.offset as u64 + e.len as u64 > hstart)
    {
        return Err(format!("blob {} lies beyond the blob area", e.id));
    }
    Ok(entries)
}

/// Inverse of [`encode_header`]; the error says what is wrong.
pub fn decode_header(plain: &[u8]) -> std::result::Result<Vec<PackEntry>, &'static str> {
    if plain.len() % ENTRY_BYTES != 0 {
        return Err("entry table length");
    }
    plain
        .chunks_exact(ENTRY_BYTES)
        .map(|e| {
            Ok(PackEntry {
                kind: BlobKind::from_u8(e[0]).ok_or("unknown blob kind")?,
                id: BlobId(e[1..33].try_into().expect("32 bytes")),
                offset: u32::from_le_bytes(e[33..37].try_into().expect("4 bytes")),
                len: u32::from_le_bytes(e[37..41].try_into().expect("4 bytes")),
            })
        })
        .collect()
}

/// Read one sealed blob's bytes.
pub fn read_sealed(backend: &dyn Backend, pack: &PackId, offset: u32, len: u32) -> Result<Vec<u8>> {
    backend.get_range(Key::Pack(*pack), offset as u64, len as u64)
}
