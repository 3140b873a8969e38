//! Listings of the read-only side: items and points from the catalog (taken at open), a
//! point's directories from their trees (at the first read).

use super::Points;
use super::inodes::{self, Area, Entry};
use super::point_of;
use crate::view::error::{ViewError, ViewResult};
use crate::view::ino::{INCOMING, POINTS, VERSIONS};
use crate::view::types::{DirEntry, Kind, Stability};

impl Points {
    /// The listing of a directory, "." and ".." first, or `None` for a directory inside a
    /// point: the door keeps those listings (they never change), so they are listed on the
    /// first read, which may never come. With how long the listing stays true.
    pub fn opendir(&self, ino: u64) -> ViewResult<(Option<Vec<DirEntry>>, Stability)> {
        let entry = self.entry(ino)?;
        let mut list = DirEntry::dots(ino, self.parent_of(ino, &entry));
        let dir = |ino, name: &str| DirEntry {
            ino,
            kind: Kind::Dir,
            name: name.as_bytes().to_vec(),
        };
        match &entry {
            Entry::Root => {
                list.push(dir(POINTS, "points"));
                list.push(dir(INCOMING, "incoming"));
                list.push(dir(VERSIONS, "versions"));
            }
            Entry::PointsDir | Entry::DeletedDir | Entry::VersionsDir => {
                let area = if matches!(entry, Entry::PointsDir) {
                    Area::Points
                } else {
                    Area::Deleted
                };
                for it in self.vault.items()? {
                    let ino = match entry {
                        Entry::VersionsDir => Self::versions_ino(&it.name, b""),
                        _ => inodes::item_dir_ino(area, &it.name),
                    };
                    list.push(dir(ino, &it.name));
                }
            }
            Entry::IncomingDir => {}
            Entry::Versions { item, path } => self.versions_list(ino, item, path, &mut list)?,
            Entry::ItemDir { area, item } => {
                if *area != Area::Incoming {
                    let pts = self.vault.points(Some(item), *area == Area::Deleted)?;
                    if let (Area::Points, Some(newest)) = (area, pts.last()) {
                        list.push(DirEntry {
                            ino: inodes::latest_ino(item, &newest.name),
                            kind: Kind::Symlink,
                            name: b"latest".to_vec(),
                        });
                    }
                    for p in pts {
                        list.push(dir(inodes::point_dir_ino(item, &p.name), &p.name));
                    }
                }
            }
            // The door opens only what it knows to be a directory.
            Entry::PointDir { .. } => return Ok((None, Stability::Catalog)),
            Entry::Node { .. } => return Ok((None, Stability::Immutable)),
            Entry::Latest { .. } => return Err(ViewError::NotDir),
        }
        Ok((Some(list), Stability::Catalog))
    }

    /// The listing of a directory inside a point, "." and ".." first.
    pub fn list(&self, ino: u64) -> ViewResult<Vec<DirEntry>> {
        let entry = self.entry(ino)?;
        let mut list = DirEntry::dots(ino, self.parent_of(ino, &entry));
        let (_, tree) = self.dir_tree(&entry)?;
        let point = point_of(&entry).ok_or(ViewError::NotDir)?;
        for n in &tree.nodes {
            list.push(DirEntry {
                ino: inodes::node_ino(point.ino, ino, n),
                kind: n.kind.into(),
                name: n.name.clone(),
            });
        }
        Ok(list)
    }
}
