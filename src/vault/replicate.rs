//! `replicate`: keep a secondary copy of a vault (a directory or a bucket) with the same
//! ciphertext and keys, so it can be mounted and restored from when the primary is gone.
//!
//! What is copied is objects, byte for byte: packs and the config. Nothing is decrypted or
//! re-encrypted, so the secondary opens with the same passphrase and its packs are the
//! primary's. Order, so the secondary is a consistent vault at every moment (a `kill -9`
//! anywhere leaves one; a rerun copies what is still missing):
//! 1. take the secondary's lock; if it is new, make it a vault place (`init`) and put the
//!    config (a secondary holding another vault is refused);
//! 2. copy the packs the secondary lacks (by listing both), packs holding no records first,
//!    then the packs holding records: a point record found on the secondary never names data
//!    it lacks (a record is written only after every pack it names, `Vault::record`);
//! 3. verify each copy by reading it back (blake3 of the bytes against the source's), and
//!    authenticate the source's pack header before copying (damage is not replicated);
//! 4. put the config again if it changed (settings, key slots);
//! 5. only then delete packs the primary no longer has (gc removed them): never a pack the
//!    primary still needs, and never before the packs that replaced them are copied.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::store::backend::{Backend, Key, Kind};
use crate::store::{BlobKind, PackId, StoreError};

use super::location::Location;
use super::{Result, Vault, VaultError, config};

/// Packs copied at once (network-bound; each holds one pack in memory).
const COPY_THREADS: usize = 4;

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ReplicateReport {
    pub packs_copied: u64,
    pub bytes_copied: u64,
    pub packs_present: u64,
    pub packs_removed: u64,
    pub config_written: bool,
}

/// Progress: packs done of packs to copy.
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Sync);

/// Bring the secondary at `target` up to date with `vault`.
pub fn replicate(
    vault: &Vault,
    target: &Location,
    progress: Progress<'_>,
) -> Result<ReplicateReport> {
    if vault.location().same_as(target) {
        return Err(VaultError::BadSetting(
            "the secondary must be another place than the vault itself".into(),
        ));
    }
    let store = vault.store();
    let local_dir = target.local_dir(vault.vault_id());
    if let super::Location::S3(s3) = target {
        s3.prepare_local_dir(&local_dir)?;
    }
    let dest = target_backend(target, &local_dir)?;
    let mut report = ReplicateReport::default();

    // 1. The secondary's lock, its init, its config.
    let source_config = store.backend().get(Key::Config)?;
    let new = match config::read_from(dest.as_ref(), target) {
        Ok(c) if c.vault_id == vault.vault_id() => false,
        Ok(c) => {
            return Err(VaultError::BadSetting(format!(
                "{} holds another vault (id {}), not a copy of this one",
                target.display(),
                c.vault_id
            )));
        }
        Err(VaultError::NotAVault(_, super::NotAVault::NoConfig)) => true,
        Err(VaultError::NotAVault(_, super::NotAVault::Missing)) => true,
        Err(e) => return Err(e),
    };
    if new {
        prepare_new(target, dest.as_ref())?;
    }
    let _lock = dest.lock()?;
    dest.clean_leftovers()?;
    if new {
        put_config(dest.as_ref(), &source_config)?;
        report.config_written = true;
    }

    // 2. What the secondary lacks.
    let present: HashMap<PackId, u64> = list_packs(dest.as_ref())?;
    let source: Vec<(PackId, u64)> = store.list_packs_sized()?;
    let mut missing = Vec::new();
    for (pack, size) in &source {
        match present.get(pack) {
            Some(s) if s == size => report.packs_present += 1,
            // A size that differs is a damaged copy: copied again (the put replaces it).
            _ => missing.push((*pack, *size)),
        }
    }
    let mut first = Vec::new();
    let mut last = Vec::new();
    for (pack, size) in missing {
        let header = store.read_pack_header(&pack)?;
        if header.iter().any(|e| e.kind == BlobKind::Meta) {
            last.push((pack, size));
        } else {
            first.push((pack, size));
        }
    }
    let total = (first.len() + last.len()) as u64;
    let done = AtomicU64::new(0);
    progress(0, total);
    for batch in [first, last] {
        let (copied, bytes) = copy_packs(store.backend(), dest.as_ref(), &batch, &|| {
            progress(done.fetch_add(1, Ordering::Relaxed) + 1, total)
        })?;
        report.packs_copied += copied;
        report.bytes_copied += bytes;
    }

    // 4. The config, if it changed since.
    if !report.config_written && dest.get(Key::Config)? != source_config {
        put_config(dest.as_ref(), &source_config)?;
        report.config_written = true;
    }

    // 5. Packs the primary no longer has.
    let wanted: HashSet<PackId> = source.iter().map(|(p, _)| *p).collect();
    for pack in present.keys().filter(|p| !wanted.contains(p)) {
        if dest.delete(Key::Pack(*pack))? {
            report.packs_removed += 1;
        }
    }
    Ok(report)
}

/// The secondary's backend. A test-hooks build kills itself at a chosen durability call of a
/// local secondary (`VAULTFS_TEST_KILL_AT_DURABLE`, as `Vault::open` does for a vault).
fn target_backend(
    target: &Location,
    local_dir: &std::path::Path,
) -> Result<std::sync::Arc<dyn Backend>> {
    #[cfg(feature = "test-hooks")]
    if let (Location::Local(dir), Some(kill)) =
        (target, crate::store::backend::fault::KillAt::from_env())
    {
        let local = crate::store::backend::local::LocalBackend::new(dir).with_observer(kill);
        return Ok(std::sync::Arc::new(local));
    }
    target.backend(Some(local_dir))
}

/// Make a new secondary's place: a directory with its pack directories, or a bucket prefix
/// with its lock object (refused if the prefix already holds something).
fn prepare_new(target: &Location, dest: &dyn Backend) -> Result<()> {
    match target {
        Location::Local(dir) => {
            if dir.exists() && !dir.is_dir() {
                return Err(VaultError::NotADirectory(dir.clone()));
            }
            let nonempty = dir
                .read_dir()
                .map(|mut d| d.next().is_some())
                .unwrap_or(false);
            // `init` makes the pack directories, then `tmp/`: with `tmp/` there, it finished.
            let started = dir.join(crate::store::backend::local::TMP_DIR).is_dir();
            if nonempty && !started {
                return Err(VaultError::AlreadyExists(dir.clone()));
            }
            std::fs::create_dir_all(dir).map_err(|e| VaultError::io("create", dir, e))?;
            if !started {
                dest.init()?;
            }
        }
        // Makes the lock object unless it is there (an earlier run was killed after it).
        Location::S3(_) => dest.init()?,
    }
    Ok(())
}

/// The config in both of its places (each heals the other).
fn put_config(dest: &dyn Backend, bytes: &[u8]) -> Result<()> {
    dest.put(Key::Config, bytes)?;
    dest.put(Key::ConfigCopy, bytes)?;
    Ok(())
}

fn list_packs(backend: &dyn Backend) -> Result<HashMap<PackId, u64>> {
    Ok(backend
        .list(Kind::Pack)?
        .into_iter()
        .filter_map(|o| match o.key {
            Key::Pack(p) => Some((p, o.size)),
            Key::Config | Key::ConfigCopy | Key::Audit(_) => None,
        })
        .collect())
}

/// Copy packs with a few threads; each copy is verified. Returns (packs, bytes).
fn copy_packs(
    from: &dyn Backend,
    to: &dyn Backend,
    packs: &[(PackId, u64)],
    done: &(dyn Fn() + Sync),
) -> Result<(u64, u64)> {
    let next = AtomicU64::new(0);
    let bytes = AtomicU64::new(0);
    let failed: Mutex<Option<VaultError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..COPY_THREADS.min(packs.len()) {
            s.spawn(|| {
                loop {
                    if failed.lock().expect("failed lock").is_some() {
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some((pack, _)) = packs.get(i) else {
                        return;
                    };
                    match copy_one(from, to, *pack) {
                        Ok(n) => {
                            bytes.fetch_add(n, Ordering::Relaxed);
                            done();
                        }
                        Err(e) => {
                            failed.lock().expect("failed lock").get_or_insert(e);
                            return;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = failed.into_inner().expect("failed lock") {
        return Err(e);
    }
    Ok((packs.len() as u64, bytes.into_inner()))
}

/// Copy one pack and read it back. Returns its size.
fn copy_one(from: &dyn Backend, to: &dyn Backend, pack: PackId) -> Result<u64> {
    let key = Key::Pack(pack);
    let bytes = from.get(key)?;
    let want = blake3::hash(&bytes);
    to.put(key, &bytes)?;
    let back = to.get(key)?;
    if blake3::hash(&back) != want {
        return Err(VaultError::Store(StoreError::corrupt(
            crate::store::Damaged::Object(key),
            "on the secondary differs from the primary's after copying; run replicate again",
        )));
    }
    Ok(bytes.len() as u64)
}
