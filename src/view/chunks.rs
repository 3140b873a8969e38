//! File data through the bounded chunk cache, shared by points (reads, read-ahead, pushes) and
//! incoming (reads of stored files, copying them into staging before a change).

use std::sync::Arc;

use super::cache::WeightedCache;
use super::error::{ViewError, ViewResult};
use crate::format::ChunkRef;
use crate::store::{BlobId, BlobKind};
use crate::vault::Vault;

pub type ChunkCache = WeightedCache<BlobId, Vec<u8>, ViewError>;

/// A chunk through the cache, checked against the length its tree gives.
pub fn load_chunk(cache: &ChunkCache, vault: &Vault, c: ChunkRef) -> ViewResult<Arc<Vec<u8>>> {
    cache.get_or_load(
        &c.id,
        |v| v.capacity(),
        || {
            let data = vault.store().get(BlobKind::Data, &c.id)?;
            if data.len() != c.len as usize {
                return Err(ViewError::Corrupt(format!(
                    "chunk {} has {} bytes, the tree says {}",
                    c.id,
                    data.len(),
                    c.len
                )));
            }
            Ok(data)
        },
    )
}
