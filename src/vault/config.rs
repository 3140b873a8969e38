//! `VAULT/config`: reading and version-checking it, sealing the vault's parameters into it,
//! writing it (one backend object, replaced atomically). Layout in DESIGN.md §3.1.

use std::path::Path;

use crate::format::{
    self, ConfigFile, FORMAT_NAME, FORMAT_VERSION, FORMAT_VERSION_OLDEST, VaultParams,
};
use crate::keys::MasterKey;
use crate::store::backend::local::LocalBackend;
use crate::store::backend::{Backend, Key};
use crate::store::codec::Codec;
use crate::store::{Damaged, StoreError};

use super::{NotAVault, Result, VaultError};

const PARAMS_AAD: &[u8] = b"vaultfs config params";

/// Read and version-check a vault's config without any key.
pub fn read(dir: &Path) -> Result<ConfigFile> {
    if !dir.exists() {
        return Err(VaultError::NotAVault(dir.to_path_buf(), NotAVault::Missing));
    }
    if !dir.is_dir() {
        return Err(VaultError::NotAVault(
            dir.to_path_buf(),
            NotAVault::NotADirectory,
        ));
    }
    let text = match LocalBackend::new(dir).get(Key::Config) {
        Ok(t) => t,
        Err(StoreError::Missing(_)) => {
            return Err(VaultError::NotAVault(
                dir.to_path_buf(),
                NotAVault::NoConfig,
            ));
        }
        Err(e) => return Err(e.into()),
    };
    parse_config(dir, &text)
}

/// [`read`] through a backend (a vault not in a local directory).
pub fn read_from(backend: &dyn Backend, location: &super::Location) -> Result<ConfigFile> {
    let text = match backend.get(Key::Config) {
        Ok(t) => t,
        Err(StoreError::Missing(_)) => {
            return Err(VaultError::NotAVault(location.shown(), NotAVault::NoConfig));
        }
        Err(e) => return Err(e.into()),
    };
    parse_config(&location.shown(), &text)
}

pub(crate) fn vault_id_bytes(config: &ConfigFile) -> Result<Vec<u8>> {
    hex::decode(&config.vault_id).map_err(|_| bad_config("vault_id is not hex"))
}

fn bad_config(why: impl std::fmt::Display) -> VaultError {
    VaultError::corrupt(Damaged::Config, format!("is damaged: {why}"))
}

/// Version-check and parse the config's bytes. The version is read before anything else, so
/// a newer format is named as such even if the rest has changed shape.
fn parse_config(dir: &Path, text: &[u8]) -> Result<ConfigFile> {
    let value: serde_json::Value = serde_json::from_slice(text)
        .map_err(|e| bad_config(format_args!("{}: {e}", dir.join("config").display())))?;
    if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT_NAME) {
        return Err(VaultError::NotAVault(
            dir.to_path_buf(),
            NotAVault::ForeignConfig,
        ));
    }
    let version = value.get("version").and_then(|v| v.as_u64()).unwrap_or(0);
    if version > FORMAT_VERSION as u64 {
        return Err(VaultError::NewerFormat {
            found: version.min(u32::MAX as u64) as u32,
            supported: FORMAT_VERSION,
        });
    }
    if version < FORMAT_VERSION_OLDEST as u64 {
        return Err(bad_config(format_args!("unknown format version {version}")));
    }
    serde_json::from_value(value).map_err(bad_config)
}

fn params_aad(config: &ConfigFile) -> Vec<u8> {
    let mut aad = PARAMS_AAD.to_vec();
    aad.extend_from_slice(config.vault_id.as_bytes());
    aad
}

/// Open the sealed [`VaultParams`] of `config`.
pub(crate) fn open_params(config: &ConfigFile, master: &MasterKey) -> Result<VaultParams> {
    let sealed = hex::decode(&config.params).map_err(|_| bad_config("params are not hex"))?;
    let plain = Codec::new(master.derive(), 3)
        .open_raw(&sealed, &params_aad(config))
        .map_err(|e| e.into_store(Damaged::Record("vault params")))?;
    format::decode(&plain, "vault params")
        .map_err(|e| VaultError::corrupt(Damaged::Record("vault params"), e.to_string()))
}

/// The bytes of `VAULT/config`: `config` as pretty JSON with `params` sealed into it.
pub fn config_bytes(
    codec: &Codec,
    mut config: ConfigFile,
    params: &VaultParams,
) -> Result<Vec<u8>> {
    config.params = hex::encode(codec.seal_raw(&format::encode(params), &params_aad(&config))?);
    let mut text = serde_json::to_vec_pretty(&config).expect("a config serialises to JSON");
    text.push(b'\n');
    Ok(text)
}

/// Seal `params` into `config` and replace the config atomically.
pub(crate) fn write(
    backend: &dyn Backend,
    codec: &Codec,
    config: ConfigFile,
    params: &VaultParams,
) -> Result<()> {
    Ok(backend.put(Key::Config, &config_bytes(codec, config, params)?)?)
}
