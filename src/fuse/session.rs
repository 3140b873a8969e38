//! Mounting a view through FUSE (fuser): the mount options, the session with its worker
//! threads, the kernel's caches handed to the view, and the read-ahead of the mount's device.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use fuser::{Config, INodeNo, MountOption, Notifier, Session, SessionACL, SessionUnmounter};

use super::{FuseFs, MAX_READ_BYTES};
use crate::view::{KernelCache, View};

/// A mounted view, not yet serving.
pub struct FuseSession {
    session: Session<FuseFs>,
}

/// Unmounts the session's mount point (from any thread).
pub struct Unmounter(SessionUnmounter);

impl Unmounter {
    pub fn unmount(&mut self) -> io::Result<()> {
        self.0.unmount()
    }
}

/// The kernel's caches behind the FUSE door.
struct KernelNotifier(Notifier);

impl KernelCache for KernelNotifier {
    fn invalidate(&self, ino: u64, data: bool) {
        // A negative offset drops attributes only. ENOENT: the kernel does not hold that
        // inode; nothing to drop.
        let offset = if data { 0 } else { -1 };
        let _ = self.0.inval_inode(INodeNo(ino), offset, 0);
    }

    fn store(&self, ino: u64, data: &[u8]) {
        if let Err(e) = self.0.store(INodeNo(ino), 0, data) {
            tracing::debug!("push of inode {ino:#x}: {e}");
        }
    }

    fn keeps_pages(&self) -> bool {
        true
    }
}

impl FuseSession {
    /// Mount `view` at `mountpoint`, served by `threads` workers; other users may enter only
    /// with `allow_other`.
    pub fn mount(
        view: Arc<View>,
        mountpoint: &Path,
        allow_other: bool,
        threads: usize,
        read_only: bool,
    ) -> io::Result<FuseSession> {
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName(view.vault().dir().display().to_string()),
            MountOption::Subtype("vaultfs".into()),
            MountOption::NoSuid,
            MountOption::NoDev,
            MountOption::NoAtime,
        ];
        if read_only {
            // A secondary copy: the kernel refuses every change before it reaches the view.
            config.mount_options.push(MountOption::RO);
        }
        // Other users may enter only with allow_other, and then their roles decide each request
        // (DESIGN.md §13), not the modes of the files: no default_permissions (the kernel's
        // mode checks would stop an operator at a root-owned incoming/ITEM and a contributor at
        // points/ITEM, and without allow_other they cost a getattr of the parent after every
        // create or rename in incoming).
        if allow_other {
            view.enforce_roles();
        }
        config.acl = if allow_other {
            SessionACL::All
        } else {
            SessionACL::Owner
        };
        config.n_threads = Some(threads.max(1));
        config.clone_fd = true;
        let session = Session::new(FuseFs::new(view.clone()), mountpoint, &config)?;
        view.set_kernel_cache(Arc::new(KernelNotifier(session.notifier())));
        Ok(FuseSession { session })
    }

    pub fn unmounter(&mut self) -> Unmounter {
        Unmounter(self.session.unmount_callable())
    }

    /// Serve requests until the mount goes away. Call [`raise_readahead`] once it
    /// runs.
    pub fn run(self) -> io::Result<()> {
        self.session.run()
    }
}

/// Raise the kernel's read-ahead for the FUSE mount at `mountpoint` (the INIT reply cannot go
/// above 128 KiB). Only once the session serves: the stat of the mount point is a request.
pub fn raise_readahead(mountpoint: &Path) {
    if let Ok(md) = std::fs::metadata(mountpoint) {
        let dev = md.dev();
        let (major, minor) = (libc::major(dev), libc::minor(dev));
        let path = format!("/sys/class/bdi/{major}:{minor}/read_ahead_kb");
        if let Err(e) = std::fs::write(&path, format!("{}", MAX_READ_BYTES / 1024)) {
            tracing::debug!("cannot raise read-ahead via {path}: {e}");
        }
    }
}
