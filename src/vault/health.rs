//! The vault's health in one structure, for `status` (and later metrics, alerts and the
//! advisor): per item the newest point's age against its schedule and the secondary's lag,
//! protection, space, data reduction, the last check and running jobs.

use std::path::Path;
use std::sync::Mutex;

use serde::Serialize;

use crate::format::{PointRecord, Schedule};
use crate::store::backend::{Key, Kind};

use super::alerts::{AlertRecord, AlertState};
use super::jobs::{JobKind, JobRecord, JobStatus};
use super::policy::{next_after, show_schedule};
use super::replica::{self, ItemLag};
use super::replica_settings::ReplicaSettings;
use super::stats::{Stats, stats};
use super::{Result, Vault, now_ns};

const SECOND_NS: i64 = 1_000_000_000;
/// Grace after a scheduled time before an item counts as overdue (its recovery point
/// objective breached): a tenth of its period, at least 5 minutes, at most an hour.
const GRACE_MIN_NS: i64 = 300 * SECOND_NS;
const GRACE_MAX_NS: i64 = 3600 * SECOND_NS;

#[derive(Debug, Clone, Serialize)]
pub struct Health {
    pub vault: String,
    pub vault_id: String,
    pub now_ns: i64,
    pub items: Vec<ItemHealth>,
    pub protection: Protection,
    pub space: Space,
    pub last_check: Option<CheckInfo>,
    /// When the newest check that read every chunk (and passed) ended.
    pub last_full_check_ns: Option<i64>,
    /// Jobs of this process still running (a daemon's, when the vault is mounted).
    pub active_jobs: Vec<JobRecord>,
    /// Jobs that failed among the newest 100.
    pub recent_failed_jobs: u64,
    /// Alerts not cleared (active or acknowledged).
    pub alerts: Vec<AlertRecord>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ItemHealth {
    pub item: String,
    pub points: u64,
    pub newest: Option<String>,
    /// Age of the newest point, seconds (None: no point yet).
    pub newest_age_seconds: Option<i64>,
    pub schedule: Option<String>,
    /// The schedule's period, seconds.
    pub period_seconds: Option<i64>,
    /// When the next point is due (vault time, ns), and whether that time plus the grace
    /// has passed without one.
    pub next_due_ns: Option<i64>,
    pub overdue: bool,
    /// The secondary's lag, when a secondary is set (see [`replica::lag`]).
    pub replica: Option<ItemLag>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Protection {
    /// 0: off.
    pub soft_delete_days: u32,
    pub soft_delete_always_on: bool,
    /// Kinds of the key slots, by id order (`passphrase`, `keyfile`, `rsa`).
    pub key_slots: Vec<String>,
    /// `disabled`, `enabled` or `locked`.
    pub immutability: &'static str,
    /// Whether a guard key is registered (multi-user authorization).
    pub guard: bool,
    pub replica: Option<ReplicaState>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReplicaState {
    pub target: String,
    pub schedule: Option<String>,
    pub last_ok_ns: Option<i64>,
    pub last_error: Option<String>,
    /// Why the lag could not be measured (the secondary unreachable).
    pub lag_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Space {
    /// Bytes in packs.
    pub stored_bytes: u64,
    pub packs: u64,
    /// Free bytes where the vault's local directory is (None for an S3 vault's store).
    pub free_bytes: Option<u64>,
    /// Bytes the live points hold, as files (every point counted whole).
    pub logical_bytes: u64,
    /// `logical_bytes / stored_bytes`: what dedup and compression together save.
    pub reduction_ratio: Option<f64>,
    /// Of the live points' data: bytes of files per distinct chunk byte (dedup), and distinct
    /// chunk bytes per sealed byte in the packs (compression); see `vault::stats`.
    pub dedup_ratio: Option<f64>,
    pub compression_ratio: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckInfo {
    pub job: u64,
    pub end_ns: Option<i64>,
    pub status: JobStatus,
    /// Whether it read every chunk (`check --read-data`).
    pub read_data: bool,
}

/// The period of a schedule.
pub fn period_ns(s: Schedule) -> i64 {
    match s {
        Schedule::EveryHours(h) => h.max(1) as i64 * 3600 * SECOND_NS,
        Schedule::Daily(_) => 86_400 * SECOND_NS,
        Schedule::Weekly { .. } => 7 * 86_400 * SECOND_NS,
    }
}

/// How long after a scheduled time an item counts as overdue.
pub fn grace_ns(s: Schedule) -> i64 {
    (period_ns(s) / 10).clamp(GRACE_MIN_NS, GRACE_MAX_NS)
}

/// An item's schedule against its newest point.
pub struct ItemSchedule {
    pub schedule: String,
    pub period_ns: i64,
    pub newest: Option<String>,
    pub next_due_ns: i64,
    /// The due time plus the grace has passed without a point.
    pub overdue: bool,
}

/// `item`'s schedule at `now`; `None` when it has none.
pub fn item_schedule(vault: &Vault, item: &str, now: i64) -> Result<Option<ItemSchedule>> {
    let Some(policy) = vault.policy(item)? else {
        return Ok(None);
    };
    let Some(s) = policy.schedule else {
        return Ok(None);
    };
    let points = vault.points(Some(item), false)?;
    let newest = points.last();
    let after = newest
        .map_or(policy.set_ns, |n| n.created_ns)
        .max(policy.set_ns);
    let due = next_after(s, after);
    Ok(Some(ItemSchedule {
        schedule: show_schedule(&Some(s)),
        period_ns: period_ns(s),
        newest: newest.map(|p| p.name.clone()),
        next_due_ns: due,
        overdue: now > due + grace_ns(s),
    }))
}

/// Gather the vault's health; `cache_root` locates an S3 secondary's cache.
pub fn gather(vault: &Vault, cache_root: &Path) -> Result<Health> {
    let now = now_ns();
    let settings = ReplicaSettings::load(vault);
    let (lags, lag_error) = match settings.target(cache_root) {
        Ok(Some(t)) => match replica::lag(vault, &t) {
            Ok(l) => (Some(l), None),
            Err(e) => (None, Some(e.to_string())),
        },
        Ok(None) => (None, None),
        Err(e) => (None, Some(e.to_string())),
    };
    let mut items = Vec::new();
    let mut logical_bytes = 0;
    let mut live = Vec::new();
    for it in vault.items()? {
        let points = vault.points(Some(&it.name), false)?;
        logical_bytes += points.iter().map(|p| p.bytes).sum::<u64>();
        live.extend(points.iter().cloned());
        let newest = points.last();
        let sched = item_schedule(vault, &it.name, now)?;
        items.push(ItemHealth {
            item: it.name.clone(),
            points: points.len() as u64,
            newest: newest.map(|p| p.name.clone()),
            newest_age_seconds: newest.map(|p| (now - p.created_ns) / SECOND_NS),
            schedule: sched.as_ref().map(|s| s.schedule.clone()),
            period_seconds: sched.as_ref().map(|s| s.period_ns / SECOND_NS),
            next_due_ns: sched.as_ref().map(|s| s.next_due_ns),
            overdue: sched.as_ref().is_some_and(|s| s.overdue),
            replica: lags
                .as_ref()
                .and_then(|l| l.iter().find(|l| l.item == it.name).cloned()),
        });
    }
    let params = vault.params();
    let protection = Protection {
        soft_delete_days: params.soft_delete_days,
        soft_delete_always_on: params.soft_delete_always_on,
        key_slots: vault.key_slots().into_iter().map(|s| s.kind).collect(),
        immutability: vault.immutability().as_str(),
        guard: vault.guard_key().is_some(),
        replica: settings.target.clone().map(|target| ReplicaState {
            target,
            schedule: settings.schedule.map(|s| show_schedule(&Some(s))),
            last_ok_ns: settings.last_ok_ns,
            last_error: settings.last_error.clone(),
            lag_error,
        }),
    };
    let (mut stored_bytes, mut packs) = (0, 0);
    for o in vault.store().backend().list(Kind::Pack)? {
        if let Key::Pack(_) = o.key {
            stored_bytes += o.size;
            packs += 1;
        }
    }
    let data = live_stats(vault, &live)?.filter(|s| s.stored_data_bytes > 0);
    let space = Space {
        stored_bytes,
        packs,
        free_bytes: match vault.location() {
            super::Location::Local(_) => crate::view::space::free_bytes(vault.dir()),
            super::Location::S3(_) => None,
        },
        logical_bytes,
        reduction_ratio: (stored_bytes > 0).then(|| logical_bytes as f64 / stored_bytes as f64),
        dedup_ratio: data.as_ref().map(Stats::dedup_ratio),
        compression_ratio: data.as_ref().map(Stats::compression_ratio),
    };
    let jobs = vault.jobs_list()?;
    let last_check = jobs
        .iter()
        .rev()
        .find(|j| j.kind == JobKind::Check && j.status != JobStatus::InProgress)
        .map(|j| CheckInfo {
            job: j.id,
            end_ns: j.end_ns,
            status: j.status,
            read_data: j
                .summary
                .as_deref()
                .is_some_and(|s| s.contains("of data verified")),
        });
    let last_full_check_ns = jobs
        .iter()
        .rev()
        .find(|j| {
            j.kind == JobKind::Check
                && j.status == JobStatus::Completed
                && j.summary
                    .as_deref()
                    .is_some_and(|s| s.contains("of data verified"))
        })
        .and_then(|j| j.end_ns);
    let recent_failed_jobs = jobs
        .iter()
        .rev()
        .take(100)
        .filter(|j| j.status == JobStatus::Failed)
        .count() as u64;
    Ok(Health {
        vault: vault.location().display(),
        vault_id: vault.vault_id().to_string(),
        now_ns: now,
        items,
        protection,
        space,
        last_check,
        last_full_check_ns,
        active_jobs: jobs
            .into_iter()
            .filter(|j| j.status == JobStatus::InProgress)
            .collect(),
        recent_failed_jobs,
        alerts: vault
            .alerts_list()?
            .into_iter()
            .filter(|a| a.state != AlertState::Cleared)
            .collect(),
    })
}

/// The figures of the live points, walked once per set of points: points never change, so
/// the daemon's scrapes (every 15 s) walk the trees again only after a point came or went.
fn live_stats(vault: &Vault, live: &[PointRecord]) -> Result<Option<Stats>> {
    type Memo = Option<(String, Vec<(String, String, u64)>, Stats)>;
    static MEMO: Mutex<Memo> = Mutex::new(None);
    if live.is_empty() {
        return Ok(None);
    }
    let key: Vec<(String, String, u64)> = live
        .iter()
        .map(|p| (p.item.clone(), p.name.clone(), p.revision))
        .collect();
    let id = vault.vault_id().to_string();
    if let Some((v, k, s)) = &*MEMO.lock().expect("stats memo") {
        if *v == id && *k == key {
            return Ok(Some(s.clone()));
        }
    }
    let s = stats(vault.store(), live)?;
    *MEMO.lock().expect("stats memo") = Some((id, key, s.clone()));
    Ok(Some(s))
}
