//! `vaultfs mount`: check everything that can be checked here, then fork the daemon (unless
//! `--foreground`) and return once it reports the mount ready, or its error.
//!
//! The fork happens before any thread exists (sled and rayon start threads when used), and the
//! daemon takes the vault lock itself, after the fork.

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use vaultfs::keys::MasterKey;

use vaultfs::cli::MountArgs;
use vaultfs::control::Handler;
use vaultfs::mount::daemon::{self, MountOptions};
use vaultfs::vault::Vault;

use super::{Env, Outcome};

pub const LOG_FILE: &str = "daemon.log";

pub fn run(a: MountArgs, env: &Env) -> Result<Outcome> {
    if env.is_remote() {
        bail!(
            "{} is already mounted (its daemon answered)",
            a.vault.display()
        );
    }
    let vault = env.path(&a.vault);
    Vault::read_config(&vault)?;
    let vault = vault
        .canonicalize()
        .with_context(|| format!("vault {}", vault.display()))?;
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
    let credential = env.credential(&vault)?;
    // The key slot is opened here, before the fork: a wrong key is reported directly, and the
    // daemon never holds Argon2's working memory or the credential.
    let key = Vault::unwrap_key(&vault, &credential)?;
    drop(credential);
    let opts = MountOptions {
        mountpoint: mnt.clone(),
        allow_other: a.allow_other,
        cache_bytes: a.cache_size.clamp(16 << 20, 64 << 30) as usize,
        threads: a.threads.clamp(1, 64),
        staging: env.path(&a.staging_dir),
    };
    if a.foreground {
        return daemon_main(&vault, &opts, key, None).map(|_| Outcome::Ok);
    }
    let mut fds = [0i32; 2];
    // SAFETY: pipe writes two fds into the array.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        bail!("pipe: {}", std::io::Error::last_os_error());
    }
    // SAFETY: the fds are fresh and owned by nobody else.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: no other thread exists yet in this process (see the module doc).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        bail!("fork: {}", std::io::Error::last_os_error());
    }
    if pid == 0 {
        drop(read_end);
        let code = match become_daemon(&vault) {
            Ok(()) => match daemon_main(&vault, &opts, key, Some(write_end)) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("vaultfs: error: {}", super::one_line(&e));
                    1
                }
            },
            Err(e) => {
                report(
                    Some(write_end),
                    Err(format!("cannot start the daemon: {e}")),
                );
                1
            }
        };
        std::process::exit(code);
    }
    drop(write_end);
    let mut msg = String::new();
    let _ = std::fs::File::from(read_end).read_to_string(&mut msg);
    match msg.strip_prefix("ok") {
        Some(_) => {
            env.out(format!(
                "mounted {} at {} (daemon pid {pid}, log {})",
                vault.display(),
                mnt.display(),
                vault.join(LOG_FILE).display()
            ));
            Ok(Outcome::Ok)
        }
        None if msg.is_empty() => bail!(
            "the mount daemon died before mounting; see {}",
            vault.join(LOG_FILE).display()
        ),
        None => bail!("{}", msg.trim_start_matches("err ").trim()),
    }
}

/// Detach from the terminal: new session, stdin from /dev/null, stdout and stderr to the log.
fn become_daemon(vault: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: plain syscalls on fds we own.
    unsafe {
        libc::setsid();
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(vault.join(LOG_FILE))?;
    let null = std::fs::File::open("/dev/null")?;
    // SAFETY: dup2 onto the standard fds; the sources stay open until after.
    unsafe {
        libc::dup2(null.as_raw_fd(), 0);
        libc::dup2(log.as_raw_fd(), 1);
        libc::dup2(log.as_raw_fd(), 2);
    }
    Ok(())
}

/// Tell the waiting parent how mounting went.
fn report(fd: Option<OwnedFd>, r: Result<(), String>) {
    if let Some(fd) = fd {
        let mut f = std::fs::File::from(fd);
        let _ = match r {
            Ok(()) => f.write_all(b"ok\n"),
            Err(e) => f.write_all(format!("err {e}\n").as_bytes()),
        };
    }
}

fn daemon_main(
    vault_dir: &Path,
    opts: &MountOptions,
    key: MasterKey,
    ready: Option<OwnedFd>,
) -> Result<()> {
    let vault = match Vault::open_with_key(vault_dir, key) {
        Ok(v) => Arc::new(v),
        Err(e) => {
            let msg = e.to_string();
            report(ready, Err(msg.clone()));
            bail!("{msg}");
        }
    };
    let shared = vault.clone();
    let handler: Handler = Arc::new(move |req, out| super::serve_remote(shared.clone(), req, out));
    let foreground = ready.is_none();
    let mnt = opts.mountpoint.display().to_string();
    daemon::serve(vault, opts, handler, move |r| {
        if foreground && r.is_ok() {
            eprintln!("vaultfs: mounted at {mnt}; Ctrl-C or `vaultfs umount {mnt}` to unmount");
        }
        report(ready, r)
    })?;
    Ok(())
}
