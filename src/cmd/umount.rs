//! `vaultfs umount`: ask the daemon to finish and unmount, and return only once its process is
//! gone, so the vault is free for the next command or mount (see `daemon::process`). Without
//! an answering daemon, the mount is detached, and a daemon still holding the vault is waited
//! for a while.

use std::time::Duration;

use anyhow::{Result, bail};

use vaultfs::cli::UmountArgs;
use vaultfs::control::{self, Request};
use vaultfs::daemon::{self, Holder};

use super::{Env, Outcome};

/// A daemon that agreed to stop first lets commands running through its socket finish.
const AGREED_WAIT: Duration = Duration::from_secs(3600);
/// A daemon that did not answer gets this long to exit once its mount is gone.
const UNANSWERED_WAIT: Duration = Duration::from_secs(60);

pub fn run(a: UmountArgs, env: &Env) -> Result<Outcome> {
    let given = env.path(&a.mountpoint);
    let mnt = given.canonicalize().unwrap_or(given.clone());
    let Some((source, _, _)) = daemon::mounts()
        .into_iter()
        .find(|(_, p, ty)| *p == mnt && ty.starts_with("fuse"))
    else {
        bail!("{} is not mounted", a.mountpoint.display());
    };
    let vault = std::path::PathBuf::from(&source);
    let holder = Holder::of(&vault);
    let gone = |limit| match &holder {
        Some(h) => h.wait_gone(limit),
        None => daemon::process::wait_unlocked(&vault, limit),
    };
    if let Some(stream) = control::connect(&vault) {
        let code = control::call(stream, &Request::Unmount, |_| {})?;
        if code == Some(0) {
            if !gone(AGREED_WAIT) {
                bail!("the daemon of {} did not exit", vault.display());
            }
            env.out(format!("unmounted {}", mnt.display()));
            return Ok(Outcome::Ok);
        }
    }
    // No answer: the daemon may have unmounted and exited without one; otherwise detach the
    // mount (a daemon that lives on sees its session end and exits).
    let stale = daemon::is_stale_mount(&mnt);
    if daemon::mounts().iter().any(|(_, p, _)| *p == mnt) {
        daemon::force_unmount(&mnt, stale)?;
    }
    if !gone(UNANSWERED_WAIT) {
        bail!(
            "unmounted {}, but its daemon still holds {}",
            mnt.display(),
            vault.display()
        );
    }
    env.out(format!(
        "unmounted {}{}",
        mnt.display(),
        if stale { " (its daemon was gone)" } else { "" }
    ));
    Ok(Outcome::Ok)
}
