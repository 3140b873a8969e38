//! `vaultfs backup`

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use std::collections::HashSet;

use anyhow::{Context, Result};

use vaultfs::cli::BackupArgs;
use vaultfs::vault::backup;
use vaultfs::vault::jobs::{JobEnd, JobFigures, JobKind};
use vaultfs::vault::select::{self, Selection};

use super::{Env, Outcome, human_bytes, plural, track};

pub fn run(a: BackupArgs, env: &Env) -> Result<Outcome> {
    vaultfs::vault::names::check_item(&a.item)?;
    let mut sources = Vec::new();
    let mut missing = None;
    for p in &a.paths {
        let src = env.path(p);
        if std::fs::symlink_metadata(&src).is_err() {
            missing.get_or_insert_with(|| p.clone());
            continue;
        }
        // Absolute and without `..`, so whole-path patterns see real paths.
        sources.push(src.canonicalize().unwrap_or(src));
    }
    let mut patterns = a.exclude.clone();
    for f in &a.exclude_file {
        let text = std::fs::read_to_string(env.path(f))
            .with_context(|| format!("cannot read the exclude file {}", f.display()))?;
        patterns.extend(select::read_exclude_file(&text));
    }
    let select = Selection::new(
        &patterns,
        a.exclude_if_present.clone(),
        a.one_file_system,
        vaultfs_mount_devices(),
    )?;
    let vault = env.open(&a.vault)?;
    // Other commands reach the vault through this process while it runs (DESIGN §14).
    let _serving = (!env.is_remote() && !env.is_replica())
        .then(|| super::busy::serve(&vault))
        .flatten();
    // A source that is gone (an unmounted share) is a failed job, not only an error.
    let job = vault.job(JobKind::Backup, Some(&a.item), &env.started_by());
    if let Some(p) = missing {
        let msg = format!("source {} does not exist", p.display());
        job.fail(JobEnd::default(), &msg);
        anyhow::bail!(msg);
    }
    let progress = job.progress.clone();
    // The bar's total is the sources' size, measured by a walk beside the backup's (as
    // restic does): until it ends the bar grows with it, and the ETA settles once it has.
    let pb = env.bar(0, None);
    let sized = AtomicBool::new(false);
    let total = AtomicU64::new(0);
    let result = track(
        &pb,
        |pb| {
            let done = progress.bytes_read.load(Ordering::Relaxed)
                + progress.bytes_skipped.load(Ordering::Relaxed);
            let size = total.load(Ordering::Relaxed);
            pb.set_length(if sized.load(Ordering::Relaxed) {
                size
            } else {
                size.max(done)
            });
            pb.set_position(done);
            pb.set_message(format!(
                "backup {}: {} files",
                a.item,
                progress.files.load(Ordering::Relaxed)
            ));
        },
        || {
            std::thread::scope(|s| {
                if !pb.is_hidden() {
                    s.spawn(|| {
                        for src in &sources {
                            size_of(src, &total);
                        }
                        sized.store(true, Ordering::Relaxed);
                    });
                }
                backup::backup_tagged(&vault, &a.item, &sources, &select, &a.tags.tags, &progress)
            })
        },
    );
    let summary = match result {
        Ok(s) => s,
        Err(e) => {
            job.fail(JobEnd::default(), &e.to_string());
            return Err(e.into());
        }
    };
    let s = &summary;
    let line = summary_line(s);
    if a.json {
        env.out(serde_json::to_string_pretty(&serde_json::json!({
            "item": s.point.item, "point": s.point.name,
            "created": vaultfs::vault::names::rfc3339(s.point.created_ns),
            "files": s.files, "files_unchanged": s.files_unchanged, "dirs": s.dirs,
            "bytes_total": s.bytes_total, "bytes_read": s.bytes_read,
            "bytes_added": s.bytes_added, "seconds": s.seconds, "warnings": s.warnings,
            "host": super::points::host_json(&s.point), "paths": super::points::paths_json(&s.point),
            "tags": super::points::tags_json(&s.point),
        }))?);
    } else {
        env.out(format!("created point {}/{}", s.point.item, s.point.name));
        env.out(&line);
    }
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

/// Add the bytes of the regular files under `path` to `total` (what a backup reads at most).
fn size_of(path: &std::path::Path, total: &AtomicU64) {
    let Ok(md) = std::fs::symlink_metadata(path) else {
        return;
    };
    if md.is_file() {
        total.fetch_add(md.len(), Ordering::Relaxed);
    } else if md.is_dir()
        && let Ok(entries) = std::fs::read_dir(path)
    {
        for e in entries.flatten() {
            size_of(&e.path(), total);
        }
    }
}

/// Devices of the vaultfs mounts on this machine: a backup never enters them.
fn vaultfs_mount_devices() -> HashSet<u64> {
    vaultfs::daemon::vaultfs_devices().into_iter().collect()
}

/// The figures of a backup. A rate and a dedup ratio only when file data was read: a repeat
/// backup that read nothing stores only trees, and "0.0 MB/s" or "823381x" said nothing true.
fn summary_line(s: &backup::BackupSummary) -> String {
    let mut line = format!(
        "{} ({} unchanged), {}, {} in the tree, ",
        plural(s.files, "file", "files"),
        s.files_unchanged,
        plural(s.dirs, "dir", "dirs"),
        human_bytes(s.bytes_total),
    );
    if s.bytes_read == 0 {
        line.push_str(&format!(
            "nothing read, {} added to the vault (trees only), {:.2} s",
            human_bytes(s.bytes_added),
            s.seconds
        ));
    } else {
        let ratio = s.bytes_read as f64 / s.bytes_added.max(1) as f64;
        let mbps = s.bytes_read as f64 / 1e6 / s.seconds.max(1e-3);
        line.push_str(&format!(
            "{} read, {} added to the vault (dedup+compression of what was read {ratio:.1}x), \
             {:.2} s, {mbps:.1} MB/s",
            human_bytes(s.bytes_read),
            human_bytes(s.bytes_added),
            s.seconds
        ));
    }
    line
}
