//! A sealed, bounded log of records in one tree of the index database: what jobs and alerts
//! are kept in (DESIGN §15). Keys are ids (u64 big-endian, so they sort); values are postcard
//! records sealed with the data key, the id bound into the AAD so a value cannot be moved to
//! another id. Appending record N drops record N − `max`.

use std::sync::{Mutex, OnceLock};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::format;
use crate::store::Damaged;
use crate::store::codec::Codec;
use crate::store::index::{Db, Tree};

use super::{Result, VaultError};

pub struct OpLog {
    db: Db,
    tree_name: &'static str,
    aad: &'static [u8],
    what: &'static str,
    max: u64,
    /// Opened at the first write: a vault only read must not gain a tree.
    tree: OnceLock<Tree>,
    /// Serialises id allocation.
    alloc: Mutex<()>,
}

fn key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

impl OpLog {
    pub fn new(
        db: Db,
        tree_name: &'static str,
        aad: &'static [u8],
        what: &'static str,
        max: u64,
    ) -> OpLog {
        OpLog {
            db,
            tree_name,
            aad,
            what,
            max,
            tree: OnceLock::new(),
            alloc: Mutex::new(()),
        }
    }

    fn aad(&self, id: u64) -> Vec<u8> {
        let mut a = self.aad.to_vec();
        a.extend_from_slice(&key(id));
        a
    }

    fn damaged(&self, e: impl std::fmt::Display) -> VaultError {
        VaultError::corrupt(Damaged::Record(self.what), format!("is damaged: {e}"))
    }

    fn tree(&self) -> Result<&Tree> {
        if let Some(t) = self.tree.get() {
            return Ok(t);
        }
        let t = self.db.tree(self.tree_name)?;
        Ok(self.tree.get_or_init(|| t))
    }

    /// Write record `id` (a new version of it, or its first).
    pub fn put<T: Serialize>(&self, codec: &Codec, id: u64, rec: &T) -> Result<()> {
        let v = codec.seal_raw(&format::encode(rec), &self.aad(id))?;
        self.tree()?.insert(key(id), v)?;
        Ok(())
    }

    /// Write `make(id)` under a fresh id and drop the record that falls out of the window.
    pub fn append<T: Serialize>(&self, codec: &Codec, make: impl FnOnce(u64) -> T) -> Result<u64> {
        let _alloc = self.alloc.lock().expect("log id lock");
        let tree = self.tree()?;
        let id = match tree.last()? {
            Some((k, _)) => <[u8; 8]>::try_from(k.as_ref()).map_or(1, u64::from_be_bytes) + 1,
            None => 1,
        };
        self.put(codec, id, &make(id))?;
        if id > self.max {
            tree.remove(key(id - self.max))?;
        }
        Ok(id)
    }

    /// Every record kept, oldest first, with its id.
    pub fn list<T: DeserializeOwned>(&self, codec: &Codec) -> Result<Vec<(u64, T)>> {
        let tree = match self.tree.get() {
            Some(t) => t.clone(),
            None => match self.db.tree_if_exists(self.tree_name)? {
                Some(t) => t,
                None => return Ok(Vec::new()),
            },
        };
        let mut out = Vec::new();
        for kv in tree.iter() {
            let (k, v) = kv?;
            let id = <[u8; 8]>::try_from(k.as_ref())
                .map(u64::from_be_bytes)
                .map_err(|e| self.damaged(e))?;
            let plain = codec
                .open_raw(&v, &self.aad(id))
                .map_err(|e| self.damaged(e))?;
            let rec: T = format::decode(&plain, self.what).map_err(|e| self.damaged(e))?;
            out.push((id, rec));
        }
        Ok(out)
    }
}
