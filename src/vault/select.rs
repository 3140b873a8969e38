//! What a backup takes from its sources: exclude patterns, directories tagged by a file
//! (`--exclude-if-present`), staying on the sources' filesystems (`--one-file-system`), and
//! never entering a vaultfs mount (a backup of a tree holding the vault's own mount would
//! otherwise read every point back into the vault).
//!
//! Patterns (globset, `*`, `?`, `[..]`, `{a,b}`, `**`): one without `/` is matched against each
//! entry's name (`*.log`); one starting with `/` against the entry's absolute path
//! (`/home/*/.cache`); any other one with `/` against the end of the path (`build/*.o` is
//! `**/build/*.o`). `*` never crosses a `/`; `**` does. A trailing `/` is ignored.

use std::collections::HashSet;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use super::{Result, VaultError};

#[derive(Debug, Clone)]
pub struct Selection {
    names: GlobSet,
    paths: GlobSet,
    /// A directory holding an entry of one of these names is left out, with its contents.
    if_present: Vec<OsString>,
    /// Directories on another device than their source are kept empty.
    one_file_system: bool,
    /// Devices never entered (vaultfs mounts): their directories are kept empty.
    skip_devices: HashSet<u64>,
}

impl Default for Selection {
    fn default() -> Self {
        Selection {
            names: GlobSet::empty(),
            paths: GlobSet::empty(),
            if_present: Vec::new(),
            one_file_system: false,
            skip_devices: HashSet::new(),
        }
    }
}

impl Selection {
    pub fn new(
        patterns: &[String],
        if_present: Vec<OsString>,
        one_file_system: bool,
        skip_devices: HashSet<u64>,
    ) -> Result<Selection> {
        let (mut names, mut paths) = (GlobSetBuilder::new(), GlobSetBuilder::new());
        for p in patterns {
            let trimmed = p.trim_end_matches('/');
            let bad = |why: String| VaultError::BadPattern {
                pattern: p.clone(),
                why,
            };
            if trimmed.is_empty() {
                return Err(bad("empty".into()));
            }
            let text = if !trimmed.contains('/') || trimmed.starts_with('/') {
                trimmed.to_string()
            } else {
                format!("**/{trimmed}")
            };
            let glob = GlobBuilder::new(&text)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| bad(e.kind().to_string()))?;
            if trimmed.contains('/') {
                paths.add(glob);
            } else {
                names.add(glob);
            }
        }
        let build = |b: GlobSetBuilder| {
            b.build().map_err(|e| VaultError::BadPattern {
                pattern: patterns.join(" "),
                why: e.to_string(),
            })
        };
        Ok(Selection {
            names: build(names)?,
            paths: build(paths)?,
            if_present,
            one_file_system,
            skip_devices,
        })
    }

    /// Whether the entry `name` at `path` is excluded by a pattern.
    pub fn excluded(&self, path: &Path, name: &[u8]) -> bool {
        self.names
            .is_match(Path::new(std::ffi::OsStr::from_bytes(name)))
            || self.paths.is_match(path)
    }

    /// Whether directory `dir` holds one of the `--exclude-if-present` names.
    pub fn tagged(&self, dir: &Path) -> bool {
        self.if_present
            .iter()
            .any(|n| std::fs::symlink_metadata(dir.join(n)).is_ok())
    }

    /// Whether a directory on device `dev`, below a source on `source_dev`, is entered.
    pub fn enters(&self, dev: u64, source_dev: u64) -> bool {
        !self.skip_devices.contains(&dev) && (!self.one_file_system || dev == source_dev)
    }
}

/// Patterns of an `--exclude-file`: one per line; blank lines and lines starting with `#`
/// are skipped, trailing spaces and a `\r` are trimmed.
pub fn read_exclude_file(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.trim_end())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(p: &[&str]) -> Selection {
        let p: Vec<String> = p.iter().map(|s| s.to_string()).collect();
        Selection::new(&p, Vec::new(), false, HashSet::new()).unwrap()
    }

    #[test]
    fn names_whole_paths_and_path_ends() {
        let s = sel(&["*.log", "/src/build", "deep/*.key", "tmp/"]);
        let ex = |p: &str| {
            let name = p.rsplit('/').next().unwrap();
            s.excluded(Path::new(p), name.as_bytes())
        };
        assert!(ex("/a/b/x.log"));
        assert!(!ex("/a/x.log.gz"));
        assert!(ex("/src/build"));
        assert!(!ex("/other/src/build"), "a leading / anchors at the root");
        assert!(ex("/src/sub/deep/a.key"));
        assert!(!ex("/src/sub/deep/more/a.key"), "* stays within a name");
        assert!(ex("/x/tmp"), "a trailing / is ignored");
    }

    #[test]
    fn exclude_files_skip_comments_and_blank_lines() {
        assert_eq!(
            read_exclude_file("# caches\n*.tmp  \r\n\n  \n/abs/path\n"),
            ["*.tmp", "/abs/path"]
        );
    }

    #[test]
    fn a_bad_pattern_is_named() {
        let e = Selection::new(
            &["ok".into(), "a[".into()],
            Vec::new(),
            false,
            HashSet::new(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("\"a[\""), "{e}");
    }

    #[test]
    fn devices_entered() {
        let s = Selection::new(&[], Vec::new(), true, HashSet::from([9])).unwrap();
        assert!(s.enters(1, 1));
        assert!(!s.enters(2, 1), "one file system");
        assert!(!s.enters(9, 9), "never a vaultfs mount");
        assert!(Selection::default().enters(2, 1));
        assert!(
            !Selection::new(&[], Vec::new(), false, HashSet::from([9]))
                .unwrap()
                .enters(9, 1)
        );
    }
}
