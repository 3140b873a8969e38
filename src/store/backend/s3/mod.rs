//! A vault in an S3 bucket under a prefix: `PREFIX/config`, `PREFIX/packs/XX/<id>.pack`,
//! `PREFIX/lock`. DESIGN.md §3.7 maps each backend call to S3.
//!
//! An object is buffered in memory and written with one PUT at `commit`: visible all at once
//! on 200, never half there (so there is nothing to clean up after a crash). Packs on S3 are
//! therefore limited to [`MAX_OBJECT_BYTES`]. Reads of packs go through [`cache::BlockCache`]
//! (ranged GETs of 1 MiB blocks, read-ahead, a bounded cache). The vault lock is the lock
//! object of [`lock`], taken after a local lock in the vault's cache directory, so a second
//! process on this machine is refused at once with its pid, and `umount` can wait for it.

pub mod cache;
pub mod client;
pub mod error;
pub mod lock;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

pub use client::{Client, Counts, Endpoint};
pub use error::RemoteError;

use super::local::LocalBackend;
use super::{
    Backend, DAMAGED_PREFIX, Key, Kind, LockGuard, ObjectInfo, ObjectWriter, PACKS_PREFIX,
};
use crate::store::{Damaged, Result, StoreError};
use cache::BlockCache;
use client::Cond;

/// The largest object written (one PUT, buffered in memory): packs of S3 vaults are at most this.
pub const MAX_OBJECT_BYTES: u64 = 256 << 20;
/// The file holding a cache directory's random id.
const CACHE_ID_FILE: &str = "cache-id";
/// Memory for cached blocks of packs.
const CACHE_BYTES: u64 = 32 << 20;

pub struct S3Backend {
    client: Arc<Client>,
    /// The vault's key prefix, empty or ending in `/`.
    prefix: String,
    /// Where the local half of the lock lives (the vault's cache directory).
    local_dir: Option<PathBuf>,
    sizes: Mutex<HashMap<Key, u64>>,
    cache: Arc<BlockCache>,
    /// Set once the lock was taken over: every write is refused from then on.
    lost: Arc<AtomicBool>,
    /// The held lock, checked before each write.
    held: Arc<Mutex<Option<Weak<lock::Shared>>>>,
    /// Set when the lock was taken and its previous holder was another cache directory
    /// (another machine, or a cache made anew): the local index may not know what it wrote.
    index_stale: AtomicBool,
}

impl From<RemoteError> for StoreError {
    fn from(e: RemoteError) -> StoreError {
        StoreError::Remote(e)
    }
}

impl S3Backend {
    pub fn new(endpoint: Endpoint, prefix: &str, local_dir: Option<&Path>) -> Result<S3Backend> {
        let client = Arc::new(Client::new(endpoint)?);
        let prefix = match prefix.trim_matches('/') {
            "" => String::new(),
            p => format!("{p}/"),
        };
        let fetcher = client.clone();
        let fetch_prefix = prefix.clone();
        let fetch = Arc::new(move |key: Key, offset: u64, len: u64| {
            ranged(&fetcher, &fetch_prefix, key, offset, len)
        });
        Ok(S3Backend {
            client,
            prefix,
            local_dir: local_dir.map(Path::to_path_buf),
            sizes: Mutex::new(HashMap::new()),
            cache: BlockCache::new(fetch, CACHE_BYTES),
            lost: Arc::new(AtomicBool::new(false)),
            held: Arc::new(Mutex::new(None)),
            index_stale: AtomicBool::new(false),
        })
    }

    pub fn counts(&self) -> Arc<Counts> {
        self.client.counts.clone()
    }

    fn name(&self, key: Key) -> String {
        format!("{}{}", self.prefix, key.name())
    }

    /// True if nothing is stored under the prefix yet (fails on a missing bucket).
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.client.list_up_to(&self.prefix, 1)?.is_empty())
    }

    fn check_writable(&self) -> Result<()> {
        ensure_held(&self.held, &self.lost)
    }

    /// True if, when the lock was taken, another cache directory had held it last: the
    /// local index must be rebuilt from the bucket (see `Vault::open`).
    pub fn index_stale(&self) -> bool {
        self.index_stale.load(Ordering::SeqCst)
    }

    fn known_size(&self, key: Key) -> Result<u64> {
        if let Some(n) = self.sizes.lock().expect("sizes lock").get(&key) {
            return Ok(*n);
        }
        let a = self.client.head(&self.name(key))?;
        if a.status == 404 {
            return Err(StoreError::Missing(key));
        }
        let size = a.length.ok_or_else(|| RemoteError::BadResponse {
            op: "HEAD",
            object: self.name(key),
            why: "no content-length".into(),
        })?;
        if matches!(key, Key::Pack(_)) {
            self.sizes.lock().expect("sizes lock").insert(key, size);
        }
        Ok(size)
    }
}

/// Refuse a write unless this process still holds the lock (see `lock::Shared::ensure_held`).
fn ensure_held(held: &Mutex<Option<Weak<lock::Shared>>>, lost: &AtomicBool) -> Result<()> {
    if lost.load(Ordering::SeqCst) {
        return Err(StoreError::Remote(RemoteError::LockLost(
            "another writer".into(),
        )));
    }
    let shared = held
        .lock()
        .expect("held lock")
        .as_ref()
        .and_then(Weak::upgrade);
    match shared {
        Some(s) => s.ensure_held(),
        None => Ok(()),
    }
}

/// The random id of a cache directory, made with it.
fn cache_id(dir: &Path) -> Result<String> {
    let path = dir.join(CACHE_ID_FILE);
    if let Ok(id) = std::fs::read_to_string(&path)
        && id.trim().len() == 32
    {
        return Ok(id.trim().to_string());
    }
    let mut raw = [0u8; 16];
    crate::keys::random_bytes(&mut raw)?;
    let id = hex::encode(raw);
    std::fs::write(&path, &id).map_err(|e| StoreError::io("write", &path, e))?;
    Ok(id)
}

/// One ranged GET of exactly `len` bytes.
fn ranged(client: &Client, prefix: &str, key: Key, offset: u64, len: u64) -> Result<Vec<u8>> {
    let name = format!("{prefix}{}", key.name());
    let a = client.get(&name, Some((offset, len)))?;
    match a.status {
        404 => Err(StoreError::Missing(key)),
        416 => Err(truncated(key, offset, len)),
        _ if a.body.len() as u64 != len => Err(truncated(key, offset, len)),
        _ => Ok(a.body),
    }
}

fn truncated(key: Key, offset: u64, len: u64) -> StoreError {
    StoreError::corrupt(
        Damaged::Object(key),
        format!("is truncated (bytes {offset}+{len} lie past the end)"),
    )
}

/// The two halves of an S3 vault's lock, released in reverse order.
struct Held {
    _remote: lock::S3Lock,
    _local: LockGuard,
}

impl Backend for S3Backend {
    fn init(&self) -> Result<()> {
        lock::create(&self.client, &self.prefix)
    }

    fn lock(&self) -> Result<LockGuard> {
        let dir = self.local_dir.as_ref().ok_or_else(|| {
            StoreError::io(
                "lock",
                "the vault's cache directory",
                std::io::Error::from_raw_os_error(libc::EINVAL),
            )
        })?;
        let local = LocalBackend::new(dir).lock()?;
        let id = cache_id(dir)?;
        let (remote, previous) =
            lock::acquire(self.client.clone(), &self.prefix, self.lost.clone(), &id)?;
        self.index_stale
            .store(previous.as_deref() != Some(id.as_str()), Ordering::SeqCst);
        *self.held.lock().expect("held lock") = Some(Arc::downgrade(&remote.shared()));
        Ok(LockGuard(Box::new(Held {
            _remote: remote,
            _local: local,
        })))
    }

    fn clean_leftovers(&self) -> Result<()> {
        // Objects are one PUT each: an interrupted writer leaves nothing behind.
        Ok(())
    }

    fn create(&self, key: Key) -> Result<Box<dyn ObjectWriter>> {
        self.check_writable()?;
        Ok(Box::new(S3Writer {
            client: self.client.clone(),
            name: self.name(key),
            buf: Vec::new(),
            lost: self.lost.clone(),
            held: self.held.clone(),
        }))
    }

    fn get(&self, key: Key) -> Result<Vec<u8>> {
        let a = self.client.get(&self.name(key), None)?;
        if a.status == 404 {
            return Err(StoreError::Missing(key));
        }
        Ok(a.body)
    }

    fn get_range(&self, key: Key, offset: u64, len: u64) -> Result<Vec<u8>> {
        let size = self.known_size(key)?;
        if offset + len > size {
            return Err(truncated(key, offset, len));
        }
        match key {
            Key::Pack(_) => self.cache.read(key, size, offset, len),
            Key::Config | Key::ConfigCopy | Key::Audit(_) => {
                ranged(&self.client, &self.prefix, key, offset, len)
            }
        }
    }

    fn size(&self, key: Key) -> Result<u64> {
        self.known_size(key)
    }

    fn list(&self, kind: Kind) -> Result<Vec<ObjectInfo>> {
        let dir = match kind {
            Kind::Pack => format!("{}{PACKS_PREFIX}/", self.prefix),
        };
        let mut out = Vec::new();
        let mut sizes = self.sizes.lock().expect("sizes lock");
        for o in self.client.list(&dir)? {
            let file = o.name.rsplit('/').next().unwrap_or("");
            let Some(key) = Key::parse(kind, file) else {
                continue;
            };
            sizes.insert(key, o.size);
            out.push(ObjectInfo { key, size: o.size });
        }
        Ok(out)
    }

    fn delete(&self, key: Key) -> Result<bool> {
        self.check_writable()?;
        let name = self.name(key);
        let there = self.client.head(&name)?.ok();
        self.client.delete(&name)?;
        self.sizes.lock().expect("sizes lock").remove(&key);
        self.cache.forget(key);
        Ok(there)
    }

    fn will_need(&self, key: Key, offset: u64, len: u64) {
        if let Ok(size) = self.known_size(key) {
            self.cache.will_need(key, size, offset, len);
        }
    }

    /// A copy under `damaged/`, then the original deleted: S3 has no rename. A crash between
    /// the two leaves both, and the next repair sets the pack aside again.
    fn set_aside(&self, key: Key) -> Result<bool> {
        self.check_writable()?;
        let bytes = match self.get(key) {
            Ok(b) => b,
            Err(StoreError::Missing(_)) => return Ok(false),
            Err(e) => return Err(e),
        };
        let name = key.name();
        let file = name.rsplit('/').next().unwrap_or(&name);
        let to = format!("{}{DAMAGED_PREFIX}/{file}", self.prefix);
        let a = self.client.put(&to, &bytes, Cond::None)?;
        if !a.ok() {
            return Err(self.client.not_found_error("PUT", &to, &a).into());
        }
        self.delete(key)
    }
}

/// An object being written: bytes in memory until `commit` PUTs them.
struct S3Writer {
    client: Arc<Client>,
    name: String,
    buf: Vec<u8>,
    lost: Arc<AtomicBool>,
    held: Arc<Mutex<Option<Weak<lock::Shared>>>>,
}

impl ObjectWriter for S3Writer {
    fn append(&mut self, bytes: &[u8]) -> Result<()> {
        let end = self.buf.len() as u64 + bytes.len() as u64;
        if end > MAX_OBJECT_BYTES {
            return Err(StoreError::TooLarge {
                what: "object on S3",
                bytes: end,
                limit: MAX_OBJECT_BYTES,
            });
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    fn len(&self) -> u64 {
        self.buf.len() as u64
    }

    fn commit(self: Box<Self>) -> Result<()> {
        ensure_held(&self.held, &self.lost)?;
        let a = self.client.put(&self.name, &self.buf, Cond::None)?;
        if !a.ok() {
            return Err(self.client.not_found_error("PUT", &self.name, &a).into());
        }
        Ok(())
    }

    fn abort(self: Box<Self>) {}
}
