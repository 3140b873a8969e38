//! Extended attributes of points, and the label attributes `ls -l` asks of every file.

use std::sync::atomic::Ordering;

use super::Points;
use crate::view::error::{ViewError, ViewResult};

/// Attributes `ls -l` asks for on every file (SELinux context, ACL marker), with the bit that
/// says a loaded tree carried one of that kind. A file in a point without one answers "not
/// supported" until such a tree is seen: ls, cp, rsync, tar and getfacl treat that as "no
/// label/ACL" (as for a file without it), and ls stops asking for the rest of the mount, which
/// saves two FUSE requests per listed file. The two ACL names share a bit: ls gives up on ACLs
/// at the first "not supported" for either.
pub(super) const LABEL_XATTRS: [(&[u8], u8); 3] = [
    (b"security.selinux", 1),
    (b"system.posix_acl_access", 2),
    (b"system.posix_acl_default", 2),
];

impl Points {
    pub(super) fn xattrs_of(&self, ino: u64) -> ViewResult<Vec<(Vec<u8>, Vec<u8>)>> {
        Ok(self
            .node(&self.entry(ino)?)?
            .map(|n| n.xattrs.clone())
            .unwrap_or_default())
    }

    pub fn getxattr(&self, ino: u64, name: &[u8]) -> ViewResult<Vec<u8>> {
        if let Some((_, v)) = self.xattrs_of(ino)?.into_iter().find(|(k, _)| k == name) {
            return Ok(v);
        }
        match LABEL_XATTRS.iter().find(|(l, _)| *l == name) {
            Some((_, bit)) if self.labels_seen.load(Ordering::Relaxed) & bit == 0 => {
                Err(ViewError::XattrUnsupported)
            }
            _ => Err(ViewError::NoXattr),
        }
    }

    /// NUL-terminated names, as listxattr(2) returns them.
    pub fn listxattr(&self, ino: u64) -> ViewResult<Vec<u8>> {
        let mut out = Vec::new();
        for (k, _) in self.xattrs_of(ino)? {
            out.extend_from_slice(&k);
            out.push(0);
        }
        Ok(out)
    }
}
