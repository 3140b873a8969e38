//! `vaultfs check`

use anyhow::{Result, bail};

use vaultfs::cli::CheckArgs;
use vaultfs::vault::check;

use super::{Env, Outcome, human_bytes};

pub fn run(a: CheckArgs, env: &Env) -> Result<Outcome> {
    let vault = env.open(&a.vault)?;
    let pb = env.spinner();
    let report = check::check(&vault, a.read_data, |n, total| {
        pb.set_message(format!("pack {n}/{total}"))
    })?;
    pb.finish_and_clear();
    for w in &report.warnings {
        env.err(format!("vaultfs: warning: {w}"));
    }
    for e in &report.errors {
        env.err(format!("vaultfs: {e}"));
    }
    let verified = if a.read_data {
        format!(
            ", {} of data verified",
            human_bytes(report.data_bytes_verified)
        )
    } else {
        String::new()
    };
    env.out(format!(
        "checked {} packs, {} blobs, {} points, {} trees{verified}: {} errors",
        report.packs,
        report.blobs,
        report.points,
        report.trees,
        report.errors.len()
    ));
    if !report.errors.is_empty() {
        bail!(
            "the vault is damaged: {} errors (listed above)",
            report.errors.len()
        );
    }
    Ok(Outcome::Ok)
}
