//! `vaultfs audit`, and the hook that writes an audit record for every state-changing command
//! (run locally or through the control socket) once its outcome is known.

use anyhow::{Result, bail};
use serde_json::json;

use vaultfs::cli::{AuditArgs, Command, GuardCommand, KeyCommand, RoleCommand};
use vaultfs::format::{AuditOutcome, AuditRecord};
use vaultfs::vault::audit::What;
use vaultfs::vault::names::{display_time, rfc3339};
use vaultfs::vault::{VaultError, now_ns};

use super::{Env, Outcome, one_line, table};

/// What a command changes, for its audit record; `None` for commands that only read.
pub fn describe(command: &Command, argv: &[String]) -> Option<What> {
    let params = argv.join(" ");
    let item_of = |spec: &str| spec.split('/').next().map(str::to_string);
    let (op, item) = match command {
        Command::Backup(a) => ("backup", Some(a.item.clone())),
        Command::Snapshot(a) => ("snapshot", Some(a.item.clone())),
        Command::Delete(a) => ("delete", item_of(&a.point)),
        Command::Undelete(a) => ("undelete", item_of(&a.point)),
        Command::Restore(a) => ("restore", item_of(&a.point)),
        Command::Gc(a) if !a.dry_run => ("gc", None),
        Command::Repair(a) if !a.dry_run => ("repair", None),
        Command::Replicate(a) if !a.status => ("replicate", None),
        Command::Policy(a) => {
            let changes = a.schedule.is_some()
                || a.keep_last.is_some()
                || a.keep_daily.is_some()
                || a.keep_weekly.is_some()
                || a.keep_monthly.is_some()
                || a.keep_yearly.is_some();
            if !changes {
                return None;
            }
            ("policy", Some(a.item.clone()))
        }
        Command::Settings(a) => {
            let changes = a.soft_delete_days.is_some()
                || a.soft_delete.is_some()
                || a.replicate_to.is_some()
                || a.replicate_every.is_some()
                || a.immutability.is_some();
            if !changes {
                return None;
            }
            ("settings", None)
        }
        Command::Key(k) => match k {
            KeyCommand::List(_) => return None,
            KeyCommand::Add(_) => ("key add", None),
            KeyCommand::Remove(_) => ("key remove", None),
            KeyCommand::Rotate(_) => ("key rotate", None),
        },
        Command::Guard(GuardCommand::Init(_)) => ("guard init", None),
        Command::Guard(GuardCommand::Remove(_)) => ("guard remove", None),
        Command::Role(RoleCommand::Grant(_)) => ("role grant", None),
        Command::Role(RoleCommand::Revoke(_)) => ("role revoke", None),
        _ => return None,
    };
    Some(What {
        op: op.into(),
        item,
        params,
    })
}

/// Append the record of a finished command to the vault it opened (none opened: the command
/// failed before it could touch the vault, and no key was there to seal a record with).
pub fn record(env: &Env, what: &What, result: &Result<Outcome>) {
    let Some(vault) = env.opened() else { return };
    // A mistake (an unknown point, a bad setting) changed nothing and leaves no record; a
    // refusal by immutability, a role or the guard does.
    let outcome = match result {
        Ok(_) => AuditOutcome::Ok,
        Err(e) if e.chain().any(is_denial) => AuditOutcome::Denied(one_line(e)),
        Err(_) => return,
    };
    if let Err(e) = vault.audit(env.caller(), what, outcome) {
        env.err(format!(
            "vaultfs: warning: the audit record of this {} could not be written: {e}",
            what.op
        ));
    }
}

pub fn run(a: AuditArgs, env: &Env) -> Result<Outcome> {
    let vault = env.open(&a.vault)?;
    let since = a.since.as_deref().map(parse_since).transpose()?;
    let log = vault.audit_log()?;
    for w in &log.warnings {
        env.err(format!("vaultfs: warning: {w}"));
    }
    if a.verify {
        for p in &log.problems {
            env.err(format!("vaultfs: {p}"));
        }
        if !log.problems.is_empty() {
            bail!(
                "the audit log was tampered with: {} problems (listed above)",
                log.problems.len()
            );
        }
        env.out(format!(
            "audit log: {} records, the chain is intact",
            log.records.len()
        ));
        return Ok(Outcome::Ok);
    }
    let shown: Vec<&AuditRecord> = log
        .records
        .iter()
        .filter(|r| a.item.is_none() || r.item == a.item)
        .filter(|r| since.is_none_or(|s| r.time_ns >= s))
        .collect();
    if a.json {
        let js: Vec<_> = shown.iter().map(|r| to_json(r)).collect();
        env.out(serde_json::to_string_pretty(&js)?);
    } else {
        let rows: Vec<Vec<String>> = shown
            .iter()
            .map(|r| {
                vec![
                    r.seq.to_string(),
                    display_time(r.time_ns),
                    format!("{} ({})", r.user, r.uid),
                    r.op.clone(),
                    r.item.clone().unwrap_or_else(|| "-".into()),
                    outcome_text(&r.outcome),
                ]
            })
            .collect();
        let header = ["SEQ", "TIME", "USER", "OPERATION", "ITEM", "OUTCOME"];
        for line in table(&header, &rows) {
            env.out(line);
        }
    }
    if !log.problems.is_empty() {
        bail!(
            "the audit log was tampered with: {} problems; run `vaultfs audit --verify`",
            log.problems.len()
        );
    }
    Ok(Outcome::Ok)
}

fn is_denial(e: &(dyn std::error::Error + 'static)) -> bool {
    matches!(e.downcast_ref::<VaultError>(), Some(VaultError::Denied(_)))
}

fn outcome_text(o: &AuditOutcome) -> String {
    match o {
        AuditOutcome::Ok => "ok".into(),
        AuditOutcome::Failed(e) => format!("failed: {e}"),
        AuditOutcome::Denied(e) => format!("denied: {e}"),
    }
}

fn to_json(r: &AuditRecord) -> serde_json::Value {
    let (outcome, reason) = match &r.outcome {
        AuditOutcome::Ok => ("ok", None),
        AuditOutcome::Failed(e) => ("failed", Some(e)),
        AuditOutcome::Denied(e) => ("denied", Some(e)),
    };
    json!({
        "seq": r.seq, "time": rfc3339(r.time_ns), "time_ns": r.time_ns,
        "uid": r.uid, "user": r.user, "op": r.op, "item": r.item, "params": r.params,
        "outcome": outcome, "reason": reason,
    })
}

/// `--since`: a UTC time, or an age before now (vault time) like `90m`, `36h`, `7d`.
fn parse_since(s: &str) -> Result<i64> {
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        // Past 2262 is beyond i64 nanoseconds: later than any record.
        return Ok(i64::try_from(t.as_nanosecond()).unwrap_or(i64::MAX));
    }
    let unit = |u: char| match u {
        's' => Some(1),
        'm' => Some(60),
        'h' => Some(3600),
        'd' => Some(86_400),
        _ => None,
    };
    let age = s
        .char_indices()
        .last()
        .and_then(|(i, u)| Some((s[..i].parse::<i64>().ok()?, unit(u)?)))
        .filter(|(n, _)| *n >= 0);
    match age {
        Some((n, secs)) => Ok(now_ns() - n.saturating_mul(secs).saturating_mul(1_000_000_000)),
        None => bail!(
            "--since {s:?}: give a UTC time like 2026-11-23T23:10:05Z or an age like 90m, 36h, 7d"
        ),
    }
}
