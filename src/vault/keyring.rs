//! Key management of an open vault: add, remove and rotate key slots, start a new data-key
//! epoch, list both. Each change is one new config generation (both copies, then sealed into
//! the packs); no pack is touched, so its cost does not grow with the vault.

use zeroize::Zeroizing;

use crate::format::{ConfigFile, KeySlot, RevokedKey};
use crate::keys::slot::{KEYFILE, PASSPHRASE, RSA, rsa_parts};
use crate::keys::{DataKey, KdfParams, MasterKey, rsa};

use super::{Result, Vault, VaultError, config, now_ns};

/// The secret of a new or rotated slot.
pub enum NewSlot {
    Passphrase(Zeroizing<Vec<u8>>, KdfParams),
    /// The 32 bytes of a new key file (the caller writes the file).
    KeyFile(Zeroizing<[u8; 32]>),
    Rsa(Box<rsa::PublicKey>),
}

impl NewSlot {
    pub fn kind(&self) -> &'static str {
        match self {
            NewSlot::Passphrase(..) => PASSPHRASE,
            NewSlot::KeyFile(_) => KEYFILE,
            NewSlot::Rsa(_) => RSA,
        }
    }
}

/// Wrap `master` into a new slot `id`.
pub fn wrap_new(master: &MasterKey, id: u32, new: &NewSlot) -> Result<KeySlot> {
    Ok(match new {
        NewSlot::Passphrase(p, kdf) => master.wrap_passphrase(id, p, *kdf)?,
        NewSlot::KeyFile(k) => master.wrap_keyfile(id, k)?,
        NewSlot::Rsa(public) => master.wrap_rsa(id, public)?,
    })
}

/// What `key list` shows of a slot.
pub struct SlotInfo {
    pub id: u32,
    pub kind: String,
    pub label: String,
    /// Argon2 parameters, or the RSA key's size and fingerprint.
    pub detail: String,
}

/// What `key list` and `check` show of a key epoch.
pub struct EpochInfo {
    pub epoch: u32,
    /// `None` for epoch 0 (made with the vault).
    pub created_ns: Option<i64>,
    pub sealing: bool,
}

/// The fingerprint a slot's key is remembered by once revoked (none for passphrases).
fn fingerprint(slot: &KeySlot) -> Option<String> {
    match slot.kind.as_str() {
        RSA => rsa_parts(slot)
            .ok()
            .map(|(spki, _)| rsa::fingerprint(&spki)),
        KEYFILE => slot.keyfile_fingerprint.clone(),
        _ => None,
    }
}

impl Vault {
    /// The master key: tests only (to show what a key of epoch 0 alone can open).
    #[cfg(feature = "test-hooks")]
    pub fn master_key(&self) -> &MasterKey {
        &self.master
    }

    /// The vault's key slots.
    pub fn key_slots(&self) -> Vec<SlotInfo> {
        self.config()
            .key_slots
            .iter()
            .map(|s| SlotInfo {
                id: s.id,
                kind: s.kind.clone(),
                label: s.label.clone(),
                detail: match s.kind.as_str() {
                    PASSPHRASE => format!(
                        "argon2id {} MiB, {} passes",
                        s.argon2_m_kib.unwrap_or(0) / 1024,
                        s.argon2_t.unwrap_or(0)
                    ),
                    RSA => match rsa_parts(s).map(|(spki, _)| rsa::PublicKey::from_spki(&spki)) {
                        Ok(Ok(k)) => format!(
                            "RSA-OAEP-SHA256 {} bits, key {}",
                            k.bits(),
                            rsa::fingerprint(k.spki())
                        ),
                        _ => "damaged RSA key".into(),
                    },
                    _ => format!("key {}", s.keyfile_fingerprint.as_deref().unwrap_or("?")),
                },
            })
            .collect()
    }

    /// The key epochs, oldest first.
    pub fn key_epochs(&self) -> Vec<EpochInfo> {
        let config = self.config();
        let last = config.data_keys.last().map(|e| e.epoch).unwrap_or(0);
        std::iter::once(EpochInfo {
            epoch: 0,
            created_ns: None,
            sealing: last == 0,
        })
        .chain(config.data_keys.iter().map(|e| EpochInfo {
            epoch: e.epoch,
            created_ns: Some(e.created_ns),
            sealing: e.epoch == last,
        }))
        .collect()
    }

    /// Add a slot; returns its id.
    pub fn key_add(&self, new: &NewSlot, label: &str) -> Result<u32> {
        let _commit = self.commit_lock.lock().expect("commit lock");
        let mut config = self.config();
        let id = config.key_slots.iter().map(|s| s.id).max().unwrap_or(0) + 1;
        let mut slot = wrap_new(&self.master, id, new)?;
        slot.label = label.into();
        config.key_slots.push(slot);
        self.write_config(config)?;
        Ok(id)
    }

    /// Remove slot `id`; refused for the last one. Its key (RSA or keyfile) is remembered as
    /// revoked, so that trying it names the slot.
    pub fn key_remove(&self, id: u32) -> Result<KeySlot> {
        let _commit = self.commit_lock.lock().expect("commit lock");
        let mut config = self.config();
        let at = slot_index(&config, id)?;
        if config.key_slots.len() == 1 {
            return Err(VaultError::LastSlot(id));
        }
        let slot = config.key_slots.remove(at);
        revoke(&mut config.revoked, &slot);
        self.write_config(config)?;
        Ok(slot)
    }

    /// Re-wrap the master key of slot `id` under a new secret of the same kind. Id and label
    /// stay; no pack changes.
    pub fn key_rotate(&self, id: u32, new: &NewSlot) -> Result<()> {
        let _commit = self.commit_lock.lock().expect("commit lock");
        let mut config = self.config();
        let at = slot_index(&config, id)?;
        let old = &config.key_slots[at];
        if old.kind != new.kind() {
            return Err(VaultError::BadSetting(format!(
                "key slot {id} is a {} slot; rotate it to a new {}, or add a {} slot and remove it",
                old.kind,
                old.kind,
                new.kind()
            )));
        }
        let mut slot = wrap_new(&self.master, id, new)?;
        slot.label = old.label.clone();
        let old = std::mem::replace(&mut config.key_slots[at], slot);
        revoke(&mut config.revoked, &old);
        self.write_config(config)?;
        Ok(())
    }

    /// Start a new key epoch: a fresh random data key seals everything written from now on;
    /// older epochs' keys stay (sealed under the config key) to read older data. Returns the
    /// new epoch. This vault keeps sealing with the old key until it is opened again.
    pub fn rotate_data_key(&self) -> Result<u32> {
        let _commit = self.commit_lock.lock().expect("commit lock");
        let mut config = self.config();
        let epoch = config.data_keys.last().map(|e| e.epoch).unwrap_or(0) + 1;
        let key = DataKey::generate(epoch)?;
        let entry = config::seal_data_key(self.store.codec(), &config, &key, now_ns())?;
        config.data_keys.push(entry);
        self.write_config(config)?;
        Ok(epoch)
    }
}

fn slot_index(config: &ConfigFile, id: u32) -> Result<usize> {
    config
        .key_slots
        .iter()
        .position(|s| s.id == id)
        .ok_or(VaultError::NoSuchSlot(id))
}

fn revoke(revoked: &mut Vec<RevokedKey>, slot: &KeySlot) {
    if let Some(fingerprint) = fingerprint(slot) {
        revoked.push(RevokedKey {
            slot: slot.id,
            kind: slot.kind.clone(),
            label: slot.label.clone(),
            fingerprint,
            removed_ns: now_ns(),
        });
    }
}
