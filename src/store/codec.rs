//! The codec: blob ids, compression and authenticated encryption of one blob.
//!
//! Blob id = keyed blake3(kind ‖ plaintext). Sealed blob = nonce (12) ‖ AES-256-GCM(plaintext', aad = kind ‖ id) ‖ tag (16), where
//! plaintext' = codec byte (0 raw, 1 zstd) ‖ payload. Binding kind and id into the AAD means a
//! blob authenticates only as the object the index says it is.

use aes_gcm::{Aes256Gcm, Nonce};
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use aes_gcm::aead::AeadInOut;

use super::{BlobId, BlobKind, StoreError};
use crate::keys::{Keys, random_bytes};

const RAW: u8 = 0;
const ZSTD: u8 = 1;
/// Bytes a sealed blob adds to its (compressed) payload: nonce, codec byte, tag.
pub const SEAL_OVERHEAD: usize = 12 + 1 + 16;
/// No blob's plaintext may exceed this (bounds memory when reading a damaged pack).
pub const MAX_BLOB_BYTES: usize = 256 << 20;
/// AES-GCM's limit on one message (2^36 - 32 bytes).
const MAX_SEALED_PLAINTEXT: u64 = (1 << 36) - 32;

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
    zstd_level: i32,
    /// Only for golden vectors: every seal uses this nonce (see [`Codec::with_fixed_nonce`]).
    fixed_nonce: Option<[u8; 12]>,
}

impl Codec {
    pub fn new(keys: Keys, zstd_level: i32) -> Codec {
        Codec {
            opened: keys.data.iter().map(|_| AtomicU64::new(0)).collect(),
            last_opened: AtomicUsize::new(keys.data.len() - 1),
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
        let body = &sealed[12..sealed.len() - 16];
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
            None => Err(OpenError::TooShort(sealed.len())),
        }
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
