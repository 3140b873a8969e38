//! The vault: items, points and their trees on top of the store, and the logic of each command.
//!
//! `Vault::open` goes config → lock → key → index, in that order, so a bad config, a vault in
//! use or a wrong passphrase is reported before anything in the vault is written.

pub mod advisor;
pub mod alerts;
pub mod audit;
pub mod backup;
pub mod browse;
pub mod catalog;
pub mod check;
pub mod config;
mod create;
pub mod damage;
pub mod diff;
mod error;
pub mod fsmeta;
pub mod gc;
pub mod guard;
pub mod health;
pub mod immutable;
pub mod incoming;
pub mod ingest;
pub mod jobs;
pub mod keyring;
pub mod location;
pub mod lock;
pub mod names;
mod oplog;
pub mod origin;
pub mod policy;
pub mod records;
pub mod repair;
pub mod replica;
pub mod replica_settings;
pub mod replicate;
pub mod report;
pub mod restore;
pub mod roles;
pub mod rollback;
pub mod select;
pub mod stats;
pub mod tree;
pub mod verify;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use create::InitOptions;
pub use error::{NotAVault, Result, VaultError};
pub use location::{Location, Places};

use crate::format::{
    self, ConfigFile, ConfigRecord, FORMAT_VERSION, IncomingRecord, ItemRecord, MetaRecord,
    PointRecord, VaultParams,
};
use crate::keys::{Credential, MasterKey};
use crate::store::backend::local::LocalBackend;
use crate::store::backend::{Backend, LockGuard, Observer};
use crate::store::chunker::{Chunker, ChunkerParams};
use crate::store::codec::Codec;
use crate::store::index::Db;
use crate::store::{BlobKind, Store};
use catalog::Catalog;

pub const INDEX_DIR: &str = "index";

/// What unlocks a vault.
pub(crate) enum Secret<'a> {
    Credential(&'a Credential),
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
    /// Serialises audit log appends (DESIGN §13).
    audit_lock: std::sync::Mutex<()>,
    /// The mount daemon's live incoming trees, when this vault is mounted.
    live: std::sync::OnceLock<std::sync::Weak<dyn incoming::LiveIncoming>>,
    /// The key slots wrap it; key management (`keyring`) needs it. Wiped when dropped.
    master: MasterKey,
    /// The config in use, authenticated by the key, and its bytes (changed under the commit
    /// lock).
    config: std::sync::Mutex<(ConfigFile, Vec<u8>)>,
    /// What opening found and fixed (a config copy healed): commands show these.
    notes: Vec<String>,
    /// The job log and running jobs (`jobs`).
    jobs: jobs::Jobs,
    alerts: alerts::Alerts,
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
    config_bytes: Vec<u8>,
    master: MasterKey,
    notes: Vec<String>,
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
        && let Ok(text) = std::fs::read_to_string(path)
        && let Ok(ns) = text.trim().parse::<i64>()
    {
        return ns;
    }
    jiff::Timestamp::now().as_nanosecond() as i64
}

impl Vault {
    /// Read and version-check a vault's config without any key.
    pub fn read_config(dir: &Path) -> Result<ConfigFile> {
        config::read(dir)
    }

    /// [`Vault::read_config`] of a vault anywhere.
    pub fn read_config_at(location: &Location) -> Result<ConfigFile> {
        Ok(Self::load_config(location, location.backend(None)?.as_ref())?.config)
    }

    fn load_config(location: &Location, backend: &dyn Backend) -> Result<config::Loaded> {
        match location {
            Location::Local(dir) => config::load(dir),
            Location::S3(_) => config::load_from(backend, &location.shown()),
        }
    }

    /// Open a vault with a passphrase: config, lock, key, index.
    pub fn open(dir: &Path, passphrase: &[u8]) -> Result<Vault> {
        Self::open_at(&Location::Local(dir.to_path_buf()), passphrase)
    }

    /// [`Vault::open`] of a vault anywhere.
    pub fn open_at(location: &Location, passphrase: &[u8]) -> Result<Vault> {
        let credential = Credential::Passphrase(zeroize::Zeroizing::new(passphrase.to_vec()));
        Self::open_credential_at(location, &credential)
    }

    /// Open a vault with any kind of key slot.
    pub fn open_credential(dir: &Path, credential: &Credential) -> Result<Vault> {
        Self::open_credential_at(&Location::Local(dir.to_path_buf()), credential)
    }

    /// [`Vault::open_credential`] of a vault anywhere.
    pub fn open_credential_at(location: &Location, credential: &Credential) -> Result<Vault> {
        Self::open_with(location, Secret::Credential(credential), None)
    }

    /// Open with a master key already unwrapped by [`Vault::unwrap_key`] (the mount daemon:
    /// the parent runs the KDF, so the daemon's memory never holds Argon2's 64 MiB).
    pub fn open_with_key(dir: &Path, key: MasterKey) -> Result<Vault> {
        Self::open_with_key_at(&Location::Local(dir.to_path_buf()), key)
    }

    /// [`Vault::open_with_key`] of a vault anywhere.
    pub fn open_with_key_at(location: &Location, key: MasterKey) -> Result<Vault> {
        Self::open_with(location, Secret::Key(key), None)
    }

    /// Open with `observer` seeing every change and durability call to the vault's files and
    /// index (fault injection: `store::backend::fault`).
    #[cfg(feature = "test-hooks")]
    pub fn open_observed(
        dir: &Path,
        passphrase: &[u8],
        observer: Arc<dyn Observer>,
    ) -> Result<Vault> {
        let credential = Credential::Passphrase(zeroize::Zeroizing::new(passphrase.to_vec()));
        let location = Location::Local(dir.to_path_buf());
        Self::open_with(&location, Secret::Credential(&credential), Some(observer))
    }

    fn open_with(
        location: &Location,
        secret: Secret,
        observer: Option<Arc<dyn Observer>>,
    ) -> Result<Vault> {
        #[cfg(feature = "test-hooks")]
        let observer = observer.or_else(crate::store::backend::fault::KillAt::from_env);
        let u = Self::unlock(location, secret, observer)?;
        let vault = if u.index_stale {
            tracing::info!(
                "rebuilding the local index of {} from the bucket (no index here, or another machine wrote since)",
                location.display()
            );
            let (vault, report) = repair::rebuild(u, false, false)?;
            for n in &report.notes {
                tracing::warn!("{n}");
            }
            vault.ok_or(VaultError::Internal("repair built no vault"))?
        } else {
            let db = Db::open(
                &u.local_dir.join(INDEX_DIR),
                &config::vault_id_bytes(&u.config)?,
                u.observer.clone(),
            )?;
            Self::assemble(u, db)?
        };
        let config = vault.config();
        if config.version < FORMAT_VERSION {
            // v1 -> v2 added record kinds, v2 -> v3 changes the config and frames new packs; once a newer
            // record or config may exist, an older vaultfs must refuse the vault instead of
            // misreading it.
            vault.write_config(config)?;
        } else {
            vault.sync_config_generation()?;
        }
        Ok(vault)
    }

    /// Find the key slot `credential` opens and return the master key (the mount command: the
    /// parent unwraps, so the daemon never holds Argon2's memory or the credential).
    pub fn unwrap_key(dir: &Path, credential: &Credential) -> Result<MasterKey> {
        Self::unwrap_key_at(&Location::Local(dir.to_path_buf()), credential)
    }

    /// [`Vault::unwrap_key`] of a vault anywhere.
    pub fn unwrap_key_at(location: &Location, credential: &Credential) -> Result<MasterKey> {
        config::unwrap(&Self::read_config_at(location)?, credential)
    }

    /// The steps of `open` before the index: used by `repair`, which rebuilds the index.
    pub(crate) fn unlock(
        location: &Location,
        secret: Secret,
        observer: Option<Arc<dyn Observer>>,
    ) -> Result<Unlocked> {
        let first = Self::read_config_at(location)?;
        let local_dir = location.local_dir(&first.vault_id);
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
        // Read again under the lock: nothing changes it now.
        let loaded = Self::load_config(location, backend.as_ref())?;
        let config = &loaded.config;
        let master = match secret {
            Secret::Credential(c) => config::unwrap(config, c)?,
            Secret::Key(k) => k,
        };
        let params = config::open_params(config, &master)?;
        let epochs = config::open_data_keys(config, &master)?;
        let codec = Codec::new(master.derive_with(&epochs), params.zstd_level);
        let notes = config::heal(backend.as_ref(), &loaded)?;
        for n in &notes {
            tracing::warn!("{n}");
        }
        Ok(Unlocked {
            location: location.clone(),
            local_dir,
            index_stale,
            config: loaded.config,
            config_bytes: loaded.bytes,
            master,
            notes,
            lock,
            codec,
            params,
            backend,
            observer,
        })
    }

    pub(crate) fn assemble(u: Unlocked, db: Db) -> Result<Vault> {
        let catalog = Catalog::open(&db)?;
        let jobs = jobs::Jobs::new(db.clone());
        let alerts = alerts::Alerts::new(db.clone());
        let store = Store::open(u.backend, u.codec, db, u.params.pack_target_bytes)?;
        Ok(Vault {
            dir: u.local_dir,
            location: u.location,
            vault_id: u.config.vault_id.clone(),
            params: std::sync::RwLock::new(u.params),
            store,
            catalog,
            commit_lock: std::sync::Mutex::new(()),
            audit_lock: std::sync::Mutex::new(()),
            live: std::sync::OnceLock::new(),
            master: u.master,
            config: std::sync::Mutex::new((u.config, u.config_bytes)),
            notes: u.notes,
            jobs,
            alerts,
            _lock: u.lock,
        })
    }

    pub fn jobs(&self) -> &jobs::Jobs {
        &self.jobs
    }

    pub fn alerts(&self) -> &alerts::Alerts {
        &self.alerts
    }

    /// Where the vault is (a directory, or a bucket and prefix).
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The vault's id (32 hex characters), as its config says.
    pub fn vault_id(&self) -> &str {
        &self.vault_id
    }

    /// What opening found and fixed, one line each (a damaged config copy rewritten).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The config in use.
    pub fn config(&self) -> ConfigFile {
        self.config.lock().expect("config lock").0.clone()
    }

    /// The generation of the config in use (it moves with every change: roles, settings, keys).
    pub fn config_generation(&self) -> u64 {
        self.config.lock().expect("config lock").0.generation
    }

    /// Write `config` (with the current parameters) as the next generation, in both copies,
    /// then seal it into the packs and tell the catalog its generation. Called under the
    /// commit lock, or before the vault is shared.
    pub(crate) fn write_config(&self, mut config: ConfigFile) -> Result<()> {
        config.version = FORMAT_VERSION;
        config.generation += 1;
        let bytes = config::config_bytes(self.store.codec(), config, &self.params())?;
        config::write_bytes(self.store.backend(), &bytes)?;
        let written: ConfigFile = serde_json::from_slice(&bytes)
            .map_err(|e| VaultError::corrupt(crate::store::Damaged::Config, e.to_string()))?;
        *self.config.lock().expect("config lock") = (written, bytes);
        self.sync_config_generation()
    }

    /// Compare the config's generation with the one the catalog last saw: older is a rollback
    /// (refused), newer is recorded (sealed into the packs, then the catalog).
    pub(crate) fn sync_config_generation(&self) -> Result<()> {
        let (config, bytes) = self.config.lock().expect("config lock").clone();
        let codec = self.store.codec();
        match self.catalog.config_generation(codec)? {
            Some(known) if known > config.generation => Err(VaultError::ConfigRolledBack {
                found: config.generation,
                known,
            }),
            Some(known) if known == config.generation => Ok(()),
            _ => {
                let rec = ConfigRecord {
                    generation: config.generation,
                    config: bytes,
                };
                self.record(&[MetaRecord::Config(rec)], self.store.failures())
            }
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
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
            if d < p.soft_delete_days {
                self.may_weaken_soft_delete(&format!(
                    "soft-delete days cannot be lowered (now {})",
                    p.soft_delete_days
                ))?;
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
        let old = std::mem::replace(&mut *self.params.write().expect("params lock"), p.clone());
        if let Err(e) = self.write_config(self.config()) {
            *self.params.write().expect("params lock") = old;
            return Err(e);
        }
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

    /// The paths of a point that `repair` found lost, if any.
    pub fn damage(&self, point: &PointRecord) -> Result<Option<format::DamageRecord>> {
        self.catalog
            .damage(self.store.codec(), &point.item, &point.name)
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
        let origin = origin::origin(&[], &[])?;
        self.commit_point_with(
            item,
            created_ns,
            root,
            counts,
            origin,
            None,
            failures_before,
        )
    }

    /// [`Vault::commit_point`], also recording the item's incoming tree in the same commit
    /// (a snapshot of `incoming/ITEM`).
    #[allow(clippy::too_many_arguments)] // each is one fact of the commit, used once
    pub(crate) fn commit_point_with(
        &self,
        item: &str,
        created_ns: i64,
        root: format::Node,
        counts: (u64, u64, u64),
        origin: format::PointOrigin,
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
            origin: Some(origin),
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
                MetaRecord::Config(c) => self.catalog.set_config_generation(codec, c.generation)?,
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
        if deleted {
            self.may_delete(&rec)?;
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
