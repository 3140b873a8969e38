//! `vaultfs umount`: ask the daemon to finish and unmount, and wait until it has released the
//! vault. Without an answering daemon (it was killed), the stale mount is detached.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use vaultfs::cli::UmountArgs;
use vaultfs::control::{self, Request};
use vaultfs::daemon;
use vaultfs::vault::lock;

use super::{Env, Outcome};

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
    if let Some(stream) = control::connect(&vault) {
        let code = control::call(stream, &Request::Unmount, |_| {})?;
        if code == Some(0) {
            // The daemon first lets commands running through its socket finish.
            let deadline = Instant::now() + Duration::from_secs(3600);
            while lock::holder(&vault).is_some() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            env.out(format!("unmounted {}", mnt.display()));
            return Ok(Outcome::Ok);
        }
    }
    // The daemon may have unmounted and exited without answering: check again.
    if !daemon::mounts().iter().any(|(_, p, _)| *p == mnt) {
        env.out(format!("unmounted {}", mnt.display()));
        return Ok(Outcome::Ok);
    }
    let stale = daemon::is_stale_mount(&mnt);
    daemon::force_unmount(&mnt, stale)?;
    env.out(format!(
        "unmounted {}{}",
        mnt.display(),
        if stale { " (its daemon was gone)" } else { "" }
    ));
    Ok(Outcome::Ok)
}
