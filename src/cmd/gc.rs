//! `vaultfs gc`

use anyhow::Result;

use vaultfs::cli::GcArgs;
use vaultfs::vault::gc::{self, Purge};

use super::{Env, Outcome, human_bytes};

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
    let r = gc::gc(&vault, a.dry_run, purge)?;
    let verb = if a.dry_run { "would purge" } else { "purged" };
    for p in &r.purged {
        env.out(format!("{verb} {p}"));
    }
    env.out(format!(
        "{}{} points purged, {} blobs dropped, {} packs deleted, {} rewritten; packs {} -> {} ({} freed)",
        if a.dry_run { "dry run: " } else { "" },
        r.purged.len(),
        r.blobs_dropped,
        r.packs_deleted,
        r.packs_rewritten,
        human_bytes(r.bytes_before),
        human_bytes(r.bytes_after),
        human_bytes(r.bytes_before.saturating_sub(r.bytes_after)),
    ));
    Ok(Outcome::Ok)
}
