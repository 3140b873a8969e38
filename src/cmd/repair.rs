//! `vaultfs repair`

use anyhow::{Result, bail};

use vaultfs::cli::VaultArg;
use vaultfs::vault::repair;

use super::{Env, Outcome};

pub fn run(a: VaultArg, env: &Env) -> Result<Outcome> {
    if env.is_remote() {
        bail!("the vault is mounted: unmount it (vaultfs umount MNT) before repair");
    }
    let vault = env.path(&a.vault);
    let credential = env.unlock_credential(&vault)?;
    let (v, mut report) = repair::repair(&vault, &credential)?;
    if let Some(generation) = report.config_restored {
        env.err(format!(
            "vaultfs: the config was older than the packs know: restored generation {generation} from the packs"
        ));
        // The restored config may know newer data keys: read the packs again with them.
        drop(v);
        report = repair::repair(&vault, &credential)?.1;
    }
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
