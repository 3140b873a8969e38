//! What the mount shows, as a library: the read-only `points` side and the writable
//! `incoming` side, with the caches and threads they share.

pub mod cache;
pub mod incoming;
pub mod points;
pub mod pool;
