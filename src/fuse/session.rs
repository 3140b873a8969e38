//! Mounting a view through FUSE (fuser): the mount options, the session with its worker
//! threads, the kernel's caches handed to the view, and the read-ahead of the mount's device.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use fuser::{
    Config, INodeNo, IoUringConfig, MountOption, Notifier, Session, SessionACL, SessionUnmounter,
};

use super::{FuseFs, MAX_READ_BYTES};
use crate::view::{KernelCache, View};

/// Where FUSE requests come from (`mount --io-uring`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoUringMode {
    /// io_uring when the kernel offers it and takes the rings, else /dev/fuse.
    Auto,
    /// io_uring or no mount.
    On,
    /// /dev/fuse only.
    Off,
}

/// The kernel's switch for FUSE over io_uring, read when a connection starts (INIT).
const ENABLE_URING: &str = "/sys/module/fuse/parameters/enable_uring";

/// Whether the kernel offers FUSE over io_uring to new mounts; if not, why, in words naming
/// the module parameter.
pub fn io_uring_offered() -> Result<(), String> {
    match std::fs::read_to_string(ENABLE_URING) {
        Ok(v) if v.trim() == "Y" => Ok(()),
        Ok(_) => Err(format!(
            "the kernel does not offer FUSE over io_uring: {ENABLE_URING} is N (as root: echo Y > \
             {ENABLE_URING})"
        )),
        Err(_) => Err(format!(
            "the kernel does not offer FUSE over io_uring: no {ENABLE_URING} (Linux 6.14 or \
             later is needed)"
        )),
    }
}

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
    /// Mount `view` at `mountpoint`, served by `threads` workers (over /dev/fuse; over
    /// io_uring, `threads` spread over the CPUs' queues, at least one per CPU); other users may
    /// enter only with `allow_other`. `Auto` falls back to /dev/fuse when the kernel does not
    /// offer io_uring or refuses the rings.
    pub fn mount(
        view: Arc<View>,
        mountpoint: &Path,
        allow_other: bool,
        threads: usize,
        io_uring: IoUringMode,
        read_only: bool,
    ) -> io::Result<FuseSession> {
        let ring = |required| IoUringConfig {
            threads_per_queue: threads.div_ceil(fuser::io_uring_queue_count()).max(1),
            depth: 1,
            required,
        };
        let session = match io_uring {
            IoUringMode::Off => {
                Self::mount_with(view, mountpoint, allow_other, threads, None, read_only)?
            }
            IoUringMode::On => Self::mount_with(
                view,
                mountpoint,
                allow_other,
                threads,
                Some(ring(true)),
                read_only,
            )?,
            IoUringMode::Auto => {
                match Self::mount_with(
                    view.clone(),
                    mountpoint,
                    allow_other,
                    threads,
                    Some(ring(false)),
                    read_only,
                ) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(
                            "FUSE over io_uring failed ({e}); mounting again over /dev/fuse"
                        );
                        Self::mount_with(view, mountpoint, allow_other, threads, None, read_only)?
                    }
                }
            }
        };
        match session.session.io_uring() {
            Some(r) => tracing::info!(
                "FUSE transport: io_uring, {} queues x {} threads x {} entries of {} KiB \
                 (FORGET and INTERRUPT over /dev/fuse)",
                r.queues,
                r.threads_per_queue,
                r.depth,
                r.payload / 1024
            ),
            None => tracing::info!("FUSE transport: /dev/fuse, {threads} threads"),
        }
        Ok(session)
    }

    fn mount_with(
        view: Arc<View>,
        mountpoint: &Path,
        allow_other: bool,
        threads: usize,
        io_uring: Option<IoUringConfig>,
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
        config.io_uring = io_uring;
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
