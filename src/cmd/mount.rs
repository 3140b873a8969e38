//! `vaultfs mount`: check everything that can be checked here, then fork the daemon (unless
//! `--foreground`) and return once it reports the mount ready, or its error.
//!
//! The fork happens before any thread exists (the index database and rayon start threads when used), and the
//! daemon takes the vault lock itself, after the fork.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use vaultfs::keys::MasterKey;

use vaultfs::cli::{IoUring, MountArgs};
use vaultfs::control::Handler;
use vaultfs::daemon::process::{self, LOG_FILE, Ready, Started};
use vaultfs::daemon::{self, MountOptions};
use vaultfs::fuse::IoUringMode;
use vaultfs::vault::{Location, Vault};

use super::{Env, Outcome};

pub fn run(a: MountArgs, env: &Env) -> Result<Outcome> {
    if env.is_remote() {
        bail!(
            "{} is already mounted (its daemon answered)",
            a.vault.display()
        );
    }
    let location = match env.location(&a.vault)? {
        Location::Local(dir) => Location::Local(
            dir.canonicalize()
                .with_context(|| format!("vault {}", dir.display()))?,
        ),
        s3 => s3,
    };
    let config = Vault::read_config_at(&location)?;
    // The daemon's log and socket go to the vault's local directory (an S3 vault's cache, a
    // secondary's index directory).
    let replica = env.is_replica().then(|| env.cache_root());
    let vault = match &replica {
        Some(root) => location.replica_dir(&config.vault_id, root),
        None => location.local_dir(&config.vault_id),
    };
    match &location {
        Location::S3(s3) => s3.prepare_local_dir(&vault)?,
        Location::Local(_) => std::fs::create_dir_all(&vault)
            .with_context(|| format!("creating {}", vault.display()))?,
    }
    let mnt = env.path(&a.mountpoint);
    if daemon::is_stale_mount(&mnt) {
        daemon::force_unmount(&mnt, true)
            .with_context(|| format!("clearing the stale mount at {}", mnt.display()))?;
        env.err(format!(
            "vaultfs: cleared a stale mount at {} (its daemon had died)",
            mnt.display()
        ));
    }
    if !mnt.is_dir() {
        bail!("mount point {} is not a directory", mnt.display());
    }
    let mnt = mnt
        .canonicalize()
        .with_context(|| format!("mount point {}", mnt.display()))?;
    if daemon::mounts().iter().any(|(_, p, _)| *p == mnt) {
        bail!("{} is already a mount point", mnt.display());
    }
    let nonempty = std::fs::read_dir(&mnt).is_ok_and(|mut d| d.next().is_some());
    if nonempty && !a.nonempty {
        bail!(
            "mount point {} is not empty: its files would be hidden while mounted (use \
             --nonempty to mount over them)",
            mnt.display()
        );
    }
    if a.io_uring == IoUring::On {
        vaultfs::fuse::io_uring_offered().map_err(|why| anyhow::anyhow!("--io-uring on: {why}"))?;
    }
    let credential = env.unlock_credential(&location)?;
    // The key slot is opened here, before the fork: a wrong key is reported directly, and the
    // daemon never holds Argon2's working memory or the credential.
    let key = Vault::unwrap_key_at(&location, &credential)?;
    drop(credential);
    let opts = MountOptions {
        mountpoint: mnt.clone(),
        allow_other: a.allow_other,
        cache_bytes: a.cache_size.clamp(16 << 20, 64 << 30) as usize,
        threads: a.threads.clamp(1, 64),
        io_uring: match a.io_uring {
            IoUring::Auto => IoUringMode::Auto,
            IoUring::On => IoUringMode::On,
            IoUring::Off => IoUringMode::Off,
        },
        staging: env.path(&a.staging_dir),
        read_only: replica.is_some(),
        cache_root: env.cache_root(),
    };
    if a.foreground {
        return daemon_main(&location, &opts, a.metrics_listen, key, Ready::foreground())
            .map(|_| Outcome::Ok);
    }
    let run = |ready| match daemon_main(&location, &opts, a.metrics_listen, key, ready) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("vaultfs: error: {}", super::one_line(&e));
            1
        }
    };
    let log = vault.join(LOG_FILE);
    match process::fork_daemon(&vault, run).context("starting the mount daemon")? {
        (pid, Started::Ready) => {
            env.out(format!(
                "mounted {} at {} (daemon pid {pid}, log {})",
                location.display(),
                mnt.display(),
                log.display()
            ));
            Ok(Outcome::Ok)
        }
        (_, Started::Died) => bail!(
            "the mount daemon died before mounting; see {}",
            log.display()
        ),
        (_, Started::Refused(msg)) => bail!("{msg}"),
    }
}

fn daemon_main(
    location: &Location,
    opts: &MountOptions,
    metrics: Option<std::net::SocketAddr>,
    key: MasterKey,
    ready: Ready,
) -> Result<()> {
    let opened = if opts.read_only {
        vaultfs::vault::replica::open(location, &opts.cache_root, key)
    } else {
        Vault::open_with_key_at(location, key)
    };
    let vault = match opened {
        Ok(v) => Arc::new(v),
        Err(e) => {
            ready.send(Err(&e));
            return Err(e.into());
        }
    };
    if let Some(addr) = metrics {
        let started = std::net::TcpListener::bind(addr)
            .and_then(|l| vaultfs::metrics::serve(l, vault.clone(), opts.cache_root.clone()));
        if let Err(e) = started {
            let msg = format!("cannot serve metrics on {addr}: {e}");
            ready.send(Err(&msg));
            bail!(msg);
        }
    }
    let shared = vault.clone();
    let handler: Handler = Arc::new(move |req, out| super::serve_remote(shared.clone(), req, out));
    let foreground = ready.is_foreground();
    let mnt = opts.mountpoint.display().to_string();
    let served = daemon::serve(vault, opts, handler, move |r| {
        if foreground && r.is_ok() {
            eprintln!("vaultfs: mounted at {mnt}; Ctrl-C or `vaultfs umount {mnt}` to unmount");
        }
        ready.send(r.map_err(|e| e as &dyn std::fmt::Display))
    });
    // The control socket's threads may still hold the vault: an S3 vault's lock object is
    // released here, as the exit that follows runs no destructor.
    vaultfs::store::backend::s3::lock::release_all();
    served?;
    Ok(())
}
