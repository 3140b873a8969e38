//! Where a vault's objects live: the seam between the store and a storage system.
//!
//! Everything the store writes except the index database goes through [`Backend`]: packs, the
//! config, the vault's lock. Objects are written whole and become visible all at once
//! ([`ObjectWriter::commit`]); they are never changed afterwards, only deleted. That is what
//! both a local directory (tmp file, fsync, rename, fsync the directory) and an object store
//! (one PUT, or a multipart upload completed at the end) can promise, so the store's callers
//! do not change with the backend. DESIGN.md §3.7 maps each call to S3.
//!
//! The local implementation is [`local::LocalBackend`]. An [`Observer`] sees each change and
//! each durability call it makes; tests use one to cut the power at a chosen call
//! (`fault::PowerCut`).

#[cfg(feature = "test-hooks")]
pub mod fault;
pub mod local;
pub mod readonly;
pub mod s3;

use std::fmt;
use std::io;
use std::path::Path;

use super::{PackId, Result};

/// Names an object. Each kind is a namespace: a directory locally, a key prefix on S3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    Pack(PackId),
    /// The vault's config (format version, key slots, sealed parameters).
    Config,
    /// Its second copy (format v3): either heals the other.
    ConfigCopy,
    /// An audit log record (`audit/<seq as 16 hex digits>`), written once.
    Audit(u64),
}

/// Kinds of objects that can be listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Pack,
}

impl Key {
    /// The object's name relative to the vault's root: its local path, and its S3 key after
    /// the vault's prefix. Packs spread over 256 directories by their first hex digits.
    pub fn name(&self) -> String {
        match self {
            Key::Pack(id) => {
                let hex = id.to_hex();
                format!("{PACKS_PREFIX}/{}/{hex}{PACK_SUFFIX}", &hex[..2])
            }
            Key::Config => CONFIG_NAME.to_string(),
            Key::ConfigCopy => CONFIG_COPY_NAME.to_string(),
            Key::Audit(seq) => format!("{AUDIT_PREFIX}/{seq:016x}"),
        }
    }

    /// The key a listed name stands for, if it names one.
    pub(crate) fn parse(kind: Kind, file_name: &str) -> Option<Key> {
        match kind {
            Kind::Pack => file_name
                .strip_suffix(PACK_SUFFIX)
                .and_then(PackId::from_hex)
                .map(Key::Pack),
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Pack(id) => write!(f, "pack {id}"),
            Key::Config => f.write_str("the vault config"),
            Key::ConfigCopy => f.write_str("the vault config's copy"),
            Key::Audit(seq) => write!(f, "audit record {seq}"),
        }
    }
}

pub const PACKS_PREFIX: &str = "packs";
pub const AUDIT_PREFIX: &str = "audit";
/// Where `set_aside` puts damaged objects, under the vault's root.
pub const DAMAGED_PREFIX: &str = "damaged";
const PACK_SUFFIX: &str = ".pack";
pub const CONFIG_NAME: &str = "config";
pub const CONFIG_COPY_NAME: &str = "config.copy";

/// A listed object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: Key,
    pub size: u64,
}

/// Who holds a vault's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    Pid(i64),
    /// A holder on another machine or known only by its lock object (S3), described.
    Remote(String),
    Unknown,
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Holder::Pid(pid) => write!(f, "pid {pid}"),
            Holder::Remote(who) => f.write_str(who),
            Holder::Unknown => f.write_str("another process"),
        }
    }
}

/// Holds a vault's exclusive lock until dropped.
pub struct LockGuard(#[allow(dead_code)] Box<dyn Send + Sync>);

/// A storage system holding one vault's objects.
pub trait Backend: Send + Sync {
    /// Make what a new vault needs before its first object (local: the directories, durable).
    fn init(&self) -> Result<()>;

    /// Take the vault's exclusive lock (`StoreError::InUse` if another process has it). A
    /// refused lock changes nothing.
    fn lock(&self) -> Result<LockGuard>;

    /// Remove what writers that never committed left behind (a crash). Needs the lock.
    fn clean_leftovers(&self) -> Result<()>;

    /// Start writing `key`; nothing is visible under it until [`ObjectWriter::commit`].
    fn create(&self, key: Key) -> Result<Box<dyn ObjectWriter>>;

    /// Write a whole object atomically: after `Ok` it is there and durable, after a failure
    /// or a crash the old object (or none) is.
    fn put(&self, key: Key, bytes: &[u8]) -> Result<()> {
        let mut w = self.create(key)?;
        w.append(bytes)?;
        w.commit()
    }

    /// A whole object (`StoreError::Missing` if there is none).
    fn get(&self, key: Key) -> Result<Vec<u8>>;

    /// `len` bytes from `offset`; a range past the end is damage (`StoreError::Corrupt`).
    fn get_range(&self, key: Key, offset: u64, len: u64) -> Result<Vec<u8>>;

    /// An object's size in bytes.
    fn size(&self, key: Key) -> Result<u64>;

    /// Every object of a kind, with its size, in no particular order.
    fn list(&self, kind: Kind) -> Result<Vec<ObjectInfo>>;

    /// Remove an object; `Ok(false)` if it was not there.
    fn delete(&self, key: Key) -> Result<bool>;

    /// A hint that `len` bytes of `key` from `offset` will be read soon.
    fn will_need(&self, _key: Key, _offset: u64, _len: u64) {}

    /// Move a damaged object out of the vault's namespace, keeping its bytes for whoever
    /// wants to look at them (`repair`, once everything intact in it is elsewhere). Durable
    /// on return. `Ok(false)` if it was not there.
    fn set_aside(&self, key: Key) -> Result<bool>;
}

/// An object being written. Dropping it without `commit` leaves nothing visible.
pub trait ObjectWriter: Send {
    fn append(&mut self, bytes: &[u8]) -> Result<()>;
    /// Bytes appended so far.
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Make the object durable and visible under its key, all at once.
    fn commit(self: Box<Self>) -> Result<()>;
    /// Throw the object away.
    fn abort(self: Box<Self>);
}

/// What a durability call makes durable.
#[derive(Debug, Clone, Copy)]
pub enum Durable<'a> {
    /// A file's data (fsync of the file).
    Data(&'a Path),
    /// A directory's entries: creates, renames and removals in it (fsync of the directory).
    Entries(&'a Path),
    /// Everything written to the index database so far (its flush).
    Index(&'a Path),
}

impl Durable<'_> {
    pub fn path(&self) -> &Path {
        match self {
            Durable::Data(p) | Durable::Entries(p) | Durable::Index(p) => p,
        }
    }
}

/// A change to local files that is not durable until the matching [`Durable`] call.
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    Create(&'a Path),
    MakeDir(&'a Path),
    Write(&'a Path),
    Rename {
        from: &'a Path,
        to: &'a Path,
    },
    /// Two entries of one directory swap atomically (`renameat2(RENAME_EXCHANGE)`).
    Exchange {
        a: &'a Path,
        b: &'a Path,
    },
    Remove(&'a Path),
    /// A directory and everything in it removed.
    RemoveDir(&'a Path),
}

/// Sees every change and durability call of the local backend and the index, before it is
/// made. An error refuses the call (a simulated power cut); it is returned as an I/O error.
pub trait Observer: Send + Sync {
    fn change(&self, change: Change<'_>) -> io::Result<()>;
    fn before_durable(&self, what: Durable<'_>) -> io::Result<()>;
    /// After the durability call returned.
    fn durable(&self, what: Durable<'_>);
    /// Whether the index may also flush on its own timer (as it does unobserved). An observer
    /// that models what each flush made durable says no.
    fn timed_index_flushes(&self) -> bool {
        true
    }
}
