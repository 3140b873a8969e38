//! vaultfs: requests received, by opcode, and how many came over io_uring. Counting is one
//! relaxed atomic add per request; the counts are exact, so a test can hold a filesystem to
//! the number of round trips a workload costs.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;

use crate::ll::fuse_abi::fuse_opcode;

/// Opcodes below this are counted one by one (all of Linux's are below 64); others together.
const COUNTED_OPCODES: usize = 64;

static BY_OPCODE: [AtomicU64; COUNTED_OPCODES + 1] =
    [const { AtomicU64::new(0) }; COUNTED_OPCODES + 1];
static OVER_RING: AtomicU64 = AtomicU64::new(0);

pub(crate) fn count(opcode: u32) {
    let i = (opcode as usize).min(COUNTED_OPCODES);
    BY_OPCODE[i].fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn count_ring() {
    OVER_RING.fetch_add(1, Ordering::Relaxed);
}

/// Requests received since the process started, by opcode name (`LOOKUP`, `WRITE`, ...), in
/// opcode order, leaving out those never received. Opcodes this copy does not know are
/// counted under `OTHER`.
pub fn request_counts() -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for (i, n) in BY_OPCODE.iter().enumerate() {
        let n = n.load(Ordering::Relaxed);
        if n == 0 {
            continue;
        }
        let name = match fuse_opcode::try_from(i as u32) {
            Ok(op) if i < COUNTED_OPCODES => {
                let name = format!("{op:?}");
                name.strip_prefix("FUSE_").unwrap_or(&name).to_string()
            }
            _ => "OTHER".to_string(),
        };
        out.push((name, n));
    }
    out
}

/// Requests received over FUSE io_uring since the process started (a part of
/// [`request_counts`]).
pub fn ring_request_count() -> u64 {
    OVER_RING.load(Ordering::Relaxed)
}
