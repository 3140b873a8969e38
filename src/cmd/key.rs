//! `vaultfs key list | add | remove | rotate`

use anyhow::{Result, bail};
use serde_json::json;

use vaultfs::cli::KeyCommand;
use vaultfs::vault::VaultError;
use vaultfs::vault::names::display_time;

use super::{Env, Outcome, table};

pub fn run(cmd: KeyCommand, env: &Env) -> Result<Outcome> {
    if env.is_remote() {
        // The daemon keeps sealing with the keys it opened with; a key change waits for the
        // unmount, so no command runs against a vault whose keys changed under it.
        return Err(VaultError::KeysWhileMounted.into());
    }
    match cmd {
        KeyCommand::List(a) => {
            let vault = env.open(&a.vault)?;
            let slots = vault.key_slots();
            let epochs = vault.key_epochs();
            if a.json {
                let doc = json!({
                    "slots": slots.iter().map(|s| json!({
                        "id": s.id, "kind": s.kind, "label": s.label, "detail": s.detail,
                    })).collect::<Vec<_>>(),
                    "epochs": epochs.iter().map(|e| json!({
                        "epoch": e.epoch, "created_ns": e.created_ns, "sealing": e.sealing,
                    })).collect::<Vec<_>>(),
                });
                env.out(serde_json::to_string_pretty(&doc)?);
                return Ok(Outcome::Ok);
            }
            let rows: Vec<Vec<String>> = slots
                .iter()
                .map(|s| {
                    vec![
                        s.id.to_string(),
                        s.kind.clone(),
                        s.label.clone(),
                        s.detail.clone(),
                    ]
                })
                .collect();
            for line in table(&["SLOT", "KIND", "LABEL", "DETAIL"], &rows) {
                env.out(line);
            }
            env.out("");
            let rows: Vec<Vec<String>> = epochs.iter().map(epoch_row).collect();
            for line in table(&["EPOCH", "CREATED", "USE"], &rows) {
                env.out(line);
            }
        }
        KeyCommand::Add(a) => {
            let vault = env.open(&a.vault)?;
            let new = env.new_slot(&a.secret, &env.path(&a.vault))?;
            let kind = new.kind();
            let id = vault.key_add(&new, &a.label)?;
            env.out(format!("added key slot {id} ({kind})"));
        }
        KeyCommand::Remove(a) => {
            let vault = env.open(&a.vault)?;
            let op = format!("key remove {}", a.slot);
            super::guard::authorize(env, &vault, &op, &a.approval)?;
            let slot = vault.key_remove(a.slot)?;
            env.out(format!(
                "removed key slot {} ({}{}): its key no longer opens the vault",
                slot.id,
                slot.kind,
                if slot.label.is_empty() {
                    String::new()
                } else {
                    format!(", {:?}", slot.label)
                }
            ));
        }
        KeyCommand::Rotate(a) => {
            let vault = env.open(&a.vault)?;
            if a.data_key {
                let epoch = vault.rotate_data_key()?;
                env.out(format!(
                    "started key epoch {epoch}: data written from now on is sealed with its new data key"
                ));
                return Ok(Outcome::Ok);
            }
            let Some(id) = a.slot else {
                bail!("name the slot to rotate, or give --data-key");
            };
            let new = env.new_slot(&a.secret, &env.path(&a.vault))?;
            vault.key_rotate(id, &new)?;
            env.out(format!(
                "rotated key slot {id}: its old key no longer opens the vault"
            ));
        }
    }
    Ok(Outcome::Ok)
}

/// One row of the key epochs table (also used by `check`).
pub fn epoch_row(e: &vaultfs::vault::keyring::EpochInfo) -> Vec<String> {
    vec![
        e.epoch.to_string(),
        e.created_ns
            .map(display_time)
            .unwrap_or_else(|| "with the vault".into()),
        if e.sealing {
            "seals new data".into()
        } else {
            "reads older data".into()
        },
    ]
}
