//! `vaultfs settings`

use anyhow::Result;

use vaultfs::cli::{SettingsArgs, SoftDeleteMode};

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
    let p = if days.is_some() || always_on {
        vault.set_soft_delete(days, always_on)?
    } else {
        vault.params()
    };
    let state = match (p.soft_delete_days, p.soft_delete_always_on) {
        (0, _) => "off".to_string(),
        (d, true) => format!("{d} days, always-on"),
        (d, false) => format!("{d} days"),
    };
    env.out(format!("soft delete: {state}"));
    Ok(Outcome::Ok)
}
