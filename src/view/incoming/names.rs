//! Names in the incoming trees: lookups and listings, and every change to the namespace
//! (create, mkdir, mknod, symlink, link, unlink, rmdir, rename), including the items
//! themselves (`mkdir`/`rmdir` in `incoming/`).

use std::sync::Arc;

use super::state::{Inode, State};
use super::{Incoming, check_name};
use crate::format::NodeKind;
use crate::vault::{VaultError, now_ns};
use crate::view::error::{ViewError, ViewResult};
use crate::view::ino::{INCOMING, ROOT};
use crate::view::types::{Attr, Caller, DirEntry, Kind};

impl Incoming {
    pub(super) fn find(&self, st: &mut State, parent: u64, name: &[u8]) -> ViewResult<u64> {
        if parent == INCOMING {
            let item = std::str::from_utf8(name).map_err(|_| ViewError::NotFound)?;
            return self.root_of(st, item);
        }
        self.load_dir(st, parent)?;
        #[cfg(feature = "test-clock")]
        crate::view::fault::panic_if_named(name);
        st.children(parent)?
            .get(name)
            .copied()
            .ok_or(ViewError::NotFound)
    }

    /// Look up `name` in `parent` and count one kernel reference.
    pub fn lookup(&self, parent: u64, name: &[u8]) -> ViewResult<Attr> {
        let mut st = self.lock();
        let ino = self.find(&mut st, parent, name)?;
        let attr = self.attr(&st, ino)?;
        st.get_mut(ino)?.lookups += 1;
        Ok(attr)
    }

    /// Attributes of `name` in `parent` without counting a reference (readdirplus).
    pub fn peek(&self, parent: u64, name: &[u8]) -> ViewResult<Attr> {
        let mut st = self.lock();
        let ino = self.find(&mut st, parent, name)?;
        self.attr(&st, ino)
    }

    pub fn remember(&self, ino: u64) {
        if let Ok(i) = self.lock().get_mut(ino) {
            i.lookups += 1;
        }
    }

    pub fn forget(&self, ino: u64, n: u64) {
        let mut st = self.lock();
        if let Ok(i) = st.get_mut(ino) {
            i.lookups = i.lookups.saturating_sub(n);
        }
        st.maybe_drop(ino);
    }

    /// The listing of an incoming directory, "." and ".." first (`incoming/` itself lists
    /// every item).
    pub fn list(&self, ino: u64) -> ViewResult<Vec<DirEntry>> {
        let mut st = self.lock();
        if ino == INCOMING {
            let mut out = DirEntry::dots(ino, ROOT);
            for it in self.vault.items()? {
                let root = self.root_of(&mut st, &it.name)?;
                out.push(DirEntry {
                    ino: root,
                    kind: Kind::Dir,
                    name: it.name.into_bytes(),
                });
            }
            return Ok(out);
        }
        self.load_dir(&mut st, ino)?;
        let parent = st
            .nodes
            .get(&ino)
            .and_then(|i| i.parents.first().copied())
            .unwrap_or(INCOMING);
        let mut out = DirEntry::dots(ino, parent);
        for (name, c) in st.children(ino)? {
            let kind = st.nodes.get(c).map(|n| n.kind).unwrap_or(NodeKind::File);
            out.push(DirEntry {
                ino: *c,
                kind: kind.into(),
                name: name.clone(),
            });
        }
        Ok(out)
    }

    /// Add a new entry under `parent`; returns its attributes with one kernel reference.
    pub(super) fn add(
        &self,
        parent: u64,
        name: &[u8],
        make: impl FnOnce(Arc<str>) -> Inode,
    ) -> ViewResult<(u64, Attr)> {
        check_name(name)?;
        let _f = self.freeze.read();
        let mut st = self.lock();
        self.load_dir(&mut st, parent)?;
        if st.children(parent)?.contains_key(name) {
            return Err(ViewError::Exists);
        }
        let p = st.get(parent)?;
        let item = p.item.clone();
        // Set-group-ID directories pass their group on.
        let sgid_gid = (p.mode & libc::S_ISGID != 0).then_some(p.gid);
        let mut inode = make(item);
        if let Some(g) = sgid_gid {
            inode.gid = g;
            if inode.kind == NodeKind::Dir {
                inode.mode |= libc::S_ISGID;
            }
        }
        inode.parents.push(parent);
        inode.lookups = 1;
        if inode.kind == NodeKind::Dir {
            st.count_subdir(parent, 1);
        }
        let ino = st.alloc(inode);
        st.children_mut(parent)?.insert(name.to_vec(), ino);
        st.dir_changed(parent);
        let attr = self.attr(&st, ino)?;
        Ok((ino, attr))
    }

    pub fn mkdir(&self, parent: u64, name: &[u8], mode: u32, who: Caller) -> ViewResult<Attr> {
        if parent == INCOMING {
            return self.make_item(name, mode, who);
        }
        self.add(parent, name, |item| {
            Inode::new(item, NodeKind::Dir, mode, who)
        })
        .map(|(_, a)| a)
    }

    /// `mkdir incoming/NEW`: a new item.
    pub(super) fn make_item(&self, name: &[u8], mode: u32, who: Caller) -> ViewResult<Attr> {
        let item = std::str::from_utf8(name).map_err(|_| ViewError::Invalid)?;
        {
            let mut st = self.lock();
            if self.root_of(&mut st, item).is_ok() {
                return Err(ViewError::Exists);
            }
        }
        self.vault.create_item(item).map_err(|e| match e {
            VaultError::BadItemName(_) => ViewError::Invalid,
            e => e.into(),
        })?;
        tracing::info!("created an item through incoming/");
        let mut st = self.lock();
        let ino = self.root_of(&mut st, item)?;
        let i = st.get_mut(ino)?;
        i.mode = mode & 0o7777;
        i.uid = who.uid;
        i.gid = who.gid;
        i.lookups += 1;
        st.mark_dirty(ino);
        self.attr(&st, ino)
    }

    pub fn mknod(
        &self,
        parent: u64,
        name: &[u8],
        mode: u32,
        rdev: u32,
        who: Caller,
    ) -> ViewResult<Attr> {
        if parent == INCOMING {
            return Err(ViewError::Invalid);
        }
        let kind = match mode & libc::S_IFMT {
            libc::S_IFREG | 0 => NodeKind::File,
            libc::S_IFIFO => NodeKind::Fifo,
            libc::S_IFCHR => NodeKind::CharDevice,
            libc::S_IFBLK => NodeKind::BlockDevice,
            libc::S_IFSOCK => NodeKind::Socket,
            _ => return Err(ViewError::Invalid),
        };
        self.add(parent, name, |item| {
            let mut i = Inode::new(item, kind, mode, who);
            i.rdev = rdev as u64;
            i
        })
        .map(|(_, a)| a)
    }

    pub fn symlink(
        &self,
        parent: u64,
        name: &[u8],
        target: &[u8],
        who: Caller,
    ) -> ViewResult<Attr> {
        if parent == INCOMING {
            return Err(ViewError::Invalid);
        }
        self.add(parent, name, |item| {
            let mut i = Inode::new(item, NodeKind::Symlink, 0o777, who);
            i.target = target.to_vec();
            i
        })
        .map(|(_, a)| a)
    }

    /// Create and open a regular file.
    pub fn create(
        &self,
        parent: u64,
        name: &[u8],
        mode: u32,
        who: Caller,
    ) -> ViewResult<(Attr, u64)> {
        if parent == INCOMING {
            return Err(ViewError::Invalid);
        }
        let (ino, attr) = self.add(parent, name, |item| {
            Inode::new(item, NodeKind::File, mode, who)
        })?;
        let mut st = self.lock();
        st.get_mut(ino)?.open += 1;
        drop(st);
        Ok((attr, self.add_handle(ino)))
    }

    pub fn link(&self, ino: u64, newparent: u64, newname: &[u8]) -> ViewResult<Attr> {
        check_name(newname)?;
        if newparent == INCOMING {
            return Err(ViewError::Invalid);
        }
        let _f = self.freeze.read();
        let mut st = self.lock();
        self.load_dir(&mut st, newparent)?;
        let src = st.get(ino)?;
        if src.kind == NodeKind::Dir {
            return Err(ViewError::NotPermitted);
        }
        if src.item != st.get(newparent)?.item {
            return Err(ViewError::CrossDevice);
        }
        if st.children(newparent)?.contains_key(newname) {
            return Err(ViewError::Exists);
        }
        let group = if src.link_group == 0 {
            random_group()?
        } else {
            src.link_group
        };
        let src = st.get_mut(ino)?;
        src.link_group = group;
        src.nlink += 1;
        src.parents.push(newparent);
        src.ctime_ns = now_ns();
        src.lookups += 1;
        st.children_mut(newparent)?.insert(newname.to_vec(), ino);
        st.dir_changed(newparent);
        st.mark_dirty(ino);
        self.attr(&st, ino)
    }

    pub fn unlink(&self, parent: u64, name: &[u8]) -> ViewResult<()> {
        if parent == INCOMING {
            return Err(ViewError::IsDir);
        }
        let _f = self.freeze.read();
        let mut st = self.lock();
        let child = self.find(&mut st, parent, name)?;
        if st.get(child)?.kind == NodeKind::Dir {
            return Err(ViewError::IsDir);
        }
        st.unlink_entry(parent, name, child)
    }

    pub fn rmdir(&self, parent: u64, name: &[u8]) -> ViewResult<()> {
        let _f = self.freeze.read();
        let mut st = self.lock();
        let child = self.find(&mut st, parent, name)?;
        if st.get(child)?.kind != NodeKind::Dir {
            return Err(ViewError::NotDir);
        }
        self.load_dir(&mut st, child)?;
        if !st.children(child)?.is_empty() {
            return Err(ViewError::NotEmpty);
        }
        if parent == INCOMING {
            let item = std::str::from_utf8(name).map_err(|_| ViewError::NotFound)?;
            self.vault.remove_item(item)?;
            tracing::info!("removed an item (it had no points) through incoming/");
            st.roots.remove(item);
            st.dirty.remove(item);
            if let Ok(i) = st.get_mut(child) {
                i.nlink = 0;
            }
            st.maybe_drop(child);
            return Ok(());
        }
        st.unlink_entry(parent, name, child)
    }

    pub fn rename(
        &self,
        parent: u64,
        name: &[u8],
        newparent: u64,
        newname: &[u8],
        noreplace: bool,
    ) -> ViewResult<()> {
        if parent == INCOMING || newparent == INCOMING {
            return Err(ViewError::NotPermitted);
        }
        check_name(newname)?;
        let _f = self.freeze.read();
        let mut st = self.lock();
        let src = self.find(&mut st, parent, name)?;
        self.load_dir(&mut st, newparent)?;
        if st.get(parent)?.item != st.get(newparent)?.item {
            return Err(ViewError::CrossDevice);
        }
        let src_is_dir = st.get(src)?.kind == NodeKind::Dir;
        if src_is_dir {
            // Not into itself or below.
            let mut cur = newparent;
            loop {
                if cur == src {
                    return Err(ViewError::Invalid);
                }
                match st.get(cur)?.parents.first() {
                    Some(p) => cur = *p,
                    None => break,
                }
            }
        }
        if let Some(dst) = st.children(newparent)?.get(newname).copied() {
            if noreplace {
                return Err(ViewError::Exists);
            }
            if dst == src {
                return Ok(());
            }
            let dst_is_dir = st.get(dst)?.kind == NodeKind::Dir;
            match (src_is_dir, dst_is_dir) {
                (true, false) => return Err(ViewError::NotDir),
                (false, true) => return Err(ViewError::IsDir),
                (true, true) => {
                    self.load_dir(&mut st, dst)?;
                    if !st.children(dst)?.is_empty() {
                        return Err(ViewError::NotEmpty);
                    }
                }
                (false, false) => {}
            }
            st.unlink_entry(newparent, newname, dst)?;
        }
        st.children_mut(parent)?.remove(name);
        st.children_mut(newparent)?.insert(newname.to_vec(), src);
        if src_is_dir {
            st.count_subdir(parent, -1);
            st.count_subdir(newparent, 1);
        }
        let s = st.get_mut(src)?;
        if let Some(i) = s.parents.iter().position(|p| *p == parent) {
            s.parents[i] = newparent;
        }
        s.ctime_ns = now_ns();
        st.dir_changed(parent);
        st.dir_changed(newparent);
        Ok(())
    }
}

fn random_group() -> ViewResult<u64> {
    let mut b = [0u8; 8];
    crate::keys::random_bytes(&mut b).map_err(VaultError::from)?;
    Ok(u64::from_le_bytes(b) | 1)
}
