//! `vaultfs repair`

use anyhow::Result;

use vaultfs::cli::VaultArg;
use vaultfs::vault::{Vault, repair};

use super::{Outcome, PassSource};

pub fn run(a: VaultArg, pass: &PassSource) -> Result<Outcome> {
    Vault::read_config(&a.vault)?;
    let p = pass.get(&a.vault, false)?;
    let (_vault, report) = repair::repair(&a.vault, &p)?;
    for e in &report.errors {
        eprintln!("vaultfs: {e}");
    }
    println!(
        "rebuilt the index from {} packs: {} blobs, {} items, {} points",
        report.packs, report.blobs, report.items, report.points
    );
    if report.errors.is_empty() {
        Ok(Outcome::Ok)
    } else {
        Ok(Outcome::Partial(format!(
            "{} packs or records could not be read; their data is lost",
            report.errors.len()
        )))
    }
}
