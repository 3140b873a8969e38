//! Multi-user authorization (DESIGN.md §13): with a guard key registered in the config, the
//! protected operations run only with a signed approval of exactly that operation on this
//! vault, not expired by the vault's clock, never used before. Used approval ids are kept in
//! the catalog's `state` tree.

use crate::keys::guard::Approval;

use super::names::display_time;
use super::{Result, Vault, VaultError, now_ns};

impl Vault {
    /// The registered guard's public key, if any.
    pub fn guard_key(&self) -> Option<[u8; 32]> {
        let config = self.config.lock().expect("config lock");
        let hex_key = config.0.guard_key.as_ref()?;
        hex::decode(hex_key).ok()?.try_into().ok()
    }

    /// Register, replace (`Some`) or remove (`None`) the guard key.
    pub fn set_guard(&self, key: Option<[u8; 32]>) -> Result<()> {
        let _commit = self.commit_lock.lock().expect("commit lock");
        let mut config = self.config();
        config.guard_key = key.map(hex::encode);
        self.write_config(config)
    }

    /// Let `op` run: with no guard, always; with one, only on a valid `approval` of `op`,
    /// which is used up here.
    pub fn authorize(&self, op: &str, approval: Option<&Approval>) -> Result<()> {
        let Some(public) = self.guard_key() else {
            return Ok(());
        };
        let denied = |why: String| Err(VaultError::Denied(why));
        let Some(a) = approval else {
            return denied(format!(
                "\"{op}\" is protected by the guard: it needs --approval FILE from `vaultfs \
                 guard approve --vault-id {} --op \"{op}\"`",
                self.vault_id
            ));
        };
        if !a.signed_by(&public) {
            return denied(
                "the approval's signature does not verify: it was altered, or signed by \
                 another key than this vault's guard"
                    .into(),
            );
        }
        if a.vault_id != self.vault_id {
            return denied(format!(
                "the approval is for another vault ({}), not this one ({})",
                a.vault_id, self.vault_id
            ));
        }
        if a.op != op {
            return denied(format!(
                "the approval is for another operation (\"{}\"), not \"{op}\"",
                a.op
            ));
        }
        if now_ns() > a.expires_ns {
            return denied(format!(
                "the approval expired at {}",
                display_time(a.expires_ns)
            ));
        }
        let _commit = self.commit_lock.lock().expect("commit lock");
        if self.catalog.approval_used(&a.id)? {
            return denied(format!(
                "the approval {} was already used (each approval works once)",
                a.id
            ));
        }
        self.catalog
            .mark_approval_used(self.store.codec(), &a.id, a.expires_ns)?;
        self.store.db().flush()?;
        Ok(())
    }
}
