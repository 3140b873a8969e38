//! `vaultfs repair`

use anyhow::{Result, bail};

use vaultfs::cli::RepairArgs;
use vaultfs::vault::repair;

use super::{Env, Outcome};

pub fn run(a: RepairArgs, env: &Env) -> Result<Outcome> {
    if env.is_remote() {
        bail!("the vault is mounted: unmount it (vaultfs umount MNT) before repair");
    }
    let location = env.location(&a.vault)?;
    let credential = env.unlock_credential(&location)?;
    let (v, mut report) = repair::repair_at(&location, &credential, a.dry_run)?;
    if let Some(generation) = report.config_restored {
        env.err(format!(
            "vaultfs: the config was older than the packs know: restored generation {generation} from the packs"
        ));
        // The restored config may know newer data keys: read the packs again with them.
        drop(v);
        report = repair::repair_at(&location, &credential, a.dry_run)?.1;
    }
    for n in &report.notes {
        env.err(format!("vaultfs: warning: {n}"));
    }
    for (_, lost) in &report.damaged {
        for line in lost {
            env.err(format!("vaultfs: {line}"));
        }
    }
    let would = if a.dry_run { "would: " } else { "" };
    for c in &report.changes {
        env.out(format!("{would}{c}"));
    }
    if a.dry_run {
        env.out(format!(
            "dry run: {} changes; the index would hold {} blobs from {} packs, {} items, {} points",
            report.changes.len(),
            report.blobs,
            report.packs,
            report.items,
            report.points
        ));
    } else {
        let kept = match &report.previous {
            Some(prev) => format!("; the previous index is kept in {}", prev.display()),
            None => String::new(),
        };
        env.out(format!(
            "rebuilt the index from {} packs: {} blobs, {} items, {} points{kept}",
            report.packs, report.blobs, report.items, report.points
        ));
    }
    if report.damaged.is_empty() {
        Ok(Outcome::Ok)
    } else {
        let labels: Vec<&str> = report.damaged.iter().map(|(l, _)| l.as_str()).collect();
        Ok(Outcome::Partial(format!(
            "data is lost in {} (listed above); {} kept and marked damaged",
            labels.join(", "),
            if a.dry_run {
                "they would be"
            } else {
                "they are"
            }
        )))
    }
}
