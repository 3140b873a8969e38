//! `vaultfs policy`

use anyhow::Result;
use serde_json::{Value, json};

use vaultfs::cli::PolicyArgs;
use vaultfs::format::{PointRecord, PolicyRecord, Retention};
use vaultfs::vault::immutable::lowers;
use vaultfs::vault::names::rfc3339;
use vaultfs::vault::policy::{parse_schedule, retire, show_schedule};

use super::{Env, Outcome, plural};

pub fn run(a: PolicyArgs, env: &Env) -> Result<Outcome> {
    let vault = env.open(&a.vault)?;
    let schedule = a.schedule.as_deref().map(parse_schedule).transpose()?;
    let keeps = [
        a.keep_last,
        a.keep_daily,
        a.keep_weekly,
        a.keep_monthly,
        a.keep_yearly,
    ];
    let change = |r: &mut Retention| {
        let set = |field: &mut u32, v: Option<u32>| {
            if let Some(v) = v {
                *field = v;
            }
        };
        set(&mut r.last, a.keep_last);
        set(&mut r.daily, a.keep_daily);
        set(&mut r.weekly, a.keep_weekly);
        set(&mut r.monthly, a.keep_monthly);
        set(&mut r.yearly, a.keep_yearly);
    };
    let old = vault
        .policy(&a.item)?
        .map(|p| p.retention)
        .unwrap_or_default();
    let mut new = old;
    change(&mut new);
    if a.dry_run {
        let points = vault.points(Some(&a.item), false)?;
        let retired = retire(&points, &new);
        // Oldest first, as `points` lists them.
        let would: Vec<&PointRecord> = points
            .iter()
            .filter(|p| retired.contains(&p.name))
            .collect();
        if a.json {
            let mut js = policy_json(&a.item, vault.policy(&a.item)?.as_ref(), &new);
            js["dry_run"] = json!(true);
            js["would_retire"] = json!(would.iter().map(|p| point_json(p)).collect::<Vec<_>>());
            js["would_keep"] = json!(points.len() - retired.len());
            env.out(serde_json::to_string_pretty(&js)?);
            return Ok(Outcome::Ok);
        }
        for p in would {
            env.out(format!("would retire {}/{} (soft delete)", p.item, p.name));
        }
        env.out(format!(
            "dry run: would keep {} and retire {}; nothing changed",
            plural((points.len() - retired.len()) as u64, "point", "points"),
            retired.len()
        ));
        return Ok(Outcome::Ok);
    }
    // Reducing retention is guard-protected: the approval names the whole new retention.
    if lowers(&old, &new) {
        let op = format!(
            "policy {} --keep-last {} --keep-daily {} --keep-weekly {} --keep-monthly {} \
             --keep-yearly {}",
            a.item, new.last, new.daily, new.weekly, new.monthly, new.yearly
        );
        super::guard::authorize(env, &vault, &op, &a.approval)?;
    }
    let mut retired = Vec::new();
    let rec = if schedule.is_some() || keeps.iter().any(|k| k.is_some()) {
        let rec = vault.set_policy(&a.item, schedule, change)?;
        retired = vault.apply_retention(&a.item)?;
        Some(rec)
    } else {
        vault.policy(&a.item)?
    };
    if a.json {
        let keep = rec.as_ref().map(|r| r.retention).unwrap_or_default();
        let mut js = policy_json(&a.item, rec.as_ref(), &keep);
        js["retired"] = json!(retired.iter().map(point_json).collect::<Vec<_>>());
        env.out(serde_json::to_string_pretty(&js)?);
        return Ok(Outcome::Ok);
    }
    for p in &retired {
        env.out(format!("retired {}/{} (soft-deleted)", p.item, p.name));
    }
    env.out(describe(&a.item, rec.as_ref()));
    Ok(Outcome::Ok)
}

/// A policy as JSON: `keep` is the retention shown (the one a dry run would set).
fn policy_json(item: &str, rec: Option<&PolicyRecord>, keep: &Retention) -> Value {
    json!({
        "item": item,
        "policy": rec.is_some(),
        "schedule": rec.and_then(|r| r.schedule.is_some().then(|| show_schedule(&r.schedule))),
        "keep": {
            "last": keep.last, "daily": keep.daily, "weekly": keep.weekly,
            "monthly": keep.monthly, "yearly": keep.yearly,
        },
        "set": rec.map(|r| rfc3339(r.set_ns)),
    })
}

fn point_json(p: &PointRecord) -> Value {
    json!({"item": p.item, "point": p.name, "created": rfc3339(p.created_ns)})
}

/// One line: `ITEM: schedule hourly; keep last 3, daily 7`.
pub fn describe(item: &str, rec: Option<&PolicyRecord>) -> String {
    let Some(rec) = rec else {
        return format!("{item}: no policy (no schedule, every point kept)");
    };
    let r = rec.retention;
    let keep: Vec<String> = [
        ("last", r.last),
        ("daily", r.daily),
        ("weekly", r.weekly),
        ("monthly", r.monthly),
        ("yearly", r.yearly),
    ]
    .iter()
    .filter(|(_, n)| *n > 0)
    .map(|(k, n)| format!("{k} {n}"))
    .collect();
    let keep = if keep.is_empty() {
        "every point".to_string()
    } else {
        keep.join(", ")
    };
    format!(
        "{item}: schedule {}; keep {keep}",
        show_schedule(&rec.schedule)
    )
}
