//! The mount daemon's life: mount, serve FUSE requests on a pool of threads and control
//! requests on the socket, and unmount cleanly on SIGTERM/SIGINT/SIGHUP, `vaultfs umount`, or an
//! external `umount`.
//!
//! Threads: `n_threads` FUSE workers (fuser, each with its own cloned /dev/fuse fd), a pool of
//! read-ahead threads, rayon's pool for commands run through the socket, one thread per control
//! connection, one signal thread, and the main thread, which only waits for a reason to stop.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;

use fuser::{Config, MountOption, Session, SessionACL};

use crate::fuse::{FuseFs, MAX_READ_BYTES};
use crate::view::points::VaultFs;

mod scheduler;
use crate::control::{self, Handler, Request, Responder, Response};
use crate::vault::{Vault, VaultError};

#[derive(Debug, Clone)]
pub struct MountOptions {
    pub mountpoint: PathBuf,
    pub allow_other: bool,
    pub cache_bytes: usize,
    pub threads: usize,
    /// Where staging directories for data written into `incoming/` go.
    pub staging: PathBuf,
}

enum Stop {
    Signal(i32),
    /// Carries a channel on which the daemon, once unmounted, sends an acknowledgement channel:
    /// the requester answers its client and then acknowledges, so the process does not exit
    /// before the client has its answer.
    Unmount(mpsc::Sender<mpsc::Sender<()>>),
    SessionEnded,
}

/// True if `path` is a mount point whose FUSE daemon is gone.
pub fn is_stale_mount(path: &Path) -> bool {
    // statfs always reaches the filesystem; stat may be answered from the kernel's cache.
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: statvfs writes into a zeroed struct we own; the path is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    r != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOTCONN)
}

/// Mount points listed in /proc/self/mounts: (source, mount point, fstype).
pub fn mounts() -> Vec<(String, PathBuf, String)> {
    let text = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            let (src, dst, ty) = (f.next()?, f.next()?, f.next()?);
            Some((unescape(src), PathBuf::from(unescape(dst)), ty.to_string()))
        })
        .collect()
}

/// The vault directory mounted on `path`, if `path` is a vaultfs mount point.
pub fn vault_of_mount(path: &Path) -> Option<PathBuf> {
    let mnt = path.canonicalize().ok()?;
    mounts()
        .into_iter()
        .find(|(src, p, ty)| {
            *p == mnt && ty.starts_with("fuse") && Path::new(src).join("config").is_file()
        })
        .map(|(src, _, _)| PathBuf::from(src))
}

/// /proc/mounts escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() + 1 && b[i + 1..].len() >= 3 {
            if let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("x"), 8)
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Detach a mount point (used for stale mounts and as the fallback of `umount`).
pub fn force_unmount(path: &Path, lazy: bool) -> std::io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let flags = if lazy { libc::MNT_DETACH } else { 0 };
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), flags) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Raise the kernel's read-ahead for this FUSE mount (the INIT reply cannot go above 128 KiB).
fn raise_readahead(mountpoint: &Path) {
    if let Ok(md) = std::fs::metadata(mountpoint) {
        let dev = md.dev();
        let (major, minor) = (libc::major(dev), libc::minor(dev));
        let path = format!("/sys/class/bdi/{major}:{minor}/read_ahead_kb");
        if let Err(e) = std::fs::write(&path, format!("{}", MAX_READ_BYTES / 1024)) {
            tracing::debug!("cannot raise read-ahead via {path}: {e}");
        }
    }
}

/// Mount `vault` and serve until told to stop. `ready` is called once: with `Ok` when the
/// mount is usable, or with the error that prevented it. Commands arriving on the control
/// socket go to `commands`.
pub fn serve(
    vault: Arc<Vault>,
    opts: &MountOptions,
    commands: Handler,
    ready: impl FnOnce(Result<(), String>),
) -> Result<(), VaultError> {
    let (tx, rx) = mpsc::channel::<Stop>();
    let mountpoint = opts.mountpoint.clone();

    let fs = match VaultFs::new(vault.clone(), opts.cache_bytes, &opts.staging) {
        Ok(fs) => Arc::new(fs),
        Err(e) => {
            ready(Err(e.to_string()));
            return Err(e);
        }
    };
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName(vault.dir().display().to_string()),
        MountOption::Subtype("vaultfs".into()),
        MountOption::NoSuid,
        MountOption::NoDev,
        MountOption::NoAtime,
    ];
    // The kernel checks modes only when other users may enter: without allow_other the owner
    // alone can, and checking would cost a getattr of the parent after every create or
    // rename in incoming (two of rsync's ~14 requests per file).
    if opts.allow_other {
        config.mount_options.push(MountOption::DefaultPermissions);
    }
    config.acl = if opts.allow_other {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    config.n_threads = Some(opts.threads.max(1));
    config.clone_fd = true;
    let mut session = match Session::new(FuseFs::new(fs.clone()), &mountpoint, &config) {
        Ok(s) => s,
        Err(e) => {
            let msg = format!("cannot mount {}: {e}", mountpoint.display());
            ready(Err(msg.clone()));
            return Err(VaultError::Failed(msg));
        }
    };
    let mut unmounter = session.unmount_callable();
    fs.incoming().set_notifier(session.notifier());
    fs.set_notifier(session.notifier());
    {
        // Told at once, and again a moment later: a listing being answered when the change
        // landed reaches the kernel's cache after the first word. Weak: the vault must not
        // keep the file system alive.
        let (again_tx, again_rx) = mpsc::channel::<String>();
        let later = Arc::downgrade(&fs);
        std::thread::Builder::new()
            .name("listings".into())
            .spawn(move || {
                while let Ok(item) = again_rx.recv() {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    let mut items = vec![item];
                    items.extend(again_rx.try_iter());
                    items.sort();
                    items.dedup();
                    let Some(fs) = later.upgrade() else { return };
                    for item in &items {
                        fs.catalog_changed(item);
                    }
                }
            })
            .map_err(|e| VaultError::Failed(format!("cannot start the listings thread: {e}")))?;
        let now = Arc::downgrade(&fs);
        let again_tx = std::sync::Mutex::new(again_tx);
        vault.on_catalog_change(move |item| {
            if let Some(fs) = now.upgrade() {
                fs.catalog_changed(item);
            }
            let _ = again_tx.lock().expect("listings tx").send(item.to_string());
        });
    }

    let control_tx = std::sync::Mutex::new(tx.clone());
    // Commands running through the socket (a backup, say) finish before the daemon exits.
    let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let running_in_handler = running.clone();
    let mount_shown = mountpoint.display().to_string();
    let handler: Handler = Arc::new(move |req: Request, out: &mut Responder| match req {
        Request::Unmount => {
            let (done_tx, done_rx) = mpsc::channel::<mpsc::Sender<()>>();
            let sent = control_tx
                .lock()
                .expect("control tx")
                .send(Stop::Unmount(done_tx));
            let ack = if sent.is_ok() {
                done_rx.recv().ok()
            } else {
                None
            };
            out.send(&Response::Exit(0));
            if let Some(ack) = ack {
                let _ = ack.send(());
            }
        }
        Request::Status => {
            out.out(format!("mounted at {mount_shown}"));
            out.send(&Response::Exit(0));
        }
        cmd @ Request::Command { .. } => {
            running_in_handler.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            commands(cmd, out);
            running_in_handler.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    if let Err(e) = control::serve(vault.dir(), handler) {
        let _ = unmounter.unmount();
        let msg = format!("cannot start the control socket: {e}");
        ready(Err(msg.clone()));
        return Err(VaultError::Failed(msg));
    }

    let session_tx = tx.clone();
    let worker = std::thread::Builder::new()
        .name("fuse-session".into())
        .spawn(move || {
            if let Err(e) = session.run() {
                tracing::error!("FUSE session ended with an error: {e}");
            }
            let _ = session_tx.send(Stop::SessionEnded);
        })
        .map_err(|e| VaultError::Failed(format!("cannot start the FUSE session: {e}")))?;

    let mut signals =
        signal_hook::iterator::Signals::new([libc::SIGTERM, libc::SIGINT, libc::SIGHUP])
            .map_err(|e| VaultError::Failed(format!("cannot install signal handlers: {e}")))?;
    let signal_handle = signals.handle();
    let signal_tx = tx.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                let _ = signal_tx.send(Stop::Signal(sig));
            }
        })
        .map_err(|e| VaultError::Failed(format!("cannot start the signal thread: {e}")))?;
    drop(tx);

    let sched_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let scheduler = {
        let (v, stop) = (vault.clone(), sched_stop.clone());
        std::thread::Builder::new()
            .name("scheduler".into())
            .spawn(move || scheduler::run(v, stop))
            .map_err(|e| VaultError::Failed(format!("cannot start the scheduler: {e}")))?
    };

    // Only now: stat on the mount point is a FUSE request, answered by the session thread.
    raise_readahead(&mountpoint);
    tracing::info!(
        "mounted {} at {}",
        vault.dir().display(),
        mountpoint.display()
    );
    ready(Ok(()));

    let mut waiters = Vec::new();
    match rx.recv() {
        Ok(Stop::Signal(sig)) => tracing::info!("signal {sig}: unmounting"),
        Ok(Stop::Unmount(done)) => {
            tracing::info!("unmount requested");
            waiters.push(done);
        }
        Ok(Stop::SessionEnded) | Err(_) => tracing::info!("the mount went away"),
    }
    if let Err(e) = unmounter.unmount() {
        tracing::warn!("unmount {}: {e}; detaching", mountpoint.display());
        let _ = force_unmount(&mountpoint, true);
    }
    let _ = worker.join();
    signal_handle.close();
    sched_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = scheduler.join();
    let mut waited = false;
    while running.load(std::sync::atomic::Ordering::SeqCst) > 0 {
        if !waited {
            tracing::info!("waiting for commands still running through the control socket");
            waited = true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Files still waiting in staging are stored and the incoming trees saved.
    let saved = fs.incoming().shutdown();
    if let Err(e) = &saved {
        tracing::error!("saving incoming at unmount failed: {e}");
    }
    let flushed = vault.store().flush().map_err(VaultError::from).and(saved);
    let _ = std::fs::remove_file(control::socket_path(vault.dir()));
    tracing::info!("unmounted {}", mountpoint.display());
    for w in waiters {
        let (ack_tx, ack_rx) = mpsc::channel();
        if w.send(ack_tx).is_ok() {
            let _ = ack_rx.recv_timeout(std::time::Duration::from_secs(5));
        }
    }
    flushed
}
