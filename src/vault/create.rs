//! `init`: a new vault's options checked, its files written in order (the config last, so a
//! directory without one is not a vault yet), and a failed init undone.

use std::fs;
use std::path::Path;

use crate::format::{ConfigFile, FORMAT_NAME, FORMAT_VERSION, VaultParams};
use crate::keys::{KdfParams, MasterKey, random_bytes};
use crate::store::backend::Backend;
use crate::store::backend::local::LocalBackend;
use crate::store::chunker::ChunkerParams;
use crate::store::codec::Codec;
use crate::store::index::Db;

use super::keyring::{self, NewSlot};
use super::{INDEX_DIR, Location, Result, Secret, Vault, VaultError, config, now_ns};
use crate::store::backend::s3::MAX_OBJECT_BYTES;

/// Choices made at `init`.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub soft_delete_days: u32,
    pub kdf: KdfParams,
    pub chunk_min_bytes: u32,
    pub chunk_avg_bytes: u32,
    pub chunk_max_bytes: u32,
    pub zstd_level: i32,
    pub pack_target_bytes: u64,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            soft_delete_days: 14,
            kdf: KdfParams::default(),
            chunk_min_bytes: 256 << 10,
            chunk_avg_bytes: 1 << 20,
            chunk_max_bytes: 4 << 20,
            zstd_level: 5,
            pack_target_bytes: 32 << 20,
        }
    }
}

impl Vault {
    /// Create a vault in `dir` (which may exist if empty) with one key slot.
    pub fn create(dir: &Path, first: &NewSlot, label: &str, opts: &InitOptions) -> Result<()> {
        Self::create_at(&Location::Local(dir.to_path_buf()), first, label, opts)
    }

    /// Create a vault at `location`: a directory (which may exist if empty), or an empty
    /// prefix of an existing bucket.
    pub fn create_at(
        location: &Location,
        first: &NewSlot,
        label: &str,
        opts: &InitOptions,
    ) -> Result<()> {
        check_options(opts)?;
        match location {
            Location::Local(dir) => Self::create_local(dir, first, label, opts),
            Location::S3(s3) => {
                if opts.pack_target_bytes > MAX_OBJECT_BYTES {
                    return Err(VaultError::BadSetting(format!(
                        "packs of a vault on S3 are at most {} MiB",
                        MAX_OBJECT_BYTES >> 20
                    )));
                }
                if !s3.backend(None)?.is_empty()? {
                    return Err(VaultError::AlreadyExists(location.shown()));
                }
                let mut vault_id = [0u8; 16];
                random_bytes(&mut vault_id)?;
                let local_dir = location.local_dir(&hex::encode(vault_id));
                s3.prepare_local_dir(&local_dir)?;
                let backend = s3.backend(Some(&local_dir))?;
                let made = Self::create_in(location, &backend, vault_id, first, label, opts);
                if made.is_err() {
                    // The objects written stay (deleting needs the lock that may be gone);
                    // the cache directory goes.
                    let _ = fs::remove_dir_all(&local_dir);
                }
                made
            }
        }
    }

    fn create_local(dir: &Path, first: &NewSlot, label: &str, opts: &InitOptions) -> Result<()> {
        if dir.exists() && !dir.is_dir() {
            return Err(VaultError::NotADirectory(dir.to_path_buf()));
        }
        if dir.exists() {
            let empty = fs::read_dir(dir)
                .map_err(|e| VaultError::io("read", dir, e))?
                .next()
                .is_none();
            if !empty {
                return Err(VaultError::AlreadyExists(dir.to_path_buf()));
            }
        }
        let existed = dir.exists();
        fs::create_dir_all(dir).map_err(|e| VaultError::io("create", dir, e))?;
        let location = Location::Local(dir.to_path_buf());
        let made = random_id().and_then(|id| {
            Self::create_in(&location, &LocalBackend::new(dir), id, first, label, opts)
        });
        if made.is_err() {
            // A failed init (a full disk, say) leaves nothing behind: the directory as it was.
            if existed {
                if let Ok(entries) = fs::read_dir(dir) {
                    for e in entries.flatten() {
                        let p = e.path();
                        let _ = if p.is_dir() {
                            fs::remove_dir_all(&p)
                        } else {
                            fs::remove_file(&p)
                        };
                    }
                }
            } else {
                let _ = fs::remove_dir_all(dir);
            }
        }
        made
    }

    /// The objects of a new vault at `location` (empty), config last.
    fn create_in(
        location: &Location,
        backend: &dyn Backend,
        vault_id: [u8; 16],
        first: &NewSlot,
        label: &str,
        opts: &InitOptions,
    ) -> Result<()> {
        backend.init()?;
        let _lock = backend.lock()?;
        let master = MasterKey::generate()?;
        let codec = Codec::new(master.derive(), opts.zstd_level);
        let params = VaultParams {
            created_ns: now_ns(),
            chunk_min_bytes: opts.chunk_min_bytes,
            chunk_avg_bytes: opts.chunk_avg_bytes,
            chunk_max_bytes: opts.chunk_max_bytes,
            zstd_level: opts.zstd_level,
            pack_target_bytes: opts.pack_target_bytes,
            soft_delete_days: opts.soft_delete_days,
            soft_delete_always_on: false,
        };
        let mut slot = keyring::wrap_new(&master, 1, first)?;
        slot.label = label.into();
        let config = ConfigFile {
            format: FORMAT_NAME.into(),
            version: FORMAT_VERSION,
            vault_id: hex::encode(vault_id),
            generation: 1,
            key_slots: vec![slot],
            data_keys: Vec::new(),
            revoked: Vec::new(),
            immutability: Default::default(),
            guard_key: None,
            roles: Vec::new(),
            params: String::new(),
        };
        let local_dir = location.local_dir(&hex::encode(vault_id));
        Db::create(&local_dir.join(INDEX_DIR), &vault_id)?;
        // The config goes last: a directory without it is not a vault yet.
        config::write_bytes(backend, &config::config_bytes(&codec, config, &params)?)?;
        drop(_lock);
        // Opening records the config in the packs too (repair can bring it back from there).
        let vault = Self::open_with(location, Secret::Key(master), None)?;
        let params = format!(
            "{} --soft-delete-days {}",
            location.display(),
            opts.soft_delete_days
        );
        let what = super::audit::What::new("init", None, params);
        let who = crate::identity::Actor::process();
        vault.audit(&who, &what, crate::format::AuditOutcome::Ok)?;
        Ok(())
    }
}

fn random_id() -> Result<[u8; 16]> {
    let mut vault_id = [0u8; 16];
    random_bytes(&mut vault_id)?;
    Ok(vault_id)
}

/// The options of a new vault, checked before anything is written.
fn check_options(opts: &InitOptions) -> Result<()> {
    if !(1..=180).contains(&opts.soft_delete_days) {
        return Err(VaultError::BadSetting(
            "--soft-delete-days must be between 1 and 180".into(),
        ));
    }
    ChunkerParams::validate(
        opts.chunk_min_bytes,
        opts.chunk_avg_bytes,
        opts.chunk_max_bytes,
    )
    .map_err(|e| VaultError::BadSetting(e.to_string()))?;
    if !(1..=19).contains(&opts.zstd_level) {
        return Err(VaultError::BadSetting(
            "zstd level must be between 1 and 19".into(),
        ));
    }
    if !(1 << 20..=1 << 30).contains(&opts.pack_target_bytes) {
        return Err(VaultError::BadSetting(
            "pack size must be between 1 MiB and 1 GiB".into(),
        ));
    }
    Ok(())
}
