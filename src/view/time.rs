//! Times: the vault keeps ns since the epoch (negative before it), doors want `SystemTime`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn to_time(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

pub fn to_ns(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i64,
        Err(e) => -(e.duration().as_nanos() as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_before_and_after_the_epoch() {
        for ns in [0, 1, -1, 1_700_000_000_123_456_789, -86_400_000_000_001] {
            assert_eq!(to_ns(to_time(ns)), ns);
        }
    }
}
