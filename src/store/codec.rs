//! The codec: blob ids, compression and authenticated encryption of one blob.
//!
//! Blob id = keyed blake3(kind ‖ plaintext). Sealed blob = nonce (12) ‖ AES-256-GCM(plaintext', aad = kind ‖ id) ‖ tag (16), where
//! plaintext' = codec byte (0 raw, 1 zstd) ‖ payload. Binding kind and id into the AAD means a
//! blob authenticates only as the object the index says it is.
//!
//! Salvage (a pack whose header is damaged) needs two more things, both here: the 8-byte frame
//! written before each blob of a format-3 pack (its kind and length, masked by a keyed hash of
//! the pack id and offset, DESIGN.md §3.4), and [`Codec::identify`], which finds the id of a
//! sealed blob from its own bytes (decrypt, hash, then authenticate under that id).

use aes_gcm::{Aes256Gcm, Nonce};
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use aes_gcm::aead::AeadInOut;

use super::{BlobId, BlobKind, PackId, StoreError};
use crate::keys::{Keys, random_bytes};

const RAW: u8 = 0;
const ZSTD: u8 = 1;
/// Bytes a sealed blob adds to its (compressed) payload: nonce, codec byte, tag.
pub const SEAL_OVERHEAD: usize = 12 + 1 + 16;
/// No blob's plaintext may exceed this (bounds memory when reading a damaged pack).
pub const MAX_BLOB_BYTES: usize = 256 << 20;
/// AES-GCM's limit on one message (2^36 - 32 bytes).
const MAX_SEALED_PLAINTEXT: u64 = (1 << 36) - 32;
/// Bytes of the frame before each blob (and before the header) of a format-3 pack.
pub const FRAME_BYTES: u64 = 8;
/// blake3 context of the frame key (derived from the id key, DESIGN.md §3.2).
const FRAME_KEY_CONTEXT: &str = "vaultfs v3 pack frame";

/// Why sealed bytes do not open: each means they are damaged, tampered with or sealed under
/// another key, except [`OpenError::Context`] (a local failure).
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("failed authentication (corrupt or tampered)")]
    Unauthentic,
    #[error("is too short to be a sealed object ({0} bytes)")]
    TooShort(usize),
    #[error("names an unknown codec {0}")]
    UnknownCodec(u8),
    #[error("decompresses to more than {MAX_BLOB_BYTES} bytes")]
    TooLarge,
    #[error("does not decompress: {0}")]
    Decompress(std::io::Error),
    /// A zstd context could not be made (memory).
    #[error("cannot make a zstd context: {0}")]
    Context(std::io::Error),
}

impl OpenError {
    /// The store error for `what` failing to open: damage, unless the failure was local.
    pub fn into_store(self, what: super::Damaged) -> StoreError {
        match self {
            OpenError::Context(e) => StoreError::io("decompress", "zstd context", e),
            e => StoreError::corrupt(what, e.to_string()),
        }
    }
}

pub struct Codec {
    keys: Keys,
    /// Per data key (as in `keys.data`): how many objects it opened (`check` shows the epochs).
    opened: Vec<AtomicU64>,
    /// The data key that opened the last object: tried first, so reading data of an older
    /// epoch costs one failed tag check only when the epoch changes.
    last_opened: AtomicUsize,
    /// Key of the keyed hash that masks pack frames.
    frame_key: [u8; 32],
    zstd_level: i32,
    /// Only for golden vectors: every seal uses this nonce (see [`Codec::with_fixed_nonce`]).
    fixed_nonce: Option<[u8; 12]>,
}

impl Codec {
    pub fn new(keys: Keys, zstd_level: i32) -> Codec {
        Codec {
            opened: keys.data.iter().map(|_| AtomicU64::new(0)).collect(),
            last_opened: AtomicUsize::new(keys.data.len() - 1),
            frame_key: blake3::derive_key(FRAME_KEY_CONTEXT, keys.id_key.as_ref()),
            keys,
            zstd_level,
            fixed_nonce: None,
        }
    }

    /// The key epoch that seals new data.
    pub fn sealing_epoch(&self) -> u32 {
        self.keys.data.last().expect("a data key").0
    }

    /// Each key epoch and how many objects its data key has opened so far.
    pub fn opened_by_epoch(&self) -> Vec<(u32, u64)> {
        self.keys
            .data
            .iter()
            .zip(&self.opened)
            .map(|((e, _), n)| (*e, n.load(Ordering::Relaxed)))
            .collect()
    }

    /// A codec that seals with one fixed nonce, so sealed bytes are reproducible: golden
    /// vectors only. Never for data (a repeated nonce breaks AES-GCM).
    #[cfg(feature = "test-hooks")]
    pub fn with_fixed_nonce(
        master: &crate::keys::MasterKey,
        zstd_level: i32,
        nonce: [u8; 12],
    ) -> Codec {
        Codec {
            fixed_nonce: Some(nonce),
            ..Codec::new(master.derive(), zstd_level)
        }
    }

    /// [`Codec::with_fixed_nonce`] with given subkeys (later key epochs): golden vectors only.
    #[cfg(feature = "test-hooks")]
    pub fn with_fixed_nonce_keys(keys: Keys, zstd_level: i32, nonce: [u8; 12]) -> Codec {
        Codec {
            fixed_nonce: Some(nonce),
            ..Codec::new(keys, zstd_level)
        }
    }

    pub fn chunker_seed(&self) -> u64 {
        self.keys.chunker_seed
    }

    /// The id of a plaintext: keyed blake3, so ids leak nothing without the key.
    /// The kind is hashed in too: an empty tree and a one-byte file may not share an id.
    pub fn blob_id(&self, kind: BlobKind, plain: &[u8]) -> BlobId {
        let mut h = zeroize::Zeroizing::new(blake3::Hasher::new_keyed(&self.keys.id_key));
        h.update(&[kind as u8]);
        h.update(plain);
        BlobId(*h.finalize().as_bytes())
    }

    /// Compress (when it helps) and encrypt.
    pub fn seal(&self, kind: BlobKind, id: &BlobId, plain: &[u8]) -> Result<Vec<u8>, StoreError> {
        let mut out = Vec::with_capacity(plain.len() + SEAL_OVERHEAD);
        out.extend_from_slice(&[0u8; 12]);
        let compressed = COMPRESSOR.with(|c| {
            let mut c = c.borrow_mut();
            let (scratch, ctx) = &mut *c;
            if ctx
                .as_ref()
                .is_none_or(|(level, _)| *level != self.zstd_level)
            {
                *ctx = zstd::bulk::Compressor::new(self.zstd_level)
                    .ok()
                    .map(|z| (self.zstd_level, z));
            }
            let Some((_, z)) = ctx.as_mut() else {
                return false;
            };
            scratch.clear();
            scratch.reserve(zstd::zstd_safe::compress_bound(plain.len()));
            match z.compress_to_buffer(plain, scratch) {
                Ok(n) if n < plain.len() => {
                    out.push(ZSTD);
                    out.extend_from_slice(&scratch[..n]);
                    true
                }
                _ => false,
            }
        });
        if !compressed {
            out.push(RAW);
            out.extend_from_slice(plain);
        }
        self.encrypt_tail(&mut out, &aad(kind, id))?;
        Ok(out)
    }

    /// Decrypt, authenticate and decompress a sealed blob.
    pub fn open(&self, kind: BlobKind, id: &BlobId, sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        self.open_owned(kind, id, sealed.to_vec())
    }

    /// Like [`Codec::open`], decrypting in place in the buffer read from the pack.
    pub fn open_owned(
        &self,
        kind: BlobKind,
        id: &BlobId,
        mut sealed: Vec<u8>,
    ) -> Result<Vec<u8>, OpenError> {
        self.decrypt_in_place(&mut sealed, &aad(kind, id))?;
        decode_body(&sealed[12..sealed.len() - 16])
    }

    /// True if `sealed` authenticates as blob `id` of `kind` (nothing is decompressed).
    pub fn authentic(&self, kind: BlobKind, id: &BlobId, mut sealed: Vec<u8>) -> bool {
        self.decrypt_in_place(&mut sealed, &aad(kind, id)).is_ok()
    }

    /// The id of a sealed blob of `kind` found without its header entry (salvage): decrypt
    /// without authenticating, hash the plaintext into the id it must have, then authenticate
    /// under that id. `None` unless it authenticates, so the answer is as sure as a read.
    pub fn identify(&self, kind: BlobKind, sealed: &[u8]) -> Option<BlobId> {
        if sealed.len() < SEAL_OVERHEAD {
            return None;
        }
        let nonce: [u8; 12] = sealed[..12].try_into().expect("12 bytes");
        let ct = &sealed[12..sealed.len() - 16];
        // GCM is counter mode: encrypting zeros under the same nonce yields the keystream. The
        // result never leaves this function, so the repeated nonce reveals nothing.
        // Any epoch's data key may have sealed it: newest first.
        self.keys.data.iter().rev().find_map(|(_, key)| {
            let mut plain = vec![0u8; ct.len()];
            key.encrypt_inout_detached(&Nonce::from(nonce), b"", (&mut plain[..]).into())
                .ok()?;
            plain.iter_mut().zip(ct).for_each(|(p, c)| *p ^= c);
            let id = self.blob_id(kind, &decode_body(&plain).ok()?);
            self.authentic(kind, &id, sealed.to_vec()).then_some(id)
        })
    }

    /// The frame at `offset` of pack `pack` saying that a blob of `kind` (0: the pack header)
    /// and `len` sealed bytes follows: kind ‖ len (u32 LE) ‖ check, XORed with the first 8
    /// bytes of keyed blake3(pack id ‖ offset u64 LE); check = the first 3 bytes of
    /// blake3(kind ‖ len), so a flipped byte anywhere in a frame makes it no frame.
    pub fn frame(&self, pack: &PackId, offset: u64, kind: u8, len: u32) -> [u8; 8] {
        let mut f = [0u8; 8];
        f[0] = kind;
        f[1..5].copy_from_slice(&len.to_le_bytes());
        let check = frame_check(&f[..5]);
        f[5..].copy_from_slice(&check);
        let mask = self.frame_mask(pack, offset);
        f.iter_mut().zip(mask).for_each(|(b, m)| *b ^= m);
        f
    }

    /// Inverse of [`Codec::frame`]: (kind, len) if `bytes` is a frame made for this place.
    pub fn unframe(&self, pack: &PackId, offset: u64, bytes: &[u8]) -> Option<(u8, u32)> {
        let mask = self.frame_mask(pack, offset);
        let mut f = [0u8; 8];
        f.iter_mut()
            .zip(bytes.get(..8)?)
            .zip(mask)
            .for_each(|((o, b), m)| *o = b ^ m);
        (f[0] <= BlobKind::Meta as u8 && f[5..] == frame_check(&f[..5])).then(|| {
            (
                f[0],
                u32::from_le_bytes(f[1..5].try_into().expect("4 bytes")),
            )
        })
    }

    fn frame_mask(&self, pack: &PackId, offset: u64) -> [u8; 8] {
        let mut h = blake3::Hasher::new_keyed(&self.frame_key);
        h.update(&pack.0);
        h.update(&offset.to_le_bytes());
        h.finalize().as_bytes()[..8].try_into().expect("8 bytes")
    }

    /// Encrypt arbitrary bytes (pack headers, config fields) under `aad`.
    pub fn seal_raw(&self, plain: &[u8], aad: &[u8]) -> Result<Vec<u8>, StoreError> {
        let mut out = Vec::with_capacity(plain.len() + 28);
        out.extend_from_slice(&[0u8; 12]);
        out.extend_from_slice(plain);
        self.encrypt_tail(&mut out, aad)?;
        Ok(out)
    }

    /// Inverse of [`Codec::seal_raw`]; the error means wrong key or damaged bytes.
    pub fn open_raw(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, OpenError> {
        let mut buf = sealed.to_vec();
        self.decrypt_in_place(&mut buf, aad)?;
        Ok(buf[12..buf.len() - 16].to_vec())
    }

    /// [`Codec::seal_raw`] with the config key (the vault's parameters, data keys of later
    /// epochs): what opening a vault needs must not depend on a data key it unseals.
    pub fn seal_config(&self, plain: &[u8], aad: &[u8]) -> Result<Vec<u8>, StoreError> {
        let mut out = Vec::with_capacity(plain.len() + 28);
        out.extend_from_slice(&[0u8; 12]);
        out.extend_from_slice(plain);
        self.encrypt_with(&self.keys.config, &mut out, aad)?;
        Ok(out)
    }

    /// Inverse of [`Codec::seal_config`].
    pub fn open_config(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, OpenError> {
        let mut buf = zeroize::Zeroizing::new(sealed.to_vec());
        decrypt_with(&self.keys.config, &mut buf, aad)?;
        Ok(buf[12..buf.len() - 16].to_vec())
    }

    /// `buf` = 12 placeholder bytes ‖ plaintext; fills in a fresh nonce, encrypts in place with
    /// the current epoch's data key, appends the tag.
    fn encrypt_tail(&self, buf: &mut Vec<u8>, aad: &[u8]) -> Result<(), StoreError> {
        let (_, key) = self.keys.data.last().expect("a data key");
        self.encrypt_with(key, buf, aad)
    }

    fn encrypt_with(
        &self,
        key: &Aes256Gcm,
        buf: &mut Vec<u8>,
        aad: &[u8],
    ) -> Result<(), StoreError> {
        let mut nonce = [0u8; 12];
        match self.fixed_nonce {
            Some(fixed) => nonce = fixed,
            None => random_bytes(&mut nonce)?,
        }
        buf[..12].copy_from_slice(&nonce);
        let tag = key
            .encrypt_inout_detached(&Nonce::from(nonce), aad, (&mut buf[12..]).into())
            .map_err(|_| StoreError::TooLarge {
                what: "sealed object",
                bytes: buf.len() as u64 - 12,
                limit: MAX_SEALED_PLAINTEXT,
            })?;
        buf.extend_from_slice(&tag);
        Ok(())
    }

    /// Authenticate and decrypt `nonce ‖ ciphertext ‖ tag` in place (the plaintext is then
    /// `buf[12..len - 16]`) with the data key of whichever epoch sealed it. Tags are checked
    /// before anything is decrypted, so a key that does not fit leaves `buf` as it was.
    fn decrypt_in_place(&self, buf: &mut [u8], aad: &[u8]) -> Result<(), OpenError> {
        let n = self.keys.data.len();
        let first = self.last_opened.load(Ordering::Relaxed).min(n - 1);
        for i in std::iter::once(first).chain((0..n).rev().filter(|i| *i != first)) {
            match decrypt_with(&self.keys.data[i].1, buf, aad) {
                Ok(()) => {
                    self.opened[i].fetch_add(1, Ordering::Relaxed);
                    if i != first {
                        self.last_opened.store(i, Ordering::Relaxed);
                    }
                    return Ok(());
                }
                Err(OpenError::Unauthentic) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(OpenError::Unauthentic)
    }
}

fn decrypt_with(key: &Aes256Gcm, buf: &mut [u8], aad: &[u8]) -> Result<(), OpenError> {
    if buf.len() < 28 {
        return Err(OpenError::TooShort(buf.len()));
    }
    let nonce: [u8; 12] = buf[..12].try_into().expect("12 bytes");
    let tag_at = buf.len() - 16;
    let tag: [u8; 16] = buf[tag_at..].try_into().expect("16 bytes");
    key.decrypt_inout_detached(
        &Nonce::from(nonce),
        aad,
        (&mut buf[12..tag_at]).into(),
        &tag.into(),
    )
    .map_err(|_| OpenError::Unauthentic)
}

fn frame_check(kind_len: &[u8]) -> [u8; 3] {
    blake3::hash(kind_len).as_bytes()[..3]
        .try_into()
        .expect("3 bytes")
}

/// A blob's plaintext from its decrypted body: codec byte, then the payload.
fn decode_body(body: &[u8]) -> Result<Vec<u8>, OpenError> {
    match body.first() {
        Some(&RAW) => Ok(body[1..].to_vec()),
        Some(&ZSTD) => {
            let frame = &body[1..];
            let size = match zstd::zstd_safe::get_frame_content_size(frame) {
                Ok(Some(n)) if n as usize <= MAX_BLOB_BYTES => n as usize,
                Ok(Some(_)) => return Err(OpenError::TooLarge),
                _ => MAX_BLOB_BYTES,
            };
            DECOMPRESSOR.with(|d| {
                let mut d = d.borrow_mut();
                if d.is_none() {
                    *d = Some(zstd::bulk::Decompressor::new().map_err(OpenError::Context)?);
                }
                let z = d.as_mut().expect("decompressor present");
                let mut out = Vec::with_capacity(size);
                z.decompress_to_buffer(frame, &mut out)
                    .map_err(OpenError::Decompress)?;
                Ok(out)
            })
        }
        Some(&other) => Err(OpenError::UnknownCodec(other)),
        None => Err(OpenError::TooShort(body.len() + 28)),
    }
}

/// A zstd compression context and the level it was made for.
type LeveledCompressor = (i32, zstd::bulk::Compressor<'static>);

thread_local! {
    /// Per-thread zstd contexts: creating one per blob cost more than compressing small files.
    static COMPRESSOR: RefCell<(Vec<u8>, Option<LeveledCompressor>)> = const { RefCell::new((Vec::new(), None)) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

fn aad(kind: BlobKind, id: &BlobId) -> [u8; 33] {
    let mut a = [0u8; 33];
    a[0] = kind as u8;
    a[1..].copy_from_slice(&id.0);
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::MasterKey;

    fn codec() -> Codec {
        Codec::new(MasterKey::generate().unwrap().derive(), 3)
    }

    #[test]
    fn seal_open_round_trip_compressible_and_not() {
        let c = codec();
        let text = b"hello hello hello hello hello hello hello hello".repeat(100);
        let noise: Vec<u8> = (0..5000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        for plain in [&text[..], &noise[..], &[][..]] {
            let id = c.blob_id(BlobKind::Data, plain);
            let sealed = c.seal(BlobKind::Data, &id, plain).unwrap();
            assert!(sealed.len() <= plain.len() + SEAL_OVERHEAD);
            assert_eq!(c.open(BlobKind::Data, &id, &sealed).unwrap(), plain);
        }
        let id = c.blob_id(BlobKind::Data, &text);
        assert!(c.seal(BlobKind::Data, &id, &text).unwrap().len() < text.len() / 5);
    }

    #[test]
    fn flipped_bit_wrong_kind_or_wrong_id_fail_authentication() {
        let c = codec();
        let plain = b"some secret content";
        let id = c.blob_id(BlobKind::Data, plain);
        let mut sealed = c.seal(BlobKind::Data, &id, plain).unwrap();
        assert!(c.open(BlobKind::Tree, &id, &sealed).is_err());
        assert!(
            c.open(
                BlobKind::Data,
                &c.blob_id(BlobKind::Data, b"other"),
                &sealed
            )
            .is_err()
        );
        sealed[20] ^= 1;
        assert!(c.open(BlobKind::Data, &id, &sealed).is_err());
        assert!(c.open(BlobKind::Data, &id, &sealed[..10]).is_err());
    }

    #[test]
    fn identify_finds_the_id_of_an_authentic_blob_only() {
        let c = codec();
        let text = b"salvage me ".repeat(500);
        let noise: Vec<u8> = (0..3000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
            .collect();
        for (kind, plain) in [(BlobKind::Tree, &text[..]), (BlobKind::Data, &noise[..])] {
            let id = c.blob_id(kind, plain);
            let mut sealed = c.seal(kind, &id, plain).unwrap();
            assert_eq!(c.identify(kind, &sealed), Some(id));
            let other = if kind == BlobKind::Data {
                BlobKind::Meta
            } else {
                BlobKind::Data
            };
            assert_eq!(c.identify(other, &sealed), None, "the kind is bound in");
            assert_eq!(c.identify(kind, &sealed[..sealed.len() - 1]), None);
            sealed[15] ^= 4;
            assert_eq!(c.identify(kind, &sealed), None);
        }
        assert_eq!(c.identify(BlobKind::Data, &[0u8; 10]), None);
    }

    #[test]
    fn frames_decode_only_at_their_place_and_under_their_key() {
        let c = codec();
        let (p, q) = (PackId([1; 16]), PackId([2; 16]));
        let f = c.frame(&p, 1234, 2, 70_000);
        assert_eq!(c.unframe(&p, 1234, &f), Some((2, 70_000)));
        assert_eq!(c.unframe(&p, 1235, &f), None);
        assert_eq!(c.unframe(&q, 1234, &f), None);
        assert_eq!(codec().unframe(&p, 1234, &f), None);
        for bit in 0..64 {
            let mut g = f;
            g[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(c.unframe(&p, 1234, &g), None, "flipped bit {bit}");
        }
    }

    #[test]
    fn ids_are_keyed() {
        let a = codec();
        let b = codec();
        assert_ne!(
            a.blob_id(BlobKind::Data, b"x"),
            b.blob_id(BlobKind::Data, b"x")
        );
        assert_ne!(
            a.blob_id(BlobKind::Data, b"x"),
            a.blob_id(BlobKind::Tree, b"x")
        );
        assert_ne!(
            a.blob_id(BlobKind::Data, b"x").0,
            *blake3::hash(b"x").as_bytes()
        );
    }
}
