//! The master key, the key slots that wrap it, the data keys of each key epoch, and the subkeys
//! derived from them.
//!
//! The master key is 32 random bytes that never touch the disk in the clear. Key slots
//! ([`slot`]) hold it wrapped with AES-256-GCM under a key-encryption key (KEK) that comes from
//! a passphrase (Argon2id), a keyfile, or a customer-managed RSA key ([`rsa`]). The blob-id key,
//! the chunker seed and the config key are derived from the master key with blake3's
//! `derive_key`, one context string per purpose. Data is sealed with the data key of the
//! vault's current key epoch: epoch 0's is derived from the master key (as in format v2), later
//! epochs' are random and stored sealed under the config key (DESIGN.md §3.2).

pub mod command;
pub mod ephemeral;
pub mod guard;
pub mod rsa;
pub mod slot;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::KeyInit;
use zeroize::Zeroizing;

pub use slot::{Credential, SlotName, Unwrapped};

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    pub m_kib: u32,
    pub t: u32,
    pub p: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes: ~0.3 s here, the OWASP-recommended range.
    fn default() -> Self {
        KdfParams {
            m_kib: 64 * 1024,
            t: 3,
            p: 1,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("wrong passphrase (no passphrase key slot opens with it)")]
    WrongPassphrase,
    #[error("this key file opens no key slot of the vault")]
    WrongKeyFile,
    #[error("the vault has no {0} key slot")]
    NoSlot(&'static str),
    #[error(
        "this RSA private key belongs to no key slot of the vault (public key {0}); it was \
         removed, rotated away, or is another vault's"
    )]
    RsaKeyNotEnrolled(String),
    #[error("key {0} does not open with this RSA private key: the slot is damaged")]
    RsaSlotDamaged(SlotName),
    #[error("key {slot}: the unwrap command refused ({why}); the slot may be revoked")]
    CommandRefused { slot: SlotName, why: String },
    #[error("this key was revoked: it was removed from key {0} ({time})", time = crate::vault::names::display_time(*.1))]
    Revoked(SlotName, i64),
    #[error("key {0} gave a key that does not open this vault: a forged or tampered slot")]
    Forged(SlotName),
    #[error("key slot {0} is damaged: {1}")]
    BadSlot(u32, &'static str),
    /// Argon2 refused the slot's parameters or salt (a damaged slot, or bad `init` options).
    #[error("key slot {0}: key derivation failed: {1}")]
    Kdf(u32, argon2::Error),
    #[error("unsupported key slot type {0:?}")]
    UnsupportedSlot(String),
    #[error("{0}")]
    BadRsaKey(String),
    #[error("{0}")]
    BadKeyFile(String),
    #[error("system random number generator failed: {0}")]
    Random(getrandom::Error),
}

/// Fill `buf` from the OS random source.
pub fn random_bytes(buf: &mut [u8]) -> Result<(), KeyError> {
    getrandom::fill(buf).map_err(KeyError::Random)
}

/// 32 fresh random bytes in a zeroizing buffer.
pub fn random_key() -> Result<Zeroizing<[u8; 32]>, KeyError> {
    let mut key = Zeroizing::new([0u8; 32]);
    random_bytes(key.as_mut())?;
    Ok(key)
}

/// The vault's root secret.
pub struct MasterKey(Zeroizing<[u8; 32]>);

/// The data key of one key epoch after the first (epoch 0's is derived from the master key).
pub struct DataKey {
    pub epoch: u32,
    key: Zeroizing<[u8; 32]>,
}

/// Subkeys derived from the master key and the data keys, ready to use.
pub struct Keys {
    /// Key of the keyed blake3 hash that names blobs: ids reveal nothing about content.
    /// The same in every epoch, so data deduplicates across a data-key rotation.
    pub id_key: Zeroizing<[u8; 32]>,
    /// Seed of the chunker's gear table, so chunk boundaries do not fingerprint known files.
    pub chunker_seed: u64,
    /// Seals the config's parameters and the data keys of later epochs (epoch 0's data key, as
    /// in format v2).
    pub config: Aes256Gcm,
    /// AES-256-GCM data keys by epoch, oldest first; the last one seals new data.
    pub data: Vec<(u32, Aes256Gcm)>,
}

fn cipher(key: &[u8; 32]) -> Aes256Gcm {
    Aes256Gcm::new_from_slice(key).expect("32-byte key")
}

impl MasterKey {
    pub fn generate() -> Result<Self, KeyError> {
        Ok(MasterKey(random_key()?))
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The subkeys with epoch 0's data key only.
    pub fn derive(&self) -> Keys {
        self.derive_with(&[])
    }

    /// The subkeys, with the data keys of `epochs` (epoch order; the last seals).
    pub fn derive_with(&self, epochs: &[DataKey]) -> Keys {
        let id_key = Zeroizing::new(blake3::derive_key("vaultfs v1 blob id", self.0.as_ref()));
        let data0 = Zeroizing::new(blake3::derive_key("vaultfs v1 data", self.0.as_ref()));
        let seed = Zeroizing::new(blake3::derive_key(
            "vaultfs v1 chunker seed",
            self.0.as_ref(),
        ));
        let mut seed8 = [0u8; 8];
        seed8.copy_from_slice(&seed[..8]);
        let mut data = vec![(0, cipher(&data0))];
        data.extend(epochs.iter().map(|e| (e.epoch, e.cipher())));
        Keys {
            id_key,
            config: cipher(&data0),
            data,
            chunker_seed: u64::from_le_bytes(seed8),
        }
    }

    /// A master key of known bytes: golden vectors only.
    #[cfg(feature = "test-hooks")]
    pub fn from_bytes(bytes: [u8; 32]) -> MasterKey {
        MasterKey(Zeroizing::new(bytes))
    }
}

impl DataKey {
    pub fn generate(epoch: u32) -> Result<DataKey, KeyError> {
        Ok(DataKey {
            epoch,
            key: random_key()?,
        })
    }

    pub fn from_secret(epoch: u32, key: Zeroizing<[u8; 32]>) -> DataKey {
        DataKey { epoch, key }
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.key
    }

    fn cipher(&self) -> Aes256Gcm {
        let k = Zeroizing::new(blake3::derive_key("vaultfs v3 data", self.key.as_ref()));
        cipher(&k)
    }
}
