//! `vaultfs restore`

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::Ordering;

use anyhow::{Result, bail};

use vaultfs::cli::RestoreArgs;
use vaultfs::format::NodeKind;
use vaultfs::vault::jobs::{JobEnd, JobFigures, JobKind};
use vaultfs::vault::{browse, restore, verify};

use super::{Env, Outcome, human_bytes, plural, track};

pub fn run(a: RestoreArgs, env: &Env) -> Result<Outcome> {
    let vault = env.open(&a.vault)?;
    let point = vault.resolve(&a.point)?;
    let dest = env.path(&a.dest);
    let sub = a.path.as_deref().unwrap_or(Path::new(""));
    let node = browse::node_at(vault.store(), &point, sub)?;
    // Where the entries land: a directory's contents into DEST, a file as DEST/NAME.
    let target = match (node.kind, sub.file_name()) {
        (NodeKind::Dir, _) | (_, None) => dest.clone(),
        (_, Some(name)) => dest.join(name),
    };
    let entries = if node.kind == NodeKind::Dir {
        browse::list(vault.store(), &point, sub, true)?
    } else {
        vec![(Vec::new(), node.clone())]
    };
    let prefix = browse::path_of(sub);
    let replaced = entries
        .iter()
        .filter(|(p, n)| {
            let rel = p.strip_prefix(prefix.as_slice()).unwrap_or(p);
            n.kind != NodeKind::Dir && existing(&target, rel)
        })
        .count() as u64;
    let bytes: u64 = entries.iter().map(|(_, n)| n.size).sum();
    if a.dry_run {
        env.out(format!(
            "dry run: would restore {}, {}, from {}/{} into {}; {} would be replaced",
            plural(entries.len() as u64, "entry", "entries"),
            human_bytes(bytes),
            point.item,
            point.name,
            a.dest.display(),
            plural(replaced, "existing file", "existing files"),
        ));
        return Ok(Outcome::Ok);
    }
    let occupied = match node.kind {
        NodeKind::Dir => std::fs::read_dir(&target).is_ok_and(|mut d| d.next().is_some()),
        _ => std::fs::symlink_metadata(&target).is_ok(),
    };
    if occupied && !a.overwrite {
        bail!(
            "{} is not empty: restoring would replace {} in it; use --overwrite (or --dry-run \
             to see what would be written)",
            target.display(),
            plural(replaced, "file", "files")
        );
    }
    // Bad arguments are refused before the job starts: they leave no trace in the vault.
    restore::check_target(&vault, &point, &dest, a.path.as_deref())?;
    let job = vault.job(JobKind::Restore, Some(&point.item), &env.started_by());
    let pb = env.bar(bytes, None);
    let progress = job.progress.clone();
    let result = track(
        &pb,
        |pb| {
            pb.set_position(progress.bytes_read.load(Ordering::Relaxed));
            pb.set_message(format!(
                "restore {}/{}: {}/{} entries",
                point.item,
                point.name,
                progress.files.load(Ordering::Relaxed),
                entries.len()
            ));
        },
        || restore::restore(&vault, &point, &dest, a.path.as_deref(), &progress),
    );
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
        "restored {}/{} to {}: {}, {}",
        point.item,
        point.name,
        a.dest.display(),
        plural(summary.files, "entry", "entries"),
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
            "{} could not be restored (listed above)",
            plural(summary.errors.len() as u64, "entry", "entries")
        );
        job.fail(end, &msg);
        bail!(msg)
    }
    if a.verify {
        let v = verify::verify(vault.store(), &node, &target)?;
        for p in &v.bad {
            env.err(format!(
                "vaultfs: {p}: restored bytes differ from the point"
            ));
        }
        if !v.bad.is_empty() {
            let msg = format!(
                "verify: {} of {} differ (listed above)",
                v.bad.len(),
                plural(v.files, "file", "files")
            );
            job.fail(end, &msg);
            bail!(msg);
        }
        env.out(format!("verified {}", plural(v.files, "file", "files")));
    }
    job.complete(end);
    Ok(Outcome::Ok)
}

/// Whether `path` (from the point's walk, `/a/b`) exists under `dir`.
fn existing(dir: &Path, path: &[u8]) -> bool {
    let rel = std::ffi::OsStr::from_bytes(path.strip_prefix(b"/").unwrap_or(path));
    std::fs::symlink_metadata(dir.join(rel)).is_ok()
}
