//! `vaultfs status VAULT [--json]`: the vault's health (see `vault::health`).

use anyhow::Result;

use vaultfs::cli::StatusArgs;
use vaultfs::vault::health::{self, Health};
use vaultfs::vault::names::display_time;

use super::replicate::duration;
use super::{Env, Outcome, human_bytes, table};

pub fn run(a: StatusArgs, env: &Env) -> Result<Outcome> {
    let vault = env.open(&a.vault)?;
    vault.evaluate_alerts()?;
    let h = health::gather(&vault, &env.cache_root())?;
    if a.json {
        env.out(serde_json::to_string_pretty(&h)?);
    } else {
        text(&h).into_iter().for_each(|l| env.out(l));
    }
    Ok(Outcome::Ok)
}

fn text(h: &Health) -> Vec<String> {
    let p = &h.protection;
    let mut out = vec![
        format!("vault: {} (id {})", h.vault, h.vault_id),
        format!("time: {}", display_time(h.now_ns)),
        format!(
            "soft delete: {}",
            match (p.soft_delete_days, p.soft_delete_always_on) {
                (0, _) => "off".to_string(),
                (d, true) => format!("{d} days, always-on"),
                (d, false) => format!("{d} days"),
            }
        ),
        format!(
            "key slots: {} ({})",
            p.key_slots.len(),
            p.key_slots.join(", ")
        ),
        format!(
            "immutability: {}; guard: {}",
            p.immutability,
            if p.guard { "set" } else { "none" }
        ),
    ];
    out.push(match &p.replica {
        None => "secondary: none".into(),
        Some(r) => format!(
            "secondary: {}, {}, last replicated {}{}",
            r.target,
            r.schedule.as_deref().unwrap_or("on demand"),
            r.last_ok_ns.map_or("never".into(), display_time),
            r.lag_error
                .as_ref()
                .or(r.last_error.as_ref())
                .map(|e| format!(", error: {e}"))
                .unwrap_or_default()
        ),
    });
    let s = &h.space;
    out.push(format!(
        "space: {} stored in {} packs, {} free; points hold {}{}",
        human_bytes(s.stored_bytes),
        s.packs,
        s.free_bytes.map_or("unknown".into(), human_bytes),
        human_bytes(s.logical_bytes),
        s.reduction_ratio
            .map(|r| format!(" (dedup+compression {r:.1}x)"))
            .unwrap_or_default()
    ));
    if let (Some(d), Some(c)) = (s.dedup_ratio, s.compression_ratio) {
        out.push(format!(
            "data reduction: dedup {d:.2}x, compression {c:.2}x"
        ));
    }
    out.push(match &h.last_check {
        None => "last check: never".into(),
        Some(c) => format!(
            "last check: {} (job {}, {}{})",
            c.end_ns.map_or("-".into(), display_time),
            c.job,
            super::jobs::status(c.status),
            if c.read_data { ", data read" } else { "" }
        ),
    });
    out.push(format!(
        "running jobs: {}; failed jobs among the newest 100: {}",
        if h.active_jobs.is_empty() {
            "none".to_string()
        } else {
            h.active_jobs
                .iter()
                .map(|j| format!("{} ({:?})", j.id, j.kind).to_lowercase())
                .collect::<Vec<_>>()
                .join(", ")
        },
        h.recent_failed_jobs
    ));
    out.push(format!("alerts: {}", h.alerts.len()));
    for al in &h.alerts {
        out.push(format!(
            "  {} ({}): {}",
            al.id,
            super::alerts::state(al.state),
            al.message
        ));
    }
    let rows: Vec<Vec<String>> = h
        .items
        .iter()
        .map(|i| {
            vec![
                i.item.clone(),
                i.points.to_string(),
                i.newest.clone().unwrap_or_else(|| "-".into()),
                i.newest_age_seconds.map_or("-".into(), duration),
                i.schedule.clone().unwrap_or_else(|| "none".into()),
                if i.overdue { "OVERDUE" } else { "ok" }.into(),
                match &i.replica {
                    None => "-".into(),
                    Some(l) => l.lag_seconds.map_or("never replicated".into(), duration),
                },
            ]
        })
        .collect();
    out.extend(table(
        &[
            "ITEM",
            "POINTS",
            "NEWEST",
            "AGE",
            "SCHEDULE",
            "STATE",
            "REPLICA LAG",
        ],
        &rows,
    ));
    out
}
