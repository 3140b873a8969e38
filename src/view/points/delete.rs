//! Soft delete through the mount: moving a point between `points/ITEM/` and `.deleted/ITEM/`,
//! the one change the read-only side accepts.

use super::Points;
use super::inodes::{Area, Entry};
use crate::view::error::{ViewError, ViewResult};

impl Points {
    /// The one change allowed outside `incoming/`: moving a point between `points/ITEM/` and
    /// `.deleted/ITEM/` under the same name soft-deletes or undeletes it.
    pub fn rename(
        &self,
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
        self.vault.set_deleted(i, point, *b == Area::Deleted)?;
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
