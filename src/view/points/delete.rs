//! Soft delete through the mount: moving a point between `points/ITEM/` and `.deleted/ITEM/`,
//! the one change the read-only side accepts.

use super::Points;
use super::inodes::{Area, Entry};
use crate::format::AuditOutcome;
use crate::identity::Actor;
use crate::vault::VaultError;
use crate::vault::audit::What;
use crate::view::error::{ViewError, ViewResult};
use crate::view::types::Caller;

impl Points {
    /// The one change allowed outside `incoming/`: moving a point between `points/ITEM/` and
    /// `.deleted/ITEM/` under the same name soft-deletes or undeletes it, if `may(item)` (the
    /// caller's role) allows it.
    pub fn rename(
        &self,
        caller: Caller,
        may: impl FnOnce(&str) -> bool,
        parent: u64,
        name: &[u8],
        newparent: u64,
        newname: &[u8],
    ) -> ViewResult<()> {
        let (from, to) = (self.entry(parent)?, self.entry(newparent)?);
        let (Entry::ItemDir { area: a, item: i }, Entry::ItemDir { area: b, item: j }) =
            (&from, &to)
        else {
            return Err(ViewError::ReadOnly);
        };
        if i != j || name != newname || a == b || *a == Area::Incoming || *b == Area::Incoming {
            return Err(ViewError::ReadOnly);
        }
        let point = std::str::from_utf8(name).map_err(|_| ViewError::NotFound)?;
        let (_, entry) = self.find(parent, name)?;
        if !matches!(entry, Entry::PointDir { .. }) {
            return Err(ViewError::ReadOnly);
        }
        let delete = *b == Area::Deleted;
        let allowed = may(i);
        let done = if allowed {
            self.vault.set_deleted(i, point, delete)
        } else {
            Err(VaultError::Denied(format!(
                "uid {} is not a contributor of item {i}",
                caller.uid
            )))
        };
        // Audited as the caller's (DESIGN §13): done, or refused by immutability.
        let outcome = match &done {
            Ok(_) => Some(AuditOutcome::Ok),
            Err(VaultError::Denied(why)) => Some(AuditOutcome::Denied(why.clone())),
            Err(_) => None,
        };
        if let Some(outcome) = outcome {
            let op = if delete {
                "delete (mv)"
            } else {
                "undelete (mv)"
            };
            let dir = |area: &Area| {
                if *area == Area::Deleted {
                    ".deleted"
                } else {
                    "points"
                }
            };
            let params = format!("mv {}/{i}/{point} {}/{i}/", dir(a), dir(b));
            let what = What::new(op, Some(i), params);
            if let Err(e) = self.vault.audit(&Actor::of_uid(caller.uid), &what, outcome) {
                tracing::warn!("an audit record could not be written: {}", e.for_log());
            }
        }
        if !allowed {
            return Err(ViewError::AccessDenied);
        }
        done?;
        tracing::info!(
            "{} a point created {point} through the mount",
            if *b == Area::Deleted {
                "soft-deleted"
            } else {
                "undeleted"
            }
        );
        Ok(())
    }
}
