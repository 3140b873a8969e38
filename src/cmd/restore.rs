//! `vaultfs restore`

use anyhow::{Result, bail};

use vaultfs::cli::RestoreArgs;
use vaultfs::vault::restore;

use super::{Env, Outcome, human_bytes};

pub fn run(a: RestoreArgs, env: &Env) -> Result<Outcome> {
    let vault = env.open(&a.vault)?;
    let point = vault.resolve(&a.point)?;
    let dest = env.path(&a.dest);
    let pb = env.spinner();
    pb.set_message(format!("restoring {}/{}", point.item, point.name));
    let summary = restore::restore(&vault, &point, &dest, a.path.as_deref())?;
    pb.finish_and_clear();
    for e in &summary.errors {
        env.err(format!("vaultfs: {e}"));
    }
    env.out(format!(
        "restored {}/{} to {}: {} entries, {}",
        point.item,
        point.name,
        a.dest.display(),
        summary.files,
        human_bytes(summary.bytes)
    ));
    if !summary.errors.is_empty() {
        bail!(
            "{} entries could not be restored (listed above)",
            summary.errors.len()
        )
    }
    Ok(Outcome::Ok)
}
