//! The write pipeline shared by `backup` and the mount's incoming files: read a stream, cut it
//! into content-defined chunks, and seal and store batches of chunks in parallel on the
//! caller's rayon pool. Memory per stream: one chunker buffer (2 × max chunk) and one batch.

use std::cell::RefCell;
use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use crate::format::ChunkRef;
use crate::store::chunker::Chunker;
use crate::store::{BlobId, BlobKind};

use super::{Vault, VaultError};

/// Chunks of one stream sealed together in parallel.
const BATCH_BYTES: usize = 8 << 20;

thread_local! {
    static CHUNKER: RefCell<Option<Chunker>> = const { RefCell::new(None) };
}

/// Why a stream could not be stored: its source failed (skip it) or the vault did (abort).
pub enum FileError {
    Source(io::Error),
    Vault(VaultError),
}

impl From<io::Error> for FileError {
    fn from(e: io::Error) -> Self {
        FileError::Source(e)
    }
}

/// Chunk and store everything `reader` yields. Returns the chunk list and the bytes read;
/// `progress` counts bytes as they are stored.
pub fn store_stream(
    vault: &Vault,
    reader: impl Read,
    progress: &AtomicU64,
) -> Result<(Vec<ChunkRef>, u64), FileError> {
    // Take the thread's chunker out: rayon may run another stream on this thread meanwhile.
    let mut chunker = CHUNKER
        .with(|c| c.borrow_mut().take())
        .unwrap_or_else(|| vault.chunker());
    let mut chunks = Vec::new();
    let mut batch: Vec<Vec<u8>> = Vec::new();
    let mut batch_bytes = 0usize;
    let mut total = 0u64;
    let result = chunker.split(reader, |piece: &[u8]| -> Result<(), FileError> {
        total += piece.len() as u64;
        batch_bytes += piece.len();
        batch.push(piece.to_vec());
        if batch_bytes >= BATCH_BYTES {
            store_batch(vault, &mut batch, &mut chunks, progress)?;
            batch_bytes = 0;
        }
        Ok(())
    });
    let result = result.and_then(|_| store_batch(vault, &mut batch, &mut chunks, progress));
    CHUNKER.with(|c| *c.borrow_mut() = Some(chunker));
    result.map(|_| (chunks, total))
}

fn store_batch(
    vault: &Vault,
    batch: &mut Vec<Vec<u8>>,
    chunks: &mut Vec<ChunkRef>,
    progress: &AtomicU64,
) -> Result<(), FileError> {
    let store = vault.store();
    let ids: Vec<BlobId> = if batch.len() == 1 {
        vec![
            store
                .put(BlobKind::Data, &batch[0])
                .map_err(|e| FileError::Vault(e.into()))?,
        ]
    } else {
        batch
            .par_iter()
            .map(|c| store.put(BlobKind::Data, c))
            .collect::<Result<_, _>>()
            .map_err(|e| FileError::Vault(e.into()))?
    };
    let n: usize = batch.iter().map(|c| c.len()).sum();
    progress.fetch_add(n as u64, Ordering::Relaxed);
    chunks.extend(ids.into_iter().zip(batch.iter()).map(|(id, c)| ChunkRef {
        id,
        len: c.len() as u32,
    }));
    batch.clear();
    Ok(())
}
