//! The door's caches the view must keep right: the FUSE door has the kernel's inode, listing and
//! page caches behind it; a view with no door behind it (a test, a WebDAV server) has none, and
//! gets [`NoKernelCache`].

use std::sync::{Arc, OnceLock};

/// What the view asks of the caches behind its door.
pub trait KernelCache: Send + Sync {
    /// Drop what is cached of inode `ino`: its attributes, and with `data` also its content
    /// (the pages of a file, the listing of a directory).
    fn invalidate(&self, ino: u64, data: bool);
    /// Put `data` into the page cache of file `ino`, from offset 0. The door may have forgotten
    /// the inode meanwhile; then nothing is kept.
    fn store(&self, ino: u64, data: &[u8]);
    /// Whether [`KernelCache::store`] keeps anything: without a page cache, the view does not
    /// load files to push them.
    fn keeps_pages(&self) -> bool;
}

/// The caches of a view with no door behind it: nothing to drop or fill.
pub struct NoKernelCache;

impl KernelCache for NoKernelCache {
    fn invalidate(&self, _ino: u64, _data: bool) {}
    fn store(&self, _ino: u64, _data: &[u8]) {}
    fn keeps_pages(&self) -> bool {
        false
    }
}

/// The door's caches, shared by both sides of the view; set once, when the door is up.
#[derive(Clone, Default)]
pub(crate) struct Kernel(Arc<OnceLock<Arc<dyn KernelCache>>>);

impl Kernel {
    pub(crate) fn set(&self, k: Arc<dyn KernelCache>) {
        let _ = self.0.set(k);
    }

    pub(crate) fn get(&self) -> &dyn KernelCache {
        match self.0.get() {
            Some(k) => k.as_ref(),
            None => &NoKernelCache,
        }
    }

    /// The door's caches to hand to a background job.
    pub(crate) fn shared(&self) -> Option<Arc<dyn KernelCache>> {
        self.0.get().cloned()
    }
}
