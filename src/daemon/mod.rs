//! The mount daemon's life: open the view, mount it through the FUSE door, serve FUSE requests
//! on a pool of threads and control requests on the socket, run the scheduler, and unmount
//! cleanly on SIGTERM/SIGINT/SIGHUP, `vaultfs umount`, or an external `umount`.
//!
//! Threads: `n_threads` FUSE workers (each with its own cloned /dev/fuse fd), a pool of
//! read-ahead threads, rayon's pool for commands run through the socket, one thread per control
//! connection, one signal thread, the scheduler, and the main thread, which only waits for a
//! reason to stop.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use crate::control::{self, Handler, Request, Responder, Response};
use crate::fuse::{FuseSession, IoUringMode, raise_readahead};
use crate::vault::{Vault, VaultError};
use crate::view::{View, ViewError};

pub mod mounts;
pub mod process;
mod scheduler;

pub use mounts::{force_unmount, is_stale_mount, mounts, vault_of_mount, vaultfs_devices};
pub use process::Holder;

#[derive(Debug, Clone)]
pub struct MountOptions {
    pub mountpoint: PathBuf,
    pub allow_other: bool,
    pub cache_bytes: usize,
    pub threads: usize,
    /// Whether FUSE requests come over io_uring.
    pub io_uring: IoUringMode,
    /// Where staging directories for data written into `incoming/` go.
    pub staging: PathBuf,
    /// A secondary copy: mounted read-only, and the scheduler does nothing.
    pub read_only: bool,
    /// Root of the cache directories (scheduled replication to an S3 secondary locks there).
    pub cache_root: PathBuf,
}

/// Why the daemon could not mount, or did not stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    View(#[from] ViewError),
    #[error("cannot mount {}: {source}", path.display())]
    Mount {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start {what}: {source}")]
    Start {
        what: &'static str,
        source: std::io::Error,
    },
}

fn start(what: &'static str) -> impl FnOnce(std::io::Error) -> DaemonError {
    move |source| DaemonError::Start { what, source }
}

enum Stop {
    Signal(i32),
    /// Carries a channel on which the daemon, once unmounted, sends an acknowledgement channel:
    /// the requester answers its client and then acknowledges, so the process does not exit
    /// before the client has its answer.
    Unmount(mpsc::Sender<mpsc::Sender<()>>),
    SessionEnded,
}

/// Mount `vault` and serve until told to stop. `ready` is called once: with `Ok` when the
/// mount is usable, or with the error that prevented it. Commands arriving on the control
/// socket go to `commands`.
pub fn serve(
    vault: Arc<Vault>,
    opts: &MountOptions,
    commands: Handler,
    ready: impl FnOnce(Result<(), &DaemonError>),
) -> Result<(), DaemonError> {
    let mut ready = Some(ready);
    let mut report = |r: Result<(), &DaemonError>| {
        if let Some(ready) = ready.take() {
            ready(r);
        }
    };
    let started = mount(&vault, opts);
    let (view, mut session) = match started {
        Ok(x) => x,
        Err(e) => {
            report(Err(&e));
            return Err(e);
        }
    };
    let mountpoint = opts.mountpoint.clone();
    let mut unmounter = session.unmounter();
    let running = Arc::new(AtomicUsize::new(0));
    let ticks = Arc::new(AtomicU64::new(0));
    let (tx, rx) = mpsc::channel::<Stop>();
    let started = (|| -> Result<_, DaemonError> {
        notify_catalog_changes(&vault, &view)?;
        let status = Status {
            mountpoint: mountpoint.display().to_string(),
            ticks: ticks.clone(),
        };
        let handler = control_handler(tx.clone(), running.clone(), status, commands);
        let open = !vault.roles().is_empty();
        control::serve(vault.dir(), handler, open).map_err(start("the control socket"))?;
        let session_tx = tx.clone();
        let worker = std::thread::Builder::new()
            .name("fuse-session".into())
            .spawn(move || {
                if let Err(e) = session.run() {
                    tracing::error!("FUSE session ended with an error: {e}");
                }
                let _ = session_tx.send(Stop::SessionEnded);
            })
            .map_err(start("the FUSE session"))?;
        Ok(worker)
    })();
    let worker = match started {
        Ok(w) => w,
        Err(e) => {
            let _ = unmounter.unmount();
            report(Err(&e));
            return Err(e);
        }
    };
    let mut signals =
        signal_hook::iterator::Signals::new([libc::SIGTERM, libc::SIGINT, libc::SIGHUP])
            .map_err(start("signal handlers"))?;
    let signal_handle = signals.handle();
    let signal_tx = tx.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                let _ = signal_tx.send(Stop::Signal(sig));
            }
        })
        .map_err(start("the signal thread"))?;
    drop(tx);
    let sched_stop = Arc::new(AtomicBool::new(false));
    let scheduler = {
        let (v, stop) = (vault.clone(), sched_stop.clone());
        let work = (!opts.read_only).then(|| opts.cache_root.clone());
        std::thread::Builder::new()
            .name("scheduler".into())
            .spawn(move || scheduler::run(v, stop, ticks, work))
            .map_err(start("the scheduler"))?
    };

    // Only now: stat on the mount point is a FUSE request, answered by the session thread.
    raise_readahead(&mountpoint);
    tracing::info!(
        "mounted {} at {}",
        vault.dir().display(),
        mountpoint.display()
    );
    report(Ok(()));

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
    tracing::debug!(
        "FUSE requests served: {} ({} over io_uring)",
        crate::fuse::requests_line(),
        fuser::ring_request_count()
    );
    signal_handle.close();
    sched_stop.store(true, Ordering::Relaxed);
    scheduler.thread().unpark();
    let _ = scheduler.join();
    let mut waited = false;
    while running.load(Ordering::SeqCst) > 0 {
        if !waited {
            tracing::info!("waiting for commands still running through the control socket");
            waited = true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Files still waiting in staging are stored and the incoming trees saved.
    let saved = view.shutdown();
    if let Err(e) = &saved {
        tracing::error!("saving incoming at unmount failed: {}", e.for_log());
    }
    let flushed = vault
        .store()
        .flush()
        .map_err(|e| DaemonError::Vault(e.into()))
        .and(saved.map_err(DaemonError::from));
    let _ = std::fs::remove_file(control::socket_path(vault.dir()));
    tracing::info!("unmounted {}", mountpoint.display());
    for w in waiters {
        let (ack_tx, ack_rx) = mpsc::channel();
        if w.send(ack_tx).is_ok() {
            let _ = ack_rx.recv_timeout(Duration::from_secs(5));
        }
    }
    flushed
}

/// The view of `vault`, mounted through the FUSE door (not serving yet).
fn mount(vault: &Arc<Vault>, opts: &MountOptions) -> Result<(Arc<View>, FuseSession), DaemonError> {
    let view = Arc::new(View::new(vault.clone(), opts.cache_bytes, &opts.staging)?);
    let session = FuseSession::mount(
        view.clone(),
        &opts.mountpoint,
        opts.allow_other,
        opts.threads,
        opts.io_uring,
        opts.read_only,
    )
    .map_err(|source| DaemonError::Mount {
        path: opts.mountpoint.clone(),
        source,
    })?;
    Ok((view, session))
}

/// Every change to an item or point record (whichever thread makes it) drops the listings the
/// kernel keeps of items and points: at once, and again a moment later, since a listing being
/// answered when the change landed reaches the kernel's cache after the first word. Weak: the
/// vault must not keep the view alive.
fn notify_catalog_changes(vault: &Vault, view: &Arc<View>) -> Result<(), DaemonError> {
    let (again_tx, again_rx) = mpsc::channel::<String>();
    let later = Arc::downgrade(view);
    std::thread::Builder::new()
        .name("listings".into())
        .spawn(move || {
            while let Ok(item) = again_rx.recv() {
                std::thread::sleep(Duration::from_millis(100));
                let mut items = vec![item];
                items.extend(again_rx.try_iter());
                items.sort();
                items.dedup();
                let Some(view) = later.upgrade() else { return };
                for item in &items {
                    view.catalog_changed(item);
                }
            }
        })
        .map_err(start("the listings thread"))?;
    let now = Arc::downgrade(view);
    let again_tx = parking_lot::Mutex::new(again_tx);
    vault.on_catalog_change(move |item| {
        if let Some(view) = now.upgrade() {
            view.catalog_changed(item);
        }
        let _ = again_tx.lock().send(item.to_string());
    });
    Ok(())
}

/// What a status request shows.
struct Status {
    mountpoint: String,
    /// Scheduler ticks done.
    ticks: Arc<AtomicU64>,
}

/// What the control socket does: unmount, show the status, or run a command (counted in
/// `running`: the daemon lets those finish before it exits).
fn control_handler(
    stop: mpsc::Sender<Stop>,
    running: Arc<AtomicUsize>,
    status: Status,
    commands: Handler,
) -> Handler {
    let stop = parking_lot::Mutex::new(stop);
    Arc::new(move |req: Request, out: &mut Responder| match req {
        Request::Unmount => {
            let (done_tx, done_rx) = mpsc::channel::<mpsc::Sender<()>>();
            let sent = stop.lock().send(Stop::Unmount(done_tx));
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
            out.out(format!("mounted at {}", status.mountpoint));
            out.out(format!(
                "scheduler ticks: {}",
                status.ticks.load(Ordering::Relaxed)
            ));
            out.out(format!("fuse requests: {}", crate::fuse::requests_line()));
            out.out(format!(
                "fuse requests over io_uring: {}",
                fuser::ring_request_count()
            ));
            out.send(&Response::Exit(0));
        }
        cmd @ Request::Command { .. } => {
            running.fetch_add(1, Ordering::SeqCst);
            commands(cmd, out);
            running.fetch_sub(1, Ordering::SeqCst);
        }
    })
}
