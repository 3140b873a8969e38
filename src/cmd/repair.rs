//! `vaultfs repair`

use anyhow::{Result, bail};

use vaultfs::cli::VaultArg;
use vaultfs::vault::{Vault, repair};

use super::{Env, Outcome};

pub fn run(a: VaultArg, env: &Env) -> Result<Outcome> {
    if env.is_remote() {
        bail!("the vault is mounted: unmount it (vaultfs umount MNT) before repair");
    }
    let location = env.location(&a.vault)?;
    Vault::read_config_at(&location)?;
    let p = env.passphrase(&location.shown(), false)?;
    let (_vault, report) = repair::repair_at(&location, &p)?;
    for e in &report.errors {
        env.err(format!("vaultfs: {e}"));
    }
    env.out(format!(
        "rebuilt the index from {} packs: {} blobs, {} items, {} points",
        report.packs, report.blobs, report.items, report.points
    ));
    if report.errors.is_empty() {
        Ok(Outcome::Ok)
    } else {
        Ok(Outcome::Partial(format!(
            "{} packs or records could not be read; their data is lost",
            report.errors.len()
        )))
    }
}
