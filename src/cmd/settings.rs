//! `vaultfs settings`

use anyhow::Result;
use serde_json::json;

use vaultfs::cli::{ImmutabilityArg, SettingsArgs, SoftDeleteMode};
use vaultfs::format::Immutability;
use vaultfs::vault::Vault;
use vaultfs::vault::alerts::AlertSettings;
use vaultfs::vault::names::rfc3339;
use vaultfs::vault::policy::{parse_schedule, show_schedule};
use vaultfs::vault::replica_settings::ReplicaSettings;

use super::{Env, Outcome};

pub fn run(a: SettingsArgs, env: &Env) -> Result<Outcome> {
    let vault = env.open(&a.vault)?;
    let mut days = a.soft_delete_days;
    let always_on = a.soft_delete == Some(SoftDeleteMode::AlwaysOn);
    if a.soft_delete == Some(SoftDeleteMode::Off) {
        if days.is_some_and(|d| d != 0) {
            anyhow::bail!("--soft-delete off and --soft-delete-days N contradict each other");
        }
        days = Some(0);
    }
    // Weakening soft delete and disabling immutability are guard-protected (DESIGN §13).
    if let Some(d) = days
        && d < vault.params().soft_delete_days
    {
        let op = format!("settings --soft-delete-days {d}");
        super::guard::authorize(env, &vault, &op, &a.approval)?;
    }
    if a.immutability == Some(ImmutabilityArg::Disabled)
        && vault.immutability() != Immutability::Disabled
    {
        let op = "settings --immutability disabled";
        super::guard::authorize(env, &vault, op, &a.approval)?;
    }
    let p = if days.is_some() || always_on {
        vault.set_soft_delete(days, always_on)?
    } else {
        vault.params()
    };
    let state = match (p.soft_delete_days, p.soft_delete_always_on) {
        (0, _) => "off".to_string(),
        (d, true) => format!("{}, always-on", super::plural(d.into(), "day", "days")),
        (d, false) => super::plural(d.into(), "day", "days"),
    };
    if let Some(mode) = a.immutability {
        vault.set_immutability(mode.into())?;
    }
    let replica = replication(&vault, &a, env)?;
    let alerts = alerting(&vault, &a)?;
    if a.json {
        env.out(serde_json::to_string_pretty(&json!({
            "vault_created": rfc3339(p.created_ns),
            "soft_delete_days": p.soft_delete_days,
            "soft_delete_always_on": p.soft_delete_always_on,
            "immutability": vault.immutability().as_str(),
            "replicate_to": replica.target,
            "replicate_every": replica.schedule.is_some().then(|| show_schedule(&replica.schedule)),
            "replicated_last": replica.last_ok_ns.map(rfc3339),
            "alert_command": alerts.command,
        }))?);
        return Ok(Outcome::Ok);
    }
    env.out(format!("soft delete: {state}"));
    // Shown once it was set or asked about (the one-line output stays as it was otherwise).
    if a.immutability.is_some() || vault.immutability() != Immutability::Disabled {
        env.out(format!("immutability: {}", vault.immutability().as_str()));
    }
    if let Some(t) = &replica.target {
        let every = match replica.schedule {
            Some(_) => show_schedule(&replica.schedule),
            None => "on demand (vaultfs replicate)".into(),
        };
        env.out(format!("replicates to: {t}, {every}"));
    }
    if let Some(cmd) = &alerts.command {
        env.out(format!("alert command: {cmd}"));
    }
    Ok(Outcome::Ok)
}

/// `--replicate-to` / `--replicate-every`: kept beside the vault (see `replica_settings`).
fn replication(vault: &Vault, a: &SettingsArgs, env: &Env) -> Result<ReplicaSettings> {
    let mut s = ReplicaSettings::load(vault);
    let before = s.clone();
    if let Some(t) = &a.replicate_to {
        if t.as_os_str() == "none" {
            s = ReplicaSettings::default();
        } else {
            s.set_target(&env.location(t)?);
        }
    }
    if let Some(spec) = &a.replicate_every {
        s.schedule = parse_schedule(spec)?;
        if s.schedule.is_some() && s.target.is_none() {
            anyhow::bail!("--replicate-every needs a secondary: give --replicate-to TARGET");
        }
    }
    if s != before {
        s.save(vault)?;
    }
    Ok(s)
}

/// `--alert-command`: kept beside the vault (see `vault::alerts`).
fn alerting(vault: &Vault, a: &SettingsArgs) -> Result<AlertSettings> {
    let mut s = AlertSettings::load(vault);
    if let Some(cmd) = &a.alert_command {
        if cmd.trim().is_empty() {
            anyhow::bail!("--alert-command is empty (give `none` to stop delivery)");
        }
        s.command = (cmd != "none").then(|| cmd.clone());
        s.save(vault)?;
    }
    Ok(s)
}
