//! `vaultfs gc`

use anyhow::Result;

use vaultfs::cli::GcArgs;
use vaultfs::vault::gc::{self, GcReport, Purge};
use vaultfs::vault::jobs::{JobEnd, JobKind};

use super::{Env, Outcome, human_bytes, plural};

pub fn run(a: GcArgs, env: &Env) -> Result<Outcome> {
    let vault = env.open(&a.vault)?;
    let purge = if a.expire_now {
        Purge::AllDeleted
    } else {
        Purge::Expired
    };
    if a.expire_now && !a.dry_run {
        super::guard::authorize(env, &vault, "gc --expire-now", &a.approval)?;
    }
    let job = vault.job(JobKind::Gc, None, &env.started_by());
    let pb = env.bar(0, Some(""));
    let phase = std::sync::Mutex::new(String::new());
    let result = gc::gc_with_progress(&vault, a.dry_run, purge, &|step, done, total| {
        let mut p = phase.lock().expect("phase lock");
        if *p != step {
            // A new phase: its own length, rate and ETA.
            *p = step.to_string();
            pb.reset();
            pb.set_message(format!("gc: {step}"));
        }
        pb.set_length(total);
        pb.set_position(done);
    });
    pb.finish_and_clear();
    job.finish(&result, |r| JobEnd {
        figures: r.figures(),
        warnings: 0,
        summary: Some(summary(r, a.dry_run)),
    });
    let r = result?;
    if a.json {
        env.out(serde_json::to_string_pretty(&serde_json::json!({
            "dry_run": a.dry_run, "purged": r.purged, "blobs_dropped": r.blobs_dropped,
            "packs_deleted": r.packs_deleted, "packs_rewritten": r.packs_rewritten,
            "bytes_before": r.bytes_before, "bytes_after": r.bytes_after,
        }))?);
        return Ok(Outcome::Ok);
    }
    let verb = if a.dry_run { "would purge" } else { "purged" };
    for p in &r.purged {
        env.out(format!("{verb} {p}"));
    }
    env.out(summary(&r, a.dry_run));
    Ok(Outcome::Ok)
}

fn summary(r: &GcReport, dry_run: bool) -> String {
    let (points, blobs, packs) = (
        plural(r.purged.len() as u64, "point", "points"),
        plural(r.blobs_dropped, "blob", "blobs"),
        plural(r.packs_deleted, "pack", "packs"),
    );
    let (before, after) = (human_bytes(r.bytes_before), human_bytes(r.bytes_after));
    let freed = human_bytes(r.bytes_before.saturating_sub(r.bytes_after));
    if dry_run {
        format!(
            "dry run: would purge {points}, drop {blobs}, delete {packs} and rewrite {}; \
             packs {before} -> {after} ({freed} would be freed)",
            r.packs_rewritten
        )
    } else {
        format!(
            "{points} purged, {blobs} dropped, {packs} deleted, {} rewritten; packs {before} -> \
             {after} ({freed} freed)",
            r.packs_rewritten
        )
    }
}
