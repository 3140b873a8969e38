//! Attributes and extended attributes of incoming entries, and `setattr` (which may truncate).
//! An access ACL set as an xattr sets the mode bits, as on a local filesystem.

use super::Incoming;
use super::state::{Data, State};
use crate::format::NodeKind;
use crate::vault::now_ns;
use crate::view::error::{ViewError, ViewResult};
use crate::view::time::to_time;
use crate::view::types::{Attr, SetAttr, Stability, XattrSet};

impl Incoming {
    pub(super) fn attr(&self, st: &State, ino: u64) -> ViewResult<Attr> {
        let i = st.get(ino)?;
        let (size, nlink) = match &i.data {
            Data::File(f) => (f.size, i.nlink),
            // Not counted yet: 1 means "unknown" to find and friends.
            Data::Dir(d) => (4096, d.subdirs.map_or(1, |n| 2 + n)),
            Data::Other => (i.target.len() as u64, i.nlink),
        };
        let mtime = to_time(i.mtime_ns);
        Ok(Attr {
            ino,
            size,
            blocks: size.div_ceil(512),
            atime: to_time(i.atime_ns),
            mtime,
            ctime: to_time(i.ctime_ns),
            crtime: mtime,
            kind: i.kind.into(),
            perm: i.mode as u16,
            nlink: if i.kind == NodeKind::Dir {
                nlink.max(1)
            } else {
                nlink
            },
            uid: i.uid,
            gid: i.gid,
            rdev: i.rdev as u32,
            stability: Stability::Live,
        })
    }

    pub fn getattr(&self, ino: u64) -> ViewResult<Attr> {
        self.attr(&self.lock(), ino)
    }

    pub fn readlink(&self, ino: u64) -> ViewResult<Vec<u8>> {
        let st = self.lock();
        let i = st.get(ino)?;
        if i.kind != NodeKind::Symlink {
            return Err(ViewError::Invalid);
        }
        Ok(i.target.clone())
    }

    pub fn setattr(&self, ino: u64, a: SetAttr) -> ViewResult<Attr> {
        let _f = self.freeze.read();
        if let Some(size) = a.size {
            self.truncate(ino, size)?;
        }
        let mut st = self.lock();
        let i = st.get_mut(ino)?;
        let now = now_ns();
        if let Some(m) = a.mode {
            i.mode = m & 0o7777;
        }
        if let Some(u) = a.uid {
            i.uid = u;
        }
        if let Some(g) = a.gid {
            i.gid = g;
        }
        if let Some(t) = a.atime_ns {
            i.atime_ns = t;
        }
        if let Some(t) = a.mtime_ns {
            i.mtime_ns = t;
        } else if a.size.is_some() {
            i.mtime_ns = now;
        }
        i.ctime_ns = a.ctime_ns.unwrap_or(now);
        st.mark_dirty(ino);
        let attr = self.attr(&st, ino);
        drop(st);
        if a.mtime_ns.is_some() {
            // Setting a file's times is the last thing rsync, cp -a and tar do to it.
            self.finished(ino);
        }
        attr
    }

    pub fn getxattr(&self, ino: u64, name: &[u8]) -> ViewResult<Vec<u8>> {
        let st = self.lock();
        st.get(ino)?
            .xattrs
            .get(name)
            .cloned()
            .ok_or(ViewError::NoXattr)
    }

    pub fn listxattr(&self, ino: u64) -> ViewResult<Vec<u8>> {
        let st = self.lock();
        let mut out = Vec::new();
        for k in st.get(ino)?.xattrs.keys() {
            out.extend_from_slice(k);
            out.push(0);
        }
        Ok(out)
    }

    pub fn setxattr(&self, ino: u64, name: &[u8], value: &[u8], how: XattrSet) -> ViewResult<()> {
        let _f = self.freeze.read();
        let mut st = self.lock();
        let i = st.get_mut(ino)?;
        let exists = i.xattrs.contains_key(name);
        if how == XattrSet::Create && exists {
            return Err(ViewError::Exists);
        }
        if how == XattrSet::Replace && !exists {
            return Err(ViewError::NoXattr);
        }
        let mut keep = true;
        if name == ACL_ACCESS {
            // Like a local filesystem: an access ACL sets the mode bits (cp -a and rsync -A
            // set permissions this way), and only an extended one is kept.
            let (mode, extended) = acl_mode(value).ok_or(ViewError::Invalid)?;
            i.mode = (i.mode & !0o777) | mode;
            keep = extended;
        }
        if keep {
            i.xattrs.insert(name.to_vec(), value.to_vec());
        } else {
            i.xattrs.remove(name);
        }
        i.ctime_ns = now_ns();
        st.mark_dirty(ino);
        drop(st);
        if name == ACL_ACCESS {
            // Attributes only: the cached mode is stale.
            self.kernel.get().invalidate(ino, false);
        }
        Ok(())
    }

    pub fn removexattr(&self, ino: u64, name: &[u8]) -> ViewResult<()> {
        let _f = self.freeze.read();
        let mut st = self.lock();
        let i = st.get_mut(ino)?;
        i.xattrs.remove(name).ok_or(ViewError::NoXattr)?;
        i.ctime_ns = now_ns();
        st.mark_dirty(ino);
        Ok(())
    }
}

const ACL_ACCESS: &[u8] = b"system.posix_acl_access";

/// The permission bits a POSIX access ACL (`system.posix_acl_access`, version 2) gives, and
/// whether it has entries beyond them (named users or groups, a mask).
fn acl_mode(v: &[u8]) -> Option<(u32, bool)> {
    const USER_OBJ: u16 = 0x01;
    const GROUP_OBJ: u16 = 0x04;
    const MASK: u16 = 0x10;
    const OTHER: u16 = 0x20;
    if v.len() < 4 || (v.len() - 4) % 8 != 0 || u32::from_le_bytes(v[..4].try_into().ok()?) != 2 {
        return None;
    }
    let (mut user, mut group, mut mask, mut other, mut extended) = (0, 0, None, 0, false);
    for e in v[4..].chunks_exact(8) {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        let perm = u16::from_le_bytes([e[2], e[3]]) as u32 & 7;
        match tag {
            USER_OBJ => user = perm,
            GROUP_OBJ => group = perm,
            MASK => mask = Some(perm),
            OTHER => other = perm,
            _ => extended = true,
        }
    }
    let group = mask.unwrap_or(group);
    Some((user << 6 | group << 3 | other, extended || mask.is_some()))
}
