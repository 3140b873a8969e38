//! `restore --verify`: read back what a restore wrote and check every regular file against
//! the point, chunk by chunk, by its keyed blob id (no pack is read again: the ids say what
//! the bytes must be).

use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::format::{Node, NodeKind};
use crate::store::{BlobKind, Store};

use super::Result;
use super::browse::walk;

/// Files checked and the paths (relative to `dest`) whose bytes differ or cannot be read.
#[derive(Debug, Default)]
pub struct Verified {
    pub files: u64,
    pub bad: Vec<String>,
}

/// Check the files below directory node `dir` against the restored tree at `dest`; a file
/// node is checked as `dest` itself.
pub fn verify(store: &Store, dir: &Node, dest: &Path) -> Result<Verified> {
    let mut out = Verified::default();
    if dir.kind != NodeKind::Dir {
        check(store, dir, dest, b"", &mut out);
        return Ok(out);
    }
    walk(store, dir, b"", true, &mut |path, node| {
        if node.kind == NodeKind::File {
            let rel = std::ffi::OsStr::from_bytes(&path[1..]);
            check(store, node, &dest.join(rel), path, &mut out);
        }
        Ok(())
    })?;
    Ok(out)
}

fn check(store: &Store, node: &Node, file: &Path, shown: &[u8], out: &mut Verified) {
    out.files += 1;
    let same = || -> std::io::Result<bool> {
        let mut f = File::open(file)?;
        if f.metadata()?.len() != node.size {
            return Ok(false);
        }
        let mut buf = Vec::new();
        for c in &node.chunks {
            buf.resize(c.len as usize, 0);
            f.read_exact(&mut buf)?;
            if store.blob_id(BlobKind::Data, &buf) != c.id {
                return Ok(false);
            }
        }
        Ok(true)
    };
    if !matches!(same(), Ok(true)) {
        let p = if shown.is_empty() {
            file.display().to_string()
        } else {
            String::from_utf8_lossy(shown).into_owned()
        };
        out.bad.push(p);
    }
}
