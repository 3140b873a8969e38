//! `vaultfs snapshot VAULT|MNT ITEM`: freeze incoming/ITEM into a new point.

use anyhow::Result;

use vaultfs::cli::SnapshotArgs;
use vaultfs::daemon;

use super::{Env, Outcome};

pub fn run(a: SnapshotArgs, env: &Env) -> Result<Outcome> {
    let given = env.path(&a.vault);
    let dir = daemon::vault_of_mount(&given).unwrap_or(given);
    let vault = env.open(&dir)?;
    let p = vault.snapshot(&a.item)?;
    env.out(format!("created point {}/{}", p.item, p.name));
    for r in vault.apply_retention(&p.item)? {
        env.err(format!(
            "retired {}/{} (soft-deleted by the item's retention)",
            r.item, r.name
        ));
    }
    Ok(Outcome::Ok)
}
