//! Key slots: the master key wrapped under a key-encryption key (KEK), one slot per way in.
//!
//! Kinds: `passphrase` (KEK = Argon2id(passphrase, salt), parameters in the slot), `keyfile`
//! (KEK = the 32 random bytes of a key file), `rsa` (KEK = 32 random bytes stored RSA-OAEP
//! encrypted to a customer's public key; only the private key, or a command that holds it,
//! recovers them). Every slot wraps the master key the same way, AES-256-GCM with the slot's id
//! in the associated data, so whatever a KEK comes from, the wrap authenticates it for that
//! slot. An RSA unwrap alone proves nothing (anyone can encrypt to a public key): a slot is
//! accepted only when its wrap opens and the master key inside opens the vault's sealed config
//! (the caller's `accept`).

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes256Gcm, Nonce};
use zeroize::Zeroizing;

use super::{KdfParams, KeyError, MasterKey, cipher, random_bytes, random_key, rsa};
use crate::format::{KeySlot, RevokedKey};

pub const PASSPHRASE: &str = "passphrase";
pub const KEYFILE: &str = "keyfile";
pub const RSA: &str = "rsa";

/// What a user gives to open a vault.
pub enum Credential {
    Passphrase(Zeroizing<Vec<u8>>),
    /// The 32 bytes of a key file.
    KeyFile(Zeroizing<[u8; 32]>),
    Rsa(Box<rsa::PrivateKey>),
    /// A shell command that reads an RSA slot's wrapped key on stdin and prints the unwrapped
    /// one (a key service, a hardware module).
    UnwrapCommand(String),
}

/// A slot as errors name it: its id and, if it has one, its label.
#[derive(Debug, Clone)]
pub struct SlotName {
    pub id: u32,
    pub label: String,
}

impl std::fmt::Display for SlotName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.label.is_empty() {
            write!(f, "slot {}", self.id)
        } else {
            write!(f, "slot {} ({:?})", self.id, self.label)
        }
    }
}

impl SlotName {
    pub fn of(slot: &KeySlot) -> SlotName {
        SlotName {
            id: slot.id,
            label: slot.label.clone(),
        }
    }
}

/// The master key, and the slot that gave it.
pub struct Unwrapped {
    pub master: MasterKey,
    pub slot: u32,
}

fn slot_aad(id: u32) -> Vec<u8> {
    let mut aad = b"vaultfs v1 key slot ".to_vec();
    aad.extend_from_slice(&id.to_le_bytes());
    aad
}

fn argon2_kek(
    passphrase: &[u8],
    salt: &[u8],
    kdf: KdfParams,
) -> Result<Zeroizing<[u8; 32]>, argon2::Error> {
    let params = argon2::Params::new(kdf.m_kib, kdf.t, kdf.p, Some(32))?;
    let blocks = params.block_count();
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut kek = Zeroizing::new([0u8; 32]);
    // Argon2's working memory holds values derived from the passphrase: wiped when dropped.
    let mut memory = Zeroizing::new(vec![argon2::Block::default(); blocks]);
    argon.hash_password_into_with_memory(passphrase, salt, kek.as_mut(), memory.as_mut_slice())?;
    Ok(kek)
}

/// A new slot of `kind` holding `master` wrapped under `kek`.
fn seal_slot(master: &MasterKey, id: u32, kind: &str, kek: &[u8; 32], nonce: [u8; 12]) -> KeySlot {
    let mut buf = master.bytes().to_vec();
    cipher(kek)
        .encrypt_in_place(&Nonce::from(nonce), &slot_aad(id), &mut buf)
        .expect("AES-GCM seals 32 bytes");
    KeySlot {
        id,
        kind: kind.into(),
        label: String::new(),
        argon2_m_kib: None,
        argon2_t: None,
        argon2_p: None,
        salt: None,
        keyfile_fingerprint: None,
        rsa_public_key: None,
        rsa_wrapped_kek: None,
        nonce: hex::encode(nonce),
        wrapped_key: hex::encode(buf),
    }
}

fn fresh_nonce() -> Result<[u8; 12], KeyError> {
    let mut nonce = [0u8; 12];
    random_bytes(&mut nonce)?;
    Ok(nonce)
}

impl MasterKey {
    /// Wrap this key under `passphrase` into slot `id`.
    pub fn wrap_passphrase(
        &self,
        id: u32,
        passphrase: &[u8],
        kdf: KdfParams,
    ) -> Result<KeySlot, KeyError> {
        let mut salt = [0u8; 16];
        random_bytes(&mut salt)?;
        self.wrap_with(id, passphrase, kdf, salt, fresh_nonce()?)
    }

    /// [`MasterKey::wrap_passphrase`] with a given salt and nonce. A real slot needs fresh
    /// random ones; golden vectors pass fixed ones.
    #[doc(hidden)]
    pub fn wrap_with(
        &self,
        id: u32,
        passphrase: &[u8],
        kdf: KdfParams,
        salt: [u8; 16],
        nonce: [u8; 12],
    ) -> Result<KeySlot, KeyError> {
        let kek = argon2_kek(passphrase, &salt, kdf).map_err(|e| KeyError::Kdf(id, e))?;
        Ok(KeySlot {
            argon2_m_kib: Some(kdf.m_kib),
            argon2_t: Some(kdf.t),
            argon2_p: Some(kdf.p),
            salt: Some(hex::encode(salt)),
            ..seal_slot(self, id, PASSPHRASE, &kek, nonce)
        })
    }

    /// Wrap this key under the 32 bytes of a key file.
    pub fn wrap_keyfile(&self, id: u32, key: &[u8; 32]) -> Result<KeySlot, KeyError> {
        Ok(self.wrap_keyfile_with(id, key, fresh_nonce()?))
    }

    #[doc(hidden)]
    pub fn wrap_keyfile_with(&self, id: u32, key: &[u8; 32], nonce: [u8; 12]) -> KeySlot {
        KeySlot {
            keyfile_fingerprint: Some(keyfile_fingerprint(key)),
            ..seal_slot(self, id, KEYFILE, key, nonce)
        }
    }

    /// Wrap this key for the holder of `public`'s private key: a random KEK, RSA-OAEP
    /// encrypted to it, wraps the master key.
    pub fn wrap_rsa(&self, id: u32, public: &rsa::PublicKey) -> Result<KeySlot, KeyError> {
        let kek = random_key()?;
        Ok(KeySlot {
            rsa_public_key: Some(hex::encode(public.spki())),
            rsa_wrapped_kek: Some(hex::encode(public.wrap(&kek)?)),
            ..seal_slot(self, id, RSA, &kek, fresh_nonce()?)
        })
    }
}

/// Open `slot`'s wrap with `kek`; `None` if it does not authenticate.
fn open_slot(slot: &KeySlot, kek: &[u8; 32]) -> Result<Option<MasterKey>, KeyError> {
    let bad = |what: &'static str| KeyError::BadSlot(slot.id, what);
    let nonce: [u8; 12] = hex::decode(&slot.nonce)
        .ok()
        .and_then(|n| n.try_into().ok())
        .ok_or_else(|| bad("nonce is not 12 hex bytes"))?;
    let mut buf =
        Zeroizing::new(hex::decode(&slot.wrapped_key).map_err(|_| bad("key is not hex"))?);
    let c: Aes256Gcm = cipher(kek);
    if c.decrypt_in_place(&Nonce::from(nonce), &slot_aad(slot.id), &mut *buf)
        .is_err()
    {
        return Ok(None);
    }
    let key: [u8; 32] = buf.as_slice().try_into().map_err(|_| bad("key length"))?;
    Ok(Some(MasterKey(Zeroizing::new(key))))
}

/// The KEK of a passphrase slot.
fn passphrase_kek(slot: &KeySlot, passphrase: &[u8]) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    let bad = |what: &'static str| KeyError::BadSlot(slot.id, what);
    let salt = hex::decode(slot.salt.as_deref().ok_or_else(|| bad("no salt"))?)
        .map_err(|_| bad("salt is not hex"))?;
    let kdf = match (slot.argon2_m_kib, slot.argon2_t, slot.argon2_p) {
        (Some(m_kib), Some(t), Some(p)) => KdfParams { m_kib, t, p },
        _ => return Err(bad("no argon2 parameters")),
    };
    // A tampered config must not make an open take forever.
    if kdf.m_kib > 4 * 1024 * 1024 || kdf.t > 100 || kdf.p > 64 {
        return Err(bad("argon2 parameters out of range"));
    }
    argon2_kek(passphrase, &salt, kdf).map_err(|e| KeyError::Kdf(slot.id, e))
}

/// The RSA-wrapped KEK of an RSA slot, and its public key.
pub fn rsa_parts(slot: &KeySlot) -> Result<(Vec<u8>, Vec<u8>), KeyError> {
    let bad = |what: &'static str| KeyError::BadSlot(slot.id, what);
    let spki = hex::decode(
        slot.rsa_public_key
            .as_deref()
            .ok_or_else(|| bad("no public key"))?,
    )
    .map_err(|_| bad("public key is not hex"))?;
    let wrapped = hex::decode(
        slot.rsa_wrapped_kek
            .as_deref()
            .ok_or_else(|| bad("no wrapped key"))?,
    )
    .map_err(|_| bad("wrapped key is not hex"))?;
    Ok((spki, wrapped))
}

/// The fingerprint a revoked keyfile key is remembered by: 8 bytes of a keyed hash, which
/// says nothing about a 256-bit random key.
pub fn keyfile_fingerprint(key: &[u8; 32]) -> String {
    hex::encode(&blake3::derive_key("vaultfs v3 keyfile fingerprint", key)[..8])
}

/// The fingerprint of a credential that a revoked key would carry.
fn fingerprint_of(credential: &Credential) -> Option<String> {
    match credential {
        Credential::KeyFile(k) => Some(keyfile_fingerprint(k)),
        Credential::Rsa(private) => Some(rsa::fingerprint(private.spki())),
        Credential::Passphrase(_) | Credential::UnwrapCommand(_) => None,
    }
}

/// Name the slot a revoked key belonged to, if `credential` is one.
pub fn revoked_error(revoked: &[RevokedKey], credential: &Credential) -> Option<KeyError> {
    let fp = fingerprint_of(credential)?;
    revoked.iter().rev().find(|r| r.fingerprint == fp).map(|r| {
        KeyError::Revoked(
            SlotName {
                id: r.slot,
                label: r.label.clone(),
            },
            r.removed_ns,
        )
    })
}

/// Find the slot `credential` opens and return the master key in it. A slot counts only if
/// `accept` takes its key (the key opens the vault's sealed config): a slot that unwraps to any
/// other key is forged or tampered, and the next one is tried.
pub fn unwrap(
    slots: &[KeySlot],
    credential: &Credential,
    accept: &dyn Fn(&MasterKey) -> bool,
) -> Result<Unwrapped, KeyError> {
    if let Some(s) = slots
        .iter()
        .find(|s| ![PASSPHRASE, KEYFILE, RSA].contains(&s.kind.as_str()))
    {
        return Err(KeyError::UnsupportedSlot(s.kind.clone()));
    }
    let kind = match credential {
        Credential::Passphrase(_) => PASSPHRASE,
        Credential::KeyFile(_) => KEYFILE,
        Credential::Rsa(_) | Credential::UnwrapCommand(_) => RSA,
    };
    let candidates: Vec<&KeySlot> = slots.iter().filter(|s| s.kind == kind).collect();
    if candidates.is_empty() {
        return Err(KeyError::NoSlot(kind));
    }
    let mut failure = None;
    for slot in candidates {
        let kek = match credential {
            Credential::Passphrase(p) => passphrase_kek(slot, p)?,
            Credential::KeyFile(k) => k.clone(),
            Credential::Rsa(private) => {
                let (spki, wrapped) = rsa_parts(slot)?;
                if spki != private.spki() {
                    continue;
                }
                match private.unwrap(&wrapped) {
                    Some(kek) => kek,
                    None => {
                        failure.get_or_insert(KeyError::RsaSlotDamaged(SlotName::of(slot)));
                        continue;
                    }
                }
            }
            Credential::UnwrapCommand(cmd) => {
                let (_, wrapped) = rsa_parts(slot)?;
                match super::command::unwrap(cmd, slot, &wrapped) {
                    Ok(kek) => kek,
                    Err(e) => {
                        failure.get_or_insert(e);
                        continue;
                    }
                }
            }
        };
        match open_slot(slot, &kek)? {
            Some(master) if accept(&master) => {
                return Ok(Unwrapped {
                    master,
                    slot: slot.id,
                });
            }
            Some(_) => {
                failure = Some(KeyError::Forged(SlotName::of(slot)));
            }
            None if kind == RSA => {
                failure.get_or_insert(KeyError::Forged(SlotName::of(slot)));
            }
            None => {}
        }
    }
    Err(failure.unwrap_or(match credential {
        Credential::Passphrase(_) => KeyError::WrongPassphrase,
        Credential::KeyFile(_) => KeyError::WrongKeyFile,
        Credential::Rsa(private) => KeyError::RsaKeyNotEnrolled(rsa::fingerprint(private.spki())),
        Credential::UnwrapCommand(_) => KeyError::NoSlot(RSA),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: KdfParams = KdfParams {
        m_kib: 64,
        t: 1,
        p: 1,
    };

    fn any(_: &MasterKey) -> bool {
        true
    }

    fn pass(p: &[u8]) -> Credential {
        Credential::Passphrase(Zeroizing::new(p.to_vec()))
    }

    #[test]
    fn wrap_then_unwrap_gives_the_same_subkeys() {
        let key = MasterKey::generate().unwrap();
        let slot = key.wrap_passphrase(1, b"correct horse", CHEAP).unwrap();
        let back = unwrap(&[slot], &pass(b"correct horse"), &any).unwrap();
        assert_eq!(back.slot, 1);
        assert_eq!(*key.derive().id_key, *back.master.derive().id_key);
        assert_eq!(key.derive().chunker_seed, back.master.derive().chunker_seed);
    }

    #[test]
    fn wrong_passphrase_and_wrong_keyfile_are_refused() {
        let key = MasterKey::generate().unwrap();
        let slot = key.wrap_passphrase(1, b"right", CHEAP).unwrap();
        let file = key.wrap_keyfile(2, &[9; 32]).unwrap();
        let slots = [slot, file];
        assert!(matches!(
            unwrap(&slots, &pass(b"wrong"), &any),
            Err(KeyError::WrongPassphrase)
        ));
        let wrong = Credential::KeyFile(Zeroizing::new([8; 32]));
        assert!(matches!(
            unwrap(&slots, &wrong, &any),
            Err(KeyError::WrongKeyFile)
        ));
        let right = Credential::KeyFile(Zeroizing::new([9; 32]));
        assert_eq!(unwrap(&slots, &right, &any).unwrap().slot, 2);
    }

    #[test]
    fn a_slot_whose_key_is_not_accepted_is_forged() {
        // Anyone can write a slot (the config is not secret); only the vault's real key may
        // come out of one.
        let real = MasterKey::generate().unwrap();
        let forged = MasterKey::generate()
            .unwrap()
            .wrap_keyfile(1, &[1; 32])
            .unwrap();
        let genuine = real.wrap_keyfile(2, &[1; 32]).unwrap();
        let is_real = |m: &MasterKey| m.bytes() == real.bytes();
        let cred = Credential::KeyFile(Zeroizing::new([1; 32]));
        assert_eq!(
            unwrap(&[forged.clone(), genuine], &cred, &is_real)
                .unwrap()
                .slot,
            2
        );
        assert!(matches!(
            unwrap(&[forged], &cred, &is_real),
            Err(KeyError::Forged(SlotName { id: 1, .. }))
        ));
    }

    #[test]
    fn damaged_slot_is_an_error_not_a_panic() {
        let key = MasterKey::generate().unwrap();
        let mut slot = key.wrap_passphrase(1, b"pw", CHEAP).unwrap();
        slot.nonce = "zz".into();
        assert!(matches!(
            unwrap(&[slot], &pass(b"pw"), &any),
            Err(KeyError::BadSlot(1, _))
        ));
    }
}
