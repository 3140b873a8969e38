//! `vaultfs gc`

use anyhow::Result;

use vaultfs::cli::GcArgs;
use vaultfs::vault::gc::{self, GcReport, Purge};
use vaultfs::vault::jobs::{JobEnd, JobKind};

use super::{Env, Outcome, human_bytes};

pub fn run(a: GcArgs, env: &Env) -> Result<Outcome> {
    let vault = env.open(&a.vault)?;
    let purge = if a.expire_now {
        Purge::AllDeleted
    } else {
        Purge::Expired
    };
    let job = vault.job(JobKind::Gc, None, &env.started_by());
    let result = gc::gc(&vault, a.dry_run, purge);
    job.finish(&result, |r| JobEnd {
        figures: r.figures(),
        warnings: 0,
        summary: Some(summary(r, a.dry_run)),
    });
    let r = result?;
    let verb = if a.dry_run { "would purge" } else { "purged" };
    for p in &r.purged {
        env.out(format!("{verb} {p}"));
    }
    env.out(summary(&r, a.dry_run));
    Ok(Outcome::Ok)
}

fn summary(r: &GcReport, dry_run: bool) -> String {
    format!(
        "{}{} points purged, {} blobs dropped, {} packs deleted, {} rewritten; packs {} -> {} ({} freed)",
        if dry_run { "dry run: " } else { "" },
        r.purged.len(),
        r.blobs_dropped,
        r.packs_deleted,
        r.packs_rewritten,
        human_bytes(r.bytes_before),
        human_bytes(r.bytes_after),
        human_bytes(r.bytes_before.saturating_sub(r.bytes_after)),
    )
}
