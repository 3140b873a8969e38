//! The figures of `vaultfs report` (issue 15): what the HTML page charts, gathered once from
//! the catalog, the trees and the job log, with no HTML in it (the page is `crate::report`).
//!
//! Storage growth is measured on the live points of each item in creation order: after each
//! point, the sealed bytes of the distinct chunks and trees its item's points reference so far
//! (`stats::stats_each`); what a point added is the step from the previous one. Soft-deleted
//! points are left out, as they are of every other figure of a vault's health, so a deleted
//! point's data shows in the packs (status) but not in its item's curve.

use serde::Serialize;

use super::health::{self, Health};
use super::jobs::JobStatus;
use super::stats::{Stats, stats_each};
use super::{Result, Vault};

const DAY_NS: i64 = 86_400 * 1_000_000_000;
/// Days of job history charted, ending today (vault time).
pub const JOB_DAYS_MAX: i64 = 60;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub health: Health,
    pub items: Vec<ItemGrowth>,
    /// Jobs per UTC day, oldest first, from the first day with a job (at most
    /// [`JOB_DAYS_MAX`] days back) to today; days without jobs included.
    pub job_days: Vec<JobDay>,
}

/// One item's live points with their figures, oldest first, and its ratios.
#[derive(Debug, Clone, Serialize)]
pub struct ItemGrowth {
    pub item: String,
    pub points: Vec<PointGrowth>,
    pub dedup_ratio: f64,
    pub compression_ratio: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PointGrowth {
    pub name: String,
    pub created_ns: i64,
    /// Bytes of the point's files (what restoring it writes).
    pub logical_bytes: u64,
    /// Sealed bytes the item's points up to this one reference (each chunk and tree once).
    pub stored_bytes: u64,
    /// What this point added to `stored_bytes`.
    pub added_bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct JobDay {
    /// Midnight UTC starting the day, ns.
    pub day_ns: i64,
    /// Completed, with or without warnings.
    pub succeeded: u64,
    /// Failed, or cancelled (cut short).
    pub failed: u64,
}

/// Gather the report's figures; `cache_root` as for [`health::gather`].
pub fn gather(vault: &Vault, cache_root: &std::path::Path) -> Result<Report> {
    let health = health::gather(vault, cache_root)?;
    let mut items = Vec::new();
    for it in &health.items {
        let points = vault.points(Some(&it.item), false)?;
        let mut growth = Vec::with_capacity(points.len());
        let mut before = 0;
        let total: Stats = stats_each(vault.store(), &points, |p, s| {
            let stored = s.stored_bytes();
            growth.push(PointGrowth {
                name: p.name.clone(),
                created_ns: p.created_ns,
                logical_bytes: p.bytes,
                stored_bytes: stored,
                added_bytes: stored - before,
            });
            before = stored;
        })?;
        items.push(ItemGrowth {
            item: it.item.clone(),
            points: growth,
            dedup_ratio: total.dedup_ratio(),
            compression_ratio: total.compression_ratio(),
        });
    }
    let jobs = vault.jobs_list()?;
    let ends = jobs.iter().filter_map(|j| Some((j.end_ns?, j.status)));
    Ok(Report {
        job_days: job_days(ends, health.now_ns),
        health,
        items,
    })
}

/// Jobs ended at (time, status), counted per UTC day up to the day of `now`.
pub fn job_days(ends: impl Iterator<Item = (i64, JobStatus)>, now: i64) -> Vec<JobDay> {
    let day_of = |ns: i64| ns.div_euclid(DAY_NS) * DAY_NS;
    let today = day_of(now);
    let first_allowed = today - (JOB_DAYS_MAX - 1) * DAY_NS;
    let ends: Vec<(i64, JobStatus)> = ends
        .map(|(end, status)| (day_of(end), status))
        .filter(|(day, _)| (first_allowed..=today).contains(day))
        .collect();
    let Some(first) = ends.iter().map(|(day, _)| *day).min() else {
        return Vec::new();
    };
    let mut days: Vec<JobDay> = (0..=(today - first) / DAY_NS)
        .map(|i| JobDay {
            day_ns: first + i * DAY_NS,
            ..JobDay::default()
        })
        .collect();
    for (day, status) in ends {
        let d = &mut days[((day - first) / DAY_NS) as usize];
        match status {
            JobStatus::Completed | JobStatus::CompletedWithWarnings => d.succeeded += 1,
            JobStatus::Failed | JobStatus::Cancelled => d.failed += 1,
            JobStatus::InProgress => {}
        }
    }
    days
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_days_fill_the_range_to_today_and_count_by_status() {
        let now = 100 * DAY_NS + 5;
        let ends = [
            (98 * DAY_NS + 7, JobStatus::Completed),
            (100 * DAY_NS, JobStatus::Failed),
            (98 * DAY_NS, JobStatus::CompletedWithWarnings),
            (97 * DAY_NS + 1, JobStatus::Cancelled),
            (97 * DAY_NS + 2, JobStatus::InProgress),
            // Too old, and in the future: left out.
            (10 * DAY_NS, JobStatus::Completed),
            (101 * DAY_NS, JobStatus::Completed),
        ];
        let days = job_days(ends.into_iter(), now);
        let got: Vec<(i64, u64, u64)> = days
            .iter()
            .map(|d| (d.day_ns / DAY_NS, d.succeeded, d.failed))
            .collect();
        assert_eq!(got, vec![(97, 0, 1), (98, 2, 0), (99, 0, 0), (100, 0, 1)]);
        assert!(job_days(std::iter::empty(), now).is_empty());
    }
}
