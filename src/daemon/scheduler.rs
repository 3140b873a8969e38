//! The daemon's policy runner: once a second, snapshot every item whose schedule is due (if
//! its incoming tree was ever written) and apply its retention; once a day, run gc. Time is the
//! vault's clock (`vault::now_ns`), so tests can move it. Each tick done is counted (the
//! control socket's status shows it), so a test can wait for the scheduler to have looked at
//! the clock instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::format::AuditOutcome;
use crate::identity::Actor;
use crate::vault::audit::What;
use crate::vault::gc::{self, Purge};
use crate::vault::jobs::{JobEnd, JobFigures, JobKind, SCHEDULER};
use crate::vault::{DAY_NS, Vault, now_ns};

/// Record what the daemon did by itself, as the daemon's user (DESIGN §13).
fn audit(vault: &Vault, op: &str, item: Option<&str>, params: String) {
    // SAFETY: geteuid has no preconditions.
    let me = Actor::of_uid(unsafe { libc::geteuid() });
    if let Err(e) = vault.audit(&me, &What::new(op, item, params), AuditOutcome::Ok) {
        tracing::warn!("an audit record could not be written: {}", e.for_log());
    }
}

const TICK: Duration = Duration::from_secs(1);

/// Run until `stop` is set (and the thread unparked), counting ticks in `ticks`. `work`
/// (the cache root, for scheduled replication) is `None` on a read-only mount of a secondary:
/// then nothing is done but counting.
pub fn run(
    vault: Arc<Vault>,
    stop: Arc<AtomicBool>,
    ticks: Arc<AtomicU64>,
    work: Option<std::path::PathBuf>,
) {
    let mut last_gc = now_ns();
    while !stop.load(Ordering::Relaxed) {
        std::thread::park_timeout(TICK);
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let Some(cache_root) = &work else {
            ticks.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        crate::vault::replica_settings::start_if_due(&vault, cache_root);
        if let Err(e) = tick(&vault) {
            tracing::warn!("scheduled snapshots: {}", e.for_log());
        }
        if let Err(e) = vault.evaluate_alerts() {
            tracing::warn!("alerts: {}", e.for_log());
        }
        if now_ns() - last_gc >= DAY_NS {
            last_gc = now_ns();
            let job = vault.job(JobKind::Gc, None, SCHEDULER);
            let result = gc::gc(&vault, false, Purge::Expired);
            job.finish(&result, |r| JobEnd {
                figures: r.figures(),
                warnings: 0,
                summary: Some(format!("daily gc: {} points purged", r.purged.len())),
            });
            match result {
                Ok(r) => {
                    let params = format!("daily: {} points purged", r.purged.len());
                    audit(&vault, "gc (daily)", None, params);
                    tracing::info!(
                        "daily gc: {} points purged, {} packs deleted, {} rewritten, {} bytes freed",
                        r.purged.len(),
                        r.packs_deleted,
                        r.packs_rewritten,
                        r.bytes_before.saturating_sub(r.bytes_after)
                    )
                }
                Err(e) => tracing::warn!("daily gc failed: {}", e.for_log()),
            }
        }
        ticks.fetch_add(1, Ordering::Relaxed);
    }
}

fn tick(vault: &Vault) -> crate::vault::Result<()> {
    let now = now_ns();
    for it in vault.items()? {
        if !vault.snapshot_due(&it.name, now)? {
            continue;
        }
        if let Some(live) = vault.live_incoming() {
            live.save()?;
        }
        if vault.incoming(&it.name)?.is_none() {
            tracing::info!(
                "a scheduled snapshot is due, but its incoming/ was never written; skipped"
            );
            // Record the skip by moving the policy's reference time.
            vault.touch_policy(&it.name)?;
            continue;
        }
        let job = vault.job(JobKind::Snapshot, Some(&it.name), SCHEDULER);
        let result = vault.snapshot(&it.name);
        job.finish(&result, |p| JobEnd {
            figures: JobFigures {
                files: p.files,
                bytes_total: p.bytes,
                ..JobFigures::default()
            },
            warnings: 0,
            summary: Some(format!("scheduled snapshot: point {}", p.name)),
        });
        match result {
            Ok(p) => {
                tracing::info!("scheduled snapshot: point {}", p.name);
                audit(
                    vault,
                    "snapshot (scheduled)",
                    Some(&it.name),
                    p.name.clone(),
                );
                for r in vault.apply_retention(&it.name)? {
                    audit(vault, "retire (retention)", Some(&it.name), r.name);
                }
            }
            Err(e) => tracing::warn!("a scheduled snapshot failed: {}", e.for_log()),
        }
    }
    Ok(())
}
