//! `vaultfs backup`

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Result;

use vaultfs::cli::BackupArgs;
use vaultfs::vault::backup;
use vaultfs::vault::jobs::{JobEnd, JobFigures, JobKind};

use super::{Env, Outcome, human_bytes};

pub fn run(a: BackupArgs, env: &Env) -> Result<Outcome> {
    vaultfs::vault::names::check_item(&a.item)?;
    let src = env.path(&a.path);
    let vault = env.open(&a.vault)?;
    // A source that is gone (an unmounted share) is a failed job, not only an error.
    let job = vault.job(JobKind::Backup, Some(&a.item), &env.started_by());
    if !src.exists() {
        let msg = format!("source {} does not exist", a.path.display());
        job.fail(JobEnd::default(), &msg);
        anyhow::bail!(msg);
    }
    let progress = job.progress.clone();
    let pb = env.spinner();
    let done = AtomicBool::new(false);
    let result = std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) && !pb.is_hidden() {
                pb.set_message(format!(
                    "{} files, {} read",
                    progress.files.load(Ordering::Relaxed),
                    human_bytes(progress.bytes_read.load(Ordering::Relaxed))
                ));
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        let r = backup::backup(&vault, &a.item, &src, &progress);
        done.store(true, Ordering::Relaxed);
        r
    });
    pb.finish_and_clear();
    let summary = match result {
        Ok(s) => s,
        Err(e) => {
            job.fail(JobEnd::default(), &e.to_string());
            return Err(e.into());
        }
    };
    let s = &summary;
    env.out(format!("created point {}/{}", s.point.item, s.point.name));
    let ratio = if s.bytes_added > 0 {
        s.bytes_total as f64 / s.bytes_added as f64
    } else {
        f64::INFINITY
    };
    let mbps = s.bytes_read as f64 / 1e6 / s.seconds.max(1e-9);
    let line = format!(
        "{} files ({} unchanged), {} dirs, {} in the tree, {} read, {} added to the vault (dedup+compression {ratio:.1}x), {:.2} s, {mbps:.1} MB/s",
        s.files,
        s.files_unchanged,
        s.dirs,
        human_bytes(s.bytes_total),
        human_bytes(s.bytes_read),
        human_bytes(s.bytes_added),
        s.seconds
    );
    env.out(&line);
    job.complete(JobEnd {
        figures: JobFigures {
            files: s.files,
            bytes_total: s.bytes_total,
            bytes_read: s.bytes_read,
            bytes_added: s.bytes_added,
            bytes_removed: 0,
        },
        warnings: s.warnings.len() as u64,
        summary: Some(format!("point {}: {line}", s.point.name)),
    });
    for r in vault.apply_retention(&s.point.item)? {
        env.err(format!(
            "retired {}/{} (soft-deleted by the item's retention)",
            r.item, r.name
        ));
    }
    if s.warnings.is_empty() {
        Ok(Outcome::Ok)
    } else {
        for w in &s.warnings {
            env.err(format!("vaultfs: warning: {w}"));
        }
        Ok(Outcome::Partial(format!(
            "{} entries could not be read and are missing from the point",
            s.warnings.len()
        )))
    }
}
