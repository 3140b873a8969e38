//! `vaultfs check`

use anyhow::{Result, bail};

use vaultfs::cli::CheckArgs;
use vaultfs::vault::{check, rollback};

use super::{Env, Outcome, human_bytes};

pub fn run(a: CheckArgs, env: &Env) -> Result<Outcome> {
    let vault = env.open(&a.vault)?;
    let pb = env.spinner();
    let mut report = check::check(&vault, a.read_data, |n, total| {
        pb.set_message(format!("pack {n}/{total}"))
    })?;
    let rolled_back = rollback::check(&vault)?;
    report.errors.extend(rolled_back.errors);
    report.warnings.extend(rolled_back.warnings);
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
    // Which data key sealed what was read: after `key rotate --data-key`, new data shows
    // under the new epoch.
    let opened = vault.store().codec().opened_by_epoch();
    for e in vault.key_epochs() {
        let n = opened
            .iter()
            .find(|(epoch, _)| *epoch == e.epoch)
            .map_or(0, |(_, n)| *n);
        let row = super::key::epoch_row(&e);
        env.out(format!(
            "key epoch {} (created {}, {}): {n} objects opened",
            row[0], row[1], row[2]
        ));
    }
    if !report.errors.is_empty() {
        bail!(
            "the vault is damaged: {} errors (listed above)",
            report.errors.len()
        );
    }
    Ok(Outcome::Ok)
}
