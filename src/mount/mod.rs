//! The mount: a vault as a filesystem. `view` is the read-only tree (points, `.deleted`) and
//! dispatches to `incoming`, the writable trees, whose unsealed data waits in `staging` files;
//! `inodes` holds the inode numbers and table, `pool` the read-ahead threads, `cache` the bounded tree and chunk caches, `errno`
//! the one error → errno mapping, `fuse` the thin fuser adapter, and `daemon` the process that
//! serves it.

pub mod cache;
pub mod daemon;
pub mod errno;
pub mod fuse;
pub mod incoming;
pub mod inodes;
pub mod pool;
pub mod scheduler;
pub mod staging;
pub mod view;
