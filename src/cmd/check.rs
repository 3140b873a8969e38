//! `vaultfs check`

use anyhow::{Result, anyhow};

use vaultfs::cli::CheckArgs;
use vaultfs::vault::jobs::{JobEnd, JobFigures, JobKind};
use vaultfs::vault::{Vault, check, rollback};

use super::{Env, Outcome, human_bytes};

pub fn run(a: CheckArgs, env: &Env) -> Result<Outcome> {
    let vault = env.open(&a.vault)?;
    let job = vault.job(JobKind::Check, None, &env.started_by());
    let (end, result) = match checked(&vault, &a, env) {
        Ok(r) => r,
        Err(e) => {
            job.fail(JobEnd::default(), &super::one_line(&e));
            return Err(e);
        }
    };
    match result {
        Ok(()) => {
            job.complete(end);
            Ok(Outcome::Ok)
        }
        Err(msg) => {
            job.fail_corrupt(end, &msg);
            Err(anyhow!(msg))
        }
    }
}

/// Check and report; the job's figures, and the verdict (an error line when damaged).
fn checked(
    vault: &Vault,
    a: &CheckArgs,
    env: &Env,
) -> Result<(JobEnd, std::result::Result<(), String>)> {
    // Packs are the unit of a check's work (with --read-data, every byte of each is read).
    let pb = env.bar(0, Some("packs"));
    pb.set_message("check");
    let mut report = check::check(vault, a.read_data, |n, total| {
        pb.set_length(total);
        pb.set_position(n);
    })?;
    let rolled_back = rollback::check(vault)?;
    // An older record copied back: the newer one is still in the packs, `repair` restores it.
    report.intact.extend(rolled_back.errors);
    report.warnings.extend(rolled_back.warnings);
    // A removed, edited, swapped or cut-off audit record (DESIGN §13).
    let audit = vault.audit_log()?;
    report.intact.extend(audit.problems);
    report.warnings.extend(audit.warnings);
    pb.finish_and_clear();
    if a.json {
        env.out(serde_json::to_string_pretty(&serde_json::json!({
            "packs": report.packs, "blobs": report.blobs, "points": report.points,
            "trees": report.trees, "data_bytes_verified": report.data_bytes_verified,
            "errors_data_intact": report.intact, "errors_data_lost": report.lost,
            "damaged_points": report.damaged_points, "warnings": report.warnings,
            "ok": report.error_count() == 0,
        }))?);
        return Ok((figures(&report, None), verdict(&report)));
    }
    for w in &report.warnings {
        env.err(format!("vaultfs: warning: {w}"));
    }
    for e in report.errors() {
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
    let kinds = if report.error_count() == 0 {
        String::new()
    } else {
        let points: Vec<&str> = report.damaged_points.iter().map(|p| p.as_str()).collect();
        format!(
            " ({} with the data intact, {} of lost data{})",
            report.intact.len(),
            report.lost.len(),
            if points.is_empty() {
                String::new()
            } else {
                format!(" in {}", points.join(", "))
            }
        )
    };
    let line = format!(
        "checked {} packs, {} blobs, {}, {} trees{verified}: {} errors{kinds}",
        report.packs,
        report.blobs,
        super::plural(report.points as u64, "point", "points"),
        report.trees,
        report.error_count()
    );
    env.out(&line);
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
    Ok((figures(&report, Some(line)), verdict(&report)))
}

/// The job's figures of a check.
fn figures(report: &check::CheckReport, summary: Option<String>) -> JobEnd {
    JobEnd {
        figures: JobFigures {
            files: report.points,
            bytes_read: report.data_bytes_verified,
            ..JobFigures::default()
        },
        warnings: report.warnings.len() as u64,
        summary,
    }
}

/// The error line of a damaged vault, or Ok.
fn verdict(report: &check::CheckReport) -> std::result::Result<(), String> {
    if !report.intact.is_empty() {
        Err(format!(
            "the vault is damaged: {} errors (listed above); `vaultfs repair` keeps every point and \
             salvages everything that still authenticates",
            report.error_count()
        ))
    } else if !report.lost.is_empty() {
        Err(format!(
            "the vault has lost data: {} errors (listed above); the points are kept (`vaultfs \
             repair` marks them damaged), the lost files can only come from another copy",
            report.error_count()
        ))
    } else {
        Ok(())
    }
}
