//! The immutable vault (DESIGN.md §13): once enabled, a point its item's retention still keeps
//! cannot be deleted (by `delete`, by `mv` into `.deleted/`, by a policy change), retention and
//! soft-delete days cannot be lowered, and deleted points are not purged early; `locked` can
//! never be undone. Points retention no longer keeps are retired as usual. The mode lives in
//! the config, bound into the params' associated data (format v4).

use crate::format::{Immutability, PointRecord, Retention};

use super::policy::retire;
use super::{Result, Vault, VaultError};

/// Whether `new` keeps less than `old` anywhere (an empty retention keeps every point, so
/// moving to it lowers nothing, and leaving it lowers).
pub fn lowers(old: &Retention, new: &Retention) -> bool {
    let keep_all = |r: &Retention| *r == Retention::default();
    !keep_all(new)
        && (keep_all(old)
            || new.last < old.last
            || new.daily < old.daily
            || new.weekly < old.weekly
            || new.monthly < old.monthly
            || new.yearly < old.yearly)
}

impl Vault {
    pub fn immutability(&self) -> Immutability {
        self.config.lock().expect("config lock").0.immutability
    }

    fn immutable(&self) -> bool {
        self.immutability() != Immutability::Disabled
    }

    /// Change the mode: `disabled` → `enabled` → `locked`; `enabled` → `disabled` is allowed,
    /// nothing leaves `locked`.
    pub fn set_immutability(&self, mode: Immutability) -> Result<()> {
        let _commit = self.commit_lock.lock().expect("commit lock");
        let mut config = self.config();
        if config.immutability == Immutability::Locked && mode != Immutability::Locked {
            return Err(VaultError::Denied(
                "immutability is locked for this vault; it can never be disabled".into(),
            ));
        }
        if config.immutability == mode {
            return Ok(());
        }
        config.immutability = mode;
        self.write_config(config)
    }

    /// Refuse to soft-delete `point` while its item's retention keeps it.
    pub(crate) fn may_delete(&self, point: &PointRecord) -> Result<()> {
        if !self.immutable() {
            return Ok(());
        }
        let codec = self.store.codec();
        let retention = self
            .catalog
            .policy(codec, &point.item)?
            .map(|p| p.retention)
            .unwrap_or_default();
        let live: Vec<PointRecord> = self
            .catalog
            .points_of(codec, &point.item)?
            .into_iter()
            .filter(|p| p.deleted_at_ns.is_none())
            .collect();
        if retire(&live, &retention).contains(&point.name) {
            return Ok(());
        }
        Err(VaultError::Denied(format!(
            "the vault is immutable: {}/{} is inside its retention (the item's policy keeps it)",
            point.item, point.name
        )))
    }

    /// Refuse a retention that keeps less than `old` (an empty retention keeps everything).
    pub(crate) fn may_change_retention(&self, old: &Retention, new: &Retention) -> Result<()> {
        if !self.immutable() {
            return Ok(());
        }
        let lower = lowers(old, new);
        if lower {
            return Err(VaultError::Denied(
                "the vault is immutable: retention cannot be reduced".into(),
            ));
        }
        Ok(())
    }

    /// Refuse lowering the soft-delete days (or turning soft delete off), and purging early.
    pub(crate) fn may_weaken_soft_delete(&self, what: &str) -> Result<()> {
        if self.immutable() {
            return Err(VaultError::Denied(format!(
                "the vault is immutable: {what}"
            )));
        }
        Ok(())
    }
}
