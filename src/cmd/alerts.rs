//! `vaultfs alerts VAULT [--all] [--json]`, `vaultfs alerts ack VAULT ID`.

use anyhow::{Result, bail};
use serde_json::Value;

use vaultfs::cli::{AlertsArgs, AlertsCommand};
use vaultfs::vault::alerts::{AlertRecord, AlertState};
use vaultfs::vault::names::{display_time, rfc3339};

use super::{Env, Outcome, table};

pub fn run(a: AlertsArgs, env: &Env) -> Result<Outcome> {
    if let Some(AlertsCommand::Ack(k)) = a.ack {
        let vault = env.open(&k.vault)?;
        if !vault.acknowledge(k.id)? {
            bail!(
                "no active alert {} (`vaultfs alerts VAULT` lists them)",
                k.id
            );
        }
        env.out(format!("alert {} acknowledged", k.id));
        return Ok(Outcome::Ok);
    }
    let Some(vault) = &a.vault else {
        bail!("give the vault: vaultfs alerts VAULT");
    };
    let vault = env.open(vault)?;
    // Conditions are looked at now, so an offline vault's alerts are current too.
    vault.evaluate_alerts()?;
    let alerts: Vec<AlertRecord> = vault
        .alerts_list()?
        .into_iter()
        .filter(|al| a.all || al.state != AlertState::Cleared)
        .collect();
    if a.json {
        let docs: Vec<Value> = alerts.iter().map(json).collect();
        env.out(serde_json::to_string_pretty(&docs)?);
        return Ok(Outcome::Ok);
    }
    let rows: Vec<Vec<String>> = alerts
        .iter()
        .map(|al| {
            let delivered = match al.deliveries.last() {
                None => "-".to_string(),
                Some(d) if d.ok => format!("yes ({} tries)", d.attempt),
                Some(d) => format!("failed ({} tries: {})", d.attempt, d.detail),
            };
            vec![
                al.id.to_string(),
                display_time(al.raised_ns),
                state(al.state).into(),
                al.item.clone().unwrap_or_else(|| "-".into()),
                delivered,
                al.message.clone(),
            ]
        })
        .collect();
    let header = ["ID", "RAISED", "STATE", "ITEM", "DELIVERED", "MESSAGE"];
    for line in table(&header, &rows) {
        env.out(line);
    }
    Ok(Outcome::Ok)
}

fn json(al: &AlertRecord) -> Value {
    let mut v = serde_json::to_value(al).expect("an alert serialises");
    v["raised"] = rfc3339(al.raised_ns).into();
    v
}

pub fn state(s: AlertState) -> &'static str {
    match s {
        AlertState::Active => "active",
        AlertState::Acknowledged => "acknowledged",
        AlertState::Cleared => "cleared",
    }
}
