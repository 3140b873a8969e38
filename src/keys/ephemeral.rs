//! A key that exists only in one process's memory, for data that must touch a disk but never
//! outlive the process in readable form: the mount daemon's staging files (DESIGN.md §12).
//!
//! AES-256-CTR: a stream cipher encrypts and decrypts any byte range in place, at any offset,
//! at several GB/s with AES-NI (far cheaper than the zstd that follows), so staged files keep
//! their random-access writes and reads. Each stream (one staged file's content) has its own
//! 64-bit id, never reused under one key, as the upper half of the counter block; the lower half
//! counts 16-byte blocks from the start of the file. The key is random per process and wiped on
//! drop: after a crash, what a staging file holds is ciphertext under a key that is gone.
//! There is no tag: the staging directory is the daemon's own (0700, owner checked), and what
//! is staged is authenticated when it is sealed into the vault.

use std::sync::atomic::{AtomicU64, Ordering};

use aes::Aes256;
use ctr::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use zeroize::Zeroizing;

use super::{KeyError, random_key};

pub struct EphemeralKey {
    key: Zeroizing<[u8; 32]>,
    next_stream: AtomicU64,
}

/// One encrypted stream: its id under the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamId(u64);

impl EphemeralKey {
    pub fn generate() -> Result<EphemeralKey, KeyError> {
        Ok(EphemeralKey {
            key: random_key()?,
            next_stream: AtomicU64::new(1),
        })
    }

    /// A stream id never handed out before under this key.
    pub fn new_stream(&self) -> StreamId {
        StreamId(self.next_stream.fetch_add(1, Ordering::Relaxed))
    }

    /// Encrypt or decrypt (the same operation) `buf`, which sits at byte `offset` of `stream`.
    pub fn apply(&self, stream: StreamId, offset: u64, buf: &mut [u8]) {
        let mut iv = [0u8; 16];
        iv[..8].copy_from_slice(&stream.0.to_be_bytes());
        let key: &[u8; 32] = &self.key;
        let mut c = ctr::Ctr64BE::<Aes256>::new(key.into(), &iv.into());
        c.seek(offset);
        c.apply_keystream(buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_range_round_trips_and_streams_differ() {
        let k = EphemeralKey::generate().unwrap();
        let (a, b) = (k.new_stream(), k.new_stream());
        assert_ne!(a, b);
        let plain: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        let mut whole = plain.clone();
        k.apply(a, 0, &mut whole);
        assert_ne!(whole, plain);
        // Ranges at odd offsets give the same ciphertext as the whole: writes may land anywhere.
        let mut piece = plain[1234..5678].to_vec();
        k.apply(a, 1234, &mut piece);
        assert_eq!(piece, whole[1234..5678]);
        k.apply(a, 1234, &mut piece);
        assert_eq!(piece, plain[1234..5678]);
        let mut other = plain.clone();
        k.apply(b, 0, &mut other);
        assert_ne!(other, whole);
    }
}
