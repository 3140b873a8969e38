//! `vaultfs restore`

use anyhow::{Result, bail};

use vaultfs::cli::RestoreArgs;
use vaultfs::vault::jobs::{JobEnd, JobFigures, JobKind};
use vaultfs::vault::restore;

use super::{Env, Outcome, human_bytes};

pub fn run(a: RestoreArgs, env: &Env) -> Result<Outcome> {
    let vault = env.open(&a.vault)?;
    let point = vault.resolve(&a.point)?;
    let dest = env.path(&a.dest);
    let pb = env.spinner();
    pb.set_message(format!("restoring {}/{}", point.item, point.name));
    // Bad arguments are refused before the job starts: they leave no trace in the vault.
    restore::check_target(&vault, &point, &dest, a.path.as_deref())?;
    let job = vault.job(JobKind::Restore, Some(&point.item), &env.started_by());
    let result = restore::restore(&vault, &point, &dest, a.path.as_deref());
    pb.finish_and_clear();
    let summary = match result {
        Ok(s) => s,
        Err(e) => {
            job.fail(JobEnd::default(), &e.to_string());
            return Err(e.into());
        }
    };
    for e in &summary.errors {
        env.err(format!("vaultfs: {e}"));
    }
    let line = format!(
        "restored {}/{} to {}: {} entries, {}",
        point.item,
        point.name,
        a.dest.display(),
        summary.files,
        human_bytes(summary.bytes)
    );
    env.out(&line);
    let end = JobEnd {
        figures: JobFigures {
            files: summary.files,
            bytes_total: summary.bytes,
            bytes_read: summary.bytes,
            ..JobFigures::default()
        },
        warnings: 0,
        summary: Some(line),
    };
    if !summary.errors.is_empty() {
        let msg = format!(
            "{} entries could not be restored (listed above)",
            summary.errors.len()
        );
        job.fail(end, &msg);
        bail!(msg)
    }
    job.complete(end);
    Ok(Outcome::Ok)
}
