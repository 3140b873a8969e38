//! Content-defined chunking (FastCDC 2020) over a stream, with a per-vault gear seed.
//!
//! Boundaries depend only on content, so an insertion shifts at most the chunks around it. The
//! buffer is reused across files and holds at most two maximum-size chunks, so memory is bounded
//! for files of any size.

use std::io::{self, Read};

use fastcdc::v2020::{
    AVERAGE_MAX, AVERAGE_MIN, FastCDC, MAXIMUM_MAX, MAXIMUM_MIN, MINIMUM_MAX, MINIMUM_MIN,
    Normalization,
};

/// Chunk size bounds, fixed per vault at `init`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkerParams {
    pub min_bytes: u32,
    pub avg_bytes: u32,
    pub max_bytes: u32,
    pub seed: u64,
}

/// Chunk size bounds FastCDC does not accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid chunk sizes {min}/{avg}/{max}: need even min<avg<max with min in \
     {MINIMUM_MIN}..={MINIMUM_MAX}, avg in {AVERAGE_MIN}..={AVERAGE_MAX}, max in \
     {MAXIMUM_MIN}..={MAXIMUM_MAX}"
)]
pub struct BadChunkSizes {
    pub min: u32,
    pub avg: u32,
    pub max: u32,
}

impl ChunkerParams {
    /// Checks the bounds FastCDC accepts.
    pub fn validate(min: u32, avg: u32, max: u32) -> Result<(), BadChunkSizes> {
        let ok = (MINIMUM_MIN..=MINIMUM_MAX).contains(&(min as usize))
            && (AVERAGE_MIN..=AVERAGE_MAX).contains(&(avg as usize))
            && (MAXIMUM_MIN..=MAXIMUM_MAX).contains(&(max as usize))
            && min < avg
            && avg < max
            && min % 2 == 0
            && avg % 2 == 0
            && max % 2 == 0;
        if ok {
            Ok(())
        } else {
            Err(BadChunkSizes { min, avg, max })
        }
    }
}

/// A reusable chunker; one per worker thread.
pub struct Chunker {
    params: ChunkerParams,
    buf: Vec<u8>,
}

impl Chunker {
    pub fn new(params: ChunkerParams) -> Chunker {
        Chunker {
            params,
            buf: Vec::new(),
        }
    }

    /// Split everything `reader` yields into chunks, calling `emit` with each in order.
    /// Errors from `emit` stop the walk and are returned.
    pub fn split<R: Read, E: From<io::Error>>(
        &mut self,
        mut reader: R,
        mut emit: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let max = self.params.max_bytes as usize;
        let cap = 2 * max;
        let (mut start, mut end, mut eof) = (0usize, 0usize, false);
        loop {
            // Keep at least one maximum chunk ahead of `start` unless the source ended.
            if !eof && end - start < max {
                if start > 0 {
                    self.buf.copy_within(start..end, 0);
                    end -= start;
                    start = 0;
                }
                while end < cap {
                    // Grow on demand: small files never touch the whole 2 × max buffer.
                    if end == self.buf.len() {
                        let len = (self.buf.len() * 2).max(64 << 10).min(cap);
                        self.buf.resize(len, 0);
                    }
                    match reader.read(&mut self.buf[end..]) {
                        Ok(0) => {
                            eof = true;
                            break;
                        }
                        Ok(n) => end += n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            let avail = end - start;
            if avail == 0 {
                return Ok(());
            }
            let window = &self.buf[start..end];
            let len = self.cut(window);
            emit(&window[..len])?;
            start += len;
        }
    }

    /// Length of the next chunk at the start of `data`.
    fn cut(&self, data: &[u8]) -> usize {
        let p = &self.params;
        if data.len() <= p.min_bytes as usize {
            return data.len();
        }
        let cdc = FastCDC::with_level_and_seed(
            data,
            p.min_bytes as usize,
            p.avg_bytes as usize,
            p.max_bytes as usize,
            Normalization::Level1,
            p.seed,
        );
        let (_, cut) = cdc.cut(0, data.len());
        cut.clamp(1, data.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> ChunkerParams {
        ChunkerParams {
            min_bytes: 4096,
            avg_bytes: 16384,
            max_bytes: 65536,
            seed: 7,
        }
    }

    fn pseudo_random(n: usize, mut x: u64) -> Vec<u8> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn chunks(data: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        Chunker::new(params())
            .split::<_, io::Error>(data, |c| {
                out.push(c.to_vec());
                Ok(())
            })
            .unwrap();
        out
    }

    #[test]
    fn chunks_reassemble_and_respect_bounds() {
        let data = pseudo_random(1_000_000, 1);
        let cs = chunks(&data);
        assert_eq!(cs.concat(), data);
        for c in &cs[..cs.len() - 1] {
            assert!(
                c.len() >= 4096 && c.len() <= 65536,
                "chunk of {} bytes",
                c.len()
            );
        }
        assert!(cs.len() > 20 && cs.len() < 250, "{} chunks", cs.len());
    }

    #[test]
    fn insertion_changes_few_chunks() {
        let data = pseudo_random(2_000_000, 2);
        let mut edited = data.clone();
        edited.insert(1_000_000, 0xAB);
        let a: std::collections::HashSet<_> = chunks(&data).into_iter().collect();
        let new = chunks(&edited)
            .into_iter()
            .filter(|c| !a.contains(c))
            .count();
        assert!(new <= 3, "{new} new chunks after a one-byte insert");
    }

    #[test]
    fn smallest_chunk_sizes_work() {
        // The buffer must not grow past 2 × max when max is below the 64 KiB growth step.
        let p = ChunkerParams {
            min_bytes: 64,
            avg_bytes: 256,
            max_bytes: 1024,
            seed: 1,
        };
        let data = pseudo_random(200_000, 4);
        let mut out = Vec::new();
        Chunker::new(p)
            .split::<_, io::Error>(&data[..], |c| {
                out.push(c.len());
                Ok(())
            })
            .unwrap();
        assert_eq!(out.iter().sum::<usize>(), data.len());
        assert!(out.iter().all(|l| *l <= 1024));
    }

    #[test]
    fn empty_and_tiny_inputs() {
        assert!(chunks(&[]).is_empty());
        assert_eq!(chunks(b"abc"), vec![b"abc".to_vec()]);
    }

    #[test]
    fn validate_rejects_bad_bounds() {
        assert!(ChunkerParams::validate(256 * 1024, 1024 * 1024, 4 * 1024 * 1024).is_ok());
        assert!(ChunkerParams::validate(10, 20, 30).is_err());
        assert!(ChunkerParams::validate(4096, 2048, 65536).is_err());
    }
}
