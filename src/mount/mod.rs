//! The mount: a vault as a filesystem. `view` is the tree and its logic, `inodes` the inode
//! numbers and table, `cache` the bounded tree and chunk caches, `errno` the one error → errno
//! mapping, `fuse` the thin fuser adapter, and `daemon` the process that serves it.

pub mod cache;
pub mod daemon;
pub mod errno;
pub mod fuse;
pub mod inodes;
pub mod view;
