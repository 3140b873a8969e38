//! The vault: items, points and their trees on top of the store, and the logic of each command.
//!
//! `Vault::open` goes config → lock → key → index, in that order, so a bad config, a vault in
//! use or a wrong passphrase is reported before anything in the vault is written.

pub mod backup;
pub mod catalog;
pub mod check;
pub mod config;
mod error;
pub mod fsmeta;
pub mod gc;
pub mod incoming;
pub mod ingest;
pub mod location;
pub mod lock;
pub mod names;
pub mod policy;
pub mod repair;
pub mod replica;
pub mod replica_settings;
pub mod replicate;
pub mod restore;
pub mod tree;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use error::{NotAVault, Result, VaultError};
pub use location::{Location, Places};

use crate::format::{
    self, ConfigFile, FORMAT_NAME, FORMAT_VERSION, IncomingRecord, ItemRecord, MetaRecord,
    PointRecord, VaultParams,
};
use crate::keys::{KdfParams, MasterKey, random_bytes};
use crate::store::backend::local::LocalBackend;
use crate::store::backend::{Backend, LockGuard, Observer};
use crate::store::chunker::{Chunker, ChunkerParams};
use crate::store::codec::Codec;
use crate::store::index::Db;
use crate::store::{BlobKind, Store};
use catalog::Catalog;

pub const INDEX_DIR: &str = "index";

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

/// What unlocks a vault.
pub(crate) enum Secret<'a> {
    Passphrase(&'a [u8]),
    Key(MasterKey),
}

pub struct Vault {
    /// The vault's local directory: the vault itself, or an S3 vault's cache directory.
    dir: PathBuf,
    location: Location,
    vault_id: String,
    /// Changed only by `settings` (soft delete), under the commit lock.
    params: std::sync::RwLock<VaultParams>,
    store: Store,
    catalog: Catalog,
    /// Serialises commits (point naming and catalog updates) between sessions of a daemon.
    commit_lock: std::sync::Mutex<()>,
    /// The mount daemon's live incoming trees, when this vault is mounted.
    live: std::sync::OnceLock<std::sync::Weak<dyn incoming::LiveIncoming>>,
    _lock: LockGuard,
}

/// A vault whose lock is taken and key unwrapped, before its index is opened.
pub(crate) struct Unlocked {
    location: Location,
    local_dir: PathBuf,
    /// An S3 vault whose local index may not know what was written: no index here yet, or
    /// another cache directory (another machine) held the lock last.
    index_stale: bool,
    config: ConfigFile,
    lock: LockGuard,
    codec: Codec,
    params: VaultParams,
    backend: Arc<dyn Backend>,
    observer: Option<Arc<dyn Observer>>,
}

pub const DAY_NS: i64 = 86_400 * 1_000_000_000;

/// Nanoseconds since the Unix epoch, now: the one clock of the vault (names, soft delete,
/// schedules). A build with the `test-clock` feature reads it from the file named by
/// `VAULTFS_TEST_CLOCK` when set, so tests can move time forward, also inside a running daemon.
pub fn now_ns() -> i64 {
    #[cfg(feature = "test-clock")]
    if let Some(path) = std::env::var_os("VAULTFS_TEST_CLOCK")
        && let Ok(text) = fs::read_to_string(path)
        && let Ok(ns) = text.trim().parse::<i64>()
    {
        return ns;
    }
    jiff::Timestamp::now().as_nanosecond() as i64
}

impl Vault {
    /// Create a vault in `dir` (which may exist if empty).
    pub fn create(dir: &Path, passphrase: &[u8], opts: &InitOptions) -> Result<()> {
        Self::create_at(&Location::Local(dir.to_path_buf()), passphrase, opts)
    }

    /// Create a vault at `location` (a directory that may exist if empty, or an empty prefix
    /// of an existing bucket).
    pub fn create_at(location: &Location, passphrase: &[u8], opts: &InitOptions) -> Result<()> {
        if let Location::Local(dir) = location {
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
        }
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
        let mut vault_id = [0u8; 16];
        random_bytes(&mut vault_id)?;
        let local_dir = location.local_dir(&hex::encode(vault_id));
        let backend: Arc<dyn Backend> = match location {
            Location::Local(dir) => {
                fs::create_dir_all(dir).map_err(|e| VaultError::io("create", dir, e))?;
                Arc::new(LocalBackend::new(dir))
            }
            Location::S3(s3) => {
                if opts.pack_target_bytes > crate::store::backend::s3::MAX_OBJECT_BYTES {
                    return Err(VaultError::BadSetting(format!(
                        "packs of a vault on S3 are at most {} MiB",
                        crate::store::backend::s3::MAX_OBJECT_BYTES >> 20
                    )));
                }
                if !s3.backend(None)?.is_empty()? {
                    return Err(VaultError::AlreadyExists(location.shown()));
                }
                s3.prepare_local_dir(&local_dir)?;
                Arc::new(s3.backend(Some(&local_dir))?)
            }
        };
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
        let slot = master.wrap(1, passphrase, opts.kdf)?;
        let config = ConfigFile {
            format: FORMAT_NAME.into(),
            version: FORMAT_VERSION,
            vault_id: hex::encode(vault_id),
            key_slots: vec![slot],
            params: String::new(),
        };
        Db::create(&local_dir.join(INDEX_DIR), &vault_id)?;
        // The config goes last: a directory without it is not a vault yet.
        config::write(backend.as_ref(), &codec, config, &params)
    }

    /// Read and version-check a vault's config without any key.
    pub fn read_config(dir: &Path) -> Result<ConfigFile> {
        config::read(dir)
    }

    /// [`Vault::read_config`] of a vault anywhere.
    pub fn read_config_at(location: &Location) -> Result<ConfigFile> {
        match location {
            Location::Local(dir) => config::read(dir),
            Location::S3(_) => config::read_from(location.backend(None)?.as_ref(), location),
        }
    }

    /// Open the vault at `location`.
    pub fn open_at(location: &Location, passphrase: &[u8]) -> Result<Vault> {
        Self::open_with(location, Secret::Passphrase(passphrase), None)
    }

    /// [`Vault::open_with_key`] of a vault anywhere.
    pub fn open_with_key_at(location: &Location, key: MasterKey) -> Result<Vault> {
        Self::open_with(location, Secret::Key(key), None)
    }

    /// [`Vault::unwrap_key`] of a vault anywhere.
    pub fn unwrap_key_at(location: &Location, passphrase: &[u8]) -> Result<MasterKey> {
        let config = Self::read_config_at(location)?;
        Ok(MasterKey::unwrap(&config.key_slots, passphrase)?)
    }

    /// Open a vault: config, lock, key, index.
    pub fn open(dir: &Path, passphrase: &[u8]) -> Result<Vault> {
        Self::open_at(&Location::Local(dir.to_path_buf()), passphrase)
    }

    /// Open with a master key already unwrapped by [`Vault::unwrap_key`] (the mount daemon:
    /// the parent runs the KDF, so the daemon's memory never holds Argon2's 64 MiB).
    pub fn open_with_key(dir: &Path, key: MasterKey) -> Result<Vault> {
        Self::open_with_key_at(&Location::Local(dir.to_path_buf()), key)
    }

    /// Open with `observer` seeing every change and durability call to the vault's files and
    /// index (fault injection: `store::backend::fault`).
    #[cfg(feature = "test-hooks")]
    pub fn open_observed(
        dir: &Path,
        passphrase: &[u8],
        observer: Arc<dyn Observer>,
    ) -> Result<Vault> {
        let location = Location::Local(dir.to_path_buf());
        Self::open_with(&location, Secret::Passphrase(passphrase), Some(observer))
    }

    fn open_with(
        location: &Location,
        secret: Secret,
        observer: Option<Arc<dyn Observer>>,
    ) -> Result<Vault> {
        #[cfg(feature = "test-hooks")]
        let observer = observer.or_else(crate::store::backend::fault::KillAt::from_env);
        let u = Self::unlock(location, secret, observer)?;
        if u.index_stale {
            tracing::info!(
                "rebuilding the local index of {} from the bucket (no index here, or another machine wrote since)",
                location.display()
            );
            let (vault, report) = repair::rebuild(u)?;
            for e in &report.errors {
                tracing::warn!("{e}");
            }
            return Ok(vault);
        }
        let db = Db::open(
            &u.local_dir.join(INDEX_DIR),
            &config::vault_id_bytes(&u.config)?,
            u.observer.clone(),
        )?;
        if u.config.version < FORMAT_VERSION {
            // v1 -> v2 adds record kinds only; once a v2 record may exist, an older vaultfs
            // must refuse the vault instead of misreading it.
            let mut config = u.config.clone();
            config.version = FORMAT_VERSION;
            config::write(u.backend.as_ref(), &u.codec, config, &u.params)?;
        }
        Self::assemble(u, db)
    }

    /// Check `passphrase` against the vault's key slots and return the master key.
    pub fn unwrap_key(dir: &Path, passphrase: &[u8]) -> Result<MasterKey> {
        let config = Self::read_config(dir)?;
        Ok(MasterKey::unwrap(&config.key_slots, passphrase)?)
    }

    /// The steps of `open` before the index: used by `repair`, which rebuilds the index.
    pub(crate) fn unlock(
        location: &Location,
        secret: Secret,
        observer: Option<Arc<dyn Observer>>,
    ) -> Result<Unlocked> {
        let config = Self::read_config_at(location)?;
        let local_dir = location.local_dir(&config.vault_id);
        let (backend, lock, index_stale): (Arc<dyn Backend>, _, _) = match location {
            Location::Local(dir) => {
                let mut backend = LocalBackend::new(dir);
                if let Some(o) = &observer {
                    backend = backend.with_observer(o.clone());
                }
                let lock = backend.lock()?;
                (Arc::new(backend), lock, false)
            }
            Location::S3(s3) => {
                s3.prepare_local_dir(&local_dir)?;
                let backend = s3.backend(Some(&local_dir))?;
                let lock = backend.lock()?;
                let stale = backend.index_stale() || !local_dir.join(INDEX_DIR).exists();
                (Arc::new(backend), lock, stale)
            }
        };
        let master = match secret {
            Secret::Passphrase(p) => MasterKey::unwrap(&config.key_slots, p)?,
            Secret::Key(k) => k,
        };
        let params = config::open_params(&config, &master)?;
        let codec = Codec::new(master.derive(), params.zstd_level);
        Ok(Unlocked {
            location: location.clone(),
            local_dir,
            index_stale,
            config,
            lock,
            codec,
            params,
            backend,
            observer,
        })
    }

    pub(crate) fn assemble(u: Unlocked, db: Db) -> Result<Vault> {
        let catalog = Catalog::open(&db)?;
        let store = Store::open(u.backend, u.codec, db, u.params.pack_target_bytes)?;
        Ok(Vault {
            dir: u.local_dir,
            location: u.location,
            vault_id: u.config.vault_id,
            params: std::sync::RwLock::new(u.params),
            store,
            catalog,
            commit_lock: std::sync::Mutex::new(()),
            live: std::sync::OnceLock::new(),
            _lock: u.lock,
        })
    }

    /// The vault's local directory: the vault itself, or an S3 vault's cache directory
    /// (index, local lock, control socket, daemon log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The vault's id (32 hex characters), as its config says.
    pub fn vault_id(&self) -> &str {
        &self.vault_id
    }

    pub fn params(&self) -> VaultParams {
        self.params.read().expect("params lock").clone()
    }

    /// Change the soft-delete settings. `days` 0 turns soft delete off (deleted points may be
    /// purged at once); `always_on` is irreversible: afterwards soft delete cannot be turned off
    /// and its period only grows.
    pub fn set_soft_delete(&self, days: Option<u32>, always_on: bool) -> Result<VaultParams> {
        let _commit = self.commit_lock.lock().expect("commit lock");
        let mut p = self.params();
        if let Some(d) = days {
            if d > 180 {
                return Err(VaultError::BadSetting(
                    "--soft-delete-days must be between 1 and 180 (0 turns soft delete off)".into(),
                ));
            }
            if p.soft_delete_always_on && d == 0 {
                return Err(VaultError::BadSetting(
                    "soft delete is always-on for this vault; it cannot be turned off".into(),
                ));
            }
            if p.soft_delete_always_on && d < p.soft_delete_days {
                return Err(VaultError::BadSetting(format!(
                    "soft delete is always-on for this vault; its period can only grow (now {} days)",
                    p.soft_delete_days
                )));
            }
            p.soft_delete_days = d;
        }
        if always_on {
            if p.soft_delete_days == 0 {
                return Err(VaultError::BadSetting(
                    "soft delete is off; give --soft-delete-days N with always-on".into(),
                ));
            }
            p.soft_delete_always_on = true;
        }
        let config = config::read_from(self.store.backend(), &self.location)?;
        config::write(self.store.backend(), self.store.codec(), config, &p)?;
        *self.params.write().expect("params lock") = p.clone();
        Ok(p)
    }

    /// When a point deleted at `deleted_at_ns` may be purged.
    pub fn purge_time(&self, deleted_at_ns: i64) -> i64 {
        deleted_at_ns + self.params().soft_delete_days as i64 * DAY_NS
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn chunker(&self) -> Chunker {
        let p = self.params();
        Chunker::new(ChunkerParams {
            min_bytes: p.chunk_min_bytes,
            avg_bytes: p.chunk_avg_bytes,
            max_bytes: p.chunk_max_bytes,
            seed: self.store.codec().chunker_seed(),
        })
    }

    pub fn items(&self) -> Result<Vec<ItemRecord>> {
        self.catalog.items(self.store.codec())
    }

    pub fn item(&self, name: &str) -> Result<ItemRecord> {
        names::check_item(name)?;
        self.catalog
            .item(self.store.codec(), name)?
            .ok_or_else(|| VaultError::UnknownItem(name.into()))
    }

    /// Points of an item (all items when `None`), oldest first; soft-deleted ones only if asked.
    pub fn points(&self, item: Option<&str>, deleted: bool) -> Result<Vec<PointRecord>> {
        let items = match item {
            Some(name) => vec![self.item(name)?],
            None => self.items()?,
        };
        let mut out = Vec::new();
        for it in items {
            let pts = self.catalog.points_of(self.store.codec(), &it.name)?;
            out.extend(
                pts.into_iter()
                    .filter(|p| p.deleted_at_ns.is_some() == deleted),
            );
        }
        Ok(out)
    }

    /// Resolve `ITEM` (newest live point) or `ITEM/POINT`.
    pub fn resolve(&self, spec: &str) -> Result<PointRecord> {
        let (item, point) = match spec.split_once('/') {
            Some((i, p)) => (i, Some(p)),
            None => (spec, None),
        };
        names::check_item(item)?;
        match point {
            None | Some("latest") => {
                self.item(item)?;
                self.points(Some(item), false)?
                    .pop()
                    .ok_or_else(|| VaultError::NoPoints(item.into()))
            }
            Some(p) => {
                names::check_point(p)?;
                self.item(item)?;
                self.catalog
                    .point(self.store.codec(), item, p)?
                    .ok_or_else(|| VaultError::UnknownPoint {
                        item: item.into(),
                        point: p.into(),
                    })
            }
        }
    }

    /// Record a new point. Its trees and data must already be `put`. Order: every pack with
    /// its data and trees durable, then the pack holding the point (and new item) meta blobs,
    /// then the index, then the catalog, then an index database flush (see `Store::flush`).
    pub fn commit_point(
        &self,
        item: &str,
        created_ns: i64,
        root: format::Node,
        counts: (u64, u64, u64),
        failures_before: u64,
    ) -> Result<PointRecord> {
        self.commit_point_with(item, created_ns, root, counts, None, failures_before)
    }

    /// [`Vault::commit_point`], also recording the item's incoming tree in the same commit
    /// (a snapshot of `incoming/ITEM`).
    pub(crate) fn commit_point_with(
        &self,
        item: &str,
        created_ns: i64,
        root: format::Node,
        counts: (u64, u64, u64),
        incoming: Option<IncomingRecord>,
        failures_before: u64,
    ) -> Result<PointRecord> {
        // One commit at a time: choosing a free name and recording it must not interleave.
        let _commit = self.commit_lock.lock().expect("commit lock");
        let existing = self.catalog.item(self.store.codec(), item)?;
        let item_rec = existing.clone().unwrap_or(ItemRecord {
            name: item.into(),
            created_ns,
            revision: 1,
        });
        let taken: Vec<String> = self
            .catalog
            .points_of(self.store.codec(), item)?
            .into_iter()
            .map(|p| p.name)
            .collect();
        let name = names::point_name(created_ns, &taken);
        let rec = PointRecord {
            item: item.into(),
            name,
            created_ns,
            root,
            files: counts.0,
            dirs: counts.1,
            bytes: counts.2,
            deleted_at_ns: None,
            revision: 1,
        };
        let mut metas = Vec::new();
        if existing.is_none() {
            metas.push(MetaRecord::Item(item_rec));
        }
        metas.push(MetaRecord::Point(Box::new(rec.clone())));
        if let Some(inc) = incoming {
            metas.push(MetaRecord::Incoming(Box::new(inc)));
        }
        self.record(&metas, failures_before)?;
        Ok(rec)
    }

    /// Write records in the order of DESIGN §4: flush (every blob they refer to durable), meta
    /// blobs, flush, failure check, catalog, database flush. The first flush matters since meta
    /// blobs have their own pack: one that fills and is finished by a put below must not be
    /// durable while the data it names still sits in the open data pack (`repair` would bring
    /// back a point without its chunks).
    fn record(&self, metas: &[MetaRecord], failures_before: u64) -> Result<()> {
        self.store.flush()?;
        for m in metas {
            self.store.put(BlobKind::Meta, &format::encode(m))?;
        }
        self.store.flush()?;
        self.check_no_failures(failures_before)?;
        let codec = self.store.codec();
        for m in metas {
            match m {
                MetaRecord::Item(it) => self.catalog.put_item(codec, it)?,
                MetaRecord::Point(p) => self.catalog.put_point(codec, p)?,
                MetaRecord::Incoming(i) => self.catalog.put_incoming(codec, i)?,
                MetaRecord::Policy(p) => self.catalog.put_policy(codec, p)?,
            }
        }
        self.store.db().flush()?;
        Ok(())
    }

    /// Refuse to commit if a pack write failed since `failures_before`: a blob this session
    /// relies on may be lost. The point is not recorded; running the command again is safe.
    fn check_no_failures(&self, failures_before: u64) -> Result<()> {
        if self.store.failures() != failures_before {
            return Err(VaultError::WriteFailed);
        }
        Ok(())
    }

    /// Soft-delete (`deleted = true`) or undelete a point. The new record revision goes to the
    /// packs first, then the catalog, like a new point.
    pub fn set_deleted(&self, item: &str, point: &str, deleted: bool) -> Result<PointRecord> {
        let _commit = self.commit_lock.lock().expect("commit lock");
        let failures_before = self.store.failures();
        let mut rec = self.resolve(&format!("{item}/{point}"))?;
        let names = || (item.to_string(), point.to_string());
        match (deleted, rec.deleted_at_ns.is_some()) {
            (true, true) => {
                let (item, point) = names();
                return Err(VaultError::AlreadyDeleted { item, point });
            }
            (false, false) => {
                let (item, point) = names();
                return Err(VaultError::NotDeleted { item, point });
            }
            _ => {}
        }
        rec.deleted_at_ns = deleted.then(now_ns);
        rec.revision += 1;
        self.record(&[MetaRecord::Point(Box::new(rec.clone()))], failures_before)?;
        Ok(rec)
    }

    /// Load and decode a tree blob.
    pub fn tree(&self, id: &crate::store::BlobId) -> Result<format::Tree> {
        tree::load(&self.store, id)
    }
}
