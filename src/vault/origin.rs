//! Where a point came from (format v5): the host that made it, its source paths and the tags
//! given to it, and the filter `points --host/--tag/--path` selects points by (DESIGN §14).

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::format::{PointOrigin, PointRecord};

use super::{Result, VaultError};

/// This machine's host name (empty if it cannot be read).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// A tag: 1–64 characters of `[A-Za-z0-9._:@+=-]`, not starting with `-` (so it cannot be
/// mistaken for an option), no commas or spaces (a list of tags is written with commas).
pub fn check_tag(tag: &str) -> Result<()> {
    let ok = (1..=64).contains(&tag.len())
        && !tag.starts_with('-')
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:@+=-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(VaultError::BadSetting(format!(
            "bad tag {tag:?}: use 1-64 characters of letters, digits and . _ : @ + = -, \
             not starting with -"
        )))
    }
}

/// The origin of a point made here from `paths` (absolute), with `tags` checked, sorted and
/// without repeats.
pub fn origin(paths: &[PathBuf], tags: &[String]) -> Result<PointOrigin> {
    let mut tags = tags.to_vec();
    for t in &tags {
        check_tag(t)?;
    }
    tags.sort();
    tags.dedup();
    Ok(PointOrigin {
        host: host_name(),
        paths: paths
            .iter()
            .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()))
            .map(|p| p.as_os_str().as_bytes().to_vec())
            .collect(),
        tags,
    })
}

/// The origin of a snapshot of `incoming/ITEM`: the host of the process that holds the vault.
pub fn incoming_origin(item: &str, tags: &[String]) -> Result<PointOrigin> {
    let mut o = origin(&[], tags)?;
    o.paths = vec![format!("incoming/{item}").into_bytes()];
    Ok(o)
}

/// Which points `points` lists: any of `hosts`, all of `tags`, all of `paths` (restic's rules
/// for a single `--tag a,b`; here every `--tag` must match). Points from before format v5
/// have no origin and match only an empty filter.
#[derive(Debug, Clone, Default)]
pub struct PointFilter {
    pub hosts: Vec<String>,
    pub tags: Vec<String>,
    /// Each path as given and made absolute (a snapshot's `incoming/ITEM` is matched as given).
    pub paths: Vec<[Vec<u8>; 2]>,
}

/// `p`'s bytes without a trailing `/` (unless it is `/`).
fn trimmed(p: &Path) -> Vec<u8> {
    let b = p.as_os_str().as_bytes();
    match b.strip_suffix(b"/") {
        Some(t) if !t.is_empty() => t.to_vec(),
        _ => b.to_vec(),
    }
}

impl PointFilter {
    /// A filter; `--tag a,b` is the same as `--tag a --tag b`.
    pub fn new(hosts: &[String], tags: &[String], paths: &[PathBuf], cwd: &Path) -> Self {
        let paths = paths
            .iter()
            .map(|p| [trimmed(p), trimmed(&cwd.join(p))])
            .collect();
        PointFilter {
            hosts: hosts.to_vec(),
            tags: tags
                .iter()
                .flat_map(|t| t.split(','))
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect(),
            paths,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty() && self.tags.is_empty() && self.paths.is_empty()
    }

    pub fn matches(&self, p: &PointRecord) -> bool {
        if self.is_empty() {
            return true;
        }
        let Some(o) = &p.origin else { return false };
        (self.hosts.is_empty() || self.hosts.contains(&o.host))
            && self.tags.iter().all(|t| o.tags.contains(t))
            && self
                .paths
                .iter()
                .all(|want| want.iter().any(|w| o.paths.contains(w)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags() {
        for good in ["daily", "v1.2", "env=prod", "a:b@c+d", &"t".repeat(64)] {
            assert!(check_tag(good).is_ok(), "{good}");
        }
        for bad in ["", "-x", "a,b", "sp ace", "ü", &"t".repeat(65), "a/b"] {
            assert!(check_tag(bad).is_err(), "{bad:?}");
        }
        let o = origin(&[], &["b".into(), "a".into(), "b".into()]).unwrap();
        assert_eq!(o.tags, ["a", "b"]);
    }
}
