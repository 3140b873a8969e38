//! `VAULT/config` and its copy `VAULT/config.copy`: reading and version-checking them, telling
//! damage from a wrong key, sealing the vault's parameters and data keys into them, writing
//! both (each one backend object, replaced atomically). Layout in DESIGN.md §3.1.
//!
//! What opening a vault needs is stored twice, and once more sealed into the packs (a
//! `MetaRecord::Config`, so `repair` can bring it back). Each file ends in a blake3 checksum of
//! its bytes, so a flipped byte is damage that is found without any key (and the other copy is
//! used), never a "wrong passphrase". Only after a key slot has opened does the key
//! authenticate the copy in use (its sealed parameters bind the generation, slots and data
//! keys), and only then is a damaged or older copy rewritten from it.

use std::path::Path;

use crate::format::{
    self, ConfigFile, DataKeyEntry, FORMAT_NAME, FORMAT_VERSION, FORMAT_VERSION_OLDEST, VaultParams,
};
use crate::keys::{Credential, DataKey, KeyError, MasterKey, slot};
use crate::store::backend::local::LocalBackend;
use crate::store::backend::{Backend, Key};
use crate::store::codec::Codec;
use crate::store::{Damaged, StoreError};

use super::{NotAVault, Result, VaultError};

const PARAMS_AAD: &[u8] = b"vaultfs config params";
const DATA_KEY_AAD: &[u8] = b"vaultfs v3 data key ";
/// The end of a v3 config: `,\n  "checksum": "<64 hex>"\n}\n`.
const SUM_HEAD: &[u8] = b",\n  \"checksum\": \"";
const SUM_TAIL: &[u8] = b"\"\n}\n";
/// The version from which configs carry a checksum, a generation and a copy.
const V3: u32 = 3;

/// The config a vault opens with, and what was wrong with its copies.
pub struct Loaded {
    pub config: ConfigFile,
    /// The bytes of the copy in use.
    pub bytes: Vec<u8>,
    /// Copies that are missing, damaged or older than `config`: rewritten once a key has
    /// authenticated `config` (see [`heal`]).
    pub stale: Vec<(Key, String)>,
}

/// What one copy holds.
enum Copy {
    Good(Box<ConfigFile>, Vec<u8>),
    Missing,
    Damaged(String),
    Newer(u32),
    Foreign,
}

fn bad_config(why: impl std::fmt::Display) -> VaultError {
    VaultError::corrupt(Damaged::Config, format!("is damaged: {why}"))
}

/// Read and version-check a vault's config without any key.
pub fn read(dir: &Path) -> Result<ConfigFile> {
    Ok(load(dir)?.config)
}

/// Read both copies and pick the newest intact one. Keyless: nothing is written.
pub fn load(dir: &Path) -> Result<Loaded> {
    if !dir.exists() {
        return Err(VaultError::NotAVault(dir.to_path_buf(), NotAVault::Missing));
    }
    if !dir.is_dir() {
        return Err(VaultError::NotAVault(
            dir.to_path_buf(),
            NotAVault::NotADirectory,
        ));
    }
    load_from(&LocalBackend::new(dir), dir)
}

/// [`load`] through any backend; `shown` names the vault in errors.
pub fn load_from(backend: &dyn Backend, shown: &Path) -> Result<Loaded> {
    let copies = [
        (Key::Config, read_copy(backend, Key::Config)?),
        (Key::ConfigCopy, read_copy(backend, Key::ConfigCopy)?),
    ];
    if let Some(found) = copies.iter().find_map(|(_, c)| match c {
        Copy::Newer(v) => Some(*v),
        _ => None,
    }) {
        return Err(VaultError::NewerFormat {
            found,
            supported: FORMAT_VERSION,
        });
    }
    let best = copies
        .iter()
        .filter_map(|(_, c)| match c {
            Copy::Good(cfg, bytes) => Some((cfg, bytes)),
            _ => None,
        })
        // The newest; between equals, `config` (the first).
        .reduce(|a, b| {
            if b.0.generation > a.0.generation {
                b
            } else {
                a
            }
        });
    let Some((config, bytes)) = best else {
        if copies.iter().all(|(_, c)| matches!(c, Copy::Missing)) {
            return Err(VaultError::NotAVault(
                shown.to_path_buf(),
                NotAVault::NoConfig,
            ));
        }
        if copies
            .iter()
            .all(|(_, c)| matches!(c, Copy::Missing | Copy::Foreign))
        {
            return Err(VaultError::NotAVault(
                shown.to_path_buf(),
                NotAVault::ForeignConfig,
            ));
        }
        let why: Vec<String> = copies
            .iter()
            .filter_map(|(key, c)| match c {
                Copy::Damaged(why) => Some(format!("{}: {why}", key.name())),
                _ => None,
            })
            .collect();
        return Err(bad_config(format_args!(
            "{}; run `vaultfs repair`",
            why.join("; ")
        )));
    };
    let mut stale = Vec::new();
    if config.version >= V3 {
        for (key, c) in &copies {
            let why = match c {
                Copy::Good(_, b) if b == bytes => continue,
                Copy::Good(other, _) => format!(
                    "was older (generation {} < {})",
                    other.generation, config.generation
                ),
                Copy::Missing => "was missing".into(),
                Copy::Damaged(why) => format!("was damaged ({why})"),
                Copy::Newer(_) | Copy::Foreign => "was not this vault's config".into(),
            };
            stale.push((*key, why));
        }
    }
    Ok(Loaded {
        config: (**config).clone(),
        bytes: bytes.clone(),
        stale,
    })
}

/// [`read`] of a vault anywhere, through its backend.
pub fn read_from(backend: &dyn Backend, location: &super::Location) -> Result<ConfigFile> {
    Ok(load_from(backend, &location.shown())?.config)
}

/// One copy; a store that cannot be reached (S3) is an error, not a damaged copy.
fn read_copy(backend: &dyn Backend, key: Key) -> Result<Copy> {
    Ok(match backend.get(key) {
        Ok(bytes) => parse_copy(bytes),
        Err(StoreError::Missing(_)) => Copy::Missing,
        Err(e @ StoreError::Remote(_)) => return Err(e.into()),
        Err(e) => Copy::Damaged(e.to_string()),
    })
}

/// The checksummed part of a v3 config and whether its checksum matches; `None` if the bytes
/// do not end the way a checksummed config does.
fn checksum_ok(bytes: &[u8]) -> Option<bool> {
    let sum_len = SUM_HEAD.len() + 64 + SUM_TAIL.len();
    let split = bytes.len().checked_sub(sum_len)?;
    let (body, end) = bytes.split_at(split);
    let hexsum = end.strip_prefix(SUM_HEAD)?.strip_suffix(SUM_TAIL)?;
    // Byte for byte, lower case as written: an upper-case digit is a changed byte too.
    Some(blake3::hash(body).to_hex().as_bytes() == hexsum)
}

/// Check and parse one copy. The checksum is checked before anything is believed (a flipped
/// version digit is damage, not a newer format); then the version, before the rest, so a
/// newer format is named as such even if the rest has changed shape.
fn parse_copy(bytes: Vec<u8>) -> Copy {
    let checked = checksum_ok(&bytes);
    if checked == Some(false) {
        return Copy::Damaged("checksum mismatch".into());
    }
    let value: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => return Copy::Damaged(format!("not JSON: {e}")),
    };
    if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT_NAME) {
        return Copy::Foreign;
    }
    let version = value.get("version").and_then(|v| v.as_u64()).unwrap_or(0);
    if version > FORMAT_VERSION as u64 {
        return Copy::Newer(version.min(u32::MAX as u64) as u32);
    }
    if version < FORMAT_VERSION_OLDEST as u64 {
        return Copy::Damaged(format!("unknown format version {version}"));
    }
    if version >= V3 as u64 && checked.is_none() {
        return Copy::Damaged("its checksum is missing".into());
    }
    match serde_json::from_value(value) {
        Ok(config) => Copy::Good(Box::new(config), bytes),
        Err(e) => Copy::Damaged(e.to_string()),
    }
}

pub(crate) fn vault_id_bytes(config: &ConfigFile) -> Result<Vec<u8>> {
    hex::decode(&config.vault_id).map_err(|_| bad_config("vault_id is not hex"))
}

/// The associated data of the sealed parameters. From v3 it binds the generation, the key
/// slots and the data keys: the key that opens the parameters vouches for all of them.
fn params_aad(config: &ConfigFile) -> Vec<u8> {
    let mut aad = PARAMS_AAD.to_vec();
    aad.extend_from_slice(config.vault_id.as_bytes());
    if config.version >= V3 {
        let mut h = blake3::Hasher::new();
        h.update(&serde_json::to_vec(&config.key_slots).expect("slots serialise"));
        h.update(&serde_json::to_vec(&config.data_keys).expect("data keys serialise"));
        aad.extend_from_slice(b"\0v3");
        aad.extend_from_slice(&config.generation.to_le_bytes());
        aad.extend_from_slice(h.finalize().as_bytes());
    }
    if config.version >= 4 {
        // Removing or editing the immutability field makes the params fail to open.
        aad.extend_from_slice(b"\0v4 immutability ");
        aad.extend_from_slice(config.immutability.as_str().as_bytes());
        if !config.roles.is_empty() {
            let roles = serde_json::to_vec(&config.roles).expect("roles serialise");
            aad.extend_from_slice(b"\0roles ");
            aad.extend_from_slice(blake3::hash(&roles).as_bytes());
        }
        if let Some(g) = &config.guard_key {
            aad.extend_from_slice(b"\0guard ");
            aad.extend_from_slice(g.as_bytes());
        }
    }
    aad
}

/// Open the sealed [`VaultParams`] of `config`.
pub(crate) fn open_params(config: &ConfigFile, master: &MasterKey) -> Result<VaultParams> {
    let sealed = hex::decode(&config.params).map_err(|_| bad_config("params are not hex"))?;
    let plain = Codec::new(master.derive(), 3)
        .open_config(&sealed, &params_aad(config))
        .map_err(|e| e.into_store(Damaged::Record("vault params")))?;
    format::decode(&plain, "vault params")
        .map_err(|e| VaultError::corrupt(Damaged::Record("vault params"), e.to_string()))
}

/// Find the key slot `credential` opens. A slot's key counts only if it opens the config's
/// sealed parameters; a revoked key is named as such.
pub(crate) fn unwrap(config: &ConfigFile, credential: &Credential) -> Result<MasterKey> {
    let accept = |m: &MasterKey| open_params(config, m).is_ok();
    match slot::unwrap(&config.key_slots, credential, &accept) {
        Ok(u) => Ok(u.master),
        Err(
            e @ (KeyError::WrongKeyFile | KeyError::RsaKeyNotEnrolled(_) | KeyError::NoSlot(_)),
        ) => Err(slot::revoked_error(&config.revoked, credential)
            .unwrap_or(e)
            .into()),
        Err(e) => Err(e.into()),
    }
}

fn data_key_aad(config: &ConfigFile, epoch: u32) -> Vec<u8> {
    let mut aad = DATA_KEY_AAD.to_vec();
    aad.extend_from_slice(config.vault_id.as_bytes());
    aad.extend_from_slice(&epoch.to_le_bytes());
    aad
}

/// Seal the data key of a new epoch for `config`.
pub fn seal_data_key(
    codec: &Codec,
    config: &ConfigFile,
    key: &DataKey,
    created_ns: i64,
) -> Result<DataKeyEntry> {
    Ok(DataKeyEntry {
        epoch: key.epoch,
        created_ns,
        sealed: hex::encode(codec.seal_config(key.bytes(), &data_key_aad(config, key.epoch))?),
    })
}

/// The data keys of `config`'s epochs after 0.
pub fn open_data_keys(config: &ConfigFile, master: &MasterKey) -> Result<Vec<DataKey>> {
    let codec = Codec::new(master.derive(), 3);
    let mut last = 0;
    let mut out = Vec::new();
    for e in &config.data_keys {
        if e.epoch <= last {
            return Err(bad_config("data key epochs out of order"));
        }
        last = e.epoch;
        let sealed = hex::decode(&e.sealed).map_err(|_| bad_config("data key is not hex"))?;
        let plain = zeroize::Zeroizing::new(
            codec
                .open_config(&sealed, &data_key_aad(config, e.epoch))
                .map_err(|err| err.into_store(Damaged::Record("data key")))?,
        );
        let key: [u8; 32] = plain
            .as_slice()
            .try_into()
            .map_err(|_| bad_config("data key length"))?;
        out.push(DataKey::from_secret(e.epoch, zeroize::Zeroizing::new(key)));
    }
    Ok(out)
}

/// The bytes of a config file: `config` as pretty JSON with `params` sealed into it (with the
/// codec's config key) and, from v3, the checksum of everything before it at the end.
pub fn config_bytes(
    codec: &Codec,
    mut config: ConfigFile,
    params: &VaultParams,
) -> Result<Vec<u8>> {
    config.params = String::new();
    config.params = hex::encode(codec.seal_config(&format::encode(params), &params_aad(&config))?);
    let mut text = serde_json::to_vec_pretty(&config).expect("a config serialises to JSON");
    if config.version < V3 {
        text.push(b'\n');
        return Ok(text);
    }
    let body_len = text.len() - b"\n}".len();
    text.truncate(body_len);
    let sum = blake3::hash(&text);
    text.extend_from_slice(SUM_HEAD);
    text.extend_from_slice(sum.to_hex().as_bytes());
    text.extend_from_slice(SUM_TAIL);
    Ok(text)
}

/// Replace both copies with `bytes`, the first then the second: a crash in between leaves one
/// copy a generation ahead, which the next open takes (and heals the other from).
pub(crate) fn write_bytes(backend: &dyn Backend, bytes: &[u8]) -> Result<()> {
    backend.put(Key::Config, bytes)?;
    backend.put(Key::ConfigCopy, bytes)?;
    Ok(())
}

/// Rewrite the copies `loaded` found stale from the one in use. Only after a key has
/// authenticated that copy: a keyless checksum cannot tell an attacker's copy from ours.
pub(crate) fn heal(backend: &dyn Backend, loaded: &Loaded) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    for (key, why) in &loaded.stale {
        backend.put(*key, &loaded.bytes)?;
        notes.push(format!(
            "{} {why}; rewritten from the other copy",
            key.name()
        ));
    }
    Ok(notes)
}

impl super::Vault {
    /// The config in use as the packs hold it.
    pub(crate) fn config_record(&self) -> crate::format::ConfigRecord {
        let (config, bytes) = self.config.lock().expect("config lock").clone();
        crate::format::ConfigRecord {
            generation: config.generation,
            config: bytes,
        }
    }

    /// `repair`: if the packs hold a newer config than the files (an older one was copied
    /// back), write it back to both copies. Then the catalog learns the generation in use.
    /// Returns the generation restored, if any.
    pub(crate) fn restore_config(
        &self,
        newest: Option<crate::format::ConfigRecord>,
    ) -> Result<Option<u64>> {
        let current = self.config();
        let mut restored = None;
        if let Some(rec) = newest.filter(|r| r.generation > current.generation) {
            // Sealed under the vault's key in the packs, so authentic; still check it is ours.
            match parse_copy(rec.config.clone()) {
                Copy::Good(cfg, bytes) if cfg.vault_id == current.vault_id => {
                    write_bytes(self.store.backend(), &bytes)?;
                    *self.config.lock().expect("config lock") = (*cfg, bytes);
                    restored = Some(rec.generation);
                }
                _ => return Err(bad_config("the newest config in the packs does not read")),
            }
        }
        self.sync_config_generation()?;
        Ok(restored)
    }
}
