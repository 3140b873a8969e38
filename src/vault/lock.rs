//! Who holds a vault: the lock itself is the backend's (`Backend::lock`, taken by
//! `Vault::open` before the key is unwrapped or the index opened). `umount` waits on this.

use std::path::Path;

pub use crate::store::backend::local::LOCK_FILE;

/// The pid holding the lock of the vault at `vault_dir`, if any (without taking it).
pub fn holder(vault_dir: &Path) -> Option<i64> {
    crate::store::backend::local::holder(vault_dir)
}
