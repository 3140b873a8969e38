//! Loading the live trees from the saved ones: an item's root from its newest incoming
//! record, a directory's entries from its tree the first time it is used.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Incoming;
use super::state::{Data, DirData, Inode, State};
use crate::format::NodeKind;
use crate::vault::{VaultError, tree};
use crate::view::error::{ViewError, ViewResult};
use crate::view::types::Caller;

impl Incoming {
    /// The root inode of `item`'s incoming tree, loading its saved record on first use.
    pub(super) fn root_of(&self, st: &mut State, item: &str) -> ViewResult<u64> {
        if let Some(ino) = st.roots.get(item) {
            return Ok(*ino);
        }
        self.vault.item(item).map_err(|e| match e {
            VaultError::UnknownItem(_) | VaultError::BadItemName(_) => ViewError::NotFound,
            e => e.into(),
        })?;
        let name: Arc<str> = item.into();
        let rec = self.vault.incoming(item)?;
        let inode = match &rec {
            Some(r) => Inode::from_node(name.clone(), &r.root),
            None => Inode::new(
                name.clone(),
                NodeKind::Dir,
                0o755,
                Caller { uid: 0, gid: 0 },
            ),
        };
        st.revisions
            .insert(name, rec.as_ref().map(|r| r.revision).unwrap_or(0));
        let ino = st.alloc(inode);
        st.roots.insert(item.to_string(), ino);
        Ok(ino)
    }

    /// Make sure directory `ino`'s entries are in memory.
    pub(super) fn load_dir(&self, st: &mut State, ino: u64) -> ViewResult<()> {
        let inode = st.get(ino)?;
        let id = match &inode.data {
            Data::Dir(DirData {
                children: Some(_), ..
            }) => return Ok(()),
            Data::Dir(DirData {
                saved: Some(id), ..
            }) => *id,
            Data::Dir(_) => return Err(ViewError::Corrupt("directory without a tree".into())),
            _ => return Err(ViewError::NotDir),
        };
        let item = inode.item.clone();
        let t = tree::load(self.vault.store(), &id)
            .map_err(ViewError::from)
            .inspect_err(|e| e.log(&format!("an incoming directory tree {id}")))?;
        let mut children = BTreeMap::new();
        for n in &t.nodes {
            let key = (item.clone(), n.link_group);
            let child = match (n.link_group != 0)
                .then(|| st.links.get(&key).copied())
                .flatten()
                .filter(|c| st.nodes.contains_key(c))
            {
                Some(c) => {
                    st.get_mut(c)?.parents.push(ino);
                    c
                }
                None => {
                    let mut inode = Inode::from_node(item.clone(), n);
                    inode.parents.push(ino);
                    let c = st.alloc(inode);
                    if n.link_group != 0 {
                        st.links.insert(key, c);
                    }
                    c
                }
            };
            children.insert(n.name.clone(), child);
        }
        let subdirs = tree::dir_nlink(&t) - 2;
        if let Data::Dir(d) = &mut st.get_mut(ino)?.data {
            d.children = Some(children);
            d.subdirs = Some(subdirs);
        }
        Ok(())
    }
}
