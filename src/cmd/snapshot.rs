//! `vaultfs snapshot VAULT|MNT ITEM`: freeze incoming/ITEM into a new point.

use anyhow::Result;

use vaultfs::cli::SnapshotArgs;
use vaultfs::daemon;
use vaultfs::vault::jobs::{JobEnd, JobFigures, JobKind};

use super::{Env, Outcome};

pub fn run(a: SnapshotArgs, env: &Env) -> Result<Outcome> {
    let given = env.path(&a.vault);
    let dir = daemon::vault_of_mount(&given).unwrap_or(given);
    let vault = env.open(&dir)?;
    let job = vault.job(JobKind::Snapshot, Some(&a.item), &env.started_by());
    let before = vault.store().stats().sealed_bytes_added;
    let result = vault.snapshot_tagged(&a.item, &a.tags.tags);
    let added = vault.store().stats().sealed_bytes_added - before;
    job.finish(&result, |p| JobEnd {
        figures: JobFigures {
            files: p.files,
            bytes_total: p.bytes,
            bytes_added: added,
            ..JobFigures::default()
        },
        warnings: 0,
        summary: Some(format!("created point {}/{}", p.item, p.name)),
    });
    let p = result?;
    env.out(format!("created point {}/{}", p.item, p.name));
    for r in vault.apply_retention(&p.item)? {
        env.err(format!(
            "retired {}/{} (soft-deleted by the item's retention)",
            r.item, r.name
        ));
    }
    Ok(Outcome::Ok)
}
