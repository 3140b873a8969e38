//! vaultfs: an encrypted, deduplicated backup vault that you mount.
//!
//! # Glossary
//! - **vault**: one directory holding packs (the data), an index database (index and catalog, both
//!   rebuildable from the packs), a config file (format version, key slots, sealed parameters) and
//!   a lock file.
//! - **blob**: one sealed object: a data chunk, a tree (one directory listing) or a meta record
//!   (an item or point record). Named by a [`store::BlobId`], a keyed blake3 hash of its plaintext.
//! - **pack**: an append-only file of blobs followed by its sealed header (the list of its blobs).
//! - **item**: a protected source (`web01`); **point**: an immutable snapshot of one item's tree.
//!
//! # Data flow
//! Write: source tree → [`vault::backup`] (walk) → [`store::chunker`] → [`store::codec`]
//! (compress + encrypt) → [`store::pack`] → [`store::index`] → [`vault::catalog`] → database flush.
//! Read: [`vault::catalog`] → [`vault::tree`] → [`store`] (index → pack → decrypt → decompress)
//! → restore or check.
//!
//! Layers, bottom up: [`keys`] (master key and its slots), [`store`] (blobs in packs, indexed),
//! [`vault`] (items, points, trees and the commands' logic), [`view`] (what a mounted vault
//! shows, with no FUSE in it), its doors ([`fuse`], the only module that knows the FUSE
//! library, and [`webdav`], read-only over HTTP), the mount [`daemon`] with its [`control`]
//! socket, and the CLI in `main.rs`/`cmd/`.

pub mod cli;
pub mod control;
pub mod daemon;
pub mod format;
pub mod fuse;
pub mod identity;
pub mod keys;
pub mod metrics;
pub mod report;
pub mod store;
pub mod vault;
pub mod view;
pub mod webdav;
