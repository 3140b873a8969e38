//! The master key, the key slots that wrap it, and the subkeys derived from it.
//!
//! The master key is 32 random bytes that never touch the disk in the clear. A key slot holds it
//! wrapped with AES-256-GCM under a key-encryption key; slot type 1 derives that key from a
//! passphrase with Argon2id (parameters stored in the slot). Every other key is derived from the
//! master key with blake3's `derive_key`, one context string per purpose.

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use zeroize::Zeroizing;

use crate::format::KeySlot;

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
    #[error("wrong passphrase (no key slot opens with it)")]
    WrongPassphrase,
    #[error("key slot {0} is damaged: {1}")]
    BadSlot(u32, &'static str),
    /// Argon2 refused the slot's parameters or salt (a damaged slot, or bad `init` options).
    #[error("key slot {0}: key derivation failed: {1}")]
    Kdf(u32, argon2::Error),
    #[error("unsupported key slot type {0:?}")]
    UnsupportedSlot(String),
    #[error("system random number generator failed: {0}")]
    Random(getrandom::Error),
}

/// Fill `buf` from the OS random source.
pub fn random_bytes(buf: &mut [u8]) -> Result<(), KeyError> {
    getrandom::fill(buf).map_err(KeyError::Random)
}

/// The vault's root secret.
pub struct MasterKey(Zeroizing<[u8; 32]>);

/// Subkeys derived from the master key, ready to use.
pub struct Keys {
    /// Key of the keyed blake3 hash that names blobs: ids reveal nothing about content.
    pub id_key: [u8; 32],
    /// AES-256-GCM key for blobs, pack headers and sealed config fields.
    pub data: Aes256Gcm,
    /// Seed of the chunker's gear table, so chunk boundaries do not fingerprint known files.
    pub chunker_seed: u64,
}

impl MasterKey {
    pub fn generate() -> Result<Self, KeyError> {
        let mut key = Zeroizing::new([0u8; 32]);
        random_bytes(key.as_mut())?;
        Ok(MasterKey(key))
    }

    pub fn derive(&self) -> Keys {
        let id_key = blake3::derive_key("vaultfs v1 blob id", self.0.as_ref());
        let data_key = Zeroizing::new(blake3::derive_key("vaultfs v1 data", self.0.as_ref()));
        let seed = blake3::derive_key("vaultfs v1 chunker seed", self.0.as_ref());
        let mut seed8 = [0u8; 8];
        seed8.copy_from_slice(&seed[..8]);
        Keys {
            id_key,
            data: Aes256Gcm::new_from_slice(data_key.as_ref()).expect("32-byte key"),
            chunker_seed: u64::from_le_bytes(seed8),
        }
    }

    /// A master key of known bytes: golden vectors only.
    #[cfg(feature = "test-hooks")]
    pub fn from_bytes(bytes: [u8; 32]) -> MasterKey {
        MasterKey(Zeroizing::new(bytes))
    }

    /// Wrap this key under `passphrase` into slot `id`.
    pub fn wrap(&self, id: u32, passphrase: &[u8], kdf: KdfParams) -> Result<KeySlot, KeyError> {
        let mut salt = [0u8; 16];
        random_bytes(&mut salt)?;
        let mut nonce = [0u8; 12];
        random_bytes(&mut nonce)?;
        self.wrap_with(id, passphrase, kdf, salt, nonce)
    }

    /// [`MasterKey::wrap`] with a given salt and nonce. A real slot needs fresh random ones
    /// (that is `wrap`); golden vectors pass fixed ones.
    #[doc(hidden)]
    pub fn wrap_with(
        &self,
        id: u32,
        passphrase: &[u8],
        kdf: KdfParams,
        salt: [u8; 16],
        nonce: [u8; 12],
    ) -> Result<KeySlot, KeyError> {
        let kek = derive_kek(passphrase, &salt, kdf).map_err(|e| KeyError::Kdf(id, e))?;
        let mut buf = self.0.to_vec();
        kek.encrypt_in_place(&Nonce::from(nonce), &slot_aad(id), &mut buf)
            .expect("AES-GCM seals 32 bytes");
        Ok(KeySlot {
            id,
            kind: "passphrase".into(),
            argon2_m_kib: kdf.m_kib,
            argon2_t: kdf.t,
            argon2_p: kdf.p,
            salt: hex::encode(salt),
            nonce: hex::encode(nonce),
            wrapped_key: hex::encode(buf),
        })
    }

    /// Try every passphrase slot; the first that authenticates gives the key.
    pub fn unwrap(slots: &[KeySlot], passphrase: &[u8]) -> Result<MasterKey, KeyError> {
        for slot in slots {
            if slot.kind != "passphrase" {
                return Err(KeyError::UnsupportedSlot(slot.kind.clone()));
            }
            let bad = |what: &'static str| KeyError::BadSlot(slot.id, what);
            let salt = hex::decode(&slot.salt).map_err(|_| bad("salt is not hex"))?;
            let nonce: [u8; 12] = hex::decode(&slot.nonce)
                .ok()
                .and_then(|n| n.try_into().ok())
                .ok_or_else(|| bad("nonce is not 12 hex bytes"))?;
            let mut buf = hex::decode(&slot.wrapped_key).map_err(|_| bad("key is not hex"))?;
            let kdf = KdfParams {
                m_kib: slot.argon2_m_kib,
                t: slot.argon2_t,
                p: slot.argon2_p,
            };
            if kdf.m_kib > 4 * 1024 * 1024 || kdf.t > 100 || kdf.p > 64 {
                return Err(bad("argon2 parameters out of range"));
            }
            let kek = derive_kek(passphrase, &salt, kdf).map_err(|e| KeyError::Kdf(slot.id, e))?;
            if kek
                .decrypt_in_place(&Nonce::from(nonce), &slot_aad(slot.id), &mut buf)
                .is_ok()
            {
                let key: [u8; 32] = buf.as_slice().try_into().map_err(|_| bad("key length"))?;
                buf.iter_mut().for_each(|b| *b = 0);
                return Ok(MasterKey(Zeroizing::new(key)));
            }
        }
        Err(KeyError::WrongPassphrase)
    }
}

fn slot_aad(id: u32) -> Vec<u8> {
    let mut aad = b"vaultfs v1 key slot ".to_vec();
    aad.extend_from_slice(&id.to_le_bytes());
    aad
}

fn derive_kek(passphrase: &[u8], salt: &[u8], kdf: KdfParams) -> Result<Aes256Gcm, argon2::Error> {
    let params = argon2::Params::new(kdf.m_kib, kdf.t, kdf.p, Some(32))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut kek = Zeroizing::new([0u8; 32]);
    argon.hash_password_into(passphrase, salt, kek.as_mut())?;
    Ok(Aes256Gcm::new_from_slice(kek.as_ref()).expect("32-byte key"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: KdfParams = KdfParams {
        m_kib: 64,
        t: 1,
        p: 1,
    };

    #[test]
    fn wrap_then_unwrap_gives_the_same_subkeys() {
        let key = MasterKey::generate().unwrap();
        let slot = key.wrap(1, b"correct horse", CHEAP).unwrap();
        let back = MasterKey::unwrap(&[slot], b"correct horse").unwrap();
        assert_eq!(key.derive().id_key, back.derive().id_key);
        assert_eq!(key.derive().chunker_seed, back.derive().chunker_seed);
    }

    #[test]
    fn wrong_passphrase_is_refused() {
        let key = MasterKey::generate().unwrap();
        let slot = key.wrap(1, b"right", CHEAP).unwrap();
        assert!(matches!(
            MasterKey::unwrap(&[slot], b"wrong"),
            Err(KeyError::WrongPassphrase)
        ));
    }

    #[test]
    fn damaged_slot_is_an_error_not_a_panic() {
        let key = MasterKey::generate().unwrap();
        let mut slot = key.wrap(1, b"pw", CHEAP).unwrap();
        slot.nonce = "zz".into();
        assert!(matches!(
            MasterKey::unwrap(&[slot], b"pw"),
            Err(KeyError::BadSlot(1, _))
        ));
    }
}
