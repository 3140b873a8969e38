//! `vaultfs restore`

use anyhow::{Result, bail};

use vaultfs::cli::RestoreArgs;
use vaultfs::vault::restore;

use super::{Outcome, PassSource, human_bytes, spinner};

pub fn run(a: RestoreArgs, pass: &PassSource) -> Result<Outcome> {
    let vault = pass.open(&a.vault)?;
    let point = vault.resolve(&a.point)?;
    let pb = spinner();
    pb.set_message(format!("restoring {}/{}", point.item, point.name));
    let summary = restore::restore(&vault, &point, &a.dest, a.path.as_deref())?;
    pb.finish_and_clear();
    for e in &summary.errors {
        eprintln!("vaultfs: {e}");
    }
    let line = format!(
        "restored {}/{} to {}: {} entries, {}",
        point.item,
        point.name,
        a.dest.display(),
        summary.files,
        human_bytes(summary.bytes)
    );
    if summary.errors.is_empty() {
        println!("{line}");
        Ok(Outcome::Ok)
    } else {
        println!("{line}");
        bail!(
            "{} entries could not be restored (listed above)",
            summary.errors.len()
        )
    }
}
