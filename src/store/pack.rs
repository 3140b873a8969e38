//! Pack files: sealed blobs appended one after another, then the pack's sealed header.
//!
//! Layout: blob* ‖ sealed header ‖ header length (u32 LE) ‖ magic `VFPACK01`. The header is the
//! list of (kind, id, offset, length) of every blob, sealed with aad = "vaultfs pack header" ‖
//! pack id, so `repair` can rebuild the index from packs alone and a header cannot be moved to
//! another pack. A pack is written under `tmp/`, fsynced, then renamed into `packs/XX/` and the
//! directory fsynced: a pack under `packs/` is always complete.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::codec::Codec;
use super::{BlobId, BlobKind, PackId, Result, StoreError};
use crate::keys::random_bytes;

pub const MAGIC: &[u8; 8] = b"VFPACK01";
const TRAILER_BYTES: u64 = 12;
const ENTRY_BYTES: usize = 41;
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

/// Path of a finished pack.
pub fn pack_path(packs_dir: &Path, id: &PackId) -> PathBuf {
    let hex = id.to_hex();
    packs_dir.join(&hex[..2]).join(format!("{hex}.pack"))
}

/// Every finished pack under `packs_dir`, sorted. Files that are not packs are skipped.
pub fn list_packs(packs_dir: &Path) -> Result<Vec<PackId>> {
    let mut out = Vec::new();
    let rd = fs::read_dir(packs_dir).map_err(|e| StoreError::io("list", packs_dir, e))?;
    for sub in rd {
        let sub = sub.map_err(|e| StoreError::io("list", packs_dir, e))?;
        if !sub.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            continue;
        }
        let files = fs::read_dir(sub.path()).map_err(|e| StoreError::io("list", sub.path(), e))?;
        for f in files {
            let f = f.map_err(|e| StoreError::io("list", sub.path(), e))?;
            let name = f.file_name();
            let name = name.to_string_lossy();
            if let Some(id) = name.strip_suffix(".pack").and_then(PackId::from_hex) {
                out.push(id);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// A pack being written under `tmp/`.
pub struct PackWriter {
    id: PackId,
    tmp_path: PathBuf,
    file: BufWriter<File>,
    entries: Vec<PackEntry>,
    size: u64,
}

impl PackWriter {
    pub fn create(tmp_dir: &Path) -> Result<PackWriter> {
        let mut raw = [0u8; 16];
        random_bytes(&mut raw).map_err(|e| StoreError::Codec(e.to_string()))?;
        let id = PackId(raw);
        let tmp_path = tmp_dir.join(format!("{}.pack", id.to_hex()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp_path)
            .map_err(|e| StoreError::io("create", &tmp_path, e))?;
        Ok(PackWriter {
            id,
            tmp_path,
            file: BufWriter::with_capacity(256 << 10, file),
            entries: Vec::new(),
            size: 0,
        })
    }

    pub fn id(&self) -> PackId {
        self.id
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Ids of the blobs appended so far.
    pub fn ids(&self) -> impl Iterator<Item = BlobId> + '_ {
        self.entries.iter().map(|e| e.id)
    }

    /// Append one sealed blob; returns where it went.
    pub fn append(&mut self, kind: BlobKind, id: BlobId, sealed: &[u8]) -> Result<PackEntry> {
        let offset =
            u32::try_from(self.size).map_err(|_| StoreError::Codec("pack exceeds 4 GiB".into()))?;
        let len = u32::try_from(sealed.len())
            .map_err(|_| StoreError::Codec("blob exceeds 4 GiB".into()))?;
        self.file
            .write_all(sealed)
            .map_err(|e| StoreError::io("write", &self.tmp_path, e))?;
        self.size += sealed.len() as u64;
        let entry = PackEntry {
            kind,
            id,
            offset,
            len,
        };
        self.entries.push(entry);
        Ok(entry)
    }

    /// Write the header, make the pack durable and move it into `packs_dir`.
    /// Returns the pack's entries; only after this may the index point at them.
    pub fn finish(mut self, codec: &Codec, packs_dir: &Path) -> Result<(PackId, Vec<PackEntry>)> {
        let mut plain = Vec::with_capacity(self.entries.len() * ENTRY_BYTES);
        for e in &self.entries {
            plain.push(e.kind as u8);
            plain.extend_from_slice(&e.id.0);
            plain.extend_from_slice(&e.offset.to_le_bytes());
            plain.extend_from_slice(&e.len.to_le_bytes());
        }
        let header = codec.seal_raw(&plain, &header_aad(&self.id))?;
        let w = |r: std::io::Result<()>, p: &Path| r.map_err(|e| StoreError::io("write", p, e));
        w(self.file.write_all(&header), &self.tmp_path)?;
        w(
            self.file.write_all(&(header.len() as u32).to_le_bytes()),
            &self.tmp_path,
        )?;
        w(self.file.write_all(MAGIC), &self.tmp_path)?;
        let file = self
            .file
            .into_inner()
            .map_err(|e| StoreError::io("write", &self.tmp_path, e.into_error()))?;
        file.sync_all()
            .map_err(|e| StoreError::io("fsync", &self.tmp_path, e))?;
        drop(file);
        let dest = pack_path(packs_dir, &self.id);
        let dest_dir = dest.parent().expect("pack path has a parent");
        if !dest_dir.exists() {
            fs::create_dir_all(dest_dir).map_err(|e| StoreError::io("mkdir", dest_dir, e))?;
            fsync_dir(packs_dir)?;
        }
        fs::rename(&self.tmp_path, &dest).map_err(|e| StoreError::io("rename", &dest, e))?;
        fsync_dir(dest_dir)?;
        Ok((self.id, self.entries))
    }

    /// Throw away an unfinished pack.
    pub fn abandon(self) {
        drop(self.file);
        let _ = fs::remove_file(&self.tmp_path);
    }
}

/// fsync a directory so a rename or create in it is durable.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io("fsync", dir, e))
}

fn header_aad(id: &PackId) -> Vec<u8> {
    let mut aad = b"vaultfs pack header".to_vec();
    aad.extend_from_slice(&id.0);
    aad
}

/// Read and authenticate a pack's header.
pub fn read_header(codec: &Codec, packs_dir: &Path, id: &PackId) -> Result<Vec<PackEntry>> {
    let path = pack_path(packs_dir, id);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(StoreError::MissingPack(*id));
        }
        Err(e) => return Err(StoreError::io("open", &path, e)),
    };
    let size = file
        .metadata()
        .map_err(|e| StoreError::io("stat", &path, e))?
        .len();
    let truncated = |detail: String| StoreError::Truncated { pack: *id, detail };
    if size < TRAILER_BYTES {
        return Err(truncated(format!("{size} bytes")));
    }
    let mut trailer = [0u8; TRAILER_BYTES as usize];
    file.read_exact_at(&mut trailer, size - TRAILER_BYTES)
        .map_err(|e| StoreError::io("read", &path, e))?;
    if &trailer[4..] != MAGIC {
        return Err(truncated("no pack trailer at the end".into()));
    }
    let hlen = u32::from_le_bytes(trailer[..4].try_into().expect("4 bytes")) as u64;
    if hlen > MAX_HEADER_BYTES || hlen + TRAILER_BYTES > size {
        return Err(StoreError::BadPackHeader {
            pack: *id,
            detail: format!("header length {hlen}"),
        });
    }
    let hstart = size - TRAILER_BYTES - hlen;
    let mut sealed = vec![0u8; hlen as usize];
    file.read_exact_at(&mut sealed, hstart)
        .map_err(|e| StoreError::io("read", &path, e))?;
    let plain = codec
        .open_raw(&sealed, &header_aad(id))
        .map_err(|detail| StoreError::BadPackHeader { pack: *id, detail })?;
    if plain.len() % ENTRY_BYTES != 0 {
        return Err(StoreError::BadPackHeader {
            pack: *id,
            detail: "entry table length".into(),
        });
    }
    let mut out = Vec::with_capacity(plain.len() / ENTRY_BYTES);
    for e in plain.chunks_exact(ENTRY_BYTES) {
        let kind = BlobKind::from_u8(e[0]).ok_or_else(|| StoreError::BadPackHeader {
            pack: *id,
            detail: format!("blob kind {}", e[0]),
        })?;
        let entry = PackEntry {
            kind,
            id: BlobId(e[1..33].try_into().expect("32 bytes")),
            offset: u32::from_le_bytes(e[33..37].try_into().expect("4 bytes")),
            len: u32::from_le_bytes(e[37..41].try_into().expect("4 bytes")),
        };
        if entry.offset as u64 + entry.len as u64 > hstart {
            return Err(StoreError::BadPackHeader {
                pack: *id,
                detail: "entry beyond blob area".into(),
            });
        }
        out.push(entry);
    }
    Ok(out)
}

/// Read one sealed blob's bytes from an open pack file.
pub fn read_sealed(file: &File, pack: &PackId, offset: u32, len: u32) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; len as usize];
    match file.read_exact_at(&mut buf, offset as u64) {
        Ok(()) => Ok(buf),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(StoreError::Truncated {
            pack: *pack,
            detail: format!("blob at {offset}+{len} lies past the end"),
        }),
        Err(e) => Err(StoreError::io("read pack", format!("pack {pack}"), e)),
    }
}
