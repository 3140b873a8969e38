//! A backend that only reads: a secondary copy opened to browse or restore from. Every write
//! fails with EROFS, so no command (nor the mount) can change the secondary behind
//! `replicate`'s back, and its lock is left to `replicate`.

use std::sync::Arc;

use super::{Backend, Key, Kind, LockGuard, ObjectInfo, ObjectWriter};
use crate::store::{Result, StoreError};

pub struct ReadOnly {
    inner: Arc<dyn Backend>,
    /// What errors name (the secondary's place).
    shown: String,
}

impl ReadOnly {
    pub fn new(inner: Arc<dyn Backend>, shown: String) -> ReadOnly {
        ReadOnly { inner, shown }
    }

    fn refuse(&self) -> StoreError {
        StoreError::io(
            "write to the replica",
            &self.shown,
            std::io::Error::from_raw_os_error(libc::EROFS),
        )
    }
}

impl Backend for ReadOnly {
    fn init(&self) -> Result<()> {
        Err(self.refuse())
    }

    fn lock(&self) -> Result<LockGuard> {
        Err(self.refuse())
    }

    fn clean_leftovers(&self) -> Result<()> {
        Ok(())
    }

    fn create(&self, _key: Key) -> Result<Box<dyn ObjectWriter>> {
        Err(self.refuse())
    }

    fn get(&self, key: Key) -> Result<Vec<u8>> {
        self.inner.get(key)
    }

    fn get_range(&self, key: Key, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.inner.get_range(key, offset, len)
    }

    fn size(&self, key: Key) -> Result<u64> {
        self.inner.size(key)
    }

    fn list(&self, kind: Kind) -> Result<Vec<ObjectInfo>> {
        self.inner.list(kind)
    }

    fn delete(&self, _key: Key) -> Result<bool> {
        Err(self.refuse())
    }

    fn will_need(&self, key: Key, offset: u64, len: u64) {
        self.inner.will_need(key, offset, len)
    }

    fn set_aside(&self, _key: Key) -> Result<bool> {
        Err(self.refuse())
    }
}
