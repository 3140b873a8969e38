//! Bounded caches of the mount: decoded trees and decompressed chunks, by bytes.
//!
//! Concurrent misses on the same id load it once: the first caller decodes, the others wait
//! for its result (a per-id `OnceLock` while in flight), so read-ahead and a reader never
//! decrypt the same chunk twice.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, OnceLock};

use lru::LruCache;
use parking_lot::Mutex;

/// An LRU bounded by the summed weight of its values (or by its newest value, if that alone is
/// heavier), with in-flight deduplication. A failed load gives every waiter the error `E`.
pub struct WeightedCache<K: Hash + Eq + Clone, V, E> {
    inner: Mutex<Inner<K, V, E>>,
    capacity_bytes: usize,
}

type Slot<V, E> = Arc<OnceLock<Result<Arc<V>, E>>>;

struct Inner<K: Hash + Eq, V, E> {
    lru: LruCache<K, (Arc<V>, usize)>,
    used_bytes: usize,
    in_flight: HashMap<K, Slot<V, E>>,
}

impl<K: Hash + Eq + Clone, V, E: Clone> WeightedCache<K, V, E> {
    pub fn new(capacity_bytes: usize) -> Self {
        WeightedCache {
            inner: Mutex::new(Inner {
                lru: LruCache::unbounded(),
                used_bytes: 0,
                in_flight: HashMap::new(),
            }),
            capacity_bytes,
        }
    }

    /// True if `key` is cached or being loaded.
    pub fn contains(&self, key: &K) -> bool {
        let inner = self.inner.lock();
        inner.lru.contains(key) || inner.in_flight.contains_key(key)
    }

    /// The cached value, or `load()`'s (then cached with `weight(&value)` bytes).
    /// A load error is returned to every waiter and not cached.
    pub fn get_or_load(
        &self,
        key: &K,
        weight: impl Fn(&V) -> usize,
        load: impl FnOnce() -> Result<V, E>,
    ) -> Result<Arc<V>, E> {
        let slot = {
            let mut inner = self.inner.lock();
            if let Some((v, _)) = inner.lru.get(key) {
                return Ok(v.clone());
            }
            inner
                .in_flight
                .entry(key.clone())
                .or_insert_with(|| Arc::new(OnceLock::new()))
                .clone()
        };
        let result = slot.get_or_init(|| load().map(Arc::new)).clone();
        let mut inner = self.inner.lock();
        if inner
            .in_flight
            .get(key)
            .is_some_and(|s| Arc::ptr_eq(s, &slot))
        {
            inner.in_flight.remove(key);
            if let Ok(v) = &result {
                let w = weight(v);
                inner.used_bytes += w;
                if let Some((_, old)) = inner.lru.put(key.clone(), (v.clone(), w)) {
                    inner.used_bytes -= old;
                }
                // The newest value stays even when it alone is over budget (a directory of
                // 100k entries): otherwise every lookup in it would decode it again.
                while inner.used_bytes > self.capacity_bytes && inner.lru.len() > 1 {
                    match inner.lru.pop_lru() {
                        Some((_, (_, w))) => inner.used_bytes -= w,
                        None => break,
                    }
                }
            }
        }
        result
    }

    #[cfg(test)]
    pub fn used_bytes(&self) -> usize {
        self.inner.lock().used_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_by_weight_and_loads_once() {
        let c: WeightedCache<u32, Vec<u8>, String> = WeightedCache::new(100);
        let mut loads = 0;
        for _ in 0..3 {
            c.get_or_load(
                &1,
                |v| v.len(),
                || {
                    loads += 1;
                    Ok(vec![0; 40])
                },
            )
            .unwrap();
        }
        assert_eq!(loads, 1);
        c.get_or_load(&2, |v| v.len(), || Ok(vec![0; 40])).unwrap();
        c.get_or_load(&3, |v| v.len(), || Ok(vec![0; 40])).unwrap();
        assert!(c.used_bytes() <= 100);
        assert!(!c.contains(&1), "least recently used entry is evicted");
        assert!(
            c.get_or_load(&4, |v: &Vec<u8>| v.len(), || Err("bad".into()))
                .is_err()
        );
        assert!(!c.contains(&4), "errors are not cached");
    }

    #[test]
    fn an_oversized_value_stays_until_the_next_one() {
        let c: WeightedCache<u32, Vec<u8>, String> = WeightedCache::new(100);
        c.get_or_load(&1, |v| v.len(), || Ok(vec![0; 40])).unwrap();
        c.get_or_load(&2, |v| v.len(), || Ok(vec![0; 500])).unwrap();
        assert!(c.contains(&2) && !c.contains(&1));
        c.get_or_load(&3, |v| v.len(), || Ok(vec![0; 40])).unwrap();
        assert!(c.contains(&3) && !c.contains(&2));
        assert_eq!(c.used_bytes(), 40);
    }

    #[test]
    fn concurrent_misses_share_one_load() {
        let c = Arc::new(WeightedCache::<u32, u32, String>::new(1000));
        let count = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (c, count) = (c.clone(), count.clone());
                std::thread::spawn(move || {
                    c.get_or_load(
                        &7,
                        |_| 4,
                        || {
                            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            std::thread::sleep(std::time::Duration::from_millis(50));
                            Ok(42)
                        },
                    )
                    .unwrap()
                })
            })
            .collect();
        for t in threads {
            assert_eq!(*t.join().unwrap(), 42);
        }
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
